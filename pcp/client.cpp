// The PCP client library shared by the pcp_* tools: connect, log in, one call per PCP command.
#include "pcp/client.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "daemon/auth/md5.hpp"

namespace splitpool::pcp {
namespace {

// Replies can take long: -g waits for clients to leave before answering.
constexpr int64_t kReplyTimeoutMs = 15 * 60 * 1000;
constexpr int64_t kSendTimeoutMs = 30 * 1000;
constexpr const char* kDefaultSocketDir = "/tmp";   // pgpool's UNIX_DOMAIN_PATH

int connect_unix(const std::string& dir, int port, std::string* error) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/.s.PGSQL.%d", dir.c_str(), port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    *error = std::string("ERROR: connection to socket \"") + addr.sun_path + "\" failed with error \"" +
             strerror(errno) + "\"";
    if (fd >= 0) close(fd);
    return -1;
}

int connect_tcp(const std::string& host, int port, std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
        *error = std::string("ERROR: could not retrieve hostname. gethostbyname failed with error \"") +
                 gai_strerror(rc) + "\"";
        return -1;
    }
    int fd = -1, err = 0;
    for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        *error = "ERROR: connection to host \"" + host + "\" failed with error \"" + strerror(err) + "\"";
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

// One field of a .pcppass line against `token`; returns the rest of the line, or nullptr.
const char* match_field(const char* buf, const std::string& token) {
    if (buf[0] == '*' && buf[1] == ':') return buf + 2;
    const char* t = token.c_str();
    bool escaped = false;
    while (*buf) {
        if (*buf == '\\' && !escaped) {
            ++buf;
            escaped = true;
        }
        if (*buf == ':' && *t == '\0' && !escaped) return buf + 1;
        escaped = false;
        if (*t == '\0' || *buf != *t) return nullptr;
        ++buf;
        ++t;
    }
    return nullptr;
}

std::string unescape_password(const char* p) {
    std::string out;
    for (; *p && *p != ':'; ++p) {
        if (*p == '\\' && p[1] != '\0') ++p;
        out.push_back(*p);
    }
    return out;
}

std::string int_body(int value) { return std::to_string(value) + '\0'; }

bool starts_with(const std::string& body, std::string_view marker) {
    return body.size() > marker.size() && body.compare(0, marker.size(), marker) == 0 && body[marker.size()] == '\0';
}

}  // namespace

std::string default_pcp_user() {
    const passwd* pw = getpwuid(geteuid());
    return pw ? pw->pw_name : "";
}

std::string pcppass_host(const std::string& host) {
    return host.empty() || host == kDefaultSocketDir ? "localhost" : host;
}

std::string pcppass_path() {
    if (const char* env = getenv("PCPPASSFILE")) return env;
    const char* home = getenv("HOME");
    std::string dir = home && *home ? home : "";
    if (dir.empty()) {
        const passwd* pw = getpwuid(geteuid());
        if (pw) dir = pw->pw_dir;
    }
    return dir.empty() ? "" : dir + "/.pcppass";
}

std::optional<std::string> pcppass_lookup(const std::string& path, const std::string& host, const std::string& port,
                                          const std::string& user, FILE* debug) {
    struct stat st{};
    if (path.empty() || user.empty() || stat(path.c_str(), &st) != 0) return std::nullopt;
    if (!S_ISREG(st.st_mode)) {
        if (debug) fprintf(debug, "WARNING: password file \"%s\" is not a plain file\n", path.c_str());
        return std::nullopt;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        if (debug)
            fprintf(debug, "WARNING: password file \"%s\" has group or world access; permissions should be "
                           "u=rw (0600) or less\n", path.c_str());
        return std::nullopt;
    }
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        const char* rest = match_field(line.c_str(), host);
        if (rest) rest = match_field(rest, port);
        if (rest) rest = match_field(rest, user);
        if (rest) return unescape_password(rest);
    }
    return std::nullopt;
}

