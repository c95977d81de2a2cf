// Unit tests for pool_passwd entries, pgpool's AES scheme, the key file and the pg_enc/pg_md5 update.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon/auth/aes.hpp"
#include "daemon/auth/md5.hpp"
#include "daemon/auth/pool_passwd.hpp"

using namespace splitpool::auth;

namespace {

constexpr const char* kKeyText = "pgpool secret key";

// A temporary folder removed at scope exit.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/pool_passwd_test_XXXXXX";
        path = mkdtemp(tmpl) != nullptr ? tmpl : "";
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string write(const std::string& name, const std::string& text, mode_t mode) const {
        std::string p = path + "/" + name;
        std::ofstream(p, std::ios::binary) << text;
        chmod(p.c_str(), mode);
        return p;
    }
};

std::string read_file(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("AES entries: pgpool's known vector both ways") {
    // Vector from pgpool's regression test 021 and Debian's pg_enc 4.3.5.
    CHECK(aes_encrypt_password("scram_password", kKeyText) == std::optional<std::string>("EqRWNVZUfMNbiWsn+FAKww=="));
    CHECK(aes_decrypt_password("EqRWNVZUfMNbiWsn+FAKww==", kKeyText) == std::optional<std::string>("scram_password"));
    CHECK_FALSE(aes_decrypt_password("EqRWNVZUfMNbiWsn+FAKww==", "another key").has_value());
    CHECK_FALSE(aes_decrypt_password("not base64!", kKeyText).has_value());
    CHECK_FALSE(aes_decrypt_password("", kKeyText).has_value());
    // Round trip across the block boundary, and an empty password (one block of padding).
    for (std::string pw : {std::string(), std::string(15, 'a'), std::string(16, 'b'), std::string(128, 'c')}) {
        auto enc = aes_encrypt_password(pw, kKeyText);
        REQUIRE(enc);
        CHECK(aes_decrypt_password(*enc, kKeyText) == std::optional<std::string>(pw));
    }
}

TEST_CASE("password kinds follow pgpool's get_password_type") {
    CHECK(classify_password("md5" + std::string(32, 'a')).kind == PasswordKind::Md5);
    CHECK(classify_password("md5short").kind == PasswordKind::Plain);
    CHECK(classify_password("AESxyz").kind == PasswordKind::Aes);
    CHECK(classify_password("TEXTsecret").kind == PasswordKind::Text);
    CHECK(classify_password("SCRAM-SHA-256$4096:c2FsdA==$a:b").kind == PasswordKind::ScramSha256);
    CHECK(classify_password("secret").kind == PasswordKind::Plain);

    std::optional<std::string> key = kKeyText;
    CHECK(plaintext(classify_password("secret"), std::nullopt) == std::optional<std::string>("secret"));
    CHECK(plaintext(classify_password("TEXTsecret"), std::nullopt) == std::optional<std::string>("secret"));
    CHECK(plaintext(classify_password("AESEqRWNVZUfMNbiWsn+FAKww=="), key) ==
          std::optional<std::string>("scram_password"));
    CHECK_FALSE(plaintext(classify_password("AESEqRWNVZUfMNbiWsn+FAKww=="), std::nullopt));
    CHECK_FALSE(plaintext(classify_password(pg_md5_stored("pw", "u")), key));
}

TEST_CASE("pool_passwd parsing: escapes, SCRAM verifiers, skipped lines") {
    const std::string verifier =
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
    std::string text = "alice:TEXTpw1\n"
                       "b\\:ob:pa\\:ss\n"
                       "carol:" + verifier + "\n"
                       "dave:" + verifier + ":backend_user:backend_pw\n"
                       "\n"
                       "nopassword:\n"
                       "justaname\n"
                       "alice:second\r\n"
                       "erin:plain\r\n";
    PoolPasswdLoad r = parse_pool_passwd(text, "pool_passwd");
    CHECK(r.ok);
    CHECK(r.file.entries.size() == 5);
    REQUIRE(r.file.find("alice"));
    CHECK(r.file.find("alice")->value == "TEXTpw1");  // first entry wins
    REQUIRE(r.file.find("b:ob"));
    CHECK(r.file.find("b:ob")->value == "pa:ss");
    REQUIRE(r.file.find("carol"));
    CHECK(r.file.find("carol")->kind == PasswordKind::ScramSha256);
    CHECK(r.file.find("carol")->value == verifier);
    CHECK(r.file.find("dave")->value == verifier);
    CHECK(r.file.find("erin")->value == "plain");
    CHECK_FALSE(r.file.find("nopassword"));
    CHECK(r.warnings.size() == 3);  // two lines without password, one duplicate
    CHECK(r.warnings[0].find("pool_passwd:6:") == 0);
    for (const auto& w : r.warnings) CHECK(w.find("pw") == std::string::npos);  // no secrets in warnings
}

TEST_CASE("a pool_passwd written by Debian's pgpool2 4.3.5 pg_enc/pg_md5 -m reads back") {
    // Produced with: pg_enc -m -u alice -K 'pgpool secret key' -f pgpool.conf scram_password, the same for
    // bob ('pa:ss\word') and dan (a 74-byte password), and pg_md5 -m -u carol ... secret.
    auto fixture = std::filesystem::path(__FILE__).parent_path() / "data" / "pool_passwd.debian_pg_enc";
    PoolPasswdLoad r = load_pool_passwd(fixture.string());
    REQUIRE(r.ok);
    std::optional<std::string> key = kKeyText;
    CHECK(plaintext(*r.file.find("alice"), key) == std::optional<std::string>("scram_password"));
    CHECK(plaintext(*r.file.find("bob"), key) == std::optional<std::string>("pa:ss\\word"));
    CHECK(plaintext(*r.file.find("dan"), key) ==
          std::optional<std::string>("a much longer password with spaces and symbols !@#$%^&*()_+ 0123456789"));
    CHECK(r.file.find("carol")->kind == PasswordKind::Md5);
    CHECK(r.file.find("carol")->value == pg_md5_stored("secret", "carol"));
}

TEST_CASE("load_pool_passwd refuses non-files and warns about loose permissions") {
    TempDir dir;
    CHECK_FALSE(load_pool_passwd(dir.path).ok);
    PoolPasswdLoad missing = load_pool_passwd(dir.path + "/none");
    CHECK_FALSE(missing.ok);
    CHECK(missing.error.find("could not open") != std::string::npos);

    auto strict = load_pool_passwd(dir.write("strict", "u:p\n", 0640));
    CHECK(strict.ok);
    CHECK(strict.warnings.empty());
    auto loose = load_pool_passwd(dir.write("loose", "u:p\n", 0644));
    CHECK(loose.ok);
    REQUIRE(loose.warnings.size() == 1);
    CHECK(loose.warnings[0].find("world access") != std::string::npos);
}

TEST_CASE("pool_passwd update keeps the other lines") {
    CHECK(update_pool_passwd_text("", "alice", "md5x") == "alice:md5x\n");
    CHECK(update_pool_passwd_text("a:1\nalice:old:map:x\nb:2", "alice", "AESnew") == "a:1\nalice:AESnew\nb:2");
    CHECK(update_pool_passwd_text("a:1\nb:2", "c", "3") == "a:1\nb:2\nc:3\n");
    CHECK(update_pool_passwd_text("alicex:1\n", "alice", "2") == "alicex:1\nalice:2\n");
    CHECK(update_pool_passwd_text("x\\:y:1\n", "x:y", "2") == "x\\:y:2\n");

    TempDir dir;
    std::string path = dir.path + "/pool_passwd";
    std::string error;
    REQUIRE(update_pool_passwd_file(path, "alice", "TEXTa", &error));
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);  // created private
    chmod(path.c_str(), 0640);
    REQUIRE(update_pool_passwd_file(path, "bob", "TEXTb", &error));
    REQUIRE(update_pool_passwd_file(path, "alice", "TEXTc", &error));
    CHECK(read_file(path) == "alice:TEXTc\nbob:TEXTb\n");
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);  // mode kept across the rename
    CHECK_FALSE(update_pool_passwd_file(dir.path + "/no/such/dir/pool_passwd", "a", "b", &error));
    CHECK_FALSE(error.empty());
}

