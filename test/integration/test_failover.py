"""The primary moves: each test makes a throwaway cluster of its own (primary + 2 streaming standbys,
no ALWAYS_PRIMARY), so stopping or promoting nodes never disturbs the shared one. Health checks and
the replication check are on; the hooks are shell scripts that log their arguments, as pgpool users
write them (failover_command promotes, follow_primary_command re-points the standby and attaches it)."""

import os
import time

import psycopg
import pytest

from conftest import splitpool_factory, throwaway_cluster
from helpers import psql, wait_until
from test_faults import pg_ctl
from test_health import pool_nodes
from test_pcp import BIN as PCP_BIN, PCP_USER, write_pcp_files

PG_BIN = "/usr/lib/postgresql/15/bin"
PLACEHOLDERS = "%d %h %p %D %m %H %M %P %r %R %N %S %%"


@pytest.fixture
def own_cluster():
    """A fresh primary + 2 standbys on SPLITPOOL_TEST_FAILOVER_PGPORT (default: the shared cluster's + 200)."""
    shared = int(os.environ.get("SPLITPOOL_TEST_PGPORT", "21000"))
    base = int(os.environ.get("SPLITPOOL_TEST_FAILOVER_PGPORT", str(shared + 200)))
    with throwaway_cluster("splitpool-it-pg-fo-", base, 2) as c:
        yield c


@pytest.fixture
def own_splitpool(request, own_cluster, ports):
    yield from splitpool_factory(request, own_cluster, ports)


def backends(cluster, weights):
    """No ALWAYS_PRIMARY: splitpool finds the primary with pg_is_in_recovery(); every node may fail over."""
    return [{"hostname": "127.0.0.1", "port": cluster.ports[k], "weight": weights[k], "flag": ["ALLOW_TO_FAILOVER"],
             "application_name": f"node{k}", "data_directory": f"{cluster.dir}/node{k}"} for k in range(3)]


def checks(**extra):
    keys = {"health_check_period": 1, "health_check_timeout": 2, "health_check_max_retries": 1,
            "health_check_retry_delay": 1, "health_check_user": "postgres", "sr_check_period": 1,
            "sr_check_user": "postgres", "search_primary_node_timeout": 30}
    keys.update(extra)
    return keys


def as_postgres(command):
    return f"runuser -u postgres -- {command}" if os.geteuid() == 0 else command


def write_hooks(sp, cluster):
    """failover.sh promotes the new main node when the old primary failed (pgpool's sample does the
    same over ssh); follow_primary.sh points the standby at the new primary and attaches it by PCP."""
    log = sp.dir / "hooks.log"
    failover = sp.dir / "failover.sh"
    failover.write_text(f"""#!/bin/sh
cd /
echo "failover $*" >> {log}
# $1 failed node, $8 old primary, $10 new main's data directory
if [ "$1" = "$8" ]; then {as_postgres(PG_BIN + '/pg_ctl -D "${10}" -w promote')}; fi
""")
    follow = sp.dir / "follow_primary.sh"
    follow.write_text(f"""#!/bin/sh
echo "follow $*" >> {log}
# $3 the standby's port, $6 and $9 the new primary's host and port
psql -X -q -h {cluster.dir} -p "$3" -U postgres -d postgres \\
  -c "ALTER SYSTEM SET primary_conninfo = 'host=$6 port=$9 user=postgres application_name=node$1'" \\
  -c "SELECT pg_reload_conf()"
PCPPASSFILE={sp.dir}/.pcppass {PCP_BIN}/pcp_attach_node -h 127.0.0.1 -p {sp.pcp_port} -U {PCP_USER} -w -n "$1"
""")
    for f in (failover, follow):
        f.chmod(0o755)
    sp.cfg["failover_command"] = f"{failover} {PLACEHOLDERS}"
    sp.cfg["follow_primary_command"] = f"{follow} {PLACEHOLDERS}"
    sp.write_config()
    write_pcp_files(sp)
    return log


def hook_lines(log, kind):
    return [line for line in log.read_text().splitlines() if line.startswith(kind + " ")] if log.exists() else []


def role_of(sp, node):
    """SHOW POOL_NODES' role of a node; None while a session cannot log in: until the health check
    detaches the failed primary (its login is refused), then while no primary is known (a new session
    waits for one up to connect_timeout, then gets 57P03)."""
    try:
        return pool_nodes(sp)[node]["role"]
    except psycopg.OperationalError as e:
        assert "no primary node is available" in str(e) or "could not log in" in str(e), e
        return None


def server_port(sp, sql="select inet_server_port()", db="postgres"):
    return int(psql(sp.port, sql, db=db).stdout.strip())


