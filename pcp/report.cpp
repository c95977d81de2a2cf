// The administration reports shared by PCP replies and the SQL-level SHOW POOL_* commands.
#include "pcp/report.hpp"

#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "daemon/io/conn.hpp"

namespace splitpool::pcp {

using shm::ChildState;
using shm::NodeRole;
using shm::NodeStatus;

std::string format_timestamp(int64_t unix_seconds) {
    time_t t = time_t(unix_seconds);
    tm local{};
    localtime_r(&t, &local);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
    return buf;
}

std::string time_or_empty(int64_t unix_seconds) { return unix_seconds > 0 ? format_timestamp(unix_seconds) : ""; }

const char* node_status_name(NodeStatus status) {
    switch (status) {
    case NodeStatus::Unused: return "unused";
    case NodeStatus::Waiting: return "waiting";
    case NodeStatus::Up: return "up";
    case NodeStatus::Down: return "down";
    }
    return "unknown";
}

bool node_valid(const shm::StatusTable& table, int id) {
    auto s = static_cast<NodeStatus>(table.node(id).status.load());
    return s == NodeStatus::Up || s == NodeStatus::Waiting;
}

bool is_primary_node(const shm::StatusTable& table, int id) { return table.header().primary_node.load() == id; }

const char* node_role_name(const shm::StatusTable& table, int id) {
    return is_primary_node(table, id) ? "primary" : "standby";
}

double normalized_weight(const shm::StatusTable& table, int id) {
    double total = 0;
    for (int i = 0; i < table.num_nodes(); ++i) total += table.node(i).weight.load();
    return total > 0 ? table.node(id).weight.load() / total : 0.0;
}

// pgpool pings the node with libpq when health checks are on; a TCP connect is our equivalent.
std::string probe_backend_status(const daemon::Config& config, const shm::StatusTable& table, int id) {
    if (daemon::health_check_settings(config, id).period <= 0) return "unknown";
    shm::NodeText text = table.node_text(id);
    std::string error;
    int timeout = config.connect_timeout > 0 ? config.connect_timeout : 10000;
    int fd = io::connect_to(text.hostname, text.port, timeout, &error);
    if (fd < 0) return "down";
    close(fd);
    return "up";
}

std::string reported_backend_role(const daemon::Config& config, const shm::StatusTable& table, int id) {
    if (config.sr_check_period <= 0) return "unknown";
    switch (static_cast<NodeRole>(table.node(id).role.load())) {
    case NodeRole::Primary: return "primary";
    case NodeRole::Standby: return "standby";
    default: return "unknown";
    }
}

std::string format_double(double value) {
    char buf[64];
    snprintf(buf, sizeof buf, "%f", value);
    return buf;
}

namespace {
std::string flag_names(unsigned flags) {
    std::string out = (flags & daemon::kFlagDisallowToFailover) ? "DISALLOW_TO_FAILOVER" : "ALLOW_TO_FAILOVER";
    if (flags & daemon::kFlagAlwaysPrimary) out += "|ALWAYS_PRIMARY";
    return out;
}
}  // namespace

std::vector<ConfigItem> backend_items(const shm::StatusTable& table) {
    std::vector<ConfigItem> items;
    for (int i = 0; i < table.num_nodes(); ++i) {
        shm::NodeText text = table.node_text(i);
        std::string n = std::to_string(i);
        auto status = static_cast<NodeStatus>(table.node(i).status.load());
        items.push_back({"backend_hostname" + n, text.hostname, "backend #" + n + " hostname"});
        items.push_back({"backend_port" + n, std::to_string(text.port), "backend #" + n + " port number"});
        items.push_back({"backend_weight" + n, format_double(normalized_weight(table, i)), "weight of backend #" + n});
        items.push_back({"backend_status" + n, node_status_name(status), "status of backend #" + n});
        items.push_back({"backend_flag" + n, flag_names(table.node(i).flags.load()), "backend #" + n + " flag"});
    }
    return items;
}

std::vector<ConfigItem> pool_status_items(const daemon::Config& config, const shm::StatusTable& table) {
    std::vector<ConfigItem> items;
    // pgpool keeps descriptions in desc[POOLCONFIG_MAXDESCLEN + 1] on both ends, so its clients cut
    // longer ones: cutting here keeps our output and theirs identical.
    constexpr size_t kMaxDescription = 80;
    for (const daemon::KeyInfo& key : daemon::config_keys())
        items.push_back({std::string(key.name), daemon::config_value_string(config, key.name),
                         std::string(key.description.substr(0, kMaxDescription))});
    for (ConfigItem& item : backend_items(table)) items.push_back(std::move(item));
    // Per-node health-check overrides under pgpool's names (health_check_period0), the set ones only.
    for (auto& [name, value] : daemon::config_backend_values(config))
        if (name.rfind("backend_", 0) != 0) items.push_back({name, value, "per-node " + name.substr(0, name.find_last_not_of("0123456789") + 1)});
    return items;
}

std::vector<std::string> health_check_fields(const shm::StatusTable& table, int id) {
    shm::NodeText text = table.node_text(id);
    const shm::NodeSlot& n = table.node(id);
    uint64_t rounds = n.health_check_success.load() + n.health_check_fail.load() - n.health_check_retries.load();
    double avg_retry = rounds ? double(n.health_check_retries.load()) / double(rounds) : 0.0;
    double avg_ms = rounds ? double(n.health_check_duration_sum_ms.load()) / double(rounds) : 0.0;
    auto when = [](int64_t t) { return t ? format_timestamp(t) : std::string(); };
    return {std::to_string(id), text.hostname, std::to_string(text.port),
            node_status_name(static_cast<NodeStatus>(n.status.load())), node_role_name(table, id),
            format_timestamp(n.status_changed_at.load()), std::to_string(n.health_check_total.load()),
            std::to_string(n.health_check_success.load()), std::to_string(n.health_check_fail.load()),
            std::to_string(n.health_check_skip.load()), std::to_string(n.health_check_retries.load()),
            format_double(avg_retry), std::to_string(n.health_check_max_retry.load()),
            std::to_string(n.health_check_max_ms.load()), std::to_string(n.health_check_min_ms.load()),
            format_double(avg_ms), when(n.health_check_last.load()), when(n.health_check_last_success.load()),
            when(n.health_check_last_skip.load()), when(n.health_check_last_fail.load())};
}

std::string replication_state_name(const shm::StatusTable& table, int id) {
    static const char* kNames[] = {"", "startup", "catchup", "streaming", "backup", "stopping"};
    unsigned v = table.node(id).replication_state.load();
    return table.header().primary_node.load() == id || v >= std::size(kNames) ? "" : kNames[v];
}

std::string replication_sync_state_name(const shm::StatusTable& table, int id) {
    static const char* kNames[] = {"", "async", "potential", "sync", "quorum"};
    unsigned v = table.node(id).replication_sync_state.load();
    return table.header().primary_node.load() == id || v >= std::size(kNames) ? "" : kNames[v];
}

const char* child_status_text(ChildState state) {
    switch (state) {
    case ChildState::WaitingForClient: return "Wait for connection";
    case ChildState::Authenticating: return "Connecting";
    case ChildState::Idle: return "Idle";
    case ChildState::Active: return "Execute command";
    case ChildState::IdleInTransaction: return "Idle in transaction";
    default: return "";
    }
}

std::vector<int> live_child_slots(const shm::StatusTable& table) {
    std::vector<int> slots;
    for (int i = 0; i < table.num_children(); ++i)
        if (table.child(i).pid.load() != 0) slots.push_back(i);
    return slots;
}

// pgpool's POOL_REPORT_POOLS with one pool slot per child.
std::vector<std::string> pool_slot_fields(const shm::StatusTable& table, int slot, int node) {
    const shm::ChildSlot& c = table.child(slot);
    shm::ChildText text = table.child_text(slot);
    auto state = static_cast<ChildState>(c.state.load());
    bool in_session = state != ChildState::WaitingForClient && state != ChildState::Gone;
    int32_t backend_pid = c.backend[node].pid.load();
    bool connected = backend_pid != 0;
    int64_t since = c.client_connected_at.load();
    uint64_t served = c.sessions_served.load();
    return {std::to_string(c.pid.load()), time_or_empty(c.started_at.load()), std::to_string(served), "0",
            std::to_string(node), in_session ? text.database : "", in_session ? text.user : "",
            connected ? time_or_empty(since) : "", in_session ? time_or_empty(since) : "", "", "0",
            connected ? "3" : "0", "0", connected ? std::to_string(served) : "0", std::to_string(backend_pid),
            connected ? "1" : "0", child_status_text(state)};
}

}  // namespace splitpool::pcp
