#!/usr/bin/env python3
"""Writes the seed inputs of the libFuzzer targets into test/fuzz/corpus/<target>/seed-*.

Run from anywhere: python3 test/fuzz/make_seeds.py. Only files named seed-* are rewritten; inputs
added by `make fuzz FUZZ_MERGE=1` and crash regressions (crash-*) are left alone. The input layouts
are described at the top of each test/fuzz/<target>_fuzz.cpp.
"""
import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def msg(t, body=b""):
    return t.encode() + struct.pack("!I", len(body) + 4) + body


def startup(params, proto=3 << 16):
    body = struct.pack("!i", proto) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def untyped(code, extra=b""):
    return struct.pack("!Ii", 8 + len(extra), code) + extra


SSL, GSS, CANCEL = 80877103, 80877104, 80877102

# ---- startup
write("startup", "psql", startup([("user", "alice"), ("database", "db"), ("application_name", "psql")]))
write("startup", "ssl-then-startup", untyped(SSL) + startup([("user", "bob")]))
write("startup", "gss-ssl-startup", untyped(GSS) + untyped(SSL) + startup([("user", "u"), ("options", "-c a=b")]))
write("startup", "cancel", untyped(CANCEL, struct.pack("!iI", 4242, 0xDEADBEEF)))
write("startup", "protocol-2", startup([("user", "old")], proto=2 << 16))
write("startup", "protocol-3.1", startup([("user", "new"), ("_pq_.x", "1")], proto=(3 << 16) | 1))
write("startup", "no-user", startup([("database", "db")]))
write("startup", "unterminated", struct.pack("!Ii", 17, 3 << 16) + b"user\0x")
write("startup", "empty-database", startup([("user", "carol"), ("database", ""), ("replication", "database")]))

# ---- frame: mode byte, chunking byte, stream
FRONT, BACK, WITH_STARTUP, FAILING, STMT = 0, 1, 2, 4, 16


def frame(mode, seed, data):
    return bytes([mode, seed]) + data


def q(sql):
    return msg("Q", cstr(sql))


def parse(name, sql, oids=()):
    return msg("P", cstr(name) + cstr(sql) + struct.pack("!h", len(oids)) + b"".join(struct.pack("!i", o) for o in oids))


