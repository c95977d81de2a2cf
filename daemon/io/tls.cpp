// OpenSSL context construction for both TLS sides, passphrase command, channel-binding hash.
#include "daemon/io/tls.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace splitpool::io {

namespace {

constexpr std::string_view kPassphrasePrompt = "Enter PEM pass phrase:";

std::optional<int> protocol_version(std::string_view name) {
    if (name.empty()) return 0;  // 0 = no bound, for SSL_CTX_set_min/max_proto_version
    if (name == "TLSv1") return TLS1_VERSION;
    if (name == "TLSv1.1") return TLS1_1_VERSION;
    if (name == "TLSv1.2") return TLS1_2_VERSION;
    if (name == "TLSv1.3") return TLS1_3_VERSION;
    return std::nullopt;
}

bool set_protocol_bounds(SSL_CTX* ctx, const std::string& min, const std::string& max, std::string* error) {
    auto lo = protocol_version(min);
    auto hi = protocol_version(max);
    if (!lo || !hi) {
        *error = "invalid TLS protocol version \"" + (lo ? max : min) + "\" (use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)";
        return false;
    }
    if (*lo != 0 && *hi != 0 && *lo > *hi) {
        *error = "ssl_min_protocol_version \"" + min + "\" is above ssl_max_protocol_version \"" + max + "\"";
        return false;
    }
    if (SSL_CTX_set_min_proto_version(ctx, *lo) != 1 || SSL_CTX_set_max_proto_version(ctx, *hi) != 1) {
        *error = "could not set TLS protocol versions: " + tls_error_string();
        return false;
    }
    return true;
}

// Runs the passphrase command; the first output line is the passphrase.
int passphrase_from_command(char* buf, int size, int /*rwflag*/, void* userdata) {
    const auto* command = static_cast<const std::string*>(userdata);
    if (command == nullptr || command->empty() || size <= 0) return 0;  // never prompt on a terminal
    std::string cmd;
    for (size_t i = 0; i < command->size(); ++i) {
        if ((*command)[i] == '%' && i + 1 < command->size()) {
            char next = (*command)[++i];
            if (next == 'p') cmd += kPassphrasePrompt;
            else if (next == '%') cmd += '%';
            else cmd += std::string("%") + next;
        } else {
            cmd += (*command)[i];
        }
    }
    FILE* pipe = popen(cmd.c_str(), "r");
    if (pipe == nullptr) return 0;
    std::string line;
    int c;
    while ((c = std::fgetc(pipe)) != EOF && c != '\n') line.push_back(static_cast<char>(c));
    while (std::fgetc(pipe) != EOF) {}
    int status = pclose(pipe);
    if (status != 0 || line.size() >= static_cast<size_t>(size)) {
        OPENSSL_cleanse(line.data(), line.size());
        return 0;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::memcpy(buf, line.data(), line.size());
    int n = static_cast<int>(line.size());
    OPENSSL_cleanse(line.data(), line.size());
    return n;
}

int verify_keep_result(int preverify_ok, X509_STORE_CTX* /*ctx*/) { return preverify_ok; }

bool load_ca(SSL_CTX* ctx, const std::string& ca_file, const std::string& ca_dir, const std::string& crl_file,
             std::string* error) {
    if (ca_file.empty() && ca_dir.empty()) return true;
    if (SSL_CTX_load_verify_locations(ctx, ca_file.empty() ? nullptr : ca_file.c_str(),
                                      ca_dir.empty() ? nullptr : ca_dir.c_str()) != 1) {
        *error = "could not load root certificate file \"" + (ca_file.empty() ? ca_dir : ca_file) +
                 "\": " + tls_error_string();
        return false;
    }
    if (!crl_file.empty()) {
        X509_STORE* store = SSL_CTX_get_cert_store(ctx);
        if (X509_STORE_load_file(store, crl_file.c_str()) != 1) {
            *error = "could not load SSL certificate revocation list file \"" + crl_file + "\": " + tls_error_string();
            return false;
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    return true;
}

bool load_dh(SSL_CTX* ctx, const std::string& file, std::string* error) {
    if (file.empty()) {
        SSL_CTX_set_dh_auto(ctx, 1);
        return true;
    }
    BIO* bio = BIO_new_file(file.c_str(), "r");
    EVP_PKEY* params = bio != nullptr ? PEM_read_bio_Parameters(bio, nullptr) : nullptr;
    if (bio != nullptr) BIO_free(bio);
    if (params == nullptr || EVP_PKEY_get_base_id(params) != EVP_PKEY_DH) {
        *error = "could not load DH parameters file \"" + file + "\": " +
                 (params == nullptr ? tls_error_string() : std::string("not DH parameters"));
        EVP_PKEY_free(params);
        return false;
    }
    if (SSL_CTX_set0_tmp_dh_pkey(ctx, params) != 1) {  // takes ownership on success
        EVP_PKEY_free(params);
        *error = "could not set DH parameters from \"" + file + "\": " + tls_error_string();
        return false;
    }
    return true;
}

bool load_cert_and_key(SSL_CTX* ctx, const std::string& cert, const std::string& key, const std::string& command,
                       std::string* error) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
        *error = "could not load server certificate file \"" + cert + "\": " + tls_error_string();
        return false;
    }
    SSL_CTX_set_default_passwd_cb(ctx, passphrase_from_command);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, const_cast<std::string*>(&command));
    bool ok = SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) == 1;
    // The command string dies with the settings; leave no dangling pointer behind.
    SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
    if (!ok) {
        *error = "could not load private key file \"" + key + "\": " + tls_error_string() +
                 (command.empty() ? " (if the key is encrypted, set ssl_passphrase_command)" : "");
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        *error = "check of private key failed: " + tls_error_string();
        return false;
    }
    return true;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::string tls_error_string() {
    std::string out;
    unsigned long code;
    while ((code = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "no SSL error reported" : out;
}

TlsContextResult make_server_context(const TlsServerSettings& s) {
    TlsContextResult result;
    ERR_clear_error();
    if (s.cert_file.empty() || s.key_file.empty()) {
        result.error = "ssl_cert and ssl_key must both be set for SSL connections from clients";
        return result;
    }
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
        result.error = "could not create SSL context: " + tls_error_string();
        return result;
    }
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION |
                                       SSL_OP_NO_RENEGOTIATION |
                                       (s.prefer_server_ciphers ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    std::string& err = result.error;
    if (!set_protocol_bounds(ctx.get(), s.min_protocol_version, s.max_protocol_version, &err) ||
        !load_cert_and_key(ctx.get(), s.cert_file, s.key_file, s.passphrase_command, &err) ||
        !load_dh(ctx.get(), s.dh_params_file, &err) ||
        !load_ca(ctx.get(), s.ca_cert, s.ca_cert_dir, s.crl_file, &err))
        return result;
    if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(ctx.get(), s.ciphers.c_str()) != 1) {
        err = "could not set the cipher list (no valid ciphers in \"" + s.ciphers + "\"): " + tls_error_string();
        return result;
    }
    if (!s.ecdh_curve.empty() && SSL_CTX_set1_groups_list(ctx.get(), s.ecdh_curve.c_str()) != 1) {
        err = "ECDH: unrecognized curve name \"" + s.ecdh_curve + "\": " + tls_error_string();
        return result;
    }
    if (!s.ca_cert.empty() || !s.ca_cert_dir.empty()) {
        // Ask for a client certificate without requiring one; one that is sent must verify.
        if (!s.ca_cert.empty()) {
            STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_cert.c_str());
            if (names == nullptr) {
                err = "could not load root certificate file \"" + s.ca_cert + "\": " + tls_error_string();
                return result;
            }
            SSL_CTX_set_client_CA_list(ctx.get(), names);
        }
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, verify_keep_result);
    }
    result.ctx = std::move(ctx);
    return result;
}

