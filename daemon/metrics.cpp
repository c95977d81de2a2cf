// The optional Prometheus endpoint: a small HTTP server process exporting the shared status table.
#include "daemon/metrics.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "daemon/io/conn.hpp"
#include "daemon/listener.hpp"
#include "daemon/log.hpp"

namespace splitpool::daemon {
namespace {

using shm::ChildState;
using shm::NodeStatus;

constexpr int kBacklog = 64;
constexpr size_t kMaxRequest = 8192;
constexpr int kMaxConnections = 64;       // further clients wait in the listen queue
constexpr int64_t kRequestTimeoutMs = 5000;

// ---- text format ----------------------------------------------------------------------------

std::string escape_label(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string& out, const char* name, const std::string& labels, double value) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15g", value);   // short and exact enough for gauges
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += ' ';
    out += buf;
    out += '\n';
}

void sample_u64(std::string& out, const char* name, const std::string& labels, uint64_t value) {
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += ' ' + std::to_string(value) + '\n';
}

std::string node_labels(const shm::StatusTable& table, int id) {
    shm::NodeText text = table.node_text(id);
    return "node=\"" + std::to_string(id) + "\",hostname=\"" + escape_label(text.hostname) + "\",port=\"" +
           std::to_string(text.port) + "\"";
}

// A connection per child slot that holds a backend pid for the node: the session's or a pooled one.
int backend_connections(const shm::StatusTable& table, int node) {
    int n = 0;
    for (int i = 0; i < table.num_children(); ++i)
        if (table.child(i).pid.load() != 0 && table.child(i).backend[node].pid.load() != 0) ++n;
    return n;
}

void render_replication(std::string& out, const shm::StatusTable& table, const std::vector<std::string>& labels,
                        bool roles_checked);
void render_health(std::string& out, const shm::StatusTable& table, const std::vector<std::string>& labels);

void render_nodes(std::string& out, const shm::StatusTable& table, bool roles_checked) {
    int nodes = table.num_nodes();
    std::vector<std::string> labels;
    double total_weight = 0;
    for (int i = 0; i < nodes; ++i) {
        labels.push_back(node_labels(table, i));
        total_weight += table.node(i).weight.load();
    }
    header(out, "splitpool_node_status", "gauge", "Node status: 0 unused, 1 waiting, 2 up, 3 down.");
    for (int i = 0; i < nodes; ++i) sample(out, "splitpool_node_status", labels[i], table.node(i).status.load());
    header(out, "splitpool_node_up", "gauge", "1 when the node takes statements (up or waiting), else 0.");
    for (int i = 0; i < nodes; ++i) {
        auto s = static_cast<NodeStatus>(table.node(i).status.load());
        sample(out, "splitpool_node_up", labels[i], s == NodeStatus::Up || s == NodeStatus::Waiting);
    }
    header(out, "splitpool_node_primary", "gauge", "1 for the primary (the write target), 0 for a standby.");
    int primary = table.header().primary_node.load();
    for (int i = 0; i < nodes; ++i) sample(out, "splitpool_node_primary", labels[i], primary == i);
    header(out, "splitpool_node_weight", "gauge", "Load-balance weight, normalized over all nodes (0..1).");
    for (int i = 0; i < nodes; ++i)
        sample(out, "splitpool_node_weight", labels[i],
               total_weight > 0 ? table.node(i).weight.load() / total_weight : 0.0);
    header(out, "splitpool_node_select_total", "counter",
           "Statements and batches sent to the node (SHOW POOL_NODES select_cnt).");
    for (int i = 0; i < nodes; ++i)
        sample_u64(out, "splitpool_node_select_total", labels[i], table.node(i).select_count.load());
    header(out, "splitpool_node_statements_total", "counter", "Statements sent to the node, by class.");
    static const char* kClasses[] = {"select", "insert", "update", "delete", "ddl", "other"};
    for (int i = 0; i < nodes; ++i)
        for (int c = 0; c < shm::kStatementClasses; ++c)
            sample_u64(out, "splitpool_node_statements_total",
                       labels[i] + ",class=\"" + kClasses[c] + "\"", table.node(i).statements[c].load());
    header(out, "splitpool_node_errors_total", "counter", "ErrorResponses the node sent.");
    for (int i = 0; i < nodes; ++i) sample_u64(out, "splitpool_node_errors_total", labels[i], table.node(i).errors.load());
    header(out, "splitpool_node_replication_delay_bytes", "gauge",
           "Replay lag behind the primary in bytes, as the streaming-replication check last saw it.");
    for (int i = 0; i < nodes; ++i)
        if (int64_t d = table.node(i).replication_delay.load(); d >= 0)
            sample(out, "splitpool_node_replication_delay_bytes", labels[i], double(d));
    header(out, "splitpool_node_backend_connections", "gauge", "Open connections from splitpool's children.");
    for (int i = 0; i < nodes; ++i)
        sample(out, "splitpool_node_backend_connections", labels[i], backend_connections(table, i));
    header(out, "splitpool_node_status_changed_timestamp_seconds", "gauge", "When the node status last changed.");
    for (int i = 0; i < nodes; ++i)
        sample(out, "splitpool_node_status_changed_timestamp_seconds", labels[i],
               double(table.node(i).status_changed_at.load()));
    render_replication(out, table, labels, roles_checked);
    render_health(out, table, labels);
}

// What the replication check found: each node's own answer to pg_is_in_recovery() (only when the
// check runs: otherwise a role is only what the configuration implies) and, for the standbys, what
// the primary's pg_stat_replication says of them.
void render_replication(std::string& out, const shm::StatusTable& table, const std::vector<std::string>& labels,
                        bool roles_checked) {
    int nodes = table.num_nodes(), primary = table.header().primary_node.load();
    header(out, "splitpool_node_reported_primary", "gauge",
           "1 when the node says it is not in recovery, 0 when it is in recovery (pg_is_in_recovery()).");
    for (int i = 0; roles_checked && i < nodes; ++i)
        if (auto role = static_cast<shm::NodeRole>(table.node(i).role.load()); role != shm::NodeRole::Unknown)
            sample(out, "splitpool_node_reported_primary", labels[i], role == shm::NodeRole::Primary);
    header(out, "splitpool_node_replication_lag_seconds", "gauge",
           "Replay lag of a standby (pg_stat_replication.replay_lag on the primary; 0 when idle).");
    for (int i = 0; i < nodes; ++i)
        if (int64_t us = table.node(i).replication_lag_us.load(); us >= 0 && i != primary)
            sample(out, "splitpool_node_replication_lag_seconds", labels[i], double(us) / 1e6);
    header(out, "splitpool_node_replication_state", "gauge",
           "1, labelled with the standby's state and sync_state as the primary's pg_stat_replication reports them.");
    static const char* kStates[] = {"", "startup", "catchup", "streaming", "backup", "stopping"};
    static const char* kSync[] = {"", "async", "potential", "sync", "quorum"};
    for (int i = 0; i < nodes; ++i) {
        unsigned st = table.node(i).replication_state.load(), sy = table.node(i).replication_sync_state.load();
        if (i == primary || st == 0 || st >= std::size(kStates)) continue;
        sample(out, "splitpool_node_replication_state", labels[i] + ",state=\"" + kStates[st] + "\",sync_state=\"" +
               (sy < std::size(kSync) ? kSync[sy] : "") + "\"", 1);
    }
}

// Health-check counters and durations (SHOW POOL_HEALTH_CHECK_STATS in Prometheus form).
void render_health(std::string& out, const shm::StatusTable& table, const std::vector<std::string>& labels) {
    int nodes = table.num_nodes();
    header(out, "splitpool_node_health_checks_total", "counter", "Health checks of the node by result.");
    for (int i = 0; i < nodes; ++i) {
        const shm::NodeSlot& n = table.node(i);
        sample_u64(out, "splitpool_node_health_checks_total", labels[i] + ",result=\"success\"",
                   n.health_check_success.load());
        sample_u64(out, "splitpool_node_health_checks_total", labels[i] + ",result=\"fail\"",
                   n.health_check_fail.load());
        sample_u64(out, "splitpool_node_health_checks_total", labels[i] + ",result=\"skip\"",
                   n.health_check_skip.load());
    }
    header(out, "splitpool_node_health_check_retries_total", "counter", "Health-check retries over all rounds.");
    for (int i = 0; i < nodes; ++i)
        sample_u64(out, "splitpool_node_health_check_retries_total", labels[i], table.node(i).health_check_retries.load());
    header(out, "splitpool_node_health_check_duration_seconds", "summary",
           "Duration of health-check rounds (a round is a login and its retries).");
    for (int i = 0; i < nodes; ++i) {
        const shm::NodeSlot& n = table.node(i);
        uint64_t rounds = n.health_check_success.load() + n.health_check_fail.load() - n.health_check_retries.load();
        sample(out, "splitpool_node_health_check_duration_seconds_sum", labels[i],
               double(n.health_check_duration_sum_ms.load()) / 1e3);
        sample_u64(out, "splitpool_node_health_check_duration_seconds_count", labels[i], rounds);
    }
    header(out, "splitpool_node_health_check_max_duration_seconds", "gauge", "Longest health-check round.");
    for (int i = 0; i < nodes; ++i)
        sample(out, "splitpool_node_health_check_max_duration_seconds", labels[i],
               double(table.node(i).health_check_max_ms.load()) / 1e3);
    header(out, "splitpool_node_health_check_last_success_timestamp_seconds", "gauge",
           "When a health check of the node last succeeded (0: never).");
    for (int i = 0; i < nodes; ++i)
        sample(out, "splitpool_node_health_check_last_success_timestamp_seconds", labels[i],
               double(table.node(i).health_check_last_success.load()));
    header(out, "splitpool_node_health_check_last_failure_timestamp_seconds", "gauge",
           "When a health check of the node last failed (0: never).");
    for (int i = 0; i < nodes; ++i)
        sample(out, "splitpool_node_health_check_last_failure_timestamp_seconds", labels[i],
               double(table.node(i).health_check_last_fail.load()));
}

void render_children(std::string& out, const shm::StatusTable& table) {
    static const std::pair<ChildState, const char*> kStates[] = {
        {ChildState::WaitingForClient, "wait_for_connection"}, {ChildState::Authenticating, "connecting"},
        {ChildState::Idle, "idle"},                             {ChildState::Active, "active"},
        {ChildState::IdleInTransaction, "idle_in_transaction"}};
    int counts[8] = {};
    uint64_t served = 0;
    for (int i = 0; i < table.num_children(); ++i) {
        const shm::ChildSlot& c = table.child(i);
        if (c.pid.load() == 0) continue;
        uint8_t s = c.state.load();
        if (s < 8) ++counts[s];
        served += c.sessions_served.load();
    }
    header(out, "splitpool_children", "gauge", "Child processes by state (num_init_children in all).");
    for (auto [state, name] : kStates)
        sample(out, "splitpool_children", std::string("state=\"") + name + "\"", counts[int(state)]);
    (void)served;
    const shm::Header& h = table.header();
    header(out, "splitpool_sessions_served_total", "counter", "Client sessions served since start.");
    sample_u64(out, "splitpool_sessions_served_total", "", h.sessions_total.load());
    header(out, "splitpool_query_duration_seconds", "histogram",
           "From sending a statement (or extended-protocol batch) to its ReadyForQuery.");
    uint64_t cumulative = 0;
    for (int b = 0; b < shm::kDurationBuckets; ++b) {
        cumulative += h.query_duration_bucket[b].load();
        char le[32];
        if (b < shm::kDurationBuckets - 1) snprintf(le, sizeof le, "%g", double(shm::kDurationBoundsUs[b]) / 1e6);
        else snprintf(le, sizeof le, "+Inf");
        sample_u64(out, "splitpool_query_duration_seconds_bucket", std::string("le=\"") + le + "\"", cumulative);
    }
    sample(out, "splitpool_query_duration_seconds_sum", "", double(h.query_duration_sum_us.load()) / 1e6);
    sample_u64(out, "splitpool_query_duration_seconds_count", "", h.query_count.load());
    header(out, "splitpool_active_clients", "gauge", "Clients connected past accept().");
    sample(out, "splitpool_active_clients", "", table.header().active_clients.load());
}

// ---- HTTP -----------------------------------------------------------------------------------

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

void setup_signals() {
    struct sigaction sa{};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGQUIT}) sigaction(sig, &sa, nullptr);
    for (int sig : {SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD}) signal(sig, SIG_IGN);
    sigset_t none;   // unblocked only now that a pending signal finds its handler
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

