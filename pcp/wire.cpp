// pgpool's PCP wire format: typed packets of NUL-terminated strings, errors, and the salted md5 login.
#include "pcp/wire.hpp"

#include "daemon/auth/md5.hpp"
#include "daemon/proto/frame.hpp"

namespace splitpool::pcp {

std::string encode_packet(char type, std::string_view body) {
    std::string out;
    out.reserve(body.size() + 5);
    out.push_back(type);
    uint32_t len = uint32_t(body.size() + 4);
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(char((len >> shift) & 0xff));
    out.append(body);
    return out;
}

namespace {

template <typename Range>
std::string join_strings(char type, const Range& strings) {
    std::string body;
    for (const auto& s : strings) {
        body.append(s);
        body.push_back('\0');
    }
    return encode_packet(type, body);
}

}  // namespace

std::string encode_strings(char type, std::initializer_list<std::string_view> strings) {
    return join_strings(type, strings);
}

std::string encode_strings(char type, const std::vector<std::string>& strings) {
    return join_strings(type, strings);
}

std::vector<std::string> split_strings(std::string_view body) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < body.size()) {
        size_t nul = body.find('\0', pos);
        if (nul == std::string_view::npos) {
            out.emplace_back(body.substr(pos));
            break;
        }
        out.emplace_back(body.substr(pos, nul - pos));
        pos = nul + 1;
    }
    return out;
}

std::string encode_error(const ErrorFields& error) {
    // pgpool's client scans the fields in a way that also treats the first character of a value as
    // a field tag; S, C, M, D in this order is what pgpool sends and what that scan expects.
    std::string body;
    auto field = [&](char tag, std::string_view value) {
        body.push_back(tag);
        body.append(value);
        body.push_back('\0');
    };
    field('S', error.severity);
    field('C', "XX000");
    field('M', error.message);
    if (!error.detail.empty()) field('D', error.detail);
    body.push_back('\0');
    return encode_packet('E', body);
}

ErrorFields decode_error(std::string_view body) {
    ErrorFields out;
    size_t pos = 0;
    while (pos < body.size() && body[pos] != '\0') {
        char tag = body[pos++];
        size_t nul = body.find('\0', pos);
        if (nul == std::string_view::npos) nul = body.size();
        std::string_view value = body.substr(pos, nul - pos);
        if (tag == 'S') out.severity = value;
        else if (tag == 'M') out.message = value;
        else if (tag == 'D') out.detail = value;
        pos = nul + 1;
    }
    return out;
}

std::string format_error(const ErrorFields& error) {
    std::string out = error.severity + ":  " + error.message + "\n";
    if (!error.detail.empty()) out += "DETAIL:  " + error.detail + "\n";
    return out;
}

std::string salted_response(std::string_view password_md5_hex, std::string_view user,
                            const unsigned char salt[kSaltLength]) {
    std::string inner = auth::md5_hex(std::string(password_md5_hex) + std::string(user));
    inner.append(reinterpret_cast<const char*>(salt), kSaltLength);
    return auth::md5_hex(inner);
}

io::IoStatus read_packet(int fd, io::Buffer& buf, Packet& out, uint32_t max_length, io::Deadline deadline,
                         const volatile int* interrupted) {
    proto::Frame frame;
    io::IoStatus st = io::read_frame(io::Stream{fd}, buf, frame, max_length, deadline, interrupted);
    if (st != io::IoStatus::Ok) return st;
    out.type = frame.type;
    out.body.assign(frame.body, frame.body_size());
    buf.consume(frame.size());
    return io::IoStatus::Ok;
}

io::IoStatus write_packet_bytes(int fd, std::string_view bytes, io::Deadline deadline) {
    return io::write_all(io::Stream{fd}, bytes.data(), bytes.size(), deadline);
}

}  // namespace splitpool::pcp
