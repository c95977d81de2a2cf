// Unit tests for TLS contexts: a throwaway CA from the openssl CLI, an in-memory handshake, channel binding.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "daemon/io/tls.hpp"

using namespace splitpool::io;

namespace {

// CA, server certificate (CN and SAN localhost + 127.0.0.1), a client certificate for "alice", and the
// server key encrypted with passphrase "sekrit". Made once per test run with the openssl command.
struct Pki {
    std::string dir;
    bool ok = false;

    Pki() {
        char tmpl[] = "/tmp/tls_test_XXXXXX";
        if (mkdtemp(tmpl) == nullptr) return;
        dir = tmpl;
        std::string script =
            "cd " + dir + " && exec >log 2>&1 && "
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=testca && "
            "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost && "
            "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
            "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 "
            "  -sha256 -extfile san.ext && "
            "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=alice && "
            "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 && "
            "openssl pkey -in server.key -aes256 -passout pass:sekrit -out server_enc.key && "
            "openssl x509 -in server.crt -outform DER -out server.der";
        ok = std::system(script.c_str()) == 0;
    }
    ~Pki() {
        if (!dir.empty()) std::filesystem::remove_all(dir);
    }
    std::string file(const char* name) const { return dir + "/" + name; }
};

const Pki& pki() {
    static Pki p;
    return p;
}

TlsServerSettings server_settings() {
    TlsServerSettings s;
    s.cert_file = pki().file("server.crt");
    s.key_file = pki().file("server.key");
    return s;
}

struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// Drives both ends of a handshake over a BIO pair; true when both finish.
// RFC 5929 by hand: SHA-256 over the DER certificate the openssl command wrote.
std::string sha256_of_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string der = ss.str();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(der.data(), der.size(), out, &len, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<char*>(out), len);
}

bool handshake(SSL* client, SSL* server) {
    BIO* a = nullptr;
    BIO* b = nullptr;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(client, a, a);
    SSL_set_bio(server, b, b);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    bool client_done = false, server_done = false;
    for (int i = 0; i < 50 && !(client_done && server_done); ++i) {
        if (!client_done) {
            int rc = SSL_do_handshake(client);
            if (rc == 1) client_done = true;
            else if (SSL_get_error(client, rc) != SSL_ERROR_WANT_READ) return false;
        }
        if (!server_done) {
            int rc = SSL_do_handshake(server);
            if (rc == 1) server_done = true;
            else if (SSL_get_error(server, rc) != SSL_ERROR_WANT_READ) return false;
        }
    }
    return client_done && server_done;
}

}  // namespace

TEST_CASE("TLS server context loads a certificate and reports bad files clearly") {
    REQUIRE(pki().ok);
    TlsContextResult ok = make_server_context(server_settings());
    CHECK(ok);
    CHECK(ok.error.empty());

    TlsServerSettings missing = server_settings();
    missing.cert_file = pki().file("nope.crt");
    TlsContextResult bad = make_server_context(missing);
    CHECK_FALSE(bad);
    CHECK(bad.error.find("could not load server certificate file \"" + missing.cert_file + "\"") == 0);

    TlsServerSettings mismatch = server_settings();
    mismatch.key_file = pki().file("client.key");
    CHECK(make_server_context(mismatch).error.find("private key") != std::string::npos);

    TlsServerSettings encrypted = server_settings();
    encrypted.key_file = pki().file("server_enc.key");
    CHECK(make_server_context(encrypted).error.find("ssl_passphrase_command") != std::string::npos);
    encrypted.passphrase_command = "echo sekrit # %p";
    CHECK(make_server_context(encrypted));
    encrypted.passphrase_command = "echo wrong";
    CHECK_FALSE(make_server_context(encrypted));

    TlsServerSettings proto = server_settings();
    proto.min_protocol_version = "TLSv1.4";
    CHECK(make_server_context(proto).error.find("invalid TLS protocol version") != std::string::npos);
    proto.min_protocol_version = "TLSv1.3";
    proto.max_protocol_version = "TLSv1.2";
    CHECK_FALSE(make_server_context(proto));

    TlsServerSettings curve = server_settings();
    curve.ecdh_curve = "no-such-curve";
    CHECK(make_server_context(curve).error.find("ECDH") == 0);
    TlsServerSettings ciphers = server_settings();
    ciphers.ciphers = "NOT-A-CIPHER";
    CHECK_FALSE(make_server_context(ciphers));
    TlsServerSettings dh = server_settings();
    dh.dh_params_file = pki().file("ca.crt");
    CHECK(make_server_context(dh).error.find("DH parameters") != std::string::npos);
    TlsServerSettings empty;
    CHECK_FALSE(make_server_context(empty));
}

