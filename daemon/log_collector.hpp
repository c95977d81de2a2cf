// The logging collector (logging_collector = on), as PostgreSQL's: every splitpool process writes
// its log lines into one pipe; one process reads it and owns the file in log_directory, rotating
// it by age, by size and on request (SIGUSR1 to the parent, pcp_log_rotate).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>

#include "daemon/config.hpp"

namespace splitpool::daemon {

// What the collector takes from the configuration (all reloadable).
struct LogFileSettings {
    std::string directory;
    std::string filename;            // strftime pattern
    int rotation_age_min = 1440;     // 0 = no time-based rotation
    int64_t rotation_size_kb = 10240;  // 0 = no size-based rotation
    bool truncate_on_rotation = false;
};
LogFileSettings log_file_settings(const Config& config);

// ---- pure decisions (unit tested)

enum class RotationReason { None, Requested, Age, Size, SettingsChanged };

// log_filename expanded at `now` (local time) under log_directory.
std::string log_file_path(const LogFileSettings& settings, time_t now);
// The next multiple of the rotation age in local time (a 1d age rotates at midnight, 1h on the
// hour), strictly after `now`; `gmtoff` is the local offset from UTC in seconds. 0 when age is 0.
time_t next_rotation_time(time_t now, int age_min, long gmtoff);
// Which rotation is due, the most specific first; `file_size` is the current file's size.
RotationReason rotation_due(const LogFileSettings& settings, bool requested, time_t now, time_t next_rotation,
                            int64_t file_size);
// PostgreSQL's rule: the new file is truncated only by a time-based rotation to another name.
bool truncate_on_open(const LogFileSettings& settings, RotationReason reason, const std::string& old_path,
                      const std::string& new_path);

// ---- the process

struct LogCollector {
    pid_t pid = 0;
    int read_fd = -1;      // kept by the parent, so a collector that dies can be replaced
    std::string config_file;
};

// Creates the pipe, opens the first log file (so a bad log_directory fails the start), forks the
// collector and makes the pipe this process's stderr. Returns false with `error` set.
bool start_log_collector(const Config& config, LogCollector& collector, std::string* error);
// A replacement after the collector died (it appends to the file the settings name now).
void restart_log_collector(LogCollector& collector, const Config& config);
// At the very end: closes our end of the pipe and waits (bounded) until the collector has
// written every line still in it.
void finish_log_collector(LogCollector& collector);

}  // namespace splitpool::daemon