struct Client {
    int fd;
    std::string in, out;
    size_t sent = 0;
    int64_t deadline_ms;
};

std::string http_response(const char* status, const char* type, const std::string& body, bool head) {
    std::string r = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    return head ? r : r + body;
}

// The answer once the request head is complete; "" while more is needed.
std::string answer(const std::string& request, const shm::StatusTable& table, bool roles_checked) {
    size_t end = request.find("\r\n\r\n");
    if (end == std::string::npos) end = request.find("\n\n");
    if (end == std::string::npos)
        return request.size() >= kMaxRequest ? http_response("400 Bad Request", "text/plain", "bad request\n", false)
                                             : "";
    size_t line_end = request.find_first_of("\r\n");
    std::string line = request.substr(0, line_end);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string::npos) return http_response("400 Bad Request", "text/plain", "bad request\n", false);
    std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (size_t q = target.find('?'); q != std::string::npos) target.resize(q);
    bool head = method == "HEAD";
    if ((method == "GET" || head) && target == "/metrics")
        return http_response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render_metrics(table, roles_checked), head);
    return http_response("404 Not Found", "text/plain", "not found; try /metrics\n", head);
}

void accept_clients(int listen_fd, std::vector<Client>& clients) {
    while (clients.size() < size_t(kMaxConnections)) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;   // EAGAIN, or a client that went away
        clients.push_back({fd, {}, {}, 0, io::now_ms() + kRequestTimeoutMs});
    }
}

