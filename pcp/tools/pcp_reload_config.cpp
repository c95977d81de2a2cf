// pcp_reload_config: asks the main process to re-read its configuration file.
#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::ReloadConfig, argc, argv, [](Client& client, const tools::CliOptions& o) {
        if (!client.reload_config(o.scope)) return false;
        tools::print_command_successful(tools::Tool::ReloadConfig);
        return true;
    });
}