def test_primary_failure_promoted_standby_becomes_primary_and_the_other_follows(own_splitpool, own_cluster):
    c = own_cluster
    p0, p1, p2 = c.ports
    d0, d1, d2 = (f"{c.dir}/node{k}" for k in range(3))
    sp = own_splitpool.prepare(backend=backends(c, (0, 0, 1)), **checks())
    log = write_hooks(sp, c)
    sp.start()
    wait_until(lambda: pool_nodes(sp)[0]["pg_role"] == "primary" and pool_nodes(sp)[2]["replication_state"] ==
               "streaming", 20, "node 0 seen as primary and node 2 streaming")
    psql(sp.port, "create table fo(id int primary key, v text); insert into fo values (1, 'before')")
    c.wait_replicas_caught_up()

    proc = pg_ctl(c, 0, "-m", "immediate", "-w", "stop")
    assert proc.returncode == 0, proc.stderr
    stopped = time.monotonic()
    # detection: period x (retries + 1) + timeout; then the promotion and one replication round,
    # all within search_primary_node_timeout
    wait_until(lambda: role_of(sp, 1) == "primary", 1 * 2 + 2 + 30, "node 1 found as the new primary")
    print(f"new primary found {time.monotonic() - stopped:.1f} s after the primary stopped")
    nodes = pool_nodes(sp)
    assert nodes[0]["status"] == "down" and nodes[1]["pg_role"] == "primary", nodes
    assert "no primary node found within search_primary_node_timeout" not in sp.log_text()
    assert c.sql(1, "select pg_is_in_recovery()") == "f"

    # writes succeed through the new primary (a new session; the old primary's sessions ended)
    psql(sp.port, "insert into fo values (2, 'after')")
    assert c.sql(1, "select v from fo where id = 2") == "after"

    # failover_command ran once, for node 0, with the new main node 1
    assert hook_lines(log, "failover") == [
        f"failover 0 127.0.0.1 {p0} {d0} 1 127.0.0.1 0 0 {p1} {d1} 127.0.0.1 {p0} %"]
    # follow_primary_command ran for node 2 only (node 0 is the failed one), with the new primary 1
    wait_until(lambda: hook_lines(log, "follow"), 10, "follow_primary_command to run")
    assert hook_lines(log, "follow") == [
        f"follow 2 127.0.0.1 {p2} {d2} 1 127.0.0.1 0 0 {p1} {d1} 127.0.0.1 {p0} %"]
    sp.wait_for_log("follow_primary_command done", timeout=20)

    # node 2 follows node 1 and was attached by the script: reads are balanced to it again and see
    # the write made through the new primary
    wait_until(lambda: c.sql(1, "select count(*) from pg_stat_replication where application_name = 'node2' "
                                "and state = 'streaming'") == "1", 30, "node 2 streaming from node 1")
    wait_until(lambda: server_port(sp) == p2, 15, "reads on node 2 again")
    wait_until(lambda: psql(sp.port, "select v || ':' || inet_server_port() from fo where id = 2").stdout.strip()
               == f"after:{p2}", 15, "node 2 to serve the new primary's write")
    wait_until(lambda: pool_nodes(sp)[2]["replication_state"] == "streaming", 10, "node 2 streaming in SHOW POOL_NODES")
    assert (sp.dir / "pgpool_status").read_text().splitlines() == ["down", "up", "up"]


def test_standby_that_does_not_follow_is_excluded_from_reads(own_splitpool, own_cluster):
    """Without follow_primary_command nothing re-points node 2; it is left out of reads once the
    new primary's writes put it over delay_threshold (it never gets them)."""
    c = own_cluster
    sp = own_splitpool.prepare(backend=backends(c, (0, 0, 1)), **checks(delay_threshold=1000))
    failover = sp.dir / "failover.sh"
    failover.write_text(f"#!/bin/sh\nif [ \"$1\" = \"$2\" ]; then {as_postgres(PG_BIN + '/pg_ctl -D $3 -w promote')}; fi\n")
    failover.chmod(0o755)
    sp.cfg["failover_command"] = f"{failover} %d %P %R"
    sp.write_config()
    sp.start()
    wait_until(lambda: pool_nodes(sp)[2]["replication_state"] == "streaming", 20, "node 2 streaming")
    assert server_port(sp) == c.ports[2]
    proc = pg_ctl(c, 0, "-m", "immediate", "-w", "stop")
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: role_of(sp, 1) == "primary", 34, "node 1 found as the new primary")
    psql(sp.port, "create table lag_source as select g from generate_series(1, 5000) g")
    wait_until(lambda: int(pool_nodes(sp)[2]["replication_delay"]) > 1000, 15, "node 2 over delay_threshold")
    for _ in range(3):
        assert server_port(sp) == c.ports[1]


def test_false_primary_is_detached_with_detach_false_primary(own_splitpool, own_cluster):
    """Node 2 is promoted while node 0 runs: node 1 still follows node 0, so node 2 is a false primary."""
    c = own_cluster
    sp = own_splitpool(backend=backends(c, (0, 1, 1)), **checks(health_check_period=0))
    wait_until(lambda: pool_nodes(sp)[2]["replication_state"] == "streaming", 20, "node 2 streaming")
    proc = pg_ctl(c, 2, "-w", "promote")
    assert proc.returncode == 0, proc.stderr
    sp.wait_for_log(r"node 2 is not in recovery but the standbys follow node 0 \(a false primary\)", timeout=15)
    nodes = pool_nodes(sp)
    assert nodes[0]["role"] == "primary" and nodes[2]["status"] != "down", nodes
    assert nodes[2]["pg_role"] == "primary"  # what the node says of itself

    sp.reload({"detach_false_primary": True})
    wait_until(lambda: pool_nodes(sp)[2]["status"] == "down", 15, "node 2 detached as a false primary")
    assert pool_nodes(sp)[0]["role"] == "primary"
    assert (sp.dir / "pgpool_status").read_text().splitlines() == ["up", "up", "down"]
    for _ in range(4):  # reads stay off it
        assert server_port(sp) in (c.ports[0], c.ports[1])
