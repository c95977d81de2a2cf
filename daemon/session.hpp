// One client session from accept to close: startup packet, authentication, taking or building a
// backend connection set, the relay, and returning the set to the pool.
#pragma once

#include <ev.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>

#include "daemon/backend_pool.hpp"
#include "daemon/catalog_cache.hpp"
#include "daemon/client_auth.hpp"
#include "daemon/config.hpp"
#include "daemon/proto/startup.hpp"
#include "daemon/router.hpp"
#include "parser/classify_cache.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// What a child lends each session.
struct SessionContext {
    const Config& config;
    shm::StatusTable& table;
    int child_slot;
    BackendPool& pool;
    struct ev_loop* loop;
    const volatile int* fast_shutdown;
    const std::string& digest_salt;  // per child, for password digests of pooled sets
    RandomSource& rng;               // per child, seeded at its first session
    bool too_many_clients;        // reserved_connections: refuse this client after its startup packet
    std::atomic<int32_t>& active_clients;  // released as soon as the client is gone, before the reset
    // Per child, kept across sessions:
    parser::ClassificationCache& classifications;
    CatalogCache& catalog;
    const RoutingPolicy& policy;
    const AuthFiles& auth_files;
    SSL_CTX* tls_server;                   // null: SSLRequest is answered 'N'
    SSL_CTX* tls_backend;                  // null: backends are not asked for TLS
    const volatile int* parent_gone = nullptr;  // set when the parent died: end at the transaction's end
};

// Serves the client on `client_fd` to the end and closes it. Never throws.
void serve_client(SessionContext& ctx, int client_fd, const sockaddr_storage& peer);  // fd non-blocking

}  // namespace splitpool::daemon
