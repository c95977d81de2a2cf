// libFuzzer target: pool_hba.conf parsing (tokenizer, @file includes, addresses, methods) and the
// first-match lookup over the rules it produced.
//
// The text is parsed as <scratch>/pool_hba.conf, where a few include files exist ("@users",
// "@dbs", "@empty", "@loop" that includes itself, "@bad" with a broken token). Inputs naming an
// include with a '/' are skipped, so nothing outside the scratch folder is ever opened.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "daemon/auth/hba.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;
using namespace splitpool::auth;

namespace {

fuzz::ScratchDir* g_dir = nullptr;
std::string g_file;

// '@' ... '/' on one line could reach any file on the machine (or /dev/zero).
bool names_outside_include(std::string_view text) {
    for (size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
        size_t eol = text.find('\n', at);
        std::string_view rest = text.substr(at, eol == std::string_view::npos ? std::string_view::npos : eol - at);
        if (rest.find('/') != std::string_view::npos) return true;
    }
    return false;
}

sockaddr_storage ip(const char* text) {
    sockaddr_storage ss{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else {
        inet_pton(AF_INET6, text, &v6->sin6_addr);
        v6->sin6_family = AF_INET6;
    }
    return ss;
}

void check_match(const HbaFile& file, const HbaRule* rule, ConnType conn, bool ssl) {
    if (rule == nullptr) return;
    FUZZ_CHECK(rule >= file.rules.data() && rule < file.rules.data() + file.rules.size(), "match() outside the rules");
    if (conn == ConnType::Local) FUZZ_CHECK(rule->conn_type == HbaConnType::Local);
    if (conn == ConnType::Tcp) FUZZ_CHECK(rule->conn_type != HbaConnType::Local);
    if (rule->conn_type == HbaConnType::HostSsl) FUZZ_CHECK(ssl);
    if (rule->conn_type == HbaConnType::HostNoSsl) FUZZ_CHECK(!ssl);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    static fuzz::ScratchDir dir("hba");
    g_dir = &dir;
    dir.write("users", "alice, bob\n\"quoted user\" # comment\ncarol\n");
    dir.write("dbs", "postgres,template1\n@users\n");
    dir.write("empty", "");
    dir.write("loop", "@loop\n");
    dir.write("bad", std::string(300, 'x') + "\n");
    g_file = dir.file("pool_hba.conf");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > fuzz::kMaxInput) return -1;
    std::string_view text = fuzz::as_text(data, size);
    if (names_outside_include(text)) return -1;

    HbaParseOptions with_ssl, without_ssl;
    without_ssl.ssl_enabled = false;
    HbaParseResult a = parse_hba(text, g_file, with_ssl);
    HbaParseResult b = parse_hba(text, g_file, without_ssl);
    // ssl only adds the "hostssl cannot match" warning.
    FUZZ_CHECK(a.ok == b.ok && a.errors == b.errors, "the ssl option changed the errors");
    FUZZ_CHECK(a.warnings.size() <= b.warnings.size());
    FUZZ_CHECK(a.ok == a.errors.empty());
    if (!a.ok) {
        FUZZ_CHECK(a.file.rules.empty(), "a failed parse kept rules");
        return 0;
    }
    FUZZ_CHECK(!a.file.rules.empty());
    FUZZ_CHECK(a.file.rules.size() == b.file.rules.size());

    const HbaFile& file = a.file;
    bool has_hostname = false;
    for (const HbaRule& rule : file.rules) {
        FUZZ_CHECK(rule.line > 0 && !rule.databases.empty() && !rule.users.empty());
        FUZZ_CHECK(!hba_method_name(rule.method).empty());
        if (rule.conn_type != HbaConnType::Local && rule.address == HbaAddress::Mask)
            FUZZ_CHECK(rule.addr.ss_family == rule.mask.ss_family &&
                           (rule.addr.ss_family == AF_INET || rule.addr.ss_family == AF_INET6),
                       rule.raw_line);
        if (rule.conn_type != HbaConnType::Local && rule.address == HbaAddress::Hostname) {
            FUZZ_CHECK(!rule.hostname.empty());
            has_hostname = true;
        }
    }

    // Look up with the names the rules mention, as a client would connect with them.
    static const sockaddr_storage v4 = ip("127.0.0.1"), v6 = ip("::1"), far4 = ip("192.0.2.7");
    size_t lookups = 0;
    for (const HbaRule& rule : file.rules) {
        if (++lookups > 8) break;
        const std::string& db = rule.databases.front().text;
        const std::string& user = rule.users.front().text;
        for (bool ssl : {false, true}) {
            check_match(file, match(file, ConnType::Local, ssl, nullptr, db, user), ConnType::Local, ssl);
            // A hostname rule costs DNS lookups: not from a fuzzer.
            if (has_hostname) continue;
            for (const sockaddr_storage* client : {&v4, &v6, &far4}) {
                const HbaRule* m = match(file, ConnType::Tcp, ssl, reinterpret_cast<const sockaddr*>(client), db, user);
                check_match(file, m, ConnType::Tcp, ssl);
            }
        }
    }
    return 0;
}
