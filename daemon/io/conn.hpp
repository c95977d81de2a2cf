// Socket helpers: connect with a timeout, deadline-bounded blocking reads and writes for the
// short setup phases, and non-blocking reads and writes for the relay.
#pragma once

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "daemon/io/buffer.hpp"
#include "daemon/proto/frame.hpp"

namespace splitpool::io {

using Deadline = int64_t;  // monotonic milliseconds
Deadline now_ms();
Deadline deadline_after_ms(int64_t ms);

enum class IoStatus { Ok, Closed, Timeout, Error, Interrupted };

// A connected socket seen through its TLS session when it has one. A plain view: it owns nothing.
struct Stream {
    int fd = -1;
    SSL* ssl = nullptr;
    // >0 bytes, 0 at end of stream, -1 with errno (EAGAIN when it would block).
    ssize_t read_some(char* buf, size_t n) const;
    ssize_t write_some(const char* buf, size_t n) const;
    // Decrypted bytes waiting inside the TLS session: the socket will not signal them.
    bool pending() const { return ssl && SSL_pending(ssl) > 0; }
};

// Connects to host:port (or to the Unix socket in directory `host` when it starts with '/').
// Returns a non-blocking fd, or -1 with `error` set.
int connect_to(const std::string& host, int port, int timeout_ms, std::string* error);

// Reads more bytes into `buf`, waiting up to the deadline. `interrupted` is polled after EINTR so
// a shutdown signal ends the wait.
IoStatus read_more(Stream s, Buffer& buf, Deadline deadline, const volatile int* interrupted = nullptr);
// Before reading the answer to a message just written: waits until the socket is readable unless
// bytes are buffered already (`buf` or inside TLS). A read straight after the write finds nothing
// on a network round trip, and a failing read is a system call per exchange.
IoStatus await_reply(Stream s, const Buffer& buf, Deadline deadline, const volatile int* interrupted = nullptr);
// Writes everything, waiting up to the deadline.
IoStatus write_all(Stream s, const char* data, size_t size, Deadline deadline);
inline IoStatus write_all(Stream s, const std::string& data, Deadline deadline) {
    return write_all(s, data.data(), data.size(), deadline);
}
// Writes as much of `out` as a non-blocking socket takes now, erasing what was written; false on a
// broken socket.
bool write_available(Stream s, std::string& out);
// Reads until one whole typed message is buffered; `frame` then points into `buf`.
IoStatus read_frame(Stream s, Buffer& buf, proto::Frame& frame, uint32_t max_length, Deadline deadline,
                    const volatile int* interrupted = nullptr);
// Runs a TLS handshake on a non-blocking socket until done or the deadline.
IoStatus tls_handshake(SSL* ssl, bool server_side, Deadline deadline, const volatile int* interrupted = nullptr);

void set_nonblocking(int fd);
void set_nodelay(int fd);
std::string peer_address(const sockaddr_storage& ss);  // "1.2.3.4:5678", "[::1]:5678" or "[local]"

}  // namespace splitpool::io
