// pgpool-compatible AES-256-CBC password encryption over OpenSSL EVP, and .pgpoolkey reading.
#include "daemon/auth/aes.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "daemon/auth/base64.hpp"

namespace splitpool::auth {

namespace {

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// Key and IV as pgpool derives them; wiped by the destructor so they do not linger on the stack.
struct KeyIv {
    std::array<unsigned char, 32> key{};
    std::array<unsigned char, 16> iv{};
    ~KeyIv() {
        OPENSSL_cleanse(key.data(), key.size());
        OPENSSL_cleanse(iv.data(), iv.size());
    }
};

bool derive(std::string_view key_text, KeyIv& out) {
    static const unsigned char kEmpty[1] = {0};
    const auto* data = key_text.empty() ? kEmpty : reinterpret_cast<const unsigned char*>(key_text.data());
    int n = EVP_BytesToKey(EVP_aes_256_cbc(), EVP_sha1(), nullptr, data, static_cast<int>(key_text.size()), 1,
                           out.key.data(), out.iv.data());
    return n == static_cast<int>(out.key.size());
}

// One pass of EVP encryption or decryption over `in`; nullopt on any OpenSSL failure (bad padding too).
std::optional<std::string> run_cipher(bool encrypt, std::string_view in, std::string_view key_text) {
    KeyIv kiv;
    if (!derive(key_text, kiv)) return std::nullopt;
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return std::nullopt;
    if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr, kiv.key.data(), kiv.iv.data(), encrypt ? 1 : 0) != 1)
        return std::nullopt;
    std::string out(in.size() + 32, '\0');
    int len = 0;
    int final_len = 0;
    auto* dst = reinterpret_cast<unsigned char*>(out.data());
    if (EVP_CipherUpdate(ctx.get(), dst, &len, reinterpret_cast<const unsigned char*>(in.data()),
                         static_cast<int>(in.size())) != 1 ||
        EVP_CipherFinal_ex(ctx.get(), dst + len, &final_len) != 1) {
        OPENSSL_cleanse(out.data(), out.size());
        return std::nullopt;
    }
    out.resize(size_t(len) + size_t(final_len));
    return out;
}

std::string home_directory() {
    if (const passwd* pw = getpwuid(geteuid()); pw != nullptr && pw->pw_dir != nullptr && pw->pw_dir[0] != '\0')
        return pw->pw_dir;
    const char* home = std::getenv("HOME");
    return home != nullptr ? home : "";
}

}  // namespace

std::optional<std::string> aes_encrypt_password(std::string_view password, std::string_view key_text) {
    auto cipher = run_cipher(true, password, key_text);
    if (!cipher) return std::nullopt;
    return base64_encode(*cipher);
}

std::optional<std::string> aes_decrypt_password(std::string_view base64_text, std::string_view key_text) {
    auto cipher = base64_decode(base64_text);
    if (!cipher || cipher->empty() || cipher->size() % 16 != 0) return std::nullopt;
    return run_cipher(false, *cipher, key_text);
}

std::string default_pool_key_path() {
    if (const char* env = std::getenv(std::string(kPoolKeyFileEnv).c_str()); env != nullptr) return env;
    std::string home = home_directory();
    if (home.empty()) return {};
    return home + "/" + std::string(kPoolKeyFileName);
}

PoolKey read_pool_key(const std::string& path) {
    PoolKey result;
    result.path = path.empty() ? default_pool_key_path() : path;
    if (result.path.empty()) return result;
    // Open first, then fstat the open file, so the file checked is the file read (no swap in between).
    int fd = open(result.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return result;
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        close(fd);
        return result;
    }
    if (!S_ISREG(st.st_mode)) {
        result.warnings.push_back("pool key file \"" + result.path + "\" is not a plain file");
        close(fd);
        return result;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        result.warnings.push_back("pool key file \"" + result.path +
                                  "\" has group or world access; permissions should be u=rw (0600) or less");
    }
    std::string line;
    char buf[512];
    ssize_t n = 0;
    while (line.size() <= kMaxPoolKeyLength && (n = read(fd, buf, sizeof buf)) > 0) line.append(buf, size_t(n));
    close(fd);
    if (line.empty()) return result;  // pgpool finds no line in an empty file
    size_t eol = line.find('\n');
    // pgpool's fgets stops at the newline or after 255 bytes, whichever comes first; only '\n' is removed.
    std::string key = line.substr(0, std::min(eol, kMaxPoolKeyLength));
    OPENSSL_cleanse(line.data(), line.size());
    result.key = std::move(key);
    return result;
}

}  // namespace splitpool::auth
