// Health checks and the streaming replication worker: their own processes, writing node facts to
// shared memory, detaching failed nodes and running the failover hooks without blocking anyone.
#include "daemon/health.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <ctime>
#include <memory>
#include <vector>

#include "daemon/auth/aes.hpp"
#include "daemon/auth/pool_passwd.hpp"
#include "daemon/hook.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/log.hpp"
#include "daemon/node_status_file.hpp"
#include "daemon/proto/frame.hpp"

namespace splitpool::daemon {

volatile sig_atomic_t g_worker_stop = 0;

namespace {

void on_term(int) { g_worker_stop = 1; }

}  // namespace

void start_worker(const std::string& name) {
    log_set_process_name(name);
    struct sigaction sa {};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGHUP, SIG_IGN);   // the parent restarts workers with the new configuration
    signal(SIGUSR1, SIG_IGN);  // the parent's log-rotation signal
    signal(SIGCHLD, SIG_IGN);  // hooks are never waited for
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
}

void nap(int64_t ms) {
    for (int64_t left = ms; left > 0 && !g_worker_stop; left -= 100) {
        timespec ts{0, long(std::min<int64_t>(left, 100)) * 1000000L};
        nanosleep(&ts, nullptr);
    }
}

namespace {

bool usable(shm::NodeStatus s) { return s == shm::NodeStatus::Up || s == shm::NodeStatus::Waiting; }

shm::NodeStatus status_of(const shm::StatusTable& table, int node) {
    return static_cast<shm::NodeStatus>(table.node(node).status.load());
}

void note_round(shm::NodeSlot& n, bool ok, int retries, int64_t duration_ms) {
    int64_t now = time(nullptr);
    auto ms = uint32_t(std::min<int64_t>(duration_ms, UINT32_MAX));
    n.health_check_last = now;
    (ok ? n.health_check_last_success : n.health_check_last_fail) = now;
    n.health_check_duration_sum_ms.fetch_add(uint64_t(duration_ms));
    if (ms > n.health_check_max_ms.load()) n.health_check_max_ms = ms;
    if (n.health_check_min_ms.load() == 0 || ms < n.health_check_min_ms.load()) n.health_check_min_ms = ms;
    if (uint32_t(retries) > n.health_check_max_retry.load()) n.health_check_max_retry = uint32_t(retries);
}

// One round: a login, retried; true when the node answered.
bool check_round(const Config& c, shm::StatusTable& table, int node, std::string* why) {
    shm::NodeSlot& n = table.node(node);
    const HealthCheckSettings hc = health_check_settings(c, node);
    int64_t started = io::now_ms();
    int retries = 0;
    bool ok = false;
    for (;;) {
        n.health_check_total.fetch_add(1);
        LoginResult r = check_login(c, node, hc.user, hc.password, hc.database, hc.timeout, hc.connect_timeout);
        ok = r.conn != nullptr;
        (ok ? n.health_check_success : n.health_check_fail).fetch_add(1);
        if (ok || retries >= hc.max_retries || g_worker_stop) {
            if (!ok) *why = r.log_message;
            break;
        }
        ++retries;
        n.health_check_retries.fetch_add(1);
        PROXY_LOG(Log, "health check retrying on DB node: %d (round:%d): %s", node, retries, r.log_message.c_str());
        nap(int64_t(hc.retry_delay) * 1000);
    }
    note_round(n, ok, retries, io::now_ms() - started);
    return ok;
}

}  // namespace

// pgpool's rule for health_check_password and sr_check_password: empty means the user's pool_passwd
// entry (AES decrypted with the key file, md5 or TEXT as they are). Read at each login, so an entry
// pg_enc or pg_md5 adds is used without a reload. Empty with `problem` set when there is none.
std::string pool_passwd_secret(const Config& c, const std::string& user, std::string* problem) {
    if (c.pool_passwd.empty()) {
        *problem = "the password is empty and pool_passwd is off";
        return {};
    }
    auth::PoolPasswdLoad file = auth::load_pool_passwd(c.pool_passwd);
    const auth::PasswordEntry* entry = file.ok ? file.file.find(user) : nullptr;
    if (!entry) {
        *problem = file.ok ? "the password is empty and pool_passwd has no entry for user \"" + user + "\""
                           : "the password is empty and " + file.error;
        return {};
    }
    switch (entry->kind) {
    case auth::PasswordKind::Md5: return entry->value;
    case auth::PasswordKind::ScramSha256:
        *problem = "the pool_passwd entry of user \"" + user + "\" is a SCRAM verifier, which cannot log in";
        return {};
    default: break;
    }
    std::optional<std::string> key;
    if (entry->kind == auth::PasswordKind::Aes) key = auth::read_pool_key(c.key_file).key;
    std::optional<std::string> plain = auth::plaintext(*entry, key);
    if (!plain) {
        *problem = "the AES pool_passwd entry of user \"" + user + "\" cannot be decrypted" +
                   (key ? std::string(" with the key file") : std::string(": no key file"));
        return {};
    }
    return "TEXT" + *plain;  // so a password that starts with "md5" is not taken for a hash
}

