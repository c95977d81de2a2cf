"""Logging: the logging collector's files and their rotation (by size, by SIGUSR1 after a logrotate-style
mv, by pcp_log_rotate) with every kind of process writing to the new file, log_error_verbosity,
client_min_messages, and log_destination = syslog."""

import os
import re
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from helpers import SPLITPOOL_BIN, connect, psql, wait_until
from test_pcp import pcp, successful, write_pcp_files

# Every process of a running splitpool writes lines: children (log_statement), the parent (reload),
# the PCP process (a failed PCP login), and the health checkers (their failed logins every second;
# the nodes are DISALLOW_TO_FAILOVER, so nothing is detached).
NOISY = {
    "logging_collector": True,
    "log_directory": "logs",
    "log_statement": True,
    "health_check_period": 1,
    "health_check_user": "sp_no_such_user",
    "health_check_max_retries": 0,
    "sr_check_period": 0,
}


def log_files(sp):
    d = sp.dir / "logs"
    return sorted(d.iterdir()) if d.is_dir() else []


def text(path):
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for_line(where, regex, what, timeout=15, poke=None):
    """Waits until the text of `where` (a path, or a function giving the text) has a line matching
    regex; `poke` runs before each look (makes log traffic)."""
    pattern = re.compile(regex, re.M)
    read = where if callable(where) else (lambda: text(where))

    def found():
        if poke:
            poke()
        return pattern.search(read())
    return wait_until(found, timeout, f"{what} in {where}", interval=0.1)


def every_process_writes_to(sp, where, tag):
    """A line of a child, of the parent, of the PCP process and of a health checker reaches `where`."""
    wait_for_line(where, rf"child pid \d+: LOG:  statement: select '{tag}'", "a child's line",
                  poke=lambda: psql(sp.port, f"select '{tag}'"))
    sp.cfg["log_min_messages"] = "info"   # a reload: the parent logs it
    sp.write_config()
    os.kill(sp.pid, signal.SIGHUP)
    wait_for_line(where, r"main pid \d+: LOG:  configuration reloaded", "the parent's line")
    wrong = sp.dir / "wrong.pcppass"
    wrong.write_text("*:*:pcpadmin:not-the-password\n")
    wrong.chmod(0o600)
    pcp(sp, "pcp_node_count", passfile=wrong, check=False)
    wait_for_line(where, r"pcp pid \d+: LOG:  PCP: authentication failed", "the PCP process's line")
    wait_for_line(where, r"health check \d+ pid \d+: LOG:  health check", "a health checker's line")


def start_noisy(splitpool, **overrides):
    sp = splitpool.prepare(**{**NOISY, **overrides})
    write_pcp_files(sp)
    return sp.start()


def test_collector_rotates_by_size(splitpool):
    sp = start_noisy(splitpool, log_filename="sp-%Y%m%d-%H%M%S.log", log_rotation_size="1kB",
                     log_rotation_age=0)
    first = log_files(sp)[0]
    # A new file starts once the current one has 1 kB; the name changes by the second.
    wait_until(lambda: (psql(sp.port, "select 'filling the log file'"), len(log_files(sp)) >= 3)[1], 30,
               "three log files", interval=0.2)
    files = log_files(sp)
    for f in files[:-1]:
        assert f.stat().st_size >= 1024, (f, f.stat().st_size)
        assert text(f).endswith("\n"), f"{f} ends in the middle of a line"
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    every_process_writes_to(sp, lambda: "".join(text(f) for f in log_files(sp) if f != first),
                            "after size rotation")


def test_sigusr1_after_mv_starts_a_new_file(splitpool):
    sp = start_noisy(splitpool, log_filename="splitpool.log", log_rotation_size=0, log_rotation_age=0)
    current = sp.dir / "logs" / "splitpool.log"
    wait_for_line(current, r"splitpool successfully started", "the start line")
    rotated = sp.dir / "logs" / "splitpool.log.1"
    current.rename(rotated)            # what logrotate does, then its postrotate: kill -USR1
    os.kill(sp.pid, signal.SIGUSR1)
    wait_until(current.exists, 10, f"{current} to be created again")
    every_process_writes_to(sp, current, "after mv")
    assert "log rotation requested" in text(rotated)
    assert "statement: select 'after mv'" not in text(rotated)


def test_pcp_log_rotate(splitpool):
    sp = start_noisy(splitpool, log_filename="splitpool.log", log_rotation_size=0, log_rotation_age=0)
    current = sp.dir / "logs" / "splitpool.log"
    wait_for_line(current, r"splitpool successfully started", "the start line")
    current.rename(sp.dir / "logs" / "old.log")
    successful(pcp(sp, "pcp_log_rotate"), "pcp_log_rotate")
    wait_until(current.exists, 10, f"{current} to be created again")
    every_process_writes_to(sp, current, "after pcp_log_rotate")


