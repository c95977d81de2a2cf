// pool_passwd parsing as pgpool's pool_get_user_credentials() reads it, entry decoding, and safe updates.
#include "daemon/auth/pool_passwd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/auth/aes.hpp"

namespace splitpool::auth {

namespace {

constexpr std::string_view kMd5Prefix = "md5";
constexpr size_t kMd5HexLength = 32;
constexpr std::string_view kAesPrefix = "AES";
constexpr std::string_view kTextPrefix = "TEXT";
constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";
constexpr size_t kMaxFileSize = 64u << 20;  // far beyond any real file; stops a runaway read

// One ':'-terminated field with pgpool's backslash escapes; `rest` moves past the ':' (or to the end).
// `terminated` tells whether a ':' ended the field.
std::string take_field(std::string_view& rest, bool& terminated) {
    std::string out;
    terminated = false;
    size_t i = 0;
    for (; i < rest.size(); ++i) {
        char c = rest[i];
        if (c == '\\' && i + 1 < rest.size()) {
            out.push_back(rest[++i]);
            continue;
        }
        if (c == ':') {
            terminated = true;
            ++i;
            break;
        }
        out.push_back(c);
    }
    rest.remove_prefix(i);
    return out;
}

// A verifier "SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>" contains two ':' of its own, which pgpool's
// field splitting would cut; take it whole, up to the ':' that would start a mapping field.
std::optional<std::string> take_scram_verifier(std::string_view& rest) {
    if (rest.substr(0, kScramPrefix.size()) != kScramPrefix) return std::nullopt;
    size_t colon1 = rest.find(':', kScramPrefix.size());
    size_t dollar = colon1 == std::string_view::npos ? colon1 : rest.find('$', colon1);
    size_t colon2 = dollar == std::string_view::npos ? dollar : rest.find(':', dollar);
    if (colon2 == std::string_view::npos) return std::nullopt;
    size_t end = rest.find(':', colon2 + 1);
    std::string value(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    return value;
}

std::string line_ref(std::string_view file_name, size_t line_no) {
    return std::string(file_name) + ":" + std::to_string(line_no);
}

std::string escape_user(std::string_view user) {
    std::string out;
    for (char c : user) {
        if (c == ':' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    return out;
}

// The (unescaped) user name a line starts with, or nullopt when the line has no ':' after it.
std::optional<std::string> line_user(std::string_view line) {
    bool terminated = false;
    std::string user = take_field(line, terminated);
    if (!terminated) return std::nullopt;
    return user;
}

bool read_whole_file(int fd, std::string& out, std::string* error) {
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            *error = std::strerror(errno);
            return false;
        }
        out.append(buf, size_t(n));
        if (out.size() > kMaxFileSize) {
            *error = "file is too large";
            return false;
        }
    }
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(size_t(n));
    }
    return true;
}

}  // namespace

std::string_view password_kind_name(PasswordKind kind) {
    switch (kind) {
    case PasswordKind::Md5: return "md5";
    case PasswordKind::Aes: return "AES";
    case PasswordKind::Text: return "TEXT";
    case PasswordKind::Plain: return "plain";
    case PasswordKind::ScramSha256: return "SCRAM-SHA-256";
    }
    return "unknown";
}

PasswordEntry classify_password(std::string_view stored) {
    PasswordEntry e;
    e.value = std::string(stored);
    if (stored.substr(0, kMd5Prefix.size()) == kMd5Prefix)
        e.kind = stored.size() == kMd5Prefix.size() + kMd5HexLength ? PasswordKind::Md5 : PasswordKind::Plain;
    else if (stored.substr(0, kAesPrefix.size()) == kAesPrefix)
        e.kind = PasswordKind::Aes;
    else if (stored.substr(0, kScramPrefix.size()) == kScramPrefix)
        e.kind = PasswordKind::ScramSha256;
    else if (stored.substr(0, kTextPrefix.size()) == kTextPrefix)
        e.kind = PasswordKind::Text;
    else
        e.kind = PasswordKind::Plain;
    return e;
}

std::optional<std::string> plaintext(const PasswordEntry& entry, const std::optional<std::string>& key) {
    switch (entry.kind) {
    case PasswordKind::Plain: return entry.value;
    case PasswordKind::Text: return entry.value.substr(kTextPrefix.size());
    case PasswordKind::Aes:
        if (!key) return std::nullopt;
        return aes_decrypt_password(std::string_view(entry.value).substr(kAesPrefix.size()), *key);
    case PasswordKind::Md5:
    case PasswordKind::ScramSha256: return std::nullopt;
    }
    return std::nullopt;
}

const PasswordEntry* PoolPasswd::find(std::string_view user) const {
    auto it = entries.find(std::string(user));
    return it == entries.end() ? nullptr : &it->second;
}

PoolPasswdLoad parse_pool_passwd(std::string_view text, std::string_view file_name) {
    PoolPasswdLoad result;
    result.ok = true;
    size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        bool terminated = false;
        std::string user = take_field(line, terminated);
        std::optional<std::string> password = take_scram_verifier(line);
        if (!password) password = take_field(line, terminated);
        if (!password || password->empty()) {
            // pgpool skips such a line silently; saying so helps whoever edited the file by hand.
            result.warnings.push_back(line_ref(file_name, line_no) + ": no password for user \"" + user +
                                      "\", line ignored");
            continue;
        }
        // The optional ":backend_user:backend_password" mapping is parsed by pgpool but never used.
        if (!result.file.entries.emplace(user, classify_password(*password)).second) {
            result.warnings.push_back(line_ref(file_name, line_no) + ": duplicate entry for user \"" + user +
                                      "\", the first one is used");
        }
    }
    return result;
}

