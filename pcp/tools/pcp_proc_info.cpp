// pcp_proc_info: one line (or with -v one block) per child and backend, in pgpool 4.3's format.
#include <cstdio>

#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

namespace {

// Wire order (pgpool's POOL_REPORT_POOLS): pid, start time, client connection count, pool id,
// backend id, database, user, backend connection time, client connection time, client
// disconnection time, client idle duration, major, minor, pool counter, backend pid, connected, status.
constexpr size_t kPrintOrder[] = {5, 6, 1, 2, 11, 12, 7, 8, 10, 9, 13, 14, 15, 0, 4, 16};
const char* const kTitles[] = {"Database", "Username", "Start time", "Client connection count", "Major", "Minor",
                               "Backend connection time", "Client connection time", "Client idle duration",
                               "Client disconnection time", "Pool Counter", "Backend PID", "Connected", "PID",
                               "Backend ID", "Status"};

}  // namespace

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::ProcInfo, argc, argv, [](Client& client, const tools::CliOptions& o) {
        std::vector<std::vector<std::string>> rows;
        if (!client.process_info(o.process_id, rows)) return false;
        if (rows.empty()) {
            tools::print_command_successful(tools::Tool::ProcInfo);
            return true;
        }
        bool printed = false;
        for (const auto& r : rows) {
            if ((!o.all && r[5].empty()) || r[0].empty()) continue;   // -a also shows idle slots
            printed = true;
            if (o.verbose) {
                std::vector<std::pair<std::string, std::string>> lines;
                for (size_t i = 0; i < std::size(kPrintOrder); ++i) lines.emplace_back(kTitles[i], r[kPrintOrder[i]]);
                tools::print_titled(lines);
                continue;
            }
            for (size_t i = 0; i < std::size(kPrintOrder); ++i) printf("%s%s", i ? " " : "", r[kPrintOrder[i]].c_str());
            printf("\n");
        }
        if (!printed) printf("No process information available\n\n");
        return true;
    });
}
