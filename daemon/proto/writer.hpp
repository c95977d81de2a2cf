// Builds protocol messages: one writer that back-patches the length, plus named builders for replies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace splitpool::proto {

// Appends messages to a caller-owned string, so several replies batch into one write().
class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}
    Writer& begin(char type);   // typed message
    Writer& begin_untyped();    // startup-phase packet (length first)
    Writer& i32(int32_t v);
    Writer& i16(int16_t v);
    Writer& byte(uint8_t v);
    Writer& cstr(std::string_view s);  // adds the terminating NUL
    Writer& bytes(std::string_view s);
    void finish();                     // patches the length of the message begun last

private:
    std::string& out_;
    size_t length_at_ = 0;
};

// SQLSTATE codes splitpool raises itself.
namespace sqlstate {
constexpr std::string_view kProtocolViolation = "08P01";
constexpr std::string_view kConnectionFailure = "08006";
constexpr std::string_view kCannotConnectNow = "57P03";
constexpr std::string_view kAdminShutdown = "57P01";
constexpr std::string_view kIdleSessionTimeout = "57P05";
constexpr std::string_view kTooManyConnections = "53300";
constexpr std::string_view kInvalidAuthorization = "28000";
constexpr std::string_view kInvalidPassword = "28P01";
constexpr std::string_view kFeatureNotSupported = "0A000";
constexpr std::string_view kInternalError = "XX000";
}  // namespace sqlstate

// ErrorResponse ('E') or NoticeResponse ('N') with severity, SQLSTATE, message and optional detail/hint.
void put_error(std::string& out, std::string_view severity, std::string_view code, std::string_view message,
               std::string_view detail = {}, std::string_view hint = {}, char type = 'E');
void put_ready_for_query(std::string& out, char tx_status);
void put_auth_request(std::string& out, int32_t code, std::string_view extra = {});
void put_parameter_status(std::string& out, std::string_view name, std::string_view value);
void put_backend_key_data(std::string& out, int32_t pid, uint32_t secret);
void put_query(std::string& out, std::string_view sql);
std::string query_message(std::string_view sql);  // a Query message on its own
void put_cancel_request(std::string& out, int32_t pid, uint32_t secret);
void put_password(std::string& out, std::string_view password);  // PasswordMessage 'p' with a C string

}  // namespace splitpool::proto
