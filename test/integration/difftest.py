#!/usr/bin/python3
"""Seeded differential test: random sessions run through splitpool and directly against the primary.

Replay on the standbys is paused (pg_wal_replay_pause()) for the whole run, so a standby that serves a
read the routing rules promise to the primary answers with visibly stale data. Each generated session
(BEGIN/COMMIT/ROLLBACK, savepoints, reads, writes, SET/RESET/set_config/SHOW, SQL PREPARE/EXECUTE/
DEALLOCATE, temporary tables, statements that fail) runs twice with the same driver: through splitpool
against the proxied database (sp_test) and directly on the primary against the direct database
(sp_other), which hold identical tables. Compared: every statement's result (command tag and rows, or
the SQLSTATE of the error) and, after the session, the session's rows read directly from the primary in
both databases.

Which reads must be fresh (pgpool's rules, for the grammar here):
  * disable_load_balance_on_write = always: after the session's first write every read goes to the
    primary; before it the standbys hold the same data (each session works on its own key range, seeded
    before the pause), so every result is compared.
  * transaction (also trans_transaction, dml_adaptive): a read of the session's rows is compared when the
    session has not written yet, or when it follows a write in the same transaction (or in the same
    pipeline batch outside one). Other reads may legitimately be stale: only ok/SQLSTATE is compared.
  * off: only reads before the session's first write are compared in full.
Settings (SET, SET LOCAL, RESET, set_config, application_name), temporary tables, SELECT ... FOR UPDATE
and everything else are always compared: splitpool must give the same answer wherever it sends them.

Protocols: simple (psycopg2: simple Query, client-side parameters), extended (psycopg 3; parametrised
statements mostly with prepare=True, i.e. named server-side statements, the others unnamed), pipeline
(psycopg 3 pipeline, 1-4 statements per Sync, unnamed statements: psycopg 3.1's statement cache goes
wrong after an error inside a pipeline, which made even direct-vs-direct runs differ). The direct and
the proxied run of a session go at the same time (different databases, same keys). About 30% of the
sessions use fresh connections; the others continue the previous connection and end with ROLLBACK and
DISCARD ALL. --self-check runs both sides directly on the primary: it must never find a difference.

A differing session is shrunk and printed with its seed: rerun on fresh connections and fresh rows (a
session of a continued connection with as few of the connection's earlier sessions in front as it takes),
then earlier sessions, chunks of statements and single statements are removed while the same statement
still differs in the same way, within a time budget; the result says how often it reproduced.

Long run against a running splitpool (nodes and mode are read from SHOW POOL_NODES / PGPOOL SHOW; the
two databases are created on the primary when missing), e.g. against `make demo`:
  /usr/bin/python3 test/integration/difftest.py --port 9999 --sessions 5000 --seed 7
Each protocol's 5000 sessions take 2-5 minutes on the 2-core development machine. Exit status 1 when a
session differs. A long run under pytest instead (own cluster and splitpools, 2500 sessions per protocol
and configuration): SPLITPOOL_DIFF_SESSIONS=5000 scripts/run-integration.sh -k differential
Options: --protocol simple,extended,pipeline  --proxied-db sp_test --direct-db sp_other
         --only-session N (rerun one session of a seed)  --shrink-seconds 60  --max-seconds 3600
The script leaves `ALTER DATABASE ... SET diff.x = 'init'` on both databases (a pooled backend started
before it would not know diff.x): start splitpool after the first run's setup, or restart it once.
"""

import argparse
import concurrent.futures
import os
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace

PROTOCOLS = ("simple", "extended", "pipeline")
RANGE = 100          # keys per session: lo .. lo+99; seed rows lo+0 .. lo+4 (lo+0 is never deleted)
SEED_ROWS = 5
BLOCK = 200          # key ranges seeded per replay resume/pause
STATEMENT_TIMEOUT = 5.0         # seconds; a statement here takes milliseconds
SHRINK_STATEMENT_TIMEOUT = 2.0  # while shrinking, so a hang costs little of the budget
USER = "postgres"
APP = "difftest"


# ----------------------------------------------------------------------------- statements

class Off(int):
    """A key given relative to the session's range: resolved to lo + offset."""


@dataclass(frozen=True)
class Stmt:
    sql: str                 # may contain {kN}: the literal key lo+N
    params: tuple = ()       # Off(n) values become lo+n
    tag: str = "other"       # read: reads the session's rows | write: changes them | other
    prepare: bool = False    # extended protocol: named server-side statement (prepare=True)
    batch: int = 0           # pipeline: statements of one batch share a Sync

    def resolve(self, lo):
        sql = self.sql.format_map(_Keys(lo))
        params = tuple(lo + p if isinstance(p, Off) else p for p in self.params)
        return sql, (params or None)

    def show(self, lo):
        sql, params = self.resolve(lo)
        if params:
            sql = sql.replace("%s", "{}").format(*(repr(p) if isinstance(p, str) else str(p) for p in params))
        return sql


class _Keys(dict):
    def __init__(self, lo):
        super().__init__()
        self.lo = lo

    def __missing__(self, key):
        assert key.startswith("k"), key
        return str(self.lo + int(key[1:]))


VALUES = ("a", "b", "c")