TEST_CASE("TLS handshake: verify-full, channel binding, client certificate CN") {
    REQUIRE(pki().ok);
    TlsServerSettings ss = server_settings();
    ss.ca_cert = pki().file("ca.crt");  // request client certificates
    TlsContextResult server_ctx = make_server_context(ss);
    REQUIRE(server_ctx);

    TlsClientSettings cs;
    cs.mode = SslMode::VerifyFull;
    cs.ca_cert = pki().file("ca.crt");
    cs.cert_file = pki().file("client.crt");
    cs.key_file = pki().file("client.key");
    TlsContextResult client_ctx = make_client_context(cs);
    REQUIRE(client_ctx);

    for (const char* host : {"localhost", "127.0.0.1"}) {
        CAPTURE(host);
        SslPtr client(SSL_new(client_ctx.ctx.get()));
        SslPtr server(SSL_new(server_ctx.ctx.get()));
        std::string error;
        REQUIRE(prepare_client_ssl(client.get(), SslMode::VerifyFull, host, &error));
        REQUIRE(handshake(client.get(), server.get()));
        auto server_cb = tls_server_end_point(server.get(), true);
        auto client_cb = tls_server_end_point(client.get(), false);
        REQUIRE(server_cb);
        CHECK(server_cb->size() == 32);  // sha256WithRSAEncryption
        CHECK(server_cb == client_cb);
        CHECK(*server_cb == sha256_of_file(pki().file("server.der")));
        CHECK(verified_peer_common_name(server.get()) == std::optional<std::string>("alice"));
    }

    // The wrong name fails verify-full; verify-ca accepts it.
    SslPtr client(SSL_new(client_ctx.ctx.get()));
    SslPtr server(SSL_new(server_ctx.ctx.get()));
    std::string error;
    REQUIRE(prepare_client_ssl(client.get(), SslMode::VerifyFull, "otherhost", &error));
    CHECK_FALSE(handshake(client.get(), server.get()));
    SslPtr client2(SSL_new(client_ctx.ctx.get()));
    SslPtr server2(SSL_new(server_ctx.ctx.get()));
    REQUIRE(prepare_client_ssl(client2.get(), SslMode::VerifyCa, "otherhost", &error));
    CHECK(handshake(client2.get(), server2.get()));
}

TEST_CASE("TLS client context: sslmode parsing and CA requirements") {
    REQUIRE(pki().ok);
    CHECK(parse_ssl_mode("verify-full") == SslMode::VerifyFull);
    CHECK_FALSE(parse_ssl_mode("verify_full"));
    CHECK(ssl_mode_allows_plaintext(SslMode::Prefer));
    CHECK_FALSE(ssl_mode_allows_plaintext(SslMode::Require));

    TlsClientSettings s;
    s.mode = SslMode::Disable;
    TlsContextResult none = make_client_context(s);
    CHECK_FALSE(none);
    CHECK(none.error.empty());
    s.mode = SslMode::VerifyCa;
    CHECK(make_client_context(s).error.find("needs a root certificate") != std::string::npos);
    s.ca_cert = pki().file("missing.crt");
    CHECK(make_client_context(s).error.find("could not load root certificate file") == 0);

    // require without a CA: encrypted but unauthenticated, so a certificate from anyone is accepted.
    TlsClientSettings req;
    req.mode = SslMode::Require;
    TlsContextResult client_ctx = make_client_context(req);
    REQUIRE(client_ctx);
    TlsContextResult server_ctx = make_server_context(server_settings());
    SslPtr client(SSL_new(client_ctx.ctx.get()));
    SslPtr server(SSL_new(server_ctx.ctx.get()));
    std::string error;
    REQUIRE(prepare_client_ssl(client.get(), SslMode::Require, "db.example", &error));
    CHECK(handshake(client.get(), server.get()));
    CHECK_FALSE(verified_peer_common_name(server.get()));  // no client certificate was asked for
    std::string error2;
    CHECK_FALSE(prepare_client_ssl(client.get(), SslMode::VerifyFull, "/var/run/postgresql", &error2));
}
