// Command-line options of the splitpool daemon, with pgpool's flags.
#pragma once

#include <optional>
#include <string>

namespace splitpool::daemon {

enum class Command { Start, Stop, Reload, CheckConfig, SampleConfig, ConfigReference, ImportPgpoolConf, Version, Help };

struct Options {
    Command command = Command::Start;
    std::string config_file;   // -f; default <sysconfdir>/splitpool.toml
    std::string pcp_file;      // -F
    std::string hba_file;      // -a
    std::string key_file;      // -k
    bool foreground = false;   // -n
    bool discard_status = false;  // -D
    bool debug = false;        // -d
    std::string stop_mode = "smart";  // -m smart|fast|immediate (or s|f|i)
    std::string import_file;   // import-pgpool-conf FILE
};

struct CliResult {
    std::optional<Options> options;
    std::string error;   // set when options is empty
};

CliResult parse_cli(int argc, char** argv);
std::string usage_text();
std::string default_config_file();

}  // namespace splitpool::daemon
