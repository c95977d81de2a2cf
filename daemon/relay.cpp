// The query phase of a session: moves protocol messages between the client and its backend nodes
// on the child's libev loop, framing them on the way and inspecting only what routing and pooling need.
#include "daemon/relay.hpp"

#include <unistd.h>

#include <cerrno>

#include "daemon/log.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::daemon {

namespace {

constexpr size_t kReadChunk = 65536;
// Above this many unsent bytes toward one side, stop reading from the other (backpressure).
constexpr size_t kHighWater = 1 << 20;

// Backend messages whose content the relay reads; every other type may be streamed through
// before it is complete (DataRow, CopyData, ...), so a huge row never has to fit in memory.
bool must_inspect(char type) {
    switch (type) {
    case 'Z': case 'S': case 'G': case 'H': case 'W': case 'c': case 'E': return true;
    default: return false;
    }
}

// Writes as much as the socket takes; false on a broken socket.
bool write_some(int fd, std::string& out) {
    while (!out.empty()) {
        ssize_t n = ::write(fd, out.data(), out.size());
        if (n > 0) {
            out.erase(0, size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}

}  // namespace

Relay::Relay(RelayContext& ctx) : ctx_(ctx), nodes_(ctx.set.nodes.size()) {
    ev_io_init(&client_read_, on_client_read, ctx.client_fd, EV_READ);
    ev_io_init(&client_write_, on_client_write, ctx.client_fd, EV_WRITE);
    client_read_.data = client_write_.data = this;
    ev_timer_init(&idle_timer_, on_idle_timeout, 0., 0.);
    idle_timer_.data = this;
    for (size_t i = 0; i < nodes_.size(); ++i) {
        NodeIo& n = nodes_[i];
        n.relay = this;
        n.node = int(i);
        ev_io_init(&n.read_watcher, on_node_read, -1, EV_READ);
        ev_io_init(&n.write_watcher, on_node_write, -1, EV_WRITE);
        n.read_watcher.data = n.write_watcher.data = &n;
        if (BackendConn* c = ctx.set.conn(int(i))) {
            ev_io_set(&n.read_watcher, c->fd, EV_READ);
            ev_io_set(&n.write_watcher, c->fd, EV_WRITE);
            ev_io_start(ctx.loop, &n.read_watcher);
        }
    }
}

Relay::~Relay() {
    ev_io_stop(ctx_.loop, &client_read_);
    ev_io_stop(ctx_.loop, &client_write_);
    ev_timer_stop(ctx_.loop, &idle_timer_);
    for (NodeIo& n : nodes_) {
        ev_io_stop(ctx_.loop, &n.read_watcher);
        ev_io_stop(ctx_.loop, &n.write_watcher);
    }
}

RelayEnd Relay::run() {
    ev_io_start(ctx_.loop, &client_read_);
    after_activity();
    while (!done_) {
        if (*ctx_.fast_shutdown) {
            fail_client(proto::sqlstate::kAdminShutdown, "terminating connection due to administrator command");
            finish(RelayEnd::Shutdown);
            break;
        }
        ev_run(ctx_.loop, EVRUN_ONCE);
    }
    return end_;
}

bool Relay::clean() const {
    if (copy_node_ >= 0 || client_passthrough_ > 0 || !client_out_.empty()) return false;
    for (const NodeIo& n : nodes_) {
        BackendConn* c = ctx_.set.conn(n.node);
        if (n.pending_ready > 0 || n.passthrough > 0 || !n.out.empty() || (c && !c->in.empty())) return false;
    }
    return true;
}

void Relay::finish(RelayEnd end) {
    if (done_) return;
    done_ = true;
    end_ = end;
}

void Relay::fail_client(std::string_view sqlstate, const std::string& message) {
    std::string err;
    proto::put_error(err, "FATAL", sqlstate, message);
    client_out_ += err;
    flush_client();
}

Relay::NodeIo* Relay::node_io(int node) {
    if (node < 0 || node >= int(nodes_.size())) return nullptr;
    return &nodes_[node];
}

// The foundation sends everything to the primary; the router decides per statement later.
int Relay::route(char type) const {
    if ((type == 'd' || type == 'c' || type == 'f') && copy_node_ >= 0) return copy_node_;
    return ctx_.primary_node;
}

void Relay::on_client_read(struct ev_loop*, ev_io* w, int) { static_cast<Relay*>(w->data)->read_client(); }

void Relay::read_client() {
    char* dst = client_in_.prepare(kReadChunk);
    ssize_t n = ::read(ctx_.client_fd, dst, client_in_.space());
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK)) return;
        finish(RelayEnd::ClientClosed);
        return;
    }
    client_in_.commit(size_t(n));
    ev_timer_stop(ctx_.loop, &idle_timer_);
    if (!process_client_input()) return;
    for (NodeIo& node : nodes_)
        if (!node.out.empty() && !flush_node(node)) return;
    update_flow_control();
    after_activity();
}

