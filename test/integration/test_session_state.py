"""Session state across nodes: prepared statements (SQL and protocol level) that write, session and
transaction settings, functions that refuse to run during recovery, LOCK / DISCARD TEMP, and asyncpg.

Which node ran a statement is read from the node itself (inet_server_port()), never from splitpool's log.
With weights (0, 1, 1) balanced reads go to the standbys. Where a read sent to the wrong node would
still give the right answer, replay is paused on both standbys (after they caught up with the test's
tables), so a standby that serves a read after a write answers with stale data.
"""

import asyncio
import contextlib
import os
import socket
import threading

import psycopg
import psycopg2
import pytest

from helpers import connect, pgbench, pgbench_processed, wait_until

DB = "sp_test"
WEIGHTS = (0, 1, 1)
# Every client operation is bounded: a session splitpool stops answering is cut after this long.
CLIENT_DEADLINE = 20


# ----------------------------------------------------------------------------- shared helpers

def primary_port(cluster):
    return cluster.ports[0]


def standby_ports(cluster):
    return cluster.ports[1:]


def node_sql(cluster, node, sql, db=DB):
    """Runs SQL directly on a node (unix socket, bypassing splitpool); the rows of the last statement."""
    with psycopg.connect(host=cluster.dir, port=cluster.ports[node], user="postgres", dbname=db,
                         autocommit=True, connect_timeout=5) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else []


def node_value(cluster, node, sql, db=DB):
    return node_sql(cluster, node, sql, db)[0][0]


def wait_caught_up(cluster, timeout=30):
    """Like Cluster.wait_replicas_caught_up (the WAL insert position), with direct connections."""
    lsn = node_value(cluster, 0, "select pg_current_wal_insert_lsn()::text", db="postgres")
    for k in range(1, cluster.replicas + 1):
        wait_until(lambda: node_value(cluster, k, f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn",
                                      db="postgres"),
                   timeout, f"replica node{k} to replay {lsn}")


def make_table(cluster, name, columns, rows_sql=None):
    """(Re)creates a table on the primary and waits until both standbys have it."""
    node_sql(cluster, 0, f"drop table if exists {name}")
    node_sql(cluster, 0, f"create table {name} ({columns})")
    if rows_sql:
        node_sql(cluster, 0, rows_sql)
    wait_caught_up(cluster)


@contextlib.contextmanager
def replay_paused(cluster):
    """Both standbys stop replaying (after catching up) until the block ends; resumed whatever happens."""
    wait_caught_up(cluster)
    standbys = range(1, cluster.replicas + 1)
    try:
        for k in standbys:
            node_sql(cluster, k, "select pg_wal_replay_pause()", db="postgres")
            # 'pause requested' already stops replay before the next record; 'paused' once it got there
            assert node_value(cluster, k, "select pg_get_wal_replay_pause_state()", db="postgres") != "not paused"
        yield
    finally:
        for k in standbys:
            try:
                node_sql(cluster, k, "select pg_wal_replay_resume()", db="postgres")
            except psycopg.Error as e:  # keep resuming the others
                print(f"resuming replay on node{k} failed: {e}")


@contextlib.contextmanager
def bounded(fileno, what, seconds=CLIENT_DEADLINE):
    """Cuts the client's socket when the block has not finished after `seconds` (splitpool hung), so a
    blocked driver call fails instead of waiting forever; reported as a timeout."""
    fired = threading.Event()

    def cut():
        fired.set()
        try:
            s = socket.socket(fileno=os.dup(fileno))
            try:
                s.shutdown(socket.SHUT_RDWR)
            finally:
                s.close()
        except OSError:
            pass

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as e:
        if fired.is_set():
            raise AssertionError(f"{what}: no answer from splitpool within {seconds}s") from e
        raise
    finally:
        timer.cancel()
    if fired.is_set():
        raise AssertionError(f"{what}: no answer from splitpool within {seconds}s")


@contextlib.contextmanager
def pg3(port, what="psycopg session", **kw):
    """psycopg 3 (extended protocol) session through splitpool to sp_test, autocommit, bounded."""
    with connect(port, dbname=DB, **kw) as c:
        with bounded(c.pgconn.socket, what):
            yield c


@contextlib.contextmanager
def pg2(port, what="psycopg2 session", **kw):
    """psycopg2 (simple query protocol only) session to sp_test, autocommit, bounded."""
    c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=DB, connect_timeout=5,
                         gssencmode="disable", **kw)
    c.autocommit = True
    try:
        with bounded(c.fileno(), what):
            yield c.cursor()
    finally:
        c.close()


def one(cur, sql, params=None):
    """Executes on a psycopg2 cursor or a psycopg 3 connection and returns the first row."""
    if isinstance(cur, psycopg.Connection):
        return cur.execute(sql, params).fetchone()
    cur.execute(sql, params)
    return cur.fetchone()


def setting_and_port(c, name="application_name"):
    return tuple(one(c, f"select current_setting('{name}'), inet_server_port()"))


def spread_reads(c, n=24, name="application_name"):
    """n reads of a setting; {port: set of values seen there}."""
    seen = {}
    for _ in range(n):
        value, port = setting_and_port(c, name)
        seen.setdefault(port, set()).add(value)
    return seen