class Generator:
    """One session from a seeded random.Random; tracks just enough state to keep sessions plausible."""

    def __init__(self, rng, protocol):
        self.rng, self.protocol = rng, protocol
        self.out = []
        self.in_tx = False
        self.savepoints = []
        self.prepared = set()
        self.temp = False
        self.next_key = 10
        self.next_tmp = 1

    # --- helpers
    def add(self, sql, params=(), tag="other", prepare=None):
        if prepare is None:
            prepare = self.rng.random() < (0.8 if params else 0.35)
        self.out.append(Stmt(sql, tuple(params), tag, prepare))

    def key(self):
        """An existing key of the session's range (seed rows or an earlier insert)."""
        hi = self.next_key if self.next_key > 10 and self.rng.random() < 0.4 else None
        return Off(self.rng.randrange(10, hi)) if hi else Off(self.rng.randrange(0, SEED_ROWS))

    def value(self):
        return self.rng.choice(VALUES) + str(self.rng.randrange(10))

    # --- grammar
    def begin(self):
        sql = self.rng.choices(["begin", "start transaction", "begin isolation level repeatable read",
                                "begin read only", "begin isolation level serializable"],
                               [10, 3, 2, 1, 1])[0]
        self.add(sql)
        self.in_tx = True
        self.savepoints = []

    def end(self):
        sql = self.rng.choices(["commit", "rollback", "end", "abort", "commit and chain"], [10, 8, 1, 1, 1])[0]
        self.add(sql)
        if sql != "commit and chain":
            self.in_tx = False

    def savepoint(self):
        r = self.rng.random()
        if r < 0.45 or not self.savepoints:
            name = self.rng.choice(["s1", "s2"])
            self.add(f"savepoint {name}")
            self.savepoints.append(name)
        elif r < 0.8:
            self.add(self.rng.choice(["rollback to savepoint ", "rollback to "]) + self.rng.choice(self.savepoints))
        else:
            name = self.rng.choice(self.savepoints + ["s9"])
            self.add(self.rng.choice(["release savepoint ", "release "]) + name)
            if name in self.savepoints:
                del self.savepoints[self.savepoints.index(name):]

    def read(self):
        k = self.key()
        self.rng.choice([
            lambda: self.add("select k, v, n from dt_main where k between %s and %s order by k",
                             (Off(0), Off(RANGE - 1)), "read"),
            lambda: self.add("select count(*), sum(n) from dt_main where k between %s and %s",
                             (Off(0), Off(RANGE - 1)), "read"),
            lambda: self.add("select v, n from dt_main where k = %s", (k,), "read"),
            lambda: self.add("select string_agg(v || ':' || n, ',' order by k) from dt_main"
                             " where k between {k0} and {k99}", (), "read"),
            lambda: self.add("select k, v from dt_main where k between {k0} and {k99} and n >= %s order by k",
                             (self.rng.randrange(4),), "read"),
            # must run on the primary (a standby refuses it): always compared
            lambda: self.add("select k, v from dt_main where k between {k0} and {k99} order by k for update"),
        ])()

    def static_read(self):
        self.rng.choice([
            lambda: self.add("select count(*), sum(k) from dt_static"),
            lambda: self.add("select v from dt_static where k = %s", (self.rng.randrange(1, 11),)),
        ])()

    def write(self):
        k = self.key()
        r = self.rng.randrange(8)
        if r <= 1:
            self.add("insert into dt_main(k, v, n) values (%s, %s, %s)",
                     (Off(self.next_key), self.value(), self.rng.randrange(5)), "write")
            self.next_key += 1
        elif r == 2:
            self.add("update dt_main set n = n + 1 where k between %s and %s", (Off(0), Off(RANGE - 1)), "write")
        elif r == 3:
            self.add("update dt_main set v = %s where k = %s returning k, v, n", (self.value(), k), "write")
        elif r == 4:
            self.add("delete from dt_main where k = %s", (Off(self.rng.randrange(1, SEED_ROWS)) if k == 0 else k,),
                     "write")
        elif r == 5:
            self.add("insert into dt_main(k, v, n) select k + 50, v, n from dt_main"
                     " where k between {k0} and {k4} on conflict do nothing", (), "write")
        elif r == 6:
            self.add("with w as (update dt_main set n = n * 2 where k between {k0} and {k2} returning n)"
                     " select sum(n) from w", (), "write")
        else:
            self.add("merge into dt_main t using (values (%s, %s)) s(k, v) on t.k = s.k"
                     " when matched then update set v = s.v when not matched then insert values (s.k, s.v, 0)",
                     (self.rng.choice([k, Off(self.next_key)]), self.value()), "write")
            self.next_key += 1

    def failing(self):
        self.rng.choice([
            lambda: self.add("select 1 / (count(*) - count(*)) from dt_static"),           # 22012, balanced
            lambda: self.add("select * from dt_nosuch"),                                   # 42P01
            lambda: self.add("selec 1"),                                                   # 42601
            lambda: self.add("insert into dt_main(k, v, n) values (%s, 'dup', 0)", (Off(0),), "write"),  # 23505
            lambda: self.add("update dt_main set n = n / 0 where k = %s", (Off(0),), "write"),           # 22012
            lambda: self.add("insert into dt_main(k, n) values (%s, 1)", (Off(self.next_key),), "write"),  # 23502
        ])()

    def setting(self):
        v = self.value()
        choices = [
            (4, lambda: self.add(f"set diff.x = '{v}'")),
            (1, lambda: self.add(f"set session diff.x to '{v}'")),
            (2, lambda: self.add("reset diff.x")),
            (2, lambda: self.add("select set_config('diff.x', %s, false)", (v,))),
            (2, lambda: self.add(f"set application_name = 'app_{v}'")),
            (1, lambda: self.add("reset application_name")),
            (1, lambda: self.add(f"set statement_timeout = '{self.rng.randrange(5, 9)}s'")),
            (1, lambda: self.add("reset all")),
        ]
        if self.in_tx:
            choices += [(3, lambda: self.add(f"set local diff.x = '{v}'")),
                        (2, lambda: self.add("select set_config('diff.x', %s, true)", (v,)))]
        self.rng.choices([c[1] for c in choices], [c[0] for c in choices])[0]()

    def setting_read(self):
        self.rng.choice([
            lambda: self.add("select current_setting('diff.x')"),
            lambda: self.add("show diff.x"),
            lambda: self.add("select current_setting('diff.x'), current_setting('application_name'),"
                             " current_setting('statement_timeout')"),
            lambda: self.add("show application_name"),
            lambda: self.add("select v, current_setting('diff.x') from dt_static where k = %s",
                             (self.rng.randrange(1, 11),)),
        ])()

    def prepared_sql(self):
        r = self.rng.random()
        names = sorted(self.prepared)
        if r < 0.35 or not names:
            name = self.rng.choice(["dq1", "dq2", "dw1", "dw2"])
            body = {"dq1": "select v, n from dt_main where k = $1",
                    "dq2": "select count(*) from dt_static where k < $1",
                    "dw1": "update dt_main set n = n + 10 where k = $1",
                    "dw2": "insert into dt_main(k, v, n) values ($1, $2, 7)"}[name]
            self.add(f"prepare {name} as {body}")
            self.prepared.add(name)
        elif r < 0.85:
            name = self.rng.choice(names) if self.rng.random() < 0.9 else "dq9"
            k = self.key()
            if name == "dq1":
                self.add(f"execute dq1({{k{int(k)}}})", (), "read")
            elif name == "dq2":
                self.add(f"execute dq2({self.rng.randrange(1, 12)})")
            elif name == "dw1":
                self.add(f"execute dw1({{k{int(k)}}})", (), "write")
            elif name == "dw2":
                self.add(f"execute dw2({{k{self.next_key}}}, 'p')", (), "write")
                self.next_key += 1
            else:
                self.add(f"execute {name}")
        elif r < 0.95:
            name = self.rng.choice(names)
            self.add(self.rng.choice(["deallocate ", "deallocate prepare "]) + name)
            self.prepared.discard(name)
        else:
            self.add("deallocate all")
            self.prepared.clear()

    def temp_table(self):
        r = self.rng.random()
        if not self.temp or r < 0.15:
            if self.rng.random() < 0.8:
                self.add("create temp table dtmp(k int primary key, v text)")
            else:
                self.add("create temp table dtmp as select k, v from dt_main where k between {k0} and {k99}")
            self.temp = True
        elif r < 0.45:
            k = self.next_tmp if self.rng.random() < 0.85 else max(1, self.next_tmp - 1)
            self.add("insert into dtmp values (%s, %s)", (k, self.value()))
            self.next_tmp += 1
        elif r < 0.85:
            self.add(self.rng.choice(["select k, v from dtmp order by k", "select count(*) from dtmp"]))
        elif r < 0.93:
            self.add("drop table dtmp")
            self.temp = False
        else:
            # shadows a regular table: reads of dt_static must now go to the primary. A statement
            # prepared before it sees the shadow only if PostgreSQL re-plans it, which it does when
            # the backend's first temporary table changes its search path: that depends on the
            # backend's history (a pooled one may have had temporary tables), so dq2 goes first.
            if "dq2" in self.prepared:
                self.add("deallocate dq2")
                self.prepared.discard("dq2")
            self.add("create temp table dt_static(k int, v text)")

    def session(self):
        rng = self.rng
        length = rng.randint(5, 15)
        while len(self.out) < length:
            if self.in_tx:
                kinds = [(self.end, 12), (self.savepoint, 9), (self.read, 16), (self.write, 14),
                         (self.setting, 9), (self.setting_read, 9), (self.prepared_sql, 8), (self.temp_table, 6),
                         (self.failing, 5), (self.static_read, 3), (lambda: self.add("begin"), 1)]
            else:
                kinds = [(self.begin, 16), (self.read, 15), (self.write, 13), (self.setting, 9),
                         (self.setting_read, 9), (self.prepared_sql, 8), (self.temp_table, 6), (self.failing, 5),
                         (self.static_read, 3), (lambda: self.add(rng.choice(["commit", "savepoint s1"])), 1),
                         (lambda: self.add("discard all"), 1)]
            rng.choices([k[0] for k in kinds], [k[1] for k in kinds])[0]()
        if self.in_tx and rng.random() < 0.7:
            self.end()
        out = self.out
        if self.protocol == "pipeline":
            batched, batch, left = [], 0, 0
            for s in out:
                if left == 0:
                    batch += 1
                    left = rng.choices([1, 2, 3, 4], [3, 3, 2, 1])[0]
                batched.append(replace(s, batch=batch))
                left -= 1
            out = batched
        return out


