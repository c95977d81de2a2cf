// Unit tests for `splitpool import-pgpool-conf`: pgpool.conf lines in, TOML lines and diagnostics out.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/cli.hpp"
#include "daemon/config.hpp"
#include "tools/pgpool_conf.hpp"
#include "tools/pgpool_import.hpp"

using namespace splitpool;
using tools::ImportDiagnostic;
using Level = ImportDiagnostic::Level;

namespace {

constexpr const char* kBackend = "backend_hostname0 = 'db0'\n";

// Converts `input` (a backend is appended when it has none, after its lines) and returns the result.
tools::ImportResult convert(std::string input, std::string source_dir = "") {
    if (input.find("backend_hostname0") == std::string::npos) input += std::string("\n") + kBackend;
    tools::ImportOptions options;
    options.source_dir = std::move(source_dir);
    return tools::import_pgpool_conf(input, options);
}

bool has_line(const std::string& toml, const std::string& line) {
    return ("\n" + toml).find("\n" + line + "\n") != std::string::npos;
}

// "line:key:level" of each diagnostic, the shape the tables below compare.
std::vector<std::string> shapes(const tools::ImportResult& r) {
    static const char* const kLevel[] = {"error", "unsupported", "ignored", "note"};
    std::vector<std::string> out;
    for (const ImportDiagnostic& d : r.diagnostics)
        out.push_back(std::to_string(d.line) + ":" + d.key + ":" + kLevel[static_cast<int>(d.level)]);
    return out;
}

// Every diagnostic as printed, for failure messages.
std::string printed(const tools::ImportResult& r) {
    std::string out;
    for (const ImportDiagnostic& d : r.diagnostics) out += tools::diagnostic_text("pgpool.conf", d) + "\n";
    return out;
}

}  // namespace

TEST_CASE("pgpool.conf lines: syntax as pgpool's lexer reads it") {
    struct Row {
        const char* line;
        tools::PgpoolLine::Kind kind;
        const char* key;
        const char* value;
        const char* comment;
    };
    using K = tools::PgpoolLine::Kind;
    const Row rows[] = {
        {"", K::Blank, "", "", ""},
        {"   \t", K::Blank, "", "", ""},
        {"# port = 1", K::Comment, "", "", ""},
        {"   # indented", K::Comment, "", "", ""},
        {"port = 9999", K::Setting, "port", "9999", ""},
        {"port=9999", K::Setting, "port", "9999", ""},
        {"port 9999", K::Setting, "port", "9999", ""},
        {"Port = 9999   # the port", K::Setting, "port", "9999", "# the port"},
        {"listen_addresses = '*'", K::Setting, "listen_addresses", "*", ""},
        {"x = 'a#b' # c", K::Setting, "x", "a#b", "# c"},
        {"x = 'it''s'", K::Setting, "x", "it's", ""},
        {"x = 'a\\'b\\\\c'", K::Setting, "x", "a\\'b\\\\c", ""},   // pgpool keeps backslashes
        {"x = ''", K::Setting, "x", "", ""},
        {"child_life_time = 5min", K::Setting, "child_life_time", "5min", ""},
        {"x = -0x1F", K::Setting, "x", "-0x1F", ""},
        {"x = 'open", K::Invalid, "x", "", ""},
        {"x =", K::Invalid, "x", "", ""},
        {"x = # nothing", K::Invalid, "x", "", ""},
        {"x = 1 2", K::Invalid, "x", "", ""},
        {"= 1", K::Invalid, "", "", ""},
        {"9x = 1", K::Invalid, "", "", ""},
    };
    for (const Row& row : rows) {
        std::string line = row.line;
        CAPTURE(line);
        auto lines = tools::read_pgpool_conf(row.line);
        tools::PgpoolLine l = lines.empty() ? tools::PgpoolLine{} : lines[0];
        CHECK(l.kind == row.kind);
        if (row.kind != K::Setting) continue;
        CHECK(l.key == row.key);
        CHECK(l.value == row.value);
        CHECK(l.comment == row.comment);
    }
    auto lines = tools::read_pgpool_conf("a = 1\r\n\n# c\nb = 2");
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].value == "1");
    CHECK(lines[3].number == 4);
}

