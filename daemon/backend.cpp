// One connection to one PostgreSQL node: logging in, running the reset queries, closing.
#include "daemon/backend.hpp"

#include <strings.h>
#include <unistd.h>

#include "daemon/auth/md5.hpp"
#include "daemon/auth/scram_client.hpp"
#include "daemon/io/tls.hpp"
#include "daemon/log.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::daemon {

namespace {

constexpr int32_t kAuthOk = 0;
constexpr int32_t kAuthCleartext = 3;
constexpr int32_t kAuthMd5 = 5;
constexpr int32_t kAuthSasl = 10;
constexpr int32_t kAuthSaslContinue = 11;
constexpr int32_t kAuthSaslFinal = 12;
constexpr uint32_t kMaxLoginMessage = 1 << 20;

// The primary's message field ('M') of an ErrorResponse body, for the log.
std::string error_message_of(const proto::Frame& f) {
    proto::Reader r(f.body, f.body_size());
    while (r.ok() && r.remaining() > 0) {
        uint8_t field = r.byte();
        if (field == 0) break;
        std::string_view value = r.cstr();
        if (field == 'M') return std::string(value);
    }
    return "unknown error";
}

// State of one login exchange; each method handles one message from the node.
class Login {
public:
    Login(const PasswordSource& source, LoginResult& result) : source_(source), result_(result) {}

    // False when the login failed; result_ then says why.
    bool on_auth_request(const proto::Frame& f, std::string& reply) {
        proto::Reader r(f.body, f.body_size());
        int32_t code = r.i32();
        switch (code) {
        case kAuthOk: return true;
        case kAuthCleartext:
            if (!need_password(code)) return false;
            proto::put_password(reply, *cred_.password);
            return true;
        case kAuthMd5: {
            std::string_view salt = r.bytes(4);
            if (!r.ok()) return fail("malformed md5 request from backend");
            auto s = reinterpret_cast<const unsigned char*>(salt.data());
            // pool_passwd's md5 hash answers an md5 challenge without the password, as in pgpool
            if (need_secret(code) && !cred_.password && cred_.md5_stored) {
                proto::put_password(reply, auth::pg_md5_password_from_stored(*cred_.md5_stored, s));
                return true;
            }
            if (!need_password(code)) return false;
            proto::put_password(reply, auth::pg_md5_password(*cred_.password, user_, s));
            return true;
        }
        case kAuthSasl: return on_sasl_start(r, reply);
        case kAuthSaslContinue: return on_sasl_continue(r, reply);
        case kAuthSaslFinal: return on_sasl_final(r);
        default:
            return fail("backend requested an unsupported authentication method (code " + std::to_string(code) + ")",
                        true);
        }
    }

    void set_user(std::string user) { user_ = std::move(user); }

    bool fail(std::string why, bool tell_client = false) {
        result_.log_message = std::move(why);
        if (tell_client || result_.client_error.empty())
            proto::put_error(result_.client_error, "FATAL", proto::sqlstate::kInternalError,
                             "could not log in to the database server", result_.log_message);
        return false;
    }

private:
    // Asks the session for the secret once; `code` tells it what the node wants.
    bool need_secret(int32_t code) {
        result_.used_password = true;
        result_.auth_code = code;
        if (have_secret_) return true;
        if (!source_(code, cred_, result_.client_error)) {
            result_.log_message = "no usable password for user \"" + user_ + "\"";
            return false;
        }
        have_secret_ = true;
        return true;
    }

    bool need_password(int32_t code) {
        if (!need_secret(code)) return false;
        if (cred_.password) return true;
        return fail("the database server asks for a password, but only a SCRAM verifier is known for user \"" +
                        user_ + "\" (set the server to scram-sha-256)", true);
    }

    bool on_sasl_start(proto::Reader& r, std::string& reply) {
        bool offered = false;
        for (std::string_view mech = r.cstr(); r.ok() && !mech.empty(); mech = r.cstr())
            offered = offered || mech == "SCRAM-SHA-256";
        if (!offered) return fail("backend offers no SASL mechanism splitpool supports", true);
        if (!need_secret(kAuthSasl)) return false;
        if (cred_.password)
            scram_ = std::make_unique<auth::ScramClient>(auth::ScramClient::with_password(*cred_.password));
        else if (cred_.client_key)
            scram_ = std::make_unique<auth::ScramClient>(
                auth::ScramClient::with_client_key(*cred_.client_key, cred_.server_key));
        else
            return fail("no password or SCRAM key for user \"" + user_ + "\"", true);
        std::string first = scram_->client_first();
        proto::Writer(reply).begin('p').cstr("SCRAM-SHA-256").i32(int32_t(first.size())).bytes(first).finish();
        return true;
    }

    bool on_sasl_continue(proto::Reader& r, std::string& reply) {
        if (!scram_) return fail("unexpected SASL continue from backend", true);
        auth::ScramResult next = scram_->handle_server_first(r.bytes(r.remaining()));
        if (!next.ok) return fail("SCRAM exchange with backend failed: " + next.value, true);
        proto::Writer(reply).begin('p').bytes(next.value).finish();
        return true;
    }

