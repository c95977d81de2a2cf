// Health checks (one process per node, like pgpool's health check children) and the streaming
// replication worker (primary detection, replication delay and state). They log in to the nodes
// themselves and write what they find into shared memory; neither the parent nor a child waits on them.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

#include "daemon/backend.hpp"
#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// Runs until SIGTERM: every health_check_period, a login to `node` (startup and authentication,
// no query), retried health_check_max_retries times; a node that fails is detached unless it is
// DISALLOW_TO_FAILOVER. The node's [[backend]] overrides apply (health_check_settings).
[[noreturn]] void run_health_check(const Config& config, shm::StatusTable& table, int node);

// Runs until SIGTERM: every sr_check_period, pg_is_in_recovery() and the WAL positions of every
// node, pg_stat_replication on the primary; finds the primary unless a node is ALWAYS_PRIMARY.
[[noreturn]] void run_sr_check(const Config& config, shm::StatusTable& table);

// Takes a node out (status down, pgpool_status, failover_command). `why` goes to the log.
void detach_failed_node(const Config& config, shm::StatusTable& table, int node, const std::string& why);

// A login as `user` (password, or pgpool's md5/TEXT-prefixed forms) within `timeout_s` seconds,
// connecting within `connect_timeout_ms`.
LoginResult check_login(const Config& config, int node, const std::string& user, const std::string& password,
                        const std::string& database, int timeout_s, int connect_timeout_ms);

// For the worker processes: set by SIGTERM; start_worker names the process and installs it; nap
// sleeps up to `ms`, waking early when it is set.
extern volatile sig_atomic_t g_worker_stop;
void start_worker(const std::string& name);
void nap(int64_t ms);

// "16/B374D848" -> bytes; -1 when it is not a WAL position.
int64_t parse_lsn(const std::string& text);

}  // namespace splitpool::daemon
