// pool_passwd: pgpool's "user:password" file, its entry types, and the update pg_enc/pg_md5 -m perform.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace splitpool::auth {

// The type pgpool's get_password_type() gives a stored password, by prefix.
enum class PasswordKind {
    Md5,          // "md5" + 32 characters: md5(password + user), usable for md5 auth only
    Aes,          // "AES" + base64: decrypts to the plaintext with the pool key
    Text,         // "TEXT" + plaintext
    Plain,        // anything else: the plaintext itself
    ScramSha256,  // "SCRAM-SHA-256$...": a pg_authid verifier, usable for SCRAM only
};

std::string_view password_kind_name(PasswordKind kind);  // "md5", "AES", "TEXT", "plain", "SCRAM-SHA-256"

struct PasswordEntry {
    PasswordKind kind = PasswordKind::Plain;
    std::string value;  // the stored text exactly as in the file, prefix included
};

// Classifies a stored password as pgpool does (an "md5" prefix of the wrong length is plaintext).
PasswordEntry classify_password(std::string_view stored);

// The clear-text password behind an entry: Plain as is, TEXT without its prefix, AES decrypted with
// `key` (nullopt without a key or when decryption fails); nullopt for md5 and SCRAM entries.
std::optional<std::string> plaintext(const PasswordEntry& entry, const std::optional<std::string>& key);

struct PoolPasswd {
    std::unordered_map<std::string, PasswordEntry> entries;  // user -> first entry for that user
    const PasswordEntry* find(std::string_view user) const;
};

struct PoolPasswdLoad {
    bool ok = false;
    PoolPasswd file;
    std::string error;                  // when !ok: why the file could not be used
    std::vector<std::string> warnings;  // insecure permissions, skipped or duplicate lines (no secrets)
};

// Parses the file text. Never fails: lines pgpool would skip are skipped with a warning naming the line.
// Beyond pgpool: a SCRAM verifier keeps its ':' characters (pgpool cuts the field at the first ':'),
// a trailing '\r' is dropped, and long entries are not truncated at 128 bytes.
PoolPasswdLoad parse_pool_passwd(std::string_view text, std::string_view file_name = "pool_passwd");

// Reads and parses the file. Refuses anything but a regular file; warns when group or others may
// write it or others may read it (pgpool itself does not check; the Debian package ships 0640).
PoolPasswdLoad load_pool_passwd(const std::string& path);

// The file text after setting `user`'s password to `stored`: the first line for that user is replaced,
// else a line is appended; every other line is kept byte for byte. ':' and '\' in the user name are
// escaped with '\' so pgpool and splitpool read the name back intact.
std::string update_pool_passwd_text(std::string_view text, std::string_view user, std::string_view stored);

// Applies update_pool_passwd_text to the file, creating it (mode 0600) if missing. The new content is
// written to a temporary file in the same folder and renamed over the old one, keeping its mode and,
// where permitted, its owner, so a crash never leaves a half-written pool_passwd.
bool update_pool_passwd_file(const std::string& path, std::string_view user, std::string_view stored,
                             std::string* error);

}  // namespace splitpool::auth
