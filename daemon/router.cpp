// Routing rules (pgpool's pool_where_to_send, section 1 of the spec) as a pure function, plus state updates.
#include "daemon/router.hpp"

#include <algorithm>
#include <array>

namespace splitpool::daemon {

using parser::Classification;
using parser::Kind;
using parser::Scope;

namespace {

NodeSet only(int node) {
    NodeSet s;
    if (node >= 0 && node < shm::kMaxNodes) s.set(static_cast<size_t>(node));
    return s;
}

RouteDecision to_primary(const shm::NodeSnapshot& nodes, std::string_view reason) {
    RouteDecision d;
    if (!node_usable(nodes, nodes.primary)) {
        d.reason = "no usable primary";
        return d;
    }
    d.target = Target::Primary;
    d.node = nodes.primary;
    d.nodes = only(nodes.primary);
    d.reason = reason;
    return d;
}

// `with_primary`: the primary always takes part (session settings, transaction control).
RouteDecision to_set(Target target, NodeSet set, const shm::NodeSnapshot& nodes, std::string_view reason,
                     bool with_primary = true) {
    RouteDecision d;
    set &= usable_nodes(nodes);
    if (with_primary && node_usable(nodes, nodes.primary)) set.set(static_cast<size_t>(nodes.primary));
    if (set.none()) {
        d.reason = "no usable node";
        return d;
    }
    d.target = target;
    d.nodes = set;
    // The node that answers the client: the primary when it takes part, else the first that does.
    d.node = node_usable(nodes, nodes.primary) && set.test(static_cast<size_t>(nodes.primary)) ? nodes.primary : -1;
    for (int i = 0; d.node < 0 && i < shm::kMaxNodes; ++i)
        if (set.test(static_cast<size_t>(i))) d.node = i;
    d.reason = reason;
    return d;
}

std::string bare_name(std::string_view qualified) {
    size_t dot = qualified.rfind('.');
    return std::string(dot == std::string_view::npos ? qualified : qualified.substr(dot + 1));
}

bool any_match(const std::vector<std::regex>& list, std::string_view s) {
    for (const std::regex& r : list)
        if (std::regex_match(s.begin(), s.end(), r)) return true;
    return false;
}

// Built-ins that a PostgreSQL 15 hot standby refuses (each tried on a real standby: 25006, 55000
// "recovery is in progress", XX000 "cannot assign TransactionIds/OIDs during recovery", 0A000) or
// whose effect belongs on the primary: they go there whatever the lists or pg_proc say (pg_proc
// marks several stable or immutable), without a failed try on a standby first.
bool is_always_primary_function(std::string_view bare) {
    static constexpr std::string_view kNames[] = {
        "txid_current", "pg_current_xact_id", "nextval", "setval", "pg_current_wal_lsn",
        "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn", "pg_walfile_name", "pg_walfile_name_offset",
        "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop", "pg_notify",
        "pg_terminate_backend", "pg_cancel_backend", "lo_create", "lo_creat", "lo_import", "lo_unlink",
        "lo_from_bytea", "lo_put", "lowrite", "lo_truncate", "lo_truncate64", "pg_logical_emit_message",
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
        "pg_copy_logical_replication_slot", "pg_logical_slot_get_changes", "pg_logical_slot_peek_changes",
        "pg_logical_slot_get_binary_changes", "pg_logical_slot_peek_binary_changes",
        "pg_replication_origin_create", "pg_replication_origin_drop", "pg_replication_origin_oid",
        "pg_replication_origin_session_setup", "pg_replication_origin_session_reset",
        "pg_replication_origin_session_is_setup", "pg_replication_origin_session_progress",
        "pg_replication_origin_advance", "pg_replication_origin_xact_setup", "pg_replication_origin_xact_reset",
        "brin_summarize_new_values", "brin_summarize_range", "brin_desummarize_range", "gin_clean_pending_list",
        "pg_import_system_collations", "pg_nextoid"};
    return std::find(std::begin(kNames), std::end(kNames), bare) != std::end(kNames);
}

// Without lists or catalog knowledge, the volatile built-ins that modify state.
bool is_known_volatile(std::string_view bare) {
    static constexpr std::array<std::string_view, 2> kNames = {"currval", "lastval"};
    return std::find(kNames.begin(), kNames.end(), bare) != kNames.end();
}

bool has_schema_other_than_catalog(std::string_view name) {
    size_t dot = name.rfind('.');
    return dot != std::string_view::npos && name.substr(0, dot) != "pg_catalog";
}

// The first rule among the read-only checks that sends a balanceable read to the primary, or "".
std::string_view transaction_rule(const SessionModel& s, const Classification& cls, const RoutingPolicy& p) {
    DisableLbOnWrite mode = p.disable_load_balance_on_write;
    if (mode == DisableLbOnWrite::Always && s.session_written) return "session has written (disable_load_balance_on_write = always)";
    if (!s.in_transaction) return {};
    if (s.transaction_failed) return "aborted transaction";
    if (s.transaction_serializable || s.default_serializable) return "serializable transaction";
    if (s.transaction_written && mode != DisableLbOnWrite::Off && mode != DisableLbOnWrite::DmlAdaptive)
        return "writing transaction";
    if (mode == DisableLbOnWrite::TransTransaction && s.session_written_in_transaction)
        return "an earlier transaction wrote (trans_transaction)";
    if (mode == DisableLbOnWrite::DmlAdaptive && !s.transaction_written_relations.empty()) {
        if (s.transaction_written_relations.count("*")) return "transaction wrote unknown tables (dml_adaptive)";
        for (const std::string& r : cls.relations)
            if (s.transaction_written_relations.count(bare_name(r))) return "table written in this transaction (dml_adaptive)";
    }
    return {};
}

std::string_view relation_rule(const SessionModel& s, const Classification& cls, const RoutingPolicy& p) {
    if (cls.system_catalog) return "system catalog";
    for (const std::string& r : cls.relations) {
        // Created by this session: exact in both modes (the catalog cache is the child's and may
        // know a permanent table of the same name, which the temporary one now hides).
        if (p.check_temp_table != CheckTempTable::None && s.temp_tables.count(r)) return "temporary table";
        if (p.check_temp_table == CheckTempTable::Catalog && p.oracle && p.oracle->is_temp_table(r))
            return "temporary table";
        if (p.check_unlogged_table && p.oracle && p.oracle->is_unlogged_table(r)) return "unlogged table";
        // writes are noted by bare name (add_written_tables)
        if (p.read_your_writes_window_ms > 0 && p.oracle &&
            p.oracle->recently_written(bare_name(r), p.read_your_writes_window_ms))
            return "recently written (read-your-writes)";
    }
    return {};
}

// Why a balanceable read must still go to the primary, or "" when it may be balanced.
// Sets *writing when the reason is a writing function (the statement then counts as a write).
std::string_view read_rule(const Classification& cls, std::string_view sql, const SessionModel& s,
                           const RoutingPolicy& p, bool* writing) {
    if (cls.primary_hint) return "/*+ primary */ hint";
    if (s.force_primary) return "splitpool.route = primary";
    if (!s.settings_unreplayable.empty()) return s.settings_unreplayable;
    if (cls.refused_by_standby) return "a standby refused it before";
    if (!p.load_balance_mode) return "load_balance_mode = off";
    if (!p.allow_sql_comments && cls.leading_comment) return "leading comment (allow_sql_comments = off)";
    if (std::string_view why = transaction_rule(s, cls, p); !why.empty()) return why;
    if (std::string_view why = relation_rule(s, cls, p); !why.empty()) return why;
    if (!p.primary_routing_patterns.empty() && any_match(p.primary_routing_patterns, sql))
        return "primary_routing_query_pattern_list";
    // EXPLAIN without ANALYZE only plans: its functions do not run.
    bool runs = !(cls.kind == Kind::Explain && !cls.explain_analyze);
    for (const std::string& f : cls.functions) {
        if (runs && is_writing_function(f, p)) {
            *writing = true;
            return "writing function";
        }
    }
    return {};
}

// The node a balanced read goes to: the session's node, or a fresh pick (statement level, node down, lag).
RouteDecision balanced_node(const SessionModel& s, const shm::NodeSnapshot& nodes, const RoutingPolicy& p,
                            RandomSource& rng) {
    RouteDecision d;
    d.target = Target::Node;
    d.load_balanced = true;
    d.reason = p.statement_level_load_balance ? "load balance (statement level)" : "load balance";
    const RedirectRule* redirect = s.redirect ? &*s.redirect : nullptr;
    int node = s.load_balance_node;
    if (p.statement_level_load_balance) {
        node = choose_load_balance_node(nodes, redirect, rng);
    } else if (!node_usable(nodes, node)) {
        node = choose_load_balance_node(nodes, redirect, rng, p.placement);
        d.new_load_balance_node = true;
        d.reason = "load balance (session node re-chosen)";
    }
    if (node >= 0 && node != nodes.primary && p.oracle && p.oracle->lagging(node)) {
        NodeSet fresh;
        for (int i = 0; i < nodes.num_nodes; ++i)
            if (i != nodes.primary && !p.oracle->lagging(i)) fresh.set(static_cast<size_t>(i));
        int other = p.prefer_lower_delay_standby ? pick_weighted(nodes, fresh & usable_standbys(nodes), rng) : -1;
        if (other < 0) return to_primary(nodes, "standby replication delay");
        node = other;
        d.reason = "load balance (lower-delay standby)";
    }
    if (node < 0) return to_primary(nodes, "no load-balance node");
    d.node = node;
    d.nodes = only(node);
    return d;
}

RouteDecision route_read(const Classification& cls, std::string_view sql, const SessionModel& s,
                         const shm::NodeSnapshot& nodes, const RoutingPolicy& p, RandomSource& rng) {
    bool writing = false;
    std::string_view why = read_rule(cls, sql, s, p, &writing);
    if (why.empty()) return balanced_node(s, nodes, p, rng);
    RouteDecision d = to_primary(nodes, why);
    d.counts_as_write = writing;
    return d;
}

// SQL EXECUTE of a PREPARE: the inner statement's flags decide; it follows the PREPARE's node
// while balanced, and moves to the primary (prepared there again) when the read no longer may be.
RouteDecision route_sql_prepared(const PreparedStatement& st, const SessionModel& s, const shm::NodeSnapshot& nodes,
                                 const RoutingPolicy& p, RandomSource& rng) {
    const Classification& cls = *st.cls;
    if (!cls.load_balanceable) {
        RouteDecision d = to_primary(nodes, "execute of a write");
        d.counts_as_write = cls.writes;
        return d;
    }
    return route_read(cls, st.sql, s, nodes, p, rng);
}

NodeSet session_set(const SessionModel& s) { return s.session_nodes | s.transaction_nodes; }

// A session setting runs where the session is now: inside a transaction on the transaction's nodes
// (a ROLLBACK undoes it there), else on the primary alone. Every other node of the session gets it
// before its next statement (SessionModel::settings), once its ReadyForQuery showed it stuck, so a
// SET that a later error in its batch undid never lingers on another node.
RouteDecision to_setting_nodes(const SessionModel& s, const shm::NodeSnapshot& nodes, std::string_view reason) {
    if (s.in_transaction && s.transaction_nodes.any()) {
        RouteDecision d = to_set(Target::Transaction, s.transaction_nodes, nodes, reason, false);
        if (d.target != Target::None) return d;
    }
    RouteDecision d = to_set(Target::Session, NodeSet{}, nodes, reason);
    return d.target != Target::None ? d : to_set(Target::Session, session_set(s), nodes, reason);  // primary down
}

bool calls_other_writing_function(const Classification& cls, const RoutingPolicy& p) {
    for (const std::string& f : cls.functions)
        if (bare_name(f) != "set_config" && is_writing_function(f, p)) return true;
    return false;
}

RouteDecision route_all_scope(const Classification& cls, const SessionModel& s, const shm::NodeSnapshot& nodes) {
    switch (cls.kind) {
    case Kind::Begin: {
        RouteDecision d = to_primary(nodes, "begin (standbys join on first use)");
        d.movable = cls.txn.isolation != parser::Isolation::Serializable && cls.txn.access != parser::Access::ReadWrite &&
                    !s.default_serializable;
        return d;
    }
    case Kind::Commit:
    case Kind::Rollback: {
        if (!s.in_transaction) return to_primary(nodes, "transaction control outside a transaction");
        RouteDecision d = to_set(Target::Transaction, s.transaction_nodes, nodes, "transaction end: every node of the transaction");
        d.ends_transaction = true;
        return d;
    }
    case Kind::Savepoint:
    case Kind::RollbackToSavepoint:
    case Kind::ReleaseSavepoint:
        if (!s.in_transaction) return to_primary(nodes, "transaction control outside a transaction");
        return to_set(Target::Transaction, s.transaction_nodes, nodes, "transaction control: every node of the transaction");
    default:
        if (is_session_setting(cls)) return to_setting_nodes(s, nodes, "session setting: the session's node, others before their next use");
        return to_set(Target::Session, session_set(s), nodes, "session-wide: every node of the session");
    }
}

RouteDecision route_by_name(const Classification& cls, const SessionModel& s, const shm::NodeSnapshot& nodes) {
    auto it = s.statements.find(cls.name);
    if (it == s.statements.end()) return to_primary(nodes, "unknown prepared statement");
    RouteDecision d = to_set(Target::Nodes, it->second.nodes, nodes, "deallocate where prepared", false);
    d.prepared = &it->second;  // a batch that must run it elsewhere too creates it there first
    return d;
}

std::string_view primary_reason(const Classification& cls) {
    if (cls.kind == Kind::Unparseable) return "unparseable: primary reports the error";
    if (cls.kind == Kind::MultiStatement) return "multi-statement";
    if (cls.for_update) return "select for update/share";
    if (cls.select_into) return "select into";
    if (cls.modifying_cte) return "data-modifying CTE";
    if (cls.scope == Scope::Primary && cls.kind == Kind::Set) return "set that standbys refuse";
    return cls.writes ? "write" : "primary-only statement";
}

}  // namespace

bool add_written_tables(std::set<std::string>& into, const Classification& cls, const RoutingPolicy& p) {
    for (const std::string& r : cls.written_relations) into.insert(bare_name(r));
    bool known = !cls.written_relations.empty();
    for (const auto& [first, second] : p.dml_adaptive_relationships) {
        bool by_function = false;
        for (const std::string& f : cls.functions) by_function = by_function || first == f + "()";
        if (by_function || into.count(first)) into.insert(second);
        known = known || by_function;
    }
    return known;
}

namespace {

std::string_view trim_spaces(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Splits on `sep`, except where escaped with a backslash ("\;" stays in the item as ";").
std::vector<std::string> split_escaped(std::string_view text, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == sep) {
            cur += sep;
            ++i;
        } else if (text[i] == sep) {
            out.emplace_back(trim_spaces(cur));
            cur.clear();
        } else {
            cur += text[i];
        }
    }
    out.emplace_back(trim_spaces(cur));
    out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
    return out;
}

bool compile_list(const std::vector<std::string>& items, std::regex::flag_type flags, std::vector<std::regex>* out,
                  std::string* error) {
    std::vector<std::regex> compiled;
    for (const std::string& item : items) {
        try {
            compiled.emplace_back(item, flags | std::regex::nosubs);
        } catch (const std::regex_error& e) {
            *error = "bad regex '" + item + "': " + e.what();
            return false;
        }
    }
    *out = std::move(compiled);
    return true;
}

}  // namespace

