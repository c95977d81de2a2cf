// Unit tests for the message writer and the named reply builders.
#include <doctest/doctest.h>

#include <string>

#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

using namespace splitpool::proto;

TEST_CASE("the writer back-patches the length of each message") {
    std::string out;
    Writer(out).begin('K').i32(1234).i32(-1).finish();
    REQUIRE(out.size() == 13);
    CHECK(out[0] == 'K');
    CHECK(read_u32(out.data() + 1) == 12);
    CHECK(read_u32(out.data() + 5) == 1234);
    CHECK(read_u32(out.data() + 9) == 0xffffffffu);
}

TEST_CASE("an ErrorResponse carries severity, SQLSTATE, message, detail and hint fields") {
    std::string out;
    put_error(out, "FATAL", sqlstate::kTooManyConnections, "Sorry, too many clients already", "d", "h");
    Frame f;
    REQUIRE(parse_frame(out.data(), out.size(), f) == FrameStatus::Ok);
    CHECK(f.type == 'E');
    Reader r(f.body, f.body_size());
    std::string fields;
    for (uint8_t t = r.byte(); r.ok() && t != 0; t = r.byte()) fields += char(t) + std::string(r.cstr()) + "|";
    CHECK(fields == "SFATAL|VFATAL|C53300|MSorry, too many clients already|Dd|Hh|");
    CHECK(r.remaining() == 0);
}

TEST_CASE("a NoticeResponse uses type N") {
    std::string out;
    put_error(out, "NOTICE", "00000", "hello", {}, {}, 'N');
    CHECK(out[0] == 'N');
}

TEST_CASE("batched replies: AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery") {
    std::string out;
    put_auth_request(out, 0);
    put_parameter_status(out, "server_version", "15.18");
    put_backend_key_data(out, 42, 0xdeadbeef);
    put_ready_for_query(out, 'I');
    std::string types;
    size_t at = 0;
    Frame f;
    while (at < out.size() && parse_frame(out.data() + at, out.size() - at, f) == FrameStatus::Ok) {
        types += f.type;
        at += f.size();
    }
    CHECK(types == "RSKZ");
    CHECK(at == out.size());
}

TEST_CASE("CancelRequest is 16 bytes with the cancel code") {
    std::string out;
    put_cancel_request(out, 7, 9);
    REQUIRE(out.size() == 16);
    CHECK(read_u32(out.data()) == 16);
    CHECK(read_u32(out.data() + 4) == uint32_t(kCancelRequestCode));
    CHECK(read_u32(out.data() + 8) == 7);
    CHECK(read_u32(out.data() + 12) == 9);
}
