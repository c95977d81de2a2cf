// The running configuration: a plain struct filled from the TOML file by the key table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/log.hpp"

namespace splitpool::daemon {

// backend flag bits, pgpool's names (`flag = ["ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"]`)
enum NodeFlag : unsigned {
    kFlagAllowToFailover = 1u << 0,   // pgpool's default when no flag is given
    kFlagDisallowToFailover = 1u << 1,
    kFlagAlwaysPrimary = 1u << 2,
};

// One node's own health-check settings (pgpool's health_check_period0, health_check_user0, ...,
// here keys of its [[backend]] table): an unset one takes the top-level key.
struct HealthCheckOverride {
    std::optional<int> period, timeout, retry_delay;   // seconds
    std::optional<int> max_retries;
    std::optional<int> connect_timeout;                // milliseconds
    std::optional<std::string> user, password, database;
};

struct BackendConfig {
    std::string hostname;            // host name, IP, or a Unix socket directory starting with '/'
    int port = 5432;
    double weight = 1.0;
    unsigned flags = kFlagAllowToFailover;
    std::string application_name;
    std::string data_directory;
    HealthCheckOverride health_check;
};

// What the health check of one node uses: its overrides over the top-level keys.
struct HealthCheckSettings {
    int period = 0, timeout = 20, retry_delay = 1, max_retries = 0, connect_timeout = 10000;
    std::string user, password, database;
};

// Times are stored in the pgpool base unit named in the field's comment.
struct Config {
    std::string config_file;   // absolute path of the file this came from
    std::string config_dir;    // its folder: relative paths in the file are resolved against it
    // From the command line, not the file: -a (default <config_dir>/pool_hba.conf), -k (default
    // $PGPOOLKEYFILE, then ~/.pgpoolkey: empty here).
    std::string hba_file;
    std::string key_file;

    // connections
    std::vector<std::string> listen_addresses{"localhost"};
    int port = 9999;
    std::vector<std::string> unix_socket_directories{"/tmp"};
    std::vector<std::string> pcp_listen_addresses{"localhost"};
    int pcp_port = 9898;
    std::string pcp_socket_dir = "/tmp";
    std::string pid_file_name = "/var/run/pgpool/pgpool.pid";  // resolved to an absolute path
    std::string logdir = "/tmp";
    int listen_backlog_multiplier = 2;
    int reserved_connections = 0;

    // pools
    int num_init_children = 32;
    int max_pool = 4;
    int child_life_time = 300;         // seconds
    int child_max_connections = 0;
    int client_idle_limit = 0;         // seconds
    int connection_life_time = 0;      // seconds
    int connect_timeout = 10000;       // milliseconds
    int authentication_timeout = 60;   // seconds
    std::vector<std::string> reset_query_list{"ABORT", "DISCARD ALL"};  // split on ';'

    // clustering and balancing
    std::string backend_clustering_mode = "streaming_replication";
    bool load_balance_mode = true;
    std::vector<BackendConfig> backends;

    // load balancing and routing
    bool statement_level_load_balance = false;
    std::string load_balance_placement = "even";  // even | random (pgpool's)
    std::string disable_load_balance_on_write = "transaction";  // off | transaction | trans_transaction | always | dml_adaptive
    int read_your_writes_window = 0;  // milliseconds; beyond pgpool: cross-session read-your-writes (0 = off)
    std::vector<std::string> write_function_list;       // regexes
    std::vector<std::string> read_only_function_list;   // regexes
    std::vector<std::string> primary_routing_query_pattern_list;  // regexes, ';'-separated in pgpool
    std::string database_redirect_preference_list;
    std::string app_name_redirect_preference_list;
    std::string user_redirect_preference_list;
    bool allow_sql_comments = false;
    std::string check_temp_table = "catalog";            // catalog | trace | none
    bool check_unlogged_table = true;
    bool notice_per_node_statement = false;
    int classification_cache_size = 1024;                // beyond pgpool: statements whose class is cached

    // authentication (the foundation: trust and clear-text pass-through)
    bool enable_pool_hba = false;
    bool allow_clear_text_frontend_auth = false;
    std::string pool_passwd = "pool_passwd";  // resolved to an absolute path; "" = none

    // TLS (paths resolved against the config folder)
    bool ssl = false;
    std::string ssl_cert, ssl_key, ssl_ca_cert, ssl_ca_cert_dir, ssl_crl_file;
    std::string ssl_ciphers = "HIGH:MEDIUM:+3DES:!aNULL";
    bool ssl_prefer_server_ciphers = false;
    std::string ssl_ecdh_curve = "prime256v1";
    std::string ssl_dh_params_file;
    std::string ssl_passphrase_command;
    std::string ssl_min_protocol_version = "TLSv1.2";
    std::string ssl_max_protocol_version;
    std::string backend_sslmode = "prefer";  // beyond pgpool: disable | prefer | require | verify-ca | verify-full

