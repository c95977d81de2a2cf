"""Health checks, the streaming replication check, lag-aware routing and node status that survives a
restart, against the real cluster. Node facts are compared with what the nodes themselves report."""

import re
import socket
import threading
import time

import pytest

from helpers import connect, pgbench, psql, wait_until
from test_faults import StoppedStandby
from test_pcp import pcp, write_pcp_files


def pool_nodes(sp):
    """SHOW POOL_NODES as dicts by node id."""
    with connect(sp.port) as c:
        cur = c.execute("show pool_nodes")
        cols = [d.name for d in cur.description]
        return {int(r[0]): dict(zip(cols, r)) for r in cur.fetchall()}


def health_stats(sp):
    with connect(sp.port) as c:
        cur = c.execute("show pool_health_check_stats")
        cols = [d.name for d in cur.description]
        return {int(r[0]): dict(zip(cols, r)) for r in cur.fetchall()}


def checked(cluster, **extra):
    keys = {"health_check_period": 1, "health_check_timeout": 2, "health_check_max_retries": 1,
            "health_check_retry_delay": 1, "health_check_user": "postgres", "sr_check_period": 1,
            "sr_check_user": "postgres"}
    keys.update(extra)
    return keys


def flagged(cluster, weights=(0, 1, 1)):
    """Standbys may fail over (ALLOW_TO_FAILOVER); the primary stays ALWAYS_PRIMARY."""
    backends = cluster.backends(weights=weights)
    for b in backends[1:]:
        b["flag"] = ["ALLOW_TO_FAILOVER"]
    return backends


def test_health_check_detaches_a_stopped_standby_and_pcp_attach_brings_it_back(splitpool, cluster):
    sp = splitpool.prepare(backend=flagged(cluster, (0, 0, 1)), **checked(cluster))
    sp.cfg["failover_command"] = f"echo failover %d %h %p %P %m %% >> {sp.dir}/hooks.log; echo hook says hi"
    sp.cfg["failback_command"] = f"echo failback %d %p >> {sp.dir}/hooks.log"
    sp.write_config()
    write_pcp_files(sp)
    sp.start()
    wait_until(lambda: health_stats(sp)[2]["success_count"] not in ("0", 0), 10, "a successful health check")
    with StoppedStandby(cluster, 2) as standby:
        standby.stop()
        stopped = time.monotonic()
        # period x (retries + 1) + timeout, plus a round in flight
        wait_until(lambda: pool_nodes(sp)[2]["status"] == "down", 1 * 2 + 2 + 1 + 4, "node 2 marked down")
        print(f"node 2 down {time.monotonic() - stopped:.1f} s after it stopped")
        stats = health_stats(sp)[2]
        assert int(stats["fail_count"]) >= 2 and int(stats["retry_count"]) >= 1, stats
        assert "health check failed on DB node 2" in sp.log_text()
        for _ in range(3):  # new sessions avoid it
            assert psql(sp.port, "select inet_server_port()").stdout.strip() == str(cluster.ports[0])
        assert (sp.dir / "pgpool_status").read_text().splitlines() == ["up", "up", "down"]
        wait_until(lambda: (sp.dir / "hooks.log").exists(), 10, "failover_command to run")
        assert (sp.dir / "hooks.log").read_text().splitlines()[0] == f"failover 2 127.0.0.1 {cluster.ports[2]} 0 0 %"
        sp.wait_for_log("failover_command: hook says hi")
    # started again (the context restarted it): attached by PCP, it gets reads again
    pcp(sp, "pcp_attach_node", "-n", "2")
    wait_until(lambda: psql(sp.port, "select inet_server_port()").stdout.strip() == str(cluster.ports[2]), 10,
               "reads on node 2 again")
    assert (sp.dir / "pgpool_status").read_text().splitlines() == ["up", "up", "up"]
    wait_until(lambda: f"failback 2 {cluster.ports[2]}" in (sp.dir / "hooks.log").read_text(), 10, "failback_command")


def test_replication_check_reports_what_the_nodes_report(splitpool, cluster):
    sp = splitpool(backend=cluster.backends(), **checked(cluster, health_check_period=0))
    wait_until(lambda: pool_nodes(sp)[1]["replication_state"] == "streaming", 15, "replication state")
    nodes = pool_nodes(sp)
    direct = cluster.sql(0, "select application_name || ':' || state || ':' || sync_state from pg_stat_replication "
                            "order by application_name").split()
    for k in (1, 2):
        assert f"node{k}:{nodes[k]['replication_state']}:{nodes[k]['replication_sync_state']}" in direct
        assert nodes[k]["pg_role"] == "standby"
    assert nodes[0]["pg_role"] == "primary" and nodes[0]["replication_state"] == ""


