// SCRAM-SHA-256(-PLUS) server side (RFC 5802 / 7677 / 5929) as PostgreSQL speaks it to clients.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "daemon/auth/scram_client.hpp"

namespace splitpool::auth {

constexpr std::string_view kScramPlusMechanism = "SCRAM-SHA-256-PLUS";
constexpr std::string_view kTlsServerEndPoint = "tls-server-end-point";

struct ScramServerResult {
    bool ok = false;
    // When !ok: true if the client proved a wrong password (SQLSTATE 28P01), false for a malformed or
    // out-of-order message or a channel-binding problem (08P01 / 28000).
    bool wrong_password = false;
    std::string value;  // the message to send when ok, the reason (for the log, not the client) otherwise
};

// One SCRAM exchange with a client. Use: sasl_mechanisms() for AuthenticationSASL;
// handle_client_first() on SASLInitialResponse -> AuthenticationSASLContinue data;
// handle_client_final() on SASLResponse -> AuthenticationSASLFinal data, then AuthenticationOk.
// Any failure leaves the instance failed; every later step fails too.
class ScramServer {
public:
    static ScramServer with_verifier(const ScramVerifier& verifier);
    // A fresh verifier from the plaintext (random salt), as pgpool does for every login; nullopt only
    // if OpenSSL fails. The password is not SASLprep-normalised (see ScramClient::with_password).
    static std::optional<ScramServer> with_password(std::string_view password,
                                                    int iterations = kScramDefaultIterations);
    // For a user without a usable entry: the exchange looks like a real one (salt fixed per user for the
    // life of the process) and always ends in a wrong-password failure, so probing reveals nothing.
    static ScramServer mock(std::string_view user);

    ScramServer(ScramServer&&) noexcept = default;
    ScramServer& operator=(ScramServer&&) noexcept = default;
    ScramServer(const ScramServer&) = delete;
    ScramServer& operator=(const ScramServer&) = delete;
    ~ScramServer();  // wipes the keys

    // The tls-server-end-point hash of our certificate (io::tls_server_end_point()); offers
    // SCRAM-SHA-256-PLUS. Set it before sasl_mechanisms() and handle_client_first().
    void set_channel_binding(std::string data);
    // Tests inject a fixed nonce (printable ASCII without ','); otherwise 18 random bytes are drawn.
    void set_server_nonce(std::string nonce);

    // AuthenticationSASL payload after the int32 code: each name NUL-terminated, then an empty name.
    std::string sasl_mechanisms() const;
    ScramServerResult handle_client_first(std::string_view mechanism, std::string_view client_first);
    ScramServerResult handle_client_final(std::string_view client_final);

    bool done() const { return state_ == State::Done; }
    bool channel_binding_used() const { return gs2_flag_ == 'p'; }
    // ClientProof XOR ClientSignature, known once the proof is verified: lets the proxy log in to a
    // backend holding the same verifier with ScramClient::with_client_key().
    std::optional<Sha256Digest> client_key() const;
    const ScramVerifier& verifier() const { return verifier_; }

private:
    enum class State { Initial, FirstReceived, Done, Failed };

    ScramServer() = default;
    ScramServerResult fail(std::string reason, bool wrong_password = false);
    bool check_mechanism(std::string_view mechanism, std::string* error) const;
    bool parse_gs2_header(std::string_view& rest, std::string* error);

    State state_ = State::Initial;
    ScramVerifier verifier_;
    bool mock_ = false;
    std::optional<std::string> cb_data_;
    char gs2_flag_ = 'n';
    std::string gs2_header_;
    std::string client_nonce_;
    std::string server_nonce_;
    std::string client_first_bare_;
    std::string server_first_;
    std::optional<Sha256Digest> client_key_;
};

}  // namespace splitpool::auth
