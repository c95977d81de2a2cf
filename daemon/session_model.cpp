// What one client session and its open transaction are now: state transitions as statements run.
#include "daemon/session_model.hpp"

#include <algorithm>

#include "daemon/proto/writer.hpp"
#include "daemon/router.hpp"

namespace splitpool::daemon {

using parser::Classification;
using parser::Kind;
using proto::query_message;

namespace {

std::string quoted(std::string_view name) {
    std::string out = "\"";
    for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

void end_transaction(SessionModel& s) {
    s.in_transaction = false;
    s.transaction_failed = false;
    s.transaction_written = false;
    s.transaction_serializable = false;
    s.started_by_multi_statement = false;
    s.transaction_options = {};
    s.ended_nodes |= s.transaction_nodes;
    s.transaction_nodes.reset();
    s.transaction_log.clear();
    s.transaction_written_relations.clear();
    s.portals.clear();  // portals (but WITH HOLD cursors, which are SQL-level) end with the transaction
}

void begin_transaction(SessionModel& s, const parser::TxnOptions& options, const NodeSet& nodes) {
    end_transaction(s);
    s.in_transaction = true;
    s.transaction_options = options;
    s.transaction_serializable = options.isolation == parser::Isolation::Serializable;
    s.transaction_nodes = nodes;
}

// Appends to the session's settings: a later SET/RESET of the same name replaces the earlier one,
// RESET ALL replaces every SET, so the log stays as short as what it replays.
void add_setting(SessionModel& s, ReplayEntry entry) {
    auto& log = s.settings;
    if (entry.reset_all) log.clear();
    if (!entry.setting.empty())
        log.erase(std::remove_if(log.begin(), log.end(), [&](const ReplayEntry& e) { return e.setting == entry.setting; }),
                  log.end());
    if (log.size() >= SessionModel::kMaxSettings) {
        s.settings_unreplayable = "too many session settings to replay on a standby";  // a joining node could miss one
        return;
    }
    entry.seq = ++s.settings_seq;
    log.push_back(std::move(entry));
}

// The ReadyForQuery after settings ran. Those a COMMIT made final are in force whatever followed
// it (an error after all of the batch's COMMITs, or after the one that ended their transaction:
// an error at the COMMIT itself rolled them back). The others, idle: in force without an error,
// else PostgreSQL rolled them back; in a transaction: a BEGIN the model did not see (a noted one
// adopted them at once, adopt_implicit_settings) made them part of it, so they join its log. A
// node that ran every one put in force (and had every earlier one) needs no replay of them.
void settle_settings(SessionModel& s, char status) {
    uint32_t done = s.commits_done;
    s.commits_planned = s.commits_done = 0;
    if (s.pending_settings.empty()) {
        s.error_since_ready = false;
        return;
    }
    uint64_t before = s.settings_seq;
    NodeSet ran_all;
    ran_all.set();
    for (ReplayEntry& e : s.pending_settings) {
        bool committed = e.commit > 0 && (!s.error_since_ready || e.commit <= done);
        if (committed || (e.commit == 0 && status == 'I' && !s.error_since_ready)) {
            ran_all &= e.ran_on;
            e.commit = 0;
            add_setting(s, std::move(e));
        } else if (e.commit == 0 && status != 'I') {
            s.transaction_log.push_back(std::move(e));
        }
    }
    for (size_t n = 0; n < s.node_settings.size() && s.settings_seq != before; ++n)  // (no cheaper NodeSet walk)
        if (ran_all.test(n) && s.node_settings[n] >= before) s.node_settings[n] = s.settings_seq;
    s.pending_settings.clear();
    s.error_since_ready = false;
}

void commit_transaction_settings(SessionModel& s) {
    ++s.commits_planned;
    for (ReplayEntry& e : s.transaction_log)
        if (e.savepoint.empty() && e.session_level) {
            e.ran_on = s.transaction_nodes;
            e.commit = s.commits_planned;
            s.pending_settings.push_back(std::move(e));
        }
}

void note_savepoint(SessionModel& s, const Classification& cls) {
    auto& log = s.transaction_log;
    if (cls.kind == Kind::Savepoint) {
        log.push_back(ReplayEntry{query_message("SAVEPOINT " + quoted(cls.name)), cls.name, {}, false});
        return;
    }
    auto it = std::find_if(log.rbegin(), log.rend(), [&](const ReplayEntry& e) { return e.savepoint == cls.name; });
    if (it == log.rend()) return;
    size_t at = size_t(log.rend() - it) - 1;
    if (cls.kind == Kind::RollbackToSavepoint) {
        log.resize(at + 1);  // keeps the savepoint itself; transaction_written stays set
        s.transaction_failed = false;  // recovered (its ReadyForQuery says 'E' again if it failed)
        return;
    }
    // RELEASE drops the savepoint and the later ones; settings made after them stay in force.
    auto later = log.begin() + long(at);
    log.erase(std::remove_if(later, log.end(), [](const ReplayEntry& e) { return !e.savepoint.empty(); }), log.end());
}

void note_setting_flags(SessionModel& s, const Classification& cls) {
    const parser::SetInfo& set = cls.set;
    bool serializable = cls.txn.isolation == parser::Isolation::Serializable;
    if (cls.kind == Kind::Reset) {
        if (set.reset_all || set.name == "default_transaction_isolation") s.default_serializable = false;
        if (set.reset_all || set.name == "splitpool.route") s.force_primary = false;
        return;
    }
    if (set.transaction || set.name == "transaction_isolation") {
        if (s.in_transaction && cls.txn.isolation != parser::Isolation::Default) {
            s.transaction_serializable = serializable;
            s.transaction_options.isolation = cls.txn.isolation;
        }
    } else if (set.session_characteristics) {
        if (cls.txn.isolation != parser::Isolation::Default) s.default_serializable = serializable;
    } else if (set.name == "default_transaction_isolation") {
        s.default_serializable = set.value == "serializable";
    } else if (set.name == "splitpool.route") {
        s.force_primary = set.value == "primary";
    }
}

// A setting goes to the transaction log while a transaction is open (a joining node needs it and a
// ROLLBACK undoes it), else it waits for its ReadyForQuery (settle_settings). Other nodes of the
// session get it before their next statement. One that only the primary may take (SET
// transaction_read_only = off) is not replayed on standbys.
void note_replay(SessionModel& s, const Classification& cls, const RouteDecision& d, std::string_view replay) {
    bool everywhere = d.target == Target::Session || d.target == Target::Transaction;
    if (replay.empty() || !everywhere || !is_session_setting(cls)) return;
    bool is_set = cls.kind == Kind::Set || cls.kind == Kind::Reset;
    ReplayEntry e{std::string(replay), {}, is_set && !cls.set.reset_all ? cls.set.name : std::string(),
                  !(is_set && cls.set.is_local), cls.kind == Kind::Reset && cls.set.reset_all};
    if (s.in_transaction) {
        s.transaction_log.push_back(std::move(e));
    } else if (e.session_level) {
        e.ran_on = d.nodes;
        s.pending_settings.push_back(std::move(e));
    }
}

void forget_statements(SessionModel& s) {
    s.statements.clear();
    s.portals.clear();
}

void note_prepared(SessionModel& s, const Classification& cls, std::string_view sql, const RouteDecision& d) {
    switch (cls.kind) {
    case Kind::Prepare: {
        if (auto it = s.statements.find(cls.name); it != s.statements.end()) {
            // PostgreSQL refuses it (42P05) and the first one stays. It was created first on the
            // nodes of d that lacked it, and is there now: neither this error nor a ROLLBACK undoes
            // a SQL PREPARE (a failed block refuses both, and note_statement stops before this).
            it->second.nodes |= d.nodes;
            break;
        }
        PreparedStatement& st = s.statements[cls.name];
        st = PreparedStatement{std::string(sql), query_message(sql), true, nullptr, d.nodes, d.node};
        st.cls = std::make_shared<const Classification>(cls);
        break;
    }
    case Kind::Execute: {  // created first where it was missing
        auto it = s.statements.find(cls.name);
        if (it != s.statements.end()) it->second.nodes |= d.nodes;
        break;
    }
    case Kind::Deallocate: s.statements.erase(cls.name); break;
    case Kind::DeallocateAll: forget_statements(s); break;  // protocol-level statements too, as PostgreSQL
    default: break;
    }
}

void note_session_objects(SessionModel& s, const Classification& cls) {
    for (const std::string& t : cls.temp_tables_created) s.temp_tables.insert(t);
    for (const std::string& t : cls.tables_dropped) s.temp_tables.erase(t);
    if (cls.kind == Kind::Listen) s.listening.insert(cls.name);
    if (cls.kind == Kind::Unlisten) {
        if (cls.name.empty() || cls.name == "*") s.listening.clear();
        else s.listening.erase(cls.name);
    }
    if (cls.kind == Kind::DiscardAll) {
        s.temp_tables.clear();
        s.listening.clear();
        forget_statements(s);
        s.settings.clear();
        s.pending_settings.clear();
        s.settings_unreplayable = {};
        s.force_primary = false;
        s.default_serializable = false;
    }
}

void note_write(SessionModel& s, const Classification& cls, const RoutingPolicy& p) {
    s.session_written = true;
    if (!s.in_transaction) return;
    s.transaction_written = true;
    s.session_written_in_transaction = true;
    // A write whose tables we cannot name (a writing function): every later read of the transaction.
    if (!add_written_tables(s.transaction_written_relations, cls, p)) s.transaction_written_relations.insert("*");
}

// The pending settings no COMMIT of the batch has made final: those of the implicit transaction
// still open (a pipeline's runs up to its Sync, or a BEGIN's), taken out in order.
std::vector<ReplayEntry> take_uncommitted(SessionModel& s) {
    auto& pending = s.pending_settings;
    auto open = std::stable_partition(pending.begin(), pending.end(), [](const ReplayEntry& e) { return e.commit > 0; });
    std::vector<ReplayEntry> out(std::make_move_iterator(open), std::make_move_iterator(pending.end()));
    pending.erase(open, pending.end());
    return out;
}

// COMMIT or ROLLBACK with no transaction block open ends the implicit transaction those settings
// ran in: PostgreSQL warns, then commits them (final, whatever error follows in the batch) or rolls
// them back. AND CHAIN fails there (25P01), which error_since_ready covers.
void end_implicit_transaction(SessionModel& s, const Classification& cls) {
    if (cls.chain) return;
    if (cls.kind == Kind::Rollback) {
        take_uncommitted(s);
        return;
    }
    ++s.commits_planned;
    for (ReplayEntry& e : s.pending_settings)
        if (e.commit == 0) e.commit = s.commits_planned;
}

// A BEGIN after settings in the same implicit transaction turns it into the block: they are part
// of it now (its ROLLBACK undoes them), and a node joining it gets them.
void adopt_implicit_settings(SessionModel& s) {
    for (ReplayEntry& e : take_uncommitted(s)) s.transaction_log.push_back(std::move(e));
}

// COMMIT/ROLLBACK [AND CHAIN], PREPARE TRANSACTION: true when the statement ended (or chained) the transaction.
bool note_transaction_end(SessionModel& s, const Classification& cls) {
    if (cls.kind == Kind::TwoPhase) {  // PREPARE TRANSACTION ends it; the others run outside one
        end_transaction(s);
        return true;
    }
    if (cls.kind != Kind::Commit && cls.kind != Kind::Rollback) return false;
    if (!s.in_transaction) end_implicit_transaction(s, cls);
    if (s.in_transaction && cls.kind == Kind::Commit && !s.transaction_failed) commit_transaction_settings(s);
    if (cls.chain && s.in_transaction) {
        parser::TxnOptions options = s.transaction_options;  // copies: begin_transaction resets them
        NodeSet nodes = s.transaction_nodes;
        begin_transaction(s, options, nodes);
    } else {
        end_transaction(s);
    }
    return true;
}

}  // namespace

bool forgets_statements(const Classification& cls) {
    return cls.kind == Kind::Deallocate || cls.kind == Kind::DeallocateAll || cls.kind == Kind::DiscardAll;
}

bool is_session_setting(const Classification& cls) {
    if (cls.splitpool_setting) return false;
    switch (cls.kind) {
    case Kind::Set: return !cls.set.transaction;  // SET TRANSACTION goes into the joining node's BEGIN
    case Kind::Reset: return true;
    default: return cls.calls_set_config && cls.load_balanceable;
    }
}

void note_statement(SessionModel& s, const Classification& cls, std::string_view sql, const RouteDecision& d,
                    const RoutingPolicy& policy, std::string_view replay) {
    s.session_nodes |= d.nodes;
    if (d.new_load_balance_node && d.node >= 0) s.load_balance_node = d.node;
    if (cls.kind == Kind::Begin) {
        // BEGIN inside a transaction only draws PostgreSQL's warning: the transaction goes on.
        if (!s.in_transaction) {
            begin_transaction(s, cls.txn, d.nodes);
            adopt_implicit_settings(s);
        }
        return;
    }
    if (note_transaction_end(s, cls)) return;
    // A failed transaction refuses everything but its end and ROLLBACK TO: nothing else takes effect.
    if (s.transaction_failed && cls.kind != Kind::RollbackToSavepoint) return;
    if (cls.kind == Kind::Savepoint || cls.kind == Kind::RollbackToSavepoint || cls.kind == Kind::ReleaseSavepoint)
        if (s.in_transaction) note_savepoint(s, cls);
    if (cls.kind == Kind::Set || cls.kind == Kind::Reset) note_setting_flags(s, cls);
    note_replay(s, cls, d, replay);
    if (s.in_transaction) s.transaction_nodes |= d.nodes;
    note_prepared(s, cls, sql, d);
    note_session_objects(s, cls);
    if (d.counts_as_write) note_write(s, cls, policy);
}

void note_transaction_status(SessionModel& s, char status, bool last_was_multi) {
    settle_settings(s, status);
    NodeSet ended = s.ended_nodes;
    s.ended_nodes.reset();
    if (status == 'I') {
        if (s.in_transaction || !s.portals.empty()) end_transaction(s);
        s.ended_nodes.reset();
        return;
    }
    if (!s.in_transaction) {
        // A transaction we did not see begin: BEGIN inside a multi-statement string; or the one
        // a COMMIT later in the batch was to end, which an error made PostgreSQL skip: its nodes
        // are still in it (their ROLLBACK must reach them).
        s.in_transaction = true;
        s.started_by_multi_statement = last_was_multi;
        s.transaction_nodes |= ended;
    }
    s.transaction_failed = status == 'E';  // 'T' after ROLLBACK TO: recovered
}

void note_error(SessionModel& s) { s.error_since_ready = true; }

void note_commit_done(SessionModel& s) { ++s.commits_done; }

void forget_node(SessionModel& s, int node) {
    if (node < 0 || node >= int(s.node_settings.size())) return;
    s.node_settings[size_t(node)] = 0;
    s.session_nodes.reset(size_t(node));
    s.transaction_nodes.reset(size_t(node));
    for (ReplayEntry& e : s.pending_settings) e.ran_on.reset(size_t(node));
}

void note_inner_statements(SessionModel& s, const Classification& multi, const RouteDecision& d,
                           const RoutingPolicy& policy) {
    const auto& inner = multi.session_statements;
    if (inner.empty()) return;
    bool settings_only = std::all_of(inner.begin(), inner.end(), [](const parser::InnerStatement& st) {
        return is_session_setting(*st.cls);
    });
    if (multi.contains_txn_control || !settings_only) {
        s.settings_unreplayable = "session state changed inside a multi-statement string";
        return;
    }
    RouteDecision ran = d;  // the nodes that ran the string ran each of them
    ran.target = Target::Session;
    ran.counts_as_write = false;
    ran.new_load_balance_node = false;
    for (const parser::InnerStatement& st : inner)
        note_statement(s, *st.cls, st.sql, ran, policy, query_message(st.sql));
}

void note_parse(SessionModel& s, std::string name, std::string_view sql, std::string parse_message,
                std::shared_ptr<const Classification> cls) {
    PreparedStatement& st = s.statements[std::move(name)];
    st = PreparedStatement{std::string(sql), std::move(parse_message), false, std::move(cls), {}, -1};
}

void note_close(SessionModel& s, char what, const std::string& name) {
    if (what == 'S') s.statements.erase(name);
    else s.portals.erase(name);
}

std::vector<std::string> join_transaction_statements(const SessionModel& s) {
    std::string begin = "BEGIN";
    switch (s.transaction_options.isolation) {
    case parser::Isolation::RepeatableRead: begin += " ISOLATION LEVEL REPEATABLE READ"; break;
    case parser::Isolation::ReadCommitted: begin += " ISOLATION LEVEL READ COMMITTED"; break;
    case parser::Isolation::ReadUncommitted: begin += " ISOLATION LEVEL READ UNCOMMITTED"; break;
    default: break;  // SERIALIZABLE never reaches a standby; default stays default
    }
    if (s.transaction_options.access == parser::Access::ReadOnly) begin += " READ ONLY";
    std::vector<std::string> out{begin};
    for (const ReplayEntry& e : s.transaction_log)
        if (!e.savepoint.empty()) out.push_back("SAVEPOINT " + quoted(e.savepoint));
    return out;
}

std::string join_transaction_bytes(const SessionModel& s, size_t log_entries, int* ready) {
    std::string out = query_message(join_transaction_statements(s).front());
    *ready = 1;
    log_entries = std::min(log_entries, s.transaction_log.size());
    for (size_t i = 0; i < log_entries; ++i, ++*ready) out += s.transaction_log[i].bytes;
    return out;
}

std::string replay_bytes(SessionModel& s, int node, int* ready) {
    std::string out;
    *ready = 0;
    if (node < 0 || node >= int(s.node_settings.size())) return out;
    uint64_t& seen = s.node_settings[size_t(node)];
    if (seen == s.settings_seq) return out;  // up to date: every statement's usual case
    for (const ReplayEntry& e : s.settings)
        if (e.seq > seen) out += e.bytes, ++*ready;
    seen = s.settings_seq;
    return out;
}

}  // namespace splitpool::daemon
