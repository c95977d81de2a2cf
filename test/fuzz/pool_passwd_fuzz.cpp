// libFuzzer target: pool_passwd parsing, entry classification and decoding (AES with a key, SCRAM
// verifiers), and the pg_enc / pg_md5 -m update: after update_pool_passwd_text() the file must give
// the new value for that user and the old values for every other user.
#include <string>

#include "daemon/auth/aes.hpp"
#include "daemon/auth/pool_passwd.hpp"
#include "daemon/auth/scram_client.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;
using namespace splitpool::auth;

namespace {

const std::optional<std::string> kKey = std::string("pgpool secret key");
const std::string kMd5 = "md5" + std::string(32, 'e');
// A well-formed verifier (keys are 32 zero bytes); it holds two ':' of its own.
const std::string kScram = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

void check_entry(const std::string& user, const PasswordEntry& e) {
    FUZZ_CHECK(!e.value.empty(), "an empty password was stored for " + user);
    FUZZ_CHECK(classify_password(e.value).kind == e.kind);
    FUZZ_CHECK(!password_kind_name(e.kind).empty());
    std::optional<std::string> plain = plaintext(e, kKey);
    switch (e.kind) {
    case PasswordKind::Plain: FUZZ_CHECK(plain && *plain == e.value); break;
    case PasswordKind::Text: FUZZ_CHECK(plain && *plain == e.value.substr(4)); break;
    case PasswordKind::Md5:
        FUZZ_CHECK(!plain);
        FUZZ_CHECK(e.value.size() == 35);
        break;
    case PasswordKind::ScramSha256: {
        FUZZ_CHECK(!plain);
        // Parse, format, parse: the same verifier (the text itself may differ in base64 padding bits).
        if (auto v = parse_scram_verifier(e.value)) {
            auto again = parse_scram_verifier(format_scram_verifier(*v));
            FUZZ_CHECK(again && again->iterations == v->iterations && again->salt == v->salt &&
                           again->stored_key == v->stored_key && again->server_key == v->server_key,
                       e.value);
        }
        break;
    }
    case PasswordKind::Aes:
        if (plain) {
            // A successful decryption re-encrypts to the same ciphertext (pgpool's fixed IV).
            auto enc = aes_encrypt_password(*plain, *kKey);
            FUZZ_CHECK(enc.has_value());
            FUZZ_CHECK(aes_decrypt_password(*enc, *kKey) == plain);
        }
        FUZZ_CHECK(!plaintext(e, std::nullopt), "AES decrypted without a key");
        break;
    }
}

// Updates `user` to `stored` and checks what a reload would see.
void check_update(std::string_view text, const PoolPasswd& before, const std::string& user, const std::string& stored) {
    std::string updated = update_pool_passwd_text(text, user, stored);
    PoolPasswdLoad after = parse_pool_passwd(updated);
    FUZZ_CHECK(after.ok);
    const PasswordEntry* e = after.file.find(user);
    FUZZ_CHECK(e != nullptr, "updated user \"" + user + "\" is missing after the update");
    FUZZ_CHECK(e->value == stored, "updated user \"" + user + "\" reads back as \"" + e->value + "\"");
    for (const auto& [name, entry] : before.entries) {
        if (name == user) continue;
        const PasswordEntry* other = after.file.find(name);
        FUZZ_CHECK(other != nullptr && other->value == entry.value, "the update changed user \"" + name + "\"");
    }
    for (const auto& [name, entry] : after.file.entries)
        FUZZ_CHECK(name == user || before.find(name) != nullptr, "the update added user \"" + name + "\"");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > fuzz::kMaxInput) return -1;
    std::string_view text = fuzz::as_text(data, size);
    PoolPasswdLoad load = parse_pool_passwd(text, "pool_passwd");
    FUZZ_CHECK(load.ok && load.error.empty(), "parse_pool_passwd never fails");
    for (const auto& [user, entry] : load.file.entries) {
        FUZZ_CHECK(user.find('\n') == std::string::npos);
        FUZZ_CHECK(load.file.find(user) == &entry);
        check_entry(user, entry);
    }

    // pg_md5 -m / pg_enc -m: an existing user (the first one the map yields), and a new one.
    if (!load.file.entries.empty()) {
        const std::string& user = load.file.entries.begin()->first;
        check_update(text, load.file, user, kMd5);
        check_update(text, load.file, user, kScram);
    }
    check_update(text, load.file, "fuzz:new\\user", kMd5);
    return 0;
}
