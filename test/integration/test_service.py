"""The systemd unit: `make install` puts it in place, and splitpool started exactly as its ExecStart
says (as its User, with a fake NOTIFY_SOCKET) reports READY=1 only once it accepts connections,
RELOADING=1/READY=1 around the unit's ExecReload, STOPPING=1 on the unit's KillSignal, and exits 0."""

import os
import re
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import REPO, SPLITPOOL_BIN, psql_value, wait_until

# make check SANITIZE=1 runs the tests from make: MAKEFLAGS carries SANITIZE=1 into this make, so
# the installed binaries are the ones under test.
INSTALL_TIMEOUT = 600


def parse_unit(path):
    """{section: {key: [values...]}} from a systemd unit file (comments and blank lines skipped)."""
    sections, current = {}, None
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def installed():
    prefix = Path(tempfile.mkdtemp(prefix="splitpool-it-install-", dir="/tmp"))
    prefix.chmod(0o755)   # the unit's User (postgres) runs the installed binary
    try:
        proc = subprocess.run(["make", "install", f"PREFIX={prefix}"], cwd=REPO, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"make install failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


class NotifyListener:
    """A service manager's end of NOTIFY_SOCKET: a datagram socket; messages() parses KEY=VALUE lines."""

    def __init__(self, directory, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"splitpool-it-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(Path(directory) / "notify.sock")
            self.sock.bind(self.address)
            os.chmod(self.address, 0o777)   # the service's user must be able to send

    def receive(self, timeout=20):
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def close(self):
        self.sock.close()


def drop_to(user):
    pw = pwd.getpwnam(user)

    def preexec():
        os.setsid()
        os.initgroups(user, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return preexec, pw


def start_as_unit(unit, sp, listener):
    """Starts ExecStart with the config path swapped for the test's; as the unit's User when root."""
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"][0])
    argv[argv.index("-f") + 1] = str(sp.config_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "NOTIFY_SOCKET"))}
    env["NOTIFY_SOCKET"] = listener.address
    preexec = os.setsid
    if os.geteuid() == 0:
        preexec, pw = drop_to(service["User"][0])
        for path in [sp.dir, *sp.dir.iterdir()]:
            os.chown(path, pw.pw_uid, pw.pw_gid)
    log = open(sp.log_path, "ab")
    sp.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=sp.dir,
                               env=env, preexec_fn=preexec)
    log.close()
    return argv


