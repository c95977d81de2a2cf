// Unit tests for the TOML configuration: defaults, value forms, printing, reload policy, the
// generated sample file, and every kind of validation error with its file, line and key.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon/config.hpp"

using namespace splitpool::daemon;

namespace {

constexpr const char* kFile = "/etc/sp/test.toml";

const std::string kOneBackend = R"(
[[backend]]
hostname = "127.0.0.1"
)";

// Parses `text` followed by one valid backend; the result must be valid.
Config parse_ok(const std::string& text) {
    LoadResult r = parse_config(text + kOneBackend, kFile);
    for (const std::string& e : r.errors) MESSAGE(e);
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    return *r.config;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// The parse must fail; returns the error naming `file:line:`, which must also name `key`.
std::string error_at(const std::string& text, int line, const std::string& key) {
    LoadResult r = parse_config(text, kFile);
    CHECK_FALSE(r.config);
    std::string prefix = std::string(kFile) + ":" + std::to_string(line) + ":";
    for (const std::string& e : r.errors)
        if (e.rfind(prefix, 0) == 0 && contains(e, "'" + key + "'")) return e;
    std::string all;
    for (const std::string& e : r.errors) all += "\n  " + e;
    FAIL("no error at " << prefix << " naming '" << key << "' in:" << all);
    return {};
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("defaults are pgpool's") {
    Config c = parse_ok("");
    CHECK(c.config_file == "/etc/sp/test.toml");
    CHECK(c.config_dir == "/etc/sp");
    CHECK(c.listen_addresses == std::vector<std::string>{"localhost"});
    CHECK(c.port == 9999);
    CHECK(c.unix_socket_directories == std::vector<std::string>{"/tmp"});
    CHECK(c.pcp_port == 9898);
    CHECK(c.num_init_children == 32);
    CHECK(c.max_pool == 4);
    CHECK(c.child_life_time == 300);
    CHECK(c.connect_timeout == 10000);
    CHECK(c.authentication_timeout == 60);
    CHECK(c.reset_query_list == std::vector<std::string>{"ABORT", "DISCARD ALL"});
    CHECK(c.backend_clustering_mode == "streaming_replication");
    CHECK(c.load_balance_mode);
    CHECK(c.failover_on_backend_error);
    CHECK_FALSE(c.failover_on_backend_shutdown);
    CHECK(c.log_min_messages == LogLevel::Warning);
    CHECK(c.pid_file_name == "/var/run/pgpool/pgpool.pid");
    CHECK(c.pool_passwd == "/etc/sp/pool_passwd");   // pgpool's relative default, next to the file
    REQUIRE(c.backends.size() == 1);
    CHECK(c.backends[0].port == 5432);
    CHECK(c.backends[0].weight == 1.0);
    CHECK(c.backends[0].flags == kFlagAllowToFailover);
}

TEST_CASE("every key's table default equals the struct default") {
    Config parsed = parse_ok("");
    Config plain;
    plain.config_dir = "/etc/sp";
    config_resolve_paths(plain);
    for (const KeyInfo& k : config_keys())
        CHECK_MESSAGE(config_value_string(parsed, k.name) == config_value_string(plain, k.name), k.name);
}

TEST_CASE("lists: pgpool's comma string or a TOML array") {
    Config c = parse_ok(R"(
listen_addresses = "localhost, 127.0.0.1,,"
unix_socket_directories = ["/tmp", " /run/sp ", ""]
pcp_listen_addresses = "*"
log_destination = "stderr,syslog"
)");
    CHECK(c.listen_addresses == std::vector<std::string>{"localhost", "127.0.0.1"});
    CHECK(c.unix_socket_directories == std::vector<std::string>{"/tmp", "/run/sp"});
    CHECK(c.pcp_listen_addresses == std::vector<std::string>{"*"});
    CHECK(c.log_destination == std::vector<std::string>{"stderr", "syslog"});
    CHECK(config_value_string(c, "listen_addresses") == "localhost,127.0.0.1");
}

TEST_CASE("reset_query_list: ';'-separated string or array, trimmed, empty parts dropped") {
    Config a = parse_ok(R"(reset_query_list = "ABORT;  RESET ALL ; ; SET SESSION AUTHORIZATION DEFAULT;")");
    CHECK(a.reset_query_list == std::vector<std::string>{"ABORT", "RESET ALL", "SET SESSION AUTHORIZATION DEFAULT"});
    Config b = parse_ok(R"(reset_query_list = ["ABORT", "DISCARD ALL"])");
    CHECK(b.reset_query_list == std::vector<std::string>{"ABORT", "DISCARD ALL"});
    CHECK(config_value_string(b, "reset_query_list") == "ABORT; DISCARD ALL");
}

TEST_CASE("times: a number in the base unit or a string with units") {
    Config c = parse_ok(R"(
child_life_time = "5min"
client_idle_limit = 30
connection_life_time = "1d"
authentication_timeout = "1h"
sr_check_period = "300s"
health_check_period = "0.5min"
connect_timeout = "10s"
)");
    CHECK(c.child_life_time == 300);
    CHECK(c.client_idle_limit == 30);
    CHECK(c.connection_life_time == 86400);
    CHECK(c.authentication_timeout == 3600);
    CHECK(c.sr_check_period == 300);
    CHECK(c.health_check_period == 30);
    CHECK(c.connect_timeout == 10000);
    CHECK(parse_ok(R"(connect_timeout = "500ms")").connect_timeout == 500);
    CHECK(parse_ok(R"(connect_timeout = 250)").connect_timeout == 250);
    CHECK(parse_ok(R"(child_life_time = "120")").child_life_time == 120);
    CHECK(config_value_string(c, "child_life_time") == "300");
    CHECK(config_value_string(c, "connect_timeout") == "10000");
}

TEST_CASE("booleans: TOML true/false or pgpool's words") {
    Config c = parse_ok(R"(
load_balance_mode = "off"
log_connections = "on"
log_disconnections = "YES"
log_statement = true
failover_on_backend_error = "0"
enable_pool_hba = "1"
logging_collector = "false"
)");
    CHECK_FALSE(c.load_balance_mode);
    CHECK(c.log_connections);
    CHECK(c.log_disconnections);
    CHECK(c.log_statement);
    CHECK_FALSE(c.failover_on_backend_error);
    CHECK(c.enable_pool_hba);
    CHECK_FALSE(c.logging_collector);
    CHECK(config_value_string(c, "load_balance_mode") == "off");
    CHECK(config_value_string(c, "log_connections") == "on");
}

TEST_CASE("log_min_messages and the other strings") {
    Config c = parse_ok(R"(
log_min_messages = "DEBUG1"
log_line_prefix = "%t [%p] "
syslog_ident = "splitpool"
)");
    CHECK(c.log_min_messages == LogLevel::Debug1);
    CHECK(config_value_string(c, "log_min_messages") == "debug1");
    CHECK(c.log_line_prefix == "%t [%p] ");
    CHECK(c.syslog_ident == "splitpool");
}

TEST_CASE("relative file paths are resolved against the config file's folder") {
    Config c = parse_ok(R"(
pid_file_name = "run/splitpool.pid"
logdir = "."
log_directory = "../logs"
pool_passwd = ""
pcp_socket_dir = "sockets"
)");
    CHECK(c.pid_file_name == "/etc/sp/run/splitpool.pid");
    CHECK(c.logdir == "/etc/sp");
    CHECK(c.log_directory == "/etc/logs");
    CHECK(c.pool_passwd.empty());               // "" = no pool_passwd
    CHECK(c.pcp_socket_dir == "sockets");       // a directory setting, not a file path: kept as written
    CHECK(parse_ok(R"(pid_file_name = "/run/x.pid")").pid_file_name == "/run/x.pid");
}

TEST_CASE("backends: defaults, flags as array or '|' string, per-node values") {
    LoadResult r = parse_config(R"(
[[backend]]
hostname = "10.0.0.1"
flag = ["ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"]
data_directory = "/var/lib/pg"

[[backend]]
hostname = "/tmp"
port = 5433
weight = 0.5
flag = "DISALLOW_TO_FAILOVER"
application_name = "replica1"

[[backend]]
hostname = "10.0.0.3"
weight = 0
flag = "ALWAYS_PRIMARY"
)",
                                kFile);
    REQUIRE(r.config);
    const auto& b = r.config->backends;
    REQUIRE(b.size() == 3);
    CHECK(b[0].port == 5432);
    CHECK(b[0].flags == (kFlagAlwaysPrimary | kFlagDisallowToFailover));
    CHECK(b[1].hostname == "/tmp");
    CHECK(b[1].weight == 0.5);
    CHECK(b[1].flags == kFlagDisallowToFailover);
    CHECK(b[1].application_name == "replica1");
    CHECK(b[2].flags == (kFlagAlwaysPrimary | kFlagAllowToFailover));
    CHECK(config_value_string(*r.config, "backend_flag0") == "ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER");
    CHECK(config_value_string(*r.config, "backend_flag2") == "ALWAYS_PRIMARY|ALLOW_TO_FAILOVER");
    CHECK(config_value_string(*r.config, "backend_weight1") == "0.5");
    CHECK(config_value_string(*r.config, "backend_port1") == "5433");
    CHECK(config_value_string(*r.config, "backend_data_directory0") == "/var/lib/pg");
    auto values = config_backend_values(*r.config);
    REQUIRE(values.size() == 18);
    CHECK(values[0] == std::pair<std::string, std::string>{"backend_hostname0", "10.0.0.1"});
    CHECK(values[6].first == "backend_hostname1");
}

TEST_CASE("per-node health-check settings override the top-level keys") {
    LoadResult r = parse_config(R"(
health_check_period = 10
health_check_user = "hc"
health_check_database = "postgres"
health_check_max_retries = 2
connect_timeout = 5000

[[backend]]
hostname = "10.0.0.1"

[[backend]]
hostname = "10.0.0.2"
health_check_period = "30s"
health_check_timeout = "1min"
health_check_user = "node1_hc"
health_check_password = "secret"
health_check_database = "other"
health_check_max_retries = 0
health_check_retry_delay = 3
connect_timeout = "250ms"
)",
                                kFile);
    for (const std::string& e : r.errors) MESSAGE(e);
    REQUIRE(r.config);
    HealthCheckSettings n0 = health_check_settings(*r.config, 0), n1 = health_check_settings(*r.config, 1);
    const struct {
        const char* what;
        std::string got, want;
    } rows[] = {
        {"period 0", std::to_string(n0.period), "10"},          {"period 1", std::to_string(n1.period), "30"},
        {"timeout 0", std::to_string(n0.timeout), "20"},        {"timeout 1", std::to_string(n1.timeout), "60"},
        {"user 0", n0.user, "hc"},                              {"user 1", n1.user, "node1_hc"},
        {"password 0", n0.password, ""},                        {"password 1", n1.password, "secret"},
        {"database 0", n0.database, "postgres"},                {"database 1", n1.database, "other"},
        {"retries 0", std::to_string(n0.max_retries), "2"},     {"retries 1", std::to_string(n1.max_retries), "0"},
        {"delay 0", std::to_string(n0.retry_delay), "1"},       {"delay 1", std::to_string(n1.retry_delay), "3"},
        {"connect 0", std::to_string(n0.connect_timeout), "5000"}, {"connect 1", std::to_string(n1.connect_timeout), "250"},
        // pgpool's names for SHOW POOL_STATUS; the password is never shown
        {"shown period", config_value_string(*r.config, "health_check_period1"), "30"},
        {"shown password", config_value_string(*r.config, "health_check_password1"), "********"},
        {"unset is not listed", config_value_string(*r.config, "health_check_period0"), ""},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        CHECK(row.got == row.want);
    }
    CHECK(contains(error_at("[[backend]]\nhostname = \"h\"\nhealth_check_period = \"5 parsecs\"\n", 3,
                            "backend[0].health_check_period"),
                   "invalid time value"));
    CHECK(contains(error_at("[[backend]]\nhostname = \"h\"\nhealth_check_max_retries = -1\n", 3,
                            "backend[0].health_check_max_retries"),
                   "must be between 0 and"));
}

