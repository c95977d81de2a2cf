// pcp.conf: the PCP users, one "user:md5hex(password)" line each, '#' comments.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace splitpool::pcp {

struct PcpUser {
    std::string name;
    std::string password_md5;   // 32 lower-case hex digits, as pg_md5 prints them
};

struct PcpConf {
    std::vector<PcpUser> users;
    std::vector<std::string> errors;   // "line N: problem" for lines that were skipped
};

// Parses the text of a pcp.conf. Never throws; malformed lines are skipped and reported.
PcpConf parse_pcp_conf(std::string_view text);

// Reads the file and returns the stored hash of `user` (the first matching line, as pgpool).
// nullopt when the user is absent or the file cannot be read (then `error` says why).
std::optional<std::string> lookup_pcp_user(const std::string& path, std::string_view user, std::string* error);

}  // namespace splitpool::pcp
