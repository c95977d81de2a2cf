// The PCP process: listens on the PCP sockets and forks one worker per administration connection.
//
// Why a process per connection (as pgpool) rather than one event loop: several requests block by
// design — `-g` waits up to 90 s for clients to leave, node info probes backends with a connect
// timeout — and a forked worker keeps those waits from stalling every other administrator. PCP
// connections are rare and short, so a fork each costs nothing that matters.
#include "pcp/server.hpp"

#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon/io/conn.hpp"
#include "daemon/listener.hpp"
#include "daemon/log.hpp"
#include "pcp/commands.hpp"
#include "pcp/pcp_conf.hpp"
#include "pcp/wire.hpp"

namespace splitpool::pcp {
namespace {

constexpr int kListenBacklog = 64;
constexpr int64_t kIdleTimeoutMs = 10 * 60 * 1000;   // a forgotten connection does not live forever
constexpr int64_t kWriteTimeoutMs = 10 * 1000;

volatile sig_atomic_t g_stop = 0;

void on_stop(int) { g_stop = 1; }
void on_child(int) {}   // only interrupts poll() so workers are reaped promptly

void install_handler(int sig, void (*handler)(int)) {
    struct sigaction sa{};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   // no SA_RESTART: poll() must return on a signal
    sigaction(sig, &sa, nullptr);
}

void setup_signals() {
    // The parent forks us with its signals blocked; we handle our own. Handlers first, then the
    // unblocking: a SIGHUP sent by a reload right after the fork is already pending.
    install_handler(SIGTERM, on_stop);
    install_handler(SIGINT, on_stop);
    install_handler(SIGQUIT, on_stop);
    install_handler(SIGCHLD, on_child);
    signal(SIGHUP, SIG_IGN);    // reloads are noticed through the config generation
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

Reply auth_failure(const std::string& user) {
    PROXY_LOG(Log, "PCP: authentication failed for user \"%s\"", user.c_str());
    return fatal_reply("authentication failed for user \"" + user + "\"", "username and/or password does not match");
}

// The 'R' packet: user, then md5hex(md5hex(md5hex(password) + user) + salt). pcp.conf is read on
// every login so edits take effect without a reload, as in pgpool.
Reply authenticate(const std::string& body, const unsigned char salt[kSaltLength], bool salt_sent,
                   const std::string& conf_path) {
    std::vector<std::string> parts = split_strings(body);
    if (!salt_sent || parts.size() < 2)
        return fatal_reply("authentication failed", "username and/or password does not match");
    std::ifstream in(conf_path);
    if (!in)
        return fatal_reply("failed to authenticate PCP user",
                           "could not open " + conf_path + ". reason: " + strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    const std::string& user = parts[0];
    for (const PcpUser& u : parse_pcp_conf(text.str()).users)
        if (u.name == user && salted_response(u.password_md5, user, salt) == parts[1])
            return {encode_strings('r', {kAuthenticationOk})};
    return auth_failure(user);
}

struct Session {
    bool salt_sent = false;
    bool authenticated = false;
    unsigned char salt[kSaltLength] = {};
};

Reply dispatch(Session& s, const Packet& p, const CommandContext& ctx, const std::string& conf_path) {
    if (p.type == 'M') {
        if (RAND_bytes(s.salt, int(kSaltLength)) != 1)
            return fatal_reply("failed to authenticate PCP user", "could not generate a random salt");
        s.salt_sent = true;
        return {encode_packet('m', std::string_view(reinterpret_cast<const char*>(s.salt), kSaltLength))};
    }
    if (p.type == 'R') {
        Reply r = authenticate(p.body, s.salt, s.salt_sent, conf_path);
        s.salt_sent = false;   // a salt answers one login attempt only
        s.authenticated = !r.close;
        return r;
    }
    if (p.type == 'X') return handle_command(ctx, p);
    if (!s.authenticated)
        return fatal_reply("authentication failed for new PCP connection", "connection not authorized");
    return handle_command(ctx, p);
}

[[noreturn]] void run_worker(int fd, const daemon::Config& config, shm::StatusTable& table,
                             const std::string& conf_path, pid_t parent_pid) {
    for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGCHLD}) signal(sig, SIG_DFL);
    io::set_nodelay(fd);
    CommandContext ctx{config, table, parent_pid};
    io::Buffer buf;
    Session session;
    for (;;) {
        Packet p;
        io::IoStatus st = read_packet(fd, buf, p, kMaxRequestLength, io::deadline_after_ms(kIdleTimeoutMs));
        if (st == io::IoStatus::Error && buf.size() >= 5) {
            Reply bad = fatal_reply("invalid PCP packet", "incorrect packet length");
            write_packet_bytes(fd, bad.bytes, io::deadline_after_ms(kWriteTimeoutMs));
        }
        if (st != io::IoStatus::Ok) _exit(0);
        PROXY_LOG(Debug1, "PCP: received packet '%c' (%zu bytes)", p.type, p.body.size());
        Reply r = dispatch(session, p, ctx, conf_path);
        if (!r.bytes.empty() && write_packet_bytes(fd, r.bytes, io::deadline_after_ms(kWriteTimeoutMs)) !=
                                    io::IoStatus::Ok)
            _exit(0);
        if (r.signal_parent) {
            PROXY_LOG(Log, "PCP: sending signal %d to the main process %d", r.signal_parent, int(parent_pid));
            kill(parent_pid, r.signal_parent);
        }
        if (r.close) {
            close(fd);
            _exit(0);
        }
    }
}

void reap_workers(std::set<pid_t>& workers) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) workers.erase(pid);
}

