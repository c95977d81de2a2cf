// pcp_stop_pgpool: stops the server in smart, fast or immediate mode (-m).
#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::StopPgpool, argc, argv, [](Client& client, const tools::CliOptions& o) {
        if (!client.stop_pgpool(o.shutdown_mode, o.scope)) return false;
        tools::print_command_successful(tools::Tool::StopPgpool);
        return true;
    });
}
