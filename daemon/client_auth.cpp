// Authenticating the client: the exchanges splitpool runs itself (clear text, md5, SCRAM-SHA-256
// with channel binding, certificate), checked against pool_passwd, and the credential that results
// for logging in to PostgreSQL.
#include "daemon/client_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/auth/aes.hpp"
#include "daemon/auth/md5.hpp"
#include "daemon/auth/scram_server.hpp"
#include "daemon/io/tls.hpp"
#include "daemon/log.hpp"
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
    files.passwd_path = config.pool_passwd;
    files.key_path = key.path;
    if (!files.key) {
        if (key.path.empty())
            files.key_problem = "no AES key file: PGPOOLKEYFILE is not set and the user has no home directory";
        else
            files.key_problem = "could not read the AES key file \"" + key.path + "\": " +
                                (access(key.path.c_str(), R_OK) != 0 ? std::string(strerror(errno))
                                                                    : std::string("not a regular file or empty"));
        if (files.passwd)
            for (const auto& [user, entry] : files.passwd->entries)
                if (entry.kind == auth::PasswordKind::Aes) {
                    problems.push_back("pool_passwd has AES-encrypted entries, which cannot be used: " +
                                       files.key_problem);
                    break;
                }
    }
    return files;
}

ClientAuth::ClientAuth(io::Stream client, io::Buffer& in, io::Deadline deadline, const volatile int* interrupted,
                       std::string user, const AuthFiles& files)
    : client_(client), in_(in), deadline_(deadline), interrupted_(interrupted), user_(std::move(user)),
      files_(files) {}

const auth::PasswordEntry* ClientAuth::entry() const { return files_.passwd ? files_.passwd->find(user_) : nullptr; }

void ClientAuth::fail(std::string& error, std::string_view code, const std::string& message, const std::string& detail) {
    proto::put_error(error, "FATAL", code, message, detail);
    reason_ = detail.empty() ? message : detail;  // the detail says why; the message may hold the user name
}

void ClientAuth::refuse_password(std::string& error, std::string reason) {
    proto::put_error(error, "FATAL", proto::sqlstate::kInvalidPassword,
                     "password authentication failed for user \"" + user_ + "\"");
    reason_ = std::move(reason);
}

std::string ClientAuth::entry_problem(std::string_view purpose) const {
    std::string user = "user \"" + log_text(user_) + "\"";
    if (!files_.passwd)
        return files_.passwd_path.empty() ? "no pool_passwd file is configured"
                                          : "pool_passwd file \"" + files_.passwd_path + "\" could not be loaded";
    const auth::PasswordEntry* e = entry();
    if (!e) return "pool_passwd file \"" + files_.passwd_path + "\" does not contain an entry for " + user;
    if (e->kind == auth::PasswordKind::Aes) {
        if (!files_.key) return "the pool_passwd entry for " + user + " is AES-encrypted, and " + files_.key_problem;
        return "the AES-encrypted pool_passwd entry for " + user + " could not be decrypted with the key from \"" +
               files_.key_path + "\" (wrong key?)";
    }
    return "the pool_passwd entry for " + user + " is of type " + std::string(auth::password_kind_name(e->kind)) +
           ", which cannot be used for " + std::string(purpose);
}

bool ClientAuth::send(const std::string& bytes, std::string& error) {
    if (io::write_all(client_, bytes, deadline_) == io::IoStatus::Ok) return true;
    fail(error, proto::sqlstate::kConnectionFailure, "could not send authentication request", {});
    return false;
}

// The client's PasswordMessage / SASLInitialResponse / SASLResponse body.
bool ClientAuth::read_response(std::string& payload, std::string& error) {
    proto::Frame f;
    io::IoStatus st = io::await_reply(client_, in_, deadline_, interrupted_);  // always after send()
    if (st == io::IoStatus::Ok) st = io::read_frame(client_, in_, f, kMaxAuthMessage, deadline_, interrupted_);
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
    bool ok = false, usable = true;
    if (e->kind == auth::PasswordKind::Md5) {
        ok = auth::pg_md5_stored(*cred.password, user_) == e->value;
    } else if (e->kind == auth::PasswordKind::ScramSha256) {
        auto v = auth::parse_scram_verifier(e->value);
        usable = v.has_value();
        ok = v && auth::make_scram_verifier(*cred.password, v->salt, v->iterations) == e->value;
    } else if (auto plain = auth::plaintext(*e, files_.key)) {
        ok = plain->size() == cred.password->size() &&
             CRYPTO_memcmp(plain->data(), cred.password->data(), plain->size()) == 0;
    } else {
        usable = false;
    }
    if (!ok) {
        refuse_password(error, usable ? "password does not match the pool_passwd entry (clear text password)"
                                      : entry_problem("password authentication"));
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
    // Without a usable entry the client still gets a challenge, as from PostgreSQL for an unknown
    // role: whether the user is in pool_passwd shows in the log only.
    unsigned char salt[4];
    RAND_bytes(salt, sizeof salt);
    std::string request, payload;
    proto::put_auth_request(request, kAuthMd5, std::string_view(reinterpret_cast<char*>(salt), 4));
    if (!send(request, error) || !read_response(payload, error)) return false;
    if (stored.empty()) {
        refuse_password(error, entry_problem("md5 authentication"));
        return false;
    }
    proto::Reader r(payload.data(), payload.size());
    std::string_view answer = r.cstr();
    std::string expected = auth::pg_md5_password_from_stored(stored, salt);
    if (expected.empty() || answer.size() != expected.size() ||
        CRYPTO_memcmp(answer.data(), expected.data(), expected.size()) != 0) {
        refuse_password(error, "password does not match the pool_passwd entry (md5)");
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
    // A malformed exchange is refused alike for known and unknown users (the mock parses the same).
    if (!step.ok && !step.wrong_password) {
        fail(error, proto::sqlstate::kProtocolViolation, "password authentication failed for user \"" + user_ + "\"",
             step.value);
        return false;
    }
    if (!step.ok || !known) {
        refuse_password(error, known ? "password does not match the pool_passwd entry (SCRAM-SHA-256)"
                                     : entry_problem("SCRAM-SHA-256 authentication"));
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
