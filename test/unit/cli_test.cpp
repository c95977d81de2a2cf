// Unit tests for the daemon's command line: pgpool's flags, commands and errors.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "daemon/cli.hpp"

using namespace splitpool::daemon;

namespace {
CliResult parse(std::vector<std::string> args) {
    args.insert(args.begin(), "splitpool");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_cli(int(args.size()), argv.data());
}
}  // namespace

TEST_CASE("start options") {
    CliResult r = parse({"-f", "/etc/x.toml", "-F", "pcp.conf", "-a", "hba", "-k", "key", "-n", "-D", "-d"});
    REQUIRE(r.options);
    CHECK(r.options->command == Command::Start);
    CHECK(r.options->config_file == "/etc/x.toml");
    CHECK(r.options->pcp_file == "pcp.conf");
    CHECK(r.options->hba_file == "hba");
    CHECK(r.options->key_file == "key");
    CHECK(r.options->foreground);
    CHECK(r.options->discard_status);
    CHECK(r.options->debug);
}

TEST_CASE("stop with each mode spelling, reload, check-config, version, help") {
    for (auto [flag, mode] : {std::pair{"s", "smart"}, {"fast", "fast"}, {"i", "immediate"}}) {
        CliResult r = parse({"-m", flag, "stop"});
        REQUIRE(r.options);
        CHECK(r.options->command == Command::Stop);
        CHECK(r.options->stop_mode == mode);
    }
    CHECK(parse({"stop"}).options->stop_mode == "smart");
    CHECK(parse({"-f", "c", "reload"}).options->command == Command::Reload);
    CHECK(parse({"--check-config"}).options->command == Command::CheckConfig);
    CHECK(parse({"--version"}).options->command == Command::Version);
    CHECK(parse({"--help"}).options->command == Command::Help);
    CHECK(parse({}).options->config_file == default_config_file());
}

TEST_CASE("bad flags and words are errors that name them") {
    CHECK(parse({"-x"}).error == "invalid option -- 'x'");
    CHECK(parse({"-f"}).error == "option requires an argument -- 'f'");
    CHECK(parse({"-m", "slow", "stop"}).error == "invalid shutdown mode \"slow\"");
    CHECK(parse({"restart"}).error == "unknown command \"restart\"");
    CHECK(parse({"stop", "now"}).error == "too many arguments: \"now\"");
    CHECK(parse({"--bogus"}).error.find("--bogus") != std::string::npos);
}
