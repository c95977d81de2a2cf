// The declarative key table: one row per pgpool parameter drives storing, validation, SHOW-style
// printing, reload policy and the sample file. Adding a key is adding one row (and its Config field).
#include <charconv>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>

#include "daemon/config.hpp"

namespace splitpool::daemon {
namespace {

constexpr ReloadPolicy S = ReloadPolicy::Start;
constexpr ReloadPolicy R = ReloadPolicy::Reload;
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

// The part of a row every kind of key has.
struct Row {
    std::string_view name;
    std::string_view default_text;   // pgpool's spelling: "on", "5min", "localhost", "ABORT; DISCARD ALL"
    ReloadPolicy reload;
    std::string_view description;
};

struct KeyDef {
    KeyInfo info;
    std::string toml_default;                                    // for the sample file
    std::function<std::string(Config&, const RawValue&)> store;  // "" or the problem
    std::function<std::string(const Config&)> show;              // as SHOW POOL_STATUS prints it
    std::string Config::*path = nullptr;                         // file path resolved against config_dir
};

struct Section {
    std::string_view title;
    std::vector<KeyDef> keys;
};

// ---------------------------------------------------------------- value conversions

std::string trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t pos = s.find(sep, start);
        if (pos == std::string_view::npos) pos = s.size();
        if (std::string part = trim(s.substr(start, pos - start)); !part.empty()) out.push_back(std::move(part));
        start = pos + 1;
    }
    return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const std::string& item : items) out += (out.empty() ? "" : std::string(sep)) + item;
    return out;
}

std::string type_name(const RawValue& v) {
    switch (v.type) {
    case RawValue::Type::Boolean: return "a boolean";
    case RawValue::Type::Integer: return "an integer";
    case RawValue::Type::Float: return "a floating-point number";
    case RawValue::Type::String: return "a string";
    case RawValue::Type::Array: return "an array";
    case RawValue::Type::Table: return "a table";
    case RawValue::Type::Other: break;
    }
    return "a date/time";
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// A TOML basic string: quotes and backslashes escaped.
std::string toml_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string range_problem(int64_t v, int64_t min, int64_t max) {
    if (v >= min && v <= max) return {};
    return "must be between " + std::to_string(min) + " and " + std::to_string(max) + " (got " + std::to_string(v) + ")";
}

std::string to_bool(const RawValue& v, bool& out) {
    if (v.type == RawValue::Type::Boolean) {
        out = v.boolean;
        return {};
    }
    if (v.type != RawValue::Type::String) return "expected a boolean (true/false or \"on\"/\"off\"), got " + type_name(v);
    std::string word = lower(trim(v.text));
    bool is_true = word == "on" || word == "true" || word == "yes" || word == "1";
    if (is_true || word == "off" || word == "false" || word == "no" || word == "0") {
        out = is_true;
        return {};
    }
    return "invalid boolean " + in_quotes(v.text) + " (use true/false, on/off, yes/no or 1/0)";
}

// "5min", "300s", "1.5h", "500ms" or a bare number (in the base unit) → count of `base_ms` units.
// Exact integer arithmetic, so "1500ms" as seconds is rejected rather than rounded.
std::string parse_time(std::string_view text, int64_t base_ms, int64_t& out) {
    static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
        {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}, {"d", 86400000}};
    const std::string bad = "invalid time value " + in_quotes(text) + " (a number, or with units ms, s, min, h, d)";
    std::string t = trim(text);
    size_t i = 0;
    bool negative = i < t.size() && t[i] == '-';
    if (negative) ++i;
    __int128 mantissa = 0, scale = 1;
    int digits = 0;
    bool point = false;
    for (; i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || (t[i] == '.' && !point)); ++i) {
        if (t[i] == '.') {
            point = true;
            continue;
        }
        if (++digits > 15) return bad;
        mantissa = mantissa * 10 + (t[i] - '0');
        if (point) scale *= 10;
    }
    if (digits == 0) return bad;
    std::string unit = trim(std::string_view(t).substr(i));
    int64_t unit_ms = base_ms;
    if (!unit.empty()) {
        auto it = std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& u) { return u.first == unit; });
        if (it == std::end(kUnits)) return bad;
        unit_ms = it->second;
    }
    __int128 numerator = mantissa * unit_ms, denominator = scale * base_ms;
    if (numerator % denominator != 0)
        return in_quotes(text) + " is not a whole number of " + (base_ms == 1 ? "milliseconds" : "seconds");
    __int128 value = numerator / denominator;
    if (value > std::numeric_limits<int64_t>::max()) value = std::numeric_limits<int64_t>::max();
    out = negative ? -int64_t(value) : int64_t(value);
    return {};
}

// "10MB", "400kB", "1GB", "2048B" or a bare number (kilobytes, pgpool's unit) -> kilobytes.
std::string parse_size_kb(std::string_view text, int64_t& out) {
    static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
        {"B", 1}, {"kB", 1024}, {"MB", 1024 * 1024}, {"GB", 1024LL * 1024 * 1024}, {"TB", 1024LL * 1024 * 1024 * 1024}};
    const std::string bad = "invalid size " + in_quotes(text) + " (a number of kB, or with units B, kB, MB, GB, TB)";
    std::string t = trim(text);
    size_t i = 0;
    int64_t number = 0;
    for (; i < t.size() && std::isdigit(static_cast<unsigned char>(t[i])); ++i) {
        if (i >= 12) return bad;
        number = number * 10 + (t[i] - '0');
    }
    if (i == 0) return bad;
    std::string unit = trim(std::string_view(t).substr(i));
    int64_t unit_bytes = 1024;
    if (!unit.empty()) {
        auto it = std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& u) { return u.first == unit; });
        if (it == std::end(kUnits)) return bad;
        unit_bytes = it->second;
    }
    __int128 bytes = __int128(number) * unit_bytes;
    if (bytes % 1024 != 0) return in_quotes(text) + " is not a whole number of kilobytes";
    __int128 kb = bytes / 1024;
    out = kb > std::numeric_limits<int64_t>::max() ? std::numeric_limits<int64_t>::max() : int64_t(kb);
    return {};
}

