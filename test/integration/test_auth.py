"""Issue 4: pool_hba.conf, pool_passwd entry types x backend methods, TLS on both legs, the wire, pg_enc/pg_md5."""

import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

# cluster_tls and pki are fixtures: imported so pytest finds them in this module.
from authkit import (KEY_TEXT, SSL_REQUEST, AuthClient, Capture, aes_entry, cluster_tls,  # noqa: F401
                     login_error, md5_entry, new_instance, pki, scram_verifier, start, stop_instance,
                     write_hba, write_key_file, write_pool_passwd)
from certs import Pki
from helpers import REPO, describe, psql, psql_value, wait_until

USERS = {"md5user": ("md5pass", "md5"), "digoal": ("pwd123", "scram")}
HBA_METHODS = ["trust", "password", "md5", "scram-sha-256"]
ENTRY_TYPES = ["AES", "md5", "TEXT", "SCRAM", "none"]
BACKEND_SSL_SQL = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    return write_key_file(tmp_path_factory.mktemp("key"))


def key_env(key_file):
    return {"PGPOOLKEYFILE": str(key_file)}


def tls_env(pki, mode="require", **extra):
    env = {"PGSSLMODE": mode}
    if mode.startswith("verify"):
        env["PGSSLROOTCERT"] = str(pki.path("ca", "crt"))
    env.update(extra)
    return env


def ssl_overrides(pki, **extra):
    return {"ssl": True, "ssl_cert": str(pki.path("server", "crt")), "ssl_key": str(pki.path("server", "key")),
            **extra}


def failure_text(p, sp):
    return f"{describe(p)}\n--- splitpool log ---\n{sp.log_tail(30)}"


# ----------------------------------------------------------------------------- the matrix

def expected(hba, entry, backend):
    """'ok', 'fail' or 'any' (beyond pgpool, either answer is defensible) for a right password.

    Backend md5 needs a plaintext or the md5 hash; backend SCRAM needs a plaintext, or the client's
    SCRAM proof against the same verifier. The frontend method needs: md5 → plaintext or md5 hash;
    scram → plaintext or verifier; password → anything to compare with, or nothing (forwarded)."""
    plain = entry in ("AES", "TEXT")
    if hba == "trust":
        return "ok" if plain or (entry == "md5" and backend == "md5") else "fail"
    if hba == "password":
        if plain or entry == "none" or (entry == "md5" and backend == "md5"):
            return "ok"
        return "any"  # md5 entry + SCRAM backend, or a SCRAM verifier: pgpool fails, the clear text is there
    if hba == "md5":
        return "ok" if plain or (entry == "md5" and backend == "md5") else "fail"
    # scram-sha-256
    if plain:
        return "ok"
    return "ok" if entry == "SCRAM" and backend == "scram" else "fail"


def pool_passwd_entries(cluster, entry):
    out = {}
    for user, (password, _) in USERS.items():
        if entry == "AES":
            out[user] = aes_entry(password)
        elif entry == "md5":
            out[user] = md5_entry(user, password)
        elif entry == "TEXT":
            out[user] = "TEXT" + password
        elif entry == "SCRAM" and USERS[user][1] == "scram":
            out[user] = scram_verifier(cluster, user)
    return out


MATRIX = [(h, e, u) for h in HBA_METHODS for e in ENTRY_TYPES for u in USERS
          if not (e == "SCRAM" and USERS[u][1] != "scram")]


@pytest.fixture(scope="module")
def matrix_pool(cluster, ports, key_file):
    """matrix_pool(hba_method, entry_type): a running instance with pool_hba lines "postgres trust" and
    "everyone else METHOD" and pool_passwd entries of that type. A fresh instance per combination: a
    reused backend connection would hide what the backend leg can do with the entry."""
    current = {}

    def get(method, entry):
        if current.get("key") != (method, entry):
            if current:
                problem = stop_instance(current.pop("sp"))
                assert not problem, problem
            sp = new_instance(cluster, ports, enable_pool_hba=True, allow_clear_text_frontend_auth=False,
                              pool_passwd="pool_passwd")
            write_hba(sp, ["host all postgres 127.0.0.1/32 trust",
                           f"host all all 127.0.0.1/32 {method}"])
            write_pool_passwd(sp, pool_passwd_entries(cluster, entry))
            current.update(key=(method, entry), sp=sp)
            start(sp, env=key_env(key_file))
        return current["sp"]

    yield get
    if current:
        problem = stop_instance(current["sp"])
        assert not problem, problem


