// The declarative key table: one row per pgpool parameter, driving parsing, validation, the
// pool-status listing and the sample file. Adding a key is adding a row (and a Config field).
#include "daemon/config_table.hpp"

namespace splitpool::daemon {

namespace {
constexpr ReloadPolicy S = ReloadPolicy::Start;
constexpr ReloadPolicy R = ReloadPolicy::Reload;
}  // namespace

const std::vector<KeyDef>& key_table() {
    using C = Config;
    using V = ValueKind;
    static const std::vector<KeyDef> table = {
        // name, type, default, reload, description | kind, field, section, min, max, choices
        {{"listen_addresses", "list", "localhost", S, "host names or addresses to listen on ('*' for all)"},
         V::List, &C::listen_addresses, "Connections"},
        {{"port", "int", "9999", S, "port number to listen on"}, V::Int, &C::port, "Connections", 1, 65535},
        {{"unix_socket_directories", "list", "/tmp", S, "directories for the Unix socket .s.PGSQL.<port>"},
         V::List, &C::unix_socket_directories, "Connections"},
        {{"listen_backlog_multiplier", "int", "2", S, "listen() backlog = this x num_init_children"},
         V::Int, &C::listen_backlog_multiplier, "Connections", 1, 1000},
        {{"reserved_connections", "int", "0", S, "reject with 53300 when fewer than this many children are free"},
         V::Int, &C::reserved_connections, "Connections", 0, 10000},
        {{"pcp_listen_addresses", "list", "localhost", S, "host names or addresses for PCP"},
         V::List, &C::pcp_listen_addresses, "PCP"},
        {{"pcp_port", "int", "9898", S, "port number for PCP"}, V::Int, &C::pcp_port, "PCP", 1, 65535},
        {{"pcp_socket_dir", "string", "/tmp", S, "directory for the PCP Unix socket"},
         V::String, &C::pcp_socket_dir, "PCP"},
        {{"pid_file_name", "path", "/var/run/pgpool/pgpool.pid", S, "pid file of the daemon"},
         V::Path, &C::pid_file_name, "Files"},
        {{"logdir", "path", "/tmp", S, "folder for the node status file"}, V::Path, &C::logdir, "Files"},
        {{"num_init_children", "int", "32", S, "number of preforked children = maximum concurrent clients"},
         V::Int, &C::num_init_children, "Pools", 1, 10000},
        {{"max_pool", "int", "4", S, "cached backend connection sets per child"}, V::Int, &C::max_pool, "Pools", 1, 1000},
        {{"child_life_time", "time", "5min", S, "an idle child that served a client exits after this many seconds"},
         V::Seconds, &C::child_life_time, "Pools"},
        {{"child_max_connections", "int", "0", S, "a child exits after this many clients (0 = never)"},
         V::Int, &C::child_max_connections, "Pools"},
        {{"client_idle_limit", "time", "0", R, "disconnect a client idle this many seconds (0 = never)"},
         V::Seconds, &C::client_idle_limit, "Pools"},
        {{"connection_life_time", "time", "0", S, "cached backend connections expire after this many seconds"},
         V::Seconds, &C::connection_life_time, "Pools"},
        {{"connect_timeout", "time", "10000", R, "backend connect() timeout in milliseconds"},
         V::Millis, &C::connect_timeout, "Pools"},
        {{"authentication_timeout", "time", "1min", S, "seconds a client has to finish authenticating (0 = no limit)"},
         V::Seconds, &C::authentication_timeout, "Pools"},
        {{"reset_query_list", "string", "ABORT; DISCARD ALL", R, "queries run when a client leaves, ';'-separated"},
         V::QueryList, &C::reset_query_list, "Pools"},
        {{"backend_clustering_mode", "enum", "streaming_replication", S, "clustering mode"},
         V::Enum, &C::backend_clustering_mode, "Clustering", 0, 0, {"streaming_replication"}},
        {{"load_balance_mode", "bool", "on", S, "spread reads over the nodes by weight"},
         V::Bool, &C::load_balance_mode, "Load balancing"},
        {{"statement_level_load_balance", "bool", "off", R, "choose the load-balance node per statement, not per session"},
         V::Bool, &C::statement_level_load_balance, "Load balancing"},
        {{"disable_load_balance_on_write", "enum", "transaction", R,
          "when reads stop being balanced after a write: off, transaction, trans_transaction, always, dml_adaptive"},
         V::Enum, &C::disable_load_balance_on_write, "Load balancing", 0, 0,
         {"off", "transaction", "trans_transaction", "always", "dml_adaptive"}},
        {{"write_function_list", "list", "", R, "regexes of functions that write (the others do not)"},
         V::List, &C::write_function_list, "Load balancing"},
        {{"read_only_function_list", "list", "", R, "regexes of functions that do not write (the others do)"},
         V::List, &C::read_only_function_list, "Load balancing"},
        {{"primary_routing_query_pattern_list", "string", "", R, "';'-separated regexes of statements sent to the primary"},
         V::QueryList, &C::primary_routing_query_pattern_list, "Load balancing"},
        {{"database_redirect_preference_list", "string", "", R, "database:node pairs that prefer a node"},
         V::String, &C::database_redirect_preference_list, "Load balancing"},
        {{"app_name_redirect_preference_list", "string", "", R, "application_name:node pairs that prefer a node"},
         V::String, &C::app_name_redirect_preference_list, "Load balancing"},
        {{"user_redirect_preference_list", "string", "", R, "user:node pairs that prefer a node"},
         V::String, &C::user_redirect_preference_list, "Load balancing"},
        {{"allow_sql_comments", "bool", "off", R, "ignore leading comments when deciding whether to balance"},
         V::Bool, &C::allow_sql_comments, "Load balancing"},
        {{"check_temp_table", "enum", "catalog", R, "how reads of temporary tables are recognised: catalog, trace, none"},
         V::Enum, &C::check_temp_table, "Load balancing", 0, 0, {"catalog", "trace", "none", "on", "off"}},
        {{"check_unlogged_table", "bool", "on", R, "send reads of unlogged tables to the primary"},
         V::Bool, &C::check_unlogged_table, "Load balancing"},
        {{"classification_cache_size", "int", "1024", S, "statements whose routing class is cached per child"},
         V::Int, &C::classification_cache_size, "Load balancing", 1, 1000000},
        {{"enable_pool_hba", "bool", "off", R, "authenticate clients with pool_hba.conf"},
         V::Bool, &C::enable_pool_hba, "Authentication"},
        {{"allow_clear_text_frontend_auth", "bool", "off", R,
          "ask the client for a clear-text password and use it to log in to PostgreSQL"},
         V::Bool, &C::allow_clear_text_frontend_auth, "Authentication"},
        {{"pool_passwd", "path", "pool_passwd", R, "password file ('' for none)"}, V::Path, &C::pool_passwd,
         "Authentication"},
        {{"sr_check_period", "time", "10", R, "streaming replication check interval in seconds (0 = off)"},
         V::Seconds, &C::sr_check_period, "Health check and failover"},
        {{"health_check_period", "time", "0", R, "health check interval in seconds (0 = off)"},
         V::Seconds, &C::health_check_period, "Health check and failover"},
        {{"failover_on_backend_error", "bool", "on", R, "detach a node on a read/write error"},
         V::Bool, &C::failover_on_backend_error, "Health check and failover"},
        {{"failover_on_backend_shutdown", "bool", "off", R, "detach a node that reports an administrative shutdown"},
         V::Bool, &C::failover_on_backend_shutdown, "Health check and failover"},
        {{"log_destination", "list", "stderr", R, "stderr, syslog, or both comma-separated"},
         V::List, &C::log_destination, "Logging", 0, 0, {"stderr", "syslog"}},
        {{"logging_collector", "bool", "off", S, "write stderr to files in log_directory"},
         V::Bool, &C::logging_collector, "Logging"},
        {{"log_directory", "path", "/tmp/pgpool_logs", S, "folder of the log files"}, V::Path, &C::log_directory,
         "Logging"},
        {{"log_filename", "string", "pgpool-%Y-%m-%d_%H%M%S.log", S, "log file name (strftime pattern)"},
         V::String, &C::log_filename, "Logging"},
        {{"syslog_facility", "string", "LOCAL0", R, "syslog facility"}, V::String, &C::syslog_facility, "Logging"},
        {{"syslog_ident", "string", "pgpool", R, "syslog program name"}, V::String, &C::syslog_ident, "Logging"},
        {{"log_line_prefix", "string", "%m: %a pid %p: ", R, "prefix of each log line (%m time, %a process, %p pid)"},
         V::String, &C::log_line_prefix, "Logging"},
        {{"log_min_messages", "enum", "warning", R, "lowest level logged"}, V::Level, &C::log_min_messages, "Logging"},
        {{"log_connections", "bool", "off", R, "log each client connection"}, V::Bool, &C::log_connections, "Logging"},
        {{"log_disconnections", "bool", "off", R, "log each client disconnection"}, V::Bool, &C::log_disconnections,
         "Logging"},
        {{"log_statement", "bool", "off", R, "log every statement"}, V::Bool, &C::log_statement, "Logging"},
        {{"log_per_node_statement", "bool", "off", R, "log every statement with the node it is sent to"},
         V::Bool, &C::log_per_node_statement, "Logging"},
        {{"notice_per_node_statement", "bool", "off", R, "send the client a NOTICE naming the node of each statement"},
         V::Bool, &C::notice_per_node_statement, "Logging"},
    };
    return table;
}

const KeyDef* find_key(std::string_view name) {
    for (const KeyDef& k : key_table())
        if (k.info.name == name) return &k;
    return nullptr;
}

const std::vector<KeyInfo>& config_keys() {
    static const std::vector<KeyInfo> infos = [] {
        std::vector<KeyInfo> v;
        for (const KeyDef& k : key_table()) v.push_back(k.info);
        return v;
    }();
    return infos;
}

}  // namespace splitpool::daemon

