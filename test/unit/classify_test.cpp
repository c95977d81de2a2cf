// Table-driven tests of statement classification (spec section 1.2) and of its details.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "parser/classify.hpp"
#include "parser/classify_cache.hpp"

using namespace splitpool::parser;

namespace {

struct Row {
    const char* sql;
    Kind kind;
    Scope scope;
    bool writes;
    bool balanceable;
    const char* flags;  // space-separated names of flags that must be set (see flag())
};

bool flag(const Classification& c, std::string_view name) {
    if (name == "for_update") return c.for_update;
    if (name == "select_into") return c.select_into;
    if (name == "cte") return c.modifying_cte;
    if (name == "catalog") return c.system_catalog;
    if (name == "hint") return c.primary_hint;
    if (name == "comment") return c.leading_comment;
    if (name == "multi") return c.multi_statement;
    if (name == "analyze") return c.explain_analyze;
    if (name == "client") return c.copy_to_client;
    if (name == "move") return c.is_move;
    if (name == "chain") return c.chain;
    if (name == "splitpool") return c.splitpool_setting;
    if (name == "txnctl") return c.contains_txn_control;
    FAIL("unknown flag " << std::string(name));
    return false;
}

constexpr Scope P = Scope::Primary;
constexpr Scope E = Scope::Either;
constexpr Scope A = Scope::All;

const Row kRows[] = {
    // SELECT, incl. WITH whose CTEs are all SELECT: EITHER
    {"SELECT abalance FROM pgbench_accounts WHERE aid = 12345", Kind::Read, E, false, true, ""},
    {"select 1", Kind::Read, E, false, true, ""},
    {"(SELECT 1) UNION (SELECT 2)", Kind::Read, E, false, true, ""},
    {"WITH x AS (SELECT 1) SELECT * FROM x", Kind::Read, E, false, true, ""},
    {"VALUES (1)", Kind::Read, E, false, true, ""},
    {"TABLE t", Kind::Read, E, false, true, ""},
    {"SELECT * FROM pg_catalog.pg_class", Kind::Read, E, false, true, "catalog"},
    {"SELECT * FROM pg_stat_activity", Kind::Read, E, false, true, "catalog"},
    // SELECT INTO / locking clauses: PRIMARY
    {"SELECT * INTO t2 FROM t", Kind::Write, P, true, false, "select_into"},
    {"SELECT * FROM t FOR UPDATE", Kind::Write, P, true, false, "for_update"},
    {"SELECT * FROM t FOR SHARE", Kind::Write, P, true, false, "for_update"},
    {"SELECT * FROM t FOR NO KEY UPDATE", Kind::Write, P, true, false, "for_update"},
    {"SELECT * FROM t FOR KEY SHARE NOWAIT", Kind::Write, P, true, false, "for_update"},
    {"SELECT * FROM t WHERE a IN (SELECT a FROM u FOR UPDATE)", Kind::Write, P, true, false, "for_update"},
    // WITH containing a non-SELECT CTE: PRIMARY
    {"WITH x AS (INSERT INTO a VALUES (1) RETURNING *) SELECT * FROM x", Kind::Write, P, true, false, "cte"},
    {"WITH x AS (UPDATE a SET b = 1 RETURNING *) SELECT * FROM x", Kind::Write, P, true, false, "cte"},
    {"WITH x AS (DELETE FROM a RETURNING *) SELECT * FROM x", Kind::Write, P, true, false, "cte"},
    {"WITH x AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM x", Kind::Write, P, true, false, "cte"},
    // DML
    {"INSERT INTO t VALUES (1)", Kind::Write, P, true, false, ""},
    {"UPDATE t SET a = 1", Kind::Write, P, true, false, ""},
    {"DELETE FROM t", Kind::Write, P, true, false, ""},
    {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", Kind::Write, P, true, false, ""},
    // COPY
    {"COPY t FROM STDIN", Kind::CopyFrom, P, true, false, ""},
    {"COPY t FROM '/tmp/f'", Kind::CopyFrom, P, true, false, ""},
    {"COPY t TO STDOUT", Kind::CopyTo, E, false, true, "client"},
    {"COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)", Kind::CopyTo, E, false, true, "client"},
    {"COPY t TO '/tmp/f'", Kind::CopyTo, P, false, false, ""},
    {"COPY t TO PROGRAM 'gzip > /tmp/f'", Kind::CopyTo, P, false, false, ""},
    {"COPY (DELETE FROM t RETURNING *) TO STDOUT", Kind::CopyTo, P, true, false, "cte"},
    // LOCK by mode
    {"LOCK t", Kind::Lock, P, true, false, ""},
    {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", Kind::Lock, P, true, false, ""},
    {"LOCK TABLE t IN EXCLUSIVE MODE", Kind::Lock, P, true, false, ""},
    {"LOCK TABLE t IN SHARE ROW EXCLUSIVE MODE", Kind::Lock, P, true, false, ""},
    {"LOCK TABLE t IN SHARE MODE", Kind::Lock, P, true, false, ""},
    {"LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE", Kind::Lock, P, true, false, ""},
    {"LOCK TABLE t IN ROW EXCLUSIVE MODE", Kind::Lock, P, true, false, ""},
    {"LOCK TABLE t IN ROW SHARE MODE", Kind::Lock, A, false, false, ""},
    {"LOCK TABLE t IN ACCESS SHARE MODE", Kind::Lock, A, false, false, ""},
    // transaction control
    {"BEGIN", Kind::Begin, A, false, false, ""},
    {"START TRANSACTION", Kind::Begin, A, false, false, ""},
    {"BEGIN ISOLATION LEVEL SERIALIZABLE", Kind::Begin, A, false, false, ""},
    {"BEGIN READ WRITE", Kind::Begin, A, false, false, ""},
    {"SAVEPOINT a", Kind::Savepoint, A, false, false, ""},
    {"ROLLBACK TO SAVEPOINT a", Kind::RollbackToSavepoint, A, false, false, ""},
    {"ROLLBACK TO a", Kind::RollbackToSavepoint, A, false, false, ""},
    {"RELEASE SAVEPOINT a", Kind::ReleaseSavepoint, A, false, false, ""},
    {"RELEASE a", Kind::ReleaseSavepoint, A, false, false, ""},
    {"PREPARE TRANSACTION 'g1'", Kind::TwoPhase, P, false, false, ""},
    {"COMMIT PREPARED 'g1'", Kind::TwoPhase, P, false, false, ""},
    {"ROLLBACK PREPARED 'g1'", Kind::TwoPhase, P, false, false, ""},
    {"COMMIT", Kind::Commit, A, false, false, ""},
    {"END", Kind::Commit, A, false, false, ""},
    {"COMMIT AND CHAIN", Kind::Commit, A, false, false, "chain"},
    {"ROLLBACK", Kind::Rollback, A, false, false, ""},
    {"ABORT", Kind::Rollback, A, false, false, ""},
    // SET that standbys refuse: PRIMARY
    {"SET transaction_read_only = off", Kind::Set, P, false, false, ""},
    {"SET transaction_read_only = f", Kind::Set, P, false, false, ""},
    {"SET transaction_read_only = false", Kind::Set, P, false, false, ""},
    {"SET transaction_read_only = 0", Kind::Set, P, false, false, ""},
    {"SET transaction_read_only TO 'off'", Kind::Set, P, false, false, ""},
    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Kind::Set, P, false, false, ""},
    {"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", Kind::Set, P, false, false, ""},
    {"SET default_transaction_isolation = 'serializable'", Kind::Set, P, false, false, ""},
    {"SET transaction_isolation = 'serializable'", Kind::Set, P, false, false, ""},
    {"SET TRANSACTION READ WRITE", Kind::Set, P, false, false, ""},
    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", Kind::Set, P, false, false, ""},
    // any other SET / RESET / DISCARD: BOTH
    {"SET transaction_read_only = on", Kind::Set, A, false, false, ""},
    {"SET TRANSACTION READ ONLY", Kind::Set, A, false, false, ""},
    {"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", Kind::Set, A, false, false, ""},
    {"SET search_path = a, b", Kind::Set, A, false, false, ""},
    {"SET LOCAL statement_timeout = 0", Kind::Set, A, false, false, ""},
    {"SET TIME ZONE 'UTC'", Kind::Set, A, false, false, ""},
    {"SET x TO DEFAULT", Kind::Set, A, false, false, ""},
    {"RESET search_path", Kind::Reset, A, false, false, ""},
    {"RESET ALL", Kind::Reset, A, false, false, ""},
    {"DISCARD ALL", Kind::DiscardAll, A, false, false, ""},
    {"DISCARD PLANS", Kind::Discard, A, false, false, ""},
    {"DISCARD TEMP", Kind::Discard, A, false, false, ""},
    {"DISCARD SEQUENCES", Kind::Discard, A, false, false, ""},
    // our own setting, also unquoted (PRIMARY is a reserved word)
    {"SET splitpool.route = primary", Kind::Set, A, false, false, "splitpool"},
    {"SET splitpool.route TO 'primary'", Kind::Set, A, false, false, "splitpool"},
    {"RESET splitpool.route", Kind::Reset, A, false, false, "splitpool"},
    {"SHOW splitpool.route", Kind::Show, E, false, true, "splitpool"},
    // PREPARE: classified by its statement; EXECUTE / DEALLOCATE
    {"PREPARE p AS SELECT 1", Kind::Prepare, E, false, true, ""},
    {"PREPARE p (int) AS UPDATE t SET a = $1", Kind::Prepare, P, true, false, ""},
    {"PREPARE p AS SELECT * FROM t FOR UPDATE", Kind::Prepare, P, true, false, "for_update"},
    {"EXECUTE p", Kind::Execute, P, false, false, ""},
    {"EXECUTE p (1, 'x')", Kind::Execute, P, false, false, ""},
    {"DEALLOCATE p", Kind::Deallocate, P, false, false, ""},
    {"DEALLOCATE PREPARE p", Kind::Deallocate, P, false, false, ""},
    {"DEALLOCATE ALL", Kind::DeallocateAll, A, false, false, ""},
    // SHOW, EXPLAIN
    {"SHOW search_path", Kind::Show, E, false, true, ""},
    {"SHOW ALL", Kind::Show, E, false, true, ""},
    {"EXPLAIN SELECT 1", Kind::Explain, E, false, true, ""},
    {"EXPLAIN ANALYZE SELECT 1", Kind::Explain, E, false, true, "analyze"},
    {"EXPLAIN (ANALYZE true, BUFFERS) SELECT 1", Kind::Explain, E, false, true, "analyze"},
    {"EXPLAIN (ANALYZE false) DELETE FROM t", Kind::Explain, P, false, false, ""},
    {"EXPLAIN INSERT INTO t VALUES (1)", Kind::Explain, P, false, false, ""},
    {"EXPLAIN ANALYZE INSERT INTO t VALUES (1)", Kind::Explain, P, true, false, "analyze"},
    // everything else: PRIMARY, and a write
    {"CREATE TABLE x (a int)", Kind::Utility, P, true, false, ""},
    {"CREATE TEMP TABLE x (a int)", Kind::Utility, P, true, false, ""},
    {"CREATE TABLE x AS SELECT 1", Kind::Utility, P, true, false, "select_into"},
    {"DROP TABLE x", Kind::Utility, P, true, false, ""},
    {"ALTER TABLE x ADD b int", Kind::Utility, P, true, false, ""},
    {"TRUNCATE t", Kind::Utility, P, true, false, ""},
    {"COMMENT ON TABLE t IS 'x'", Kind::Utility, P, true, false, ""},
    {"VACUUM ANALYZE t", Kind::Utility, P, true, false, ""},
    {"ANALYZE t", Kind::Utility, P, true, false, ""},
    {"GRANT SELECT ON t TO u", Kind::Utility, P, true, false, ""},
    {"CREATE EXTENSION hstore", Kind::Utility, P, true, false, ""},
    {"REINDEX TABLE t", Kind::Utility, P, true, false, ""},
    {"CLUSTER t", Kind::Utility, P, true, false, ""},
    {"CHECKPOINT", Kind::Utility, P, true, false, ""},
    {"CALL p(1)", Kind::Write, P, true, false, ""},
    {"DO $$BEGIN PERFORM 1; END$$", Kind::Write, P, true, false, ""},
    {"DECLARE c CURSOR FOR SELECT 1", Kind::DeclareCursor, P, false, false, ""},
    {"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t FOR UPDATE", Kind::DeclareCursor, P, true, false, "for_update"},
    {"FETCH 10 FROM c", Kind::Fetch, P, false, false, ""},
    {"MOVE 10 IN c", Kind::Fetch, P, false, false, "move"},
    {"CLOSE c", Kind::ClosePortal, P, false, false, ""},
    {"CLOSE ALL", Kind::ClosePortal, P, false, false, ""},
    {"LISTEN ch", Kind::Listen, P, false, false, ""},
    {"UNLISTEN *", Kind::Unlisten, P, false, false, ""},
    {"NOTIFY ch, 'payload'", Kind::Notify, P, false, false, ""},
    // multi-statement strings, unparseable, empty
    {"SELECT 1; SELECT 2", Kind::MultiStatement, P, false, false, "multi"},
    {"BEGIN; INSERT INTO t VALUES (1); COMMIT", Kind::MultiStatement, P, true, false, "multi txnctl"},
    {"SELEC 1", Kind::Unparseable, P, true, false, ""},
    {"SELECT 'unterminated", Kind::Unparseable, P, true, false, ""},
    {"", Kind::Empty, E, false, true, ""},
    {"   ", Kind::Empty, E, false, true, ""},
    {";", Kind::Empty, E, false, true, ""},
    {"-- nothing", Kind::Empty, E, false, true, "comment"},
    // comments and hints (not in the parse tree)
    {"/*+ primary */ SELECT 1", Kind::Read, E, false, true, "hint comment"},
    {"SELECT /*+ Primary */ 1", Kind::Read, E, false, true, "hint"},
    {"/* app=web */ SELECT 1", Kind::Read, E, false, true, "comment"},
};

std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == ' ') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

}  // namespace

