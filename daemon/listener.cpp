// The client-facing listening sockets: TCP on listen_addresses, Unix sockets in unix_socket_directories.
#include "daemon/listener.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace splitpool::daemon {
namespace {

bool listen_tcp(const std::string& address, int port, int backlog, Listeners& out, std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    const char* host = (address == "*" || address == "0.0.0.0,::") ? nullptr : address.c_str();
    int rc = getaddrinfo(host, std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
        *error = "could not resolve listen address \"" + address + "\": " + gai_strerror(rc);
        return false;
    }
    bool any = false;
    std::string last;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
            last = strerror(errno);
            close(fd);
            continue;
        }
        out.fds.push_back(fd);
        any = true;
    }
    freeaddrinfo(res);
    if (!any) *error = "could not listen on \"" + address + "\" port " + std::to_string(port) + ": " + last;
    return any;
}

bool listen_unix(const std::string& dir, int port, int backlog, Listeners& out, std::string* error) {
    std::string path = dir + "/.s.PGSQL." + std::to_string(port);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        *error = "Unix socket path \"" + path + "\" is too long";
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    // A socket file nobody answers on is left over from a crash; one that answers is in use.
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool in_use = connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(probe);
    if (in_use) {
        close(fd);
        *error = "Unix socket \"" + path + "\" is in use by another server";
        return false;
    }
    unlink(path.c_str());
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, backlog) != 0) {
        *error = "could not create Unix socket \"" + path + "\": " + strerror(errno);
        close(fd);
        return false;
    }
    chmod(path.c_str(), 0777);  // pgpool's unix_socket_permissions default
    out.fds.push_back(fd);
    out.unix_paths.push_back(path);
    return true;
}

}  // namespace

bool open_listeners(const std::vector<std::string>& addresses, const std::vector<std::string>& socket_dirs,
                    int port, int backlog, Listeners& out, std::string* error) {
    for (const auto& a : addresses)
        if (!a.empty() && !listen_tcp(a, port, backlog, out, error)) return close_listeners(out, true), false;
    for (const auto& d : socket_dirs)
        if (!d.empty() && !listen_unix(d, port, backlog, out, error)) return close_listeners(out, true), false;
    if (out.fds.empty()) {
        *error = "no listen_addresses and no unix_socket_directories: nothing to listen on";
        return false;
    }
    return true;
}

void close_listeners(Listeners& listeners, bool remove_socket_files) {
    for (int fd : listeners.fds) close(fd);
    listeners.fds.clear();
    if (remove_socket_files)
        for (const auto& p : listeners.unix_paths) unlink(p.c_str());
    listeners.unix_paths.clear();
}

}  // namespace splitpool::daemon