def splitpool_for(splitpool, cluster, **overrides):
    return splitpool(backend=cluster.backends(weights=WEIGHTS), **overrides)


# ----------------------------------------------------------------------------- 1. SQL PREPARE / EXECUTE

def test_sql_execute_of_a_prepared_write_makes_the_transaction_writing(splitpool, cluster):
    """Simple protocol: EXECUTE of a PREPAREd INSERT is a write; the transaction's later reads (EXECUTE of a
    prepared read and plain SELECTs) run on the primary and see it, in this and in later transactions."""
    make_table(cluster, "ss_prep", "id int")
    sp = splitpool_for(splitpool, cluster)
    primary = primary_port(cluster)
    with replay_paused(cluster), pg2(sp.port) as cur:
        cur.execute("prepare w as insert into ss_prep values (1)")
        cur.execute("prepare r as select count(*), inet_server_port() from ss_prep")

        cur.execute("begin")
        assert one(cur, "execute r")[0] == 0  # nothing written yet: may be balanced
        cur.execute("execute w")
        assert one(cur, "execute r") == (1, primary)
        assert one(cur, "select count(*), inet_server_port() from ss_prep") == (1, primary)
        cur.execute("commit")

        cur.execute("begin")
        cur.execute("execute w")
        assert one(cur, "select count(*), inet_server_port() from ss_prep") == (2, primary)
        assert one(cur, "execute r") == (2, primary)
        cur.execute("commit")
    assert node_value(cluster, 0, "select count(*) from ss_prep") == 2


def test_sql_execute_of_a_prepared_read_is_balanced_outside_transactions(splitpool, cluster):
    make_table(cluster, "ss_prep_ro", "id int", "insert into ss_prep_ro values (1)")
    sp = splitpool_for(splitpool, cluster)
    with pg2(sp.port) as cur:
        cur.execute("prepare r as select count(*), inet_server_port() from ss_prep_ro")
        for _ in range(3):
            count, port = one(cur, "execute r")
            assert count == 1 and port in standby_ports(cluster)
        cur.execute("begin")  # a transaction that only reads stays balanced too
        assert one(cur, "execute r")[1] in standby_ports(cluster)
        cur.execute("commit")


# ----------------------------------------------------------------------------- 2. extended protocol

PGBENCH_SCRIPT = """\
BEGIN;
SELECT n FROM ss_cnt WHERE id = :client_id;
UPDATE ss_cnt SET n = n + 1 WHERE id = :client_id RETURNING n AS expected \\gset
SELECT n AS got FROM ss_cnt WHERE id = :client_id \\gset
\\if :got != :expected
SELECT 'read-your-writes violated'::int;
\\endif
END;
"""


@pytest.mark.parametrize("mode", ["prepared", "extended"])
def test_pgbench_named_write_reused_in_later_transactions(splitpool, cluster, tmp_path, mode):
    """Each transaction reads its counter, increments it and reads it again: the second read must see
    the increment (it can only on the primary: a standby never sees an uncommitted update). The expected
    value comes from UPDATE ... RETURNING, which runs on the primary, so a balanced first read that lags
    behind cannot make a correct splitpool fail."""
    make_table(cluster, "ss_cnt", "id int primary key, n int",
               "insert into ss_cnt select g, 0 from generate_series(0, 3) g")
    script = tmp_path / "ryw.sql"
    script.write_text(PGBENCH_SCRIPT)
    sp = splitpool_for(splitpool, cluster)
    p = pgbench(sp.port, ["-n", "-M", mode, "-f", script, "-c", "4", "-j", "2", "-t", "250"], db=DB,
                check=False, timeout=60)
    out = p.stdout + p.stderr
    assert "read-your-writes violated" not in out and "aborted" not in out, out[-3000:]
    assert p.returncode == 0, out[-3000:]
    if "number of failed transactions" in p.stdout:
        assert "number of failed transactions: 0 " in p.stdout, p.stdout
    assert pgbench_processed(p.stdout)[0] == 1000
    assert node_value(cluster, 0, "select string_agg(n::text, ',' order by id) from ss_cnt") == "250,250,250,250"


def test_psycopg_prepared_update_reused_across_transactions(splitpool, cluster):
    make_table(cluster, "ss_cnt3", "id int primary key, n int", "insert into ss_cnt3 values (1, 0)")
    sp = splitpool_for(splitpool, cluster)
    primary = primary_port(cluster)
    read = "select n, inet_server_port() from ss_cnt3 where id = %s"
    with replay_paused(cluster), pg3(sp.port) as c:
        for expected in (1, 2, 3):
            with c.transaction():
                c.execute(read, (1,), prepare=True)  # before the write: may be balanced
                c.execute("update ss_cnt3 set n = n + 1 where id = %s", (1,), prepare=True)
                assert c.execute(read, (1,), prepare=True).fetchone() == (expected, primary), \
                    f"transaction {expected}"
    assert node_value(cluster, 0, "select n from ss_cnt3") == 3


