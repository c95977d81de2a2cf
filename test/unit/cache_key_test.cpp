// Tests of the one-pass classification cache key: literals masked, everything else kept.
#include <doctest/doctest.h>

#include <string>

#include "parser/cache_key.hpp"

using splitpool::parser::cache_key;

namespace {

bool same(const char* a, const char* b) { return cache_key(a) == cache_key(b); }

// The key with the placeholder shown as '?', prefix included (N = masked, V = verbatim).
std::string shown(const char* sql) {
    std::string k = cache_key(sql);
    for (char& c : k)
        if (c == splitpool::parser::kLiteralMark) c = '?';
    return k;
}

}  // namespace

TEST_CASE("statements differing only in constants share a key") {
    CHECK(same("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
               "SELECT abalance FROM pgbench_accounts WHERE aid = 99;"));
    CHECK(shown("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;") ==
          "NSELECT abalance FROM pgbench_accounts WHERE aid = ?;");
    CHECK(same("SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = 'a much longer string'"));
    CHECK(same("SELECT * FROM t WHERE a = 1.5", "SELECT * FROM t WHERE a = 2"));
    CHECK(same("SELECT * FROM t WHERE a = 1e10", "SELECT * FROM t WHERE a = .5"));
    CHECK(same("SELECT * FROM t WHERE a = 1.5E-3", "SELECT * FROM t WHERE a = 7"));
    CHECK(same("SELECT * FROM t WHERE a = E'x\\'y'", "SELECT * FROM t WHERE a = 'z'"));
    CHECK(same("SELECT * FROM t WHERE a = $$x$$", "SELECT * FROM t WHERE a = $tag$y$tag$"));
    CHECK(same("SELECT * FROM t WHERE a = B'0101'", "SELECT * FROM t WHERE a = X'FF'"));
    CHECK(same("INSERT INTO t VALUES (1, 'a')", "INSERT INTO t VALUES (2, 'b')"));
    CHECK(same("UPDATE t SET a = 1 WHERE id = 2", "UPDATE t SET a = 3 WHERE id = 4"));
    CHECK(same("DELETE FROM t WHERE id = 2", "DELETE FROM t WHERE id = 3"));
    CHECK(same("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 2) SELECT * FROM x"));
    CHECK(same("(SELECT 1)", "(SELECT 2)"));
    CHECK(same("SELECT -1", "SELECT -2"));
}

TEST_CASE("quotes inside strings do not end them") {
    CHECK(shown("SELECT 'it''s' FROM t") == "NSELECT ? FROM t");
    CHECK(shown("SELECT E'a\\'b' FROM t") == "NSELECT ? FROM t");
    CHECK(shown("SELECT E'a\\\\' FROM t") == "NSELECT ? FROM t");
    CHECK(shown("SELECT e'x''y' FROM t") == "NSELECT ? FROM t");
    // standard strings have no backslash escape (standard_conforming_strings = on)
    CHECK(shown("SELECT 'a\\' FROM t") == "NSELECT ? FROM t");
    CHECK(shown("SELECT $$ it's $$ FROM t") == "NSELECT ? FROM t");
    CHECK(shown("SELECT $a$ $$ $b$ $a$ FROM t") == "NSELECT ? FROM t");
    CHECK(shown("SELECT 'a' 'b'") == "NSELECT ? ?");
    CHECK(shown("SELECT B'01''10'") == "NSELECT ??");  // a bit string ends at its first quote
    CHECK(shown("SELECT U&'d\\0061t' FROM t") == "NSELECT U&? FROM t");
}

TEST_CASE("code that looks like a string or number is kept") {
    CHECK(shown("SELECT \"it's\" FROM t1") == "NSELECT \"it's\" FROM t1");
    CHECK(shown("SELECT \"a\"\"b\" FROM t") == "NSELECT \"a\"\"b\" FROM t");
    CHECK(shown("SELECT * FROM t WHERE a = $1") == "NSELECT * FROM t WHERE a = $1");
    CHECK(shown("SELECT col1, x2y FROM t_3") == "NSELECT col1, x2y FROM t_3");
    CHECK(shown("SELECT a$1 FROM t") == "NSELECT a$1 FROM t");
    CHECK(shown("SELECT 1abc") == "NSELECT ?abc");
    CHECK(shown("SELECT a[1:2] FROM t") == "NSELECT a[?:?] FROM t");
    CHECK(shown("SELECT 1..2") == "NSELECT ?..?");
    CHECK(shown("SELECT 1e") == "NSELECT ?e");
    CHECK(shown("SELECT typ 'x'") == "NSELECT typ ?");
    CHECK(shown("SELECT date '2024-01-01'") == "NSELECT date ?");
    CHECK_FALSE(same("SELECT a FROM t WHERE b = $1", "SELECT a FROM t WHERE b = $2"));
    CHECK_FALSE(same("SELECT * FROM t1", "SELECT * FROM t2"));
    CHECK_FALSE(same("SELECT 1", "SELECT  1"));  // whitespace is kept: cheap and exact
    CHECK_FALSE(same("SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = '1' FOR UPDATE"));
}

