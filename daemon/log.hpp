// Logging: levels as pgpool's log_min_messages, one prefix format, stderr or syslog; cheap when off.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace splitpool::daemon {

// Ordered from most to least verbose, as PostgreSQL's message levels.
enum class LogLevel { Debug5, Debug4, Debug3, Debug2, Debug1, Info, Notice, Warning, Error, Log, Fatal, Panic };

std::optional<LogLevel> parse_log_level(std::string_view name);   // "debug1", "warning", ...

// log_error_verbosity, as PostgreSQL's: terse leaves out DETAIL and HINT lines, verbose adds
// the source location (LOCATION:  function, file:line).
enum class ErrorVerbosity { Terse, Default, Verbose };
std::optional<ErrorVerbosity> parse_error_verbosity(std::string_view name);
std::string_view log_level_name(LogLevel level);                  // "DEBUG", "LOG", "WARNING", ...

struct LogOptions {
    LogLevel min_level = LogLevel::Warning;
    std::string line_prefix = "%m: %a pid %p: ";
    bool to_stderr = true;
    bool to_syslog = false;
    std::string syslog_ident = "splitpool";
    std::string syslog_facility = "LOCAL0";
    ErrorVerbosity verbosity = ErrorVerbosity::Default;
};

// client_min_messages: whether a NOTICE or WARNING of splitpool's own reaches the client. The
// client order is PostgreSQL's (DEBUG5..DEBUG1 < LOG < NOTICE < WARNING < ERROR); INFO and
// ERROR and above always do.
bool client_message_wanted(LogLevel level, LogLevel client_min_messages);

// A log line never exceeds PIPE_BUF, so lines of different processes written to one pipe (the
// logging collector's) or file arrive whole.
constexpr size_t kLogLineLimit = 4096;

// Process-wide logger settings; `process_name` fills %a ("main", "child", "pcp", ...).
void log_configure(const LogOptions& options);
void log_set_process_name(std::string_view process_name);
bool log_enabled(LogLevel level);
void log_write(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));
// Same, with the source location log_error_verbosity = verbose shows.
void log_write_at(LogLevel level, const char* file, int line, const char* function, const char* format, ...)
    __attribute__((format(printf, 5, 6)));

// A client-supplied string (user, database, application name, ...) made fit for a log line: at most
// `limit` bytes of it, cut at a UTF-8 character boundary and marked "...(N bytes)" when cut, and
// control characters shown as \xNN so a client cannot forge log lines.
constexpr size_t kLogTextLimit = 256;
std::string log_text(std::string_view text, size_t limit = kLogTextLimit);

}  // namespace splitpool::daemon

// The argument list is only evaluated when the level is enabled.
#define PROXY_LOG(level, ...)                                                   \
    do {                                                                        \
        if (::splitpool::daemon::log_enabled(::splitpool::daemon::LogLevel::level)) \
            ::splitpool::daemon::log_write_at(::splitpool::daemon::LogLevel::level, __FILE__, __LINE__, \
                                              __func__, __VA_ARGS__);                  \
    } while (0)