TEST_CASE("supported keys: the TOML line written for each pgpool value") {
    struct Row {
        const char* input;
        const char* toml;   // a whole line expected in the output
    };
    const Row rows[] = {
        {"port = 9998", "port = 9998"},
        {"port = '9998'", "port = 9998"},
        {"listen_addresses = '*'", "listen_addresses = \"*\""},
        {"listen_addresses = 'localhost,10.0.0.1'", "listen_addresses = \"localhost,10.0.0.1\""},
        {"load_balance_mode = on", "load_balance_mode = true"},
        {"load_balance_mode = 'off'", "load_balance_mode = false"},
        {"ssl = yes", "ssl = true"},
        {"log_connections = 0", "log_connections = false"},
        {"child_life_time = 5min", "child_life_time = \"5min\""},
        {"child_life_time = 300", "child_life_time = 300"},
        {"authentication_timeout = 1min  # a minute", "authentication_timeout = \"1min\"  # a minute"},
        {"connect_timeout = 10s", "connect_timeout = \"10s\""},
        {"log_min_messages = warning", "log_min_messages = \"warning\""},
        {"log_min_messages = WARNING", "log_min_messages = \"WARNING\""},   // splitpool reads levels in any case
        {"disable_load_balance_on_write = 'Transaction'", "disable_load_balance_on_write = \"transaction\""},
        {"ssl_min_protocol_version = 'TLSv1.3'", "ssl_min_protocol_version = \"TLSv1.3\""},
        {"reset_query_list = 'ABORT; DISCARD ALL'", "reset_query_list = \"ABORT; DISCARD ALL\""},
        {"primary_routing_query_pattern_list = 'SELECT \\* FROM t1\\;;.*t3.*'",
         "primary_routing_query_pattern_list = 'SELECT \\* FROM t1\\;;.*t3.*'"},
        {"failover_command = '/etc/pgpool2/failover.sh %d \"%h\"'",
         "failover_command = \"/etc/pgpool2/failover.sh %d \\\"%h\\\"\""},
        {"pool_passwd = ''", "pool_passwd = \"\""},
        {"pool_passwd = '/etc/pgpool2/pool_passwd'", "pool_passwd = \"/etc/pgpool2/pool_passwd\""},
        {"backend_clustering_mode = 'streaming_replication'", "backend_clustering_mode = \"streaming_replication\""},
        {"white_function_list = 'f1,f2'", "read_only_function_list = \"f1,f2\""},
        {"socket_dir = '/var/run/postgresql'", "unix_socket_directories = \"/var/run/postgresql\""},
        {"port = 1\nport = 2", "# overridden by line 2: port = 1"},
        {"port = 1\nport = 2", "port = 2"},
        {"# a comment kept\nport = 1", "# a comment kept"},
        {"# caf\xe9 latin-1\nport = 1", "# caf? latin-1"},
    };
    for (const Row& row : rows) {
        std::string input = row.input;
        CAPTURE(input);
        tools::ImportResult r = convert(row.input);
        REQUIRE_MESSAGE(r.ok, printed(r));
        CHECK_MESSAGE(has_line(r.toml, row.toml), r.toml);
    }
}

TEST_CASE("relative paths are made absolute against pgpool.conf's folder") {
    tools::ImportResult r = convert("pool_passwd = 'pool_passwd'\nssl_cert = '../certs/server.crt'\n", "/etc/pgpool2");
    REQUIRE_MESSAGE(r.ok, printed(r));
    CHECK(has_line(r.toml, "pool_passwd = \"/etc/pgpool2/pool_passwd\""));
    CHECK(has_line(r.toml, "ssl_cert = \"/etc/certs/server.crt\""));
    CHECK(has_line(r.toml, "# pool_passwd was relative to the folder of pgpool.conf"));
}

