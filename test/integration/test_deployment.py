"""The reference deployment (shared/reference/deployment.md) on the test cluster: three auth ways, load, PCP, stop."""

import os
import re
import subprocess
import time

import pytest

from authkit import (Capture, cluster_tls, login_error, new_instance, pki, stop_instance, wait_ready_as,  # noqa: F401
                     write_hba, write_key_file)
from helpers import REPO, _run, client_env, describe, pgbench_processed, pid_alive, psql, wait_until

WAYS = ["pass-through", "pass-through-tls", "double-scram"]
USER, PASSWORD = "digoal", "pwd123"
PCP_USER, PCP_MD5 = "pcpadm", "45cb41b32dcfb917ccd8614f1536d6da"  # md5 of pwd123
APP_NAMES = ["polardb_primray", "polardb_replica1", "polardb_standby1"]  # spelled as in the reference


def reference_backends(cluster):
    backends = cluster.backends(weights=(1, 2, 2))
    for b, name in zip(backends, APP_NAMES):
        b["application_name"] = name
    return backends


def reference_config(cluster, pki, way):
    cfg = {
        "listen_addresses": "0.0.0.0",
        "pcp_listen_addresses": "localhost",
        "log_destination": "stderr",
        # logging_collector stays off: the harness reads the daemon's stderr (log_to) instead of log_directory.
        "logging_collector": False,
        "backend_clustering_mode": "streaming_replication",
        "load_balance_mode": True,
        "sr_check_period": 0,
        "health_check_period": 0,
        "failover_on_backend_shutdown": False,
        "failover_on_backend_error": False,
        # pgpool's defaults, as the reference does not set them (the harness base config has 4 children).
        "num_init_children": None,
        "max_pool": None,
        "backend": reference_backends(cluster),
    }
    if way in ("pass-through", "pass-through-tls"):
        cfg.update(enable_pool_hba=False, allow_clear_text_frontend_auth=True, pool_passwd="")
    if way == "pass-through-tls":
        cfg.update(ssl=True, ssl_cert=str(pki.path("server", "crt")), ssl_key=str(pki.path("server", "key")))
    if way == "double-scram":
        cfg.update(enable_pool_hba=True, allow_clear_text_frontend_auth=False)
    return cfg


def client_tls(way):
    return {"PGSSLMODE": "require" if way == "pass-through-tls" else "disable"}


def run_client(args, env_extra, timeout=120):
    return _run(args, client_env(PASSWORD, **env_extra), timeout=timeout)


