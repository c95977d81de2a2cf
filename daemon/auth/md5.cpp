// PostgreSQL md5 authentication hashes, computed with OpenSSL's EVP digest interface.
#include "daemon/auth/md5.hpp"

#include <openssl/evp.h>

namespace splitpool::auth {

std::string md5_hex(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr) != 1 || length != 16) return {};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0x0f];
    }
    return out;
}

std::string pg_md5_stored(std::string_view password, std::string_view user) {
    std::string input;
    input.reserve(password.size() + user.size());
    input.append(password).append(user);
    std::string hex = md5_hex(input);
    return hex.empty() ? hex : "md5" + hex;
}

bool is_pg_md5_stored(std::string_view text) {
    if (text.size() != kMd5StoredLength || text.substr(0, 3) != "md5") return false;
    for (char c : text.substr(3)) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

std::string pg_md5_password_from_stored(std::string_view stored_md5, const unsigned char salt[4]) {
    if (!is_pg_md5_stored(stored_md5)) return {};
    std::string input(stored_md5.substr(3));
    input.append(reinterpret_cast<const char*>(salt), kMd5SaltLength);
    std::string hex = md5_hex(input);
    return hex.empty() ? hex : "md5" + hex;
}

std::string pg_md5_password(std::string_view password, std::string_view user, const unsigned char salt[4]) {
    return pg_md5_password_from_stored(pg_md5_stored(password, user), salt);
}

}  // namespace splitpool::auth
