// Turns client messages into plans: which node gets which bytes, whose replies reach the client,
// and what must be replayed so that several nodes behave like one PostgreSQL session.
#include "daemon/dispatcher.hpp"

#include <algorithm>

#include "daemon/io/conn.hpp"
#include "daemon/log.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"
#include "parser/cache_key.hpp"

namespace splitpool::daemon {

using parser::Classification;
using parser::Kind;

namespace {

std::string query_message(std::string_view sql) {
    std::string out;
    proto::put_query(out, sql);
    return out;
}

// Bind: portal name, statement name. Describe/Close: 'S' or 'P', name. Execute: portal name.
struct Names {
    std::string_view first, second;
    char what = 0;
};

Names names_of(char type, const char* msg, size_t size) {
    proto::Reader r(msg + 5, size - 5);
    Names n;
    if (type == 'B') {
        n.first = r.cstr();
        n.second = r.cstr();
    } else if (type == 'D' || type == 'C') {
        n.what = char(r.byte());
        n.first = r.cstr();
    } else {
        n.first = r.cstr();
    }
    return n;
}

}  // namespace

bool routing_policy_for(const Config& c, RoutingPolicy* p, std::string* error) {
    auto join = [](const std::vector<std::string>& v, const char* sep) {
        std::string out;
        for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
        return out;
    };
    p->load_balance_mode = c.load_balance_mode;
    p->statement_level_load_balance = c.statement_level_load_balance;
    p->allow_sql_comments = c.allow_sql_comments;
    p->check_unlogged_table = c.check_unlogged_table;
    p->read_your_writes_window_ms = c.read_your_writes_window;
    bool ok = parse_disable_lb_on_write(c.disable_load_balance_on_write, &p->disable_load_balance_on_write) &&
              parse_check_temp_table(c.check_temp_table, &p->check_temp_table);
    if (!ok) *error = "invalid disable_load_balance_on_write or check_temp_table";
    ok = ok && set_function_lists(p, join(c.write_function_list, ","), join(c.read_only_function_list, ","), error);
    ok = ok && set_primary_routing_patterns(p, join(c.primary_routing_query_pattern_list, ";"), error);
    ok = ok && parse_redirect_list(c.database_redirect_preference_list, &p->redirects.database, error);
    ok = ok && parse_redirect_list(c.app_name_redirect_preference_list, &p->redirects.app_name, error);
    ok = ok && parse_redirect_list(c.user_redirect_preference_list, &p->redirects.user, error);
    return ok;
}

Dispatcher::Dispatcher(DispatchContext ctx, const std::string& database, const std::string& user,
                       const std::string& application_name)
    : ctx_(std::move(ctx)), rng_(std::random_device{}()) {
    shm::NodeSnapshot snapshot = ctx_.table.snapshot();
    primary_ = snapshot.primary >= 0 && snapshot.primary < int(ctx_.config.backends.size()) ? snapshot.primary : 0;
    route_state_.database = database;
    route_state_.user = user;
    route_state_.application_name = application_name;
    start_session(route_state_, snapshot, policy(), rng_);
    ctx_.catalog.new_session();
}

bool Dispatcher::needs_idle(char type) const {
    switch (type) {
    case 'Q': case 'F': return true;
    case 'S': case 'H': return pinned_node_ < 0;
    default: return false;
    }
}

std::string Dispatcher::query_of(const char* msg, size_t size) const {
    proto::Reader r(msg + 5, size - 5);
    return std::string(r.cstr());
}

bool Dispatcher::in_transaction(const std::vector<NodeView>& nodes) const {
    for (const NodeView& n : nodes)
        if (n.connected && n.tx_status != 'I') return true;
    return false;
}

int Dispatcher::failed_node(const std::vector<NodeView>& nodes) const {
    for (size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i].connected && nodes[i].tx_status == 'E') return int(i);
    return -1;
}

