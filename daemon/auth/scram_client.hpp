// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: the client side of the SASL exchange,
// plus the key-derivation primitives and pg_authid verifier format a server side will reuse.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace splitpool::auth {

using Sha256Digest = std::array<unsigned char, 32>;

constexpr std::string_view kScramMechanism = "SCRAM-SHA-256";
constexpr int kScramDefaultIterations = 4096;       // PostgreSQL's scram_iterations default
constexpr size_t kScramDefaultSaltLength = 16;      // PostgreSQL's SCRAM_DEFAULT_SALT_LEN
constexpr int kScramMaxIterations = 10'000'000;     // above this a server-first is treated as hostile
constexpr size_t kScramRawNonceLength = 18;         // as libpq: 18 random bytes, sent base64-encoded

// ---- Primitives. Each returns std::nullopt only if OpenSSL itself fails (e.g. a provider is missing);
// callers must not fall back to a zero key, which would be guessable.
std::optional<Sha256Digest> sha256(std::string_view data);
std::optional<Sha256Digest> hmac_sha256(std::string_view key, std::string_view data);
std::optional<Sha256Digest> hmac_sha256(const Sha256Digest& key, std::string_view data);
// Hi(password, salt, i) of RFC 5802 = PBKDF2-HMAC-SHA-256 with a 32-byte output; nullopt for iterations < 1.
std::optional<Sha256Digest> scram_salted_password(std::string_view password, std::string_view salt, int iterations);
std::optional<Sha256Digest> scram_client_key(const Sha256Digest& salted_password);  // HMAC(salted, "Client Key")
std::optional<Sha256Digest> scram_server_key(const Sha256Digest& salted_password);  // HMAC(salted, "Server Key")
std::optional<Sha256Digest> scram_stored_key(const Sha256Digest& client_key);       // H(ClientKey)

inline std::string_view digest_view(const Sha256Digest& d) {
    return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// A pg_authid / pool_passwd SCRAM secret: "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>".
struct ScramVerifier {
    int iterations = 0;
    std::string salt;  // raw bytes, not base64
    Sha256Digest stored_key{};
    Sha256Digest server_key{};
};

// nullopt for anything that is not exactly PostgreSQL's format (also for an iteration count out of range).
std::optional<ScramVerifier> parse_scram_verifier(std::string_view text);
std::string format_scram_verifier(const ScramVerifier& verifier);
// The secret PostgreSQL would store for this password, salt and iteration count; empty on failure.
std::string make_scram_verifier(std::string_view password, std::string_view salt,
                                int iterations = kScramDefaultIterations);
// Same with a fresh random salt of kScramDefaultSaltLength bytes.
std::string make_scram_verifier(std::string_view password, int iterations = kScramDefaultIterations);

// Either the next message to send (ok) or why the exchange must be abandoned.
struct ScramResult {
    bool ok = false;
    std::string value;  // message when ok, error text otherwise
};

// One SCRAM-SHA-256 login as a client. Use: client_first() -> SASLInitialResponse; handle_server_first()
// on AuthenticationSASLContinue -> SASLResponse; verify_server_final() on AuthenticationSASLFinal, and
// only then trust the AuthenticationOk that follows. Channel binding is not used (gs2 header "n,,").
// An instance serves one exchange; any failure leaves it in a failed state where every step fails.
class ScramClient {
public:
    // PostgreSQL runs SASLprep on the password. We pass the bytes through unchanged: identical for ASCII
    // passwords (PostgreSQL also leaves those alone) and for non-ASCII passwords that are already
    // NFKC-normalised without mapped characters; other non-ASCII passwords may fail to log in.
    static ScramClient with_password(std::string password);
    // For a proxy that recovered the ClientKey from a client's proof and so never saw the password.
    // Salt and iteration count from the server are then not used. Without `server_key` the server's
    // signature cannot be checked: verify_server_final() accepts any well-formed "v=" and
    // server_verified() stays false, so the caller knows the server was not authenticated.
    static ScramClient with_client_key(const Sha256Digest& client_key, std::optional<Sha256Digest> server_key);

    ScramClient(ScramClient&& other) noexcept;
    ScramClient& operator=(ScramClient&& other) noexcept;
    ScramClient(const ScramClient&) = delete;
    ScramClient& operator=(const ScramClient&) = delete;
    ~ScramClient();  // wipes the password and keys

    // PostgreSQL ignores the user name in the message (it uses the startup packet's), so it defaults to
    // empty; setting it exists for RFC test vectors. Both setters only take effect before client_first().
    void set_user_name(std::string user_name);
    // Tests inject a fixed nonce; otherwise client_first() draws 18 random bytes. Must be printable
    // ASCII without ','.
    void set_client_nonce(std::string nonce);

    // "n,,n=<user>,r=<nonce>"; empty if the random generator fails or it is called out of order.
    std::string client_first();
    // Parses "r=...,s=...,i=..." and returns "c=biws,r=...,p=<proof>".
    ScramResult handle_server_first(std::string_view server_first);
    // Accepts "v=<signature>" matching the expected signature; "e=..." or a mismatch is an error.
    bool verify_server_final(std::string_view server_final, std::string* error);

    bool server_verified() const { return state_ == State::Done && server_key_.has_value(); }
    bool done() const { return state_ == State::Done; }

private:
    enum class State { Initial, FirstSent, FinalSent, Done, Failed };

    ScramClient() = default;
    ScramResult fail(std::string error);
    void wipe();
    bool derive_keys(std::string_view salt, int iterations, std::string* error);

    State state_ = State::Initial;
    std::string password_;
    bool have_password_ = false;
    std::optional<Sha256Digest> client_key_;
    std::optional<Sha256Digest> server_key_;
    std::string user_name_;
    std::string client_nonce_;
    std::string client_first_bare_;
    std::string auth_message_;
};

}  // namespace splitpool::auth