def test_prepared_reads_stay_balanced_outside_writing_transactions(splitpool, cluster):
    make_table(cluster, "ss_cnt_ro", "id int primary key, n int", "insert into ss_cnt_ro values (1, 0)")
    sp = splitpool_for(splitpool, cluster)
    standbys, primary = standby_ports(cluster), primary_port(cluster)
    port_read = "select inet_server_port(), n from ss_cnt_ro where id = %s"
    with pg3(sp.port) as c:
        for _ in range(3):  # outside any transaction
            assert c.execute(port_read, (1,), prepare=True).fetchone()[0] in standbys
        with c.transaction():  # a transaction that only reads
            for _ in range(3):
                assert c.execute(port_read, (1,), prepare=True).fetchone()[0] in standbys
        with c.transaction():
            c.execute("update ss_cnt_ro set n = n + 1 where id = %s", (1,), prepare=True)
            assert c.execute(port_read, (1,), prepare=True).fetchone() == (primary, 1)
        # the writing transaction is over: the same prepared read is balanced again
        assert c.execute(port_read, (1,), prepare=True).fetchone()[0] in standbys
        with c.transaction():
            assert c.execute(port_read, (1,), prepare=True).fetchone()[0] in standbys
        with c.transaction(), c.cursor() as cur:
            cur.execute("set transaction read only")
            assert cur.execute(port_read, (1,), prepare=True).fetchone()[0] in standbys


# ----------------------------------------------------------------------------- 3. session settings

def test_prepared_set_reaches_the_standbys(splitpool, cluster):
    """SET prepared at protocol level (psycopg prepare=True) and executed again later (Bind only) must
    reach every node the session reads from, as an unprepared SET does."""
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        c.execute("set application_name = 'x'", prepare=True)
        c.execute("set application_name = 'other'")
        c.execute("set application_name = 'x'", prepare=True)  # the prepared statement, run again
        seen = spread_reads(c)
        assert set(seen) <= set(standby_ports(cluster)), seen
        assert seen == {p: {"x"} for p in seen}, seen


def check_session_value_everywhere(cluster, c, value):
    seen = spread_reads(c)
    assert set(seen) == set(standby_ports(cluster)), f"reads should reach both standbys: {seen}"
    assert seen == {p: {value} for p in seen}, seen
    assert tuple(one(c, "select /*+ primary */ current_setting('application_name'), inet_server_port()")) == \
        (value, primary_port(cluster))


def test_set_config_session_simple_protocol(splitpool, cluster):
    """select set_config(..., false) changes the session like SET: later reads on any node (and on a
    standby the session connects to only afterwards) see it."""
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg2(sp.port) as cur:
        assert one(cur, "select set_config('application_name', 'y', false)") == ("y",)
        check_session_value_everywhere(cluster, cur, "y")


def test_set_config_session_extended_protocol(splitpool, cluster):
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        assert c.execute("select set_config(%s, %s, false)", ("application_name", "y")).fetchone() == ("y",)
        check_session_value_everywhere(cluster, c, "y")


def test_set_config_local_lasts_until_the_end_of_the_transaction(splitpool, cluster):
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        c.execute("set application_name = 'base'")
        c.execute("begin")
        assert c.execute("select set_config(%s, %s, true)", ("application_name", "tx")).fetchone() == ("tx",)
        seen = spread_reads(c, n=12)
        assert seen == {p: {"tx"} for p in seen}, seen
        c.execute("commit")
        seen = spread_reads(c)
        assert set(seen) <= set(standby_ports(cluster)), seen
        assert seen == {p: {"base"} for p in seen}, seen


def test_set_in_a_rolled_back_transaction_is_undone(splitpool, cluster):
    """PostgreSQL: a SET inside a transaction that rolls back is undone, on every node."""
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        c.execute("set application_name = 'base'")
        c.execute("begin")
        c.execute("set application_name = 'rb'")
        assert setting_and_port(c)[0] == "rb"
        c.execute("rollback")
        seen = spread_reads(c)
        assert set(seen) == set(standby_ports(cluster)), f"reads should reach both standbys: {seen}"
        assert seen == {p: {"base"} for p in seen}, seen
        assert one(c, "select /*+ primary */ current_setting('application_name')")[0] == "base"


def test_set_undone_by_a_later_error_in_its_pipeline_stays_undone_everywhere(splitpool, cluster):
    """Extended protocol, one Sync: PostgreSQL rolls back a SET when a later statement of the same
    pipeline fails (and skips one after the failure). No node of the session may keep it."""
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        c.execute("set application_name = 'base'")
        spread_reads(c)  # both standbys are in the session now
        for statements in (["set application_name = 'before'", "select 1/0"],
                           ["select 1/0", "set application_name = 'after'"]):
            with pytest.raises(psycopg.errors.DivisionByZero):
                with c.pipeline():
                    for sql in statements:
                        c.execute(sql)
            seen = spread_reads(c)
            assert set(seen) == set(standby_ports(cluster)), f"reads should reach both standbys: {seen}"
            assert seen == {p: {"base"} for p in seen}, (statements, seen)
            assert one(c, "select /*+ primary */ current_setting('application_name')")[0] == "base"


