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
using proto::query_message;

namespace {

// ROLLBACK (TO): what a failed transaction accepts and leaves healthy behind (COMMIT, which also
// ends it, must stay on the failed node: elsewhere it would commit; see rolls_back_commit).
bool ends_failure(const Classification& cls) {
    return cls.kind == Kind::Rollback || cls.kind == Kind::RollbackToSavepoint;
}

// Whether the statements after this run share its implicit transaction with a completed statement
// (PostgreSQL's XACT_FLAGS_PIPELINING): a transaction's end starts a fresh one, transaction control
// statements do not count.
bool continues_pipeline(const Classification& cls, bool pipelined) {
    switch (cls.kind) {
    case Kind::Commit: case Kind::Rollback: case Kind::TwoPhase: return false;
    case Kind::Begin: case Kind::Savepoint: case Kind::RollbackToSavepoint: case Kind::ReleaseSavepoint: return pipelined;
    default: return true;
    }
}

// A decision carried out on one node.
RouteDecision held_to(RouteDecision d, int node) {
    d.nodes.reset();
    d.nodes.set(size_t(node));
    d.node = node;
    d.prepared = nullptr;
    return d;
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

constexpr std::string_view kSync{"S\0\0\0\4", 5};
constexpr std::string_view kFlush{"H\0\0\0\4", 5};

std::string_view parse_text(std::string_view parse) {
    proto::Reader r(parse.data() + 5, parse.size() - 5);
    r.cstr();  // the statement name
    return r.cstr();
}

}  // namespace

int failed_node(const std::vector<NodeView>& nodes) {
    for (size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i].connected && nodes[i].tx_status == 'E') return int(i);
    return -1;
}

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
    p->prefer_lower_delay_standby = c.prefer_lower_delay_standby;
    bool ok = parse_disable_lb_on_write(c.disable_load_balance_on_write, &p->disable_load_balance_on_write) &&
              parse_check_temp_table(c.check_temp_table, &p->check_temp_table) &&
              parse_placement(c.load_balance_placement, &p->placement);
    if (!ok) *error = "invalid disable_load_balance_on_write, check_temp_table or load_balance_placement";
    ok = ok && set_function_lists(p, join(c.write_function_list, ","), join(c.read_only_function_list, ","), error);
    ok = ok && set_primary_routing_patterns(p, join(c.primary_routing_query_pattern_list, ";"), error);
    ok = ok && parse_redirect_list(c.database_redirect_preference_list, &p->redirects.database, error);
    ok = ok && parse_redirect_list(c.app_name_redirect_preference_list, &p->redirects.app_name, error);
    ok = ok && parse_redirect_list(c.user_redirect_preference_list, &p->redirects.user, error);
    return ok;
}

Dispatcher::Dispatcher(DispatchContext ctx, const std::string& database, const std::string& user,
                       const std::string& application_name)
    : ctx_(std::move(ctx)) {
    shm::NodeSnapshot snapshot = this->snapshot();
    ctx_.table.count_sessions(snapshot);  // for even placement
    primary_ = snapshot.primary >= 0 && snapshot.primary < int(ctx_.config.backends.size()) ? snapshot.primary : 0;
    model_.database = database;
    model_.user = user;
    model_.application_name = application_name;
    start_session(model_, snapshot, policy(), ctx_.rng);
    ctx_.catalog.new_session();
}

// A Query after a Flush-ended batch (asyncpg prepares with Parse/Describe/Flush) first closes that
// batch with a Sync on its node, as PostgreSQL's own Query would end the implicit transaction; the
// relay holds the Query until that ReadyForQuery (which the client never sees) has arrived.
bool Dispatcher::close_pinned_batch(Plan& plan) {
    if (pinned_node_ < 0) return false;
    Send s{pinned_node_, Delivery::Swallow, std::string(kSync)};
    plan.sends.push_back(std::move(s));
    pinned_node_ = -1;
    return true;
}

