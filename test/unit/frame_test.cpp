// Unit tests for protocol framing (complete, partial, oversized and malformed frames) and its read buffer.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "daemon/io/buffer.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

using namespace splitpool::proto;

TEST_CASE("a complete frame is recognised with its type, length and body") {
    std::string q;
    put_query(q, "select 1");
    Frame f;
    REQUIRE(parse_frame(q.data(), q.size(), f) == FrameStatus::Ok);
    CHECK(f.type == 'Q');
    CHECK(f.length == 4 + 9);
    CHECK(f.size() == q.size());
    CHECK(std::string(f.body, f.body_size()) == std::string("select 1\0", 9));
}

TEST_CASE("every strict prefix of a frame needs more bytes") {
    std::string q;
    put_query(q, "select 42");
    for (size_t n = 0; n < q.size(); ++n) {
        Frame f;
        CHECK(parse_frame(q.data(), n, f) == FrameStatus::NeedMore);
    }
}

TEST_CASE("the header alone is enough to learn the size of a large message") {
    std::string big;
    put_query(big, std::string(100000, 'x'));
    Frame f;
    CHECK(parse_header(big.data(), 5, f) == FrameStatus::Ok);
    CHECK(f.size() == big.size());
    CHECK(parse_frame(big.data(), 5000, f) == FrameStatus::NeedMore);
}

TEST_CASE("lengths below 4 or above the limit are malformed") {
    const char too_short[] = {'Q', 0, 0, 0, 3};
    const char too_long[] = {'Q', 0x7f, 0, 0, 0};
    Frame f;
    CHECK(parse_header(too_short, 5, f) == FrameStatus::Malformed);
    CHECK(parse_header(too_long, 5, f) == FrameStatus::Malformed);
    const char small_limit[] = {'p', 0, 0, 4, 1};
    CHECK(parse_header(small_limit, 5, f, 1024) == FrameStatus::Malformed);
    CHECK(parse_header(small_limit, 5, f, 2048) == FrameStatus::Ok);
}

TEST_CASE("two frames back to back are read one after the other") {
    std::string two;
    put_query(two, "a");
    put_ready_for_query(two, 'T');
    Frame f;
    REQUIRE(parse_frame(two.data(), two.size(), f) == FrameStatus::Ok);
    size_t first = f.size();
    REQUIRE(parse_frame(two.data() + first, two.size() - first, f) == FrameStatus::Ok);
    CHECK(f.type == 'Z');
    CHECK(f.body[0] == 'T');
}

TEST_CASE("startup-phase packets: SSLRequest, bad lengths, partial") {
    std::string ssl;
    Writer(ssl).begin_untyped().i32(kSslRequestCode).finish();
    uint32_t len = 0;
    CHECK(parse_startup_frame(ssl.data(), ssl.size(), len) == FrameStatus::Ok);
    CHECK(len == 8);
    CHECK(read_u32(ssl.data() + 4) == uint32_t(kSslRequestCode));
    CHECK(parse_startup_frame(ssl.data(), 7, len) == FrameStatus::NeedMore);
    const char tiny[] = {0, 0, 0, 7, 0, 0, 0};
    CHECK(parse_startup_frame(tiny, sizeof tiny, len) == FrameStatus::Malformed);
    const char huge[] = {0, 0, 0x7f, 0};
    CHECK(parse_startup_frame(huge, sizeof huge, len) == FrameStatus::Malformed);
}

TEST_CASE("the reader never reads past the body and stays failed") {
    const char body[] = {0, 0, 0, 5, 'a', 'b'};  // i32 then an unterminated string
    Reader r(body, sizeof body);
    CHECK(r.i32() == 5);
    CHECK(r.cstr().empty());
    CHECK_FALSE(r.ok());
    CHECK(r.i16() == 0);
    CHECK(r.remaining() == 0);
    Reader r2(body, 2);
    CHECK(r2.i32() == 0);
    CHECK_FALSE(r2.ok());
}

TEST_CASE("io::Buffer: keeps the data across growth and grows by doubling") {
    splitpool::io::Buffer b;
    const char* last = nullptr;
    int moves = 0;
    for (int chunk = 0; chunk < 1000; ++chunk) {  // a 64 MB message read 64 kB at a time
        char* dst = b.prepare(65536);
        if (b.data() != last) ++moves, last = b.data();
        std::memset(dst, char('a' + chunk % 26), 65536);
        b.commit(65536);
    }
    CHECK(b.size() == size_t(1000) * 65536);
    CHECK(moves <= 12);  // log2(1000) + 2: not once per chunk
    for (int chunk = 0; chunk < 1000; chunk += 97) CHECK(b.data()[size_t(chunk) * 65536] == char('a' + chunk % 26));
    b.consume(b.size() - 3);
    CHECK(b.size() == 3);
    b.append("xyz", 3);
    CHECK(std::string(b.data(), b.size()) == std::string(3, char('a' + 999 % 26)) + "xyz");
}
