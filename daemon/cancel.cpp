// CancelRequest handling: finds the session that owns a cancel key through shared memory and
// forwards the cancel to every node that session uses, with each node's own key, all at once.
#include "daemon/cancel.hpp"

#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "daemon/io/conn.hpp"
#include "daemon/log.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::daemon {

namespace {

// One node's cancel: its own connection, its backend's key. `error` is set when it was not sent.
struct NodeCancel {
    size_t node = 0;
    std::string host;
    int port = 0;
    std::string packet;
    std::string error;
    bool sent = false;
};

void send_cancel(NodeCancel& c, int timeout_ms) {
    int fd = io::connect_to(c.host, c.port, timeout_ms, &c.error);
    if (fd < 0) return;
    c.sent = io::write_all(io::Stream{fd}, c.packet, io::deadline_after_ms(timeout_ms)) == io::IoStatus::Ok;
    if (!c.sent) c.error = "could not send the cancel request";
    close(fd);
}

}  // namespace

// pgpool sends the cancel to one node after another, sleeping a second between them; here each node
// gets it from a thread of its own, so a slow or unreachable node delays none of the others.
int forward_cancel(const Config& config, const shm::StatusTable& table, int32_t pid, uint32_t secret) {
    int slot = table.find_cancel_key(pid, secret);
    if (slot < 0) {
        PROXY_LOG(Debug1, "cancel request for unknown key (pid %d): ignored", pid);
        return 0;
    }
    const shm::ChildSlot& child = table.child(slot);
    std::vector<NodeCancel> cancels;
    for (size_t node = 0; node < config.backends.size() && node < size_t(shm::kMaxNodes); ++node) {
        int32_t backend_pid = child.backend[node].pid.load();
        if (backend_pid == 0) continue;
        NodeCancel c{node, config.backends[node].hostname, config.backends[node].port, {}, {}, false};
        proto::put_cancel_request(c.packet, backend_pid, child.backend[node].secret.load());
        cancels.push_back(std::move(c));
    }
    std::vector<std::thread> threads;
    for (size_t i = 1; i < cancels.size(); ++i)
        threads.emplace_back(send_cancel, std::ref(cancels[i]), config.connect_timeout);
    if (!cancels.empty()) send_cancel(cancels[0], config.connect_timeout);
    for (std::thread& t : threads) t.join();
    int sent = 0;
    for (const NodeCancel& c : cancels) {
        if (c.sent) ++sent;
        else PROXY_LOG(Warning, "could not forward cancel request to node %zu: %s", c.node, c.error.c_str());
    }
    PROXY_LOG(Debug1, "forwarded cancel request for pid %d to %d node(s)", pid, sent);
    return sent;
}

}  // namespace splitpool::daemon
