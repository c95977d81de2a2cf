// Statement classification from libpg_query's parse tree: what a statement is and what it touches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace splitpool::parser {

// What the statement is. Names follow PostgreSQL's statement kinds; the router keys its rules on these.
enum class Kind : uint8_t {
    Empty,                // no statement (empty string, only comments): pgpool's dummy read
    Read,                 // SELECT / VALUES / TABLE without locking, INTO or writing CTE
    Write,                // INSERT/UPDATE/DELETE/MERGE, SELECT INTO/FOR UPDATE, writing CTE, CALL, DO
    Utility,              // DDL, VACUUM, TRUNCATE, GRANT... anything else: primary, counts as a write
    Begin,                // BEGIN / START TRANSACTION (options in `begin`)
    Commit,               // COMMIT / END (also COMMIT AND CHAIN, see `chain`)
    Rollback,             // ROLLBACK / ABORT
    Savepoint,            // SAVEPOINT name
    RollbackToSavepoint,  // ROLLBACK TO [SAVEPOINT] name
    ReleaseSavepoint,     // RELEASE [SAVEPOINT] name
    TwoPhase,             // PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED
    Set,                  // SET, SET LOCAL, SET TRANSACTION, SET SESSION CHARACTERISTICS (details in `set`)
    Reset,                // RESET name / RESET ALL
    Discard,              // DISCARD PLANS / SEQUENCES / TEMP
    DiscardAll,           // DISCARD ALL
    Prepare,              // SQL PREPARE name AS stmt; flags are those of the inner statement
    Execute,              // SQL EXECUTE name
    Deallocate,           // DEALLOCATE name
    DeallocateAll,        // DEALLOCATE ALL
    Listen,
    Unlisten,
    Notify,
    DeclareCursor,        // DECLARE name CURSOR FOR stmt; flags of the inner statement
    Fetch,                // FETCH / MOVE (`is_move`)
    ClosePortal,          // CLOSE name / CLOSE ALL
    CopyFrom,             // COPY ... FROM (STDIN, file or program)
    CopyTo,               // COPY ... TO (`copy_to_client` tells STDOUT from file/program)
    Lock,                 // LOCK TABLE (mode in `lock_mode`)
    Explain,              // EXPLAIN [ANALYZE] stmt; `inner` is the inner statement's kind
    Show,                 // SHOW name
    MultiStatement,       // several statements in one string: primary only
    Unparseable,          // syntax error: primary, PostgreSQL reports the error itself
};

// Where pgpool's send_to_where() would send it, before any session or transaction rule.
enum class Scope : uint8_t {
    Primary,   // primary only
    Either,    // a read: any node, subject to the load-balancing rules
    All,       // every node the session (or the transaction) uses: session settings, txn control
};

enum class Isolation : uint8_t { Default, ReadUncommitted, ReadCommitted, RepeatableRead, Serializable };
enum class Access : uint8_t { Default, ReadOnly, ReadWrite };

// Transaction characteristics, from BEGIN/START options or SET TRANSACTION / SESSION CHARACTERISTICS.
struct TxnOptions {
    Isolation isolation = Isolation::Default;
    Access access = Access::Default;
    bool deferrable = false;
};

struct Classification;

// A statement of a multi-statement string that changes session state the session model follows.
struct InnerStatement {
    std::string sql;                           // its own text, as a Query would carry it
    std::shared_ptr<const Classification> cls;
};

// Details of a SET/RESET.
struct SetInfo {
    std::string name;            // lowercased GUC name; "" for SET TRANSACTION / SESSION CHARACTERISTICS
    std::string value;           // first value as text, lowercased ("off", "serializable", "primary"); "" for DEFAULT
    bool is_local = false;       // SET LOCAL
    bool transaction = false;    // SET TRANSACTION ... (options in Classification::txn)
    bool session_characteristics = false;  // SET SESSION CHARACTERISTICS AS TRANSACTION ...
    bool reset_all = false;      // RESET ALL
};

// PostgreSQL lock modes, numbered as in lockdefs.h (LOCK ... IN mode MODE).
enum class LockMode : uint8_t {
    None = 0, AccessShare = 1, RowShare = 2, RowExclusive = 3, ShareUpdateExclusive = 4,
    Share = 5, ShareRowExclusive = 6, Exclusive = 7, AccessExclusive = 8,
};