TEST_CASE("classification table (spec 1.2)") {
    for (const Row& r : kRows) {
        Classification c = classify(r.sql);
        INFO("sql='" << std::string(r.sql) << "' kind=" << std::string(kind_name(c.kind)) << " error=" << c.error);
        CHECK(c.kind == r.kind);
        CHECK(c.scope == r.scope);
        CHECK(c.writes == r.writes);
        CHECK(c.load_balanceable == r.balanceable);
        for (const std::string& f : words(r.flags)) CHECK_MESSAGE(flag(c, f), "flag " << f);
    }
}

TEST_CASE("functions and relations are collected from the whole tree") {
    Classification c = classify(
        "SELECT public.f1(a), nextval('s') FROM s1.t1 JOIN t2 ON true, LATERAL (SELECT g(1) FROM t3) q "
        "WHERE EXISTS (SELECT 1 FROM t4 WHERE h(t4.x))");
    CHECK(c.functions == std::vector<std::string>{"public.f1", "nextval", "g", "h"});
    CHECK(c.relations == std::vector<std::string>{"s1.t1", "t2", "t3", "t4"});
    Classification cte = classify("WITH x AS (SELECT * FROM base) SELECT * FROM x");
    CHECK(cte.relations == std::vector<std::string>{"base"});
    Classification quoted = classify("SELECT * FROM \"MyTable\"");
    CHECK(quoted.relations == std::vector<std::string>{"MyTable"});
    Classification upper = classify("SELECT * FROM MyTable");
    CHECK(upper.relations == std::vector<std::string>{"mytable"});
}

