// The pid file: refuses a second daemon, tells `stop` and `reload` whom to signal.
#include "daemon/pidfile.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace splitpool::daemon {

std::optional<pid_t> read_pid_file(const std::string& path) {
    std::ifstream in(path);
    long pid = 0;
    if (!(in >> pid) || pid <= 0) return std::nullopt;
    return static_cast<pid_t>(pid);
}

bool process_alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

bool process_is_splitpool(pid_t pid) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (!comm || !std::getline(comm, name)) return true;
    if (name.find("splitpool") != std::string::npos) return true;
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::string argv0;
    if (!cmdline || !std::getline(cmdline, argv0, '\0')) return true;
    return argv0.substr(argv0.rfind('/') + 1).find("splitpool") != std::string::npos;
}

bool write_pid_file(const std::string& path, pid_t pid, std::string* error) {
    std::string tmp = path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        *error = "could not create pid file \"" + path + "\": " + strerror(errno);
        return false;
    }
    std::string text = std::to_string(pid) + "\n";
    bool ok = write(fd, text.data(), text.size()) == ssize_t(text.size());
    close(fd);
    // rename makes the file appear whole: `stop` never reads a half-written pid
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
        *error = "could not write pid file \"" + path + "\": " + strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    return true;
}

}  // namespace splitpool::daemon