// Frames what the client sent and hands each message on; a partial message waits for more,
// except CopyData, which is streamed as it arrives.
bool Relay::process_client_input() {
    while (!client_in_.empty() && !done_) {
        if (client_passthrough_ > 0) {
            size_t k = std::min(client_passthrough_, client_in_.size());
            if (!queue_to_node(client_passthrough_node_, client_in_.data(), k)) return false;
            client_in_.consume(k);
            client_passthrough_ -= k;
            continue;
        }
        proto::Frame f;
        proto::FrameStatus st = proto::parse_header(client_in_.data(), client_in_.size(), f);
        if (st == proto::FrameStatus::NeedMore) break;
        if (st == proto::FrameStatus::Malformed) {
            fail_client(proto::sqlstate::kProtocolViolation, "invalid message length");
            finish(RelayEnd::ProtocolError);
            return false;
        }
        if (client_in_.size() < f.size()) {
            if (f.type != 'd' || copy_node_ < 0) break;
            client_passthrough_node_ = copy_node_;
            client_passthrough_ = f.size();
            continue;
        }
        if (!handle_client_message(f.type, client_in_.data(), f.size())) return false;
        client_in_.consume(f.size());
    }
    return !done_;
}

bool Relay::handle_client_message(char type, const char* data, size_t size) {
    if (type == 'X') {
        finish(RelayEnd::ClientTerminated);
        return false;
    }
    if (ctx_.config.log_statement && type == 'Q')
        PROXY_LOG(Log, "statement: %.*s", int(size > 6 ? size - 6 : 0), data + 5);
    int node = route(type);
    NodeIo* n = node_io(node);
    if (!n) {
        fail_client(proto::sqlstate::kConnectionFailure, "no backend node is available");
        finish(RelayEnd::BackendFailed);
        return false;
    }
    // Query, Sync and FunctionCall each end in exactly one ReadyForQuery.
    if (type == 'Q' || type == 'S' || type == 'F') ++n->pending_ready;
    return queue_to_node(node, data, size);
}

bool Relay::queue_to_node(int node, const char* data, size_t size) {
    NodeIo& n = nodes_[node];
    if (!ctx_.set.conn(node)) {
        std::string error;
        if (!ctx_.connect_node(node, error)) {
            client_out_ += error;
            flush_client();
            finish(RelayEnd::BackendFailed);
            return false;
        }
        BackendConn* c = ctx_.set.conn(node);
        ev_io_set(&n.read_watcher, c->fd, EV_READ);
        ev_io_set(&n.write_watcher, c->fd, EV_WRITE);
        ev_io_start(ctx_.loop, &n.read_watcher);
    }
    n.out.append(data, size);
    return true;
}

bool Relay::flush_node(NodeIo& n) {
    BackendConn* c = ctx_.set.conn(n.node);
    if (!write_some(c->fd, n.out)) {
        fail_client(proto::sqlstate::kConnectionFailure,
                    "lost connection to database node " + std::to_string(n.node));
        finish(RelayEnd::BackendFailed);
        return false;
    }
    if (n.out.empty())
        ev_io_stop(ctx_.loop, &n.write_watcher);
    else
        ev_io_start(ctx_.loop, &n.write_watcher);
    return true;
}

bool Relay::flush_client() {
    if (!write_some(ctx_.client_fd, client_out_)) {
        client_out_.clear();
        finish(RelayEnd::ClientClosed);
        return false;
    }
    if (client_out_.empty())
        ev_io_stop(ctx_.loop, &client_write_);
    else
        ev_io_start(ctx_.loop, &client_write_);
    return true;
}

// Reads from one side stop while the other side's unsent bytes are above the high-water mark.
void Relay::update_flow_control() {
    if (done_) return;
    bool client_blocked = client_out_.size() > kHighWater;
    for (NodeIo& n : nodes_) {
        if (!ctx_.set.conn(n.node)) continue;
        if (client_blocked)
            ev_io_stop(ctx_.loop, &n.read_watcher);
        else
            ev_io_start(ctx_.loop, &n.read_watcher);
    }
    bool node_blocked = false;
    for (const NodeIo& n : nodes_) node_blocked = node_blocked || n.out.size() > kHighWater;
    if (node_blocked)
        ev_io_stop(ctx_.loop, &client_read_);
    else
        ev_io_start(ctx_.loop, &client_read_);
}