bool parse_disable_lb_on_write(std::string_view text, DisableLbOnWrite* out) {
    static constexpr std::pair<std::string_view, DisableLbOnWrite> kNames[] = {
        {"off", DisableLbOnWrite::Off},
        {"transaction", DisableLbOnWrite::Transaction},
        {"trans_transaction", DisableLbOnWrite::TransTransaction},
        {"always", DisableLbOnWrite::Always},
        {"dml_adaptive", DisableLbOnWrite::DmlAdaptive},
    };
    for (const auto& [name, value] : kNames)
        if (text == name) return *out = value, true;
    return false;
}

bool parse_check_temp_table(std::string_view text, CheckTempTable* out) {
    if (text == "catalog" || text == "on" || text == "true") return *out = CheckTempTable::Catalog, true;
    if (text == "trace") return *out = CheckTempTable::Trace, true;
    if (text == "none" || text == "off" || text == "false") return *out = CheckTempTable::None, true;
    return false;
}

bool set_function_lists(RoutingPolicy* policy, std::string_view write_list, std::string_view read_only_list,
                        std::string* error) {
    std::vector<std::string> w = split_escaped(write_list, ',');
    std::vector<std::string> r = split_escaped(read_only_list, ',');
    if (!w.empty() && !r.empty()) {
        *error = "write_function_list and read_only_function_list are mutually exclusive";
        return false;
    }
    std::vector<std::regex> wc, rc;
    if (!compile_list(w, std::regex::extended, &wc, error) || !compile_list(r, std::regex::extended, &rc, error))
        return false;
    policy->write_functions = std::move(wc);
    policy->read_only_functions = std::move(rc);
    return true;
}

