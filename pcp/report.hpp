// The administration reports shared by PCP replies and the SQL-level SHOW POOL_* commands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "pcp/wire.hpp"
#include "shm/status_table.hpp"

namespace splitpool::pcp {

constexpr int kRolePrimary = 2;   // pgpool's SERVER_ROLE: main, replica, primary, standby
constexpr int kRoleStandby = 3;

// "%Y-%m-%d %H:%M:%S" in local time, as pgpool formats its timestamps.
std::string format_timestamp(int64_t unix_seconds);
// The same, or "" for 0 (never).
std::string time_or_empty(int64_t unix_seconds);

// "unused", "waiting", "up", "down".
const char* node_status_name(shm::NodeStatus status);
// pgpool's VALID_BACKEND in streaming replication: up, or up but not yet connected to.
bool node_valid(const shm::StatusTable& table, int id);
bool is_primary_node(const shm::StatusTable& table, int id);
// "primary" or "standby": splitpool's view of the node.
const char* node_role_name(const shm::StatusTable& table, int id);
// Weight normalized over all configured nodes (0..1), as pgpool reports it.
double normalized_weight(const shm::StatusTable& table, int id);
// pg_status: a live connect to the node when health checks are on, else "unknown" (as pgpool).
std::string probe_backend_status(const daemon::Config& config, const shm::StatusTable& table, int id);
// pg_role: what the streaming-replication check last saw, "unknown" when that check is off.
std::string reported_backend_role(const daemon::Config& config, const shm::StatusTable& table, int id);
// "%f" of a double.
std::string format_double(double value);

// Every key of the key table with its value, then the per-node backend items.
std::vector<ConfigItem> pool_status_items(const daemon::Config& config, const shm::StatusTable& table);
// The per-node items alone (backend_hostname0, backend_port0, ...).
std::vector<ConfigItem> backend_items(const shm::StatusTable& table);

// The 20 fields of pcp_health_check_stats / SHOW POOL_HEALTH_CHECK_STATS, node_id first.
std::vector<std::string> health_check_fields(const shm::StatusTable& table, int id);
// pg_stat_replication's state and sync_state of a standby as the replication worker saw them ("" unknown).
std::string replication_state_name(const shm::StatusTable& table, int id);
std::string replication_sync_state_name(const shm::StatusTable& table, int id);

// "Wait for connection", "Idle", ... as pgpool's process listings show a child.
const char* child_status_text(shm::ChildState state);
// Child slots with a live process.
std::vector<int> live_child_slots(const shm::StatusTable& table);
// The 17 fields of one (child, node) pool slot, in pcp ProcessInfo order: pid, start_time,
// client_connection_count, pool_id, backend_id, database, username, backend_connection_time,
// client_connection_time, client_disconnection_time, client_idle_duration, major, minor,
// pool_counter, backend_pid, connected, status.
std::vector<std::string> pool_slot_fields(const shm::StatusTable& table, int slot, int node);

}  // namespace splitpool::pcp
