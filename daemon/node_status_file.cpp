// pgpool's <logdir>/pgpool_status: the node statuses that survive a restart.
#include "daemon/node_status_file.hpp"

#include <cstdio>
#include <fstream>
#include <vector>

#include "daemon/log.hpp"

namespace splitpool::daemon {

std::string node_status_path(const Config& config) { return config.logdir + "/pgpool_status"; }

void save_node_status(const Config& config, const shm::StatusTable& table) {
    std::string text;
    bool any_up = false;
    for (int i = 0; i < table.num_nodes(); ++i) {
        auto status = static_cast<shm::NodeStatus>(table.node(i).status.load());
        bool down = status == shm::NodeStatus::Down;
        any_up = any_up || (!down && status != shm::NodeStatus::Unused);
        text += down ? "down\n" : status == shm::NodeStatus::Unused ? "unused\n" : "up\n";
    }
    if (!any_up) return;
    std::string path = node_status_path(config), tmp = path + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    bool ok = f && fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = (f && fclose(f) == 0) && ok;
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0)
        PROXY_LOG(Warning, "could not write the node status file \"%s\"", path.c_str());
}

void load_node_status(const Config& config, shm::StatusTable& table) {
    std::ifstream in(node_status_path(config));
    if (!in) return;
    std::vector<bool> down;
    for (std::string line; std::getline(in, line);) down.push_back(line == "down");
    bool any_usable = false;
    for (int i = 0; i < table.num_nodes(); ++i) any_usable = any_usable || i >= int(down.size()) || !down[size_t(i)];
    if (!any_usable) {
        PROXY_LOG(Log, "node status file lists every node as down: ignoring it");
        return;
    }
    for (int i = 0; i < table.num_nodes() && i < int(down.size()); ++i) {
        if (!down[size_t(i)]) continue;
        table.set_node_status(i, shm::NodeStatus::Down);
        PROXY_LOG(Log, "node %d is down in \"%s\": it stays detached (start with -D to discard)", i,
                  node_status_path(config).c_str());
    }
}

}  // namespace splitpool::daemon
