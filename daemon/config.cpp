// Reads a TOML config file into Config through the key table, collecting every error with the
// file, line and key it is about, so one --check-config run shows everything to fix.
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/config.hpp"

namespace splitpool::daemon {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxBackends = 128;   // pgpool's MAX_NUM_BACKENDS

RawValue raw_value(const toml::node& node) {
    RawValue v;
    switch (node.type()) {
    case toml::node_type::boolean:
        v.type = RawValue::Type::Boolean;
        v.boolean = node.as_boolean()->get();
        break;
    case toml::node_type::integer:
        v.type = RawValue::Type::Integer;
        v.integer = node.as_integer()->get();
        break;
    case toml::node_type::floating_point:
        v.type = RawValue::Type::Float;
        v.number = node.as_floating_point()->get();
        break;
    case toml::node_type::string:
        v.type = RawValue::Type::String;
        v.text = node.as_string()->get();
        break;
    case toml::node_type::array:
        v.type = RawValue::Type::Array;
        for (const toml::node& item : *node.as_array()) v.items.push_back(raw_value(item));
        break;
    case toml::node_type::table: v.type = RawValue::Type::Table; break;
    default: break;
    }
    return v;
}

// Edit distance counting a swap of two neighbours as one edit ("childern" → "children").
size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

// " (did you mean 'x'?)" when a known name is close enough to be a likely typo, else "".
std::string suggestion(std::string_view name, const std::vector<std::string_view>& known) {
    std::string_view best;
    size_t best_distance = SIZE_MAX;
    for (std::string_view k : known)
        if (size_t d = edit_distance(name, k); d < best_distance) best_distance = d, best = k;
    size_t allowed = std::clamp<size_t>(name.size() / 4, 1, 3);
    if (best_distance > allowed) return {};
    return " (did you mean '" + std::string(best) + "'?)";
}

// pgpool's per-node names (backend_hostname0) become [[backend]] tables here; say so.
bool is_pgpool_backend_name(std::string_view name) {
    if (name.substr(0, 8) != "backend_") return false;
    std::string_view rest = name.substr(8);
    while (!rest.empty() && rest.back() >= '0' && rest.back() <= '9') rest.remove_suffix(1);
    const auto& keys = backend_key_names();
    return std::find(keys.begin(), keys.end(), rest) != keys.end();
}

class Loader {
public:
    Loader(std::string path, Config& config, int64_t last_line)
        : path_(std::move(path)), config_(config), last_line_(last_line) {}

    void add(int64_t line, std::string text) {
        problems_.push_back({line, path_ + ":" + std::to_string(line) + ": " + std::move(text)});
    }
    void key_error(const toml::node& node, std::string_view key, const std::string& problem) {
        add(node.source().begin.line, "key '" + std::string(key) + "': " + problem);
    }

    void load(const toml::table& table);
    std::vector<std::string> errors();

private:
    void top_level_key(std::string_view name, const toml::node& node);
    void backends(const toml::node& node);
    void backend(const toml::table& table, size_t index);
    void cross_checks(const toml::table& table);

