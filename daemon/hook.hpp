// failover_command / failback_command / follow_primary_command: pgpool's placeholders, run without
// blocking whoever asked (the health check, the replication worker), output logged line by line.
#pragma once

#include <string>

#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// What the placeholders stand for (pgpool's "main" node is the primary in streaming replication).
struct HookEvent {
    int node = -1;           // %d %h %p %D
    int new_main = -1;       // %m %H %r %R
    int old_main = -1;       // %M
    int old_primary = -1;    // %P %N %S
};

// Expands %d %h %p %D %m %H %M %P %r %R %N %S %% (unknown: -1 or empty, as pgpool).
std::string expand_hook(const std::string& command, const Config& config, const HookEvent& event);
// Runs `command` (expanded) with /bin/sh in a process of its own; returns at once. `what` names it in the log.
void run_hook(const char* what, const std::string& command, const Config& config, const HookEvent& event);

}  // namespace splitpool::daemon
