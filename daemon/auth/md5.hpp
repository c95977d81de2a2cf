// PostgreSQL's md5 password scheme: the stored "md5..." hash and the salted response to AuthenticationMD5Password.
#pragma once

#include <string>
#include <string_view>

namespace splitpool::auth {

constexpr size_t kMd5SaltLength = 4;
constexpr size_t kMd5StoredLength = 35;  // "md5" + 32 hex digits

// Lower-case hex MD5 of the bytes; empty only if OpenSSL cannot provide MD5 (e.g. a FIPS-only build).
std::string md5_hex(std::string_view data);

// "md5" + md5_hex(password + user): what pg_authid and pool_passwd store.
std::string pg_md5_stored(std::string_view password, std::string_view user);

// True for "md5" followed by exactly 32 lower-case hex digits.
bool is_pg_md5_stored(std::string_view text);

// The PasswordMessage body for AuthenticationMD5Password: "md5" + md5_hex(md5_hex(password + user) + salt).
std::string pg_md5_password(std::string_view password, std::string_view user, const unsigned char salt[4]);

// Same response computed from the stored hash alone, so the proxy can log in without the clear-text
// password. Empty when `stored_md5` is not a well-formed "md5..." hash.
std::string pg_md5_password_from_stored(std::string_view stored_md5, const unsigned char salt[4]);

}  // namespace splitpool::auth
