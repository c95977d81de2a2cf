// What a child needs to authenticate clients and speak TLS: pool_hba.conf, pool_passwd, the key and
// the TLS contexts. The parent loads it before forking, so the children share it copy-on-write
// (TLS contexts built in each child cost ~370 kB of every idle child); a child reloads its own.
#pragma once

#include "daemon/client_auth.hpp"
#include "daemon/config.hpp"
#include "daemon/io/tls.hpp"

namespace splitpool::daemon {

struct AuthState {
    AuthFiles files;
    io::SslCtxPtr tls_server;    // null without ssl
    io::SslCtxPtr tls_backend;
};

// Loads everything `config` asks for and logs the problems. A TLS context that fails to build keeps
// `previous`'s (shared, reference-counted), so a bad reload never takes TLS away from clients.
AuthState load_auth_state(const Config& config, const AuthState* previous);

}  // namespace splitpool::daemon
