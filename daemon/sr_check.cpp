// The streaming replication worker (pgpool's sr_check): finds the primary with pg_is_in_recovery()
// unless a node is ALWAYS_PRIMARY, measures each standby's delay in WAL bytes and, from the
// primary's pg_stat_replication, in replay time with its state, and writes it all to shared memory.
#include <algorithm>
#include <cinttypes>
#include <ctime>
#include <optional>
#include <memory>
#include <sstream>
#include <vector>

#include "daemon/health.hpp"
#include "daemon/hook.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/log.hpp"
#include "daemon/node_status_file.hpp"
#include "daemon/primary_vote.hpp"

namespace splitpool::daemon {

namespace {

struct NodeFacts {
    bool known = false;
    bool in_recovery = false;
    int64_t lsn = -1;       // primary: current WAL position; standby: last replayed
    std::string upstream;   // a standby: "host:port" its WAL receiver streams from, "-" when none
};

// One round trip per node. The sender of a standby (pg_stat_wal_receiver, as pgpool's
// verify_backend_node_status) tells a real primary from a false one.
constexpr const char* kFactsQuery =
    "SELECT pg_catalog.pg_is_in_recovery()::text || ' ' || coalesce((CASE WHEN pg_catalog.pg_is_in_recovery() "
    "THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END)::text, '-') || ' ' || "
    "coalesce((SELECT sender_host || ':' || sender_port FROM pg_catalog.pg_stat_wal_receiver "
    "WHERE status = 'streaming' LIMIT 1), '-')";
constexpr const char* kReplicationQuery =
    "SELECT coalesce(application_name, '') || '|' || coalesce(state, '') || '|' || coalesce(sync_state, '') || '|' || "
    "coalesce((extract(epoch FROM replay_lag) * 1000000)::bigint, 0) FROM pg_catalog.pg_stat_replication";

shm::ReplicationState state_named(const std::string& s) {
    using R = shm::ReplicationState;
    return s == "streaming" ? R::Streaming : s == "catchup" ? R::Catchup : s == "startup" ? R::Startup
         : s == "backup" ? R::Backup : s == "stopping" ? R::Stopping : R::Unknown;
}

shm::SyncState sync_named(const std::string& s) {
    using S = shm::SyncState;
    return s == "async" ? S::Async : s == "potential" ? S::Potential : s == "sync" ? S::Sync
         : s == "quorum" ? S::Quorum : S::Unknown;
}

class Worker {
public:
    Worker(const Config& c, shm::StatusTable& t) : c_(c), t_(t), conns_(c.backends.size()) {}

    void round() {
        std::vector<NodeFacts> facts(c_.backends.size());
        for (size_t i = 0; i < facts.size(); ++i) facts[i] = ask(int(i));
        find_primary(facts);
        note_delays(facts);
        note_replication();
    }

private:
    std::optional<std::vector<std::string>> query(int node, const std::string& sql) {
        auto& conn = conns_[size_t(node)];
        if (!conn) {
            LoginResult r = check_login(c_, node, c_.sr_check_user, c_.sr_check_password, c_.sr_check_database,
                                        c_.health_check_timeout > 0 ? c_.health_check_timeout : 20, c_.connect_timeout);
            if (!r.conn) {
                PROXY_LOG(Debug1, "streaming replication check: node %d: %s", node, r.log_message.c_str());
                return std::nullopt;
            }
            conn = std::move(r.conn);
        }
        auto rows = run_side_query(*conn, sql, io::deadline_after_ms(int64_t(c_.connect_timeout)));
        if (!rows) conn.reset();
        return rows;
    }

    NodeFacts ask(int node) {
        NodeFacts f;
        // A detached node is not asked (as pgpool's find_primary_node): a dead one would cost a
        // connect attempt every round, and it is never chosen anyway.
        if (!usable_node(node)) {
            conns_[size_t(node)].reset();
            return f;
        }
        auto rows = query(node, kFactsQuery);
        if (!rows || rows->empty()) return f;
        std::istringstream in(rows->front());
        std::string recovery, lsn;
        in >> recovery >> lsn >> f.upstream;
        f.known = true;
        f.in_recovery = recovery == "true";
        f.lsn = parse_lsn(lsn);
        return f;
    }

    bool usable_node(int node) const {
        auto status = static_cast<shm::NodeStatus>(t_.node(node).status.load());
        return status == shm::NodeStatus::Up || status == shm::NodeStatus::Waiting;
    }

    // The node a standby's "host:port" sender names (backend hostname and port as configured).
    int node_at(const std::string& upstream) const {
        size_t colon = upstream.rfind(':');
        if (colon == std::string::npos) return -1;
        std::string host = upstream.substr(0, colon), port = upstream.substr(colon + 1);
        for (size_t i = 0; i < c_.backends.size(); ++i)
            if (c_.backends[i].hostname == host && std::to_string(c_.backends[i].port) == port) return int(i);
        return -1;
    }

