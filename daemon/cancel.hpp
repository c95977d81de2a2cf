// CancelRequest handling: finds the session that owns a cancel key through shared memory and
// forwards the cancel to every node that session uses, with each node's own key.
#pragma once

#include <cstdint>

#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// Returns the number of nodes the cancel was sent to (0 when no session holds the key).
int forward_cancel(const Config& config, const shm::StatusTable& table, int32_t pid, uint32_t secret);

}  // namespace splitpool::daemon
