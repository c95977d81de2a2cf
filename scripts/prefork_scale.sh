#!/usr/bin/env bash
# Measures the prefork model at scale: time from exec to the listening socket and to the last child
# in the shared-memory child table, CPU spent forking, and what each idle child costs (Pss, Rss,
# private dirty, page tables; medians over the children, from /proc/PID/smaps_rollup).
#   scripts/prefork_scale.sh                 1000 children of bin/splitpool on port 27200, 3 runs
# Env: CHILDREN (1000), RUNS (3), PORT (27200; PORT+1 for PCP), SPLITPOOL_BIN (bin/splitpool),
#      BASELINE_BIN (a second binary measured in the same runs, interleaved), BACKEND_PORT (any port:
#      idle children never connect; 27999).
# No PostgreSQL is needed. Wall-clock times depend on the machine's load: the CPU seconds beside
# them (the parent's, all children's) are the figures to compare between builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=$(mktemp -d /tmp/splitpool-prefork-XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$repo" "$work" <<'PY'
import os, sys
repo, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(repo, "test", "integration"))
import prefork

children = int(os.environ.get("CHILDREN", "1000"))
runs = int(os.environ.get("RUNS", "3"))
port = int(os.environ.get("PORT", "27200"))
backend = int(os.environ.get("BACKEND_PORT", "27999"))
targets = [("splitpool", os.environ.get("SPLITPOOL_BIN", os.path.join(repo, "bin", "splitpool")))]
if os.environ.get("BASELINE_BIN"):
    targets.append(("baseline", os.environ["BASELINE_BIN"]))
print(f"{children} children, {runs} runs, load average {os.getloadavg()[0]:.1f} at start")
print(f"{'target':<10} {'run':>3} {'listen s':>9} {'all up s':>9} {'parent cpu':>10} {'children cpu':>12} "
      f"{'Pss kB':>7} {'Rss kB':>7} {'PrivDirty':>9} {'VmPTE':>6}")
for run in range(runs):
    for name, binary in targets:
        d = os.path.join(work, f"{name}-{run}")
        os.makedirs(d)
        r = prefork.measure(binary, port, children, backend, d)
        print(f"{name:<10} {run:>3} {r['listen_s']:>9.3f} {r['all_children_s']:>9.3f} {r['parent_cpu_s']:>10.2f} "
              f"{r['children_cpu_s']:>12.2f} {r['Pss']:>7} {r['Rss']:>7} {r['Private_Dirty']:>9} {r['VmPTE']:>6}",
              flush=True)
print(f"load average {os.getloadavg()[0]:.1f} at end")
PY
