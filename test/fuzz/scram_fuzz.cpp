// libFuzzer target: the SCRAM-SHA-256 server's client-first and client-final parsers.
//
// Input: one flags byte, then the SASLInitialResponse payload exactly as ClientAuth::scram_method
// reads it (mechanism C string, int32 length, client-first-message), then the SASLResponse payload
// (client-final-message) as the rest.
//   flag bit 0: the connection has TLS channel-binding data (SCRAM-SHA-256-PLUS offered)
//   flag bit 1: the server is a mock (a user without an entry: must always fail, as wrong password)
//   flag bit 2: the rest is client-final-without-proof; the target appends the correct proof, so the
//               fuzzer reaches the proof check and the success path
// Checks: a result is ok only for well-formed exchanges; with a correct proof from a real
// verifier the exchange succeeds exactly when channel binding and nonce are right; the ClientKey
// recovered equals the one derived from the password; the server signature is the RFC one.
#include <cstring>
#include <optional>
#include <string>

#include "daemon/auth/base64.hpp"
#include "daemon/auth/scram_client.hpp"
#include "daemon/auth/scram_server.hpp"
#include "daemon/proto/frame.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;
using namespace splitpool::auth;

namespace {

constexpr std::string_view kPassword = "pencil";
constexpr std::string_view kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const std::string kChannelBinding(32, '\x5a');

ScramVerifier g_verifier;
Sha256Digest g_client_key;

Sha256Digest must(const std::optional<Sha256Digest>& d) {
    FUZZ_CHECK(d.has_value(), "OpenSSL failed");
    return *d;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    // RFC 7677's salt and iteration count, computed once.
    std::optional<std::string> salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    auto v = parse_scram_verifier(make_scram_verifier(kPassword, *salt, 4096));
    FUZZ_CHECK(v.has_value());
    g_verifier = *v;
    g_client_key = must(scram_client_key(must(scram_salted_password(kPassword, *salt, 4096))));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 || size > fuzz::kMaxInput) return -1;
    uint8_t flags = data[0];
    bool tls = flags & 1, mock = flags & 2, prove = flags & 4;
    // Exact-size copy of the payloads, so the Reader's bounds are ASan's bounds.
    size_t n = size - 1;
    std::unique_ptr<char[]> buf(new char[n ? n : 1]);
    if (n) std::memcpy(buf.get(), data + 1, n);

    proto::Reader r(buf.get(), n);
    std::string_view mechanism = r.cstr();
    int32_t len = r.i32();
    std::string_view first = r.bytes(len < 0 ? 0 : size_t(len));
    if (!r.ok()) return 0;  // ClientAuth would still call in with empty views; nothing to learn here
    std::string_view final_part(buf.get() + (n - r.remaining()), r.remaining());

    ScramServer server = mock ? ScramServer::mock("fuzz_user") : ScramServer::with_verifier(g_verifier);
    if (tls) server.set_channel_binding(kChannelBinding);
    server.set_server_nonce(std::string(kServerNonce));
    std::string mechanisms = server.sasl_mechanisms();
    FUZZ_CHECK(!mechanisms.empty() && mechanisms.back() == '\0');

    ScramServerResult step = server.handle_client_first(mechanism, first);
    if (!step.ok) {
        FUZZ_CHECK(!step.wrong_password, "client-first failed as a wrong password");
        FUZZ_CHECK(!server.done());
        // Every later step fails too.
        ScramServerResult again = server.handle_client_final(final_part);
        FUZZ_CHECK(!again.ok && !server.done() && !server.client_key());
        return 0;
    }
    FUZZ_CHECK(mechanism == kScramMechanism || (tls && mechanism == kScramPlusMechanism));
    // server-first-message: r=<client nonce><server nonce>,s=<salt>,i=<iterations>
    const std::string& server_first = step.value;
    FUZZ_CHECK(server_first.substr(0, 2) == "r=", server_first);
    size_t nonce_end = server_first.find(',');
    FUZZ_CHECK(nonce_end != std::string::npos);
    std::string nonce = server_first.substr(2, nonce_end - 2);
    FUZZ_CHECK(nonce.size() > kServerNonce.size() &&
                   nonce.compare(nonce.size() - kServerNonce.size(), kServerNonce.size(), kServerNonce) == 0,
               "server-first does not carry our nonce");
    FUZZ_CHECK(server_first.find(",s=") == nonce_end);
    FUZZ_CHECK(first.find(nonce.substr(0, nonce.size() - kServerNonce.size())) != std::string_view::npos);

    // gs2-header: everything up to the second ',' (an authzid is refused above).
    size_t c1 = first.find(','), c2 = c1 == std::string_view::npos ? c1 : first.find(',', c1 + 1);
    FUZZ_CHECK(c2 != std::string_view::npos, "client-first accepted without a gs2 header");
    std::string gs2(first.substr(0, c2 + 1));
    std::string bare(first.substr(c2 + 1));
    bool plus = gs2[0] == 'p';
    FUZZ_CHECK(plus == (mechanism == kScramPlusMechanism));

    std::string client_final(final_part);
    std::string auth_message;
    if (prove) {
        auth_message = bare + "," + server_first + "," + client_final;
        Sha256Digest signature = must(hmac_sha256(g_verifier.stored_key, auth_message));
        std::string proof(32, '\0');
        for (size_t i = 0; i < 32; ++i) proof[i] = char(g_client_key[i] ^ signature[i]);
        client_final += ",p=" + base64_encode(proof);
    }
    ScramServerResult last = server.handle_client_final(client_final);
    FUZZ_CHECK(last.ok == server.done());
    if (!last.ok) {
        FUZZ_CHECK(!server.client_key());
        if (prove && !mock) {
            // The proof is right for whatever precedes it: the only legitimate failures are in
            // those fields (binding, nonce, attribute syntax), never a password mismatch.
            FUZZ_CHECK(!last.wrong_password, "a correct proof was taken for a wrong password: " + last.value);
            std::string expected = "c=" + base64_encode(gs2 + (plus ? kChannelBinding : std::string())) + ",r=" + nonce;
            FUZZ_CHECK(final_part != expected, "canonical client-final with the correct proof was refused: " + last.value);
        }
        return 0;
    }
    FUZZ_CHECK(!mock, "the mock server accepted a login");
    FUZZ_CHECK(!last.wrong_password);
    std::optional<Sha256Digest> key = server.client_key();
    FUZZ_CHECK(key && *key == g_client_key, "recovered ClientKey differs from the password's");
    FUZZ_CHECK(server.channel_binding_used() == plus);
    if (prove) {
        Sha256Digest server_signature = must(hmac_sha256(g_verifier.server_key, auth_message));
        FUZZ_CHECK(last.value == "v=" + base64_encode(digest_view(server_signature)), last.value);
    }
    // Finished: further messages are out of order.
    FUZZ_CHECK(!server.handle_client_final(client_final).ok);
    return 0;
}
