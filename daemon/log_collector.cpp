// The logging collector: reads the log pipe every splitpool process writes to, owns the log file
// and rotates it. One reader means rotation needs nobody else's cooperation: children, checkers,
// workers and hook processes keep writing to the same pipe, and the next line lands in the new file.
#include "daemon/log_collector.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <vector>

#include "daemon/log.hpp"
#include "daemon/supervisor.hpp"

namespace splitpool::daemon {

LogFileSettings log_file_settings(const Config& config) {
    return {config.log_directory, config.log_filename, config.log_rotation_age, config.log_rotation_size,
            config.log_truncate_on_rotation};
}

std::string log_file_path(const LogFileSettings& settings, time_t now) {
    tm local{};
    localtime_r(&now, &local);
    char name[1024];
    size_t n = strftime(name, sizeof name, settings.filename.c_str(), &local);
    std::string file = n > 0 ? std::string(name, n) : settings.filename;
    return settings.directory + "/" + file;
}

time_t next_rotation_time(time_t now, int age_min, long gmtoff) {
    if (age_min <= 0) return 0;
    int64_t age = int64_t(age_min) * 60;
    int64_t local = int64_t(now) + gmtoff;
    int64_t next_local = (local / age + 1) * age;
    return time_t(next_local - gmtoff);
}

RotationReason rotation_due(const LogFileSettings& settings, bool requested, time_t now, time_t next_rotation,
                            int64_t file_size) {
    if (requested) return RotationReason::Requested;
    if (next_rotation > 0 && now >= next_rotation) return RotationReason::Age;
    if (settings.rotation_size_kb > 0 && file_size >= settings.rotation_size_kb * 1024) return RotationReason::Size;
    return RotationReason::None;
}

bool truncate_on_open(const LogFileSettings& settings, RotationReason reason, const std::string& old_path,
                      const std::string& new_path) {
    return settings.truncate_on_rotation && reason == RotationReason::Age && old_path != new_path;
}

namespace {

constexpr size_t kReadSize = 65536;
constexpr int kRetryOpenSec = 10;   // a log file that could not be opened is tried again this often
constexpr int kFinishWaitMs = 5000;

int open_log_file(const LogFileSettings& settings, const std::string& path, bool truncate, std::string* error) {
    mkdir(settings.directory.c_str(), 0700);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
    if (fd < 0 && error) *error = "could not open log file \"" + path + "\": " + strerror(errno);
    return fd;
}

long local_gmtoff(time_t now) {
    tm local{};
    localtime_r(&now, &local);
    return local.tm_gmtoff;
}

void write_fully(int fd, const char* data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;   // a full disk loses lines, it does not stop the collector
        data += n;
        size -= size_t(n);
    }
}

// Everything inherited is closed but the pipe: a collector must hold no listening socket (it may
// outlive the parent by a moment) and no write end of its own pipe (it would never see EOF).
void close_inherited(int keep) {
    std::vector<int> fds;
    if (DIR* dir = opendir("/proc/self/fd")) {
        while (dirent* e = readdir(dir)) {
            int fd = atoi(e->d_name);
            if (fd > 2 && fd != keep && fd != dirfd(dir)) fds.push_back(fd);
        }
        closedir(dir);
    }
    for (int fd : fds) close(fd);
}

class Collector {
public:
    Collector(int read_fd, std::string config_file, LogFileSettings settings)
        : read_fd_(read_fd), config_file_(std::move(config_file)), settings_(std::move(settings)) {}

