"""Foundation behaviours of splitpool in front of a real primary + 2 replicas: sessions, auth, protocol, pooling, lifecycle."""

import os
import re
import signal
import threading
import time

import psycopg
import pytest

from helpers import (PgError, RawClient, client_port, connect, line_of, pgbench,
                     pgbench_processed, pid_alive, psql, psql_value, render_config, socket_owner,
                     wait_until)


def init_pgbench(sp, cluster, user="postgres", password=None):
    pgbench(sp.port, ["-i", "-s", "1", "-q"], user=user, password=password)
    # Replicas must have the tables before any select-only run could be balanced to them.
    cluster.wait_replicas_caught_up()


def single_node(cluster):
    """Only the primary as backend, so pg_backend_pid() is comparable across sessions whatever the balancing."""
    return cluster.backends(nodes=[0])


# ----------------------------------------------------------------------------- sessions and auth

def test_psql_session_trust(splitpool):
    sp = splitpool()
    assert psql_value(sp.port, "select current_user, current_database()") == "postgres|postgres"
    # An error mid-session is reported and the session carries on.
    p = psql(sp.port, input="select 1;\nselect * from no_such_table;\nselect 2;\n", on_error_stop=False)
    assert p.stdout.split() == ["1", "2"], p.stdout
    assert "no_such_table" in p.stderr
    # Results larger than any socket buffer.
    assert psql_value(sp.port, "select count(*) from generate_series(1, 200000)") == "200000"
    big = psql(sp.port, "select repeat('x', 1000) from generate_series(1, 5000)").stdout.split()
    assert len(big) == 5000 and all(line == "x" * 1000 for line in big)


def test_ssl_request_answered(splitpool):
    sp = splitpool()
    assert psql_value(sp.port, "select 1", env_extra={"PGSSLMODE": "disable"}) == "1"
    assert psql_value(sp.port, "select 1", env_extra={"PGSSLMODE": "prefer"}) == "1"
    p = psql(sp.port, "select 1", env_extra={"PGSSLMODE": "require"}, check=False)
    assert p.returncode != 0
    assert "does not support SSL" in p.stderr, p.stderr


@pytest.mark.parametrize("user,password", [("digoal", "pwd123"), ("md5user", "md5pass"),
                                           ("plainuser", "plainpass")])
def test_clear_text_pass_through(splitpool, user, password):
    sp = splitpool(allow_clear_text_frontend_auth=True)
    assert psql_value(sp.port, "select current_user", user=user, password=password) == user
    conn = connect(sp.port, user=user, password=password)
    assert conn.execute("select current_user").fetchone()[0] == user
    conn.close()


@pytest.mark.parametrize("user", ["digoal", "md5user"])
def test_wrong_password_rejected(splitpool, user):
    sp = splitpool(allow_clear_text_frontend_auth=True)
    with pytest.raises(PgError) as err:
        RawClient(sp.port, user=user, password="wrong-password").startup()
    assert err.value.fields.get("S") == "FATAL"
    assert err.value.sqlstate == "28P01", err.value.fields
    p = psql(sp.port, "select 1", user=user, password="wrong-password", check=False)
    assert p.returncode != 0 and "password authentication failed" in p.stderr, p.stderr


def test_clear_text_disabled_refused(splitpool):
    sp = splitpool(allow_clear_text_frontend_auth=False)
    started = time.monotonic()
    p = psql(sp.port, "select 1", user="digoal", password="pwd123", check=False, timeout=30)
    assert p.returncode != 0
    assert "FATAL" in p.stderr, p.stderr
    assert time.monotonic() - started < 10, "refusal took too long (timeout rather than a FATAL?)"
    # Trust users are not affected.
    assert psql_value(sp.port, "select current_user") == "postgres"


def test_cached_connection_still_checks_password(splitpool, cluster):
    sp = splitpool(num_init_children=1, backend=single_node(cluster))
    good = psql_value(sp.port, "select pg_backend_pid()", user="digoal", password="pwd123", db="sp_test")
    with pytest.raises(PgError) as err:
        RawClient(sp.port, user="digoal", database="sp_test", password="wrong-password").startup()
    assert err.value.fields.get("S") == "FATAL"
    assert psql_value(sp.port, "select pg_backend_pid() > 0", user="digoal", password="pwd123",
                      db="sp_test") == "t", good


# ----------------------------------------------------------------------------- protocol

