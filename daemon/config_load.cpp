// Reads a TOML config file into Config through the key table, collecting every error with its
// file, line and key; prints values as pgpool shows them.
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/config_table.hpp"

namespace splitpool::daemon {
namespace {

namespace fs = std::filesystem;

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t pos = s.find(sep, start);
        std::string part = trim(s.substr(start, pos == std::string_view::npos ? s.npos : pos - start));
        if (!part.empty()) out.push_back(std::move(part));
        if (pos == std::string_view::npos) return out;
        start = pos + 1;
    }
}

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
            diag = up;
        }
    }
    return row[b.size()];
}

std::string suggestion(std::string_view name, const std::vector<std::string_view>& known) {
    std::string_view best;
    size_t best_d = SIZE_MAX;
    for (std::string_view k : known) {
        size_t d = edit_distance(name, k);
        if (d < best_d) best_d = d, best = k;
    }
    if (best_d <= std::max<size_t>(2, name.size() / 4)) return " (did you mean '" + std::string(best) + "'?)";
    return {};
}

// Converts "5min", "30s", "500ms", "1h", "1d" or a bare number into `base_ms` units (1000 = seconds).
bool parse_time(std::string_view text, int64_t base_ms, int64_t& out) {
    std::string t = trim(text);
    size_t i = 0;
    while (i < t.size() && (isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
    if (i == 0) return false;
    double number = std::strtod(t.substr(0, i).c_str(), nullptr);
    std::string unit = trim(std::string_view(t).substr(i));
    static const std::pair<std::string_view, int64_t> kUnits[] = {
        {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}, {"d", 86400000}};
    int64_t unit_ms = base_ms;
    if (!unit.empty()) {
        auto it = std::find_if(std::begin(kUnits), std::end(kUnits), [&](auto& u) { return u.first == unit; });
        if (it == std::end(kUnits)) return false;
        unit_ms = it->second;
    }
    double value = number * double(unit_ms) / double(base_ms);
    if (value != std::floor(value)) return false;
    out = int64_t(value);
    return true;
}

class Parser {
public:
    Parser(const std::string& path, Config& config) : path_(path), config_(config) {}

    void error(const toml::node& node, std::string_view key, const std::string& problem) {
        errors_.push_back(path_ + ":" + std::to_string(node.source().begin.line) + ": key '" + std::string(key) +
                          "': " + problem);
    }

    void set_key(const KeyDef& def, const toml::node& node);
    void parse_backends(const toml::node& node);
    std::vector<std::string>& errors() { return errors_; }

private:
    std::optional<std::vector<std::string>> list_value(const KeyDef& def, const toml::node& node, char sep);
    std::string path_;
    Config& config_;
    std::vector<std::string> errors_;
};

std::optional<bool> as_bool(const toml::node& node) {
    if (auto b = node.value<bool>()) return *b;
    if (auto s = node.value<std::string>()) {
        std::string v = trim(*s);
        std::transform(v.begin(), v.end(), v.begin(), ::tolower);
        if (v == "on" || v == "true" || v == "yes" || v == "1") return true;
        if (v == "off" || v == "false" || v == "no" || v == "0") return false;
    }
    return std::nullopt;
}

std::string type_name(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
    }
}

std::optional<std::vector<std::string>> Parser::list_value(const KeyDef& def, const toml::node& node, char sep) {
    if (auto s = node.value<std::string>()) return split(*s, sep);
    if (const toml::array* arr = node.as_array()) {
        std::vector<std::string> out;
        for (const toml::node& e : *arr) {
            auto s = e.value<std::string>();
            if (!s) {
                error(e, def.info.name, "expected an array of strings, got " + type_name(e) + " in it");
                return std::nullopt;
            }
            if (!trim(*s).empty()) out.push_back(trim(*s));
        }
        return out;
    }
    error(node, def.info.name, "expected a string or an array of strings, got " + type_name(node));
    return std::nullopt;
}

void Parser::set_key(const KeyDef& def, const toml::node& node) {
    std::string_view name = def.info.name;
    switch (def.kind) {
    case ValueKind::Bool: {
        auto b = as_bool(node);
        if (!b) return error(node, name, "expected a boolean (true/false, on/off), got " + type_name(node));
        config_.*std::get<bool Config::*>(def.field) = *b;
        return;
    }
    case ValueKind::Int:
    case ValueKind::Seconds:
    case ValueKind::Millis: {
        int64_t v = 0;
        if (auto i = node.value_exact<int64_t>()) v = *i;
        else if (auto s = node.value<std::string>(); s && def.kind != ValueKind::Int) {
            if (!parse_time(*s, def.kind == ValueKind::Seconds ? 1000 : 1, v))
                return error(node, name, "invalid time value \"" + *s + "\" (use a number or units ms, s, min, h, d)");
        } else {
            return error(node, name, "expected an integer, got " + type_name(node));
        }
        if (v < def.min || v > def.max)
            return error(node, name, "must be between " + std::to_string(def.min) + " and " + std::to_string(def.max) +
                                         " (got " + std::to_string(v) + ")");
        config_.*std::get<int Config::*>(def.field) = int(v);
        return;
    }
    case ValueKind::Float: {
        auto d = node.value<double>();
        if (!d || *d < double(def.min)) return error(node, name, "expected a number >= " + std::to_string(def.min));
        config_.*std::get<double Config::*>(def.field) = *d;
        return;
    }
    case ValueKind::String:
    case ValueKind::Path:
    case ValueKind::Enum:
    case ValueKind::Level: {
        auto s = node.value<std::string>();
        if (!s) return error(node, name, "expected a string, got " + type_name(node));
        std::string v = *s;
        if (def.kind == ValueKind::Level) {
            auto level = parse_log_level(v);
            if (!level) return error(node, name, "invalid level \"" + v + "\"");
            config_.*std::get<LogLevel Config::*>(def.field) = *level;
            return;
        }
        if (def.kind == ValueKind::Enum && std::find(def.choices.begin(), def.choices.end(), v) == def.choices.end()) {
            if (name == "backend_clustering_mode")
                return error(node, name, "\"" + v + "\" is not supported: splitpool supports streaming_replication only");
            std::string allowed;
            for (auto c : def.choices) allowed += (allowed.empty() ? "" : ", ") + std::string(c);
            return error(node, name, "invalid value \"" + v + "\" (allowed: " + allowed + ")");
        }
        if (def.kind == ValueKind::Path && !v.empty() && !fs::path(v).is_absolute()) v = config_.config_dir + "/" + v;
        config_.*std::get<std::string Config::*>(def.field) = v;
        return;
    }
    case ValueKind::List:
    case ValueKind::QueryList: {
        auto v = list_value(def, node, def.kind == ValueKind::List ? ',' : ';');
        if (!v) return;
        for (const auto& item : *v)
            if (!def.choices.empty() && std::find(def.choices.begin(), def.choices.end(), item) == def.choices.end())
                return error(node, name, "invalid value \"" + item + "\"");
        config_.*std::get<std::vector<std::string> Config::*>(def.field) = std::move(*v);
        return;
    }
    }
}

std::optional<unsigned> parse_flag(std::string_view f) {
    std::string v = trim(f);
    if (v == "ALWAYS_PRIMARY") return kFlagAlwaysPrimary;
    if (v == "DISALLOW_TO_FAILOVER") return kFlagDisallowToFailover;
    if (v == "ALLOW_TO_FAILOVER") return kFlagAllowToFailover;
    return std::nullopt;
}

void Parser::parse_backends(const toml::node& node) {
    const toml::array* arr = node.as_array();
    if (!arr || !arr->is_array_of_tables())
        return error(node, "backend", "expected [[backend]] tables, got " + type_name(node));
    static const std::vector<std::string_view> kKeys = {"hostname", "port", "weight", "flag", "application_name",
                                                        "data_directory"};
    for (const toml::node& e : *arr) {
        const toml::table& t = *e.as_table();
        BackendConfig b;
        std::string prefix = "backend[" + std::to_string(config_.backends.size()) + "].";
        for (auto&& [k, v] : t) {
            std::string key(k.str());
            auto bad = [&](const std::string& p) { error(v, prefix + key, p); };
            if (key == "hostname") {
                if (auto s = v.value<std::string>()) b.hostname = *s; else bad("expected a string, got " + type_name(v));
            } else if (key == "port") {
                auto p = v.value_exact<int64_t>();
                if (!p || *p < 1 || *p > 65535) bad("must be an integer between 1 and 65535");
                else b.port = int(*p);
            } else if (key == "weight") {
                auto w = v.value<double>();
                if (!w || *w < 0) bad("must be a number >= 0");
                else b.weight = *w;
            } else if (key == "flag") {
                std::vector<std::string> flags;
                if (auto s = v.value<std::string>()) flags = split(*s, '|');
                else if (auto* fa = v.as_array())
                    for (auto& f : *fa) flags.push_back(f.value<std::string>().value_or("?"));
                b.flags = 0;
                for (const auto& f : flags) {
                    auto bit = parse_flag(f);
                    if (!bit) bad("unknown flag \"" + f + "\" (ALWAYS_PRIMARY, DISALLOW_TO_FAILOVER, ALLOW_TO_FAILOVER)");
                    else b.flags |= *bit;
                }
                if (!(b.flags & kFlagDisallowToFailover)) b.flags |= kFlagAllowToFailover;
            } else if (key == "application_name" || key == "data_directory") {
                auto s = v.value<std::string>();
                if (!s) bad("expected a string, got " + type_name(v));
                else (key == "application_name" ? b.application_name : b.data_directory) = *s;
            } else {
                bad("unknown key" + suggestion(key, kKeys));
            }
        }
        if (!t.contains("hostname")) error(e, prefix + "hostname", "is required");
        config_.backends.push_back(std::move(b));
    }
}

}  // namespace

