// Unit tests for StartupMessage decoding, encoding and the pool key.
#include <doctest/doctest.h>

#include <string>

#include "daemon/proto/frame.hpp"
#include "daemon/proto/startup.hpp"
#include "daemon/proto/writer.hpp"

using namespace splitpool::proto;

namespace {
std::string startup_body(std::initializer_list<std::pair<const char*, const char*>> params, int32_t protocol = kProtocolVersion3) {
    std::string out;
    Writer w(out);
    w.begin_untyped().i32(protocol);
    for (auto [k, v] : params) w.cstr(k).cstr(v);
    w.byte(0).finish();
    return out.substr(4);
}
}  // namespace

TEST_CASE("decode a StartupMessage; database defaults to the user") {
    std::string body = startup_body({{"user", "alice"}, {"application_name", "psql"}});
    StartupMessage m;
    std::string err;
    REQUIRE(decode_startup(body.data(), body.size(), m, &err));
    CHECK(m.user() == "alice");
    CHECK(m.database() == "alice");
    CHECK(m.application_name() == "psql");
}

TEST_CASE("encode then decode gives the same parameters") {
    StartupMessage m;
    m.protocol = kProtocolVersion3;
    m.params = {{"user", "u"}, {"database", "d"}, {"client_encoding", "UTF8"}};
    std::string wire;
    put_startup(wire, m);
    uint32_t len = 0;
    REQUIRE(parse_startup_frame(wire.data(), wire.size(), len) == FrameStatus::Ok);
    StartupMessage back;
    REQUIRE(decode_startup(wire.data() + 4, len - 4, back, nullptr));
    CHECK(back.params == m.params);
}

TEST_CASE("the pool key ignores parameter order but not values") {
    StartupMessage a, b, c;
    a.params = {{"user", "u"}, {"database", "d"}};
    b.params = {{"database", "d"}, {"user", "u"}};
    c.params = {{"database", "d"}, {"user", "u"}, {"application_name", "x"}};
    CHECK(a.pool_key() == b.pool_key());
    CHECK(a.pool_key() != c.pool_key());
}

TEST_CASE("malformed startup messages are refused with a reason") {
    std::string err;
    StartupMessage m;
    std::string v2 = startup_body({{"user", "u"}}, 2 << 16);
    CHECK_FALSE(decode_startup(v2.data(), v2.size(), m, &err));
    CHECK(err.find("unsupported frontend protocol 2.0") != std::string::npos);
    std::string nouser = startup_body({{"database", "d"}});
    CHECK_FALSE(decode_startup(nouser.data(), nouser.size(), m, &err));
    CHECK(err.find("no PostgreSQL user name") != std::string::npos);
    std::string unterminated = startup_body({{"user", "u"}});
    unterminated.pop_back();
    unterminated.pop_back();  // cut into the value
    CHECK_FALSE(decode_startup(unterminated.data(), unterminated.size(), m, &err));
    CHECK(err.find("invalid startup packet layout") != std::string::npos);
}
