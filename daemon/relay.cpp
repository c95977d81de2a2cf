// The query phase of a session: moves protocol messages between the client and its backend nodes
// on the child's libev loop, framing them on the way and inspecting only what routing and pooling need.
#include "daemon/relay.hpp"

#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "daemon/log.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::daemon {

namespace {

constexpr size_t kReadChunk = 65536;

int64_t now_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}
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

// The message types PostgreSQL's backend accepts from a client after login (postgres.c,
// SocketBackend); anything else is "invalid frontend message type N" and ends the session.
bool valid_frontend_type(char type) {
    switch (type) {
    case 'Q': case 'P': case 'B': case 'E': case 'D': case 'C': case 'S': case 'H': case 'F':
    case 'd': case 'c': case 'f': case 'X': return true;
    default: return false;
    }
}

// An ErrorResponse that ends the connection (severity FATAL or PANIC).
bool is_fatal(const char* body, size_t size) {
    proto::Reader r(body, size);
    for (uint8_t field = r.byte(); r.ok() && field != 0; field = r.byte()) {
        std::string_view v = r.cstr();
        if (field == 'V' || field == 'S') return v == "FATAL" || v == "PANIC";
    }
    return false;
}


}  // namespace

Relay::Relay(RelayContext& ctx) : ctx_(ctx), nodes_(ctx.set.nodes.size()) {
    ev_io_init(&client_read_, on_client_read, ctx.client.fd, EV_READ);
    ev_io_init(&client_write_, on_client_write, ctx.client.fd, EV_WRITE);
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
    }
    // A pooled connection is watched from its first use, not now: libev would register every one of
    // them with epoll again (each still registered from the previous session: a failing call), and a
    // session mostly uses one node of several.
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
    // The child waited for this client outside libev: refresh the loop's clock, or the
    // client_idle_limit timer would be armed against the time the previous session ended.
    ev_now_update(ctx_.loop);
    ev_io_start(ctx_.loop, &client_read_);
    after_activity();
    while (!done_) {
        if (*ctx_.fast_shutdown) {
            fail_client(proto::sqlstate::kAdminShutdown, "terminating connection due to administrator command");
            finish(RelayEnd::Shutdown);
            break;
        }
        if (ctx_.parent_gone && *ctx_.parent_gone && between_transactions()) {
            PROXY_LOG(Log, "the splitpool parent process is gone: ending the session between transactions");
            fail_client(proto::sqlstate::kAdminShutdown, "terminating connection due to unexpected splitpool exit");
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
        if (!n.units.empty() || n.passthrough > 0 || !n.out.empty() || (c && !c->in.empty())) return false;
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

void Relay::on_client_read(struct ev_loop*, ev_io* w, int) { static_cast<Relay*>(w->data)->read_client(); }

void Relay::read_client() {
    // TLS may hold decrypted bytes the socket no longer signals: read until the session is empty.
    do {
        char* dst = client_in_.prepare(kReadChunk);
        ssize_t n = ctx_.client.read_some(dst, client_in_.space());
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK)) break;
            finish(RelayEnd::ClientClosed);
            return;
        }
        client_in_.commit(size_t(n));
    } while (ctx_.client.pending());
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
        // The type byte is judged before the length: a StartupMessage or SSLRequest sent after
        // login would otherwise be read as a message of several MB and the session would hang.
        if (!valid_frontend_type(client_in_.data()[0])) {
            int type = static_cast<unsigned char>(client_in_.data()[0]);
            PROXY_LOG(Log, "invalid frontend message type %d: closing the client connection", type);
            fail_client(proto::sqlstate::kProtocolViolation, "invalid frontend message type " + std::to_string(type));
            finish(RelayEnd::ProtocolError);
            return false;
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
        Step step = handle_client_message(f.type, client_in_.data(), f.size());
        if (step == Step::Stop) return false;
        if (step == Step::Hold) break;  // resumed when every node has answered
        client_in_.consume(f.size());
    }
    return !done_;
}

// Nothing in flight and no transaction open on any node: the session may end without losing work.
bool Relay::between_transactions() const {
    if (!idle() || !clean()) return false;
    for (const NodeIo& n : nodes_)
        if (BackendConn* c = ctx_.set.conn(n.node); c && c->tx_status != 'I') return false;
    return true;
}

