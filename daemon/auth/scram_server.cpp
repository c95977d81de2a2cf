// SCRAM-SHA-256 server exchange: message parsing as PostgreSQL's auth-scram.c, proof check in constant time.
#include "daemon/auth/scram_server.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "daemon/auth/base64.hpp"

namespace splitpool::auth {

namespace {

constexpr size_t kRawNonceLength = 18;  // PostgreSQL's SCRAM_RAW_NONCE_LEN

bool is_printable(std::string_view s) {
    for (char c : s) {
        if (c < 0x21 || c > 0x7e || c == ',') return false;
    }
    return !s.empty();
}

// Takes "<name>=<value>" and the ',' after it off the front of `rest`.
bool take_attr(std::string_view& rest, char name, std::string_view& value) {
    if (rest.size() < 2 || rest[0] != name || rest[1] != '=') return false;
    size_t comma = rest.find(',', 2);
    value = rest.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    return true;
}

// Any "<letter>=<value>" attribute (extensions we do not act on).
bool take_any_attr(std::string_view& rest) {
    if (rest.size() < 2 || rest[1] != '=' || !((rest[0] >= 'a' && rest[0] <= 'z') || (rest[0] >= 'A' && rest[0] <= 'Z')))
        return false;
    std::string_view ignored;
    return take_attr(rest, rest[0], ignored);
}

std::optional<std::string> random_nonce() {
    unsigned char raw[kRawNonceLength];
    if (RAND_bytes(raw, sizeof raw) != 1) return std::nullopt;
    return base64_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

// A per-process secret so that mock salts are stable for a user but unpredictable across restarts.
const std::string& mock_secret() {
    static const std::string secret = [] {
        std::string s(32, '\0');
        if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(s.size())) != 1) s.clear();
        return s;
    }();
    return secret;
}

}  // namespace

ScramServer ScramServer::with_verifier(const ScramVerifier& verifier) {
    ScramServer s;
    s.verifier_ = verifier;
    return s;
}

std::optional<ScramServer> ScramServer::with_password(std::string_view password, int iterations) {
    auto verifier = parse_scram_verifier(make_scram_verifier(password, iterations));
    if (!verifier) return std::nullopt;
    return with_verifier(*verifier);
}

ScramServer ScramServer::mock(std::string_view user) {
    ScramServer s;
    s.mock_ = true;
    s.verifier_.iterations = kScramDefaultIterations;
    auto salt = hmac_sha256(mock_secret(), user);
    s.verifier_.salt = salt ? std::string(digest_view(*salt).substr(0, kScramDefaultSaltLength))
                            : std::string(kScramDefaultSaltLength, 'x');
    return s;
}

ScramServer::~ScramServer() {
    OPENSSL_cleanse(verifier_.stored_key.data(), verifier_.stored_key.size());
    OPENSSL_cleanse(verifier_.server_key.data(), verifier_.server_key.size());
    if (client_key_) OPENSSL_cleanse(client_key_->data(), client_key_->size());
}

void ScramServer::set_channel_binding(std::string data) {
    if (state_ == State::Initial && !data.empty()) cb_data_ = std::move(data);
}

void ScramServer::set_server_nonce(std::string nonce) {
    if (state_ == State::Initial) server_nonce_ = std::move(nonce);
}

std::string ScramServer::sasl_mechanisms() const {
    std::string out;
    // PostgreSQL lists the -PLUS variant first when it can bind to the TLS channel.
    if (cb_data_) out.append(kScramPlusMechanism).push_back('\0');
    out.append(kScramMechanism).push_back('\0');
    out.push_back('\0');
    return out;
}

std::optional<Sha256Digest> ScramServer::client_key() const {
    if (state_ != State::Done) return std::nullopt;
    return client_key_;
}

ScramServerResult ScramServer::fail(std::string reason, bool wrong_password) {
    state_ = State::Failed;
    ScramServerResult r;
    r.wrong_password = wrong_password;
    r.value = std::move(reason);
    return r;
}

bool ScramServer::check_mechanism(std::string_view mechanism, std::string* error) const {
    if (mechanism == kScramMechanism || (mechanism == kScramPlusMechanism && cb_data_)) return true;
    *error = "client selected an invalid SASL authentication mechanism";
    return false;
}

// gs2-header: ("n" | "y" | "p=" cb-name) "," [authzid] ","
bool ScramServer::parse_gs2_header(std::string_view& rest, std::string* error) {
    std::string_view start = rest;
    if (rest.empty()) {
        *error = "malformed SCRAM message: empty client-first-message";
        return false;
    }
    gs2_flag_ = rest[0];
    if (gs2_flag_ == 'p') {
        std::string_view cb_name;
        if (!take_attr(rest, 'p', cb_name)) {
            *error = "malformed SCRAM message: bad channel binding flag";
            return false;
        }
        if (cb_name != kTlsServerEndPoint) {
            *error = "unsupported SCRAM channel-binding type \"" + std::string(cb_name) + "\"";
            return false;
        }
        if (!cb_data_) {
            *error = "client requires SCRAM channel binding, but it is not supported on this connection";
            return false;
        }
    } else if (gs2_flag_ == 'n' || gs2_flag_ == 'y') {
        if (rest.size() < 2 || rest[1] != ',') {
            *error = "malformed SCRAM message: bad channel binding flag";
            return false;
        }
        // 'y' means the client could bind but thinks we cannot: with TLS we can, so someone stripped
        // SCRAM-SHA-256-PLUS from our mechanism list on the way (RFC 5802 section 6).
        if (gs2_flag_ == 'y' && cb_data_) {
            *error = "SCRAM channel binding negotiation error: the client supports channel binding but thinks "
                     "the server does not";
            return false;
        }
        rest.remove_prefix(2);
    } else {
        *error = "malformed SCRAM message: unexpected channel-binding flag";
        return false;
    }
    if (!rest.empty() && rest[0] == 'a') {
        *error = "client uses authorization identity, but it is not supported";
        return false;
    }
    if (rest.empty() || rest[0] != ',') {
        *error = "malformed SCRAM message: unexpected attribute in client-first-message";
        return false;
    }
    rest.remove_prefix(1);
    gs2_header_ = std::string(start.substr(0, start.size() - rest.size()));
    return true;
}

