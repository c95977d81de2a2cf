// libFuzzer target: `splitpool import-pgpool-conf` on arbitrary pgpool.conf text (the line reader,
// value conversion, [[backend]] assembly, the unsupported-parameter table). Whatever it converts must
// load with splitpool's own parser, and it converts exactly when it reports no error.
#include <string>

#include "daemon/config.hpp"
#include "test/fuzz/fuzz_common.hpp"
#include "tools/pgpool_import.hpp"

using namespace splitpool;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > fuzz::kMaxInput) return -1;
    tools::ImportOptions options;
    options.source_dir = "/nonexistent/splitpool-fuzz";
    tools::ImportResult r = tools::import_pgpool_conf(fuzz::as_text(data, size), options);
    bool error = false;
    for (const tools::ImportDiagnostic& d : r.diagnostics) {
        error = error || d.level == tools::ImportDiagnostic::Level::Error;
        FUZZ_CHECK(!tools::diagnostic_text("pgpool.conf", d).empty());
    }
    FUZZ_CHECK(r.ok == !error, "ok and errors disagree");
    FUZZ_CHECK(r.ok == !r.toml.empty(), "output without ok, or ok without output");
    if (!r.ok) return 0;
    daemon::LoadResult loaded = daemon::parse_config(r.toml, "/nonexistent/splitpool-fuzz/splitpool.toml");
    FUZZ_CHECK(loaded.config.has_value(), loaded.errors.empty() ? "" : loaded.errors.front());
    return 0;
}