TEST_CASE("config_keys describes every key once, with its policy") {
    const auto& keys = config_keys();
    CHECK(keys.size() >= 40);
    for (size_t i = 0; i < keys.size(); ++i) {
        CHECK_FALSE(keys[i].description.empty());
        for (size_t j = i + 1; j < keys.size(); ++j) CHECK(keys[i].name != keys[j].name);
    }
    auto find = [&](std::string_view name) {
        for (const KeyInfo& k : keys)
            if (k.name == name) return k;
        FAIL("missing key " << name);
        return keys.front();
    };
    CHECK(find("port").reload == ReloadPolicy::Start);
    CHECK(find("num_init_children").reload == ReloadPolicy::Start);
    CHECK(find("connect_timeout").reload == ReloadPolicy::Reload);
    CHECK(find("log_min_messages").reload == ReloadPolicy::Reload);
    CHECK(find("child_life_time").type == "time");
    CHECK(config_value_string(Config{}, "no_such_key").empty());
}

TEST_CASE("restart_only_changes: start keys and existing nodes' addresses") {
    Config a = parse_ok("port = 9999\nconnect_timeout = 1000\nchild_life_time = 300");
    Config b = parse_ok("port = 9998\nconnect_timeout = 2000\nchild_life_time = '5min'");
    CHECK(restart_only_changes(a, b) == std::vector<std::string>{"port"});
    CHECK(restart_only_changes(a, a).empty());

    Config c = a;
    c.backends[0].weight = 3;
    c.backends[0].flags = kFlagDisallowToFailover;
    c.backends[0].application_name = "n0";
    BackendConfig added;
    added.hostname = "10.0.0.2";
    added.port = 5433;
    c.backends.push_back(added);
    CHECK(restart_only_changes(a, c).empty());   // weight/flag/name changes and added nodes are live

    Config d = c;
    d.backends[1].port = 6000;
    d.backends[0].hostname = "10.0.0.9";
    CHECK(restart_only_changes(c, d) == std::vector<std::string>{"backend_hostname0", "backend_port1"});
    CHECK(restart_only_changes(c, a) == std::vector<std::string>{"backend_hostname1", "backend_port1"});
}

