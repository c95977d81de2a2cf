// The PCP client library shared by the pcp_* tools: connect, log in, one call per PCP command.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/io/buffer.hpp"
#include "pcp/wire.hpp"

namespace splitpool::pcp {

// One node as pgpool 4.3's NodeInfo packet carries it (the tools format it).
struct NodeInfo {
    std::string hostname;
    int port = 0;
    int status = 0;            // 0 unused, 1 waiting, 2 up, 3 down
    int quarantine = 0;
    std::string pg_status;     // "up", "down", "unknown"
    double weight = 0;         // normalized weight times RAND_MAX, as sent
    int role = 0;              // 0 main, 1 replica, 2 primary, 3 standby
    std::string pg_role;
    long standby_delay = 0;
    std::string replication_state;
    std::string replication_sync_state;
    long status_changed_time = 0;
};

struct ConnectOptions {
    std::string host;          // empty: Unix socket in /tmp; "/dir": Unix socket in dir; else TCP
    int port = 9898;
    std::string user;          // empty: the OS user
    std::string password;      // empty: looked up in PCPPASSFILE or ~/.pcppass
    FILE* debug = nullptr;     // -d: protocol trace, as pgpool prints it
};

class Client {
public:
    // Connects and authenticates. On failure returns nullptr and sets `error` to pgpool's text.
    static std::unique_ptr<Client> connect(const ConnectOptions& options, std::string* error);
    ~Client();   // says goodbye ('X') and closes

    // Each returns false on failure, with last_error() set ("ERROR:  ...\nDETAIL:  ...\n").
    bool node_count(int& count);
    bool node_info(int node_id, std::vector<NodeInfo>& nodes);   // node_id -1: every node
    bool health_check_stats(int node_id, std::vector<std::string>& fields);
    bool process_count(std::vector<int>& pids);
    bool process_info(int pid, std::vector<std::vector<std::string>>& rows);   // pid 0: every child
    bool pool_status(std::vector<ConfigItem>& items);
    bool attach_node(int node_id);
    bool detach_node(int node_id, bool gracefully);
    bool promote_node(int node_id, bool gracefully, bool switchover);
    bool reload_config(char scope);
    bool log_rotate(char scope);
    bool stop_pgpool(char mode, char scope);

    const std::string& last_error() const { return error_; }

private:
    Client(int fd, FILE* debug) : fd_(fd), debug_(debug) {}
    bool send(char type, std::string_view body);
    // Reads replies up to the end of the answer: one packet, or up to CommandComplete when `multi`.
    bool receive(char expected, bool multi, std::vector<Packet>& replies);
    bool simple_command(char type, std::string_view body, char reply_type);
    bool login(const std::string& user, const std::string& password);

    int fd_;
    FILE* debug_;
    io::Buffer buf_;
    std::string error_;
};

// The user name when -U is not given: the OS user, as pgpool.
std::string default_pcp_user();
// The host name a connection matches in .pcppass: "localhost" for the default socket directory.
std::string pcppass_host(const std::string& host);

// The .pcppass file to use: $PCPPASSFILE, else ~/.pcppass.
std::string pcppass_path();
// pgpool's rules: lines host:port:user:password, '*' matches any field, '\' escapes; the file is
// ignored unless it is a plain file without group or world access. Unix-socket connections
// match the host name "localhost".
std::optional<std::string> pcppass_lookup(const std::string& path, const std::string& host, const std::string& port,
                                          const std::string& user, FILE* debug = nullptr);

}  // namespace splitpool::pcp