std::string to_list(const RawValue& v, char sep, std::vector<std::string>& out) {
    if (v.type == RawValue::Type::String) {
        out = split(v.text, sep);
        return {};
    }
    if (v.type != RawValue::Type::Array) return "expected a string or an array of strings, got " + type_name(v);
    out.clear();
    for (const RawValue& item : v.items) {
        if (item.type != RawValue::Type::String)
            return "expected an array of strings, got " + type_name(item) + " in it";
        if (std::string s = trim(item.text); !s.empty()) out.push_back(std::move(s));
    }
    return {};
}

std::string allowed_text(const std::vector<std::string_view>& allowed) {
    std::string out;
    for (std::string_view a : allowed) out += (out.empty() ? "" : ", ") + std::string(a);
    return out;
}

constexpr std::string_view kLevelNames[] = {"debug5", "debug4", "debug3",  "debug2", "debug1", "info",
                                            "notice", "warning", "error", "log",    "fatal",  "panic"};

// ---------------------------------------------------------------- row builders, one per kind

KeyDef make(const Row& row, std::string_view type, std::string toml_default) {
    return KeyDef{KeyInfo{row.name, type, row.default_text, row.reload, row.description}, std::move(toml_default), {}, {},
                  nullptr};
}

KeyDef boolean(const Row& row, bool Config::*field) {
    KeyDef k = make(row, "bool", row.default_text == "on" ? "true" : "false");
    k.store = [field](Config& c, const RawValue& v) { return to_bool(v, c.*field); };
    k.show = [field](const Config& c) { return std::string(c.*field ? "on" : "off"); };
    return k;
}

KeyDef integer(const Row& row, int Config::*field, int64_t min, int64_t max) {
    KeyDef k = make(row, "int", std::string(row.default_text));
    k.store = [field, min, max](Config& c, const RawValue& v) {
        if (v.type != RawValue::Type::Integer) return "expected an integer, got " + type_name(v);
        std::string problem = range_problem(v.integer, min, max);
        if (problem.empty()) c.*field = int(v.integer);
        return problem;
    };
    k.show = [field](const Config& c) { return std::to_string(c.*field); };
    return k;
}

// A duration stored as a count of `base_ms` (1000: seconds, 1: milliseconds).
KeyDef duration(const Row& row, int Config::*field, int64_t base_ms, int64_t max) {
    bool bare = row.default_text.find_first_not_of("0123456789") == std::string_view::npos;
    KeyDef k = make(row, "time", bare ? std::string(row.default_text) : in_quotes(row.default_text));
    k.store = [field, base_ms, max](Config& c, const RawValue& v) {
        int64_t n = v.integer;
        if (v.type == RawValue::Type::String) {
            if (std::string problem = parse_time(v.text, base_ms, n); !problem.empty()) return problem;
        } else if (v.type != RawValue::Type::Integer) {
            return "expected an integer or a string with units (\"5min\"), got " + type_name(v);
        }
        std::string problem = range_problem(n, 0, max);
        if (problem.empty()) c.*field = int(n);
        return problem;
    };
    k.show = [field](const Config& c) { return std::to_string(c.*field); };
    return k;
}

KeyDef seconds(const Row& row, int Config::*field) { return duration(row, field, 1000, kIntMax); }
KeyDef minutes(const Row& row, int Config::*field) { return duration(row, field, 60000, kIntMax); }

// A size stored in kilobytes: a bare number, or a string with units ("10MB").
KeyDef kilobytes(const Row& row, int Config::*field) {
    bool bare = row.default_text.find_first_not_of("0123456789") == std::string_view::npos;
    KeyDef k = make(row, "size", bare ? std::string(row.default_text) : in_quotes(row.default_text));
    k.store = [field](Config& c, const RawValue& v) {
        int64_t n = v.integer;
        if (v.type == RawValue::Type::String) {
            if (std::string problem = parse_size_kb(v.text, n); !problem.empty()) return problem;
        } else if (v.type != RawValue::Type::Integer) {
            return "expected an integer or a string with units (\"10MB\"), got " + type_name(v);
        }
        std::string problem = range_problem(n, 0, kIntMax);
        if (problem.empty()) c.*field = int(n);
        return problem;
    };
    k.show = [field](const Config& c) { return std::to_string(c.*field); };
    return k;
}
KeyDef millis(const Row& row, int Config::*field) { return duration(row, field, 1, kIntMax); }

KeyDef text(const Row& row, std::string Config::*field) {
    KeyDef k = make(row, "string", toml_string(row.default_text));
    k.store = [field](Config& c, const RawValue& v) {
        if (v.type != RawValue::Type::String) return "expected a string, got " + type_name(v);
        c.*field = v.text;
        return std::string();
    };
    k.show = [field](const Config& c) { return c.*field; };
    return k;
}

// A file path: relative values are resolved against the config file's folder after parsing.
KeyDef path(const Row& row, std::string Config::*field) {
    KeyDef k = text(row, field);
    k.info.type = "path";
    k.path = field;
    return k;
}

