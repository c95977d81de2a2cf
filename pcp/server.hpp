// The PCP process: listens on the PCP sockets and forks one worker per administration connection.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::pcp {

// TCP on pcp_listen_addresses:pcp_port and the Unix socket pcp_socket_dir/.s.PGSQL.<pcp_port>,
// non-blocking. On failure closes what it opened and sets `error`.
bool open_pcp_listeners(const daemon::Config& config, std::vector<int>& fds, std::string* error);

// The Unix socket path of the PCP listener (to remove at shutdown); empty without pcp_socket_dir.
std::string pcp_socket_path(const daemon::Config& config);

// Runs in the forked PCP process until SIGTERM/SIGINT/SIGQUIT or until `parent_pid` is gone.
// Users are read from `pcp_conf_path` on each login. The config is re-read from config.config_file
// whenever the parent bumps the config generation, so pool status shows reloaded values.
[[noreturn]] void run_pcp_server(const daemon::Config& config, shm::StatusTable& table,
                                 const std::string& pcp_conf_path, pid_t parent_pid, std::vector<int> listen_fds);

}  // namespace splitpool::pcp
