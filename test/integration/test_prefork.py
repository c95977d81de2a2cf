"""The prefork model at scale: what an idle child costs, 500 concurrent sessions held and served, and
clients beyond the children waiting in the listen backlog until a child is free (none forever).

Memory is asserted (robustly: medians over all children, Pss and Private_Dirty); times are not.
scripts/prefork_scale.sh measures 1000 children with times. SPLITPOOL_PREFORK_SESSIONS (500) sets the
concurrent-session count."""

import asyncio
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import prefork
from conftest import splitpool_factory, throwaway_cluster
from helpers import SPLITPOOL_BIN, pid_alive, psql_value, wait_until

IDLE_CHILDREN = 200
PSS_BOUND_KB = 150  # pgpool-II 4.3 measured 156 kB per idle child on this machine class
SESSIONS = int(os.environ.get("SPLITPOOL_PREFORK_SESSIONS", "500"))


def test_idle_children_cost_at_most_150_kb_pss_each(ports):
    port, _ = ports.pair()
    workdir = tempfile.mkdtemp(prefix="splitpool-it-prefork-", dir="/tmp")
    try:
        # No backend is needed: idle children never connect. The port only has to be unused.
        r = prefork.measure(SPLITPOOL_BIN, port, IDLE_CHILDREN, port + 1, workdir, timeout=120)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{IDLE_CHILDREN} idle children: median Pss {r['Pss']} kB, Private_Dirty {r['Private_Dirty']} kB, "
          f"Rss {r['Rss']} kB, VmPTE {r['VmPTE']} kB")
    # Pss shares the common pages among 201 processes; Private_Dirty is what each child alone costs
    # and does not depend on the count.
    assert r["Pss"] <= PSS_BOUND_KB, r
    assert r["Private_Dirty"] <= PSS_BOUND_KB, r


@pytest.fixture(scope="module")
def big_cluster():
    """A primary alone, with max_connections above SESSIONS (the shared cluster allows 200)."""
    base = int(os.environ.get("SPLITPOOL_TEST_PGPORT", "21000")) + 5
    os.environ["PG_MAX_CONNECTIONS"] = str(SESSIONS + 60)  # read by pg_cluster.sh start
    try:
        with throwaway_cluster("splitpool-it-pg-", base, 0) as c:
            yield c
    finally:
        os.environ.pop("PG_MAX_CONNECTIONS", None)


@pytest.fixture
def big_splitpool(request, big_cluster, ports):
    yield from splitpool_factory(request, big_cluster, ports)


def stop_slowly(sp):
    """Fast shutdown: hundreds of children each closing a backend connection take longer on a loaded
    2-core machine than the harness's 10 s default."""
    assert sp.cleanup(timeout=120) is None


def listen_queue(port):
    """(clients waiting in the accept queue, its limit) of the listening socket on 127.0.0.1:port, from
    ss (Recv-Q, Send-Q); /proc/net/tcp does not show a listener's limit."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        cols = line.split()
        if cols[0] == "LISTEN" and cols[3].endswith(f":{port}"):
            return int(cols[1]), int(cols[2])
    return None


async def open_session(port, timeout):
    import psycopg
    return await psycopg.AsyncConnection.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                                 autocommit=True, connect_timeout=timeout, gssencmode="disable")


async def one_value(conn, sql):
    cur = await conn.execute(sql)
    return (await cur.fetchone())[0]


def test_500_concurrent_sessions_are_held_and_served(big_splitpool):
    sp = big_splitpool(num_init_children=SESSIONS, max_pool=1, log_connections=False,
                       log_disconnections=False)

    async def run():
        all_in = asyncio.Event()
        answered = []

        async def client(i):
            conn = await open_session(sp.port, 120)
            try:
                pid = await one_value(conn, "select pg_backend_pid()")
                answered.append(pid)
                if len(answered) == SESSIONS:
                    all_in.set()
                await asyncio.wait_for(all_in.wait(), 300)  # every session open at once
                return pid, await one_value(conn, f"select {i}")
            finally:
                await conn.close()

        return await asyncio.gather(*(client(i) for i in range(SESSIONS)))

    started = time.monotonic()
    results = asyncio.run(run())
    print(f"{SESSIONS} sessions open at once and answered in {time.monotonic() - started:.1f} s")
    stop_slowly(sp)
    assert [v for _, v in results] == list(range(SESSIONS))
    assert len({pid for pid, _ in results}) == SESSIONS  # each its own backend, all at the same time


def test_clients_beyond_the_children_wait_in_the_backlog_and_all_get_answers(big_splitpool):
    children, multiplier, clients = 20, 2, 80
    sp = big_splitpool(num_init_children=children, listen_backlog_multiplier=multiplier, max_pool=1,
                       log_connections=False, log_disconnections=False)

    async def run():
        release = asyncio.Event()
        answers = []

        async def client(i):
            # libpq's connect_timeout covers the whole start-up; a queued client only waits for a child.
            conn = await open_session(sp.port, 120)
            try:
                answers.append(await one_value(conn, f"select {i}"))
                await asyncio.wait_for(release.wait(), 300)
            finally:
                await conn.close()

        tasks = [asyncio.create_task(client(i)) for i in range(clients)]

        def backlog_full():
            q = listen_queue(sp.port)
            return q is not None and len(answers) == children and q[0] >= min(q[1], clients - children)

        # Every child holds a session; the rest wait in the kernel's accept queue (listen backlog =
        # listen_backlog_multiplier x num_init_children), those beyond it retry their SYN.
        while not backlog_full():
            assert not any(t.done() and t.exception() for t in tasks), [t.exception() for t in tasks if t.done()]
            await asyncio.sleep(0.05)
        queued, limit = listen_queue(sp.port)
        assert limit == children * multiplier
        assert len(answers) == children
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        return queued, sorted(answers)

    queued, answers = asyncio.run(run())
    stop_slowly(sp)
    print(f"{children} children busy, {queued} clients in the accept queue, {clients} answered after release")
    assert queued >= min(children * multiplier, clients - children)
    assert answers == list(range(clients))


def test_children_forked_by_spawners_are_the_parents_and_follow_it(big_splitpool):
    """Above 127 children, spawner processes fork slot ranges in parallel; their children must end up
    as the supervisor's own: reaped and replaced by it, and gone when it is killed."""
    n = 200
    sp = big_splitpool(num_init_children=n, log_connections=False, log_disconnections=False)
    table = prefork.ChildTable(sp.port)
    pids = wait_until(lambda: table.open() and len(p := table.pids()) == n and p, 120, f"{n} children")
    assert set(pids) <= set(sp.children())  # every child's parent is the supervisor (spawners are gone)
    last = pids[-1]  # the last slot, forked by a spawner
    os.kill(last, 9)
    wait_until(lambda: len(p := table.pids()) == n and last not in p, 60, "the killed child to be replaced")
    assert set(table.pids()) <= set(sp.children())
    sp.reload()
    assert psql_value(sp.port, "select 1") == "1"
    os.kill(sp.pid, 9)
    sp.proc.wait(10)
    everyone = table.pids()
    table.close()
    wait_until(lambda: not any(pid_alive(p) for p in everyone), 60, "the children to follow the killed parent")
    os.unlink(table.path)  # a killed parent leaves its segment behind (a new start replaces it)