    void find_primary(const std::vector<NodeFacts>& facts) {
        std::vector<NodeSeen> seen(facts.size());
        for (size_t i = 0; i < facts.size(); ++i) {
            seen[i] = {usable_node(int(i)), facts[i].known, facts[i].in_recovery,
                       (c_.backends[i].flags & kFlagAlwaysPrimary) != 0, node_at(facts[i].upstream)};
            if (facts[i].known) t_.node(int(i)).role = uint8_t(facts[i].in_recovery ? shm::NodeRole::Standby : shm::NodeRole::Primary);
        }
        int old = t_.header().primary_node.load();
        PrimaryVote vote = vote_primary(seen, old);
        for (int node : vote.false_primaries) false_primary(node, vote.primary);
        int primary = vote.primary;
        if (primary < 0) {
            if (old < 0) search_timeout();
            return;
        }
        if (old < 0 && searching_since_)
            PROXY_LOG(Log, "found the new primary node %d after %" PRId64 " s", primary, int64_t(time(nullptr)) - searching_since_);
        searching_since_ = 0;
        gave_up_ = false;
        if (primary == old) {
            last_primary_ = primary;
            return;
        }
        t_.header().primary_node = primary;
        t_.node(primary).role = uint8_t(shm::NodeRole::Primary);
        PROXY_LOG(Log, "primary node is %d (%s:%d)", primary, c_.backends[size_t(primary)].hostname.c_str(),
                  c_.backends[size_t(primary)].port);
        if (old < 0 && last_primary_ >= 0 && last_primary_ != primary && !c_.follow_primary_command.empty())
            follow_primary(primary, last_primary_);
        last_primary_ = primary;
    }

    // A node that is not in recovery, while the standbys follow another: detach_false_primary
    // takes it out (as pgpool); otherwise it is only logged, once per episode.
    void false_primary(int node, int primary) {
        if (c_.detach_false_primary) {
            PROXY_LOG(Log, "node %d is a false primary (standbys follow node %d): detaching it", node, primary);
            detach_failed_node(c_, t_, node, "false primary (detach_false_primary)");
            return;
        }
        int64_t now = time(nullptr);
        if (now - false_logged_[size_t(node)] < 60) return;
        false_logged_[size_t(node)] = now;
        PROXY_LOG(Warning, "node %d is not in recovery but the standbys follow node %d (a false primary); "
                  "detach_false_primary is off", node, primary);
    }

    void search_timeout() {
        int64_t now = time(nullptr);
        if (!searching_since_) searching_since_ = now;
        if (c_.search_primary_node_timeout > 0 && now - searching_since_ >= c_.search_primary_node_timeout &&
            !gave_up_) {
            PROXY_LOG(Warning, "no primary node found within search_primary_node_timeout (%d s)",
                      c_.search_primary_node_timeout);
            gave_up_ = true;
        }
    }

    // After a new primary was found: as pgpool, every other node still attached is marked down and
    // follow_primary_command runs for it (the command re-syncs it and usually ends with
    // pcp_attach_node; auto_failback attaches it once it streams from the new primary).
    void follow_primary(int primary, int old_primary) {
        std::vector<int> followers;
        for (int i = 0; i < int(c_.backends.size()); ++i)
            if (i != primary && usable_node(i)) followers.push_back(i);
        for (int i : followers) t_.set_node_status(i, shm::NodeStatus::Down);
        if (!followers.empty()) save_node_status(c_, t_);
        for (int i : followers) {
            HookEvent e;
            e.node = i;
            e.new_main = primary;
            e.old_main = e.old_primary = old_primary;
            PROXY_LOG(Log, "node %d is detached to follow the new primary node %d", i, primary);
            run_hook("follow_primary_command", c_.follow_primary_command, c_, e);
        }
    }

    void note_delays(const std::vector<NodeFacts>& facts) {
        int primary = t_.header().primary_node.load();
        if (primary < 0 || !facts[size_t(primary)].known) return;
        int64_t head = facts[size_t(primary)].lsn;
        for (size_t i = 0; i < facts.size(); ++i) {
            if (int(i) == primary || !facts[i].known || facts[i].lsn < 0 || head < 0) continue;
            int64_t delay = std::max<int64_t>(0, head - facts[i].lsn);
            t_.node(int(i)).replication_delay = delay;
            bool over = c_.delay_threshold > 0 && delay > c_.delay_threshold;
            if (c_.log_standby_delay == "always" || (c_.log_standby_delay == "if_over_threshold" && over))
                PROXY_LOG(Log, "replication delay of standby node %zu: %" PRId64 " bytes", i, delay);
        }
    }

    void note_replication() {
        int primary = t_.header().primary_node.load();
        if (primary < 0) return;
        auto rows = query(primary, kReplicationQuery);
        if (!rows) return;
        for (int i = 0; i < t_.num_nodes(); ++i) {
            if (i == primary) continue;
            std::string app = t_.node_text(i).application_name;
            shm::NodeSlot& n = t_.node(i);
            bool seen = false;
            for (const std::string& row : *rows) {
                std::vector<std::string> f;
                std::istringstream in(row);
                for (std::string part; std::getline(in, part, '|');) f.push_back(part);
                if (f.size() != 4 || app.empty() || f[0] != app) continue;
                seen = true;
                n.replication_state = uint8_t(state_named(f[1]));
                n.replication_sync_state = uint8_t(sync_named(f[2]));
                n.replication_lag_us = std::stoll(f[3]);
            }
            if (!seen) n.replication_state = uint8_t(shm::ReplicationState::Unknown);
        }
    }

    const Config& c_;
    shm::StatusTable& t_;
    std::vector<std::unique_ptr<BackendConn>> conns_;
    std::vector<int64_t> false_logged_ = std::vector<int64_t>(size_t(shm::kMaxNodes), 0);
    int64_t searching_since_ = 0;
    bool gave_up_ = false;
    int last_primary_ = -1;
};

}  // namespace

void run_sr_check(const Config& c, shm::StatusTable& table) {
    start_worker("sr check");
    Worker worker(c, table);
    while (!g_worker_stop) {
        worker.round();
        nap(int64_t(c.sr_check_period) * 1000);
    }
    _exit(0);
}

}  // namespace splitpool::daemon
