// A preforked child: waits for a client on the shared listening sockets, serves it, keeps its
// backend connection sets for the next client, and exits when told to or when it is worn out.
#include "daemon/child.hpp"

#include <fcntl.h>
#include <ev.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include <csignal>
#include <cerrno>
#include <ctime>

#include "daemon/auth_state.hpp"
#include "daemon/backend_pool.hpp"
#include "daemon/dispatcher.hpp"
#include "daemon/io/conn.hpp"
#include "daemon/io/tls.hpp"
#include "daemon/log.hpp"
#include "daemon/secure_random.hpp"
#include "daemon/session.hpp"
#include "daemon/supervisor.hpp"

namespace splitpool::daemon {
namespace {

// Signal handlers can only reach file-level state; they set a flag and wake the loop
// (ev_async_send is async-signal-safe), and everything else happens in normal code.
volatile sig_atomic_t g_smart_stop = 0;
volatile sig_atomic_t g_fast_stop = 0;
volatile sig_atomic_t g_reload = 0;
volatile sig_atomic_t g_parent_gone = 0;
struct ev_loop* g_loop = nullptr;
ev_async g_wakeup;

// The client listening sockets, closed straight from the signal handler (close is async-signal-safe)
// when the parent dies, so a new splitpool can bind the port while a busy session still ends.
constexpr int kPdeathSignal = SIGUSR2;
constexpr int kMaxListenFds = 64;
int g_listen_fds[kMaxListenFds];
volatile sig_atomic_t g_listen_count = 0;

void close_listen_sockets() {
    int n = g_listen_count;
    g_listen_count = 0;
    for (int i = 0; i < n; ++i) close(g_listen_fds[i]);
}

void on_signal(int sig) {
    int saved = errno;
    if (sig == SIGTERM) g_smart_stop = 1;
    if (sig == SIGINT) g_fast_stop = 1;
    if (sig == SIGHUP) g_reload = 1;
    if (sig == kPdeathSignal) {
        g_parent_gone = 1;
        close_listen_sockets();
    }
    if (sig == SIGQUIT) _exit(1);  // immediate: no cleanup, as PostgreSQL's quickdie
    if (g_loop) ev_async_send(g_loop, &g_wakeup);
    errno = saved;
}

constexpr int kHandledSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, kPdeathSignal};

void install_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocking poll() must see EINTR and check the flags
    for (int sig : kHandledSignals) sigaction(sig, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);   // the parent's log-rotation signal: `kill -USR1` to the group is harmless
    signal(SIGCHLD, SIG_DFL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);  // the parent blocks these for sigtimedwait
}

class Child {
public:
    static void on_wakeup(struct ev_loop* loop, ev_async*, int) { ev_break(loop, EVBREAK_ALL); }

    // `inherited` and `auth` are the supervisor's as forked: read in place (a copy would dirty heap
    // pages in every child) until a reload gives the child its own.
    Child(const Config& inherited, const AuthState& auth, shm::StatusTable& table, int slot,
          const std::vector<int>& listen_fds)
        : config_(&inherited), auth_(&auth), table_(table), slot_(slot), pool_(config_->max_pool),
          classifications_(size_t(config_->classification_cache_size)), catalog_(&table) {
        // EPOLLEXCLUSIVE wakes one idle child per arriving client instead of all of them; libev
        // cannot ask for it, so the idle wait has its own epoll set.
        epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
        for (int fd : listen_fds) {
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLEXCLUSIVE;
            ev.data.fd = fd;
            epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        }
    }

