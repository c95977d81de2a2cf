// Unit tests for pcp.conf parsing and .pcppass lookup (pgpool's rules).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "pcp/client.hpp"
#include "pcp/pcp_conf.hpp"

using namespace splitpool::pcp;

namespace {

std::string write_temp(const std::string& text, mode_t mode) {
    char path[] = "/tmp/pcp_conf_test_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == ssize_t(text.size()));
    close(fd);
    chmod(path, mode);
    return path;
}

}  // namespace

TEST_CASE("pcp.conf: user:md5 lines, comments and blank lines") {
    PcpConf c = parse_pcp_conf(
        "# USERID:MD5PASSWD\n"
        "\n"
        "postgres:e8a48653851e28c69d0506508fb27fc5\n"
        "   \n"
        "admin:5ebe2294ecd0e0f08eab7690d2a6ee69\r\n"
        "admin2:5ebe2294ecd0e0f08eab7690d2a6ee69");
    REQUIRE(c.users.size() == 3);
    CHECK(c.users[0].name == "postgres");
    CHECK(c.users[0].password_md5 == "e8a48653851e28c69d0506508fb27fc5");
    CHECK(c.users[1].password_md5 == "5ebe2294ecd0e0f08eab7690d2a6ee69");   // CR dropped
    CHECK(c.users[2].name == "admin2");                                     // no final newline
    CHECK(c.errors.empty());
}

TEST_CASE("pcp.conf: malformed lines are skipped and reported") {
    PcpConf c = parse_pcp_conf("nocolon\n:nohash_user\nuser:\nok:abc\n");
    REQUIRE(c.users.size() == 1);
    CHECK(c.users[0].name == "ok");
    REQUIRE(c.errors.size() == 3);
    CHECK(c.errors[0].rfind("line 1: ", 0) == 0);
    CHECK(c.errors[2].rfind("line 3: ", 0) == 0);
}

TEST_CASE("pcp.conf lookup from a file") {
    std::string path = write_temp("a:111\nb:222\n", 0600);
    std::string error;
    CHECK(lookup_pcp_user(path, "b", &error) == "222");
    CHECK_FALSE(lookup_pcp_user(path, "c", &error).has_value());
    CHECK(error.empty());
    unlink(path.c_str());
    CHECK_FALSE(lookup_pcp_user(path, "a", &error).has_value());
    CHECK(error.find("could not open") == 0);
}

TEST_CASE(".pcppass: fields, wildcards, escapes, permissions") {
    std::string path = write_temp(
        "db1:9898:alice:pw1\n"
        "localhost:9898:bob:pw\\:with\\\\colon\n"
        "*:*:carol:pw3\n"
        "h\\:x:1:dave:pw4\n", 0600);
    CHECK(pcppass_lookup(path, "db1", "9898", "alice") == "pw1");
    CHECK_FALSE(pcppass_lookup(path, "db1", "9899", "alice").has_value());
    CHECK(pcppass_lookup(path, "localhost", "9898", "bob") == "pw:with\\colon");
    CHECK(pcppass_lookup(path, "anything", "1", "carol") == "pw3");
    CHECK(pcppass_lookup(path, "h:x", "1", "dave") == "pw4");
    CHECK_FALSE(pcppass_lookup(path, "db1", "9898", "").has_value());
    chmod(path.c_str(), 0644);   // readable by others: ignored, as pgpool does
    CHECK_FALSE(pcppass_lookup(path, "db1", "9898", "alice").has_value());
    unlink(path.c_str());
}

TEST_CASE(".pcppass host for Unix sockets") {
    CHECK(pcppass_host("") == "localhost");
    CHECK(pcppass_host("/tmp") == "localhost");
    CHECK(pcppass_host("/var/run/pgpool") == "/var/run/pgpool");
    CHECK(pcppass_host("db1") == "db1");
}