bool Relay::idle() const {
    for (const NodeIo& n : nodes_)
        if (!n.units.empty()) return false;
    return true;
}

std::vector<NodeView> Relay::node_views() const {
    std::vector<NodeView> views(nodes_.size());
    for (size_t i = 0; i < nodes_.size(); ++i)
        if (BackendConn* c = ctx_.set.conn(int(i))) views[i] = {true, c->tx_status};
    return views;
}

Relay::Step Relay::handle_client_message(char type, const char* data, size_t size) {
    if (type == 'X') {
        finish(RelayEnd::ClientTerminated);
        return Step::Stop;
    }
    if (type == 'd' || type == 'c' || type == 'f') {  // COPY data goes to the node in COPY mode
        // A client may stream CopyData right behind its COPY query, before CopyInResponse arrives.
        int node = copy_node_ >= 0 ? copy_node_ : last_query_node_ >= 0 ? last_query_node_ : ctx_.dispatcher.primary();
        return queue_to_node(node, data, size) ? Step::Next : Step::Stop;
    }
    if (lost_in_transaction_ >= 0) {  // PostgreSQL's error mode: skip to the Sync, answer once
        if (type != 'Q' && type != 'S' && type != 'F') return Step::Next;
        if (!idle()) return Step::Hold;
        answer_lost_statement(lost_in_transaction_, true);
        lost_in_transaction_ = -1;
        return Step::Next;
    }
    if (type == 'Q' || type == 'F') {
        // The extended messages before it run first; the Query comes back once they are answered.
        if (ctx_.dispatcher.has_open_batch() && !idle()) return Step::Hold;
        Plan close;
        if (ctx_.dispatcher.end_batch_before_query(node_views(), close)) {
            client_out_ += close.client_reply;
            for (Send& send : close.sends)
                if (!execute(send)) return Step::Stop;
            return Step::Hold;
        }
    }
    if (ctx_.dispatcher.needs_idle(type) && !idle()) return Step::Hold;
    if (ctx_.config.log_statement && type == 'Q')
        PROXY_LOG(Log, "statement: %.*s", int(size > 6 ? size - 6 : 0), data + 5);
    Plan plan;
    ctx_.dispatcher.on_message(type, data, size, node_views(), plan);
    client_out_ += plan.client_reply;
    for (Send& send : plan.sends) {
        if (type == 'Q' && send.delivery == Delivery::Forward) last_query_node_ = send.node;
        if (!execute(send)) return Step::Stop;
    }
    return Step::Next;
}

// Connects a node on first use and brings it to the session's settings before anything else.
bool Relay::ensure_connected(int node) {
    if (ctx_.set.conn(node)) {
        if (!nodes_[size_t(node)].watched) watch_node(node);
        return true;
    }
    std::string error;
    if (!ctx_.connect_node(node, error)) {
        client_out_ += error;
        flush_client();
        finish(RelayEnd::BackendFailed);
        return false;
    }
    watch_node(node);
    return true;  // the session's settings reach it with its first plan (Dispatcher::add_send)
}

void Relay::watch_node(int node) {
    NodeIo& n = nodes_[size_t(node)];
    BackendConn* c = ctx_.set.conn(node);
    ev_io_set(&n.read_watcher, c->fd, EV_READ);
    ev_io_set(&n.write_watcher, c->fd, EV_WRITE);
    ev_io_start(ctx_.loop, &n.read_watcher);
    n.watched = true;
}

// log_per_node_statement / notice_per_node_statement: every statement with the node that runs it.
void Relay::report_statements(const Send& send) {
    bool log = ctx_.config.log_per_node_statement;
    bool notice = ctx_.config.notice_per_node_statement &&
                  client_message_wanted(LogLevel::Notice, ctx_.config.client_min_messages);
    if (!log && !notice) return;
    int32_t pid = ctx_.set.conn(send.node) ? ctx_.set.conn(send.node)->pid : 0;
    for (size_t at = 0; at < send.bytes.size();) {
        proto::Frame f;
        if (proto::parse_frame(send.bytes.data() + at, send.bytes.size() - at, f) != proto::FrameStatus::Ok) break;
        at += f.size();
        if (f.type != 'Q' && f.type != 'P') continue;
        proto::Reader r(f.body, f.body_size());
        if (f.type == 'P') r.cstr();  // statement name
        std::string text = "DB node id: " + std::to_string(send.node) + " statement: " + std::string(r.cstr());
        if (log) PROXY_LOG(Log, "%s (backend pid %d)", text.c_str(), pid);
        if (notice && send.delivery == Delivery::Forward) proto::put_error(client_out_, "NOTICE", "00000", text, {}, {}, 'N');
    }
}

