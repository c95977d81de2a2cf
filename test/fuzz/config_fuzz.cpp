// libFuzzer target: the TOML configuration loader and its key table (parse_config: toml++, every
// key's store and validation, [[backend]] tables, cross-key rules, typo suggestions), then what the
// daemon does with a loaded config: SHOW-style values of every key, the backend rows, the reload
// comparison and the start-only carry-over.
#include <string>

#include "daemon/config.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;

namespace {

// A folder that does not exist: relative paths are resolved against it, nothing is read there.
const std::string kPath = "/nonexistent/splitpool-fuzz/splitpool.toml";

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    // The generated sample file must load (with a backend, which it leaves commented out).
    daemon::LoadResult sample = daemon::parse_config(daemon::sample_config_text() + "\n[[backend]]\nhostname = \"h\"\n", kPath);
    FUZZ_CHECK(sample.config.has_value(), sample.errors.empty() ? "" : sample.errors.front());
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > fuzz::kMaxInput) return -1;
    std::string_view text = fuzz::as_text(data, size);
    daemon::LoadResult result = daemon::parse_config(text, kPath);
    FUZZ_CHECK(result.config.has_value() == result.errors.empty(), "a config with errors, or none without");
    for (const std::string& e : result.errors) FUZZ_CHECK(e.rfind(kPath, 0) == 0, "error without the file name: " + e);
    if (!result.config) return 0;

    const daemon::Config& c = *result.config;
    FUZZ_CHECK(!c.backends.empty() && c.backends.size() <= 128);
    FUZZ_CHECK(c.reserved_connections < c.num_init_children);
    FUZZ_CHECK(c.config_file == kPath && c.config_dir == "/nonexistent/splitpool-fuzz");
    for (const std::string* p : {&c.pid_file_name, &c.logdir, &c.log_directory})
        FUZZ_CHECK(p->empty() || (*p)[0] == '/', "path not resolved: " + *p);
    for (const daemon::KeyInfo& key : daemon::config_keys()) (void)daemon::config_value_string(c, key.name);
    for (const auto& [name, value] : daemon::config_backend_values(c))
        FUZZ_CHECK(daemon::config_value_string(c, name) == value, name);
    for (const daemon::BackendConfig& b : c.backends) FUZZ_CHECK(!daemon::backend_flag_string(b.flags).empty());

    // A reload (Supervisor::reload, the child's reload): start-only keys keep their running values,
    // whichever side the fuzzed file is on. Backends are published separately.
    auto non_backend = [](const std::vector<std::string>& keys) {
        std::string out;
        for (const std::string& k : keys)
            if (k.rfind("backend_", 0) != 0) out += (out.empty() ? "" : ", ") + k;
        return out;
    };
    daemon::Config defaults;
    defaults.backends = c.backends;
    daemon::Config fresh = c;
    daemon::keep_start_only_values(defaults, fresh);
    std::string left = non_backend(daemon::restart_only_changes(defaults, fresh));
    FUZZ_CHECK(left.empty(), "start-only values of the defaults were not kept: " + left);
    daemon::Config reloaded = defaults;
    daemon::keep_start_only_values(c, reloaded);
    left = non_backend(daemon::restart_only_changes(c, reloaded));
    FUZZ_CHECK(left.empty(), "start-only values of the loaded file were not kept: " + left);
    return 0;
}