TEST_CASE("backend_*N keys become [[backend]] tables in node order") {
    tools::ImportResult r = convert(
        "backend_hostname1 = 'standby'   # the standby\n"
        "backend_port1 = 5433\n"
        "backend_weight1 = 2\n"
        "backend_flag1 = 'DISALLOW_TO_FAILOVER'\n"
        "backend_hostname0 = '10.0.0.1'\n"
        "backend_port0 = 5432\n"
        "backend_weight0 = 0.5\n"
        "backend_flag0 = 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER'\n"
        "backend_data_directory0 = '/data'\n"
        "backend_application_name0 = 'server0'\n");
    REQUIRE_MESSAGE(r.ok, printed(r));
    CHECK(shapes(r).empty());
    CHECK(r.converted == 10);
    const char* expected =
        "[[backend]]  # node 0\n"
        "hostname = \"10.0.0.1\"\n"
        "port = 5432\n"
        "weight = 0.5\n"
        "flag = [\"ALWAYS_PRIMARY\", \"DISALLOW_TO_FAILOVER\"]\n"
        "application_name = \"server0\"\n"
        "data_directory = \"/data\"\n"
        "\n"
        "[[backend]]  # node 1\n"
        "hostname = \"standby\"  # the standby\n"
        "port = 5433\n"
        "weight = 2\n"
        "flag = [\"DISALLOW_TO_FAILOVER\"]\n";
    CHECK_MESSAGE(r.toml.find(expected) != std::string::npos, r.toml);
    CHECK(has_line(r.toml, "# backend_port1: in [[backend]] node 1 below"));
    daemon::LoadResult loaded = daemon::parse_config(r.toml, "/tmp/out.toml");
    REQUIRE(loaded.config);
    REQUIRE(loaded.config->backends.size() == 2);
    CHECK(loaded.config->backends[0].flags == (daemon::kFlagAlwaysPrimary | daemon::kFlagDisallowToFailover));
    CHECK(loaded.config->backends[1].weight == 2.0);
}

TEST_CASE("per-node health check keys (health_check_period0) go into their [[backend]] table") {
    tools::ImportResult r = convert("backend_hostname0 = 'a'\nbackend_hostname1 = 'b'\n"
                                    "health_check_period1 = 10\nconnect_timeout1 = 5000\n");
    REQUIRE_MESSAGE(r.ok, printed(r));
    CHECK(shapes(r).empty());
    daemon::LoadResult loaded = daemon::parse_config(r.toml, "/tmp/out.toml");
    REQUIRE_MESSAGE(loaded.config, r.toml);
    REQUIRE(loaded.config->backends.size() == 2);
    CHECK(daemon::health_check_settings(*loaded.config, 1).period == 10);
    CHECK(daemon::health_check_settings(*loaded.config, 1).connect_timeout == 5000);
    CHECK(daemon::health_check_settings(*loaded.config, 0).period == 0);
}

