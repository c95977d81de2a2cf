// Table-driven tests of the router: {policy, prelude statements, statement} -> target and reason.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/balancer.hpp"
#include "daemon/router.hpp"
#include "parser/classify.hpp"

using namespace splitpool;
using daemon::RouteDecision;
using daemon::Target;

namespace {

class SeqRandom final : public daemon::RandomSource {
public:
    std::vector<double> values{0.5};
    double next_unit() override { return values[i_++ % values.size()]; }

private:
    size_t i_ = 0;
};

struct FakeOracle final : daemon::RouteOracle {
    std::set<std::string, std::less<>> volatile_fns{"random", "myvolatile", "nextval", "setval"};
    std::set<std::string, std::less<>> temp{"tmp_cat"}, unlogged{"ulog"}, hot{"hot"};
    std::set<int> lag;
    bool is_volatile_function(std::string_view n) const override { return volatile_fns.count(n) > 0; }
    bool is_temp_table(std::string_view r) const override { return temp.count(r) > 0; }
    bool is_unlogged_table(std::string_view r) const override { return unlogged.count(r) > 0; }
    bool recently_written(std::string_view r, int window_ms) const override { return window_ms > 0 && hot.count(r) > 0; }
    bool lagging(int node) const override { return lag.count(node) > 0; }
};

// Three nodes: 0 primary weight 1, 1 and 2 standbys weight 2.
shm::NodeSnapshot three_nodes() {
    shm::NodeSnapshot s;
    s.num_nodes = 3;
    s.primary = 0;
    s.nodes[0] = {shm::NodeStatus::Up, shm::NodeRole::Primary, 1.0};
    s.nodes[1] = {shm::NodeStatus::Up, shm::NodeRole::Standby, 2.0};
    s.nodes[2] = {shm::NodeStatus::Up, shm::NodeRole::Standby, 2.0};
    return s;
}

struct Env {
    shm::NodeSnapshot nodes = three_nodes();
    daemon::RoutingPolicy policy;
    FakeOracle oracle;
    SeqRandom rng;
    daemon::SessionModel state;
    bool down1_after_start = false;
    bool down1_after_prelude = false;
};

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    if (s.empty()) return out;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == sep) {
            out.emplace_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    return out;
}

void apply_policy_token(Env& e, const std::string& t) {
    std::string err;
    auto& p = e.policy;
    using daemon::DisableLbOnWrite;
    if (t == "off") p.disable_load_balance_on_write = DisableLbOnWrite::Off;
    else if (t == "trans") p.disable_load_balance_on_write = DisableLbOnWrite::TransTransaction;
    else if (t == "always") p.disable_load_balance_on_write = DisableLbOnWrite::Always;
    else if (t == "dml") p.disable_load_balance_on_write = DisableLbOnWrite::DmlAdaptive;
    else if (t == "stmt") p.statement_level_load_balance = true;
    else if (t == "nolb") p.load_balance_mode = false;
    else if (t == "comments") p.allow_sql_comments = true;
    else if (t == "trace") p.check_temp_table = daemon::CheckTempTable::Trace;
    else if (t == "notemp") p.check_temp_table = daemon::CheckTempTable::None;
    else if (t == "nounlogged") p.check_unlogged_table = false;
    else if (t == "oracle") p.oracle = &e.oracle;
    else if (t == "ryw") p.read_your_writes_window_ms = 1000;
    else if (t == "prefer") p.prefer_lower_delay_standby = true;
    else if (t == "wfl") REQUIRE(daemon::set_function_lists(&p, "nextval,setval,my_.*", "", &err));
    else if (t == "rofl") REQUIRE(daemon::set_function_lists(&p, "", "count,now,lower,safe_.*", &err));
    else if (t == "wf") REQUIRE(daemon::set_function_lists(&p, "f", "", &err));
    else if (t == "rel") REQUIRE(daemon::set_dml_adaptive_relationships(&p, "t1:t2,f():t3", &err));
    else if (t == "pattern") REQUIRE(daemon::set_primary_routing_patterns(&p, "SELECT \\* FROM t1\\;;.*secret.*", &err));
    else if (t == "seq") e.rng.values = {0.1, 0.5, 0.9};
    else if (t == "n1down") e.nodes.nodes[1].status = shm::NodeStatus::Down;
    else if (t == "down1") e.down1_after_start = true;
    else if (t == "down1late") e.down1_after_prelude = true;
    else if (t == "noprimary") e.nodes.primary = -1, e.nodes.nodes[0].status = shm::NodeStatus::Down;
    else if (t == "w0") e.nodes.nodes[1].weight = 0.0;
    else if (t == "allw0") e.nodes.nodes[0].weight = e.nodes.nodes[1].weight = e.nodes.nodes[2].weight = 0.0;
    else if (t == "lag1") p.oracle = &e.oracle, e.oracle.lag = {1};
    else if (t == "redirect") {
        REQUIRE(daemon::parse_redirect_list("psql:2", &p.redirects.app_name, &err));
        REQUIRE(daemon::parse_redirect_list("postgres:primary,mydb[0-4]:2,other:standby(0.0)", &p.redirects.database, &err));
        REQUIRE(daemon::parse_redirect_list("reporter:standby", &p.redirects.user, &err));
    } else if (t.rfind("db=", 0) == 0) e.state.database = t.substr(3);
    else if (t.rfind("app=", 0) == 0) e.state.application_name = t.substr(4);
    else if (t.rfind("user=", 0) == 0) e.state.user = t.substr(5);
    else FAIL("unknown policy token " << t);
}

RouteDecision run(Env& e, const std::string& sql) {
    parser::Classification cls = parser::classify(sql);
    return daemon::route(cls, sql, e.state, e.nodes, e.policy, e.rng);
}