bool Dispatcher::end_batch_before_query(const std::vector<NodeView>& nodes, Plan& plan) {
    if (has_open_batch()) {
        batch_.append(kFlush);
        plan_batch(false, nodes, plan);  // pins it to its node, which close_pinned_batch then ends
    }
    return close_pinned_batch(plan);  // its ReadyForQuery (swallowed) is what the held Query waits for
}

bool Dispatcher::needs_idle(char type) const {
    switch (type) {
    case 'Q': case 'F': return true;
    case 'S': case 'H': return pinned_node_ < 0;
    default: return false;
    }
}

// The nodes as this session may use them: the shared status, less the standbys it lost and those
// another session lost a moment ago.
const shm::NodeSnapshot& Dispatcher::snapshot() const {
    shm::NodeSnapshot& s = snapshot_;
    ctx_.table.snapshot_into(s);
    int64_t now = io::now_ms();
    for (int i = 0; i < s.num_nodes && i < shm::kMaxNodes; ++i) {
        bool gone = lost_.test(size_t(i)) || ctx_.table.node(i).unreachable_until_ms.load(std::memory_order_relaxed) > now;
        if (gone && i != s.primary) s.nodes[i].status = shm::NodeStatus::Down;
    }
    return s;
}

void Dispatcher::node_lost(int node) {
    if (node < 0 || node >= shm::kMaxNodes || node == primary_) return;
    lost_.set(size_t(node));
    forget_node(model_, node);
    int64_t backoff_ms = std::max(1000, ctx_.config.health_check_retry_delay * 1000);
    ctx_.table.node(node).unreachable_until_ms.store(io::now_ms() + backoff_ms, std::memory_order_relaxed);
    for (auto& [name, st] : model_.statements) {
        st.nodes.reset(size_t(node));
        if (st.home == node) st.home = -1;
    }
    for (auto it = model_.portals.begin(); it != model_.portals.end();)
        it = it->second == node ? model_.portals.erase(it) : std::next(it);
    if (pinned_node_ == node) pinned_node_ = -1;
    // The router picks a new load-balance node for the session at its next read.
}

void Dispatcher::begin_plan(const std::vector<NodeView>& nodes) {
    start_.in_transaction = model_.in_transaction;  // as the client's ReadyForQuery messages said
    start_.at = {model_.in_transaction, model_.transaction_log.size()};
    start_.prepared.reset();
    start_.idle.reset();
    for (size_t i = 0; i < nodes.size() && i < size_t(shm::kMaxNodes); ++i)
        start_.idle.set(i, !nodes[i].connected || nodes[i].tx_status == 'I');
}

// Before a node's first bytes in a plan: the session's settings it has not seen (all of them for a
// pooled or newly connected node), then, inside a transaction it has not joined, the
// transaction's BEGIN, savepoints and settings, so it behaves like every other node of the session.
void Dispatcher::add_send(int node, Delivery delivery, std::string bytes, Plan& plan, int ready_count) {
    if (node >= 0 && node < shm::kMaxNodes && !start_.prepared.test(size_t(node))) {
        start_.prepared.set(size_t(node));
        int ready = 0;
        std::string prefix;
        if (!start_.idle.test(size_t(node)) && !start_.at.in_transaction) {
            // A node still in a transaction the session has ended (never expected): end it first,
            // so nothing runs in a stale snapshot or is lost in a transaction that never commits.
            PROXY_LOG(Warning, "database node %d was still in a transaction: rolling it back", node);
            prefix = query_message("ROLLBACK");
            ready = 1;
        }
        int replayed = 0;
        prefix += replay_bytes(model_, node, &replayed);
        ready += replayed;
        bool joined = false;
        for (const Send& s : plan.sends) joined = joined || s.node == node;
        if (start_.at.in_transaction && !joined && start_.idle.test(size_t(node))) {
            int join = 0;
            prefix += join_transaction_bytes(model_, start_.at.transaction_log, &join);
            ready += join;
            // Whatever the send is for, the node is in the transaction now: its later settings,
            // savepoints and its end reach it.
            if (model_.in_transaction) model_.transaction_nodes.set(size_t(node));
        }
        if (ready > 0) {
            Send s{node, Delivery::Swallow, std::move(prefix)};
            s.ready_count = ready;
            plan.sends.push_back(std::move(s));
        }
    }
    if (node >= 0 && node < shm::kMaxNodes) model_.session_nodes.set(size_t(node));
    Send s{node, delivery, std::move(bytes)};
    s.ready_count = ready_count;
    plan.sends.push_back(std::move(s));
}