TEST_CASE("written relations, temp and unlogged tables, drops") {
    CHECK(classify("INSERT INTO s.t VALUES (1)").written_relations == std::vector<std::string>{"s.t"});
    CHECK(classify("UPDATE t SET a = (SELECT b FROM u)").written_relations == std::vector<std::string>{"t"});
    CHECK(classify("WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d").written_relations ==
          std::vector<std::string>{"b", "a"});
    CHECK(classify("COPY t FROM STDIN").written_relations == std::vector<std::string>{"t"});
    CHECK(classify("TRUNCATE t1, t2").written_relations == std::vector<std::string>{"t1", "t2"});
    CHECK(classify("LOCK t IN EXCLUSIVE MODE").written_relations == std::vector<std::string>{"t"});
    CHECK(classify("LOCK t IN ACCESS SHARE MODE").written_relations.empty());
    CHECK(classify("CREATE TEMP TABLE tt (a int)").temp_tables_created == std::vector<std::string>{"tt"});
    CHECK(classify("CREATE TEMPORARY TABLE tt AS SELECT 1").temp_tables_created == std::vector<std::string>{"tt"});
    CHECK(classify("SELECT * INTO TEMP tt FROM t").temp_tables_created == std::vector<std::string>{"tt"});
    CHECK(classify("CREATE TABLE tt (a int)").temp_tables_created.empty());
    CHECK(classify("CREATE UNLOGGED TABLE u (a int)").unlogged_created == std::vector<std::string>{"u"});
    CHECK(classify("DROP TABLE a, s.b").tables_dropped == std::vector<std::string>{"a", "s.b"});
    CHECK(classify("DROP VIEW v").tables_dropped.empty());
    CHECK(classify("EXPLAIN INSERT INTO t VALUES (1)").written_relations.empty());
}

