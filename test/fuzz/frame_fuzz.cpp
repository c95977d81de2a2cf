// libFuzzer target: the message framer on both directions and the typed message readers.
//
// Input: one mode byte, one chunking byte, then the byte stream of one side of a connection.
//   mode bit 0: 0 = frontend (client -> splitpool), 1 = backend (node -> splitpool)
//   mode bit 1: frontend stream starts with a startup packet (length first, no type byte)
//   mode bit 2: every statement fails on the node (inside a transaction it is then aborted: 'E')
//   mode bit 4: statement_level_load_balance for the dispatcher
// The stream arrives in an io::Buffer in chunks (sizes from the chunking byte) the way socket reads
// fill it, and is cut into frames as Relay::process_client_input / process_node_input do: the type
// byte judged first (frontend), parse_header(), then the whole frame. Each frame is copied into a
// buffer of exactly its size before any reader looks at it, so an over-read is an ASan report.
// Frontend frames then go to the Dispatcher (the daemon's own readers of Query, Parse, Bind,
// Describe, Close, Execute, Sync, Flush), and every Send it plans must itself be well framed.
// Backend frames go through the readers of ParameterStatus (merge_parameter_status), and Reader
// walks of each message shape PostgreSQL defines.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "daemon/backend.hpp"
#include "daemon/catalog_cache.hpp"
#include "daemon/config.hpp"
#include "daemon/dispatcher.hpp"
#include "daemon/io/buffer.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/startup.hpp"
#include "parser/classify.hpp"
#include "parser/classify_cache.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;

