// pool_hba.conf: pgpool's host-based authentication rules, their parser and the first-match lookup.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

namespace splitpool::auth {

enum class HbaConnType { Local, Host, HostSsl, HostNoSsl };
enum class HbaMethod { Trust, Reject, Password, Md5, ScramSha256, Cert };
enum class HbaAddress { All, SameHost, SameNet, Mask, Hostname };

// How the client reached us: a Unix-domain socket or TCP.
enum class ConnType { Local, Tcp };

// A database or user name from the file; quoting takes away a keyword's meaning ("all" vs all).
struct HbaToken {
    std::string text;
    bool quoted = false;
};

struct HbaRule {
    std::string file;  // the file the line came from (pool_hba.conf itself; @files only supply names)
    int line = 0;
    std::string raw_line;
    HbaConnType conn_type = HbaConnType::Host;
    std::vector<HbaToken> databases;
    std::vector<HbaToken> users;
    HbaAddress address = HbaAddress::All;  // meaningless for Local rules
    sockaddr_storage addr{};               // HbaAddress::Mask: network address and mask, same family
    sockaddr_storage mask{};
    std::string hostname;  // HbaAddress::Hostname: a name, or ".suffix"
    HbaMethod method = HbaMethod::Reject;
};

struct HbaFile {
    std::string path;
    std::vector<HbaRule> rules;
};

struct HbaParseOptions {
    // pgpool warns that a hostssl line cannot match while ssl is off; the line is still loaded.
    bool ssl_enabled = true;
};

struct HbaParseResult {
    bool ok = false;
    HbaFile file;                       // complete only when ok: a reload keeps the old rules otherwise
    std::vector<std::string> errors;    // "file:line: message", every bad line reported
    std::vector<std::string> warnings;  // same format; the file still loads
};

// Parses pool_hba.conf text. `file_name` names the file in messages and anchors relative @file
// includes (read from disk, as pgpool and PostgreSQL do). Beyond pgpool, lines that would silently
// never match are errors here: "+group" user names and the samegroup/samerole keywords (pgpool
// cannot know roles), and the pam/ldap methods, which splitpool does not implement.
HbaParseResult parse_hba(std::string_view text, std::string_view file_name, const HbaParseOptions& options = {});
HbaParseResult load_hba(const std::string& path, const HbaParseOptions& options = {});

// The first rule matching the connection, or nullptr (pgpool's implicit reject). `client` is the peer
// address for Tcp (AF_INET or AF_INET6; may be null for Local). A hostname rule costs a reverse and a
// forward DNS lookup, done at most once per call. A replication connection (a "replication" startup
// parameter) matches only lines naming the `replication` keyword as database, which no other
// connection matches (as in PostgreSQL; "all" does not cover replication).
const HbaRule* match(const HbaFile& file, ConnType conn, bool ssl, const sockaddr* client, std::string_view database,
                     std::string_view user, bool replication = false);

std::string_view hba_method_name(HbaMethod method);  // "trust", "md5", "scram-sha-256", ...

}  // namespace splitpool::auth
