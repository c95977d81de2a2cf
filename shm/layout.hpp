// Flat, pointer-free, versioned layout of the shared status table (nodes, children, counters).
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace splitpool::shm {

constexpr uint32_t kMagic = 0x53504c54;  // "SPLT"
// Bump whenever a struct below changes shape: a reader of another version refuses the segment.
constexpr uint32_t kLayoutVersion = 5;
constexpr int kMaxNodes = 128;           // pgpool's MAX_NUM_BACKENDS
constexpr int kNameLen = 64;
constexpr int kHostLen = 256;

// Statement classes counted per node (SHOW POOL_BACKEND_STATS, metrics).
enum class StatementClass : uint8_t { Select, Insert, Update, Delete, Ddl, Other, Count };
constexpr int kStatementClasses = int(StatementClass::Count);
// Upper bounds (microseconds) of the query-duration histogram; a last bucket counts everything.
constexpr uint64_t kDurationBoundsUs[] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
                                          1000000, 2500000, 5000000};
constexpr int kDurationBuckets = int(sizeof(kDurationBoundsUs) / sizeof(kDurationBoundsUs[0])) + 1;

enum class NodeStatus : uint8_t { Unused = 0, Waiting = 1, Up = 2, Down = 3 };
enum class NodeRole : uint8_t { Unknown = 0, Primary = 1, Standby = 2 };
// pg_stat_replication.state and .sync_state of a standby, as the primary reports them.
enum class ReplicationState : uint8_t { Unknown = 0, Startup, Catchup, Streaming, Backup, Stopping };
enum class SyncState : uint8_t { Unknown = 0, Async, Potential, Sync, Quorum };

// What a child is doing, as pgpool's process listing shows it.
enum class ChildState : uint8_t {
    Gone = 0,           // no process in this slot (between reap and respawn)
    WaitingForClient,   // idle, in accept()
    Authenticating,     // client connected, startup/auth in progress
    Idle,               // session open, no query running
    Active,             // a query is running
    IdleInTransaction,  // session open inside a transaction block
};

struct alignas(64) Header {
    uint32_t magic;
    uint32_t layout_version;
    uint32_t num_nodes;                       // node slots in use (config backends)
    uint32_t num_children;                    // child slots in the segment
    std::atomic<uint64_t> config_generation;  // bumped by the parent on every successful reload
    std::atomic<int32_t> parent_pid;
    std::atomic<int32_t> active_clients;      // clients past accept(), for reserved_connections
    std::atomic<int32_t> primary_node;        // -1 when no primary is known
    std::atomic<int64_t> started_at;          // unix seconds
    // Time from sending a statement to its ReadyForQuery, as the client sees it (not cumulative).
    std::atomic<uint64_t> query_duration_bucket[kDurationBuckets];
    std::atomic<uint64_t> query_duration_sum_us;
    std::atomic<uint64_t> query_count;
    std::atomic<uint64_t> sessions_total;     // every session served since start (children come and go)
    // The recent-writes table had no room: until then (CLOCK_MONOTONIC ms) every table counts as written.
    std::atomic<int64_t> recent_writes_full_until_ms;
};