@pytest.mark.parametrize("hba,entry,user", MATRIX, ids=[f"{h}-{e}-{u}" for h, e, u in MATRIX])
def test_auth_matrix(matrix_pool, hba, entry, user):
    sp = matrix_pool(hba, entry)
    password, backend = USERS[user]
    want = expected(hba, entry, backend)
    started = time.monotonic()
    p = psql(sp.port, "select current_user", user=user, password=password, check=False, timeout=30)
    elapsed = time.monotonic() - started
    if want == "ok":
        assert p.returncode == 0 and p.stdout.strip() == user, "right password refused\n" + failure_text(p, sp)
    elif want == "fail":
        assert p.returncode != 0, "this combination cannot authenticate, yet it did\n" + failure_text(p, sp)
        assert "FATAL" in p.stderr, failure_text(p, sp)
        assert elapsed < 10, f"refusal took {elapsed:.1f}s (a timeout rather than a clear FATAL?)"
        print(f"{hba}/{entry}/{user} refused as expected: {p.stderr.strip()}")
    else:
        print(f"{hba}/{entry}/{user} (either outcome accepted): "
              f"{'logged in' if p.returncode == 0 else 'refused: ' + p.stderr.strip()}")
    if hba != "trust" and p.returncode == 0:
        fields = login_error(sp.port, user, "wrong-" + password)
        assert fields is not None, "wrong password accepted\n" + sp.log_tail(30)
        assert fields.get("S") == "FATAL" and fields.get("C") == "28P01", fields


@pytest.mark.parametrize("hba", HBA_METHODS)
def test_unknown_user_refused(matrix_pool, hba):
    sp = matrix_pool(hba, "TEXT")
    p = psql(sp.port, "select 1", user="nosuchuser", password="whatever", check=False, timeout=30)
    assert p.returncode != 0 and "FATAL" in p.stderr, failure_text(p, sp)
    fields = login_error(sp.port, "nosuchuser", "whatever")
    assert fields is not None and fields.get("S") == "FATAL", fields
    if hba != "trust":
        assert fields.get("C") in ("28000", "28P01"), fields


REUSE_CASES = {
    "pool_hba-scram": ({"enable_pool_hba": True, "allow_clear_text_frontend_auth": False,
                        "pool_passwd": "pool_passwd"},
                       ["host all postgres 127.0.0.1/32 trust", "host all all 127.0.0.1/32 scram-sha-256"]),
    "pass-through": ({"enable_pool_hba": False, "allow_clear_text_frontend_auth": True}, None),
}


@pytest.mark.parametrize("case", list(REUSE_CASES))
def test_reused_backend_connection_still_authenticates(splitpool, case):
    overrides, hba = REUSE_CASES[case]
    # One child and a cached database (not "postgres"): the second login gets the first one's connection.
    sp = splitpool.prepare(num_init_children=1, **overrides)
    if hba:
        write_hba(sp, hba)
        write_pool_passwd(sp, {"digoal": "TEXTpwd123"})
    start(sp)
    assert psql_value(sp.port, "select current_user", user="digoal", password="pwd123", db="sp_test") == "digoal"
    for _ in range(2):
        fields = login_error(sp.port, "digoal", "wrong-pwd123", database="sp_test")
        assert fields is not None, "a wrong password got the cached connection\n" + sp.log_tail(30)
        assert (fields.get("S"), fields.get("C")) == ("FATAL", "28P01"), fields
    assert login_error(sp.port, "digoal", "pwd123", database="sp_test") is None


# ----------------------------------------------------------------------------- pool_hba lines and client TLS

