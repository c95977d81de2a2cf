// Builds protocol messages: one writer that back-patches the length, plus named builders for replies.
#include "daemon/proto/writer.hpp"

#include "daemon/proto/frame.hpp"

namespace splitpool::proto {

Writer& Writer::begin(char type) {
    out_ += type;
    length_at_ = out_.size();
    out_.append(4, '\0');
    return *this;
}

Writer& Writer::begin_untyped() {
    length_at_ = out_.size();
    out_.append(4, '\0');
    return *this;
}

Writer& Writer::i32(int32_t v) {
    auto u = static_cast<uint32_t>(v);
    char b[4] = {char(u >> 24), char(u >> 16), char(u >> 8), char(u)};
    out_.append(b, 4);
    return *this;
}

Writer& Writer::i16(int16_t v) {
    auto u = static_cast<uint16_t>(v);
    char b[2] = {char(u >> 8), char(u)};
    out_.append(b, 2);
    return *this;
}

Writer& Writer::byte(uint8_t v) {
    out_ += static_cast<char>(v);
    return *this;
}

Writer& Writer::cstr(std::string_view s) {
    out_.append(s);
    out_ += '\0';
    return *this;
}

Writer& Writer::bytes(std::string_view s) {
    out_.append(s);
    return *this;
}

void Writer::finish() {
    auto len = static_cast<uint32_t>(out_.size() - length_at_);
    out_[length_at_] = char(len >> 24);
    out_[length_at_ + 1] = char(len >> 16);
    out_[length_at_ + 2] = char(len >> 8);
    out_[length_at_ + 3] = char(len);
}

void put_error(std::string& out, std::string_view severity, std::string_view code, std::string_view message,
               std::string_view detail, std::string_view hint, char type) {
    Writer w(out);
    w.begin(type).byte('S').cstr(severity).byte('V').cstr(severity).byte('C').cstr(code).byte('M').cstr(message);
    if (!detail.empty()) w.byte('D').cstr(detail);
    if (!hint.empty()) w.byte('H').cstr(hint);
    w.byte(0).finish();
}

void put_ready_for_query(std::string& out, char tx_status) {
    Writer(out).begin('Z').byte(static_cast<uint8_t>(tx_status)).finish();
}

void put_auth_request(std::string& out, int32_t code, std::string_view extra) {
    Writer(out).begin('R').i32(code).bytes(extra).finish();
}

void put_parameter_status(std::string& out, std::string_view name, std::string_view value) {
    Writer(out).begin('S').cstr(name).cstr(value).finish();
}

void put_backend_key_data(std::string& out, int32_t pid, uint32_t secret) {
    Writer(out).begin('K').i32(pid).i32(static_cast<int32_t>(secret)).finish();
}

void put_query(std::string& out, std::string_view sql) { Writer(out).begin('Q').cstr(sql).finish(); }

std::string query_message(std::string_view sql) {
    std::string out;
    put_query(out, sql);
    return out;
}

void put_cancel_request(std::string& out, int32_t pid, uint32_t secret) {
    Writer(out).begin_untyped().i32(kCancelRequestCode).i32(pid).i32(static_cast<int32_t>(secret)).finish();
}

void put_password(std::string& out, std::string_view password) { Writer(out).begin('p').cstr(password).finish(); }

}  // namespace splitpool::proto
