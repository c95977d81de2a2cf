"""SQL-level administration answered by splitpool itself (SHOW POOL_*, PGPOOL SHOW/SET/RESET) over the simple
and the extended protocol, and the Prometheus /metrics endpoint under pgbench."""

import re
import subprocess
import urllib.error
import urllib.request

import psycopg
import pytest

from helpers import SPLITPOOL_BIN, RawClient, PgError, connect, pgbench, psql, wait_until

DATE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
NODE_COLUMNS = ["node_id", "hostname", "port", "status", "pg_status", "lb_weight", "role", "pg_role", "select_cnt",
                "load_balance_node", "replication_delay", "replication_state", "replication_sync_state",
                "last_status_change"]


def psql_table(port, sql, db="postgres"):
    """(header, rows) of a statement run by psql over the simple protocol (tab-separated: values may hold '|')."""
    out = psql(port, input=f"\\pset tuples_only off\n\\pset fieldsep '\\t'\n{sql};\n", db=db).stdout
    lines = [l for l in out.splitlines()
             if l and "Tuples only" not in l and "Field separator" not in l and not re.fullmatch(r"\(\d+ rows?\)", l)]
    return lines[0].split("\t"), [l.split("\t") for l in lines[1:]]


def start(splitpool, cluster, **overrides):
    overrides.setdefault("health_check_period", 0)
    overrides.setdefault("sr_check_period", 0)
    overrides.setdefault("backend", cluster.backends(weights=(1, 2, 2)))
    return splitpool(**overrides)


def check_node_rows(rows, cluster):
    assert len(rows) == 3
    for i, r in enumerate(rows):
        assert len(r) == 14
        assert r[0] == str(i) and r[1] == "127.0.0.1" and r[2] == str(cluster.ports[i])
        assert r[3] in ("up", "waiting")
        assert r[4] == "unknown"
        assert r[5] == ("0.200000" if i == 0 else "0.400000")
        assert r[6] == ("primary" if i == 0 else "standby")
        assert r[7] == "unknown"
        assert r[8].isdigit()
        assert r[9] in ("true", "false")
        assert r[10] == "0"
        assert re.fullmatch(DATE, r[13])


# ----------------------------------------------------------------------------- simple protocol

def test_show_pool_nodes_through_psql(splitpool, cluster):
    sp = start(splitpool, cluster)
    header, rows = psql_table(sp.port, "SHOW POOL_NODES")
    assert header == NODE_COLUMNS
    check_node_rows(rows, cluster)


def test_show_pool_nodes_is_never_sent_to_a_backend(splitpool, cluster):
    sp = start(splitpool, cluster)
    # PostgreSQL itself would answer 42704 unrecognized configuration parameter "pool_nodes"
    rows = RawClient(sp.port).startup().query("show pool_nodes")
    assert len(rows) == 3
    with pytest.raises(PgError) as e:
        RawClient(sp.port).startup().query("show pool_nosuchthing")
    assert e.value.sqlstate == "42704"


def test_load_balance_node_column_names_this_sessions_read_node(splitpool, cluster):
    sp = start(splitpool, cluster, backend=cluster.backends(weights=(0, 1, 0)))
    with connect(sp.port, dbname="sp_test") as c:
        c.execute("select 1").fetchone()
        rows = psycopg.ClientCursor(c).execute("show pool_nodes").fetchall()
    assert [r[9] for r in rows] == ["false", "true", "false"]


@pytest.mark.parametrize("command,columns", [
    ("SHOW POOL_PROCESSES", ["pool_pid", "start_time", "client_connection_count", "database", "username",
                             "backend_connection_time", "pool_counter", "status"]),
    ("SHOW POOL_POOLS", ["pool_pid", "start_time", "client_connection_count", "pool_id", "backend_id", "database",
                         "username", "backend_connection_time", "client_connection_time",
                         "client_disconnection_time", "client_idle_duration", "majorversion", "minorversion",
                         "pool_counter", "pool_backendpid", "pool_connected", "status", "load_balance_node"]),
    ("SHOW POOL_STATUS", ["item", "value", "description"]),
    ("SHOW POOL_VERSION", ["pool_version"]),
    ("SHOW POOL_HEALTH_CHECK_STATS", ["node_id", "hostname", "port", "status", "role", "last_status_change",
                                      "total_count", "success_count", "fail_count", "skip_count", "retry_count",
                                      "average_retry_count", "max_retry_count", "max_duration", "min_duration",
                                      "average_duration", "last_health_check", "last_successful_health_check",
                                      "last_skip_health_check", "last_failed_health_check"]),
    ("SHOW POOL_BACKEND_STATS", ["node_id", "hostname", "port", "status", "role", "select_cnt", "insert_cnt",
                                 "update_cnt", "delete_cnt", "ddl_cnt", "other_cnt", "panic_cnt", "fatal_cnt",
                                 "error_cnt"]),
])
def test_show_pool_commands_have_pgpools_columns(splitpool, cluster, command, columns):
    sp = start(splitpool, cluster)
    header, rows = psql_table(sp.port, command, db="sp_test")
    assert header == columns
    assert rows and all(len(r) == len(columns) for r in rows)
    if command == "SHOW POOL_PROCESSES":
        assert len(rows) == 4 and sorted(int(r[0]) for r in rows) == sorted(
            int(r[0]) for r in rows if int(r[0]) in sp.children())
        assert any(r[3] == "sp_test" and r[4] == "postgres" for r in rows)   # psql's own session
    if command == "SHOW POOL_POOLS":
        assert len(rows) == 4 * 3
    if command == "SHOW POOL_VERSION":
        assert re.fullmatch(r"\d+\.\d+\.\d+ \(.+\)", rows[0][0])
    if command in ("SHOW POOL_HEALTH_CHECK_STATS", "SHOW POOL_BACKEND_STATS"):
        assert [r[2] for r in rows] == [str(p) for p in cluster.ports]


