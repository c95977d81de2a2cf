// Unit tests for password crypto: PostgreSQL md5 hashes, base64, SCRAM-SHA-256 client and verifiers.
#include <doctest/doctest.h>

#include <string>

#include "daemon/auth/base64.hpp"
#include "daemon/auth/md5.hpp"
#include "daemon/auth/scram_client.hpp"

using namespace splitpool::auth;

namespace {

// RFC 7677 section 3 test vector. The server-final was recomputed with python3 hashlib/hmac
// (HMAC(ServerKey, AuthMessage)) and agrees with the RFC text.
constexpr const char* kRfcNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr const char* kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
// Same length and prefix as the real signature but wrong tail: must be rejected.
constexpr const char* kForgedServerFinal = "v=6rriTRBi23WpRR/wcmfdUmyPZnxeUV/PWqi9PlOm5Q4=";

ScramClient rfc_client() {
    auto c = ScramClient::with_password("pencil");
    c.set_user_name("user");
    c.set_client_nonce(kRfcNonce);
    return c;
}

ScramResult server_first_reply(std::string_view server_first) {
    auto c = rfc_client();
    c.client_first();
    return c.handle_server_first(server_first);
}

}  // namespace

TEST_CASE("md5 hex digests match known values") {
    // RFC 1321 appendix A.5 test suite.
    CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
    CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
}

TEST_CASE("PostgreSQL md5 stored hash and salted response") {
    // Expected values from python3 hashlib:
    //   s = 'md5' + md5(b'secretalice').hexdigest()
    //   'md5' + md5(s[3:].encode() + bytes([1,2,3,4])).hexdigest()
    const unsigned char salt[4] = {0x01, 0x02, 0x03, 0x04};
    const unsigned char salt2[4] = {0xde, 0xad, 0xbe, 0xef};
    CHECK(pg_md5_stored("secret", "alice") == "md54a0a68b43b6cd5cf266fa02f196e2371");
    CHECK(pg_md5_password("secret", "alice", salt) == "md598a0412b9c31436fc53776e863350083");
    CHECK(pg_md5_password("secret", "alice", salt2) == "md53e1d73ba00a55e8805aa0277d29996c5");
    CHECK(pg_md5_password_from_stored("md54a0a68b43b6cd5cf266fa02f196e2371", salt2) ==
          "md53e1d73ba00a55e8805aa0277d29996c5");
    // Read back from a real PostgreSQL 15 pg_authid after
    // SET password_encryption = md5; CREATE ROLE md5user PASSWORD 'md5secret'.
    CHECK(pg_md5_stored("md5secret", "md5user") == "md51df59ed3db2d942a46e855424bbafc45");
}

TEST_CASE("a malformed stored md5 hash yields no response") {
    const unsigned char salt[4] = {0, 0, 0, 0};
    CHECK(pg_md5_password_from_stored("", salt).empty());
    CHECK(pg_md5_password_from_stored("4a0a68b43b6cd5cf266fa02f196e2371", salt).empty());
    CHECK(pg_md5_password_from_stored("md54A0A68B43B6CD5CF266FA02F196E2371", salt).empty());
    CHECK(pg_md5_password_from_stored("md54a0a68b43b6cd5cf266fa02f196e237", salt).empty());
    CHECK(pg_md5_password_from_stored("SCRAM-SHA-256$4096:xx", salt).empty());
    CHECK(is_pg_md5_stored("md54a0a68b43b6cd5cf266fa02f196e2371"));
}

TEST_CASE("base64 round-trips and rejects non-canonical text") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("n,,") == "biws");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_decode("Zg==") == std::string("f"));
    CHECK(base64_decode("Zm8=") == std::string("fo"));
    CHECK(base64_decode("Zm9v") == std::string("foo"));
    CHECK(base64_decode("") == std::string());
    std::string binary("\x00\xff\x10\x80", 4);
    CHECK(base64_decode(base64_encode(binary)) == binary);
    CHECK_FALSE(base64_decode("Zm9").has_value());
    CHECK_FALSE(base64_decode("Zm 9").has_value());
    CHECK_FALSE(base64_decode("Z=9v").has_value());
    CHECK_FALSE(base64_decode("Zm9v\n").has_value());
    CHECK_FALSE(base64_decode("Zm9*").has_value());
}