// A node joining an open transaction first gets the transaction's BEGIN and its savepoints, so a
// later ROLLBACK TO SAVEPOINT, COMMIT or failure treats it like every other node of the transaction.
void Dispatcher::add_send(int node, Delivery delivery, std::string bytes, const std::vector<NodeView>& nodes,
                          Plan& plan, int ready_count) {
    bool joined_in_plan = false;
    for (const Send& s : plan.sends) joined_in_plan = joined_in_plan || s.node == node;
    const NodeView& view = nodes[size_t(node)];
    bool idle_node = !view.connected || view.tx_status == 'I';
    if (!joined_in_plan && idle_node && in_transaction(nodes)) {
        std::vector<std::string> statements = join_transaction_statements(route_state_);
        std::string join;
        for (const auto& sql : statements) join += query_message(sql);
        Send s{node, Delivery::Swallow, std::move(join)};
        s.ready_count = int(statements.size());
        if (s.ready_count > 0) plan.sends.push_back(std::move(s));
    }
    Send s;
    s.node = node;
    s.delivery = delivery;
    s.bytes = std::move(bytes);
    s.ready_count = ready_count;
    plan.sends.push_back(std::move(s));
}

// Statements every node of the session (or of the transaction) must see: the client's reply comes
// from the primary when it takes part, else from the first node taking part.
void Dispatcher::fan_out(const Classification& cls, const std::string& bytes, const std::vector<NodeView>& nodes,
                         bool tx_only, Plan& plan) {
    int failed = failed_node(nodes);
    bool ending = cls.kind == Kind::Commit || cls.kind == Kind::Rollback;
    std::vector<int> targets;
    for (size_t i = 0; i < nodes.size(); ++i) {
        bool take = nodes[i].connected && (!tx_only || nodes[i].tx_status != 'I');
        if (take) targets.push_back(int(i));
    }
    if (targets.empty()) targets.push_back(primary_);
    int forward = failed >= 0 ? failed : primary_;
    if (std::find(targets.begin(), targets.end(), forward) == targets.end()) forward = targets.front();
    for (int node : targets) {
        // COMMIT of a transaction that failed anywhere must not commit anywhere: the failed node
        // answers as PostgreSQL does (ROLLBACK), the others are rolled back quietly.
        bool rollback_instead = ending && failed >= 0 && node != failed;
        std::string out = rollback_instead ? query_message("ROLLBACK") : bytes;
        Send s{node, node == forward ? Delivery::Forward : Delivery::Swallow, std::move(out)};
        plan.sends.push_back(std::move(s));
    }
}

// Where one statement runs. Inside a failed transaction every statement goes to the failed node,
// which answers 25P02 exactly as PostgreSQL would.
int Dispatcher::target_for(const Classification& cls, std::string_view sql, const std::vector<NodeView>& nodes,
                           bool& balanced) {
    balanced = false;
    int failed = failed_node(nodes);
    if (failed >= 0) return failed;
    const RoutingPolicy& policy = this->policy();
    if (ctx_.side_query && (!cls.functions.empty() || !cls.relations.empty()) && cls.load_balanceable) {
        bool functions = policy.write_functions.empty() && policy.read_only_functions.empty();
        bool relations = policy.check_temp_table == CheckTempTable::Catalog || policy.check_unlogged_table;
        ctx_.catalog.prefetch(cls, functions, relations, ctx_.side_query);
    }
    shm::NodeSnapshot snapshot = ctx_.table.snapshot();
    RouteDecision d = route(cls, sql, route_state_, snapshot, policy, rng_);
    note_statement(route_state_, cls, d, policy);
    if (d.counts_as_write && policy.read_your_writes_window_ms > 0) add_written_tables(unpublished_writes_, cls, policy);
    last_multi_ = cls.multi_statement;
    int node = d.node >= 0 && d.node < int(nodes.size()) ? d.node : primary_;
    if (ctx_.primary_only.count(key_)) node = primary_;
    balanced = d.load_balanced && node != primary_;
    if (log_enabled(LogLevel::Debug1))
        PROXY_LOG(Debug1, "route: %s", describe(cls, d, snapshot).c_str());
    return node;
}

void Dispatcher::note_ready(char status) {
    note_transaction_status(route_state_, status, last_multi_);
    // Other sessions see a write once its transaction is over: for the window after that, their
    // reads of its tables go to the primary (read_your_writes_window).
    if (status != 'I' || unpublished_writes_.empty()) return;
    if (int window = policy().read_your_writes_window_ms; window > 0) {
        int64_t now = io::now_ms();
        for (const std::string& table : unpublished_writes_) ctx_.table.note_relation_written(table, now, window);
    }
    unpublished_writes_.clear();
}

