// Service-manager readiness: sd_notify datagrams to $NOTIFY_SOCKET, written out by hand.
#include "daemon/service_notify.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "daemon/log.hpp"

namespace splitpool::daemon {

bool notify_socket_address(std::string_view value, sockaddr_un& address, socklen_t& length) {
    length = 0;
    address = {};
    address.sun_family = AF_UNIX;
    if (value.size() < 2 || (value[0] != '/' && value[0] != '@')) return false;
    if (value.size() >= sizeof address.sun_path) return false;
    memcpy(address.sun_path, value.data(), value.size());
    if (value[0] == '@') address.sun_path[0] = '\0';   // abstract: no terminating NUL counted
    length = socklen_t(offsetof(sockaddr_un, sun_path) + value.size() + (value[0] == '/' ? 1 : 0));
    return true;
}

std::string notify_ready_text(long main_pid) {
    return "READY=1\nSTATUS=accepting connections\nMAINPID=" + std::to_string(main_pid) + "\n";
}

std::string notify_reloading_text(long long monotonic_usec) {
    return "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=" + std::to_string(monotonic_usec) + "\n";
}

std::string notify_stopping_text() { return "STOPPING=1\nSTATUS=shutting down\n"; }

ServiceNotifier ServiceNotifier::from_environment() {
    ServiceNotifier n;
    const char* value = getenv("NOTIFY_SOCKET");
    if (!value) return n;
    if (!notify_socket_address(value, n.address_, n.length_))
        PROXY_LOG(Warning, "NOTIFY_SOCKET \"%s\" is not an absolute path or an @abstract name: ignored",
                  log_text(value).c_str());
    unsetenv("NOTIFY_SOCKET");
    return n;
}

void ServiceNotifier::reloading() const {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    send(notify_reloading_text((long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000));
}

void ServiceNotifier::send(const std::string& text) const {
    if (!enabled()) return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        PROXY_LOG(Warning, "could not create the service notification socket: %s", strerror(errno));
        return;
    }
    ssize_t n;
    do {
        n = sendto(fd, text.data(), text.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address_), length_);
    } while (n < 0 && errno == EINTR);
    if (n < 0) PROXY_LOG(Warning, "could not notify the service manager: %s", strerror(errno));
    close(fd);
}

}  // namespace splitpool::daemon