def test_pcp_log_rotate_without_collector_is_an_error(splitpool):
    sp = splitpool.prepare(health_check_period=0, sr_check_period=0)
    write_pcp_files(sp)
    sp.start()
    proc = pcp(sp, "pcp_log_rotate", check=False)
    assert proc.returncode == 1
    assert "logging_collector is off" in proc.stderr


def test_collector_follows_a_reloaded_log_filename(splitpool):
    sp = start_noisy(splitpool, log_filename="first.log", health_check_period=0)
    first = sp.dir / "logs" / "first.log"
    wait_for_line(first, r"splitpool successfully started", "the start line")
    sp.cfg["log_filename"] = "second.log"
    sp.write_config()
    os.kill(sp.pid, signal.SIGHUP)
    second = sp.dir / "logs" / "second.log"
    wait_for_line(second, r"statement: select 'second'", "a child's line",
                  poke=lambda: psql(sp.port, "select 'second'"))


def test_start_says_where_the_log_goes(splitpool):
    sp = start_noisy(splitpool, log_filename="splitpool.log", health_check_period=0)
    assert re.search(r'LOG:  redirecting log output to the logging collector process: future log output will '
                     r'appear in directory ".*/logs"', sp.log_text()), sp.log_text()


def test_last_lines_are_written_before_exit(splitpool):
    sp = start_noisy(splitpool, log_filename="splitpool.log", health_check_period=0)
    assert sp.stop("fast") == 0
    assert "splitpool is shut down" in text(sp.dir / "logs" / "splitpool.log")


def test_bad_log_directory_fails_the_start(splitpool):
    sp = splitpool.prepare(logging_collector=True, log_directory="/proc/no/such/dir")
    proc = sp.cli("-n", timeout=30)
    assert proc.returncode == 1
    assert 'could not open log file "/proc/no/such/dir/' in proc.output


@pytest.mark.parametrize("verbosity", ["terse", "default", "verbose"])
def test_log_error_verbosity(splitpool, verbosity):
    sp = splitpool(log_error_verbosity=verbosity)
    sp.wait_for_log(r"LOG:  splitpool successfully started")
    has_location = re.search(r"LOCATION:  run, supervisor\.cpp:\d+", sp.log_text()) is not None
    assert has_location == (verbosity == "verbose"), sp.log_tail()


@pytest.mark.parametrize("level,expect_notice", [("notice", True), ("log", True), ("warning", False),
                                                 ("error", False)])
def test_client_min_messages_gates_splitpools_own_notices(splitpool, level, expect_notice):
    sp = splitpool(notice_per_node_statement=True, client_min_messages=level)
    notices = []
    with connect(sp.port) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("select 1")
    assert any(n.startswith("DB node id:") for n in notices) == expect_notice, notices


def test_client_min_messages_rejects_levels_postgres_does_not_take(splitpool):
    sp = splitpool.prepare(client_min_messages="fatal")
    proc = sp.cli("-C")
    assert proc.returncode == 1
    assert "client_min_messages" in proc.output and "debug5, debug4" in proc.output


SYSLOG_SHELL = textwrap.dedent("""\
    set -e
    # A private /dev holding only what splitpool needs, and a /dev/log that is the test's socket.
    mount --bind /dev "$STASH"
    mount -t tmpfs none /dev
    for n in null zero random urandom; do touch /dev/$n; mount --bind "$STASH/$n" /dev/$n; done
    mkdir /dev/shm; mount --bind "$STASH/shm" /dev/shm
    touch /dev/log; mount --bind "$SOCK" /dev/log
    exec "$@"
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace with its own /dev/log")
def test_log_destination_syslog(splitpool):
    import socket
    sp = splitpool.prepare(log_destination="syslog", syslog_ident="sp-test", syslog_facility="LOCAL3")
    sock_path = sp.dir / "devlog.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(20)
    stash = tempfile.mkdtemp(prefix="splitpool-it-dev-", dir="/tmp")
    log = open(sp.log_path, "ab")
    env = {**os.environ, "STASH": stash, "SOCK": str(sock_path)}
    sp.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", SYSLOG_SHELL, "sh",
                                str(SPLITPOOL_BIN), "-n", "-f", str(sp.config_path)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=sp.dir, env=env,
                               start_new_session=True)
    log.close()
    try:
        messages = []
        while not any("successfully started" in m for m in messages):
            messages.append(listener.recv(4096).decode(errors="replace"))
        started = next(m for m in messages if "successfully started" in m)
        # <PRI> = facility LOCAL3 (19) * 8 + NOTICE (5) for a LOG line; the ident and pid follow.
        assert started.startswith("<157>"), started
        assert re.search(r"sp-test\[\d+\]: LOG: splitpool successfully started", started), started
        assert "successfully started" not in sp.log_text()   # stderr is not a destination
    finally:
        listener.close()
        os.rmdir(stash)