bool set_primary_routing_patterns(RoutingPolicy* policy, std::string_view text, std::string* error) {
    std::vector<std::regex> compiled;
    if (!compile_list(split_escaped(text, ';'), std::regex::extended | std::regex::icase, &compiled, error))
        return false;
    policy->primary_routing_patterns = std::move(compiled);
    return true;
}

bool set_dml_adaptive_relationships(RoutingPolicy* policy, std::string_view text, std::string* error) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const std::string& item : split_escaped(text, ',')) {
        size_t colon = item.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
            *error = "dml_adaptive_object_relationship_list entry '" + item + "' is not 'a:b'";
            return false;
        }
        pairs.emplace_back(std::string(trim_spaces(item.substr(0, colon))), std::string(trim_spaces(item.substr(colon + 1))));
    }
    policy->dml_adaptive_relationships = std::move(pairs);
    return true;
}

bool is_writing_function(std::string_view name, const RoutingPolicy& p) {
    std::string bare = bare_name(name);
    bool builtin_schema = !has_schema_other_than_catalog(name);
    if (builtin_schema && is_always_primary_function(bare)) return true;
    if (builtin_schema && bare == "set_config") return false;  // a session setting: route() sends it everywhere
    if (!p.write_functions.empty()) return any_match(p.write_functions, name);
    if (!p.read_only_functions.empty()) return !any_match(p.read_only_functions, name);
    if (p.oracle) return p.oracle->is_volatile_function(name);
    return builtin_schema && is_known_volatile(bare);
}

