// pgpool's PCP wire format: typed packets of NUL-terminated strings, errors, and the salted md5 login.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/io/buffer.hpp"
#include "daemon/io/conn.hpp"

namespace splitpool::pcp {

// pgpool's MAX_PCP_PACKET_LENGTH bounds requests; replies (a pool status row) stay far below 64 kB.
constexpr uint32_t kMaxRequestLength = 8192;
constexpr uint32_t kMaxReplyLength = 1u << 20;
constexpr size_t kSaltLength = 4;
constexpr int kMaxNodeId = 128;       // pgpool's MAX_NUM_BACKENDS, quoted in its error texts
constexpr double kRandMax = 2147483647.0;  // pgpool ships weights scaled by RAND_MAX

// One configuration item of pcp_pool_status / SHOW POOL_STATUS: built by the server, read by the tool.
struct ConfigItem {
    std::string name, value, description;
};

// The marker strings that open each reply body.
inline constexpr std::string_view kCommandComplete = "CommandComplete";
inline constexpr std::string_view kArraySize = "ArraySize";
inline constexpr std::string_view kAuthenticationOk = "AuthenticationOK";

struct Packet {
    char type = 0;
    std::string body;   // without type byte and length
};

// type, big-endian length counting itself, then the body.
std::string encode_packet(char type, std::string_view body);
// A body made of NUL-terminated strings, as nearly every PCP packet is.
std::string encode_strings(char type, std::initializer_list<std::string_view> strings);
std::string encode_strings(char type, const std::vector<std::string>& strings);

// Splits a body into its NUL-terminated strings; a trailing unterminated piece is kept as well.
std::vector<std::string> split_strings(std::string_view body);

// An ErrorResponse/NoticeResponse body: 'S' severity, 'C' code, 'M' message, 'D' detail.
struct ErrorFields {
    std::string severity;   // "ERROR" or "FATAL"
    std::string message;
    std::string detail;     // may be empty
};
std::string encode_error(const ErrorFields& error);
ErrorFields decode_error(std::string_view body);
// "ERROR:  msg\nDETAIL:  detail\n", the text pgpool's client library keeps as its last error.
std::string format_error(const ErrorFields& error);

// md5hex(md5hex(md5_password_hex + user) + salt): what the client sends and the server checks,
// computed from the md5hex of the password as pcp.conf stores it.
std::string salted_response(std::string_view password_md5_hex, std::string_view user,
                            const unsigned char salt[kSaltLength]);

// Blocking helpers over a socket: one whole packet, or the entire string.
io::IoStatus read_packet(int fd, io::Buffer& buf, Packet& out, uint32_t max_length, io::Deadline deadline,
                         const volatile int* interrupted = nullptr);
io::IoStatus write_packet_bytes(int fd, std::string_view bytes, io::Deadline deadline);

}  // namespace splitpool::pcp
