// pgpool-II parameters that are not splitpool keys: old names of keys, and the unsupported ones
// with the reason and the values under which dropping them changes nothing.
#pragma once

#include <optional>
#include <string_view>

namespace splitpool::tools {

struct UnsupportedParam {
    std::string_view reason;
    // Dropping the parameter changes nothing when its value is this (booleans compared as on/off).
    std::optional<std::string_view> neutral;
    // The parameter matters only when this one is on / non-empty ("" = always matters; kGateNever:
    // only in a mode splitpool refuses, so never).
    std::string_view gate;
};

constexpr std::string_view kGateNever = "(never in streaming_replication mode)";

// The current name of a key pgpool renamed (white_function_list → read_only_function_list), else "".
std::string_view renamed_key(std::string_view name);

// What is known about a parameter splitpool does not support; nullopt for names not in the table.
// Per-node names (hostname0, heartbeat_port1, health_check_period0) match their numbered pattern.
std::optional<UnsupportedParam> find_unsupported(std::string_view name);

// on/off spelling of a pgpool boolean word (true, yes, 1, ...), else the lower-cased value.
std::string normalized_value(std::string_view value);

}  // namespace splitpool::tools