namespace {

constexpr int kNodes = 3;
constexpr int kMaxFrames = 256;

std::unique_ptr<shm::StatusTable> g_table;
daemon::Config* g_config = nullptr;
daemon::RoutingPolicy* g_policy = nullptr;
daemon::RoutingPolicy* g_policy_stmt = nullptr;

// A Reader that checks its own contract on every call: views stay inside the body, NUL-free
// strings, and once a read fails everything after it is empty.
class Walk {
public:
    Walk(const char* body, size_t size) : r_(body, size), body_(body), size_(size) {}
    int32_t i32() { return after(r_.i32()); }
    int16_t i16() { return after(r_.i16()); }
    uint8_t byte() { return after(r_.byte()); }
    std::string_view cstr() {
        std::string_view s = r_.cstr();
        inside(s);
        FUZZ_CHECK(s.find('\0') == std::string_view::npos);
        return after(s);
    }
    std::string_view bytes(int32_t n) {
        std::string_view s = r_.bytes(n < 0 ? 0 : size_t(n));
        inside(s);
        return after(s);
    }
    bool ok() const { return r_.ok(); }
    size_t remaining() const { return r_.remaining(); }

private:
    void inside(std::string_view s) const {
        if (s.empty()) return;
        FUZZ_CHECK(s.data() >= body_ && s.data() + s.size() <= body_ + size_);
    }
    template <typename T>
    T after(T value) {
        FUZZ_CHECK(r_.remaining() <= size_);
        if (!r_.ok()) {
            FUZZ_CHECK(r_.remaining() == 0);
            FUZZ_CHECK(value == T{}, "a failed read returned data");
        }
        return value;
    }
    proto::Reader r_;
    const char* body_;
    size_t size_;
};

// Counted lists: "n" then n items, as Parse, Bind, FunctionCall, RowDescription and DataRow carry.
template <typename Fn>
void each(Walk& w, Fn&& item) {
    int16_t n = w.i16();
    for (int i = 0; i < n && w.ok(); ++i) item();
}

void values(Walk& w) {
    each(w, [&] {
        int32_t len = w.i32();
        if (len >= 0) w.bytes(len);
    });
}

void read_frontend(char type, Walk& w) {
    switch (type) {
    case 'Q': w.cstr(); break;
    case 'P':
        w.cstr();
        w.cstr();
        each(w, [&] { w.i32(); });
        break;
    case 'B':
        w.cstr();
        w.cstr();
        each(w, [&] { w.i16(); });
        values(w);
        each(w, [&] { w.i16(); });
        break;
    case 'E':
        w.cstr();
        w.i32();
        break;
    case 'D':
    case 'C':
        w.byte();
        w.cstr();
        break;
    case 'F':
        w.i32();
        each(w, [&] { w.i16(); });
        values(w);
        w.i16();
        break;
    case 'd': w.bytes(int32_t(w.remaining())); break;
    case 'f': w.cstr(); break;
    case 'p': {  // PasswordMessage, or SASLInitialResponse as ClientAuth::scram_method reads it
        w.cstr();
        int32_t len = w.i32();
        w.bytes(len < 0 ? 0 : len);
        break;
    }
    default: break;
    }
}

void read_fields(Walk& w) {  // ErrorResponse / NoticeResponse
    for (uint8_t field = w.byte(); w.ok() && field != 0; field = w.byte()) w.cstr();
}

void read_backend(char type, Walk& w, const char* body, size_t size, daemon::ParamList& params) {
    switch (type) {
    case 'R': {
        int32_t code = w.i32();
        if (code == 5) w.bytes(4);                      // md5 salt
        if (code == 10)                                 // SASL mechanisms
            for (std::string_view m = w.cstr(); w.ok() && !m.empty(); m = w.cstr()) {
            }
        if (code == 11 || code == 12) w.bytes(int32_t(w.remaining()));
        break;
    }
    case 'S': {
        size_t before = params.size();
        daemon::merge_parameter_status(params, body, size);
        FUZZ_CHECK(params.size() <= before + 1);
        w.cstr();
        w.cstr();
        break;
    }
    case 'K':
        w.i32();
        w.i32();
        break;
    case 'E':
    case 'N': read_fields(w); break;
    case 'T':
        each(w, [&] {
            w.cstr();
            w.i32();
            w.i16();
            w.i32();
            w.i16();
            w.i32();
            w.i16();
        });
        break;
    case 'D': values(w); break;
    case 'Z': w.byte(); break;
    case 'C': w.cstr(); break;
    case 'A':
        w.i32();
        w.cstr();
        w.cstr();
        break;
    case 'G':
    case 'H':
    case 'W':
        w.byte();
        each(w, [&] { w.i16(); });
        break;
    case 't': each(w, [&] { w.i32(); }); break;
    case 'V': {
        int32_t len = w.i32();
        if (len >= 0) w.bytes(len);
        break;
    }
    default: break;
    }
}

bool valid_frontend_type(char type) {  // as the relay: postgres.c's SocketBackend list
    switch (type) {
    case 'Q': case 'P': case 'B': case 'E': case 'D': case 'C': case 'S': case 'H': case 'F':
    case 'd': case 'c': case 'f': case 'X': return true;
    default: return false;
    }
}

// Bytes the dispatcher produced: a sequence of whole, valid messages.
void check_messages(const std::string& bytes, const char* what) {
    size_t at = 0;
    while (at < bytes.size()) {
        proto::Frame f;
        FUZZ_CHECK(proto::parse_frame(bytes.data() + at, bytes.size() - at, f) == proto::FrameStatus::Ok, what);
        at += f.size();
    }
    FUZZ_CHECK(at == bytes.size(), what);
}

// What the nodes would answer: enough of BEGIN / COMMIT / ROLLBACK to keep transaction states.
void simulate(const daemon::Send& s, bool failing, std::vector<daemon::NodeView>& nodes,
              std::vector<std::string>& parsed_names, std::vector<std::string>& parsed_sql) {
    daemon::NodeView& n = nodes[size_t(s.node)];
    n.connected = true;
    for (size_t at = 0; at < s.bytes.size();) {
        proto::Frame f;
        if (proto::parse_frame(s.bytes.data() + at, s.bytes.size() - at, f) != proto::FrameStatus::Ok) break;
        at += f.size();
        proto::Reader r(f.body, f.body_size());
        std::string text;
        if (f.type == 'Q') text = r.cstr();
        if (f.type == 'P' && parsed_names.size() < 64) {
            parsed_names.emplace_back(r.cstr());
            parsed_sql.emplace_back(r.cstr());
        }
        if (f.type == 'B') {
            r.cstr();
            std::string_view stmt = r.cstr();
            for (size_t i = parsed_names.size(); i-- > 0;)
                if (parsed_names[i] == stmt) {
                    text = parsed_sql[i];
                    break;
                }
        }
        if (text.empty()) continue;
        parser::Classification c = parser::classify(text);
        if (c.kind == parser::Kind::Begin && n.tx_status == 'I') n.tx_status = 'T';
        else if (c.kind == parser::Kind::Commit || c.kind == parser::Kind::Rollback) n.tx_status = 'I';
        else if (failing && n.tx_status == 'T') n.tx_status = 'E';
    }
}

struct Frontend {
    daemon::Config session_config;
    parser::ClassificationCache cache;
    daemon::CatalogCache catalog;
    daemon::Mt19937Random rng{1};
    daemon::Dispatcher dispatcher;
    std::vector<daemon::NodeView> nodes;
    std::vector<std::string> parsed_names, parsed_sql;
    bool failing;

