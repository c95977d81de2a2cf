# CPU cgroups for bench.sh: a CPU-capped group per PostgreSQL node (one "machine" each) and an
# accounting-only group per proxy (its CPU seconds). cgroup v2 (cpu.max, cpu.stat) or v1 (cpu +
# cpuacct: cpu.cfs_quota_us/cpu.cfs_period_us, cpuacct.usage), whichever the machine has.
# shellcheck shell=bash
# Sourced, not executed. Every group lives under one parent named after the benchmark's pid, so
# cg_cleanup removes exactly what this run created.

CG_MODE=""      # v1 | v2 | "" (none usable)
CG_PARENTS=()   # the run's parent folder in each hierarchy used
CG_CPU_PARENT="" CG_ACCT_PARENT=""  # the same folders by role (one folder when the controllers share it)
declare -A CG_DIR=()  # group name -> its folders, space-separated

# Finds a usable hierarchy and creates the run's parent group. Returns 1 when none is usable.
cg_setup() {
    local tag="splitpool-bench.$$"
    if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
        mkdir -p "/sys/fs/cgroup/$tag" 2>/dev/null || return 1
        CG_PARENTS=("/sys/fs/cgroup/$tag")
        CG_CPU_PARENT=/sys/fs/cgroup/$tag CG_ACCT_PARENT=/sys/fs/cgroup/$tag
        # Children of the parent get the cpu controller (the parent itself holds no process).
        echo +cpu >"/sys/fs/cgroup/$tag/cgroup.subtree_control" 2>/dev/null || { cg_cleanup; return 1; }
        CG_MODE=v2
    elif [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] && [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
        mkdir -p "/sys/fs/cgroup/cpu/$tag" "/sys/fs/cgroup/cpuacct/$tag" 2>/dev/null || return 1
        CG_PARENTS=("/sys/fs/cgroup/cpu/$tag" "/sys/fs/cgroup/cpuacct/$tag")
        CG_CPU_PARENT=/sys/fs/cgroup/cpu/$tag CG_ACCT_PARENT=/sys/fs/cgroup/cpuacct/$tag
        CG_MODE=v1
    elif [ -f /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us ]; then
        mkdir -p "/sys/fs/cgroup/cpu,cpuacct/$tag" 2>/dev/null || return 1
        CG_PARENTS=("/sys/fs/cgroup/cpu,cpuacct/$tag")
        CG_CPU_PARENT=/sys/fs/cgroup/cpu,cpuacct/$tag CG_ACCT_PARENT=/sys/fs/cgroup/cpu,cpuacct/$tag
        CG_MODE=v1
    else
        return 1
    fi
}

# The folders of group NAME.
cg_dirs() {
    local d
    for d in ${CG_DIR[$1]:-}; do echo "$d"; done
}

# Sets a group folder's scheduling weight to that of N ordinary processes (where it has a cpu controller).
cg_weigh() {
    local d=$1 n=$2
    if [ -f "$d/cpu.weight" ]; then echo $((n * 100 > 10000 ? 10000 : n * 100)) >"$d/cpu.weight"
    elif [ -f "$d/cpu.shares" ]; then echo $((n * 1024)) >"$d/cpu.shares"; fi
}

# cg_new NAME [acct]: a group in every hierarchy; with "acct" only for CPU accounting: with v1's
# separate cpuacct hierarchy it stays out of the cpu one, so its processes are scheduled as ordinary
# processes; where accounting and the cpu controller share a folder it gets the weight of ten.
cg_new() {
    local name=$1 d dirs
    if [ "${2:-}" = acct ]; then dirs="$CG_ACCT_PARENT/$name"
    else dirs="$CG_CPU_PARENT/$name"; [ "$CG_ACCT_PARENT" = "$CG_CPU_PARENT" ] || dirs+=" $CG_ACCT_PARENT/$name"; fi
    for d in $dirs; do mkdir -p "$d" || return 1; done
    CG_DIR[$name]=$dirs
    if [ "${2:-}" = acct ] && [ "$CG_ACCT_PARENT" = "$CG_CPU_PARENT" ]; then cg_weigh "$CG_ACCT_PARENT/$name" 10; fi
    # The run's parent competes with the machine's other processes as one: weigh it as the ten
    # processes of each group inside, so the groups are not starved together.
    CG_GROUPS+=("$name")
    cg_weigh "$CG_CPU_PARENT" $((10 * ${#CG_GROUPS[@]}))
}

# cg_limit NAME CPUS PERIOD_US: at most CPUS (e.g. 0.3) CPUs, enforced every PERIOD_US. The group also
# gets the scheduling weight of ten ordinary processes, so that on a busy machine it still receives
# its quota, as a machine of its own would, instead of competing as one process against all others.
cg_limit() {
    local name=$1 quota
    quota=$(awk -v c="$2" -v p="$3" 'BEGIN { printf "%d", c * p }')
    local d
    for d in $(cg_dirs "$name"); do
        if [ "$CG_MODE" = v2 ]; then
            echo "$quota $3" >"$d/cpu.max" || return 1
        elif [ -f "$d/cpu.cfs_quota_us" ]; then
            # The period first: a quota above the old period's would be refused otherwise.
            { echo "$3" >"$d/cpu.cfs_period_us" && echo "$quota" >"$d/cpu.cfs_quota_us"; } || return 1
        fi
        cg_weigh "$d" 10
    done
}

# The cgroup.procs files a process writes its pid to, to join NAME in every hierarchy.
cg_procs_files() {
    local d
    for d in $(cg_dirs "$1"); do echo "$d/cgroup.procs"; done
}

# cg_add NAME PID...: moves processes (whole thread groups) into NAME; later forks inherit it.
cg_add() {
    local name=$1 f pid
    shift
    for f in $(cg_procs_files "$name"); do
        for pid in "$@"; do echo "$pid" >"$f" 2>/dev/null || true; done
    done
}

cg_pids() {
    cat "$(cg_procs_files "$1" | head -n 1)" 2>/dev/null || true
}

# The file holding NAME's CPU time: v2 cpu.stat (usage_usec), v1 cpuacct.usage (nanoseconds).
cg_usage_file() {
    local d
    d=$(cg_dirs "$1" | tail -n 1)
    if [ "$CG_MODE" = v2 ]; then echo "$d/cpu.stat"; else echo "$d/cpuacct.usage"; fi
}

# CPU time used by the processes of the group whose usage file is FILE, in nanoseconds.
cg_read_usage_ns() {
    case "$1" in
        */cpu.stat) awk '$1 == "usage_usec" { printf "%d", $2 * 1000 }' "$1" ;;
        *) cat "$1" ;;
    esac
}

cg_usage_ns() {
    cg_read_usage_ns "$(cg_usage_file "$1")"
}

# Moves whatever is still inside the run's groups back to the hierarchy's root, then removes them.
cg_cleanup() {
    local p d pid
    for p in "${CG_PARENTS[@]}"; do
        [ -d "$p" ] || continue
        for d in "$p"/*/ "$p/"; do
            [ -f "$d/cgroup.procs" ] || continue
            while read -r pid; do
                echo "$pid" >"$(dirname "$p")/cgroup.procs" 2>/dev/null || true
            done <"$d/cgroup.procs"
        done
        for d in "$p"/*/ "$p"; do
            [ -d "$d" ] || continue
            # A process that was exiting may hold the group for a moment.
            for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$d" 2>/dev/null && break; sleep 0.2; done
            [ -d "$d" ] && echo "bench: could not remove cgroup $d" >&2
        done
    done
    CG_PARENTS=()
    CG_GROUPS=()
    CG_DIR=()
    return 0
}
