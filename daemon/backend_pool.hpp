// A child's cache of logged-in backend connection sets, one set per (user, database, startup
// parameters), kept between clients so the next matching client skips connecting and logging in.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/backend.hpp"
#include "daemon/proto/startup.hpp"

namespace splitpool::daemon {

// The connections one session uses, by node id; nodes are connected lazily, so most are empty.
struct BackendSet {
    std::string key;                    // StartupMessage::pool_key()
    proto::StartupMessage startup;
    std::vector<std::unique_ptr<BackendConn>> nodes;
    ParamList params;                   // the primary's ParameterStatus, replayed to a reusing client
    bool needs_password = false;        // some node asked for a password: a reusing client must give it
    int32_t auth_code = 0;              // what the primary asked for (3, 5, 10): the reusing client's method
    std::string password_digest;        // salted digest of that password, never the password itself
    int64_t last_used_ms = 0;

    BackendConn* conn(int node) const { return node < int(nodes.size()) ? nodes[node].get() : nullptr; }
    int open_count() const;
    // False when any pooled connection was closed or spoke up while idle (e.g. the server was
    // restarted or pg_terminate_backend): such a set is dropped rather than handed to a client.
    bool usable() const;
};

class BackendPool {
public:
    explicit BackendPool(int max_sets) : max_sets_(max_sets) {}
    // Removes and returns the cached set for `key`, or null.
    std::unique_ptr<BackendSet> take(const std::string& key);
    // Caches a set after its session; evicts the least recently used set when full.
    void put(std::unique_ptr<BackendSet> set);
    // Drops sets idle longer than `life_time_s` (connection_life_time; 0 = never).
    void expire(int64_t now_ms, int life_time_s);
    // Drops every set holding a connection to a node `gone(node)` says was detached, as pgpool's
    // failover restarts the children that hold such connections; returns how many were dropped.
    size_t drop_using(const std::function<bool(int node)>& gone);
    void clear() { sets_.clear(); }
    size_t size() const { return sets_.size(); }
    void set_max(int max_sets) { max_sets_ = max_sets; }

private:
    int max_sets_;
    std::vector<std::unique_ptr<BackendSet>> sets_;
};

// Salted digest used to check a reusing client's password without keeping the password.
std::string password_digest(const std::string& password, const std::string& salt_source);

}  // namespace splitpool::daemon
