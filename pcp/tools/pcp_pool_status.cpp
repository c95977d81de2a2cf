// pcp_pool_status: every configuration item with its value and description, in pgpool's format.
#include <cstdio>

#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::PoolStatus, argc, argv, [](Client& client, const tools::CliOptions& o) {
        std::vector<ConfigItem> items;
        if (!client.pool_status(items)) return false;
        if (items.empty()) {
            tools::print_command_successful(tools::Tool::PoolStatus);
            return true;
        }
        for (size_t i = 0; i < items.size(); ++i) {
            const ConfigItem& c = items[i];
            if (o.verbose)
                printf("Name [%3d]:\t%s\nValue:      \t%s\nDescription:\t%s\n\n", int(i), c.name.c_str(),
                       c.value.c_str(), c.description.c_str());
            else
                printf("name : %s\nvalue: %s\ndesc : %s\n\n", c.name.c_str(), c.value.c_str(), c.description.c_str());
        }
        return true;
    });
}
