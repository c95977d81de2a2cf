"""Issue 12, migration from pgpool-II: `splitpool import-pgpool-conf` on Debian's sample, pgpool's own files
(pool_hba.conf, pool_passwd, pcp.conf, .pgpoolkey) used as pgpool's tools write them, the generated
configuration reference, and the reference deployment (shared/reference/deployment.md) run from the docs alone:
pgpool.conf → importer → the systemd unit's ExecStart → pgbench → pcp_node_info / pcp_node_count → ExecStop."""

import os
import pwd
import re
import shlex
import signal
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

from helpers import REPO, SPLITPOOL_BIN, client_env, describe, pgbench_processed, pid_alive, psql, wait_until

DEBIAN_SAMPLE = Path("/usr/share/pgpool2/pgpool.conf")
DEBIAN_HBA_SAMPLE = Path("/etc/pgpool2/pool_hba.conf")
DEBIAN_PCP_SAMPLE = Path("/etc/pgpool2/pcp.conf")
DEBIAN_BIN = Path("/usr/sbin")
SERVICE_FILE = REPO / "etc" / "splitpool.service"
USER, PASSWORD = "digoal", "pwd123"
PCP_USER, PCP_MD5 = "pcpadm", "45cb41b32dcfb917ccd8614f1536d6da"  # md5 of pwd123, as in deployment.md
APP_NAMES = ["polardb_primray", "polardb_replica1", "polardb_standby1"]  # spelled as in the reference
RENAMED = {"socket_dir": "unix_socket_directories", "white_function_list": "read_only_function_list",
           "black_function_list": "write_function_list", "follow_master_command": "follow_primary_command"}


def run(args, env=None, timeout=60, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env, **kw)


def import_conf(conf):
    return run([SPLITPOOL_BIN, "import-pgpool-conf", conf])


def check_config(toml_path):
    return run([SPLITPOOL_BIN, "-f", toml_path, "--check-config"])


def diagnostics(stderr, conf):
    """{(line, key): level} from the importer's stderr lines `CONF:LINE: KEY: LEVEL: ...`."""
    out = {}
    for m in re.finditer(rf"^{re.escape(str(conf))}:(\d+): (\w+): (error|NOT SUPPORTED|ignored|note): ", stderr, re.M):
        out[(int(m.group(1)), m.group(2))] = m.group(3)
    return out


def require_debian(*tools):
    missing = [t for t in tools if not (DEBIAN_BIN / t).exists()]
    if missing or not DEBIAN_SAMPLE.exists():
        pytest.skip(f"Debian's pgpool2 package is not installed (missing {missing or DEBIAN_SAMPLE})")


# ----------------------------------------------------------------------------- the importer on Debian's sample

def test_debian_sample_as_shipped_is_refused_for_lack_of_a_backend(tmp_path):
    require_debian()
    p = import_conf(DEBIAN_SAMPLE)
    assert p.returncode == 1 and p.stdout == "", describe(p)
    assert "no backend is defined" in p.stderr, p.stderr
    # The sample's two active lines: one converted, the watchdog's hostname0 listed (no effect without use_watchdog).
    listed = diagnostics(p.stderr, DEBIAN_SAMPLE)
    assert [(k, level) for (_, k), level in listed.items()] == [("hostname0", "ignored")], p.stderr


def test_debian_sample_with_every_parameter_set_converts_and_loads(tmp_path):
    """Every `#name = value` line of Debian's sample uncommented (pgpool's defaults, two backends): each
    parameter is either in the TOML or listed with its line on stderr, and splitpool accepts the result."""
    require_debian()
    text = re.sub(r"^#([a-z_0-9]+ *=)", r"\1", DEBIAN_SAMPLE.read_text(), flags=re.M)
    conf = tmp_path / "pgpool.conf"
    conf.write_text(text)
    settings = [(n, m.group(1)) for n, line in enumerate(text.splitlines(), 1)
                if (m := re.match(r"([a-z_0-9]+)\s*=", line))]
    assert len(settings) >= 180, f"only {len(settings)} parameters in the sample?"
    p = import_conf(conf)
    assert p.returncode == 0, describe(p)
    out = tmp_path / "splitpool.toml"
    out.write_text(p.stdout)
    doc = tomllib.loads(p.stdout)
    listed = diagnostics(p.stderr, conf)
    missing = []
    for line, key in settings:
        in_toml = key in doc or RENAMED.get(key) in doc
        moved = f"\n# {key}: in [[backend]] node " in p.stdout
        overridden = re.search(rf"^# overridden by line \d+: {key}\b", p.stdout, re.M)
        if not (in_toml or moved or overridden or (line, key) in listed):
            missing.append(f"{line}:{key}")
    assert not missing, f"parameters neither converted nor listed: {missing}"
    assert [b["hostname"] for b in doc["backend"]] == ["host1", "host2"]
    assert all(level != "error" for level in listed.values())
    # Every listed parameter also appears in the TOML's own comments.
    for (line, key), level in listed.items():
        assert re.search(rf"^#.*\b{key}\b", p.stdout, re.M), f"{key} (line {line}) is not in the output's comments"
    counts = {level: list(listed.values()).count(level) for level in set(listed.values())}
    print(f"{len(settings)} parameters: {len(settings) - len(listed)} carried over, listed: {counts}")
    c = check_config(out)
    assert c.returncode == 0, describe(c)


