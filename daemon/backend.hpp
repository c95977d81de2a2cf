// One connection to one PostgreSQL node: logging in, running the reset queries, closing.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/auth/scram_client.hpp"
#include "daemon/io/buffer.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/proto/startup.hpp"

namespace splitpool::daemon {

using ParamList = std::vector<std::pair<std::string, std::string>>;

struct BackendConn {
    int node = -1;
    int fd = -1;
    SSL* ssl = nullptr;     // TLS session toward the node, when negotiated
    int32_t pid = 0;        // from BackendKeyData: identifies and cancels this connection's work
    uint32_t secret = 0;
    char tx_status = 'I';   // from the last ReadyForQuery
    bool used = false;      // sent anything since login or its last reset (else it needs none)
    int64_t created_ms = 0;
    io::Buffer in;          // bytes read from the node, not yet relayed

    io::Stream stream() const { return {fd, ssl}; }

    BackendConn() = default;
    BackendConn(const BackendConn&) = delete;
    BackendConn& operator=(const BackendConn&) = delete;
    ~BackendConn();
};

// Where to connect, how long to wait, and whether to ask for TLS.
struct BackendAddress {
    int node = 0;
    std::string host;
    int port = 0;
    int connect_timeout_ms = 10000;
    SSL_CTX* tls = nullptr;       // null: never ask for TLS
    bool tls_required = false;    // require / verify-ca / verify-full: refuse a node without TLS
    int ssl_mode = 0;             // io::SslMode, for host-name verification
};

// What splitpool logs in to PostgreSQL with.
struct Credential {
    std::optional<std::string> password;           // clear text
    std::optional<std::string> md5_stored;         // "md5" + md5(password + user): answers md5 only
    std::optional<auth::Sha256Digest> client_key;  // recovered from the client's SCRAM proof
    std::optional<auth::Sha256Digest> server_key;  // from the same verifier, to check the server
    bool verified = false;                         // splitpool itself checked the client's secret
};

// Called when the node asks for a secret (auth_code 3 clear text, 5 md5, 10 SASL). Fills `cred` and
// returns true, or returns false after putting the client's ErrorResponse into `client_error`.
using PasswordSource = std::function<bool(int32_t auth_code, Credential& cred, std::string& client_error)>;

struct LoginResult {
    std::unique_ptr<BackendConn> conn;  // set on success
    ParamList params;                   // ParameterStatus values the node reported
    bool used_password = false;         // the node asked for a password (the client must give one on reuse)
    int32_t auth_code = 0;              // what the node asked for: 0 trust, 3, 5 or 10
    std::string client_error;           // ErrorResponse bytes for the client on failure
    std::string log_message;            // why it failed, for the log (never contains a password)
};

// Connects and logs in; blocks until done or the deadline (the child serves one client, and this
// is its setup phase). The node's own ErrorResponse is passed on to the client unchanged.
LoginResult backend_login(const BackendAddress& address, const proto::StartupMessage& startup,
                          const PasswordSource& password_source, io::Deadline deadline);

// Resets the used connections of a set with the reset queries (ABORT, DISCARD ALL, ...): sent to
// every such node first, then each read to ReadyForQuery, so the nodes work on them together. A
// connection that should be dropped rather than pooled is dropped; ParameterStatus changes are
// merged into params.
void run_reset_queries(std::vector<std::unique_ptr<BackendConn>>& conns, const std::vector<std::string>& queries,
                       ParamList& params, io::Deadline deadline);

// A catalog lookup on a connection with no reply outstanding: first column of each row, or nullopt
// when it may not run now (an aborted transaction) or failed. Inside a transaction it runs under a
// savepoint, so even a failing lookup leaves the client's transaction as it was.
std::optional<std::vector<std::string>> run_side_query(BackendConn& conn, const std::string& sql, io::Deadline deadline);

// Records a ParameterStatus ('S') body into params, replacing an earlier value of the same name.
void merge_parameter_status(ParamList& params, const char* body, size_t size);

}  // namespace splitpool::daemon
