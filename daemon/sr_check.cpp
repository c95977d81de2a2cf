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

namespace splitpool::daemon {

namespace {

struct NodeFacts {
    bool known = false;
    bool in_recovery = false;
    int64_t lsn = -1;  // primary: current WAL position; standby: last replayed
};

constexpr const char* kFactsQuery =
    "SELECT pg_catalog.pg_is_in_recovery()::text || ' ' || (CASE WHEN pg_catalog.pg_is_in_recovery() "
    "THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END)::text";
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
                                        c_.health_check_timeout > 0 ? c_.health_check_timeout : 20);
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
        auto status = static_cast<shm::NodeStatus>(t_.node(node).status.load());
        if (status == shm::NodeStatus::Unused) return f;
        auto rows = query(node, kFactsQuery);
        if (!rows || rows->empty()) return f;
        std::istringstream in(rows->front());
        std::string recovery, lsn;
        in >> recovery >> lsn;
        f.known = true;
        f.in_recovery = recovery == "true";
        f.lsn = parse_lsn(lsn);
        return f;
    }

    void find_primary(const std::vector<NodeFacts>& facts) {
        int fixed = -1, found = -1;
        for (size_t i = 0; i < facts.size(); ++i) {
            if (c_.backends[i].flags & kFlagAlwaysPrimary) fixed = fixed < 0 ? int(i) : fixed;
            auto status = static_cast<shm::NodeStatus>(t_.node(int(i)).status.load());
            bool usable = status == shm::NodeStatus::Up || status == shm::NodeStatus::Waiting;
            if (facts[i].known && usable && !facts[i].in_recovery && found < 0) found = int(i);
            if (facts[i].known) t_.node(int(i)).role = uint8_t(facts[i].in_recovery ? shm::NodeRole::Standby : shm::NodeRole::Primary);
        }
        int primary = fixed >= 0 ? fixed : found;
        int old = t_.header().primary_node.load();
        if (primary < 0) {
            if (old < 0) search_timeout();
            return;
        }
        searching_since_ = 0;
        gave_up_ = false;
        if (primary == old) {
            last_primary_ = primary;
            return;
        }
        t_.header().primary_node = primary;
        PROXY_LOG(Log, "primary node is %d (%s:%d)", primary, c_.backends[size_t(primary)].hostname.c_str(),
                  c_.backends[size_t(primary)].port);
        if (old < 0 && !c_.follow_primary_command.empty()) follow_primary(primary, last_primary_);
        last_primary_ = primary;
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

    // After a new primary: follow_primary_command for every other node (pgpool marks them down first).
    void follow_primary(int primary, int old_primary) {
        for (int i = 0; i < int(c_.backends.size()); ++i) {
            if (i == primary) continue;
            HookEvent e;
            e.node = i;
            e.new_main = primary;
            e.old_main = e.old_primary = old_primary;
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