@dataclass
class Session:
    seed: int
    protocol: str
    mode: str
    index: int
    stmts: list
    fresh: bool   # own connection; else continues the previous one and ends with ROLLBACK; DISCARD ALL


def cleanup_statements(batch):
    return [Stmt("rollback", batch=batch), Stmt("discard all", batch=batch + 1)]


def make_session(seed, protocol, mode, index):
    rng = random.Random(f"{seed}/{protocol}/{mode}/{index}")
    fresh = index == 0 or rng.random() < 0.3
    stmts = Generator(rng, protocol).session()
    if not fresh:
        stmts = stmts + cleanup_statements(max(s.batch for s in stmts) + 1)
    return Session(seed, protocol, mode, index, stmts, fresh)


# ----------------------------------------------------------------------------- watchdog

class Watchdog:
    """Shuts a connection's socket down when a statement takes longer than STATEMENT_TIMEOUT, so a
    splitpool that never answers costs one timeout, not the run. One thread serves every driver."""

    def __init__(self, seconds=STATEMENT_TIMEOUT):
        self.seconds = seconds
        self.armed = {}     # owner -> (fd, deadline)
        self.fired = set()  # owners whose statement was cut off
        self.lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def arm(self, owner, fd):
        with self.lock:
            self.armed[owner] = (fd, time.monotonic() + self.seconds)
            self.fired.discard(owner)

    def disarm(self, owner):
        with self.lock:
            self.armed.pop(owner, None)

    def _loop(self):
        while True:
            time.sleep(0.25)
            with self.lock:
                now = time.monotonic()
                for owner, (fd, deadline) in list(self.armed.items()):
                    if now > deadline:
                        try:
                            s = socket.socket(fileno=os.dup(fd))
                            s.shutdown(socket.SHUT_RDWR)
                            s.close()
                        except OSError:
                            pass
                        del self.armed[owner]
                        self.fired.add(owner)