    bool on_sasl_final(proto::Reader& r) {
        std::string error;
        if (!scram_ || !scram_->verify_server_final(r.bytes(r.remaining()), &error))
            return fail("backend's SCRAM server signature is invalid: " + error, true);
        return true;
    }

    const PasswordSource& source_;
    LoginResult& result_;
    std::string user_;
    Credential cred_;
    bool have_secret_ = false;
    std::unique_ptr<auth::ScramClient> scram_;
};

// SSLRequest toward the node: 'S' starts TLS, 'N' continues in plain text unless TLS is required.
bool negotiate_tls(BackendConn& conn, const BackendAddress& address, io::Deadline deadline, Login& login) {
    std::string request;
    proto::Writer(request).begin_untyped().i32(proto::kSslRequestCode).finish();
    if (io::write_all(conn.stream(), request, deadline) != io::IoStatus::Ok ||
        io::await_reply(conn.stream(), conn.in, deadline) != io::IoStatus::Ok ||
        io::read_more(conn.stream(), conn.in, deadline) != io::IoStatus::Ok)
        return login.fail("could not negotiate TLS with the backend", true);
    char answer = conn.in.data()[0];
    conn.in.consume(1);
    if (answer == 'N') {
        if (address.tls_required) return login.fail("the backend does not support TLS (backend_sslmode requires it)", true);
        return true;
    }
    if (answer != 'S' || !conn.in.empty()) return login.fail("unexpected answer to SSLRequest from the backend", true);
    conn.ssl = SSL_new(address.tls);
    std::string error;
    if (!conn.ssl || SSL_set_fd(conn.ssl, conn.fd) != 1 ||
        !io::prepare_client_ssl(conn.ssl, io::SslMode(address.ssl_mode), address.host, &error))
        return login.fail("TLS setup toward the backend failed: " + error, true);
    if (io::tls_handshake(conn.ssl, false, deadline) != io::IoStatus::Ok)
        return login.fail("TLS handshake with the backend failed: " + io::tls_error_string(), true);
    return true;
}

}  // namespace

BackendConn::~BackendConn() {
    if (fd >= 0) {
        // Terminate lets the server end the session cleanly instead of logging an EOF.
        static const char kTerminate[] = {'X', 0, 0, 0, 4};
        stream().write_some(kTerminate, sizeof kTerminate);
        if (ssl) {
            SSL_shutdown(ssl);
            SSL_free(ssl);
        }
        ::close(fd);
    }
}

void merge_parameter_status(ParamList& params, const char* body, size_t size) {
    proto::Reader r(body, size);
    std::string name(r.cstr());
    std::string value(r.cstr());
    if (!r.ok()) return;
    for (auto& [k, v] : params)
        if (k == name) {
            v = std::move(value);
            return;
        }
    params.emplace_back(std::move(name), std::move(value));
}

LoginResult backend_login(const BackendAddress& address, const proto::StartupMessage& startup,
                          const PasswordSource& password_source, io::Deadline deadline) {
    LoginResult result;
    auto conn = std::make_unique<BackendConn>();
    conn->node = address.node;
    conn->created_ms = io::now_ms();
    Login login(password_source, result);
    login.set_user(startup.user());
    std::string error;
    conn->fd = io::connect_to(address.host, address.port, address.connect_timeout_ms, &error);
    if (conn->fd < 0) {
        login.fail(error, true);
        return result;
    }
    if (address.tls && !negotiate_tls(*conn, address, deadline, login)) return result;
    std::string out;
    proto::put_startup(out, startup);
    for (;;) {
        if (!out.empty() && io::write_all(conn->stream(), out, deadline) != io::IoStatus::Ok) {
            login.fail("could not send to backend", true);
            return result;
        }
        io::IoStatus st = out.empty() ? io::IoStatus::Ok : io::await_reply(conn->stream(), conn->in, deadline);
        out.clear();
        proto::Frame f;
        if (st == io::IoStatus::Ok) st = io::read_frame(conn->stream(), conn->in, f, kMaxLoginMessage, deadline);
        if (st != io::IoStatus::Ok) {
            login.fail(st == io::IoStatus::Timeout ? "timeout while logging in to backend"
                                                   : "backend closed the connection during login", true);
            return result;
        }
        switch (f.type) {
        case 'R':
            if (!login.on_auth_request(f, out)) return result;
            break;
        case 'E':
            result.client_error.assign(conn->in.data(), f.size());
            result.log_message = error_message_of(f);
            return result;
        case 'S': merge_parameter_status(result.params, f.body, f.body_size()); break;
        case 'K': {
            proto::Reader r(f.body, f.body_size());
            conn->pid = r.i32();
            conn->secret = static_cast<uint32_t>(r.i32());
            break;
        }
        case 'Z':
            conn->tx_status = f.body_size() ? f.body[0] : 'I';
            conn->in.consume(f.size());
            result.conn = std::move(conn);
            return result;
        case 'N': break;  // a notice during login is of no use to the client
        default: login.fail(std::string("unexpected message type '") + f.type + "' during login", true); return result;
        }
        conn->in.consume(f.size());
    }
}