// One backend node. Hot fields are atomics; the text fields are written by the parent only,
// under `text_seq` (a seqlock: odd while writing), and never while a reader could block it.
struct alignas(64) NodeSlot {
    std::atomic<uint8_t> status;
    std::atomic<uint8_t> role;
    std::atomic<uint32_t> flags;
    std::atomic<double> weight;
    std::atomic<uint64_t> select_count;
    std::atomic<int64_t> status_changed_at;   // unix seconds
    std::atomic<int64_t> replication_delay;   // bytes, -1 unknown
    std::atomic<int32_t> backend_connections; // open connections from all children
    std::atomic<uint64_t> statements[kStatementClasses];  // sent to this node, by StatementClass
    std::atomic<uint64_t> errors;             // ErrorResponses the node sent
    std::atomic<uint64_t> health_check_total;
    std::atomic<uint64_t> health_check_success;
    std::atomic<uint64_t> health_check_fail;
    std::atomic<uint64_t> health_check_skip;
    std::atomic<uint64_t> health_check_retries;   // retries over all rounds
    std::atomic<uint32_t> health_check_max_retry; // most retries one round needed
    std::atomic<uint64_t> health_check_duration_sum_ms;
    std::atomic<uint32_t> health_check_max_ms;
    std::atomic<uint32_t> health_check_min_ms;
    std::atomic<int64_t> health_check_last;       // unix seconds, 0 never
    std::atomic<int64_t> health_check_last_success;
    std::atomic<int64_t> health_check_last_skip;
    std::atomic<int64_t> health_check_last_fail;
    std::atomic<int64_t> replication_lag_us;      // replay_lag from pg_stat_replication, -1 unknown
    std::atomic<uint8_t> replication_state;       // ReplicationState
    std::atomic<uint8_t> replication_sync_state;  // SyncState
    // A session lost its connection to this node: new sessions skip it until then (CLOCK_MONOTONIC ms).
    std::atomic<int64_t> unreachable_until_ms;
    std::atomic<uint32_t> text_seq;
    int32_t port;
    char hostname[kHostLen];
    char application_name[kNameLen];
};

// Cross-session read-your-writes: one slot per recently written table, packed into one word so a
// writer updates it with a single compare-and-swap: the high 32 bits hash the table's bare name
// (never 0), the low 32 bits are the write's CLOCK_MONOTONIC milliseconds modulo 2^32. A slot whose
// write is older than the window is free for another table; a hash collision only sends a read to
// the primary, never a read that must see a write to a standby.
struct RecentWrite {
    std::atomic<uint64_t> word;
};
constexpr int kRecentWrites = 4096;    // a power of two
constexpr int kRecentWriteProbe = 8;  // slots tried from a table's home slot (one cache line)

// The cancel key of one backend connection of a session.
struct BackendKey {
    std::atomic<int32_t> pid;
    std::atomic<uint32_t> secret;
};

// One child process. Written by that child only (and cleared by the parent after reaping it).
struct alignas(64) ChildSlot {
    std::atomic<int32_t> pid;
    std::atomic<uint8_t> state;
    // The open session's load-balance node, -1 without one. Per-node session counts are derived from
    // these slots (StatusTable::count_sessions), so a child that dies mid-session leaves no count
    // behind: the parent's reset_child clears its slot.
    std::atomic<int16_t> load_balance_node;
    std::atomic<int64_t> started_at;           // unix seconds
    std::atomic<int64_t> client_connected_at;  // unix seconds, 0 without client
    std::atomic<uint64_t> sessions_served;
    std::atomic<int32_t> client_cancel_pid;    // the BackendKeyData the client was given
    std::atomic<uint32_t> client_cancel_secret;
    std::atomic<uint32_t> text_seq;
    char client_addr[kNameLen];
    char database[kNameLen];
    char user[kNameLen];
    char application_name[kNameLen];
    BackendKey backend[kMaxNodes];             // per node; pid 0 = no connection in this session
};

static_assert(std::is_standard_layout_v<Header> && std::is_standard_layout_v<NodeSlot> &&
              std::is_standard_layout_v<ChildSlot> && std::is_standard_layout_v<RecentWrite>);
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<double>::is_always_lock_free &&
              std::atomic<uint8_t>::is_always_lock_free && std::atomic<int16_t>::is_always_lock_free,
              "shared atomics must be lock-free: a lock inside a dead process would wedge the others");

// Segment = Header, NodeSlot[kMaxNodes], RecentWrite[kRecentWrites], then ChildSlot[num_children].
constexpr size_t kRecentWritesOffset = sizeof(Header) + sizeof(NodeSlot) * kMaxNodes;
constexpr size_t kChildrenOffset = kRecentWritesOffset + sizeof(RecentWrite) * kRecentWrites;
constexpr size_t segment_size(uint32_t num_children) { return kChildrenOffset + sizeof(ChildSlot) * num_children; }
static_assert(kRecentWritesOffset % 64 == 0 && kChildrenOffset % 64 == 0);

}  // namespace splitpool::shm
