// Turns client messages into plans: which node gets which bytes, whose replies reach the client,
// and what must be replayed so that several nodes behave like one PostgreSQL session.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/admin_sql.hpp"
#include "daemon/catalog_cache.hpp"
#include "daemon/config.hpp"
#include "daemon/router.hpp"
#include "parser/classify_cache.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

enum class Delivery : uint8_t { Forward, Swallow };

// Bytes for one node. A send that ends in Query or Sync is answered by one ReadyForQuery.
struct Send {
    int node = -1;
    Delivery delivery = Delivery::Forward;
    std::string bytes;
    int ready_count = 1;      // ReadyForQuery messages that close it (0: a Flush-ended batch)
    bool swallow_ready = false;  // Forward, but its ReadyForQuery is splitpool's own (a split batch)
    int first_execute = -1;   // a batch's Forward: how many of its Executes come before this send
    bool retryable = false;   // balanced read outside a transaction: may be redone on the primary
    bool counts_as_select = false;  // a read: counted in the node's select_cnt (pgpool's SHOW POOL_NODES)
    shm::StatementClass stmt_class = shm::StatementClass::Other;
    std::string retry_prepare;  // for a retry on the primary: statements to create there first (swallowed)
    std::vector<std::shared_ptr<const parser::Classification>> retry_statements;  // marked refused on a retry
};

struct Plan {
    std::vector<Send> sends;
    std::string client_reply;  // answered by splitpool itself (SET splitpool.route ...)
    void clear() {
        sends.clear();
        client_reply.clear();
    }
};

// What the relay knows about each node when a plan is made (no replies are outstanding then).
struct NodeView {
    bool connected = false;
    char tx_status = 'I';
};

// The node whose transaction failed (its last ReadyForQuery said 'E'), or -1.
int failed_node(const std::vector<NodeView>& nodes);

// Which counter a statement goes to: reads, DML by its first keyword, DDL (utility), the rest.
shm::StatementClass statement_class(const parser::Classification& cls, std::string_view sql);

// Builds the router's policy from the configuration; false with a message for a bad regex or list.
bool routing_policy_for(const Config& config, RoutingPolicy* policy, std::string* error);

// What a dispatcher borrows from its child for one session.
struct DispatchContext {
    const Config& config;                 // the child's configuration
    Config& session_config;               // config + this session's PGPOOL SET values (what the relay reads)
    const RoutingPolicy& policy;
    parser::ClassificationCache& cache;
    CatalogCache& catalog;
    shm::StatusTable& table;
    SideQuery side_query;                 // catalog lookups on the primary
    RandomSource& rng;                    // the child's, seeded once: load-balance picks
};

class Dispatcher {
public:
    Dispatcher(DispatchContext ctx, const std::string& database, const std::string& user,
               const std::string& application_name);

    // True when the message can only be planned once every node has answered everything sent
    // before (a Query, or the Sync/Flush that closes a batch not already bound to a node).
    bool needs_idle(char type) const;
    // Takes one complete client message; fills `plan` when something is to be sent or answered.
    void on_message(char type, const char* msg, size_t size, const std::vector<NodeView>& nodes, Plan& plan);
    int primary() const { return primary_; }
    int load_balance_node() const { return model_.load_balance_node; }
    // Before a Query or FunctionCall, which PostgreSQL runs after the messages sent before it: ends
    // the batch those messages left open, with a Sync of splitpool's own on its node. A Flush-ended
    // batch (asyncpg) is already there; extended messages neither a Sync nor a Flush ended (pgjdbc's
    // autosave: Parse/Bind/Execute BEGIN, a Query SAVEPOINT, then its Sync) are sent first, ended by
    // a Flush: call it once idle when has_open_batch(). False when nothing was open; else the Query
    // waits until what `plan` sends is answered.
    bool end_batch_before_query(const std::vector<NodeView>& nodes, Plan& plan);
    bool has_open_batch() const { return !batch_msgs_.empty(); }
    // Each ReadyForQuery the client sees: keeps the session model's transaction state exact and
    // publishes the writes of a finished transaction (read_your_writes_window).
    void note_ready(char status);
    // An ErrorResponse reached the client (the settings of its batch did not stick).
    void note_error(int executed = -1);  // see Dispatcher::note_error in dispatcher.cpp
    void note_commit_done() { daemon::note_commit_done(model_); }
    const SessionModel& model() const { return model_; }
    // The session lost its connection to a standby: it goes on without it, and new sessions skip
    // the node for a while (it may be back: the next session tries again after the back-off).
    void node_lost(int node);
    bool lost(int node) const { return node >= 0 && node < shm::kMaxNodes && lost_.test(size_t(node)); }

private:
    // The transaction as a send finds it: a node joining it gets BEGIN and the first `transaction_log` entries.
    struct TxPoint {
        bool in_transaction = false;
        size_t transaction_log = 0;
    };
    // One statement that runs in an extended-protocol batch: a Bind and the Executes of its portal.
    struct Run {
        TxPoint at;                  // the transaction as this run found it
        std::shared_ptr<const parser::Classification> cls;
        const PreparedStatement* statement = nullptr;  // null: unknown name (the node reports the error)
        std::shared_ptr<PreparedStatement> own;  // a copy, when a run of the batch erases it from the model
        std::string name;            // the statement's name
        std::string_view portal;     // into batch_
        std::string_view sql;        // the statement's text (into batch_ or the model, else owned_sql)
        std::string owned_sql;       // the text when the batch parses the same name again after this Bind
        RouteDecision decision;
        size_t bind = 0;             // index in batch_msgs_
        int parse_msg = -1;          // index of this batch's Parse of the statement, if any
        int first_execute = -1;      // its first Execute: the ordinal among the batch's Executes
        // EXECUTE/DEALLOCATE of a prepared statement: what creates it, and where it existed
        // before the run (a node of the run lacking it gets it first).
        std::string prepared_create;
        NodeSet prepared_on;
    };
    // Where a plan starts from: the transaction as the client saw it, and which nodes this plan has
    // already brought up to date.
    struct PlanStart {
        bool in_transaction = false;
        TxPoint at;                  // what add_send joins nodes to: the batch's start, or a fan-out run's
        NodeSet prepared;            // nodes given replay / join in this plan
        NodeSet idle;                // nodes outside any transaction (or not connected)
    };