TEST_CASE("SCRAM-SHA-256 client reproduces the RFC 7677 exchange") {
    auto c = rfc_client();
    CHECK(c.client_first() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    auto final = c.handle_server_first(kRfcServerFirst);
    REQUIRE(final.ok);
    CHECK(final.value == kRfcClientFinal);
    std::string error;
    CHECK(c.verify_server_final(kRfcServerFinal, &error));
    CHECK(error.empty());
    CHECK(c.done());
    CHECK(c.server_verified());
}

TEST_CASE("PostgreSQL form of client-first has an empty user name and a random nonce") {
    auto c = ScramClient::with_password("pencil");
    std::string first = c.client_first();
    REQUIRE(first.substr(0, 8) == "n,,n=,r=");
    CHECK(first.size() == 8 + 24);  // 18 random bytes in base64
    CHECK(first.find(',', 8) == std::string::npos);
    CHECK(c.client_first().empty());  // a second call is out of order
    auto other = ScramClient::with_password("pencil");
    CHECK(other.client_first() != first);
}

TEST_CASE("user names are escaped as RFC 5802 saslname") {
    auto c = ScramClient::with_password("x");
    c.set_user_name("a=b,c");
    c.set_client_nonce("abc");
    CHECK(c.client_first() == "n,,n=a=3Db=2Cc,r=abc");
}

TEST_CASE("a wrong server signature is rejected") {
    auto c = rfc_client();
    c.client_first();
    REQUIRE(c.handle_server_first(kRfcServerFirst).ok);
    std::string error;
    CHECK_FALSE(c.verify_server_final(kForgedServerFinal, &error));
    CHECK(error.find("signature") != std::string::npos);
    CHECK_FALSE(c.done());
    CHECK_FALSE(c.verify_server_final(kRfcServerFinal, &error));  // failed state is final
}

TEST_CASE("malformed or error server-final messages are rejected") {
    for (const char* bad : {"", "v=", "v=6rriTRBi23WpRR", "x=abc", "v=!!!!", "e=invalid-proof"}) {
        CAPTURE(bad);
        auto c = rfc_client();
        c.client_first();
        REQUIRE(c.handle_server_first(kRfcServerFirst).ok);
        std::string error;
        CHECK_FALSE(c.verify_server_final(bad, &error));
        CHECK_FALSE(error.empty());
    }
    auto c = rfc_client();
    c.client_first();
    REQUIRE(c.handle_server_first(kRfcServerFirst).ok);
    std::string error;
    CHECK_FALSE(c.verify_server_final("e=invalid-proof", &error));
    CHECK(error.find("invalid-proof") != std::string::npos);
}

TEST_CASE("a server nonce that does not extend the client nonce is rejected") {
    auto r = server_first_reply("r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    CHECK_FALSE(r.ok);
    CHECK(r.value.find("nonce") != std::string::npos);
    // Echoing the client nonce alone adds no server randomness.
    CHECK_FALSE(server_first_reply("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").ok);
    CHECK_FALSE(server_first_reply("r=rOprNG,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").ok);
}

TEST_CASE("malformed server-first messages are rejected") {
    const char* bad[] = {
        "",
        "garbage",
        "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",  // wrong order
        "r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",                              // missing salt
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096",                           // empty salt
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=not*base64,i=4096",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",          // missing count
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4x",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1",
        "m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    };
    for (const char* msg : bad) {
        CAPTURE(msg);
        auto r = server_first_reply(msg);
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.value.empty());
    }
}

TEST_CASE("steps out of order fail") {
    auto c = ScramClient::with_password("pencil");
    CHECK_FALSE(c.handle_server_first(kRfcServerFirst).ok);  // before client_first
    auto d = ScramClient::with_password("pencil");
    std::string error;
    CHECK_FALSE(d.verify_server_final(kRfcServerFinal, &error));
    CHECK_FALSE(error.empty());
}

TEST_CASE("key derivation primitives agree with the RFC vector") {
    auto salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    REQUIRE(salt);
    auto salted = scram_salted_password("pencil", *salt, 4096);
    REQUIRE(salted);
    auto client_key = scram_client_key(*salted);
    auto server_key = scram_server_key(*salted);
    REQUIRE(client_key);
    REQUIRE(server_key);
    CHECK_FALSE(scram_salted_password("pencil", *salt, 0).has_value());

    // The proxy-side mode: only the ClientKey and ServerKey, no password.
    auto c = ScramClient::with_client_key(*client_key, *server_key);
    c.set_user_name("user");
    c.set_client_nonce(kRfcNonce);
    c.client_first();
    auto final = c.handle_server_first(kRfcServerFirst);
    REQUIRE(final.ok);
    CHECK(final.value == kRfcClientFinal);
    std::string error;
    CHECK(c.verify_server_final(kRfcServerFinal, &error));
    CHECK(c.server_verified());
}

TEST_CASE("without a ServerKey the server signature is accepted unverified") {
    auto salted = scram_salted_password("pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
    auto c = ScramClient::with_client_key(*scram_client_key(*salted), std::nullopt);
    c.set_user_name("user");
    c.set_client_nonce(kRfcNonce);
    c.client_first();
    REQUIRE(c.handle_server_first(kRfcServerFirst).value == kRfcClientFinal);
    std::string error;
    CHECK(c.verify_server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &error));
    CHECK(c.done());
    CHECK_FALSE(c.server_verified());
}

TEST_CASE("sha256 and hmac_sha256 match published vectors") {
    // FIPS 180-2 "abc" and RFC 4231 test case 2.
    auto h = sha256("abc");
    REQUIRE(h);
    CHECK(base64_encode(digest_view(*h)) == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    auto m = hmac_sha256(std::string_view("Jefe"), "what do ya want for nothing?");
    REQUIRE(m);
    // 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843
    CHECK(base64_encode(digest_view(*m)) == "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
}

TEST_CASE("SCRAM verifiers match PostgreSQL's pg_authid format") {
    // Expected from python3:
    //   sp = hashlib.pbkdf2_hmac('sha256', b'secret', b'0123456789abcdef', 4096, 32)
    //   ck = hmac.new(sp, b'Client Key', 'sha256').digest(); sk = hmac.new(sp, b'Server Key', 'sha256').digest()
    //   'SCRAM-SHA-256$4096:' + b64(salt) + '$' + b64(sha256(ck)) + ':' + b64(sk)
    CHECK(make_scram_verifier("secret", "0123456789abcdef", 4096) ==
          "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=:"
          "VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=");
    // Read back from a real PostgreSQL 15 pg_authid (CREATE ROLE scram2 PASSWORD 'Tr0ub4dor&3'),
    // and confirmed with the same python3 recipe.
    const std::string real = "SCRAM-SHA-256$4096:tg6NUcfJvAZ7AefAGw7eNg==$ye2eSzjvEFU1fx9cWxsrHddu9DDEBA1JMVHhH6v9QSk="
                             ":TeixabhubLS9YD2NCypgGICLoxnSNvdFEEFuZEfP4Lc=";
    auto parsed = parse_scram_verifier(real);
    REQUIRE(parsed);
    CHECK(parsed->iterations == 4096);
    CHECK(parsed->salt.size() == 16);
    CHECK(make_scram_verifier("Tr0ub4dor&3", parsed->salt, parsed->iterations) == real);
    CHECK(format_scram_verifier(*parsed) == real);
    // A non-ASCII password that is already NFKC-normal: PostgreSQL's SASLprep leaves it alone.
    CHECK(make_scram_verifier("pencil \xc3\xbc,=x", *base64_decode("NqkWlcQ1qbh3n6+aeMF20A=="), 4096) ==
          "SCRAM-SHA-256$4096:NqkWlcQ1qbh3n6+aeMF20A==$fYQnk5n8TconT3YHbPlxmAcLDzsQ7nesX9mNjQdd+NE="
          ":grK/FMxlARWHXcoaDasLJHPNFs7Pb9YrgWTymVAgOR8=");
}

TEST_CASE("make_scram_verifier round-trips through parse_scram_verifier") {
    std::string v = make_scram_verifier("hunter2");
    auto parsed = parse_scram_verifier(v);
    REQUIRE(parsed);
    CHECK(parsed->iterations == kScramDefaultIterations);
    CHECK(parsed->salt.size() == kScramDefaultSaltLength);
    CHECK(make_scram_verifier("hunter2", parsed->salt, parsed->iterations) == v);
    CHECK(make_scram_verifier("hunter2") != v);  // fresh salt each time

    auto salted = scram_salted_password("hunter2", parsed->salt, parsed->iterations);
    CHECK(*scram_stored_key(*scram_client_key(*salted)) == parsed->stored_key);
    CHECK(*scram_server_key(*salted) == parsed->server_key);
}

TEST_CASE("malformed SCRAM verifiers are rejected") {
    const char* bad[] = {
        "",
        "md54a0a68b43b6cd5cf266fa02f196e2371",
        "SCRAM-SHA-256$",
        "SCRAM-SHA-256$4096:MDEy$AAAA:AAAA",  // keys too short
        "SCRAM-SHA-256$0:MDEyMzQ1Njc4OWFiY2RlZg==$bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=:"
        "VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=",
        "SCRAM-SHA-256$4096:$bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=:VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=",
        "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==:bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=$"
        "VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=",
        "SCRAM-SHA-1$4096:MDEyMzQ1Njc4OWFiY2RlZg==$bpSY5Ze9NUH+I35LC3gVq+DpBfK46iXBxvhAKqVu9pE=:"
        "VpYlBuxyzeCI1KnctrefdljpB1mk3Gp7sBI/t11+NkQ=",
    };
    for (const char* text : bad) {
        CAPTURE(text);
        CHECK_FALSE(parse_scram_verifier(text).has_value());
    }
}

TEST_CASE("a client proof built from a password verifies against the stored verifier") {
    // Plays the server: recover ClientKey = proof XOR HMAC(StoredKey, AuthMessage) and check H(ClientKey).
    std::string v = make_scram_verifier("s3cr3t", "saltsaltsaltsalt", 4096);
    auto parsed = parse_scram_verifier(v);
    REQUIRE(parsed);
    auto c = ScramClient::with_password("s3cr3t");
    c.set_client_nonce("clientnonce");
    std::string first = c.client_first();
    std::string server_first = "r=clientnonceSERVER,s=" + base64_encode(parsed->salt) + ",i=4096";
    auto final = c.handle_server_first(server_first);
    REQUIRE(final.ok);
    std::string without_proof = "c=biws,r=clientnonceSERVER";
    REQUIRE(final.value.substr(0, without_proof.size() + 3) == without_proof + ",p=");
    auto proof = base64_decode(final.value.substr(without_proof.size() + 3));
    REQUIRE(proof);
    REQUIRE(proof->size() == 32);
    std::string auth_message = first.substr(3) + "," + server_first + "," + without_proof;
    auto client_signature = hmac_sha256(parsed->stored_key, auth_message);
    Sha256Digest client_key;
    for (size_t i = 0; i < 32; ++i) client_key[i] = static_cast<unsigned char>((*proof)[i]) ^ (*client_signature)[i];
    CHECK(*scram_stored_key(client_key) == parsed->stored_key);

    auto server_signature = hmac_sha256(parsed->server_key, auth_message);
    std::string error;
    CHECK(c.verify_server_final("v=" + base64_encode(digest_view(*server_signature)), &error));
    CHECK(c.server_verified());
}