# ----------------------------------------------------------------------------- drivers

class Endpoint:
    def __init__(self, host, port, dbname, name):
        self.host, self.port, self.dbname, self.name = host, port, dbname, name

    def kwargs(self):
        return dict(host=self.host, port=self.port, user=USER, dbname=self.dbname, connect_timeout=5,
                    application_name=APP, gssencmode="disable")


class Driver:
    """Runs statements on one connection and returns canonical results:
    ('ok', command tag, rows or None) | ('err', SQLSTATE) | ('skipped',) | ('lost', what)."""

    def __init__(self, endpoint, watchdog):
        self.ep, self.wd, self.conn = endpoint, watchdog, None

    def ensure(self):
        if self.conn is None or self.closed():
            self.close()
            try:
                self.conn = self.open()
            except Exception as e:  # noqa: BLE001 - any failure to connect is a result
                self.conn = None
                return f"connect failed: {type(e).__name__}: {str(e).strip()[:200]}"
        return None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = None

    def run(self, stmts, lo):
        problem = self.ensure()
        if problem:
            return [("lost", problem)] * len(stmts)
        return self.execute(stmts, lo)

    def lost(self, e):
        what = type(e).__name__ + (" (no answer within the statement timeout)" if self in self.wd.fired else "")
        self.close()
        return ("lost", what)


class SimpleDriver(Driver):
    def open(self):
        import psycopg2
        conn = psycopg2.connect(**self.ep.kwargs())
        conn.autocommit = True
        return conn

    def closed(self):
        return self.conn.closed != 0

    def execute(self, stmts, lo):
        import psycopg2
        out = []
        for s in stmts:
            if self.conn is None:
                out.append(("lost", "earlier"))
                continue
            sql, params = s.resolve(lo)
            cur = self.conn.cursor()
            self.wd.arm(self, self.conn.fileno())
            try:
                cur.execute(sql, params)
                rows = [tuple(r) for r in cur.fetchall()] if cur.description else None
                out.append(("ok", cur.statusmessage, rows))
            except psycopg2.Error as e:
                out.append(("err", e.pgcode) if e.pgcode else self.lost(e))
            finally:
                self.wd.disarm(self)
            if self.conn is not None:
                del self.conn.notices[:]
        return out


class ExtendedDriver(Driver):
    pipeline = False

    def open(self):
        import psycopg
        return psycopg.connect(autocommit=True, **self.ep.kwargs())

    def closed(self):
        return self.conn.closed or self.conn.broken

    def _forget_prepared(self):
        """The server dropped every prepared statement; psycopg 3.1 notices that only on ROLLBACK and DROP
        and would send Binds to names that no longer exist (26000): forget them as the server did."""
        manager = getattr(self.conn, "_prepared", None)
        if manager is not None:
            manager._names.clear()
            manager._counts.clear()
            manager._maint_commands.clear()

    @staticmethod
    def _result(cur):
        rows = [tuple(r) for r in cur.fetchall()] if cur.description else None
        return ("ok", cur.statusmessage, rows)

    def execute(self, stmts, lo):
        if self.pipeline:
            return self.execute_pipeline(stmts, lo)
        import psycopg
        out = []
        for s in stmts:
            if self.conn is None:
                out.append(("lost", "earlier"))
                continue
            sql, params = s.resolve(lo)
            self.wd.arm(self, self.conn.pgconn.socket)
            try:
                out.append(self._result(self.conn.execute(sql, params, prepare=s.prepare)))
                if out[-1][1] in ("DISCARD ALL", "DEALLOCATE ALL"):
                    self._forget_prepared()
            except psycopg.Error as e:
                out.append(("err", e.sqlstate) if e.sqlstate else self.lost(e))
            finally:
                self.wd.disarm(self)
        return out

    def execute_pipeline(self, stmts, lo):
        import psycopg
        out = []
        batches = []
        for s in stmts:
            if batches and batches[-1][0].batch == s.batch:
                batches[-1].append(s)
            else:
                batches.append([s])
        for batch in batches:
            if self.conn is None:
                out += [("lost", "earlier")] * len(batch)
                continue
            curs, error, fatal = [], None, None
            self.wd.arm(self, self.conn.pgconn.socket)
            try:
                with self.conn.pipeline() as p:
                    for s in batch:
                        if error is not None or fatal is not None:
                            curs.append(None)
                            continue
                        sql, params = s.resolve(lo)
                        try:
                            curs.append(self.conn.execute(sql, params, prepare=False))
                        except psycopg.Error as e:
                            curs.append(None)
                            error, fatal = (e, fatal) if e.sqlstate else (error, fatal or e)
                    try:
                        p.sync()
                    except psycopg.Error as e:
                        if e.sqlstate:
                            error = error or e
                        elif not isinstance(e, psycopg.errors.PipelineAborted):
                            fatal = fatal or e
            except psycopg.Error as e:
                if e.sqlstate:
                    error = error or e
                elif not isinstance(e, psycopg.errors.PipelineAborted):
                    fatal = fatal or e
            finally:
                self.wd.disarm(self)
            if fatal is not None or self.closed():
                # keep what completed; the rest of the batch is lost with the connection
                done = []
                for cur in curs:
                    if cur is None or cur.pgresult is None:
                        break
                    done.append(self._result(cur))
                out += done + [self.lost(fatal or Exception("closed"))] + [("lost", "earlier")] * (
                    len(batch) - len(done) - 1)
                continue
            failed = False
            for cur in curs:
                if not failed and cur is not None and cur.pgresult is not None:
                    out.append(self._result(cur))
                elif not failed and error is not None:
                    out.append(("err", error.sqlstate))
                    failed = True
                else:
                    out.append(("skipped",))
        return out


class PipelineDriver(ExtendedDriver):
    pipeline = True