@pytest.mark.parametrize("mode", ["extended", "prepared"])
def test_pgbench_extended_protocol(splitpool, cluster, mode):
    sp = splitpool()
    init_pgbench(sp, cluster)
    p = pgbench(sp.port, ["-n", "-M", mode, "-S", "-t", "200"])
    assert pgbench_processed(p.stdout) == (200, 200), p.stdout


def _copy_rows(n):
    lines = []
    for i in range(n):
        text = "\\N" if i % 7 == 0 else f"row {i}\\twith tab\\\\backslash\\nnewline é€𝄞"
        lines.append(f"{i}\t{text}\t{i}.25\t{{\"k\": {i}}}")
    return "\n".join(lines) + "\n"


def test_copy_in_and_out(splitpool, cluster):
    # primary only: a read balanced to a replica right after the COPY could miss rows not yet replayed
    sp = splitpool(backend=single_node(cluster))
    psql(sp.port, "drop table if exists copy_rt; "
                  "create table copy_rt (id int primary key, t text, n numeric, j jsonb)")
    data = _copy_rows(20000)
    p = psql(sp.port, input="COPY copy_rt FROM STDIN;\n" + data + "\\.\n")
    assert "COPY 20000" in p.stdout, p.stdout
    assert psql_value(sp.port, "select count(*), count(t) from copy_rt") == f"20000|{20000 - 2858}"
    out = psql(sp.port, "COPY (select * from copy_rt order by id) TO STDOUT").stdout
    assert out == data
    # A failing COPY leaves the session usable.
    p = psql(sp.port, input="COPY copy_rt FROM STDIN;\nnot-a-number\tx\t1\t{}\n\\.\nselect 42;\n",
             on_error_stop=False)
    assert "invalid input syntax" in p.stderr, p.stderr
    assert p.stdout.strip().endswith("42"), p.stdout
    assert psql_value(sp.port, "select count(*) from copy_rt") == "20000"


def test_pgbench_concurrent_select(splitpool, cluster):
    sp = splitpool(num_init_children=4)
    init_pgbench(sp, cluster)
    p = pgbench(sp.port, ["-n", "-S", "-c", "4", "-j", "2", "-t", "500"])
    assert pgbench_processed(p.stdout) == (2000, 2000), p.stdout


# ----------------------------------------------------------------------------- pooling

def test_connection_reuse(splitpool, cluster):
    sp = splitpool(num_init_children=1, max_pool=2, backend=single_node(cluster))
    pid = "select pg_backend_pid()"
    first = psql_value(sp.port, pid, db="sp_test")
    assert psql_value(sp.port, pid, db="sp_test") == first, "same user/db did not reuse the backend"
    other_db = psql_value(sp.port, pid, db="sp_other")
    assert other_db != first
    # max_pool = 2: both sets are still cached.
    assert psql_value(sp.port, pid, db="sp_test") == first
    other_user = psql_value(sp.port, pid, db="sp_test", user="digoal", password="pwd123")
    assert other_user not in (first, other_db)


def test_session_state_reset(splitpool, cluster):
    sp = splitpool(num_init_children=1, backend=single_node(cluster))
    psql(sp.port, "drop table if exists reset_probe; create table reset_probe (x int)", db="sp_test")
    a = connect(sp.port, dbname="sp_test")
    pid_a = a.execute("select pg_backend_pid()").fetchone()[0]
    a.execute("set application_name = 'dirty'")
    a.execute("set work_mem = '7MB'")
    a.execute("create temp table temp_probe (x int)")
    a.execute("prepare probe_stmt as select 1")
    a.autocommit = False
    a.execute("insert into reset_probe values (1)")  # left uncommitted
    a.close()

    b = connect(sp.port, dbname="sp_test")
    assert b.execute("select pg_backend_pid()").fetchone()[0] == pid_a, "backend was not reused"
    assert b.execute("show application_name").fetchone()[0] != "dirty"
    assert b.execute("show work_mem").fetchone()[0] != "7MB"
    assert b.execute("select to_regclass('pg_temp.temp_probe')").fetchone()[0] is None
    assert b.execute("select count(*) from pg_prepared_statements").fetchone()[0] == 0
    assert b.execute("select count(*) from reset_probe").fetchone()[0] == 0
    assert b.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    b.close()