    void plan_query(std::string_view sql, const char* msg, size_t size, const std::vector<NodeView>& nodes, Plan& plan);
    void plan_batch(bool sync, const std::vector<NodeView>& nodes, Plan& plan);
    void collect_runs();
    const Run* opening_run() const;
    bool refused_in_batch(const parser::Classification& cls, bool pipelined) const;
    void keep_undo(const Run& r, const RouteDecision& d, int main);
    bool rolls_back_commit(const Run& r) const;
    int choose_main(const std::vector<NodeView>& nodes);
    bool answer_aborted_batch(int main, const std::vector<NodeView>& nodes, Plan& plan);
    void route_runs(const std::vector<NodeView>& nodes, int main);
    void send_batch(bool sync, int main, const std::vector<NodeView>& nodes, Plan& plan);
    std::string creates_for(int node, bool all_runs, int* count) const;
    std::string run_messages(const Run& run) const;
    std::string main_batch(int main, const std::vector<NodeView>& nodes);
    size_t recovery_split(int main, const std::vector<NodeView>& nodes) const;
    void send_fan_out(int node, bool failed, Plan& plan);
    void close_elsewhere(int main, Plan& plan);
    void finish_batch(bool sync, int main);
    int last_parse(const std::string& name) const;
    Run* run_bound_to(std::string_view portal);  // the batch's latest Bind of it, or null
    std::string_view message_at(size_t index) const;
    bool answer_admin_batch(bool sync, const std::vector<NodeView>& nodes, Plan& plan);

    RouteDecision decide(const parser::Classification& cls, std::string_view sql, const PreparedStatement* prepared);
    void carry_out(const RouteDecision& d, const std::string& bytes, const std::vector<NodeView>& nodes, Plan& plan);
    void begin_plan(const std::vector<NodeView>& nodes);
    void add_send(int node, Delivery delivery, std::string bytes, Plan& plan, int ready_count = 1);
    RouteDecision on_failed_node(RouteDecision d, const parser::Classification& cls, const std::vector<NodeView>& nodes) const;
    void answer_error(std::string_view sqlstate, const std::string& message, const std::vector<NodeView>& nodes, Plan& plan);
    std::string replay_of_bind(const Run& run) const;

    bool close_pinned_batch(Plan& plan);  // a Sync for the Flush-ended batch still open on its node
    void apply_admin_overlay();
    const RoutingPolicy& policy() const { return session_policy_ ? *session_policy_ : ctx_.policy; }
    const shm::NodeSnapshot& snapshot() const;  // refreshes snapshot_
    char client_status(const std::vector<NodeView>& nodes) const;

    DispatchContext ctx_;
    mutable shm::NodeSnapshot snapshot_;  // reused: each statement refreshes only the configured nodes
    SessionModel model_;
    int primary_;
    bool last_multi_ = false;
    std::set<std::string> unpublished_writes_;  // tables written since the last idle ReadyForQuery
    PlanStart start_;
    NodeSet lost_;                       // standbys this session lost

    AdminSession admin_;                           // PGPOOL SET overlay, for SHOW/PGPOOL answers
    std::optional<RoutingPolicy> session_policy_;  // rebuilt when PGPOOL SET changes a routing key
    std::map<std::string, std::string> admin_statements_;  // extended-protocol statements splitpool answers
    std::map<std::string, std::string> admin_portals_;

    // The extended-protocol batch being collected until Sync or Flush.
    std::string batch_;
    std::vector<std::pair<char, size_t>> batch_msgs_;  // type, offset into batch_
    std::vector<Run> runs_;
    std::vector<std::pair<std::string, size_t>> parsed_;  // statements parsed in this batch, message index
    int existing_portal_node_ = -1;                    // the batch uses a portal bound by an earlier one
    // Statements the batch creates (new names): by a Parse (its message index) or by the SQL PREPARE
    // of an Execute (its ordinal), so that an error before them undoes them.
    struct Created {
        size_t parse = 0;
        int execute = -1;
        std::string name;
    };
    std::vector<size_t> executes_;  // message index of each Execute of the batch
    std::vector<Created> created_;
    // The statements before the batch's first DEALLOCATE (ALL): restored when an error before it
    // made PostgreSQL skip it. `execute` is its ordinal; -1: none.
    int forgetting_execute_ = -1;
    std::map<std::string, PreparedStatement> before_forgetting_;
    NodeSet forgetting_elsewhere_;
    int pinned_node_ = -1;                             // a Flush-ended batch continues on this node
    bool commit_sent_as_rollback_ = false;             // main_batch made the opening COMMIT a ROLLBACK
};

}  // namespace splitpool::daemon
