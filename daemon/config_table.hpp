// The declarative key table: one row per pgpool parameter, driving parsing, validation, the
// pool-status listing and the sample file.
#pragma once

#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include "daemon/config.hpp"

namespace splitpool::daemon {

// How a key's TOML value is read and shown.
enum class ValueKind {
    Bool,       // true/false, or "on"/"off"/"yes"/"no"/"1"/"0"
    Int,        // integer within [min, max]
    Seconds,    // number of seconds, or "5min", "30s", "1h", "1d", "500ms" (whole seconds)
    Millis,     // number of milliseconds, or a string with units
    Float,      // number >= min
    String,     // any string
    Path,       // string; relative paths resolved against the config file's folder
    List,       // pgpool's comma-separated string, or a TOML array of strings
    QueryList,  // ';'-separated string (pgpool's reset_query_list), or an array
    Enum,       // one of `choices`
    Level,      // log_min_messages: debug5..debug1, info, notice, warning, error, log, fatal, panic
};

using Field = std::variant<bool Config::*, int Config::*, double Config::*, std::string Config::*,
                           std::vector<std::string> Config::*, LogLevel Config::*>;

struct KeyDef {
    KeyInfo info;
    ValueKind kind;
    Field field;
    std::string_view section;          // heading in the sample file
    int64_t min = 0;
    int64_t max = INT32_MAX;
    std::vector<std::string_view> choices;
};

const std::vector<KeyDef>& key_table();
const KeyDef* find_key(std::string_view name);

}  // namespace splitpool::daemon
