// Authenticating the client: the exchanges splitpool runs itself (clear text, md5, SCRAM-SHA-256
// with channel binding, certificate), checked against pool_passwd, and the credential that results
// for logging in to PostgreSQL.
#include "daemon/client_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "daemon/auth/aes.hpp"
#include "daemon/auth/md5.hpp"
#include "daemon/auth/scram_server.hpp"
#include "daemon/io/tls.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::daemon {

namespace {
constexpr uint32_t kMaxAuthMessage = 8192;
constexpr int32_t kAuthCleartext = 3, kAuthMd5 = 5, kAuthSasl = 10, kAuthSaslContinue = 11, kAuthSaslFinal = 12;
}  // namespace

AuthFiles load_auth_files(const Config& config, const std::string& hba_path, const std::string& key_path,
                          std::vector<std::string>& problems) {
    AuthFiles files;
    if (config.enable_pool_hba) {
        auth::HbaParseResult hba = auth::load_hba(hba_path, auth::HbaParseOptions{true});
        for (const auto& w : hba.warnings) problems.push_back(w);
        for (const auto& e : hba.errors) problems.push_back(e);
        if (hba.ok) files.hba = std::move(hba.file);
    }
    if (!config.pool_passwd.empty()) {
        auth::PoolPasswdLoad pw = auth::load_pool_passwd(config.pool_passwd);
        for (const auto& w : pw.warnings) problems.push_back(w);
        if (pw.ok) files.passwd = std::move(pw.file);
        else if (config.enable_pool_hba || !config.allow_clear_text_frontend_auth) problems.push_back(pw.error);
    }
    auth::PoolKey key = auth::read_pool_key(key_path.empty() ? auth::default_pool_key_path() : key_path);
    for (const auto& w : key.warnings) problems.push_back(w);
    files.key = key.key;
    return files;
}

ClientAuth::ClientAuth(io::Stream client, io::Buffer& in, io::Deadline deadline, const volatile int* interrupted,
                       std::string user, const AuthFiles& files)
    : client_(client), in_(in), deadline_(deadline), interrupted_(interrupted), user_(std::move(user)),
      files_(files) {}

const auth::PasswordEntry* ClientAuth::entry() const { return files_.passwd ? files_.passwd->find(user_) : nullptr; }

void ClientAuth::fail(std::string& error, std::string_view code, const std::string& message, const std::string& detail) {
    proto::put_error(error, "FATAL", code, message, detail);
}

bool ClientAuth::send(const std::string& bytes, std::string& error) {
    if (io::write_all(client_, bytes, deadline_) == io::IoStatus::Ok) return true;
    fail(error, proto::sqlstate::kConnectionFailure, "could not send authentication request", {});
    return false;
}

// The client's PasswordMessage / SASLInitialResponse / SASLResponse body.
bool ClientAuth::read_response(std::string& payload, std::string& error) {
    proto::Frame f;
    io::IoStatus st = io::read_frame(client_, in_, f, kMaxAuthMessage, deadline_, interrupted_);
    if (st != io::IoStatus::Ok || f.type != 'p') {
        fail(error, proto::sqlstate::kProtocolViolation,
             st == io::IoStatus::Timeout ? "authentication timeout" : "expected password response", {});
        return false;
    }
    payload.assign(f.body, f.body_size());
    in_.consume(f.size());
    return true;
}

bool ClientAuth::ask_cleartext(Credential& cred, std::string& error) {
    std::string request, payload;
    proto::put_auth_request(request, kAuthCleartext);
    if (!send(request, error) || !read_response(payload, error)) return false;
    proto::Reader r(payload.data(), payload.size());
    cred.password = std::string(r.cstr());
    OPENSSL_cleanse(payload.data(), payload.size());
    return true;
}

bool ClientAuth::run_method(auth::HbaMethod method, Credential& cred, std::string& error) {
    switch (method) {
    case auth::HbaMethod::Trust: return true;
    case auth::HbaMethod::Password: return password_method(cred, error);
    case auth::HbaMethod::Md5: return md5_method(cred, error);
    case auth::HbaMethod::ScramSha256: return scram_method(cred, error);
    case auth::HbaMethod::Cert: return cert_method(error);
    case auth::HbaMethod::Reject: break;
    }
    fail(error, proto::sqlstate::kInvalidAuthorization, "client authentication failed", "rejected by pool_hba.conf");
    return false;
}

// Clear text checked against pool_passwd when it has the user; without an entry the password is
// passed on and PostgreSQL judges it (the session refuses a backend that asks for none).
bool ClientAuth::password_method(Credential& cred, std::string& error) {
    if (!ask_cleartext(cred, error)) return false;
    const auth::PasswordEntry* e = entry();
    if (!e) return true;
    bool ok = false;
    if (e->kind == auth::PasswordKind::Md5) {
        ok = auth::pg_md5_stored(*cred.password, user_) == e->value;
    } else if (e->kind == auth::PasswordKind::ScramSha256) {
        auto v = auth::parse_scram_verifier(e->value);
        ok = v && auth::make_scram_verifier(*cred.password, v->salt, v->iterations) == e->value;
    } else if (auto plain = auth::plaintext(*e, files_.key)) {
        ok = CRYPTO_memcmp(plain->data(), cred.password->data(), plain->size()) == 0 &&
             plain->size() == cred.password->size();
    }
    if (!ok) {
        fail(error, proto::sqlstate::kInvalidPassword, "password authentication failed for user \"" + user_ + "\"",
             "password does not match");
        return false;
    }
    cred.verified = true;
    return true;
}

