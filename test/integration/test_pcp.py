"""PCP against a running splitpool with a real primary + 2 replicas: every tool's output compared field by
field with pgpool's documented format, node status changes seen in the nodes' own statistics, reload,
stop, wrong passwords, and Debian pgpool2's own pcp tools giving the same output as ours."""

import hashlib
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from helpers import REPO, client_env, connect, describe, psql, wait_until

BIN = REPO / "bin"
DEBIAN_BIN = Path("/usr/sbin")
PCP_USER = "pcpadmin"
PCP_PASSWORD = "pcp-secret"
DATE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"


# ----------------------------------------------------------------------------- harness

def write_pcp_files(sp, password=PCP_PASSWORD, pcppass_password=None):
    """pcp.conf next to the config (splitpool's -F default) and a .pcppass the tools read via PCPPASSFILE."""
    digest = hashlib.md5(password.encode()).hexdigest()
    (sp.dir / "pcp.conf").write_text(f"# test users\n{PCP_USER}:{digest}\n")
    passfile = sp.dir / ".pcppass"
    passfile.write_text(f"*:*:{PCP_USER}:{pcppass_password or password}\n")
    passfile.chmod(0o600)
    return passfile


def start(splitpool, **overrides):
    overrides.setdefault("health_check_period", 0)
    overrides.setdefault("sr_check_period", 0)
    sp = splitpool.prepare(**overrides)
    write_pcp_files(sp)
    return sp.start()