void run_prelude(Env& e, const std::string& prelude) {
    for (const std::string& stmt : split(prelude, '|')) {
        if (!stmt.empty() && stmt[0] == '!') {
            daemon::note_transaction_status(e.state, stmt[1], stmt.size() > 2 && stmt[2] == 'm');
            continue;
        }
        parser::Classification cls = parser::classify(stmt);
        RouteDecision d = daemon::route(cls, stmt, e.state, e.nodes, e.policy, e.rng);
        daemon::note_statement(e.state, cls, stmt, d, e.policy);
    }
}

std::string set_text(const daemon::NodeSet& s) {
    std::string out;
    for (int i = 0; i < 8; ++i)
        if (s.test(static_cast<size_t>(i))) out += (out.empty() ? "" : ",") + std::to_string(i);
    return out;
}

std::string encode(const RouteDecision& d) {
    std::string out;
    switch (d.target) {
    case Target::Primary: out = "primary"; break;
    case Target::Node: out = "node:" + std::to_string(d.node); break;
    case Target::Session: out = "session:" + set_text(d.nodes); break;
    case Target::Transaction: out = "txn:" + set_text(d.nodes); break;
    case Target::Nodes: out = "nodes:" + set_text(d.nodes); break;
    case Target::Local: out = "local"; break;
    case Target::None: out = "none"; break;
    }
    if (d.reprepare) out += "+reprepare";
    return out;
}

struct Row {
    const char* policy;   // '+'-separated tokens, see apply_policy_token
    const char* prelude;  // '|'-separated statements run (and noted) first; "!T", "!E", "!I", "!Tm" = ReadyForQuery status
    const char* sql;
    const char* expect;   // primary | node:N | session:a,b | txn:a,b | nodes:a,b | local | none [+reprepare]
    const char* reason;   // substring of the reason, or ""
};

