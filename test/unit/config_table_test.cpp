// Unit tests for the TOML configuration: defaults, value forms, and every kind of validation error.
#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "daemon/config.hpp"

using namespace splitpool::daemon;

namespace {

const char* kBackend = "\n[[backend]]\nhostname = \"127.0.0.1\"\nport = 5432\n";

LoadResult parse(const std::string& text) { return parse_config(text + kBackend, "/etc/sp/test.toml"); }

// The one error of a parse that must fail, checked to name the file, line and key.
std::string only_error(const std::string& text, int line, const std::string& key) {
    LoadResult r = parse_config(text, "/etc/sp/test.toml");
    REQUIRE_FALSE(r.config);
    REQUIRE(r.errors.size() >= 1);
    const std::string& e = r.errors.front();
    CHECK(e.find("/etc/sp/test.toml:" + std::to_string(line) + ":") == 0);
    CHECK(e.find("'" + key + "'") != std::string::npos);
    return e;
}

}  // namespace

TEST_CASE("defaults are pgpool's") {
    LoadResult r = parse("");
    REQUIRE(r.config);
    const Config& c = *r.config;
    CHECK(c.port == 9999);
    CHECK(c.num_init_children == 32);
    CHECK(c.max_pool == 4);
    CHECK(c.child_life_time == 300);
    CHECK(c.connect_timeout == 10000);
    CHECK(c.reset_query_list == std::vector<std::string>{"ABORT", "DISCARD ALL"});
    CHECK(c.listen_addresses == std::vector<std::string>{"localhost"});
    CHECK(c.log_min_messages == LogLevel::Warning);
    CHECK(c.disable_load_balance_on_write == "transaction");
    CHECK(c.pid_file_name == "/var/run/pgpool/pgpool.pid");
    CHECK(c.pool_passwd == "/etc/sp/pool_passwd");  // relative default, next to the config file
    REQUIRE(c.backends.size() == 1);
    CHECK(c.backends[0].weight == 1.0);
    CHECK(c.backends[0].flags == kFlagAllowToFailover);
}

TEST_CASE("lists: pgpool's comma string or a TOML array") {
    auto a = parse("listen_addresses = 'localhost, 127.0.0.1'\nunix_socket_directories = ['/tmp', '/run/sp']");
    REQUIRE(a.config);
    CHECK(a.config->listen_addresses == std::vector<std::string>{"localhost", "127.0.0.1"});
    CHECK(a.config->unix_socket_directories == std::vector<std::string>{"/tmp", "/run/sp"});
    auto q = parse("reset_query_list = 'ABORT; RESET ALL;  ; SET SESSION AUTHORIZATION DEFAULT'");
    REQUIRE(q.config);
    CHECK(q.config->reset_query_list ==
          std::vector<std::string>{"ABORT", "RESET ALL", "SET SESSION AUTHORIZATION DEFAULT"});
}

TEST_CASE("times: numbers in the base unit or strings with units") {
    auto r = parse("child_life_time = '5min'\nclient_idle_limit = 30\nconnect_timeout = '2s'\n"
                   "authentication_timeout = '1h'\nconnection_life_time = '1d'");
    REQUIRE(r.config);
    CHECK(r.config->child_life_time == 300);
    CHECK(r.config->client_idle_limit == 30);
    CHECK(r.config->connect_timeout == 2000);
    CHECK(r.config->authentication_timeout == 3600);
    CHECK(r.config->connection_life_time == 86400);
    std::string e = only_error("child_life_time = '1500ms'", 1, "child_life_time");
    CHECK(e.find("invalid time value") != std::string::npos);
    only_error("client_idle_limit = '10 parsecs'", 1, "client_idle_limit");
}

TEST_CASE("booleans: TOML or pgpool's words") {
    auto r = parse("load_balance_mode = 'off'\nlog_connections = 'on'\nlog_statement = true");
    REQUIRE(r.config);
    CHECK_FALSE(r.config->load_balance_mode);
    CHECK(r.config->log_connections);
    CHECK(r.config->log_statement);
    CHECK(only_error("log_connections = 'maybe'", 1, "log_connections").find("expected a boolean") !=
          std::string::npos);
}

TEST_CASE("relative paths are resolved against the config file's folder") {
    auto r = parse("pid_file_name = 'run/sp.pid'\npool_passwd = ''\nlogdir = '/var/log'");
    REQUIRE(r.config);
    CHECK(r.config->pid_file_name == "/etc/sp/run/sp.pid");
    CHECK(r.config->pool_passwd.empty());
    CHECK(r.config->logdir == "/var/log");
    CHECK(r.config->config_dir == "/etc/sp");
}