def test_refused_value_names_the_pgpool_conf_line(tmp_path):
    conf = tmp_path / "pgpool.conf"
    conf.write_text("port = 9999\nbackend_hostname0 = 'db'\nbackend_port0 = 99999\nnum_init_children = 0\n")
    p = import_conf(conf)
    assert p.returncode == 1 and p.stdout == "", describe(p)
    assert f"{conf}:3: backend_port0: error: must be between 1 and 65535 (got 99999)" in p.stderr, p.stderr
    assert f"{conf}:4: num_init_children: error: must be between 1 and 10000 (got 0)" in p.stderr, p.stderr


# ----------------------------------------------------------------------------- documentation

def test_configuration_reference_is_current():
    p = run([SPLITPOOL_BIN, "--config-reference"])
    assert p.returncode == 0, describe(p)
    assert p.stdout == (REPO / "docs" / "configuration.md").read_text(), \
        "docs/configuration.md is out of date: run `make docs`"


# ----------------------------------------------------------------------------- pgpool's files, unconverted

def pgpool_conf_lines(cluster, dir, port, pcp_port, weights=(1, 2, 2), **extra):
    """pgpool.conf text for the test cluster (pgpool's syntax), paths under dir."""
    settings = {
        "listen_addresses": "'127.0.0.1'", "port": port, "unix_socket_directories": f"'{dir}'",
        "pcp_listen_addresses": "'localhost'", "pcp_port": pcp_port, "pcp_socket_dir": f"'{dir}'",
        "pid_file_name": f"'{dir}/run/pgpool.pid'", "logdir": f"'{dir}'", "num_init_children": 8,
        "backend_clustering_mode": "'streaming_replication'", "load_balance_mode": "on",
        "sr_check_period": 0, "health_check_period": 0,
        "failover_on_backend_shutdown": "off", "failover_on_backend_error": "off",
    }
    settings.update(extra)
    lines = [f"{k} = {v}" for k, v in settings.items()]
    for node, (node_port, weight) in enumerate(zip(cluster.ports, weights)):
        flag = "ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER" if node == 0 else "DISALLOW_TO_FAILOVER"
        lines += [f"backend_hostname{node} = '127.0.0.1'", f"backend_port{node} = {node_port}",
                  f"backend_weight{node} = {weight}", f"backend_flag{node} = '{flag}'",
                  f"backend_application_name{node} = '{APP_NAMES[node]}'"]
    return "\n".join(lines) + "\n"


def write_pcppass(dir, pcp_port, password):
    path = Path(dir) / ".pcppass"
    path.write_text(f"*:{pcp_port}:{PCP_USER}:{password}\n")
    path.chmod(0o600)
    return path


def pcp_tool(bindir, tool, pcp_port, pcppass, *args):
    env = client_env(PCPPASSFILE=str(pcppass))
    return run([bindir / tool, "-h", "127.0.0.1", "-p", pcp_port, "-U", PCP_USER, "-w", *args], env=env, timeout=30)


