"""Fixtures: one PostgreSQL cluster (primary + 2 replicas) per session and a factory of splitpool instances."""

import contextlib
import os
import pwd
import shutil
import tempfile

import pytest

from helpers import SPLITPOOL_BIN, Cluster, PortAllocator, Splitpool

REPLICAS = 2
# Databases besides postgres: pgpool never caches connections to "postgres", so reuse tests use these.
TEST_DATABASES = ("sp_test", "sp_other")


def pytest_configure(config):
    # libpq (psycopg) would otherwise pick up a developer's PGHOST/PGUSER/... settings.
    for key in [k for k in os.environ if k.startswith("PG")]:
        del os.environ[key]
    os.environ["PGGSSENCMODE"] = "disable"


def _postgres_owned_tempdir(prefix):
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o755)
    return path


@contextlib.contextmanager
def throwaway_cluster(prefix, base, replicas):
    """A primary and `replicas` standbys on ports from `base`, in a postgres-owned temp folder; stopped
    and removed afterwards."""
    path = _postgres_owned_tempdir(prefix)
    c = Cluster(path, base, replicas)
    try:
        c.script("start", path, base, replicas)
        yield c
    finally:
        c.script("stop", path, check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster():
    base = int(os.environ.get("SPLITPOOL_TEST_PGPORT", "21000"))
    with throwaway_cluster("splitpool-it-pg-", base, REPLICAS) as c:
        for db in TEST_DATABASES:
            c.sql(0, f"create database {db}")
        c.wait_replicas_caught_up()
        yield c


@pytest.fixture(scope="session")
def ports():
    return PortAllocator(int(os.environ.get("SPLITPOOL_TEST_PORT", "21100")))


class SplitpoolFactory:
    """splitpool(**overrides) starts an instance; splitpool.prepare(**overrides) only writes its config."""

    def __init__(self, cluster, ports):
        self.cluster, self.ports, self.instances = cluster, ports, []

    def prepare(self, **overrides):
        if not SPLITPOOL_BIN.exists():
            pytest.fail(f"{SPLITPOOL_BIN} does not exist: build it first (make)")
        workdir = tempfile.mkdtemp(prefix="splitpool-it-sp-", dir="/tmp")
        port, pcp_port = self.ports.pair()
        sp = Splitpool(self.cluster, workdir, port, pcp_port, overrides)
        self.instances.append(sp)
        return sp

    def __call__(self, **overrides):
        return self.prepare(**overrides).start()

    def teardown(self, test_failed):
        problems = []
        for sp in self.instances:
            problem = sp.cleanup()
            if problem:
                problems.append(f"{problem}\n--- log {sp.log_path} ---\n{sp.log_tail()}")
            if test_failed:
                # Shown by pytest under "Captured stdout teardown".
                print(f"--- splitpool log {sp.log_path} (last lines) ---\n{sp.log_tail()}")
            if not os.environ.get("SPLITPOOL_TEST_KEEP"):
                shutil.rmtree(sp.dir, ignore_errors=True)
        return problems


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def splitpool_factory(request, cluster, ports):
    """The body of a splitpool fixture for `cluster` (`yield from` it): the factory, torn down after the
    test, which fails if the teardown found problems."""
    factory = SplitpoolFactory(cluster, ports)
    try:
        yield factory
    finally:
        rep = getattr(request.node, "rep_call", None)
        problems = factory.teardown(test_failed=rep is None or rep.failed)
    assert not problems, "\n".join(problems)


@pytest.fixture
def splitpool(request, cluster, ports):
    yield from splitpool_factory(request, cluster, ports)