std::unique_ptr<Client> Client::connect(const ConnectOptions& o, std::string* error) {
    bool unix_socket = o.host.empty() || o.host[0] == '/';
    std::string host = o.host.empty() ? kDefaultSocketDir : o.host;
    int fd = unix_socket ? connect_unix(host, o.port, error) : connect_tcp(host, o.port, error);
    if (fd < 0) return nullptr;
    std::unique_ptr<Client> c(new Client(fd, o.debug));
    std::string user = o.user.empty() ? default_pcp_user() : o.user;
    std::string password = o.password;
    if (password.empty())
        password = pcppass_lookup(pcppass_path(), pcppass_host(host), std::to_string(o.port), user, o.debug).value_or("");
    if (!c->login(user, password)) {
        *error = c->error_;
        close(c->fd_);
        c->fd_ = -1;
        return nullptr;
    }
    return c;
}

Client::~Client() {
    if (fd_ < 0) return;
    send('X', "");
    close(fd_);
}

bool Client::send(char type, std::string_view body) {
    std::string bytes = encode_packet(type, body);
    if (debug_) fprintf(debug_, "DEBUG: send: tos=\"%c\", len=%d\n", type, int(body.size() + 4));
    if (write_packet_bytes(fd_, bytes, io::deadline_after_ms(kSendTimeoutMs)) == io::IoStatus::Ok) return true;
    error_ = std::string("ERROR: sending data to backend failed with error \"") + strerror(errno) + "\"";
    return false;
}

bool Client::receive(char expected, bool multi, std::vector<Packet>& replies) {
    for (;;) {
        Packet p;
        if (read_packet(fd_, buf_, p, kMaxReplyLength, io::deadline_after_ms(kReplyTimeoutMs)) != io::IoStatus::Ok) {
            error_ = "ERROR: unable to read data from socket.";
            return false;
        }
        if (debug_) fprintf(debug_, "DEBUG: recv: tos=\"%c\", len=%d\n", p.type, int(p.body.size() + 4));
        if (p.type == 'N') {
            ErrorFields notice = decode_error(p.body);
            if (debug_) fprintf(debug_, "BACKEND %s", format_error(notice).c_str());
            continue;
        }
        if (p.type == 'E') {
            error_ = format_error(decode_error(p.body));
            return false;
        }
        if (p.type != expected) {
            error_ = std::string("ERROR: invalid PCP packet type =\"") + p.type + "\"";
            return false;
        }
        replies.push_back(std::move(p));
        if (!multi || starts_with(replies.back().body, kCommandComplete)) return true;
    }
}

bool Client::login(const std::string& user, const std::string& password) {
    std::vector<Packet> replies;
    if (!send('M', "") || !receive('m', false, replies)) return false;
    if (replies[0].body.size() < kSaltLength) {
        error_ = "command failed. invalid response";
        return false;
    }
    unsigned char salt[kSaltLength];
    std::memcpy(salt, replies[0].body.data(), kSaltLength);
    std::string response = salted_response(auth::md5_hex(password), user, salt);
    replies.clear();
    if (!send('R', user + '\0' + response + '\0') || !receive('r', false, replies)) return false;
    if (!starts_with(replies[0].body, kAuthenticationOk)) {
        error_ = "ERROR: authentication failed. reason=\"" + replies[0].body.substr(0, replies[0].body.find('\0')) + "\"";
        return false;
    }
    return true;
}

bool Client::simple_command(char type, std::string_view body, char reply_type) {
    std::vector<Packet> replies;
    if (!send(type, body) || !receive(reply_type, false, replies)) return false;
    if (starts_with(replies[0].body, kCommandComplete) || replies[0].body == kCommandComplete) return true;
    error_ = "command failed with reason: \"" + replies[0].body.substr(0, replies[0].body.find('\0')) + "\"";
    return false;
}

bool Client::node_count(int& count) {
    std::vector<Packet> replies;
    if (!send('L', "") || !receive('l', false, replies)) return false;
    std::vector<std::string> f = split_strings(replies[0].body);
    if (f.size() < 2 || f[0] != kCommandComplete) {
        error_ = "command failed. invalid response";
        return false;
    }
    count = atoi(f[1].c_str());
    return true;
}