void start_session(SessionModel& state, const shm::NodeSnapshot& nodes, const RoutingPolicy& policy,
                   RandomSource& rng) {
    const RedirectRule* r = find_redirect(policy.redirects, state.database, state.user, state.application_name);
    state.redirect = r ? std::optional<RedirectRule>(*r) : std::nullopt;
    state.load_balance_node = choose_load_balance_node(nodes, r, rng, policy.placement);
}

RouteDecision route(const Classification& cls, std::string_view sql, const SessionModel& state,
                    const shm::NodeSnapshot& nodes, const RoutingPolicy& policy, RandomSource& rng) {
    if (cls.splitpool_setting) {
        RouteDecision d;
        d.target = Target::Local;
        d.reason = "splitpool setting";
        return d;
    }
    // pgpool keeps such a transaction's BOTH statements on the primary; we keep all of it there, so
    // no standby joins a transaction whose COMMIT we never saw as a statement of its own.
    if (state.in_transaction && state.started_by_multi_statement)
        return to_primary(nodes, "transaction started by a multi-statement string");
    switch (cls.kind) {
    case Kind::Execute: {
        auto it = state.statements.find(cls.name);
        if (it == state.statements.end()) return to_primary(nodes, "unknown prepared statement");
        return route_prepared(it->second, state, nodes, policy, rng);
    }
    case Kind::Deallocate: return route_by_name(cls, state, nodes);
    case Kind::Prepare:
        if (state.statements.count(cls.name))  // where it exists, so PostgreSQL refuses it (42P05)
            return route_by_name(cls, state, nodes);
        break;
    default: break;
    }
    if (cls.calls_set_config && cls.load_balanceable && !calls_other_writing_function(cls, policy))
        return to_setting_nodes(state, nodes, "set_config: the session's node, others before their next use");
    switch (cls.scope) {
    case Scope::All: return route_all_scope(cls, state, nodes);
    case Scope::Either:
        if (cls.load_balanceable) {
            RouteDecision d = route_read(cls, sql, state, nodes, policy, rng);
            if (cls.kind == Kind::Prepare) d.counts_as_write = false;  // only EXECUTE runs it
            return d;
        }
        break;
    case Scope::Primary: break;
    }
    RouteDecision d = to_primary(nodes, primary_reason(cls));
    d.counts_as_write = cls.writes && cls.kind != Kind::Prepare;
    return d;
}

