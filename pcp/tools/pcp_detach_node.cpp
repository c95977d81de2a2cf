// pcp_detach_node: takes a node out of service (-g: after the clients have left).
#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::DetachNode, argc, argv, [](Client& client, const tools::CliOptions& o) {
        if (!client.detach_node(o.node_id, o.gracefully)) return false;
        tools::print_command_successful(tools::Tool::DetachNode);
        return true;
    });
}