namespace {

bool await_reset(BackendConn& conn, size_t pending, ParamList& params, io::Deadline deadline) {
    bool failed = false;
    if (io::await_reply(conn.stream(), conn.in, deadline) != io::IoStatus::Ok) return false;
    while (pending > 0) {
        proto::Frame f;
        if (io::read_frame(conn.stream(), conn.in, f, proto::kMaxMessageLength, deadline) != io::IoStatus::Ok) return false;
        if (f.type == 'Z') {
            --pending;
            conn.tx_status = f.body_size() ? f.body[0] : 'I';
        } else if (f.type == 'S') {
            merge_parameter_status(params, f.body, f.body_size());
        } else if (f.type == 'E') {
            failed = true;
        }
        conn.in.consume(f.size());
    }
    return !failed && conn.tx_status == 'I' && conn.in.empty();
}

// ABORT on an idle connection does nothing but draw a warning: left out there.
bool needless_reset_query(const std::string& query, char tx_status) {
    return tx_status == 'I' && strcasecmp(query.c_str(), "ABORT") == 0;
}

}  // namespace

void run_reset_queries(std::vector<std::unique_ptr<BackendConn>>& conns, const std::vector<std::string>& queries,
                       ParamList& params, io::Deadline deadline) {
    auto drop = [](std::unique_ptr<BackendConn>& conn) {
        PROXY_LOG(Debug1, "reset failed on node %d: dropping the connection", conn->node);
        conn.reset();
    };
    std::vector<size_t> sent(conns.size());  // reset queries sent to each
    for (size_t i = 0; i < conns.size(); ++i) {
        if (!conns[i] || !conns[i]->used) continue;
        std::string out;
        for (const auto& q : queries) {
            if (needless_reset_query(q, conns[i]->tx_status)) continue;
            proto::put_query(out, q);
            ++sent[i];
        }
        if (sent[i] > 0 && io::write_all(conns[i]->stream(), out, deadline) != io::IoStatus::Ok) drop(conns[i]);
    }
    for (size_t i = 0; i < conns.size(); ++i) {
        BackendConn* conn = conns[i].get();
        if (!conn) continue;
        bool ok = sent[i] > 0 ? await_reset(*conn, sent[i], params, deadline) : conn->tx_status == 'I' && conn->in.empty();
        if (ok) conn->used = false;
        else drop(conns[i]);
    }
}

}  // namespace splitpool::daemon

namespace splitpool::daemon {

namespace {

constexpr const char* kSideSavepoint = "splitpool_lookup";

// Sends one simple query and collects the first column of its rows until ReadyForQuery; nullopt
// on an I/O failure, *failed set when the server reported an error.
std::optional<std::vector<std::string>> simple_query(BackendConn& conn, const std::string& sql, io::Deadline deadline,
                                                     bool* failed) {
    conn.used = true;
    std::string out;
    proto::put_query(out, sql);
    if (io::write_all(conn.stream(), out, deadline) != io::IoStatus::Ok ||
        io::await_reply(conn.stream(), conn.in, deadline) != io::IoStatus::Ok)
        return std::nullopt;
    std::vector<std::string> rows;
    *failed = false;
    for (;;) {
        proto::Frame f;
        if (io::read_frame(conn.stream(), conn.in, f, proto::kMaxMessageLength, deadline) != io::IoStatus::Ok)
            return std::nullopt;
        if (f.type == 'D') {
            proto::Reader r(f.body, f.body_size());
            if (r.i16() >= 1) {
                int32_t len = r.i32();
                rows.emplace_back(len < 0 ? std::string_view() : r.bytes(size_t(len)));
            }
        } else if (f.type == 'E') {
            *failed = true;
        } else if (f.type == 'Z') {
            conn.tx_status = f.body_size() ? f.body[0] : 'I';
            conn.in.consume(f.size());
            return rows;
        }
        conn.in.consume(f.size());
    }
}

}  // namespace

std::optional<std::vector<std::string>> run_side_query(BackendConn& conn, const std::string& sql, io::Deadline deadline) {
    if ((conn.tx_status != 'I' && conn.tx_status != 'T') || !conn.in.empty()) return std::nullopt;
    bool failed = false;
    if (conn.tx_status == 'I') {
        auto rows = simple_query(conn, sql, deadline, &failed);
        return failed ? std::nullopt : rows;
    }
    std::string savepoint = std::string("SAVEPOINT ") + kSideSavepoint;
    auto rows = simple_query(conn, savepoint + "; " + sql + "; RELEASE " + savepoint, deadline, &failed);
    if (rows && !failed) return rows;
    if (rows) {  // the lookup failed: undo it, the client's transaction goes on as before
        std::string undo = "ROLLBACK TO " + savepoint + "; RELEASE " + savepoint;
        if (!simple_query(conn, undo, deadline, &failed) || failed) conn.tx_status = 'E';
    }
    return std::nullopt;
}

}  // namespace splitpool::daemon