TLS_HBA = [
    "host      all       postgres   127.0.0.1/32  trust",
    "host      sp_other  digoal     127.0.0.1/32  reject",
    "hostssl   sp_test   digoal     127.0.0.1/32  cert",
    "hostssl   all       plainuser  127.0.0.1/32  scram-sha-256",
    "hostnossl all       md5user    127.0.0.1/32  md5",
    "host      all       digoal     127.0.0.1/32  scram-sha-256",
]


@pytest.fixture(scope="module")
def tls_pool(cluster, ports, pki):
    sp = new_instance(cluster, ports, enable_pool_hba=True, allow_clear_text_frontend_auth=False,
                      pool_passwd="pool_passwd",
                      **ssl_overrides(pki, ssl_ca_cert=str(pki.path("ca", "crt"))))
    write_hba(sp, TLS_HBA)
    write_pool_passwd(sp, {"digoal": "TEXTpwd123", "plainuser": "TEXTplainpass",
                           "md5user": md5_entry("md5user", "md5pass")})
    try:
        start(sp)
        yield sp
    finally:
        problem = stop_instance(sp)
    assert not problem, problem


def test_ssl_request_answered_s(tls_pool):
    with socket.create_connection(("127.0.0.1", tls_pool.port), timeout=5) as s:
        s.sendall(SSL_REQUEST)
        assert s.recv(1) == b"S"


def test_plaintext_after_ssl_request_refused(tls_pool):
    """Bytes sent together with the SSLRequest were not protected by TLS: they must not be used."""
    startup = b"user\0postgres\0database\0postgres\0\0"
    startup = struct.pack("!II", len(startup) + 8, 196608) + startup
    with socket.create_connection(("127.0.0.1", tls_pool.port), timeout=5) as s:
        s.sendall(SSL_REQUEST + startup)
        data = b""
        try:
            while len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert b"R\0\0\0\x08\0\0\0\0" not in data, f"the plaintext startup was served: {data[:200]!r}"
    assert data[:1] in (b"", b"S", b"E"), data[:200]


def test_tls_protocol_versions(tls_pool, splitpool, pki):
    # Default minimum TLSv1.2: a TLSv1.2-only client is fine.
    assert psql_value(tls_pool.port, "select 1", env_extra=tls_env(pki, PGSSLMAXPROTOCOLVERSION="TLSv1.2")) == "1"
    sp = splitpool(**ssl_overrides(pki, ssl_min_protocol_version="TLSv1.3"))
    p = psql(sp.port, "select 1", check=False, env_extra=tls_env(pki, PGSSLMAXPROTOCOLVERSION="TLSv1.2"))
    assert p.returncode != 0, "ssl_min_protocol_version = TLSv1.3 accepted a TLSv1.2 client"
    assert psql_value(sp.port, "select 1", env_extra=tls_env(pki)) == "1"


def test_authentication_timeout(splitpool):
    sp = splitpool(authentication_timeout=1, allow_clear_text_frontend_auth=True)
    client = AuthClient(sp.port, user="digoal")
    try:
        kind, payload = client.read_message(5)
        assert kind == b"R" and payload[:4] != b"\0\0\0\0", (kind, payload)
        started = time.monotonic()
        client.wait_for_error(6)  # an error or a plain close, but not an open connection
        assert time.monotonic() - started < 4
    finally:
        client.sock.close()


def test_reject_line(tls_pool):
    fields = login_error(tls_pool.port, "digoal", "pwd123", database="sp_other")
    print("reject line:", fields)
    assert fields is not None, "reject line let the client in"
    assert (fields.get("S"), fields.get("C")) == ("FATAL", "28000"), fields
    assert "client authentication failed" in fields.get("M", ""), fields
    assert "pool_hba.conf" in fields.get("D", ""), fields
    # The same user on another database falls to its scram line.
    assert psql_value(tls_pool.port, "select current_user", user="digoal", password="pwd123") == "digoal"


def test_no_matching_line(tls_pool):
    fields = login_error(tls_pool.port, "nobody", "x")
    print("no matching line:", fields)
    assert fields is not None and (fields.get("S"), fields.get("C")) == ("FATAL", "28000"), fields
    assert "no pool_hba.conf entry" in fields.get("D", ""), fields


