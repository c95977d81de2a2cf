"""Bad days: a standby dies under a running session. With health checks off (the reference deployment),
a session survives the loss of a standby it does not need; inside a transaction that used it the client
gets an ERROR (not FATAL) and, after ROLLBACK, goes on with the other nodes. Which node ran a statement
is read from the node (inet_server_port())."""

import re
import subprocess
import threading
import time

import psycopg
import pytest

from helpers import connect, pgbench, wait_until

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


def pg_ctl(cluster, node, *args):
    cmd = ["runuser", "-u", "postgres", "--", PG_CTL, "-D", f"{cluster.dir}/node{node}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/", stdin=subprocess.DEVNULL)


class StoppedStandby:
    """Stops standby `node` with -m immediate on stop(); always starts it again and waits for it to replay."""

    def __init__(self, cluster, node):
        self.cluster, self.node = cluster, node

    def stop(self):
        proc = pg_ctl(self.cluster, self.node, "-m", "immediate", "-w", "stop")
        assert proc.returncode == 0, proc.stderr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        proc = pg_ctl(self.cluster, self.node, "-l", f"{self.cluster.dir}/node{self.node}.log", "-w", "-t", "60", "start")
        assert proc.returncode == 0, proc.stderr
        self.cluster.wait_replicas_caught_up(timeout=60)


@pytest.fixture(scope="module")
def table(cluster):
    cluster.sql(0, "drop table if exists ft; create table ft(id int primary key, v text)", db="sp_test")
    cluster.sql(0, "insert into ft select g, 'x' from generate_series(1, 100) g", db="sp_test")
    cluster.wait_replicas_caught_up()
    return "ft"


def reference_keys():
    # ../shared/reference/deployment.md: failover on errors and shutdowns off, health checks off.
    return {"failover_on_backend_error": False, "failover_on_backend_shutdown": False, "health_check_period": 0}


def test_pgbench_survives_a_standby_stopped_under_it(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(1, 2, 2)), num_init_children=10, **reference_keys())
    pgbench(cluster.ports[0], ["-i", "-s", "1", "-q"], db="sp_other")
    cluster.wait_replicas_caught_up()
    result = {}

    def run():
        result["proc"] = pgbench(sp.port, ["-S", "-c", "8", "-j", "2", "-T", "8", "-n"], db="sp_other", check=False)

    with StoppedStandby(cluster, 2) as standby:
        t = threading.Thread(target=run)
        t.start()
        # pgbench is mid-run once its sessions are on standby 2 (they are balanced over both standbys)
        wait_until(lambda: int(cluster.sql(2, "select count(*) from pg_stat_activity where application_name = "
                                              "'pgbench' and datname = 'sp_other'")) >= 1 or not t.is_alive(),
                   15, "pgbench sessions on standby 2")
        assert t.is_alive(), "pgbench ended before the standby was stopped"
        standby.stop()
        t.join(timeout=60)
    proc = result["proc"]
    out = proc.stdout + proc.stderr
    print(out)
    assert proc.returncode == 0, out
    assert not re.search(r"client \d+ aborted", out), out
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    assert processed > 0
    failed = re.search(r"number of failed transactions: (\d+)", out)
    print(f"pgbench -S -c 8: {processed} transactions, failed: {failed.group(1) if failed else 'not reported'}")
    assert failed is None or int(failed.group(1)) == 0, out
    assert "lost connection to database node 2" in sp.log_text()


def test_session_outside_a_transaction_moves_to_another_node(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 0, 1)), **reference_keys())
    with StoppedStandby(cluster, 2) as standby:
        with connect(sp.port, dbname="sp_test") as c:
            assert c.execute("select inet_server_port()").fetchone()[0] == cluster.ports[2]
            standby.stop()
            # the read's node is gone before any of its reply reached us: run again elsewhere
            row = c.execute("select count(*), inet_server_port() from ft").fetchone()
            assert row[0] == 100 and row[1] in cluster.ports[:2]
            assert c.execute("select count(*) from ft where id <= %s", (10,), prepare=True).fetchone()[0] == 10
            c.execute("insert into ft values (1000, 'after') on conflict (id) do nothing")
        # new sessions cannot reach it either, and go on without it
        for _ in range(3):
            with connect(sp.port, dbname="sp_test") as c:
                assert c.execute("select inet_server_port()").fetchone()[0] in cluster.ports[:2]


def test_transaction_that_used_the_lost_standby_gets_an_error_then_goes_on(splitpool, cluster, table):
    sp = splitpool(backend=cluster.backends(weights=(0, 0, 1)), **reference_keys())
    with StoppedStandby(cluster, 2) as standby, connect(sp.port, dbname="sp_test", autocommit=False) as c:
        assert c.execute("select inet_server_port()").fetchone()[0] == cluster.ports[2]
        standby.stop()
        with pytest.raises(psycopg.OperationalError) as err:
            c.execute("select count(*) from ft")
        assert err.value.sqlstate == "08006" and "database node 2" in str(err.value)
        assert not c.closed
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("select 1")
        c.rollback()
        row = c.execute("select count(*), inet_server_port() from ft").fetchone()
        assert row[0] >= 100 and row[1] in cluster.ports[:2]
        c.execute("insert into ft values (1001, 'tx') on conflict (id) do nothing")
        c.commit()
    assert cluster.sql(0, "select v from ft where id = 1001", db="sp_test") == "tx"


