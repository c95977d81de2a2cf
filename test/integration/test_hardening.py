"""Hardening issue: protocol violations answered as PostgreSQL answers them, no user enumeration through
auth errors, strict PCP node ids, replication connections, bounded log lines, orphaned children."""

import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import time

import pytest

from authkit import (AuthClient, aes_entry, login_error, new_instance, start, stop_instance, write_hba,
                     write_key_file, write_pool_passwd)
from helpers import (REPO, SPLITPOOL_BIN, PgError, RawClient, children_of, client_env, describe, pid_alive,
                     psql, psql_value, wait_until)

SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSSENC_REQUEST = struct.pack("!II", 8, 80877104)


def startup_packet(user="postgres", database="postgres"):
    body = struct.pack("!I", 196608) + f"user\0{user}\0database\0{database}\0\0".encode()
    return struct.pack("!I", len(body) + 4) + body


def read_all(sock, timeout=5):
    """Everything the server sends until it closes the connection (AssertionError if it stays open)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            break
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"connection still open after {timeout}s; received {data[:200]!r}")


def messages(data):
    """Typed messages in data: [(type, payload)]."""
    out, pos = [], 0
    while pos + 5 <= len(data):
        length = struct.unpack("!I", data[pos + 1:pos + 5])[0]
        out.append((data[pos:pos + 1], data[pos + 5:pos + 1 + length]))
        pos += 1 + length
    return out


def error_of(data):
    """Fields of the single ErrorResponse in data (which must end the conversation)."""
    msgs = messages(data)
    assert msgs and msgs[-1][0] == b"E", f"expected an ErrorResponse last, got {data[:300]!r}"
    return RawClient.parse_error(msgs[-1][1])


def logged_in(port, **kw):
    return RawClient(port, **kw).startup()


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def plain_pool(cluster, ports):
    """pool_hba off, clear-text pass-through: the default test configuration."""
    sp = new_instance(cluster, ports, num_init_children=2)
    try:
        start(sp)
        yield sp
    finally:
        problem = stop_instance(sp)
    assert not problem, problem


# ----------------------------------------------------------------------------- 2. unknown message types

@pytest.mark.parametrize("kind", [b"\0", b"Z", b"A", b"R", b"p", b"\xff"], ids=["0", "Z", "A", "R", "p", "255"])
def test_unknown_frontend_message_type_is_refused_like_postgresql(plain_pool, cluster, kind):
    answers = {}
    for name, port in (("postgresql", cluster.ports[0]), ("splitpool", plain_pool.port)):
        c = logged_in(port)
        try:
            c.sock.sendall(kind + struct.pack("!I", 4))
            answers[name] = error_of(read_all(c.sock))
        finally:
            c.sock.close()
    sp = answers["splitpool"]
    assert (sp.get("S"), sp.get("C")) == ("FATAL", "08P01"), sp
    assert sp.get("M") == f"invalid frontend message type {kind[0]}", sp
    assert sp.get("M") == answers["postgresql"].get("M") and sp.get("C") == answers["postgresql"].get("C"), answers
    plain_pool.wait_for_log(rf"invalid frontend message type {kind[0]}\b")


@pytest.mark.parametrize("packet", ["startup", "ssl"])
def test_startup_packet_after_login_is_refused_at_once(plain_pool, packet):
    c = logged_in(plain_pool.port)
    try:
        started = time.monotonic()
        c.sock.sendall(startup_packet() if packet == "startup" else SSL_REQUEST)
        fields = error_of(read_all(c.sock, timeout=5))
        assert time.monotonic() - started < 3
    finally:
        c.sock.close()
    assert (fields.get("S"), fields.get("C"), fields.get("M")) == \
        ("FATAL", "08P01", "invalid frontend message type 0"), fields
    # The child is free again and serves the next client.
    assert psql_value(plain_pool.port, "select 42") == "42"


def test_valid_messages_still_work(plain_pool):
    c = logged_in(plain_pool.port)
    try:
        assert c.query("select 1") == [["1"]]
        c._send(b"H", b"")  # Flush: accepted, answers nothing
        assert c.query("select 2") == [["2"]]
    finally:
        c.close()


# ----------------------------------------------------------------------------- 3. repeated SSLRequest

def negotiate_twice(port, first, second):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(first)
        assert s.recv(1) == b"N"
        s.sendall(second)
        return read_all(s)


def test_repeated_ssl_request_refused_like_postgresql(plain_pool, cluster):
    pg = error_of(negotiate_twice(cluster.ports[0], SSL_REQUEST, SSL_REQUEST))  # the test cluster has ssl off
    sp = error_of(negotiate_twice(plain_pool.port, SSL_REQUEST, SSL_REQUEST))
    print("postgresql:", pg, "splitpool:", sp)
    assert sp.get("S") == "FATAL" and sp.get("C") == pg.get("C") and sp.get("M") == pg.get("M"), (pg, sp)
    assert sp.get("M") == "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0", sp


def test_repeated_gssenc_request_refused(plain_pool):
    # PostgreSQL's own answer cannot be compared: the test cluster's server may accept GSS ('G').
    sp = error_of(negotiate_twice(plain_pool.port, GSSENC_REQUEST, GSSENC_REQUEST))
    assert (sp.get("S"), sp.get("C")) == ("FATAL", "0A000"), sp
    assert sp.get("M") == "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.0", sp


def test_ssl_then_gss_request_still_allowed(plain_pool):
    """PostgreSQL lets a client try GSS encryption after SSL was declined, and SSL after GSS."""
    for first, second in ((SSL_REQUEST, GSSENC_REQUEST), (GSSENC_REQUEST, SSL_REQUEST)):
        with socket.create_connection(("127.0.0.1", plain_pool.port), timeout=5) as s:
            s.sendall(first)
            assert s.recv(1) == b"N"
            s.sendall(second)
            assert s.recv(1) == b"N"
            s.sendall(startup_packet())
            assert s.recv(1) == b"R"


def test_ten_thousand_ssl_requests_get_one_answer(plain_pool):
    with socket.create_connection(("127.0.0.1", plain_pool.port), timeout=5) as s:
        try:
            s.sendall(SSL_REQUEST * 10000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = read_all(s)
    assert data[:1] == b"N" and data[1:2] == b"E", data[:100]
    fields = error_of(data[1:])
    assert fields.get("S") == "FATAL", fields
    assert data.count(b"N") < 10, "each SSLRequest was answered"


# ----------------------------------------------------------------------------- 4. user enumeration

ENUM_HBA = ["host all postgres 127.0.0.1/32 trust"]


@pytest.fixture(scope="module")
def enum_pools(cluster, ports, tmp_path_factory):
    """One instance per pool_hba method, pool_passwd with a TEXT entry for digoal and an AES entry for
    md5user, and a key file that does not exist."""
    missing_key = tmp_path_factory.mktemp("nokey") / "missing-pgpoolkey"
    pools = {}
    try:
        for method in ("password", "md5", "scram-sha-256"):
            sp = new_instance(cluster, ports, enable_pool_hba=True, allow_clear_text_frontend_auth=False,
                              pool_passwd="pool_passwd", num_init_children=2)
            write_hba(sp, ENUM_HBA + [f"host all all 127.0.0.1/32 {method}"])
            write_pool_passwd(sp, {"digoal": "TEXTpwd123", "md5user": aes_entry("md5pass")})
            pools[method] = start(sp, env={"PGPOOLKEYFILE": str(missing_key)})
        yield pools, missing_key
    finally:
        problems = [p for p in (stop_instance(sp) for sp in pools.values()) if p]
    assert not problems, problems


@pytest.mark.parametrize("method", ["password", "md5", "scram-sha-256"])
def test_unknown_user_and_wrong_password_look_the_same(enum_pools, method):
    pools, _ = enum_pools
    sp = pools[method]
    unknown = login_error(sp.port, "nosuchuser", "whatever")
    wrong = login_error(sp.port, "digoal", "wrong-password")
    print(method, "unknown user:", unknown, "wrong password:", wrong)
    for user, fields in (("nosuchuser", unknown), ("digoal", wrong)):
        assert fields is not None, sp.log_tail(20)
        assert (fields.get("S"), fields.get("C")) == ("FATAL", "28P01"), fields
        assert fields.get("M") == f'password authentication failed for user "{user}"', fields
        assert "D" not in fields and "H" not in fields, fields
    assert sorted(unknown) == sorted(wrong), (unknown, wrong)
    # The reason is in the server log only. With "password" a user without an entry is judged by
    # PostgreSQL itself (the clear-text password is passed on).
    if method == "password":
        sp.wait_for_log(r'login to node 0 failed for user "nosuchuser".*password authentication failed')
    else:
        sp.wait_for_log(r'does not contain an entry for user "nosuchuser"')
    sp.wait_for_log(r'authentication failed for user "digoal".*password does not match')
    assert login_error(sp.port, "digoal", "pwd123") is None


@pytest.mark.parametrize("method", ["password", "md5", "scram-sha-256"])
def test_missing_key_file_is_logged_as_such(enum_pools, method):
    pools, missing_key = enum_pools
    sp = pools[method]
    fields = login_error(sp.port, "md5user", "md5pass")
    assert fields is not None and (fields.get("C"), fields.get("M")) == \
        ("28P01", 'password authentication failed for user "md5user"'), fields
    assert "D" not in fields, fields
    line = sp.wait_for_log(r'authentication failed for user "md5user".*').group(0)
    assert str(missing_key) in line and "AES" in line, line
    assert 'does not contain an entry for user "md5user"' not in sp.log_text()


# ----------------------------------------------------------------------------- 5. PCP node ids

PCP_USER, PCP_PASSWORD = "pcpadmin", "pcp-secret"


def pcp_bindir():
    d = SPLITPOOL_BIN.parent
    return d if (d / "pcp_detach_node").exists() else REPO / "bin"


@pytest.fixture(scope="module")
def pcp_pool(cluster, ports):
    backends = cluster.backends()
    backends[1]["flag"] = ["ALLOW_TO_FAILOVER"]  # detachable, so a wrapped id would show
    backends[2]["flag"] = ["ALLOW_TO_FAILOVER"]
    sp = new_instance(cluster, ports, backend=backends, health_check_period=0, sr_check_period=0)
    (sp.dir / "pcp.conf").write_text(f"{PCP_USER}:{hashlib.md5(PCP_PASSWORD.encode()).hexdigest()}\n")
    passfile = sp.dir / ".pcppass"
    passfile.write_text(f"*:*:{PCP_USER}:{PCP_PASSWORD}\n")
    passfile.chmod(0o600)
    try:
        start(sp)
        yield sp
    finally:
        problem = stop_instance(sp)
    assert not problem, problem


def pcp(sp, tool, *args):
    cmd = [str(pcp_bindir() / tool), "-h", "127.0.0.1", "-p", str(sp.pcp_port), "-U", PCP_USER, "-w", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                          env=client_env(PCPPASSFILE=str(sp.dir / ".pcppass")), start_new_session=True)


def node_status(sp, node):
    p = pcp(sp, "pcp_node_info", "-n", str(node))
    assert p.returncode == 0, describe(p)
    return p.stdout.split(" ")[4]


@pytest.mark.parametrize("tool", ["pcp_detach_node", "pcp_attach_node", "pcp_node_info", "pcp_promote_node",
                                  "pcp_health_check_stats"])
@pytest.mark.parametrize("node_id", ["4294967298", "4294967297", "1xyz", "2 ", "-1", "", "+1", "0x1"])
def test_pcp_tools_refuse_bad_node_ids(pcp_pool, tool, node_id):
    p = pcp(pcp_pool, tool, "-n", node_id)
    assert p.returncode != 0, describe(p)
    assert "Invalid node-id" in p.stderr, describe(p)
    assert p.stdout == "", describe(p)
    assert node_status(pcp_pool, 1) in ("up", "waiting") and node_status(pcp_pool, 2) in ("up", "waiting")


def test_pcp_tools_still_accept_good_node_ids(pcp_pool):
    p = pcp(pcp_pool, "pcp_node_info", "-n", "2")
    assert p.returncode == 0 and p.stdout.split(" ")[0] == "127.0.0.1", describe(p)
    p = pcp(pcp_pool, "pcp_node_info", "2")  # positional, as pgpool allows
    assert p.returncode == 0, describe(p)
    p = pcp(pcp_pool, "pcp_proc_info", "-P", "12x")
    assert p.returncode != 0 and "Invalid process-id" in p.stderr, describe(p)


class RawPcp:
    """PCP over TCP by hand: the salted md5 login, then any packet the tools would never send."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.send(b"M", b"")
        kind, salt = self.recv()
        assert kind == b"m", (kind, salt)
        inner = hashlib.md5((hashlib.md5(PCP_PASSWORD.encode()).hexdigest() + PCP_USER).encode()).hexdigest()
        response = hashlib.md5(inner.encode() + salt[:4]).hexdigest()
        self.send(b"R", PCP_USER.encode() + b"\0" + response.encode() + b"\0")
        kind, body = self.recv()
        assert kind == b"r" and body.startswith(b"AuthenticationOK"), (kind, body)

    def send(self, kind, body):
        self.sock.sendall(kind + struct.pack("!I", len(body) + 4) + body)

    def recv(self):
        while True:
            if len(self.buf) >= 5:
                length = struct.unpack("!I", self.buf[1:5])[0]
                if len(self.buf) >= 1 + length:
                    kind, body = self.buf[:1], self.buf[5:1 + length]
                    self.buf = self.buf[1 + length:]
                    return kind, body
            chunk = self.sock.recv(65536)
            assert chunk, "PCP server closed the connection"
            self.buf += chunk

    def close(self):
        self.send(b"X", b"")
        self.sock.close()