std::optional<SslMode> parse_ssl_mode(std::string_view name) {
    if (name == "disable") return SslMode::Disable;
    if (name == "allow") return SslMode::Allow;
    if (name == "prefer") return SslMode::Prefer;
    if (name == "require") return SslMode::Require;
    if (name == "verify-ca") return SslMode::VerifyCa;
    if (name == "verify-full") return SslMode::VerifyFull;
    return std::nullopt;
}

std::string_view ssl_mode_name(SslMode mode) {
    switch (mode) {
    case SslMode::Disable: return "disable";
    case SslMode::Allow: return "allow";
    case SslMode::Prefer: return "prefer";
    case SslMode::Require: return "require";
    case SslMode::VerifyCa: return "verify-ca";
    case SslMode::VerifyFull: return "verify-full";
    }
    return "unknown";
}

TlsContextResult make_client_context(const TlsClientSettings& s) {
    TlsContextResult result;
    if (s.mode == SslMode::Disable) return result;
    ERR_clear_error();
    bool have_ca = !s.ca_cert.empty() || !s.ca_cert_dir.empty();
    if ((s.mode == SslMode::VerifyCa || s.mode == SslMode::VerifyFull) && !have_ca) {
        result.error = std::string("sslmode ") + std::string(ssl_mode_name(s.mode)) +
                       " needs a root certificate (ssl_ca_cert or ssl_ca_cert_dir)";
        return result;
    }
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        result.error = "could not create SSL context: " + tls_error_string();
        return result;
    }
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION |
                                       SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    std::string& err = result.error;
    if (!set_protocol_bounds(ctx.get(), s.min_protocol_version, s.max_protocol_version, &err) ||
        !load_ca(ctx.get(), s.ca_cert, s.ca_cert_dir, s.crl_file, &err))
        return result;
    if (!s.cert_file.empty()) {
        static const std::string kNoCommand;
        if (!load_cert_and_key(ctx.get(), s.cert_file, s.key_file.empty() ? s.cert_file : s.key_file, kNoCommand,
                               &err))
            return result;
    }
    SSL_CTX_set_verify(ctx.get(), have_ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    result.ctx = std::move(ctx);
    return result;
}