bool Relay::execute(Send& send) {
    if (standby(send.node) && (ctx_.dispatcher.lost(send.node) || !ctx_.set.conn(send.node))) {
        std::string error;  // a standby that cannot be reached: the session goes on without it
        if (ctx_.dispatcher.lost(send.node) || !connect_standby(send.node, error)) return reroute(send);
    }
    if (!ensure_connected(send.node)) return false;
    report_statements(send);
    NodeIo& n = nodes_[size_t(send.node)];
    if (!n.units.empty() && n.units.back().ready_left == 0) {
        // continues a Flush-ended batch: the same unit, now closed by this batch's Sync
        n.units.back().ready_left = send.ready_count;
        n.units.back().swallow_ready = send.delivery == Delivery::Swallow;
        n.units.back().executed = -1;  // its Executes span two batches: no undo (Dispatcher::note_error)
    } else {
        Unit u;
        u.delivery = send.delivery;
        u.ready_left = send.ready_count;
        u.swallow_ready = send.swallow_ready;
        u.executed = send.first_execute;
        if (send.delivery == Delivery::Forward) u.sent_us = now_us();
        if (send.retryable && send.node != ctx_.dispatcher.primary()) {
            u.retryable = true;
            u.retry_bytes = send.bytes;
            u.retry_prepare = std::move(send.retry_prepare);
            u.retry_statements = std::move(send.retry_statements);
        }
        n.units.push_back(std::move(u));
    }
    n.out += send.bytes;
    if (send.delivery == Delivery::Forward && send.node < shm::kMaxNodes) {
        shm::NodeSlot& slot = ctx_.table.node(send.node);
        if (send.counts_as_select) slot.select_count.fetch_add(1, std::memory_order_relaxed);
        slot.statements[int(send.stmt_class)].fetch_add(1, std::memory_order_relaxed);
    }
    return true;
}

bool Relay::queue_to_node(int node, const char* data, size_t size) {
    if (!ensure_connected(node)) return false;
    nodes_[size_t(node)].out.append(data, size);
    return true;
}