def test_reset_reaches_only_the_nodes_a_session_used(splitpool, cluster):
    """A client leaves: each node it sent something to gets reset_query_list (its setting and temp
    table are gone for the next client there); a pooled connection it never used gets nothing
    (that backend's last statement, and when it began, stay as they were)."""
    sp = splitpool(num_init_children=1, backend=cluster.backends(weights=(0, 1, 1)),
                   app_name_redirect_preference_list="probe_app:2")
    probe = ("select pid, query, query_start from pg_stat_activity where backend_type = 'client backend'"
             " and datname = 'sp_test' and pid <> pg_backend_pid()")
    read = "select inet_server_port(), current_setting('work_mem'), to_regclass('pg_temp.reset_tmp') is not null"
    psql(cluster.ports[0], "drop table if exists reset_used; create table reset_used (x int)", db="sp_test")
    with connect(sp.port, dbname="sp_test", application_name="probe_app") as c:
        c.execute("set work_mem = '7MB'")
        assert c.execute(read).fetchone() == (cluster.ports[2], "7MB", False)
    with connect(cluster.ports[2], dbname="sp_test") as direct:
        after_first = direct.execute(probe).fetchall()
    assert [q for _, q, _ in after_first] == ["DISCARD ALL"], after_first  # ABORT left out: it was idle
    with connect(sp.port, dbname="sp_test", application_name="probe_app") as c:  # the same pooled set
        c.execute("set work_mem = '9MB'")
        c.execute("create temp table reset_tmp (x int)")  # the primary only
    with connect(cluster.ports[2], dbname="sp_test") as direct:
        assert direct.execute(probe).fetchall() == after_first, "the unused standby was reset again"
    with connect(sp.port, dbname="sp_test", application_name="probe_app") as c:
        c.execute("begin")
        c.execute("insert into reset_used values (1)")  # a write: the rest of the transaction on the primary
        on_primary = c.execute(read).fetchone()
        c.execute("rollback")
        on_standby = c.execute(read).fetchone()
    assert on_primary[0] == cluster.ports[0] and on_primary[1] not in ("7MB", "9MB") and not on_primary[2], on_primary
    assert on_standby[0] == cluster.ports[2] and on_standby[1] not in ("7MB", "9MB"), on_standby


def test_cancel_request(splitpool):
    sp = splitpool()
    conn = connect(sp.port)
    timer = threading.Timer(1.0, conn.cancel)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(30)")
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert conn.execute("select 1").fetchone()[0] == 1
    conn.close()


