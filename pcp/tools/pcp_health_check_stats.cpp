// pcp_health_check_stats: the 20 health check statistics of one node, in pgpool's format.
#include <cstdio>

#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::HealthCheckStats, argc, argv, [](Client& client, const tools::CliOptions& o) {
        std::vector<std::string> f;
        if (!client.health_check_stats(o.node_id, f)) return false;
        static const char* const kTitles[] = {
            "Node Id", "Host Name", "Port", "Status", "Role", "Last Status Change", "Total Count",
            "Success Count", "Fail Count", "Skip Count", "Retry Count", "Average Retry Count", "Max Retry Count",
            "Max Health Check Duration", "Minimum Health Check Duration", "Average Health Check Duration",
            "Last Health Check", "Last Successful Health Check", "Last Skip Health Check",
            "Last Failed Health Check"};
        if (o.verbose) {
            std::vector<std::pair<std::string, std::string>> rows;
            for (size_t i = 0; i < f.size(); ++i) rows.emplace_back(kTitles[i], f[i]);
            tools::print_titled(rows);
            return true;
        }
        for (size_t i = 0; i < f.size(); ++i) printf("%s%s", i ? " " : "", f[i].c_str());
        printf("\n");
        return true;
    });
}