RouteDecision route_prepared(const PreparedStatement& st, const SessionModel& state, const shm::NodeSnapshot& nodes,
                             const RoutingPolicy& policy, RandomSource& rng) {
    RouteDecision d = st.sql_level ? route_sql_prepared(st, state, nodes, policy, rng)
                                   : route(*st.cls, st.sql, state, nodes, policy, rng);
    // With statement-level balancing each run is balanced afresh (created on a new node once);
    // otherwise a balanced statement stays on the standby where it already exists.
    bool home_ok = !policy.statement_level_load_balance && st.home >= 0 && st.home != nodes.primary &&
                   node_usable(nodes, st.home) && st.nodes.test(static_cast<size_t>(st.home));
    if (d.target == Target::Node && home_ok) {
        d.node = st.home;  // the statement exists there: stay
        d.nodes = only(st.home);
        d.new_load_balance_node = false;
        d.reason = "execute follows prepare";
    }
    d.reprepare = d.node >= 0 && !st.nodes.test(static_cast<size_t>(d.node));
    // A protocol statement whose text is an EXECUTE names the SQL PREPARE it runs: that one must
    // exist where it goes (the protocol statement itself is the dispatcher's to create).
    if (!d.prepared || st.sql_level) d.prepared = &st;
    return d;
}

std::string describe(const Classification& cls, const RouteDecision& d, const shm::NodeSnapshot& nodes) {
    std::string out(parser::kind_name(cls.kind));
    out += " → ";
    switch (d.target) {
    case Target::Primary:
    case Target::Node:
        out += "node " + std::to_string(d.node) + (d.node == nodes.primary ? " (primary, " : " (standby, ");
        break;
    case Target::Session:
    case Target::Transaction:
    case Target::Nodes: {
        out += "nodes";
        for (int i = 0; i < shm::kMaxNodes; ++i)
            if (d.nodes.test(static_cast<size_t>(i))) out += " " + std::to_string(i);
        out += " (";
        break;
    }
    case Target::Local: out += "splitpool ("; break;
    case Target::None: out += "nowhere ("; break;
    }
    out += d.reason;
    out += ")";
    return out;
}

}  // namespace splitpool::daemon
