// Loads what children authenticate and speak TLS with (see auth_state.hpp).
#include "daemon/auth_state.hpp"

#include "daemon/log.hpp"

namespace splitpool::daemon {
namespace {

io::SslCtxPtr share(const io::SslCtxPtr& ctx) {
    if (!ctx || SSL_CTX_up_ref(ctx.get()) != 1) return nullptr;
    return io::SslCtxPtr(ctx.get());
}

}  // namespace

AuthState load_auth_state(const Config& config, const AuthState* previous) {
    AuthState state;
    std::vector<std::string> problems;
    state.files = load_auth_files(config, config.hba_file, config.key_file, problems);
    for (const auto& p : problems) PROXY_LOG(Warning, "%s", p.c_str());
    if (!config.ssl) return state;
    io::TlsServerSettings server{config.ssl_cert,         config.ssl_key,          config.ssl_ca_cert,
                                 config.ssl_ca_cert_dir,  config.ssl_crl_file,     config.ssl_ciphers,
                                 config.ssl_prefer_server_ciphers, config.ssl_ecdh_curve,
                                 config.ssl_dh_params_file, config.ssl_passphrase_command,
                                 config.ssl_min_protocol_version, config.ssl_max_protocol_version};
    io::TlsContextResult made = io::make_server_context(server);
    if (made) state.tls_server = std::move(made.ctx);
    else {
        PROXY_LOG(Warning, "TLS for clients not (re)configured: %s", made.error.c_str());
        if (previous) state.tls_server = share(previous->tls_server);
    }
    io::TlsClientSettings client;
    client.mode = io::parse_ssl_mode(config.backend_sslmode).value_or(io::SslMode::Prefer);
    client.ca_cert = config.ssl_ca_cert;
    client.ca_cert_dir = config.ssl_ca_cert_dir;
    io::TlsContextResult backend = io::make_client_context(client);
    if (backend) state.tls_backend = std::move(backend.ctx);
    else {
        PROXY_LOG(Warning, "TLS toward backends not (re)configured: %s", backend.error.c_str());
        if (previous) state.tls_backend = share(previous->tls_backend);
    }
    return state;
}

}  // namespace splitpool::daemon