def test_hostssl_line(tls_pool, pki):
    port = tls_pool.port
    assert psql_value(port, "select current_user", user="plainuser", password="plainpass",
                      env_extra=tls_env(pki)) == "plainuser"
    p = psql(port, "select 1", user="plainuser", password="plainpass", check=False,
             env_extra=tls_env(pki, "disable"))
    assert p.returncode != 0 and "no pool_hba.conf entry" in p.stderr, failure_text(p, tls_pool)
    fields = login_error(port, "plainuser", "plainpass")
    assert fields is not None and fields.get("C") == "28000", fields


def test_hostnossl_line(tls_pool, pki):
    port = tls_pool.port
    assert psql_value(port, "select current_user", user="md5user", password="md5pass",
                      env_extra=tls_env(pki, "disable")) == "md5user"
    p = psql(port, "select 1", user="md5user", password="md5pass", check=False, env_extra=tls_env(pki))
    assert p.returncode != 0 and "no pool_hba.conf entry" in p.stderr, failure_text(p, tls_pool)


def test_cert_auth(tls_pool, pki):
    def with_cert(name):
        return tls_env(pki, PGSSLCERT=str(pki.path(name, "crt")), PGSSLKEY=str(pki.path(name, "key")))

    port = tls_pool.port
    # No password is given: the certificate alone must let digoal in.
    assert psql_value(port, "select current_user", user="digoal", db="sp_test",
                      env_extra=with_cert("client-digoal")) == "digoal"
    p = psql(port, "select 1", user="digoal", db="sp_test", check=False, env_extra=with_cert("client-mallory"))
    assert p.returncode != 0 and "FATAL" in p.stderr, "a certificate for mallory let digoal in\n" + \
        failure_text(p, tls_pool)
    p = psql(port, "select 1", user="digoal", password="pwd123", db="sp_test", check=False,
             env_extra=tls_env(pki, PGSSLCERT="/nonexistent.crt", PGSSLKEY="/nonexistent.key"))
    assert p.returncode != 0 and "FATAL" in p.stderr, "cert line passed without a certificate\n" + \
        failure_text(p, tls_pool)


def test_channel_binding_require(tls_pool, pki):
    env = tls_env(pki, PGCHANNELBINDING="require")
    assert psql_value(tls_pool.port, "select current_user", user="plainuser", password="plainpass",
                      env_extra=env) == "plainuser"
    assert psql_value(tls_pool.port, "select current_user", user="digoal", password="pwd123",
                      env_extra=env) == "digoal"
    p = psql(tls_pool.port, "select 1", user="digoal", password="wrong", check=False, env_extra=env)
    assert p.returncode != 0 and "FATAL" in p.stderr, failure_text(p, tls_pool)


def test_sslmode_verify_full(tls_pool, pki):
    env = tls_env(pki, "verify-full")
    assert psql_value(tls_pool.port, "select 1", env_extra=env) == "1"
    p = psql(tls_pool.port, "select 1", check=False,
             env_extra=tls_env(pki, "verify-full", PGSSLROOTCERT=str(pki.path("other_ca", "crt"))))
    assert p.returncode != 0 and "certificate verify failed" in p.stderr, p.stderr


# ----------------------------------------------------------------------------- backend TLS

def test_backend_tls_prefer(splitpool, cluster_tls, pki):
    sp = splitpool(**ssl_overrides(pki))
    for _ in range(6):  # several sessions, so more than one node answers
        assert psql_value(sp.port, BACKEND_SSL_SQL) == "t"


def test_backend_sslmode_verify_full(splitpool, cluster_tls, pki):
    sp = splitpool(**ssl_overrides(pki, ssl_ca_cert=str(pki.path("ca", "crt")), backend_sslmode="verify-full"))
    assert psql_value(sp.port, BACKEND_SSL_SQL) == "t"


def test_backend_sslmode_disable(splitpool, cluster_tls, pki):
    sp = splitpool(**ssl_overrides(pki, backend_sslmode="disable"))
    assert psql_value(sp.port, BACKEND_SSL_SQL) == "f"


