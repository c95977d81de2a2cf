// The PCP request handlers: each request packet becomes reply bytes, reading and changing shared memory.
#pragma once

#include <sys/types.h>

#include <string>

#include "daemon/config.hpp"
#include "pcp/report.hpp"
#include "pcp/wire.hpp"
#include "shm/status_table.hpp"

namespace splitpool::pcp {

struct CommandContext {
    const daemon::Config& config;
    shm::StatusTable& table;
    pid_t parent_pid;
    int graceful_timeout_sec = 90;   // pgpool's recovery_timeout default bounds -g waits
};

struct Reply {
    std::string bytes;        // one or more encoded packets
    bool close = false;       // after sending: the client said goodbye or a FATAL was sent
    int signal_parent = 0;    // after sending: the signal that stops the parent (pcp_stop_pgpool)
};

// Handles one request of an authenticated connection. Never throws.
Reply handle_command(const CommandContext& ctx, const Packet& request);

// ERROR and FATAL replies, with pgpool's texts.
Reply error_reply(std::string message, std::string detail);
Reply fatal_reply(std::string message, std::string detail);

}  // namespace splitpool::pcp