@pytest.mark.parametrize("kind", [b"D", b"C", b"I", b"H", b"J"])
@pytest.mark.parametrize("arg", [b"4294967297", b"4294967298", b"1xyz", b"2abc", b" 1", b"-2", b""])
def test_pcp_server_refuses_bad_node_ids(pcp_pool, kind, arg):
    c = RawPcp(pcp_pool.pcp_port)
    try:
        c.send(kind, arg + (b" \0n" if kind == b"J" else b"\0"))
        reply, body = c.recv()
    finally:
        c.close()
    assert reply == b"E", (reply, body)
    assert b"ERROR" in body or b"FATAL" in body, body
    assert node_status(pcp_pool, 1) in ("up", "waiting") and node_status(pcp_pool, 2) in ("up", "waiting")
    assert node_status(pcp_pool, 0) == "up"


def test_pcp_server_still_detaches_and_attaches_a_good_id(pcp_pool):
    c = RawPcp(pcp_pool.pcp_port)
    try:
        c.send(b"D", b"2\0")
        assert c.recv()[0] == b"d"
        assert node_status(pcp_pool, 2) == "down"
        c.send(b"C", b"2\0")
        assert c.recv()[0] == b"c"
    finally:
        c.close()
    assert node_status(pcp_pool, 2) in ("up", "waiting")


