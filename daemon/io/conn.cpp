// Socket helpers: connect with a timeout, deadline-bounded blocking reads and writes for the
// short setup phases, and non-blocking reads and writes for the relay.
#include "daemon/io/conn.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <openssl/err.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

namespace splitpool::io {

Deadline now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Deadline deadline_after_ms(int64_t ms) { return now_ms() + ms; }

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on Unix sockets
}

namespace {

// Waits for `events` on fd until the deadline; EINTR ends the wait only when interrupted is set.
IoStatus wait_for(int fd, short events, Deadline deadline, const volatile int* interrupted) {
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return IoStatus::Timeout;
        pollfd p{fd, events, 0};
        int n = poll(&p, 1, static_cast<int>(left > 60000 ? 60000 : left));
        if (n > 0) return IoStatus::Ok;
        if (n < 0 && errno == EINTR && interrupted && *interrupted) return IoStatus::Interrupted;
        if (n < 0 && errno != EINTR) return IoStatus::Error;
    }
}

int connect_unix(const std::string& dir, int port, std::string* error) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = dir + "/.s.PGSQL." + std::to_string(port);
    if (path.size() >= sizeof addr.sun_path) {
        *error = "Unix socket path \"" + path + "\" is too long";
        return -1;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        *error = "could not connect to server on socket \"" + path + "\": " + strerror(errno);
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

int connect_tcp_one(const addrinfo* ai, int timeout_ms, std::string* error) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *error = strerror(errno);
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        IoStatus st = errno == EINPROGRESS ? wait_for(fd, POLLOUT, deadline_after_ms(timeout_ms), nullptr)
                                           : IoStatus::Error;
        int err = errno == EINPROGRESS ? 0 : errno;
        socklen_t len = sizeof err;
        if (st == IoStatus::Ok) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (st != IoStatus::Ok || err != 0) {
            *error = st == IoStatus::Timeout ? "timeout expired" : strerror(err ? err : errno);
            close(fd);
            return -1;
        }
    }
    set_nodelay(fd);
    return fd;
}

}  // namespace

int connect_to(const std::string& host, int port, int timeout_ms, std::string* error) {
    if (host.empty() || host[0] == '/') return connect_unix(host.empty() ? "/tmp" : host, port, error);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
        *error = "could not translate host name \"" + host + "\" to address: " + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    std::string last;
    for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) fd = connect_tcp_one(ai, timeout_ms, &last);
    freeaddrinfo(res);
    if (fd < 0)
        *error = "could not connect to server at \"" + host + "\", port " + std::to_string(port) + ": " + last;
    return fd;
}

ssize_t Stream::read_some(char* buf, size_t n) const {
    if (!ssl) return ::read(fd, buf, n);
    ERR_clear_error();
    int r = SSL_read(ssl, buf, int(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0) return r;
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    errno = ECONNRESET;
    return -1;
}

ssize_t Stream::write_some(const char* buf, size_t n) const {
    if (!ssl) return ::send(fd, buf, n, MSG_NOSIGNAL);
    ERR_clear_error();
    int r = SSL_write(ssl, buf, int(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0) return r;
    int err = SSL_get_error(ssl, r);
    errno = (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) ? EAGAIN : EPIPE;
    return -1;
}

IoStatus tls_handshake(SSL* ssl, bool server_side, Deadline deadline, const volatile int* interrupted) {
    for (;;) {
        ERR_clear_error();
        int r = server_side ? SSL_accept(ssl) : SSL_connect(ssl);
        if (r == 1) return IoStatus::Ok;
        int err = SSL_get_error(ssl, r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return IoStatus::Error;
        IoStatus st = wait_for(SSL_get_fd(ssl), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, interrupted);
        if (st != IoStatus::Ok) return st;
    }
}

IoStatus read_more(Stream s, Buffer& buf, Deadline deadline, const volatile int* interrupted) {
    for (;;) {
        char* dst = buf.prepare(16384);
        ssize_t n = s.read_some(dst, buf.space());
        if (n > 0) {
            buf.commit(size_t(n));
            return IoStatus::Ok;
        }
        if (n == 0) return IoStatus::Closed;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return IoStatus::Error;
        IoStatus st = wait_for(s.fd, POLLIN, deadline, interrupted);
        if (st != IoStatus::Ok) return st;
    }
}

IoStatus await_reply(Stream s, const Buffer& buf, Deadline deadline, const volatile int* interrupted) {
    if (!buf.empty() || s.pending()) return IoStatus::Ok;
    return wait_for(s.fd, POLLIN, deadline, interrupted);
}

bool write_available(Stream s, std::string& out) {
    while (!out.empty()) {
        ssize_t n = s.write_some(out.data(), out.size());
        if (n > 0) {
            out.erase(0, size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}

IoStatus write_all(Stream s, const char* data, size_t size, Deadline deadline) {
    while (size > 0) {
        ssize_t n = s.write_some(data, size);
        if (n > 0) {
            data += n;
            size -= size_t(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return IoStatus::Error;
        IoStatus st = wait_for(s.fd, POLLOUT, deadline, nullptr);
        if (st != IoStatus::Ok) return st;
    }
    return IoStatus::Ok;
}

IoStatus read_frame(Stream s, Buffer& buf, proto::Frame& frame, uint32_t max_length, Deadline deadline,
                    const volatile int* interrupted) {
    for (;;) {
        switch (proto::parse_frame(buf.data(), buf.size(), frame, max_length)) {
        case proto::FrameStatus::Ok: return IoStatus::Ok;
        case proto::FrameStatus::Malformed: return IoStatus::Error;
        case proto::FrameStatus::NeedMore: break;
        }
        IoStatus st = read_more(s, buf, deadline, interrupted);
        if (st != IoStatus::Ok) return st;
    }
}

std::string peer_address(const sockaddr_storage& ss) {
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    return ss.ss_family == AF_UNIX ? "[local]" : "unknown";
}

}  // namespace splitpool::io