def test_pipeline_commit_or_rollback_without_begin_ends_its_settings(splitpool, cluster):
    """Extended protocol, one Sync, no BEGIN: the pipeline is one implicit transaction, which a
    ROLLBACK undoes (with the SET before it, also when a BEGIN came between) and a COMMIT makes
    final (an error after it undoes nothing before it). Every node agrees with PostgreSQL."""
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        c.execute("set application_name = 'base'")
        spread_reads(c)  # both standbys are in the session now
        for statements, expected in ((["set application_name = 'rb'", "rollback"], "base"),
                                     (["set application_name = 'rb'", "begin", "rollback"], "base"),
                                     (["set application_name = 'kept'", "commit", "select 1/0"], "kept"),
                                     (["set application_name = 'rb'", "rollback", "set application_name = 'after'"],
                                      "after")):
            with contextlib.suppress(psycopg.errors.DivisionByZero):
                with c.pipeline():
                    for sql in statements:
                        c.execute(sql)
            seen = spread_reads(c)
            assert set(seen) == set(standby_ports(cluster)), f"reads should reach both standbys: {seen}"
            assert seen == {p: {expected} for p in seen}, (statements, seen)
            assert one(c, "select /*+ primary */ current_setting('application_name')")[0] == expected


def run_pipelines(port, batches):
    """Each batch as one psycopg 3 pipeline (one Sync); per batch each statement's rows, status or
    SQLSTATE, the way the differential test compares them."""
    out = []
    with pg3(port) as c:
        for batch in batches:
            results = []
            try:
                with c.pipeline() as p:
                    cursors = [c.cursor() for _ in batch]
                    for cur, sql in zip(cursors, batch):
                        cur.execute(sql, prepare=False)
                    p.sync()
                    for cur in cursors:
                        try:
                            results.append(cur.fetchall() if cur.description else cur.statusmessage)
                        except psycopg.Error as e:
                            results.append(e.sqlstate)
            except psycopg.Error as e:
                results.append(e.sqlstate)
            out.append(results)
    return out


def test_sql_prepare_of_a_name_in_use_in_a_pipeline_leaves_it_where_it_ran(splitpool, cluster):
    """A pipeline whose ROLLBACK takes it to the primary, then a PREPARE of a name already prepared
    (on a standby): splitpool creates the statement on the primary first, so the PREPARE meets
    PostgreSQL's 42P05 there too. The statement exists on the primary from then on: a later
    transaction that EXECUTEs it there must not create it again (that second PREPARE failed and
    aborted the transaction: 25P02 where PostgreSQL gives the rows; seed 20261221 session 2410)."""
    make_table(cluster, "ss_dup", "id int")
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    prepare = "prepare ss_dup as select count(*) >= 0 from ss_dup where id < $1"
    batches = [[prepare], ["rollback", prepare]]
    for isolation in ("serializable", "repeatable read", "read committed"):
        batches += [[f"begin isolation level {isolation}"],
                    ["select txid_current() > 0", "execute ss_dup(1000000)"], ["commit"]]
    batches.append(["execute ss_dup(1000000)"])
    direct = run_pipelines(primary_port(cluster), batches)
    assert direct[1][-1] == "42P05" and direct[3] == [[(True,)], [(True,)]], direct
    assert run_pipelines(sp.port, batches) == direct


def test_settings_inside_a_multi_statement_string(splitpool, cluster):
    """Simple protocol: a string of several statements runs on the primary. A SET in it (here
    search_path, which decides which table a later read sees) reaches the standbys as if sent alone;
    beside transaction control (here a ROLLBACK that undoes it) reads stay on the primary."""
    for schema, value in (("ss_multi_a", 1), ("ss_multi_b", 2)):
        node_sql(cluster, 0, f"drop schema if exists {schema} cascade; create schema {schema}; "
                             f"create table {schema}.t as select {value} as v")
    wait_caught_up(cluster)
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    read = "select (select v from t), inet_server_port()"
    with pg2(sp.port) as cur:
        cur.execute("set search_path = ss_multi_a; select 1")
        seen = {}
        for _ in range(24):
            v, port = one(cur, read)
            seen.setdefault(port, set()).add(v)
        assert seen == {p: {1} for p in standby_ports(cluster)}, seen
        cur.execute("set search_path = ss_multi_b; rollback")
        for _ in range(6):
            assert one(cur, read) == (1, primary_port(cluster))


def test_set_with_a_bad_value_changes_nothing_anywhere(splitpool, cluster):
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg2(sp.port) as cur:
        cur.execute("set statement_timeout = '7s'")
        with pytest.raises(psycopg2.errors.InvalidParameterValue):
            cur.execute("set statement_timeout = 'soon'")
        seen = spread_reads(cur, name="statement_timeout")
        assert set(seen) == set(standby_ports(cluster)), seen
        assert seen == {p: {"7s"} for p in seen}, seen


def test_set_in_a_transaction_reaches_nodes_outside_it_only_when_it_commits(splitpool, cluster):
    """A standby the session used before the transaction, but that the transaction never touched,
    must not keep a SET that the transaction rolled back, and must get one it committed."""
    sp = splitpool_for(splitpool, cluster)  # session-level balancing: one standby for reads
    with pg3(sp.port) as c:
        c.execute("set application_name = 'base'")
        standby = setting_and_port(c)[1]
        assert standby in standby_ports(cluster)
        for end, expected in (("rollback", "base"), ("commit", "kept")):
            c.execute("begin")
            c.execute("set application_name = 'kept'")
            c.execute(end)
            assert setting_and_port(c) == (expected, standby), end


