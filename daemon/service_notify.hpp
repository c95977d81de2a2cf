// Service-manager readiness (systemd's sd_notify protocol, without libsystemd): one datagram per
// state change to the AF_UNIX socket named by $NOTIFY_SOCKET.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>
#include <string_view>

namespace splitpool::daemon {

// The socket address for a $NOTIFY_SOCKET value: an absolute path, or an abstract name written
// "@name" (the '@' becomes the leading NUL). False for an empty, relative or too long value.
bool notify_socket_address(std::string_view value, sockaddr_un& address, socklen_t& length);

// The datagram texts (pure, so the protocol is unit tested): READY=1 names the main pid, as a
// daemon that forks must; RELOADING=1 carries MONOTONIC_USEC so Type=notify-reload accepts it too.
std::string notify_ready_text(long main_pid);
std::string notify_reloading_text(long long monotonic_usec);
std::string notify_stopping_text();

class ServiceNotifier {
public:
    // Takes $NOTIFY_SOCKET and removes it from the environment, so neither children nor hook
    // commands speak for splitpool. Without the variable every call does nothing.
    static ServiceNotifier from_environment();

    bool enabled() const { return length_ > 0; }
    void ready(long main_pid) const { send(notify_ready_text(main_pid)); }
    void reloading() const;
    void stopping() const { send(notify_stopping_text()); }

private:
    void send(const std::string& text) const;   // best effort: a failure is logged, never fatal
    sockaddr_un address_{};
    socklen_t length_ = 0;
};

}  // namespace splitpool::daemon
