// Failover hooks: expanded like pgpool's, run asynchronously, their output logged.
#include "daemon/hook.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "daemon/log.hpp"

namespace splitpool::daemon {

namespace {

std::string field(const Config& c, int node, char what) {
    if (node < 0 || node >= int(c.backends.size())) return what == 'h' || what == 'D' ? "" : "-1";
    const BackendConfig& b = c.backends[size_t(node)];
    switch (what) {
    case 'd': return std::to_string(node);
    case 'h': return b.hostname;
    case 'p': return std::to_string(b.port);
    default: return b.data_directory;
    }
}

// The hook's own process: runs the shell with its output on a pipe, logs each line and the end.
[[noreturn]] void supervise(const char* what, const std::string& command) {
    int pipefd[2];
    if (pipe(pipefd) != 0) _exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    close(pipefd[1]);
    if (FILE* out = fdopen(pipefd[0], "r")) {
        char line[1024];
        while (fgets(line, sizeof line, out)) {
            line[strcspn(line, "\n")] = 0;
            PROXY_LOG(Log, "%s: %s", what, line);
        }
        fclose(out);
    }
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) PROXY_LOG(Log, "%s done", what);
    else PROXY_LOG(Warning, "%s failed (status %d)", what, status);
    _exit(0);
}

}  // namespace

std::string expand_hook(const std::string& command, const Config& c, const HookEvent& e) {
    std::string out;
    for (size_t i = 0; i < command.size(); ++i) {
        if (command[i] != '%' || i + 1 == command.size()) {
            out += command[i];
            continue;
        }
        switch (char k = command[++i]) {
        case 'd': case 'h': case 'p': case 'D': out += field(c, e.node, k); break;
        case 'm': out += field(c, e.new_main, 'd'); break;
        case 'H': out += field(c, e.new_main, 'h'); break;
        case 'r': out += field(c, e.new_main, 'p'); break;
        case 'R': out += field(c, e.new_main, 'D'); break;
        case 'M': out += field(c, e.old_main, 'd'); break;
        case 'P': out += field(c, e.old_primary, 'd'); break;
        case 'N': out += field(c, e.old_primary, 'h'); break;
        case 'S': out += field(c, e.old_primary, 'p'); break;
        case '%': out += '%'; break;
        default: out += '%', out += k; break;
        }
    }
    return out;
}

void run_hook(const char* what, const std::string& command, const Config& config, const HookEvent& event) {
    if (command.empty()) return;
    std::string expanded = expand_hook(command, config, event);
    PROXY_LOG(Log, "%s: running \"%s\"", what, expanded.c_str());
    // Double fork: the hook's supervisor is reparented, so nobody has to wait for it.
    pid_t pid = fork();
    if (pid < 0) {
        PROXY_LOG(Warning, "%s: could not fork: %s", what, strerror(errno));
        return;
    }
    if (pid == 0) {
        setsid();
        if (fork() == 0) supervise(what, expanded);
        _exit(0);
    }
    waitpid(pid, nullptr, 0);
}

}  // namespace splitpool::daemon
