"""Read/write splitting against a real primary + 2 replicas. Which node ran a statement is read from the
node itself (inet_server_port() is evaluated by the server that executes it), never from splitpool."""

import os
import signal
import threading
import time

import psycopg
import pytest

from helpers import client_port, connect, pgbench, pid_alive, psql, psql_value, socket_owner, wait_until


@pytest.fixture(scope="module")
def table(cluster):
    cluster.sql(0, "drop table if exists rt; create table rt(id int primary key, v text)", db="sp_test")
    cluster.sql(0, "drop table if exists rt_big; create table rt_big as select g as id from generate_series(1, 1000) g",
                db="sp_test")
    cluster.wait_replicas_caught_up()
    return "rt"


def port_of(conn):
    return conn.execute("select inet_server_port()").fetchone()[0]


def fresh_id(conn):
    # From the primary: a standby may not have replayed the previous test's rows yet.
    return conn.execute("select /*+ primary */ coalesce(max(id), 0) + 1 from rt").fetchone()[0]


def test_writes_go_to_the_primary_and_reads_are_balanced(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test") as c:
        assert port_of(c) in cluster.ports[1:]
        i = fresh_id(c)
        c.execute("insert into rt values (%s, 'w')", (i,))
    assert cluster.sql(0, f"select v from rt where id = {i}", db="sp_test") == "w"


def test_weighted_distribution_over_sessions(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(1, 2, 2)))
    counts = {p: 0 for p in cluster.ports}
    sessions = 1000  # at least the 300 the issue names; at 300 a correct balancer misses 7 points ~3% of runs
    for _ in range(sessions):
        with connect(sp.port, dbname="sp_test") as c:
            counts[port_of(c)] += 1
    shares = [counts[p] / sessions for p in cluster.ports]
    for share, expected in zip(shares, (0.2, 0.4, 0.4)):
        assert abs(share - expected) <= 0.07, (counts, shares)


def test_weight_zero_node_never_chosen(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(1, 0, 1)))
    seen = set()
    for _ in range(40):
        with connect(sp.port, dbname="sp_test") as c:
            seen.add(port_of(c))
    assert cluster.ports[1] not in seen


def open_sessions(sp, n):
    """n long sessions opened one after another: [(connection, node port, serving child pid, client port)]."""
    out = []
    for _ in range(n):
        c = connect(sp.port, dbname="sp_test")
        out.append((c, port_of(c), socket_owner(sp.port, client_port(c), sp.children()), client_port(c)))
    return out


def test_even_placement_of_long_sessions(splitpool, cluster, table):
    """Eight concurrent sessions on weights 0:1:1 land 4/4 (pgpool's random pick lands 4/4 only 27% of the
    time); a session that ends, normally or with its child killed, no longer counts."""
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)), num_init_children=12)
    one, two = cluster.ports[1], cluster.ports[2]
    processes = len(sp.children())
    sessions = open_sessions(sp, 8)
    try:
        ports = [s[1] for s in sessions]
        assert sorted(ports) == [one] * 4 + [two] * 4, ports
        on_one = [s for s in sessions if s[1] == one]
        # Two of node1's sessions end normally, two with their child killed: node1 then has the fewest.
        for c, _, pid, cport in on_one[:2]:
            c.close()
            # The child clears its session's node before it closes the client socket.
            wait_until(lambda: socket_owner(sp.port, cport, [pid]) is None, 10, f"child {pid} to end the session")
        for _, _, pid, _ in on_one[2:]:
            os.kill(pid, signal.SIGKILL)
        for _, _, pid, _ in on_one[2:]:
            wait_until(lambda: not pid_alive(pid), 10, f"child {pid} to die")
        wait_until(lambda: len(sp.children()) == processes, 10, "the killed children to be replaced")
        more = open_sessions(sp, 4)
        sessions += more
        assert [s[1] for s in more] == [one] * 4, [s[1] for s in more]
    finally:
        for s in sessions:
            s[0].close()


