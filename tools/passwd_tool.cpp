// Shared pg_enc / pg_md5 plumbing: tty prompts without echo, config lookup with toml++, entry writes.
#include "tools/passwd_tool.hpp"

#include <pwd.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <toml++/toml.h>

#include "daemon/auth/pool_passwd.hpp"

#ifndef SPLITPOOL_SYSCONFDIR
#define SPLITPOOL_SYSCONFDIR "/usr/local/etc/splitpool"
#endif
#ifndef SPLITPOOL_VERSION
#define SPLITPOOL_VERSION "0.1.0"
#endif

namespace splitpool::tools {

std::string default_config_file() { return SPLITPOOL_SYSCONFDIR "/splitpool.toml"; }

std::string version_string() { return SPLITPOOL_VERSION; }

std::optional<std::string> prompt_secret(const char* prompt, size_t max_length, std::string* error) {
    if (!isatty(0)) {
        *error = "stdin is not tty";
        return std::nullopt;
    }
    termios saved{};
    if (tcgetattr(0, &saved) < 0) {
        *error = "set_tio_attr(set): tcgetattr failed";
        return std::nullopt;
    }
    termios quiet = saved;
    quiet.c_iflag &= ~(BRKINT | ISTRIP | IXON);
    quiet.c_lflag &= ~(ICANON | IEXTEN | ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_cc[VMIN] = 1;
    quiet.c_cc[VTIME] = 0;
    if (tcsetattr(0, TCSANOW, &quiet) < 0) {
        *error = "(set_tio_attr(set): tcsetattr failed";
        return std::nullopt;
    }
    std::fputs(prompt, stdout);
    std::fflush(stdout);
    std::string line;
    int c;
    while ((c = std::getchar()) != EOF && c != '\n') line.push_back(static_cast<char>(c));
    std::fputs("\n", stdout);
    tcsetattr(0, TCSANOW, &saved);
    if (c == EOF && line.empty()) {
        *error = "Couldn't read input from stdin.";
        return std::nullopt;
    }
    if (line.size() > max_length) {
        *error = "Error: input exceeds maximum length " + std::to_string(max_length) + "!";
        return std::nullopt;
    }
    return line;
}

std::string user_name_argument(const char* arg) {
    if (std::strlen(arg) > kMaxUserNameLength) {
        std::fprintf(stderr, "Error: input exceeds maximum username length!\n\n");
        std::exit(EXIT_FAILURE);
    }
    return arg;
}

std::string current_user_name() {
    const passwd* pw = getpwuid(getuid());
    return pw != nullptr && pw->pw_name != nullptr ? pw->pw_name : "";
}

std::string entry_user_name(const std::string& user) {
    std::string name = user.empty() ? current_user_name() : user;
    if (name.empty()) std::fprintf(stderr, "getpwuid() failed\n\n");
    return name;
}

bool open_input_file(const std::string& path, std::ifstream& in) {
    std::fprintf(stdout, "trying to read username:password pairs from file %s\n", path.c_str());
    in.open(path);
    if (!in) std::fprintf(stderr, "failed to open input_file \"%s\" (%m)\n\n", path.c_str());
    return bool(in);
}

bool pool_passwd_path(const std::string& config_file, std::string* path, std::string* error) {
    std::string name = "pool_passwd";
    try {
        toml::table config = toml::parse_file(config_file);
        if (const toml::node* node = config.get("pool_passwd")) {
            auto value = node->value<std::string>();
            if (!value) {
                *error = "\"pool_passwd\" in " + config_file + " is not a string";
                return false;
            }
            name = *value;
        }
    } catch (const toml::parse_error& e) {
        *error = "could not read configuration file \"" + config_file + "\": " + std::string(e.description());
        return false;
    }
    if (name.empty()) {
        *error = "pool_passwd is disabled (empty) in " + config_file;
        return false;
    }
    std::filesystem::path p(name);
    if (p.is_relative()) p = std::filesystem::path(config_file).parent_path() / p;
    *path = p.lexically_normal().string();
    return true;
}

bool write_pool_passwd_entry(const std::string& config_file, const std::string& user, const std::string& stored) {
    std::string path, error;
    if (!pool_passwd_path(config_file, &path, &error)) {
        std::fprintf(stderr, "%s\nUnable to get configuration. Exiting...\n\n", error.c_str());
        return false;
    }
    if (!auth::update_pool_passwd_file(path, user, stored, &error)) {
        std::fprintf(stderr, "error updating password: %s\n\n", error.c_str());
        return false;
    }
    return true;
}

InputLine split_input_line(std::string_view line) {
    InputLine out;
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (line.empty()) {
        out.blank = true;
        return out;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == line.size()) return out;
    out.user = std::string(line.substr(0, colon));
    out.password = std::string(line.substr(colon + 1));
    out.valid = true;
    return out;
}

void print_warning(const std::string& message) {
    std::fprintf(stderr, "WARNING: pid %d: %s\n\n", static_cast<int>(getpid()), message.c_str());
}

}  // namespace splitpool::tools