def test_backend_sslmode_verify_ca_wrong_ca(splitpool, cluster_tls, pki):
    sp = splitpool.prepare(**ssl_overrides(pki, ssl_ca_cert=str(pki.path("other_ca", "crt")),
                                           backend_sslmode="verify-ca"))
    start(sp, probe="port")
    p = psql(sp.port, "select 1", check=False, timeout=30)
    assert p.returncode != 0 and "FATAL" in p.stderr, "backend certificate from an unknown CA accepted\n" + \
        failure_text(p, sp)


# ----------------------------------------------------------------------------- what crosses the wire

CAPTURE_CASES = {
    # name: (overrides, hba lines or None, pool_passwd entries, user, password, TLS?, password visible?)
    "clear-text": ({"allow_clear_text_frontend_auth": True}, None, None, "digoal", "pwd123", False, True),
    "md5": ({"enable_pool_hba": True, "pool_passwd": "pool_passwd"},
            ["host all postgres 127.0.0.1/32 trust", "host all md5user 127.0.0.1/32 md5"],
            {"md5user": md5_entry("md5user", "md5pass")}, "md5user", "md5pass", False, False),
    "scram": ({"enable_pool_hba": True, "pool_passwd": "pool_passwd"},
              ["host all postgres 127.0.0.1/32 trust", "host all digoal 127.0.0.1/32 scram-sha-256"],
              {"digoal": "TEXTpwd123"}, "digoal", "pwd123", False, False),
    "tls-clear-text": ({"allow_clear_text_frontend_auth": True}, None, None, "digoal", "pwd123", True, False),
}


@pytest.mark.parametrize("case", list(CAPTURE_CASES))
def test_password_on_the_wire(splitpool, pki, case):
    overrides, hba, entries, user, password, tls, visible = CAPTURE_CASES[case]
    if tls:
        overrides = {**overrides, **ssl_overrides(pki)}
    sp = splitpool.prepare(**overrides)
    if hba:
        write_hba(sp, hba)
        write_pool_passwd(sp, entries)
    start(sp)
    with Capture(sp.port, sp.dir) as cap:
        p = psql(sp.port, "select current_user", user=user, password=password,
                 env_extra=tls_env(pki, "require" if tls else "disable"))
        assert p.stdout.strip() == user
    assert cap.packets() >= 6, f"capture holds {cap.packets()} packets: is tcpdump seeing lo?"
    if tls:
        assert SSL_REQUEST in cap.data, "no SSLRequest in the capture"
        assert b"user\0" + user.encode() not in cap.data, "startup packet in clear text despite TLS"
    else:
        assert b"user\0" + user.encode() in cap.data, "capture does not show the startup packet"
    if visible:
        assert password.encode() in cap.data, "clear-text pass-through, yet the password is not in the capture"
    else:
        assert password.encode() not in cap.data, f"{case}: the password crossed the wire in clear text"


# ----------------------------------------------------------------------------- pg_enc and pg_md5

KNOWN_VECTOR = "AESEqRWNVZUfMNbiWsn+FAKww=="


def run_tool(args, env=None):
    env_all = {k: v for k, v in os.environ.items() if k != "PGPOOLKEYFILE"}
    env_all.update(env or {})
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, env=env_all)


def test_pg_enc_known_vector(tmp_path):
    key = write_key_file(tmp_path)
    pg_enc = REPO / "bin" / "pg_enc"
    assert aes_entry("scram_password") == KNOWN_VECTOR  # the test's own reference (openssl enc)
    for args, env in [(["-k", key], None), (["-K", KEY_TEXT], None), ([], {"PGPOOLKEYFILE": str(key)})]:
        p = run_tool([pg_enc, *args, "scram_password"], env)
        assert p.returncode == 0 and f"pool_passwd string: {KNOWN_VECTOR}" in p.stdout, describe(p)
    p = run_tool([pg_enc, "-k", tmp_path / "missing-key", "scram_password"])
    assert p.returncode != 0, describe(p)


