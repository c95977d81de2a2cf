// Logging: formats the line prefix and writes one line per message with a single write().
#include "daemon/log.hpp"

#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace splitpool::daemon {
namespace {

struct LogState {
    LogOptions options;
    std::string process_name = "main";
    bool syslog_open = false;
};

LogState& state() {
    static LogState s;
    return s;
}

constexpr std::string_view kLevelNames[] = {"DEBUG", "DEBUG", "DEBUG", "DEBUG", "DEBUG", "INFO",
                                            "NOTICE", "WARNING", "ERROR", "LOG", "FATAL", "PANIC"};

int syslog_priority(LogLevel level) {
    switch (level) {
    case LogLevel::Info: return LOG_INFO;
    case LogLevel::Notice:
    case LogLevel::Log: return LOG_NOTICE;
    case LogLevel::Warning: return LOG_WARNING;
    case LogLevel::Error: return LOG_ERR;
    case LogLevel::Fatal:
    case LogLevel::Panic: return LOG_CRIT;
    default: return LOG_DEBUG;
    }
}

int syslog_facility_code(std::string_view name) {
    static constexpr int kLocal[] = {LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
                                     LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
    if (name.size() == 6 && (name.substr(0, 5) == "LOCAL" || name.substr(0, 5) == "local") &&
        name[5] >= '0' && name[5] <= '7')
        return kLocal[name[5] - '0'];
    return LOG_LOCAL0;
}

// Expands log_line_prefix escapes: %m time with ms, %t time, %p pid, %a process name, %% percent.
void append_prefix(std::string& out) {
    const std::string& prefix = state().options.line_prefix;
    for (size_t i = 0; i < prefix.size(); ++i) {
        if (prefix[i] != '%' || i + 1 == prefix.size()) {
            out += prefix[i];
            continue;
        }
        char c = prefix[++i];
        char buf[64];
        if (c == 'm' || c == 't') {
            timeval tv;
            gettimeofday(&tv, nullptr);
            tm local;
            localtime_r(&tv.tv_sec, &local);
            size_t n = strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
            if (c == 'm') n += snprintf(buf + n, sizeof buf - n, ".%03d", int(tv.tv_usec / 1000));
            out.append(buf, n);
        } else if (c == 'p') {
            out += std::to_string(getpid());
        } else if (c == 'a') {
            out += state().process_name;
        } else if (c == '%') {
            out += '%';
        }
        // unknown escapes (%u %d %l ...) expand to nothing, as pgpool does for unset values
    }
}

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
    static constexpr std::pair<std::string_view, LogLevel> kNames[] = {
        {"debug5", LogLevel::Debug5}, {"debug4", LogLevel::Debug4}, {"debug3", LogLevel::Debug3},
        {"debug2", LogLevel::Debug2}, {"debug1", LogLevel::Debug1}, {"debug", LogLevel::Debug1},
        {"info", LogLevel::Info},     {"notice", LogLevel::Notice}, {"warning", LogLevel::Warning},
        {"error", LogLevel::Error},   {"log", LogLevel::Log},       {"fatal", LogLevel::Fatal},
        {"panic", LogLevel::Panic}};
    std::string lower(name);
    for (char& c : lower) c = char(tolower(static_cast<unsigned char>(c)));
    for (auto& [n, level] : kNames)
        if (lower == n) return level;
    return std::nullopt;
}

std::optional<ErrorVerbosity> parse_error_verbosity(std::string_view name) {
    if (name == "terse") return ErrorVerbosity::Terse;
    if (name == "default") return ErrorVerbosity::Default;
    if (name == "verbose") return ErrorVerbosity::Verbose;
    return std::nullopt;
}

bool client_message_wanted(LogLevel level, LogLevel client_min_messages) {
    if (level == LogLevel::Info || level == LogLevel::Error || level == LogLevel::Fatal || level == LogLevel::Panic)
        return true;
    // For clients LOG ranks between DEBUG1 and NOTICE, as in PostgreSQL.
    auto rank = [](LogLevel l) {
        switch (l) {
        case LogLevel::Log: return 5;
        case LogLevel::Info:
        case LogLevel::Notice: return 6;
        case LogLevel::Warning: return 7;
        case LogLevel::Error:
        case LogLevel::Fatal:
        case LogLevel::Panic: return 8;
        default: return int(l);   // DEBUG5..DEBUG1: 0..4
        }
    };
    return rank(level) >= rank(client_min_messages);
}

std::string_view log_level_name(LogLevel level) { return kLevelNames[static_cast<int>(level)]; }

void log_configure(const LogOptions& options) {
    LogState& s = state();
    s.options = options;
    if (options.to_syslog && !s.syslog_open) {
        openlog(s.options.syslog_ident.c_str(), LOG_PID | LOG_NDELAY,
                syslog_facility_code(options.syslog_facility));
        s.syslog_open = true;
    }
}

void log_set_process_name(std::string_view process_name) { state().process_name = process_name; }

bool log_enabled(LogLevel level) {
    // LOG is always written, as PostgreSQL does for its own LOG lines at the default setting.
    LogLevel min = state().options.min_level;
    if (level == LogLevel::Log) return min <= LogLevel::Fatal;
    return level >= min;
}

std::string log_text(std::string_view text, size_t limit) {
    size_t keep = text.size();
    if (keep > limit) {
        keep = limit;
        while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;  // not mid-character
    }
    std::string out;
    out.reserve(keep + 24);
    for (size_t i = 0; i < keep; ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    if (keep < text.size()) out += "...(" + std::to_string(text.size()) + " bytes)";
    return out;
}

namespace {

// Drops the DETAIL: and HINT: lines of a message (log_error_verbosity = terse).
void strip_detail(std::string& message) {
    size_t pos = 0;
    while ((pos = message.find('\n', pos)) != std::string::npos) {
        std::string_view rest = std::string_view(message).substr(pos + 1);
        if (rest.rfind("DETAIL:", 0) == 0 || rest.rfind("HINT:", 0) == 0) {
            size_t end = message.find('\n', pos + 1);
            message.erase(pos, end == std::string::npos ? std::string::npos : end - pos);
        } else {
            ++pos;
        }
    }
}

void vlog(LogLevel level, const char* file, int line, const char* function, const char* format, va_list args) {
    char buf[2048];
    int n = vsnprintf(buf, sizeof buf, format, args);
    if (n < 0) return;
    const LogState& s = state();
    std::string message(buf, std::min(size_t(n), sizeof buf - 1));
    if (s.options.verbosity == ErrorVerbosity::Terse) strip_detail(message);
    if (s.options.to_syslog) syslog(syslog_priority(level), "%s: %s", kLevelNames[int(level)].data(), message.c_str());
    if (!s.options.to_stderr) return;
    std::string out;
    out.reserve(128 + message.size());
    append_prefix(out);
    out += kLevelNames[static_cast<int>(level)];
    out += ":  ";
    out += message;
    if (s.options.verbosity == ErrorVerbosity::Verbose && file) {
        const char* base = strrchr(file, '/');
        out += '\n';
        append_prefix(out);
        out += "LOCATION:  ";
        out += function ? function : "?";
        out += ", ";
        out += base ? base + 1 : file;
        out += ':' + std::to_string(line);
    }
    if (out.size() > kLogLineLimit - 1) out.resize(kLogLineLimit - 1);
    out += '\n';
    // One write() per line keeps lines from different processes whole in a shared log file or pipe.
    ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
    (void)ignored;
}

}  // namespace

void log_write(LogLevel level, const char* format, ...) {
    va_list args;
    va_start(args, format);
    vlog(level, nullptr, 0, nullptr, format, args);
    va_end(args);
}

void log_write_at(LogLevel level, const char* file, int line, const char* function, const char* format, ...) {
    va_list args;
    va_start(args, format);
    vlog(level, file, line, function, format, args);
    va_end(args);
}

}  // namespace splitpool::daemon
