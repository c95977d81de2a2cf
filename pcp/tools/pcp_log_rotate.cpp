// pcp_log_rotate: asks the logging collector to start a new log file (logrotate's postrotate).
#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::LogRotate, argc, argv, [](Client& client, const tools::CliOptions& o) {
        if (!client.log_rotate(o.scope)) return false;
        tools::print_command_successful(tools::Tool::LogRotate);
        return true;
    });
}