void Relay::on_client_write(struct ev_loop*, ev_io* w, int) {
    auto* self = static_cast<Relay*>(w->data);
    if (self->flush_client()) self->update_flow_control();
}

void Relay::on_node_write(struct ev_loop*, ev_io* w, int) {
    auto* n = static_cast<NodeIo*>(w->data);
    if (n->relay->flush_node(*n)) n->relay->update_flow_control();
}

void Relay::on_node_read(struct ev_loop*, ev_io* w, int) {
    auto* n = static_cast<NodeIo*>(w->data);
    n->relay->read_node(*n);
}

void Relay::read_node(NodeIo& n) {
    BackendConn* c = ctx_.set.conn(n.node);
    char* dst = c->in.prepare(kReadChunk);
    ssize_t got = ::read(c->fd, dst, c->in.space());
    if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK)) return;
        PROXY_LOG(Warning, "lost connection to database node %d (backend pid %d)", n.node, c->pid);
        fail_client(proto::sqlstate::kConnectionFailure,
                    "server closed the connection unexpectedly (database node " + std::to_string(n.node) + ")");
        finish(RelayEnd::BackendFailed);
        return;
    }
    c->in.commit(size_t(got));
    if (!process_node_input(n)) return;
    if (flush_client()) update_flow_control();
    after_activity();
}

// Copies the node's messages to the client's output, reading the few that carry state.
bool Relay::process_node_input(NodeIo& n) {
    io::Buffer& in = ctx_.set.conn(n.node)->in;
    while (!in.empty()) {
        if (n.passthrough > 0) {
            size_t k = std::min(n.passthrough, in.size());
            client_out_.append(in.data(), k);
            in.consume(k);
            n.passthrough -= k;
            continue;
        }
        proto::Frame f;
        proto::FrameStatus st = proto::parse_header(in.data(), in.size(), f);
        if (st == proto::FrameStatus::NeedMore) break;
        if (st == proto::FrameStatus::Malformed) {
            fail_client(proto::sqlstate::kProtocolViolation,
                        "invalid message from database node " + std::to_string(n.node));
            finish(RelayEnd::BackendFailed);
            return false;
        }
        if (in.size() < f.size()) {
            if (must_inspect(f.type)) break;
            n.passthrough = f.size();
            continue;
        }
        inspect_node_message(n, f.type, f.body, f.body_size());
        client_out_.append(in.data(), f.size());
        in.consume(f.size());
    }
    return true;
}

void Relay::inspect_node_message(NodeIo& n, char type, const char* body, size_t size) {
    switch (type) {
    case 'Z':
        if (n.pending_ready > 0) --n.pending_ready;
        ctx_.set.conn(n.node)->tx_status = size ? body[0] : 'I';
        break;
    case 'S':
        if (n.node == ctx_.primary_node) merge_parameter_status(ctx_.set.params, body, size);
        break;
    case 'G': case 'H': case 'W': copy_node_ = n.node; break;
    case 'c': copy_node_ = -1; break;  // CopyDone from the node ends COPY OUT
    case 'E':
        // An error ends COPY IN as well; extended-protocol errors are followed by ReadyForQuery.
        if (copy_node_ == n.node) copy_node_ = -1;
        break;
    default: break;
    }
}

// Publishes the session state and arms client_idle_limit when nothing is in flight.
void Relay::after_activity() {
    if (done_) return;
    bool busy = false;
    for (const NodeIo& n : nodes_) busy = busy || n.pending_ready > 0;
    BackendConn* primary = ctx_.set.conn(ctx_.primary_node);
    shm::ChildState state = busy ? shm::ChildState::Active
                            : (primary && primary->tx_status != 'I') ? shm::ChildState::IdleInTransaction
                                                                     : shm::ChildState::Idle;
    ctx_.table.child(ctx_.child_slot).state.store(static_cast<uint8_t>(state), std::memory_order_relaxed);
    if (!busy && ctx_.config.client_idle_limit > 0 && !ev_is_active(&idle_timer_)) {
        ev_timer_set(&idle_timer_, ctx_.config.client_idle_limit, 0.);
        ev_timer_start(ctx_.loop, &idle_timer_);
    }
}

void Relay::on_idle_timeout(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Relay*>(w->data);
    PROXY_LOG(Log, "client idle for %d seconds: disconnecting (client_idle_limit)", self->ctx_.config.client_idle_limit);
    self->fail_client(proto::sqlstate::kIdleSessionTimeout,
                      "terminating connection due to client_idle_limit (" +
                          std::to_string(self->ctx_.config.client_idle_limit) + " seconds)");
    self->finish(RelayEnd::IdleTimeout);
}

}  // namespace splitpool::daemon