// Session load-balance node is 1 unless the policy says otherwise (rng 0.5 over weights 1:2:2).
const Row kRows[] = {
    // plain statements (spec 1.2)
    {"", "", "SELECT abalance FROM pgbench_accounts WHERE aid = 1", "node:1", "load balance"},
    {"", "", "SELECT 1", "node:1", "load balance"},
    {"", "", "", "node:1", "load balance"},
    {"", "", "-- only a comment", "primary", "leading comment"},
    {"", "", "INSERT INTO t VALUES (1)", "primary", "write"},
    {"", "", "UPDATE t SET a = 2", "primary", "write"},
    {"", "", "DELETE FROM t", "primary", "write"},
    {"", "", "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "primary", "write"},
    {"", "", "SELECT * FROM t FOR UPDATE", "primary", "for update"},
    {"", "", "SELECT * FROM t FOR SHARE", "primary", "for update"},
    {"", "", "SELECT * FROM t FOR NO KEY UPDATE", "primary", "for update"},
    {"", "", "SELECT * FROM t FOR KEY SHARE", "primary", "for update"},
    {"", "", "SELECT * FROM (SELECT * FROM t FOR UPDATE) q", "primary", "for update"},
    {"", "", "SELECT * INTO t2 FROM t", "primary", "select into"},
    {"", "", "WITH x AS (INSERT INTO a VALUES (1) RETURNING *) SELECT * FROM x", "primary", "data-modifying CTE"},
    {"", "", "WITH x AS (SELECT 1) SELECT * FROM x", "node:1", "load balance"},
    {"", "", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r", "node:1", ""},
    {"", "", "COPY t FROM STDIN", "primary", "write"},
    {"", "", "COPY t TO STDOUT", "node:1", "load balance"},
    {"", "", "COPY (SELECT * FROM t) TO STDOUT", "node:1", "load balance"},
    {"", "", "COPY t TO '/tmp/f'", "primary", ""},
    {"", "", "COPY (SELECT nextval('s')) TO STDOUT", "primary", "writing function"},
    {"", "", "LOCK t", "primary", "write"},
    {"", "", "LOCK t IN ROW EXCLUSIVE MODE", "primary", "write"},
    {"", "", "LOCK t IN SHARE MODE", "primary", "write"},
    {"", "", "LOCK t IN ACCESS SHARE MODE", "session:0", "session"},
    {"", "", "LOCK t IN ROW SHARE MODE", "session:0", "session"},
    {"", "", "CREATE TABLE x (a int)", "primary", "write"},
    {"", "", "DROP TABLE x", "primary", "write"},
    {"", "", "ALTER TABLE x ADD COLUMN b int", "primary", "write"},
    {"", "", "TRUNCATE t", "primary", "write"},
    {"", "", "VACUUM t", "primary", "write"},
    {"", "", "ANALYZE t", "primary", "write"},
    {"", "", "CALL p()", "primary", "write"},
    {"", "", "DO $$BEGIN END$$", "primary", "write"},
    {"", "", "LISTEN ch", "primary", "primary-only"},
    {"", "", "UNLISTEN ch", "primary", "primary-only"},
    {"", "", "NOTIFY ch", "primary", "primary-only"},
    {"", "", "DECLARE c CURSOR FOR SELECT 1", "primary", ""},
    {"", "", "FETCH 1 FROM c", "primary", ""},
    {"", "", "MOVE 1 IN c", "primary", ""},
    {"", "", "CLOSE c", "primary", ""},
    {"", "", "SHOW search_path", "node:1", "load balance"},
    {"", "", "EXPLAIN SELECT 1", "node:1", "load balance"},
    {"", "", "EXPLAIN ANALYZE SELECT 1", "node:1", "load balance"},
    {"", "", "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", "node:1", "load balance"},
    {"", "", "EXPLAIN INSERT INTO t VALUES (1)", "primary", "primary-only"},
    {"", "", "EXPLAIN ANALYZE DELETE FROM t", "primary", "write"},
    {"", "", "SELECT 1; SELECT 2", "primary", "multi-statement"},
    {"", "", "BEGIN; SELECT 1", "primary", "multi-statement"},
    {"", "", "SELEC 1", "primary", "unparseable"},
    {"", "", "SELECT * FROM", "primary", "unparseable"},
    {"", "", "VALUES (1), (2)", "node:1", "load balance"},
    {"", "", "TABLE t", "node:1", "load balance"},
    {"", "", "PREPARE TRANSACTION 'g'", "primary", ""},
    {"", "", "COMMIT PREPARED 'g'", "primary", ""},
    {"", "", "ROLLBACK PREPARED 'g'", "primary", ""},
    {"", "", "GRANT SELECT ON t TO u", "primary", "write"},
    {"", "", "COMMENT ON TABLE t IS 'x'", "primary", "write"},
    {"", "", "REFRESH MATERIALIZED VIEW mv", "primary", "write"},
    {"", "", "CREATE INDEX ON t (a)", "primary", "write"},
    {"", "", "CHECKPOINT", "primary", "write"},
    {"", "", "SELECT lo_create(0)", "primary", "writing function"},
    // functions: built-in knowledge without lists or oracle
    {"", "", "SELECT nextval('s')", "primary", "writing function"},
    {"", "", "SELECT setval('s', 1)", "primary", "writing function"},
    {"", "", "SELECT currval('s')", "primary", "writing function"},
    {"", "", "SELECT pg_catalog.nextval('s')", "primary", "writing function"},
    {"", "", "SELECT myschema.nextval('s')", "node:1", ""},
    // set_config is a session setting: every node of the session, as SET (beyond pgpool)
    {"", "", "SELECT set_config('a', 'b', false)", "session:0", "set_config"},
    {"", "SELECT 1", "SELECT set_config('a', 'b', false)", "session:0", "set_config"},
    {"", "BEGIN|SELECT 1", "SELECT set_config('a', 'b', true)", "txn:0,1", "set_config"},
    {"", "", "SELECT set_config('a', 'b', false), nextval('s')", "primary", "writing function"},
    {"", "", "SELECT set_config('a', 'b', false) FROM pg_class", "session:0", "set_config"},
    // functions a standby refuses go to the primary without a failed try, whatever the lists say
    {"", "", "SELECT pg_current_xact_id()", "primary", "writing function"},
    {"", "", "SELECT txid_current()", "primary", "writing function"},
    {"", "", "SELECT pg_current_wal_lsn()", "primary", "writing function"},
    {"", "", "SELECT pg_current_wal_insert_lsn()", "primary", "writing function"},
    {"", "", "SELECT pg_current_wal_flush_lsn()", "primary", "writing function"},
    {"", "", "SELECT pg_walfile_name(pg_current_wal_lsn())", "primary", "writing function"},
    {"", "", "SELECT pg_notify('c', 'p')", "primary", "writing function"},
    {"", "", "SELECT pg_create_restore_point('x')", "primary", "writing function"},
    {"", "", "SELECT lo_from_bytea(0, 'x')", "primary", "writing function"},
    {"", "", "SELECT pg_logical_emit_message(true, 'p', 'x')", "primary", "writing function"},
    {"", "", "SELECT brin_summarize_new_values('i')", "primary", "writing function"},
    {"rofl", "", "SELECT pg_current_xact_id()", "primary", "writing function"},
    {"oracle", "", "SELECT txid_current()", "primary", "writing function"},
    {"", "", "SELECT txid_current_if_assigned()", "node:1", "load balance"},
    {"", "", "SELECT pg_terminate_backend(123)", "primary", "writing function"},
    {"", "", "SELECT pg_cancel_backend(123)", "primary", "writing function"},
    {"", "", "SELECT count(*) FROM t", "node:1", ""},
    {"", "", "SELECT now()", "node:1", ""},
    {"", "", "SELECT * FROM t WHERE a = (SELECT nextval('s'))", "primary", "writing function"},
    {"", "", "SELECT * FROM t, LATERAL (SELECT nextval('s')) q", "primary", "writing function"},
    {"", "", "SELECT random()", "node:1", ""},
    // functions: volatility from the oracle (pg_proc)
    {"oracle", "", "SELECT random()", "primary", "writing function"},
    {"oracle", "", "SELECT myvolatile(1)", "primary", "writing function"},
    {"oracle", "", "SELECT mystable(1)", "node:1", ""},
    {"oracle", "", "SELECT nextval('s')", "primary", "writing function"},
    {"oracle", "", "SELECT set_config('a', 'b', false)", "session:0", "set_config"},
    // write_function_list / read_only_function_list
    {"wfl", "", "SELECT nextval('s')", "primary", "writing function"},
    {"wfl", "", "SELECT my_writer()", "primary", "writing function"},
    {"wfl", "", "SELECT random()", "node:1", ""},
    {"wfl", "", "SELECT currval('s')", "node:1", ""},
    {"wfl", "", "SELECT public.my_writer()", "node:1", ""},
    {"wfl", "", "SELECT set_config('a', 'b', false)", "session:0", "set_config"},
    {"wfl", "", "EXPLAIN SELECT nextval('s')", "node:1", ""},
    {"wfl", "", "EXPLAIN ANALYZE SELECT nextval('s')", "primary", "writing function"},
    {"rofl", "", "SELECT count(*) FROM t", "node:1", ""},
    {"rofl", "", "SELECT safe_fn()", "node:1", ""},
    {"rofl", "", "SELECT other_fn()", "primary", "writing function"},
    {"rofl", "", "SELECT lower(name), now() FROM t", "node:1", ""},
    {"rofl", "", "SELECT lower(name), upper(name) FROM t", "primary", "writing function"},
    {"rofl", "", "SELECT 1", "node:1", ""},
    // hints and comments
    {"", "", "SELECT /*+ primary */ 1", "primary", "hint"},
    {"", "", "/*+ primary */ SELECT 1", "primary", "hint"},
    {"", "", "SELECT 1 /*+ PRIMARY */", "primary", "hint"},
    {"", "", "/* comment */ SELECT 1", "primary", "leading comment"},
    {"", "", "/*NO LOAD BALANCE*/ SELECT 1", "primary", "leading comment"},
    {"", "", "-- c\nSELECT 1", "primary", "leading comment"},
    {"comments", "", "/* comment */ SELECT 1", "node:1", "load balance"},
    {"comments", "", "/*+ primary */ SELECT 1", "primary", "hint"},
    {"", "", "SELECT 1 -- trailing", "node:1", ""},
    {"", "", "SELECT /* inner */ 1", "node:1", ""},
    {"", "", "  \n SELECT 1", "node:1", ""},
    {"", "", "SELECT /*+ SeqScan(t) */ * FROM t", "node:1", ""},
    {"", "", "SELECT /*+ primaryx */ 1", "node:1", ""},
    // system catalog, temp, unlogged, cross-session read-your-writes
    {"", "", "SELECT * FROM pg_class", "primary", "system catalog"},
    {"", "", "SELECT * FROM pg_catalog.pg_class c JOIN pg_namespace n ON true", "primary", "system catalog"},
    {"", "", "SELECT * FROM information_schema.tables", "primary", "system catalog"},
    {"", "", "SELECT * FROM myschema.pg_like", "node:1", ""},
    {"", "", "SELECT * FROM t JOIN pg_stat_activity ON true", "primary", "system catalog"},
    {"trace", "CREATE TEMP TABLE tt (a int)", "SELECT * FROM tt", "primary", "temporary table"},
    {"trace", "CREATE TEMP TABLE tt (a int)", "SELECT * FROM other", "node:1", ""},
    {"trace", "CREATE TEMP TABLE tt (a int)|DROP TABLE tt", "SELECT * FROM tt", "node:1", ""},
    {"trace", "CREATE TEMP TABLE tt (a int)|DISCARD ALL", "SELECT * FROM tt", "node:1", ""},
    {"trace", "CREATE TEMPORARY TABLE tt AS SELECT 1", "SELECT * FROM tt", "primary", "temporary table"},
    {"trace", "SELECT * INTO TEMP tt2 FROM t", "SELECT * FROM tt2", "primary", "temporary table"},
    {"", "CREATE TEMP TABLE tt (a int)", "SELECT * FROM tt", "primary", "temporary table"},
    {"oracle", "CREATE TEMP TABLE t (a int)", "SELECT * FROM t", "primary", "temporary table"},  // hides a permanent t
    {"notemp", "CREATE TEMP TABLE tt (a int)", "SELECT * FROM tt", "node:1", ""},
    {"oracle", "", "SELECT * FROM tmp_cat", "primary", "temporary table"},
    {"oracle+notemp", "", "SELECT * FROM tmp_cat", "node:1", ""},
    {"oracle", "", "SELECT * FROM ulog", "primary", "unlogged table"},
    {"oracle+nounlogged", "", "SELECT * FROM ulog", "node:1", ""},
    {"oracle", "", "SELECT * FROM hot", "node:1", ""},
    {"oracle+ryw", "", "SELECT * FROM hot", "primary", "read-your-writes"},
    {"oracle+ryw", "", "SELECT * FROM cold", "node:1", ""},
    // primary_routing_query_pattern_list
    {"pattern", "", "SELECT * FROM t1;", "primary", "primary_routing_query_pattern_list"},
    {"pattern", "", "select * from t1;", "primary", "primary_routing_query_pattern_list"},
    {"pattern", "", "SELECT * FROM t1", "node:1", ""},
    {"pattern", "", "SELECT * FROM my_secret_table", "primary", "primary_routing_query_pattern_list"},
    {"pattern", "", "SELECT * FROM t2", "node:1", ""},
    // load_balance_mode = off
    {"nolb", "", "SELECT 1", "primary", "load_balance_mode"},
    {"nolb", "", "SET x = 1", "session:0", ""},
    // transactions, disable_load_balance_on_write = transaction (default)
    {"", "", "BEGIN", "primary", "begin"},
    {"", "", "START TRANSACTION", "primary", "begin"},
    {"", "BEGIN", "SELECT 1", "node:1", "load balance"},
    {"", "BEGIN|SELECT 1", "COMMIT", "txn:0,1", "transaction end"},
    {"", "BEGIN", "COMMIT", "txn:0", ""},
    {"", "BEGIN", "END", "txn:0", ""},
    {"", "BEGIN|SELECT 1", "ABORT", "txn:0,1", ""},
    {"", "BEGIN|INSERT INTO t VALUES (1)", "SELECT 1", "primary", "writing transaction"},
    {"", "BEGIN|INSERT INTO t VALUES (1)|COMMIT", "SELECT 1", "node:1", ""},
    {"", "BEGIN|INSERT INTO t VALUES (1)|COMMIT|BEGIN", "SELECT 1", "node:1", ""},
    {"", "BEGIN|INSERT INTO t VALUES (1)|ROLLBACK|BEGIN", "SELECT 1", "node:1", ""},
    {"", "INSERT INTO t VALUES (1)", "SELECT 1", "node:1", ""},
    {"", "BEGIN|SAVEPOINT a|INSERT INTO t VALUES (1)|ROLLBACK TO SAVEPOINT a", "SELECT 1", "primary", "writing transaction"},
    {"", "BEGIN|SAVEPOINT a|INSERT INTO t VALUES (1)|RELEASE a", "SELECT 1", "primary", "writing transaction"},
    {"", "BEGIN|SAVEPOINT a", "ROLLBACK TO a", "txn:0", ""},
    {"", "BEGIN|SELECT 1|SAVEPOINT a", "RELEASE a", "txn:0,1", ""},
    {"", "BEGIN|SELECT 1", "ROLLBACK", "txn:0,1", ""},
    {"", "BEGIN|SELECT 1", "SAVEPOINT b", "txn:0,1", ""},
    {"", "", "COMMIT", "primary", "outside a transaction"},
    {"", "", "SAVEPOINT a", "primary", "outside a transaction"},
    {"", "BEGIN|SELECT nextval('s')", "SELECT 1", "primary", "writing transaction"},
    {"", "BEGIN|SET x = 1", "SELECT 1", "node:1", ""},
    {"", "BEGIN|SHOW x", "SELECT 1", "node:1", ""},
    {"", "BEGIN|LOCK t IN ACCESS SHARE MODE", "SELECT 1", "node:1", ""},
    {"", "BEGIN|LOCK t", "SELECT 1", "primary", "writing transaction"},
    {"", "BEGIN|SELECT * FROM t FOR UPDATE", "SELECT 1", "primary", "writing transaction"},
    {"", "BEGIN|CREATE TABLE x (a int)", "SELECT * FROM x", "primary", "writing transaction"},
    {"", "BEGIN|SELECT 1", "INSERT INTO t VALUES (1)", "primary", "write"},
    {"", "BEGIN|SELECT 1|INSERT INTO t VALUES (1)", "COMMIT", "txn:0,1", ""},
    {"", "BEGIN", "SELECT * FROM pg_class", "primary", "system catalog"},
    {"", "BEGIN|SELECT 1", "LOCK t IN ACCESS SHARE MODE", "session:0,1", ""},
    // isolation and access mode
    {"", "BEGIN ISOLATION LEVEL SERIALIZABLE", "SELECT 1", "primary", "serializable"},
    {"", "BEGIN|SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SELECT 1", "primary", "serializable"},
    {"", "BEGIN|SET transaction_isolation = 'serializable'", "SELECT 1", "primary", "serializable"},
    {"", "BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT 1", "node:1", ""},
    {"", "BEGIN ISOLATION LEVEL SERIALIZABLE|COMMIT|BEGIN", "SELECT 1", "node:1", ""},
    {"", "", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "primary", "standbys refuse"},
    {"", "", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "session:0", ""},
    {"", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE|BEGIN", "SELECT 1", "primary", "serializable"},
    {"", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SELECT 1", "node:1", ""},
    {"", "SET default_transaction_isolation = 'serializable'|BEGIN", "SELECT 1", "primary", "serializable"},
    {"", "SET default_transaction_isolation = 'serializable'|RESET default_transaction_isolation|BEGIN", "SELECT 1", "node:1", ""},
    {"", "SET default_transaction_isolation = 'serializable'|RESET ALL|BEGIN", "SELECT 1", "node:1", ""},
    {"", "SET default_transaction_isolation = 'serializable'|DISCARD ALL|BEGIN", "SELECT 1", "node:1", ""},
    {"", "", "SET default_transaction_isolation = 'serializable'", "primary", "standbys refuse"},
    {"", "", "SET transaction_read_only = off", "primary", "standbys refuse"},
    {"", "", "SET transaction_read_only = 0", "primary", "standbys refuse"},
    {"", "", "SET transaction_read_only = false", "primary", "standbys refuse"},
    {"", "", "SET transaction_read_only = on", "session:0", ""},
    {"", "", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "primary", "standbys refuse"},
    {"", "", "SET TRANSACTION READ WRITE", "primary", "standbys refuse"},
    {"", "", "SET TRANSACTION READ ONLY", "session:0", ""},
    {"", "", "BEGIN READ WRITE", "primary", "begin"},
    {"", "BEGIN READ WRITE", "SELECT 1", "node:1", ""},
    {"", "START TRANSACTION READ ONLY", "SELECT 1", "node:1", ""},
    // aborted transactions
    {"", "BEGIN|!E", "SELECT 1", "primary", "aborted"},
    {"", "BEGIN|SELECT 1|!E", "ROLLBACK", "txn:0,1", ""},
    {"", "BEGIN|SAVEPOINT a|!E", "ROLLBACK TO a", "txn:0", ""},
    {"", "BEGIN|!E|ROLLBACK", "SELECT 1", "node:1", ""},
    {"", "BEGIN|!E|!I", "SELECT 1", "node:1", ""},
    // transactions begun inside a multi-statement string
    {"", "BEGIN; SELECT 1|!Tm", "SAVEPOINT a", "primary", "multi-statement"},
    {"", "BEGIN; SELECT 1|!Tm", "COMMIT", "primary", "multi-statement"},
    {"", "BEGIN; SELECT 1|!Tm", "SELECT 1", "primary", "multi-statement"},
    {"", "BEGIN; SELECT 1|!Tm|COMMIT|!I", "SELECT 1", "node:1", ""},
    {"", "BEGIN; SELECT 1|!Tm|COMMIT|!I", "BEGIN", "primary", "begin"},
    // disable_load_balance_on_write = off / trans_transaction / always / dml_adaptive
    {"off", "BEGIN|INSERT INTO t VALUES (1)", "SELECT 1", "node:1", ""},
    {"off", "INSERT INTO t VALUES (1)", "SELECT 1", "node:1", ""},
    {"trans", "BEGIN|INSERT INTO t VALUES (1)", "SELECT 1", "primary", "writing transaction"},
    {"trans", "BEGIN|INSERT INTO t VALUES (1)|COMMIT", "SELECT 1", "node:1", ""},
    {"trans", "BEGIN|INSERT INTO t VALUES (1)|COMMIT|BEGIN", "SELECT 1", "primary", "earlier transaction"},
    {"trans", "INSERT INTO t VALUES (1)|BEGIN", "SELECT 1", "node:1", ""},
    {"always", "INSERT INTO t VALUES (1)", "SELECT 1", "primary", "always"},
    {"always", "", "SELECT 1", "node:1", ""},
    {"always", "BEGIN|INSERT INTO t VALUES (1)|ROLLBACK", "SELECT 1", "primary", "always"},
    {"always", "SET x = 1", "SELECT 1", "node:1", ""},
    {"always", "SELECT nextval('s')", "SELECT 1", "primary", "always"},
    {"dml", "BEGIN|INSERT INTO t1 VALUES (1)", "SELECT * FROM t1", "primary", "dml_adaptive"},
    {"dml", "BEGIN|INSERT INTO t1 VALUES (1)", "SELECT * FROM t2", "node:1", ""},
    {"dml", "BEGIN|UPDATE s.t1 SET a = 1", "SELECT * FROM t1", "primary", "dml_adaptive"},
    {"dml", "BEGIN|INSERT INTO t1 VALUES (1)", "SELECT * FROM T1", "primary", "dml_adaptive"},
    {"dml", "BEGIN|INSERT INTO t1 VALUES (1)|COMMIT|BEGIN", "SELECT * FROM t1", "node:1", ""},
    {"dml", "BEGIN|SELECT nextval('s')", "SELECT * FROM t2", "primary", "unknown tables"},
    {"dml", "INSERT INTO t1 VALUES (1)|BEGIN", "SELECT * FROM t1", "node:1", ""},
    {"dml+rel", "BEGIN|INSERT INTO t1 VALUES (1)", "SELECT * FROM t2", "primary", "dml_adaptive"},
    {"dml+rel+wf", "BEGIN|SELECT f()", "SELECT * FROM t3", "primary", "dml_adaptive"},
    {"dml+rel+wf", "BEGIN|SELECT f()", "SELECT * FROM t4", "node:1", ""},
    // statement-level load balancing and the session's node
    {"stmt+seq", "", "SELECT 1", "node:1", "statement level"},
    {"stmt+seq", "SELECT 1", "SELECT 1", "node:2", "statement level"},
    {"seq", "", "SELECT 1", "node:0", "load balance"},
    {"seq", "SELECT 1", "SELECT 1", "node:0", "load balance"},
    {"stmt+seq", "SELECT 1|SELECT 2", "SET x = 1", "session:0", ""},
    {"n1down", "", "SELECT 1", "node:2", "load balance"},
    {"down1", "", "SELECT 1", "node:2", "re-chosen"},
    {"noprimary", "", "INSERT INTO t VALUES (1)", "none", "no usable primary"},
    {"noprimary", "", "SELECT 1", "node:2", "load balance"},
    {"w0", "", "SELECT 1", "node:2", ""},
    {"allw0", "", "SELECT 1", "node:0", ""},
    {"lag1", "", "SELECT 1", "primary", "replication delay"},
    {"lag1+prefer", "", "SELECT 1", "node:2", "lower-delay"},
    // redirect preference lists (app_name > database > user)
    {"redirect+db=postgres", "", "SELECT 1", "node:0", ""},
    {"redirect+db=mydb3", "", "SELECT 1", "node:2", ""},
    {"redirect+db=mydb5", "", "SELECT 1", "node:1", ""},
    {"redirect+db=other", "", "SELECT 1", "node:0", ""},
    {"redirect+db=postgres+app=psql", "", "SELECT 1", "node:2", ""},
    {"redirect+user=reporter", "", "SELECT 1", "node:2", ""},
    {"redirect+db=mydb3+user=reporter", "", "INSERT INTO t VALUES (1)", "primary", "write"},
    // SQL PREPARE / EXECUTE / DEALLOCATE
    {"", "PREPARE p AS SELECT 1", "EXECUTE p", "node:1", "execute follows prepare"},
    {"", "", "PREPARE p AS SELECT 1", "node:1", "load balance"},
    {"", "", "PREPARE p (int) AS UPDATE t SET a = $1", "primary", "write"},
    {"", "PREPARE p AS INSERT INTO t VALUES (1)", "EXECUTE p", "primary", "execute of a write"},
    {"", "", "EXECUTE nope", "primary", "unknown prepared"},
    {"", "PREPARE p AS SELECT 1|BEGIN|INSERT INTO t VALUES (1)", "EXECUTE p", "primary+reprepare", "writing transaction"},
    {"", "PREPARE p AS SELECT 1", "DEALLOCATE p", "nodes:1", "deallocate"},
    {"", "PREPARE p AS SELECT 1", "DEALLOCATE ALL", "session:0,1", ""},
    {"", "PREPARE p AS SELECT 1|DEALLOCATE p", "EXECUTE p", "primary", "unknown prepared"},
    {"", "PREPARE p AS SELECT 1|DEALLOCATE ALL", "EXECUTE p", "primary", "unknown prepared"},
    {"", "PREPARE p AS SELECT 1|DISCARD ALL", "EXECUTE p", "primary", "unknown prepared"},
    {"", "PREPARE p AS SELECT 1|BEGIN|INSERT INTO t VALUES (1)|EXECUTE p", "DEALLOCATE p", "nodes:0,1", ""},
    {"", "PREPARE p AS SELECT 1|BEGIN|INSERT INTO t VALUES (1)|EXECUTE p|COMMIT", "EXECUTE p", "node:1", ""},
    {"", "PREPARE p AS SELECT nextval('s')", "EXECUTE p", "primary", "writing function"},
    {"", "PREPARE p AS SELECT nextval('s')|BEGIN", "SELECT 1", "node:1", ""},
    {"", "PREPARE p AS SELECT nextval('s')|BEGIN|EXECUTE p", "SELECT 1", "primary", "writing transaction"},
    {"down1late", "PREPARE p AS SELECT 1", "EXECUTE p", "node:2+reprepare", "re-chosen"},
    {"down1", "PREPARE p AS SELECT 1", "EXECUTE p", "node:2", "execute follows prepare"},
    {"", "PREPARE p AS SELECT 1|SET splitpool.route = primary", "EXECUTE p", "primary+reprepare", "splitpool.route"},
    // session settings and our own splitpool.route
    {"", "", "SET search_path = a", "session:0", "session setting"},
    {"", "SELECT 1", "SET search_path = a", "session:0", "session setting"},
    {"", "SELECT 1|BEGIN", "SET search_path = a", "txn:0", "session setting"},  // node 1 is outside the transaction
    {"", "SELECT 1|BEGIN|SELECT 2", "SET search_path = a", "txn:0,1", "session setting"},
    {"", "SELECT 1", "RESET ALL", "session:0", ""},
    {"", "SELECT 1", "RESET search_path", "session:0", ""},
    {"", "SELECT 1", "DISCARD ALL", "session:0,1", ""},
    {"", "SELECT 1", "DISCARD TEMP", "session:0,1", ""},
    {"", "BEGIN|SELECT 1", "SET LOCAL x = 1", "txn:0,1", ""},
    {"", "", "SET splitpool.route = primary", "local", "splitpool"},
    {"", "", "SHOW splitpool.route", "local", "splitpool"},
    {"", "SET splitpool.route = primary", "SELECT 1", "primary", "splitpool.route"},
    {"", "SET splitpool.route = primary|SET splitpool.route = default", "SELECT 1", "node:1", ""},
    {"", "SET splitpool.route = primary|RESET splitpool.route", "SELECT 1", "node:1", ""},
    {"", "SET splitpool.route = 'primary'", "INSERT INTO t VALUES (1)", "primary", "write"},
    {"", "SET splitpool.route = primary|DISCARD ALL", "SELECT 1", "node:1", ""},
};

}  // namespace

TEST_CASE("router table") {
    int n = 0;
    for (const Row& row : kRows) {
        Env e;
        for (const std::string& t : split(row.policy, '+')) apply_policy_token(e, t);
        daemon::start_session(e.state, e.nodes, e.policy, e.rng);
        if (e.down1_after_start) e.nodes.nodes[1].status = shm::NodeStatus::Down;
        run_prelude(e, row.prelude);
        if (e.down1_after_prelude) e.nodes.nodes[1].status = shm::NodeStatus::Down;
        RouteDecision d = run(e, row.sql);
        std::string got = encode(d);
        INFO("policy='" << std::string(row.policy) << "' prelude='" << std::string(row.prelude) << "' sql='"
                        << std::string(row.sql) << "' reason='" << std::string(d.reason) << "'");
        CHECK(got == row.expect);
        CHECK(std::string(d.reason).find(row.reason) != std::string::npos);
        ++n;
    }
    CHECK(n >= 150);
    MESSAGE("router table rows: " << n);
}

TEST_CASE("counts_as_write follows the statement, not the PREPARE") {
    Env e;
    daemon::start_session(e.state, e.nodes, e.policy, e.rng);
    CHECK(run(e, "INSERT INTO t VALUES (1)").counts_as_write);
    CHECK(run(e, "SELECT nextval('s')").counts_as_write);
    CHECK_FALSE(run(e, "SELECT 1").counts_as_write);
    CHECK_FALSE(run(e, "PREPARE p AS SELECT nextval('s')").counts_as_write);
    CHECK_FALSE(run(e, "SET x = 1").counts_as_write);
    CHECK_FALSE(run(e, "SAVEPOINT a").counts_as_write);
}

TEST_CASE("note_statement tracks transaction nodes, savepoints and the written flag") {
    Env e;
    daemon::start_session(e.state, e.nodes, e.policy, e.rng);
    run_prelude(e, "BEGIN ISOLATION LEVEL REPEATABLE READ|SAVEPOINT a|SAVEPOINT b|SELECT 1|SAVEPOINT c");
    CHECK(e.state.in_transaction);
    CHECK(set_text(e.state.transaction_nodes) == "0,1");
    using V = std::vector<std::string>;
    CHECK(daemon::join_transaction_statements(e.state) ==
          V{"BEGIN ISOLATION LEVEL REPEATABLE READ", "SAVEPOINT \"a\"", "SAVEPOINT \"b\"", "SAVEPOINT \"c\""});
    run_prelude(e, "ROLLBACK TO b");
    CHECK(daemon::join_transaction_statements(e.state).size() == 3);
    run_prelude(e, "INSERT INTO t VALUES (1)|RELEASE a");
    CHECK(e.state.transaction_written);
    auto join = daemon::join_transaction_statements(e.state);
    REQUIRE(join.size() == 1);
    CHECK(join[0] == "BEGIN ISOLATION LEVEL REPEATABLE READ");
    run_prelude(e, "COMMIT");
    CHECK_FALSE(e.state.in_transaction);
    CHECK_FALSE(e.state.transaction_written);
    CHECK(e.state.session_written);
    CHECK(set_text(e.state.session_nodes) == "0,1");
}

TEST_CASE("join statements quote savepoints and never ask a standby for read-write or serializable") {
    Env e;
    daemon::start_session(e.state, e.nodes, e.policy, e.rng);
    run_prelude(e, "BEGIN READ WRITE|SAVEPOINT \"My Sp\"");
    auto join = daemon::join_transaction_statements(e.state);
    REQUIRE(join.size() == 2);
    CHECK(join[0] == "BEGIN");
    CHECK(join[1] == "SAVEPOINT \"My Sp\"");
    Env r;
    daemon::start_session(r.state, r.nodes, r.policy, r.rng);
    run_prelude(r, "START TRANSACTION READ ONLY");
    CHECK(daemon::join_transaction_statements(r.state)[0] == "BEGIN READ ONLY");
}

TEST_CASE("COMMIT AND CHAIN keeps the transaction open with its options") {
    Env e;
    daemon::start_session(e.state, e.nodes, e.policy, e.rng);
    run_prelude(e, "BEGIN ISOLATION LEVEL SERIALIZABLE|INSERT INTO t VALUES (1)|COMMIT AND CHAIN");
    CHECK(e.state.in_transaction);
    CHECK_FALSE(e.state.transaction_written);
    CHECK(e.state.transaction_serializable);
}

TEST_CASE("describe reads well in a debug log") {
    Env e;
    daemon::start_session(e.state, e.nodes, e.policy, e.rng);
    auto cls = parser::classify("SELECT 1");
    auto d = daemon::route(cls, "SELECT 1", e.state, e.nodes, e.policy, e.rng);
    CHECK(daemon::describe(cls, d, e.nodes) == "read → node 1 (standby, load balance)");
    auto w = parser::classify("INSERT INTO t VALUES (1)");
    auto dw = daemon::route(w, "", e.state, e.nodes, e.policy, e.rng);
    CHECK(daemon::describe(w, dw, e.nodes) == "write → node 0 (primary, write)");
    auto s = parser::classify("SET x = 1");
    auto ds = daemon::route(s, "", e.state, e.nodes, e.policy, e.rng);
    CHECK(daemon::describe(s, ds, e.nodes) == "set → nodes 0 (session setting: the session's node, others before their next use)");
}

TEST_CASE("policy parsers reject bad input") {
    daemon::RoutingPolicy p;
    std::string err;
    CHECK_FALSE(daemon::set_function_lists(&p, "a", "b", &err));
    CHECK(err.find("mutually exclusive") != std::string::npos);
    CHECK_FALSE(daemon::set_function_lists(&p, "a(", "", &err));
    CHECK(daemon::set_function_lists(&p, "nextval, setval", "", &err));
    CHECK(p.write_functions.size() == 2);
    CHECK_FALSE(daemon::set_primary_routing_patterns(&p, "[unclosed", &err));
    CHECK(daemon::set_primary_routing_patterns(&p, "a\\;b;c", &err));
    CHECK(p.primary_routing_patterns.size() == 2);
    CHECK_FALSE(daemon::set_dml_adaptive_relationships(&p, "t1", &err));
    CHECK(daemon::set_dml_adaptive_relationships(&p, "t1:t2, f():t3", &err));
    REQUIRE(p.dml_adaptive_relationships.size() == 2);
    CHECK(p.dml_adaptive_relationships[1].first == "f()");
    daemon::DisableLbOnWrite mode{};
    CHECK(daemon::parse_disable_lb_on_write("dml_adaptive", &mode));
    CHECK(mode == daemon::DisableLbOnWrite::DmlAdaptive);
    CHECK_FALSE(daemon::parse_disable_lb_on_write("sometimes", &mode));
    daemon::CheckTempTable temp{};
    CHECK(daemon::parse_check_temp_table("off", &temp));
    CHECK(temp == daemon::CheckTempTable::None);
    CHECK(daemon::parse_check_temp_table("trace", &temp));
    CHECK_FALSE(daemon::parse_check_temp_table("maybe", &temp));
}

TEST_CASE("redirect list syntax") {
    std::vector<daemon::RedirectRule> rules;
    std::string err;
    REQUIRE(daemon::parse_redirect_list("postgres:primary,mydb[0-4]:1(0.3), bi.*:standby", &rules, &err));
    REQUIRE(rules.size() == 3);
    CHECK(rules[0].target == daemon::RedirectRule::Target::Primary);
    CHECK(rules[1].node == 1);
    CHECK(rules[1].ratio == doctest::Approx(0.3));
    CHECK(rules[2].target == daemon::RedirectRule::Target::Standby);
    CHECK(daemon::parse_redirect_list("", &rules, &err));
    CHECK(rules.empty());
    CHECK_FALSE(daemon::parse_redirect_list("nocolon", &rules, &err));
    CHECK_FALSE(daemon::parse_redirect_list("db:1(2.0)", &rules, &err));
    CHECK_FALSE(daemon::parse_redirect_list("db:somewhere", &rules, &err));
    CHECK_FALSE(daemon::parse_redirect_list("db[:1", &rules, &err));
    daemon::RedirectLists lists;
    REQUIRE(daemon::parse_redirect_list("mydb[0-4]:1", &lists.database, &err));
    CHECK(daemon::find_redirect(lists, "mydb3", "", "") != nullptr);
    CHECK(daemon::find_redirect(lists, "MYDB3", "", "") != nullptr);  // case-insensitive
    CHECK(daemon::find_redirect(lists, "mydb33", "", "") == nullptr);  // anchored
}

TEST_CASE("weighted pick: deterministic with an injected rng") {
    shm::NodeSnapshot s = three_nodes();  // weights 1:2:2, total 5
    daemon::NodeSet all = daemon::usable_nodes(s);
    SeqRandom rng;
    rng.values = {0.0, 0.19, 0.2, 0.59, 0.6, 0.99};
    std::vector<int> got;
    for (int i = 0; i < 6; ++i) got.push_back(daemon::pick_weighted(s, all, rng));
    CHECK(got == std::vector<int>{0, 0, 1, 1, 2, 2});
    s.nodes[1].weight = 0.0;  // never chosen
    rng.values = {0.4};
    CHECK(daemon::pick_weighted(s, all, rng) == 2);
    s.nodes[0].weight = s.nodes[2].weight = 0.0;
    CHECK(daemon::pick_weighted(s, all, rng) == -1);
    CHECK(daemon::choose_load_balance_node(s, nullptr, rng) == 0);  // falls back to the primary
}

TEST_CASE("weighted pick: 10000 picks with weights 1:2:2 land within 2 points") {
    shm::NodeSnapshot s = three_nodes();
    daemon::Mt19937Random rng(12345);
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 10000; ++i) count[daemon::choose_load_balance_node(s, nullptr, rng)]++;
    const double expected[3] = {20.0, 40.0, 40.0};
    for (int i = 0; i < 3; ++i) {
        double share = count[i] / 100.0;
        INFO("node " << i << " share " << share);
        CHECK(std::abs(share - expected[i]) <= 2.0);
    }
}

TEST_CASE("redirect ratios: honoured with probability ratio, else the other nodes") {
    shm::NodeSnapshot s = three_nodes();
    std::vector<daemon::RedirectRule> rules;
    std::string err;
    REQUIRE(daemon::parse_redirect_list("x:1(0.3)", &rules, &err));
    daemon::Mt19937Random rng(7);
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 10000; ++i) count[daemon::choose_load_balance_node(s, &rules[0], rng)]++;
    // 30 % node 1; the other 70 % split 1:2 between nodes 0 and 2.
    CHECK(std::abs(count[1] / 100.0 - 30.0) <= 2.0);
    CHECK(std::abs(count[0] / 100.0 - 70.0 / 3) <= 2.0);
    CHECK(std::abs(count[2] / 100.0 - 140.0 / 3) <= 2.0);
}
