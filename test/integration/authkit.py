"""Auth/TLS test support: start with extra env, pool_hba/pool_passwd files, SCRAM raw client, tcpdump, cluster TLS."""

import base64
import hashlib
import hmac
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from certs import standard_pki
from helpers import (SPLITPOOL_BIN, RawClient, Splitpool, psql, wait_until)

KEY_TEXT = "pgpool secret key"


# ----------------------------------------------------------------------------- instances

def new_instance(cluster, ports, **overrides):
    """A Splitpool with its own folder, not started (the caller owns cleanup: stop_instance)."""
    if not SPLITPOOL_BIN.exists():
        pytest.fail(f"{SPLITPOOL_BIN} does not exist: build it first (make)")
    workdir = tempfile.mkdtemp(prefix="splitpool-it-auth-", dir="/tmp")
    port, pcp_port = ports.pair()
    return Splitpool(cluster, workdir, port, pcp_port, overrides)


def stop_instance(sp):
    problem = sp.cleanup()
    if not os.environ.get("SPLITPOOL_TEST_KEEP"):
        shutil.rmtree(sp.dir, ignore_errors=True)
    return problem


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start(sp, env=None, probe="postgres", timeout=20):
    """Starts `splitpool -n -f CONFIG` like Splitpool.start, but with extra environment (PGPOOLKEYFILE)
    and a choice of readiness probe: "postgres" (select 1 as trust user postgres, as the helper does),
    (user, password) for a password login, or "port" (only wait for the listening socket, for
    configurations where no login is expected to work)."""
    log = open(sp.log_path, "ab")
    sp.proc = subprocess.Popen([str(SPLITPOOL_BIN), "-n", "-f", str(sp.config_path)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               cwd=sp.dir, start_new_session=True, env={**os.environ, **(env or {})})
    log.close()
    if probe == "postgres":
        sp.wait_ready(timeout)
    else:
        wait_ready_as(sp, probe, timeout)
    return sp


def wait_ready_as(sp, probe, timeout=20):
    def ready():
        if not sp.alive():
            raise AssertionError(f"splitpool exited early\n--- log ---\n{sp.log_tail()}")
        if probe == "port":
            return port_open(sp.port)
        user, password = probe
        p = psql(sp.port, "select 1", user=user, password=password, check=False, timeout=10)
        return p.returncode == 0 and p.stdout.strip() == "1"
    try:
        wait_until(ready, timeout, f"splitpool on port {sp.port} to be ready ({probe})", 0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- log ---\n{sp.log_tail()}") from None
    sp.known_children.update(sp.children())


# ----------------------------------------------------------------------------- files

def write_hba(sp, lines):
    """pool_hba.conf next to the config file (where splitpool looks without -a)."""
    path = sp.dir / "pool_hba.conf"
    path.write_text("# written by test/integration/authkit.py\n" + "\n".join(lines) + "\n")
    return path


def write_pool_passwd(sp, entries, name="pool_passwd"):
    """entries: {user: stored password text (with its prefix)}; rewritten in place (same inode)."""
    path = sp.dir / name
    with open(path, "w") as f:
        f.writelines(f"{user}:{secret}\n" for user, secret in entries.items())
    os.chmod(path, 0o600)
    return path


def write_key_file(dir, text=KEY_TEXT):
    path = Path(dir) / "pgpoolkey"
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    return path


def aes_entry(password, key_text=KEY_TEXT):
    """pool_passwd AES entry computed by openssl itself (independent of splitpool's pg_enc)."""
    proc = subprocess.run(["openssl", "enc", "-aes-256-cbc", "-md", "sha1", "-nosalt", "-pass",
                           f"pass:{key_text}", "-base64", "-A"], input=password.encode(),
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return "AES" + proc.stdout.decode().strip()


def md5_entry(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def scram_verifier(cluster, user):
    """The user's SCRAM-SHA-256$... verifier as stored on the primary."""
    v = cluster.sql(0, f"select rolpassword from pg_authid where rolname = '{user}'")
    assert v.startswith("SCRAM-SHA-256$"), f"{user} has no SCRAM verifier: {v!r}"
    return v


# ----------------------------------------------------------------------------- raw client with SCRAM

class AuthClient(RawClient):
    """RawClient that also speaks SCRAM-SHA-256 (no channel binding: plain TCP only), so tests can read
    the SQLSTATE of a failed login, which libpq does not expose."""

    def _answer_auth(self, payload):
        code = struct.unpack("!I", payload[:4])[0]
        if code == 10:
            mechanisms = [m.decode() for m in payload[4:].split(b"\0") if m]
            assert "SCRAM-SHA-256" in mechanisms, mechanisms
            self._nonce = base64.b64encode(os.urandom(18)).decode()
            self._first_bare = f"n=,r={self._nonce}"
            first = ("n,," + self._first_bare).encode()
            self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
        elif code == 11:
            self._send(b"p", self._scram_final(payload[4:].decode()).encode())
        elif code == 12:
            attrs = dict(kv.split("=", 1) for kv in payload[4:].decode().split(","))
            assert hmac.compare_digest(base64.b64decode(attrs["v"]), self._server_signature), \
                "server signature in SASLFinal does not verify"
        else:
            super()._answer_auth(payload)

    def _scram_final(self, server_first):
        if self.password is None:
            raise AssertionError("server asked for SCRAM but the test gave no password")
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self._nonce), "server nonce does not extend ours"
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self._server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}"


def login_error(port, user, password, database="postgres"):
    """Logs in with AuthClient; returns the ErrorResponse fields, or None if the login succeeded."""
    from helpers import PgError
    client = AuthClient(port, user=user, database=database, password=password)
    try:
        client.startup()
        return None
    except PgError as e:
        return e.fields
    finally:
        client.sock.close()


# ----------------------------------------------------------------------------- packet capture

class Capture:
    """tcpdump on lo for one TCP port, written to a pcap; `data` is the raw file after stop()."""

    def __init__(self, port, dir):
        if not shutil.which("tcpdump"):
            pytest.skip("tcpdump is not installed (scripts/install-deps.sh installs it)")
        self.path = Path(dir) / f"capture-{port}-{time.monotonic_ns()}.pcap"
        self.err_path = self.path.with_suffix(".err")
        self.port = port
        self.proc = None
        self.data = b""

    def __enter__(self):
        err = open(self.err_path, "wb")
        # -Z root: Debian's tcpdump otherwise drops to user tcpdump and may not write into our temp dir.
        self.proc = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-Z", "root",
                                      "-s", "0", "-w", str(self.path), "tcp", "port", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                     start_new_session=True)
        err.close()
        try:
            wait_until(lambda: b"listening on" in self.err_path.read_bytes() or self.proc.poll() is not None,
                       10, "tcpdump to start listening")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"tcpdump exited: {self.err_path.read_text(errors='replace')}")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            time.sleep(0.3)  # let the last packets reach the file
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.data = self.path.read_bytes() if self.path.exists() else b""

    def __exit__(self, *exc):
        self.stop()
        return False

    def packets(self):
        """Number of records in the pcap (24-byte file header, 16-byte record headers)."""
        n, pos = 0, 24
        little = self.data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
        while pos + 16 <= len(self.data):
            incl = struct.unpack("<I" if little else ">I", self.data[pos + 8:pos + 12])[0]
            pos += 16 + incl
            n += 1
        return n


