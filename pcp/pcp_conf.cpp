// pcp.conf: the PCP users, one "user:md5hex(password)" line each, '#' comments.
#include "pcp/pcp_conf.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace splitpool::pcp {
namespace {

constexpr size_t kMaxUserPasswdLen = 128;  // pgpool's MAX_USER_PASSWD_LEN

bool is_blank(std::string_view line) {
    for (char c : line)
        if (c != ' ' && c != '\t') return false;
    return true;
}

std::string_view trim_line_end(std::string_view line) {
    // Files edited on Windows or with trailing blanks must not make every login fail.
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.remove_suffix(1);
    return line;
}

}  // namespace

PcpConf parse_pcp_conf(std::string_view text) {
    PcpConf out;
    int line_no = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = trim_line_end(text.substr(pos, nl - pos));
        pos = nl + 1;
        ++line_no;
        if (line.empty() || line[0] == '#' || is_blank(line)) continue;
        size_t colon = line.find(':');
        std::string where = "line " + std::to_string(line_no) + ": ";
        if (colon == std::string_view::npos) {
            out.errors.push_back(where + "missing ':' between user name and md5 password");
            continue;
        }
        std::string_view name = line.substr(0, colon), hash = line.substr(colon + 1);
        if (name.empty() || name.size() > kMaxUserPasswdLen) {
            out.errors.push_back(where + "user name is empty or longer than 128 bytes");
            continue;
        }
        if (hash.empty() || hash.size() > kMaxUserPasswdLen) {
            out.errors.push_back(where + "password is empty or longer than 128 bytes");
            continue;
        }
        out.users.push_back({std::string(name), std::string(hash)});
    }
    return out;
}

std::optional<std::string> lookup_pcp_user(const std::string& path, std::string_view user, std::string* error) {
    std::ifstream in(path);
    if (!in) {
        if (error) *error = "could not open " + path + ". reason: " + strerror(errno);
        return std::nullopt;
    }
    std::ostringstream text;
    text << in.rdbuf();
    PcpConf conf = parse_pcp_conf(text.str());
    for (const PcpUser& u : conf.users)
        if (u.name == user) return u.password_md5;
    if (error) error->clear();
    return std::nullopt;
}

}  // namespace splitpool::pcp