def test_lagging_standby_gets_no_reads_until_it_catches_up(splitpool, cluster):
    cluster.sql(0, "drop table if exists hl; create table hl(id int)", db="sp_test")
    cluster.wait_replicas_caught_up()
    sp = splitpool(backend=cluster.backends(weights=(0, 0, 1)),
                   **checked(cluster, health_check_period=0, delay_threshold=1000))
    assert psql(sp.port, "select inet_server_port()", db="sp_test").stdout.strip() == str(cluster.ports[2])
    cluster.sql(2, "select pg_wal_replay_pause()")
    try:
        cluster.sql(0, "insert into hl select generate_series(1, 2000)", db="sp_test")
        wait_until(lambda: int(pool_nodes(sp)[2]["replication_delay"]) > 1000, 15, "node 2 over delay_threshold")
        for _ in range(3):
            assert psql(sp.port, "select inet_server_port()", db="sp_test").stdout.strip() == str(cluster.ports[0])
    finally:
        cluster.sql(2, "select pg_wal_replay_resume()")
    wait_until(lambda: int(pool_nodes(sp)[2]["replication_delay"]) <= 1000, 15, "node 2 caught up")
    wait_until(lambda: psql(sp.port, "select inet_server_port()", db="sp_test").stdout.strip() == str(cluster.ports[2]),
               10, "reads on node 2 again")


def test_detached_node_stays_detached_after_restart_and_minus_d_discards_it(splitpool, cluster):
    sp = splitpool.prepare(backend=flagged(cluster))
    write_pcp_files(sp)
    sp.start()
    pcp(sp, "pcp_detach_node", "-n", "1")
    assert (sp.dir / "pgpool_status").read_text().splitlines() == ["up", "down", "up"]
    sp.stop()
    sp.start()
    assert pool_nodes(sp)[1]["status"] == "down"
    assert "node 1 is down" in sp.log_text()
    sp.stop()
    sp.proc = None
    import subprocess
    from helpers import SPLITPOOL_BIN
    log = open(sp.log_path, "ab")
    sp.proc = subprocess.Popen([str(SPLITPOOL_BIN), "-n", "-D", "-f", str(sp.config_path)], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT, cwd=sp.dir, start_new_session=True)
    log.close()
    sp.wait_ready()
    assert pool_nodes(sp)[1]["status"] in ("up", "waiting")


def test_health_check_of_a_node_that_never_answers_times_out_without_blocking_sessions(splitpool, cluster, ports):
    pgbench(cluster.ports[0], ["-i", "-s", "1", "-q"], db="sp_other")
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port, _ = ports.pair()
    silent.bind(("127.0.0.1", port))
    silent.listen(16)  # accepts TCP, never reads or answers
    try:
        backends = cluster.backends(weights=(1, 0, 0))
        backends.append({"hostname": "127.0.0.1", "port": port, "weight": 0, "flag": ["ALLOW_TO_FAILOVER"],
                         "application_name": "silent"})
        sp = splitpool(backend=backends, **checked(cluster, health_check_timeout=1, health_check_max_retries=0,
                                                   sr_check_period=0))
        result = {}
        t = threading.Thread(target=lambda: result.update(
            p=pgbench(sp.port, ["-S", "-c", "2", "-T", "4", "-n"], db="sp_other", check=False)))
        t.start()
        wait_until(lambda: pool_nodes(sp)[3]["status"] == "down", 10, "the silent node marked down")
        t.join(30)
        assert result["p"].returncode == 0, result["p"].stdout + result["p"].stderr
        assert "number of failed transactions: 0" in result["p"].stdout or "failed" not in result["p"].stdout
    finally:
        silent.close()


def test_per_node_health_check_override_is_used_for_that_node_only(splitpool, cluster):
    """Top-level health checks off; node 1 and node 2 turn them on in their [[backend]] tables, node 1
    with a user that does not exist (DISALLOW_TO_FAILOVER, so it is only counted and logged)."""
    backends = cluster.backends()
    backends[1].update(health_check_period=1, health_check_user="no_such_hc_user", health_check_max_retries=0)
    backends[2].update(health_check_period="1s", health_check_user="postgres", health_check_database="sp_test",
                       health_check_max_retries=0, connect_timeout=2000)
    sp = splitpool(backend=backends, health_check_period=0, health_check_user="postgres", sr_check_period=0)
    wait_until(lambda: int(health_stats(sp)[2]["success_count"]) >= 2 and int(health_stats(sp)[1]["fail_count"]) >= 2,
               15, "two rounds on node 1 and node 2")
    stats = health_stats(sp)
    assert int(stats[0]["total_count"]) == 0, stats[0]          # no override, global period 0
    assert int(stats[2]["fail_count"]) == 0, stats[2]
    assert int(stats[1]["success_count"]) == 0, stats[1]
    assert re.search(r'health check failed on DB node 1: .*"no_such_hc_user"', sp.log_text())
    assert pool_nodes(sp)[1]["status"] != "down"                  # DISALLOW_TO_FAILOVER
    status = psql(sp.port, "show pool_status").stdout
    assert "health_check_period2|1|" in status and "health_check_user1|no_such_hc_user|" in status, status