RouteDecision Dispatcher::decide(const Classification& cls, std::string_view sql, const PreparedStatement* prepared) {
    const RoutingPolicy& policy = this->policy();
    if (ctx_.side_query && (!cls.functions.empty() || !cls.relations.empty()) && cls.load_balanceable) {
        bool functions = policy.write_functions.empty() && policy.read_only_functions.empty();
        bool relations = policy.check_temp_table == CheckTempTable::Catalog || policy.check_unlogged_table;
        ctx_.catalog.prefetch(cls, functions, relations, ctx_.side_query);
    }
    const shm::NodeSnapshot& snapshot = this->snapshot();
    RouteDecision d = prepared ? route_prepared(*prepared, model_, snapshot, policy, ctx_.rng)
                               : route(cls, sql, model_, snapshot, policy, ctx_.rng);
    if (log_enabled(LogLevel::Debug1)) PROXY_LOG(Debug1, "route: %s", describe(cls, d, snapshot).c_str());
    return d;
}

void Dispatcher::answer_error(std::string_view sqlstate, const std::string& message, const std::vector<NodeView>& nodes,
                              Plan& plan) {
    proto::put_error(plan.client_reply, "ERROR", sqlstate, message);
    proto::put_ready_for_query(plan.client_reply, client_status(nodes));
}

// Carries out a decision for one simple-protocol statement: the node that answers the client is
// the decision's node, every other node of the decision gets the statement and is not heard.
void Dispatcher::carry_out(const RouteDecision& d, const std::string& bytes, const std::vector<NodeView>& nodes,
                           Plan& plan) {
    bool rollback_others = d.ends_transaction && failed_node(nodes) >= 0;
    int forward = d.node >= 0 && d.nodes.test(size_t(d.node)) ? d.node : -1;
    for (int node = 0; node < int(nodes.size()) && node < shm::kMaxNodes; ++node) {
        if (!d.nodes.test(size_t(node))) continue;
        if (forward < 0) forward = node;
        if (d.prepared && !d.prepared->nodes.test(size_t(node))) {
            std::string create = d.prepared->create;
            if (!d.prepared->sql_level) create += kSync;
            add_send(node, Delivery::Swallow, std::move(create), plan);
        }
        bool quiet_rollback = rollback_others && node != forward;
        add_send(node, node == forward ? Delivery::Forward : Delivery::Swallow,
                 quiet_rollback ? query_message("ROLLBACK") : bytes, plan);
    }
}