PoolPasswdLoad load_pool_passwd(const std::string& path) {
    PoolPasswdLoad result;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        result.error = "could not open pool_passwd file \"" + path + "\": " + std::strerror(errno);
        return result;
    }
    struct stat st {};
    std::string text;
    std::string read_error;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        result.error = "pool_passwd file \"" + path + "\" is not a regular file";
    } else if (!read_whole_file(fd, text, &read_error)) {
        result.error = "could not read pool_passwd file \"" + path + "\": " + read_error;
    }
    close(fd);
    if (!result.error.empty()) return result;
    result = parse_pool_passwd(text, path);
    if ((st.st_mode & (S_IWGRP | S_IRWXO)) != 0) {
        result.warnings.insert(result.warnings.begin(),
                               "pool_passwd file \"" + path +
                                   "\" has group write or world access; permissions should be u=rw,g=r (0640) or less");
    }
    return result;
}

std::string update_pool_passwd_text(std::string_view text, std::string_view user, std::string_view stored) {
    std::string new_line = escape_user(user) + ":" + std::string(stored) + "\n";
    std::string out;
    out.reserve(text.size() + new_line.size() + 1);
    bool updated = false;
    while (!text.empty()) {
        size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol == std::string_view::npos ? text.size() : eol + 1);
        text.remove_prefix(line.size());
        if (!updated) {
            auto name = line_user(line);
            if (name && *name == user) {
                out += new_line;
                updated = true;
                continue;
            }
        }
        out += line;
    }
    if (!updated) {
        // pgpool would glue the new entry onto an unterminated last line; end that line first.
        if (!out.empty() && out.back() != '\n') out.push_back('\n');
        out += new_line;
    }
    return out;
}

bool update_pool_passwd_file(const std::string& path, std::string_view user, std::string_view stored,
                             std::string* error) {
    std::string text;
    struct stat st {};
    bool exists = false;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        std::string read_error;
        bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read_whole_file(fd, text, &read_error);
        close(fd);
        if (!ok) {
            *error = "could not read pool_passwd file \"" + path + "\"" +
                     (read_error.empty() ? std::string(": not a regular file") : ": " + read_error);
            return false;
        }
        exists = true;
    } else if (errno != ENOENT) {
        *error = "could not open pool_passwd file \"" + path + "\": " + std::strerror(errno);
        return false;
    }
    std::string updated = update_pool_passwd_text(text, user, stored);
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        *error = "could not create \"" + tmp + "\": " + std::strerror(errno);
        return false;
    }
    if (exists) {
        // Keep the permissions someone chose (e.g. 0640 root:postgres); ownership only root can keep.
        (void)fchmod(out, st.st_mode & 07777);
        if (fchown(out, st.st_uid, st.st_gid) != 0) { /* not root: the file becomes ours */ }
    }
    bool ok = write_all(out, updated) && fsync(out) == 0;
    ok = close(out) == 0 && ok;
    if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
        *error = "could not write pool_passwd file \"" + path + "\": " + std::strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    return true;
}

}  // namespace splitpool::auth