TEST_CASE("unsupported parameters are listed, never dropped silently") {
    struct Row {
        const char* input;
        const char* diagnostic;   // line:key:level
        const char* toml;         // a line expected in the output
    };
    const Row rows[] = {
        {"use_watchdog = on", "1:use_watchdog:unsupported", "# use_watchdog = on"},
        {"use_watchdog = off", "1:use_watchdog:ignored",
         "# IGNORED (no effect: splitpool behaves as this value): use_watchdog = off"},
        {"hostname0 = ''", "1:hostname0:ignored", "# IGNORED (no effect while use_watchdog is not set): hostname0 = ''"},
        {"use_watchdog = on\nwd_port0 = 9000", "2:wd_port0:unsupported", "# wd_port0 = 9000"},
        {"memory_cache_enabled = on", "1:memory_cache_enabled:unsupported", "# memory_cache_enabled = on"},
        {"memqcache_total_size = 64MB", "1:memqcache_total_size:ignored",
         "# IGNORED (no effect while memory_cache_enabled is not set): memqcache_total_size = 64MB"},
        {"insert_lock = on", "1:insert_lock:ignored", "# IGNORED (no effect in streaming_replication mode): insert_lock = on"},
        {"recovery_1st_stage_command = 'recovery_1st_stage'", "1:recovery_1st_stage_command:unsupported",
         "# recovery_1st_stage_command = 'recovery_1st_stage'"},
        {"relcache_size = 256", "1:relcache_size:unsupported", "# relcache_size = 256"},
        {"relcache_query_target = primary", "1:relcache_query_target:ignored",
         "# IGNORED (no effect: splitpool behaves as this value): relcache_query_target = primary"},
        {"connection_cache = off", "1:connection_cache:unsupported", "# connection_cache = off"},
        {"serialize_accept = off", "1:serialize_accept:ignored",
         "# IGNORED (no effect: splitpool behaves as this value): serialize_accept = off"},
        {"no_such_parameter = 1", "1:no_such_parameter:unsupported",
         "# UNKNOWN to splitpool, not converted: no_such_parameter = 1"},
        {"detach_false_primary = on", "1:detach_false_primary:note", "detach_false_primary = true"},
        {"health_check_period = 10\nhealth_check_user = 'pgpool'", "0:health_check_password:note",
         "health_check_period = 10"},
    };
    for (const Row& row : rows) {
        std::string input = row.input;
        CAPTURE(input);
        tools::ImportResult r = convert(row.input);
        REQUIRE_MESSAGE(r.ok, printed(r));
        std::vector<std::string> got = shapes(r);
        CHECK_MESSAGE(std::find(got.begin(), got.end(), row.diagnostic) != got.end(), r.toml);
        CHECK_MESSAGE(has_line(r.toml, row.toml), r.toml);
        CHECK(daemon::parse_config(r.toml, "/tmp/out.toml").config);
    }
    tools::ImportResult r = convert("use_watchdog = on\n");
    CHECK(r.toml.find("#   line 1: use_watchdog: NOT SUPPORTED: watchdog") != std::string::npos);
}

TEST_CASE("kept comments are valid UTF-8 even when the line is not") {
    // found by the pgpool_conf fuzzer: an overlong or surrogate sequence passed the old check and
    // made TOML that splitpool's parser refused
    for (std::string bad : {std::string("# \xc0\xaf x\n"), std::string("# \xed\xa0\x80 x\n"),
                            std::string("# \xe0\x80\xaf x\n"), std::string("# \xf4\x90\x80\x80 x\n"),
                            std::string("# \xf0\x9f\x98\n"), std::string("# a\x01b\n"),
                            std::string("wd_p_period\xf0\xff\xff\xff""0 = 5\n")}) {  // an ignored key, named in the summary
        CAPTURE(bad);
        tools::ImportResult r = convert(bad + "backend_hostname0 = 'h'\n");
        REQUIRE_MESSAGE(r.ok, printed(r));
        CHECK(daemon::parse_config(r.toml, "/tmp/out.toml").config);
    }
    tools::ImportResult r = convert("# caf\xc3\xa9 \xf0\x9f\x98\x80\tok\nbackend_hostname0 = 'h'\n");
    REQUIRE_MESSAGE(r.ok, printed(r));
    CHECK(has_line(r.toml, "# caf\xc3\xa9 \xf0\x9f\x98\x80\tok"));
}