    Frontend(const daemon::RoutingPolicy& policy, bool statements_fail)
        : session_config(*g_config),
          cache(64),
          catalog(g_table.get()),
          dispatcher(daemon::DispatchContext{*g_config, session_config, policy, cache, catalog, *g_table, nullptr, rng},
                     "db", "user", "app"),
          nodes(kNodes, daemon::NodeView{false, 'I'}),
          failing(statements_fail) {}

    void execute(const daemon::Plan& plan) {
        check_messages(plan.client_reply, "client reply");
        for (const daemon::Send& s : plan.sends) {
            FUZZ_CHECK(s.node >= 0 && s.node < kNodes, "send to node " + std::to_string(s.node));
            FUZZ_CHECK(s.ready_count >= 0);
            check_messages(s.bytes, "send");
            check_messages(s.retry_prepare, "retry prepare");
            simulate(s, failing, nodes, parsed_names, parsed_sql);
            if (s.delivery == daemon::Delivery::Forward)
                for (int i = 0; i < s.ready_count; ++i) dispatcher.note_ready(nodes[size_t(s.node)].tx_status);
        }
    }

    // False when the relay would end the session.
    bool on_frame(char type, const char* msg, size_t size) {
        if (type == 'X') return false;
        if (type == 'd' || type == 'c' || type == 'f') return true;  // COPY data: the relay forwards it
        if (type == 'Q' || type == 'F') {
            daemon::Plan close;
            if (dispatcher.end_batch_before_query(nodes, close)) execute(close);
        }
        (void)dispatcher.needs_idle(type);  // every plan here completes at once: always idle
        daemon::Plan plan;
        dispatcher.on_message(type, msg, size, nodes, plan);
        execute(plan);
        FUZZ_CHECK(dispatcher.primary() >= 0 && dispatcher.primary() < kNodes);
        return true;
    }
};

// Chunk sizes of the simulated socket reads; seed 0 delivers everything in one read.
class Chunks {
public:
    Chunks(uint8_t seed, const char* data, size_t size) : state_(seed), data_(data), left_(size) {}
    bool feed(io::Buffer& buf) {
        if (left_ == 0) return false;
        static constexpr size_t kSizes[] = {1, 2, 3, 5, 8, 64, 1000, 16384};
        size_t n = left_;
        if (state_ != 0) {
            state_ = state_ * 1103515245u + 12345u;
            n = std::min(left_, kSizes[(state_ >> 16) % 8]);
        }
        buf.append(data_, n);
        data_ += n;
        left_ -= n;
        return true;
    }

private:
    uint32_t state_;
    const char* data_;
    size_t left_;
};

void startup_packet(io::Buffer& buf, Chunks& chunks) {
    uint32_t length = 0;
    proto::FrameStatus st;
    while ((st = proto::parse_startup_frame(buf.data(), buf.size(), length)) == proto::FrameStatus::NeedMore)
        if (!chunks.feed(buf)) return;
    if (st != proto::FrameStatus::Ok) return;
    std::unique_ptr<char[]> packet(new char[length]);
    std::memcpy(packet.get(), buf.data(), length);
    proto::StartupMessage m;
    std::string error;
    (void)proto::decode_startup(packet.get() + 4, length - 4, m, &error);
    buf.consume(length);
}

void run_stream(bool backend, bool startup, bool failing, bool stmt_level, uint8_t seed, const char* data, size_t size) {
    io::Buffer buf;
    Chunks chunks(seed, data, size);
    std::unique_ptr<Frontend> frontend;
    if (!backend) frontend = std::make_unique<Frontend>(stmt_level ? *g_policy_stmt : *g_policy, failing);
    daemon::ParamList params;
    if (!backend && startup) startup_packet(buf, chunks);
    for (int frames = 0; frames < kMaxFrames;) {
        if (buf.empty() && !chunks.feed(buf)) break;
        if (!backend && !valid_frontend_type(buf.data()[0])) break;
        proto::Frame f;
        proto::FrameStatus st = proto::parse_header(buf.data(), buf.size(), f);
        if (st == proto::FrameStatus::Malformed) {
            FUZZ_CHECK(buf.size() >= 5);
            break;
        }
        if (st == proto::FrameStatus::NeedMore || buf.size() < f.size()) {
            if (!chunks.feed(buf)) break;
            continue;
        }
        FUZZ_CHECK(f.length >= 4 && f.body == buf.data() + 5);
        FUZZ_CHECK(proto::parse_frame(buf.data(), buf.size(), f) == proto::FrameStatus::Ok);
        ++frames;
        std::unique_ptr<char[]> msg(new char[f.size()]);
        std::memcpy(msg.get(), buf.data(), f.size());
        const char* body = msg.get() + 5;
        Walk w(body, f.body_size());
        if (backend) {
            read_backend(f.type, w, body, f.body_size(), params);
        } else {
            read_frontend(f.type, w);
            if (!frontend->on_frame(f.type, msg.get(), f.size())) break;
        }
        buf.consume(f.size());
    }
    for (const auto& [name, value] : params) {
        size_t same = 0;
        for (const auto& p : params) same += p.first == name;
        FUZZ_CHECK(same == 1, "merge_parameter_status kept two values of " + name);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    g_table = fuzz::private_status_table("frame", 2);
    g_table->set_num_nodes(kNodes);
    static daemon::Config config;
    config.backends.clear();
    const double weights[kNodes] = {1, 1, 1};
    for (int i = 0; i < kNodes; ++i) {
        g_table->set_node_status(i, shm::NodeStatus::Up);
        g_table->node(i).role = uint8_t(i == 0 ? shm::NodeRole::Primary : shm::NodeRole::Standby);
        g_table->node(i).weight = weights[i];
        config.backends.push_back(daemon::BackendConfig{"127.0.0.1", 5432 + i, weights[i]});
    }
    g_table->header().primary_node = 0;
    g_config = &config;
    static daemon::RoutingPolicy policy, policy_stmt;
    std::string error;
    if (!daemon::routing_policy_for(config, &policy, &error)) fuzz::check_failed("routing_policy_for", __FILE__, __LINE__, error);
    config.statement_level_load_balance = true;
    if (!daemon::routing_policy_for(config, &policy_stmt, &error))
        fuzz::check_failed("routing_policy_for", __FILE__, __LINE__, error);
    config.statement_level_load_balance = false;
    g_policy = &policy;
    g_policy_stmt = &policy_stmt;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2 || size > fuzz::kMaxInput) return -1;
    uint8_t mode = data[0], seed = data[1];
    run_stream(mode & 1, mode & 2, mode & 4, mode & 16, seed, reinterpret_cast<const char*>(data) + 2,
               size - 2);
    return 0;
}
