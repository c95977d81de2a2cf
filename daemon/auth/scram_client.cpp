// SCRAM-SHA-256 client exchange and key derivation over OpenSSL (PBKDF2, HMAC, SHA-256, RAND).
#include "daemon/auth/scram_client.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "daemon/auth/base64.hpp"

namespace splitpool::auth {

namespace {

// "n,," : no channel binding and no authzid. PostgreSQL accepts it whether or not TLS is in use.
constexpr std::string_view kGs2Header = "n,,";
constexpr std::string_view kVerifierPrefix = "SCRAM-SHA-256$";

// OpenSSL treats a null key pointer specially in some paths, so an empty key/password points here.
const unsigned char kEmpty[1] = {0};

const unsigned char* bytes_of(std::string_view s) {
    return s.empty() ? kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

// Takes "<name>=<value>" off the front of `rest`, together with the ',' that ends it.
bool take_attribute(std::string_view& rest, char name, std::string_view& value) {
    if (rest.size() < 2 || rest[0] != name || rest[1] != '=') return false;
    size_t comma = rest.find(',', 2);
    value = rest.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    return true;
}

// RFC 5802 "printable": %x21-2B / %x2D-7E.
bool is_printable_nonce(std::string_view s) {
    for (char c : s) {
        if (c < 0x21 || c > 0x7e || c == ',') return false;
    }
    return !s.empty();
}

// Decimal digits only (no sign, no spaces), within [1, kScramMaxIterations].
std::optional<int> parse_iterations(std::string_view s) {
    if (s.empty() || s.size() > 9) return std::nullopt;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    int value = 0;
    std::from_chars(s.data(), s.data() + s.size(), value);
    if (value < 1 || value > kScramMaxIterations) return std::nullopt;
    return value;
}

// RFC 5802 saslname: ',' and '=' must be escaped.
std::string escape_sasl_name(std::string_view name) {
    std::string out;
    for (char c : name) {
        if (c == '=') out += "=3D";
        else if (c == ',') out += "=2C";
        else out += c;
    }
    return out;
}

std::optional<Sha256Digest> decode_key(std::string_view b64) {
    auto raw = base64_decode(b64);
    if (!raw || raw->size() != Sha256Digest().size()) return std::nullopt;
    Sha256Digest d;
    std::copy(raw->begin(), raw->end(), d.begin());
    return d;
}

struct ServerFirst {
    std::string_view nonce;
    std::string salt;
    int iterations = 0;
};

// Strict like libpq: r, s, i in that order and nothing after them.
bool parse_server_first(std::string_view msg, std::string_view client_nonce, ServerFirst& out, std::string* error) {
    std::string_view rest = msg, salt_b64, iter_text;
    if (msg.substr(0, 2) == "m=") {
        *error = "SCRAM server-first-message demands an unsupported mandatory extension";
        return false;
    }
    if (!take_attribute(rest, 'r', out.nonce) || !take_attribute(rest, 's', salt_b64) ||
        !take_attribute(rest, 'i', iter_text) || !rest.empty() || msg.back() == ',') {
        *error = "malformed SCRAM server-first-message";
        return false;
    }
    if (!is_printable_nonce(out.nonce) || out.nonce.size() <= client_nonce.size() ||
        out.nonce.substr(0, client_nonce.size()) != client_nonce) {
        *error = "SCRAM server nonce does not extend the client nonce";
        return false;
    }
    auto salt = base64_decode(salt_b64);
    if (!salt || salt->empty()) {
        *error = "SCRAM server-first-message has a missing or invalid salt";
        return false;
    }
    out.salt = std::move(*salt);
    auto iterations = parse_iterations(iter_text);
    if (!iterations) {
        *error = "SCRAM iteration count is not a number between 1 and 10000000";
        return false;
    }
    out.iterations = *iterations;
    return true;
}

}  // namespace

std::optional<Sha256Digest> sha256(std::string_view data) {
    Sha256Digest out;
    unsigned int length = 0;
    if (EVP_Digest(bytes_of(data), data.size(), out.data(), &length, EVP_sha256(), nullptr) != 1 ||
        length != out.size())
        return std::nullopt;
    return out;
}

std::optional<Sha256Digest> hmac_sha256(std::string_view key, std::string_view data) {
    Sha256Digest out;
    unsigned int length = 0;
    if (!HMAC(EVP_sha256(), bytes_of(key), static_cast<int>(key.size()), bytes_of(data), data.size(), out.data(),
              &length) ||
        length != out.size())
        return std::nullopt;
    return out;
}

std::optional<Sha256Digest> hmac_sha256(const Sha256Digest& key, std::string_view data) {
    return hmac_sha256(digest_view(key), data);
}

std::optional<Sha256Digest> scram_salted_password(std::string_view password, std::string_view salt, int iterations) {
    if (iterations < 1) return std::nullopt;
    Sha256Digest out;
    if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(bytes_of(password)), static_cast<int>(password.size()),
                          bytes_of(salt), static_cast<int>(salt.size()), iterations, EVP_sha256(),
                          static_cast<int>(out.size()), out.data()) != 1)
        return std::nullopt;
    return out;
}