def connects(port):
    """One connection attempt, no retry: the kernel accepts it only if the socket listens."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False


def test_make_install_layout(installed):
    for tool in ("splitpool", "pcp_node_info", "pcp_log_rotate", "pg_enc", "pg_md5"):
        assert os.access(installed / "bin" / tool, os.X_OK), tool
    etc = installed / "etc" / "splitpool"
    for sample in ("splitpool.toml", "splitpool.toml.sample", "splitpool-minimal.toml.sample", "pcp.conf.sample",
                   "pool_hba.conf.sample", "splitpool.logrotate.sample"):
        assert (etc / sample).is_file(), sample
    unit = parse_unit(installed / "lib" / "systemd" / "system" / "splitpool.service")
    service = unit["Service"]
    assert service["Type"] == ["notify"] and service["User"] == ["postgres"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0] == str(installed / "bin" / "splitpool") and "-n" in argv
    assert argv[argv.index("-f") + 1] == str(etc / "splitpool.toml")
    assert shlex.split(service["ExecReload"][0])[1:] == ["-HUP", "$MAINPID"]
    # The installed sample is valid as it stands.
    check = subprocess.run([str(installed / "bin" / "splitpool"), "-f", str(etc / "splitpool.toml"), "-C"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_install_keeps_an_edited_config(installed):
    config = installed / "etc" / "splitpool" / "splitpool.toml"
    config.write_text(config.read_text() + "\n# edited by the DBA\n")
    proc = subprocess.run(["make", "install", f"PREFIX={installed}"], cwd=REPO, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert config.read_text().endswith("# edited by the DBA\n")


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_ready_reload_stop(installed, splitpool, abstract):
    unit = parse_unit(installed / "lib" / "systemd" / "system" / "splitpool.service")
    sp = splitpool.prepare(client_idle_limit=0)
    listener = NotifyListener(sp.dir, abstract=abstract)
    try:
        start_as_unit(unit, sp, listener)
        ready = listener.receive()
        # READY=1 comes only when a connection is accepted at once, and names the main process.
        assert ready.get("READY") == "1", ready
        assert connects(sp.port), "READY=1 arrived before the port accepted connections"
        assert ready.get("MAINPID") == str(sp.proc.pid)
        if os.geteuid() == 0:
            assert os.stat(f"/proc/{sp.proc.pid}").st_uid == pwd.getpwnam("postgres").pw_uid
        sp.wait_ready()
        assert psql_value(sp.port, "pgpool show client_idle_limit") == "0"

        # ExecReload as the unit gives it, $MAINPID filled in as systemd does.
        sp.cfg["client_idle_limit"] = 77
        sp.write_config()
        reload_argv = [sp.proc.pid if a == "$MAINPID" else a for a in shlex.split(unit["Service"]["ExecReload"][0])]
        subprocess.run(list(map(str, reload_argv)), check=True, timeout=10)
        reloading = listener.receive()
        assert reloading.get("RELOADING") == "1", reloading
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert listener.receive().get("READY") == "1"
        # Children apply a reload at their next session: a new session sees the new value.
        wait_until(lambda: psql_value(sp.port, "pgpool show client_idle_limit") == "77", 10,
                   "client_idle_limit = 77 after the reload")

        # systemctl stop: the unit's KillSignal to the main process only (KillMode=mixed).
        assert unit["Service"]["KillMode"] == ["mixed"]
        os.kill(sp.proc.pid, getattr(signal, unit["Service"]["KillSignal"][0]))
        assert listener.receive().get("STOPPING") == "1"
        assert sp.wait_exit(30) == 0
    finally:
        listener.close()


def test_forking_mode_writes_pid_file_and_notifies_main_pid(splitpool):
    """Type=forking (the unit's commented alternative): without -n the command returns once the
    daemon listens; the pid file names the daemon, and READY=1 (if NOTIFY_SOCKET is set) too."""
    sp = splitpool.prepare()
    listener = NotifyListener(sp.dir)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["NOTIFY_SOCKET"] = listener.address
        with open(sp.log_path, "ab") as log:
            proc = subprocess.run([str(SPLITPOOL_BIN), "-f", str(sp.config_path)], env=env,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=sp.dir,
                                  timeout=30)
        assert proc.returncode == 0, sp.log_tail()
        assert connects(sp.port)
        pid = sp.adopt_daemon()
        assert listener.receive().get("MAINPID") == str(pid)
        os.kill(pid, signal.SIGINT)
        assert listener.receive().get("STOPPING") == "1"
        sp.wait_exit(30)
    finally:
        listener.close()


# Each tool's getopt letters (pgpool's, plus -V/-? for the pcp tools), all of which --help must list.
TOOL_FLAGS = {
    "splitpool": "a d f k F h m n D C v",
    "pcp_node_count": "h p U w W v d V ?",
    "pcp_node_info": "n h p U a w W v d V ?",
    "pcp_health_check_stats": "n h p U w W v d V ?",
    "pcp_pool_status": "h p U w W v d V ?",
    "pcp_proc_count": "h p U w W v d V ?",
    "pcp_proc_info": "h p P U a w W v d V ?",
    "pcp_attach_node": "n h p U w W v d V ?",
    "pcp_detach_node": "n h p U g w W v d V ?",
    "pcp_promote_node": "n h p U g s w W v d V ?",
    "pcp_stop_pgpool": "m h p U s w W v d a V ?",
    "pcp_reload_config": "h p U s w W v d V ?",
    "pcp_log_rotate": "h p U s w W v d V ?",
    "pg_enc": "h P p m f i u k K",
    "pg_md5": "h p m f i u",
}


@pytest.mark.parametrize("tool", sorted(TOOL_FLAGS))
def test_help_lists_every_flag(tool):
    binary = SPLITPOOL_BIN if tool == "splitpool" else REPO / "bin" / tool
    proc = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.strip(), f"{tool} --help printed nothing on stdout"
    missing = [f for f in TOOL_FLAGS[tool].split()
               if not re.search(rf"(^|[\s,])-{re.escape(f)}([\s,]|$)", out, re.M)]
    assert not missing, f"{tool} --help does not list {missing}:\n{out}"
    if tool != "splitpool":
        assert re.search(r"--help", out)