// One of `allowed`; values pgpool knows but we do not implement are named as unsupported.
KeyDef choice(const Row& row, std::string Config::*field, std::vector<std::string_view> allowed,
              std::vector<std::string_view> unsupported = {}) {
    KeyDef k = make(row, "enum", toml_string(row.default_text));
    k.store = [field, allowed, unsupported](Config& c, const RawValue& v) {
        if (v.type != RawValue::Type::String) return "expected a string, got " + type_name(v);
        std::string value = trim(v.text);
        if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) {
            c.*field = value;
            return std::string();
        }
        if (std::find(unsupported.begin(), unsupported.end(), value) != unsupported.end())
            return in_quotes(value) + " is not supported (splitpool supports only " + allowed_text(allowed) + ")";
        return "invalid value " + in_quotes(v.text) + " (allowed: " + allowed_text(allowed) + ")";
    };
    k.show = [field](const Config& c) { return c.*field; };
    return k;
}

// pgpool's `sep`-separated string or a TOML array of strings; items optionally restricted to `allowed`.
KeyDef list_of(const Row& row, std::vector<std::string> Config::*field, char sep,
               std::vector<std::string_view> allowed) {
    KeyDef k = make(row, "list", toml_string(row.default_text));
    k.store = [field, sep, allowed](Config& c, const RawValue& v) {
        std::vector<std::string> items;
        if (std::string problem = to_list(v, sep, items); !problem.empty()) return problem;
        for (const std::string& item : items)
            if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), item) == allowed.end())
                return "invalid value " + in_quotes(item) + " (allowed: " + allowed_text(allowed) + ")";
        c.*field = std::move(items);
        return std::string();
    };
    std::string joiner = sep == ',' ? "," : "; ";
    k.show = [field, joiner](const Config& c) { return join(c.*field, joiner); };
    return k;
}

KeyDef list(const Row& row, std::vector<std::string> Config::*field, std::vector<std::string_view> allowed = {}) {
    return list_of(row, field, ',', std::move(allowed));
}

KeyDef query_list(const Row& row, std::vector<std::string> Config::*field) { return list_of(row, field, ';', {}); }

// A message level; `allowed` (lower-case names) narrows the accepted ones (client_min_messages).
KeyDef level(const Row& row, LogLevel Config::*field, std::vector<std::string_view> allowed = {}) {
    KeyDef k = make(row, "enum", toml_string(row.default_text));
    k.store = [field, allowed](Config& c, const RawValue& v) {
        if (v.type != RawValue::Type::String) return "expected a string, got " + type_name(v);
        std::optional<LogLevel> parsed = parse_log_level(trim(v.text));
        if (parsed && !allowed.empty() &&
            std::find(allowed.begin(), allowed.end(), kLevelNames[static_cast<int>(*parsed)]) == allowed.end())
            parsed.reset();
        if (!parsed)
            return "invalid level " + in_quotes(v.text) + " (" +
                   (allowed.empty() ? std::string("debug5..debug1, info, notice, warning, error, log, fatal, panic")
                                    : allowed_text(allowed)) + ")";
        c.*field = *parsed;
        return std::string();
    };
    k.show = [field](const Config& c) { return std::string(kLevelNames[static_cast<int>(c.*field)]); };
    return k;
}

KeyDef verbosity(const Row& row, ErrorVerbosity Config::*field) {
    static constexpr std::string_view kNames[] = {"terse", "default", "verbose"};
    KeyDef k = make(row, "enum", toml_string(row.default_text));
    k.store = [field](Config& c, const RawValue& v) {
        if (v.type != RawValue::Type::String) return "expected a string, got " + type_name(v);
        std::optional<ErrorVerbosity> parsed = parse_error_verbosity(trim(v.text));
        if (!parsed) return "invalid value " + in_quotes(v.text) + " (allowed: terse, default, verbose)";
        c.*field = *parsed;
        return std::string();
    };
    k.show = [field](const Config& c) { return std::string(kNames[static_cast<int>(c.*field)]); };
    return k;
}

// ---------------------------------------------------------------- the table