ScramServerResult ScramServer::handle_client_first(std::string_view mechanism, std::string_view client_first) {
    if (state_ != State::Initial) return fail("SCRAM client-first-message out of order");
    std::string error;
    std::string_view rest = client_first;
    if (!check_mechanism(mechanism, &error) || !parse_gs2_header(rest, &error)) return fail(std::move(error));
    if (mechanism == kScramPlusMechanism && gs2_flag_ != 'p')
        return fail("client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data");
    if (mechanism == kScramMechanism && gs2_flag_ == 'p')
        return fail("client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes "
                    "channel binding data");
    client_first_bare_ = std::string(rest);
    if (!rest.empty() && rest[0] == 'm') return fail("client requires an unsupported SCRAM extension");
    std::string_view user, nonce;
    // The user name is ignored, as by PostgreSQL: the startup packet's user is the one authenticated.
    if (!take_attr(rest, 'n', user) || !take_attr(rest, 'r', nonce) || !is_printable(nonce))
        return fail("malformed SCRAM message: invalid client-first-message-bare");
    while (!rest.empty()) {
        if (!take_any_attr(rest)) return fail("malformed SCRAM message: garbage at end of client-first-message");
    }
    client_nonce_ = std::string(nonce);
    if (server_nonce_.empty()) {
        auto n = random_nonce();
        if (!n) return fail("could not generate random nonce");
        server_nonce_ = std::move(*n);
    }
    if (!is_printable(server_nonce_)) return fail("server nonce is not printable");
    server_first_ = "r=" + client_nonce_ + server_nonce_ + ",s=" + base64_encode(verifier_.salt) +
                    ",i=" + std::to_string(verifier_.iterations);
    state_ = State::FirstReceived;
    ScramServerResult r;
    r.ok = true;
    r.value = server_first_;
    return r;
}

ScramServerResult ScramServer::handle_client_final(std::string_view client_final) {
    if (state_ != State::FirstReceived) return fail("SCRAM client-final-message out of order");
    std::string_view rest = client_final, cbind, nonce, proof_b64;
    if (!take_attr(rest, 'c', cbind)) return fail("malformed SCRAM message: expected channel-binding attribute");
    std::string expected_cbind = gs2_header_ + (gs2_flag_ == 'p' ? *cb_data_ : std::string());
    if (base64_decode(cbind) != std::optional<std::string>(expected_cbind))
        return fail(gs2_flag_ == 'p' ? "SCRAM channel binding check failed"
                                     : "unexpected SCRAM channel-binding attribute in client-final-message");
    if (!take_attr(rest, 'r', nonce) || nonce != client_nonce_ + server_nonce_)
        return fail("malformed SCRAM message: nonce does not match");
    while (!rest.empty() && !(rest.size() >= 2 && rest[0] == 'p' && rest[1] == '=')) {
        if (!take_any_attr(rest)) return fail("malformed SCRAM message: bad attribute in client-final-message");
    }
    std::string_view without_proof = client_final.substr(0, client_final.size() - rest.size());
    if (without_proof.empty() || without_proof.back() != ',')
        return fail("malformed SCRAM message: missing proof");
    without_proof.remove_suffix(1);
    if (!take_attr(rest, 'p', proof_b64) || !rest.empty())
        return fail("malformed SCRAM message: the proof must be the last attribute");
    auto proof = base64_decode(proof_b64);
    if (!proof || proof->size() != Sha256Digest().size()) return fail("malformed SCRAM message: invalid proof");

    std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
    auto signature = hmac_sha256(verifier_.stored_key, auth_message);
    if (!signature) return fail("HMAC failed");
    Sha256Digest key;
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>((*proof)[i]) ^ (*signature)[i];
    auto stored = scram_stored_key(key);
    bool match = stored && CRYPTO_memcmp(stored->data(), verifier_.stored_key.data(), stored->size()) == 0;
    if (!match || mock_) {
        OPENSSL_cleanse(key.data(), key.size());
        return fail("password does not match", true);
    }
    auto server_signature = hmac_sha256(verifier_.server_key, auth_message);
    if (!server_signature) return fail("HMAC failed");
    client_key_ = key;
    OPENSSL_cleanse(key.data(), key.size());
    state_ = State::Done;
    ScramServerResult r;
    r.ok = true;
    r.value = "v=" + base64_encode(digest_view(*server_signature));
    return r;
}

}  // namespace splitpool::auth