def bind(portal, stmt, params=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!h", 0) + struct.pack("!h", len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p
    return msg("B", body + struct.pack("!h", 0))


def execute(portal="", rows=0):
    return msg("E", cstr(portal) + struct.pack("!i", rows))


def describe(what, name):
    return msg("D", what.encode() + cstr(name))


SYNC, FLUSH = msg("S"), msg("H")
write("frame", "simple", frame(FRONT, 0, q("SELECT 1") + q("BEGIN") + q("INSERT INTO t VALUES (1)") + q("SELECT * FROM t") + q("COMMIT") + msg("X")))
write("frame", "extended", frame(FRONT, 7, parse("", "SELECT $1::int", [23]) + bind("", "", [b"42"]) + describe("P", "") + execute() + SYNC))
write("frame", "named", frame(FRONT | STMT, 0, parse("s1", "SELECT now()") + SYNC + bind("p1", "s1") + execute("p1", 10) + msg("C", b"P" + cstr("p1")) + SYNC
                                          + bind("", "s1") + execute() + FLUSH + q("SELECT 2") + msg("C", b"S" + cstr("s1")) + SYNC))
write("frame", "tx-failing", frame(FRONT | FAILING, 3, q("BEGIN") + q("SELECT nextval('s')") + q("UPDATE t SET a = 1") + q("ROLLBACK") + q("SELECT 1")))
write("frame", "admin", frame(FRONT, 0, q("PGPOOL SHOW statement_level_load_balance") + q("PGPOOL SET statement_level_load_balance = on")
                                    + q("SHOW POOL_NODES") + q("SET splitpool.route = 'primary'") + q("PGPOOL RESET ALL") + parse("a", "SHOW POOL_VERSION") + bind("", "a") + execute() + SYNC))
write("frame", "startup-first", frame(FRONT | WITH_STARTUP, 5, startup([("user", "u"), ("database", "d")]) + q("SET search_path = x") + q("CREATE TEMP TABLE tt (a int)") + q("SELECT * FROM tt")))
write("frame", "function-copy", frame(FRONT, 1, msg("F", struct.pack("!ih", 1598, 0) + struct.pack("!h", 1) + struct.pack("!i", 2) + b"ab" + struct.pack("!h", 0))
                                            + q("COPY t FROM STDIN") + msg("d", b"1\n2\n") + msg("c") + msg("f", cstr("oops")) + msg("X")))
write("frame", "bad-type", frame(FRONT, 0, q("SELECT 1") + b"\x00\x00\x00\x00\x08" + q("SELECT 2")))
write("frame", "bad-length", frame(FRONT, 0, b"Q\x00\x00\x00\x02"))


def auth(code, extra=b""):
    return msg("R", struct.pack("!i", code) + extra)


def fields(pairs):
    return b"".join(k.encode() + cstr(v) for k, v in pairs) + b"\0"


row_desc = msg("T", struct.pack("!h", 2) + cstr("a") + struct.pack("!ihihih", 0, 0, 23, 4, -1, 0)
               + cstr("b") + struct.pack("!ihihih", 16384, 2, 25, -1, -1, 0))
data_row = msg("D", struct.pack("!h", 2) + struct.pack("!i", 1) + b"1" + struct.pack("!i", -1))
write("frame", "backend-login", frame(BACK, 0, auth(0) + msg("S", cstr("server_version") + cstr("15.4")) + msg("S", cstr("TimeZone") + cstr("UTC"))
                                           + msg("S", cstr("server_version") + cstr("16.0")) + msg("K", struct.pack("!iI", 1234, 99)) + msg("Z", b"I")))
write("frame", "backend-rows", frame(BACK, 2, row_desc + data_row + data_row + msg("C", cstr("SELECT 2")) + msg("Z", b"T")))
write("frame", "backend-errors", frame(BACK, 9, msg("E", fields([("S", "ERROR"), ("C", "25006"), ("M", "cannot execute INSERT in a read-only transaction")]))
                                            + msg("N", fields([("S", "NOTICE"), ("M", "hi")])) + msg("A", struct.pack("!i", 7) + cstr("chan") + cstr("payload")) + msg("Z", b"E")))
write("frame", "backend-auth", frame(BACK, 0, auth(5, b"salt") + auth(10, cstr("SCRAM-SHA-256-PLUS") + cstr("SCRAM-SHA-256") + b"\0")
                                          + auth(11, b"r=abc,s=c2FsdA==,i=4096") + auth(12, b"v=xyz") + auth(3)))
write("frame", "backend-copy", frame(BACK, 0, msg("G", b"\0" + struct.pack("!hhh", 2, 0, 0)) + msg("H", b"\1" + struct.pack("!hh", 1, 1))
                                          + msg("W", b"\0" + struct.pack("!h", 0)) + msg("t", struct.pack("!hii", 2, 23, 25)) + msg("V", struct.pack("!i", 2) + b"ok")))

# ---- scram: flags byte, SASLInitialResponse payload, SASLResponse payload
TLS, MOCK, PROVE = 1, 2, 4
RFC_CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_FINAL = "c=biws,r=" + RFC_NONCE + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
CB = b"\x5a" * 32


def sasl(flags, mechanism, first, final):
    first = first.encode() if isinstance(first, str) else first
    return bytes([flags]) + cstr(mechanism) + struct.pack("!i", len(first)) + first + (final.encode() if isinstance(final, str) else final)


write("scram", "rfc7677", sasl(0, "SCRAM-SHA-256", RFC_CLIENT_FIRST, RFC_FINAL))
write("scram", "prove", sasl(PROVE, "SCRAM-SHA-256", RFC_CLIENT_FIRST, "c=biws,r=" + RFC_NONCE))
write("scram", "prove-extension", sasl(PROVE, "SCRAM-SHA-256", "n,,n=,r=abc,x=ext", "c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,e=1"))
gs2p = "p=tls-server-end-point,,"
write("scram", "plus-prove", sasl(TLS | PROVE, "SCRAM-SHA-256-PLUS", gs2p + "n=,r=xyz",
                                  "c=" + base64.b64encode(gs2p.encode() + CB).decode() + ",r=xyz%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"))
write("scram", "y-flag-tls", sasl(TLS, "SCRAM-SHA-256", "y,,n=,r=abc", "c=eSws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"))
write("scram", "mock", sasl(MOCK | PROVE, "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"))
write("scram", "authzid", sasl(0, "SCRAM-SHA-256", "n,a=admin,n=,r=abc", ""))
write("scram", "mandatory-ext", sasl(0, "SCRAM-SHA-256", "n,,m=ext,n=,r=abc", ""))
write("scram", "bad-mechanism", sasl(0, "PLAIN", "n,,n=,r=abc", ""))
write("scram", "negative-length", bytes([0]) + cstr("SCRAM-SHA-256") + struct.pack("!i", -1))

# ---- hba: the text of pool_hba.conf (include files exist in the target's scratch folder)
write("hba", "typical", """# TYPE  DATABASE  USER  ADDRESS  METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  md5
host    all       all   ::1/128       scram-sha-256
hostssl db1,db2   alice 10.0.0.0 255.0.0.0 cert
hostnossl all     @users samenet      password
host    sameuser  all   samehost      reject
""")
write("hba", "quoted-includes", 'local "all" "quoted user",bob trust\nhost @dbs @users 0.0.0.0/0 md5\nlocal @empty all trust\nlocal all @loop trust\n')
write("hba", "hostname", "host all all db.example.com md5\nhost all all .example.com trust\n")
write("hba", "errors", "hosts all all 1.2.3.4/33 md5\nhost all +group all md5\nlocal samerole all trust\nhost all all 1.2.3.4 md5\n"
                       "local all all pam\nhost all all 1.2.3.4/32 md5 foo=bar\nlocal all all trust extra\nlocal all all @bad\n")
write("hba", "crlf-long", "local all all trust\r\n" + "local all " + "x" * 300 + " trust\n" + "host all all fe80::1%lo/64 trust\n")

# ---- pool_passwd
with open(os.path.join(REPO, "test/unit/data/pool_passwd.debian_pg_enc"), "rb") as f:
    write("pool_passwd", "debian-pg-enc", f.read())
write("pool_passwd", "kinds", "plain:secret\ntext:TEXTsecret\nmd5user:md5" + "0123456789abcdef" * 2 + "\nshortmd5:md5abc\n"
                              "aes:AESEqRWNVZUfMNbiWsn+FAKww==\nbadaes:AESnot-base64\n"
                              "scram:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                              "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:backend:map\n")
write("pool_passwd", "escapes-dups", "we\\:ird:pw1\r\nback\\\\slash:pw2\nwe\\:ird:again\nnopass:\nnocolon\n\n:emptyuser\ntrailing\\")

# ---- pcp_conf
write("pcp_conf", "typical", "# USERID:MD5PASSWD\npcpadmin:5ebe2294ecd0e0f08eab7690d2a6ee69\npostgres:e8a48653851e28c69d0506508fb27fc5\r\n")
write("pcp_conf", "errors", "nocolon\n:nouser\nnopass:\n" + "u" * 129 + ":x\nok:" + "h" * 129 + "\n  \t\n#c\nlast:abc \t")

# ---- pcp_request: mode byte, then PCP packets
AUTHED = 1


def pkt(t, body=b""):
    return t.encode() + struct.pack("!I", len(body) + 4) + body


def md5hex(b):
    return hashlib.md5(b).hexdigest().encode()


salt = bytes([0x11, 0x22, 0x33, 0x44])
answer = md5hex(md5hex(b"5ebe2294ecd0e0f08eab7690d2a6ee69" + b"pcpadmin") + salt)
write("pcp_request", "login", bytes([0]) + pkt("M") + pkt("R", cstr("pcpadmin") + cstr(answer)) + pkt("L") + pkt("X"))
write("pcp_request", "login-wrong", bytes([0]) + pkt("M") + pkt("R", cstr("pcpadmin") + cstr("0" * 32)) + pkt("L"))
write("pcp_request", "no-login", bytes([0]) + pkt("L"))
write("pcp_request", "info", bytes([AUTHED]) + pkt("L") + pkt("I", cstr("-1")) + pkt("I", cstr("1")) + pkt("H", cstr("0")) + pkt("N")
      + pkt("P", cstr("0")) + pkt("P", cstr("4242")) + pkt("B"))
write("pcp_request", "changes", bytes([AUTHED | (3 << 1)]) + pkt("C", cstr("2")) + pkt("D", cstr("1")) + pkt("d", cstr("2"))
      + pkt("J", b"1 \0s") + pkt("j", b"2 \0n") + pkt("I", cstr("-1")))
write("pcp_request", "refusals", bytes([AUTHED | 8]) + pkt("D", cstr("1")) + pkt("C", cstr("200")) + pkt("J", cstr("0")) + pkt("Z") + pkt("T", b"s")
      + pkt("t", b"q") + pkt("O") + pkt("W") + pkt("A", cstr("x")) + pkt("?"))
write("pcp_request", "bad-length", bytes([AUTHED]) + b"L\x00\x00\x00\x02")
write("pcp_request", "too-long", bytes([AUTHED]) + b"I\x00\x00\x30\x00" + b"1\0")

# ---- config: the shipped files and a few variants
for name in ("splitpool.toml", "splitpool-minimal.toml"):
    with open(os.path.join(REPO, "etc", name), "rb") as f:
        text = f.read()
    if b"[[backend]]" not in text.replace(b"# [[backend]]", b""):
        text += b'\n[[backend]]\nhostname = "127.0.0.1"\n'
    write("config", name.replace(".toml", ""), text)
write("config", "units-lists", """num_init_children = 4
reserved_connections = 1
child_life_time = "1.5min"
connect_timeout = "250ms"
client_idle_limit = "1h"
listen_addresses = ["127.0.0.1", "::1"]
reset_query_list = "ABORT; DISCARD ALL"
log_min_messages = "debug1"
disable_load_balance_on_write = "dml_adaptive"
check_temp_table = "trace"
write_function_list = "nextval,setval"
pool_passwd = ""
log_destination = "stderr,syslog"
[[backend]]
hostname = "/var/run/postgresql"
port = 5432
weight = 0.5
flag = "ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER"
application_name = "node0"
data_directory = "/var/lib/postgresql/15/main"
""")
write("config", "errors", """num_init_childern = 4
backend_hostname0 = "x"
port = 0
load_balance_mode = "maybe"
child_life_time = "1500ms"
write_function_list = "a"
read_only_function_list = "b"
[backend]
hostname = 1
""")
write("config", "syntax", "port = = 1\n[[backend]\n")
write("config", "no-backend", "port = 9999\n")

# ---- config dictionary: every key of the sample file plus TOML syntax
keys = []
with open(os.path.join(REPO, "etc", "splitpool.toml")) as f:
    for line in f:
        line = line.lstrip("# ").rstrip("\n")
        k = line.split(" = ", 1)[0]
        if " = " in line and k.isidentifier() and k not in keys:
            keys.append(k)
extra = ["backend", "[[backend]]", "hostname", "port", "weight", "flag", "application_name", "data_directory",
         "ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER", "ALLOW_TO_FAILOVER", "true", "false", "on", "off",
         "\\\"\\\"\\\"", "'''", "5min", "ms", "1d", "inf", "nan", "0x", "0o", "0b", "1979-05-27T07:32:00Z",
         "[", "]", "{", "}", " = ", "\\x0a"]
with open(os.path.join(HERE, "config.dict"), "w") as f:
    f.write("# Generated by test/fuzz/make_seeds.py from etc/splitpool.toml\n")
    for k in keys + extra:
        f.write('"%s"\n' % k)