    // health and failover: accepted for compatibility with pgpool files
    int sr_check_period = 10;          // seconds
    int health_check_period = 0;       // seconds
    int health_check_timeout = 20;     // seconds
    std::string health_check_user, health_check_password, health_check_database;
    int health_check_max_retries = 0;
    int health_check_retry_delay = 1;  // seconds
    std::string sr_check_user, sr_check_password, sr_check_database = "postgres";
    int delay_threshold = 0;           // bytes
    int delay_threshold_by_time = 0;   // milliseconds
    bool prefer_lower_delay_standby = false;
    std::string log_standby_delay = "if_over_threshold";
    std::string failover_command, failback_command, follow_primary_command;
    int search_primary_node_timeout = 300;  // seconds
    bool detach_false_primary = false;
    bool auto_failback = false;
    int auto_failback_interval = 60;   // seconds
    bool failover_on_backend_error = true;
    bool failover_on_backend_shutdown = false;

    // logging
    std::vector<std::string> log_destination{"stderr"};  // "stderr", "syslog"
    bool logging_collector = false;
    std::string log_directory = "/tmp/pgpool_logs";
    std::string log_filename = "pgpool-%Y-%m-%d_%H%M%S.log";
    int log_rotation_age = 1440;        // minutes (pgpool's unit); 0 = off
    int log_rotation_size = 10240;      // kilobytes (pgpool's unit); 0 = off
    bool log_truncate_on_rotation = false;
    ErrorVerbosity log_error_verbosity = ErrorVerbosity::Default;
    LogLevel client_min_messages = LogLevel::Notice;
    std::string syslog_facility = "LOCAL0";
    std::string syslog_ident = "pgpool";
    std::string log_line_prefix = "%m: %a pid %p: ";
    LogLevel log_min_messages = LogLevel::Warning;
    bool log_connections = false;
    bool log_disconnections = false;
    bool log_statement = false;
    bool log_per_node_statement = false;

    // metrics (beyond pgpool): the Prometheus endpoint; no addresses = off
    std::vector<std::string> metrics_listen_addresses;
    int metrics_port = 9719;
};

// Reload policy of a key, as pgpool's "start" / "reload" contexts.
enum class ReloadPolicy { Start, Reload };

// One row of the declarative key table (daemon/config_keys.cpp).
struct KeyInfo {
    std::string_view name;
    std::string_view type;           // "bool", "int", "float", "string", "list", "time", "enum"...
    std::string_view default_text;   // as written in the sample file
    ReloadPolicy reload;
    std::string_view description;    // one line, shown by pcp_pool_status / SHOW POOL_STATUS
    std::string_view section = {};   // the sample file's section ("Connections"), set by config_keys()
    std::string_view toml_default = {};  // the default as written in TOML ("\"5min\"", true), set by config_keys()
};

struct LoadResult {
    std::optional<Config> config;        // set when the file is valid
    std::vector<std::string> errors;     // "file:line: key 'x': problem" each; empty when valid
};

// Reads and validates a config file. Never throws.
LoadResult load_config(const std::string& path);

// Same, from text; `path` names the file in messages and anchors relative paths.
LoadResult parse_config(std::string_view toml_text, const std::string& path);

// Every supported key, in sample-file order.
const std::vector<KeyInfo>& config_keys();

// The current value of a key as pgpool shows it ("on"/"off", "5min"→"300", lists comma-joined).
std::string config_value_string(const Config& config, std::string_view key);

// Copies the running values of start-only keys (and the command-line paths) into a reloaded config.
void keep_start_only_values(const Config& running, Config& fresh);

// The fully commented sample file (etc/splitpool.toml), generated from the key table.
std::string sample_config_text();

// Names of start-only keys whose values differ between two configs (logged on reload).
std::vector<std::string> restart_only_changes(const Config& old_config, const Config& new_config);

// The backends as pgpool names them per node: backend_hostname0, backend_port0, backend_weight0,
// backend_flag0, backend_application_name0, backend_data_directory0, ... (SHOW POOL_STATUS order).
// config_value_string() also answers these names.
std::vector<std::pair<std::string, std::string>> config_backend_values(const Config& config);

// The health-check settings of node `node` (its [[backend]] overrides, else the top-level keys).
HealthCheckSettings health_check_settings(const Config& config, int node);

// Flags as pgpool writes backend_flag: "ALLOW_TO_FAILOVER", "ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER".
std::string backend_flag_string(unsigned flags);

// ---- Between the parser (daemon/config.cpp) and the key table (daemon/config_keys.cpp) ----

// One TOML value as the key table sees it, so the table does not depend on the TOML library.
struct RawValue {
    enum class Type { Boolean, Integer, Float, String, Array, Table, Other };
    Type type = Type::Other;
    bool boolean = false;
    int64_t integer = 0;
    double number = 0;
    std::string text;
    std::vector<RawValue> items;   // of an array
};

// Stores `value` under `key`; returns the problem ("must be between 1 and 65535 (got 0)"), "" when stored.
std::string config_store(Config& config, std::string_view key, const RawValue& value);
std::string backend_store(BackendConfig& backend, std::string_view key, const RawValue& value);

// Keys allowed inside a [[backend]] table, in sample-file order.
const std::vector<std::string_view>& backend_key_names();
// The same with their reload policy and description (type and defaults are not filled in).
const std::vector<KeyInfo>& backend_key_infos();

// Makes the relative file paths (pid_file_name, logdir, pool_passwd, log_directory) absolute under
// config.config_dir; "" stays "" (pool_passwd = "" means none).
void config_resolve_paths(Config& config);

}  // namespace splitpool::daemon