def test_pg_enc_and_pg_md5_write_pool_passwd(splitpool, tmp_path):
    key = write_key_file(tmp_path)
    sp = splitpool.prepare(enable_pool_hba=True, allow_clear_text_frontend_auth=False, pool_passwd="pool_passwd")
    bin_dir = REPO / "bin"
    p = run_tool([bin_dir / "pg_md5", "pwd123"])
    assert p.returncode == 0 and p.stdout.strip() == "45cb41b32dcfb917ccd8614f1536d6da", describe(p)
    for args in (["pg_enc", "-m", "-f", sp.config_path, "-k", key, "-u", "digoal", "oldpassword"],
                 ["pg_enc", "-m", "-f", sp.config_path, "-k", key, "-u", "digoal", "pwd123"],
                 ["pg_md5", "-m", "-f", sp.config_path, "-u", "md5user", "md5pass"]):
        p = run_tool([bin_dir / args[0], *args[1:]])
        assert p.returncode == 0, describe(p)
    lines = (sp.dir / "pool_passwd").read_text().splitlines()
    assert sorted(lines) == sorted([f"digoal:{aes_entry('pwd123')}", f"md5user:{md5_entry('md5user', 'md5pass')}"]), \
        lines
    write_hba(sp, ["host all postgres 127.0.0.1/32 trust", "host all digoal 127.0.0.1/32 scram-sha-256",
                   "host all md5user 127.0.0.1/32 md5"])
    start(sp, env=key_env(key))
    assert psql_value(sp.port, "select current_user", user="digoal", password="pwd123") == "digoal"
    assert psql_value(sp.port, "select current_user", user="md5user", password="md5pass") == "md5user"


def test_debian_pg_enc_pool_passwd_is_read(splitpool, tmp_path):
    debian_pg_enc = shutil.which("pg_enc", path="/usr/sbin:/usr/bin")
    if not debian_pg_enc:
        pytest.skip("Debian's pgpool2 pg_enc is not installed")
    key = write_key_file(tmp_path)
    passwd = tmp_path / "pool_passwd"
    conf = tmp_path / "pgpool.conf"
    conf.write_text(f"pool_passwd = '{passwd}'\n")
    p = run_tool([debian_pg_enc, "-m", "-f", conf, "-k", key, "-u", "digoal", "pwd123"])
    assert p.returncode == 0 and passwd.read_text().startswith("digoal:AES"), describe(p)
    sp = splitpool.prepare(enable_pool_hba=True, allow_clear_text_frontend_auth=False, pool_passwd=str(passwd))
    write_hba(sp, ["host all postgres 127.0.0.1/32 trust", "host all digoal 127.0.0.1/32 scram-sha-256"])
    start(sp, env=key_env(key))
    assert psql_value(sp.port, "select current_user", user="digoal", password="pwd123") == "digoal"
    fields = login_error(sp.port, "digoal", "not-pwd123")
    assert fields is not None and fields.get("C") == "28P01", fields


def test_tls_settings_reload_without_restart(splitpool, pki, tmp_path):
    """A reload applies a new certificate to new sessions; a broken one keeps the old context."""
    other = Pki(tmp_path)
    other.make_ca("ca2", cn="second CA")
    other.make_server("server2", ca="ca2")
    sp = splitpool(**ssl_overrides(pki))
    pid = sp.pid
    assert psql_value(sp.port, "select 1", env_extra=tls_env(pki, "verify-full")) == "1"

    sp.reload({"ssl_cert": str(other.path("server2", "crt")), "ssl_key": str(other.path("server2", "key"))})
    ca2 = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(other.path("ca2", "crt"))}
    wait_until(lambda: psql(sp.port, "select 1", check=False, env_extra=ca2).returncode == 0, 10,
               "the new certificate to be served")
    assert psql(sp.port, "select 1", check=False, env_extra=tls_env(pki, "verify-full")).returncode != 0

    sp.reload({"ssl_cert": str(tmp_path / "missing.crt")})
    sp.wait_for_log(r"TLS for clients not \(re\)configured", 10)
    assert psql_value(sp.port, "select 1", env_extra=ca2) == "1"
    assert sp.pid == pid, "the reload restarted splitpool"
