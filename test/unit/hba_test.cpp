// Unit tests for pool_hba.conf: parser errors with file:line, and a rules-and-cases matching table.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "daemon/auth/hba.hpp"

using namespace splitpool::auth;

namespace {

sockaddr_storage ip(const char* text) {
    sockaddr_storage ss{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else {
        REQUIRE(inet_pton(AF_INET6, text, &v6->sin6_addr) == 1);
        v6->sin6_family = AF_INET6;
    }
    return ss;
}

// Which rule (by line number) a connection matches; 0 = implicit reject.
int matched_line(const HbaFile& f, ConnType conn, bool ssl, const char* addr, const char* db, const char* user) {
    sockaddr_storage ss{};
    if (addr != nullptr) ss = ip(addr);
    const HbaRule* r = match(f, conn, ssl, addr ? reinterpret_cast<sockaddr*>(&ss) : nullptr, db, user);
    return r ? r->line : 0;
}

constexpr const char* kRules = R"(# comment line
local   all         postgres                             trust
local   "all"       all                                  md5
host    sameuser    all         192.168.1.0/24           scram-sha-256
host    db1,db2     alice,bob   10.0.0.0  255.0.0.0      password   # trailing comment
hostssl all         all         0.0.0.0/0                cert
hostnossl "my db"   "all"       172.16.0.0/12            md5
host    all         all         ::1/128                  trust
host    all         all         2001:db8::/32            scram-sha-256
host    all         evil        all                      reject
host    all         all         127.0.0.1/32             md5
)";

struct Case {
    ConnType conn;
    bool ssl;
    const char* addr;
    const char* db;
    const char* user;
    int line;
};

}  // namespace

TEST_CASE("pool_hba.conf rules match first-wins as pgpool does") {
    HbaParseResult r = parse_hba(kRules, "pool_hba.conf");
    std::string first_error = r.errors.empty() ? std::string() : r.errors[0];
    CAPTURE(first_error);
    REQUIRE(r.ok);
    REQUIRE(r.file.rules.size() == 10);
    CHECK(r.file.rules[3].method == HbaMethod::Password);
    CHECK(r.file.rules[3].databases.size() == 2);

    const Case cases[] = {
        {ConnType::Local, false, nullptr, "x", "postgres", 2},
        {ConnType::Local, false, nullptr, "x", "other", 0},      // quoted "all" is a database named all
        {ConnType::Local, false, nullptr, "all", "other", 3},
        {ConnType::Tcp, false, "192.168.1.7", "carol", "carol", 4},   // sameuser
        {ConnType::Tcp, false, "192.168.1.7", "db1", "carol", 0},  // no rule for that address and db
        {ConnType::Tcp, false, "10.9.8.7", "db2", "bob", 5},
        {ConnType::Tcp, false, "10.9.8.7", "db3", "bob", 0},
        {ConnType::Tcp, false, "11.0.0.1", "db1", "alice", 0},
        {ConnType::Tcp, true, "8.8.8.8", "x", "y", 6},            // hostssl
        {ConnType::Tcp, false, "172.20.0.1", "my db", "all", 7},  // hostnossl, quoted names
        {ConnType::Tcp, true, "172.20.0.1", "my db", "all", 6},   // SSL skips hostnossl
        {ConnType::Tcp, false, "172.20.0.1", "my db", "someone", 0},
        {ConnType::Tcp, false, "::1", "x", "y", 8},
        {ConnType::Tcp, false, "2001:db8:1::5", "x", "y", 9},
        {ConnType::Tcp, false, "2001:db9::5", "x", "evil", 10},
        {ConnType::Tcp, false, "127.0.0.1", "x", "y", 11},
        {ConnType::Tcp, false, "::ffff:127.0.0.1", "x", "y", 0},  // mapped v6 never matches a v4 rule
        {ConnType::Tcp, false, "127.0.0.2", "x", "y", 0},
    };
    for (const Case& c : cases) {
        CAPTURE(c.addr ? c.addr : "local");
        CAPTURE(c.db);
        CAPTURE(c.user);
        CHECK(matched_line(r.file, c.conn, c.ssl, c.addr, c.db, c.user) == c.line);
    }
}

TEST_CASE("pool_hba.conf syntax errors name file and line") {
    struct Bad {
        const char* text;
        const char* expected;
    };
    const Bad cases[] = {
        {"hosts all all 1.2.3.4/32 trust\n", "pool_hba.conf:1: invalid connection type \"hosts\""},
        {"\nlocal all\n", "pool_hba.conf:2: end-of-line before role specification"},
        {"local all all\n", "pool_hba.conf:1: end-of-line before authentication method"},
        {"host all all\n", "pool_hba.conf:1: end-of-line before IP address specification"},
        {"host all all 1.2.3.4/33 trust\n", "pool_hba.conf:1: invalid CIDR mask in address \"1.2.3.4/33\""},
        {"host all all 1.2.3.4 trust\n", "pool_hba.conf:1: invalid IP mask \"trust\""},
        {"host all all 1.2.3.4 255.0.0.0\n", "pool_hba.conf:1: end-of-line before authentication method"},
        {"host all all 1.2.3.4 ffff:: md5\n", "pool_hba.conf:1: IP address and mask do not match"},
        {"host all all myhost/24 md5\n", "specifying both host name and CIDR mask is invalid"},
        {"local all all gss\n", "pool_hba.conf:1: invalid authentication method \"gss\""},
        {"local all all pam\n", "authentication method \"pam\" is not supported by splitpool"},
        {"local all all md5 foo\n", "authentication option not in name=value format: foo"},
        {"local all all md5 clientcert=1\n", "unrecognized authentication option name: \"clientcert\""},
        {"local all +admins md5\n", "pool_hba.conf:1: group name \"+admins\" is not supported"},
        {"local samerole all md5\n", "database keyword \"samerole\" is not supported"},
        {"local all all md5,trust\n", "multiple values specified for authentication type"},
        {"local,host all all trust\n", "multiple values specified for connection type"},
        {"# nothing\n\n", "configuration file \"pool_hba.conf\" contains no entries"},
        {"local @missing_file all trust\n", "could not open secondary authentication file \"@missing_file\""},
    };
    for (const Bad& b : cases) {
        CAPTURE(b.text);
        HbaParseResult r = parse_hba(b.text, "pool_hba.conf");
        CHECK_FALSE(r.ok);
        CHECK(r.file.rules.empty());
        REQUIRE_FALSE(r.errors.empty());
        CHECK(r.errors[0].find(b.expected) != std::string::npos);
    }
}