def test_pipeline_rollback_of_a_failed_transaction_then_a_write(splitpool, cluster):
    """psycopg 3 pipeline: a transaction fails on a standby; ROLLBACK and a write in one pipeline.
    The write must run (on the primary) as it does on PostgreSQL."""
    make_table(cluster, "ss_pipe_rb", "id int")
    sp = splitpool_for(splitpool, cluster)
    with pg3(sp.port) as c:
        c.execute("begin")
        assert c.execute("select inet_server_port()").fetchone()[0] in standby_ports(cluster)
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("select * from ss_no_such_table")
        with c.pipeline():
            c.execute("rollback")
            c.execute("insert into ss_pipe_rb values (1)")
        assert node_value(cluster, 0, "select count(*) from ss_pipe_rb") == 1


@pytest.mark.parametrize("load_balance_on_write", ["transaction", "off"])
def test_pipeline_commit_of_a_failed_transaction_then_a_write(splitpool, cluster, load_balance_on_write):
    """psycopg 3 pipeline: a transaction fails on a standby; COMMIT (answered ROLLBACK) and a write
    in one pipeline. The write runs on the primary, and with 'off' (reads stay balanced after a
    write) the transaction's earlier write on the primary is rolled back, not committed."""
    make_table(cluster, "ss_pipe_commit", "id int")
    sp = splitpool_for(splitpool, cluster, disable_load_balance_on_write=load_balance_on_write)
    with pg3(sp.port) as c:
        c.execute("begin")
        assert c.execute("select inet_server_port()").fetchone()[0] in standby_ports(cluster)
        if load_balance_on_write == "off":
            c.execute("insert into ss_pipe_commit values (1)")
            assert c.execute("select inet_server_port()").fetchone()[0] in standby_ports(cluster)
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("select * from ss_no_such_table")
        with c.pipeline():
            cur = c.execute("commit")
            c.execute("insert into ss_pipe_commit values (2)")
        assert cur.statusmessage == "ROLLBACK"
    assert node_value(cluster, 0, "select array_agg(id) from ss_pipe_commit") == [2]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_setting_made_final_by_commit_and_chain_survives_the_chained_failure(splitpool, cluster, protocol):
    """BEGIN; SET; COMMIT AND CHAIN commits the SET; the chained transaction fails and is rolled
    back; the SET is still in force, on the node the next read runs on (seed 20261203)."""
    sp = splitpool_for(splitpool, cluster)
    session = pg2(sp.port) if protocol == "simple" else pg3(sp.port)
    with session as c:
        c.execute("begin")
        c.execute("set application_name = 'chain_kept'")
        c.execute("commit and chain")
        with pytest.raises((psycopg.errors.DivisionByZero, psycopg2.errors.DivisionByZero)):
            c.execute("select 1/0")
        c.execute("commit")
        got = c.execute("select current_setting('application_name'), inet_server_port()")
        row = (got or c).fetchone()
        assert row[0] == "chain_kept"
        assert row[1] in standby_ports(cluster)


def test_pipeline_discard_all_after_a_statement_is_refused_and_forgets_nothing(splitpool, cluster):
    """psycopg 3 pipeline: SELECT then DISCARD ALL in one batch: PostgreSQL refuses the DISCARD ALL
    (25001, within a pipeline), so the session keeps its setting and its prepared statement."""
    sp = splitpool_for(splitpool, cluster)
    with pg3(sp.port) as c:
        c.execute("set application_name = 'kept_by_refusal'")
        c.execute("prepare kept as select 1")
        with pytest.raises(psycopg.errors.ActiveSqlTransaction):
            with c.pipeline():
                c.execute("select 1")
                c.execute("discard all")
        assert c.execute("execute kept").fetchone()[0] == 1
        row = c.execute("select current_setting('application_name'), inet_server_port()").fetchone()
        assert row == ("kept_by_refusal", row[1]) and row[1] in standby_ports(cluster)


def test_pipeline_rollback_then_a_statement_the_failed_node_lacks(splitpool, cluster):
    """A transaction fails on the primary; a pipeline opening with ROLLBACK executes a statement
    prepared on a standby only: it is created on the primary after the ROLLBACK (before it, the
    failed transaction refused it: 26000 instead of the answer)."""
    make_table(cluster, "ss_pipe_lack", "id int")
    sp = splitpool_for(splitpool, cluster)
    with pg3(sp.port) as c:
        c.execute("prepare on_standby as select count(*) from ss_pipe_lack")
        c.execute("begin")
        c.execute("insert into ss_pipe_lack values (1)")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("select 1/0")
        with c.pipeline():
            c.execute("rollback")
            c.execute("insert into ss_pipe_lack values (2)")
            cur = c.execute("execute on_standby")
        assert cur.fetchone()[0] == 1
    assert node_value(cluster, 0, "select array_agg(id) from ss_pipe_lack") == [2]


def test_pipeline_prepare_after_an_error_does_not_exist(splitpool, cluster):
    """psycopg 3 pipeline: a failing statement, then SQL PREPARE and a named Parse; PostgreSQL skips
    both, so a later EXECUTE fails with 26000 as on PostgreSQL (splitpool created the statement on
    the other standby and answered it). Statement-level balancing spreads the EXECUTEs."""
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with c.pipeline():
                c.execute("select 1/0")
                c.execute("prepare skipped as select 1")
        for begin in (False, True) * 6:  # on whichever node each EXECUTE goes
            if begin:
                c.execute("begin")
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                c.execute("execute skipped")
            if begin:
                c.execute("rollback")