// Session state the router does not keep: settings to replay on nodes connected later, and where
// SQL-level prepared statements and cursors live.
void Dispatcher::note_session_state(const Classification& cls, std::string_view sql, int node) {
    switch (cls.kind) {
    case Kind::Set: case Kind::Reset:
        if (!cls.set.is_local && !cls.set.transaction) {
            if (cls.set.reset_all) session_sets_.clear();
            session_sets_.emplace_back(sql);
        }
        break;
    case Kind::DiscardAll: session_sets_.clear(); sql_prepared_.clear(); cursors_.clear(); break;
    case Kind::Prepare: sql_prepared_[cls.name] = node; break;
    case Kind::DeallocateAll: sql_prepared_.clear(); break;
    case Kind::DeclareCursor: cursors_[cls.name] = node; break;
    default: break;
    }
}

// PGPOOL SET/RESET: the session's configuration is the child's plus the overlay, and the routing
// policy is rebuilt from it, so the change applies to this session's next statement.
void Dispatcher::apply_admin_overlay() {
    ctx_.session_config = ctx_.config;
    apply_session_overlay(admin_, ctx_.session_config);
    RoutingPolicy fresh;
    std::string error;
    if (routing_policy_for(ctx_.session_config, &fresh, &error)) {
        fresh.oracle = ctx_.policy.oracle;
        session_policy_ = std::move(fresh);
    }
}

// Statements sent to several nodes still update the router's session and transaction state.
void Dispatcher::note_fan_out(const Classification& cls) {
    RouteDecision d;
    d.target = Target::Session;
    d.node = primary_;
    note_statement(route_state_, cls, d, this->policy());
    last_multi_ = false;
}

shm::StatementClass statement_class(const Classification& cls, std::string_view sql) {
    using C = shm::StatementClass;
    if (cls.kind == Kind::Read) return C::Select;
    if (cls.kind == Kind::Utility) return C::Ddl;
    if (cls.kind != Kind::Write) return C::Other;
    size_t i = 0;
    while (i < sql.size() && (isspace(static_cast<unsigned char>(sql[i])) || sql[i] == '(')) ++i;
    auto starts = [&](std::string_view word) {
        if (sql.size() - i < word.size()) return false;
        for (size_t k = 0; k < word.size(); ++k)
            if (tolower(static_cast<unsigned char>(sql[i + k])) != word[k]) return false;
        return true;
    };
    return starts("insert") ? C::Insert : starts("update") ? C::Update : starts("delete") ? C::Delete : C::Other;
}

// The status a ReadyForQuery answered by splitpool carries: the primary's, or 'E' when any node failed.
char Dispatcher::client_status(const std::vector<NodeView>& nodes) const {
    if (failed_node(nodes) >= 0) return 'E';
    const NodeView& p = nodes[size_t(primary_)];
    return p.connected ? p.tx_status : 'I';
}

