// The only API to shared memory: node status and weights, per-child status, cancel keys.
#include "shm/status_table.hpp"

#include <cstring>
#include <ctime>
#include <new>

namespace splitpool::shm {
namespace {

// Seqlock writer: one writer per slot (the owning child, or the parent for nodes).
template <typename Fn>
void seq_write(std::atomic<uint32_t>& seq, Fn&& write) {
    seq.fetch_add(1, std::memory_order_acq_rel);  // odd: writing
    std::atomic_thread_fence(std::memory_order_release);
    write();
    std::atomic_thread_fence(std::memory_order_release);
    seq.fetch_add(1, std::memory_order_release);  // even: stable
}

// Seqlock reader with a bounded number of tries: a writer killed mid-write leaves the sequence odd
// forever, and a reader must never spin on a dead process; it then takes the text as it is.
template <typename Fn>
void seq_read(const std::atomic<uint32_t>& seq, Fn&& read) {
    for (int attempt = 0; attempt < 64; ++attempt) {
        uint32_t before = seq.load(std::memory_order_acquire);
        read();
        std::atomic_thread_fence(std::memory_order_acquire);
        if ((before & 1u) == 0 && seq.load(std::memory_order_acquire) == before) return;
    }
}

void copy_text(char* dst, size_t cap, const std::string& src) {
    size_t n = std::min(src.size(), cap - 1);
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

std::string read_text(const char* src, size_t cap) { return std::string(src, strnlen(src, cap)); }

// FNV-1a over the lowercased name: the home slot from the low bits, the 32-bit tag from the rest.
uint64_t relation_hash(std::string_view relation) {
    uint64_t h = 1469598103934665603ull;
    for (char ch : relation) {
        h ^= static_cast<unsigned char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        h *= 1099511628211ull;
    }
    return h;
}

uint32_t relation_tag(uint64_t hash) {
    auto tag = static_cast<uint32_t>(hash >> 32);
    return tag ? tag : 1;  // 0 marks a slot never used
}

// Modular age of a 32-bit millisecond stamp; wrap-around only ever makes an old entry look recent.
bool within(uint64_t word, int64_t now_ms, int64_t window_ms) {
    return word != 0 && int64_t(uint32_t(uint32_t(now_ms) - uint32_t(word))) < window_ms;
}

}  // namespace

StatusTable::StatusTable(std::unique_ptr<Segment> segment) : segment_(std::move(segment)) {
    char* base = static_cast<char*>(segment_->data());
    header_ = reinterpret_cast<Header*>(base);
    nodes_ = reinterpret_cast<NodeSlot*>(base + sizeof(Header));
    recent_writes_ = reinterpret_cast<RecentWrite*>(base + kRecentWritesOffset);
    children_ = reinterpret_cast<ChildSlot*>(base + kChildrenOffset);
}

std::unique_ptr<StatusTable> StatusTable::create(const std::string& name, uint32_t num_children,
                                                 std::string* error) {
    auto segment = Segment::create(name, segment_size(num_children), error);
    if (!segment) return nullptr;
    void* base = segment->data();
    // The segment is zeroed; constructing in place makes the atomics' lifetime start formally.
    auto* header = new (base) Header{};
    auto* nodes = new (static_cast<char*>(base) + sizeof(Header)) NodeSlot[kMaxNodes]{};
    new (static_cast<char*>(base) + kRecentWritesOffset) RecentWrite[kRecentWrites]{};
    new (static_cast<char*>(base) + kChildrenOffset) ChildSlot[num_children]{};
    header->layout_version = kLayoutVersion;
    header->num_children = num_children;
    header->primary_node = -1;
    header->started_at = static_cast<int64_t>(time(nullptr));
    for (int i = 0; i < kMaxNodes; ++i) nodes[i].replication_delay = nodes[i].replication_lag_us = -1;
    header->magic = kMagic;  // last: a reader that sees the magic sees a complete header
    return std::unique_ptr<StatusTable>(new StatusTable(std::move(segment)));
}

std::unique_ptr<StatusTable> StatusTable::open(const std::string& name, std::string* error) {
    auto segment = Segment::open(name, error);
    if (!segment) return nullptr;
    auto* header = static_cast<const Header*>(segment->data());
    if (segment->size() < sizeof(Header) || header->magic != kMagic || header->layout_version != kLayoutVersion ||
        segment->size() < segment_size(header->num_children)) {
        if (error) *error = "shared memory segment \"" + name + "\" has another layout version";
        return nullptr;
    }
    return std::unique_ptr<StatusTable>(new StatusTable(std::move(segment)));
}

void StatusTable::set_node_text(int id, const std::string& hostname, int port, const std::string& application_name) {
    NodeSlot& n = nodes_[id];
    seq_write(n.text_seq, [&] {
        copy_text(n.hostname, sizeof n.hostname, hostname);
        copy_text(n.application_name, sizeof n.application_name, application_name);
        n.port = port;
    });
}

NodeText StatusTable::node_text(int id) const {
    const NodeSlot& n = nodes_[id];
    NodeText out;
    seq_read(n.text_seq, [&] {
        out.hostname = read_text(n.hostname, sizeof n.hostname);
        out.application_name = read_text(n.application_name, sizeof n.application_name);
        out.port = n.port;
    });
    return out;
}

void StatusTable::set_node_status(int id, NodeStatus status) {
    NodeSlot& n = nodes_[id];
    if (n.status.exchange(static_cast<uint8_t>(status)) != static_cast<uint8_t>(status))
        n.status_changed_at = static_cast<int64_t>(time(nullptr));
}

NodeSnapshot StatusTable::snapshot() const {
    NodeSnapshot s;
    snapshot_into(s);
    return s;
}

void StatusTable::snapshot_into(NodeSnapshot& s) const {
    s.num_nodes = num_nodes();
    s.primary = header_->primary_node.load(std::memory_order_relaxed);
    for (int i = 0; i < s.num_nodes; ++i) {
        const NodeSlot& n = nodes_[i];
        s.nodes[i] = {static_cast<NodeStatus>(n.status.load(std::memory_order_relaxed)),
                      static_cast<NodeRole>(n.role.load(std::memory_order_relaxed)),
                      n.weight.load(std::memory_order_relaxed)};
    }
}

void StatusTable::count_sessions(NodeSnapshot& s) const {
    for (int i = 0; i < s.num_nodes && i < kMaxNodes; ++i) s.nodes[i].sessions = 0;
    for (int c = 0; c < num_children(); ++c) {
        const ChildSlot& slot = children_[c];
        int node = slot.load_balance_node.load(std::memory_order_relaxed);
        if (node >= 0 && node < s.num_nodes && node < kMaxNodes && slot.pid.load(std::memory_order_relaxed) != 0)
            ++s.nodes[node].sessions;
    }
}

void StatusTable::set_child_text(int slot, const ChildText& text) {
    ChildSlot& c = children_[slot];
    seq_write(c.text_seq, [&] {
        copy_text(c.client_addr, sizeof c.client_addr, text.client_addr);
        copy_text(c.database, sizeof c.database, text.database);
        copy_text(c.user, sizeof c.user, text.user);
        copy_text(c.application_name, sizeof c.application_name, text.application_name);
    });
}

ChildText StatusTable::child_text(int slot) const {
    const ChildSlot& c = children_[slot];
    ChildText out;
    seq_read(c.text_seq, [&] {
        out.client_addr = read_text(c.client_addr, sizeof c.client_addr);
        out.database = read_text(c.database, sizeof c.database);
        out.user = read_text(c.user, sizeof c.user);
        out.application_name = read_text(c.application_name, sizeof c.application_name);
    });
    return out;
}

void StatusTable::reset_child(int slot, int32_t pid) {
    ChildSlot& c = children_[slot];
    c.client_cancel_pid = 0;
    c.client_cancel_secret = 0;
    for (auto& key : c.backend) key.pid.store(0, std::memory_order_relaxed);
    set_child_text(slot, {});
    c.client_connected_at = 0;
    c.load_balance_node = -1;
    c.sessions_served = 0;
    c.started_at = pid ? static_cast<int64_t>(time(nullptr)) : 0;
    c.state = static_cast<uint8_t>(pid ? ChildState::WaitingForClient : ChildState::Gone);
    c.pid = pid;
}

void StatusTable::note_relation_written(std::string_view relation, int64_t now_ms, int64_t window_ms) {
    uint64_t hash = relation_hash(relation);
    uint32_t tag = relation_tag(hash);
    uint64_t fresh = uint64_t(tag) << 32 | uint32_t(now_ms);
    for (int i = 0; i < kRecentWriteProbe; ++i) {
        std::atomic<uint64_t>& slot = recent_writes_[(hash + uint64_t(i)) & (kRecentWrites - 1)].word;
        uint64_t seen = slot.load(std::memory_order_acquire);
        // Take the slot when it is ours or free; a lost race re-examines what the winner left.
        while (uint32_t(seen >> 32) == tag || !within(seen, now_ms, window_ms)) {
            bool ours_and_newer = uint32_t(seen >> 32) == tag && int32_t(uint32_t(seen) - uint32_t(now_ms)) > 0;
            if (ours_and_newer || slot.compare_exchange_weak(seen, fresh, std::memory_order_acq_rel)) return;
        }
    }
    // No room near the home slot: until the window passes, every table counts as written.
    int64_t until = now_ms + window_ms, old = header_->recent_writes_full_until_ms.load();
    while (old < until && !header_->recent_writes_full_until_ms.compare_exchange_weak(old, until)) {
    }
}

bool StatusTable::relation_written_within(std::string_view relation, int64_t now_ms, int64_t window_ms) const {
    if (header_->recent_writes_full_until_ms.load(std::memory_order_relaxed) > now_ms) return true;
    uint64_t hash = relation_hash(relation);
    uint32_t tag = relation_tag(hash);
    for (int i = 0; i < kRecentWriteProbe; ++i) {
        uint64_t word = recent_writes_[(hash + uint64_t(i)) & (kRecentWrites - 1)].word.load(std::memory_order_acquire);
        if (uint32_t(word >> 32) == tag && within(word, now_ms, window_ms)) return true;
    }
    return false;
}

int StatusTable::find_cancel_key(int32_t pid, uint32_t secret) const {
    for (int i = 0; i < num_children(); ++i) {
        const ChildSlot& c = children_[i];
        if (c.pid.load() != 0 && c.client_cancel_pid.load() == pid && c.client_cancel_secret.load() == secret)
            return i;
    }
    return -1;
}

}  // namespace splitpool::shm