def test_kill_children_keeps_other_sessions(splitpool):
    sp = splitpool(num_init_children=4)
    # 4 client children and the PCP process
    wait_until(lambda: len(sp.children()) == 5, 10, "5 children")
    a, b = connect(sp.port), connect(sp.port)
    a.execute("select 1")
    b.execute("select 1")
    kids = sp.children()
    a_child = socket_owner(sp.port, client_port(a), kids)
    assert a_child is not None, f"no child of {sp.pid} holds client A's socket"
    victims = [pid for pid in kids if pid != a_child]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    assert a.execute("select 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError):
        b.execute("select 1")

    def replaced():
        now = sp.children()
        return len(now) == 5 and a_child in now and not set(now) & set(victims)
    wait_until(replaced, 10, "the killed children to be replaced")
    assert sp.alive()
    for _ in range(4):
        assert psql_value(sp.port, "select 1") == "1"
    assert a.execute("select 2").fetchone()[0] == 2
    a.close()
    b.close()


def test_reload_client_idle_limit(splitpool):
    sp = splitpool(client_idle_limit=0)
    before = RawClient(sp.port).startup()
    time.sleep(2.5)  # idleness itself is what is tested
    assert before.query("select 1") == [["1"]], "client_idle_limit = 0 disconnected an idle client"
    before.close()

    sp.reload({"client_idle_limit": 1})
    after = RawClient(sp.port).startup()
    started = time.monotonic()
    fields = after.wait_for_error(timeout=6)
    elapsed = time.monotonic() - started
    assert fields is not None, "disconnected without an error message"
    assert fields.get("C") == "57P05", fields
    assert fields.get("S") == "FATAL", fields
    assert 0.5 <= elapsed <= 4, f"disconnected after {elapsed:.1f}s with client_idle_limit = 1"
    after.sock.close()


def test_reserved_connections(splitpool):
    sp = splitpool(num_init_children=2, reserved_connections=1)
    first = connect(sp.port)
    assert first.execute("select 1").fetchone()[0] == 1
    second = RawClient(sp.port)
    with pytest.raises(PgError) as err:
        second.startup()
    second.sock.close()
    assert err.value.sqlstate == "53300", err.value.fields
    assert "Sorry, too many clients already" in err.value.fields.get("M", "")
    first.close()

    def next_client_ok():
        p = psql(sp.port, "select 1", check=False)
        return p.returncode == 0
    wait_until(next_client_ok, 10, "a client to be accepted once the first left", 0.2)


# ----------------------------------------------------------------------------- lifecycle

def _wait_children_gone(pids, timeout=10):
    wait_until(lambda: not [p for p in pids if pid_alive(p)], timeout, f"children {pids} to exit")


def test_stop_smart_waits_for_clients(splitpool):
    sp = splitpool()
    conn = connect(sp.port)
    conn.execute("select 1")
    kids = sp.children()
    sp.send_stop("smart")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert sp.alive(), "smart shutdown did not wait for the connected client"
        time.sleep(0.1)
    assert conn.execute("select 7").fetchone()[0] == 7
    conn.close()
    assert sp.wait_exit(15) == 0
    _wait_children_gone(kids)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_stop_disconnects_clients(splitpool, mode):
    sp = splitpool()
    conn = connect(sp.port)
    conn.execute("select 1")
    kids = sp.children()
    sp.send_stop(mode)
    code = sp.wait_exit(10)
    if mode == "fast":
        assert code == 0
    with pytest.raises(psycopg.OperationalError):
        conn.execute("select 1")
    conn.close()
    _wait_children_gone(kids)


def _check_config(sp):
    return sp.cli("--check-config")


def _assert_config_error(proc, sp, line, key):
    out = proc.output
    assert proc.returncode == 1, f"exit {proc.returncode}\n{out}"
    where = re.compile(rf"({re.escape(str(sp.config_path))}|{re.escape(sp.config_path.name)}):{line}:")
    assert where.search(out), f"no FILE:{line}: in\n{out}"
    assert key in out, out


def test_check_config_good_file(splitpool):
    sp = splitpool.prepare()
    proc = _check_config(sp)
    assert proc.returncode == 0, proc.output


def test_check_config_unknown_key(splitpool):
    sp = splitpool.prepare()
    text = render_config(sp.cfg)
    head, tail = text.split("\n", 3)[:3], text.split("\n", 3)[3]
    sp.config_path.write_text("\n".join(head) + "\nno_such_key = 1\n" + tail)
    _assert_config_error(_check_config(sp), sp, 4, "no_such_key")


def test_check_config_out_of_range(splitpool):
    sp = splitpool.prepare(port=70000)
    _assert_config_error(_check_config(sp), sp, line_of(sp.config_path.read_text(), "port ="), "port")


def test_version_and_help(splitpool):
    sp = splitpool.prepare()
    for flag in ("--version", "--help"):
        proc = sp.cli(flag)
        assert proc.returncode == 0, proc.output
        assert "splitpool" in proc.output.lower(), proc.output


def test_daemon_mode(splitpool):
    sp = splitpool.prepare()
    start = sp.cli(log_to=sp.log_path)
    assert start.returncode == 0, start.output
    pid = sp.adopt_daemon()
    assert pid_alive(pid)

    again = sp.cli()
    assert again.returncode != 0, "a second instance started with the same pid file"
    assert "pid" in again.output.lower(), again.output
    assert pid_alive(pid) and sp.pid_file.exists()
    assert psql_value(sp.port, "select 1") == "1"

    stop = sp.cli("stop", timeout=60)
    assert stop.returncode == 0, stop.output
    assert not pid_alive(pid)
    assert not sp.pid_file.exists()


def test_deployment_pgbench_flow(splitpool, cluster):
    sp = splitpool(num_init_children=10)
    init_pgbench(sp, cluster, user="digoal", password="pwd123")
    p = pgbench(sp.port, ["-n", "-r", "-S", "-c", "8", "-j", "8", "-T", "5"], user="digoal",
                password="pwd123")
    processed, _ = pgbench_processed(p.stdout)
    assert processed > 0, p.stdout
    m = re.search(r"number of failed transactions: (\d+)", p.stdout)
    assert m is None or m.group(1) == "0", p.stdout


def test_unix_socket(splitpool):
    sp = splitpool()
    assert psql_value(sp.port, "select current_user", host=str(sp.dir)) == "postgres"
    assert os.path.exists(os.path.join(sp.dir, f".s.PGSQL.{sp.port}"))
