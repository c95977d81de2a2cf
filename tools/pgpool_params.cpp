// pgpool-II parameters that are not splitpool keys: old names of keys, and the unsupported ones
// with the reason and the values under which dropping them changes nothing.
#include "tools/pgpool_params.hpp"

#include <cctype>
#include <string>

namespace splitpool::tools {
namespace {

constexpr std::string_view kWatchdog =
    "watchdog (pgpool's high availability of the pooler itself: leader election, virtual IP, heartbeat) is "
    "not part of splitpool; put a VIP manager (keepalived) or a TCP load balancer in front of the poolers";
constexpr std::string_view kQueryCache =
    "the in-memory query cache (memory_cache_enabled, memqcache_*) is not implemented: every query is run "
    "by a backend";
constexpr std::string_view kNativeReplication =
    "native_replication / snapshot_isolation mode is not supported (splitpool runs streaming_replication "
    "only); the parameter has no effect in streaming_replication mode";
constexpr std::string_view kRecovery =
    "online recovery (pcp_recovery_node) is not implemented: rebuild a standby with your own tooling, then "
    "pcp_attach_node it";
constexpr std::string_view kRelcache =
    "splitpool caches catalog lookups in each child process and always asks the primary; the cache has no "
    "settings";
constexpr std::string_view kPerNodeHealthCheck =
    "per-node health check settings are not supported: the global health_check_* and connect_timeout keys "
    "apply to every node";
constexpr std::string_view kProcessManagement =
    "splitpool always preforks num_init_children children (pgpool's static process management)";
constexpr std::string_view kClusteringSwitch =
    "pre-4.2 clustering switch; splitpool always runs streaming_replication (backend_clustering_mode)";

constexpr std::string_view kNeverMatters = kGateNever;

// A name: exact, "prefix*" (any name starting with prefix), or "name#" (name followed by a node number).
struct Row {
    std::string_view pattern;
    std::string_view reason;
    std::optional<std::string_view> neutral;
    std::string_view gate;
};

const Row kRows[] = {
    // watchdog
    {"use_watchdog", kWatchdog, "off", ""},
    {"wd_*", kWatchdog, std::nullopt, "use_watchdog"},
    {"heartbeat_*", kWatchdog, std::nullopt, "use_watchdog"},
    {"hostname#", kWatchdog, std::nullopt, "use_watchdog"},
    {"pgpool_port#", kWatchdog, std::nullopt, "use_watchdog"},
    {"other_pgpool_hostname#", kWatchdog, std::nullopt, "use_watchdog"},
    {"other_pgpool_port#", kWatchdog, std::nullopt, "use_watchdog"},
    {"other_wd_port#", kWatchdog, std::nullopt, "use_watchdog"},
    {"pgpool_node_id", kWatchdog, std::nullopt, "use_watchdog"},
    {"trusted_servers", kWatchdog, std::nullopt, "use_watchdog"},
    {"trusted_server_command", kWatchdog, std::nullopt, "use_watchdog"},
    {"ping_path", kWatchdog, std::nullopt, "use_watchdog"},
    {"delegate_ip", kWatchdog, std::nullopt, "use_watchdog"},
    {"if_cmd_path", kWatchdog, std::nullopt, "use_watchdog"},
    {"ifconfig_path", kWatchdog, std::nullopt, "use_watchdog"},
    {"if_up_cmd", kWatchdog, std::nullopt, "use_watchdog"},
    {"if_down_cmd", kWatchdog, std::nullopt, "use_watchdog"},
    {"arping_path", kWatchdog, std::nullopt, "use_watchdog"},
    {"arping_cmd", kWatchdog, std::nullopt, "use_watchdog"},
    {"clear_memqcache_on_escalation", kWatchdog, std::nullopt, "use_watchdog"},
    {"failover_when_quorum_exists", kWatchdog, std::nullopt, "use_watchdog"},
    {"failover_require_consensus", kWatchdog, std::nullopt, "use_watchdog"},
    {"allow_multiple_failover_requests_from_node", kWatchdog, std::nullopt, "use_watchdog"},
    {"enable_consensus_with_half_votes", kWatchdog, std::nullopt, "use_watchdog"},
    // query cache
    {"memory_cache_enabled", kQueryCache, "off", ""},
    {"memqcache_*", kQueryCache, std::nullopt, "memory_cache_enabled"},
    {"cache_safe_memqcache_table_list", kQueryCache, std::nullopt, "memory_cache_enabled"},
    {"cache_unsafe_memqcache_table_list", kQueryCache, std::nullopt, "memory_cache_enabled"},
    {"white_memqcache_table_list", kQueryCache, std::nullopt, "memory_cache_enabled"},
    {"black_memqcache_table_list", kQueryCache, std::nullopt, "memory_cache_enabled"},
    // native replication and snapshot isolation: only those modes read these, and splitpool refuses them
    {"replicate_select", kNativeReplication, std::nullopt, kNeverMatters},
    {"insert_lock", kNativeReplication, std::nullopt, kNeverMatters},
    {"lobj_lock_table", kNativeReplication, std::nullopt, kNeverMatters},
    {"replication_stop_on_mismatch", kNativeReplication, std::nullopt, kNeverMatters},
    {"failover_if_affected_tuples_mismatch", kNativeReplication, std::nullopt, kNeverMatters},
    {"replication_mode", kClusteringSwitch, "off", ""},
    {"master_slave_mode", kClusteringSwitch, "on", ""},
    {"master_slave_sub_mode", kClusteringSwitch, "stream", ""},
    // online recovery
    {"recovery_1st_stage_command", kRecovery, "", ""},
    {"recovery_2nd_stage_command", kRecovery, "", ""},
    {"recovery_user", kRecovery, std::nullopt, "recovery_1st_stage_command"},
    {"recovery_password", kRecovery, std::nullopt, "recovery_1st_stage_command"},
    {"recovery_timeout", kRecovery, std::nullopt, "recovery_1st_stage_command"},
    {"client_idle_limit_in_recovery", kRecovery, "0", ""},
    // catalog cache
    {"relcache_expire", kRelcache, "0", ""},
    {"relcache_size", kRelcache, std::nullopt, ""},
    {"enable_shared_relcache", kRelcache, "off", ""},
    {"relcache_query_target", kRelcache, "primary", ""},
    // per-node health check overrides (pgpool 4.1+)
    {"health_check_period#", kPerNodeHealthCheck, std::nullopt, ""},
    {"health_check_timeout#", kPerNodeHealthCheck, std::nullopt, ""},
    {"health_check_user#", kPerNodeHealthCheck, std::nullopt, ""},
    {"health_check_password#", kPerNodeHealthCheck, std::nullopt, ""},
    {"health_check_database#", kPerNodeHealthCheck, std::nullopt, ""},
    {"health_check_max_retries#", kPerNodeHealthCheck, std::nullopt, ""},
    {"health_check_retry_delay#", kPerNodeHealthCheck, std::nullopt, ""},
    {"connect_timeout#", kPerNodeHealthCheck, std::nullopt, ""},
    // process management (pgpool 4.4+)
    {"process_management_mode", kProcessManagement, "static", ""},
    {"process_management_strategy", kProcessManagement, std::nullopt, ""},
    {"min_spare_children", kProcessManagement, std::nullopt, ""},
    {"max_spare_children", kProcessManagement, std::nullopt, ""},
    // connections
    {"serialize_accept", "children accept() without a lock (pgpool's serialize_accept = off)", "off", ""},
    {"connection_cache", "splitpool always caches backend connections (connection_cache = on)", "on", ""},
    {"backend_socket_dir", "give a Unix socket directory as the backend's hostname (starting with '/')", std::nullopt, ""},
    {"unix_socket_group", "the Unix socket keeps the group of the user running splitpool", "", ""},
    {"unix_socket_permissions", "the Unix socket is created with mode 0777, as pgpool's default", "0777", ""},
    {"allow_inet_domain_socket", "replaced by listen_addresses (pgpool 3.0)", std::nullopt, ""},
    // routing
    {"ignore_leading_white_space", "splitpool always ignores leading white space (the pgpool default on)", "on", ""},
    {"dml_adaptive_object_relationship_list",
     "not a configuration key in this splitpool version (tables written inside functions are not tracked)", "", ""},
    {"dml_adaptive_global", "see read_your_writes_window: cross-session read-your-writes by time window", "off", ""},
    {"track_table_mutation_*", "see read_your_writes_window: cross-session read-your-writes by time window",
     std::nullopt, "dml_adaptive_global"},
    {"replication_delay_source_cmd", "an external replication delay source is not supported", "", ""},
    {"replication_delay_source_timeout", "an external replication delay source is not supported", std::nullopt,
     "replication_delay_source_cmd"},
    // logging and misc
    {"log_rotation_age", "log rotation is not supported by this splitpool version", std::nullopt, "logging_collector"},
    {"log_rotation_size", "log rotation is not supported by this splitpool version", std::nullopt, "logging_collector"},
    {"log_truncate_on_rotation", "log rotation is not supported by this splitpool version", "off", ""},
    {"log_error_verbosity", "not supported by this splitpool version", std::nullopt, ""},
    {"client_min_messages", "not supported by this splitpool version", std::nullopt, ""},
    {"log_hostname", "client host names are not looked up for the log", "off", ""},
    {"log_client_messages", "client protocol messages are not logged", "off", ""},
    {"log_backend_messages", "backend protocol messages are not logged", "none", ""},
    {"log_pcp_processes", "PCP process forks are not logged", std::nullopt, ""},
    {"log_file_mode", "log files are created with mode 0600", "0600", ""},
    {"pcp_timeout", "removed in pgpool 3.5", std::nullopt, ""},
    {"health_check_test", "a pgpool test switch", "off", ""},
};

bool matches(std::string_view pattern, std::string_view name) {
    if (pattern.back() == '*') return name.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
    if (pattern.back() != '#') return pattern == name;
    std::string_view stem = pattern.substr(0, pattern.size() - 1);
    if (name.size() <= stem.size() || name.substr(0, stem.size()) != stem) return false;
    for (char c : name.substr(stem.size()))
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

}  // namespace

std::string_view renamed_key(std::string_view name) {
    static constexpr std::pair<std::string_view, std::string_view> kRenames[] = {
        {"white_function_list", "read_only_function_list"},
        {"black_function_list", "write_function_list"},
        {"black_query_pattern_list", "primary_routing_query_pattern_list"},
        {"follow_master_command", "follow_primary_command"},
        {"fail_over_on_backend_error", "failover_on_backend_error"},
        {"socket_dir", "unix_socket_directories"},
    };
    for (auto [old_name, new_name] : kRenames)
        if (old_name == name) return new_name;
    return {};
}

std::optional<UnsupportedParam> find_unsupported(std::string_view name) {
    for (const Row& row : kRows)
        if (matches(row.pattern, name)) return UnsupportedParam{row.reason, row.neutral, row.gate};
    return std::nullopt;
}

std::string normalized_value(std::string_view value) {
    std::string v;
    for (char c : value) v += char(std::tolower(static_cast<unsigned char>(c)));
    if (v == "on" || v == "true" || v == "yes" || v == "1") return "on";
    if (v == "off" || v == "false" || v == "no" || v == "0") return "off";
    return v;
}

}  // namespace splitpool::tools