def test_pgpool_files_need_no_conversion(cluster, ports, tmp_path):
    """pool_passwd written by Debian's pg_md5 and pg_enc (with a .pgpoolkey given by -k, as deployment.md
    starts pgpool), Debian's pool_hba.conf sample with lines added, pcp.conf with a `pg_md5` hash: splitpool
    reads them all as they are. (Debian's pg_enc reads ~/.pgpoolkey from the passwd entry's home, not
    $HOME, so the test names the file instead of writing into root's home.)"""
    require_debian("pg_md5", "pg_enc", "pcp_node_count")
    dir = tmp_path
    port, pcp_port = ports.pair()
    conf = dir / "pgpool.conf"
    conf.write_text(pgpool_conf_lines(cluster, dir, port, pcp_port, enable_pool_hba="on",
                                      allow_clear_text_frontend_auth="off", pool_passwd="'pool_passwd'"))
    (dir / "run").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PGPOOLKEYFILE"}
    key = dir / ".pgpoolkey"
    key.write_text("any text will do as the key\n")
    key.chmod(0o600)
    p = run([DEBIAN_BIN / "pg_md5", "-m", "-f", conf, "-u", "md5user", "md5pass"], env=env)
    assert p.returncode == 0, describe(p)
    p = run([DEBIAN_BIN / "pg_enc", "-m", "-f", conf, "-k", key, "-u", USER, PASSWORD], env=env)
    assert p.returncode == 0, describe(p)
    passwd = (dir / "pool_passwd").read_text()
    assert re.search(r"^md5user:md5[0-9a-f]{32}$", passwd, re.M) and re.search(r"^digoal:AES\S+$", passwd, re.M), passwd
    added = ["host    all         postgres    127.0.0.1/32          trust",
             "host    all         md5user     127.0.0.1/32          md5",
             "host    all         digoal      127.0.0.1/32          scram-sha-256"]
    sample = DEBIAN_HBA_SAMPLE.read_text()
    first_rule = re.search(r"^(local|host)", sample, re.M).start()
    (dir / "pool_hba.conf").write_text(sample[:first_rule] + "\n".join(added) + "\n" + sample[first_rule:])
    p = run([DEBIAN_BIN / "pg_md5", PASSWORD])
    assert p.returncode == 0 and p.stdout.strip() == PCP_MD5, describe(p)
    (dir / "pcp.conf").write_text(DEBIAN_PCP_SAMPLE.read_text() + f"{PCP_USER}:{p.stdout.strip()}\n")

    p = import_conf(conf)
    assert p.returncode == 0, describe(p)
    assert "NOT SUPPORTED" not in p.stderr, p.stderr
    toml_path = dir / "splitpool.toml"
    toml_path.write_text(p.stdout)
    log = open(dir / "splitpool.log", "ab")
    daemon = subprocess.Popen([str(SPLITPOOL_BIN), "-n", "-f", str(toml_path), "-k", str(key)], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=dir,
                              start_new_session=True)
    log.close()
    try:
        def answers():
            assert daemon.poll() is None, (dir / "splitpool.log").read_text()
            return psql(port, "select 1", check=False, timeout=10).stdout.strip() == "1"
        wait_until(answers, 20, "splitpool to answer")
        for user, password in (("md5user", "md5pass"), (USER, PASSWORD)):
            r = psql(port, "select current_user", user=user, password=password, check=False)
            assert r.returncode == 0 and r.stdout.strip() == user, describe(r) + (dir / "splitpool.log").read_text()
            r = psql(port, "select 1", user=user, password="not-" + password, check=False)
            assert r.returncode != 0 and "password authentication failed" in r.stderr, describe(r)
        pcppass = write_pcppass(dir, pcp_port, PASSWORD)
        r = pcp_tool(DEBIAN_BIN, "pcp_node_count", pcp_port, pcppass)
        assert r.returncode == 0 and r.stdout.strip() == "3", describe(r)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(2)
            daemon.wait(15)


# ----------------------------------------------------------------------------- the reference deployment

def service_commands(config_path):
    """ExecStart / ExecStop of etc/splitpool.service with this build's binary and config_path, and its User."""
    unit = {}
    for line in SERVICE_FILE.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            unit.setdefault(k.strip(), v.strip())

    def command(key):
        words = shlex.split(unit[key])
        words[0] = str(SPLITPOOL_BIN)
        words[words.index("-f") + 1] = str(config_path)
        return words
    # Without ExecStop systemd stops the main process with KillSignal (default SIGTERM).
    stop = command("ExecStop") if "ExecStop" in unit else getattr(signal, unit.get("KillSignal", "SIGTERM"))
    return command("ExecStart"), stop, unit.get("User"), unit.get("Type", "simple")


def as_user(user, words):
    if user and os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *words]
    return words


def chown_tree(path, user):
    if not user or os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *[os.path.join(root, f) for f in dirs + files]]:
            os.chown(name, pw.pw_uid, pw.pw_gid)


