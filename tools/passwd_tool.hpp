// Helpers shared by pg_enc and pg_md5: terminal prompts, input-file lines, pool_passwd from the config.
#pragma once

#include <cstddef>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

namespace splitpool::tools {

constexpr size_t kMaxPasswordLength = 128;  // pgpool's MAX_PGPASS_LEN
constexpr size_t kMaxUserNameLength = 128;  // pgpool's MAX_USER_NAME_LEN

std::string default_config_file();  // <sysconfdir>/splitpool.toml, as the daemon's -f default
std::string version_string();

// Prints `prompt` and reads one line from the terminal with echo off (the newline is dropped); as
// pgpool, refuses when stdin is not a terminal. nullopt with `error` set on failure.
std::optional<std::string> prompt_secret(const char* prompt, size_t max_length, std::string* error);

// The -u argument; exits with pgpool's message when it is longer than a user name may be.
std::string user_name_argument(const char* arg);

// The user running the tool (pgpool: getpwuid(getuid())); empty if unknown.
std::string current_user_name();
// Whose pool_passwd entry to write: -u's user, else the user running the tool; empty after printing
// pgpool's message when neither is known.
std::string entry_user_name(const std::string& user);
// Opens an -i file, printing pgpool's messages; false when it cannot be read.
bool open_input_file(const std::string& path, std::ifstream& in);

// pool_passwd's path from the TOML config: the `pool_passwd` key (default "pool_passwd"), relative to
// the config file's folder. False with `error` when the config cannot be read or disables pool_passwd.
bool pool_passwd_path(const std::string& config_file, std::string* path, std::string* error);

// Sets `user`'s entry in the pool_passwd the config names; prints pgpool's message on failure.
bool write_pool_passwd_entry(const std::string& config_file, const std::string& user, const std::string& stored);

// One "username:password" line of an -i file, split at the first ':'.
struct InputLine {
    bool blank = false;
    bool valid = false;
    std::string user;
    std::string password;
};
InputLine split_input_line(std::string_view line);

// Prints pgpool's "WARNING: pid N: ..." lines for the key-file warnings.
void print_warning(const std::string& message);

}  // namespace splitpool::tools