def test_pipeline_commit_skipped_after_an_error_keeps_the_transactions_nodes(splitpool, cluster):
    """A transaction on a standby and the primary; one pipeline: RELEASE of an unknown savepoint
    (fails) and COMMIT (skipped by PostgreSQL, so the transaction stays open and failed). Its
    ROLLBACK must reach both nodes, or the node left in it refuses the DISCARD ALL that follows and
    keeps the prepared statement (a later PREPARE of the name failed with 42P05; seed 20261205)."""
    make_table(cluster, "ss_skip_commit", "id int")
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)
    with pg3(sp.port) as c:
        for _ in range(4):
            c.execute("begin")
            c.execute("select count(*) from ss_skip_commit")
            c.execute("prepare w as insert into ss_skip_commit values (1)")
            c.execute("execute w")
            with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
                with c.pipeline():
                    c.execute("release savepoint nope")
                    c.execute("commit")
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
            c.execute("rollback")
            c.execute("discard all")
            c.execute("prepare w as select 1")  # 42P05 where a node kept the old w
            c.execute("deallocate w")
    assert node_value(cluster, 0, "select count(*) from ss_skip_commit") == 0


def test_rollback_to_savepoint_recovers_a_transaction_failed_on_every_node(splitpool, cluster):
    """A statement that fails on every node of the transaction (RELEASE of an unknown savepoint);
    ROLLBACK TO must recover all of them, so the transaction goes on and commits its write."""
    make_table(cluster, "ss_sp_rec", "id int")
    sp = splitpool_for(splitpool, cluster)
    with pg3(sp.port) as c:
        c.execute("begin")
        c.execute("select 1")
        c.execute("insert into ss_sp_rec values (1)")
        c.execute("savepoint a")
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            c.execute("release b")
        c.execute("rollback to savepoint a")
        c.execute("insert into ss_sp_rec values (2)")
        assert c.execute("select count(*) from ss_sp_rec").fetchone()[0] == 2
        c.execute("commit")
    assert node_value(cluster, 0, "select count(*) from ss_sp_rec") == 2


# ----------------------------------------------------------------------------- 4. recovery-refused functions

RECOVERY_REFUSED = ["txid_current()", "pg_current_xact_id()", "pg_current_wal_lsn()",
                    "pg_current_wal_insert_lsn()", "pg_current_wal_flush_lsn()", "pg_notify('c', 'p')"]


@pytest.mark.parametrize("protocol", ["simple", "extended", "extended-prepared"])
def test_functions_refused_during_recovery_run_on_the_primary(splitpool, cluster, protocol):
    """Each function, in a session of its own, twice outside a transaction and once inside one (after a
    balanced read joined a standby to it): no 25006 error, and inet_server_port() in the same
    statement says the primary ran it."""
    sp = splitpool_for(splitpool, cluster)
    primary = primary_port(cluster)
    failures = []

    def run(c, f, i):
        if protocol == "simple":
            row = one(c, f"select {f}, {i}, inet_server_port()")
        else:
            row = c.execute(f"select {f}, %s::int, inet_server_port()", (i,),
                            prepare=protocol == "extended-prepared").fetchone()
        return tuple(row[1:])

    for f in RECOVERY_REFUSED:
        with pg3(sp.port) if protocol != "simple" else pg2(sp.port) as c:
            for i, where in enumerate(("outside a transaction", "outside a transaction, again", "in a transaction")):
                in_tx = where == "in a transaction"
                try:
                    if in_tx:
                        c.execute("begin")
                        one(c, "select 1")
                    got = run(c, f, i)
                    if got != (i, primary):
                        failures.append(f"{f} {where}: ran on port {got[1]}")
                    if in_tx:
                        c.execute("commit")
                except (psycopg.Error, psycopg2.Error) as e:
                    code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
                    failures.append(f"{f} {where}: {code} {str(e).strip().splitlines()[0]}")
                    if in_tx:
                        c.execute("rollback")
    assert not failures, "\n".join(failures)


def test_standby_refused_read_is_retried_over_the_extended_protocol(splitpool, cluster):
    """A STABLE function that writes, which splitpool cannot know about (25006 on a standby): the
    balanced read is refused by the standby and must be run again on the primary, invisibly to the
    client, whether the statement is named (prepared) or unnamed."""
    node_sql(cluster, 0, "create or replace function ss_xid() returns bigint stable language sql"
                         " as 'select txid_current()'")
    wait_caught_up(cluster)
    sp = splitpool_for(splitpool, cluster)
    primary = primary_port(cluster)
    with pg3(sp.port, "prepared") as c:
        for i in range(3):
            assert c.execute("select ss_xid() > 0, %s::int, inet_server_port()", (i,), prepare=True).fetchone() == \
                (True, i, primary), f"execution {i}"
        assert c.execute("select inet_server_port()").fetchone()[0] in standby_ports(cluster)
    with pg3(sp.port, "unnamed") as c:
        for i in range(3):
            assert c.execute("select %s::int, ss_xid() > 0, inet_server_port()", (i,), prepare=False).fetchone() == \
                (i, True, primary), f"execution {i}"
        assert c.execute("select inet_server_port()").fetchone()[0] in standby_ports(cluster)