LoadResult parse_config(std::string_view text, const std::string& path) {
    LoadResult result;
    Config config;
    std::error_code ec;
    fs::path abs = fs::absolute(path, ec);
    config.config_file = abs.lexically_normal().string();
    config.config_dir = abs.parent_path().lexically_normal().string();
    toml::table table;
    try {
        table = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        result.errors.push_back(path + ":" + std::to_string(e.source().begin.line) + ":" +
                                std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
        return result;
    }
    // Defaults of path keys are relative to the config file too (pid file, pool_passwd, logs).
    for (const KeyDef& def : key_table())
        if (def.kind == ValueKind::Path) {
            std::string& v = config.*std::get<std::string Config::*>(def.field);
            if (!v.empty() && !fs::path(v).is_absolute()) v = config.config_dir + "/" + v;
        }
    Parser parser(path, config);
    std::vector<std::string_view> known;
    for (const KeyDef& def : key_table()) known.push_back(def.info.name);
    known.push_back("backend");
    for (auto&& [k, v] : table) {
        std::string_view name = k.str();
        if (name == "backend") parser.parse_backends(v);
        else if (const KeyDef* def = find_key(name)) parser.set_key(*def, v);
        else parser.error(v, name, "unknown key" + suggestion(name, known));
    }
    auto& errors = parser.errors();
    if (config.backends.empty()) errors.push_back(path + ":1: key 'backend': at least one [[backend]] is required");
    if (config.backends.size() > 128) errors.push_back(path + ":1: key 'backend': at most 128 backends");
    if (config.reserved_connections >= config.num_init_children) {
        auto line = table["reserved_connections"].node() ? table["reserved_connections"].node()->source().begin.line : 1;
        errors.push_back(path + ":" + std::to_string(line) + ": key 'reserved_connections': must be less than "
                         "num_init_children (" + std::to_string(config.num_init_children) + ")");
    }
    if (!config.write_function_list.empty() && !config.read_only_function_list.empty())
        errors.push_back(path + ":1: key 'write_function_list': cannot be set together with read_only_function_list");
    if (errors.empty()) result.config = std::move(config);
    result.errors = std::move(errors);
    return result;
}

LoadResult load_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        LoadResult r;
        r.errors.push_back("could not open configuration file \"" + path + "\": " + std::strerror(errno));
        return r;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_config(ss.str(), path);
}

