// What every pcp_* tool shares: pgpool's options and usage text, the password, connecting, output helpers.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "pcp/client.hpp"

namespace splitpool::pcp::tools {

enum class Tool {
    AttachNode, DetachNode, NodeCount, NodeInfo, HealthCheckStats, PoolStatus,
    ProcCount, ProcInfo, PromoteNode, StopPgpool, ReloadConfig, LogRotate,
};

enum class PasswordMode { Default, Never, Always };   // neither flag, -w, -W

struct CliOptions {
    ConnectOptions connect;
    PasswordMode password_mode = PasswordMode::Default;
    int node_id = -1;
    int process_id = 0;
    bool all = false;
    bool verbose = false;
    bool gracefully = false;
    bool switchover = false;
    char shutdown_mode = 's';
    char scope = 'l';
};

// Parses the command line exactly as pgpool's pcp_frontend_client. Returns -1 to go on, or the
// exit status when the tool is done (help, version, bad arguments).
int parse_command_line(Tool tool, int argc, char** argv, CliOptions& out);

// The tool body: prints its result and returns false on failure (the client holds the error).
using ToolBody = std::function<bool(Client&, const CliOptions&)>;

// Parses, asks for the password when needed, connects, runs `body`. Errors go to stderr in
// pgpool's words; unlike pgpool the exit status is 1 whenever the command failed.
int run_tool(Tool tool, int argc, char** argv, const ToolBody& body);

// The program name as pgpool prints it ("pcp_node_info").
const char* tool_name(Tool tool);
// "<name> -- Command Successful", for commands without a result.
void print_command_successful(Tool tool);

// pgpool's -v layout: each title padded to the longest, " : ", the value; a blank line after.
void print_titled(const std::vector<std::pair<std::string, std::string>>& rows);

}  // namespace splitpool::pcp::tools
