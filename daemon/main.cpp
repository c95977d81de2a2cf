// Launcher: reads the command line and the config, then starts the daemon or signals a running one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "daemon/cli.hpp"
#include "daemon/config.hpp"
#include "daemon/config_reference.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/listener.hpp"
#include "daemon/log.hpp"
#include "daemon/pidfile.hpp"
#include "daemon/node_status_file.hpp"
#include "daemon/supervisor.hpp"
#include "daemon/metrics.hpp"
#include "pcp/server.hpp"
#include "shm/status_table.hpp"
#include "tools/pgpool_import.hpp"

#ifndef SPLITPOOL_VERSION
#define SPLITPOOL_VERSION "0.1.0"
#endif

using namespace splitpool::daemon;
namespace shm = splitpool::shm;
namespace io = splitpool::io;

namespace {

int fail(const std::string& message) {
    fprintf(stderr, "splitpool: %s\n", message.c_str());
    return 1;
}

// `stop`: signal the daemon named in the pid file and wait until it is gone, as pgpool does.
int signal_daemon(const Config& config, const Options& options) {
    auto pid = read_pid_file(config.pid_file_name);
    if (!pid || !process_alive(*pid))
        return fail("could not read pid file \"" + config.pid_file_name + "\" or the process is not running");
    if (options.command == Command::Reload) {
        if (kill(*pid, SIGHUP) != 0) return fail(std::string("could not send SIGHUP: ") + strerror(errno));
        return 0;
    }
    int sig = options.stop_mode == "smart" ? SIGTERM : options.stop_mode == "fast" ? SIGINT : SIGQUIT;
    if (kill(*pid, sig) != 0) return fail(std::string("could not send stop signal: ") + strerror(errno));
    fprintf(stderr, "stop request sent to splitpool (pid: %d). waiting for termination...", int(*pid));
    io::Deadline next_dot = io::now_ms() + 1000;
    while (process_alive(*pid)) {
        usleep(20000);
        if (io::now_ms() >= next_dot) {
            fputc('.', stderr);
            next_dot += 1000;
        }
    }
    fprintf(stderr, "done.\n");
    return 0;
}

// Detaches from the terminal; the original process exits only when the daemon reports it is
// ready (status 0) or failed (status 1), so a service manager sees start-up errors.
int daemonize(int& ready_fd) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid > 0) {
        close(fds[1]);
        char c = 0;
        ssize_t n;
        while ((n = read(fds[0], &c, 1)) < 0 && errno == EINTR) {}
        _exit(n == 1 && c == 'R' ? 0 : 1);
    }
    close(fds[0]);
    ready_fd = fds[1];
    setsid();
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    // stderr is kept when it goes to a file or pipe (`splitpool 2>>log`); a terminal is let go.
    if (isatty(STDERR_FILENO)) dup2(devnull, STDERR_FILENO);
    if (devnull > 2) close(devnull);
    return 0;
}