TEST_CASE("backends: flags as a list or pgpool's string, weights, names") {
    auto r = parse_config(
        "[[backend]]\nhostname = 'a'\nflag = ['ALWAYS_PRIMARY', 'DISALLOW_TO_FAILOVER']\napplication_name = 'p'\n"
        "[[backend]]\nhostname = 'b'\nport = 5433\nweight = 2.5\nflag = 'DISALLOW_TO_FAILOVER'\n",
        "/x/c.toml");
    REQUIRE(r.config);
    REQUIRE(r.config->backends.size() == 2);
    CHECK(r.config->backends[0].flags == (kFlagAlwaysPrimary | kFlagDisallowToFailover));
    CHECK(r.config->backends[0].port == 5432);
    CHECK(r.config->backends[0].application_name == "p");
    CHECK(r.config->backends[1].weight == 2.5);
    CHECK(r.config->backends[1].port == 5433);
}

TEST_CASE("every validation error names file, line and key") {
    CHECK(only_error("port = 9999\nnum_init_childern = 4\n", 2, "num_init_childern")
              .find("did you mean 'num_init_children'") != std::string::npos);
    CHECK(only_error("port = 'abc'\n", 1, "port").find("expected an integer, got a string") != std::string::npos);
    CHECK(only_error("\nport = 70000\n", 2, "port").find("between 1 and 65535 (got 70000)") != std::string::npos);
    CHECK(only_error("num_init_children = 0\n", 1, "num_init_children").find("between 1 and 10000") !=
          std::string::npos);
    CHECK(only_error("backend_clustering_mode = 'native_replication'\n", 1, "backend_clustering_mode")
              .find("not supported") != std::string::npos);
    CHECK(only_error("disable_load_balance_on_write = 'sometimes'\n", 1, "disable_load_balance_on_write")
              .find("allowed: off, transaction") != std::string::npos);
    CHECK(only_error("log_min_messages = 'loud'\n", 1, "log_min_messages").find("invalid level") != std::string::npos);
    CHECK(only_error("[[backend]]\nport = 5432\n", 1, "backend[0].hostname").find("is required") !=
          std::string::npos);
    CHECK(only_error("[[backend]]\nhostname = 'h'\nhostnme = 'x'\n", 3, "backend[0].hostnme")
              .find("did you mean 'hostname'") != std::string::npos);
    CHECK(only_error("[[backend]]\nhostname = 'h'\nflag = ['ALWAYS_SECONDARY']\n", 3, "backend[0].flag")
              .find("unknown flag") != std::string::npos);
    CHECK(only_error("port = 1\n", 1, "backend").find("at least one [[backend]]") != std::string::npos);
    CHECK(only_error(std::string("num_init_children = 2\nreserved_connections = 2\n") + kBackend, 2,
                     "reserved_connections")
              .find("less than num_init_children") != std::string::npos);
}

TEST_CASE("several errors are all reported; a syntax error gives line and column") {
    LoadResult r = parse_config(std::string("port = 0\nmax_pool = -1\nbogus = 1\n") + kBackend, "f.toml");
    CHECK(r.errors.size() == 3);
    LoadResult s = parse_config("port = \n", "f.toml");
    REQUIRE(s.errors.size() == 1);
    CHECK(s.errors[0].find("f.toml:1:") == 0);
}

TEST_CASE("a missing file is a clear error") {
    LoadResult r = load_config("/nonexistent/splitpool.toml");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].find("could not open configuration file \"/nonexistent/splitpool.toml\"") == 0);
}

TEST_CASE("values print as pgpool shows them; restart-only changes are named") {
    auto a = parse("child_life_time = '5min'\nload_balance_mode = true\nlisten_addresses = ['a', 'b']");
    auto b = parse("child_life_time = 60\nload_balance_mode = true\nlisten_addresses = 'a,b'\nclient_idle_limit = 5");
    REQUIRE(a.config);
    REQUIRE(b.config);
    CHECK(config_value_string(*a.config, "child_life_time") == "300");
    CHECK(config_value_string(*a.config, "load_balance_mode") == "on");
    CHECK(config_value_string(*a.config, "listen_addresses") == "a,b");
    CHECK(config_value_string(*a.config, "log_min_messages") == "warning");
    CHECK(restart_only_changes(*a.config, *b.config) == std::vector<std::string>{"child_life_time"});
}

TEST_CASE("etc/splitpool.toml is the generated sample and is valid") {
    std::ifstream in("etc/splitpool.toml");
    REQUIRE_MESSAGE(in, "run the unit tests from the repository root");
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK_MESSAGE(ss.str() == sample_config_text(), "regenerate with: bin/splitpool --sample-config > etc/splitpool.toml");
    LoadResult r = parse_config(ss.str(), "etc/splitpool.toml");
    CHECK(r.errors.empty());
    CHECK(r.config);
    CHECK(config_keys().size() > 40);
}
