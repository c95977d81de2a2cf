// Unit tests for the SCRAM-SHA-256 server: RFC 7677 vector, our client against our server, rejections.
#include <doctest/doctest.h>

#include <string>

#include "daemon/auth/base64.hpp"
#include "daemon/auth/scram_client.hpp"
#include "daemon/auth/scram_server.hpp"

using namespace splitpool::auth;

namespace {

// RFC 7677 section 3: user "user", password "pencil".
constexpr const char* kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr const char* kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr const char* kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramVerifier rfc_verifier() {
    auto salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    auto v = parse_scram_verifier(make_scram_verifier("pencil", *salt, 4096));
    REQUIRE(v);
    return *v;
}

ScramServer rfc_server() {
    ScramServer s = ScramServer::with_verifier(rfc_verifier());
    s.set_server_nonce(kRfcServerNonce);
    return s;
}

// Runs our client against a server; returns the server's final result.
ScramServerResult exchange(ScramServer& server, const std::string& password) {
    auto client = ScramClient::with_password(password);
    auto first = server.handle_client_first(kScramMechanism, client.client_first());
    REQUIRE(first.ok);
    auto final_msg = client.handle_server_first(first.value);
    REQUIRE(final_msg.ok);
    auto result = server.handle_client_final(final_msg.value);
    if (result.ok) {
        std::string error;
        CHECK(client.verify_server_final(result.value, &error));
        CHECK(client.server_verified());
    }
    return result;
}

// A channel-binding client built from the primitives, since ScramClient only speaks "n,,".
struct CbClient {
    std::string gs2;
    std::string cb_data;
    std::string bare = "n=,r=clientnonce";

    std::string first() const { return gs2 + bare; }
    std::string final_message(const std::string& server_first, const std::string& password,
                              const ScramVerifier& v) const {
        std::string nonce = server_first.substr(2, server_first.find(',') - 2);
        std::string without_proof = "c=" + base64_encode(gs2 + cb_data) + ",r=" + nonce;
        std::string auth_message = bare + "," + server_first + "," + without_proof;
        auto salted = scram_salted_password(password, v.salt, v.iterations);
        auto client_key = scram_client_key(*salted);
        auto signature = hmac_sha256(*scram_stored_key(*client_key), auth_message);
        Sha256Digest proof;
        for (size_t i = 0; i < proof.size(); ++i) proof[i] = (*client_key)[i] ^ (*signature)[i];
        return without_proof + ",p=" + base64_encode(digest_view(proof));
    }
};

}  // namespace

TEST_CASE("SCRAM server reproduces RFC 7677 section 3") {
    ScramServer s = rfc_server();
    auto first = s.handle_client_first(kScramMechanism, kRfcClientFirst);
    REQUIRE(first.ok);
    CHECK(first.value == kRfcServerFirst);
    auto final_result = s.handle_client_final(kRfcClientFinal);
    REQUIRE(final_result.ok);
    CHECK(final_result.value == kRfcServerFinal);
    CHECK(s.done());
    CHECK_FALSE(s.channel_binding_used());

    // The recovered ClientKey is the password's: it must equal HMAC(SaltedPassword, "Client Key").
    auto salted = scram_salted_password("pencil", rfc_verifier().salt, 4096);
    REQUIRE(s.client_key());
    CHECK(*s.client_key() == *scram_client_key(*salted));
}

TEST_CASE("SCRAM server against our client: right and wrong password") {
    auto server = ScramServer::with_password("correct horse");
    REQUIRE(server);
    CHECK(server->sasl_mechanisms() == std::string("SCRAM-SHA-256\0\0", 15));
    CHECK(exchange(*server, "correct horse").ok);

    auto server2 = ScramServer::with_password("correct horse");
    auto bad = exchange(*server2, "wrong horse");
    CHECK_FALSE(bad.ok);
    CHECK(bad.wrong_password);
    CHECK_FALSE(server2->client_key());
    // A failed exchange stays failed.
    CHECK_FALSE(server2->handle_client_final("c=biws,r=x,p=x").ok);
}

TEST_CASE("SCRAM ClientKey lets the proxy log in to a backend with the same verifier") {
    ScramVerifier v = *parse_scram_verifier(make_scram_verifier("secret", 4096));
    ScramServer front = ScramServer::with_verifier(v);
    REQUIRE(exchange(front, "secret").ok);
    auto key = front.client_key();
    REQUIRE(key);

    // The "backend": a second server holding the same verifier, answered by a ClientKey-only client.
    ScramServer backend = ScramServer::with_verifier(v);
    auto proxy = ScramClient::with_client_key(*key, v.server_key);
    auto first = backend.handle_client_first(kScramMechanism, proxy.client_first());
    REQUIRE(first.ok);
    auto fin = proxy.handle_server_first(first.value);
    REQUIRE(fin.ok);
    auto done = backend.handle_client_final(fin.value);
    REQUIRE(done.ok);
    std::string error;
    CHECK(proxy.verify_server_final(done.value, &error));
}

