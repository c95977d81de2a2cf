// The parent process: forks the children, replaces the ones that exit, reloads on SIGHUP and
// runs the three shutdown modes.
#pragma once

#include <sys/types.h>

#include <vector>

#include "daemon/config.hpp"
#include "daemon/log.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// Logger settings for a config; `debug` is the -d flag (DEBUG1 whatever the file says).
LogOptions log_options_for(const Config& config, bool debug);

// Publishes the backend list (host, port, weight, flags, role) in shared memory.
void publish_nodes(const Config& config, shm::StatusTable& table);

class Supervisor {
public:
    Supervisor(Config config, shm::StatusTable& table, std::vector<int> listen_fds, bool debug);
    // Expects SIGCHLD, SIGHUP, SIGTERM, SIGINT and SIGQUIT to be blocked. Returns the exit code.
    int run();

private:
    void spawn(int slot);
    void reap_children();
    void reload();
    void begin_shutdown(int sig);
    int live_children() const;

    Config config_;
    shm::StatusTable& table_;
    std::vector<int> listen_fds_;
    bool debug_;
    std::vector<pid_t> pids_;   // by child slot; 0 = empty
    int shutdown_signal_ = 0;
    int64_t shutdown_started_ms_ = 0;
};

}  // namespace splitpool::daemon