    [[noreturn]] void run() {
        int sig_fd = setup_signals();
        time_t now = time(nullptr);
        next_rotation_ = next_rotation_time(now, settings_.rotation_age_min, local_gmtoff(now));
        switch_file(RotationReason::SettingsChanged, now);
        std::vector<char> buf(kReadSize);
        for (;;) {
            pollfd fds[2] = {{read_fd_, POLLIN, 0}, {sig_fd, POLLIN, 0}};
            int rc = poll(fds, 2, poll_timeout_ms());
            if (rc < 0 && errno != EINTR) _exit(1);
            if (rc > 0 && (fds[1].revents & POLLIN)) take_signals(sig_fd);
            if (rc > 0 && (fds[0].revents & (POLLIN | POLLHUP))) {
                ssize_t n = read(read_fd_, buf.data(), buf.size());
                if (n == 0) finish();   // every writer is gone: the server has stopped
                if (n > 0) take(buf.data(), size_t(n));
            }
            if (draining_) drain_and_exit(buf);
            maybe_rotate();
        }
    }

private:
    int setup_signals() {
        sigset_t set;
        sigemptyset(&set);
        for (int sig : {SIGUSR1, SIGHUP, SIGTERM}) sigaddset(&set, sig);
        sigprocmask(SIG_SETMASK, &set, nullptr);
        // A fast or immediate stop signalled to the whole group must not stop the collector before
        // the others' last lines are written; it stops when the pipe has no writer left.
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGCHLD, SIG_DFL);
        return signalfd(-1, &set, SFD_CLOEXEC);
    }

    void take_signals(int sig_fd) {
        signalfd_siginfo info;
        while (read(sig_fd, &info, sizeof info) == ssize_t(sizeof info)) {
            if (info.ssi_signo == SIGUSR1) requested_ = true;
            if (info.ssi_signo == SIGHUP) reload();
            if (info.ssi_signo == SIGTERM) draining_ = true;
            pollfd p{sig_fd, POLLIN, 0};
            if (poll(&p, 1, 0) <= 0) break;
        }
    }

    int poll_timeout_ms() const {
        time_t now = time(nullptr);
        time_t wake = next_rotation_;
        if (file_fd_ < 0) wake = wake > 0 ? std::min(wake, retry_at_) : retry_at_;
        if (wake <= 0) return -1;
        return wake <= now ? 0 : int(std::min<time_t>(wake - now, 3600) * 1000);
    }

    // Whole lines are written; a partial one waits for its end so a rotation never splits a line.
    void take(const char* data, size_t size) {
        pending_.append(data, size);
        size_t end = pending_.rfind('\n');
        if (end == std::string::npos && pending_.size() < kReadSize) return;
        size_t cut = end == std::string::npos ? pending_.size() : end + 1;
        write_fully(STDERR_FILENO, pending_.data(), cut);
        pending_.erase(0, cut);
    }

    void reload() {
        LoadResult loaded = load_config(config_file_);
        if (!loaded.config) return;   // the parent logs the file's errors
        LogFileSettings fresh = log_file_settings(*loaded.config);
        LogOptions options = log_options_for(*loaded.config, false);
        options.to_stderr = true;
        options.to_syslog = false;
        log_configure(options);
        bool moved = fresh.directory != settings_.directory || fresh.filename != settings_.filename;
        bool new_age = fresh.rotation_age_min != settings_.rotation_age_min;
        settings_ = std::move(fresh);
        time_t now = time(nullptr);
        if (new_age) next_rotation_ = next_rotation_time(now, settings_.rotation_age_min, local_gmtoff(now));
        if (moved) switch_file(RotationReason::SettingsChanged, now);
    }

    void maybe_rotate() {
        time_t now = time(nullptr);
        int64_t size = 0;
        struct stat st;
        if (file_fd_ >= 0 && fstat(STDERR_FILENO, &st) == 0) size = st.st_size;
        RotationReason reason = rotation_due(settings_, requested_, now, next_rotation_, size_rotation_failed_ ? 0 : size);
        if (reason == RotationReason::None && file_fd_ < 0 && now >= retry_at_) reason = RotationReason::Requested;
        if (reason == RotationReason::None) return;
        requested_ = false;
        if (reason == RotationReason::Age)
            next_rotation_ = next_rotation_time(now, settings_.rotation_age_min, local_gmtoff(now));
        switch_file(reason, now);
    }