def test_reference_deployment_from_the_docs(cluster, ports):
    """docs/migration.md and docs/operations.md, step by step: the reference's pgpool.conf (pass-through
    authentication), `splitpool import-pgpool-conf`, the unit's ExecStart, pgbench, PCP, the unit's ExecStop."""
    dir = Path(tempfile.mkdtemp(prefix="splitpool-it-migration-", dir="/tmp"))
    port, pcp_port = ports.pair()
    conf = dir / "pgpool.conf"
    conf.write_text(pgpool_conf_lines(
        cluster, dir, port, pcp_port, listen_addresses="'0.0.0.0'", num_init_children=32,
        log_destination="'stderr'", logging_collector="on", log_directory=f"'{dir}/pgpool_logs'",
        enable_pool_hba="off", allow_clear_text_frontend_auth="true", pool_passwd="''"))
    (dir / "run").mkdir()
    (dir / "pcp.conf").write_text(f"{PCP_USER}:{PCP_MD5}\n")
    p = import_conf(conf)
    assert p.returncode == 0 and "NOT SUPPORTED" not in p.stderr, describe(p)
    config_path = dir / "splitpool.toml"
    config_path.write_text(p.stdout)
    doc = tomllib.loads(p.stdout)
    assert [b["weight"] for b in doc["backend"]] == [1, 2, 2]
    assert doc["backend"][0]["flag"] == ["ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"]
    start, stop, user, unit_type = service_commands(config_path)
    chown_tree(dir, user)
    pid_file = dir / "run" / "pgpool.pid"
    foreground = None
    pid = None
    try:
        if unit_type == "forking":
            r = run(as_user(user, start), cwd="/", timeout=30)
            assert r.returncode == 0, describe(r)
        else:   # Type=simple/notify: the service manager keeps the process; without NOTIFY_SOCKET it just runs
            foreground = subprocess.Popen(as_user(user, start), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, cwd="/", start_new_session=True)
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), 20, f"pid file {pid_file}")
        pid = int(pid_file.read_text().split()[0])
        wait_until(lambda: psql(port, "select 1", user=USER, password=PASSWORD, check=False,
                                timeout=10).stdout.strip() == "1", 20, "a digoal login through splitpool")
        logs = list((dir / "pgpool_logs").glob("pgpool-*.log"))
        assert logs, "logging_collector = on wrote no file in log_directory"

        bench = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", USER]
        r = run([*bench, "-i", "-s", "1", "-q", "postgres"], env=client_env(PASSWORD), timeout=180)
        assert r.returncode == 0, describe(r)
        cluster.wait_replicas_caught_up()
        r = run([*bench, "-n", "-S", "-c", "4", "-j", "2", "-t", "200", "postgres"], env=client_env(PASSWORD),
                timeout=180)
        assert r.returncode == 0, describe(r)
        processed, _ = pgbench_processed(r.stdout)
        assert processed == 800, r.stdout

        pcppass = write_pcppass(dir, pcp_port, PASSWORD)
        tool_dirs = [REPO / "bin"] + ([DEBIAN_BIN] if (DEBIAN_BIN / "pcp_node_info").exists() else [])
        for bindir in tool_dirs:
            for node, weight in enumerate(["0.200000", "0.400000", "0.400000"]):
                r = pcp_tool(bindir, "pcp_node_info", pcp_port, pcppass, "-n", node)
                assert r.returncode == 0, describe(r)
                fields = r.stdout.split()
                assert fields[:2] == ["127.0.0.1", str(cluster.ports[node])], r.stdout
                assert fields[3] == weight and fields[4] == "up", f"{bindir}: {r.stdout}"
                assert fields[6] == ("primary" if node == 0 else "standby"), r.stdout
            r = pcp_tool(bindir, "pcp_node_count", pcp_port, pcppass)
            assert r.returncode == 0 and r.stdout == "3\n", describe(r)
            print(f"{bindir}/pcp_node_info and pcp_node_count: 3 nodes up, weights 0.2/0.4/0.4")

        if isinstance(stop, list):
            r = run(as_user(user, stop), cwd="/", timeout=30)
            assert r.returncode == 0, describe(r)
        else:
            os.kill(pid, stop)
        wait_until(lambda: not pid_alive(pid), 15, f"splitpool {pid} to exit after the unit's stop")
        assert not pid_file.exists(), "pid file left behind"
    except BaseException:
        for log in (dir / "pgpool_logs").glob("*.log"):
            print(f"--- {log} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        raise
    finally:
        if pid and pid_alive(pid):
            os.kill(pid, 2)
            wait_until(lambda: not pid_alive(pid), 15, "splitpool to exit")
        if foreground is not None:
            foreground.wait(15)
        if not os.environ.get("SPLITPOOL_TEST_KEEP"):
            shutil.rmtree(dir, ignore_errors=True)