LoginResult check_login(const Config& c, int node, const std::string& user, const std::string& given,
                        const std::string& database, int timeout_s, int connect_timeout_ms) {
    std::string problem;
    std::string effective_user = user.empty() ? "postgres" : user;
    const std::string password = given.empty() ? pool_passwd_secret(c, effective_user, &problem) : given;
    const BackendConfig& b = c.backends[size_t(node)];
    BackendAddress address{node, b.hostname, b.port, connect_timeout_ms};
    if (timeout_s > 0 && (connect_timeout_ms <= 0 || connect_timeout_ms > timeout_s * 1000))
        address.connect_timeout_ms = timeout_s * 1000;
    proto::StartupMessage startup;
    startup.protocol = proto::kProtocolVersion3;
    startup.params = {{"user", effective_user},
                      {"database", database.empty() ? "postgres" : database},
                      {"application_name", "splitpool check"}};
    PasswordSource source = [&password](int32_t, Credential& cred, std::string&) {
        if (password.empty()) return false;
        if (password.rfind("md5", 0) == 0 && password.size() == 35) cred.md5_stored = password;
        else cred.password = password.rfind("TEXT", 0) == 0 ? password.substr(4) : password;
        return true;
    };
    io::Deadline deadline = io::deadline_after_ms(timeout_s > 0 ? int64_t(timeout_s) * 1000 : int64_t(86400000));
    LoginResult r = backend_login(address, startup, source, deadline);
    if (!r.conn && r.used_password && !problem.empty()) r.log_message += " (" + problem + ")";
    return r;
}

int64_t parse_lsn(const std::string& text) {
    unsigned long long hi = 0, lo = 0;
    if (sscanf(text.c_str(), "%llx/%llx", &hi, &lo) != 2) return -1;
    return int64_t((hi << 32) | lo);
}

void detach_failed_node(const Config& c, shm::StatusTable& table, int node, const std::string& why) {
    const BackendConfig& b = c.backends[size_t(node)];
    if (b.flags & kFlagDisallowToFailover) {
        PROXY_LOG(Log, "health check failed on node %d but failover is disallowed for the node (%s)", node, why.c_str());
        return;
    }
    if (!usable(status_of(table, node))) return;
    HookEvent event;
    event.node = node;
    event.old_primary = table.header().primary_node.load();
    for (int i = 0; i < table.num_nodes(); ++i)
        if (usable(status_of(table, i))) {
            if (event.old_main < 0) event.old_main = i;
            if (i != node && event.new_main < 0) event.new_main = i;
        }
    table.set_node_status(node, shm::NodeStatus::Down);
    if (event.old_primary == node) table.header().primary_node = -1;  // the replication worker looks for the next
    save_node_status(c, table);
    PROXY_LOG(Log, "failover: node %d (%s:%d) is detached: %s", node, b.hostname.c_str(), b.port, why.c_str());
    run_hook("failover_command", c.failover_command, c, event);
}

// auto_failback: a detached standby that answers and streams from the primary again is attached.
void try_failback(const Config& c, shm::StatusTable& table, int node, int64_t* last_failback) {
    shm::NodeSlot& n = table.node(node);
    bool streaming = static_cast<shm::ReplicationState>(n.replication_state.load()) == shm::ReplicationState::Streaming;
    int64_t now = time(nullptr);
    if (!streaming || node == table.header().primary_node.load() || now - *last_failback < c.auto_failback_interval)
        return;
    std::string why;
    if (!check_round(c, table, node, &why)) return;
    *last_failback = now;
    table.set_node_status(node, shm::NodeStatus::Waiting);
    save_node_status(c, table);
    PROXY_LOG(Log, "auto_failback: node %d streams from the primary again: attached", node);
    HookEvent event;
    event.node = node;
    event.new_main = event.old_main = event.old_primary = table.header().primary_node.load();
    run_hook("failback_command", c.failback_command, c, event);
}

void run_health_check(const Config& c, shm::StatusTable& table, int node) {
    start_worker("health check " + std::to_string(node));
    int64_t last_failback = 0;
    while (!g_worker_stop) {
        if (status_of(table, node) == shm::NodeStatus::Down && c.auto_failback) {
            try_failback(c, table, node, &last_failback);
        } else if (usable(status_of(table, node))) {
            std::string why;
            if (!check_round(c, table, node, &why) && !g_worker_stop) {
                PROXY_LOG(Log, "health check failed on DB node %d: %s", node, why.c_str());
                detach_failed_node(c, table, node, "health check failed");
            }
        } else {
            table.node(node).health_check_skip.fetch_add(1);
            table.node(node).health_check_last_skip = int64_t(time(nullptr));
        }
        nap(int64_t(health_check_settings(c, node).period) * 1000);
    }
    _exit(0);
}

}  // namespace splitpool::daemon