TEST_CASE("etc/splitpool.toml is the generated sample and is valid") {
    std::string text = slurp("etc/splitpool.toml");
    REQUIRE_MESSAGE(!text.empty(), "run the tests from the repository root");
    CHECK_MESSAGE(text == sample_config_text(), "regenerate with: bin/splitpool --sample-config > etc/splitpool.toml");
    LoadResult r = load_config("etc/splitpool.toml");
    for (const std::string& e : r.errors) MESSAGE(e);
    REQUIRE(r.config);
    CHECK(r.config->backends.size() == 3);
    CHECK(r.config->backends[2].port == 5434);
    Config defaults = parse_ok("");
    for (const KeyInfo& k : config_keys()) {
        if (k.type == "path") continue;   // resolved against a different folder
        CHECK_MESSAGE(config_value_string(*r.config, k.name) == config_value_string(defaults, k.name), k.name);
    }
    std::string sample = sample_config_text();
    CHECK(contains(sample, "# (change requires restart)\nport = 9999\n"));
    CHECK(contains(sample, "\nconnect_timeout = 10000\n"));
}

TEST_CASE("etc/splitpool-minimal.toml is valid") {
    LoadResult r = load_config("etc/splitpool-minimal.toml");
    for (const std::string& e : r.errors) MESSAGE(e);
    REQUIRE(r.config);
    CHECK(r.config->backends.size() >= 1);
    CHECK(r.config->pid_file_name.front() == '/');
}