bool Relay::flush_node(NodeIo& n) {
    BackendConn* c = ctx_.set.conn(n.node);
    if (!c) return true;  // a lost standby
    c->used = c->used || !n.out.empty();
    if (!io::write_available(c->stream(), n.out)) {
        if (standby(n.node)) return lose_node(n.node), !done_;
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
    if (!io::write_available(ctx_.client, client_out_)) {
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
        if (!ctx_.set.conn(n.node) || !n.watched) continue;
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
    ssize_t got;
    do {  // TLS may hold decrypted bytes the socket no longer signals
        char* dst = c->in.prepare(kReadChunk);
        got = c->stream().read_some(dst, c->in.space());
        if (got > 0) c->in.commit(size_t(got));
    } while (got > 0 && c->stream().pending());
    bool closed = got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK);
    // What the node said before closing (often a FATAL) still reaches the client.
    if (!process_node_input(n)) return;
    if (closed && standby(n.node)) {
        lose_node(n.node);
        if (done_) return;
    } else if (closed) {
        PROXY_LOG(Warning, "lost connection to database node %d (backend pid %d)", n.node, c->pid);
        fail_client(proto::sqlstate::kConnectionFailure,
                    "server closed the connection unexpectedly (database node " + std::to_string(n.node) + ")");
        finish(RelayEnd::BackendFailed);
        return;
    }
    if (idle() && !client_in_.empty()) {  // input held back while nodes were answering
        if (!process_client_input()) return;
        for (NodeIo& node : nodes_)
            if (!node.out.empty() && !flush_node(node)) return;
    }
    if (flush_client()) update_flow_control();
    after_activity();
}

// Copies the node's messages to where their unit says, reading the few that carry state.
bool Relay::process_node_input(NodeIo& n) {
    io::Buffer& in = ctx_.set.conn(n.node)->in;
    while (!in.empty()) {
        if (n.passthrough > 0) {
            size_t k = std::min(n.passthrough, in.size());
            if (n.passthrough_delivery == Delivery::Forward) client_out_.append(in.data(), k);
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
            Unit* u = n.units.empty() ? nullptr : &n.units.front();
            if (u && u->retryable && !u->retrying && f.type != 'D' && f.type != 'd') break;
            deliver(n, nullptr, 0, f.type, nullptr, 0);  // a streamed row: the read succeeded
            n.passthrough = f.size();
            n.passthrough_delivery = delivery_for(n);
            continue;
        }
        if (f.type == 'E' && standby(n.node) && is_fatal(f.body, f.body_size())) {
            // A standby ending our connection (shutdown, crash, terminate): the loss is handled
            // when the socket closes; the client never sees another node's FATAL.
            PROXY_LOG(Log, "database node %d ended the connection: %.*s", n.node, int(f.body_size()), f.body);
            in.consume(f.size());
            continue;
        }
        inspect_node_message(n, f.type, f.body, f.body_size());
        deliver(n, in.data(), f.size(), f.type, f.body, f.body_size());
        in.consume(f.size());
    }
    return true;
}

Delivery Relay::delivery_for(NodeIo& n) const {
    if (n.units.empty()) return n.node == ctx_.dispatcher.primary() ? Delivery::Forward : Delivery::Swallow;
    const Unit& u = n.units.front();
    return u.retrying ? Delivery::Swallow : u.delivery;
}

namespace {
// A standby refusing a statement because it is a standby: the statement had no effect there and
// may run on the primary instead (read_only_sql_transaction, or "recovery is in progress").
bool standby_refusal(const char* body, size_t size) {
    proto::Reader r(body, size);
    std::string_view code, message;
    for (uint8_t field = r.byte(); r.ok() && field != 0; field = r.byte()) {
        std::string_view v = r.cstr();
        if (field == 'C') code = v;
        if (field == 'M') message = v;
    }
    bool recovery = message.find("recovery") != std::string_view::npos;
    return code == "25006" || ((code == "55000" || code == "XX000" || code == "0A000") && recovery);
}

// ReadyForQuery messages that bytes made of complete Query and Sync-closed messages produce.
int count_ready(const std::string& bytes) {
    int n = 0;
    for (size_t at = 0; at + 5 <= bytes.size(); at += proto::read_u32(bytes.data() + at + 1) + 1)
        n += bytes[at] == 'Q' || bytes[at] == 'S';
    return n;
}
}  // namespace

// Routes one reply message. `data` is null for the head of a streamed message (only the
// decision matters then). A retryable unit holds its reply's head until rows or completion show
// the read worked.
void Relay::deliver(NodeIo& n, const char* data, size_t size, char type, const char* body, size_t body_size) {
    Unit* u = n.units.empty() ? nullptr : &n.units.front();
    if (u && u->retryable && !u->retrying) {
        if (type == 'E' && standby_refusal(body, body_size)) {
            u->retrying = true;
            u->held.clear();
            return;
        }
        if (data && (type == 'T' || type == '1' || type == '2' || type == 't' || type == 'n' || type == 'N')) {
            u->held.append(data, size);
            return;
        }
        client_out_ += u->held;
        u->held.clear();
        u->retryable = false;
    }
    Delivery d = delivery_for(n);
    if (type == 'Z' && u && u->swallow_ready) d = Delivery::Swallow;
    if (data && d == Delivery::Forward) client_out_.append(data, size);
    if (type == 'E' && d == Delivery::Forward) ctx_.dispatcher.note_error(u ? u->executed : -1);
    if ((type == 'C' || type == 'I' || type == 's') && u && u->executed >= 0) ++u->executed;
    if (type == 'C' && d == Delivery::Forward && body_size == 7 && memcmp(body, "COMMIT", 7) == 0)
        ctx_.dispatcher.note_commit_done();
    if (type == 'Z' && d == Delivery::Forward && body_size > 0) ctx_.dispatcher.note_ready(body[0]);
    if (type == 'E' && n.node < shm::kMaxNodes) ctx_.table.node(n.node).errors.fetch_add(1, std::memory_order_relaxed);
    if (d == Delivery::Swallow && type == 'E' && u)
        PROXY_LOG(Debug1, "node %d reported an error in a reply the client does not see", n.node);
    if (type == 'Z' && u) finish_unit(n);
}

void Relay::finish_unit(NodeIo& n) {
    Unit& u = n.units.front();
    if (--u.ready_left > 0) return;
    if (u.sent_us && !u.retrying) record_duration(now_us() - u.sent_us);
    if (!u.retrying) {
        n.units.pop_front();
        return;
    }
    int primary = ctx_.dispatcher.primary();
    PROXY_LOG(Log, "node %d refused a balanced read as a standby: running it on the primary (node %d) from now on",
              n.node, primary);
    for (const auto& cls : u.retry_statements)
        if (cls) cls->refused_by_standby = true;  // the router sends it to the primary from now on
    Send prepare{primary, Delivery::Swallow, std::move(u.retry_prepare)};
    prepare.ready_count = count_ready(prepare.bytes);
    Send retry{primary, Delivery::Forward, std::move(u.retry_bytes)};
    n.units.pop_front();
    if ((prepare.bytes.empty() || execute(prepare)) && execute(retry)) flush_node(nodes_[size_t(primary)]);
}

bool Relay::standby(int node) const { return node != ctx_.dispatcher.primary(); }

bool Relay::connect_standby(int node, std::string& error) {
    if (!ctx_.connect_node(node, error)) {
        PROXY_LOG(Warning, "cannot connect to database node %d: the session goes on without it", node);
        ctx_.dispatcher.node_lost(node);
        return false;
    }
    watch_node(node);
    return true;
}

// A send for a standby the session lost: swallowed work is moot; a read none of whose reply has
// reached the client runs on the primary; anything else is answered with an ERROR.
bool Relay::reroute(Send& send) {
    if (send.delivery == Delivery::Swallow) return true;
    if (send.retryable) return redo_on_primary(send.retry_prepare, send.bytes);
    bool in_transaction = ctx_.dispatcher.model().in_transaction;
    if (in_transaction) abort_transaction(send.node);
    answer_lost_statement(send.node, in_transaction);
    return !done_;
}

bool Relay::redo_on_primary(std::string prepare, std::string bytes) {
    int primary = ctx_.dispatcher.primary();
    Send create{primary, Delivery::Swallow, std::move(prepare)};
    create.ready_count = count_ready(create.bytes);
    Send redo{primary, Delivery::Forward, std::move(bytes)};
    bool ok = (create.bytes.empty() || execute(create)) && execute(redo);
    return ok && flush_node(nodes_[size_t(primary)]);
}

// Inside a transaction a lost node aborts it, as PostgreSQL aborts a transaction on an error: the
// primary (and every node still in it) is put into the failed state, so what follows gets 25P02
// and COMMIT rolls back.
void Relay::abort_transaction(int node) {
    std::string abort = proto::query_message("DO $$BEGIN RAISE EXCEPTION 'splitpool: database node " +
                                             std::to_string(node) + " was lost: this transaction is aborted'; END$$");
    for (NodeIo& other : nodes_) {
        BackendConn* c = ctx_.set.conn(other.node);
        bool primary = other.node == ctx_.dispatcher.primary();
        if (!(c && c->tx_status == 'T') && !primary) continue;
        Send s{other.node, Delivery::Swallow, abort};
        if (!c || c->tx_status == 'I') s.bytes = proto::query_message("BEGIN") + s.bytes, s.ready_count = 2;
        if (!execute(s)) return;
        flush_node(other);
    }
}

// The client gets an ERROR for a statement lost with its node (or, when the node was lost while
// the client was idle inside a transaction, for its next statement).
void Relay::answer_lost_statement(int node, bool in_transaction) {
    std::string message = "lost connection to database node " + std::to_string(node) +
                          (in_transaction ? " used by this transaction" : " while it ran the statement");
    PROXY_LOG(Warning, "%s: %s", message.c_str(), in_transaction ? "the transaction is aborted" : "the client gets an error");
    proto::put_error(client_out_, "ERROR", proto::sqlstate::kConnectionFailure, message,
                     in_transaction ? "The transaction is aborted; after ROLLBACK the session goes on with the other nodes."
                                    : "The session goes on with the other nodes.");
    proto::put_ready_for_query(client_out_, in_transaction ? 'E' : 'I');
    ctx_.dispatcher.note_error();
    ctx_.dispatcher.note_ready(in_transaction ? 'E' : 'I');
}

// The connection to a standby closed or broke (beyond pgpool, which ends or hangs such sessions).
// Work owed by it is redone on the primary when none of its reply reached the client, else
// answered with an ERROR; a transaction it took part in is aborted; a message half relayed to the
// client cannot be mended: FATAL.
void Relay::lose_node(int node) {
    NodeIo& n = nodes_[size_t(node)];
    PROXY_LOG(Warning, "lost connection to database node %d: this session goes on without it", node);
    ev_io_stop(ctx_.loop, &n.read_watcher);
    ev_io_stop(ctx_.loop, &n.write_watcher);
    n.watched = false;
    bool torn = n.passthrough > 0 && n.passthrough_delivery == Delivery::Forward;
    bool in_transaction = ctx_.set.conn(node) && ctx_.set.conn(node)->tx_status != 'I';
    std::deque<Unit> units = std::move(n.units);
    n.units.clear();
    n.out.clear();
    n.passthrough = 0;
    ctx_.set.nodes[size_t(node)].reset();
    ctx_.dispatcher.node_lost(node);
    if (copy_node_ == node) torn = true;
    for (Unit& u : units) torn = torn || (u.delivery == Delivery::Forward && u.ready_left == 0);
    if (torn) {
        fail_client(proto::sqlstate::kConnectionFailure,
                    "server closed the connection unexpectedly (database node " + std::to_string(node) + ")");
        finish(RelayEnd::BackendFailed);
        return;
    }
    if (in_transaction) abort_transaction(node);
    bool answered = false;
    for (Unit& u : units) {
        if (u.delivery != Delivery::Forward || done_) continue;
        bool untouched = !in_transaction && (u.retrying || u.retryable);  // none of its reply reached the client
        if (untouched) redo_on_primary(std::move(u.retry_prepare), std::move(u.retry_bytes));
        else answer_lost_statement(node, in_transaction);
        answered = true;
    }
    if (in_transaction && !answered) lost_in_transaction_ = node;  // the client's next statement is told
}

void Relay::record_duration(int64_t us) {
    shm::Header& h = ctx_.table.header();
    int bucket = 0;
    while (bucket < shm::kDurationBuckets - 1 && uint64_t(us) > shm::kDurationBoundsUs[bucket]) ++bucket;
    h.query_duration_bucket[bucket].fetch_add(1, std::memory_order_relaxed);
    h.query_duration_sum_us.fetch_add(uint64_t(us), std::memory_order_relaxed);
    h.query_count.fetch_add(1, std::memory_order_relaxed);
}

void Relay::inspect_node_message(NodeIo& n, char type, const char* body, size_t size) {
    switch (type) {
    case 'Z': ctx_.set.conn(n.node)->tx_status = size ? body[0] : 'I'; break;
    case 'S':
        if (n.node == ctx_.dispatcher.primary()) merge_parameter_status(ctx_.set.params, body, size);
        break;
    case 'G': case 'H': case 'W': copy_node_ = n.node; break;
    case 'c': copy_node_ = -1; break;  // CopyDone from the node ends COPY OUT
    case 'E':
        if (copy_node_ == n.node) copy_node_ = -1;  // an error ends COPY IN as well
        break;
    default: break;
    }
}

// Publishes the session state and arms client_idle_limit when nothing is in flight.
void Relay::after_activity() {
    if (done_) return;
    bool busy = !idle();
    BackendConn* primary = ctx_.set.conn(ctx_.primary_node);
    shm::ChildState state = busy ? shm::ChildState::Active
                            : (primary && primary->tx_status != 'I') ? shm::ChildState::IdleInTransaction
                                                                     : shm::ChildState::Idle;
    shm::ChildSlot& slot = ctx_.table.child(ctx_.child_slot);
    slot.state.store(static_cast<uint8_t>(state), std::memory_order_relaxed);
    // A session whose node was re-chosen (it went down) counts, for even placement, where it reads now.
    auto lb = static_cast<int16_t>(ctx_.dispatcher.load_balance_node());
    if (slot.load_balance_node.load(std::memory_order_relaxed) != lb) slot.load_balance_node.store(lb, std::memory_order_relaxed);
    if (!client_out_.empty()) flush_client();
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
