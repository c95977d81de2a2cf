// pcp_node_info: one line (or with -v one block) per backend node, in pgpool 4.3's format.
#include <cstdio>

#include "pcp/report.hpp"
#include "pcp/tools/cli_common.hpp"

using namespace splitpool::pcp;

namespace {

const char* status_name(const NodeInfo& n) {
    switch (n.status) {
    case 0: return "unused";
    case 1: return "waiting";
    case 2: return "up";
    case 3: return n.quarantine ? "quarantine" : "down";
    default: return "unknown";
    }
}

const char* role_name(int role) {
    static const char* const kNames[] = {"main", "replica", "primary", "standby"};
    return role >= 0 && role <= 3 ? kNames[role] : "unknown";
}

std::string or_none(const std::string& s) { return s.empty() ? "none" : s; }

std::string printf_string(const char* format, double value) {
    char buf[64];
    snprintf(buf, sizeof buf, format, value);
    return buf;
}

void print_node(const NodeInfo& n, bool verbose) {
    double weight = n.weight / kRandMax;
    std::string changed = format_timestamp(n.status_changed_time);
    if (!verbose) {
        printf("%s %d %d %f %s %s %s %s %lu %s %s %s\n", n.hostname.c_str(), n.port, n.status, weight,
               status_name(n), n.pg_status.c_str(), role_name(n.role), n.pg_role.c_str(),
               static_cast<unsigned long>(n.standby_delay), or_none(n.replication_state).c_str(),
               or_none(n.replication_sync_state).c_str(), changed.c_str());
        return;
    }
    tools::print_titled({{"Hostname", n.hostname},
                         {"Port", std::to_string(n.port)},
                         {"Status", std::to_string(n.status)},
                         {"Weight", printf_string("%f", weight)},
                         {"Status Name", status_name(n)},
                         {"Backend Status Name", n.pg_status},
                         {"Role", role_name(n.role)},
                         {"Backend Role", n.pg_role},
                         {"Replication Delay", std::to_string(static_cast<unsigned long>(n.standby_delay))},
                         {"Replication State", or_none(n.replication_state)},
                         {"Replication Sync State", or_none(n.replication_sync_state)},
                         {"Last Status Change", changed}});
}

}  // namespace

int main(int argc, char** argv) {
    return tools::run_tool(tools::Tool::NodeInfo, argc, argv, [](Client& client, const tools::CliOptions& o) {
        std::vector<NodeInfo> nodes;
        if (!client.node_info(o.node_id, nodes)) return false;
        if (nodes.empty()) {
            tools::print_command_successful(tools::Tool::NodeInfo);
            return true;
        }
        bool printed = false;
        for (const NodeInfo& n : nodes) {
            if (!o.all && n.hostname.empty()) continue;   // -a also shows unconfigured slots
            print_node(n, o.verbose);
            printed = true;
        }
        if (!printed) printf("No node information available\n\n");
        return true;
    });
}