const std::vector<Section>& sections() {
    using C = Config;
    static const std::vector<Section> table = {
        {"Connections",
         {list({"listen_addresses", "localhost", S, "host names or addresses to listen on, comma-separated ('*' = all)"},
                &C::listen_addresses),
          integer({"port", "9999", S, "TCP port to listen on"}, &C::port, 1, 65535),
          list({"unix_socket_directories", "/tmp", S, "directories of the Unix socket .s.PGSQL.<port>, comma-separated"},
               &C::unix_socket_directories),
          integer({"listen_backlog_multiplier", "2", S, "listen() backlog = this x num_init_children"},
                  &C::listen_backlog_multiplier, 1, 1000),
          integer({"reserved_connections", "0", S, "refuse clients (53300) when fewer than this many children are free"},
                  &C::reserved_connections, 0, 10000)}},
        {"PCP",
         {list({"pcp_listen_addresses", "localhost", S, "host names or addresses PCP listens on ('*' = all)"},
               &C::pcp_listen_addresses),
          integer({"pcp_port", "9898", S, "TCP port of PCP"}, &C::pcp_port, 1, 65535),
          text({"pcp_socket_dir", "/tmp", S, "directory of the PCP Unix socket"}, &C::pcp_socket_dir)}},
        {"Files",
         {path({"pid_file_name", "/var/run/pgpool/pgpool.pid", S, "pid file of the daemon"}, &C::pid_file_name),
          path({"logdir", "/tmp", S, "directory of the node status file pgpool_status"}, &C::logdir)}},
        {"Pools",
         {integer({"num_init_children", "32", S, "preforked children = maximum number of concurrent clients"},
                  &C::num_init_children, 1, 10000),
          integer({"max_pool", "4", S, "cached backend connection sets per child"}, &C::max_pool, 1, 1000),
          seconds({"child_life_time", "5min", S, "an idle child exits after this many seconds (0 = never)"}, &C::child_life_time),
          integer({"child_max_connections", "0", S, "a child exits after this many clients (0 = never)"},
                  &C::child_max_connections, 0, kIntMax),
          seconds({"client_idle_limit", "0", R, "disconnect a client idle this many seconds (0 = never)"}, &C::client_idle_limit),
          seconds({"connection_life_time", "0", S, "cached backend connections expire after this many seconds (0 = never)"},
                  &C::connection_life_time),
          millis({"connect_timeout", "10000", R, "backend connect() timeout in milliseconds (0 = none)"},
                 &C::connect_timeout),
          seconds({"authentication_timeout", "1min", S, "seconds a client has to authenticate (0 = no limit)"},
                  &C::authentication_timeout),
          query_list({"reset_query_list", "ABORT; DISCARD ALL", R, "statements run when a client leaves, ';'-separated"},
                     &C::reset_query_list)}},
        {"Clustering",
         {choice({"backend_clustering_mode", "streaming_replication", S, "clustering mode (only streaming_replication)"},
                 &C::backend_clustering_mode, {"streaming_replication"},
                 {"native_replication", "logical_replication", "slony", "snapshot_isolation", "raw"})}},
        {"Load balancing",
         {boolean({"load_balance_mode", "on", S, "spread reads over the nodes by weight"}, &C::load_balance_mode),
          boolean({"statement_level_load_balance", "off", R, "choose the read node per statement, not per session"},
                  &C::statement_level_load_balance),
          choice({"load_balance_placement", "even", R,
                  "beyond pgpool: a session's read node: even (fewest open sessions per weight, ties at random by "
                  "weight) or random (by weight, as pgpool)"},
                 &C::load_balance_placement, {"even", "random"}),
          choice({"disable_load_balance_on_write", "transaction", R,
                  "after a write, reads go to the primary: off, transaction, trans_transaction, always, dml_adaptive"},
                 &C::disable_load_balance_on_write, {"off", "transaction", "trans_transaction", "always", "dml_adaptive"}),
          millis({"read_your_writes_window", "0", R,
                  "beyond pgpool: reads of a table any session wrote this recently go to the primary (0 = off)"},
                 &C::read_your_writes_window),
          list({"write_function_list", "", R, "regexes of functions that write (all others do not)"},
               &C::write_function_list),
          list({"read_only_function_list", "", R, "regexes of functions that do not write (all others do)"},
               &C::read_only_function_list),
          query_list({"primary_routing_query_pattern_list", "", R, "regexes of statements sent to the primary, ';'-separated"},
                     &C::primary_routing_query_pattern_list),
          text({"database_redirect_preference_list", "", R, "database:node pairs preferring a node for reads"},
               &C::database_redirect_preference_list),
          text({"app_name_redirect_preference_list", "", R, "application_name:node pairs preferring a node for reads"},
               &C::app_name_redirect_preference_list),
          text({"user_redirect_preference_list", "", R, "user:node pairs preferring a node for reads"},
               &C::user_redirect_preference_list),
          boolean({"allow_sql_comments", "off", R, "ignore SQL comments when deciding whether a read is balanced"},
                  &C::allow_sql_comments),
          choice({"check_temp_table", "catalog", R, "how reads of temporary tables are recognised: catalog, trace, none"},
                 &C::check_temp_table, {"catalog", "trace", "none", "on", "off"}),
          boolean({"check_unlogged_table", "on", R, "send reads of unlogged tables to the primary"},
                  &C::check_unlogged_table),
          integer({"classification_cache_size", "1024", S, "statements whose routing class each child caches"},
                  &C::classification_cache_size, 1, 1000000)}},
        {"Authentication",
         {boolean({"enable_pool_hba", "off", R, "authenticate clients with pool_hba.conf"}, &C::enable_pool_hba),
          boolean({"allow_clear_text_frontend_auth", "off", R,
                   "ask clients without a pool_passwd entry for a clear-text password and pass it on"},
                  &C::allow_clear_text_frontend_auth),
          path({"pool_passwd", "pool_passwd", S, "password file (\"\" = none)"}, &C::pool_passwd)}},
        {"TLS",
         {boolean({"ssl", "off", R, "accept TLS from clients and ask the backends for it"}, &C::ssl),
          path({"ssl_cert", "", R, "server certificate (PEM)"}, &C::ssl_cert),
          path({"ssl_key", "", R, "server private key (PEM)"}, &C::ssl_key),
          path({"ssl_ca_cert", "", R, "CA for client certificates and backend verification"}, &C::ssl_ca_cert),
          path({"ssl_ca_cert_dir", "", R, "folder of CA certificates"}, &C::ssl_ca_cert_dir),
          path({"ssl_crl_file", "", R, "certificate revocation list"}, &C::ssl_crl_file),
          text({"ssl_ciphers", "HIGH:MEDIUM:+3DES:!aNULL", R, "allowed TLS 1.2 cipher suites"}, &C::ssl_ciphers),
          boolean({"ssl_prefer_server_ciphers", "off", R, "prefer the server's cipher order"},
                  &C::ssl_prefer_server_ciphers),
          text({"ssl_ecdh_curve", "prime256v1", R, "curve for ECDH key exchange"}, &C::ssl_ecdh_curve),
          path({"ssl_dh_params_file", "", R, "Diffie-Hellman parameters file"}, &C::ssl_dh_params_file),
          text({"ssl_passphrase_command", "", R, "command printing the key's passphrase (%p: prompt)"},
               &C::ssl_passphrase_command),
          choice({"ssl_min_protocol_version", "TLSv1.2", R, "lowest TLS version accepted (beyond pgpool)"},
                 &C::ssl_min_protocol_version, {"", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}),
          choice({"ssl_max_protocol_version", "", R, "highest TLS version accepted (beyond pgpool)"},
                 &C::ssl_max_protocol_version, {"", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}),
          choice({"backend_sslmode", "prefer", R,
                  "TLS toward the backends when ssl is on: disable, prefer, require, verify-ca, verify-full"},
                 &C::backend_sslmode, {"disable", "prefer", "require", "verify-ca", "verify-full"})}},
        {"Health check and failover",
         {seconds({"sr_check_period", "10", R, "streaming replication check interval in seconds (0 = off)"}, &C::sr_check_period),
          seconds({"health_check_period", "0", R, "health check interval in seconds (0 = off)"}, &C::health_check_period),
          seconds({"health_check_timeout", "20", R, "give up a health check connection after this many seconds (0 = never)"},
                  &C::health_check_timeout),
          text({"health_check_user", "", R, "user the health check logs in as"}, &C::health_check_user),
          text({"health_check_password", "", R, "its password (empty: pool_passwd); AES/md5/TEXT prefixes as pgpool"},
               &C::health_check_password),
          text({"health_check_database", "", R, "database of the health check (empty: postgres, then template1)"},
               &C::health_check_database),
          integer({"health_check_max_retries", "0", R, "retries before a node is taken as failed"},
                  &C::health_check_max_retries, 0, 1000000),
          seconds({"health_check_retry_delay", "1", R,
                   "seconds between health check retries; also how long sessions skip a standby another session lost"},
                  &C::health_check_retry_delay),
          text({"sr_check_user", "", R, "user of the streaming replication check and primary detection"}, &C::sr_check_user),
          text({"sr_check_password", "", R, "its password (empty: pool_passwd)"}, &C::sr_check_password),
          text({"sr_check_database", "postgres", R, "database of the streaming replication check"}, &C::sr_check_database),
          integer({"delay_threshold", "0", R, "a standby this many bytes of WAL behind gets no reads (0 = off)"},
                  &C::delay_threshold, 0, kIntMax),
          millis({"delay_threshold_by_time", "0", R,
                  "a standby whose replay lag exceeds this (ms) gets no reads; overrides delay_threshold (0 = off)"},
                 &C::delay_threshold_by_time),
          boolean({"prefer_lower_delay_standby", "off", R, "a lagging session node is replaced by the least lagging standby"},
                  &C::prefer_lower_delay_standby),
          choice({"log_standby_delay", "if_over_threshold", R, "none, always or if_over_threshold"}, &C::log_standby_delay,
                 {"none", "always", "if_over_threshold"}),
          text({"failover_command", "", R, "run (asynchronously) when a node is detached; pgpool's % placeholders"},
               &C::failover_command),
          text({"failback_command", "", R, "run when a node is attached again"}, &C::failback_command),
          text({"follow_primary_command", "", R, "run for each standby after a new primary was found"},
               &C::follow_primary_command),
          seconds({"search_primary_node_timeout", "300", R, "how long to look for a new primary after a failover (0 = forever)"},
                  &C::search_primary_node_timeout),
          boolean({"detach_false_primary", "off", R, "detach a node that is a primary but not the one the standbys follow"},
                  &C::detach_false_primary),
          boolean({"auto_failback", "off", R, "attach a detached standby again once it streams from the primary"},
                  &C::auto_failback),
          seconds({"auto_failback_interval", "60", R, "minimum seconds between automatic failbacks of a node"},
                  &C::auto_failback_interval),
          boolean({"failover_on_backend_error", "on", R, "detach a node on a read/write error of a session"},
                  &C::failover_on_backend_error),
          boolean({"failover_on_backend_shutdown", "off", R, "detach a node that reports an administrator shutdown"},
                  &C::failover_on_backend_shutdown)}},
        {"Logging",
         {list({"log_destination", "stderr", R, "stderr, syslog, or both comma-separated"}, &C::log_destination,
               {"stderr", "syslog"}),
          boolean({"logging_collector", "off", S, "a logger process writes every process's log lines into log_directory, rotated"},
                  &C::logging_collector),
          path({"log_directory", "/tmp/pgpool_logs", R, "directory of the log files"}, &C::log_directory),
          text({"log_filename", "pgpool-%Y-%m-%d_%H%M%S.log", R, "log file name (strftime pattern)"}, &C::log_filename),
          minutes({"log_rotation_age", "1d", R, "start a new log file after this long (minutes, or '1h', '1d'; 0 = never)"},
                  &C::log_rotation_age),
          kilobytes({"log_rotation_size", "10MB", R, "start a new log file at this size (kB, or '10MB'; 0 = never)"},
                    &C::log_rotation_size),
          boolean({"log_truncate_on_rotation", "off", R,
                   "a time-based rotation to an existing file name overwrites it instead of appending"},
                  &C::log_truncate_on_rotation),
          text({"syslog_facility", "LOCAL0", R, "syslog facility (LOCAL0..LOCAL7)"}, &C::syslog_facility),
          text({"syslog_ident", "pgpool", R, "program name in syslog"}, &C::syslog_ident),
          text({"log_line_prefix", "%m: %a pid %p: ", R, "prefix of each log line (%m time, %a process, %p pid)"},
               &C::log_line_prefix),
          level({"log_min_messages", "warning", R, "lowest level logged (debug5..debug1, info, notice, warning, ...)"},
                &C::log_min_messages),
          verbosity({"log_error_verbosity", "default", R, "terse (no DETAIL/HINT lines), default, verbose (adds LOCATION)"},
                    &C::log_error_verbosity),
          level({"client_min_messages", "notice", R,
                 "lowest level of splitpool's own messages sent to clients (debug5..debug1, log, notice, warning, error)"},
                &C::client_min_messages,
                {"debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error"}),
          boolean({"log_connections", "off", R, "log each client connection"}, &C::log_connections),
          boolean({"log_disconnections", "off", R, "log each client disconnection"}, &C::log_disconnections),
          boolean({"log_statement", "off", R, "log every statement"}, &C::log_statement),
          boolean({"log_per_node_statement", "off", R, "log every statement with the node it goes to"},
                  &C::log_per_node_statement),
          boolean({"notice_per_node_statement", "off", R, "send the client a NOTICE naming each statement's node"},
                  &C::notice_per_node_statement)}},
        {"Metrics",
         {list({"metrics_listen_addresses", "", S,
                "addresses of the Prometheus endpoint http://ADDRESS:metrics_port/metrics ('' = off, '*' = all)"},
               &C::metrics_listen_addresses),
          integer({"metrics_port", "9719", S, "TCP port of the Prometheus endpoint"}, &C::metrics_port, 1, 65535)}},
    };
    return table;
}