    struct Problem {
        int64_t line;
        std::string text;
    };
    std::string path_;
    Config& config_;
    int64_t last_line_;   // where a missing [[backend]] is reported: it would be added there
    std::vector<Problem> problems_;
};

void Loader::load(const toml::table& table) {
    for (auto&& [key, node] : table) top_level_key(key.str(), node);
    cross_checks(table);
}

void Loader::top_level_key(std::string_view name, const toml::node& node) {
    if (name == "backend") return backends(node);
    std::string problem = config_store(config_, name, raw_value(node));
    if (problem.empty()) return;
    if (problem != "unknown key") return key_error(node, name, problem);
    std::string text = "unknown key '" + std::string(name) + "'";
    if (is_pgpool_backend_name(name)) {
        add(node.source().begin.line, text + " (backends are [[backend]] tables with hostname, port, weight, flag, ...)");
        return;
    }
    static const std::vector<std::string_view> known = [] {
        std::vector<std::string_view> names{"backend"};
        for (const KeyInfo& k : config_keys()) names.push_back(k.name);
        return names;
    }();
    add(node.source().begin.line, text + suggestion(name, known));
}

void Loader::backends(const toml::node& node) {
    const toml::array* array = node.as_array();
    if (array && array->empty()) return key_error(node, "backend", "at least one [[backend]] table is required");
    if (!array || !array->is_array_of_tables()) {
        std::string got = node.is_table() ? "a table" : "a value";
        return key_error(node, "backend", "expected [[backend]] tables, got " + got);
    }
    for (size_t i = 0; i < array->size(); ++i) {
        const toml::table& table = *array->get(i)->as_table();
        if (i == kMaxBackends)
            return key_error(table, "backend", "at most " + std::to_string(kMaxBackends) + " backends are supported");
        backend(table, i);
    }
}

void Loader::backend(const toml::table& table, size_t index) {
    BackendConfig b;
    std::string prefix = "backend[" + std::to_string(index) + "].";
    for (auto&& [key, node] : table) {
        std::string_view name = key.str();
        std::string problem = backend_store(b, name, raw_value(node));
        if (problem == "unknown key")
            add(node.source().begin.line, "unknown key '" + std::string(name) + "' in [[backend]] " +
                                              std::to_string(index) + suggestion(name, backend_key_names()));
        else if (!problem.empty())
            key_error(node, prefix + std::string(name), problem);
    }
    if (!table.contains("hostname")) key_error(table, prefix + "hostname", "is required");
    config_.backends.push_back(std::move(b));
}

// Rules between keys; each is reported at the key the user would change.
void Loader::cross_checks(const toml::table& table) {
    auto line_of = [&](std::string_view key) -> int64_t {
        const toml::node* node = table.get(key);
        return node ? node->source().begin.line : 1;
    };
    if (!table.contains("backend"))
        add(last_line_, "key 'backend': at least one [[backend]] table is required");
    if (config_.reserved_connections >= config_.num_init_children) {
        std::string_view key = table.contains("reserved_connections") ? "reserved_connections" : "num_init_children";
        add(line_of(key), "key 'reserved_connections': must be less than num_init_children (" +
                              std::to_string(config_.num_init_children) + ") (got " +
                              std::to_string(config_.reserved_connections) + ")");
    }
    if (!config_.write_function_list.empty() && !config_.read_only_function_list.empty())
        add(line_of("read_only_function_list"),
            "key 'read_only_function_list': cannot be used together with write_function_list");
}

std::vector<std::string> Loader::errors() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const Problem& a, const Problem& b) { return a.line < b.line; });
    std::vector<std::string> out;
    for (Problem& p : problems_) out.push_back(std::move(p.text));
    return out;
}

std::string syntax_error(const std::string& path, const toml::parse_error& e) {
    return path + ":" + std::to_string(e.source().begin.line) + ":" + std::to_string(e.source().begin.column) + ": " +
           std::string(e.description());
}

LoadResult parse_unchecked(std::string_view text, const std::string& path) {
    LoadResult result;
    Config config;
    std::error_code ec;
    fs::path absolute = fs::absolute(path, ec).lexically_normal();
    config.config_file = absolute.string();
    config.config_dir = absolute.parent_path().string();

    toml::table table;
#if TOML_EXCEPTIONS
    try {
        table = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        result.errors.push_back(syntax_error(path, e));
        return result;
    }
#else
    toml::parse_result parsed = toml::parse(text, path);
    if (!parsed) {
        result.errors.push_back(syntax_error(path, parsed.error()));
        return result;
    }
    table = std::move(parsed).table();
#endif

    int64_t lines = std::count(text.begin(), text.end(), '\n');
    if (!text.empty() && text.back() != '\n') ++lines;
    Loader loader(path, config, std::max<int64_t>(lines, 1));
    loader.load(table);
    result.errors = loader.errors();
    if (!result.errors.empty()) return result;
    config_resolve_paths(config);
    result.config = std::move(config);
    return result;
}

}  // namespace

LoadResult parse_config(std::string_view toml_text, const std::string& path) {
    try {
        return parse_unchecked(toml_text, path);
    } catch (const std::exception& e) {
        LoadResult result;
        result.errors.push_back(path + ": " + e.what());
        return result;
    }
}

LoadResult load_config(const std::string& path) {
    LoadResult result;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        result.errors.push_back("could not open configuration file \"" + path + "\": Is a directory");
        return result;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        result.errors.push_back("could not open configuration file \"" + path + "\": " + std::strerror(errno));
        return result;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        result.errors.push_back("could not read configuration file \"" + path + "\": " + std::strerror(errno));
        return result;
    }
    return parse_config(text.str(), path);
}

}  // namespace splitpool::daemon
