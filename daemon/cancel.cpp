// CancelRequest handling: finds the session that owns a cancel key through shared memory and
// forwards the cancel to every node that session uses, with each node's own key.
#include "daemon/cancel.hpp"

#include <unistd.h>

#include "daemon/io/conn.hpp"
#include "daemon/log.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::daemon {

int forward_cancel(const Config& config, const shm::StatusTable& table, int32_t pid, uint32_t secret) {
    int slot = table.find_cancel_key(pid, secret);
    if (slot < 0) {
        PROXY_LOG(Debug1, "cancel request for unknown key (pid %d): ignored", pid);
        return 0;
    }
    const shm::ChildSlot& child = table.child(slot);
    int sent = 0;
    for (size_t node = 0; node < config.backends.size() && node < size_t(shm::kMaxNodes); ++node) {
        int32_t backend_pid = child.backend[node].pid.load();
        if (backend_pid == 0) continue;
        const BackendConfig& b = config.backends[node];
        std::string error;
        int fd = io::connect_to(b.hostname, b.port, config.connect_timeout, &error);
        if (fd < 0) {
            PROXY_LOG(Warning, "could not forward cancel request to node %zu: %s", node, error.c_str());
            continue;
        }
        std::string packet;
        proto::put_cancel_request(packet, backend_pid, child.backend[node].secret.load());
        if (io::write_all(io::Stream{fd}, packet, io::deadline_after_ms(config.connect_timeout)) == io::IoStatus::Ok) ++sent;
        close(fd);
    }
    PROXY_LOG(Debug1, "forwarded cancel request for pid %d to %d node(s)", pid, sent);
    return sent;
}

}  // namespace splitpool::daemon