// The parent bumps the generation after a successful reload; re-reading the same file keeps
// pcp_pool_status in step with what the children run.
void follow_reloads(daemon::Config& current, shm::StatusTable& table, uint64_t& generation) {
    uint64_t now = table.header().config_generation.load();
    if (now == generation) return;
    generation = now;
    if (current.config_file.empty()) return;
    daemon::LoadResult loaded = daemon::load_config(current.config_file);
    if (loaded.config) current = std::move(*loaded.config);
    else PROXY_LOG(Warning, "PCP: could not re-read \"%s\"; pool status keeps the old values",
                   current.config_file.c_str());
}

void accept_all(int listen_fd, std::set<pid_t>& workers, const std::vector<int>& listen_fds,
                const daemon::Config& config, shm::StatusTable& table, const std::string& conf_path,
                pid_t parent_pid) {
    for (;;) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);   // blocking: workers read synchronously
        if (fd < 0) return;   // EAGAIN: the backlog is empty
        pid_t pid = fork();
        if (pid == 0) {
            for (int l : listen_fds) close(l);
            run_worker(fd, config, table, conf_path, parent_pid);
        }
        if (pid < 0) PROXY_LOG(Warning, "PCP: could not fork a worker: %s", strerror(errno));
        else workers.insert(pid);
        close(fd);
    }
}

}  // namespace

bool open_pcp_listeners(const daemon::Config& config, std::vector<int>& fds, std::string* error) {
    daemon::Listeners listeners;
    std::vector<std::string> dirs;
    if (!config.pcp_socket_dir.empty()) dirs.push_back(config.pcp_socket_dir);
    std::vector<std::string> addresses;
    for (const std::string& a : config.pcp_listen_addresses)
        if (!a.empty()) addresses.push_back(a);
    std::string err;
    if (!daemon::open_listeners(addresses, dirs, config.pcp_port, kListenBacklog, listeners, &err)) {
        if (error) *error = err;
        return false;
    }
    fds = listeners.fds;
    return true;
}

std::string pcp_socket_path(const daemon::Config& config) {
    if (config.pcp_socket_dir.empty()) return "";
    return config.pcp_socket_dir + "/.s.PGSQL." + std::to_string(config.pcp_port);
}

void run_pcp_server(const daemon::Config& config, shm::StatusTable& table, const std::string& pcp_conf_path,
                    pid_t parent_pid, std::vector<int> listen_fds) {
    daemon::log_set_process_name("pcp");
    setup_signals();
    daemon::Config current = config;
    uint64_t generation = table.header().config_generation.load();
    std::set<pid_t> workers;
    std::vector<pollfd> polls;
    for (int fd : listen_fds) polls.push_back({fd, POLLIN, 0});
    PROXY_LOG(Debug1, "PCP: process started, %zu listening sockets", listen_fds.size());
    while (!g_stop) {
        reap_workers(workers);
        if (getppid() != parent_pid) break;   // the main process is gone: so are we
        follow_reloads(current, table, generation);
        int n = poll(polls.data(), polls.size(), 1000);
        if (n <= 0) continue;
        for (const pollfd& p : polls)
            if (p.revents & POLLIN)
                accept_all(p.fd, workers, listen_fds, current, table, pcp_conf_path, parent_pid);
    }
    for (pid_t w : workers) kill(w, SIGTERM);
    for (int fd : listen_fds) close(fd);
    PROXY_LOG(Debug1, "PCP: process exiting");
    _exit(0);
}

}  // namespace splitpool::pcp
