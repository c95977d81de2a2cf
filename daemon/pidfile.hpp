// The pid file: refuses a second daemon, tells `stop` and `reload` whom to signal.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace splitpool::daemon {

std::optional<pid_t> read_pid_file(const std::string& path);   // nullopt when missing or bogus
bool process_alive(pid_t pid);
// A live process that looks like splitpool (its command name, or its program's file name, says so).
// When that cannot be read the answer is true: better refuse a start than run two daemons.
bool process_is_splitpool(pid_t pid);
bool write_pid_file(const std::string& path, pid_t pid, std::string* error);

}  // namespace splitpool::daemon