def test_pgpool_set_show_reset_is_per_session(splitpool, cluster):
    sp = start(splitpool, cluster, client_idle_limit=0)
    script = ("PGPOOL SHOW client_idle_limit;\n"
              "PGPOOL SET client_idle_limit = 30;\n"
              "PGPOOL SHOW client_idle_limit;\n"
              "PGPOOL SET log_statement TO on;\n"
              "PGPOOL SHOW log_statement;\n"
              "PGPOOL RESET client_idle_limit;\n"
              "PGPOOL SHOW client_idle_limit;\n"
              "PGPOOL RESET ALL;\n"
              "PGPOOL SHOW log_statement;\n")
    out = psql(sp.port, input=script).stdout.split()
    assert out == ["0", "SET", "30", "SET", "on", "RESET", "0", "RESET", "off"]
    # another session does not see this one's settings
    assert psql(sp.port, "PGPOOL SHOW client_idle_limit").stdout.strip() == "0"


def test_pgpool_set_errors(splitpool, cluster):
    sp = start(splitpool, cluster)
    c = RawClient(sp.port).startup()
    for sql, code in [("PGPOOL SET no_such_key = 1", "42704"), ("PGPOOL SET num_init_children = 9", "55P02"),
                      ("PGPOOL SET log_statement = perhaps", "22023"), ("PGPOOL SET log_statement", "42601"),
                      ("PGPOOL SHOW no_such_key", "42704")]:
        with pytest.raises(PgError) as e:
            c.query(sql)
        assert e.value.sqlstate == code, sql
    assert c.query("select 1") == [["1"]]     # the session is still usable


# ----------------------------------------------------------------------------- extended protocol

def test_show_pool_nodes_through_the_extended_protocol(splitpool, cluster):
    sp = start(splitpool, cluster)
    with connect(sp.port, dbname="sp_test") as c:
        cur = c.execute("SHOW POOL_NODES", prepare=True)
        assert [d.name for d in cur.description] == NODE_COLUMNS
        check_node_rows([list(r) for r in cur.fetchall()], cluster)
        cur = c.execute("SHOW POOL_NODES", prepare=True)     # the prepared statement again
        assert len(cur.fetchall()) == 3
        bcur = c.cursor(binary=True)
        bcur.execute("show pool_version")
        assert isinstance(bcur.fetchone()[0], str)
        c.execute("PGPOOL SET client_idle_limit = 12", prepare=False)
        assert c.execute("PGPOOL SHOW client_idle_limit").fetchone()[0] == "12"
        assert c.execute("select 41 + 1").fetchone()[0] == 42    # ordinary statements still flow


# ----------------------------------------------------------------------------- metrics

def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def parse_metrics(text):
    """{'name{labels}': float}; every sample's family has HELP and TYPE lines."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
            assert m, f"bad sample line {line!r}"
            family = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
            assert m.group(1) in typed or family in typed, f"no TYPE line before {line!r}"
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def test_metrics_endpoint_parses_and_counters_move_under_pgbench(splitpool, cluster, ports, tmp_path):
    mport, _ = ports.pair()
    sp = start(splitpool, cluster, metrics_listen_addresses="127.0.0.1", metrics_port=mport)
    first = wait_until(lambda: _try_scrape(mport), 10, "the metrics endpoint")
    before = parse_metrics(first)
    label = lambda i: f'{{node="{i}",hostname="127.0.0.1",port="{cluster.ports[i]}"}}'
    for i in range(3):
        assert before["splitpool_node_status" + label(i)] in (1, 2)
        assert before["splitpool_node_primary" + label(i)] == (1 if i == 0 else 0)
    assert sum(v for k, v in before.items() if k.startswith("splitpool_children{")) == 4
    script = tmp_path / "select.sql"
    script.write_text("select 1;\n")
    pgbench(sp.port, ["-n", "-f", script, "-c", "4", "-j", "2", "-t", "50"], db="sp_test")
    after = parse_metrics(scrape(mport))
    moved = sum(after["splitpool_node_select_total" + label(i)] - before["splitpool_node_select_total" + label(i)]
                for i in range(3))
    assert moved >= 200
    # a session counts once its child has finished with it (reset queries), just after pgbench exits
    served = before["splitpool_sessions_served_total"] + 4
    wait_until(lambda: parse_metrics(scrape(mport))["splitpool_sessions_served_total"] >= served, 10,
               "the 4 pgbench sessions to be counted")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/nope", timeout=5)
    assert e.value.code == 404


def _try_scrape(port):
    try:
        return scrape(port)
    except OSError:
        return None


def test_pgpool_set_changes_this_session_only(splitpool, cluster):
    sp = start(splitpool, cluster)
    with connect(sp.port, dbname="sp_test") as c:
        notices = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("PGPOOL SET notice_per_node_statement = on")
        c.execute("select 1")
        assert any(n.startswith("DB node id: ") and "select 1" in n for n in notices), notices
        c.execute("PGPOOL RESET notice_per_node_statement")
        notices.clear()
        c.execute("select 2")
        assert notices == []
    with connect(sp.port, dbname="sp_test") as other:  # another session keeps the configured value
        notices = []
        other.add_notice_handler(lambda d: notices.append(d.message_primary))
        other.execute("select 3")
        assert notices == []
    idle = RawClient(sp.port, database="sp_test").startup()
    idle.query("PGPOOL SET client_idle_limit = 1")
    fields = idle.wait_for_error(timeout=6)
    assert fields is not None and fields.get("C") == "57P05", fields
    idle.sock.close()
