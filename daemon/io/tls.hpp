// TLS contexts over OpenSSL: the server side clients see, the client side toward backends, and the
// tls-server-end-point channel-binding data SCRAM-SHA-256-PLUS needs.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace splitpool::io {

struct SslCtxFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// Frontend settings, as pgpool's ssl_* keys (plus the protocol bounds pgpool lacks). File paths are
// used as given: the caller resolves them against the config folder.
struct TlsServerSettings {
    std::string cert_file;    // ssl_cert: certificate chain, PEM
    std::string key_file;     // ssl_key
    std::string ca_cert;      // ssl_ca_cert: when set (or ca_cert_dir), client certificates are requested
    std::string ca_cert_dir;  // ssl_ca_cert_dir
    std::string crl_file;     // ssl_crl_file
    std::string ciphers = "HIGH:MEDIUM:+3DES:!aNULL";  // TLS 1.2 and below only
    bool prefer_server_ciphers = false;
    std::string ecdh_curve = "prime256v1";
    std::string dh_params_file;      // empty: OpenSSL's built-in groups sized to the key
    std::string passphrase_command;  // "%p" is replaced by the prompt; the first output line is the passphrase
    std::string min_protocol_version = "TLSv1.2";  // "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"; "" = no bound
    std::string max_protocol_version;              // "" = the newest OpenSSL supports
};

// Either a ready context or a one-line reason (file name and OpenSSL's error) to log.
struct TlsContextResult {
    SslCtxPtr ctx;
    std::string error;
    explicit operator bool() const { return ctx != nullptr; }
};

// Never throws. Loads and cross-checks certificate and key; on any problem returns no context, so a
// reload can keep the old one.
TlsContextResult make_server_context(const TlsServerSettings& settings);

// libpq's sslmode names. Allow is treated as Prefer (splitpool always asks first).
enum class SslMode { Disable, Allow, Prefer, Require, VerifyCa, VerifyFull };
std::optional<SslMode> parse_ssl_mode(std::string_view name);
std::string_view ssl_mode_name(SslMode mode);
// Whether a backend answering 'N' to SSLRequest may still be used in plaintext.
inline bool ssl_mode_allows_plaintext(SslMode mode) {
    return mode == SslMode::Disable || mode == SslMode::Allow || mode == SslMode::Prefer;
}

struct TlsClientSettings {
    SslMode mode = SslMode::Prefer;
    std::string ca_cert;      // verify-ca / verify-full need this or ca_cert_dir; with any other mode a
    std::string ca_cert_dir;  // given CA still verifies the chain, as pgpool and libpq (root.crt) do
    std::string crl_file;
    std::string cert_file;  // optional client certificate toward the backend
    std::string key_file;
    std::string min_protocol_version = "TLSv1.2";
    std::string max_protocol_version;
};

// No context (and no error) for SslMode::Disable.
TlsContextResult make_client_context(const TlsClientSettings& settings);

// Per-connection client setup before SSL_connect(): SNI for host names and, for verify-full, the name
// or IP address the backend certificate must carry. `host` is the backend host as configured.
bool prepare_client_ssl(SSL* ssl, SslMode mode, const std::string& host, std::string* error);

// RFC 5929 tls-server-end-point: the certificate's hash with its signature's digest, SHA-256 when that
// is MD5 or SHA-1. nullopt when the signature has no single digest (e.g. Ed25519), as in PostgreSQL.
std::optional<std::string> tls_server_end_point(X509* cert);
// Of our own certificate on a server connection, or of the peer's on a client connection.
std::optional<std::string> tls_server_end_point(SSL* ssl, bool server_side);

// The client certificate's common name, only when the client sent one and it verified against our CA
// (for pool_hba.conf "cert": the caller compares it with the user name, case-insensitively).
std::optional<std::string> verified_peer_common_name(SSL* ssl);

// Drains OpenSSL's error queue for this thread into one line ("no SSL error reported" if empty).
std::string tls_error_string();

}  // namespace splitpool::io