def test_losing_the_primary_ends_the_session_with_a_clear_fatal(splitpool, cluster, table):
    """The primary is not stopped here (the cluster is shared); a connection ended by the server is."""
    sp = splitpool(backend=cluster.backends(weights=(1, 0, 0)), **reference_keys())
    with connect(sp.port, dbname="sp_test") as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        cluster.sql(0, f"select pg_terminate_backend({pid})")
        with pytest.raises(psycopg.OperationalError) as err:
            c.execute("select 1")
        assert "terminating connection" in str(err.value) or "database node 0" in str(err.value)


def test_no_committed_transaction_is_lost_while_a_standby_stops_and_starts(splitpool, cluster, table):
    """tpcb-like through splitpool; standby 1 is stopped (-m immediate) once pgbench has committed some
    transactions and started again after more: pgbench_history on the primary holds exactly one row per
    transaction pgbench reports as committed."""
    sp = splitpool(backend=cluster.backends(weights=(1, 2, 2)), num_init_children=6, **reference_keys())
    pgbench(cluster.ports[0], ["-i", "-s", "1", "-q"], db="sp_other")
    cluster.wait_replicas_caught_up()
    result = {}

    def run():
        result["proc"] = pgbench(sp.port, ["-c", "4", "-j", "2", "-t", "500", "-n"], db="sp_other", check=False)

    def history():
        return int(cluster.sql(0, "select count(*) from pgbench_history", db="sp_other"))

    t = threading.Thread(target=run)
    with StoppedStandby(cluster, 1) as standby:
        t.start()
        wait_until(lambda: history() >= 300 or not t.is_alive(), 60, "pgbench to commit 300 transactions")
        standby.stop()
        at_stop = history()
        wait_until(lambda: history() >= at_stop + 300 or not t.is_alive(), 60, "300 more while the standby is down")
        running_at_restart = t.is_alive()
    # the context started the standby again (pgbench runs on if it has not finished)
    t.join(timeout=120)
    out = result["proc"].stdout + result["proc"].stderr
    committed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    rows = history()
    print(f"tpcb-like -c 4 -t 500: {committed} committed, {failed.group(1) if failed else 0} failed, {rows} rows "
          f"in pgbench_history; standby stopped at {at_stop} rows, pgbench still running at its restart: "
          f"{running_at_restart}")
    assert rows == committed, out
    assert not re.search(r"client \d+ aborted", out), out
    assert committed == 2000, out


def test_cancel_reaches_the_node_running_the_statement_of_a_two_node_transaction(splitpool, cluster, table):
    """The transaction read on standby 2, then wrote on the primary; its pg_sleep runs on the primary.
    The cancel goes to both of the session's nodes at once (pgpool sleeps a second between nodes)."""
    sp = splitpool(backend=cluster.backends(weights=(0, 0, 1)), **reference_keys())
    with connect(sp.port, dbname="sp_test", autocommit=False, application_name="two_node_cancel") as c:
        assert c.execute("select inet_server_port()").fetchone()[0] == cluster.ports[2]
        c.execute("insert into ft values (2000, 'cancel') on conflict (id) do nothing")
        result = {}

        def sleep():
            started = time.monotonic()
            try:
                c.execute("select pg_sleep(30), inet_server_port()")
            except psycopg.Error as e:
                result["error"] = e
            result["seconds"] = time.monotonic() - started

        t = threading.Thread(target=sleep)
        t.start()
        wait_until(lambda: cluster.sql(0, "select count(*) from pg_stat_activity where application_name = "
                                          "'two_node_cancel' and state = 'active' and query like '%pg_sleep%'") == "1",
                   10, "pg_sleep running on the primary")
        on_standby = cluster.sql(2, "select state from pg_stat_activity where application_name = 'two_node_cancel'")
        assert on_standby == "idle in transaction", on_standby
        asked = time.monotonic()
        c.cancel()
        t.join(30)
        print(f"cancel: the statement ended {time.monotonic() - asked:.3f} s after the cancel request "
              f"({result.get('seconds', 0):.3f} s after it started)")
        assert isinstance(result.get("error"), psycopg.errors.QueryCanceled), result
        assert result["error"].sqlstate == "57014"
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("select 1")
        c.rollback()
        assert c.execute("select count(*) from ft where id = 2000").fetchone()[0] == 0  # rolled back everywhere
    assert "could not forward cancel request" not in sp.log_text()