void Dispatcher::note_ready(char status) {
    note_transaction_status(model_, status, last_multi_);
    // Other sessions see a write once its transaction is over: for the window after that, their
    // reads of its tables go to the primary (read_your_writes_window).
    if (status != 'I' || unpublished_writes_.empty()) return;
    if (int window = policy().read_your_writes_window_ms; window > 0) {
        int64_t now = io::now_ms();
        for (const std::string& table : unpublished_writes_) ctx_.table.note_relation_written(table, now, window);
    }
    unpublished_writes_.clear();
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
        admin_.load_balance_node = model_.load_balance_node;
        auto before = admin_.values;
        plan.client_reply = answer_admin_command(sql, ctx_.session_config, ctx_.table, admin_, false);
        if (admin_.values != before) apply_admin_overlay();
        proto::put_ready_for_query(plan.client_reply, client_status(nodes));
        return;
    }
    std::shared_ptr<const Classification> cls = ctx_.cache.lookup_shared(sql);
    RouteDecision d = on_failed_node(decide(*cls, sql, nullptr), *cls, nodes);
    if (d.target == Target::Local) {  // SET/SHOW splitpool.*: our own setting
        if (cls->kind != Kind::Show) model_.force_primary = cls->kind == Kind::Set && cls->set.value == "primary";
        proto::Writer(plan.client_reply).begin('C').cstr(cls->kind == Kind::Show ? "SHOW" : "SET").finish();
        proto::put_ready_for_query(plan.client_reply, client_status(nodes));
        return;
    }
    if (d.target == Target::None) {
        answer_error(proto::sqlstate::kConnectionFailure, "no usable database node for this statement", nodes, plan);
        return;
    }
    begin_plan(nodes);
    std::string bytes(msg, size);
    carry_out(d, bytes, nodes, plan);
    for (Send& s : plan.sends) {
        if (s.delivery != Delivery::Forward) continue;
        s.counts_as_select = cls->kind == Kind::Read;
        s.stmt_class = statement_class(*cls, sql);
        // A balanced read outside a transaction may be redone on the primary if a standby refuses
        // it; inside one, the refusal has already aborted the transaction on that node.
        s.retryable = d.load_balanced && d.node != primary_ && !start_.in_transaction;
        if (s.retryable) s.retry_statements.push_back(cls);
        if (s.retryable && d.prepared && !d.prepared->nodes.test(size_t(primary_))) s.retry_prepare = d.prepared->create;
    }
    note_statement(model_, *cls, sql, d, policy(), is_session_setting(*cls) ? std::string_view(bytes) : std::string_view());
    if (cls->multi_statement) note_inner_statements(model_, *cls, d, policy());
    if (d.counts_as_write && policy().read_your_writes_window_ms > 0) add_written_tables(unpublished_writes_, *cls, policy());
    last_multi_ = cls->multi_statement;
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
    admin_.load_balance_node = model_.load_balance_node;
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

// An extended-protocol batch (up to Sync, or Flush) runs on one node, its main node: the failed
// node of an aborted transaction, the node a Flush-ended batch continues on, the primary when any
// statement that runs in it needs the primary, else the node its first statement is balanced to.
// Every statement that runs (each Bind) is routed as if its text were sent again, and the session
// model changes then, never at Parse. Statements the decision fans out (SET, set_config, COMMIT,
// savepoints, LOCK ... ACCESS SHARE) also run on the decision's other nodes, whose replies are not heard.
void Dispatcher::plan_batch(bool sync, const std::vector<NodeView>& nodes, Plan& plan) {
    if (answer_admin_batch(sync, nodes, plan)) return;
    begin_plan(nodes);
    collect_runs();
    int main = choose_main(nodes);
    if (sync && answer_aborted_batch(main, nodes, plan)) return;
    route_runs(nodes, main);
    send_batch(sync, main, nodes, plan);
    finish_batch(sync, main);
}

// Pass 1: Parses create statements (they run nowhere yet); each Bind becomes a run with a first
// opinion of where it would go, from the model as it was before the batch.
void Dispatcher::collect_runs() {
    existing_portal_node_ = -1;
    executes_.clear();
    created_.clear();
    forgetting_execute_ = -1;
    before_forgetting_.clear();
    for (size_t i = 0; i < batch_msgs_.size(); ++i) {
        auto [type, off] = batch_msgs_[i];
        const char* m = batch_.data() + off;
        size_t len = proto::read_u32(m + 1) + 1;
        if (type == 'P') {
            proto::Reader r(m + 5, len - 5);
            std::string name(r.cstr());
            std::string_view sql = r.cstr();
            for (Run& run : runs_)  // the unnamed statement parsed again: earlier Binds keep their text
                if (run.name == name && run.parse_msg < 0 && run.owned_sql.empty() && run.statement) {
                    run.owned_sql = std::string(run.sql);
                    run.sql = run.owned_sql;
                    run.statement = nullptr;  // its entry now holds the new statement
                }
            if (!name.empty() && !model_.statements.count(name)) created_.push_back({i, -1, name});
            note_parse(model_, name, sql, std::string(m, len), ctx_.cache.lookup_shared(sql));
            parsed_.emplace_back(std::move(name), i);
        } else if (type == 'B') {
            Names n = names_of(type, m, len);
            Run run;
            run.bind = i;
            run.portal = n.first;
            run.name = std::string(n.second);
            run.parse_msg = last_parse(run.name);
            auto it = model_.statements.find(run.name);
            if (it != model_.statements.end()) {
                run.statement = &it->second;
                run.cls = it->second.cls;
                run.sql = run.parse_msg >= 0 ? parse_text(message_at(size_t(run.parse_msg))) : std::string_view(it->second.sql);
                run.decision = decide(*run.cls, run.sql, run.parse_msg >= 0 ? nullptr : run.statement);
            }
            runs_.push_back(std::move(run));
        } else if (type == 'E' || type == 'D') {
            Names n = names_of(type, m, len);
            bool portal = type == 'E' || n.what == 'P';
            Run* bound = portal ? run_bound_to(n.first) : nullptr;
            if (type == 'E') {
                if (bound && bound->first_execute < 0) bound->first_execute = int(executes_.size());
                executes_.push_back(i);
            }
            if (!portal || bound) continue;
            auto it = model_.portals.find(std::string(n.first));
            if (it != model_.portals.end()) existing_portal_node_ = it->second;
        }
    }
}