def pcp(sp, tool, *args, bindir=BIN, passfile=None, check=True, timeout=30):
    """Runs a pcp tool over TCP with -w and PCPPASSFILE; returns the CompletedProcess."""
    cmd = [str(bindir / tool), "-h", "127.0.0.1", "-p", str(sp.pcp_port), "-U", PCP_USER, "-w", *map(str, args)]
    env = client_env(PCPPASSFILE=str(passfile or sp.dir / ".pcppass"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, start_new_session=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} failed\n" + describe(proc))
    return proc


def successful(proc, tool):
    assert proc.stdout == f"{tool} -- Command Successful\n", describe(proc)


def node_line_fields(line):
    """pcp_node_info's line: 11 single-word fields, then the date and time of the last status change."""
    parts = line.split(" ")
    assert len(parts) == 13, f"expected 12 fields (13 words) in {line!r}"
    return parts[:11] + [" ".join(parts[11:])]


def node_info(sp, node):
    return node_line_fields(pcp(sp, "pcp_node_info", "-n", node).stdout.rstrip("\n"))


def show_pool_nodes(sp):
    """SHOW POOL_NODES over psql (simple protocol): list of dicts by column name."""
    out = psql(sp.port, input="\\pset tuples_only off\nshow pool_nodes;\n").stdout
    lines = [l for l in out.splitlines() if l and not l.startswith("(") and "Tuples only" not in l]
    header = lines[0].split("|")
    return [dict(zip(header, l.split("|"))) for l in lines[1:]]


def read_ports(sp, sessions, app):
    """inet_server_port() of a read in each of `sessions` new sessions: evaluated by the node that ran it."""
    ports = []
    for _ in range(sessions):
        with connect(sp.port, dbname="sp_test", application_name=app) as c:
            ports.append(c.execute("select inet_server_port()").fetchone()[0])
    return ports


def activity_count(cluster, node, app):
    """The node's own view: its sessions whose application_name is `app`, past or present (pg_stat_activity
    only lists live ones, so this is asked while the probe connection is open)."""
    return int(cluster.sql(node, f"select count(*) from pg_stat_activity where application_name = '{app}'"))


# ----------------------------------------------------------------------------- read-only tools

def test_node_count_and_node_info_lines(splitpool, cluster):
    sp = start(splitpool, backend=cluster.backends(weights=(1, 2, 2)))
    assert pcp(sp, "pcp_node_count").stdout == "3\n"
    assert pcp(sp, "pcp_node_count", "-v").stdout == "Node Count\n____________\n 3\n"
    weights = ["0.200000", "0.400000", "0.400000"]
    for node in range(3):
        f = node_info(sp, node)
        assert f[0] == "127.0.0.1"
        assert f[1] == str(cluster.ports[node])
        assert f[2] in ("1", "2")
        assert f[4] == {"1": "waiting", "2": "up"}[f[2]]
        assert f[3] == weights[node]
        assert f[5] == "unknown"                      # health_check_period = 0: no live probe
        assert f[6] == ("primary" if node == 0 else "standby")
        assert f[7] == "unknown"                      # sr_check_period = 0
        assert f[8] == "0"
        assert f[9:11] == ["none", "none"]
        assert re.fullmatch(DATE, f[11])
    all_lines = pcp(sp, "pcp_node_info").stdout.splitlines()
    assert [node_line_fields(l)[:2] for l in all_lines] == [["127.0.0.1", str(p)] for p in cluster.ports]


def test_node_info_verbose_block(splitpool, cluster):
    sp = start(splitpool)
    out = pcp(sp, "pcp_node_info", "-v", "-n", "1").stdout
    titles = ["Hostname", "Port", "Status", "Weight", "Status Name", "Backend Status Name", "Role", "Backend Role",
              "Replication Delay", "Replication State", "Replication Sync State", "Last Status Change"]
    width = max(map(len, titles))
    lines = out.split("\n")
    assert lines[len(titles):] == ["", ""], "one blank line after the block"
    for title, line in zip(titles, lines):
        assert line.startswith(title.ljust(width) + " : "), line
    values = dict((l[:width].rstrip(), l[width + 3:]) for l in lines[:len(titles)])
    assert values["Port"] == str(cluster.ports[1])
    assert values["Role"] == "standby"


def test_node_info_rejects_a_bad_node_id_with_nonzero_exit(splitpool, cluster):
    sp = start(splitpool)
    p = pcp(sp, "pcp_node_info", "-n", "7", check=False)
    assert p.returncode != 0
    assert "ERROR:" in p.stderr and "invalid node ID" in p.stderr


def test_health_check_stats_fields(splitpool, cluster):
    sp = start(splitpool)
    line = pcp(sp, "pcp_health_check_stats", "-n", "2").stdout.rstrip("\n")
    parts = line.split(" ")
    # 20 fields; last_status_change holds one space, the four never-happened timestamps are empty
    assert len(parts) == 21, line
    assert parts[:5] == ["2", "127.0.0.1", str(cluster.ports[2]), parts[3], "standby"]
    assert parts[3] in ("up", "waiting")
    assert re.fullmatch(DATE, parts[5] + " " + parts[6])
    assert all(re.fullmatch(r"\d+(\.\d+)?", x) for x in parts[7:17])
    assert parts[17:] == ["", "", "", ""]
    verbose = pcp(sp, "pcp_health_check_stats", "-v", "-n", "0").stdout
    titles = ["Node Id", "Host Name", "Port", "Status", "Role", "Last Status Change", "Total Count",
              "Success Count", "Fail Count", "Skip Count", "Retry Count", "Average Retry Count", "Max Retry Count",
              "Max Health Check Duration", "Minimum Health Check Duration", "Average Health Check Duration",
              "Last Health Check", "Last Successful Health Check", "Last Skip Health Check",
              "Last Failed Health Check"]
    got = [l.split(" : ")[0].rstrip() for l in verbose.splitlines() if l]
    assert got == titles


def test_pool_status_matches_show_pool_status(splitpool, cluster):
    sp = start(splitpool, client_idle_limit=17)
    out = pcp(sp, "pcp_pool_status").stdout
    blocks = [b for b in out.split("\n\n") if b]
    items = {}
    for b in blocks:
        lines = b.split("\n")
        assert len(lines) == 3 and lines[0].startswith("name : ") and lines[1].startswith("value: ") \
            and lines[2].startswith("desc : "), b
        items[lines[0][7:]] = (lines[1][7:], lines[2][7:])
    assert items["client_idle_limit"][0] == "17"
    assert items["num_init_children"][0] == "4"
    assert items["backend_port2"][0] == str(cluster.ports[2])
    rows = psql(sp.port, "show pool_status").stdout.splitlines()
    # item|value|description: only a value can hold '|' (backend_flag0 = DISALLOW_TO_FAILOVER|ALWAYS_PRIMARY)
    shown = {r.split("|")[0]: ("|".join(r.split("|")[1:-1]), r.split("|")[-1]) for r in rows}
    assert shown == items
    verbose = pcp(sp, "pcp_pool_status", "-v").stdout
    assert re.search(r"^Name \[  0\]:\t\S+\nValue:      \t.*\nDescription:\t.*\n\n", verbose, re.M)


def test_proc_count_and_proc_info(splitpool, cluster):
    sp = start(splitpool)
    pids = [int(x) for x in pcp(sp, "pcp_proc_count").stdout.split()]
    assert len(pids) == 4                                   # num_init_children
    assert set(pids) <= set(sp.children())
    verbose = pcp(sp, "pcp_proc_count", "-v").stdout
    assert verbose.startswith("No \t | \t PID\n") and verbose.endswith("\nTotal Processes:4\n")
    with connect(sp.port, dbname="sp_test") as c:
        c.execute("select 1")
        lines = pcp(sp, "pcp_proc_info").stdout.splitlines()
        mine = [l for l in lines if l.startswith("sp_test postgres ")]
        assert mine, lines
        parts = mine[0].split(" ")
        # database username start(date time) count major minor backend-conn(date time)
        # client-conn(date time) idle disconnection pool_counter backend_pid connected pid backend_id status
        assert re.fullmatch(DATE, parts[2] + " " + parts[3])
        assert parts[4].isdigit()                               # sessions the child finished before
        assert mine[0].endswith((" Idle", " Execute command", " Idle in transaction")), mine[0]
        single = pcp(sp, "pcp_proc_info", "-a", "-P", pids[0]).stdout.splitlines()
        assert len(single) == 3                             # one line per backend node
    bad = pcp(sp, "pcp_proc_info", "-P", "1", check=False)
    assert bad.returncode != 0 and "invalid process ID" in bad.stderr


# ----------------------------------------------------------------------------- node status changes

def failover_backends(cluster, weights):
    """cluster.backends() with failover allowed on the standbys (DISALLOW_TO_FAILOVER refuses a detach)."""
    backends = cluster.backends(weights=weights)
    for b in backends[1:]:
        b["flag"] = ["ALLOW_TO_FAILOVER"]
    return backends


def test_detach_and_attach_a_standby_seen_by_the_nodes(splitpool, cluster):
    sp = start(splitpool, backend=failover_backends(cluster, (0, 1, 1)))
    successful(pcp(sp, "pcp_detach_node", "-n", 2), "pcp_detach_node")
    assert node_info(sp, 2)[2:5:2] == ["3", "down"]
    assert show_pool_nodes(sp)[2]["status"] == "down"
    app = "detach-" + uuid.uuid4().hex[:8]
    ports = []
    for _ in range(20):
        with connect(sp.port, dbname="sp_test", application_name=app) as c:
            ports.append(c.execute("select inet_server_port()").fetchone()[0])
            # node 2's own statistics: no backend of this session there
            assert activity_count(cluster, 2, app) == 0
    assert set(ports) == {cluster.ports[1]}

    successful(pcp(sp, "pcp_attach_node", "-n", 2), "pcp_attach_node")
    assert node_info(sp, 2)[4] in ("waiting", "up")
    app = "attach-" + uuid.uuid4().hex[:8]
    seen_on_2 = 0
    ports = []
    for _ in range(30):
        with connect(sp.port, dbname="sp_test", application_name=app) as c:
            ports.append(c.execute("select inet_server_port()").fetchone()[0])
            seen_on_2 += activity_count(cluster, 2, app)
    assert cluster.ports[2] in ports and seen_on_2 > 0, ports
    assert node_info(sp, 2)[4] == "up"


def test_detach_refuses_an_unknown_node_and_a_disallowed_one(splitpool, cluster):
    sp = start(splitpool)
    p = pcp(sp, "pcp_detach_node", "-n", 9, check=False)
    assert p.returncode != 0 and "ERROR:" in p.stderr
    p = pcp(sp, "pcp_detach_node", "-n", 1, check=False)     # DISALLOW_TO_FAILOVER
    assert p.returncode != 0 and "failover is disallowed" in p.stderr
    assert node_info(sp, 1)[4] in ("up", "waiting")


def test_promote_makes_the_node_the_write_target(splitpool, cluster):
    sp = start(splitpool, backend=cluster.backends(weights=(1, 1, 1)))
    successful(pcp(sp, "pcp_promote_node", "-n", 1), "pcp_promote_node")
    nodes = show_pool_nodes(sp)
    assert [n["role"] for n in nodes] == ["standby", "primary", "standby"]
    assert [n["status"] for n in nodes][0::2] == ["down", "down"]
    assert node_info(sp, 1)[6] == "primary"
    with connect(sp.port, dbname="sp_test") as c:
        assert c.execute("select inet_server_port()").fetchone()[0] == cluster.ports[1]
        # node 1 is really a replica: a write sent to it (the new write target) is refused by it
        import psycopg
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("create table promote_probe(i int)")
    again = pcp(sp, "pcp_promote_node", "-n", 1, check=False)
    assert again.returncode != 0 and "already primary" in again.stderr


# ----------------------------------------------------------------------------- reload, stop, auth

def test_reload_via_pcp_changes_a_reloadable_key(splitpool, cluster):
    sp = start(splitpool, client_idle_limit=0, log_statement=False)
    assert "client_idle_limit|0|" in psql(sp.port, "show pool_status").stdout
    sp.cfg.update(client_idle_limit=42, log_statement=True)
    sp.write_config()
    before = sp.log_text().count("configuration reloaded")
    successful(pcp(sp, "pcp_reload_config"), "pcp_reload_config")
    wait_until(lambda: sp.log_text().count("configuration reloaded") > before, 10, "the reload")
    status = psql(sp.port, "show pool_status").stdout
    assert "client_idle_limit|42|" in status and "\nlog_statement|on|" in status
    wait_until(lambda: "value: 42\n" in pcp(sp, "pcp_pool_status").stdout, 10, "pcp_pool_status to show 42")


@pytest.mark.parametrize("mode", ["smart", "fast"])
def test_stop_via_pcp(splitpool, cluster, mode):
    sp = start(splitpool)
    successful(pcp(sp, "pcp_stop_pgpool", "-m", mode), "pcp_stop_pgpool")
    assert sp.wait_exit(20) == 0


def test_wrong_pcp_password_is_rejected(splitpool, cluster):
    sp = start(splitpool)
    wrong = sp.dir / ".pcppass-wrong"
    wrong.write_text(f"*:*:{PCP_USER}:not-the-password\n")
    wrong.chmod(0o600)
    p = pcp(sp, "pcp_node_count", passfile=wrong, check=False)
    assert p.returncode != 0
    assert p.stdout == ""
    assert "authentication failed" in p.stderr or "password" in p.stderr.lower()
    if (DEBIAN_BIN / "pcp_node_count").exists():
        deb = pcp(sp, "pcp_node_count", passfile=wrong, bindir=DEBIAN_BIN, check=False)
        assert deb.stdout == "" and "authentication failed" in deb.stderr
    assert pcp(sp, "pcp_node_count").stdout == "3\n"   # the right one still works


def test_unknown_pcp_user_is_rejected(splitpool, cluster):
    sp = start(splitpool)
    cmd = [str(BIN / "pcp_node_count"), "-h", "127.0.0.1", "-p", str(sp.pcp_port), "-U", "nobody", "-w"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                       env=client_env(PCPPASSFILE=str(sp.dir / ".pcppass")), start_new_session=True)
    assert p.returncode != 0


# ----------------------------------------------------------------------------- Debian pgpool2's tools

@pytest.mark.skipif(not (DEBIAN_BIN / "pcp_node_info").exists(), reason="Debian pgpool2 is not installed")
@pytest.mark.parametrize("tool,args", [
    ("pcp_node_count", []), ("pcp_node_count", ["-v"]),
    ("pcp_node_info", []), ("pcp_node_info", ["-n", "1"]), ("pcp_node_info", ["-v", "-n", "0"]),
    ("pcp_node_info", ["-a"]),
    ("pcp_health_check_stats", ["-n", "1"]), ("pcp_pool_status", []), ("pcp_proc_count", []),
])
def test_debian_tools_print_what_ours_print(splitpool, cluster, tool, args):
    sp = start(splitpool)
    ours = pcp(sp, tool, *args)
    theirs = pcp(sp, tool, *args, bindir=DEBIAN_BIN)
    assert theirs.stdout == ours.stdout, f"ours:\n{ours.stdout}\ntheirs:\n{theirs.stdout}\n{theirs.stderr}"
