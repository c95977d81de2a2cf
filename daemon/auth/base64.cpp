// Base64 over OpenSSL's block coder, with the strictness checks the block coder lacks.
#include "daemon/auth/base64.hpp"

#include <openssl/evp.h>

namespace splitpool::auth {

namespace {

bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// EVP_DecodeBlock skips whitespace and does not report padding, so validate the shape first
// and return the number of '=' characters (0..2), or -1 when the text is not canonical base64.
int padding_of(std::string_view text) {
    if (text.size() % 4 != 0) return -1;
    int pad = 0;
    if (!text.empty() && text.back() == '=') ++pad;
    if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
    for (size_t i = 0; i < text.size() - pad; ++i) {
        if (!is_base64_char(text[i])) return -1;
    }
    return pad;
}

}  // namespace

std::string base64_encode(std::string_view data) {
    if (data.empty()) return {};
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    out.resize(n > 0 ? size_t(n) : 0);
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    int pad = padding_of(text);
    if (pad < 0) return std::nullopt;
    if (text.empty()) return std::string();
    std::string out(text.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0 || size_t(n) != out.size()) return std::nullopt;
    out.resize(out.size() - size_t(pad));
    return out;
}

}  // namespace splitpool::auth
