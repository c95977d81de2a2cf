"""Integration-test harness: cluster control, splitpool configs and processes, clients (psql, pgbench, psycopg, raw wire)."""

import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
SPLITPOOL_BIN = Path(os.environ.get("SPLITPOOL_BIN", str(REPO / "bin" / "splitpool")))

STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

# The example configuration from the interface; tests override single keys.
BASE_CONFIG = {
    "listen_addresses": "127.0.0.1",
    "num_init_children": 4,
    "max_pool": 2,
    "reserved_connections": 0,
    "client_idle_limit": 0,
    "child_life_time": "5min",
    "connection_life_time": 0,
    "enable_pool_hba": False,
    "allow_clear_text_frontend_auth": True,
    "pool_passwd": "",
    "log_min_messages": "info",
    "log_connections": True,
    "log_disconnections": True,
    "pid_file_name": "splitpool.pid",
    "logdir": ".",
}


# ----------------------------------------------------------------------------- waiting

def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------- processes

def proc_state(pid):
    """(state letter, ppid) from /proc/PID/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    return fields[0], int(fields[1])


def pid_alive(pid):
    st = proc_state(pid)
    return st is not None and st[0] != "Z"


def children_of(ppid):
    """Live (non-zombie) direct children of ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_state(int(name))
        if st and st[1] == ppid and st[0] != "Z":
            out.append(int(name))
    return sorted(out)


def _tcp_sockets():
    """Yields (local_port, remote_port, inode) for IPv4 TCP sockets of this network namespace."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            lport = int(cols[1].split(":")[1], 16)
            rport = int(cols[2].split(":")[1], 16)
            yield lport, rport, int(cols[9])


def socket_owner(server_port, client_port, candidates):
    """The pid among candidates holding the server side of the TCP connection server_port<-client_port."""
    inodes = {ino for lp, rp, ino in _tcp_sockets() if lp == server_port and rp == client_port and ino}
    targets = {f"socket:[{ino}]" for ino in inodes}
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return pid
            except OSError:
                continue
    return None


def free_port(port):
    """True when 127.0.0.1:port can be bound the way a server binds it (SO_REUSEADDR)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class PortAllocator:
    """Hands out fresh (port, pcp_port) pairs from a base, skipping ports in use."""

    def __init__(self, base):
        self.next = base

    def pair(self):
        while self.next < 32766:
            port, pcp = self.next, self.next + 1
            self.next += 2
            if free_port(port) and free_port(pcp):
                return port, pcp
        raise AssertionError("no free ports left below 32768")


# ----------------------------------------------------------------------------- clients

def client_env(password=None, **extra):
    """Environment for libpq tools: no inherited PG* settings, no GSS probing, a connect timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "5"
    env["PGGSSENCMODE"] = "disable"
    if password is not None:
        env["PGPASSWORD"] = password
    env.update(extra)
    return env


def _run(args, env, input=None, timeout=60):
    # A new session has no controlling tty, so a tool can never block on a password prompt.
    return subprocess.run(args, input=input, capture_output=True, text=True, encoding="utf-8",
                          errors="replace", env=env,
                          timeout=timeout, start_new_session=True,
                          stdin=None if input is not None else subprocess.DEVNULL)


def describe(proc):
    return (f"command: {' '.join(map(str, proc.args))}\nexit: {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")


def psql(port, sql=None, user="postgres", password=None, db="postgres", input=None,
         check=True, on_error_stop=True, host="127.0.0.1", timeout=60, env_extra=None):
    """Runs psql -X -A -t against host:port; sql via -c, or a script via input (-f -)."""
    args = ["psql", "-X", "-A", "-t", "-w", "-h", str(host), "-p", str(port), "-U", user, "-d", db]
    if on_error_stop:
        args += ["-v", "ON_ERROR_STOP=1"]
    args += ["-c", sql] if sql is not None else ["-f", "-"]
    proc = _run(args, client_env(password, **(env_extra or {})), input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("psql failed\n" + describe(proc))
    return proc


def psql_value(port, sql, **kw):
    return psql(port, sql, **kw).stdout.strip()


def pgbench(port, args, user="postgres", password=None, db="postgres", check=True, timeout=180):
    cmd = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", user, *map(str, args), db]
    proc = _run(cmd, client_env(password), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("pgbench failed\n" + describe(proc))
    return proc


def pgbench_processed(output):
    """(processed, requested) from pgbench's 'number of transactions actually processed' line."""
    m = re.search(r"number of transactions actually processed: (\d+)(?:/(\d+))?", output)
    assert m, "no transaction count in pgbench output:\n" + output
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None


