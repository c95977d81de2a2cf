// SQL-level administration answered by splitpool itself: SHOW POOL_* and PGPOOL SHOW/SET/RESET.
#include "daemon/admin_sql.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "daemon/proto/writer.hpp"
#include "pcp/report.hpp"

#ifndef SPLITPOOL_VERSION
#define SPLITPOOL_VERSION "0.1.0"
#endif

namespace splitpool::daemon {
namespace {

using Row = std::vector<std::string>;

constexpr int32_t kTextOid = 25;
// pgpool-II release whose PCP and SHOW formats splitpool reproduces; scripts read the first word.
constexpr std::string_view kCompatVersion = "4.3.0";

constexpr std::string_view kSyntaxError = "42601";
constexpr std::string_view kUndefinedObject = "42704";
constexpr std::string_view kCantChangeRuntimeParam = "55P02";
constexpr std::string_view kInvalidParameterValue = "22023";

// A statement split into words; quoted values keep their quotes off.
struct Words {
    std::vector<std::string> list;   // as written
    std::string lower(size_t i) const {
        std::string w = i < list.size() ? list[i] : "";
        std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        return w;
    }
    size_t size() const { return list.size(); }
};

// Skips whitespace, "--" line comments and "/* */" block comments (not nested, as a prefix test needs).
size_t skip_blank(std::string_view s, size_t i) {
    while (i < s.size()) {
        if (std::isspace(static_cast<unsigned char>(s[i]))) ++i;
        else if (s.compare(i, 2, "--") == 0) {
            size_t nl = s.find('\n', i);
            i = nl == std::string_view::npos ? s.size() : nl + 1;
        } else if (s.compare(i, 2, "/*") == 0) {
            size_t end = s.find("*/", i + 2);
            i = end == std::string_view::npos ? s.size() : end + 2;
        } else break;
    }
    return i;
}

// Words are runs of identifier characters, '=' alone, or a quoted string. False on an unclosed quote.
bool split_words(std::string_view sql, Words& out) {
    size_t i = skip_blank(sql, 0);
    while (i < sql.size()) {
        char c = sql[i];
        if (c == ';') {
            i = skip_blank(sql, i + 1);
            continue;
        }
        if (c == '\'' || c == '"') {
            std::string word;
            size_t j = i + 1;
            for (;; ++j) {
                if (j >= sql.size()) return false;
                if (sql[j] == c) {
                    if (j + 1 < sql.size() && sql[j + 1] == c) {
                        word += c;
                        ++j;
                        continue;
                    }
                    break;
                }
                word += sql[j];
            }
            out.list.push_back(std::move(word));
            i = skip_blank(sql, j + 1);
            continue;
        }
        size_t j = i;
        if (c == '=') ++j;
        else
            while (j < sql.size() && !std::isspace(static_cast<unsigned char>(sql[j])) && sql[j] != '=' &&
                   sql[j] != ';' && sql.compare(j, 2, "--") != 0 && sql.compare(j, 2, "/*") != 0)
                ++j;
        out.list.emplace_back(sql.substr(i, j - i));
        i = skip_blank(sql, j);
    }
    return true;
}

// ---- the result of a statement --------------------------------------------------------------

struct Answer {
    std::string error_code, error_message;   // set: the statement fails
    std::vector<std::string> columns;        // empty: no rows (SET, RESET)
    std::vector<Row> rows;
    std::string tag;                         // CommandComplete
    // PGPOOL SET/RESET: applied on execution only
    enum class Change { None, Set, Reset, ResetAll } change = Change::None;
    std::string key, value;
};

Answer fail(std::string_view code, std::string message) {
    Answer a;
    a.error_code = code;
    a.error_message = std::move(message);
    return a;
}

Answer table_answer(std::vector<std::string> columns, std::vector<Row> rows) {
    Answer a;
    a.columns = std::move(columns);
    a.tag = "SELECT " + std::to_string(rows.size());   // pgpool's send_complete_and_ready
    a.rows = std::move(rows);
    return a;
}

Row concat(Row a, const Row& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// ---- SHOW POOL_* ----------------------------------------------------------------------------

Answer show_nodes(const Config& config, const shm::StatusTable& table, const AdminSession& session) {
    std::vector<Row> rows;
    for (int i = 0; i < table.num_nodes(); ++i) {
        const shm::NodeSlot& n = table.node(i);
        shm::NodeText text = table.node_text(i);
        int64_t delay = n.replication_delay.load();
        rows.push_back({std::to_string(i), text.hostname, std::to_string(text.port),
                        pcp::node_status_name(static_cast<shm::NodeStatus>(n.status.load())),
                        pcp::probe_backend_status(config, table, i),
                        pcp::format_double(pcp::normalized_weight(table, i)), pcp::node_role_name(table, i),
                        pcp::reported_backend_role(config, table, i), std::to_string(n.select_count.load()),
                        session.load_balance_node == i ? "true" : "false", std::to_string(delay > 0 ? delay : 0),
                        pcp::replication_state_name(table, i), pcp::replication_sync_state_name(table, i),
                        pcp::format_timestamp(n.status_changed_at.load())});
    }
    return table_answer({"node_id", "hostname", "port", "status", "pg_status", "lb_weight", "role", "pg_role",
                         "select_cnt", "load_balance_node", "replication_delay", "replication_state",
                         "replication_sync_state", "last_status_change"},
                        std::move(rows));
}

Answer show_processes(const shm::StatusTable& table) {
    std::vector<Row> rows;
    for (int slot : pcp::live_child_slots(table)) {
        // A child's pool: the first node it holds a connection to tells when the pool was made.
        Row f = pcp::pool_slot_fields(table, slot, 0);
        for (int node = 0; node < table.num_nodes(); ++node) {
            Row g = pcp::pool_slot_fields(table, slot, node);
            if (g[15] == "1") {
                f = std::move(g);
                break;
            }
        }
        rows.push_back({f[0], f[1], f[2], f[5], f[6], f[7], f[13], f[16]});
    }
    return table_answer({"pool_pid", "start_time", "client_connection_count", "database", "username",
                         "backend_connection_time", "pool_counter", "status"},
                        std::move(rows));
}

Answer show_pools(const shm::StatusTable& table, const AdminSession& session) {
    std::vector<Row> rows;
    for (int slot : pcp::live_child_slots(table))
        for (int node = 0; node < table.num_nodes(); ++node) {
            // Only this session's load-balance node is known; other children keep theirs private.
            bool own = table.child(slot).pid.load() == int32_t(getpid()) && session.load_balance_node == node;
            rows.push_back(concat(pcp::pool_slot_fields(table, slot, node), {own ? "1" : "0"}));
        }
    return table_answer({"pool_pid", "start_time", "client_connection_count", "pool_id", "backend_id", "database",
                         "username", "backend_connection_time", "client_connection_time",
                         "client_disconnection_time", "client_idle_duration", "majorversion", "minorversion",
                         "pool_counter", "pool_backendpid", "pool_connected", "status", "load_balance_node"},
                        std::move(rows));
}

Answer items_answer(const std::vector<pcp::ConfigItem>& items) {
    std::vector<Row> rows;
    for (const pcp::ConfigItem& item : items) rows.push_back({item.name, item.value, item.description});
    return table_answer({"item", "value", "description"}, std::move(rows));
}

Answer show_health_check_stats(const shm::StatusTable& table) {
    std::vector<Row> rows;
    for (int i = 0; i < table.num_nodes(); ++i) rows.push_back(pcp::health_check_fields(table, i));
    return table_answer({"node_id", "hostname", "port", "status", "role", "last_status_change", "total_count",
                         "success_count", "fail_count", "skip_count", "retry_count", "average_retry_count",
                         "max_retry_count", "max_duration", "min_duration", "average_duration",
                         "last_health_check", "last_successful_health_check", "last_skip_health_check",
                         "last_failed_health_check"},
                        std::move(rows));
}

// Statements by class as the relay counted them; panic and fatal are not told apart from errors.
Answer show_backend_stats(const shm::StatusTable& table) {
    std::vector<Row> rows;
    for (int i = 0; i < table.num_nodes(); ++i) {
        Row h = pcp::health_check_fields(table, i);
        const shm::NodeSlot& n = table.node(i);
        auto count = [&](shm::StatementClass c) { return std::to_string(n.statements[int(c)].load()); };
        rows.push_back({h[0], h[1], h[2], h[3], h[4], std::to_string(n.select_count.load()),
                        count(shm::StatementClass::Insert), count(shm::StatementClass::Update),
                        count(shm::StatementClass::Delete), count(shm::StatementClass::Ddl),
                        count(shm::StatementClass::Other), "0", "0", std::to_string(n.errors.load())});
    }
    return table_answer({"node_id", "hostname", "port", "status", "role", "select_cnt", "insert_cnt", "update_cnt",
                         "delete_cnt", "ddl_cnt", "other_cnt", "panic_cnt", "fatal_cnt", "error_cnt"},
                        std::move(rows));
}

Answer show_pool(const Words& w, const Config& config, const shm::StatusTable& table, const AdminSession& session) {
    if (w.size() != 2) return fail(kSyntaxError, "syntax error at or near \"" + (w.size() > 2 ? w.list[2] : "") + "\"");
    std::string what = w.lower(1);
    if (what == "pool_nodes") return show_nodes(config, table, session);
    if (what == "pool_processes") return show_processes(table);
    if (what == "pool_pools") return show_pools(table, session);
    if (what == "pool_status") return items_answer(pcp::pool_status_items(config, table));
    if (what == "pool_version")
        return table_answer({"pool_version"},
                            {{std::string(kCompatVersion) + " (splitpool " SPLITPOOL_VERSION ")"}});
    if (what == "pool_health_check_stats") return show_health_check_stats(table);
    if (what == "pool_backend_stats") return show_backend_stats(table);
    return fail(kUndefinedObject, "unrecognized configuration parameter \"" + w.list[1] + "\"");
}

// ---- PGPOOL SHOW / SET / RESET --------------------------------------------------------------

bool is_session_key(std::string_view key) {
    const auto& keys = session_settable_keys();
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

bool is_known_key(std::string_view key) {
    for (const KeyInfo& k : config_keys())
        if (k.name == key) return true;
    return false;
}

RawValue string_value(const std::string& text) {
    RawValue v;
    v.type = RawValue::Type::String;
    v.text = text;
    return v;
}

// Stores the value on a scratch copy with the key table's own rules; on success `shown` is the
// value as PGPOOL SHOW prints it, else the result is the key table's problem text.
std::string validate_value(const Config& config, const std::string& key, const std::string& raw, std::string* shown) {
    Config scratch = config;
    std::string problem = config_store(scratch, key, string_value(raw));
    if (problem.empty()) *shown = config_value_string(scratch, key);
    return problem;
}

std::string current_value(const Config& config, const shm::StatusTable& table, const AdminSession& session,
                          const std::string& key, bool* found) {
    *found = true;
    if (auto it = session.values.find(key); it != session.values.end()) return it->second;
    if (is_known_key(key)) return config_value_string(config, key);
    for (const pcp::ConfigItem& item : pcp::backend_items(table))
        if (item.name == key) return item.value;
    for (auto& [name, value] : config_backend_values(config))  // per-node overrides: health_check_period0
        if (name == key) return value;
    *found = false;
    return {};
}

Answer pgpool_show(const Words& w, const Config& config, const shm::StatusTable& table, const AdminSession& session) {
    if (w.size() != 3) return fail(kSyntaxError, "syntax error in PGPOOL SHOW: expected PGPOOL SHOW name|ALL|backend");
    std::string key = w.lower(2);
    Config effective = config;
    apply_session_overlay(session, effective);
    if (key == "all") return items_answer(pcp::pool_status_items(effective, table));
    if (key == "backend") return items_answer(pcp::backend_items(table));
    bool found = false;
    std::string value = current_value(effective, table, session, key, &found);
    if (!found) return fail(kUndefinedObject, "unrecognized configuration parameter \"" + w.list[2] + "\"");
    Answer a = table_answer({key}, {{value}});
    a.tag = "SHOW";
    return a;
}

// Checks the key of PGPOOL SET/RESET; empty answer (no error) when it may be changed.
Answer check_settable(const std::string& key, const std::string& as_written) {
    if (!is_known_key(key)) return fail(kUndefinedObject, "unrecognized configuration parameter \"" + as_written + "\"");
    if (!is_session_key(key))
        return fail(kCantChangeRuntimeParam, "parameter \"" + key + "\" cannot be changed in a session");
    return {};
}

// PGPOOL SET name = value | name TO value | name = DEFAULT
Answer pgpool_set(const Words& w, const Config& config) {
    if (w.size() != 5 || (w.list[3] != "=" && w.lower(3) != "to"))
        return fail(kSyntaxError, "syntax error in PGPOOL SET: expected PGPOOL SET name = value");
    std::string key = w.lower(2);
    Answer a = check_settable(key, w.list[2]);
    if (!a.error_code.empty()) return a;
    a.key = key;
    if (w.lower(4) == "default") {
        a.change = Answer::Change::Reset;
        a.tag = "SET";
        return a;
    }
    std::string value;
    if (std::string problem = validate_value(config, key, w.list[4], &value); !problem.empty())
        return fail(kInvalidParameterValue, "invalid value for parameter \"" + key + "\": " + problem);
    a.change = Answer::Change::Set;
    a.value = value;
    a.tag = "SET";
    return a;
}

Answer pgpool_reset(const Words& w) {
    if (w.size() != 3) return fail(kSyntaxError, "syntax error in PGPOOL RESET: expected PGPOOL RESET name|ALL");
    Answer a;
    std::string key = w.lower(2);
    if (key != "all") {
        a = check_settable(key, w.list[2]);
        if (!a.error_code.empty()) return a;
    }
    a.change = key == "all" ? Answer::Change::ResetAll : Answer::Change::Reset;
    a.key = key;
    a.tag = "RESET";
    return a;
}

Answer evaluate(std::string_view sql, const Config& config, const shm::StatusTable& table,
                const AdminSession& session) {
    Words w;
    if (!split_words(sql, w)) return fail(kSyntaxError, "unterminated quoted string");
    std::string first = w.lower(0);
    if (first == "show") return show_pool(w, config, table, session);
    if (first != "pgpool" || w.size() < 2) return fail(kSyntaxError, "syntax error at or near \"" + first + "\"");
    std::string verb = w.lower(1);
    if (verb == "show") return pgpool_show(w, config, table, session);
    if (verb == "set") return pgpool_set(w, config);
    if (verb == "reset") return pgpool_reset(w);
    return fail(kSyntaxError, "syntax error at or near \"" + w.list[1] + "\"");
}

// ---- encoding -------------------------------------------------------------------------------

std::string encode_error(const Answer& a) {
    std::string out;
    proto::put_error(out, "ERROR", a.error_code, a.error_message);
    return out;
}

std::string encode_row_description(const std::vector<std::string>& columns, const std::vector<int16_t>& formats) {
    std::string out;
    proto::Writer w(out);
    w.begin('T').i16(int16_t(columns.size()));
    for (size_t i = 0; i < columns.size(); ++i) {
        int16_t format = formats.empty() ? 0 : formats.size() == 1 ? formats[0] : i < formats.size() ? formats[i] : 0;
        w.cstr(columns[i]).i32(0).i16(0).i32(kTextOid).i16(-1).i32(-1).i16(format);
    }
    w.finish();
    return out;
}

std::string encode_rows_and_tag(const Answer& a) {
    std::string out;
    for (const Row& row : a.rows) {
        proto::Writer w(out);
        w.begin('D').i16(int16_t(row.size()));
        for (const std::string& v : row) w.i32(int32_t(v.size())).bytes(v);
        w.finish();
    }
    proto::Writer(out).begin('C').cstr(a.tag).finish();
    return out;
}

void apply_change(const Answer& a, AdminSession& session) {
    switch (a.change) {
    case Answer::Change::Set: session.values[a.key] = a.value; break;
    case Answer::Change::Reset: session.values.erase(a.key); break;
    case Answer::Change::ResetAll: session.values.clear(); break;
    case Answer::Change::None: break;
    }
}

}  // namespace

bool is_admin_command(std::string_view sql) {
    size_t i = skip_blank(sql, 0);
    auto starts = [&](std::string_view prefix) {
        if (sql.size() - i < prefix.size()) return false;
        for (size_t k = 0; k < prefix.size(); ++k)
            if (std::tolower(static_cast<unsigned char>(sql[i + k])) != prefix[k]) return false;
        return true;
    };
    if (starts("pgpool")) {
        // "pgpool" then any blank: a word boundary, not a table called pgpool_x
        size_t j = i + 6;
        return j < sql.size() && (std::isspace(static_cast<unsigned char>(sql[j])) || sql.compare(j, 2, "/*") == 0);
    }
    if (!starts("show")) return false;
    size_t j = skip_blank(sql, i + 4);
    if (j == i + 4) return false;
    i = j;
    return starts("pool_");
}

const std::vector<std::string_view>& session_settable_keys() {
    static const std::vector<std::string_view> keys = {
        "client_idle_limit",        "log_statement",          "log_per_node_statement",
        "notice_per_node_statement", "statement_level_load_balance", "allow_sql_comments",
        "check_unlogged_table",     "check_temp_table",       "disable_load_balance_on_write"};
    return keys;
}

std::string answer_admin_command(std::string_view sql, const Config& config, const shm::StatusTable& table,
                                 AdminSession& session, bool extended) {
    Answer a = evaluate(sql, config, table, session);
    if (!a.error_code.empty()) return encode_error(a);
    apply_change(a, session);
    std::string out = extended || a.columns.empty() ? std::string() : encode_row_description(a.columns, {});
    return out + encode_rows_and_tag(a);
}

std::string admin_row_description(std::string_view sql, const Config& config, const shm::StatusTable& table,
                                  const AdminSession& session, const std::vector<int16_t>& formats) {
    Answer a = evaluate(sql, config, table, session);
    if (!a.error_code.empty()) return encode_error(a);
    if (a.columns.empty()) {
        std::string out;
        proto::Writer(out).begin('n').finish();
        return out;
    }
    return encode_row_description(a.columns, formats);
}

std::string admin_data_rows(std::string_view sql, const Config& config, const shm::StatusTable& table,
                            AdminSession& session) {
    return answer_admin_command(sql, config, table, session, true);
}

std::string admin_parameter_description() {
    std::string out;
    proto::Writer(out).begin('t').i16(0).finish();
    return out;
}

void apply_session_overlay(const AdminSession& session, Config& config) {
    // Values were validated by PGPOOL SET; a reload cannot make them invalid for the same key.
    for (const auto& [key, value] : session.values) config_store(config, key, string_value(value));
}

}  // namespace splitpool::daemon