bool Client::node_info(int node_id, std::vector<NodeInfo>& nodes) {
    std::vector<Packet> replies;
    if (!send('I', int_body(node_id)) || !receive('i', true, replies)) return false;
    for (const Packet& p : replies) {
        std::vector<std::string> f = split_strings(p.body);
        if (f.empty() || f[0] != "NodeInfo") continue;
        if (f.size() < 13) {
            error_ = "command failed. invalid response";
            return false;
        }
        NodeInfo n;
        n.hostname = f[1];
        n.port = atoi(f[2].c_str());
        n.status = atoi(f[3].c_str());
        n.quarantine = atoi(f[4].c_str());
        n.pg_status = f[5];
        n.weight = atof(f[6].c_str());
        n.role = atoi(f[7].c_str());
        n.pg_role = f[8];
        n.standby_delay = atol(f[9].c_str());
        n.replication_state = f[10];
        n.replication_sync_state = f[11];
        n.status_changed_time = atol(f[12].c_str());
        nodes.push_back(std::move(n));
    }
    return true;
}

bool Client::health_check_stats(int node_id, std::vector<std::string>& fields) {
    std::vector<Packet> replies;
    if (!send('H', int_body(node_id)) || !receive('h', false, replies)) return false;
    std::vector<std::string> f = split_strings(replies[0].body);
    if (f.empty() || f[0] != kCommandComplete) {
        error_ = "command failed. invalid response";
        return false;
    }
    fields.assign(f.begin() + 1, f.end());
    fields.resize(20);
    return true;
}

bool Client::process_count(std::vector<int>& pids) {
    std::vector<Packet> replies;
    if (!send('N', "") || !receive('n', false, replies)) return false;
    std::vector<std::string> f = split_strings(replies[0].body);
    if (f.size() < 2 || f[0] != kCommandComplete) {
        error_ = "command failed with reason: \"" + (f.empty() ? std::string() : f[0]) + "\"";
        return false;
    }
    int count = atoi(f[1].c_str());
    for (int i = 0; i < count && size_t(i) + 2 < f.size(); ++i) pids.push_back(atoi(f[size_t(i) + 2].c_str()));
    return true;
}

bool Client::process_info(int pid, std::vector<std::vector<std::string>>& rows) {
    std::vector<Packet> replies;
    if (!send('P', int_body(pid)) || !receive('p', true, replies)) return false;
    for (const Packet& p : replies) {
        std::vector<std::string> f = split_strings(p.body);
        if (f.empty() || f[0] != "ProcessInfo") continue;
        f.erase(f.begin());
        f.resize(17);   // pgpool 4.3's POOL_REPORT_POOLS has 17 fields
        rows.push_back(std::move(f));
    }
    return true;
}

bool Client::pool_status(std::vector<ConfigItem>& items) {
    std::vector<Packet> replies;
    if (!send('B', "") || !receive('b', true, replies)) return false;
    for (const Packet& p : replies) {
        std::vector<std::string> f = split_strings(p.body);
        if (f.empty() || f[0] != "ProcessConfig") continue;
        f.resize(4);
        items.push_back({f[1], f[2], f[3]});
    }
    return true;
}

bool Client::attach_node(int node_id) { return simple_command('C', int_body(node_id), 'c'); }

bool Client::detach_node(int node_id, bool gracefully) {
    return simple_command(gracefully ? 'd' : 'D', int_body(node_id), 'd');
}

bool Client::promote_node(int node_id, bool gracefully, bool switchover) {
    std::string body = std::to_string(node_id) + " " + '\0' + (switchover ? 's' : 'n');
    return simple_command(gracefully ? 'j' : 'J', body, 'd');
}

bool Client::reload_config(char scope) { return simple_command('Z', std::string(1, scope), 'z'); }

bool Client::log_rotate(char scope) { return simple_command('V', std::string(1, scope), 'v'); }

bool Client::stop_pgpool(char mode, char scope) {
    return simple_command(scope == 'l' ? 'T' : 't', std::string(1, mode), 't');
}

}  // namespace splitpool::pcp
