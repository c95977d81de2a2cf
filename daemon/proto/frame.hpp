// Incremental framing of PostgreSQL protocol messages and bounded readers over their bodies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace splitpool::proto {

constexpr uint32_t kMaxMessageLength = 0x3fffffff;  // PostgreSQL's PQ_LARGE_MESSAGE_LIMIT (1 GB)
constexpr uint32_t kMaxStartupLength = 10000;       // PostgreSQL's MAX_STARTUP_PACKET_LENGTH
constexpr int32_t kProtocolVersion3 = 3 << 16;
constexpr int32_t kCancelRequestCode = 80877102;
constexpr int32_t kSslRequestCode = 80877103;
constexpr int32_t kGssEncRequestCode = 80877104;

enum class FrameStatus { NeedMore, Ok, Malformed };

// A typed message: type byte, then a 4-byte length that counts itself but not the type byte.
struct Frame {
    char type = 0;
    uint32_t length = 0;        // as on the wire
    const char* body = nullptr; // length - 4 bytes; only valid when the whole frame is buffered
    size_t size() const { return size_t(length) + 1; }
    size_t body_size() const { return size_t(length) - 4; }
};

// Reads the 5-byte header. NeedMore leaves nothing consumed; Malformed for a length < 4 or > max.
FrameStatus parse_header(const char* data, size_t available, Frame& out, uint32_t max_length = kMaxMessageLength);
// A whole frame: Ok only when all of its bytes are buffered.
FrameStatus parse_frame(const char* data, size_t available, Frame& out, uint32_t max_length = kMaxMessageLength);
// The untyped packets of the startup phase (StartupMessage, SSLRequest, CancelRequest): 4-byte length first.
FrameStatus parse_startup_frame(const char* data, size_t available, uint32_t& length);

uint32_t read_u32(const char* p);
uint16_t read_u16(const char* p);

// Reads fields from a message body; never reads past the end. After any failed read `ok()` is false
// and every further read returns zero or empty.
class Reader {
public:
    Reader(const char* data, size_t size) : p_(data), end_(data + size) {}
    int32_t i32();
    int16_t i16();
    uint8_t byte();
    std::string_view cstr();           // NUL-terminated string, without the NUL
    std::string_view bytes(size_t n);
    size_t remaining() const { return ok_ ? size_t(end_ - p_) : 0; }
    bool ok() const { return ok_; }

private:
    const char* p_;
    const char* end_;
    bool ok_ = true;
};

}  // namespace splitpool::proto