def test_random_placement_is_pgpools_weighted_pick(splitpool, cluster, table):
    """load_balance_placement = 'random' is accepted and still spreads sessions over both standbys (all 28
    on one would happen once in 2^27 runs); that it ignores the other sessions is in test/unit/balancer_test."""
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)), num_init_children=30,
                   load_balance_placement="random")
    sessions = open_sessions(sp, 28)
    try:
        ports = [s[1] for s in sessions]
        assert set(ports) == set(cluster.ports[1:]), ports
    finally:
        for s in sessions:
            s[0].close()


def test_read_after_write_in_transaction_sees_the_write(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test", autocommit=False) as c:
        first = port_of(c)  # before any write the read may be balanced
        i = fresh_id(c)
        c.execute("insert into rt values (%s, 'tx')", (i,))
        assert port_of(c) == cluster.ports[0]
        assert c.execute("select v from rt where id = %s", (i,)).fetchone()[0] == "tx"
        c.commit()
    assert first in cluster.ports


def test_failed_statement_on_a_standby_aborts_the_whole_transaction(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)), disable_load_balance_on_write="off")
    with connect(sp.port, dbname="sp_test", autocommit=False) as c:
        i = fresh_id(c)
        c.execute("insert into rt values (%s, 'doomed')", (i,))
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("select 1 / (count(*) - count(*)) from rt_big")  # balanced: runs on a standby
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("select 1")
        c.commit()  # PostgreSQL answers COMMIT in a failed transaction with ROLLBACK
    assert cluster.sql(0, f"select count(*) from rt where id = {i}", db="sp_test") == "0"