TEST_CASE("comments are kept verbatim, nested ones too") {
    CHECK(shown("SELECT /* 123 'x' */ 1") == "NSELECT /* 123 'x' */ ?");
    CHECK(shown("SELECT 1 -- 'open\nFROM t") == "NSELECT ? -- 'open\nFROM t");
    CHECK(shown("SELECT /* a /* b */ 'c' */ 2") == "NSELECT /* a /* b */ 'c' */ ?");
    CHECK(shown("/* lead */ SELECT 5") == "N/* lead */ SELECT ?");
    CHECK(shown("SELECT 1--2\n") == "NSELECT ?--2\n");
    CHECK_FALSE(same("/* a */ SELECT 1", "/* b */ SELECT 1"));
    CHECK_FALSE(same("/* x */ SELECT 1", "SELECT 1"));
}

TEST_CASE("literals kept where the class depends on a constant") {
    CHECK_FALSE(same("SELECT set_config('transaction_read_only', 'off', false)",
                     "SELECT set_config('transaction_read_only', 'on', false)"));
    CHECK_FALSE(same("SELECT SET_CONFIG('a', 'b', false)", "SELECT SET_CONFIG('a', 'c', false)"));
    CHECK_FALSE(same("SELECT \"set_config\"('a', 'b', false)", "SELECT \"set_config\"('a', 'c', false)"));
    CHECK_FALSE(same("SELECT pg_terminate_backend(123)", "SELECT pg_terminate_backend(456)"));
    CHECK_FALSE(same("SELECT pg_cancel_backend(123)", "SELECT pg_cancel_backend(456)"));
    CHECK_FALSE(same("SET transaction_read_only = 0", "SET transaction_read_only = 1"));
    CHECK_FALSE(same("SET transaction_isolation = 'serializable'", "SET transaction_isolation = 'read committed'"));
    CHECK_FALSE(same("SET default_transaction_isolation = 'serializable'",
                     "SET default_transaction_isolation = 'repeatable read'"));
    CHECK_FALSE(same("SET splitpool.route = 'primary'", "SET splitpool.route = 'default'"));
    CHECK_FALSE(same("SELECT /*+ primary */ 1", "SELECT /*+ primary */ 2"));
    CHECK_FALSE(same("COPY t TO '/a'", "COPY t TO '/b'"));
    CHECK_FALSE(same("EXPLAIN SELECT 1", "EXPLAIN SELECT 2"));
    CHECK_FALSE(same("PREPARE TRANSACTION 'a'", "PREPARE TRANSACTION 'b'"));
    CHECK_FALSE(same("SELECT 1; SET transaction_read_only = 0", "SELECT 1; SET transaction_read_only = 1"));
    CHECK(shown("SET x = 1")[0] == 'V');
    CHECK(shown("SELECT pg_terminate_backend(1)") == "VSELECT pg_terminate_backend(1)");
    // a longer identifier that merely contains a sensitive word is not sensitive
    CHECK(shown("SELECT my_set_config_x(1)") == "NSELECT my_set_config_x(?)");
}

TEST_CASE("odd input never reads past the end and cannot forge a placeholder") {
    CHECK(shown("SELECT 'unterminated") == "NSELECT ?");
    CHECK(shown("SELECT E'unterminated\\") == "NSELECT ?");
    CHECK(shown("SELECT $$unterminated") == "NSELECT ?");
    CHECK(shown("SELECT \"unterminated") == "NSELECT \"unterminated");
    CHECK(shown("SELECT /* unterminated") == "NSELECT /* unterminated");
    CHECK(shown("SELECT $") == "NSELECT $");
    CHECK(shown("SELECT $a") == "NSELECT $a");
    CHECK(shown("") == "N");
    CHECK(shown("1") == "N?");
    std::string raw = "SELECT \x01";
    CHECK_FALSE(cache_key(raw) == cache_key("SELECT 1"));
}
