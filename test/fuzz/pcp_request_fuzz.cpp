// libFuzzer target: the PCP request decoder — packets read from a socket by read_packet() with the
// server's request limit, the login exchange as the PCP worker runs it, and handle_command() for
// every request type against a status table of three nodes and two children.
//
// Input: one mode byte, then the bytes a PCP client sends.
//   mode bit 0: the connection is already authenticated (else only a correct 'R' logs in, which
//               the fuzzer can reach only through 'M' + the md5 answer; the seeds carry one)
//   mode bits 1-2: status of node 2 (unused, waiting, up, down)
//   mode bit 3: node 1 is DISALLOW_TO_FAILOVER
// Every reply must be a sequence of whole packets; errors decode to ERROR or FATAL with a message;
// the table stays consistent (a primary in range, statuses from the enum). No signal is ever sent:
// the parent pid is 0, so reload and stop requests fail as they do without a parent.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "daemon/config.hpp"
#include "pcp/commands.hpp"
#include "pcp/pcp_conf.hpp"
#include "pcp/wire.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;

namespace {

constexpr int kNodes = 3;
constexpr int kMaxPackets = 64;
// pcp.conf of the fuzzed server: user "pcpadmin", md5("secret") as pg_md5 prints it.
constexpr std::string_view kPcpConf = "# PCP users\npcpadmin:5ebe2294ecd0e0f08eab7690d2a6ee69\n";
const unsigned char kSalt[pcp::kSaltLength] = {0x11, 0x22, 0x33, 0x44};

std::unique_ptr<shm::StatusTable> g_table;
daemon::Config* g_config = nullptr;

void reset_table(uint8_t mode) {
    shm::StatusTable& t = *g_table;
    t.set_num_nodes(kNodes);
    static const shm::NodeStatus kStatus[] = {shm::NodeStatus::Unused, shm::NodeStatus::Waiting, shm::NodeStatus::Up,
                                             shm::NodeStatus::Down};
    for (int i = 0; i < kNodes; ++i) {
        t.set_node_status(i, i < 2 ? shm::NodeStatus::Up : kStatus[(mode >> 1) & 3]);
        t.node(i).role = uint8_t(i == 0 ? shm::NodeRole::Primary : shm::NodeRole::Standby);
        t.node(i).weight = 1.0;
        t.node(i).flags = (i == 1 && (mode & 8)) ? daemon::kFlagDisallowToFailover : daemon::kFlagAllowToFailover;
        t.node(i).replication_delay = i == 0 ? 0 : 128;
    }
    t.header().primary_node = 0;
    t.reset_child(0, 4242);  // waiting for a client: -g waits for nobody
    t.reset_child(1, 0);
}

int packet_count(const std::string& bytes) {
    int n = 0;
    size_t at = 0;
    while (at < bytes.size()) {
        proto::Frame f;
        FUZZ_CHECK(proto::parse_frame(bytes.data() + at, bytes.size() - at, f, pcp::kMaxReplyLength) ==
                       proto::FrameStatus::Ok,
                   "reply is not a sequence of whole packets");
        if (f.type == 'E') {
            pcp::ErrorFields e = pcp::decode_error(std::string_view(f.body, f.body_size()));
            FUZZ_CHECK(e.severity == "ERROR" || e.severity == "FATAL", e.severity);
            FUZZ_CHECK(!e.message.empty());
            FUZZ_CHECK(!pcp::format_error(e).empty());
        }
        at += f.size();
        ++n;
    }
    return n;
}

void check_table() {
    const shm::StatusTable& t = *g_table;
    int primary = t.header().primary_node.load();
    FUZZ_CHECK(primary >= -1 && primary < kNodes, "primary node " + std::to_string(primary));
    for (int i = 0; i < kNodes; ++i) FUZZ_CHECK(t.node(i).status.load() <= uint8_t(shm::NodeStatus::Down));
}

struct Login {
    bool salt_sent = false;
    bool authenticated = false;
};

// server.cpp's dispatch(): 'M' salt, 'R' login, 'X' always, anything else only once logged in.
pcp::Reply dispatch(Login& s, const pcp::Packet& p, const pcp::CommandContext& ctx) {
    if (p.type == 'M') {
        s.salt_sent = true;
        return {pcp::encode_packet('m', std::string_view(reinterpret_cast<const char*>(kSalt), sizeof kSalt))};
    }
    if (p.type == 'R') {
        std::vector<std::string> parts = pcp::split_strings(p.body);
        bool ok = false;
        if (s.salt_sent && parts.size() >= 2)
            for (const pcp::PcpUser& u : pcp::parse_pcp_conf(kPcpConf).users)
                ok = ok || (u.name == parts[0] && pcp::salted_response(u.password_md5, parts[0], kSalt) == parts[1]);
        s.salt_sent = false;
        s.authenticated = ok;
        if (ok) return {pcp::encode_strings('r', {pcp::kAuthenticationOk})};
        return pcp::fatal_reply("authentication failed", "username and/or password does not match");
    }
    if (p.type == 'X') return pcp::handle_command(ctx, p);
    if (!s.authenticated) return pcp::fatal_reply("authentication failed for new PCP connection", "connection not authorized");
    return pcp::handle_command(ctx, p);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    g_table = fuzz::private_status_table("pcp", 2);
    static daemon::Config config;
    config.backends.clear();
    for (int i = 0; i < kNodes; ++i) {
        config.backends.push_back(daemon::BackendConfig{"127.0.0.1", 5432 + i, 1.0});
        g_table->set_node_text(i, "127.0.0.1", 5432 + i, "node" + std::to_string(i));
    }
    config.health_check_period = 0;  // node info would otherwise connect to the nodes
    g_config = &config;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 || size > fuzz::kMaxInput) return -1;
    uint8_t mode = data[0];
    reset_table(mode);

    // The request bytes arrive on a pipe, read as the PCP worker reads its socket.
    int fds[2];
    FUZZ_CHECK(pipe2(fds, O_CLOEXEC) == 0);
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 17);
    size_t n = size - 1;
    const char* p = reinterpret_cast<const char*>(data) + 1;
    while (n > 0) {
        ssize_t w = write(fds[1], p, n);
        FUZZ_CHECK(w > 0, "pipe write failed");
        p += w;
        n -= size_t(w);
    }
    close(fds[1]);

    pcp::CommandContext ctx{*g_config, *g_table, 0, 0};
    Login login;
    login.authenticated = mode & 1;
    io::Buffer buf;
    for (int packets = 0; packets < kMaxPackets; ++packets) {
        pcp::Packet packet;
        io::IoStatus st = pcp::read_packet(fds[0], buf, packet, pcp::kMaxRequestLength, io::deadline_after_ms(1000));
        if (st != io::IoStatus::Ok) {
            FUZZ_CHECK(st == io::IoStatus::Closed || st == io::IoStatus::Error, "read_packet timed out on a pipe");
            if (st == io::IoStatus::Error) FUZZ_CHECK(buf.size() >= 5);
            break;
        }
        FUZZ_CHECK(packet.body.size() + 4 <= pcp::kMaxRequestLength);
        pcp::Reply r = dispatch(login, packet, ctx);
        FUZZ_CHECK(r.signal_parent == 0, "a signal for a parent that does not exist");
        int replies = packet_count(r.bytes);
        FUZZ_CHECK(replies > 0 || packet.type == 'X', std::string("no reply to '") + packet.type + "'");
        check_table();
        if (r.close) break;
    }
    close(fds[0]);
    return 0;
}