struct Classification {
    Kind kind = Kind::Empty;
    Kind inner = Kind::Empty;    // Prepare / DeclareCursor / Explain: the inner statement's kind
    Scope scope = Scope::Either;

    // Makes an explicit transaction "writing" (pgpool's writing-transaction flag): data, schema,
    // locks >= ROW EXCLUSIVE, SET transaction_read_only = off... Transaction control, savepoints,
    // session settings, reads, SHOW, cursor fetches and listen/notify do not.
    bool writes = false;
    // A read that may go to a standby (pgpool's is_select_query): SELECT without INTO/locking/
    // writing CTE, COPY TO STDOUT, SHOW, EXPLAIN of such a read, PREPARE of such a read, empty.
    // Function volatility, temp/unlogged tables and catalog access are judged later by the router.
    bool load_balanceable = false;

    bool multi_statement = false;  // several statements: primary only
    bool for_update = false;       // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE anywhere
    bool select_into = false;      // SELECT ... INTO / CREATE TABLE AS
    bool modifying_cte = false;    // WITH x AS (INSERT/UPDATE/DELETE/MERGE ...)
    bool system_catalog = false;   // references pg_catalog / information_schema or an unqualified pg_* relation
    bool explain_analyze = false;  // EXPLAIN ANALYZE (executes the inner statement)
    bool copy_to_client = false;   // COPY ... TO STDOUT (not a server file or program)
    bool is_move = false;          // MOVE rather than FETCH
    bool chain = false;            // COMMIT/ROLLBACK AND CHAIN
    bool primary_hint = false;     // "/*+ primary */" somewhere in the text (comments are not in the tree)
    bool leading_comment = false;  // text starts (after whitespace) with a comment: pgpool's allow_sql_comments = off rule
    bool contains_txn_control = false;  // multi-statement string containing BEGIN/COMMIT/ROLLBACK...
    // SET/RESET/SHOW splitpool.*: our own session setting (splitpool.route = primary | default), answered
    // by splitpool, never forwarded. Also recognised unquoted (`= primary`), which PostgreSQL's grammar rejects.
    bool splitpool_setting = false;
    // Calls set_config(): a session setting made by a query (reaches every node of the session, as SET does).
    bool calls_set_config = false;
    // A standby refused this statement as a standby (25006): the cached classification remembers it
    // for the child, so the next run goes to the primary at once. Bounded by the cache, unlike a list.
    mutable bool refused_by_standby = false;

    std::vector<std::string> functions;          // called functions, lowercased, as written ("public.f1", "nextval")
    std::vector<std::string> relations;          // referenced relations, lowercased, as written ("s.t", "t"); CTE names excluded
    std::vector<std::string> written_relations;  // targets of writes, DDL, TRUNCATE, COPY FROM, LOCK >= ROW EXCLUSIVE
    std::vector<std::string> temp_tables_created;  // CREATE TEMP TABLE / CREATE TEMP TABLE AS / SELECT INTO TEMP
    std::vector<std::string> tables_dropped;     // DROP TABLE names (trace mode forgets them as temp tables)
    std::vector<std::string> unlogged_created;   // CREATE UNLOGGED TABLE names
    // MultiStatement: its settings (SET, RESET, set_config), DISCARD, PREPARE and DEALLOCATE, in order.
    std::vector<InnerStatement> session_statements;

    // PREPARE/EXECUTE/DEALLOCATE statement name, cursor name (DECLARE/FETCH/CLOSE, "" = CLOSE ALL),
    // savepoint name, LISTEN/UNLISTEN/NOTIFY channel, 2PC gid.
    std::string name;
    TxnOptions txn;              // Begin, and Set with set.transaction / set.session_characteristics
    SetInfo set;                 // Set / Reset
    LockMode lock_mode = LockMode::None;
    std::string error;           // Unparseable: libpg_query's message
};

// Classifies one query string (possibly several statements). Never throws.
Classification classify(std::string_view sql);

// True when the text starts, after whitespace, with "--" or "/*".
bool starts_with_comment(std::string_view sql);

// True when "/*+ primary */" (any case and spacing inside the comment) appears in the text.
bool has_primary_hint(std::string_view sql);

std::string_view kind_name(Kind kind);

}  // namespace splitpool::parser