# ----------------------------------------------------------------------------- 6. replication connections

REPLICATION_VALUES = ["database", "true", "on", "1", "yes", "TRUE"]


@pytest.fixture(scope="module")
def hba_all_pool(cluster, ports):
    sp = new_instance(cluster, ports, enable_pool_hba=True, num_init_children=2)
    write_hba(sp, ["host all all 127.0.0.1/32 trust"])
    try:
        start(sp)
        yield sp
    finally:
        problem = stop_instance(sp)
    assert not problem, problem


@pytest.mark.parametrize("value", REPLICATION_VALUES)
def test_replication_connection_not_matched_by_all(hba_all_pool, value):
    c = RawClient(hba_all_pool.port, params={"replication": value})
    try:
        with pytest.raises(PgError) as err:
            c.startup()
    finally:
        c.sock.close()
    f = err.value.fields
    assert (f.get("S"), f.get("C")) == ("FATAL", "28000"), f
    assert f.get("M") == 'no pool_hba.conf entry for replication connection from host "127.0.0.1", ' \
                         'user "postgres", SSL off', f


@pytest.mark.parametrize("value", ["false", "off", "0", "no"])
def test_replication_false_is_a_normal_session(hba_all_pool, value):
    c = logged_in(hba_all_pool.port, params={"replication": value})
    try:
        assert c.query("select backend_type from pg_stat_activity where pid = pg_backend_pid()") == \
            [["client backend"]]
    finally:
        c.close()


