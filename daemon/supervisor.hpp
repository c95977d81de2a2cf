// The parent process: forks the children, replaces the ones that exit, reloads on SIGHUP and
// runs the three shutdown modes.
#pragma once

#include <sys/types.h>

#include <string>
#include <functional>
#include <vector>

#include "daemon/auth_state.hpp"
#include "daemon/config.hpp"
#include "daemon/log.hpp"
#include "daemon/log_collector.hpp"
#include "daemon/service_notify.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// Logger settings for a config; `debug` is the -d flag (DEBUG1 whatever the file says).
LogOptions log_options_for(const Config& config, bool debug);

// Publishes the backend list (host, port, weight, flags) in shared memory; roles and statuses
// only at start and for nodes a reload adds.
void publish_nodes(const Config& config, shm::StatusTable& table, bool at_start);

// The PCP administration listener the supervisor keeps running beside the children.
struct PcpSetup {
    std::vector<int> listen_fds;
    std::string pcp_conf_path;
    std::vector<int> metrics_fds;   // the Prometheus endpoint's listeners; empty = off
};

// What the parent tells others about itself: the service manager (sd_notify) and the logging
// collector (null when logging_collector is off), whose pid it watches and which it signals.
struct SupervisorServices {
    ServiceNotifier notifier;
    LogCollector* collector = nullptr;
};

// The signals the parent takes with sigtimedwait (blocked before the first fork).
void supervisor_signal_set(sigset_t& set);

class Supervisor {
public:
    Supervisor(Config config, shm::StatusTable& table, std::vector<int> listen_fds, PcpSetup pcp, bool debug,
               SupervisorServices services = {});
    // Expects supervisor_signal_set() to be blocked. Returns the exit code.
    int run();

private:
    void spawn(int slot);
    // Listening sockets the parent holds other than the client listeners (PCP, metrics, any it
    // inherited): a child closes them, so an orphaned child cannot keep their ports. Read once per
    // batch of forks here rather than by each of up to 1000 children.
    void note_foreign_listeners();
    // Forks the child of `slot`; `start_gate` >= 0: the child waits for EOF on it first. 0 on failure.
    pid_t fork_child(int slot, int start_gate);
    // num_init_children at start, forked in parallel by spawner processes when there are many.
    void spawn_initial_children();
    [[noreturn]] void run_spawner(int first, int last, int gate, int report);
    void collect_spawned(int report);
    void spawn_pcp();
    void spawn_metrics();
    // Health check per node (health_check_period > 0) and the replication worker (sr_check_period
    // > 0 and sr_check_user set); restarted with the new configuration on reload.
    void spawn_checkers();
    void stop_checkers(int sig);
    pid_t spawn_worker(const char* what, const std::function<void()>& body);
    void reap_children();
    void reload();
    void rotate_log();   // SIGUSR1 (and pcp_log_rotate): the collector opens a new file
    void begin_shutdown(int sig);
    int live_children() const;

    Config config_;
    AuthState auth_;  // loaded before the children are forked, who share it
    shm::StatusTable& table_;
    std::vector<int> listen_fds_;
    bool debug_;
    PcpSetup pcp_;
    SupervisorServices services_;
    std::vector<pid_t> pids_;   // by child slot; 0 = empty
    std::vector<int> spawn_fds_;  // the spawners' pipes while the initial children are forked
    std::vector<int> foreign_listeners_;
    pid_t pcp_pid_ = 0;
    pid_t metrics_pid_ = 0;
    std::vector<pid_t> checker_pids_;  // health checks and the replication worker
    int shutdown_signal_ = 0;
    int64_t shutdown_started_ms_ = 0;
};

}  // namespace splitpool::daemon