TEST_CASE("values splitpool would refuse are errors with the pgpool.conf line") {
    struct Row {
        const char* input;
        const char* diagnostic;
        const char* message_part;
    };
    const Row rows[] = {
        {"port = 0", "1:port:error", "must be between 1 and 65535 (got 0)"},
        {"port = 'abc'", "1:port:error", "expected an integer, got 'abc'"},
        {"\nload_balance_mode = maybe", "2:load_balance_mode:error", "invalid boolean"},
        {"child_life_time = 5 min", "1:child_life_time:error", "syntax error"},
        {"backend_clustering_mode = 'native_replication'", "1:backend_clustering_mode:error", "is not supported"},
        {"log_destination = 'eventlog'", "1:log_destination:error", "invalid value \"eventlog\""},
        {"listen_addresses = 'open", "1:listen_addresses:error", "unterminated quoted string"},
        {"backend_hostname0 = 'h'\nbackend_port0 = 70000", "2:backend_port0:error", "must be between 1 and 65535"},
        {"backend_hostname0 = 'h'\nbackend_flag0 = 'ALWAYS_SECONDARY'", "2:backend_flag0:error", "unknown flag"},
        {"backend_hostname0 = 'h'\nbackend_weight0 = -1", "2:backend_weight0:error", "must be >= 0"},
        {"backend_hostname0 = 'h'\nbackend_hostname2 = 'g'", "2:backend_hostname1:error", "without gaps"},
        {"backend_hostname0 = 'h'\nbackend_port1 = 5433", "2:backend_hostname1:error", "is required"},
        {"backend_hostname0 = 'h'\nbackend_hostname999 = 'g'", "2:backend_hostname999:error", "out of range"},
        {"backend_hostname0 = ''", "1:backend_hostname0:error", "must not be empty"},
        {"num_init_children = 4\nreserved_connections = 4", "2::error", "must be less than num_init_children"},
        {"write_function_list = 'f'\nread_only_function_list = 'g'", "2::error", "cannot be used together"},
    };
    for (const Row& row : rows) {
        std::string input = row.input;
        CAPTURE(input);
        tools::ImportResult r = convert(row.input);
        CHECK_FALSE(r.ok);
        CHECK(r.toml.empty());
        std::vector<std::string> got = shapes(r);
        CHECK_MESSAGE(std::find(got.begin(), got.end(), row.diagnostic) != got.end(), printed(r));
        bool found = false;
        for (const ImportDiagnostic& d : r.diagnostics) found = found || d.message.find(row.message_part) != std::string::npos;
        CHECK_MESSAGE(found, printed(r));
    }
    tools::ImportResult none = tools::import_pgpool_conf("port = 9999\n", {});
    CHECK_FALSE(none.ok);
    CHECK(shapes(none) == std::vector<std::string>{"0::error"});
    CHECK(tools::diagnostic_text("pgpool.conf", none.diagnostics[0]) ==
          "pgpool.conf: error: no backend is defined (backend_hostname0 = '...'): splitpool needs at least one");
}

TEST_CASE("every supported key round-trips through import with its default value") {
    // A pgpool.conf that sets every key splitpool supports to its documented default converts to a
    // TOML that loads with exactly the values of an empty file.
    std::string input;
    for (const daemon::KeyInfo& k : daemon::config_keys()) input += std::string(k.name) + " = '" + std::string(k.default_text) + "'\n";
    tools::ImportResult r = convert(input);
    REQUIRE_MESSAGE(r.ok, (r.diagnostics.empty() ? std::string() : tools::diagnostic_text("x", r.diagnostics[0])));
    CHECK(r.converted == int(daemon::config_keys().size()) + 1);
    daemon::LoadResult converted = daemon::parse_config(r.toml, "/etc/sp/a.toml");
    daemon::LoadResult plain = daemon::parse_config(std::string("[[backend]]\nhostname = \"db0\"\n"), "/etc/sp/a.toml");
    REQUIRE(converted.config);
    REQUIRE(plain.config);
    for (const daemon::KeyInfo& k : daemon::config_keys())
        CHECK_MESSAGE(daemon::config_value_string(*converted.config, k.name) ==
                          daemon::config_value_string(*plain.config, k.name),
                      k.name);
}

TEST_CASE("the command line: import-pgpool-conf FILE and --config-reference") {
    std::vector<std::string> args = {"splitpool", "import-pgpool-conf", "/etc/pgpool2/pgpool.conf"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    daemon::CliResult cli = daemon::parse_cli(int(argv.size()), argv.data());
    REQUIRE(cli.options);
    CHECK(cli.options->command == daemon::Command::ImportPgpoolConf);
    CHECK(cli.options->import_file == "/etc/pgpool2/pgpool.conf");
    argv.pop_back();
    CHECK(daemon::parse_cli(int(argv.size()), argv.data()).error == "import-pgpool-conf needs the path of a pgpool.conf");
    std::vector<std::string> ref = {"splitpool", "--config-reference"};
    std::vector<char*> ref_argv = {ref[0].data(), ref[1].data()};
    CHECK(daemon::parse_cli(2, ref_argv.data()).options->command == daemon::Command::ConfigReference);
}