const KeyDef* find_def(std::string_view name) {
    for (const Section& section : sections())
        for (const KeyDef& k : section.keys)
            if (k.info.name == name) return &k;
    return nullptr;
}

// ---------------------------------------------------------------- backends ([[backend]] tables)

std::string weight_text(double w) {
    char buf[32];
    snprintf(buf, sizeof buf, "%g", w);
    return buf;
}

std::string to_flags(const RawValue& v, unsigned& out) {
    std::vector<std::string> words;
    if (v.type == RawValue::Type::String) {
        words = split(v.text, '|');
    } else if (std::string problem = to_list(v, '|', words); !problem.empty()) {
        return problem;
    }
    unsigned flags = 0;
    for (const std::string& w : words) {
        if (w == "ALWAYS_PRIMARY") flags |= kFlagAlwaysPrimary;
        else if (w == "DISALLOW_TO_FAILOVER") flags |= kFlagDisallowToFailover;
        else if (w == "ALLOW_TO_FAILOVER") flags |= kFlagAllowToFailover;
        else return "unknown flag " + in_quotes(w) + " (ALWAYS_PRIMARY, ALLOW_TO_FAILOVER, DISALLOW_TO_FAILOVER)";
    }
    if ((flags & kFlagAllowToFailover) && (flags & kFlagDisallowToFailover))
        return "ALLOW_TO_FAILOVER and DISALLOW_TO_FAILOVER contradict each other";
    if (!(flags & kFlagDisallowToFailover)) flags |= kFlagAllowToFailover;   // pgpool's default
    out = flags;
    return {};
}

