// One client session from accept to close: startup packet, authentication, taking or building a
// backend connection set, the relay, and returning the set to the pool.
#include "daemon/session.hpp"

#include <openssl/rand.h>
#include <unistd.h>

#include <ctime>

#include "daemon/cancel.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/log.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"
#include "daemon/relay.hpp"

namespace splitpool::daemon {
namespace {

constexpr uint32_t kMaxPasswordMessage = 1024;

int primary_node(const SessionContext& ctx) {
    int primary = ctx.table.header().primary_node.load(std::memory_order_relaxed);
    return primary >= 0 && primary < int(ctx.config.backends.size()) ? primary : 0;
}

class Session {
public:
    Session(SessionContext& ctx, int fd) : ctx_(ctx), fd_(fd), peer_(io::peer_address(fd)) {
        deadline_ = io::deadline_after_ms(ctx.config.authentication_timeout > 0
                                              ? int64_t(ctx.config.authentication_timeout) * 1000
                                              : int64_t(1) << 40);
    }

    void run();

private:
    enum class Startup { Session, Cancel, Closed };
    Startup read_startup();
    bool authenticate();
    bool get_password(std::string& password, std::string& client_error);
    bool connect_node(int node, std::string& client_error);
    void send_greeting();
    void publish_backend_keys();
    void end_session(Relay* relay, RelayEnd end);
    void send_fatal(std::string_view code, const std::string& message, std::string_view detail = {});

