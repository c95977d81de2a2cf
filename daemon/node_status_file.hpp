// pgpool's <logdir>/pgpool_status: one line per node, "up", "down" or "unused", so a restart does
// not bring back a node that was detached on purpose (splitpool -D discards it).
#pragma once

#include <string>

#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

std::string node_status_path(const Config& config);
// Written after every detach and attach; not when every node is down (pgpool's rule), so a
// cluster-wide outage cannot leave a file that keeps everything down.
void save_node_status(const Config& config, const shm::StatusTable& table);
// At start: nodes the file lists as down stay down. A file that would leave no node usable is
// taken as bogus and ignored, as pgpool does.
void load_node_status(const Config& config, shm::StatusTable& table);

}  // namespace splitpool::daemon
