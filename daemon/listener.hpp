// The client-facing listening sockets: TCP on listen_addresses, Unix sockets in unix_socket_directories.
#pragma once

#include <string>
#include <vector>

namespace splitpool::daemon {

struct Listeners {
    std::vector<int> fds;
    std::vector<std::string> unix_paths;  // removed at exit
};

// Opens every socket, non-blocking, with backlog `backlog`. On failure closes what it opened and
// sets `error` ("could not bind to 127.0.0.1:9999: Address already in use").
bool open_listeners(const std::vector<std::string>& addresses, const std::vector<std::string>& socket_dirs,
                    int port, int backlog, Listeners& out, std::string* error);
void close_listeners(Listeners& listeners, bool remove_socket_files);

}  // namespace splitpool::daemon