def test_commit_of_failed_transaction_answers_rollback(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    p = psql(sp.port, db="sp_test", input="begin;\nselect 1/0;\ncommit;\n", on_error_stop=False, check=False)
    assert "ROLLBACK" in p.stdout, p.stdout


def test_savepoint_rollback_keeps_the_transaction_writing(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test", autocommit=False) as c:
        i = fresh_id(c)
        c.execute("insert into rt values (%s, 'sp')", (i,))
        c.execute("savepoint a")
        c.execute("insert into rt values (%s, 'sp2')", (i + 1,))
        c.execute("rollback to savepoint a")
        assert port_of(c) == cluster.ports[0]
        assert c.execute("select count(*) from rt where id in (%s, %s)", (i, i + 1)).fetchone()[0] == 1
        c.execute("release savepoint a")
        c.commit()
    assert cluster.sql(0, f"select count(*) from rt where id = {i}", db="sp_test") == "1"


def test_set_reaches_every_node_the_session_uses(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(1, 1, 1)), statement_level_load_balance=True)
    with connect(sp.port, dbname="sp_test") as c:
        c.execute("set statement_timeout = '1234ms'")
        seen = set()
        for _ in range(30):
            port, value = c.execute("select inet_server_port(), current_setting('statement_timeout')").fetchone()
            assert value == "1234ms", port
            seen.add(port)
        assert len(seen) >= 2


def test_standby_refusal_is_retried_on_the_primary(splitpool, cluster, table):
    """A STABLE function that calls txid_current() is balanced, and a standby refuses it (25006):
    run again on the primary, over the simple and the extended protocol, then sent there at once."""
    cluster.sql(0, "create or replace function rt_xid() returns bigint language sql stable "
                   "as 'select txid_current()'", db="sp_test")
    cluster.wait_replicas_caught_up()
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test") as c:
        row = c.execute("select rt_xid(), inet_server_port()").fetchone()  # extended protocol
        assert int(row[0]) > 0 and row[1] == cluster.ports[0]
        c.execute("select rt_xid(), inet_server_port()", prepare=True)
        row = c.execute("select rt_xid(), inet_server_port()", prepare=True).fetchone()
        assert row[1] == cluster.ports[0]
        assert port_of(c) in cluster.ports[1:]  # other reads stay balanced
    out = psql(sp.port, "select rt_xid() > 0, inet_server_port()", db="sp_test").stdout.split()
    assert out == [f"t|{cluster.ports[0]}"]
    assert "refused a balanced read" in sp.log_text()


def test_functions_a_standby_refuses_go_to_the_primary_at_once(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test") as c:
        for f in ("txid_current()", "pg_current_xact_id()", "pg_current_wal_lsn()", "pg_current_wal_insert_lsn()",
                  "pg_current_wal_flush_lsn()", "pg_notify('rt_chan', 'x')"):
            assert c.execute(f"select {f}, inet_server_port(), %s::int", (1,)).fetchone()[1] == cluster.ports[0], f
    assert "refused a balanced read" not in sp.log_text()


def test_extended_protocol_pipeline_with_psycopg(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test", autocommit=False) as c:
        i = fresh_id(c)
        with c.pipeline():
            cur1 = c.execute("select inet_server_port()")
            c.execute("insert into rt values (%s, %s)", (i, "pipe"))
            cur2 = c.execute("select v, inet_server_port() from rt where id = %s", (i,))
            cur3 = c.execute("select count(*) from rt_big where id <= %s", (10,))
        assert cur1.fetchone()[0] in cluster.ports
        assert cur2.fetchone() == ("pipe", cluster.ports[0])
        assert cur3.fetchone()[0] == 10
        c.commit()
    assert cluster.sql(0, f"select v from rt where id = {i}", db="sp_test") == "pipe"


def test_prepared_statements_follow_their_node(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    lookup = "select inet_server_port(), count(*) from rt where id = %s"
    with connect(sp.port, dbname="sp_test", autocommit=False) as c:
        i = fresh_id(c)
        for _ in range(3):  # prepared server-side on the node the reads are balanced to
            assert c.execute(lookup, (i,), prepare=True).fetchone() in [(p, 0) for p in cluster.ports[1:]]
        c.execute("insert into rt values (%s, 'p')", (i,), prepare=True)
        # the transaction now writes: the prepared read moves to the primary (parsed again there)
        # and sees the transaction's own row
        assert c.execute(lookup, (i,), prepare=True).fetchone() == (cluster.ports[0], 1)
        c.rollback()
    with connect(sp.port, dbname="sp_test") as c:
        c.execute("prepare q as select inet_server_port()")
        assert c.execute("execute q").fetchone()[0] in cluster.ports
        c.execute("deallocate q")


def test_cancel_reaches_a_standby(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test") as c:
        assert port_of(c) in cluster.ports[1:]
        threading.Timer(0.5, c.cancel).start()
        start = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("select pg_sleep(20) from rt_big limit 1")
        assert time.monotonic() - start < 5


def test_pgbench_select_only_spreads_over_nodes(splitpool, cluster, table):
    """The deployment's check: pgbench's connections show up on every node (pg_stat_activity there)."""
    sp = splitpool(backend=cluster.backends(weights=(1, 2, 2)), num_init_children=8)
    pgbench(sp.port, ["-i", "-s", "1", "-q"], db="sp_test")
    cluster.wait_replicas_caught_up()
    p = pgbench(sp.port, ["-n", "-S", "-c", "8", "-j", "2", "-t", "300"], db="sp_test")
    assert "number of failed transactions: 0" in p.stdout
    # pooled connections stay open after the run, still named after their client
    on_node = [int(cluster.sql(k, "select count(*) from pg_stat_activity where application_name = 'pgbench'"))
               for k in range(3)]
    assert all(n > 0 for n in on_node), on_node


def test_multi_statement_and_unparseable_go_to_primary(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    both = psql_value(sp.port, "select inet_server_port(); select inet_server_port()", db="sp_test")
    assert both.split() == [str(cluster.ports[0])] * 2
    p = psql(sp.port, "selec 1", db="sp_test", on_error_stop=False, check=False)
    assert 'syntax error at or near "selec"' in p.stderr


def read_port_and_count(conn, table):
    return conn.execute(f"select inet_server_port(), count(*) from {table}").fetchone()


def test_cross_session_read_your_writes(splitpool, cluster, table):
    cluster.sql(0, "drop table if exists ryw_a, ryw_b, ryw_c; create table ryw_a(id int); create table ryw_b(id int);"
                   " create table ryw_c(id int)", db="sp_test")
    cluster.wait_replicas_caught_up()
    standbys, primary = cluster.ports[1:], cluster.ports[0]
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)), read_your_writes_window="2s")
    with connect(sp.port, dbname="sp_test") as reader, connect(sp.port, dbname="sp_test") as writer:
        assert read_port_and_count(reader, "ryw_a")[0] in standbys
        writer.execute("insert into ryw_a values (1)")  # autocommit: committed when it returns
        written_at = time.monotonic()
        # Another session (another child process) reads the table from the primary and sees the row,
        # by any spelling of its name; other tables stay balanced.
        assert read_port_and_count(reader, "ryw_a") == (primary, 1)
        assert read_port_and_count(reader, "public.RYW_A") == (primary, 1)
        assert read_port_and_count(reader, "ryw_b")[0] in standbys
        # Reads go to the primary until the window has passed, then to the standbys again.
        wait_until(lambda: read_port_and_count(reader, "ryw_a")[0] in standbys, 15, "the window to pass")
        assert time.monotonic() - written_at >= 1.8

        # A statement the reader prepared on a standby moves to the primary while its table is hot.
        lookup = "select inet_server_port(), count(*) from ryw_b"
        assert reader.execute(lookup, prepare=True).fetchone()[0] in standbys
        writer.execute("insert into ryw_b values (0)")
        assert reader.execute(lookup, prepare=True).fetchone() == (primary, 1)

        # A transaction's writes count from its COMMIT, when other sessions can see them.
        wait_until(lambda: read_port_and_count(reader, "ryw_c")[0] in standbys, 15, "the window to pass")
        writer.execute("begin")
        writer.execute("insert into ryw_c values (1)")
        assert read_port_and_count(reader, "ryw_c")[0] in standbys
        writer.execute("commit")
        assert read_port_and_count(reader, "ryw_c") == (primary, 1)


def test_without_read_your_writes_other_sessions_read_standbys(splitpool, cluster, table):
    cluster.sql(0, "drop table if exists ryw_off; create table ryw_off(id int)", db="sp_test")
    cluster.wait_replicas_caught_up()
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)))
    with connect(sp.port, dbname="sp_test") as reader, connect(sp.port, dbname="sp_test") as writer:
        writer.execute("insert into ryw_off values (1)")
        assert read_port_and_count(reader, "ryw_off")[0] in cluster.ports[1:]


def test_catalog_lookups_inside_a_transaction_keep_reads_balanced(splitpool, cluster, table):
    # check_temp_table = catalog needs a pg_class lookup on the primary; in a session that starts
    # with a transaction (psycopg's default) it runs inside that transaction, under a savepoint.
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)), disable_load_balance_on_write="off")
    standbys, primary = cluster.ports[1:], cluster.ports[0]
    with connect(sp.port, dbname="sp_test", autocommit=False) as c:
        assert read_port_and_count(c, "rt_big") in [(p, 1000) for p in standbys]
        c.execute("savepoint mine")
        c.execute("create temp table scratch(id int)")
        c.execute("insert into scratch values (1)")
        # the lookup inside the transaction sees the session's temporary table
        assert read_port_and_count(c, "scratch") == (primary, 1)
        c.execute("rollback to savepoint mine")  # the client's own savepoint is intact
        i = fresh_id(c)
        c.execute("insert into rt values (%s, 'lookup')", (i,))
        c.commit()
    assert cluster.sql(0, f"select v from rt where id = {i}", db="sp_test") == "lookup"
