// A preforked child: waits for a client on the shared listening sockets, serves it, keeps its
// backend connection sets for the next client, and exits when told to or when it is worn out.
#pragma once

#include <vector>

#include "daemon/auth_state.hpp"
#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// Runs in the forked process and never returns: the process exits with 0 when asked to stop or
// on child_life_time / child_max_connections, so the parent replaces it. `start_gate` >= 0 (a child
// forked by a spawner): waits for EOF on it, by then the supervisor is its parent.
[[noreturn]] void run_child(const Config& config, const AuthState& auth, shm::StatusTable& table, int slot,
                            const std::vector<int>& listen_fds, int start_gate);

}  // namespace splitpool::daemon