# ----------------------------------------------------------------------------- 5. LOCK / DISCARD TEMP

def access_share_holders(cluster, node, table, app):
    """Granted AccessShareLocks on table held by backends of the session (its application_name)."""
    return node_value(cluster, node, "select count(*) from pg_locks l join pg_class r on r.oid = l.relation"
                                     " join pg_stat_activity a on a.pid = l.pid"
                                     f" where r.relname = '{table}' and l.mode = 'AccessShareLock' and l.granted"
                                     f" and a.application_name = '{app}'")


def last_statement(cluster, node, app):
    """The last statement the session's backend on a node ran (pg_stat_activity.query), or None."""
    rows = node_sql(cluster, node, f"select query from pg_stat_activity where application_name = '{app}'")
    return rows[0][0].strip().rstrip(";").strip().lower() if rows else None


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_lock_table_reaches_every_node_the_session_uses(splitpool, cluster, driver):
    """LOCK TABLE ... IN ACCESS SHARE MODE in a transaction: held on the primary and on the standby the
    session reads from (standbys accept the weak modes), seen in pg_locks on each node."""
    make_table(cluster, "ss_lock", "id int", "insert into ss_lock values (1)")
    sp = splitpool_for(splitpool, cluster)
    app = f"ss_lock_{driver}"
    session = pg3(sp.port, application_name=app) if driver == "psycopg" else pg2(sp.port, application_name=app)
    with session as c:
        standby = one(c, "select inet_server_port()")[0]  # the session's standby
        assert standby in standby_ports(cluster)
        node = cluster.ports.index(standby)
        c.execute("begin")
        c.execute("lock table ss_lock in access share mode")
        held = {"primary": access_share_holders(cluster, 0, "ss_lock", app),
                f"standby node{node}": access_share_holders(cluster, node, "ss_lock", app)}
        assert held == {k: 1 for k in held}, held
        assert one(c, "select count(*) from ss_lock")[0] == 1
        c.execute("commit")
        wait_until(lambda: access_share_holders(cluster, 0, "ss_lock", app) == 0 and
                   access_share_holders(cluster, node, "ss_lock", app) == 0, 10, "the locks to go at commit")


def temp_tables_named(cluster, name):
    return node_value(cluster, 0, f"select count(*) from pg_class where relname = '{name}' and relpersistence = 't'")


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_discard_temp_reaches_every_node_the_session_uses(splitpool, cluster, driver):
    """DISCARD TEMP drops the session's temp tables (on the primary, where they live) and is run by every
    node the session uses: the session's backend on its standby has it as its last statement."""
    sp = splitpool_for(splitpool, cluster)
    name, app = f"ss_tmp_{driver}", f"ss_discard_{driver}"
    errors = (psycopg.errors.UndefinedTable, psycopg2.errors.UndefinedTable)
    session = pg3(sp.port, application_name=app) if driver == "psycopg" else pg2(sp.port, application_name=app)
    with session as c:
        c.execute(f"create temp table {name} (id int)")
        c.execute(f"insert into {name} values (1)")
        assert one(c, f"select count(*) from {name}")[0] == 1
        assert temp_tables_named(cluster, name) == 1
        standby = one(c, "select inet_server_port()")[0]  # a standby is in use
        assert standby in standby_ports(cluster)
        node = cluster.ports.index(standby)
        c.execute("discard temp")
        assert temp_tables_named(cluster, name) == 0, "the temp table is still there on the primary"
        assert last_statement(cluster, node, app) == "discard temp", \
            f"node{node}'s last statement: {last_statement(cluster, node, app)!r}"
        with pytest.raises(errors):
            c.execute(f"select count(*) from {name}")
        c.execute(f"create temp table {name} (id int)")  # the name is free again
        assert one(c, f"select count(*), inet_server_port() from {name}") == (0, primary_port(cluster))
        assert one(c, "select 1")[0] == 1


# ----------------------------------------------------------------------------- 6. asyncpg

def run_async(body, sp, timeout=CLIENT_DEADLINE):
    """Runs body(conn) with an asyncpg connection to splitpool; a hang fails after `timeout` seconds."""
    import asyncpg

    async def main():
        conn = await asyncpg.connect(host="127.0.0.1", port=sp.port, user="postgres", database=DB,
                                     timeout=5, ssl=False)
        task = asyncio.ensure_future(body(conn))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                raise AssertionError(f"asyncpg session: no answer from splitpool within {timeout}s")
            return task.result()
        finally:
            if not task.done():
                conn.terminate()
                task.cancel()
                await asyncio.wait({task}, timeout=5)
            elif not conn.is_closed():
                conn.terminate()

    return asyncio.run(main())


def test_asyncpg_reads_after_writes_in_transactions(splitpool, cluster):
    make_table(cluster, "ss_async", "id int primary key, v text")
    sp = splitpool_for(splitpool, cluster)
    primary = primary_port(cluster)

    async def body(conn):
        for i in (1, 2, 3):  # the statements are prepared once (asyncpg's cache) and reused
            async with conn.transaction():
                await conn.fetchval("select count(*) from ss_async")  # before the write: may be balanced
                await conn.execute("insert into ss_async values ($1, $2)", i, "a")
                row = await conn.fetchrow("select count(*), inet_server_port() from ss_async where id = $1", i)
                assert tuple(row) == (1, primary), f"transaction {i}: insert then fetch: {tuple(row)}"
                await conn.execute("update ss_async set v = $1 where id = $2", "b", i)
                v = await conn.fetchval("select v from ss_async where id = $1", i)
                assert v == "b", f"transaction {i}: update then fetchval: {v}"

    with replay_paused(cluster):
        run_async(body, sp)
    assert node_value(cluster, 0, "select string_agg(v, ',' order by id) from ss_async") == "b,b,b"