void Dispatcher::plan_query(std::string_view sql, const char* msg, size_t size, const std::vector<NodeView>& nodes,
                            Plan& plan) {
    if (is_admin_command(sql)) {  // SHOW POOL_*, PGPOOL SHOW/SET/RESET: answered here, never forwarded
        admin_.load_balance_node = route_state_.load_balance_node;
        size_t overlay = admin_.values.size();
        std::map<std::string, std::string, std::less<>> before = admin_.values;
        plan.client_reply = answer_admin_command(sql, ctx_.session_config, ctx_.table, admin_, false);
        if (admin_.values != before || admin_.values.size() != overlay) apply_admin_overlay();
        proto::put_ready_for_query(plan.client_reply, client_status(nodes));
        return;
    }
    const Classification& cls = ctx_.cache.lookup_or_classify(sql);
    std::string bytes(msg, size);
    if (cls.splitpool_setting) {
        if (cls.kind == Kind::Set || cls.kind == Kind::Reset)
            route_state_.force_primary = cls.kind == Kind::Set && cls.set.value == "primary";
        proto::Writer(plan.client_reply).begin('C').cstr(cls.kind == Kind::Show ? "SHOW" : "SET").finish();
        char status = nodes[size_t(primary_)].connected ? nodes[size_t(primary_)].tx_status : 'I';
        proto::put_ready_for_query(plan.client_reply, status);
        return;
    }
    bool session_wide = cls.kind == Kind::DiscardAll || cls.kind == Kind::DeallocateAll ||
                        ((cls.kind == Kind::Set || cls.kind == Kind::Reset) && !cls.set.is_local && !cls.set.transaction);
    bool tx_wide = cls.kind == Kind::Commit || cls.kind == Kind::Rollback || cls.kind == Kind::Savepoint ||
                   cls.kind == Kind::RollbackToSavepoint || cls.kind == Kind::ReleaseSavepoint ||
                   cls.kind == Kind::Set || cls.kind == Kind::Reset;
    if (session_wide || (tx_wide && in_transaction(nodes))) {
        fan_out(cls, bytes, nodes, !session_wide, plan);
        note_fan_out(cls);
        note_session_state(cls, sql, primary_);
        return;
    }
    int node;
    bool balanced = false;
    auto named = [&](const std::map<std::string, int>& m) {
        auto it = m.find(cls.name);
        return it != m.end() ? it->second : primary_;
    };
    if (cls.kind == Kind::Execute || cls.kind == Kind::Deallocate) node = named(sql_prepared_);
    else if (cls.kind == Kind::Fetch || (cls.kind == Kind::ClosePortal && !cls.name.empty())) node = named(cursors_);
    else {
        parser::cache_key(sql, &key_);
        node = target_for(cls, sql, nodes, balanced);
    }
    if (failed_node(nodes) >= 0) node = failed_node(nodes);
    add_send(node, Delivery::Forward, std::move(bytes), nodes, plan);
    plan.sends.back().counts_as_select = cls.kind == Kind::Read;
    plan.sends.back().stmt_class = statement_class(cls, sql);
    if (balanced && !plan.sends.empty()) {
        plan.sends.back().retryable = true;
        plan.sends.back().retry_key = key_;
    }
    note_session_state(cls, sql, node);
}

// An extended-protocol batch runs on one node: the primary when any statement in it needs the
// primary, else where its first statement lives. Statements parsed on another node are parsed
// again on the target first, so a transaction that became writing keeps its prepared statements.
// A batch whose statements are all splitpool's own commands is answered message by message, as a
// server would: ParseComplete, BindComplete, descriptions, rows, ReadyForQuery at Sync.
bool Dispatcher::answer_admin_batch(bool sync, const std::vector<NodeView>& nodes, Plan& plan) {
    if (pinned_node_ >= 0 || batch_msgs_.empty()) return false;
    std::set<std::string> statements, portals;  // admin names known so far, this batch included
    for (const auto& [name, sql] : admin_statements_) statements.insert(name);
    for (const auto& [name, sql] : admin_portals_) portals.insert(name);
    for (auto [type, off] : batch_msgs_) {
        const char* m = batch_.data() + off;
        size_t len = proto::read_u32(m + 1) + 1;
        proto::Reader r(m + 5, len - 5);
        if (type == 'P') {
            std::string name(r.cstr());
            if (!is_admin_command(r.cstr())) return false;
            statements.insert(name);
        } else if (type == 'B') {
            std::string portal(r.cstr());
            if (!statements.count(std::string(r.cstr()))) return false;
            portals.insert(portal);
        } else if (type == 'E' || type == 'D' || type == 'C') {
            char what = type == 'E' ? 'P' : char(r.byte());
            std::string name(r.cstr());
            if (!(what == 'S' ? statements.count(name) : portals.count(name))) return false;
        }
    }
    admin_.load_balance_node = route_state_.load_balance_node;
    std::string& out = plan.client_reply;
    for (auto [type, off] : batch_msgs_) {
        const char* m = batch_.data() + off;
        proto::Reader r(m + 5, proto::read_u32(m + 1) - 4);
        if (type == 'P') {
            std::string name(r.cstr());
            admin_statements_[name] = std::string(r.cstr());
            proto::Writer(out).begin('1').finish();
        } else if (type == 'B') {
            std::string portal(r.cstr());
            admin_portals_[portal] = admin_statements_[std::string(r.cstr())];
            proto::Writer(out).begin('2').finish();
        } else if (type == 'D') {
            char what = char(r.byte());
            std::string name(r.cstr());
            const std::string& sql = what == 'S' ? admin_statements_[name] : admin_portals_[name];
            if (what == 'S') out += admin_parameter_description();
            out += admin_row_description(sql, ctx_.session_config, ctx_.table, admin_);
        } else if (type == 'E') {
            auto before = admin_.values;
            out += admin_data_rows(admin_portals_[std::string(r.cstr())], ctx_.session_config, ctx_.table, admin_);
            if (admin_.values != before) apply_admin_overlay();
        } else if (type == 'C') {
            char what = char(r.byte());
            (what == 'S' ? admin_statements_ : admin_portals_).erase(std::string(r.cstr()));
            proto::Writer(out).begin('3').finish();
        }
    }
    if (sync) proto::put_ready_for_query(out, client_status(nodes));
    batch_.clear();
    batch_msgs_.clear();
    return true;
}