    void run() {
        while (!g_smart_stop && !g_fast_stop && !worn_out_ && !g_parent_gone) {
            if (g_reload) reload();
            wait_for_client();
            // a reload signalled while a client was arriving applies to that client already
            if (g_reload) reload();
            if (accepted_fd_ >= 0) serve(std::exchange(accepted_fd_, -1), accepted_peer_);
        }
        pool_.clear();
    }

private:
    // Once a second while idle: expire cached connections, retire a worn-out child.
    void tick() {
        int64_t now = io::now_ms();
        pool_.expire(now, config_->connection_life_time);
        size_t dropped = pool_.drop_using([this](int node) {
            return node < table_.num_nodes() && table_.node(node).status.load() == uint8_t(shm::NodeStatus::Down);
        });
        if (dropped) PROXY_LOG(Debug1, "dropped %zu cached connection set(s) using a detached node", dropped);
        // child_life_time only retires children that served someone, as pgpool does.
        int life = config_->child_life_time;
        if (life > 0 && served_ > 0 && now - idle_since_ms_ >= int64_t(life) * 1000) {
            PROXY_LOG(Debug1, "child_life_time of %d s reached: exiting", life);
            worn_out_ = true;
        }
    }

    // Nothing to expire or retire: a child that has not served yet sleeps until a client or a signal
    // comes (1000 idle children waking once a second each were 1000 wake-ups a second).
    bool needs_tick() const { return pool_.size() > 0 || (config_->child_life_time > 0 && served_ > 0); }

    // What only a session needs is made at the first one: each page a child touches before it is
    // a page fault (copy-on-write, or code not yet mapped in the child), ~50 us on this machine
    // class, and num_init_children = 1000 start at once. The routing policy from the configuration,
    // the event loop of the session, the salt of password digests, the load-balance generator
    // (seeded once per child: std::random_device per session was ~9% of a connection's CPU).
    void prepare_first_session() {
        if (!policy_ready_) apply_policy();
        if (!g_loop) {
            struct ev_loop* loop = ev_default_loop(EVBACKEND_EPOLL);
            ev_async_init(&g_wakeup, Child::on_wakeup);
            ev_async_start(loop, &g_wakeup);
            g_loop = loop;  // the signal handler wakes it from now on
        }
        if (!rng_) {
            unsigned char random[24] = {};
            secure_random(random, sizeof random);
            digest_salt_.assign(reinterpret_cast<const char*>(random), 16);
            uint64_t seed;
            memcpy(&seed, random + 16, sizeof seed);
            rng_.emplace(seed);
        }
    }

    // The handled signals are blocked except inside epoll_pwait, so one that lands between the flag
    // check and the wait interrupts the wait (EINTR) instead of waiting for the next tick.
    void wait_for_client() {
        sigset_t handled, open;
        sigemptyset(&handled);
        for (int sig : kHandledSignals) sigaddset(&handled, sig);
        sigprocmask(SIG_BLOCK, &handled, &open);
        epoll_event events[8];
        bool ticking = needs_tick();  // only a session makes a tick needed
        int64_t next_tick = ticking ? io::now_ms() + 1000 : 0;
        while (accepted_fd_ < 0 && !g_smart_stop && !g_fast_stop && !g_reload && !worn_out_ && !g_parent_gone) {
            int n = epoll_pwait(epoll_fd_, events, 8, ticking ? 1000 : -1, &open);
            for (int i = 0; i < n && accepted_fd_ < 0; ++i)
                accepted_fd_ = accept_client(events[i].data.fd);  // -1: another child won
            if (accepted_fd_ < 0 && ticking && io::now_ms() >= next_tick) {
                tick();
                ticking = needs_tick();
                next_tick = io::now_ms() + 1000;
            }
        }
        sigprocmask(SIG_SETMASK, &open, nullptr);
    }

    // The parent validated the routing settings; a failure here keeps the previous policy.
    void apply_policy() {
        policy_ready_ = true;
        RoutingPolicy fresh;
        std::string error;
        if (!routing_policy_for(*config_, &fresh, &error)) {
            PROXY_LOG(Warning, "routing settings not applied: %s", error.c_str());
            return;
        }
        fresh.oracle = &catalog_;
        catalog_.set_delay_thresholds(config_->delay_threshold, config_->delay_threshold_by_time);
        policy_ = std::move(fresh);
    }