bool prepare_client_ssl(SSL* ssl, SslMode mode, const std::string& host, std::string* error) {
    bool is_socket = !host.empty() && host[0] == '/';
    bool is_ip = is_ip_literal(host);
    if (!is_socket && !is_ip && !host.empty() && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
        *error = "could not set SSL server name \"" + host + "\": " + tls_error_string();
        return false;
    }
    if (mode != SslMode::VerifyFull) return true;
    if (host.empty() || is_socket) {
        *error = "sslmode verify-full needs a host name or IP address to check the certificate against";
        return false;
    }
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int rc = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) : SSL_set1_host(ssl, host.c_str());
    if (rc != 1) {
        *error = "could not set the expected server name \"" + host + "\": " + tls_error_string();
        return false;
    }
    return true;
}

std::optional<std::string> tls_server_end_point(X509* cert) {
    if (cert == nullptr) return std::nullopt;
    int md_nid = NID_undef;
    if (X509_get_signature_info(cert, &md_nid, nullptr, nullptr, nullptr) != 1) return std::nullopt;
    // RFC 5929 section 4.1: MD5 and SHA-1 are upgraded to SHA-256.
    if (md_nid == NID_md5 || md_nid == NID_sha1) md_nid = NID_sha256;
    const EVP_MD* md = md_nid == NID_undef ? nullptr : EVP_get_digestbynid(md_nid);
    if (md == nullptr) return std::nullopt;
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert, md, buf, &len) != 1) return std::nullopt;
    return std::string(reinterpret_cast<char*>(buf), len);
}

std::optional<std::string> tls_server_end_point(SSL* ssl, bool server_side) {
    if (server_side) return tls_server_end_point(SSL_get_certificate(ssl));
    X509* peer = SSL_get1_peer_certificate(ssl);
    auto out = tls_server_end_point(peer);
    X509_free(peer);
    return out;
}

std::optional<std::string> verified_peer_common_name(SSL* ssl) {
    X509* peer = SSL_get1_peer_certificate(ssl);
    if (peer == nullptr) return std::nullopt;
    std::optional<std::string> cn;
    if (SSL_get_verify_result(ssl) == X509_V_OK) {
        X509_NAME* subject = X509_get_subject_name(peer);
        int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        ASN1_STRING* data = idx >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)) : nullptr;
        if (data != nullptr) {
            std::string name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                             size_t(ASN1_STRING_length(data)));
            // An embedded NUL would let "admin\0.evil" pass as "admin"; refuse it as PostgreSQL does.
            if (name.find('\0') == std::string::npos) cn = std::move(name);
        }
    }
    X509_free(peer);
    return cn;
}

}  // namespace splitpool::io