// Where a Bind of a named read runs: the router decides again, as for a new statement, and the
// statement is parsed again wherever it is missing. So a read parsed on a standby moves to the
// primary once its transaction has written or another session wrote its tables
// (read_your_writes_window), and a read parsed on the primary for such a reason returns to its
// balanced node when the reason has passed, instead of staying on the primary for the session.
int Dispatcher::bind_node(const Statement& st) {
    if (st.home < 0 || !st.read || ctx_.table.num_nodes() < 2) return st.home;
    proto::Reader r(st.parse_bytes.data() + 5, st.parse_bytes.size() - 5);
    r.cstr();  // the statement name
    std::string_view sql = r.cstr();
    const Classification& cls = ctx_.cache.lookup_or_classify(sql);
    RouteDecision d = route(cls, sql, route_state_, ctx_.table.snapshot(), policy(), rng_);
    if (!d.load_balanced || d.node < 0) return primary_;
    if (st.home != primary_) return st.home;
    parser::cache_key(sql, &key_);
    return ctx_.primary_only.count(key_) ? primary_ : d.node;
}

void Dispatcher::plan_batch(bool sync, const std::vector<NodeView>& nodes, Plan& plan) {
    if (answer_admin_batch(sync, nodes, plan)) return;
    int target = pinned_node_;
    bool balanced = false;
    bool fan = false;
    const Classification* fan_cls = nullptr;
    std::string sql_of_first;
    if (target < 0) {
        bool need_primary = false;
        int first = -1;
        for (auto [type, off] : batch_msgs_) {
            const char* m = batch_.data() + off;
            size_t len = proto::read_u32(m + 1) + 1;
            int node = -1;
            if (type == 'P') {
                proto::Reader r(m + 5, len - 5);
                std::string name(r.cstr());
                std::string_view q = r.cstr();
                const Classification& cls = ctx_.cache.lookup_or_classify(q);
                bool wide = cls.kind == Kind::Commit || cls.kind == Kind::Rollback || cls.kind == Kind::Set ||
                            cls.kind == Kind::Reset || cls.kind == Kind::DiscardAll || cls.kind == Kind::Savepoint ||
                            cls.kind == Kind::RollbackToSavepoint || cls.kind == Kind::ReleaseSavepoint;
                if (wide && batch_msgs_.size() <= 4 && (in_transaction(nodes) || cls.kind == Kind::Set ||
                                                         cls.kind == Kind::Reset || cls.kind == Kind::DiscardAll)) {
                    fan = true;
                    fan_cls = &cls;
                    sql_of_first = std::string(q);
                    break;
                }
                parser::cache_key(q, &key_);
                bool b = false;
                node = target_for(cls, q, nodes, b);
                balanced = balanced || b;
                Statement& st = statements_[name];
                st.parse_bytes.assign(m, len);
                st.home = node;
                st.nodes = 0;
                st.read = cls.kind == Kind::Read;
                note_session_state(cls, q, node);
                batch_reads_ = batch_reads_ || cls.kind == Kind::Read;
                batch_class_ = statement_class(cls, q);
                st.stmt_class = batch_class_;
            } else if (type == 'B' || type == 'D' || type == 'C') {
                Names n = names_of(type, m, len);
                bool portal = (type == 'D' || type == 'C') && n.what == 'P';
                std::string_view stmt = type == 'B' ? n.second : n.first;
                if (portal) {
                    auto it = portals_.find(std::string(n.first));
                    node = it != portals_.end() ? it->second : -1;
                } else {
                    auto it = statements_.find(std::string(stmt));
                    node = it == statements_.end() ? -1 : type == 'B' ? bind_node(it->second) : it->second.home;
                    if (type == 'B' && it != statements_.end()) {
                        batch_reads_ = batch_reads_ || it->second.read;
                        batch_class_ = it->second.stmt_class;
                    }
                    // Describe and Execute of this portal later in the batch follow this Bind, not
                    // whatever an earlier batch left under the same (often unnamed) portal.
                    if (type == 'B') portals_[std::string(n.first)] = node;
                }
            } else if (type == 'E') {
                auto it = portals_.find(std::string(names_of(type, m, len).first));
                node = it != portals_.end() ? it->second : -1;
            }
            if (node == primary_) need_primary = true;
            if (first < 0 && node >= 0) first = node;
        }
        int failed = failed_node(nodes);
        target = failed >= 0 ? failed : need_primary ? primary_ : first >= 0 ? first : primary_;
    }
    if (fan) {
        fan_out(*fan_cls, batch_, nodes, !(fan_cls->kind == Kind::Set || fan_cls->kind == Kind::Reset ||
                                           fan_cls->kind == Kind::DiscardAll), plan);
        note_fan_out(*fan_cls);
        note_session_state(*fan_cls, sql_of_first, primary_);
    } else {
        std::string reparse;
        for (auto [type, off] : batch_msgs_) {
            const char* m = batch_.data() + off;
            size_t len = proto::read_u32(m + 1) + 1;
            if (type == 'P') {
                proto::Reader r(m + 5, len - 5);
                statements_[std::string(r.cstr())].nodes |= target < 64 ? (uint64_t(1) << target) : 0;
            } else if (type == 'B') {
                Names n = names_of(type, m, len);
                portals_[std::string(n.first)] = target;
                auto it = statements_.find(std::string(n.second));
                if (it != statements_.end() && target < 64 && !(it->second.nodes & (uint64_t(1) << target))) {
                    reparse += it->second.parse_bytes;
                    it->second.nodes |= uint64_t(1) << target;
                }
            } else if (type == 'C') {
                Names n = names_of(type, m, len);
                if (n.what == 'S') statements_.erase(std::string(n.first));
                else portals_.erase(std::string(n.first));
            }
        }
        if (!reparse.empty()) {
            reparse += std::string("S\0\0\0\4", 5);
            add_send(target, Delivery::Swallow, std::move(reparse), nodes, plan);
        }
        add_send(target, Delivery::Forward, batch_, nodes, plan, sync ? 1 : 0);
        plan.sends.back().counts_as_select = batch_reads_;
        plan.sends.back().stmt_class = batch_class_;
        if (balanced && sync && pinned_node_ < 0 && reparse.empty()) {
            plan.sends.back().retryable = true;
            plan.sends.back().retry_key = key_;
        }
    }
    pinned_node_ = sync ? -1 : target;
    batch_reads_ = false;
    batch_class_ = shm::StatementClass::Other;
    batch_.clear();
    batch_msgs_.clear();
}

void Dispatcher::on_message(char type, const char* msg, size_t size, const std::vector<NodeView>& nodes,
                            Plan& plan) {
    switch (type) {
    case 'Q': {
        proto::Reader r(msg + 5, size - 5);
        plan_query(r.cstr(), msg, size, nodes, plan);
        return;
    }
    case 'F':  // FunctionCall: the function may write
        add_send(failed_node(nodes) >= 0 ? failed_node(nodes) : primary_, Delivery::Forward, std::string(msg, size),
                 nodes, plan);
        return;
    case 'P': case 'B': case 'D': case 'E': case 'C':
        batch_msgs_.emplace_back(type, batch_.size());
        batch_.append(msg, size);
        return;
    case 'S': case 'H':
        batch_.append(msg, size);
        plan_batch(type == 'S', nodes, plan);
        return;
    default:  // CopyData/Done/Fail and anything unknown go where the relay says (COPY node, primary)
        return;
    }
}

}  // namespace splitpool::daemon