def walsenders(cluster, node, app):
    return int(cluster.sql(node, "select count(*) from pg_stat_activity "
                                 f"where backend_type = 'walsender' and application_name = '{app}'"))


def identify_system_on_primary(sp, cluster, value, app):
    c = logged_in(sp.port, params={"replication": value, "application_name": app})
    try:
        rows = c.query("IDENTIFY_SYSTEM")
        assert len(rows) == 1 and len(rows[0]) == 4, rows
        sysid = cluster.sql(0, "select system_identifier from pg_control_system()")
        assert rows[0][0] == sysid, (rows, sysid)
        wait_until(lambda: walsenders(cluster, 0, app) == 1, 5, "the walsender on the primary")
        assert walsenders(cluster, 1, app) == 0 and walsenders(cluster, 2, app) == 0
        for _ in range(5):  # never balanced to a standby
            assert c.query("IDENTIFY_SYSTEM")[0][0] == sysid
    finally:
        c.close()
    wait_until(lambda: walsenders(cluster, 0, app) == 0, 10, "the walsender to end (not pooled)")


@pytest.mark.parametrize("value", ["database", "true"])
def test_replication_line_passes_through_to_the_primary(splitpool, cluster, value):
    sp = splitpool.prepare(enable_pool_hba=True, num_init_children=1)
    write_hba(sp, ["host replication postgres 127.0.0.1/32 trust", "host all all 127.0.0.1/32 trust"])
    start(sp)
    identify_system_on_primary(sp, cluster, value, f"hardening-repl-{value}")
    # The only child is free again and serves an ordinary session on an ordinary backend.
    assert psql_value(sp.port, "select backend_type from pg_stat_activity where pid = pg_backend_pid()") == \
        "client backend"
    # Lines for ordinary databases do not admit replication for another user.
    c = RawClient(sp.port, user="digoal", params={"replication": value})
    try:
        with pytest.raises(PgError) as err:
            c.startup()
        assert err.value.fields.get("C") == "28000", err.value.fields
    finally:
        c.sock.close()