// Reads or writes what the socket allows; false when the connection is finished.
bool serve(Client& c, short revents, const shm::StatusTable& table, bool roles_checked) {
    if (c.out.empty() && (revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t n = read(c.fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
        if (n > 0) c.in.append(buf, size_t(n));
        c.out = answer(c.in, table, roles_checked);
    }
    while (!c.out.empty() && c.sent < c.out.size()) {
        ssize_t n = write(c.fd, c.out.data() + c.sent, c.out.size() - c.sent);
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        c.sent += size_t(n);
    }
    return c.out.empty();
}

}  // namespace

bool open_metrics_listeners(const Config& config, std::vector<int>& fds, std::string* error) {
    std::vector<std::string> addresses;
    for (const std::string& a : config.metrics_listen_addresses)
        if (!a.empty()) addresses.push_back(a);
    fds.clear();
    if (addresses.empty()) return true;
    Listeners listeners;
    std::string err;
    if (!open_listeners(addresses, {}, config.metrics_port, kBacklog, listeners, &err)) {
        if (error) *error = err;
        return false;
    }
    fds = listeners.fds;
    return true;
}

std::string render_metrics(const shm::StatusTable& table, bool roles_checked) {
    std::string out;
    out.reserve(8192);
    header(out, "splitpool_start_time_seconds", "gauge", "When the main process started (unix time).");
    sample(out, "splitpool_start_time_seconds", "", double(table.header().started_at.load()));
    header(out, "splitpool_config_generation", "gauge", "Successful configuration loads and reloads.");
    sample_u64(out, "splitpool_config_generation", "", table.header().config_generation.load());
    render_nodes(out, table, roles_checked);
    render_children(out, table);
    return out;
}

void run_metrics_server(const Config& config, shm::StatusTable& table, std::vector<int> fds) {
    // The endpoint is fixed at start; everything exported comes from shared memory.
    const bool roles_checked = config.sr_check_period > 0 && !config.sr_check_user.empty();
    log_set_process_name("metrics");
    setup_signals();
    pid_t parent = getppid();
    std::vector<Client> clients;
    std::vector<pollfd> polls;
    PROXY_LOG(Debug1, "metrics: process started, %zu listening sockets", fds.size());
    while (!g_stop && getppid() == parent) {
        polls.clear();
        for (int fd : fds) polls.push_back({fd, POLLIN, 0});
        for (const Client& c : clients) polls.push_back({c.fd, short(c.out.empty() ? POLLIN : POLLOUT), 0});
        if (poll(polls.data(), polls.size(), 1000) < 0 && errno != EINTR) break;
        for (size_t i = 0; i < fds.size(); ++i)
            if (polls[i].revents & POLLIN) accept_clients(fds[i], clients);
        int64_t now = io::now_ms();
        for (size_t i = 0, p = fds.size(); i < clients.size(); ++p) {
            Client& c = clients[i];
            short revents = p < polls.size() && polls[p].fd == c.fd ? polls[p].revents : 0;
            bool keep = revents == 0 || serve(c, revents, table, roles_checked);
            if (keep && now < c.deadline_ms) {
                ++i;
                continue;
            }
            close(c.fd);
            clients.erase(clients.begin() + long(i));
        }
    }
    for (const Client& c : clients) close(c.fd);
    for (int fd : fds) close(fd);
    PROXY_LOG(Debug1, "metrics: process exiting");
    _exit(0);
}

}  // namespace splitpool::daemon