struct BackendKeyDef {
    std::string_view name;
    ReloadPolicy reload;
    std::string_view description;
    std::function<std::string(BackendConfig&, const RawValue&)> store;
    std::function<std::string(const BackendConfig&)> show;
    bool per_node_override = false;  // pgpool names it <name>N (health_check_period0), shown only when set
};

// A per-node health-check duration (base_ms 1000: seconds, 1: milliseconds) or count (base_ms 0).
BackendKeyDef health_override(std::string_view name, std::string_view description,
                              std::optional<int> HealthCheckOverride::*field, int64_t base_ms) {
    BackendKeyDef d{name, ReloadPolicy::Reload, description, {}, {}, true};
    d.store = [field, base_ms](BackendConfig& b, const RawValue& v) {
        int64_t n = v.integer;
        if (v.type == RawValue::Type::String && base_ms > 0) {
            if (std::string problem = parse_time(v.text, base_ms, n); !problem.empty()) return problem;
        } else if (v.type != RawValue::Type::Integer) {
            return std::string(base_ms > 0 ? "expected an integer or a string with units (\"30s\"), got "
                                           : "expected an integer, got ") + type_name(v);
        }
        std::string problem = range_problem(n, 0, base_ms > 0 ? kIntMax : 1000000);
        if (problem.empty()) b.health_check.*field = int(n);
        return problem;
    };
    d.show = [field](const BackendConfig& b) {
        return (b.health_check.*field) ? std::to_string(*(b.health_check.*field)) : std::string();
    };
    return d;
}

BackendKeyDef health_override_text(std::string_view name, std::string_view description,
                                   std::optional<std::string> HealthCheckOverride::*field, bool secret) {
    BackendKeyDef d{name, ReloadPolicy::Reload, description, {}, {}, true};
    d.store = [field](BackendConfig& b, const RawValue& v) {
        if (v.type != RawValue::Type::String) return "expected a string, got " + type_name(v);
        b.health_check.*field = v.text;
        return std::string();
    };
    d.show = [field, secret](const BackendConfig& b) {
        const auto& value = b.health_check.*field;
        return !value ? std::string() : secret ? std::string("********") : *value;
    };
    return d;
}

std::string store_string(std::string& field, const RawValue& v) {
    if (v.type != RawValue::Type::String) return "expected a string, got " + type_name(v);
    field = v.text;
    return {};
}