TEST_CASE("pool_hba.conf: every bad line is reported, warnings do not stop loading") {
    HbaParseResult r = parse_hba("local all all bogus\nlocal all all trust\nhost x y z/1 md5\n", "f");
    CHECK_FALSE(r.ok);
    REQUIRE(r.errors.size() == 2);
    CHECK(r.errors[0].rfind("f:1:", 0) == 0);
    CHECK(r.errors[1].rfind("f:3:", 0) == 0);

    HbaParseOptions no_ssl;
    no_ssl.ssl_enabled = false;
    r = parse_hba("hostssl all all all md5\nhost all all all cert\n", "f", no_ssl);
    CHECK(r.ok);
    CHECK(r.warnings.size() == 2);
    CHECK(r.file.rules[0].address == HbaAddress::All);
}

TEST_CASE("pool_hba.conf tokens: quoting, commas, comments, hostnames") {
    HbaParseResult r = parse_hba("host \"a,b\",\"x\"\"y\" u1, u2 .example.com md5 # c\n"
                                 "host all all samehost trust\nhost all all samenet trust\n",
                                 "f");
    REQUIRE(r.ok);
    const HbaRule& rule = r.file.rules[0];
    REQUIRE(rule.databases.size() == 2);
    CHECK(rule.databases[0].text == "a,b");
    CHECK(rule.databases[0].quoted);
    CHECK(rule.databases[1].text == "x\"y");
    REQUIRE(rule.users.size() == 2);
    CHECK(rule.users[1].text == "u2");
    CHECK(rule.address == HbaAddress::Hostname);
    CHECK(rule.hostname == ".example.com");
    CHECK(r.file.rules[1].address == HbaAddress::SameHost);

    // samehost: loopback is one of this machine's addresses; a documentation address is not.
    HbaFile only_samehost;
    only_samehost.rules.push_back(r.file.rules[1]);
    CHECK(matched_line(only_samehost, ConnType::Tcp, false, "127.0.0.1", "d", "u") == 2);
    CHECK(matched_line(only_samehost, ConnType::Tcp, false, "192.0.2.1", "d", "u") == 0);
}

TEST_CASE("pool_hba.conf @file includes are expanded relative to the including file") {
    char dir_template[] = "/tmp/hba_test_XXXXXX";
    REQUIRE(mkdtemp(dir_template) != nullptr);
    std::string dir = dir_template;
    std::ofstream(dir + "/users.txt") << "alice\nbob, carol # comment\n";
    std::ofstream(dir + "/pool_hba.conf") << "host all @users.txt 0.0.0.0/0 md5\n";
    HbaParseResult r = load_hba(dir + "/pool_hba.conf");
    REQUIRE(r.ok);
    REQUIRE(r.file.rules[0].users.size() == 3);
    CHECK(matched_line(r.file, ConnType::Tcp, false, "1.2.3.4", "d", "carol") == 1);
    CHECK(matched_line(r.file, ConnType::Tcp, false, "1.2.3.4", "d", "dave") == 0);

    r = load_hba(dir + "/nonexistent.conf");
    CHECK_FALSE(r.ok);
    CHECK(r.errors[0].find("could not open configuration file") != std::string::npos);
    CHECK(std::system(("rm -rf " + dir).c_str()) == 0);
}

TEST_CASE("pool_hba.conf: replication connections match only the replication keyword, as in PostgreSQL") {
    HbaParseResult r = parse_hba("host replication repl 127.0.0.1/32 trust\n"
                                 "host \"replication\" all 127.0.0.1/32 md5\n"
                                 "host all all 127.0.0.1/32 scram-sha-256\n",
                                 "pool_hba.conf");
    REQUIRE(r.ok);
    sockaddr_storage ss = ip("127.0.0.1");
    auto line = [&](const char* db, const char* user, bool replication) {
        const HbaRule* rule = match(r.file, ConnType::Tcp, false, reinterpret_cast<sockaddr*>(&ss), db, user, replication);
        return rule ? rule->line : 0;
    };
    CHECK(line("postgres", "repl", true) == 1);
    CHECK(line("replication", "repl", true) == 1);
    CHECK(line("postgres", "other", true) == 0);         // "all" and a quoted "replication" do not cover it
    CHECK(line("replication", "repl", false) == 2);      // the keyword never matches an ordinary connection;
    CHECK(line("postgres", "repl", false) == 3);         // a quoted one is the database named replication
}