def connect(port, user="postgres", password=None, dbname="postgres", autocommit=True, **kw):
    """psycopg 3 connection over TCP to 127.0.0.1:port."""
    import psycopg
    return psycopg.connect(host="127.0.0.1", port=port, user=user, password=password, dbname=dbname,
                           connect_timeout=5, autocommit=autocommit, gssencmode="disable", **kw)


def client_port(conn):
    """Local TCP port of a psycopg connection's socket."""
    s = socket.socket(fileno=os.dup(conn.pgconn.socket))
    try:
        return s.getsockname()[1]
    finally:
        s.close()


class PgError(Exception):
    """An ErrorResponse; fields maps the one-letter codes (S, V, C, M, D, H) to their text."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{fields.get('S')} {fields.get('C')}: {fields.get('M')}")

    @property
    def sqlstate(self):
        return self.fields.get("C")


class RawClient:
    """Minimal protocol-3 client so tests can see SQLSTATEs and timing that libpq hides."""

    def __init__(self, port, user="postgres", database="postgres", password=None, params=None,
                 timeout=10):
        self.user, self.password = user, password
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        body = struct.pack("!I", 196608)
        for k, v in {"user": user, "database": database, **(params or {})}.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        self.backend_key = None
        self.parameters = {}

    def close(self):
        try:
            self.sock.sendall(b"X\0\0\0\4")
        except OSError:
            pass
        self.sock.close()

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_message(self, timeout=None):
        """(type, payload), or None on EOF. Raises socket.timeout on timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        head = self._recv_exact(5)
        if head is None:
            return None
        kind, length = head[:1], struct.unpack("!I", head[1:])[0]
        payload = self._recv_exact(length - 4)
        if payload is None:
            return None
        return kind, payload

    @staticmethod
    def parse_error(payload):
        fields = {}
        for part in payload.split(b"\0"):
            if part:
                fields[chr(part[0])] = part[1:].decode(errors="replace")
        return fields

    def _send(self, kind, payload):
        self.sock.sendall(kind + struct.pack("!I", len(payload) + 4) + payload)

    def _answer_auth(self, payload):
        code = struct.unpack("!I", payload[:4])[0]
        if code == 0:
            return
        if self.password is None:
            raise AssertionError(f"server asked for authentication {code} but the test gave no password")
        if code == 3:
            self._send(b"p", self.password.encode() + b"\0")
        elif code == 5:
            inner = hashlib.md5((self.password + self.user).encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + payload[4:8]).hexdigest()
            self._send(b"p", b"md5" + outer.encode() + b"\0")
        else:
            raise AssertionError(f"RawClient does not speak authentication method {code}")

    def startup(self, timeout=10):
        """Completes the login; raises PgError on ErrorResponse, AssertionError on EOF."""
        while True:
            msg = self.read_message(timeout)
            if msg is None:
                raise AssertionError("connection closed during startup")
            kind, payload = msg
            if kind == b"R":
                self._answer_auth(payload)
            elif kind == b"E":
                raise PgError(self.parse_error(payload))
            elif kind == b"K":
                self.backend_key = struct.unpack("!II", payload)
            elif kind == b"S":
                k, v = payload.split(b"\0")[:2]
                self.parameters[k.decode()] = v.decode()
            elif kind == b"Z":
                return self

    def query(self, sql, timeout=10):
        """Simple query; returns rows as lists of str/None; raises PgError on an error."""
        self._send(b"Q", sql.encode() + b"\0")
        rows, error = [], None
        while True:
            msg = self.read_message(timeout)
            if msg is None:
                raise AssertionError(f"connection closed during query {sql!r}"
                                     + (f" after {error}" if error else ""))
            kind, payload = msg
            if kind == b"D":
                rows.append(self._data_row(payload))
            elif kind == b"E":
                error = PgError(self.parse_error(payload))
            elif kind == b"Z":
                if error:
                    raise error
                return rows

    @staticmethod
    def _data_row(payload):
        n = struct.unpack("!H", payload[:2])[0]
        pos, row = 2, []
        for _ in range(n):
            ln = struct.unpack("!i", payload[pos:pos + 4])[0]
            pos += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(payload[pos:pos + ln].decode())
                pos += ln
        return row

    def wait_for_error(self, timeout):
        """Waits for an unsolicited ErrorResponse; returns its fields, or None if the socket closed first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no error and no disconnect within {timeout}s")
            try:
                msg = self.read_message(left)
            except ConnectionResetError:
                return None
            except socket.timeout:
                raise AssertionError(f"no error and no disconnect within {timeout}s") from None
            if msg is None:
                return None
            if msg[0] == b"E":
                return self.parse_error(msg[1])


# ----------------------------------------------------------------------------- cluster

class Cluster:
    """A running pg_cluster.sh cluster: node0 primary, node1.. replicas, sockets in dir."""

    def __init__(self, dir, base_port, replicas):
        self.dir, self.base_port, self.replicas = str(dir), base_port, replicas

    @property
    def ports(self):
        return [self.base_port + k for k in range(self.replicas + 1)]

    def script(self, *args, check=True):
        proc = subprocess.run([str(SCRIPTS / "pg_cluster.sh"), *map(str, args)], capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError("pg_cluster.sh failed\n" + describe(proc))
        return proc

    def sql(self, node, sql, db="postgres"):
        """Runs SQL as postgres on a node through its unix socket (bypassing splitpool)."""
        return psql(self.ports[node], sql, db=db, host=self.dir).stdout.strip()

    def wait_replicas_caught_up(self, timeout=30):
        """Waits until every replica has replayed everything the primary has logged so far."""
        # The insert position, not pg_current_wal_lsn(): with synchronous_commit = off (pg_cluster.sh)
        # a commit record may still sit in the WAL buffers, behind the write position.
        lsn = self.sql(0, "select pg_current_wal_insert_lsn()")
        for node in range(1, self.replicas + 1):
            wait_until(lambda: self.sql(node, f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t",
                       timeout, f"replica node{node} to replay {lsn}")

    def backends(self, weights=(1, 2, 2), nodes=None):
        """[[backend]] tables: node0 ALWAYS_PRIMARY, the rest DISALLOW_TO_FAILOVER."""
        out = []
        for k in (nodes if nodes is not None else range(self.replicas + 1)):
            flags = ["ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"] if k == 0 else ["DISALLOW_TO_FAILOVER"]
            out.append({"hostname": "127.0.0.1", "port": self.ports[k], "weight": weights[k],
                        "flag": flags, "application_name": f"node{k}"})
        return out


# ----------------------------------------------------------------------------- config

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def render_config(cfg):
    """TOML text: scalar keys first (None = omitted), then one [[backend]] table per backend."""
    lines = ["# written by test/integration/helpers.py"]
    for key, value in cfg.items():
        if key != "backend" and value is not None:
            lines.append(f"{key} = {toml_value(value)}")
    for b in cfg.get("backend") or []:
        lines.append("")
        lines.append("[[backend]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in b.items() if v is not None]
    return "\n".join(lines) + "\n"


def line_of(text, prefix):
    """1-based number of the first line of text starting with prefix."""
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith(prefix):
            return n
    raise AssertionError(f"no line starting with {prefix!r}")


# ----------------------------------------------------------------------------- splitpool

class Splitpool:
    """One splitpool instance with its own folder, config, ports and log."""

    def __init__(self, cluster, workdir, port, pcp_port, overrides):
        self.cluster, self.dir, self.port, self.pcp_port = cluster, Path(workdir), port, pcp_port
        self.config_path = self.dir / "splitpool.toml"
        self.log_path = self.dir / "splitpool.log"
        self.pid_file = self.dir / "splitpool.pid"
        self.proc = None
        self._pid = None
        self.known_children = set()
        self.cfg = dict(BASE_CONFIG)
        self.cfg.update({"port": port, "pcp_port": pcp_port, "unix_socket_directories": str(self.dir),
                         "pcp_socket_dir": str(self.dir), "backend": cluster.backends()})
        self.cfg.update(overrides)
        self.write_config()

    # --- config
    def write_config(self):
        self.config_path.write_text(render_config(self.cfg))

    @property
    def pid(self):
        return self.proc.pid if self.proc else self._pid

    # --- start / stop
    def start(self, timeout=20):
        """Starts `splitpool -n -f CONFIG` in the foreground and waits until it answers select 1."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(SPLITPOOL_BIN), "-n", "-f", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20):
        def answers():
            if not self.alive():
                raise AssertionError(f"splitpool exited early\n--- log ---\n{self.log_tail()}")
            p = psql(self.port, "select 1", check=False, timeout=10)
            return p.returncode == 0 and p.stdout.strip() == "1"
        try:
            wait_until(answers, timeout, f"splitpool on port {self.port} to answer select 1", 0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- log ---\n{self.log_tail()}") from None
        self.known_children.update(self.children())

    def cli(self, *args, timeout=30, log_to=None):
        """Runs `splitpool -f CONFIG ARGS...`; output goes to a file (a daemon would hold a pipe open)."""
        out_path = Path(log_to) if log_to else self.dir / f"cli-{time.monotonic_ns()}.out"
        with open(out_path, "ab") as out:
            start = out.tell()
            proc = subprocess.run([str(SPLITPOOL_BIN), "-f", str(self.config_path), *args],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=self.dir, timeout=timeout, start_new_session=True)
        with open(out_path, "rb") as f:
            f.seek(start)
            proc.output = f.read().decode(errors="replace")
        return proc

    def adopt_daemon(self, timeout=10):
        """After a daemonizing start: reads the pid file, then waits until the daemon answers."""
        wait_until(lambda: self.pid_file.exists() and self.pid_file.read_text().strip().isdigit(),
                   timeout, f"pid file {self.pid_file}")
        self._pid = int(self.pid_file.read_text().split()[0])
        self.wait_ready(timeout)
        return self._pid

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        return self._pid is not None and pid_alive(self._pid)

    def send_stop(self, mode):
        os.kill(self.pid, STOP_SIGNALS[mode])

    def wait_exit(self, timeout):
        """Waits for the daemon to exit; returns its exit code (None for a daemonized one)."""
        wait_until(lambda: not self.alive(), timeout, f"splitpool (pid {self.pid}) to exit")
        return self.proc.returncode if self.proc else None

    def stop(self, mode="fast", timeout=15):
        self.known_children.update(self.children())
        self.send_stop(mode)
        return self.wait_exit(timeout)

    def reload(self, new_overrides=None, timeout=10):
        """Rewrites the config with new_overrides, sends SIGHUP, waits for 'configuration reloaded'."""
        self.cfg.update(new_overrides or {})
        self.write_config()
        before = len(re.findall("configuration reloaded", self.log_text()))
        os.kill(self.pid, signal.SIGHUP)
        try:
            wait_until(lambda: len(re.findall("configuration reloaded", self.log_text())) > before,
                       timeout, "'configuration reloaded' in the log")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- log ---\n{self.log_tail()}") from None

    # --- observation
    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_for_log(self, regex, timeout=10):
        pattern = re.compile(regex)
        try:
            return wait_until(lambda: pattern.search(self.log_text()), timeout, f"log line /{regex}/")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- log ---\n{self.log_tail()}") from None

    def children(self):
        pid = self.pid
        return children_of(pid) if pid else []

    # --- teardown
    def cleanup(self, timeout=10):
        """Fast-stops a still-running daemon (SIGKILL after timeout) and kills leftover children.
        Returns a problem description, or None when the daemon exited on SIGINT."""
        problem = None
        if self.alive():
            self.known_children.update(self.children())
            os.kill(self.pid, signal.SIGINT)
            try:
                self.wait_exit(timeout)
            except AssertionError:
                problem = f"splitpool (pid {self.pid}) ignored SIGINT for {timeout}s; killed"
                os.kill(self.pid, signal.SIGKILL)
                wait_until(lambda: not self.alive(), 10, "splitpool to die after SIGKILL")
        for child in self.known_children:
            if pid_alive(child) and _is_splitpool(child):
                os.kill(child, signal.SIGKILL)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.wait(5)
        return problem


def _is_splitpool(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"splitpool" in f.read()
    except OSError:
        return False