const std::vector<BackendKeyDef>& backend_defs() {
    using B = BackendConfig;
    static const std::vector<BackendKeyDef> defs = {
        {"hostname", S, "host name, IP address, or Unix socket directory starting with '/' (required)",
         [](B& b, const RawValue& v) {
             if (v.type == RawValue::Type::String && trim(v.text).empty())
                 return std::string("must not be empty (a host name, an address, or a socket directory like \"/tmp\")");
             return store_string(b.hostname, v);
         },
         [](const B& b) { return b.hostname; }},
        {"port", S, "port of the node (default 5432)",
         [](B& b, const RawValue& v) {
             if (v.type != RawValue::Type::Integer) return "expected an integer, got " + type_name(v);
             std::string problem = range_problem(v.integer, 1, 65535);
             if (problem.empty()) b.port = int(v.integer);
             return problem;
         },
         [](const B& b) { return std::to_string(b.port); }},
        {"weight", R, "share of the reads (relative to the other nodes; default 1)",
         [](B& b, const RawValue& v) {
             double w = v.type == RawValue::Type::Integer ? double(v.integer) : v.number;
             if (v.type != RawValue::Type::Integer && v.type != RawValue::Type::Float)
                 return "expected a number, got " + type_name(v);
             if (!(w >= 0)) return "must be >= 0 (got " + weight_text(w) + ")";
             b.weight = w;
             return std::string();
         },
         [](const B& b) { return weight_text(b.weight); }},
        {"flag", R, "ALWAYS_PRIMARY, ALLOW_TO_FAILOVER (default), DISALLOW_TO_FAILOVER; array or '|'-joined",
         [](B& b, const RawValue& v) { return to_flags(v, b.flags); },
         [](const B& b) { return backend_flag_string(b.flags); }},
        {"application_name", R, "the standby's application_name in primary_conninfo",
         [](B& b, const RawValue& v) { return store_string(b.application_name, v); },
         [](const B& b) { return b.application_name; }},
        {"data_directory", R, "the node's data directory (online recovery)",
         [](B& b, const RawValue& v) { return store_string(b.data_directory, v); },
         [](const B& b) { return b.data_directory; }},
        // pgpool's per-node health_check_*N: this node's values over the top-level keys
        health_override("health_check_period", "this node's health_check_period", &HealthCheckOverride::period, 1000),
        health_override("health_check_timeout", "this node's health_check_timeout", &HealthCheckOverride::timeout, 1000),
        health_override_text("health_check_user", "this node's health_check_user", &HealthCheckOverride::user, false),
        health_override_text("health_check_password", "this node's health_check_password (empty: pool_passwd)",
                             &HealthCheckOverride::password, true),
        health_override_text("health_check_database", "this node's health_check_database",
                             &HealthCheckOverride::database, false),
        health_override("health_check_max_retries", "this node's health_check_max_retries",
                        &HealthCheckOverride::max_retries, 0),
        health_override("health_check_retry_delay", "this node's health_check_retry_delay",
                        &HealthCheckOverride::retry_delay, 1000),
        health_override("connect_timeout", "this node's connect_timeout for its health check (milliseconds)",
                        &HealthCheckOverride::connect_timeout, 1),
    };
    return defs;
}