    SessionContext& ctx_;
    int fd_;
    std::string peer_;
    io::Deadline deadline_;
    io::Buffer in_;
    proto::StartupMessage startup_;
    std::unique_ptr<BackendSet> set_;
    std::string password_;        // the client's clear-text password, kept only for this session
    bool have_password_ = false;
    int32_t client_pid_ = 0;
    uint32_t client_secret_ = 0;
};

void Session::send_fatal(std::string_view code, const std::string& message, std::string_view detail) {
    std::string out;
    proto::put_error(out, "FATAL", code, message, detail);
    io::write_all(fd_, out, io::deadline_after_ms(1000));
}

// Reads packets until a StartupMessage: SSL and GSS encryption requests are declined with 'N'
// (TLS arrives with the authentication work), a CancelRequest is forwarded and ends the connection.
Session::Startup Session::read_startup() {
    for (;;) {
        uint32_t length = 0;
        proto::FrameStatus st;
        while ((st = proto::parse_startup_frame(in_.data(), in_.size(), length)) == proto::FrameStatus::NeedMore)
            if (io::read_more(fd_, in_, deadline_, ctx_.fast_shutdown) != io::IoStatus::Ok) return Startup::Closed;
        if (st == proto::FrameStatus::Malformed) {
            send_fatal(proto::sqlstate::kProtocolViolation, "invalid length of startup packet");
            return Startup::Closed;
        }
        int32_t code = static_cast<int32_t>(proto::read_u32(in_.data() + 4));
        if (code == proto::kSslRequestCode || code == proto::kGssEncRequestCode) {
            in_.consume(length);
            if (io::write_all(fd_, "N", 1, deadline_) != io::IoStatus::Ok) return Startup::Closed;
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

// Asks the client for its password in clear text, once per session, when a node needs one.
bool Session::get_password(std::string& password, std::string& client_error) {
    if (have_password_) {
        password = password_;
        return true;
    }
    if (!ctx_.config.allow_clear_text_frontend_auth) {
        proto::put_error(client_error, "FATAL", proto::sqlstate::kInvalidAuthorization,
                         "clear text password authentication failed",
                         "unable to get the password for user: \"" + startup_.user() + "\"",
                         "the database server asks for a password: set allow_clear_text_frontend_auth = on");
        return false;
    }
    std::string request;
    proto::put_auth_request(request, 3);
    proto::Frame f;
    if (io::write_all(fd_, request, deadline_) != io::IoStatus::Ok ||
        io::read_frame(fd_, in_, f, kMaxPasswordMessage, deadline_, ctx_.fast_shutdown) != io::IoStatus::Ok ||
        f.type != 'p') {
        proto::put_error(client_error, "FATAL", proto::sqlstate::kProtocolViolation,
                         "expected password response");
        return false;
    }
    proto::Reader r(f.body, f.body_size());
    password_ = std::string(r.cstr());
    in_.consume(f.size());
    have_password_ = true;
    password = password_;
    return true;
}

bool Session::connect_node(int node, std::string& client_error) {
    const BackendConfig& b = ctx_.config.backends[node];
    BackendAddress address{node, b.hostname, b.port, ctx_.config.connect_timeout};
    PasswordSource source = [this](std::string& pw, std::string& err) { return get_password(pw, err); };
    LoginResult result = backend_login(address, startup_, source, deadline_);
    if (!result.conn) {
        PROXY_LOG(Log, "login to node %d failed for user \"%s\" database \"%s\" from %s: %s", node,
                  startup_.user().c_str(), startup_.database().c_str(), peer_.c_str(), result.log_message.c_str());
        client_error = std::move(result.client_error);
        return false;
    }
    shm::NodeSlot& slot = ctx_.table.node(node);
    if (slot.status.load() == uint8_t(shm::NodeStatus::Waiting)) ctx_.table.set_node_status(node, shm::NodeStatus::Up);
    if (node == primary_node(ctx_)) set_->params = std::move(result.params);
    if (result.used_password) {
        set_->needs_password = true;
        set_->password_digest = password_digest(password_, ctx_.digest_salt);
    }
    ctx_.table.child(ctx_.child_slot).backend[node].secret.store(result.conn->secret);
    ctx_.table.child(ctx_.child_slot).backend[node].pid.store(result.conn->pid);
    set_->nodes[node] = std::move(result.conn);
    return true;
}

// A pooled set is reused only after the client proves the password it was built with; a client
// with another password gets a fresh login, so PostgreSQL stays the judge of passwords.
bool Session::authenticate() {
    set_ = ctx_.pool.take(startup_.pool_key());
    if (set_ && !set_->usable()) set_.reset();  // the server ended a pooled connection meanwhile
    if (set_ && set_->needs_password) {
        std::string error;
        if (!get_password(password_, error)) {
            io::write_all(fd_, error, deadline_);
            return false;
        }
        if (password_digest(password_, ctx_.digest_salt) != set_->password_digest) set_.reset();
    }
    if (set_) return true;
    set_ = std::make_unique<BackendSet>();
    set_->key = startup_.pool_key();
    set_->startup = startup_;
    set_->nodes.resize(ctx_.config.backends.size());
    std::string error;
    if (!connect_node(primary_node(ctx_), error)) {
        io::write_all(fd_, error, deadline_);
        return false;
    }
    return true;
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
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&client_secret_), sizeof client_secret_) != 1)
        client_secret_ = static_cast<uint32_t>(random());
    publish_backend_keys();
    std::string out;
    proto::put_auth_request(out, 0);
    for (const auto& [k, v] : set_->params) proto::put_parameter_status(out, k, v);
    proto::put_backend_key_data(out, client_pid_, client_secret_);
    proto::put_ready_for_query(out, primary ? primary->tx_status : 'I');
    io::write_all(fd_, out, deadline_);
}

void Session::end_session(Relay* relay, RelayEnd end) {
    shm::ChildSlot& slot = ctx_.table.child(ctx_.child_slot);
    slot.client_cancel_pid.store(0);
    bool poolable = relay && relay->clean() &&
                    (end == RelayEnd::ClientTerminated || end == RelayEnd::ClientClosed || end == RelayEnd::IdleTimeout);
    if (set_ && poolable) {
        io::Deadline reset_deadline = io::deadline_after_ms(10000);
        for (auto& conn : set_->nodes)
            if (conn && !run_reset_queries(*conn, ctx_.config.reset_query_list, set_->params, reset_deadline)) {
                PROXY_LOG(Debug1, "reset failed on node %d: dropping the connection", conn->node);
                conn.reset();
            }
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
                  startup_.user().c_str(), startup_.database().c_str(), startup_.application_name().c_str());
    if (ctx_.too_many_clients) {
        send_fatal(proto::sqlstate::kTooManyConnections, "Sorry, too many clients already");
        return;
    }
    slot.state.store(uint8_t(shm::ChildState::Authenticating));
    io::Deadline started = io::now_ms();
    if (!authenticate()) {
        end_session(nullptr, RelayEnd::ClientClosed);
        return;
    }
    send_greeting();
    int primary = primary_node(ctx_);
    SideQuery side_query = [this, primary](const std::string& sql) -> std::optional<std::vector<std::string>> {
        BackendConn* c = set_->conn(primary);
        if (!c) return std::nullopt;
        return run_side_query(*c, sql, io::deadline_after_ms(ctx_.config.connect_timeout));
    };
    Dispatcher dispatcher({ctx_.config, ctx_.policy, ctx_.classifications, ctx_.catalog, ctx_.table, ctx_.primary_only,
                           side_query},
                          startup_.database(), startup_.user(), startup_.application_name());
    RelayContext rc{ctx_.loop, fd_, *set_, ctx_.config, ctx_.table, ctx_.child_slot, primary_node(ctx_),
                    ctx_.fast_shutdown, dispatcher,
                    [this](int node, std::string& err) { return connect_node(node, err); }};
    RelayEnd end;
    {
        Relay relay(rc);
        end = relay.run();
        end_session(&relay, end);
    }
    if (ctx_.config.log_disconnections)
        PROXY_LOG(Log, "disconnection: session time: %.3f s user=%s database=%s host=%s",
                  double(io::now_ms() - started) / 1000.0, startup_.user().c_str(), startup_.database().c_str(),
                  peer_.c_str());
}

}  // namespace

void serve_client(SessionContext& ctx, int client_fd) {
    io::set_nonblocking(client_fd);
    io::set_nodelay(client_fd);
    {
        Session session(ctx, client_fd);
        session.run();
    }
    close(client_fd);
    shm::ChildSlot& slot = ctx.table.child(ctx.child_slot);
    ctx.table.set_child_text(ctx.child_slot, {});
    slot.client_connected_at.store(0);
    slot.state.store(uint8_t(shm::ChildState::WaitingForClient));
}

}  // namespace splitpool::daemon