bool ClientAuth::md5_method(Credential& cred, std::string& error) {
    const auth::PasswordEntry* e = entry();
    std::optional<std::string> plain = e ? auth::plaintext(*e, files_.key) : std::nullopt;
    std::string stored = e && e->kind == auth::PasswordKind::Md5 ? e->value
                         : plain ? auth::pg_md5_stored(*plain, user_) : std::string();
    if (stored.empty()) {
        fail(error, proto::sqlstate::kInvalidAuthorization, "md5 authentication failed",
             e ? "pool_passwd file does not contain valid md5 entry for \"" + user_ + "\""
               : "pool_passwd file does not contain an entry for \"" + user_ + "\"");
        return false;
    }
    unsigned char salt[4];
    RAND_bytes(salt, sizeof salt);
    std::string request, payload;
    proto::put_auth_request(request, kAuthMd5, std::string_view(reinterpret_cast<char*>(salt), 4));
    if (!send(request, error) || !read_response(payload, error)) return false;
    proto::Reader r(payload.data(), payload.size());
    std::string_view answer = r.cstr();
    std::string expected = auth::pg_md5_password_from_stored(stored, salt);
    if (expected.empty() || answer.size() != expected.size() ||
        CRYPTO_memcmp(answer.data(), expected.data(), expected.size()) != 0) {
        fail(error, proto::sqlstate::kInvalidPassword, "password authentication failed for user \"" + user_ + "\"",
             "password does not match");
        return false;
    }
    if (plain) cred.password = std::move(plain);
    else cred.md5_stored = stored;
    cred.verified = true;
    return true;
}

// SCRAM-SHA-256 (and -PLUS over TLS) against a pool_passwd verifier or a plaintext-capable entry.
// A verifier entry yields the client's ClientKey, enough to log in to a PostgreSQL holding the
// same verifier without any password stored here.
bool ClientAuth::scram_method(Credential& cred, std::string& error) {
    const auth::PasswordEntry* e = entry();
    std::optional<std::string> plain = e ? auth::plaintext(*e, files_.key) : std::nullopt;
    std::optional<auth::ScramServer> server;
    if (e && e->kind == auth::PasswordKind::ScramSha256) {
        if (auto v = auth::parse_scram_verifier(e->value)) server = auth::ScramServer::with_verifier(*v);
    } else if (plain) {
        server = auth::ScramServer::with_password(*plain);
    }
    bool known = server.has_value();
    if (!known) server = auth::ScramServer::mock(user_);  // an unknown user still gets a full exchange
    if (client_.ssl)
        if (auto cb = io::tls_server_end_point(client_.ssl, true)) server->set_channel_binding(*cb);
    std::string out, payload;
    proto::put_auth_request(out, kAuthSasl, server->sasl_mechanisms());
    if (!send(out, error) || !read_response(payload, error)) return false;
    proto::Reader r(payload.data(), payload.size());
    std::string_view mechanism = r.cstr();
    int32_t len = r.i32();
    std::string_view first = r.bytes(len < 0 ? 0 : size_t(len));
    auth::ScramServerResult step = server->handle_client_first(mechanism, first);
    if (step.ok) {
        out.clear();
        proto::put_auth_request(out, kAuthSaslContinue, step.value);
        if (!send(out, error) || !read_response(payload, error)) return false;
        step = server->handle_client_final(payload);
    }
    if (!step.ok || !known) {
        fail(error, step.wrong_password || !known ? proto::sqlstate::kInvalidPassword : proto::sqlstate::kProtocolViolation,
             "password authentication failed for user \"" + user_ + "\"",
             known ? step.value : "pool_passwd file does not contain an entry for \"" + user_ + "\"");
        return false;
    }
    out.clear();
    proto::put_auth_request(out, kAuthSaslFinal, step.value);
    if (!send(out, error)) return false;
    if (plain) cred.password = std::move(plain);
    cred.client_key = server->client_key();
    cred.server_key = server->verifier().server_key;
    cred.verified = true;
    return true;
}

bool ClientAuth::cert_method(std::string& error) {
    std::optional<std::string> cn = client_.ssl ? io::verified_peer_common_name(client_.ssl) : std::nullopt;
    if (cn && *cn == user_) return true;
    fail(error, proto::sqlstate::kInvalidAuthorization, "certificate authentication failed for user \"" + user_ + "\"",
         cn ? "the certificate's common name \"" + *cn + "\" does not match the user name"
            : "no verified client certificate");
    return false;
}

}  // namespace splitpool::daemon
