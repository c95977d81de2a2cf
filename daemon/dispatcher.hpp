// Turns client messages into plans: which node gets which bytes, whose replies reach the client,
// and what must be replayed so that several nodes behave like one PostgreSQL session.
#pragma once

#include <cstdint>
#include <map>
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
    bool retryable = false;   // balanced read outside a transaction: may be redone on the primary
    bool counts_as_select = false;  // a read: counted in the node's select_cnt (pgpool's SHOW POOL_NODES)
    shm::StatementClass stmt_class = shm::StatementClass::Other;
    std::string retry_key;    // cache key remembered when a retry happens
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
    std::set<std::string>& primary_only;  // statements a standby refused: primary from now on
    SideQuery side_query;                 // catalog lookups on the primary
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
    // Statements that bring a newly connected node to the session's settings.
    const std::vector<std::string>& session_replay() const { return session_sets_; }
    int primary() const { return primary_; }
    // A standby refused this statement (by cache key): it goes to the primary from now on.
    void remember_primary_only(const std::string& key) { ctx_.primary_only.insert(key); }
    // Each ReadyForQuery the client sees: keeps the router's transaction state exact and publishes
    // the writes of a finished transaction (read_your_writes_window).
    void note_ready(char status);

private:
    struct Statement {
        std::string parse_bytes;   // the Parse message, to re-parse on another node
        uint64_t nodes = 0;        // bit per node (nodes < 64) where it exists
        int home = -1;             // node it was parsed for
        bool read = false;         // a plain read (select_cnt)
        shm::StatementClass stmt_class = shm::StatementClass::Other;
    };

    void plan_query(std::string_view sql, const char* msg, size_t size, const std::vector<NodeView>& nodes, Plan& plan);
    void plan_batch(bool sync, const std::vector<NodeView>& nodes, Plan& plan);
    int bind_node(const Statement& st);
    bool answer_admin_batch(bool sync, const std::vector<NodeView>& nodes, Plan& plan);
    char client_status(const std::vector<NodeView>& nodes) const;
    int target_for(const parser::Classification& cls, std::string_view sql, const std::vector<NodeView>& nodes,
                   bool& balanced);
    void fan_out(const parser::Classification& cls, const std::string& bytes, const std::vector<NodeView>& nodes,
                 bool tx_only, Plan& plan);
    void add_send(int node, Delivery delivery, std::string bytes, const std::vector<NodeView>& nodes, Plan& plan,
                  int ready_count = 1);
    void note_fan_out(const parser::Classification& cls);
    void apply_admin_overlay();
    const RoutingPolicy& policy() const { return session_policy_ ? *session_policy_ : ctx_.policy; }
    void note_session_state(const parser::Classification& cls, std::string_view sql, int node);
    bool in_transaction(const std::vector<NodeView>& nodes) const;
    int failed_node(const std::vector<NodeView>& nodes) const;
    std::string query_of(const char* msg, size_t size) const;

    DispatchContext ctx_;
    SessionRouteState route_state_;
    Mt19937Random rng_;
    int primary_;
    bool last_multi_ = false;
    std::string key_;                      // reused cache-key buffer
    std::set<std::string> unpublished_writes_;  // tables written since the last idle ReadyForQuery

    std::vector<std::string> session_sets_;
    std::map<std::string, Statement> statements_;  // extended protocol, by name ("" = unnamed)
    std::map<std::string, int> portals_;
    std::map<std::string, int> sql_prepared_;      // SQL PREPARE name -> node
    std::map<std::string, int> cursors_;           // DECLARE name -> node
    AdminSession admin_;                           // PGPOOL SET overlay, for SHOW/PGPOOL answers
    std::optional<RoutingPolicy> session_policy_;  // rebuilt when PGPOOL SET changes a routing key
    std::map<std::string, std::string> admin_statements_;  // extended-protocol statements splitpool answers
    std::map<std::string, std::string> admin_portals_;

    // The extended-protocol batch being collected until Sync or Flush.
    std::string batch_;
    std::vector<std::pair<char, size_t>> batch_msgs_;  // type, offset into batch_
    int pinned_node_ = -1;                             // a Flush-ended batch continues on this node
    bool batch_reads_ = false;                         // the batch parses a read
    shm::StatementClass batch_class_ = shm::StatementClass::Other;
};

}  // namespace splitpool::daemon