std::string backend_section_text() {
    std::string out =
        "\n#------------------------------------------------------------------------------\n"
        "# Backends: one [[backend]] table per PostgreSQL node, node 0 first (pgpool's backend_*N).\n"
        "# At least one, at most 128. Nodes can be added by reload; changing the hostname or port of\n"
        "# an existing node requires a restart.\n";
    for (const BackendKeyDef& d : backend_defs()) {
        std::string name(d.name);
        name.resize(18, ' ');
        out += "#   " + name + std::string(d.description) + "\n";
    }
    out += "#------------------------------------------------------------------------------\n";
    static const char* const kNodes[][3] = {{"5432", "1", "[\"ALWAYS_PRIMARY\", \"DISALLOW_TO_FAILOVER\"]"},
                                            {"5433", "2", "[\"DISALLOW_TO_FAILOVER\"]"},
                                            {"5434", "2", "[\"DISALLOW_TO_FAILOVER\"]"}};
    for (int i = 0; i < 3; ++i) {
        out += std::string("\n# node ") + std::to_string(i) + (i == 0 ? ": the primary\n" : ": a streaming replica\n");
        out += std::string("[[backend]]\nhostname = \"127.0.0.1\"\nport = ") + kNodes[i][0] + "\nweight = " +
               kNodes[i][1] + "\nflag = " + kNodes[i][2] + "\napplication_name = \"node" + std::to_string(i) + "\"\n";
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------- public functions

const std::vector<KeyInfo>& config_keys() {
    static const std::vector<KeyInfo> infos = [] {
        std::vector<KeyInfo> out;
        for (const Section& section : sections())
            for (const KeyDef& k : section.keys) {
                out.push_back(k.info);
                out.back().section = section.title;
                out.back().toml_default = k.toml_default;
            }
        return out;
    }();
    return infos;
}

std::string config_store(Config& config, std::string_view key, const RawValue& value) {
    const KeyDef* def = find_def(key);
    return def ? def->store(config, value) : "unknown key";
}

std::string backend_store(BackendConfig& backend, std::string_view key, const RawValue& value) {
    for (const BackendKeyDef& d : backend_defs())
        if (d.name == key) return d.store(backend, value);
    return "unknown key";
}

const std::vector<std::string_view>& backend_key_names() {
    static const std::vector<std::string_view> names = [] {
        std::vector<std::string_view> out;
        for (const BackendKeyDef& d : backend_defs()) out.push_back(d.name);
        return out;
    }();
    return names;
}

const std::vector<KeyInfo>& backend_key_infos() {
    static const std::vector<KeyInfo> infos = [] {
        std::vector<KeyInfo> out;
        for (const BackendKeyDef& d : backend_defs()) out.push_back(KeyInfo{d.name, "", "", d.reload, d.description});
        return out;
    }();
    return infos;
}

void config_resolve_paths(Config& config) {
    namespace fs = std::filesystem;
    for (const Section& section : sections())
        for (const KeyDef& k : section.keys) {
            if (!k.path) continue;
            std::string& value = config.*k.path;
            if (value.empty() || fs::path(value).is_absolute()) continue;
            fs::path resolved = (fs::path(config.config_dir) / value).lexically_normal();
            if (!resolved.has_filename() && resolved.has_relative_path()) resolved = resolved.parent_path();  // "dir/."
            value = resolved.string();
        }
}

std::string backend_flag_string(unsigned flags) {
    std::string out;
    if (flags & kFlagAlwaysPrimary) out = "ALWAYS_PRIMARY|";
    return out + ((flags & kFlagDisallowToFailover) ? "DISALLOW_TO_FAILOVER" : "ALLOW_TO_FAILOVER");
}

std::vector<std::pair<std::string, std::string>> config_backend_values(const Config& config) {
    std::vector<std::pair<std::string, std::string>> out;
    for (size_t i = 0; i < config.backends.size(); ++i)
        for (const BackendKeyDef& d : backend_defs()) {
            std::string value = d.show(config.backends[i]);
            if (d.per_node_override && value.empty()) continue;
            out.emplace_back((d.per_node_override ? "" : "backend_") + std::string(d.name) + std::to_string(i), value);
        }
    return out;
}

HealthCheckSettings health_check_settings(const Config& c, int node) {
    HealthCheckSettings s{c.health_check_period, c.health_check_timeout, c.health_check_retry_delay,
                          c.health_check_max_retries, c.connect_timeout, c.health_check_user,
                          c.health_check_password, c.health_check_database};
    if (node < 0 || size_t(node) >= c.backends.size()) return s;
    const HealthCheckOverride& o = c.backends[size_t(node)].health_check;
    s.period = o.period.value_or(s.period);
    s.timeout = o.timeout.value_or(s.timeout);
    s.retry_delay = o.retry_delay.value_or(s.retry_delay);
    s.max_retries = o.max_retries.value_or(s.max_retries);
    s.connect_timeout = o.connect_timeout.value_or(s.connect_timeout);
    s.user = o.user.value_or(s.user);
    s.password = o.password.value_or(s.password);
    s.database = o.database.value_or(s.database);
    return s;
}

std::string config_value_string(const Config& config, std::string_view key) {
    if (const KeyDef* def = find_def(key)) return def->show(config);
    for (auto& [name, value] : config_backend_values(config))  // backend_port0, health_check_period0, ...
        if (name == key) return value;
    return {};
}

std::vector<std::string> restart_only_changes(const Config& old_config, const Config& new_config) {
    std::vector<std::string> changed;
    for (const Section& section : sections())
        for (const KeyDef& k : section.keys)
            if (k.info.reload == ReloadPolicy::Start && k.show(old_config) != k.show(new_config))
                changed.emplace_back(k.info.name);
    // Existing nodes keep their address until a restart; added nodes are live, removed ones are not.
    for (size_t i = 0; i < old_config.backends.size(); ++i)
        for (const BackendKeyDef& d : backend_defs()) {
            if (d.reload != ReloadPolicy::Start) continue;
            bool removed = i >= new_config.backends.size();
            if (removed || d.show(old_config.backends[i]) != d.show(new_config.backends[i]))
                changed.push_back("backend_" + std::string(d.name) + std::to_string(i));
        }
    return changed;
}

std::string sample_config_text() {
    std::string out =
        "# splitpool configuration: every supported pgpool-II parameter with its default value.\n"
        "# Generated from the key table in daemon/config_keys.cpp (`splitpool --sample-config`).\n"
        "# Keys keep their pgpool.conf names. Relative file paths are relative to this file's folder.\n"
        "# Lists take pgpool's comma-separated string or a TOML array of strings; times take a number\n"
        "# in the unit named by the key or a string with units (\"500ms\", \"30s\", \"5min\", \"1h\", \"1d\");\n"
        "# booleans take true/false or \"on\"/\"off\".\n";
    for (const Section& section : sections()) {
        out += "\n#------------------------------------------------------------------------------\n# ";
        out += std::string(section.title);
        out += "\n#------------------------------------------------------------------------------\n";
        for (const KeyDef& k : section.keys) {
            out += "\n# " + std::string(k.info.description) + "\n";
            if (k.info.reload == ReloadPolicy::Start) out += "# (change requires restart)\n";
            out += std::string(k.info.name) + " = " + k.toml_default + "\n";
        }
    }
    return out + backend_section_text();
}

}  // namespace splitpool::daemon

namespace splitpool::daemon {

// Start-only keys keep their running values until a restart, as pgpool's "start" context: the
// changed file is applied only where it may be.
void keep_start_only_values(const Config& running, Config& fresh) {
    for (const std::string& key : restart_only_changes(running, fresh)) {
        if (key.rfind("backend_", 0) == 0) continue;  // backends are handled by node publishing
        // The running value as its text; a key that stores numbers may want it as an integer
        // (a text key may hold digits, and a number may not fit: never guess by throwing).
        std::string text = config_value_string(running, key);
        RawValue as_text;
        as_text.type = RawValue::Type::String;
        as_text.text = text;
        if (config_store(fresh, key, as_text).empty()) continue;
        RawValue as_number = as_text;
        as_number.type = RawValue::Type::Integer;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), as_number.integer);
        bool number = ec == std::errc() && end == text.data() + text.size();
        if (!number || !config_store(fresh, key, as_number).empty())
            PROXY_LOG(Warning, "could not keep the running value of \"%s\" over a reload", key.c_str());
    }
    fresh.hba_file = running.hba_file;
    fresh.key_file = running.key_file;
}

}  // namespace splitpool::daemon