std::optional<Sha256Digest> scram_client_key(const Sha256Digest& salted_password) {
    return hmac_sha256(salted_password, "Client Key");
}

std::optional<Sha256Digest> scram_server_key(const Sha256Digest& salted_password) {
    return hmac_sha256(salted_password, "Server Key");
}

std::optional<Sha256Digest> scram_stored_key(const Sha256Digest& client_key) {
    return sha256(digest_view(client_key));
}

std::optional<ScramVerifier> parse_scram_verifier(std::string_view text) {
    if (text.substr(0, kVerifierPrefix.size()) != kVerifierPrefix) return std::nullopt;
    text.remove_prefix(kVerifierPrefix.size());
    size_t colon1 = text.find(':'), dollar = text.find('$'), colon2 = text.rfind(':');
    if (colon1 == std::string_view::npos || dollar == std::string_view::npos || !(colon1 < dollar) ||
        !(dollar < colon2))
        return std::nullopt;
    auto iterations = parse_iterations(text.substr(0, colon1));
    auto salt = base64_decode(text.substr(colon1 + 1, dollar - colon1 - 1));
    auto stored_key = decode_key(text.substr(dollar + 1, colon2 - dollar - 1));
    auto server_key = decode_key(text.substr(colon2 + 1));
    if (!iterations || !salt || salt->empty() || !stored_key || !server_key) return std::nullopt;
    return ScramVerifier{*iterations, std::move(*salt), *stored_key, *server_key};
}

std::string format_scram_verifier(const ScramVerifier& v) {
    return std::string(kVerifierPrefix) + std::to_string(v.iterations) + ":" + base64_encode(v.salt) + "$" +
           base64_encode(digest_view(v.stored_key)) + ":" + base64_encode(digest_view(v.server_key));
}

std::string make_scram_verifier(std::string_view password, std::string_view salt, int iterations) {
    auto salted = scram_salted_password(password, salt, iterations);
    if (!salted || salt.empty()) return {};
    auto client_key = scram_client_key(*salted);
    auto server_key = scram_server_key(*salted);
    OPENSSL_cleanse(salted->data(), salted->size());
    if (!client_key || !server_key) return {};
    auto stored_key = scram_stored_key(*client_key);
    OPENSSL_cleanse(client_key->data(), client_key->size());
    if (!stored_key) return {};
    return format_scram_verifier(ScramVerifier{iterations, std::string(salt), *stored_key, *server_key});
}

std::string make_scram_verifier(std::string_view password, int iterations) {
    unsigned char salt[kScramDefaultSaltLength];
    if (RAND_bytes(salt, sizeof salt) != 1) return {};
    return make_scram_verifier(password, std::string_view(reinterpret_cast<char*>(salt), sizeof salt), iterations);
}

// ---- ScramClient

ScramClient ScramClient::with_password(std::string password) {
    ScramClient c;
    c.password_ = std::move(password);
    c.have_password_ = true;
    return c;
}

ScramClient ScramClient::with_client_key(const Sha256Digest& client_key, std::optional<Sha256Digest> server_key) {
    ScramClient c;
    c.client_key_ = client_key;
    c.server_key_ = server_key;
    return c;
}

ScramClient::ScramClient(ScramClient&& other) noexcept { *this = std::move(other); }

ScramClient& ScramClient::operator=(ScramClient&& other) noexcept {
    if (this == &other) return *this;
    wipe();
    state_ = other.state_;
    password_ = other.password_;
    have_password_ = other.have_password_;
    client_key_ = other.client_key_;
    server_key_ = other.server_key_;
    user_name_ = std::move(other.user_name_);
    client_nonce_ = std::move(other.client_nonce_);
    client_first_bare_ = std::move(other.client_first_bare_);
    auth_message_ = std::move(other.auth_message_);
    other.wipe();  // copy-then-wipe so no secret lingers in the moved-from object's buffers
    other.state_ = State::Failed;
    return *this;
}