const Dispatcher::Run* Dispatcher::opening_run() const {
    for (const Run& r : runs_)
        if (r.statement) return &r;
    return nullptr;
}

int Dispatcher::choose_main(const std::vector<NodeView>& nodes) {
    // In a failed transaction the failed node answers, unless the batch begins with ROLLBACK (TO)
    // (psycopg's pipeline: ROLLBACK, then the next statements), which every node of the
    // transaction gets. A COMMIT stays on the failed node, unless it can be sent elsewhere as
    // ROLLBACK (rolls_back_commit).
    const Run* opening = opening_run();
    bool recovers = opening && (ends_failure(*opening->cls) || rolls_back_commit(*opening));
    if (int failed = failed_node(nodes); failed >= 0 && !recovers) return failed;
    if (pinned_node_ >= 0) return pinned_node_;
    if (existing_portal_node_ >= 0) return existing_portal_node_;
    int first = -1;
    for (const Run& r : runs_) {
        if (!r.statement || r.decision.node < 0 || r.decision.movable) continue;
        if (r.decision.node == primary_) return primary_;
        if (first < 0) first = r.decision.node;
    }
    if (first >= 0) return first;
    if (runs_.empty() && !parsed_.empty()) {  // Parse/Describe only: parse where it would run now
        const PreparedStatement& st = model_.statements[parsed_.front().first];
        RouteDecision d = decide(*st.cls, st.sql, nullptr);
        if (d.node >= 0 && !d.movable) return d.node;
    }
    return primary_;
}