def test_replication_passes_through_with_pool_hba_off(splitpool, cluster):
    sp = splitpool(num_init_children=1)
    identify_system_on_primary(sp, cluster, "database", "hardening-repl-nohba")


def test_pg_receivewal_streams_through_splitpool(splitpool, cluster, tmp_path):
    sp = splitpool.prepare(enable_pool_hba=True, num_init_children=2)
    write_hba(sp, ["host replication postgres 127.0.0.1/32 trust", "host all all 127.0.0.1/32 trust"])
    start(sp)
    cluster.sql(0, "create table if not exists hardening_wal(x int); insert into hardening_wal values (1)")
    endpos = cluster.sql(0, "select pg_current_wal_flush_lsn()")
    out = tmp_path / "wal"
    out.mkdir()
    p = subprocess.run(["pg_receivewal", "-h", "127.0.0.1", "-p", str(sp.port), "-U", "postgres", "-D", str(out),
                        "--no-loop", "--no-password", f"--endpos={endpos}"],
                       capture_output=True, text=True, timeout=60, env=client_env(), stdin=subprocess.DEVNULL,
                       start_new_session=True)
    assert p.returncode == 0, describe(p) + "\n" + sp.log_tail(20)
    files = sorted(os.listdir(out))
    assert files and all(re.fullmatch(r"[0-9A-F]{24}(\.partial)?", f) for f in files), files


# ----------------------------------------------------------------------------- 7. bounded log lines

def test_huge_user_name_is_logged_cut(splitpool):
    sp = splitpool.prepare(enable_pool_hba=True, num_init_children=1, pool_passwd="pool_passwd",
                           allow_clear_text_frontend_auth=False)
    write_hba(sp, ["host all postgres 127.0.0.1/32 trust", "host all all 127.0.0.1/32 md5"])
    write_pool_passwd(sp, {"digoal": "TEXTpwd123"})
    start(sp)
    before = len(sp.log_text())
    user = "u" * 9000
    for _ in range(2):
        fields = login_error(sp.port, user, "whatever")
        assert fields is not None and fields.get("S") == "FATAL", fields
    sp.wait_for_log(r"authentication failed for user \"u+\.\.\.\(9000 bytes\)\"")
    new = sp.log_text()[before:]
    assert "...(9000 bytes)" in new, new[-2000:]
    longest = max(len(m) for m in re.findall("u{10,}", new))
    assert longest <= 256, f"a log line holds {longest} bytes of the user name"
    assert max(len(line) for line in new.splitlines()) < 1500