def test_empty_check_passwords_are_looked_up_in_pool_passwd(splitpool, cluster, tmp_path):
    """health_check_password and sr_check_password empty: each node's check user is found in pool_passwd
    (AES with the key file, md5, TEXT), as pgpool does; without the key file the AES user fails."""
    from authkit import aes_entry, md5_entry, start, write_key_file, write_pool_passwd
    backends = cluster.backends()
    backends[0]["health_check_user"] = "plainuser"   # scram-sha-256 in pg_hba: TEXT entry
    backends[1]["health_check_user"] = "digoal"      # scram-sha-256: AES entry
    backends[2]["health_check_user"] = "md5user"     # md5: md5 entry
    keys = checked(cluster, health_check_password="", sr_check_user="digoal", sr_check_password="",
                   health_check_max_retries=0, pool_passwd="pool_passwd")
    sp = splitpool.prepare(backend=backends, **keys)
    write_pool_passwd(sp, {"plainuser": "TEXTplainpass", "digoal": aes_entry("pwd123"),
                           "md5user": md5_entry("md5user", "md5pass")})
    start(sp, env={"PGPOOLKEYFILE": str(write_key_file(tmp_path))})
    wait_until(lambda: all(int(s["success_count"]) >= 2 for s in health_stats(sp).values()), 15,
               "two successful health checks on every node")
    assert all(int(s["fail_count"]) == 0 for s in health_stats(sp).values()), health_stats(sp)
    wait_until(lambda: pool_nodes(sp)[1]["replication_state"] == "streaming", 15, "sr_check as digoal (AES)")
    sp.stop()

    sp2 = splitpool.prepare(backend=backends, **keys)
    write_pool_passwd(sp2, {"plainuser": "TEXTplainpass", "digoal": aes_entry("pwd123"),
                            "md5user": md5_entry("md5user", "md5pass")})
    start(sp2, env={"PGPOOLKEYFILE": str(tmp_path / "no-such-key")})
    sp2.wait_for_log(r'health check failed on DB node 1: .*AES pool_passwd entry of user "digoal" cannot be '
                     r'decrypted: no key file', timeout=15)
    assert int(health_stats(sp2)[2]["fail_count"]) == 0
    assert "pwd123" not in sp2.log_text() and "md5pass" not in sp2.log_text()


def test_checked_state_in_pool_nodes_pcp_node_info_and_metrics_matches_the_nodes(splitpool, cluster, ports):
    """pg_is_in_recovery() on each node and the primary's pg_stat_replication, against SHOW POOL_NODES,
    pcp_node_info and /metrics; SHOW POOL_HEALTH_CHECK_STATS against the metrics' health counters."""
    from test_admin import _try_scrape, parse_metrics
    mport, _ = ports.pair()
    sp = splitpool.prepare(backend=cluster.backends(), metrics_listen_addresses="127.0.0.1", metrics_port=mport,
                           **checked(cluster))
    write_pcp_files(sp)
    sp.start()
    cluster.wait_replicas_caught_up()
    wait_until(lambda: all(pool_nodes(sp)[k]["replication_state"] == "streaming" and
                           pool_nodes(sp)[k]["replication_delay"] == "0" for k in (1, 2)), 20,
               "both standbys streaming and caught up in SHOW POOL_NODES")
    wait_until(lambda: all(int(s["success_count"]) >= 2 for s in health_stats(sp).values()), 15, "health checks")
    label = lambda i: f'{{node="{i}",hostname="127.0.0.1",port="{cluster.ports[i]}"'
    nodes = pool_nodes(sp)
    replication = {r.split("|")[0]: r.split("|")[1:] for r in cluster.sql(
        0, "select application_name || '|' || state || '|' || sync_state || '|' || "
           "coalesce(extract(epoch from replay_lag), 0) from pg_stat_replication").split()}
    metrics = parse_metrics(wait_until(lambda: _try_scrape(mport), 10, "the metrics endpoint"))
    for k in range(3):
        in_recovery = cluster.sql(k, "select pg_is_in_recovery()") == "t"
        role = "standby" if in_recovery else "primary"
        assert nodes[k]["pg_role"] == role and nodes[k]["role"] == role, nodes[k]
        info = pcp(sp, "pcp_node_info", "-n", k).stdout.split()
        assert role in info[6:8], info
        assert metrics["splitpool_node_reported_primary" + label(k) + "}"] == (0 if in_recovery else 1)
        assert metrics["splitpool_node_primary" + label(k) + "}"] == (0 if in_recovery else 1)
        if not in_recovery:
            continue
        state, sync, lag = replication[f"node{k}"]
        assert (nodes[k]["replication_state"], nodes[k]["replication_sync_state"]) == (state, sync)
        assert info[9:11] == [state, sync], info
        assert metrics[f'splitpool_node_replication_state{label(k)},state="{state}",sync_state="{sync}"}}'] == 1
        assert "splitpool_node_replication_lag_seconds" + label(k) + "}" in metrics
        assert metrics["splitpool_node_replication_delay_bytes" + label(k) + "}"] >= 0
        print(f"node {k}: {state}/{sync}, replay_lag {lag} s on the primary, "
              f"{metrics['splitpool_node_replication_lag_seconds' + label(k) + '}']} s in /metrics")
    stats = health_stats(sp)
    after = parse_metrics(_try_scrape(mport))
    for k in range(3):
        # counters only grow: what SHOW said a moment ago is at most what /metrics says now
        assert after[f'splitpool_node_health_checks_total{label(k)},result="success"}}'] >= int(stats[k]["success_count"])
        assert after["splitpool_node_health_check_duration_seconds_count" + label(k) + "}"] >= 2
        assert after["splitpool_node_health_check_last_success_timestamp_seconds" + label(k) + "}"] > 0


