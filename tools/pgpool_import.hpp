// `splitpool import-pgpool-conf`: a pgpool.conf converted into splitpool's TOML, with every
// parameter that is not carried over listed with the reason.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace splitpool::tools {

struct ImportDiagnostic {
    enum class Level { Error, Unsupported, Ignored, Note };
    Level level = Level::Error;
    int line = 0;          // pgpool.conf line; 0 = the file as a whole
    std::string key;       // the pgpool parameter, "" when the line has none
    std::string message;
};

struct ImportOptions {
    std::string source_name = "pgpool.conf";  // names the file in messages and in the output's header
    std::string source_dir;  // relative paths are made absolute against it, as pgpool read them ("" = kept)
};

struct ImportResult {
    bool ok = false;       // false when a diagnostic is an Error; `toml` is then empty
    std::string toml;
    std::vector<ImportDiagnostic> diagnostics;   // in line order
    int converted = 0;     // parameters carried over (backend_*N keys included)
};

// Pure: the text of a pgpool.conf in, the TOML and the diagnostics out. The TOML is checked with
// splitpool's own config parser before it is returned.
ImportResult import_pgpool_conf(std::string_view text, const ImportOptions& options);

// "pgpool.conf:12: use_watchdog: not supported: watchdog ..." as printed on stderr.
std::string diagnostic_text(const std::string& source_name, const ImportDiagnostic& d);

// The command: reads `path`, prints the TOML on stdout and the diagnostics on stderr; exit status 1
// (and nothing on stdout) when the file cannot be read or has an error.
int import_pgpool_conf_command(const std::string& path);

}  // namespace splitpool::tools