std::string config_value_string(const Config& config, std::string_view key) {
    const KeyDef* def = find_key(key);
    if (!def) return {};
    auto join = [](const std::vector<std::string>& v, const char* sep) {
        std::string out;
        for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
        return out;
    };
    switch (def->kind) {
    case ValueKind::Bool: return config.*std::get<bool Config::*>(def->field) ? "on" : "off";
    case ValueKind::Int:
    case ValueKind::Seconds:
    case ValueKind::Millis: return std::to_string(config.*std::get<int Config::*>(def->field));
    case ValueKind::Float: return std::to_string(config.*std::get<double Config::*>(def->field));
    case ValueKind::List: return join(config.*std::get<std::vector<std::string> Config::*>(def->field), ",");
    case ValueKind::QueryList: return join(config.*std::get<std::vector<std::string> Config::*>(def->field), "; ");
    case ValueKind::Level: {
        std::string_view n = log_level_name(config.*std::get<LogLevel Config::*>(def->field));
        std::string lower(n);
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        return lower;
    }
    default: return config.*std::get<std::string Config::*>(def->field);
    }
}

std::vector<std::string> restart_only_changes(const Config& old_config, const Config& new_config) {
    std::vector<std::string> changed;
    for (const KeyDef& def : key_table())
        if (def.info.reload == ReloadPolicy::Start &&
            config_value_string(old_config, def.info.name) != config_value_string(new_config, def.info.name))
            changed.emplace_back(def.info.name);
    size_t common = std::min(old_config.backends.size(), new_config.backends.size());
    for (size_t i = 0; i < common; ++i)
        if (old_config.backends[i].hostname != new_config.backends[i].hostname ||
            old_config.backends[i].port != new_config.backends[i].port)
            changed.push_back("backend[" + std::to_string(i) + "] hostname/port");
    return changed;
}

}  // namespace splitpool::daemon
