// The only API to shared memory: node status and weights, per-child status, cancel keys.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "shm/layout.hpp"
#include "shm/segment.hpp"

namespace splitpool::shm {

// What a router needs of the nodes, copied out in one pass (a few atomic loads per node).
struct NodeSnapshot {
    int num_nodes = 0;
    int primary = -1;
    struct Node {
        NodeStatus status;
        NodeRole role;
        double weight;
        int32_t sessions = -1;  // open sessions whose load-balance node this is; -1 = not counted
    } nodes[kMaxNodes];
};

struct NodeText {
    std::string hostname;
    int port = 0;
    std::string application_name;
};

struct ChildText {
    std::string client_addr, database, user, application_name;
};

class StatusTable {
public:
    // Parent at start: a fresh segment sized for `num_children` child slots.
    static std::unique_ptr<StatusTable> create(const std::string& name, uint32_t num_children, std::string* error);
    // Anyone else: maps an existing segment; refuses another magic or layout version.
    static std::unique_ptr<StatusTable> open(const std::string& name, std::string* error);

    Header& header() const { return *header_; }
    const std::string& name() const { return segment_->name(); }

    // nodes
    NodeSlot& node(int id) const { return nodes_[id]; }
    int num_nodes() const { return static_cast<int>(header_->num_nodes); }
    void set_num_nodes(int n) { header_->num_nodes = static_cast<uint32_t>(n); }
    void set_node_text(int id, const std::string& hostname, int port, const std::string& application_name);
    NodeText node_text(int id) const;
    void set_node_status(int id, NodeStatus status);
    NodeSnapshot snapshot() const;
    // The same into `s`, writing only its first num_nodes entries (a NodeSnapshot is 3 kB, and its
    // construction, which sets every entry, was most of a routed statement's snapshot cost).
    void snapshot_into(NodeSnapshot& s) const;
    // Fills `s`'s per-node session counts from the child slots (one load per child: at session start only).
    void count_sessions(NodeSnapshot& s) const;

    // Cross-session read-your-writes, by the table's bare name (case-insensitive); times are
    // CLOCK_MONOTONIC milliseconds, the same clock in every process.
    void note_relation_written(std::string_view relation, int64_t now_ms, int64_t window_ms);
    bool relation_written_within(std::string_view relation, int64_t now_ms, int64_t window_ms) const;

    // children
    int num_children() const { return static_cast<int>(header_->num_children); }
    ChildSlot& child(int slot) const { return children_[slot]; }
    void set_child_text(int slot, const ChildText& text);
    ChildText child_text(int slot) const;
    void reset_child(int slot, int32_t pid);   // owner at start, parent after reap (pid 0)
    // The child slot whose client holds this cancel key, or -1.
    int find_cancel_key(int32_t pid, uint32_t secret) const;

private:
    explicit StatusTable(std::unique_ptr<Segment> segment);
    std::unique_ptr<Segment> segment_;
    Header* header_;
    NodeSlot* nodes_;
    RecentWrite* recent_writes_;
    ChildSlot* children_;
};

}  // namespace splitpool::shm
