// pcp_attach_node: puts a detached node back in service.
#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::AttachNode, argc, argv, [](Client& client, const tools::CliOptions& o) {
        if (!client.attach_node(o.node_id)) return false;
        tools::print_command_successful(tools::Tool::AttachNode);
        return true;
    });
}