def set_up_double_auth(sp):
    """pool_hba.conf, key file (mode 0600) and `pg_enc -m -f CONFIG -k KEY -u digoal pwd123`; returns start args."""
    sp.cfg["pool_passwd"] = str(sp.dir / "pool_passwd")  # absolute, as '/path/pool_passwd' in the reference
    sp.write_config()
    write_hba(sp, ["host all all 0.0.0.0/0 scram-sha-256"])
    key = write_key_file(sp.dir, "any text will do as the key")
    p = subprocess.run([str(REPO / "bin" / "pg_enc"), "-m", "-f", str(sp.config_path), "-k", str(key),
                        "-u", USER, PASSWORD], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, describe(p)
    text = (sp.dir / "pool_passwd").read_text()
    assert re.fullmatch(r"digoal:AES[A-Za-z0-9+/=]+\n?", text), text
    return ["-k", str(key)]


def start_daemon(sp, start_args, way):
    """`splitpool -f CONFIG [-k KEY]` (daemonizing, as `pgpool` is started), then waits for a digoal login."""
    p = sp.cli(*start_args, log_to=sp.log_path)
    assert p.returncode == 0, f"start exited {p.returncode}: {p.output}"
    wait_until(lambda: sp.pid_file.exists() and sp.pid_file.read_text().strip().isdigit(), 15,
               f"pid file {sp.pid_file}")
    sp._pid = int(sp.pid_file.read_text().split()[0])
    wait_ready_as(sp, (USER, PASSWORD))


def check_login_capture(sp, way):
    with Capture(sp.port, sp.dir) as cap:
        p = psql(sp.port, "select current_user", user=USER, password=PASSWORD, env_extra=client_tls(way))
        assert p.stdout.strip() == USER
    visible = PASSWORD.encode() in cap.data
    assert cap.packets() >= 6, f"capture holds {cap.packets()} packets"
    if way == "pass-through":
        assert visible, "pass-through: the clear-text password should be in the capture (is tcpdump working?)"
    else:
        assert not visible, f"{way}: the password crossed the wire in clear text"
    if way == "double-scram":
        assert b"SCRAM-SHA-256" in cap.data, "no SASL exchange in the capture"


def one_pgbench_run(base, env, cluster, seen, seconds):
    """One select-only run, sampling pg_stat_activity on every node while it runs into `seen`."""
    bench = subprocess.Popen([*base, "-n", "-r", "-P", "1", "-c", "8", "-j", "8", "-T", str(seconds), "-S", "postgres"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    count_sql = "select count(*) from pg_stat_activity where application_name = 'pgbench'"
    try:
        while bench.poll() is None:
            for node in range(cluster.replicas + 1):
                seen[node] = max(seen[node], int(cluster.sql(node, count_sql)))
            time.sleep(0.3)
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
    assert bench.returncode == 0, f"pgbench exited {bench.returncode}\n{out[-2000:]}\n{err[-2000:]}"
    processed, _ = pgbench_processed(out)
    assert processed > 0, out
    return processed


def run_pgbench_load(sp, cluster, way):
    """pgbench -i, then a select-only run, sampling pg_stat_activity on every node while it runs."""
    base = ["pgbench", "-h", "127.0.0.1", "-p", str(sp.port), "-U", USER]
    p = run_client([*base, "-i", "-s", "1", "-q", "postgres"], client_tls(way))
    assert p.returncode == 0, describe(p)
    cluster.wait_replicas_caught_up()
    env = client_env(PASSWORD, **client_tls(way))
    seen = [0] * (cluster.replicas + 1)
    # Each pgbench session picks its node by weight (1:2:2), so 8 sessions miss a replica now and
    # then (about 3% of runs); another run, whose sessions are added to the pooled ones, settles it.
    for attempt in range(3):
        processed = one_pgbench_run(base, env, cluster, seen, seconds=5 if attempt == 0 else 2)
        print(f"{way}: pgbench processed {processed}; max pgbench sessions per node so far: {seen}")
        if all(seen):
            break
    assert all(seen), f"pgbench connections per node during the run: {seen} (expected some on every node)"


def check_load_balancing(sp, cluster, way):
    ports = []
    for _ in range(30):
        p = psql(sp.port, "select inet_server_port()", user=USER, password=PASSWORD, env_extra=client_tls(way))
        ports.append(int(p.stdout.strip()))
    assert set(ports) <= set(cluster.ports), ports
    print(f"{way}: sessions per node port: {sorted((p, ports.count(p)) for p in set(ports))}")
    assert len(set(ports)) >= 2, f"every session landed on one node: {ports}"


def check_pcp(sp, cluster, tmp_path):
    pcppass = tmp_path / "pcppass"
    pcppass.write_text(f"127.0.0.1:{sp.pcp_port}:{PCP_USER}:{PASSWORD}\n")
    os.chmod(pcppass, 0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PCPPASSFILE"] = str(pcppass)

    def pcp(tool):
        p = subprocess.run([str(REPO / "bin" / tool), "-U", PCP_USER, "-h", "127.0.0.1", "-p", str(sp.pcp_port),
                            "-w"], capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
        assert p.returncode == 0 and not p.stderr.strip(), describe(p)
        return p.stdout

    lines = pcp("pcp_node_info").splitlines()
    assert len(lines) == 3, lines
    print("pcp_node_info:\n" + "\n".join(lines))
    for node, line in enumerate(lines):
        fields = line.split()
        assert fields[:2] == ["127.0.0.1", str(cluster.ports[node])] and fields[4] == "up", line
    assert lines[0].split()[6] == "primary", lines[0]
    assert pcp("pcp_node_count").strip() == "3"
    status = pcp("pcp_pool_status")
    blocks = re.findall(r"^name : (\S+)\nvalue: .*\ndesc : .*\n", status, re.M)
    assert len(blocks) >= 10 and "port" in blocks, status[:2000]


def stop_fast(sp):
    pid = sp.pid
    p = sp.cli("-m", "fast", "stop")
    assert p.returncode == 0, p.output
    wait_until(lambda: not pid_alive(pid), 15, f"splitpool {pid} to exit after 'stop -m fast'")
    assert not sp.pid_file.exists(), "pid file left behind"


@pytest.mark.parametrize("way", WAYS)
def test_reference_deployment(request, cluster, ports, pki, tmp_path, way):
    if way == "pass-through-tls":
        request.getfixturevalue("cluster_tls")
    sp = new_instance(cluster, ports, **reference_config(cluster, pki, way))
    try:
        (sp.dir / "pcp.conf").write_text(f"# pcp users\n{PCP_USER}:{PCP_MD5}\n")
        start_args = set_up_double_auth(sp) if way == "double-scram" else []
        start_daemon(sp, start_args, way)
        check_login_capture(sp, way)
        if way == "double-scram":
            fields = login_error(sp.port, USER, "not-" + PASSWORD)
            assert fields is not None and fields.get("C") == "28P01", fields
            # postgres is trust on PostgreSQL, but the proxy asks everyone for SCRAM against pool_passwd.
            fields = login_error(sp.port, "postgres", "anything")
            assert fields is not None and fields.get("C") in ("28000", "28P01"), fields
        if way == "pass-through-tls":
            p = psql(sp.port, "select ssl_is_used()", user=USER, password=PASSWORD, env_extra=client_tls(way))
            assert p.stdout.strip() == "t", "backend session is not on TLS although PostgreSQL has ssl on"
        run_pgbench_load(sp, cluster, way)
        check_load_balancing(sp, cluster, way)
        check_pcp(sp, cluster, tmp_path)
        stop_fast(sp)
    except BaseException:
        print(f"--- splitpool log {sp.log_path} (last lines) ---\n{sp.log_tail()}")
        raise
    finally:
        problem = stop_instance(sp)
    assert not problem, problem