def app_connections(cluster, node, app):
    return int(cluster.sql(node, f"select count(*) from pg_stat_activity where application_name = '{app}'"))


def test_idle_limit_and_pooled_connections_when_a_node_is_detached_during_idle(splitpool, cluster):
    """client_idle_limit still ends a client idle across a detach; the cached connections of a set that
    used the detached node are closed (as pgpool's failover restarts such children); connection_life_time
    still expires the sets made afterwards."""
    from helpers import RawClient
    sp = splitpool.prepare(backend=flagged(cluster, (0, 0, 1)), num_init_children=1, client_idle_limit=2,
                           connection_life_time=3, child_life_time=0, health_check_period=0, sr_check_period=0)
    write_pcp_files(sp)
    sp.start()
    idle = RawClient(sp.port, params={"application_name": "idle_detach"}).startup()
    assert idle.query("select inet_server_port()") == [[str(cluster.ports[2])]]
    pcp(sp, "pcp_detach_node", "-n", "2")
    error = idle.wait_for_error(10)
    assert error is not None and error["C"] == "57P05", error
    idle.close()
    wait_until(lambda: app_connections(cluster, 2, "idle_detach") == 0 and app_connections(cluster, 0, "idle_detach") == 0,
               10, "the cached set that used node 2 to be closed")
    after = RawClient(sp.port, params={"application_name": "after_detach"}).startup()
    assert after.query("select inet_server_port()") == [[str(cluster.ports[0])]]
    after.close()
    assert app_connections(cluster, 0, "after_detach") == 1   # cached
    wait_until(lambda: app_connections(cluster, 0, "after_detach") == 0, 10, "connection_life_time to expire it")
    pcp(sp, "pcp_attach_node", "-n", "2")


def test_child_max_connections_and_child_life_time_while_nodes_change_state(splitpool, cluster):
    sp = splitpool.prepare(backend=flagged(cluster, (0, 0, 1)), num_init_children=1, child_max_connections=2,
                           child_life_time=2, health_check_period=0, sr_check_period=0)
    write_pcp_files(sp)
    sp.start()   # its readiness probe was the child's first client
    first = set(sp.children())
    assert psql(sp.port, "select inet_server_port()").stdout.strip() == str(cluster.ports[2])
    # the second client was the last: the child is replaced
    new_child = lambda before: (lambda: (set(sp.children()) - before - {sp.pid}) or None)
    second = wait_until(new_child(first), 10, "child_max_connections to replace the child")
    pcp(sp, "pcp_detach_node", "-n", "2")
    assert psql(sp.port, "select inet_server_port()").stdout.strip() == str(cluster.ports[0])
    pcp(sp, "pcp_attach_node", "-n", "2")
    # one client served, then idle: child_life_time retires it
    wait_until(new_child(first | second), 10, "child_life_time to replace the child")
    assert psql(sp.port, "select inet_server_port()").stdout.strip() == str(cluster.ports[2])
