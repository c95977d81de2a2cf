// libFuzzer target: the startup phase as Session::read_startup() sees it — the untyped packet
// framer (length first), SSLRequest / GSSENCRequest / CancelRequest codes, and decode_startup() —
// plus the round trip through put_startup(), which must give back the same parameters.
#include <cstring>
#include <string>

#include "daemon/proto/frame.hpp"
#include "daemon/proto/startup.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;

namespace {

// Everything a session reads of a decoded startup message, then the encoding sent to backends.
// `params` / `size`: the bytes after the protocol word, up to the end of the packet.
void check_decoded(const proto::StartupMessage& m, const char* params, size_t size) {
    FUZZ_CHECK((m.protocol >> 16) == 3);
    FUZZ_CHECK(!m.user().empty());
    FUZZ_CHECK(!m.database().empty());  // defaults to the user
    (void)m.application_name();
    std::string key = m.pool_key();
    size_t expected_key = 0;
    for (const auto& [k, v] : m.params) {
        FUZZ_CHECK(!k.empty());
        FUZZ_CHECK(k.find('\0') == std::string::npos && v.find('\0') == std::string::npos);
        expected_key += k.size() + v.size() + 2;
    }
    FUZZ_CHECK(key.size() == expected_key);

    // put_startup() writes protocol 3.0 and the parameters in order: after the protocol word the
    // bytes must be exactly the body that was decoded (its list ends with the one terminator).
    std::string out;
    proto::put_startup(out, m);
    FUZZ_CHECK(out.size() == size + 8, "re-encoded startup packet has another length");
    FUZZ_CHECK(proto::read_u32(out.data()) == out.size());
    FUZZ_CHECK(int32_t(proto::read_u32(out.data() + 4)) == proto::kProtocolVersion3);
    FUZZ_CHECK(std::memcmp(out.data() + 8, params, size) == 0, "re-encoded parameters differ");

    proto::StartupMessage again;
    std::string error;
    FUZZ_CHECK(proto::decode_startup(out.data() + 4, out.size() - 4, again, &error), error);
    FUZZ_CHECK(again.params == m.params);
}

void decode_body(const char* body, size_t size) {
    proto::StartupMessage m;
    std::string error;
    if (proto::decode_startup(body, size, m, &error)) {
        FUZZ_CHECK(error.empty());
        check_decoded(m, body + 4, size - 4);
    } else {
        FUZZ_CHECK(!error.empty(), "decode_startup failed without saying why");
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > fuzz::kMaxInput) return -1;
    // An exact-size copy, so reading one byte past the packet is an ASan report.
    std::unique_ptr<char[]> copy(new char[size ? size : 1]);
    if (size) std::memcpy(copy.get(), data, size);
    const char* p = copy.get();

    // The body alone, as decode_startup() takes it.
    decode_body(p, size);

    // The byte stream a client sends: packets one after the other, as read_startup() loops.
    size_t at = 0;
    for (int packets = 0; packets < 16 && at < size; ++packets) {
        uint32_t length = 0;
        proto::FrameStatus st = proto::parse_startup_frame(p + at, size - at, length);
        if (st != proto::FrameStatus::Ok) {
            if (st == proto::FrameStatus::NeedMore) FUZZ_CHECK(size - at < 4 || size - at < proto::read_u32(p + at));
            break;
        }
        FUZZ_CHECK(length >= 8 && length <= proto::kMaxStartupLength && length <= size - at);
        int32_t code = int32_t(proto::read_u32(p + at + 4));
        if (code == proto::kSslRequestCode || code == proto::kGssEncRequestCode) {
            at += length;
            continue;
        }
        if (code == proto::kCancelRequestCode) {
            if (length == 16) {
                volatile uint32_t pid = proto::read_u32(p + at + 8), secret = proto::read_u32(p + at + 12);
                (void)pid;
                (void)secret;
                break;
            }
        }
        // decode_startup() on the packet exactly: a separate exact-size buffer again.
        std::unique_ptr<char[]> packet(new char[length]);
        std::memcpy(packet.get(), p + at, length);
        proto::StartupMessage m;
        std::string error;
        if (proto::decode_startup(packet.get() + 4, length - 4, m, &error)) check_decoded(m, packet.get() + 8, length - 8);
        break;
    }
    return 0;
}