TEST_CASE("pool key file: first line, PGPOOLKEYFILE, pgpool's permission warning") {
    TempDir dir;
    std::string key_path = dir.write("key", "pgpool secret key\nsecond line\n", 0600);
    PoolKey k = read_pool_key(key_path);
    CHECK(k.key == std::optional<std::string>(kKeyText));
    CHECK(k.warnings.empty());

    chmod(key_path.c_str(), 0644);
    k = read_pool_key(key_path);
    CHECK(k.key == std::optional<std::string>(kKeyText));  // still used, as pgpool does
    REQUIRE(k.warnings.size() == 1);
    CHECK(k.warnings[0] == "pool key file \"" + key_path +
                               "\" has group or world access; permissions should be u=rw (0600) or less");

    CHECK_FALSE(read_pool_key(dir.path + "/missing").key);
    k = read_pool_key(dir.path);
    CHECK_FALSE(k.key);
    CHECK(k.warnings.size() == 1);

    // "\r" is kept, as pgpool only strips "\n"; an over-long line is cut at 255 bytes.
    CHECK(read_pool_key(dir.write("crlf", "abc\r\n", 0600)).key == std::optional<std::string>("abc\r"));
    CHECK(read_pool_key(dir.write("long", std::string(300, 'k'), 0600)).key->size() == kMaxPoolKeyLength);
    CHECK(read_pool_key(dir.write("nonl", "last", 0600)).key == std::optional<std::string>("last"));

    const char* old = std::getenv("PGPOOLKEYFILE");
    std::string saved = old ? old : "";
    setenv("PGPOOLKEYFILE", key_path.c_str(), 1);
    CHECK(default_pool_key_path() == key_path);
    CHECK(read_pool_key("").key == std::optional<std::string>(kKeyText));
    unsetenv("PGPOOLKEYFILE");
    CHECK(default_pool_key_path().find("/.pgpoolkey") != std::string::npos);
    if (old) setenv("PGPOOLKEYFILE", saved.c_str(), 1);
}
