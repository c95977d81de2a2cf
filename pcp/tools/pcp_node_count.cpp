// pcp_node_count: the number of backend nodes, as pgpool's tool prints it.
#include <cstdio>

#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::NodeCount, argc, argv, [](Client& client, const tools::CliOptions& o) {
        int count = 0;
        if (!client.node_count(count)) return false;
        if (o.verbose) printf("Node Count\n____________\n %d\n", count);
        else printf("%d\n", count);
        return true;
    });
}
