// pcp_proc_count: the PIDs of the child processes, in pgpool's format.
#include <cstdio>

#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::ProcCount, argc, argv, [](Client& client, const tools::CliOptions& o) {
        std::vector<int> pids;
        if (!client.process_count(pids)) return false;
        if (pids.empty()) {
            tools::print_command_successful(tools::Tool::ProcCount);
            return true;
        }
        if (o.verbose) {
            printf("No \t | \t PID\n_____________________\n");
            for (size_t i = 0; i < pids.size(); ++i) printf("%d \t | \t %d\n", int(i), pids[i]);
            printf("\nTotal Processes:%d\n", int(pids.size()));
            return true;
        }
        for (int pid : pids) printf("%d ", pid);
        printf("\n");
        return true;
    });
}