def test_control_characters_in_names_cannot_forge_log_lines(plain_pool):
    c = RawClient(plain_pool.port, database="postgres", params={"application_name": "x\nLOG:  forged"})
    try:
        c.startup()
    except PgError:
        pass
    finally:
        c.sock.close()
    plain_pool.wait_for_log(r"application_name=x\\x0aLOG:  forged")
    assert not re.search(r"^LOG:  forged", plain_pool.log_text(), re.M)


# ----------------------------------------------------------------------------- 1. orphaned children

def tcp_listen_inodes(port):
    with open("/proc/net/tcp") as f:
        next(f)
        return {int(c[9]) for c in (line.split() for line in f)
                if int(c[1].split(":")[1], 16) == port and c[3] == "0A"}


def holders(inodes, pids):
    targets = {f"socket:[{i}]" for i in inodes}
    out = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    out.append(pid)
                    break
            except OSError:
                pass
    return out


def test_children_do_not_hold_the_pcp_socket(splitpool):
    sp = splitpool(num_init_children=3, health_check_period=0, sr_check_period=0)
    kids = sp.children()
    held = holders(tcp_listen_inodes(sp.pcp_port), kids)
    assert len(held) == 1, f"the PCP listening socket is held by {held} of {kids}"
    assert len(holders(tcp_listen_inodes(sp.port), kids)) >= 3


def test_children_of_a_killed_parent_finish_the_transaction_and_exit(splitpool, cluster):
    sp = splitpool(num_init_children=3, health_check_period=0, sr_check_period=0)
    cluster.sql(0, "create table if not exists hardening_orphan(x int)")
    cluster.sql(0, "truncate hardening_orphan")
    busy = logged_in(sp.port)
    idle = logged_in(sp.port)
    busy.query("begin")
    busy.query("insert into hardening_orphan values (1)")
    assert idle.query("select 1") == [["1"]]
    kids = sp.children()
    os.kill(sp.pid, signal.SIGKILL)
    sp.proc.wait(10)
    # The ports are free at once, while the busy session still runs.
    wait_until(lambda: not tcp_listen_inodes(sp.port) and not tcp_listen_inodes(sp.pcp_port), 5,
               "the client and PCP ports to be released")
    idle_fields = idle.wait_for_error(5)  # the idle session ends at once
    assert idle_fields is None or idle_fields.get("C") == "57P01", idle_fields
    busy.query("insert into hardening_orphan values (2)")
    busy.query("commit")
    fields = busy.wait_for_error(5)  # and the busy one right after its transaction
    assert fields is None or fields.get("C") == "57P01", fields
    assert cluster.sql(0, "select count(*) from hardening_orphan") == "2"
    wait_until(lambda: not any(pid_alive(k) for k in kids), 10, f"the orphaned children {kids} to exit")
    # A restart with the same configuration (and the dead parent's pid file) works.
    assert sp.pid_file.exists()
    sp.start()
    assert psql_value(sp.port, "select 7") == "7"


def test_failed_start_keeps_the_pid_file_it_did_not_write(splitpool):
    sp = splitpool(num_init_children=1, health_check_period=0, sr_check_period=0)
    before = sp.pid_file.read_text()
    second = subprocess.run([str(SPLITPOOL_BIN), "-n", "-f", str(sp.config_path)], capture_output=True, text=True,
                            timeout=30, cwd=sp.dir, stdin=subprocess.DEVNULL, start_new_session=True)
    assert second.returncode != 0, describe(second)
    assert f"pid {sp.pid}" in second.stderr and "stop" in second.stderr and str(sp.config_path) in second.stderr, \
        describe(second)
    assert sp.pid_file.read_text() == before
    assert psql_value(sp.port, "select 1") == "1"
    sp.stop()
    # A stale pid file (a dead pid) and a start that fails (port taken): the file stays as it was.
    dead = subprocess.Popen(["true"])
    dead.wait()
    sp.pid_file.write_text(f"{dead.pid}\n")
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", sp.port))
    blocker.listen(1)
    try:
        failed = subprocess.run([str(SPLITPOOL_BIN), "-n", "-f", str(sp.config_path)], capture_output=True,
                                text=True, timeout=30, cwd=sp.dir, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        blocker.close()
    assert failed.returncode != 0, describe(failed)
    assert sp.pid_file.read_text() == f"{dead.pid}\n"