int start(Config config, const Options& options) {
    if (options.debug) config.log_min_messages = LogLevel::Debug1;
    config.hba_file = options.hba_file.empty() ? config.config_dir + "/pool_hba.conf" : options.hba_file;
    config.key_file = options.key_file;
    log_configure(log_options_for(config, options.debug));
    if (auto pid = read_pid_file(config.pid_file_name)) {
        if (process_alive(*pid) && *pid != getpid() && process_is_splitpool(*pid))
            return fail("pid file \"" + config.pid_file_name + "\" names splitpool (pid " + std::to_string(*pid) +
                        "), which is still running; stop it first with \"splitpool -f " + config.config_file +
                        " -m fast stop\"");
        // Not removed here: a start that fails must leave the file as it found it. A successful
        // start replaces it (write_pid_file renames over it).
        PROXY_LOG(Notice, "pid file \"%s\" is stale (pid %d is not a running splitpool): it will be replaced",
                  config.pid_file_name.c_str(), int(*pid));
    }
    Listeners listeners;
    std::string error;
    if (!open_listeners(config.listen_addresses, config.unix_socket_directories, config.port,
                        config.listen_backlog_multiplier * config.num_init_children, listeners, &error))
        return fail(error);
    PcpSetup pcp;
    pcp.pcp_conf_path = options.pcp_file.empty() ? config.config_dir + "/pcp.conf" : options.pcp_file;
    if (!splitpool::pcp::open_pcp_listeners(config, pcp.listen_fds, &error)) {
        close_listeners(listeners, true);
        return fail(error);
    }
    if (!open_metrics_listeners(config, pcp.metrics_fds, &error)) {
        close_listeners(listeners, true);
        for (int fd : pcp.listen_fds) close(fd);
        return fail(error);
    }
    // Blocked before any fork: the parent takes them with sigtimedwait, children unblock their own.
    sigset_t set;
    supervisor_signal_set(set);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    SupervisorServices services;
    services.notifier = ServiceNotifier::from_environment();
    int ready_fd = -1;
    if (!options.foreground && daemonize(ready_fd) != 0) return fail("could not detach from the terminal");
    LogCollector collector;
    if (config.logging_collector) {
        if (!start_log_collector(config, collector, &error)) return fail(error);
        services.collector = &collector;
    }
    auto table = shm::StatusTable::create(shm::segment_name_for_port(config.port),
                                          uint32_t(config.num_init_children), &error);
    if (!table) return fail(error);
    table->header().parent_pid = getpid();
    publish_nodes(config, *table, true);
    if (options.discard_status) PROXY_LOG(Log, "discarding the saved node status (-D)");
    else load_node_status(config, *table);
    if (!write_pid_file(config.pid_file_name, getpid(), &error)) {
        shm::Segment::remove(table->name());
        return fail(error);
    }
    if (ready_fd >= 0) {
        ssize_t ignored = write(ready_fd, "R", 1);
        (void)ignored;
        close(ready_fd);
    }
    std::string pid_file = config.pid_file_name;
    std::string pcp_socket = splitpool::pcp::pcp_socket_path(config);
    Supervisor supervisor(std::move(config), *table, listeners.fds, pcp, options.debug, services);
    int rc = supervisor.run();
    close_listeners(listeners, true);
    for (int fd : pcp.listen_fds) close(fd);
    for (int fd : pcp.metrics_fds) close(fd);
    if (!pcp_socket.empty()) unlink(pcp_socket.c_str());
    shm::Segment::remove(table->name());
    unlink(pid_file.c_str());
    finish_log_collector(collector);   // the last lines are in the file before we exit
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    CliResult cli = parse_cli(argc, argv);
    if (!cli.options) {
        fprintf(stderr, "splitpool: %s\nTry \"splitpool --help\" for more information.\n", cli.error.c_str());
        return 1;
    }
    const Options& options = *cli.options;
    if (options.command == Command::Help) {
        fputs(usage_text().c_str(), stdout);
        return 0;
    }
    if (options.command == Command::Version) {
        printf("splitpool %s (pgpool-II compatible)\n", SPLITPOOL_VERSION);
        return 0;
    }
    if (options.command == Command::SampleConfig) {
        fputs(sample_config_text().c_str(), stdout);
        return 0;
    }
    if (options.command == Command::ConfigReference) {
        fputs(config_reference_markdown().c_str(), stdout);
        return 0;
    }
    if (options.command == Command::ImportPgpoolConf) return splitpool::tools::import_pgpool_conf_command(options.import_file);
    LoadResult loaded = load_config(options.config_file);
    if (!loaded.config) {
        for (const auto& e : loaded.errors) fprintf(stderr, "%s\n", e.c_str());
        return fail("invalid configuration file \"" + options.config_file + "\"");
    }
    switch (options.command) {
    case Command::CheckConfig: printf("configuration file \"%s\" is valid\n", loaded.config->config_file.c_str()); return 0;
    case Command::Stop:
    case Command::Reload: return signal_daemon(*loaded.config, options);
    default: return start(std::move(*loaded.config), options);
    }
}
