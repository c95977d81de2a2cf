// pool_hba.conf tokenizer and line parser (PostgreSQL's hba syntax as pgpool accepts it) and matcher.
#include "daemon/auth/hba.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

namespace splitpool::auth {

namespace {

constexpr size_t kMaxLine = 8192;   // pgpool's MAX_LINE
constexpr size_t kMaxToken = 256;   // pgpool's MAX_TOKEN, terminating NUL included
constexpr int kMaxIncludeDepth = 10;

using Field = std::vector<HbaToken>;

struct TokenizedLine {
    int line = 0;
    std::string raw;
    std::vector<Field> fields;
};

// Collects "file:line: message" texts; `failed` marks the current line as unusable.
struct Diagnostics {
    Diagnostics(std::vector<std::string>* e, std::vector<std::string>* w, std::string f)
        : errors(e), warnings(w), file(std::move(f)) {}

    std::vector<std::string>* errors;
    std::vector<std::string>* warnings;
    std::string file;
    int line = 0;
    bool failed = false;

    void error(const std::string& message) {
        errors->push_back(file + ":" + std::to_string(line) + ": " + message);
        failed = true;
    }
    void warning(const std::string& message) {
        warnings->push_back(file + ":" + std::to_string(line) + ": " + message);
    }
};

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool is_keyword(const HbaToken& t, std::string_view keyword) { return !t.quoted && t.text == keyword; }

std::string parent_dir(std::string_view path) {
    size_t slash = path.rfind('/');
    if (slash == std::string_view::npos) return ".";
    return slash == 0 ? "/" : std::string(path.substr(0, slash));
}

std::vector<TokenizedLine> tokenize(std::string_view text, const std::string& file_name, Diagnostics& diag,
                                    int depth);

// One token as PostgreSQL's next_token(): blanks and commas before it are skipped, double quotes
// group (a doubled quote inside quotes is a literal quote), '#' outside quotes ends the line.
// Returns false when the line holds no further token.
bool next_token(std::string_view& rest, std::string& out, bool& initial_quote, bool& trailing_comma,
                Diagnostics& diag) {
    out.clear();
    initial_quote = trailing_comma = false;
    size_t i = 0;
    while (i < rest.size() && (is_blank(rest[i]) || rest[i] == ',')) ++i;
    bool in_quote = false, was_quote = false, saw_quote = false;
    for (; i < rest.size() && (!is_blank(rest[i]) || in_quote); ++i) {
        char c = rest[i];
        if (c == '#' && !in_quote) {
            i = rest.size();
            break;
        }
        if (out.size() >= kMaxToken - 1) {
            diag.error("authentication file token too long, skipping: \"" + out + "\"");
            rest = {};
            return false;
        }
        if (c == ',' && !in_quote) {
            trailing_comma = true;
            ++i;
            break;
        }
        if (c != '"' || was_quote) out.push_back(c);
        was_quote = (in_quote && c == '"') ? !was_quote : false;
        if (c == '"') {
            in_quote = !in_quote;
            saw_quote = true;
            if (out.empty()) initial_quote = true;
        }
    }
    rest.remove_prefix(i);
    return saw_quote || !out.empty();
}

// Appends every token of an @file (all its lines and fields) to `field`.
void include_file(const std::string& name, const std::string& outer, Field& field, Diagnostics& diag, int depth) {
    std::string full = !name.empty() && name[0] == '/' ? name : parent_dir(outer) + "/" + name;
    if (depth >= kMaxIncludeDepth) {
        diag.error("secondary authentication file \"@" + name + "\" nested too deeply");
        return;
    }
    std::ifstream in(full, std::ios::binary);
    if (!in) {
        diag.error("could not open secondary authentication file \"@" + name + "\" as \"" + full +
                   "\": " + std::strerror(errno));
        return;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    Diagnostics inner{diag.errors, diag.warnings, full};
    for (auto& line : tokenize(ss.str(), full, inner, depth + 1)) {
        for (auto& f : line.fields) field.insert(field.end(), f.begin(), f.end());
    }
    if (inner.failed) diag.failed = true;
}

// A field: a comma-separated token list, with @file names expanded in place.
Field next_field(std::string_view& rest, const std::string& file_name, Diagnostics& diag, int depth) {
    Field field;
    std::string tok;
    bool quoted = false, comma = false;
    do {
        if (!next_token(rest, tok, quoted, comma, diag)) break;
        if (!quoted && tok.size() > 1 && tok[0] == '@')
            include_file(tok.substr(1), file_name, field, diag, depth);
        else
            field.push_back({tok, quoted});
    } while (comma && !diag.failed);
    return field;
}

std::vector<TokenizedLine> tokenize(std::string_view text, const std::string& file_name, Diagnostics& diag,
                                    int depth) {
    std::vector<TokenizedLine> lines;
    int line_no = 0;
    while (!text.empty()) {
        ++line_no;
        size_t eol = text.find('\n');
        std::string_view raw = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        while (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
        diag.line = line_no;
        bool was_failed = diag.failed;
        diag.failed = false;
        TokenizedLine tl;
        tl.line = line_no;
        tl.raw = std::string(raw);
        if (raw.size() >= kMaxLine - 1) {
            diag.error("authentication file line too long");
        } else {
            std::string_view rest = raw;
            while (!rest.empty() && !diag.failed) {
                Field f = next_field(rest, file_name, diag, depth);
                if (!f.empty()) tl.fields.push_back(std::move(f));
            }
        }
        bool line_failed = diag.failed;
        diag.failed = was_failed || line_failed;
        if (!tl.fields.empty() && !line_failed) lines.push_back(std::move(tl));
    }
    return lines;
}

// getaddrinfo(AI_NUMERICHOST) as pgpool uses it; EAI_NONAME means "not a numeric address".
int numeric_address(const std::string& text, sockaddr_storage& out) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_family = AF_UNSPEC;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(text.c_str(), nullptr, &hints, &res);
    if (rc == 0 && res != nullptr) std::memcpy(&out, res->ai_addr, res->ai_addrlen);
    if (res != nullptr) freeaddrinfo(res);
    return rc;
}

// A mask of `bits` leading one bits for the family; false for a malformed or out-of-range length.
bool cidr_mask(std::string_view bits_text, int family, sockaddr_storage& mask) {
    int max_bits = family == AF_INET ? 32 : family == AF_INET6 ? 128 : -1;
    if (bits_text.empty() || bits_text.size() > 3 || max_bits < 0) return false;
    int bits = 0;
    for (char c : bits_text) {
        if (c < '0' || c > '9') return false;
        bits = bits * 10 + (c - '0');
    }
    if (bits > max_bits) return false;
    mask = {};
    mask.ss_family = static_cast<sa_family_t>(family);
    unsigned char* bytes = family == AF_INET
                               ? reinterpret_cast<unsigned char*>(&reinterpret_cast<sockaddr_in*>(&mask)->sin_addr)
                               : reinterpret_cast<unsigned char*>(&reinterpret_cast<sockaddr_in6*>(&mask)->sin6_addr);
    for (int i = 0; i < bits; ++i) bytes[i / 8] |= static_cast<unsigned char>(0x80u >> (i % 8));
    return true;
}

bool parse_address(const std::vector<Field>& fields, size_t& idx, HbaRule& rule, Diagnostics& diag) {
    if (idx >= fields.size()) {
        diag.error("end-of-line before IP address specification");
        return false;
    }
    if (fields[idx].size() > 1) {
        diag.error("multiple values specified for host address");
        return false;
    }
    const HbaToken& tok = fields[idx][0];
    if (is_keyword(tok, "all")) rule.address = HbaAddress::All;
    else if (is_keyword(tok, "samehost")) rule.address = HbaAddress::SameHost;
    else if (is_keyword(tok, "samenet")) rule.address = HbaAddress::SameNet;
    if (rule.address != HbaAddress::Mask) return true;
    size_t slash = tok.text.find('/');
    std::string host = tok.text.substr(0, slash);
    if (host.empty()) {  // "" (or "/24"): neither an address nor a host name
        diag.error("invalid IP address \"" + tok.text + "\": empty host address");
        return false;
    }
    int rc = numeric_address(host, rule.addr);
    if (rc == EAI_NONAME) {
        if (slash != std::string::npos) {
            diag.error("specifying both host name and CIDR mask is invalid: \"" + tok.text + "\"");
            return false;
        }
        rule.address = HbaAddress::Hostname;
        rule.hostname = host;
        return true;
    }
    if (rc != 0) {
        diag.error("invalid IP address \"" + host + "\": " + gai_strerror(rc));
        return false;
    }
    if (slash != std::string::npos) {
        if (!cidr_mask(std::string_view(tok.text).substr(slash + 1), rule.addr.ss_family, rule.mask)) {
            diag.error("invalid CIDR mask in address \"" + tok.text + "\"");
            return false;
        }
        return true;
    }
    if (++idx >= fields.size()) {
        diag.error("end-of-line before netmask specification (specify an address range in CIDR notation, "
                   "or provide a separate netmask)");
        return false;
    }
    if (fields[idx].size() > 1) {
        diag.error("multiple values specified for netmask");
        return false;
    }
    rc = numeric_address(fields[idx][0].text, rule.mask);
    if (rc != 0) {
        diag.error("invalid IP mask \"" + fields[idx][0].text + "\": " + gai_strerror(rc));
        return false;
    }
    if (rule.mask.ss_family != rule.addr.ss_family) {
        diag.error("IP address and mask do not match");
        return false;
    }
    return true;
}

bool parse_method(const Field& field, HbaRule& rule, Diagnostics& diag) {
    if (field.size() > 1) {
        diag.error("multiple values specified for authentication type");
        return false;
    }
    const std::string& m = field[0].text;
    static const std::pair<std::string_view, HbaMethod> kMethods[] = {
        {"trust", HbaMethod::Trust}, {"reject", HbaMethod::Reject},           {"password", HbaMethod::Password},
        {"md5", HbaMethod::Md5},     {"scram-sha-256", HbaMethod::ScramSha256}, {"cert", HbaMethod::Cert},
    };
    for (auto& [name, method] : kMethods) {
        if (m == name) {
            rule.method = method;
            return true;
        }
    }
    if (m == "pam" || m == "ldap")
        diag.error("authentication method \"" + m + "\" is not supported by splitpool");
    else
        diag.error("invalid authentication method \"" + m + "\"");
    return false;
}

bool parse_names(const Field& field, bool is_user, Diagnostics& diag) {
    for (const HbaToken& t : field) {
        if (is_user && !t.quoted && !t.text.empty() && t.text[0] == '+') {
            diag.error("group name \"" + t.text + "\" is not supported: pgpool-II and splitpool do not know "
                       "the backend's roles; list the users instead");
            return false;
        }
        if (!is_user && (is_keyword(t, "samegroup") || is_keyword(t, "samerole"))) {
            diag.error("database keyword \"" + t.text + "\" is not supported: pgpool-II and splitpool do not "
                       "know the backend's roles");
            return false;
        }
    }
    return true;
}

std::optional<HbaConnType> parse_conn_type(const std::string& s) {
    if (s == "local") return HbaConnType::Local;
    if (s == "host") return HbaConnType::Host;
    if (s == "hostssl") return HbaConnType::HostSsl;
    if (s == "hostnossl") return HbaConnType::HostNoSsl;
    return std::nullopt;
}

bool parse_line(const TokenizedLine& tl, const HbaParseOptions& options, HbaRule& rule, Diagnostics& diag) {
    const auto& fields = tl.fields;
    rule.line = tl.line;
    rule.raw_line = tl.raw;
    if (fields[0].size() > 1) {
        diag.error("multiple values specified for connection type");
        return false;
    }
    auto conn = parse_conn_type(fields[0][0].text);
    if (!conn) {
        diag.error("invalid connection type \"" + fields[0][0].text + "\"");
        return false;
    }
    rule.conn_type = *conn;
    if (rule.conn_type == HbaConnType::HostSsl && !options.ssl_enabled)
        diag.warning("hostssl record cannot match because SSL is disabled (set ssl = on)");
    if (fields.size() < 2) {
        diag.error("end-of-line before database specification");
        return false;
    }
    if (fields.size() < 3) {
        diag.error("end-of-line before role specification");
        return false;
    }
    if (!parse_names(fields[1], false, diag) || !parse_names(fields[2], true, diag)) return false;
    rule.databases = fields[1];
    rule.users = fields[2];
    size_t idx = 3;
    rule.address = HbaAddress::Mask;
    if (rule.conn_type != HbaConnType::Local) {
        if (!parse_address(fields, idx, rule, diag)) return false;
        ++idx;
    }
    if (idx >= fields.size()) {
        diag.error("end-of-line before authentication method");
        return false;
    }
    if (!parse_method(fields[idx], rule, diag)) return false;
    if (rule.method == HbaMethod::Cert && rule.conn_type != HbaConnType::HostSsl)
        diag.warning("cert authentication only succeeds over SSL connections; use hostssl");
    for (++idx; idx < fields.size(); ++idx) {
        for (const HbaToken& t : fields[idx]) {
            size_t eq = t.text.find('=');
            if (eq == std::string::npos)
                diag.error("authentication option not in name=value format: " + t.text);
            else
                diag.error("unrecognized authentication option name: \"" + t.text.substr(0, eq) + "\"");
            return false;
        }
    }
    return true;
}

// ---- matching

const unsigned char* addr_bytes(const sockaddr* sa, size_t& len) {
    if (sa->sa_family == AF_INET) {
        len = 4;
        return reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
    }
    len = 16;
    return reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
}

// Same family and equal under the mask. An IPv4-mapped IPv6 client does not match an IPv4 rule,
// as documented for pgpool and PostgreSQL.
bool ip_in_range(const sockaddr* client, const sockaddr* net, const sockaddr* mask) {
    if (client->sa_family != net->sa_family || mask->sa_family != net->sa_family) return false;
    if (client->sa_family != AF_INET && client->sa_family != AF_INET6) return false;
    size_t len = 0;
    const unsigned char* c = addr_bytes(client, len);
    const unsigned char* n = addr_bytes(net, len);
    const unsigned char* m = addr_bytes(mask, len);
    for (size_t i = 0; i < len; ++i) {
        if ((c[i] & m[i]) != (n[i] & m[i])) return false;
    }
    return true;
}

struct IfaddrsFree {
    void operator()(ifaddrs* p) const { freeifaddrs(p); }
};

// Per-match() cache of expensive facts about the client, computed only if a rule needs them.
struct ClientFacts {
    const sockaddr* client = nullptr;
    std::unique_ptr<ifaddrs, IfaddrsFree> interfaces;
    bool interfaces_loaded = false;
    std::optional<std::string> hostname;  // verified by a forward lookup; empty = lookup failed
    bool hostname_loaded = false;

    bool same_host_or_net(bool same_net) {
        if (!interfaces_loaded) {
            ifaddrs* list = nullptr;
            if (getifaddrs(&list) == 0) interfaces.reset(list);
            interfaces_loaded = true;
        }
        for (ifaddrs* ifa = interfaces.get(); ifa != nullptr; ifa = ifa->ifa_next) {
            if (ifa->ifa_addr == nullptr || ifa->ifa_addr->sa_family != client->sa_family) continue;
            sockaddr_storage full{};
            const sockaddr* mask = ifa->ifa_netmask;
            if (!same_net || mask == nullptr) {
                cidr_mask(client->sa_family == AF_INET ? "32" : "128", client->sa_family, full);
                mask = reinterpret_cast<const sockaddr*>(&full);
            }
            if (ip_in_range(client, ifa->ifa_addr, mask)) return true;
        }
        return false;
    }

    const std::optional<std::string>& verified_hostname();
};

bool same_ip(const sockaddr* a, const sockaddr* b) {
    size_t la = 0, lb = 0;
    if (a->sa_family != b->sa_family) return false;
    const unsigned char* x = addr_bytes(a, la);
    const unsigned char* y = addr_bytes(b, lb);
    return std::memcmp(x, y, la) == 0;
}

// Reverse lookup of the client, then a forward lookup of that name that must give the client's
// address back; otherwise anyone controlling their reverse DNS could claim any name.
const std::optional<std::string>& ClientFacts::verified_hostname() {
    if (hostname_loaded) return hostname;
    hostname_loaded = true;
    char name[NI_MAXHOST];
    socklen_t len = client->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (getnameinfo(client, len, name, sizeof name, nullptr, 0, NI_NAMEREQD) != 0) return hostname;
    addrinfo* res = nullptr;
    if (getaddrinfo(name, nullptr, nullptr, &res) != 0) return hostname;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        if (same_ip(ai->ai_addr, client)) {
            hostname = name;
            break;
        }
    }
    freeaddrinfo(res);
    return hostname;
}

bool hostname_matches(std::string_view pattern, const std::string& actual) {
    if (!pattern.empty() && pattern[0] == '.') {
        if (actual.size() < pattern.size()) return false;
        return strcasecmp(std::string(pattern).c_str(), actual.c_str() + (actual.size() - pattern.size())) == 0;
    }
    return strcasecmp(std::string(pattern).c_str(), actual.c_str()) == 0;
}

bool address_matches(const HbaRule& rule, ClientFacts& facts) {
    if (facts.client == nullptr) return rule.address == HbaAddress::All;
    switch (rule.address) {
    case HbaAddress::All: return true;
    case HbaAddress::Mask:
        return ip_in_range(facts.client, reinterpret_cast<const sockaddr*>(&rule.addr),
                           reinterpret_cast<const sockaddr*>(&rule.mask));
    case HbaAddress::SameHost: return facts.same_host_or_net(false);
    case HbaAddress::SameNet: return facts.same_host_or_net(true);
    case HbaAddress::Hostname: {
        const auto& name = facts.verified_hostname();
        return name && hostname_matches(rule.hostname, *name);
    }
    }
    return false;
}

bool database_matches(const std::vector<HbaToken>& tokens, std::string_view db, std::string_view user,
                      bool replication) {
    for (const HbaToken& t : tokens) {
        if (replication) {
            if (is_keyword(t, "replication")) return true;
            continue;
        }
        if (is_keyword(t, "replication")) continue;  // only replication connections
        if (is_keyword(t, "all")) return true;
        if (is_keyword(t, "sameuser")) {
            if (db == user) return true;
        } else if (t.text == db) {
            return true;
        }
    }
    return false;
}

bool user_matches(const std::vector<HbaToken>& tokens, std::string_view user) {
    for (const HbaToken& t : tokens) {
        if (is_keyword(t, "all") || t.text == user) return true;
    }
    return false;
}

bool conn_matches(const HbaRule& rule, ConnType conn, bool ssl) {
    if (rule.conn_type == HbaConnType::Local) return conn == ConnType::Local;
    if (conn != ConnType::Tcp) return false;
    if (rule.conn_type == HbaConnType::HostSsl) return ssl;
    if (rule.conn_type == HbaConnType::HostNoSsl) return !ssl;
    return true;
}

}  // namespace

HbaParseResult parse_hba(std::string_view text, std::string_view file_name, const HbaParseOptions& options) {
    HbaParseResult result;
    result.file.path = std::string(file_name);
    Diagnostics diag{&result.errors, &result.warnings, std::string(file_name)};
    std::vector<TokenizedLine> lines = tokenize(text, diag.file, diag, 0);
    for (const TokenizedLine& tl : lines) {
        diag.line = tl.line;
        HbaRule rule;
        rule.file = diag.file;
        if (parse_line(tl, options, rule, diag)) result.file.rules.push_back(std::move(rule));
    }
    if (result.errors.empty() && result.file.rules.empty())
        result.errors.push_back("configuration file \"" + diag.file + "\" contains no entries");
    result.ok = result.errors.empty();
    if (!result.ok) result.file.rules.clear();
    return result;
}

HbaParseResult load_hba(const std::string& path, const HbaParseOptions& options) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        HbaParseResult result;
        result.errors.push_back("could not open configuration file \"" + path + "\": " + std::strerror(errno));
        return result;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_hba(ss.str(), path, options);
}

const HbaRule* match(const HbaFile& file, ConnType conn, bool ssl, const sockaddr* client, std::string_view database,
                     std::string_view user, bool replication) {
    ClientFacts facts;
    facts.client = conn == ConnType::Tcp ? client : nullptr;
    for (const HbaRule& rule : file.rules) {
        if (!conn_matches(rule, conn, ssl)) continue;
        // Names first: they are cheap, and a hostname rule costs two DNS lookups.
        if (!database_matches(rule.databases, database, user, replication) || !user_matches(rule.users, user))
            continue;
        if (rule.conn_type != HbaConnType::Local && !address_matches(rule, facts)) continue;
        return &rule;
    }
    return nullptr;
}

std::string_view hba_method_name(HbaMethod method) {
    switch (method) {
    case HbaMethod::Trust: return "trust";
    case HbaMethod::Reject: return "reject";
    case HbaMethod::Password: return "password";
    case HbaMethod::Md5: return "md5";
    case HbaMethod::ScramSha256: return "scram-sha-256";
    case HbaMethod::Cert: return "cert";
    }
    return "unknown";
}

}  // namespace splitpool::auth