TEST_CASE("load_config: a real file, and a missing one") {
    char dir_template[] = "/tmp/splitpool_config_test_XXXXXX";
    REQUIRE(mkdtemp(dir_template) != nullptr);
    std::string dir = dir_template;
    std::string path = dir + "/sp.toml";
    std::ofstream(path) << "pid_file_name = 'sp.pid'\nport = 7000\n" << kOneBackend;
    LoadResult r = load_config(path);
    REQUIRE(r.config);
    CHECK(r.config->config_file == path);
    CHECK(r.config->config_dir == dir);
    CHECK(r.config->port == 7000);
    CHECK(r.config->pid_file_name == dir + "/sp.pid");
    std::remove(path.c_str());
    rmdir(dir.c_str());

    LoadResult missing = load_config(path);
    CHECK_FALSE(missing.config);
    REQUIRE(missing.errors.size() == 1);
    CHECK(contains(missing.errors[0], "could not open configuration file \"" + path + "\""));
}

// ------------------------------------------------------------------------- validation errors

TEST_CASE("TOML syntax error: file:line:col and toml++'s description") {
    LoadResult r = parse_config("port = 1\nlisten_addresses = [\"a\",\n", kFile);
    CHECK_FALSE(r.config);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].rfind("/etc/sp/test.toml:2:", 0) == 0);
    LoadResult r2 = parse_config("port = 1\n\nport = 2\n", kFile);
    REQUIRE(r2.errors.size() == 1);
    CHECK(r2.errors[0].rfind("/etc/sp/test.toml:3:", 0) == 0);
    CHECK(contains(r2.errors[0], "port"));
}

