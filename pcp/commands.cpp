// The PCP request handlers: each request packet becomes reply bytes, reading and changing shared memory.
#include "pcp/commands.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <charconv>
#include <optional>

#include "daemon/hook.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/node_status_file.hpp"
#include "daemon/log.hpp"
#include "pcp/report.hpp"

namespace splitpool::pcp {
namespace {

using shm::ChildState;
using shm::NodeRole;
using shm::NodeStatus;

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
    char buf[512];
    va_list args;
    va_start(args, format);
    vsnprintf(buf, sizeof buf, format, args);
    va_end(args);
    return buf;
}

// A numeric argument as the tools send it: decimal digits only, within int range ("-1" only where
// `minus_one` allows it). atoi would read "1xyz" as 1 and wrap 4294967297 around to node 1.
std::optional<int> parse_number(std::string_view text, bool minus_one = false) {
    if (minus_one && text == "-1") return -1;
    if (text.empty() || text.size() > 10) return std::nullopt;
    for (char c : text)
        if (c < '0' || c > '9') return std::nullopt;
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// The argument quoted back in an error text: bounded, control characters escaped.
std::string quoted(const std::string& text) { return "\"" + daemon::log_text(text, 64) + "\""; }

NodeStatus node_status(const CommandContext& ctx, int id) {
    return static_cast<NodeStatus>(ctx.table.node(id).status.load());
}

bool node_valid(const CommandContext& ctx, int id) { return pcp::node_valid(ctx.table, id); }
bool is_primary(const CommandContext& ctx, int id) { return is_primary_node(ctx.table, id); }

std::string complete(char type) { return encode_strings(type, {kCommandComplete}); }

// ---- node count / node info / health check stats ------------------------------------------------

Reply node_count(const CommandContext& ctx) {
    return {encode_strings('l', {kCommandComplete, std::to_string(ctx.table.num_nodes())})};
}

std::string node_info_packet(const CommandContext& ctx, int id) {
    shm::NodeText text = ctx.table.node_text(id);
    const shm::NodeSlot& n = ctx.table.node(id);
    int64_t delay = n.replication_delay.load();
    // pgpool 4.3's NodeInfo: 12 strings, in this order.
    return encode_strings('i', {"NodeInfo", text.hostname, std::to_string(text.port),
                                std::to_string(int(n.status.load())), "0",
                                probe_backend_status(ctx.config, ctx.table, id),
                                fmt("%f", normalized_weight(ctx.table, id) * kRandMax),
                                std::to_string(is_primary(ctx, id) ? kRolePrimary : kRoleStandby),
                                reported_backend_role(ctx.config, ctx.table, id),
                                fmt("%" PRIu64, uint64_t(delay > 0 ? delay : 0)),
                                replication_state_name(ctx.table, id), replication_sync_state_name(ctx.table, id),
                                fmt("%" PRId64, n.status_changed_at.load())});
}

Reply node_info(const CommandContext& ctx, const std::string& arg) {
    std::optional<int> parsed = parse_number(arg, true);
    if (!parsed) return error_reply("informing node info failed", "invalid node ID : " + quoted(arg));
    int id = *parsed;
    int count = ctx.table.num_nodes();
    if (id != -1 && (id < 0 || id >= count))
        return error_reply("informing node info failed", "invalid node ID : " + arg);
    Reply r;
    r.bytes = encode_strings('i', {kArraySize, std::to_string(id == -1 ? count : 1)});
    for (int i = 0; i < count; ++i)
        if (id == -1 || id == i) r.bytes += node_info_packet(ctx, i);
    r.bytes += complete('i');
    return r;
}

Reply health_check_stats(const CommandContext& ctx, const std::string& arg) {
    std::optional<int> parsed = parse_number(arg);
    if (!parsed) return error_reply("informing health check stats info failed", "invalid node ID " + quoted(arg));
    int id = *parsed;
    int count = ctx.table.num_nodes();
    if (id < 0 || id > count)
        return error_reply("informing health check stats info failed", fmt("invalid node ID %d", id));
    if (id == count)
        return error_reply("informing health check stats info failed",
                           fmt("stats data for node ID %d does not exist", id));
    std::vector<std::string> fields = health_check_fields(ctx.table, id);
    fields.insert(fields.begin(), std::string(kCommandComplete));
    return {encode_strings('h', fields)};
}

// ---- processes ----------------------------------------------------------------------------------

Reply process_count(const CommandContext& ctx) {
    std::vector<std::string> fields{std::string(kCommandComplete), ""};
    int count = 0;
    for (int i = 0; i < ctx.table.num_children(); ++i) {
        int32_t pid = ctx.table.child(i).pid.load();
        if (pid == 0) continue;
        fields.push_back(std::to_string(pid));
        ++count;
    }
    fields[1] = std::to_string(count);
    return {encode_strings('n', fields)};
}

std::string process_info_packet(const CommandContext& ctx, int slot, int node) {
    std::vector<std::string> f = pool_slot_fields(ctx.table, slot, node);
    f.insert(f.begin(), "ProcessInfo");
    return encode_strings('p', f);
}

Reply process_info(const CommandContext& ctx, const std::string& arg) {
    std::optional<int> parsed = parse_number(arg);
    if (!parsed) return error_reply("informing process info failed", "invalid process ID : " + quoted(arg));
    int pid = *parsed;
    std::vector<int> slots;
    for (int i = 0; i < ctx.table.num_children(); ++i) {
        int32_t p = ctx.table.child(i).pid.load();
        if (p != 0 && (pid == 0 || p == pid)) slots.push_back(i);
    }
    if (pid != 0 && slots.empty()) return error_reply("informing process info failed", "invalid process ID : " + arg);
    int nodes = ctx.table.num_nodes();
    Reply r;
    r.bytes = encode_strings('p', {kArraySize, std::to_string(int(slots.size()) * nodes)});
    for (int slot : slots)
        for (int node = 0; node < nodes; ++node) r.bytes += process_info_packet(ctx, slot, node);
    r.bytes += complete('p');
    return r;
}

// ---- pool status --------------------------------------------------------------------------------

Reply pool_status(const CommandContext& ctx) {
    std::vector<std::string> rows;
    for (const ConfigItem& item : pool_status_items(ctx.config, ctx.table))
        rows.push_back(encode_strings('b', {"ProcessConfig", item.name, item.value, item.description}));
    // ArraySize carries a binary int32 here, unlike every other reply.
    std::string count(4, '\0');
    uint32_t n = uint32_t(rows.size());
    for (int i = 0; i < 4; ++i) count[size_t(i)] = char((n >> (24 - 8 * i)) & 0xff);
    Reply r;
    r.bytes = encode_packet('b', std::string(kArraySize) + '\0' + count);
    for (const std::string& p : rows) r.bytes += p;
    r.bytes += complete('b');
    return r;
}

// ---- node status changes ------------------------------------------------------------------------

int sessions_in_progress(const CommandContext& ctx) {
    int n = 0;
    for (int i = 0; i < ctx.table.num_children(); ++i) {
        const shm::ChildSlot& c = ctx.table.child(i);
        auto s = static_cast<ChildState>(c.state.load());
        if (c.pid.load() != 0 && s != ChildState::WaitingForClient && s != ChildState::Gone) ++n;
    }
    return n;
}

// -g: pgpool waits for every client to disconnect, up to recovery_timeout.
bool wait_for_clients(const CommandContext& ctx) {
    io::Deadline deadline = io::deadline_after_ms(int64_t(ctx.graceful_timeout_sec) * 1000);
    while (sessions_in_progress(ctx) > 0) {
        if (io::now_ms() >= deadline) return false;
        usleep(100 * 1000);
    }
    return true;
}

Reply attach_node(const CommandContext& ctx, const std::string& arg) {
    std::optional<int> parsed = parse_number(arg);
    if (!parsed)
        return error_reply(fmt("invalid failback request, node id: %s is not a valid node id. node id must be "
                               "between [0 and %d]", quoted(arg).c_str(), kMaxNodeId), "");
    int id = *parsed;
    if (id < 0 || id >= kMaxNodeId)
        return error_reply(fmt("invalid failback request, node id: %d is out of range. node id must be between "
                               "[0 and %d]", id, kMaxNodeId), "");
    if (id >= ctx.table.num_nodes())
        return error_reply(fmt("invalid failback request, node id : %d status: [0] not valid for failback", id), "");
    // Like pgpool's failback: "waiting" until a child connects to it again.
    if (!node_valid(ctx, id)) {
        ctx.table.set_node_status(id, NodeStatus::Waiting);
        daemon::save_node_status(ctx.config, ctx.table);
        daemon::HookEvent event;
        event.node = id;
        event.new_main = event.old_main = event.old_primary = ctx.table.header().primary_node.load();
        daemon::run_hook("failback_command", ctx.config.failback_command, ctx.config, event);
    }
    PROXY_LOG(Log, "PCP: node %d attached", id);
    return {complete('c')};
}

// The checks of pgpool's degenerate_backend_set_ex; empty when the node may be detached.
std::string detach_refusal(const CommandContext& ctx, int id) {
    if (id < 0 || id >= kMaxNodeId)
        return fmt("invalid degenerate backend request, node id: %d is out of range. node id must be between "
                   "[0 and %d]", id, kMaxNodeId);
    if (id >= ctx.table.num_nodes() || !node_valid(ctx, id))
        return fmt("invalid degenerate backend request, node id : %d status: [%d] is not valid for failover", id,
                   id >= ctx.table.num_nodes() ? 0 : int(node_status(ctx, id)));
    if (ctx.table.node(id).flags.load() & daemon::kFlagDisallowToFailover)
        return fmt("degenerate backend request for node_id: %d from pid [%d] is canceled because failover is "
                   "disallowed on the node", id, int(getpid()));
    return "";
}

void mark_down(const CommandContext& ctx, int id) {
    daemon::HookEvent event;
    event.node = id;
    event.old_primary = ctx.table.header().primary_node.load();
    for (int i = 0; i < ctx.table.num_nodes(); ++i)
        if (node_valid(ctx, i) && i != id && event.new_main < 0) event.new_main = i;
    ctx.table.set_node_status(id, NodeStatus::Down);
    if (is_primary(ctx, id)) {
        // The replication worker (sr_check) then looks for the new primary.
        ctx.table.header().primary_node = -1;
        PROXY_LOG(Log, "PCP: primary node %d detached, no primary node now", id);
    }
    daemon::save_node_status(ctx.config, ctx.table);
    daemon::run_hook("failover_command", ctx.config.failover_command, ctx.config, event);
}

Reply detach_node(const CommandContext& ctx, const std::string& arg, bool gracefully) {
    std::optional<int> parsed = parse_number(arg);
    if (!parsed)
        return error_reply(fmt("invalid degenerate backend request, node id: %s is not a valid node id. node id "
                               "must be between [0 and %d]", quoted(arg).c_str(), kMaxNodeId), "");
    int id = *parsed;
    std::string refusal = detach_refusal(ctx, id);
    if (!refusal.empty()) return error_reply(refusal, "");
    if (gracefully && !wait_for_clients(ctx))
        return error_reply("detaching node gracefully failed",
                           fmt("clients did not disconnect within %d seconds", ctx.graceful_timeout_sec));
    mark_down(ctx, id);
    PROXY_LOG(Log, "PCP: node %d detached", id);
    return {complete('d')};
}

void make_primary(const CommandContext& ctx, int id) {
    int old = ctx.table.header().primary_node.load();
    if (old >= 0 && old != id) ctx.table.node(old).role = uint8_t(NodeRole::Standby);
    ctx.table.node(id).role = uint8_t(NodeRole::Primary);
    ctx.table.header().primary_node = id;
}

// Body "<id> \0" then 's' (switchover) or 'n'.
Reply promote_node(const CommandContext& ctx, const std::string& body, bool gracefully) {
    size_t space = body.find(' ');
    char option = (space != std::string::npos && space + 2 < body.size()) ? body[space + 2] : 'n';
    std::string text = body.substr(0, std::min(space, body.find('\0')));
    std::optional<int> parsed = parse_number(text);
    if (!parsed) return error_reply("could not process promote request", "node id " + quoted(text) + " is not valid");
    int id = *parsed;
    if (id < 0 || id >= ctx.table.num_nodes())
        return error_reply("could not process promote request", fmt("node id %d is not valid", id));
    if (is_primary(ctx, id))
        return fatal_reply("invalid promote request",
                           fmt("specified node is already primary node, can't promote node id %d", id));
    if (!node_valid(ctx, id))
        return error_reply(fmt("invalid promote backend request, node id : %d status: [%d] not valid", id,
                               int(node_status(ctx, id))), "");
    if (gracefully && !wait_for_clients(ctx))
        return error_reply("promoting node gracefully failed",
                           fmt("clients did not disconnect within %d seconds", ctx.graceful_timeout_sec));
    int old = ctx.table.header().primary_node.load();
    if (option == 's') {
        // Switchover: the current primary is detached and the node takes its place.
        if (old >= 0) ctx.table.set_node_status(old, NodeStatus::Down);
    } else {
        // pgpool's promote request: the node becomes primary and every other node is marked down.
        for (int i = 0; i < ctx.table.num_nodes(); ++i)
            if (i != id && node_valid(ctx, i)) ctx.table.set_node_status(i, NodeStatus::Down);
    }
    make_primary(ctx, id);
    PROXY_LOG(Log, "PCP: node %d promoted to primary (%s)", id, option == 's' ? "switchover" : "promote");
    return {complete('d')};
}

// ---- parent signals -----------------------------------------------------------------------------

Reply reload_config(const CommandContext& ctx) {
    if (ctx.parent_pid <= 0 || kill(ctx.parent_pid, SIGHUP) != 0)
        return error_reply("process reload config request failed", "failed to signal pgpool parent process");
    return {complete('z')};
}

// pgpool's 'V': the parent passes SIGUSR1 on to the logging collector, which opens a new file.
Reply log_rotate(const CommandContext& ctx) {
    if (!ctx.config.logging_collector)
        return error_reply("process log rotate request failed",
                           "logging_collector is off: splitpool writes to stderr or syslog and rotates no file");
    if (ctx.parent_pid <= 0 || kill(ctx.parent_pid, SIGUSR1) != 0)
        return error_reply("process log rotate request failed", "failed to signal pgpool parent process");
    PROXY_LOG(Log, "PCP: log rotation requested");
    return {complete('v')};
}

Reply shutdown(const CommandContext& ctx, const std::string& body) {
    char mode = body.empty() ? '\0' : body[0];
    int sig = mode == 's' ? SIGTERM : mode == 'f' ? SIGINT : mode == 'i' ? SIGQUIT : 0;
    if (sig == 0)
        return error_reply("PCP: error while processing shutdown request",
                           fmt("invalid shutdown mode \"%c\"", mode ? mode : ' '));
    if (ctx.parent_pid <= 0 || kill(ctx.parent_pid, 0) != 0)
        return error_reply("PCP: error while processing shutdown request", "failed to signal pgpool parent process");
    Reply r{complete('t')};
    r.signal_parent = sig;
    return r;
}

}  // namespace

Reply error_reply(std::string message, std::string detail) {
    return {encode_error({"ERROR", std::move(message), std::move(detail)})};
}

Reply fatal_reply(std::string message, std::string detail) {
    Reply r{encode_error({"FATAL", std::move(message), std::move(detail)})};
    r.close = true;
    return r;
}

Reply handle_command(const CommandContext& ctx, const Packet& request) {
    // Numeric arguments arrive as one NUL-terminated string.
    std::string arg = request.body.substr(0, request.body.find('\0'));
    switch (request.type) {
    case 'L': return node_count(ctx);
    case 'I': return node_info(ctx, arg);
    case 'H': return health_check_stats(ctx, arg);
    case 'N': return process_count(ctx);
    case 'P': return process_info(ctx, arg);
    case 'B': return pool_status(ctx);
    case 'C': return attach_node(ctx, arg);
    case 'D': return detach_node(ctx, arg, false);
    case 'd': return detach_node(ctx, arg, true);
    case 'J': return promote_node(ctx, request.body, false);
    case 'j': return promote_node(ctx, request.body, true);
    case 'Z': return reload_config(ctx);
    case 'V': return log_rotate(ctx);
    case 'T':
    case 't': return shutdown(ctx, request.body);
    case 'O': return error_reply("process recovery request failed", "online recovery is not supported");
    case 'W': return error_reply("PCP: informing watchdog info failed", "watchdog is not enabled");
    case 'A': return error_reply("PCP: set configuration parameter failed", "invalid parameter \"" + arg + "\"");
    case 'X': {
        Reply r;
        r.close = true;
        return r;
    }
    default:
        return fatal_reply("PCP processing request", fmt("unknown PCP packet type \"%c\"", request.type));
    }
}

}  // namespace splitpool::pcp
