"""Measures the prefork model: time from exec to the listening socket and to the last child in the
shared-memory child table, and what each idle child costs (Pss, Rss, private dirty, page tables).

Used by scripts/prefork_scale.sh (1000 children, prints the numbers) and test_prefork.py (make check,
fewer children, asserts on memory only). The child table is read straight from /dev/shm; its offsets
come from shm/layout.hpp through a tiny helper compiled on first use, so they never drift."""

import mmap
import os
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from helpers import wait_until

REPO = Path(__file__).resolve().parents[2]

_LAYOUT_PROBE = r"""
#include <cstddef>
#include <cstdio>
#include "shm/layout.hpp"
using namespace splitpool::shm;
int main() {
    std::printf("%zu %zu %zu %zu\n", kChildrenOffset, sizeof(ChildSlot), offsetof(ChildSlot, pid),
                offsetof(ChildSlot, state));
}
"""


def child_table_layout():
    """(children offset, slot size, pid offset, state offset) as compiled from shm/layout.hpp."""
    layout = REPO / "shm" / "layout.hpp"
    out = Path(tempfile.gettempdir()) / f"splitpool-layout-probe-{os.getuid()}-{int(layout.stat().st_mtime)}"
    if not out.exists():
        src = out.with_suffix(".cpp")
        src.write_text(_LAYOUT_PROBE)
        subprocess.run([os.environ.get("CXX", "g++"), "-std=c++20", "-I", str(REPO), str(src), "-o", str(out)],
                       check=True, capture_output=True, timeout=120)
    return tuple(int(x) for x in subprocess.run([str(out)], check=True, capture_output=True,
                                                 text=True).stdout.split())


class ChildTable:
    """Read-only view of /dev/shm/splitpool.PORT's child slots."""

    def __init__(self, port):
        self.path = f"/dev/shm/splitpool.{port}"
        self.offset, self.size, self.pid_off, self.state_off = child_table_layout()
        self.map = None

    def open(self):
        if self.map is None:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return False
            try:
                if os.fstat(fd).st_size < self.offset:
                    return False
                self.map = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
        return True

    def num_children(self):
        return struct.unpack_from("<I", self.map, 12)[0]  # Header.num_children

    def pids(self):
        """Pids of the slots whose child is up and waiting for a client (state WaitingForClient = 1)."""
        out = []
        for i in range(self.num_children()):
            base = self.offset + i * self.size
            pid = struct.unpack_from("<i", self.map, base + self.pid_off)[0]
            if pid > 0 and self.map[base + self.state_off] == 1:
                out.append(pid)
        return out

    def close(self):
        if self.map is not None:
            self.map.close()
            self.map = None


def listening(port):
    """True once 127.0.0.1:port (or any address) is in LISTEN state."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            continue
    return False


def memory_of(pid):
    """kB figures of one process: Pss, Rss, Private_Dirty (smaps_rollup) and VmPTE (status)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Pss:", "Rss:", "Private_Dirty:", "Private_Clean:", "Shared_Dirty:"):
                out[parts[0][:-1]] = int(parts[1])
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmPTE:"):
                out["VmPTE"] = int(line.split()[1])
    return out


def cpu_seconds(pid):
    """CPU time of one process in seconds, from /proc/PID/schedstat (nanoseconds): utime and stime
    in /proc/PID/stat are sampled at clock ticks and read 0 for a child that starts in ~1 ms."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def config_text(port, num_children, workdir, backend_port, extra=None):
    cfg = {
        "listen_addresses": '"127.0.0.1"',
        "port": str(port),
        "pcp_port": str(port + 1),
        "unix_socket_directories": f'"{workdir}"',
        "pcp_socket_dir": f'"{workdir}"',
        "num_init_children": str(num_children),
        "pid_file_name": '"splitpool.pid"',
        "logdir": '"."',
        "allow_clear_text_frontend_auth": "true",
        "log_min_messages": '"warning"',
    }
    cfg.update(extra or {})
    body = "".join(f"{k} = {v}\n" for k, v in cfg.items())
    return body + (f'\n[[backend]]\nhostname = "127.0.0.1"\nport = {backend_port}\nweight = 1\n'
                   'flag = ["ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"]\n')


def wait_for(predicate, timeout, what, interval=0.01):
    """helpers.wait_until, polled more often: start-up times are what this measures."""
    return wait_until(predicate, timeout, what, interval)


def median(values):
    s = sorted(values)
    return s[len(s) // 2] if s else 0


def measure(binary, port, num_children, backend_port, workdir, timeout=300, extra=None):
    """Starts splitpool in the foreground, waits for every child, measures, stops it (SIGINT).
    Returns a dict of results; the process is always stopped."""
    config = Path(workdir) / "splitpool.toml"
    config.write_text(config_text(port, num_children, workdir, backend_port, extra))
    log = open(Path(workdir) / "splitpool.log", "ab")
    table = ChildTable(port)
    t0 = time.monotonic()
    proc = subprocess.Popen([str(binary), "-n", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    log.close()
    result = {"children": num_children}
    try:
        def alive_and(cond):
            if proc.poll() is not None:
                raise AssertionError(f"splitpool exited with {proc.returncode}; see {workdir}/splitpool.log")
            return cond()
        wait_for(lambda: alive_and(lambda: listening(port)), timeout, f"port {port} to listen")
        result["listen_s"] = time.monotonic() - t0
        wait_for(lambda: alive_and(table.open), timeout, "the shared-memory segment")
        pids = wait_for(lambda: alive_and(lambda: (p := table.pids()) and len(p) == num_children and p),
                        timeout, f"{num_children} children in the child table")
        result["all_children_s"] = time.monotonic() - t0
        result["parent_cpu_s"] = cpu_seconds(proc.pid)
        result["children_cpu_s"] = sum(cpu_seconds(p) for p in pids)
        # The children may still be settling (the last ones just wrote their slot); two readings a
        # moment apart that agree within 2% are taken as the idle figure.
        samples = []
        for _ in range(10):
            mem = [memory_of(p) for p in pids]
            samples.append(mem)
            if len(samples) >= 2:
                a = sum(m["Pss"] for m in samples[-2])
                b = sum(m["Pss"] for m in samples[-1])
                if abs(a - b) <= 0.02 * max(a, b):
                    break
            time.sleep(0.2)
        mem = samples[-1]
        for key in ("Pss", "Rss", "Private_Dirty", "VmPTE"):
            result[key] = median([m.get(key, 0) for m in mem])
        result["Pss_mean"] = sum(m["Pss"] for m in mem) / len(mem)
        result["parent"] = memory_of(proc.pid)
    finally:
        table.close()
        if proc.poll() is None:
            proc.send_signal(2)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
    return result
