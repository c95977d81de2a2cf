// Unit tests for operations: sd_notify addresses and texts, log rotation decisions, client message
// levels, and the logging keys of the configuration.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "daemon/config.hpp"
#include "daemon/log.hpp"
#include "daemon/log_collector.hpp"
#include "daemon/service_notify.hpp"

using namespace splitpool::daemon;

TEST_CASE("NOTIFY_SOCKET: absolute paths and @abstract names, nothing else") {
    struct Row {
        const char* value;
        bool ok;
        bool abstract;
    } rows[] = {
        {"/run/systemd/notify", true, false}, {"@/org/freedesktop/systemd1/notify/123", true, true},
        {"@x", true, true},                   {"", false, false},
        {"@", false, false},                  {"relative/path", false, false},
        {"/", false, false},
    };
    for (const Row& r : rows) {
        CAPTURE(r.value);
        sockaddr_un a;
        socklen_t len;
        CHECK(notify_socket_address(r.value, a, len) == r.ok);
        if (!r.ok) continue;
        CHECK(a.sun_family == AF_UNIX);
        size_t n = strlen(r.value);
        if (r.abstract) {
            CHECK(a.sun_path[0] == '\0');
            CHECK(std::string(a.sun_path + 1, n - 1) == r.value + 1);
            CHECK(len == offsetof(sockaddr_un, sun_path) + n);   // no trailing NUL for abstract names
        } else {
            CHECK(std::string(a.sun_path) == r.value);
            CHECK(len == offsetof(sockaddr_un, sun_path) + n + 1);
        }
    }
    sockaddr_un a;
    socklen_t len;
    CHECK_FALSE(notify_socket_address("/" + std::string(200, 'x'), a, len));
}

TEST_CASE("sd_notify texts") {
    CHECK(notify_ready_text(42) == "READY=1\nSTATUS=accepting connections\nMAINPID=42\n");
    CHECK(notify_reloading_text(123456) == "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=123456\n");
    CHECK(notify_stopping_text().rfind("STOPPING=1\n", 0) == 0);
}

TEST_CASE("next_rotation_time: multiples of the age in local time, strictly after now") {
    struct Row {
        long now, gmtoff;
        int age_min;
        long expect;
    } rows[] = {
        {0, 0, 0, 0},                       // off
        {10, 0, 1440, 86400},               // a day: midnight UTC
        {86400, 0, 1440, 2 * 86400},        // exactly at midnight: the next one
        {86399, 0, 1440, 86400},
        {10, 3600, 1440, 86400 - 3600},     // UTC+1: local midnight is 23:00 UTC
        {3599, 0, 60, 3600},                // an hour: on the hour
        {3600, -1800, 60, 3600 + 1800},     // UTC-0:30
        {125, 0, 1, 180},
    };
    for (const Row& r : rows) {
        CAPTURE(r.now);
        CAPTURE(r.age_min);
        CHECK(next_rotation_time(time_t(r.now), r.age_min, r.gmtoff) == time_t(r.expect));
    }
}

TEST_CASE("rotation_due and truncate_on_open") {
    LogFileSettings s;
    s.rotation_size_kb = 10;
    struct Row {
        bool requested;
        long now, next;
        int64_t size;
        RotationReason expect;
    } rows[] = {
        {false, 100, 200, 0, RotationReason::None},
        {true, 100, 200, 0, RotationReason::Requested},
        {true, 300, 200, 99999, RotationReason::Requested},   // a request is one rotation, whatever else is due
        {false, 200, 200, 0, RotationReason::Age},
        {false, 300, 200, 99999, RotationReason::Age},
        {false, 100, 200, 10240, RotationReason::Size},
        {false, 100, 200, 10239, RotationReason::None},
        {false, 100, 0, 0, RotationReason::None},               // age off
    };
    for (const Row& r : rows) {
        CAPTURE(r.now);
        CAPTURE(r.size);
        CHECK(rotation_due(s, r.requested, time_t(r.now), time_t(r.next), r.size) == r.expect);
    }
    s.rotation_size_kb = 0;
    CHECK(rotation_due(s, false, 100, 200, int64_t(1) << 40) == RotationReason::None);

    s.truncate_on_rotation = true;
    CHECK(truncate_on_open(s, RotationReason::Age, "/l/a.log", "/l/b.log"));
    CHECK_FALSE(truncate_on_open(s, RotationReason::Age, "/l/a.log", "/l/a.log"));   // same file: append
    CHECK_FALSE(truncate_on_open(s, RotationReason::Size, "/l/a.log", "/l/b.log"));
    CHECK_FALSE(truncate_on_open(s, RotationReason::Requested, "/l/a.log", "/l/b.log"));
    s.truncate_on_rotation = false;
    CHECK_FALSE(truncate_on_open(s, RotationReason::Age, "/l/a.log", "/l/b.log"));
}