ScramClient::~ScramClient() { wipe(); }

void ScramClient::wipe() {
    if (!password_.empty()) OPENSSL_cleanse(password_.data(), password_.size());
    password_.clear();
    if (client_key_) OPENSSL_cleanse(client_key_->data(), client_key_->size());
    if (server_key_) OPENSSL_cleanse(server_key_->data(), server_key_->size());
}

void ScramClient::set_user_name(std::string user_name) {
    if (state_ == State::Initial) user_name_ = std::move(user_name);
}

void ScramClient::set_client_nonce(std::string nonce) {
    if (state_ == State::Initial) client_nonce_ = std::move(nonce);
}

ScramResult ScramClient::fail(std::string error) {
    state_ = State::Failed;
    wipe();
    return ScramResult{false, std::move(error)};
}

std::string ScramClient::client_first() {
    if (state_ != State::Initial) return {};
    if (client_nonce_.empty()) {
        unsigned char raw[kScramRawNonceLength];
        if (RAND_bytes(raw, sizeof raw) != 1) {
            fail("random generator failed");
            return {};
        }
        client_nonce_ = base64_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
    }
    if (!is_printable_nonce(client_nonce_)) {
        fail("client nonce is not printable");
        return {};
    }
    client_first_bare_ = "n=" + escape_sasl_name(user_name_) + ",r=" + client_nonce_;
    state_ = State::FirstSent;
    return std::string(kGs2Header) + client_first_bare_;
}

// With a password the keys depend on the server's salt and count; with a ClientKey they are given.
bool ScramClient::derive_keys(std::string_view salt, int iterations, std::string* error) {
    if (!have_password_) return true;
    auto salted = scram_salted_password(password_, salt, iterations);
    OPENSSL_cleanse(password_.data(), password_.size());
    password_.clear();
    if (!salted) {
        *error = "PBKDF2 failed";
        return false;
    }
    client_key_ = scram_client_key(*salted);
    server_key_ = scram_server_key(*salted);
    OPENSSL_cleanse(salted->data(), salted->size());
    if (!client_key_ || !server_key_) {
        *error = "HMAC failed";
        return false;
    }
    return true;
}

ScramResult ScramClient::handle_server_first(std::string_view server_first) {
    if (state_ != State::FirstSent) return fail("SCRAM server-first-message out of order");
    ServerFirst parsed;
    std::string error;
    if (!parse_server_first(server_first, client_nonce_, parsed, &error)) return fail(std::move(error));
    if (!derive_keys(parsed.salt, parsed.iterations, &error)) return fail(std::move(error));

    // base64("n,,") == "biws"
    std::string final_without_proof = "c=" + base64_encode(kGs2Header) + ",r=" + std::string(parsed.nonce);
    auth_message_ = client_first_bare_ + "," + std::string(server_first) + "," + final_without_proof;
    auto stored_key = scram_stored_key(*client_key_);
    auto signature = stored_key ? hmac_sha256(*stored_key, auth_message_) : std::nullopt;
    if (!signature) return fail("HMAC failed");
    Sha256Digest proof;
    for (size_t i = 0; i < proof.size(); ++i) proof[i] = (*client_key_)[i] ^ (*signature)[i];
    state_ = State::FinalSent;
    return ScramResult{true, final_without_proof + ",p=" + base64_encode(digest_view(proof))};
}

bool ScramClient::verify_server_final(std::string_view server_final, std::string* error) {
    std::string ignored;
    std::string& err = error ? *error : ignored;
    if (state_ != State::FinalSent) {
        err = fail("SCRAM server-final-message out of order").value;
        return false;
    }
    std::string_view rest = server_final, value;
    if (take_attribute(rest, 'e', value)) {
        err = fail("SCRAM authentication failed on the server: " + std::string(value)).value;
        return false;
    }
    // Extensions after the signature are allowed by RFC 5802 and carry nothing we act on.
    auto signature = take_attribute(rest, 'v', value) ? decode_key(value) : std::nullopt;
    if (!signature) {
        err = fail("malformed SCRAM server-final-message").value;
        return false;
    }
    if (server_key_) {
        auto expected = hmac_sha256(*server_key_, auth_message_);
        if (!expected || CRYPTO_memcmp(expected->data(), signature->data(), signature->size()) != 0) {
            err = fail("SCRAM server signature does not match: the server does not know the password").value;
            return false;
        }
    }
    state_ = State::Done;
    return true;
}

}  // namespace splitpool::auth
