// One client session from accept to close: startup packet, authentication, taking or building a
// backend connection set, the relay, and returning the set to the pool.
#include "daemon/session.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "daemon/cancel.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/io/tls.hpp"
#include "daemon/log.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"
#include "daemon/relay.hpp"
#include "daemon/secure_random.hpp"

namespace splitpool::daemon {
namespace {


int primary_node(const SessionContext& ctx) {
    int primary = ctx.table.header().primary_node.load(std::memory_order_relaxed);
    return primary >= 0 && primary < int(ctx.config.backends.size()) ? primary : 0;
}

// The "replication" startup parameter asks for a walsender: "database" (logical) or a true value.
// Only PostgreSQL's false spellings (parse_bool: prefixes of "false" and "no", "of(f)", "0") make
// a normal session; an invalid value is treated as replication, and the server refuses it.
bool wants_replication(const proto::StartupMessage& startup) {
    const std::string* value = startup.find("replication");
    if (!value) return false;
    std::string v;
    for (char c : *value) v += char(tolower(static_cast<unsigned char>(c)));
    auto prefix_of = [&v](std::string_view word) { return !v.empty() && word.substr(0, v.size()) == v; };
    bool is_false = (v[0] == 'f' && prefix_of("false")) || (v[0] == 'n' && prefix_of("no")) ||
                    (v.size() >= 2 && prefix_of("off")) || v == "0";
    return !is_false;
}

// A node's login ErrorResponse without PostgreSQL's source-location fields (F, L, R): splitpool's own
// refusals have none, and a client must not tell from them whether splitpool or the node judged its
// password, that is, whether pool_passwd has the user.
std::string without_source_location(const std::string& bytes) {
    proto::Frame f;
    if (proto::parse_frame(bytes.data(), bytes.size(), f) != proto::FrameStatus::Ok || f.type != 'E' ||
        f.size() != bytes.size())
        return bytes;
    std::string out;
    proto::Writer w(out);
    w.begin('E');
    proto::Reader r(f.body, f.body_size());
    for (uint8_t field = r.byte(); r.ok() && field != 0; field = r.byte()) {
        std::string_view value = r.cstr();
        if (!r.ok()) return bytes;
        if (field != 'F' && field != 'L' && field != 'R') w.byte(field).cstr(value);
    }
    w.byte(0).finish();
    return out;
}

// Moves what is readable from `from` into `to` (up to `limit` buffered); false at end of stream or on error.
bool pump(io::Stream from, std::string& to, size_t limit) {
    char buf[65536];
    while (to.size() < limit) {
        ssize_t n = from.read_some(buf, sizeof buf);
        if (n > 0) {
            to.append(buf, size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}


class Session {
public:
    Session(SessionContext& ctx, int fd, const sockaddr_storage& peer)
        : ctx_(ctx), client_{fd, nullptr}, peer_addr_(peer), peer_(io::peer_address(peer)) {
        deadline_ = io::deadline_after_ms(ctx.config.authentication_timeout > 0
                                              ? int64_t(ctx.config.authentication_timeout) * 1000
                                              : int64_t(1) << 40);
    }

    ~Session() {
        release_client();
        if (client_.ssl) {
            SSL_shutdown(client_.ssl);
            SSL_free(client_.ssl);
        }
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void run();

private:
    enum class Startup { Session, Cancel, Closed };
    Startup read_startup();
    bool start_tls();
    bool authenticate();
    bool await_primary();
    bool set_fits_nodes() const;
    bool authenticate_by_hba();
    bool reauthenticate_for_pooled_set();
    bool provide_credential(int32_t auth_code, Credential& cred, std::string& client_error);
    bool credential_from_entry(const auth::PasswordEntry& entry);
    bool connect_node(int node, std::string& client_error);
    void pipe_replication();
    void send_greeting();
    void publish_backend_keys();
    void end_session(Relay* relay, RelayEnd end);
    void send_fatal(std::string_view code, const std::string& message, std::string_view detail = {});
    void release_client();

    SessionContext& ctx_;
    io::Stream client_;
    sockaddr_storage peer_addr_;  // from accept()
    std::string peer_;
    io::Deadline deadline_;
    io::Buffer in_;
    proto::StartupMessage startup_;
    std::unique_ptr<BackendSet> set_;
    Credential cred_;             // what this session logs in to PostgreSQL with (never logged)
    bool have_cred_ = false;
    bool client_verified_ = false;  // pool_hba (or a pooled set's re-check) already authenticated the client
    bool must_be_judged_by_backend_ = false;  // hba "password" without a pool_passwd entry
    bool replication_ = false;    // a walsender connection: primary only, piped as is, never pooled
    bool released_ = false;
    int32_t client_pid_ = 0;
    uint32_t client_secret_ = 0;
};

void Session::send_fatal(std::string_view code, const std::string& message, std::string_view detail) {
    std::string out;
    proto::put_error(out, "FATAL", code, message, detail);
    io::write_all(client_, out, io::deadline_after_ms(1000));
}

// Reads packets until a StartupMessage: SSL and GSS encryption requests are declined with 'N'
// (TLS arrives with the authentication work), a CancelRequest is forwarded and ends the connection.
// Each negotiation happens at most once, as in PostgreSQL's ProcessStartupPacket: a repeated
// request (or GSS inside TLS) is refused like any unknown protocol code.
Session::Startup Session::read_startup() {
    bool ssl_done = false, gss_done = false;
    for (;;) {
        uint32_t length = 0;
        proto::FrameStatus st;
        while ((st = proto::parse_startup_frame(in_.data(), in_.size(), length)) == proto::FrameStatus::NeedMore)
            if (io::read_more(client_, in_, deadline_, ctx_.fast_shutdown) != io::IoStatus::Ok) return Startup::Closed;
        if (st == proto::FrameStatus::Malformed) {
            send_fatal(proto::sqlstate::kProtocolViolation, "invalid length of startup packet");
            return Startup::Closed;
        }
        int32_t code = static_cast<int32_t>(proto::read_u32(in_.data() + 4));
        if ((code == proto::kSslRequestCode && ssl_done) || (code == proto::kGssEncRequestCode && gss_done)) {
            uint32_t version = uint32_t(code);
            PROXY_LOG(Log, "repeated %s request from %s: closing the connection",
                      code == proto::kSslRequestCode ? "SSL" : "GSSAPI encryption", peer_.c_str());
            send_fatal(proto::sqlstate::kFeatureNotSupported,
                       "unsupported frontend protocol " + std::to_string(version >> 16) + "." +
                           std::to_string(version & 0xffff) + ": server supports 3.0 to 3.0");
            return Startup::Closed;
        }
        if (code == proto::kSslRequestCode) ssl_done = true;
        if (code == proto::kGssEncRequestCode) gss_done = true;
        if (code == proto::kSslRequestCode && ctx_.tls_server && !client_.ssl) {
            in_.consume(length);
            gss_done = true;  // no GSS encryption inside TLS
            if (!start_tls()) return Startup::Closed;
            continue;
        }
        if (code == proto::kSslRequestCode || code == proto::kGssEncRequestCode) {
            in_.consume(length);
            if (io::write_all(client_, "N", 1, deadline_) != io::IoStatus::Ok ||
                io::await_reply(client_, in_, deadline_, ctx_.fast_shutdown) != io::IoStatus::Ok)
                return Startup::Closed;
            continue;
        }
        if (code == proto::kCancelRequestCode && length == 16) {
            forward_cancel(ctx_.config, ctx_.table, int32_t(proto::read_u32(in_.data() + 8)),
                           proto::read_u32(in_.data() + 12));
            return Startup::Cancel;
        }
        std::string error;
        if (!proto::decode_startup(in_.data() + 4, length - 4, startup_, &error)) {
            send_fatal(proto::sqlstate::kProtocolViolation, error);
            return Startup::Closed;
        }
        in_.consume(length);
        return Startup::Session;
    }
}

// 'S', then the TLS handshake. Bytes the client sent after its SSLRequest and before the handshake
// would be plaintext smuggled into the encrypted session: refused, as PostgreSQL does.
bool Session::start_tls() {
    if (!in_.empty()) {
        send_fatal(proto::sqlstate::kProtocolViolation, "received unencrypted data after SSL request");
        return false;
    }
    if (io::write_all(client_, "S", 1, deadline_) != io::IoStatus::Ok) return false;
    SSL* ssl = SSL_new(ctx_.tls_server);
    if (!ssl || SSL_set_fd(ssl, client_.fd) != 1) {
        SSL_free(ssl);
        return false;
    }
    client_.ssl = ssl;
    if (io::tls_handshake(ssl, true, deadline_, ctx_.fast_shutdown) != io::IoStatus::Ok) {
        PROXY_LOG(Log, "TLS handshake with %s failed: %s", peer_.c_str(), io::tls_error_string().c_str());
        return false;
    }
    return true;
}

// The secret for a node that asks for one. A pool_passwd entry comes first (pgpool's order), then
// the client's clear-text password when allowed or when the node itself asks for clear text. With
// pool_hba off and an entry, the client proves it knows the secret with the node's own method.
// A client pool_hba already authenticated logs in to PostgreSQL with its pool_passwd entry.
bool Session::credential_from_entry(const auth::PasswordEntry& entry) {
    if (!cred_.password) cred_.password = auth::plaintext(entry, ctx_.auth_files.key);
    if (entry.kind == auth::PasswordKind::Md5) cred_.md5_stored = entry.value;
    return cred_.password || cred_.client_key || cred_.md5_stored;
}

bool Session::provide_credential(int32_t auth_code, Credential& cred, std::string& client_error) {
    if (have_cred_) {
        cred = cred_;
        return true;
    }
    ClientAuth auth(client_, in_, deadline_, ctx_.fast_shutdown, startup_.user(), ctx_.auth_files);
    bool ok;
    if (!client_verified_ && auth.entry() && !ctx_.config.allow_clear_text_frontend_auth)
        ok = auth.run_method(auth_code == 5 ? auth::HbaMethod::Md5
                             : auth_code == 10 ? auth::HbaMethod::ScramSha256 : auth::HbaMethod::Password,
                             cred_, client_error);
    else if (client_verified_ && auth.entry())
        ok = credential_from_entry(*auth.entry());
    else if (!cred_.password && (ctx_.config.allow_clear_text_frontend_auth || auth_code == 3))
        ok = auth.ask_cleartext(cred_, client_error);
    else
        ok = cred_.password.has_value() || cred_.client_key.has_value();
    if (!ok) {
        // The client learns no more than from PostgreSQL; the log says what is missing.
        std::string reason = auth.failure_reason();
        if (client_error.empty()) {
            proto::put_error(client_error, "FATAL", proto::sqlstate::kInvalidPassword,
                             "password authentication failed for user \"" + startup_.user() + "\"");
            reason = "the database server asks for a password and splitpool has none: " +
                     auth.entry_problem("logging in to the database server") +
                     (auth.entry() ? ""
                      : ctx_.config.enable_pool_hba ? " (add the user to pool_passwd)"
                                                    : " (add the user to pool_passwd or set "
                                                      "allow_clear_text_frontend_auth = on)");
        }
        PROXY_LOG(Log, "authentication failed for user \"%s\" from %s: %s", log_text(startup_.user()).c_str(),
                  peer_.c_str(), reason.c_str());
        return false;
    }
    have_cred_ = true;
    cred = cred_;
    return true;
}

bool Session::connect_node(int node, std::string& client_error) {
    const BackendConfig& b = ctx_.config.backends[node];
    BackendAddress address{node, b.hostname, b.port, ctx_.config.connect_timeout};
    if (ctx_.tls_backend) {
        auto mode = io::parse_ssl_mode(ctx_.config.backend_sslmode).value_or(io::SslMode::Prefer);
        address.tls = mode == io::SslMode::Disable ? nullptr : ctx_.tls_backend;
        address.tls_required = !io::ssl_mode_allows_plaintext(mode);
        address.ssl_mode = int(mode);
    }
    PasswordSource source = [this](int32_t code, Credential& cred, std::string& err) {
        return provide_credential(code, cred, err);
    };
    LoginResult result = backend_login(address, startup_, source, deadline_);
    if (!result.conn) {
        PROXY_LOG(Log, "login to node %d failed for user \"%s\" database \"%s\" from %s: %s", node,
                  log_text(startup_.user()).c_str(), log_text(startup_.database()).c_str(), peer_.c_str(),
                  log_text(result.log_message, 1024).c_str());
        client_error = without_source_location(result.client_error);
        return false;
    }
    shm::NodeSlot& slot = ctx_.table.node(node);
    if (slot.status.load() == uint8_t(shm::NodeStatus::Waiting)) ctx_.table.set_node_status(node, shm::NodeStatus::Up);
    if (node == primary_node(ctx_)) set_->params = std::move(result.params);
    if (result.used_password) {
        set_->needs_password = true;
        set_->auth_code = result.auth_code;
        if (cred_.password) set_->password_digest = password_digest(*cred_.password, ctx_.digest_salt);
    }
    ctx_.table.child(ctx_.child_slot).backend[node].secret.store(result.conn->secret);
    ctx_.table.child(ctx_.child_slot).backend[node].pid.store(result.conn->pid);
    set_->nodes[node] = std::move(result.conn);
    return true;
}

// pool_hba.conf decides the method; the client is authenticated before any backend is touched.
bool Session::authenticate_by_hba() {
    const sockaddr_storage& addr = peer_addr_;
    auth::ConnType type = addr.ss_family == AF_UNIX ? auth::ConnType::Local : auth::ConnType::Tcp;
    const auth::HbaRule* rule = ctx_.auth_files.hba
        ? auth::match(*ctx_.auth_files.hba, type, client_.ssl != nullptr, reinterpret_cast<const sockaddr*>(&addr),
                      startup_.database(), startup_.user(), replication_)
        : nullptr;
    std::string error;
    if (!rule || rule->method == auth::HbaMethod::Reject) {
        std::string host = addr.ss_family == AF_UNIX ? "[local]" : peer_.substr(0, peer_.rfind(':'));
        PROXY_LOG(Log, "pool_hba.conf %s %suser \"%s\" database \"%s\" from %s",
                  rule ? ("line " + std::to_string(rule->line) + " rejects").c_str() : "has no entry for",
                  replication_ ? "replication connection of " : "", log_text(startup_.user()).c_str(),
                  log_text(startup_.database()).c_str(), peer_.c_str());
        if (replication_) {  // PostgreSQL's wording: "all" does not cover replication connections
            proto::put_error(error, "FATAL", proto::sqlstate::kInvalidAuthorization,
                             std::string(rule ? "pool_hba.conf rejects replication connection for host \""
                                              : "no pool_hba.conf entry for replication connection from host \"") +
                                 host + "\", user \"" + startup_.user() + "\", SSL " + (client_.ssl ? "on" : "off"),
                             {}, "a pool_hba.conf line must name the \"replication\" database");
            io::write_all(client_, error, deadline_);
            return false;
        }
        proto::put_error(error, "FATAL", proto::sqlstate::kInvalidAuthorization, "client authentication failed",
                         "no pool_hba.conf entry for host \"" + host + "\", user \"" + startup_.user() +
                             "\", database \"" + startup_.database() + "\", SSL " + (client_.ssl ? "on" : "off"),
                         "see pgpool log for details");
        io::write_all(client_, error, deadline_);
        return false;
    }
    ClientAuth auth(client_, in_, deadline_, ctx_.fast_shutdown, startup_.user(), ctx_.auth_files);
    if (!auth.run_method(rule->method, cred_, error)) {
        PROXY_LOG(Log, "authentication failed for user \"%s\" from %s (pool_hba.conf line %d): %s",
                  log_text(startup_.user()).c_str(), peer_.c_str(), rule->line, auth.failure_reason().c_str());
        io::write_all(client_, error, deadline_);
        return false;
    }
    client_verified_ = rule->method != auth::HbaMethod::Password || cred_.verified || rule->method == auth::HbaMethod::Trust;
    // A password splitpool could not check itself must be checked by PostgreSQL.
    must_be_judged_by_backend_ = rule->method == auth::HbaMethod::Password && !cred_.verified;
    have_cred_ = cred_.password || cred_.client_key || cred_.md5_stored;
    return true;
}

// A pooled set is reused only after the client proves the secret it was built with, by the method
// the primary asked for; a client with another password gets a fresh login, so PostgreSQL stays
// the judge of passwords it alone knows.
bool Session::reauthenticate_for_pooled_set() {
    if (client_verified_ || !set_->needs_password) return true;
    Credential cred;
    std::string error;
    if (!provide_credential(set_->auth_code, cred, error)) {
        io::write_all(client_, error, deadline_);
        return false;
    }
    if (cred_.verified) return true;
    if (!cred_.password || password_digest(*cred_.password, ctx_.digest_salt) != set_->password_digest)
        set_.reset();
    return true;
}

// A cached set made before the nodes changed: it must hold the current primary's connection and
// none to a detached node (the child's idle tick drops those too, but a client may come first).
bool Session::set_fits_nodes() const {
    if (!set_->conn(primary_node(ctx_))) return false;
    for (size_t i = 0; i < set_->nodes.size(); ++i)
        if (set_->nodes[i] && int(i) < ctx_.table.num_nodes() &&
            ctx_.table.node(int(i)).status.load() == uint8_t(shm::NodeStatus::Down))
            return false;
    return true;
}

// While a failover looks for the new primary (primary_node -1), a new client waits for it, as
// pgpool's clients wait out a failover, for up to connect_timeout; then it gets a clear FATAL
// instead of a refused connection to the node that failed.
bool Session::await_primary() {
    io::Deadline until = std::min(deadline_, io::deadline_after_ms(ctx_.config.connect_timeout));
    bool logged = false;
    while (ctx_.table.header().primary_node.load() < 0) {
        if (io::now_ms() >= until || *ctx_.fast_shutdown) {
            PROXY_LOG(Log, "no primary node for the client from %s: giving up after %d ms", peer_.c_str(),
                      ctx_.config.connect_timeout);
            send_fatal(proto::sqlstate::kCannotConnectNow, "no primary node is available",
                       "the primary node was detached and no new primary has been found yet");
            return false;
        }
        if (!logged) PROXY_LOG(Log, "no primary node known: the client from %s waits for one", peer_.c_str());
        logged = true;
        timespec ts{0, 100 * 1000000L};
        nanosleep(&ts, nullptr);
    }
    return true;
}

bool Session::authenticate() {
    if (ctx_.config.enable_pool_hba && !authenticate_by_hba()) return false;
    if (!await_primary()) return false;
    if (!replication_) set_ = ctx_.pool.take(startup_.pool_key());
    if (set_ && !set_->usable()) set_.reset();  // the server ended a pooled connection meanwhile
    if (set_ && !set_fits_nodes()) set_.reset();
    if (set_ && must_be_judged_by_backend_) set_.reset();
    if (set_ && !reauthenticate_for_pooled_set()) return false;
    if (set_) return true;
    set_ = std::make_unique<BackendSet>();
    set_->key = startup_.pool_key();
    set_->startup = startup_;
    set_->nodes.resize(ctx_.config.backends.size());
    std::string error;
    if (!connect_node(primary_node(ctx_), error)) {
        io::write_all(client_, error, deadline_);
        return false;
    }
    if (must_be_judged_by_backend_ && !set_->needs_password) {
        PROXY_LOG(Log, "authentication failed for user \"%s\" from %s: pool_passwd has no entry for the user and "
                  "the database server did not check the password", log_text(startup_.user()).c_str(), peer_.c_str());
        proto::put_error(error, "FATAL", proto::sqlstate::kInvalidPassword,
                         "password authentication failed for user \"" + startup_.user() + "\"");
        io::write_all(client_, error, deadline_);
        set_.reset();
        return false;
    }
    return true;
}

// The client is done: it sees the connection close now, and stops counting toward
// reserved_connections, while this child still resets its backend connections.
void Session::release_client() {
    if (released_) return;
    released_ = true;
    ::shutdown(client_.fd, SHUT_RDWR);
    ctx_.active_clients.fetch_sub(1);
}

void Session::publish_backend_keys() {
    shm::ChildSlot& slot = ctx_.table.child(ctx_.child_slot);
    for (size_t i = 0; i < set_->nodes.size() && i < size_t(shm::kMaxNodes); ++i) {
        BackendConn* c = set_->conn(int(i));
        slot.backend[i].secret.store(c ? c->secret : 0);
        slot.backend[i].pid.store(c ? c->pid : 0);
    }
    slot.client_cancel_secret.store(client_secret_);
    slot.client_cancel_pid.store(client_pid_);
}

// AuthenticationOk, the primary's parameters, a fresh cancel key, ReadyForQuery.
void Session::send_greeting() {
    BackendConn* primary = set_->conn(primary_node(ctx_));
    // The client sees the primary's pid, so pg_backend_pid() matches BackendKeyData; the secret is
    // new for every session so a previous client of this pooled connection cannot cancel this one.
    client_pid_ = primary ? primary->pid : getpid();
    if (!secure_random(&client_secret_, sizeof client_secret_)) client_secret_ = static_cast<uint32_t>(random());
    publish_backend_keys();
    std::string out;
    proto::put_auth_request(out, 0);
    for (const auto& [k, v] : set_->params) proto::put_parameter_status(out, k, v);
    proto::put_backend_key_data(out, client_pid_, client_secret_);
    proto::put_ready_for_query(out, primary ? primary->tx_status : 'I');
    io::write_all(client_, out, deadline_);
}

// A replication connection after login: the client and the primary's walsender talk directly, byte
// for byte (replication commands, CopyBoth WAL streams); nothing is routed, balanced or pooled.
void Session::pipe_replication() {
    BackendConn* node_conn = set_->conn(primary_node(ctx_));
    if (!node_conn) return;
    PROXY_LOG(Log, "replication connection for user \"%s\" from %s: passed through to node %d",
              log_text(startup_.user()).c_str(), peer_.c_str(), node_conn->node);
    ctx_.table.child(ctx_.child_slot).state.store(uint8_t(shm::ChildState::Active));
    constexpr size_t kLimit = 1 << 20;
    io::Stream client = client_, node = node_conn->stream();
    std::string up(in_.data(), in_.size()), down(node_conn->in.data(), node_conn->in.size());
    in_.consume(in_.size());
    node_conn->in.consume(node_conn->in.size());
    for (;;) {
        if (*ctx_.fast_shutdown || (ctx_.parent_gone && *ctx_.parent_gone)) {
            send_fatal(proto::sqlstate::kAdminShutdown, "terminating connection due to administrator command");
            return;
        }
        bool pending = client.pending() || node.pending();
        pollfd fds[2] = {{client.fd, short((up.size() < kLimit ? POLLIN : 0) | (down.empty() ? 0 : POLLOUT)), 0},
                         {node.fd, short((down.size() < kLimit ? POLLIN : 0) | (up.empty() ? 0 : POLLOUT)), 0}};
        int n = poll(fds, 2, pending ? 0 : 1000);
        if (n < 0 && errno != EINTR) return;
        const short readable = POLLIN | POLLHUP | POLLERR;
        if ((fds[0].revents & readable || client.pending()) && !pump(client, up, kLimit)) return;
        if ((fds[1].revents & readable || node.pending()) && !pump(node, down, kLimit)) {
            io::write_all(client_, down, io::deadline_after_ms(1000));  // the node's last words (often a FATAL)
            return;
        }
        if (!io::write_available(node, up) || !io::write_available(client, down)) return;
    }
}

void Session::end_session(Relay* relay, RelayEnd end) {
    shm::ChildSlot& slot = ctx_.table.child(ctx_.child_slot);
    slot.client_cancel_pid.store(0);
    release_client();
    bool poolable = relay && relay->clean() &&
                    (end == RelayEnd::ClientTerminated || end == RelayEnd::ClientClosed || end == RelayEnd::IdleTimeout);
    if (set_ && poolable) {
        io::Deadline reset_deadline = io::deadline_after_ms(10000);
        run_reset_queries(set_->nodes, ctx_.config.reset_query_list, set_->params, reset_deadline);
        set_->last_used_ms = io::now_ms();
        ctx_.pool.put(std::move(set_));
    }
    set_.reset();
    for (auto& key : slot.backend) key.pid.store(0, std::memory_order_relaxed);
}

void Session::run() {
    Startup kind = read_startup();
    if (kind != Startup::Session) return;
    shm::ChildSlot& slot = ctx_.table.child(ctx_.child_slot);
    ctx_.table.set_child_text(ctx_.child_slot,
                              {peer_, startup_.database(), startup_.user(), startup_.application_name()});
    slot.client_connected_at.store(time(nullptr));
    if (ctx_.config.log_connections)
        PROXY_LOG(Log, "connection received: host=%s user=%s database=%s application_name=%s", peer_.c_str(),
                  log_text(startup_.user()).c_str(), log_text(startup_.database()).c_str(),
                  log_text(startup_.application_name()).c_str());
    if (ctx_.too_many_clients) {
        send_fatal(proto::sqlstate::kTooManyConnections, "Sorry, too many clients already");
        return;
    }
    slot.state.store(uint8_t(shm::ChildState::Authenticating));
    io::Deadline started = io::now_ms();
    replication_ = wants_replication(startup_);
    if (!authenticate()) {
        end_session(nullptr, RelayEnd::ClientClosed);
        return;
    }
    send_greeting();
    if (replication_) {
        pipe_replication();
        end_session(nullptr, RelayEnd::ClientClosed);  // never pooled
        if (ctx_.config.log_disconnections)
            PROXY_LOG(Log, "disconnection: session time: %.3f s user=%s database=%s host=%s (replication)",
                      double(io::now_ms() - started) / 1000.0, log_text(startup_.user()).c_str(),
                      log_text(startup_.database()).c_str(), peer_.c_str());
        return;
    }
    int primary = primary_node(ctx_);
    SideQuery side_query = [this, primary](const std::string& sql) -> std::optional<std::vector<std::string>> {
        BackendConn* c = set_->conn(primary);
        if (!c) return std::nullopt;
        return run_side_query(*c, sql, io::deadline_after_ms(ctx_.config.connect_timeout));
    };
    Config session_config = ctx_.config;  // PGPOOL SET changes this copy only
    Dispatcher dispatcher({ctx_.config, session_config, ctx_.policy, ctx_.classifications, ctx_.catalog, ctx_.table,
                           side_query, ctx_.rng},
                          startup_.database(), startup_.user(), startup_.application_name());
    // Counted for even placement from now on; serve_client clears it (the parent, if this child dies).
    ctx_.table.child(ctx_.child_slot).load_balance_node.store(int16_t(dispatcher.load_balance_node()));
    RelayContext rc{ctx_.loop, client_, *set_, session_config, ctx_.table, ctx_.child_slot, primary_node(ctx_),
                    ctx_.fast_shutdown, dispatcher,
                    [this](int node, std::string& err) { return connect_node(node, err); }};
    rc.parent_gone = ctx_.parent_gone;
    RelayEnd end;
    {
        Relay relay(rc);
        end = relay.run();
        // The client has gone: its session stops counting for even placement now, not after the reset
        // queries, so a client that reconnects at once is placed as if it were alone.
        ctx_.table.child(ctx_.child_slot).load_balance_node.store(-1);
        end_session(&relay, end);
    }
    if (ctx_.config.log_disconnections)
        PROXY_LOG(Log, "disconnection: session time: %.3f s user=%s database=%s host=%s",
                  double(io::now_ms() - started) / 1000.0, log_text(startup_.user()).c_str(),
                  log_text(startup_.database()).c_str(), peer_.c_str());
}

}  // namespace

void serve_client(SessionContext& ctx, int client_fd, const sockaddr_storage& peer) {
    io::set_nodelay(client_fd);
    {
        Session session(ctx, client_fd, peer);
        session.run();
    }
    shm::ChildSlot& slot = ctx.table.child(ctx.child_slot);
    slot.load_balance_node.store(-1);  // before the close, so a client that saw it sees the count too
    close(client_fd);
    ctx.table.set_child_text(ctx.child_slot, {});
    slot.client_connected_at.store(0);
    slot.state.store(uint8_t(shm::ChildState::WaitingForClient));
}

}  // namespace splitpool::daemon