DRIVERS = {"simple": SimpleDriver, "extended": ExtendedDriver, "pipeline": PipelineDriver}


# ----------------------------------------------------------------------------- the databases

def _pg(host, port, dbname):
    import psycopg
    return psycopg.connect(host=host, port=port, user=USER, dbname=dbname, autocommit=True, connect_timeout=5,
                           gssencmode="disable")


class Env:
    """Tables in both databases, seeded key ranges, replay paused on the standbys."""

    SCHEMA = ("drop table if exists dt_main, dt_static;"
              " create table dt_main(k int primary key, v text not null, n int);"
              " create table dt_static(k int primary key, v text not null);"
              " insert into dt_static select g, 'st' || g from generate_series(1, 10) g")

    def __init__(self, host, primary_port, standby_ports, proxied_db="sp_test", direct_db="sp_other",
                 log=print):
        self.host, self.primary_port, self.standby_ports = host, primary_port, list(standby_ports)
        self.proxied_db, self.direct_db, self.log = proxied_db, direct_db, log
        self.primary = {db: _pg(host, primary_port, db) for db in (proxied_db, direct_db)}
        self.standbys = [_pg(host, p, "postgres") for p in self.standby_ports]
        self.next_range = 1
        self.seeded = 1
        self.pauses = 0
        self.seed_seconds = 0.0   # resuming replay, seeding, catching up, pausing

    # --- replay
    def resume(self):
        for s in self.standbys:
            s.execute("select pg_wal_replay_resume()")

    # Relation locks the standby's startup process holds: replayed from a primary transaction whose
    # end it has not replayed yet (autovacuum truncating a catalog that temporary tables churn, DDL).
    STARTUP_LOCKS = ("select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid"
                     " where a.backend_type = 'startup' and l.mode = 'AccessExclusiveLock'")

    def pause(self, attempts=100):
        """Pauses replay where the standbys hold no replayed AccessExclusiveLock. Paused inside such a
        transaction, every query needing that relation (with pg_class: every new connection) would wait
        on the standby until replay resumes, and the sessions sent there would lose statements to the
        timeout: a harness artefact, seen as minutes of 'no answer' that ended at the next resume."""
        for _ in range(attempts):
            for s in self.standbys:
                s.execute("select pg_wal_replay_pause()")
            deadline = time.monotonic() + 1.0
            for s in self.standbys:  # 'pause requested': waiting for WAL, or in the middle of a record
                while s.execute("select pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
            if not any(s.execute(self.STARTUP_LOCKS).fetchone()[0] for s in self.standbys):
                self.pauses += 1
                return
            self.resume()
            time.sleep(0.05)
        raise AssertionError(f"replay could not be paused outside a lock-holding transaction in {attempts} tries")

    def catch_up(self, timeout=60):
        lsn = self.primary[self.direct_db].execute("select pg_current_wal_insert_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        for s in self.standbys:
            while not s.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise AssertionError(f"a standby did not replay {lsn} within {timeout}s")
                time.sleep(0.02)

    # --- setup
    def setup(self):
        self.resume()
        for db, conn in self.primary.items():
            conn.execute(self.SCHEMA)
            conn.execute(f"alter database {db} set diff.x = 'init'")
        self.seed_block()

    def seed_block(self):
        """Seeds BLOCK more key ranges in both databases, with replay running, then pauses it again."""
        start = time.monotonic()
        self.resume()
        first, last = self.seeded, self.seeded + BLOCK
        for conn in self.primary.values():
            conn.execute("insert into dt_main select r * %s::int + i, 's' || i, i"
                         " from generate_series(%s::int, %s::int) r, generate_series(0, %s::int) i",
                         (RANGE, first, last - 1, SEED_ROWS - 1))
        self.catch_up()
        self.pause()
        self.seeded = last
        self.seed_seconds += time.monotonic() - start

    def new_range(self):
        if self.next_range >= self.seeded:
            self.seed_block()
        lo = self.next_range * RANGE
        self.next_range += 1
        return lo

    def rows(self, db, lo):
        return [tuple(r) for r in self.primary[db].execute(
            "select k, v, n from dt_main where k between %s and %s order by k", (lo, lo + RANGE - 1))]

    def close(self, clean_up=False):
        """Resumes replay and waits for the standbys; clean_up also drops the tables and the setting."""
        try:
            start = time.monotonic()
            self.resume()
            if clean_up:
                for db, conn in self.primary.items():
                    conn.execute("drop table if exists dt_main, dt_static")
                    conn.execute(f"alter database {db} reset diff.x")
            self.catch_up()
            self.log(f"difftest: replay resumed, standbys caught up in {time.monotonic() - start:.1f}s")
        finally:
            for c in list(self.primary.values()) + self.standbys:
                c.close()


# ----------------------------------------------------------------------------- comparison

def must_be_fresh(stmts, results, mode, protocol):
    """Per statement: whether a 'read' has to return the primary's current data (see the module doc).
    Success of a statement is taken from the direct run."""
    out = []
    in_tx = tx_wrote = dirty = batch_wrote = False
    batch = None
    for s, r in zip(stmts, results):
        if s.batch != batch:
            batch, batch_wrote = s.batch, False
        if mode == "always":
            fresh = True
        elif mode == "transaction":
            fresh = not dirty or (in_tx and tx_wrote) or (protocol == "pipeline" and not in_tx and batch_wrote)
        else:
            fresh = not dirty
        out.append(fresh or s.tag != "read")
        ok = r[0] == "ok"
        if ok and s.tag == "write":
            dirty = True
            if in_tx:
                tx_wrote = True
            else:
                batch_wrote = True
        words = s.sql.split()
        first = words[0]
        if ok and (first == "begin" or words[:2] == ["start", "transaction"]):
            in_tx = True
        elif ok and first in ("commit", "end", "abort", "rollback") and words[1:2] != ["to"]:
            chain = words[-1] == "chain"
            in_tx, tx_wrote = chain and in_tx, False
        elif ok and first == "discard":
            pass
    return out


def status(result):
    return result[:1] if result[0] == "ok" else result


@dataclass
class Difference:
    index: int          # statement index, or -1 for the final data
    direct: object
    proxied: object
    full: bool          # whole results compared (False: ok/SQLSTATE only, the read may be stale)

    def where(self, stmts, lo):
        if self.index < 0:
            return "final data of the session's rows"
        return f"statement {self.index + 1} `{stmts[self.index].show(lo)}`"

    def signature(self, stmts):
        """Groups differences that are probably one bug: the statement's template and the results' kinds
        (ok, lost, or the SQLSTATE)."""
        if self.index < 0:
            return ("final",)

        def kind(r):
            return r[:2] if r[0] == "err" else r[:1]
        return (stmts[self.index].sql, kind(self.direct), kind(self.proxied))

    def text(self, stmts, lo):
        return (f"{self.where(stmts, lo)} differs{'' if self.full else ' (ok/SQLSTATE only)'}:\n"
                f"  direct:    {self.direct!r}\n  splitpool: {self.proxied!r}")


def first_difference(stmts, direct, proxied, final_direct, final_proxied, mode, protocol):
    """The first Difference between the two runs, or None."""
    fresh = must_be_fresh(stmts, direct, mode, protocol)
    for i, (d, p) in enumerate(zip(direct, proxied)):
        a, b = (d, p) if fresh[i] else (status(d), status(p))
        if a != b:
            return Difference(i, a, b, fresh[i])
    if final_direct != final_proxied:
        return Difference(-1, final_direct, final_proxied, True)
    return None


# ----------------------------------------------------------------------------- running

@dataclass
class Failure:
    session: Session
    lo: int
    diff: Difference
    history: list = field(default_factory=list)   # earlier sessions of its continued connection
    prefix_sessions: int = 0
    shrunk: list = None
    shrunk_diff: Difference = None
    shrunk_lo: int = 0
    tries: int = 0
    reproduced: str = ""


class ShrinkBudget:
    """Seconds of shrinking, consumed only while shrinking; one budget can serve several runs."""

    def __init__(self, seconds):
        self.remaining, self.started = seconds, None

    def start(self):
        self.started = time.monotonic()

    def stop(self):
        if self.started is not None:
            self.remaining -= time.monotonic() - self.started
            self.started = None

    def left(self):
        used = time.monotonic() - self.started if self.started is not None else 0.0
        return self.remaining - used > 0


@dataclass
class Report:
    protocol: str = ""
    mode: str = ""
    seed: int = 0
    sessions: int = 0
    requested: int = 0
    statements: int = 0
    seconds: float = 0.0          # running the sessions
    shrink_seconds: float = 0.0
    failures: list = field(default_factory=list)
    timed_out: bool = False
    aborted: str = ""
    compared_reads: int = 0
    status_only_reads: int = 0

    def summary(self):
        return (f"difftest {self.protocol}/{self.mode} seed {self.seed}: {self.sessions} sessions"
                f" ({self.statements} statements, {self.compared_reads} reads of written rows compared in full,"
                f" {self.status_only_reads} ok/SQLSTATE only) in {self.seconds:.1f}s; {len(self.failures)} differ"
                + (f"; shrinking {self.shrink_seconds:.1f}s" if self.shrink_seconds else "")
                + (f"; STOPPED after {self.sessions} of {self.requested} sessions (time limit)"
                   if self.timed_out else "")
                + (f"; STOPPED after {self.sessions} of {self.requested} sessions: {self.aborted}"
                   if self.aborted else ""))

    def text(self, rerun_hint="", max_listed=25):
        lines = [self.summary()]
        shrunk = [f for f in self.failures if f.shrunk is not None or f.reproduced]
        others = [f for f in self.failures if not (f.shrunk is not None or f.reproduced)]
        for f in shrunk:
            s = f.session
            lines.append(f"DIFFERENCE seed={s.seed} protocol={s.protocol} mode={s.mode} session={s.index}"
                         f" ({'fresh' if s.fresh else 'continued'} connection, {len(s.stmts)} statements):")
            lines.append("  " + f.diff.text(s.stmts, f.lo).replace("\n", "\n  "))
            if f.shrunk is not None:
                total = len(s.stmts) + sum(len(h.stmts) for h in f.history[len(f.history) - f.prefix_sessions:])
                lines.append(f"  shortest failing list ({len(f.shrunk)} of {total} statements, on fresh"
                             f" connections; reproduced {f.reproduced}; {f.tries} runs):")
                lines += [f"    {_label(st, s.protocol)}{st.show(f.shrunk_lo)}" for st in f.shrunk]
                lines.append("  " + f.shrunk_diff.text(f.shrunk, f.shrunk_lo).replace("\n", "\n  "))
            else:
                lines.append(f"  not shrunk: {f.reproduced}; the session:")
                lines += [f"    {_label(st, s.protocol)}{st.show(f.lo)}" for st in s.stmts]
            if rerun_hint:
                lines.append("  rerun: " + rerun_hint.format(seed=s.seed, protocol=s.protocol, index=s.index))
        if others:
            lines.append(f"other differing sessions ({len(others)}, not shrunk):")
            for f in others[:max_listed]:
                d = f.diff
                line = (f"  session {f.session.index}: {d.where(f.session.stmts, f.lo)}:"
                        f" direct {d.direct!r} / splitpool {d.proxied!r}")
                lines.append(line if len(line) < 300 else line[:297] + "...")
            if len(others) > max_listed:
                lines.append(f"  ... and {len(others) - max_listed} more")
        return "\n".join(lines)


def _label(stmt, protocol):
    if protocol == "pipeline":
        return f"[batch {stmt.batch}] "
    if protocol == "extended":
        return "[prepared] " if stmt.prepare else "[unnamed]  "
    return ""


_watchdog = None


def shared_watchdog():
    global _watchdog
    if _watchdog is None:
        _watchdog = Watchdog()
    return _watchdog


class Runner:
    """Runs sessions of one protocol through splitpool (proxied) and directly (direct)."""

    def __init__(self, env, protocol, mode, proxied, direct, log=print):
        self.env, self.protocol, self.mode, self.log = env, protocol, mode, log
        self.wd = shared_watchdog()
        self.driver_class = DRIVERS[protocol]
        self.endpoints = (direct, proxied)
        # the continued connections; a fresh session gets drivers of its own
        self.continued = [self.driver_class(ep, self.wd) for ep in self.endpoints]
        self.pool = concurrent.futures.ThreadPoolExecutor(1)

    def close(self):
        for drv in self.continued:
            drv.close()
        self.pool.shutdown()

    def run_pair(self, stmts, fresh, lo=None):
        """Runs stmts directly and through splitpool at the same time (different databases, same keys)."""
        lo = self.env.new_range() if lo is None else lo
        drivers = [self.driver_class(ep, self.wd) for ep in self.endpoints] if fresh else self.continued

        def one(drv):
            try:
                return drv.run(stmts, lo)
            finally:
                if fresh:
                    drv.close()

        direct_future = self.pool.submit(one, drivers[0])
        proxied = one(drivers[1])
        direct = direct_future.result()
        final_direct = self.env.rows(self.env.direct_db, lo)
        final_proxied = self.env.rows(self.env.proxied_db, lo)
        diff = first_difference(stmts, direct, proxied, final_direct, final_proxied, self.mode, self.protocol)
        return diff, lo, (direct, proxied)

    def run(self, seed, sessions, max_seconds=None, shrink=None, max_shrunk=3, only=None, progress=0):
        """Runs the sessions 0..sessions-1 of seed (or only one); then shrinks up to max_shrunk differing
        sessions of distinct signatures while the ShrinkBudget lasts."""
        report = Report(self.protocol, self.mode, seed, requested=1 if only is not None else sessions)
        start = time.monotonic()
        indexes = [only] if only is not None else range(sessions)
        history = []            # continued sessions on the current continued proxied connection
        refused = 0             # sessions in a row whose proxied connection could not be opened
        try:
            for n, index in enumerate(indexes):
                if max_seconds is not None and time.monotonic() - start > max_seconds:
                    report.timed_out = True
                    break
                session = make_session(seed, self.protocol, self.mode, index)
                fresh = session.fresh or only is not None
                diff, lo, results = self.run_pair(session.stmts, fresh)
                report.sessions += 1
                report.statements += len(session.stmts)
                must = must_be_fresh(session.stmts, results[0], self.mode, self.protocol)
                reads = [f for s, f in zip(session.stmts, must) if s.tag == "read"]
                report.compared_reads += sum(reads)
                report.status_only_reads += len(reads) - sum(reads)
                if diff is not None:
                    report.failures.append(Failure(session, lo, diff, history=list(history)))
                lost = [r for r in results[1] if r[0] == "lost"]
                refused = refused + 1 if lost and lost[0][1].startswith("connect failed") else 0
                if refused >= 3:
                    report.aborted = f"splitpool refused 3 connections in a row ({lost[0][1]})"
                    break
                if not fresh:
                    history = [] if lost else (history + [session])[-16:]
                if progress and (n + 1) % progress == 0:
                    self.log(f"difftest {self.protocol}/{self.mode}: {n + 1} sessions, {len(report.failures)}"
                             f" differ, {time.monotonic() - start:.0f}s")
            report.seconds = time.monotonic() - start
            shrink = shrink or ShrinkBudget(60.0)
            shrink.start()
            t0 = time.monotonic()
            seen, shrunk_sets = set(), []
            saved_timeout, self.wd.seconds = self.wd.seconds, SHRINK_STATEMENT_TIMEOUT
            try:
                for f in report.failures:
                    if len(seen) >= max_shrunk or not shrink.left():
                        break
                    signature = f.diff.signature(f.session.stmts)
                    templates = {st.sql for st in f.session.stmts}
                    # the same statement differing, or a session holding a shrunk case: probably a known bug
                    if signature in seen or any(t <= templates for t in shrunk_sets):
                        continue
                    seen.add(signature)
                    self.shrink(f, shrink)
                    if f.shrunk:
                        shrunk_sets.append({st.sql for st in f.shrunk})
            finally:
                self.wd.seconds = saved_timeout
                shrink.stop()
            report.shrink_seconds = time.monotonic() - t0
        finally:
            self.close()
        return report

    def fails(self, stmts, attempts):
        for _ in range(attempts):
            diff, lo, _ = self.run_pair(stmts, True)
            if diff is not None:
                return diff, lo
        return None, None

    @staticmethod
    def concatenate(sessions):
        """One statement list from several sessions, batch numbers kept apart."""
        out, offset = [], 0
        for stmts in sessions:
            out += [replace(st, batch=st.batch + offset) for st in stmts]
            offset = max([offset] + [st.batch + offset for st in stmts]) + 1
        return out

    def shrink(self, failure, budget):
        """Finds the failing session's statements on fresh connections and fresh rows (a continued session
        with as few earlier sessions of its connection in front as it takes), then removes earlier sessions
        and statements while the difference remains. A difference that does not show every time gets 3
        runs per candidate."""
        session = failure.session
        own = list(session.stmts) if session.fresh else list(session.stmts)[:-2]  # its ROLLBACK; DISCARD ALL
        hits, found, failure.tries = 0, None, 0
        for n in ([0] if session.fresh else [0, 1, 2, 4, 8, 16]):
            if n > len(failure.history) or not budget.left():
                break
            blocks = [list(h.stmts) for h in failure.history[len(failure.history) - n:]] + [own]
            current = self.concatenate(blocks)
            for _ in range(3):
                diff, lo = self.fails(current, 1)
                failure.tries += 1
                if diff is not None:
                    hits, found = hits + 1, (diff, lo)
            if hits:
                failure.prefix_sessions = n
                break
        if not hits:
            failure.reproduced = ("0/3 on fresh connections" + ("" if session.fresh else
                                  f", also after up to {min(16, len(failure.history))} earlier sessions of its"
                                  " connection"))
            return
        attempts = 1 if hits == 3 else 3
        best_diff, best_lo = found
        target = best_diff.signature(current)

        def attempt(candidate):
            """Whether candidate still shows the same difference (same statement, same kinds of result)."""
            nonlocal best_diff, best_lo
            for _ in range(attempts):
                diff, lo, _ = self.run_pair(candidate, True)
                failure.tries += 1
                if diff is not None and diff.signature(candidate) == target:
                    best_diff, best_lo = diff, lo
                    return True
            return False

        # whole earlier sessions first, then chunks of statements halving in size down to single ones
        while len(blocks) > 1 and budget.left():
            for i in range(len(blocks) - 1):
                if not budget.left():
                    break
                candidate_blocks = blocks[:i] + blocks[i + 1:]
                if attempt(self.concatenate(candidate_blocks)):
                    blocks = candidate_blocks
                    break
            else:
                break
        best = self.concatenate(blocks)
        size = max(1, len(best) // 2)
        while budget.left():
            removed = False
            i = len(best) - size
            while i >= 0 and budget.left():
                candidate = best[:i] + best[i + size:]
                if candidate and attempt(candidate):
                    best, removed = candidate, True
                i -= size
            if size == 1 and not removed:
                break  # no single statement can go: 1-minimal
            size = max(1, size // 2)
        minimal = budget.left()
        again, reruns = 0, 3 if budget.left() else 1
        for _ in range(reruns):
            diff, _lo, _ = self.run_pair(best, True)
            again += diff is not None and diff.signature(best) == target
        failure.tries += reruns
        failure.shrunk, failure.shrunk_diff, failure.shrunk_lo = best, best_diff, best_lo
        failure.reproduced = f"{again}/{reruns} reruns"
        if not minimal:
            failure.reproduced += ", shrinking cut short by its time limit"
        if failure.prefix_sessions:
            failure.reproduced += f"; needed {failure.prefix_sessions} earlier session(s) of its connection in front"


# ----------------------------------------------------------------------------- command line

def ensure_databases(host, primary_port, names):
    """Creates the proxied and the direct database on the primary when missing (e.g. on a make demo cluster)."""
    conn = _pg(host, primary_port, "postgres")
    try:
        for name in names:
            if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                conn.execute(f'create database "{name}"')
    finally:
        conn.close()


def discover(host, port, dbname):
    """(primary port, standby ports, mode) from splitpool's SHOW POOL_NODES and PGPOOL SHOW."""
    conn = _pg(host, port, dbname)
    try:
        nodes = conn.execute("show pool_nodes").fetchall()
        primary = [int(r[2]) for r in nodes if r[6] == "primary"]
        standbys = [int(r[2]) for r in nodes if r[6] == "standby"]
        mode = conn.execute("pgpool show disable_load_balance_on_write").fetchone()[0]
    finally:
        conn.close()
    return primary[0], standbys, mode


def canonical_mode(mode):
    return {"always": "always", "off": "off"}.get(mode, "transaction")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, help="splitpool's port")
    ap.add_argument("--self-check", action="store_true",
                    help="run the proxied side directly on the primary too (checks the harness)")
    ap.add_argument("--primary-port", type=int, help="default: from SHOW POOL_NODES")
    ap.add_argument("--standby-port", type=int, action="append", help="default: from SHOW POOL_NODES")
    ap.add_argument("--mode", help="disable_load_balance_on_write of the splitpool (default: PGPOOL SHOW)")
    ap.add_argument("--proxied-db", default="sp_test")
    ap.add_argument("--direct-db", default="sp_other")
    ap.add_argument("--sessions", type=int, default=5000, help="per protocol")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--protocol", default=",".join(PROTOCOLS))
    ap.add_argument("--only-session", type=int)
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="per protocol")
    ap.add_argument("--shrink-seconds", type=float, default=60.0)
    ap.add_argument("--max-shrunk", type=int, default=6, help="differing sessions shrunk per protocol")
    args = ap.parse_args(argv)
    if args.port is None and not args.self_check:
        ap.error("--port is required")

    if args.self_check:
        # both runs directly on the primary: any difference is the harness's own nondeterminism
        if not (args.primary_port and args.standby_port):
            ap.error("--self-check needs --primary-port and --standby-port")
        primary, standbys, mode = args.primary_port, args.standby_port, args.mode or "always"
        proxied_port = primary
    else:
        # through "postgres": a pooled sp_test backend made now would predate the ALTER DATABASE of setup()
        primary, standbys, mode = discover(args.host, args.port, "postgres")
        primary = args.primary_port or primary
        standbys = args.standby_port or standbys
        proxied_port = args.port
    mode = canonical_mode(args.mode or mode)
    ensure_databases(args.host, primary, (args.proxied_db, args.direct_db))
    env = Env(args.host, primary, standbys, args.proxied_db, args.direct_db)
    failed = False
    try:
        env.setup()
        for protocol in args.protocol.split(","):
            runner = Runner(env, protocol, mode, Endpoint(args.host, proxied_port, args.proxied_db, "splitpool"),
                            Endpoint(args.host, primary, args.direct_db, "primary"))
            report = runner.run(args.seed, args.sessions, args.max_seconds, ShrinkBudget(args.shrink_seconds),
                                args.max_shrunk, only=args.only_session, progress=500)
            hint = (f"{sys.executable} {os.path.abspath(__file__)} --port {args.port} --seed {{seed}}"
                    f" --protocol {{protocol}} --only-session {{index}}")
            print(report.text(hint) if report.failures else report.summary(), flush=True)
            failed = failed or bool(report.failures) or report.timed_out or bool(report.aborted)
    finally:
        env.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