TEST_CASE("transaction options") {
    Classification b = classify("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE");
    CHECK(b.txn.isolation == Isolation::Serializable);
    CHECK(b.txn.access == Access::ReadOnly);
    CHECK(b.txn.deferrable);
    Classification s = classify("START TRANSACTION READ WRITE, ISOLATION LEVEL REPEATABLE READ");
    CHECK(s.txn.isolation == Isolation::RepeatableRead);
    CHECK(s.txn.access == Access::ReadWrite);
    CHECK(classify("BEGIN").txn.isolation == Isolation::Default);
    CHECK(classify("BEGIN").txn.access == Access::Default);
    CHECK(classify("BEGIN ISOLATION LEVEL READ COMMITTED").txn.isolation == Isolation::ReadCommitted);
    CHECK(classify("BEGIN ISOLATION LEVEL READ UNCOMMITTED").txn.isolation == Isolation::ReadUncommitted);
    Classification st = classify("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    CHECK(st.set.transaction);
    CHECK(st.txn.isolation == Isolation::Serializable);
    Classification sc = classify("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE");
    CHECK(sc.set.session_characteristics);
    CHECK(sc.txn.access == Access::ReadWrite);
}

TEST_CASE("SET details") {
    Classification s = classify("SET search_path = a, b");
    CHECK(s.set.name == "search_path");
    CHECK(s.set.value == "a, b");
    CHECK_FALSE(s.set.is_local);
    Classification l = classify("SET LOCAL statement_timeout TO '5s'");
    CHECK(l.set.name == "statement_timeout");
    CHECK(l.set.value == "5s");
    CHECK(l.set.is_local);
    CHECK(classify("SET Work_Mem = 64").set.name == "work_mem");
    CHECK(classify("SET work_mem = 64").set.value == "64");
    CHECK(classify("SET TIME ZONE 'UTC'").set.name == "timezone");
    CHECK(classify("SET x TO DEFAULT").set.value.empty());
    CHECK(classify("RESET ALL").set.reset_all);
    CHECK(classify("RESET work_mem").set.name == "work_mem");
    Classification r = classify("SET transaction_read_only = off");
    CHECK(r.set.value == "off");
    CHECK(r.txn.access == Access::ReadWrite);
    Classification sp = classify("SET SESSION splitpool.route = primary");
    CHECK(sp.set.name == "splitpool.route");
    CHECK(sp.set.value == "primary");
    CHECK(classify("SET LOCAL splitpool.route TO 'default'").set.is_local);
    // only our own name gets the unquoted-keyword fallback
    CHECK(classify("SET x = primary").kind == Kind::Unparseable);
    CHECK(classify("SET splitpool.route = primary; DELETE FROM t").kind == Kind::Unparseable);
}

TEST_CASE("names of prepared statements, cursors, savepoints, channels, gids; lock modes") {
    CHECK(classify("PREPARE p1 AS SELECT 1").name == "p1");
    CHECK(classify("PREPARE p1 AS SELECT 1").inner == Kind::Read);
    CHECK(classify("PREPARE p2 AS DELETE FROM t").inner == Kind::Write);
    CHECK(classify("EXECUTE p1").name == "p1");
    CHECK(classify("DEALLOCATE p1").name == "p1");
    CHECK(classify("DECLARE c1 CURSOR FOR SELECT 1").name == "c1");
    CHECK(classify("FETCH NEXT FROM c1").name == "c1");
    CHECK(classify("CLOSE c1").name == "c1");
    CHECK(classify("CLOSE ALL").name.empty());
    CHECK(classify("SAVEPOINT sp1").name == "sp1");
    CHECK(classify("ROLLBACK TO SAVEPOINT sp1").name == "sp1");
    CHECK(classify("RELEASE sp1").name == "sp1");
    CHECK(classify("LISTEN ch1").name == "ch1");
    CHECK(classify("NOTIFY ch1").name == "ch1");
    CHECK(classify("PREPARE TRANSACTION 'gid1'").name == "gid1");
    CHECK(classify("EXPLAIN SELECT 1").inner == Kind::Read);
    CHECK(classify("LOCK t").lock_mode == LockMode::AccessExclusive);
    CHECK(classify("LOCK t IN ROW SHARE MODE").lock_mode == LockMode::RowShare);
    CHECK(classify("LOCK t IN SHARE UPDATE EXCLUSIVE MODE").lock_mode == LockMode::ShareUpdateExclusive);
}

TEST_CASE("unparseable SQL keeps PostgreSQL's message") {
    Classification c = classify("SELEC 1");
    CHECK(c.error.find("syntax error") != std::string::npos);
    CHECK(classify("SELECT 1").error.empty());
}

TEST_CASE("leading comment and primary hint detection") {
    CHECK(starts_with_comment("/* x */ SELECT 1"));
    CHECK(starts_with_comment("\n\t -- x\nSELECT 1"));
    CHECK_FALSE(starts_with_comment("SELECT 1 -- x"));
    CHECK_FALSE(starts_with_comment("SELECT 1"));
    CHECK_FALSE(starts_with_comment("- 1"));
    CHECK(has_primary_hint("/*+ primary */ SELECT 1"));
    CHECK(has_primary_hint("SELECT /*+primary*/ 1"));
    CHECK(has_primary_hint("SELECT /*+ SeqScan(t) primary */ 1"));
    CHECK(has_primary_hint("SELECT 1 /*+ PRIMARY"));
    CHECK_FALSE(has_primary_hint("SELECT /* primary */ 1"));
    CHECK_FALSE(has_primary_hint("SELECT /*+ primary_key */ 1"));
    CHECK_FALSE(has_primary_hint("SELECT /*+ notprimary */ 1"));
    CHECK_FALSE(has_primary_hint("SELECT primary FROM t"));
}

TEST_CASE("kind names") {
    CHECK(kind_name(Kind::Read) == "read");
    CHECK(kind_name(Kind::RollbackToSavepoint) == "rollback to savepoint");
    CHECK(kind_name(Kind::Unparseable) == "unparseable");
}

TEST_CASE("classification cache: hits, misses, LRU eviction") {
    ClassificationCache cache(2);
    CHECK(cache.lookup_or_classify("SELECT * FROM t WHERE a = 1").kind == Kind::Read);
    CHECK(cache.lookup_or_classify("SELECT * FROM t WHERE a = 2").kind == Kind::Read);  // same key
    CHECK(cache.hits() == 1);
    CHECK(cache.misses() == 1);
    CHECK(cache.size() == 1);
    cache.lookup_or_classify("INSERT INTO t VALUES (1)");
    CHECK(cache.size() == 2);
    cache.lookup_or_classify("SELECT * FROM t WHERE a = 3");  // touch: the INSERT is now least recent
    cache.lookup_or_classify("DELETE FROM t");                // evicts the INSERT
    CHECK(cache.size() == 2);
    uint64_t misses = cache.misses();
    CHECK(cache.lookup_or_classify("INSERT INTO t VALUES (7)").kind == Kind::Write);
    CHECK(cache.misses() == misses + 1);
    CHECK(cache.lookup_or_classify("SELECT * FROM t WHERE a = 4").kind == Kind::Read);  // evicted in turn?
    CHECK(cache.hit_ratio() > 0.0);
    cache.set_capacity(1);
    CHECK(cache.size() == 1);
    cache.clear();
    CHECK(cache.size() == 0);
    // bounded in bytes too: huge statements evict others, one above a sixteenth of it is not kept
    ClassificationCache big;
    std::string pad(200000, 'x');
    for (int i = 0; i < 30; ++i)
        CHECK(big.lookup_or_classify("SELECT c" + std::to_string(i) + " FROM t -- " + pad).kind == Kind::Read);
    CHECK(big.key_bytes() <= ClassificationCache::kMaxKeyBytes);
    CHECK(big.size() < 30);
    CHECK(big.size() >= 15);
    size_t kept = big.size();
    CHECK(big.lookup_or_classify("INSERT INTO t VALUES (1) -- " + std::string(300000, 'y')).kind == Kind::Write);
    CHECK(big.size() == kept);
    CHECK(big.lookup_or_classify("SELECT c29 FROM t -- " + pad).kind == Kind::Read);  // still there
    CHECK(big.hits() == 1);
    // the class depends on the constant here: different entries
    ClassificationCache c2;
    CHECK(c2.lookup_or_classify("SET transaction_read_only = 0").scope == Scope::Primary);
    CHECK(c2.lookup_or_classify("SET transaction_read_only = 1").scope == Scope::All);
    CHECK(c2.lookup_or_classify("SET transaction_isolation = 'serializable'").scope == Scope::Primary);
    CHECK(c2.lookup_or_classify("SET transaction_isolation = 'read committed'").scope == Scope::All);
    CHECK(c2.hits() == 0);
}
