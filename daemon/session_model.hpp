// What one client session and its open transaction are now, as PostgreSQL would see them: the one
// place the router reads and that changes when a statement runs (never when it is only parsed).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/balancer.hpp"
#include "parser/classify.hpp"

namespace splitpool::daemon {

struct RouteDecision;
struct RoutingPolicy;

// A prepared statement, from SQL PREPARE or a protocol Parse (PostgreSQL keeps both in one namespace).
struct PreparedStatement {
    std::string sql;                  // Parse: the query text; SQL PREPARE: the whole PREPARE statement
    std::string create;               // what creates it on another node: a Parse message, or the PREPARE as a Query
    bool sql_level = false;           // created by SQL PREPARE (`create` is a Query, else a Parse needing a Sync)
    std::shared_ptr<const parser::Classification> cls;  // SQL PREPARE: the PREPARE's (flags of the inner statement)
    NodeSet nodes;                    // nodes where it exists
    int home = -1;                    // node it was first created on
};

// A statement whose effect a node joining later must get: session settings, savepoints, SET LOCAL.
// `bytes` are protocol messages that end in Query or Sync, answered by exactly one ReadyForQuery.
struct ReplayEntry {
    std::string bytes;
    std::string savepoint;            // SAVEPOINT entries of the transaction log: the name
    std::string setting;              // SET/RESET: the lowercased name (a later SET of it replaces this entry)
    bool session_level = true;        // survives the transaction's COMMIT (SET LOCAL does not)
    bool reset_all = false;           // RESET ALL: replaces every earlier setting
    uint64_t seq = 0;                 // session settings: its place in the session's history
    NodeSet ran_on;                   // pending settings: the nodes that ran it
    uint32_t commit = 0;              // pending settings: made final by the batch's commit-th COMMIT
};

struct SessionModel {
    // Identity and load balancing (start_session).
    std::string database, user, application_name;  // from the startup packet
    std::optional<RedirectRule> redirect;
    int load_balance_node = -1;
    NodeSet session_nodes;                // nodes that received statements of this session

    // The open transaction.
    bool in_transaction = false;          // explicit transaction block open
    bool transaction_failed = false;      // aborted ('E'): only ROLLBACK and friends are useful
    bool transaction_written = false;     // wrote in this transaction; a savepoint rollback keeps it
    bool transaction_serializable = false;
    bool started_by_multi_statement = false;
    parser::TxnOptions transaction_options;          // for BEGIN on a standby joining late
    NodeSet transaction_nodes;
    std::vector<ReplayEntry> transaction_log;        // savepoints and settings since BEGIN, in order
    std::set<std::string> transaction_written_relations;  // dml_adaptive; "*" = unknown tables

    // The session.
    bool session_written = false;         // any write in the session (disable_load_balance_on_write = always)
    bool session_written_in_transaction = false;  // an explicit transaction wrote (trans_transaction)
    bool default_serializable = false;    // default_transaction_isolation / SESSION CHARACTERISTICS
    bool force_primary = false;           // SET splitpool.route = primary
    // Why the session's settings cannot be replayed on a standby ("": they can): more than
    // kMaxSettings, or changed inside a multi-statement string whose transaction control the model
    // does not follow. Reads then stay on the primary, until DISCARD ALL.
    std::string_view settings_unreplayable;
    // Session settings in force, each with a sequence number; a node has those up to its watermark
    // and gets the newer ones before its next statement. A setting joins `settings` only once the
    // ReadyForQuery that ends its statement's implicit transaction (or its COMMIT) arrives without
    // an error: PostgreSQL undoes a SET that a later error in the same batch rolls back.
    std::vector<ReplayEntry> settings;
    uint64_t settings_seq = 0;            // seq of the newest setting (0: none yet)
    std::array<uint64_t, shm::kMaxNodes> node_settings{};  // per node: settings seen up to this seq
    std::vector<ReplayEntry> pending_settings;  // ran, not yet confirmed by a ReadyForQuery
    bool error_since_ready = false;       // an ErrorResponse reached the client since the last ReadyForQuery
    uint32_t commits_planned = 0;         // COMMITs of a transaction sent since it
    NodeSet ended_nodes;                  // nodes of the transactions ended since it (by what was sent)
    uint32_t commits_done = 0;            // their CommandComplete COMMIT seen since it
    std::set<std::string> temp_tables;    // check_temp_table = trace: CREATE TEMP TABLE names
    std::set<std::string> listening;      // LISTEN channels (on the primary)
    std::map<std::string, PreparedStatement> statements;  // by name ("" = unnamed)
    std::map<std::string, int> portals;   // protocol portals by name -> node; gone when a transaction ends

    static constexpr size_t kMaxSettings = 256;
};

// The statement erases prepared statements from the model (DEALLOCATE, DEALLOCATE ALL, DISCARD ALL).
bool forgets_statements(const parser::Classification& cls);

// What `statement` needs replayed (its own bytes passed to note_statement): session settings.
bool is_session_setting(const parser::Classification& cls);

// The statement ran (was sent) with this decision: transaction, savepoint, setting, prepared-statement
// and session bookkeeping. `sql` is its text, `replay` what runs it again elsewhere (for settings).
void note_statement(SessionModel& model, const parser::Classification& cls, std::string_view sql,
                    const RouteDecision& decision, const RoutingPolicy& policy, std::string_view replay = {});

// At each ReadyForQuery the client sees: 'I' idle, 'T' in transaction, 'E' failed. Catches
// transactions begun or ended inside multi-statement strings, and failures; settles the pending
// settings (kept unless an error came since the last ReadyForQuery).
void note_transaction_status(SessionModel& model, char status, bool last_was_multi);
// An ErrorResponse reached the client.
void note_error(SessionModel& model);
// A CommandComplete COMMIT reached the client: the settings of the transaction it ended are in force.
void note_commit_done(SessionModel& model);
// The node's connection to the session is gone: a new one starts with no settings.
void forget_node(SessionModel& model, int node);
// A multi-statement string ran with this decision (after note_statement of the string itself): its
// settings join the session as if sent one by one; other session state changed in it, or settings
// beside transaction control, keep reads on the primary.
void note_inner_statements(SessionModel& model, const parser::Classification& multi, const RouteDecision& decision,
                           const RoutingPolicy& policy);

// A protocol Parse: creates (or replaces) a statement that exists nowhere yet.
void note_parse(SessionModel& model, std::string name, std::string_view sql, std::string parse_message,
                std::shared_ptr<const parser::Classification> cls);
// Close of a statement ('S') or a portal ('P').
void note_close(SessionModel& model, char what, const std::string& name);

// Bytes that bring a node joining the open transaction late up to date: BEGIN with the transaction's
// isolation (never READ WRITE or SERIALIZABLE, which standbys refuse), then the first `log_entries`
// of the transaction log. `ready` gets the number of ReadyForQuery messages they produce.
std::string join_transaction_bytes(const SessionModel& model, size_t log_entries, int* ready);
std::vector<std::string> join_transaction_statements(const SessionModel& model);  // the same as SQL, for tests
// The session settings `node` has not seen yet, for its next statement (marks them seen).
std::string replay_bytes(SessionModel& model, int node, int* ready);

}  // namespace splitpool::daemon