TEST_CASE("SCRAM-SHA-256-PLUS with tls-server-end-point") {
    ScramVerifier v = *parse_scram_verifier(make_scram_verifier("pw", 4096));
    const std::string cb(32, '\x42');
    CbClient client{"p=tls-server-end-point,,", cb};

    ScramServer s = ScramServer::with_verifier(v);
    s.set_channel_binding(cb);
    CHECK(s.sasl_mechanisms() == std::string("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0", 34));
    auto first = s.handle_client_first(kScramPlusMechanism, client.first());
    REQUIRE(first.ok);
    auto result = s.handle_client_final(client.final_message(first.value, "pw", v));
    CHECK(result.ok);
    CHECK(s.channel_binding_used());

    // Binding data of another certificate (a man in the middle) fails, even with the right password.
    ScramServer mitm = ScramServer::with_verifier(v);
    mitm.set_channel_binding(std::string(32, '\x43'));
    first = mitm.handle_client_first(kScramPlusMechanism, client.first());
    REQUIRE(first.ok);
    result = mitm.handle_client_final(client.final_message(first.value, "pw", v));
    CHECK_FALSE(result.ok);
    CHECK_FALSE(result.wrong_password);
    CHECK(result.value == "SCRAM channel binding check failed");

    // -PLUS requested without TLS, "p" with the plain mechanism, and the 'y' downgrade signal.
    ScramServer no_tls = ScramServer::with_verifier(v);
    CHECK_FALSE(no_tls.handle_client_first(kScramPlusMechanism, client.first()).ok);
    ScramServer plain_mech = ScramServer::with_verifier(v);
    plain_mech.set_channel_binding(cb);
    CHECK_FALSE(plain_mech.handle_client_first(kScramMechanism, client.first()).ok);
    ScramServer downgraded = ScramServer::with_verifier(v);
    downgraded.set_channel_binding(cb);
    auto y = downgraded.handle_client_first(kScramMechanism, "y,,n=,r=abc");
    CHECK_FALSE(y.ok);
    CHECK(y.value.find("negotiation error") != std::string::npos);

    // 'y' without TLS on our side is fine (libpq sends it when it has TLS but we offered no -PLUS).
    ScramServer y_ok = ScramServer::with_verifier(v);
    CbClient yclient{"y,,", ""};
    first = y_ok.handle_client_first(kScramMechanism, yclient.first());
    REQUIRE(first.ok);
    CHECK(y_ok.handle_client_final(yclient.final_message(first.value, "pw", v)).ok);
}

TEST_CASE("SCRAM server rejects malformed messages") {
    const char* bad_firsts[] = {
        "",
        "x,,n=,r=abc",
        "n,a=admin,n=,r=abc",       // authzid
        "n,,m=ext,n=,r=abc",        // mandatory extension
        "n,,r=abc",                 // no user attribute
        "n,,n=,r=",                 // empty nonce
        "n,,n=,r=a b",              // unprintable nonce
        "n,,n=,r=abc,garbage",
        "p=tls-unique,,n=,r=abc",
        "n,n=,r=abc",
    };
    for (const char* m : bad_firsts) {
        CAPTURE(m);
        ScramServer s = rfc_server();
        auto r = s.handle_client_first(kScramMechanism, m);
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.wrong_password);
    }
    ScramServer wrong_mech = rfc_server();
    CHECK_FALSE(wrong_mech.handle_client_first("SCRAM-SHA-1", kRfcClientFirst).ok);

    const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const std::string proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const std::string bad_finals[] = {
        "",
        "r=" + nonce + "," + proof,                     // no channel binding
        "c=eSws,r=" + nonce + "," + proof,              // "y,," although the client sent "n,,"
        "c=biws,r=" + nonce + "X," + proof,             // nonce changed
        "c=biws,r=" + nonce,                            // no proof
        "c=biws,r=" + nonce + "," + proof + ",x=1",     // proof not last
        "c=biws,r=" + nonce + ",p=AAAA",                // short proof
        "c=biws,r=" + nonce + ",p=!!!!",                // not base64
    };
    for (const std::string& m : bad_finals) {
        CAPTURE(m);
        ScramServer s = rfc_server();
        REQUIRE(s.handle_client_first(kScramMechanism, kRfcClientFirst).ok);
        auto r = s.handle_client_final(m);
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.wrong_password);
    }
    // Out of order: a final before a first.
    ScramServer early = rfc_server();
    CHECK_FALSE(early.handle_client_final(kRfcClientFinal).ok);
    // Extensions before the proof are allowed and covered by the proof (so this one fails the proof).
    ScramServer ext = rfc_server();
    REQUIRE(ext.handle_client_first(kScramMechanism, kRfcClientFirst).ok);
    auto r = ext.handle_client_final("c=biws,r=" + nonce + ",x=ext," + proof);
    CHECK_FALSE(r.ok);
    CHECK(r.wrong_password);
}

TEST_CASE("SCRAM mock exchange for unknown users always fails like a wrong password") {
    ScramServer a = ScramServer::mock("nobody");
    ScramServer b = ScramServer::mock("nobody");
    CHECK(a.verifier().salt == b.verifier().salt);  // stable salt: probing twice looks like a real user
    CHECK(a.verifier().salt != ScramServer::mock("somebody").verifier().salt);
    auto r = exchange(a, "");
    CHECK_FALSE(r.ok);
    CHECK(r.wrong_password);
}