namespace splitpool::daemon {

namespace {
// A default as TOML: booleans and plain numbers bare, everything else quoted.
std::string toml_default(const KeyDef& k) {
    std::string_view d = k.info.default_text;
    if (k.kind == ValueKind::Bool) return d == "on" ? "true" : "false";
    bool numeric = !d.empty() && d.find_first_not_of("0123456789.") == std::string_view::npos;
    if (numeric && k.kind != ValueKind::String && k.kind != ValueKind::List && k.kind != ValueKind::Path)
        return std::string(d);
    return "\"" + std::string(d) + "\"";
}
}  // namespace

std::string sample_config_text() {
    std::string out =
        "# splitpool configuration: every supported pgpool-II parameter, with its default.\n"
        "# Generated from the key table in daemon/config_table.cpp (`splitpool --sample-config`).\n"
        "# Relative paths are relative to this file's folder. Lists take pgpool's comma-separated\n"
        "# string or a TOML array; times take a number in the base unit or a string with units.\n";
    std::string_view section;
    for (const KeyDef& k : key_table()) {
        if (k.section != section) {
            section = k.section;
            out += "\n#------------------------------------------------------------------------------\n# ";
            out += section;
            out += "\n#------------------------------------------------------------------------------\n";
        }
        out += "\n# " + std::string(k.info.description) + "\n";
        if (k.info.reload == ReloadPolicy::Start) out += "# (change requires restart)\n";
        out += std::string(k.info.name) + " = " + toml_default(k) + "\n";
    }
    out += "\n#------------------------------------------------------------------------------\n"
           "# Backends: one [[backend]] table per node (reloadable; host/port changes need a restart)\n"
           "#------------------------------------------------------------------------------\n";
    static const char* kNodes[][3] = {{"5432", "1", "[\"ALWAYS_PRIMARY\", \"DISALLOW_TO_FAILOVER\"]"},
                                      {"5433", "2", "[\"DISALLOW_TO_FAILOVER\"]"},
                                      {"5434", "2", "[\"DISALLOW_TO_FAILOVER\"]"}};
    for (int i = 0; i < 3; ++i) {
        out += "\n[[backend]]\nhostname = \"127.0.0.1\"\nport = " + std::string(kNodes[i][0]) +
               "\nweight = " + kNodes[i][1] + "\nflag = " + kNodes[i][2] + "\napplication_name = \"node" +
               std::to_string(i) + "\"\n";
    }
    return out;
}

}  // namespace splitpool::daemon
