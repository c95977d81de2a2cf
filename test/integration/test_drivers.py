"""pgjdbc and node-postgres through splitpool, against the same programs run directly on the primary.

Each program (drivers/JdbcCheck.java, drivers/node_check.js) prints "key<TAB>value" lines: results
(counts, SQLSTATEs, settings) and, under keys ending in ".port", the node that answered
(inet_server_port()). Replay is paused on the standbys while they run, so a read that a transaction's
own write should have kept on the primary answers visibly stale from a standby. Through splitpool
every result must equal the direct run's; the ports must show reads after a write in a transaction
on the primary, and autocommit reads balanced to the standbys (weights 0, 1, 1). pgjdbc is Debian's
libpostgresql-jdbc-java (scripts/install-deps.sh); node-postgres is installed from npm into build/
on first use, and the node test is skipped, saying why, only when npm cannot install it.
"""

import os
import pathlib
import shutil
import subprocess

import pytest

import test_session_state as ss

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
JDBC_JAR = pathlib.Path("/usr/share/java/postgresql.jar")
NODE_DIR = REPO / "build" / "node"
RUN_SECONDS = 120


def run_program(argv, env=None):
    """The program's "key<TAB>value" lines as a dict; fails the test with its output when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_SECONDS, env=env)
    assert proc.returncode == 0, f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("\t")
        out[key] = value
    assert out, f"{argv} printed nothing:\n{proc.stderr}"
    return out


def split(out):
    """(results, ports): what must equal the direct run, and which node answered each."""
    results = {k: v for k, v in out.items() if not k.endswith(".port")}
    ports = {k[: -len(".port")]: int(v) for k, v in out.items() if k.endswith(".port")}
    return results, ports


def compare(cluster, proxy_port, program, table):
    """Runs `program(port, table)` directly and through splitpool (on `proxy_port`) with replay paused;
    returns the proxied run's ports after checking its results equal the direct run's."""
    ss.make_table(cluster, table, "k int primary key, v text", f"insert into {table} values (-1, 'seed')")
    with ss.replay_paused(cluster):
        direct, _ = split(program(ss.primary_port(cluster), table))
        ss.node_sql(cluster, 0, f"truncate {table}; insert into {table} values (-1, 'seed')")
        proxied, ports = split(program(proxy_port, table))
    assert proxied == direct, "\n".join(f"{k}: direct {direct.get(k)!r}, splitpool {proxied.get(k)!r}"
                                        for k in sorted(set(direct) | set(proxied)) if direct.get(k) != proxied.get(k))
    return ports


def check_ports(cluster, ports):
    primary, standbys = ss.primary_port(cluster), set(ss.standby_ports(cluster))
    in_tx = {k: p for k, p in ports.items() if k.startswith(("tx", "batch", "multi"))}  # tx1.., txafter, txautosave
    assert in_tx and all(p == primary for p in in_tx.values()), f"reads after a write in a transaction: {in_tx}"
    auto = {k: p for k, p in ports.items() if k.startswith("auto")}
    assert auto and all(p in standbys for p in auto.values()), f"autocommit reads should be balanced: {auto}"


@pytest.fixture
def driver_splitpool(splitpool, cluster):
    return splitpool(backend=cluster.backends(weights=ss.WEIGHTS))


# pgjdbc connection options that change what goes on the wire: all simple protocol, every statement
# server-side prepared and cached, only prepared statements extended, INSERT batches rewritten to
# multi-row ones, savepoints only when a statement of the transaction may need one. (Not
# cleanupSavepoints=true: its RELEASE of the autosave savepoint releases the program's own savepoint
# too, and the program fails directly on PostgreSQL.)
JDBC_MODES = ["", "&preferQueryMode=simple", "&preferQueryMode=extendedCacheEverything",
              "&preferQueryMode=extendedForPrepared", "&reWriteBatchedInserts=true", "&autosave=conservative"]


@pytest.mark.parametrize("options", JDBC_MODES, ids=lambda o: o.lstrip("&") or "default")
def test_pgjdbc_transactions_batches_errors_and_balanced_reads(driver_splitpool, cluster, options):
    java = shutil.which("java")
    assert java and JDBC_JAR.exists(), "java and pgjdbc come with scripts/install-deps.sh"

    def program(port, table):
        return run_program([java, "-cp", str(JDBC_JAR), str(HERE / "drivers" / "JdbcCheck.java"),
                            str(port), ss.DB, table, options])

    ports = compare(cluster, driver_splitpool.port, program, "drv_jdbc")
    check_ports(cluster, ports)
    assert ports["readonly"] in ss.standby_ports(cluster), f"a read-only transaction is balanced: {ports}"
    assert ports["fetchwrite"] == ss.primary_port(cluster), f"a fetch after a write: {ports}"
    assert ports["fetchread"] in ss.standby_ports(cluster), f"a fetch in a transaction that only read: {ports}"
    assert ports["serializable"] == ss.primary_port(cluster), f"a serializable read: {ports}"


def node_postgres():
    """The directory holding node_modules/pg, installing it there first; None with the reason."""
    if (NODE_DIR / "node_modules" / "pg").is_dir():
        return NODE_DIR, ""
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        return None, "node and npm are not installed"
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), "pg@8"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return None, f"npm could not install pg: {proc.stderr.strip()[-400:]}"
    return NODE_DIR, ""


def test_node_postgres_named_statements_transactions_and_balanced_reads(driver_splitpool, cluster):
    where, why = node_postgres()
    if where is None:
        pytest.skip(why)
    env = dict(os.environ, NODE_PATH=str(where / "node_modules"))

    def program(port, table):
        return run_program([shutil.which("node"), str(HERE / "drivers" / "node_check.js"), str(port), ss.DB, table],
                           env=env)

    ports = compare(cluster, driver_splitpool.port, program, "drv_node")
    check_ports(cluster, ports)
    assert ports["seeded"] in ss.standby_ports(cluster), f"the named read outside a transaction: {ports}"