SSL_REQUEST = struct.pack("!II", 8, 80877103)


# ----------------------------------------------------------------------------- TLS on the test cluster

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    os.chmod(d, 0o755)
    return standard_pki(d)


def _node_sql_all(cluster, statements):
    for node in range(cluster.replicas + 1):
        for sql in statements:
            cluster.sql(node, sql)


@pytest.fixture(scope="module")
def cluster_tls(cluster, pki):
    """Turns ssl on in every node with the test server certificate (signed by pki's CA), off afterwards."""
    pw = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    for node in range(cluster.replicas + 1):
        datadir = Path(cluster.dir) / f"node{node}"
        for name in ("server.crt", "server.key"):
            target = datadir / f"splitpool-test-{name}"
            shutil.copyfile(pki.dir / name, target)
            if pw:
                os.chown(target, pw.pw_uid, pw.pw_gid)
            os.chmod(target, 0o600)
    _node_sql_all(cluster, ["alter system set ssl_cert_file = 'splitpool-test-server.crt'",
                            "alter system set ssl_key_file = 'splitpool-test-server.key'",
                            "alter system set ssl = on", "select pg_reload_conf()"])
    try:
        for node in range(cluster.replicas + 1):
            wait_until(lambda: cluster.sql(node, "show ssl") == "on", 10, f"ssl on at node{node}")
            p = psql(cluster.ports[node], "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
                     env_extra={"PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(pki.dir / "ca.crt")})
            assert p.stdout.strip() == "t", p.stdout
        yield cluster
    finally:
        _node_sql_all(cluster, ["alter system reset ssl", "alter system reset ssl_cert_file",
                                "alter system reset ssl_key_file", "select pg_reload_conf()"])