TEST_CASE("unknown keys, with a suggestion when close") {
    std::string e = error_at("port = 1\nnum_init_childern = 3\n" + kOneBackend, 2, "num_init_childern");
    CHECK(contains(e, "unknown key 'num_init_childern' (did you mean 'num_init_children'?)"));
    std::string far = error_at("no_such_key = 1\n" + kOneBackend, 1, "no_such_key");
    CHECK_FALSE(contains(far, "did you mean"));
    std::string pg = error_at("backend_hostname0 = 'x'\n" + kOneBackend, 1, "backend_hostname0");
    CHECK(contains(pg, "[[backend]]"));
    error_at("[routing]\nx = 1\n" + kOneBackend, 1, "routing");
}

TEST_CASE("wrong TOML types") {
    CHECK(contains(error_at("port = '9999'\n" + kOneBackend, 1, "port"), "expected an integer, got a string"));
    CHECK(contains(error_at("max_pool = 4.5\n" + kOneBackend, 1, "max_pool"), "got a floating-point number"));
    CHECK(contains(error_at("load_balance_mode = 1\n" + kOneBackend, 1, "load_balance_mode"),
                   "expected a boolean"));
    CHECK(contains(error_at("syslog_ident = 3\n" + kOneBackend, 1, "syslog_ident"), "expected a string"));
    CHECK(contains(error_at("listen_addresses = 5\n" + kOneBackend, 1, "listen_addresses"),
                   "expected a string or an array of strings, got an integer"));
    CHECK(contains(error_at("unix_socket_directories = ['/tmp', 1]\n" + kOneBackend, 1, "unix_socket_directories"),
                   "got an integer in it"));
    CHECK(contains(error_at("child_life_time = 1.5\n" + kOneBackend, 1, "child_life_time"),
                   "got a floating-point number"));
    CHECK(contains(error_at("load_balance_mode = 'maybe'\n" + kOneBackend, 1, "load_balance_mode"),
                   "invalid boolean \"maybe\""));
}

TEST_CASE("out-of-range values") {
    CHECK(contains(error_at("\nnum_init_children = 0\n" + kOneBackend, 2, "num_init_children"),
                   "key 'num_init_children': must be between 1 and 10000 (got 0)"));
    CHECK(contains(error_at("port = 70000\n" + kOneBackend, 1, "port"), "between 1 and 65535 (got 70000)"));
    CHECK(contains(error_at("pcp_port = 0\n" + kOneBackend, 1, "pcp_port"), "(got 0)"));
    CHECK(contains(error_at("max_pool = 1001\n" + kOneBackend, 1, "max_pool"), "between 1 and 1000"));
    CHECK(contains(error_at("child_life_time = -5\n" + kOneBackend, 1, "child_life_time"), "(got -5)"));
    CHECK(contains(error_at("client_idle_limit = '-1min'\n" + kOneBackend, 1, "client_idle_limit"), "(got -60)"));
}

TEST_CASE("reserved_connections must be below num_init_children") {
    std::string e = error_at("num_init_children = 4\nreserved_connections = 4\n" + kOneBackend, 2, "reserved_connections");
    CHECK(contains(e, "less than num_init_children (4)"));
    parse_ok("num_init_children = 4\nreserved_connections = 3");
}

TEST_CASE("bad time units and fractional results") {
    CHECK(contains(error_at("connect_timeout = '10 parsecs'\n" + kOneBackend, 1, "connect_timeout"),
                   "invalid time value \"10 parsecs\""));
    CHECK(contains(error_at("child_life_time = '1500ms'\n" + kOneBackend, 1, "child_life_time"),
                   "not a whole number of seconds"));
    error_at("child_life_time = 'min'\n" + kOneBackend, 1, "child_life_time");
    error_at("connect_timeout = '5 minutes'\n" + kOneBackend, 1, "connect_timeout");
}

