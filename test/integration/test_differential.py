"""Differential test: seeded random sessions through splitpool and directly against the primary must give
the same results and leave the same data, with replay on the standbys paused so that a standby serving
a read the routing rules keep on the primary answers visibly stale. The generator, drivers, comparison
and shrinking live in difftest.py (also a script for long runs against a running splitpool: see its
docstring).

Per protocol (simple: psycopg2; extended: psycopg 3 with prepare=True; pipeline: psycopg 3 pipeline)
make check runs SPLITPOOL_DIFF_SESSIONS (default 300) sessions, half against each splitpool configuration:
  always       disable_load_balance_on_write = always, per-session balancing: every result is compared
  transaction  the default disable_load_balance_on_write, per-statement balancing: a read of rows the
               session wrote is compared in full only where pgpool's rules send it to the primary
Env: SPLITPOOL_DIFF_SEED (default 20261201), SPLITPOOL_DIFF_SESSIONS (e.g. 5000 for a long run),
SPLITPOOL_DIFF_SHRINK_SECONDS (shrinking budget of the whole module, default 36, shared by the tests),
SPLITPOOL_DIFF_MAX_SECONDS (per test; a test that runs out of time fails).
"""

import os
import time

import psycopg
import pytest

import difftest

SEED = int(os.environ.get("SPLITPOOL_DIFF_SEED", "20261201"))
SESSIONS = int(os.environ.get("SPLITPOOL_DIFF_SESSIONS", "300"))  # per protocol, split over CONFIGS
MAX_SECONDS = float(os.environ.get("SPLITPOOL_DIFF_MAX_SECONDS", str(max(60.0, SESSIONS * 0.4))))
SELF_CHECK_SESSIONS = 40

KNOWN_FAILING: dict = {}  # (protocol, config) -> reason, for a difference known and not yet fixed

CONFIGS = {
    "always": {"disable_load_balance_on_write": "always"},
    "transaction": {"disable_load_balance_on_write": "transaction", "statement_level_load_balance": True},
}


@pytest.fixture(scope="module")
def diff_env(cluster):
    """Tables in sp_test (through splitpool) and sp_other (direct), seeded; standby replay paused."""
    env = difftest.Env("127.0.0.1", cluster.ports[0], cluster.ports[1:], "sp_test", "sp_other")
    try:
        env.setup()
        yield env
    finally:
        env.close(clean_up=True)  # resumes replay, waits for the replicas, drops the tables


class ShrinkPool:
    """The module's shrinking seconds, shared fairly: each test_differential gets what is left divided by the
    tests still to come, and leaves what it did not use to them."""

    def __init__(self, seconds, tests):
        self.left, self.tests = seconds, tests

    def take(self):
        budget = difftest.ShrinkBudget(self.left / max(1, self.tests))
        budget.granted = budget.remaining
        return budget

    def give_back(self, budget):
        self.left -= budget.granted - max(0.0, budget.remaining)
        self.tests -= 1


@pytest.fixture(scope="module")
def shrink_pool():
    return ShrinkPool(float(os.environ.get("SPLITPOOL_DIFF_SHRINK_SECONDS", "36")),
                      len(difftest.PROTOCOLS) * len(CONFIGS))


def test_paused_replay_makes_a_standby_read_visibly_stale(diff_env, cluster):
    lo = diff_env.new_range()
    with psycopg.connect(host="127.0.0.1", port=cluster.ports[0], user="postgres", dbname="sp_test",
                         autocommit=True) as primary:
        primary.execute("insert into dt_main values (%s, 'probe', 0)", (lo + 99,))
        primary.execute("select pg_switch_wal()")  # ships the record at once
    time.sleep(0.5)
    for port in cluster.ports[1:]:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="sp_test") as standby:
            count = standby.execute("select count(*) from dt_main where k between %s and %s",
                                    (lo, lo + 99)).fetchone()[0]
        assert count == difftest.SEED_ROWS, f"standby on {port} replayed a write while paused"


def test_comparison_catches_a_read_sent_to_a_paused_standby(diff_env, splitpool, cluster):
    """With disable_load_balance_on_write = off a read after a write in a transaction is balanced: judged by
    the rules of 'always' it must differ (proves the pause and the comparison, whatever else works)."""
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)), disable_load_balance_on_write="off")
    runner = difftest.Runner(diff_env, "simple", "always",
                             difftest.Endpoint("127.0.0.1", sp.port, "sp_test", "splitpool"),
                             difftest.Endpoint("127.0.0.1", cluster.ports[0], "sp_other", "primary"))
    Stmt, Off = difftest.Stmt, difftest.Off
    stmts = [Stmt("begin"),
             Stmt("insert into dt_main(k, v, n) values (%s, 'w', 0)", (Off(10),), "write"),
             Stmt("select count(*) from dt_main where k between %s and %s", (Off(0), Off(99)), "read"),
             Stmt("commit")]
    try:
        diff, lo, (direct, proxied) = runner.run_pair(stmts, fresh=True)
    finally:
        runner.close()
    assert direct[2] == ("ok", "SELECT 1", [(difftest.SEED_ROWS + 1,)]), direct
    assert diff is not None and diff.index == 2, (diff, proxied)
    assert proxied[2] == ("ok", "SELECT 1", [(difftest.SEED_ROWS,)]), proxied


@pytest.mark.parametrize("protocol", difftest.PROTOCOLS)
def test_harness_is_deterministic_directly(diff_env, cluster, protocol):
    """Both sides directly on the primary: any difference would be the harness's, not splitpool's."""
    primary = cluster.ports[0]
    runner = difftest.Runner(diff_env, protocol, "always",
                             difftest.Endpoint("127.0.0.1", primary, "sp_test", "primary/sp_test"),
                             difftest.Endpoint("127.0.0.1", primary, "sp_other", "primary/sp_other"))
    report = runner.run(SEED + 1, SELF_CHECK_SESSIONS, MAX_SECONDS, difftest.ShrinkBudget(0))
    print(report.summary())
    if report.failures or report.timed_out or report.aborted:
        pytest.fail(report.text(), pytrace=False)


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("protocol", difftest.PROTOCOLS)
def test_differential(diff_env, splitpool, cluster, shrink_pool, protocol, config):
    sp = splitpool(backend=cluster.backends(weights=(0, 1, 1)), num_init_children=4, **CONFIGS[config])
    mode = difftest.canonical_mode(CONFIGS[config]["disable_load_balance_on_write"])
    runner = difftest.Runner(diff_env, protocol, mode, difftest.Endpoint("127.0.0.1", sp.port, "sp_test", "splitpool"),
                             difftest.Endpoint("127.0.0.1", cluster.ports[0], "sp_other", "primary"))
    budget = shrink_pool.take()
    try:
        report = runner.run(SEED, -(-SESSIONS // len(CONFIGS)), MAX_SECONDS, budget, max_shrunk=4)
    finally:
        shrink_pool.give_back(budget)
    print(report.summary())
    settings = ", ".join(f"{k} = {v}" for k, v in CONFIGS[config].items())
    hint = ("/usr/bin/python3 test/integration/difftest.py --port PORT --seed {seed} --protocol {protocol}"
            " --only-session {index}   (PORT: a splitpool with " + settings + ", weights 0, 1, 1)")
    if report.failures or report.timed_out or report.aborted:
        if (protocol, config) in KNOWN_FAILING:
            pytest.xfail(KNOWN_FAILING[(protocol, config)] + "\n" + report.text(hint))
        pytest.fail(report.text(hint), pytrace=False)