// Pass 2: each run routed again in order, as the statements before it in the batch left the
// model, held to the main node (a read in a batch that writes runs on the primary), and noted.
void Dispatcher::route_runs(const std::vector<NodeView>& nodes, int main) {
    bool recovered = false, pipelined = false, refused = false;
    const Run* opening = opening_run();
    for (Run& r : runs_) {
        // PostgreSQL skips the rest of the batch after a run it refuses for certain: nothing of it is
        // noted, and it goes to the main node only (elsewhere it would run).
        refused = refused || !r.statement || refused_in_batch(*r.cls, pipelined);
        if (refused) {
            if (r.statement) r.decision = held_to(r.decision, main);
            continue;
        }
        pipelined = continues_pipeline(*r.cls, pipelined);
        // A statement parsed in this batch exists nowhere else: it is routed as its text alone.
        // A batch of one run (pgbench -M prepared: Bind, Execute, Sync) finds the model as pass 1
        // did, so pass 1's decision stands; routing it again would cost the hot path a second time.
        RouteDecision d = runs_.size() == 1 ? r.decision : decide(*r.cls, r.sql, r.parse_msg >= 0 ? nullptr : r.statement);
        if (!recovered) d = on_failed_node(d, *r.cls, nodes);
        // After a ROLLBACK (TO) the rest of the batch runs as in a healthy session, as after an
        // opening COMMIT (on the failed node, or as ROLLBACK where rolls_back_commit allows).
        recovered = recovered || ends_failure(*r.cls) || (&r == opening && r.cls->kind == Kind::Commit);
        if (d.prepared && d.prepared != r.statement) {  // as it is before this run changes the model
            r.prepared_create = d.prepared->create + (d.prepared->sql_level ? "" : std::string(kSync));
            r.prepared_on = d.prepared->nodes;
        }
        bool single = d.target == Target::Primary || d.target == Target::Node || d.target == Target::None;
        if (single) d.nodes.reset();
        d.load_balanced = d.load_balanced && main != primary_;
        d.node = main;
        d.nodes.set(size_t(main));
        if (single) d.target = main == primary_ ? Target::Primary : Target::Node;
        r.at = {model_.in_transaction, model_.transaction_log.size()};  // where the run finds the session
        if (forgets_statements(*r.cls))  // the runs still to be sent keep their statements' facts
            for (Run& other : runs_)
                if (other.statement && !other.own) {
                    other.own = std::make_shared<PreparedStatement>(*other.statement);
                    other.statement = other.own.get();
                }
        std::string replay;
        bool everywhere = d.target == Target::Session || d.target == Target::Transaction;
        if (everywhere && is_session_setting(*r.cls)) replay = replay_of_bind(r);
        keep_undo(r, d, main);
        if (r.statement->sql_level) {  // a SQL PREPARE bound over the protocol: note what it runs
            Classification inner = *r.cls;
            inner.kind = inner.inner;
            note_statement(model_, inner, r.sql, d, policy(), replay);
        } else {
            note_statement(model_, *r.cls, r.sql, d, policy(), replay);
        }
        if (d.counts_as_write && policy().read_your_writes_window_ms > 0)
            add_written_tables(unpublished_writes_, *r.cls, policy());
        r.decision = d;
    }
    last_multi_ = false;
}

// Statements that runs of this batch on `node` (every run: `all_runs`) bind but the node lacks and
// the batch does not parse: created there first, each once. `count` gets their ReadyForQuery count.
std::string Dispatcher::creates_for(int node, bool all_runs, int* count) const {
    std::string out;
    *count = 0;
    for (size_t i = 0; i < runs_.size(); ++i) {
        const Run& r = runs_[i];
        if (!r.statement || r.parse_msg >= 0 || !(all_runs || r.decision.nodes.test(size_t(node)))) continue;
        if (r.statement->nodes.test(size_t(node))) continue;
        bool again = false;
        for (size_t k = 0; k < i; ++k) again = again || runs_[k].statement == r.statement;
        if (again) continue;
        out += r.statement->create;
        if (!r.statement->sql_level) out += kSync;
        ++*count;
    }
    for (const Run& r : runs_) {  // EXECUTE/DEALLOCATE of a SQL PREPARE: the PREPARE where it is missing
        if (r.prepared_create.empty() || !(all_runs || r.decision.nodes.test(size_t(node)))) continue;
        if (r.prepared_on.test(size_t(node)) || out.find(r.prepared_create) != std::string::npos) continue;
        out += r.prepared_create;
        ++*count;
    }
    return out;
}

// What a node other than the main one gets of a run: its Parse when the batch has it, its Bind
// and the Executes of its portal.
std::string Dispatcher::run_messages(const Run& run) const {
    std::string out;
    if (run.parse_msg >= 0) out += message_at(size_t(run.parse_msg));
    out += message_at(run.bind);
    for (size_t i = run.bind + 1; i < batch_msgs_.size(); ++i) {
        char type = batch_msgs_[i].first;
        if (type != 'E' && type != 'B') continue;
        Names n = names_of(type, batch_.data() + batch_msgs_[i].second, message_at(i).size());
        if (n.first != run.portal) continue;
        if (type == 'B') break;  // the portal is bound again
        out += message_at(i);
    }
    return out;
}