def test_asyncpg_set_config_session(splitpool, cluster):
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)

    async def body(conn):
        await conn.execute("select set_config('application_name', 'z', false)")
        seen = {}
        for i in range(24):  # distinct statements, each parsed (and balanced) on its own
            row = await conn.fetchrow(f"select current_setting('application_name'), inet_server_port(), {i}")
            seen.setdefault(row[1], set()).add(row[0])
        assert set(seen) <= set(standby_ports(cluster)), seen
        assert seen == {p: {"z"} for p in seen}, seen
        assert await conn.fetchval("select current_setting('application_name')") == "z"

    run_async(body, sp)


def test_asyncpg_local_settings_in_a_transaction(splitpool, cluster):
    sp = splitpool_for(splitpool, cluster)

    async def body(conn):
        await conn.execute("set application_name = 'base'")
        async with conn.transaction():
            await conn.execute("set local application_name = 'l1'")
            assert await conn.fetchval("select current_setting('application_name')") == "l1"
            await conn.fetchval("select set_config($1, $2, true)", "application_name", "l2")
            assert await conn.fetchval("select current_setting('application_name')") == "l2"
            await conn.execute("select set_config('application_name', 'l3', true)")
            assert await conn.fetchval("select current_setting('application_name')") == "l3"
        row = await conn.fetchrow("select current_setting('application_name'), inet_server_port()")
        assert tuple(row)[0] == "base", tuple(row)
        assert row[1] in standby_ports(cluster), tuple(row)

    run_async(body, sp)


def test_asyncpg_copy_records_to_table(splitpool, cluster):
    make_table(cluster, "ss_copy", "id int, v text")
    sp = splitpool_for(splitpool, cluster)

    async def body(conn):
        try:
            status = await asyncio.wait_for(
                conn.copy_records_to_table("ss_copy", records=[(1, "a"), (2, "b")]), 10)
        except asyncio.TimeoutError:
            raise AssertionError("copy_records_to_table did not complete within 10s") from None
        assert status == "COPY 2", status
        assert await conn.fetchval("select 1") == 1  # the session is still usable

    run_async(body, sp)
    assert node_value(cluster, 0, "select string_agg(id || v, ',' order by id) from ss_copy") == "1a,2b"


def test_asyncpg_reads_outside_transactions_are_balanced(splitpool, cluster):
    make_table(cluster, "ss_async_ro", "id int primary key, v text", "insert into ss_async_ro values (1, 'a')")
    sp = splitpool_for(splitpool, cluster)
    standbys, primary = standby_ports(cluster), primary_port(cluster)

    async def body(conn):
        read = "select inet_server_port() from ss_async_ro where id = $1"
        for _ in range(3):
            assert await conn.fetchval(read, 1) in standbys
        async with conn.transaction(readonly=True):
            assert await conn.fetchval(read, 1) in standbys
        async with conn.transaction():
            assert await conn.fetchval(read, 1) in standbys
            await conn.execute("update ss_async_ro set v = $1 where id = $2", "b", 1)
            assert await conn.fetchval(read, 1) == primary
        for _ in range(3):  # the writing transaction is over
            assert await conn.fetchval(read, 1) in standbys

    run_async(body, sp)


def test_asyncpg_functions_refused_during_recovery_run_on_the_primary(splitpool, cluster):
    sp = splitpool_for(splitpool, cluster)
    primary = primary_port(cluster)

    async def body(conn):
        import asyncpg
        failures = []
        for f in RECOVERY_REFUSED:
            for i in range(2):  # the second time asyncpg reuses its prepared statement
                try:
                    row = await conn.fetchrow(f"select {f}, $1::int, inet_server_port()", i)
                    if tuple(row)[1:] != (i, primary):
                        failures.append(f"{f} #{i}: ran on port {row[2]}")
                except asyncpg.PostgresError as e:
                    failures.append(f"{f} #{i}: {e.sqlstate} {e}")
        assert not failures, "\n".join(failures)

    run_async(body, sp)


def test_asyncpg_set_in_a_rolled_back_transaction_is_undone(splitpool, cluster):
    sp = splitpool_for(splitpool, cluster, statement_level_load_balance=True)

    class Rollback(Exception):
        pass

    async def body(conn):
        await conn.execute("set application_name = 'base'")
        try:
            async with conn.transaction():
                await conn.execute("set application_name = 'rb'")
                assert await conn.fetchval("select current_setting('application_name')") == "rb"
                raise Rollback
        except Rollback:
            pass
        seen = {}
        for i in range(24):
            row = await conn.fetchrow(f"select current_setting('application_name'), inet_server_port(), {i}")
            seen.setdefault(row[1], set()).add(row[0])
        assert set(seen) <= set(standby_ports(cluster)), seen
        assert seen == {p: {"base"} for p in seen}, seen

    run_async(body, sp)
