// pcp_promote_node: makes a node the primary (-s: switchover, -g: after the clients have left).
#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::PromoteNode, argc, argv, [](Client& client, const tools::CliOptions& o) {
        if (!client.promote_node(o.node_id, o.gracefully, o.switchover)) return false;
        tools::print_command_successful(tools::Tool::PromoteNode);
        return true;
    });
}