    // Opens the file the settings name now and makes it our stderr (our own lines go there too).
    void switch_file(RotationReason reason, time_t now) {
        std::string path = log_file_path(settings_, now);
        std::string error;
        int fd = open_log_file(settings_, path, truncate_on_open(settings_, reason, path_, path), &error);
        if (fd < 0) {
            PROXY_LOG(Error, "%s: log lines stay in \"%s\"", error.c_str(), path_.c_str());
            size_rotation_failed_ = reason == RotationReason::Size;   // retried at the next age or request
            if (file_fd_ < 0) {
                retry_at_ = now + kRetryOpenSec;
                int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(devnull, STDERR_FILENO);
                close(devnull);
            }
            return;
        }
        dup2(fd, STDERR_FILENO);
        close(fd);
        file_fd_ = STDERR_FILENO;
        size_rotation_failed_ = false;
        if (!path_.empty() && path != path_) PROXY_LOG(Debug1, "log file rotated from \"%s\"", path_.c_str());
        path_ = path;
    }

    [[noreturn]] void finish() {
        if (!pending_.empty()) write_fully(STDERR_FILENO, pending_.data(), pending_.size());
        _exit(0);
    }

    [[noreturn]] void drain_and_exit(std::vector<char>& buf) {
        fcntl(read_fd_, F_SETFL, fcntl(read_fd_, F_GETFL) | O_NONBLOCK);
        ssize_t n;
        while ((n = read(read_fd_, buf.data(), buf.size())) > 0) take(buf.data(), size_t(n));
        finish();
    }

    int read_fd_;
    std::string config_file_;
    LogFileSettings settings_;
    std::string path_;
    std::string pending_;
    int file_fd_ = -1;
    time_t next_rotation_ = 0;
    time_t retry_at_ = 0;
    bool requested_ = false;
    bool draining_ = false;
    bool size_rotation_failed_ = false;
};

pid_t fork_collector(const LogCollector& collector, const Config& config) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    close_inherited(collector.read_fd);
    log_set_process_name("logger");
    LogOptions options = log_options_for(config, false);
    options.to_stderr = true;   // the collector's own lines go into the file it writes
    options.to_syslog = false;
    log_configure(options);
    Collector(collector.read_fd, collector.config_file, log_file_settings(config)).run();
}

}  // namespace

bool start_log_collector(const Config& config, LogCollector& collector, std::string* error) {
    LogFileSettings settings = log_file_settings(config);
    int probe = open_log_file(settings, log_file_path(settings, time(nullptr)), false, error);
    if (probe < 0) return false;
    close(probe);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        *error = std::string("could not create the log pipe: ") + strerror(errno);
        return false;
    }
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);   // bursts of lines do not stall the writers (best effort)
    collector.read_fd = fds[0];
    collector.config_file = config.config_file;
    collector.pid = fork_collector(collector, config);
    if (collector.pid < 0) {
        *error = std::string("could not fork the logging collector: ") + strerror(errno);
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    // Said where it is still seen (a terminal with -n, a service's journal), as PostgreSQL does.
    PROXY_LOG(Log, "redirecting log output to the logging collector process: future log output will appear in "
                   "directory \"%s\"", settings.directory.c_str());
    // Lines of at most PIPE_BUF bytes (log_write keeps them so) reach the pipe whole, whoever writes.
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    return true;
}

void restart_log_collector(LogCollector& collector, const Config& config) {
    pid_t pid = fork_collector(collector, config);
    collector.pid = pid > 0 ? pid : 0;
}

void finish_log_collector(LogCollector& collector) {
    if (collector.pid <= 0) return;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    dup2(devnull, STDERR_FILENO);   // our write end goes: the collector sees EOF once the others are gone
    close(devnull);
    for (int waited = 0; waited < kFinishWaitMs; waited += 10) {
        if (waitpid(collector.pid, nullptr, WNOHANG) == collector.pid) return;
        usleep(10000);
    }
    // Someone else still holds the pipe (a stray hook): write what is there, then stop.
    kill(collector.pid, SIGTERM);
    waitpid(collector.pid, nullptr, 0);
}

}  // namespace splitpool::daemon
