// The parent process: forks the children, replaces the ones that exit, reloads on SIGHUP and
// runs the three shutdown modes.
#include "daemon/supervisor.hpp"

#include <openssl/rand.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <ctime>

#include "daemon/child.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/metrics.hpp"
#include "daemon/health.hpp"
#include "pcp/server.hpp"

namespace splitpool::daemon {

namespace {
// A fast shutdown gives children this long to say goodbye to their clients, then kills them.
constexpr int64_t kFastShutdownGraceMs = 10000;
// Below twice this many children the parent forks them alone; above, one spawner per further CPU.
constexpr int kSlotsPerSpawner = 64;

// OpenSSL builds its random generator (providers, DRBG chain: ~260 kB of heap) on first use. Done
// here, before the children are forked, they share it copy-on-write and only reseed after fork;
// done in each child, it was most of what an idle child cost (387 -> 145 kB Pss at 1000 children).
void prime_random_before_fork() {
    unsigned char byte;
    if (RAND_bytes(&byte, 1) != 1) PROXY_LOG(Warning, "could not initialise the random generator");
}
}  // namespace

LogOptions log_options_for(const Config& config, bool debug) {
    LogOptions o;
    o.min_level = debug ? LogLevel::Debug1 : config.log_min_messages;
    o.line_prefix = config.log_line_prefix;
    o.to_stderr = false;
    o.to_syslog = false;
    for (const auto& d : config.log_destination) {
        o.to_stderr = o.to_stderr || d == "stderr";
        o.to_syslog = o.to_syslog || d == "syslog";
    }
    o.syslog_ident = config.syslog_ident;
    o.syslog_facility = config.syslog_facility;
    o.verbosity = config.log_error_verbosity;
    return o;
}

void supervisor_signal_set(sigset_t& set) {
    sigemptyset(&set);
    for (int sig : {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) sigaddset(&set, sig);
}

void publish_nodes(const Config& config, shm::StatusTable& table, bool at_start) {
    int primary = -1;
    for (size_t i = 0; i < config.backends.size(); ++i)
        if (primary < 0 && (config.backends[i].flags & kFlagAlwaysPrimary)) primary = int(i);
    // Without ALWAYS_PRIMARY the foundation takes node 0 as primary; primary detection by
    // pg_is_in_recovery() comes with health checking.
    bool known = primary >= 0;
    if (!known) primary = 0;
    int old_count = table.num_nodes();
    for (size_t i = 0; i < config.backends.size(); ++i) {
        const BackendConfig& b = config.backends[i];
        shm::NodeSlot& n = table.node(int(i));
        table.set_node_text(int(i), b.hostname, b.port, b.application_name);
        n.weight = b.weight;
        n.flags = b.flags;
        // Roles and statuses are runtime state (PCP attach/detach/promote): a reload only sets them
        // for nodes it adds.
        if (!at_start && int(i) < old_count) continue;
        n.role = uint8_t(int(i) == primary ? shm::NodeRole::Primary
                                           : known ? shm::NodeRole::Standby : shm::NodeRole::Unknown);
        table.set_node_status(int(i), shm::NodeStatus::Waiting);
    }
    table.set_num_nodes(int(config.backends.size()));
    if (at_start) table.header().primary_node = primary;
}

Supervisor::Supervisor(Config config, shm::StatusTable& table, std::vector<int> listen_fds, PcpSetup pcp, bool debug,
                       SupervisorServices services)
    : config_(std::move(config)), table_(table), listen_fds_(std::move(listen_fds)), debug_(debug),
      pcp_(std::move(pcp)), services_(services), pids_(size_t(config_.num_init_children), 0) {}

void Supervisor::spawn_pcp() {
    if (pcp_.listen_fds.empty()) return;
    pid_t pid = fork();
    if (pid < 0) {
        PROXY_LOG(Warning, "could not fork the PCP process: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        for (int fd : listen_fds_) close(fd);  // the PCP process never accepts clients
        log_set_process_name("pcp");
        // Signals stay blocked until the PCP server has its handlers (a reload's SIGHUP may be pending).
        pcp::run_pcp_server(config_, table_, pcp_.pcp_conf_path, getppid(), pcp_.listen_fds);
    }
    pcp_pid_ = pid;
}

void Supervisor::spawn_metrics() {
    if (pcp_.metrics_fds.empty()) return;
    pid_t pid = fork();
    if (pid < 0) {
        PROXY_LOG(Warning, "could not fork the metrics process: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        for (int fd : listen_fds_) close(fd);
        for (int fd : pcp_.listen_fds) close(fd);
        run_metrics_server(config_, table_, pcp_.metrics_fds);
    }
    metrics_pid_ = pid;
}

pid_t Supervisor::spawn_worker(const char* what, const std::function<void()>& body) {
    pid_t pid = fork();
    if (pid < 0) {
        PROXY_LOG(Warning, "could not fork the %s process: %s", what, strerror(errno));
        return 0;
    }
    if (pid == 0) {
        for (int fd : listen_fds_) close(fd);
        for (int fd : pcp_.listen_fds) close(fd);
        for (int fd : pcp_.metrics_fds) close(fd);
        prctl(PR_SET_PDEATHSIG, SIGTERM);  // a checker never outlives its parent
        if (getppid() == 1) _exit(0);
        body();
        _exit(0);
    }
    return pid;
}

void Supervisor::spawn_checkers() {
    checker_pids_.clear();
    for (int node = 0; node < int(config_.backends.size()); ++node)
        if (health_check_settings(config_, node).period > 0)
            if (pid_t p = spawn_worker("health check", [this, node] { run_health_check(config_, table_, node); }))
                checker_pids_.push_back(p);
    if (config_.sr_check_period > 0 && !config_.sr_check_user.empty())
        if (pid_t p = spawn_worker("streaming replication check", [this] { run_sr_check(config_, table_); }))
            checker_pids_.push_back(p);
}

void Supervisor::stop_checkers(int sig) {
    for (pid_t p : checker_pids_)
        if (p) kill(p, sig);
}

pid_t Supervisor::fork_child(int slot, int start_gate) {
    pid_t pid = fork();
    if (pid < 0) {
        PROXY_LOG(Warning, "could not fork child %d: %s", slot, strerror(errno));
        return 0;
    }
    if (pid == 0) {
        for (int fd : foreign_listeners_) close(fd);  // children never hold sockets they do not serve
        for (int fd : spawn_fds_)
            if (fd >= 0 && fd != start_gate) close(fd);
        run_child(config_, auth_, table_, slot, listen_fds_, start_gate);
    }
    return pid;
}

void Supervisor::spawn(int slot) { pids_[size_t(slot)] = fork_child(slot, -1); }

void Supervisor::note_foreign_listeners() {
    foreign_listeners_.clear();
    std::error_code ec;  // a listing that fails leaves the list short, never throws in the parent
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
        int fd = atoi(it->path().filename().c_str());  // the iterator's own descriptor is no socket
        int listening = 0;
        socklen_t len = sizeof listening;
        if (fd > 2 && std::find(listen_fds_.begin(), listen_fds_.end(), fd) == listen_fds_.end() &&
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
            foreign_listeners_.push_back(fd);
    }
}

// One fork costs ~1 ms of CPU on this machine class (page-table copies through the hypervisor), so
// 1000 children forked one by one from the parent take at least a second of its CPU alone. Spawner
// processes (forks of the parent) fork slot ranges in parallel with it; the parent is their
// children's subreaper, so when a spawner exits its children become the parent's, to be reaped and
// signalled as any child. A spawner reports (slot, pid) on a pipe. Its children wait on a start gate
// (a pipe the parent closes after reaping every spawner): then their parent is the supervisor, and
// the parent-death signal they ask for refers to it.
void Supervisor::spawn_initial_children() {
    note_foreign_listeners();
    int n = config_.num_init_children;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int spawners = n < kSlotsPerSpawner ? 0 : int(std::min<long>({cpus, 8, n / kSlotsPerSpawner})) - 1;
    int gate[2], report[2];
    if (spawners <= 0 || pipe(gate) != 0) spawners = 0;
    else if (pipe(report) != 0) {
        close(gate[0]), close(gate[1]);
        spawners = 0;
    }
    if (spawners == 0) {
        for (int slot = 0; slot < n; ++slot) spawn(slot);
        return;
    }
    spawn_fds_ = {gate[0], gate[1], report[0], report[1]};
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int share = n / (spawners + 1);
    std::vector<pid_t> spawner_pids;
    for (int k = 0; k < spawners; ++k) {
        int first = share * (k + 1), last = k + 1 == spawners ? n : first + share;
        pid_t pid = fork();
        if (pid == 0) run_spawner(first, last, gate[0], report[1]);
        if (pid > 0) spawner_pids.push_back(pid);
        else
            for (int slot = first; slot < last; ++slot) spawn(slot);  // no spawner: the parent forks them
    }
    close(report[1]);
    spawn_fds_[3] = -1;
    for (int slot = 0; slot < share; ++slot) pids_[size_t(slot)] = fork_child(slot, -1);
    collect_spawned(report[0]);
    for (pid_t pid : spawner_pids)
        while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {}
    close(gate[1]);  // the spawners are gone: their children are ours now, and may start
    close(gate[0]);
    spawn_fds_.clear();
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

[[noreturn]] void Supervisor::run_spawner(int first, int last, int gate, int report) {
    close(spawn_fds_[1]);  // only the parent holds the gate open, only the spawners write reports
    close(spawn_fds_[2]);
    spawn_fds_[1] = spawn_fds_[2] = -1;
    for (int slot = first; slot < last; ++slot) {
        int32_t entry[2] = {slot, fork_child(slot, gate)};
        if (entry[1] > 0 && write(report, entry, sizeof entry) != ssize_t(sizeof entry)) break;
    }
    _exit(0);
}

void Supervisor::collect_spawned(int report) {
    int32_t entry[2];
    ssize_t got;
    while ((got = read(report, entry, sizeof entry)) == ssize_t(sizeof entry) || (got < 0 && errno == EINTR))
        if (got > 0 && entry[0] >= 0 && entry[0] < int(pids_.size())) pids_[size_t(entry[0])] = entry[1];
    close(report);
}

int Supervisor::live_children() const {
    int n = (pcp_pid_ != 0) + (metrics_pid_ != 0);
    for (pid_t p : pids_) n += p != 0;
    for (pid_t p : checker_pids_) n += p != 0;
    return n;
}

void Supervisor::reap_children() {
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (services_.collector && pid == services_.collector->pid) {
            // Replaced first: until then nobody reads the pipe this very line goes into.
            restart_log_collector(*services_.collector, config_);
            PROXY_LOG(Warning, "logging collector process %d exited (status %d): restarted", pid, status);
            continue;
        }
        if (pid == pcp_pid_) {
            pcp_pid_ = 0;
            if (!shutdown_signal_) {
                PROXY_LOG(Warning, "PCP process %d exited (status %d): restarting it", pid, status);
                spawn_pcp();
            }
            continue;
        }
        auto checker = std::find(checker_pids_.begin(), checker_pids_.end(), pid);
        if (checker != checker_pids_.end()) {
            *checker = 0;  // respawned on reload; a checker that dies otherwise is logged
            if (!shutdown_signal_)
                PROXY_LOG(Warning, "health or replication check process %d exited (status %d)", pid, status);
            continue;
        }
        if (pid == metrics_pid_) {
            metrics_pid_ = 0;
            if (!shutdown_signal_) {
                PROXY_LOG(Warning, "metrics process %d exited (status %d): restarting it", pid, status);
                spawn_metrics();
            }
            continue;
        }
        for (size_t slot = 0; slot < pids_.size(); ++slot) {
            if (pids_[slot] != pid) continue;
            pids_[slot] = 0;
            table_.reset_child(int(slot), 0);
            if (WIFSIGNALED(status))
                PROXY_LOG(Warning, "child process %d was terminated by signal %d", pid, WTERMSIG(status));
            else if (WEXITSTATUS(status) != 0)
                PROXY_LOG(Warning, "child process %d exited with status %d", pid, WEXITSTATUS(status));
            else
                PROXY_LOG(Debug1, "child process %d exited", pid);
            if (shutdown_signal_) continue;
            note_foreign_listeners();
            spawn(int(slot));
        }
    }
}

// Parse into a scratch config, validate, log what needs a restart, apply the rest; a broken file
// changes nothing.
void Supervisor::reload() {
    services_.notifier.reloading();
    LoadResult result = load_config(config_.config_file);
    if (!result.config) {
        for (const auto& e : result.errors) PROXY_LOG(Error, "%s", e.c_str());
        PROXY_LOG(Error, "configuration file \"%s\" contains errors; unaffected changes were not applied",
                  config_.config_file.c_str());
        services_.notifier.ready(getpid());   // still serving, with the running configuration
        return;
    }
    Config fresh = std::move(*result.config);
    for (const auto& key : restart_only_changes(config_, fresh))
        PROXY_LOG(Log, "parameter \"%s\" cannot be changed without restarting the server", key.c_str());
    keep_start_only_values(config_, fresh);
    config_ = std::move(fresh);
    log_configure(log_options_for(config_, debug_));
    publish_nodes(config_, table_, false);
    auth_ = load_auth_state(config_, &auth_);  // for children forked from now on; the others reload their own
    table_.header().config_generation.fetch_add(1);
    for (pid_t p : pids_)
        if (p) kill(p, SIGHUP);
    if (pcp_pid_) kill(pcp_pid_, SIGHUP);
    if (services_.collector && services_.collector->pid > 0) kill(services_.collector->pid, SIGHUP);
    stop_checkers(SIGTERM);  // they start again with the new configuration
    spawn_checkers();
    PROXY_LOG(Log, "configuration reloaded from \"%s\"", config_.config_file.c_str());
    services_.notifier.ready(getpid());
}

void Supervisor::rotate_log() {
    if (!services_.collector || services_.collector->pid <= 0) {
        PROXY_LOG(Log, "log rotation requested, but logging_collector is off: nothing to rotate");
        return;
    }
    PROXY_LOG(Log, "log rotation requested");
    kill(services_.collector->pid, SIGUSR1);
}

void Supervisor::begin_shutdown(int sig) {
    // A stronger mode may follow a weaker one (smart, then fast), never the other way.
    if (shutdown_signal_ == SIGQUIT || (shutdown_signal_ == SIGINT && sig == SIGTERM)) return;
    if (!shutdown_signal_) services_.notifier.stopping();
    shutdown_signal_ = sig;
    shutdown_started_ms_ = io::now_ms();
    const char* mode = sig == SIGTERM ? "smart" : sig == SIGINT ? "fast" : "immediate";
    PROXY_LOG(Log, "received %s shutdown request", mode);
    for (pid_t p : pids_)
        if (p) kill(p, sig);
    if (pcp_pid_) kill(pcp_pid_, SIGTERM);
    if (metrics_pid_) kill(metrics_pid_, SIGTERM);
    stop_checkers(SIGTERM);
}

int Supervisor::run() {
    log_set_process_name("main");
    prime_random_before_fork();
    auth_ = load_auth_state(config_, nullptr);
    spawn_initial_children();
    spawn_pcp();
    spawn_metrics();
    spawn_checkers();
    PROXY_LOG(Log, "splitpool successfully started, %d children listening on port %d", config_.num_init_children,
              config_.port);
    // The listening sockets were opened before the first fork: a connection made now is accepted.
    services_.notifier.ready(getpid());
    sigset_t set;
    supervisor_signal_set(set);
    while (!shutdown_signal_ || live_children() > 0) {
        timespec timeout{1, 0};
        int sig = sigtimedwait(&set, nullptr, &timeout);
        if (sig == SIGCHLD) reap_children();
        else if (sig == SIGHUP && !shutdown_signal_) reload();
        else if (sig == SIGUSR1) rotate_log();
        else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) begin_shutdown(sig);
        reap_children();  // SIGCHLD may coalesce with another signal
        if (shutdown_signal_ == SIGINT && io::now_ms() - shutdown_started_ms_ > kFastShutdownGraceMs)
            for (pid_t p : pids_)
                if (p) kill(p, SIGKILL);
    if (shutdown_signal_ == SIGQUIT && pcp_pid_) kill(pcp_pid_, SIGKILL);
    if (shutdown_signal_ == SIGQUIT && metrics_pid_) kill(metrics_pid_, SIGKILL);
    if (shutdown_signal_ == SIGQUIT) stop_checkers(SIGKILL);
    }
    PROXY_LOG(Log, "splitpool is shut down");
    return 0;
}

}  // namespace splitpool::daemon
