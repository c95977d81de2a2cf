// pgpool's AES password encryption for pool_passwd "AES..." entries, and the .pgpoolkey lookup.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace splitpool::auth {

// pgpool's MAX_POOL_KEY_LEN: it reads the key line into a 256-byte buffer, so at most 255 bytes count.
constexpr size_t kMaxPoolKeyLength = 255;
constexpr std::string_view kPoolKeyFileEnv = "PGPOOLKEYFILE";
constexpr std::string_view kPoolKeyFileName = ".pgpoolkey";

// AES-256-CBC with PKCS#7 padding; key and IV come from the key text through EVP_BytesToKey(SHA-1,
// no salt, one round), exactly as pgpool's ssl_utils.c, so the IV is the same for every entry.
// Returns the standard base64 of the ciphertext (no "AES" prefix); nullopt only if OpenSSL fails.
std::optional<std::string> aes_encrypt_password(std::string_view password, std::string_view key_text);
// Inverse of aes_encrypt_password; nullopt for bad base64, a wrong key (bad padding) or an OpenSSL failure.
// A wrong key is caught by the padding check only with probability ~255/256, as in pgpool.
std::optional<std::string> aes_decrypt_password(std::string_view base64_text, std::string_view key_text);

struct PoolKey {
    std::optional<std::string> key;      // the first line without its '\n'; nullopt if unreadable
    std::string path;                    // the file that was tried
    std::vector<std::string> warnings;   // pgpool's wording, for the caller to log
};

// $PGPOOLKEYFILE if set, else <home of the effective user>/.pgpoolkey (as pgpool: from the password
// database, $HOME only as a fallback). Empty when no home directory can be found.
std::string default_pool_key_path();
// Reads the key from `path`, or from default_pool_key_path() when `path` is empty (the -k option).
// As pgpool: a missing or unreadable file gives no key and no warning; a non-regular file gives a
// warning and no key; group or world access gives a warning but the key is still used.
PoolKey read_pool_key(const std::string& path);

}  // namespace splitpool::auth
