// Unit tests for the PCP wire format: packet framing, string bodies, errors, the salted md5 login.
#include <doctest/doctest.h>

#include <string>

#include "daemon/auth/md5.hpp"
#include "pcp/wire.hpp"

using namespace splitpool::pcp;

TEST_CASE("pcp packets: type, length counting itself, body") {
    std::string p = encode_packet('M', "");
    CHECK(p == std::string("M\0\0\0\4", 5));
    p = encode_strings('I', {"-1"});
    CHECK(p == std::string("I\0\0\0\7-1\0", 8));
    p = encode_strings('l', {kCommandComplete, "3"});
    CHECK(p.size() == 1 + 4 + 16 + 2);
    CHECK(p[4] == char(4 + 16 + 2));
}

TEST_CASE("pcp string bodies split at NULs") {
    auto f = split_strings(std::string("NodeInfo\0host\0\0005432\0", 20));
    REQUIRE(f.size() == 4);
    CHECK(f[0] == "NodeInfo");
    CHECK(f[1] == "host");
    CHECK(f[2].empty());
    CHECK(f[3] == "5432");
    CHECK(split_strings("").empty());
    CHECK(split_strings(std::string("a\0b", 3)) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("pcp error packets round-trip and format as pgpool's client prints them") {
    ErrorFields e{"ERROR", "informing node info failed", "invalid node ID : 7"};
    std::string p = encode_error(e);
    CHECK(p[0] == 'E');
    ErrorFields d = decode_error(p.substr(5));
    CHECK(d.severity == "ERROR");
    CHECK(d.message == e.message);
    CHECK(d.detail == e.detail);
    CHECK(format_error(d) == "ERROR:  informing node info failed\nDETAIL:  invalid node ID : 7\n");
    CHECK(format_error({"FATAL", "bar", ""}) == "FATAL:  bar\n");
}

TEST_CASE("pcp error packets keep pgpool's field order S, C, M, D") {
    // pgpool's client scan only works with this order (it reads a value's first byte as a tag).
    std::string body = encode_error({"FATAL", "authentication failed", "no"}).substr(5);
    CHECK(body == std::string("SFATAL\0CXX000\0Mauthentication failed\0Dno\0\0", 42));
}

TEST_CASE("salted md5 response matches what pgpool 4.3's pcp client sends") {
    // Captured from Debian's pcp_node_info: user "u", empty password, salt "abcd".
    const unsigned char salt[4] = {'a', 'b', 'c', 'd'};
    CHECK(salted_response(splitpool::auth::md5_hex(""), "u", salt) == "d0beb25aa43d22e14da8c7265789109c");
    // The server computes the same from pcp.conf's stored md5hex(password).
    std::string stored = splitpool::auth::md5_hex("secret");
    CHECK(stored == "5ebe2294ecd0e0f08eab7690d2a6ee69");
    CHECK(salted_response(stored, "pcpadmin", salt) != salted_response(stored, "other", salt));
}
