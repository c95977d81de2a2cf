// The optional Prometheus endpoint: a small HTTP server process exporting the shared status table.
#pragma once

#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// TCP listeners on metrics_listen_addresses:metrics_port, non-blocking. No addresses (the default)
// opens nothing and succeeds. On failure closes what it opened and sets `error`.
bool open_metrics_listeners(const Config& config, std::vector<int>& fds, std::string* error);

// The whole /metrics body in Prometheus text format 0.0.4. `roles_checked`: the replication check
// runs, so the nodes' roles are what they report (splitpool_node_reported_primary is exported).
std::string render_metrics(const shm::StatusTable& table, bool roles_checked = false);

// Runs in the forked metrics process: answers GET /metrics (404 for anything else, one request per
// connection) until SIGTERM/SIGINT/SIGQUIT or until the parent is gone.
[[noreturn]] void run_metrics_server(const Config& config, shm::StatusTable& table, std::vector<int> fds);

}  // namespace splitpool::daemon