TEST_CASE("backend_clustering_mode: only streaming_replication") {
    for (const char* mode : {"native_replication", "logical_replication", "slony", "snapshot_isolation", "raw"}) {
        std::string e = error_at("backend_clustering_mode = '" + std::string(mode) + "'\n" + kOneBackend, 1,
                                 "backend_clustering_mode");
        CHECK(contains(e, "is not supported"));
    }
    std::string e = error_at("backend_clustering_mode = 'multi_master'\n" + kOneBackend, 1, "backend_clustering_mode");
    CHECK(contains(e, "invalid value \"multi_master\""));
}

TEST_CASE("enums and levels") {
    error_at("log_min_messages = 'loud'\n" + kOneBackend, 1, "log_min_messages");
    error_at("log_destination = 'stderr,eventlog'\n" + kOneBackend, 1, "log_destination");
    error_at("disable_load_balance_on_write = 'sometimes'\n" + kOneBackend, 1, "disable_load_balance_on_write");
}

TEST_CASE("backend errors") {
    error_at("port = 1", 1, "backend");   // no backend at all: reported at the end of the file
    error_at("port = 1\n\n# the end\n", 3, "backend");
    error_at("backend = []", 1, "backend");
    error_at("backend = 'x'", 1, "backend");
    error_at("\n[[backend]]\nport = 5432\n", 2, "backend[0].hostname");
    error_at("[[backend]]\nhostname = ''\n", 2, "backend[0].hostname");
    std::string text = "[[backend]]\nhostname = 'a'\n\n[[backend]]\nhostname = 'b'\nprot = 5433\nport = 0\n"
                       "weight = -1\nflag = 'ALWAYS_PRIMARY|SOMETIMES'\n";
    std::string unknown = error_at(text, 6, "prot");
    CHECK(contains(unknown, "unknown key 'prot' in [[backend]] 1 (did you mean 'port'?)"));
    CHECK(contains(error_at(text, 7, "backend[1].port"), "between 1 and 65535 (got 0)"));
    CHECK(contains(error_at(text, 8, "backend[1].weight"), "must be >= 0"));
    CHECK(contains(error_at(text, 9, "backend[1].flag"), "unknown flag \"SOMETIMES\""));
    error_at("[[backend]]\nhostname = 'a'\nflag = ['ALLOW_TO_FAILOVER', 'DISALLOW_TO_FAILOVER']\n", 3, "backend[0].flag");
    error_at("[[backend]]\nhostname = 'a'\nport = '5432'\n", 3, "backend[0].port");

    std::string many;
    for (int i = 0; i < 129; ++i) many += "[[backend]]\nhostname = 'h'\n";
    error_at(many, 257, "backend");
}

TEST_CASE("all errors are reported, in line order") {
    LoadResult r = parse_config("port = 0\nmax_pool = 0\nbogus = 1\n[[backend]]\nport = 1\n", kFile);
    CHECK_FALSE(r.config);
    REQUIRE(r.errors.size() == 4);
    CHECK(r.errors[0].rfind("/etc/sp/test.toml:1: key 'port'", 0) == 0);
    CHECK(r.errors[1].rfind("/etc/sp/test.toml:2: key 'max_pool'", 0) == 0);
    CHECK(r.errors[2].rfind("/etc/sp/test.toml:3: unknown key 'bogus'", 0) == 0);
    CHECK(r.errors[3].rfind("/etc/sp/test.toml:4: key 'backend[0].hostname'", 0) == 0);
}

TEST_CASE("a reload keeps start-only values and applies reloadable ones") {
    Config running = *parse_config(std::string("port = 9000\nmax_pool = 2\nchild_life_time = '1min'\n"
                                               "listen_addresses = 'a,b'\nclient_idle_limit = 5\n") + kOneBackend,
                                   kFile).config;
    running.hba_file = "/etc/hba";
    Config fresh = *parse_config(std::string("port = 9001\nmax_pool = 3\nchild_life_time = 30\n"
                                             "listen_addresses = '*'\nclient_idle_limit = 7\n") + kOneBackend,
                                 kFile).config;
    keep_start_only_values(running, fresh);
    CHECK(fresh.port == 9000);
    CHECK(fresh.max_pool == 2);
    CHECK(fresh.child_life_time == 60);
    CHECK(fresh.listen_addresses == std::vector<std::string>{"a", "b"});
    CHECK(fresh.client_idle_limit == 7);
    CHECK(fresh.hba_file == "/etc/hba");
    CHECK(restart_only_changes(running, fresh).empty());
}
