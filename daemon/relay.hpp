// The query phase of a session: moves protocol messages between the client and its backend nodes
// on the child's libev loop, framing them on the way and inspecting only what routing and pooling need.
#pragma once

#include <ev.h>

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "daemon/backend_pool.hpp"
#include "daemon/config.hpp"
#include "daemon/dispatcher.hpp"
#include "daemon/io/buffer.hpp"
#include "daemon/io/conn.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

enum class RelayEnd {
    ClientTerminated,  // Terminate message: backends are clean to pool
    ClientClosed,      // socket closed or broken
    BackendFailed,     // a node closed or sent garbage; the client got an error
    IdleTimeout,       // client_idle_limit
    Shutdown,          // fast shutdown
    ProtocolError,     // the client sent a malformed message; it got an error
};

struct RelayContext {
    struct ev_loop* loop;
    io::Stream client;
    BackendSet& set;
    const Config& config;
    shm::StatusTable& table;
    int child_slot;
    int primary_node;
    const volatile int* fast_shutdown;
    Dispatcher& dispatcher;
    // Opens the connection to a node on first use; false after writing the client's error to `client_error`.
    std::function<bool(int node, std::string& client_error)> connect_node;
    const volatile int* parent_gone = nullptr;  // the parent died: end the session once no transaction is open
};

class Relay {
public:
    explicit Relay(RelayContext& ctx);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    RelayEnd run();
    // True when no node owes a reply and no message is half relayed: the set may be reset and pooled.
    bool clean() const;

private:
    // Work sent to a node and not yet fully answered, in order; its Delivery says where replies go.
    struct Unit {
        Delivery delivery = Delivery::Forward;
        int ready_left = 1;          // ReadyForQuery messages still owed (0: open Flush-ended batch)
        bool retryable = false;      // hold the reply's head until it is clear the read succeeded
        bool retrying = false;       // a standby refused it: swallow the rest, then redo on the primary
        bool swallow_ready = false;  // a Flush-ended batch closed by splitpool's Sync: its ReadyForQuery is ours
        std::string retry_bytes;
        std::string retry_prepare;   // statements to create on the primary before the retry
        std::vector<std::shared_ptr<const parser::Classification>> retry_statements;
        std::string held;            // reply messages held back while retryable
        int64_t sent_us = 0;         // for the query-duration histogram (Forward units)
        int executed = -1;           // a batch's Forward: its Executes completed so far (from Send::first_execute)
    };

    struct NodeIo {
        Relay* relay = nullptr;
        int node = -1;
        ev_io read_watcher;
        ev_io write_watcher;
        std::string out;             // bytes for the node not yet written
        std::deque<Unit> units;
        size_t passthrough = 0;      // bytes of a large message still to stream unread
        Delivery passthrough_delivery = Delivery::Forward;
        bool watched = false;        // read from: a pooled connection is watched from its first use
    };

    enum class Step { Next, Hold, Stop };

    static void on_client_read(struct ev_loop*, ev_io* w, int);
    static void on_client_write(struct ev_loop*, ev_io* w, int);
    static void on_node_read(struct ev_loop*, ev_io* w, int);
    static void on_node_write(struct ev_loop*, ev_io* w, int);
    static void on_idle_timeout(struct ev_loop*, ev_timer* w, int);

    void read_client();
    bool process_client_input();
    Step handle_client_message(char type, const char* data, size_t size);
    bool ensure_connected(int node);
    bool execute(Send& send);
    void report_statements(const Send& send);
    bool idle() const;
    bool between_transactions() const;
    std::vector<NodeView> node_views() const;
    Delivery delivery_for(NodeIo& n) const;
    bool queue_to_node(int node, const char* data, size_t size);
    void read_node(NodeIo& n);
    bool process_node_input(NodeIo& n);
    void inspect_node_message(NodeIo& n, char type, const char* body, size_t size);
    void deliver(NodeIo& n, const char* data, size_t size, char type, const char* body, size_t body_size);
    void finish_unit(NodeIo& n);
    void record_duration(int64_t us);
    bool standby(int node) const;
    bool connect_standby(int node, std::string& error);
    void watch_node(int node);  // starts reading a node's connection
    bool reroute(Send& send);
    bool redo_on_primary(std::string prepare, std::string bytes);
    void abort_transaction(int node);
    void answer_lost_statement(int node, bool in_transaction);
    void lose_node(int node);
    bool flush_node(NodeIo& n);
    bool flush_client();
    void update_flow_control();
    void after_activity();
    void finish(RelayEnd end);
    void fail_client(std::string_view sqlstate, const std::string& message);
    NodeIo* node_io(int node);

    RelayContext& ctx_;
    ev_io client_read_;
    ev_io client_write_;
    ev_timer idle_timer_;
    io::Buffer client_in_;
    std::string client_out_;
    std::vector<NodeIo> nodes_;     // one per configured node; watchers only started once connected
    int copy_node_ = -1;            // node in COPY IN/OUT mode, whose CopyData the client sends
    int lost_in_transaction_ = -1;  // a standby of the open transaction was lost while the client was idle
    int last_query_node_ = -1;      // node answering the last Query: CopyData sent before its CopyInResponse goes there
    int client_passthrough_node_ = -1;
    size_t client_passthrough_ = 0; // bytes of a large CopyData still to stream to copy_node_
    bool done_ = false;
    RelayEnd end_ = RelayEnd::ClientClosed;
};

}  // namespace splitpool::daemon
