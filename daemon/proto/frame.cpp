// Incremental framing of PostgreSQL protocol messages and bounded readers over their bodies.
#include "daemon/proto/frame.hpp"

#include <cstring>

namespace splitpool::proto {

uint32_t read_u32(const char* p) {
    auto u = reinterpret_cast<const unsigned char*>(p);
    return (uint32_t(u[0]) << 24) | (uint32_t(u[1]) << 16) | (uint32_t(u[2]) << 8) | uint32_t(u[3]);
}

uint16_t read_u16(const char* p) {
    auto u = reinterpret_cast<const unsigned char*>(p);
    return uint16_t((u[0] << 8) | u[1]);
}

FrameStatus parse_header(const char* data, size_t available, Frame& out, uint32_t max_length) {
    if (available < 5) return FrameStatus::NeedMore;
    out.type = data[0];
    out.length = read_u32(data + 1);
    if (out.length < 4 || out.length > max_length) return FrameStatus::Malformed;
    out.body = data + 5;
    return FrameStatus::Ok;
}

FrameStatus parse_frame(const char* data, size_t available, Frame& out, uint32_t max_length) {
    FrameStatus status = parse_header(data, available, out, max_length);
    if (status != FrameStatus::Ok) return status;
    return available >= out.size() ? FrameStatus::Ok : FrameStatus::NeedMore;
}

FrameStatus parse_startup_frame(const char* data, size_t available, uint32_t& length) {
    if (available < 4) return FrameStatus::NeedMore;
    length = read_u32(data);
    // 8 bytes is the smallest packet (length + request code)
    if (length < 8 || length > kMaxStartupLength) return FrameStatus::Malformed;
    return available >= length ? FrameStatus::Ok : FrameStatus::NeedMore;
}

int32_t Reader::i32() {
    if (!ok_ || end_ - p_ < 4) return ok_ = false, 0;
    int32_t v = static_cast<int32_t>(read_u32(p_));
    p_ += 4;
    return v;
}

int16_t Reader::i16() {
    if (!ok_ || end_ - p_ < 2) return ok_ = false, 0;
    int16_t v = static_cast<int16_t>(read_u16(p_));
    p_ += 2;
    return v;
}

uint8_t Reader::byte() {
    if (!ok_ || end_ - p_ < 1) return ok_ = false, 0;
    return static_cast<uint8_t>(*p_++);
}

std::string_view Reader::cstr() {
    if (!ok_) return {};
    const void* nul = std::memchr(p_, '\0', size_t(end_ - p_));
    if (!nul) return ok_ = false, std::string_view{};
    std::string_view s(p_, size_t(static_cast<const char*>(nul) - p_));
    p_ += s.size() + 1;
    return s;
}

std::string_view Reader::bytes(size_t n) {
    if (!ok_ || size_t(end_ - p_) < n) return ok_ = false, std::string_view{};
    std::string_view s(p_, n);
    p_ += n;
    return s;
}

}  // namespace splitpool::proto