// The main node gets the whole batch (after the statements it lacks, except inside a Flush-ended
// batch, whose replies could not be told apart: such a Bind gets PostgreSQL's own error).
void Dispatcher::send_batch(bool sync, int main, const std::vector<NodeView>& nodes, Plan& plan) {
    NodeSet fan;
    bool reads = false, balanced = !runs_.empty();
    for (const Run& r : runs_) {
        balanced = balanced && r.decision.load_balanced;
        if (!r.statement) continue;
        fan |= r.decision.nodes;
        reads = reads || r.cls->kind == Kind::Read;
    }
    fan.reset(size_t(main));
    int creates = 0;
    std::string create = pinned_node_ >= 0 ? std::string() : creates_for(main, true, &creates);
    std::string bytes = main_batch(main, nodes);
    // In a failed transaction the statements the batch lacks cannot be created before its opening
    // ROLLBACK or COMMIT ends the failure: that run goes first, closed by a Sync of splitpool's own.
    int executes_before = 0;  // in the part of the batch already sent
    if (size_t split = creates > 0 && sync ? recovery_split(main, nodes) : 0; split > 0) {
        add_send(main, Delivery::Forward, bytes.substr(0, split) + std::string(kSync), plan);
        plan.sends.back().swallow_ready = true;
        plan.sends.back().first_execute = 0;
        for (size_t i : executes_) executes_before += batch_msgs_[i].second < split;
        bytes.erase(0, split);
    }
    if (creates > 0) add_send(main, Delivery::Swallow, std::move(create), plan, creates);
    add_send(main, Delivery::Forward, std::move(bytes), plan, sync ? 1 : 0);
    plan.sends.back().first_execute = executes_before;
    Send& forward = plan.sends.back();
    forward.counts_as_select = reads;
    if (!runs_.empty() && runs_.back().statement)
        forward.stmt_class = statement_class(*runs_.back().cls, runs_.back().sql);
    // A balanced read outside a transaction may be redone on the primary (see plan_query).
    forward.retryable = sync && pinned_node_ < 0 && balanced && main != primary_ && !start_.in_transaction && fan.none();
    if (forward.retryable) {
        int n = 0;
        forward.retry_prepare = creates_for(primary_, true, &n);
        for (const Run& r : runs_) forward.retry_statements.push_back(r.cls);
    }
    for (int node = 0; node < int(nodes.size()) && node < shm::kMaxNodes; ++node)
        if (fan.test(size_t(node))) send_fan_out(node, failed_node(nodes) >= 0, plan);
    close_elsewhere(main, plan);
}

// A node other than the main one: the runs whose decision includes it, replies not heard. In a
// failed transaction, a COMMIT's other nodes are rolled back instead.
// Its join, if any, is the transaction as its first run here found it (a COMMIT earlier in the
// batch may have ended the transaction the batch began in, a BEGIN may have started one).
void Dispatcher::send_fan_out(int node, bool failed, Plan& plan) {
    std::string out;
    bool rollback = false;
    const Run* first = nullptr;
    for (const Run& r : runs_) {
        if (!r.statement || !r.decision.nodes.test(size_t(node))) continue;
        if (!first) first = &r;
        rollback = rollback || (failed && r.decision.ends_transaction);
        out += run_messages(r);
    }
    TxPoint batch_start = start_.at;
    if (first) start_.at = first->at;
    int creates = 0;
    std::string create = rollback ? std::string() : creates_for(node, false, &creates);
    if (creates > 0) add_send(node, Delivery::Swallow, std::move(create), plan, creates);
    add_send(node, Delivery::Swallow, rollback ? query_message("ROLLBACK") : out + std::string(kSync), plan);
    start_.at = batch_start;
}

// A Close of a statement reaches every node where it exists, so the name can be parsed again.
void Dispatcher::close_elsewhere(int main, Plan& plan) {
    for (auto [type, off] : batch_msgs_) {
        if (type != 'C') continue;
        Names n = names_of(type, batch_.data() + off, proto::read_u32(batch_.data() + off + 1) + 1);
        if (n.what != 'S') continue;
        auto it = model_.statements.find(std::string(n.first));
        if (it == model_.statements.end()) continue;
        for (int node = 0; node < shm::kMaxNodes; ++node) {
            if (node == main || !it->second.nodes.test(size_t(node))) continue;
            std::string close(batch_.data() + off, proto::read_u32(batch_.data() + off + 1) + 1);
            add_send(node, Delivery::Swallow, close + std::string(kSync), plan);
        }
    }
}