TEST_CASE("log_file_path expands strftime in local time") {
    LogFileSettings s;
    s.directory = "/var/log/sp";
    s.filename = "pgpool-%Y-%m-%d_%H%M%S.log";
    time_t t = 86400 * 365;
    tm local{};
    localtime_r(&t, &local);
    char expect[64];
    strftime(expect, sizeof expect, "/var/log/sp/pgpool-%Y-%m-%d_%H%M%S.log", &local);
    CHECK(log_file_path(s, t) == expect);
    s.filename = "fixed.log";
    CHECK(log_file_path(s, t) == "/var/log/sp/fixed.log");
}

TEST_CASE("client_message_wanted: PostgreSQL's client order") {
    struct Row {
        LogLevel level, min;
        bool sent;
    } rows[] = {
        {LogLevel::Notice, LogLevel::Notice, true},   {LogLevel::Notice, LogLevel::Warning, false},
        {LogLevel::Warning, LogLevel::Warning, true}, {LogLevel::Warning, LogLevel::Error, false},
        {LogLevel::Notice, LogLevel::Log, true},      {LogLevel::Log, LogLevel::Notice, false},
        {LogLevel::Log, LogLevel::Log, true},         {LogLevel::Log, LogLevel::Debug1, true},
        {LogLevel::Debug1, LogLevel::Log, false},     {LogLevel::Debug2, LogLevel::Debug5, true},
        {LogLevel::Info, LogLevel::Error, true},      {LogLevel::Error, LogLevel::Error, true},
        {LogLevel::Fatal, LogLevel::Error, true},
    };
    for (const Row& r : rows) {
        CAPTURE(int(r.level));
        CAPTURE(int(r.min));
        CHECK(client_message_wanted(r.level, r.min) == r.sent);
    }
}

namespace {

LoadResult parse(const std::string& text) {
    return parse_config(text + "\n[[backend]]\nhostname = \"127.0.0.1\"\n", "/etc/sp/test.toml");
}

std::string first_error(const std::string& text) {
    LoadResult r = parse(text);
    return r.errors.empty() ? std::string() : r.errors.front();
}

}  // namespace

TEST_CASE("logging keys: pgpool's defaults and units") {
    LoadResult d = parse("");
    REQUIRE(d.config);
    CHECK(d.config->log_rotation_age == 1440);
    CHECK(d.config->log_rotation_size == 10240);
    CHECK_FALSE(d.config->log_truncate_on_rotation);
    CHECK(d.config->log_error_verbosity == ErrorVerbosity::Default);
    CHECK(d.config->client_min_messages == LogLevel::Notice);
    CHECK(config_value_string(*d.config, "log_error_verbosity") == "default");
    CHECK(config_value_string(*d.config, "client_min_messages") == "notice");

    struct Row {
        const char* line;
        int age, size;
    } rows[] = {
        {"log_rotation_age = \"1h\"", 60, 10240},   {"log_rotation_age = 30", 30, 10240},
        {"log_rotation_age = \"2d\"", 2880, 10240}, {"log_rotation_age = 0", 0, 10240},
        {"log_rotation_size = \"1MB\"", 1440, 1024}, {"log_rotation_size = \"400kB\"", 1440, 400},
        {"log_rotation_size = 7", 1440, 7},          {"log_rotation_size = \"2048B\"", 1440, 2},
        {"log_rotation_size = \"1GB\"", 1440, 1048576}, {"log_rotation_size = \"0\"", 1440, 0},
    };
    for (const Row& r : rows) {
        CAPTURE(r.line);
        LoadResult l = parse(r.line);
        REQUIRE(l.config);
        CHECK(l.config->log_rotation_age == r.age);
        CHECK(l.config->log_rotation_size == r.size);
    }
}

TEST_CASE("logging keys: bad values are refused with the key named") {
    struct Row {
        const char* line;
        const char* problem;
    } rows[] = {
        {"log_rotation_size = \"10 parsecs\"", "invalid size"},
        {"log_rotation_size = \"1000B\"", "not a whole number of kilobytes"},
        {"log_rotation_size = -1", "must be between 0"},
        {"log_rotation_age = \"90s\"", "not a whole number"},
        {"log_error_verbosity = \"loud\"", "allowed: terse, default, verbose"},
        {"client_min_messages = \"info\"", "debug5, debug4"},
        {"client_min_messages = \"fatal\"", "invalid level"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.line);
        std::string e = first_error(r.line);
        CHECK(e.find("/etc/sp/test.toml:1:") == 0);
        CHECK(e.find(r.problem) != std::string::npos);
    }
    LoadResult ok = parse("client_min_messages = \"warning\"\nlog_error_verbosity = \"terse\"");
    REQUIRE(ok.config);
    CHECK(ok.config->client_min_messages == LogLevel::Warning);
    CHECK(ok.config->log_error_verbosity == ErrorVerbosity::Terse);
}