    // The peer's address comes with the accept, and the socket non-blocking: no more calls for them.
    int accept_client(int listen_fd) {
        socklen_t len = sizeof accepted_peer_;
        return accept4(listen_fd, reinterpret_cast<sockaddr*>(&accepted_peer_), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    }

    void serve(int fd, const sockaddr_storage& peer) {
        prepare_first_session();
        shm::Header& header = table_.header();
        int active = header.active_clients.fetch_add(1) + 1;
        bool too_many = config_->reserved_connections > 0 &&
                        active > config_->num_init_children - config_->reserved_connections;
        SessionContext ctx{*config_,  table_,  slot_,          pool_,
                           g_loop,   &g_fast_stop, digest_salt_, *rng_, too_many,
                           header.active_clients, classifications_, catalog_,
                           policy_,  auth_->files,  auth_->tls_server.get(), auth_->tls_backend.get(), &g_parent_gone};
        serve_client(ctx, fd, peer);
        ++served_;
        table_.child(slot_).sessions_served.fetch_add(1, std::memory_order_relaxed);
        table_.header().sessions_total.fetch_add(1, std::memory_order_relaxed);
        idle_since_ms_ = io::now_ms();
        if (config_->child_max_connections > 0 && served_ >= config_->child_max_connections) {
            PROXY_LOG(Debug1, "child_max_connections of %d reached: exiting", config_->child_max_connections);
            worn_out_ = true;
        }
    }

    // Applies a reloaded file to the sessions that start from now on; the parent already
    // validated it, and a file that fails here keeps the running configuration.
    void reload() {
        g_reload = 0;
        LoadResult result = load_config(config_->config_file);
        if (!result.config) return;
        Config fresh = std::move(*result.config);
        keep_start_only_values(*config_, fresh);
        reloaded_ = std::make_unique<Config>(std::move(fresh));
        config_ = reloaded_.get();
        policy_ready_ = false;  // made from the new file at the next session
        own_auth_ = std::make_unique<AuthState>(load_auth_state(*config_, auth_));
        auth_ = own_auth_.get();
        log_configure(log_options_for(*config_, false));
    }

    const Config* config_;
    std::unique_ptr<Config> reloaded_;  // the child's own configuration after its first reload
    const AuthState* auth_;
    std::unique_ptr<AuthState> own_auth_;  // after a reload
    shm::StatusTable& table_;
    int slot_;
    BackendPool pool_;
    parser::ClassificationCache classifications_;
    CatalogCache catalog_;
    RoutingPolicy policy_;
    bool policy_ready_ = false;
    int epoll_fd_ = -1;
    std::string digest_salt_;
    std::optional<Mt19937Random> rng_;
    int accepted_fd_ = -1;
    sockaddr_storage accepted_peer_{};
    int served_ = 0;
    int64_t idle_since_ms_ = 0;
    bool worn_out_ = false;
};

}  // namespace

void run_child(const Config& config, const AuthState& auth, shm::StatusTable& table, int slot,
               const std::vector<int>& listen_fds, int start_gate) {
    if (start_gate >= 0) {
        char byte;
        while (read(start_gate, &byte, 1) < 0 && errno == EINTR) {}
        close(start_gate);
    }
    // First of all: learn of the parent's death (kill -9 included). A parent already gone before
    // the request took effect is seen by getppid().
    prctl(PR_SET_PDEATHSIG, kPdeathSignal);
    pid_t parent = pid_t(table.header().parent_pid.load());
    if (parent > 0 ? getppid() != parent : getppid() == 1) _exit(0);
    int count = 0;
    for (int fd : listen_fds)
        if (count < kMaxListenFds) g_listen_fds[count++] = fd;
    g_listen_count = count;
    log_set_process_name("child");
    table.reset_child(slot, getpid());
    install_signals();
    {
        Child child(config, auth, table, slot, listen_fds);
        child.run();
    }
    if (g_parent_gone) PROXY_LOG(Log, "the splitpool parent process is gone: child exiting");
    _exit(0);
}

}  // namespace splitpool::daemon