void Dispatcher::finish_batch(bool sync, int main) {
    for (const auto& [name, index] : parsed_) {
        auto it = model_.statements.find(name);
        if (it == model_.statements.end()) continue;
        it->second.nodes.set(size_t(main));
        if (it->second.home < 0) it->second.home = main;
    }
    for (const Run& r : runs_) {
        if (!r.statement) continue;
        auto it = model_.statements.find(r.name);
        if (it != model_.statements.end() && &it->second == r.statement) it->second.nodes |= r.decision.nodes;
        model_.portals[std::string(r.portal)] = main;
    }
    for (auto [type, off] : batch_msgs_) {
        if (type != 'C') continue;
        Names n = names_of(type, batch_.data() + off, proto::read_u32(batch_.data() + off + 1) + 1);
        note_close(model_, n.what, std::string(n.first));
    }
    pinned_node_ = sync ? -1 : main;
    if (commit_sent_as_rollback_) {  // the main node's unnamed statement is not that COMMIT
        auto it = model_.statements.find("");
        if (it != model_.statements.end() && it->second.cls->kind == Kind::Commit) it->second.nodes.reset(size_t(main));
        commit_sent_as_rollback_ = false;
    }
    batch_.clear();
    batch_msgs_.clear();
    runs_.clear();
    parsed_.clear();
}

int Dispatcher::last_parse(const std::string& name) const {
    for (auto it = parsed_.rbegin(); it != parsed_.rend(); ++it)
        if (it->first == name) return int(it->second);
    return -1;
}

Dispatcher::Run* Dispatcher::run_bound_to(std::string_view portal) {
    for (size_t k = runs_.size(); k-- > 0;)
        if (runs_[k].portal == portal) return &runs_[k];
    return nullptr;
}

std::string_view Dispatcher::message_at(size_t index) const {
    const char* m = batch_.data() + batch_msgs_[index].second;
    return {m, size_t(proto::read_u32(m + 1)) + 1};
}

// A setting made by a Bind, to replay on nodes that join later: the statement unnamed, bound to
// the same parameters, executed and synced.
std::string Dispatcher::replay_of_bind(const Run& run) const {
    // The run's own Parse when the batch has one: the model's entry may hold a later Parse of the name.
    std::string_view parse = run.parse_msg >= 0 ? message_at(size_t(run.parse_msg)) : std::string_view(run.statement->create);
    if (run.statement->sql_level || parse.size() < 6) return {};
    auto rename = [](char type, std::string_view msg, int names) {
        proto::Reader r(msg.data() + 5, msg.size() - 5);
        for (int i = 0; i < names; ++i) r.cstr();
        size_t rest = msg.size() - r.remaining();
        std::string out;
        proto::Writer w(out);
        w.begin(type);
        for (int i = 0; i < names; ++i) w.cstr("");
        w.bytes(msg.substr(rest)).finish();
        return out;
    };
    std::string out = rename('P', parse, 1) + rename('B', message_at(run.bind), 2);
    proto::Writer(out).begin('E').cstr("").i32(0).finish();
    return out + std::string(kSync);
}

void Dispatcher::on_message(char type, const char* msg, size_t size, const std::vector<NodeView>& nodes,
                            Plan& plan) {
    switch (type) {
    case 'Q': {
        proto::Reader r(msg + 5, size - 5);
        plan_query(r.cstr(), msg, size, nodes, plan);
        return;
    }
    case 'F': {  // FunctionCall: the function may write
        begin_plan(nodes);
        int failed = failed_node(nodes);
        add_send(failed >= 0 ? failed : primary_, Delivery::Forward, std::string(msg, size), plan);
        model_.session_nodes.set(size_t(failed >= 0 ? failed : primary_));
        return;
    }
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
