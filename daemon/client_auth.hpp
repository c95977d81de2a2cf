// Authenticating the client: the exchanges splitpool runs itself (clear text, md5, SCRAM-SHA-256
// with channel binding, certificate), checked against pool_passwd, and the credential that results
// for logging in to PostgreSQL.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "daemon/auth/hba.hpp"
#include "daemon/auth/pool_passwd.hpp"
#include "daemon/auth/scram_client.hpp"
#include "daemon/backend.hpp"
#include "daemon/config.hpp"
#include "daemon/io/conn.hpp"

namespace splitpool::daemon {

// pool_hba.conf, pool_passwd and the AES key, loaded by each child at start and on reload.
struct AuthFiles {
    std::optional<auth::HbaFile> hba;          // set when enable_pool_hba
    std::optional<auth::PoolPasswd> passwd;    // set when pool_passwd names a readable file
    std::optional<std::string> key;            // .pgpoolkey text, for AES entries
    std::string passwd_path;                   // for log lines
    std::string key_path;                      // the key file that was tried
    std::string key_problem;                   // why there is no key (names the file), for log lines
};

// Loads what the config asks for; problems (file:line messages, permission warnings) are returned,
// and a file that fails to load is left unset, which makes the methods needing it refuse clients.
AuthFiles load_auth_files(const Config& config, const std::string& hba_path, const std::string& key_path,
                          std::vector<std::string>& problems);

// One session's exchanges with its client, blocking and bounded by the session's deadline.
class ClientAuth {
public:
    ClientAuth(io::Stream client, io::Buffer& in, io::Deadline deadline, const volatile int* interrupted,
               std::string user, const AuthFiles& files);

    // Runs a pool_hba method. False after putting the client's ErrorResponse into `error`.
    bool run_method(auth::HbaMethod method, Credential& cred, std::string& error);
    // Asks for the password in clear text and keeps it (pass-through: PostgreSQL will judge it).
    bool ask_cleartext(Credential& cred, std::string& error);
    // The entry pool_passwd has for this user, or null.
    const auth::PasswordEntry* entry() const;
    // Why the last refusal happened, precisely, for the server log only: the client is told no
    // more than PostgreSQL would tell it (no hint whether the user exists in pool_passwd).
    const std::string& failure_reason() const { return reason_; }
    // Why pool_passwd gives no secret usable for `purpose` for this user (no entry, no key, ...).
    std::string entry_problem(std::string_view purpose) const;

private:
    bool password_method(Credential& cred, std::string& error);
    bool md5_method(Credential& cred, std::string& error);
    bool scram_method(Credential& cred, std::string& error);
    bool cert_method(std::string& error);
    bool read_response(std::string& payload, std::string& error);
    bool send(const std::string& bytes, std::string& error);
    void fail(std::string& error, std::string_view code, const std::string& message, const std::string& detail);
    // PostgreSQL's generic 28P01 "password authentication failed for user", with `reason` logged only.
    void refuse_password(std::string& error, std::string reason);

    io::Stream client_;
    io::Buffer& in_;
    io::Deadline deadline_;
    const volatile int* interrupted_;
    std::string user_;
    const AuthFiles& files_;
    std::string reason_;
};

}  // namespace splitpool::daemon
