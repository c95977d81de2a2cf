#!/usr/bin/env bash
# Benchmark: pgbench against PostgreSQL directly and through splitpool, PgBouncer and pgpool-II, same nodes.
# Env: BENCH_NODES: primary (default: one node, every process on the same cores) | colocated (primary + 2
#        streaming standbys, uncapped) | capped (the same three nodes, each node's postmaster and children
#        in its own CPU-limited cgroup, BENCH_NODE_CPU (0.3) CPUs per BENCH_CPU_PERIOD_US (10000): one
#        machine per node; clients and proxies outside those groups).
#      BENCH_WEIGHTS (capped: "1:1:1 1:2:2", colocated: "1:2:2"; node0:node1:node2, one run per set),
#      BENCH_SECONDS (10) per run, BENCH_ROUNDS (3, median taken, min-max shown), BENCH_CLIENTS (a list;
#      capped: "8 24", else "8"), BENCH_THREADS (2), BENCH_SCALE (10), BENCH_WORKLOADS (see below),
#      BENCH_OUT (bench-results.md), BENCH_TARGETS (direct relay splitpool pgbouncer pgpool),
#      SPLITPOOL_BIN (bin/splitpool), BASELINE_BIN (another splitpool build, e.g. the previous commit's:
#      adds the target "baseline", so a change is measured against what it replaces in the same run),
#      BENCH_COST (1: measure the proxies' own cost; 0: skip), BENCH_RATE (1000 tx/s offered by
#      pgbench -R for it), BENCH_COST_SECONDS (8), BENCH_COST_CLIENTS (8).
# Ports: PostgreSQL 16432 (standbys 16433, 16434), splitpool 16500, PgBouncer 16501, pgpool-II 16502
#        (pcp 16503), relay 16504, baseline 16505.
# "relay" is scripts/bench_relay.c, a fork-per-client byte copier: the ceiling of any prefork proxy here.
# With standbys the log also says, per run, where the clients' sessions were halfway through it
# ("sessions per node 2/3/3": backends of each node that ran a statement in the last 0.5 s).
# Direct, relay and PgBouncer use the primary only; splitpool and pgpool-II balance reads by the weights.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
# shellcheck source=scripts/bench_cgroup.sh
. "$here/bench_cgroup.sh"

MODE=${BENCH_NODES:-primary}
case "$MODE" in
    primary) NREPLICAS=0 DEFAULT_WEIGHTS=1 DEFAULT_CLIENTS=8
        DEFAULT_WORKLOADS="select-simple select-prepared tpcb-like select-connect select-latency" ;;
    colocated) NREPLICAS=2 DEFAULT_WEIGHTS=1:2:2 DEFAULT_CLIENTS=8
        DEFAULT_WORKLOADS="select-simple select-prepared tpcb-like select-connect select-latency" ;;
    capped) NREPLICAS=2 DEFAULT_WEIGHTS="1:1:1 1:2:2" DEFAULT_CLIENTS="8 24"
        DEFAULT_WORKLOADS="select-simple read-write-90-10 tpcb-like" ;;
    *) echo "bench: BENCH_NODES must be primary, colocated or capped, not '$MODE'" >&2; exit 2 ;;
esac
NODE_CPU=${BENCH_NODE_CPU:-0.3}
CPU_PERIOD_US=${BENCH_CPU_PERIOD_US:-10000}
read -r -a WEIGHT_SETS <<<"${BENCH_WEIGHTS:-$DEFAULT_WEIGHTS}"
read -r -a CLIENT_COUNTS <<<"${BENCH_CLIENTS:-$DEFAULT_CLIENTS}"
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-$DEFAULT_WORKLOADS}"
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-2}
SCALE=${BENCH_SCALE:-10}
OUT=${BENCH_OUT:-bench-results.md}
BIN=${SPLITPOOL_BIN:-$repo/bin/splitpool}
BASELINE_BIN=${BASELINE_BIN:-}
COST_ON=${BENCH_COST:-1}
RATE=${BENCH_RATE:-1000}
COST_SECONDS=${BENCH_COST_SECONDS:-8}
COST_CLIENTS=${BENCH_COST_CLIENTS:-8}
read -r -a WANTED <<<"${BENCH_TARGETS:-direct relay splitpool ${BASELINE_BIN:+baseline} pgbouncer pgpool}"
PG_PORT=16432
declare -A PORT=([direct]=$PG_PORT [splitpool]=16500 [pgbouncer]=16501 [pgpool]=16502 [relay]=16504 [baseline]=16505)
PCP_PORT=16503
DB=bench
WEIGHTS=""  # the weight set the running proxies use, e.g. 1:2:2

# Workload -> pgbench arguments; the custom scripts are written into $WORK by write_scripts.
declare -A WORKLOAD_ARGS=(
    [select-simple]="-S"
    [select-prepared]="-S -M prepared"
    [tpcb-like]=""
    [select-connect]="-S -C"
    [select-latency]="-S"
    [read-write-90-10]="-f @WORK@/read.sql@9 -f @WORK@/write.sql@1"
)
# Workloads with their own client count (-c 1 measures latency, not throughput).
declare -A WORKLOAD_CLIENTS=([select-latency]=1)

export PGCONNECT_TIMEOUT=5 PGGSSENCMODE=disable
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS

WORK=""
declare -A SERVER_PID=()
TARGETS=()

log() { echo "bench: $*" >&2; }

# ------------------------------------------------------------------ process control

# Starts a server in its own session (Ctrl-C in the terminal does not reach it; cleanup decides),
# as postgres when root if asked, inside the accounting cgroup "proxy-NAME" when there is one (joined
# before exec, so every process it forks is counted); exec chains keep $! equal to the server's pid.
spawn() {
    local name=$1 as_postgres=$2 logfile=$3 files=""
    shift 3
    if [ -n "$CG_MODE" ] && cg_new "proxy-$name" acct; then files=$(cg_procs_files "proxy-$name" | tr '\n' ' '); fi
    # shellcheck disable=SC2016 # expanded by the inner shell
    local join='for f in $0; do echo $$ >"$f"; done; exec "$@"'
    if [ "$as_postgres" = yes ] && [ "$(id -u)" = 0 ]; then
        setsid sh -c "$join" "$files" setpriv --reuid=postgres --regid=postgres --init-groups "$@" \
            >>"$logfile" 2>&1 </dev/null &
    else
        setsid sh -c "$join" "$files" "$@" >>"$logfile" 2>&1 </dev/null &
    fi
    SERVER_PID[$name]=$!
}

stop_server() {
    local name=$1 sig=$2 pid=${SERVER_PID[$1]:-}
    [ -n "$pid" ] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    local deadline=$(($(date +%s) + 15))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    # The server led its own process group: take any leftover children with it.
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "SERVER_PID[$name]"
}

stop_targets() {
    stop_server splitpool INT
    stop_server baseline INT
    stop_server pgbouncer TERM
    stop_server pgpool INT
    stop_server relay TERM
    TARGETS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_targets
    if [ -n "$WORK" ]; then
        "$here/pg_cluster.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
    fi
    cg_cleanup
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    exit "$rc"
}

answers() {
    local port=$1
    [ "$(psql -X -A -t -w -h 127.0.0.1 -p "$port" -U postgres -d "$DB" -c 'select 1' 2>/dev/null)" = 1 ]
}

# Waits until the target answers; on failure prints why and the log tail, and returns 1.
wait_target() {
    local name=$1 logfile=$2 deadline=$(($(date +%s) + 20))
    until answers "${PORT[$name]}"; do
        if ! kill -0 "${SERVER_PID[$name]}" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
            log "skipping $name: it did not answer on port ${PORT[$name]}; last log lines:"
            tail -n 15 "$logfile" | sed 's/^/    /' >&2
            return 1
        fi
        sleep 0.1
    done
}

port_free() {
    ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# ------------------------------------------------------------------ nodes

# Weight of node K in the current weight set (a missing entry counts 1).
weight_of() {
    local k=$1 w
    IFS=: read -r -a w <<<"$WEIGHTS"
    echo "${w[$k]:-1}"
}

# Capped mode: each node's postmaster, and the children it has already forked, into its own CPU-limited
# group; the children it forks later (backends, walsenders) inherit the group.
cap_nodes() {
    local k pm
    for ((k = 0; k <= NREPLICAS; k++)); do
        pm=$(head -n 1 "$WORK/pg/node$k/postmaster.pid")
        { cg_new "node$k" && cg_limit "node$k" "$NODE_CPU" "$CPU_PERIOD_US"; } || { log "cannot limit node$k"; exit 1; }
        cg_add "node$k" "$pm"
        # shellcheck disable=SC2046 # one pid per word
        cg_add "node$k" $(ps -o pid= --ppid "$pm")
        log "node$k (postmaster $pm, port $((PG_PORT + k))): $NODE_CPU CPU per ${CPU_PERIOD_US}us ($CG_MODE)"
    done
}

start_nodes() {
    "$here/pg_cluster.sh" start "$WORK/pg" "$PG_PORT" "$NREPLICAS" >/dev/null
    psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "create database $DB"
    log "pgbench -i -s $SCALE"
    pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB" >"$WORK/init.log" 2>&1 ||
        { cat "$WORK/init.log" >&2; exit 1; }
    local k lsn
    lsn=$(psql -X -A -t -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'select pg_current_wal_insert_lsn()')
    for ((k = 1; k <= NREPLICAS; k++)); do
        until [ "$(psql -X -A -t -h 127.0.0.1 -p $((PG_PORT + k)) -U postgres -d postgres \
                -c "select pg_last_wal_replay_lsn() >= '$lsn'")" = t ]; do sleep 0.2; done
    done
    if [ "$MODE" = capped ]; then cap_nodes; fi
}

write_scripts() {
    cat >"$WORK/read.sql" <<'EOF'
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOF
    cat >"$WORK/write.sql" <<'EOF'
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
EOF
    local w
    for w in "${!WORKLOAD_ARGS[@]}"; do WORKLOAD_ARGS[$w]=${WORKLOAD_ARGS[$w]//@WORK@/$WORK}; done
}

# ------------------------------------------------------------------ targets

splitpool_backends() {
    local k flag
    for ((k = 0; k <= NREPLICAS; k++)); do
        flag='"DISALLOW_TO_FAILOVER"'
        [ "$k" = 0 ] && flag='"ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"'
        printf '\n[[backend]]\nhostname = "127.0.0.1"\nport = %s\nweight = %s\nflag = [%s]\napplication_name = "node%s"\n' \
            $((PG_PORT + k)) "$(weight_of "$k")" "$flag" "$k"
    done
}

# start_splitpool [name binary pcp_port]: the same configuration for splitpool and the baseline build.
start_splitpool() {
    local name=${1:-splitpool} bin=${2:-$BIN} pcp=${3:-16510}
    local dir=$WORK/$name
    [ -x "$bin" ] || { log "skipping $name: $bin not found (run make)"; return 1; }
    mkdir -p "$dir"
    {
        cat <<EOF
listen_addresses = "127.0.0.1"
port = ${PORT[$name]}
unix_socket_directories = "$dir"
pcp_port = $pcp
pcp_socket_dir = "$dir"
pid_file_name = "splitpool.pid"
logdir = "$dir"
num_init_children = 32
max_pool = 4
allow_clear_text_frontend_auth = true
log_min_messages = "warning"
log_connections = false
log_disconnections = false
sr_check_period = 0
EOF
        splitpool_backends
    } >"$dir/splitpool.toml"
    spawn "$name" no "$dir/splitpool.log" "$bin" -n -f "$dir/splitpool.toml"
    wait_target "$name" "$dir/splitpool.log"
}

start_pgbouncer() {
    local dir=$WORK/pgbouncer
    command -v pgbouncer >/dev/null || { log "skipping pgbouncer: not installed"; return 1; }
    mkdir -p "$dir"
    echo '"postgres" ""' >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT[pgbouncer]}
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = session
default_pool_size = 40
max_client_conn = 200
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir"; fi
    spawn pgbouncer yes "$dir/stderr.log" pgbouncer "$dir/pgbouncer.ini"
    wait_target pgbouncer "$dir/pgbouncer.log"
}

pgpool_backends() {
    local k flag
    for ((k = 0; k <= NREPLICAS; k++)); do
        flag=DISALLOW_TO_FAILOVER
        [ "$k" = 0 ] && flag='ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER'
        printf "backend_hostname%s = '127.0.0.1'\nbackend_port%s = %s\nbackend_weight%s = %s\nbackend_flag%s = '%s'\n" \
            "$k" "$k" $((PG_PORT + k)) "$k" "$(weight_of "$k")" "$k" "$flag"
    done
}

start_pgpool() {
    local dir=$WORK/pgpool balance=off
    [ -x /usr/sbin/pgpool ] || { log "skipping pgpool: /usr/sbin/pgpool not installed"; return 1; }
    if [ "$NREPLICAS" -gt 0 ]; then balance=on; fi
    mkdir -p "$dir"
    : >"$dir/pcp.conf"
    {
        cat <<EOF
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = ${PORT[pgpool]}
socket_dir = '$dir'
pcp_listen_addresses = '127.0.0.1'
pcp_port = $PCP_PORT
pcp_socket_dir = '$dir'
pid_file_name = '$dir/pgpool.pid'
logdir = '$dir'
log_destination = 'stderr'
log_min_messages = warning
num_init_children = 32
max_pool = 4
connection_cache = on
enable_pool_hba = off
pool_passwd = ''
load_balance_mode = $balance
sr_check_period = 0
health_check_period = 0
failover_on_backend_error = off
use_watchdog = off
memory_cache_enabled = off
EOF
        pgpool_backends
    } >"$dir/pgpool.conf"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir"; fi
    spawn pgpool yes "$dir/pgpool.log" /usr/sbin/pgpool -n -f "$dir/pgpool.conf" -F "$dir/pcp.conf"
    wait_target pgpool "$dir/pgpool.log"
}

start_relay() {
    local dir=$WORK/relay
    mkdir -p "$dir"
    cc -O2 -o "$dir/bench_relay" "$here/bench_relay.c" 2>"$dir/build.log" ||
        { log "skipping relay: it did not compile"; cat "$dir/build.log" >&2; return 1; }
    spawn relay no "$dir/relay.log" "$dir/bench_relay" "${PORT[relay]}" "$PG_PORT"
    wait_target relay "$dir/relay.log"
}

start_targets() {
    local name
    for name in "${WANTED[@]}"; do
        if [ "$name" != direct ] && ! port_free "${PORT[$name]}"; then
            log "skipping $name: port ${PORT[$name]} is in use"
            continue
        fi
        case "$name" in
            direct) TARGETS+=(direct) ;;
            splitpool) if start_splitpool; then TARGETS+=(splitpool); else stop_server splitpool INT; fi ;;
            baseline)
                if start_splitpool baseline "$BASELINE_BIN" 16511; then TARGETS+=(baseline); else stop_server baseline INT; fi ;;
            pgbouncer) if start_pgbouncer; then TARGETS+=(pgbouncer); else stop_server pgbouncer TERM; fi ;;
            pgpool) if start_pgpool; then TARGETS+=(pgpool); else stop_server pgpool INT; fi ;;
            relay) if start_relay; then TARGETS+=(relay); else stop_server relay TERM; fi ;;
            *) log "unknown target $name" ;;
        esac
    done
}

# ------------------------------------------------------------------ measuring throughput

# node_sessions: "n0/n1/n2", each node's backends in the bench database that ran a statement in the
# last 0.5 s: where a balancing proxy placed the clients' sessions (pooled idle backends do not count).
node_sessions() {
    local k n out=""
    for ((k = 0; k <= NREPLICAS; k++)); do
        n=$(psql -X -A -t -h 127.0.0.1 -p $((PG_PORT + k)) -U postgres -d postgres -c "select count(*) from
            pg_stat_activity where datname = '$DB' and now() - state_change < interval '0.5 s'" 2>/dev/null) || n='?'
        out+="${out:+/}$n"
    done
    echo "$out"
}

# run_pgbench TARGET WORKLOAD CLIENTS: prints the TPS of one run, or "fail". With standbys, the log
# also gets where the sessions were halfway through the run.
run_pgbench() {
    local target=$1 workload=$2 clients=${WORKLOAD_CLIENTS[$2]:-$3} out threads=$THREADS probe=""
    [ "$threads" -le "$clients" ] || threads=$clients
    if [ "$NREPLICAS" -gt 0 ] && [ "$workload" != select-connect ]; then
        probe=$WORK/sessions.$$
        (sleep "$(awk -v s="$SECONDS_PER_RUN" 'BEGIN { print s / 2 }')"; node_sessions >"$probe") &
    fi
    # shellcheck disable=SC2086
    if out=$(pgbench -n ${WORKLOAD_ARGS[$workload]} -c "$clients" -j "$threads" -T "$SECONDS_PER_RUN" \
            -h 127.0.0.1 -p "${PORT[$target]}" -U postgres "$DB" 2>&1); then
        if [ -n "$probe" ]; then wait; log "$target $workload c=$clients: sessions per node $(cat "$probe" 2>/dev/null)"; fi
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1
    else
        log "pgbench $workload via $target failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
        echo fail
    fi
}

# stats V...: "median min max" of the numeric values ("fail fail fail" when none).
stats() {
    local vals
    vals=$(tr ' ' '\n' <<<"$*" | grep -v '^fail$' | grep . | sort -g) || true
    [ -n "$vals" ] || { echo fail fail fail; return; }
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }' <<<"$vals"
}

median_of() { cut -d' ' -f1 <<<"${1:-fail}"; }

declare -A RESULT=()  # "weights,clients,workload,target" -> "median min max"

# One weight set: every workload and client count, rounds interleaved over the targets.
measure() {
    local clients workload round target tps key
    declare -A samples=()
    for clients in "${CLIENT_COUNTS[@]}"; do
        for workload in "${WORKLOADS[@]}"; do
            # A workload with its own client count is measured once, at the first count.
            if [ -n "${WORKLOAD_CLIENTS[$workload]:-}" ] && [ "$clients" != "${CLIENT_COUNTS[0]}" ]; then continue; fi
            samples=()
            for ((round = 1; round <= ROUNDS; round++)); do
                # Each round starts one target later, so no target always runs right after the same one
                # (right after direct's fresh backends, or after another target's writes are replayed).
                local -a order=("${TARGETS[@]:$(((round - 1) % ${#TARGETS[@]}))}" "${TARGETS[@]:0:$(((round - 1) % ${#TARGETS[@]}))}")
                for target in "${order[@]}"; do
                    tps=$(run_pgbench "$target" "$workload" "$clients")
                    log "[$WEIGHTS c=$clients] round $round/$ROUNDS $workload via $target: $tps tps"
                    samples[$target]="${samples[$target]:-} $tps"
                done
            done
            for key in "${!samples[@]}"; do
                # shellcheck disable=SC2086 # one word per sample
                RESULT[$WEIGHTS,$clients,$workload,$key]=$(stats ${samples[$key]})
            done
        done
    done
}

# capacity WEIGHTS CLIENTS WORKLOAD: what one node was seen to do: the best median among the targets
# that use the primary alone (direct, relay, PgBouncer). Direct alone understates it on a capped node:
# with every client's backend runnable at once, the quota's throttling preempts lock holders.
capacity() {
    local t m best=fail
    for t in direct relay pgbouncer; do
        m=$(median_of "${RESULT[$1,$2,$3,$t]:-}")
        [ "$m" = fail ] && continue
        if [ "$best" = fail ] || awk -v a="$m" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=$m; fi
    done
    echo "$best"
}

# ideal WEIGHTS CLIENTS WORKLOAD: the TPS the nodes could give together with these weights, each node
# with the primary's capacity R for -S reads; reads split by weight, writes only on the primary, the
# busiest node sets the rate. read-write-90-10's writes cost the primary 1/M - 0.9/R per transaction,
# M being the primary's capacity for the whole mix. Empty when unknown.
ideal() {
    local weights=$1 clients=$2 workload=$3 reads mix=0
    reads=$(capacity "$weights" "$clients" select-simple)
    case "$workload" in
        select-simple | select-prepared) ;;
        read-write-90-10) mix=$(capacity "$weights" "$clients" "$workload") ;;
        tpcb-like) reads=$(capacity "$weights" "$clients" tpcb-like) ;;
        *) return 0 ;;
    esac
    [ "$reads" != fail ] && [ "$mix" != fail ] || return 0
    awk -v ws="$weights" -v r="$reads" -v m="$mix" -v wl="$workload" -v n=$((NREPLICAS + 1)) 'BEGIN {
        if (wl == "tpcb-like") { printf "%.0f", r; exit }  # every statement of it needs the primary
        split(ws, wt, ":"); total = 0
        for (k = 1; k <= n; k++) { if (wt[k] == "") wt[k] = 1; total += wt[k] }
        rf = (wl == "read-write-90-10") ? 0.9 : 1.0; worst = 0
        writes = (rf < 1) ? 1 / m - rf / r : 0
        if (writes < 0) writes = 0
        for (k = 1; k <= n; k++) {
            load = rf * wt[k] / total / r        # node-seconds per transaction, in 1/capacity units
            if (k == 1) load += writes
            if (load > worst) worst = load
        }
        printf "%.0f", 1 / worst }'
}

# ------------------------------------------------------------------ measuring the proxies' own cost

PERF_OK=0
declare -A COST=()  # "target,metric" -> "median min max"

# Context switches of the processes (all threads) so far, from /proc (when perf is unusable).
proc_ctxt() {
    local pid
    for pid in "$@"; do cat /proc/"$pid"/task/*/status 2>/dev/null; done |
        awk '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}

# snapshot USAGE_FILE PIDS...: "epoch_seconds cpu_ns system_ctxt proxy_ctxt" now ("-" where unknown).
snapshot() {
    local file=$1 cpu=- pcs=-
    shift
    if [ -n "$file" ]; then cpu=$(cg_read_usage_ns "$file"); fi
    if [ $# -gt 0 ]; then pcs=$(proc_ctxt "$@"); fi
    echo "$(date +%s.%N) $cpu $(awk '$1 == "ctxt" { print $2 }' /proc/stat) $pcs"
}

# cost_run TARGET ROUND: one pgbench -S run at the offered rate; a window of COST_SECONDS in its middle
# (every connection made) is measured: the window's timestamps, CPU and context-switch readings are
# taken by the command perf stat times, so every count covers the same interval. Prints
# "tps cpu_s_per_1000tx proxy_cs_per_tx proxy_syscalls_per_tx system_cs_per_tx" ("-" where unknown).
cost_run() {
    local target=$1 dir=$WORK/cost/$1.$2 pids=() file="" pcs=- psys=- bench
    mkdir -p "$dir"
    (cd "$dir" && exec pgbench -n -S -R "$RATE" -c "$COST_CLIENTS" -j "$THREADS" -T $((COST_SECONDS + 3)) \
        -l --log-prefix=tx -h 127.0.0.1 -p "${PORT[$target]}" -U postgres "$DB") >"$dir/out" 2>&1 &
    bench=$!
    sleep 1.5
    if [ "$target" != direct ] && [ -n "$CG_MODE" ]; then
        mapfile -t pids < <(cg_pids "proxy-$target")
        file=$(cg_usage_file "proxy-$target")
    fi
    local -a window=(snapshot "$file" "${pids[@]}")
    if [ "${#pids[@]}" -gt 0 ] && [ "$PERF_OK" = 1 ]; then
        window=(snapshot "$file")  # perf counts the switches
        perf stat -x, -e context-switches,raw_syscalls:sys_enter -o "$dir/perf" -p "$(IFS=,; echo "${pids[*]}")" \
            -- bash -c "$(declare -f snapshot proc_ctxt cg_read_usage_ns); ${window[*]@Q} >'$dir/w0'; sleep $COST_SECONDS; ${window[*]@Q} >'$dir/w1'" \
            2>/dev/null || true
        pcs=$(awk -F, '$3 == "context-switches" { print $1 }' "$dir/perf")
        psys=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$dir/perf")
    else
        "${window[@]}" >"$dir/w0"
        sleep "$COST_SECONDS"
        "${window[@]}" >"$dir/w1"
    fi
    wait "$bench" || log "cost run via $target: pgbench failed: $(tail -n 2 "$dir/out" | tr '\n' ' ')"
    local t0 u0 c0 p0 t1 u1 c1 p1
    read -r t0 u0 c0 p0 <"$dir/w0" || { echo "fail - - - -"; return; }
    read -r t1 u1 c1 p1 <"$dir/w1" || { echo "fail - - - -"; return; }
    if [ "$pcs" = - ] && [ "$p0" != - ]; then pcs=$((p1 - p0)); fi
    # Transactions completed inside the window, from pgbench's per-transaction log (epoch s, us).
    cat "$dir"/tx.* 2>/dev/null | awk -v a="$t0" -v b="$t1" -v u0="$u0" -v u1="$u1" -v c0="$c0" -v c1="$c1" \
            -v pcs="${pcs:--}" -v psys="${psys:--}" '
        { t = $5 + $6 / 1e6; if (t >= a && t < b) n++ }
        END {
            if (n == 0) { print "fail - - - -"; exit }
            cpu = (u0 ~ /^[0-9]+$/) ? sprintf("%.4f", (u1 - u0) / 1e9 / n * 1000) : "-"
            cs = (pcs ~ /^[0-9]+$/) ? sprintf("%.2f", pcs / n) : "-"
            sc = (psys ~ /^[0-9]+$/) ? sprintf("%.2f", psys / n) : "-"
            printf "%.0f %s %s %s %.2f\n", n / (b - a), cpu, cs, sc, (c1 - c0) / n }'
}

measure_cost() {
    local round target name k
    local -a vals metrics=(tps cpu cs sys syscs)
    declare -A samples=()
    if perf stat -e context-switches,raw_syscalls:sys_enter true >/dev/null 2>&1; then PERF_OK=1; fi
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in "${TARGETS[@]}"; do
            read -r -a vals <<<"$(cost_run "$target" "$round")"
            log "cost round $round/$ROUNDS via $target at $RATE tx/s: ${vals[*]}"
            for k in 0 1 2 3 4; do samples[$target,${metrics[$k]}]="${samples[$target,${metrics[$k]}]:-} ${vals[$k]/-/fail}"; done
        done
    done
    for name in "${!samples[@]}"; do
        # shellcheck disable=SC2086 # one word per sample
        COST[$name]=$(stats ${samples[$name]})
    done
}

# ------------------------------------------------------------------ report

# cell "median min max" [DIRECT] [IDEAL]: "TPS [min-max] (x.xx×, 0.xx ideal)".
cell() {
    local m lo hi
    read -r m lo hi <<<"${1:-fail}"
    if [ "$m" = fail ]; then echo "failed"; return; fi
    awk -v m="$m" -v lo="$lo" -v hi="$hi" -v d="${2:-}" -v i="${3:-}" 'BEGIN {
        s = sprintf("%.0f [%.0f-%.0f]", m, lo, hi); r = ""
        if (d != "" && d != "fail" && d > 0) r = sprintf("%.2f×", m / d)
        if (i != "" && i > 0) r = r (r == "" ? "" : ", ") sprintf("%.2f ideal", m / i)
        print s (r == "" ? "" : " (" r ")") }'
}

# value "median min max" FORMAT: the median, with the spread when the rounds differ.
value() {
    local m lo hi
    read -r m lo hi <<<"${1:-fail}"
    if [ "$m" = fail ]; then echo "-"; return; fi
    awk -v m="$m" -v lo="$lo" -v hi="$hi" -v f="$2" 'BEGIN {
        s = sprintf(f, m); if (lo != hi) s = s " [" sprintf(f, lo) "-" sprintf(f, hi) "]"; print s }'
}

throughput_table() {
    local weights=$1 clients=$2 workload target line header="| workload | ideal |" sep="|---|---:|" id direct
    for target in "${TARGETS_SEEN[@]}"; do header+=" $target |"; sep+="---:|"; done
    echo "$header"
    echo "$sep"
    for workload in "${WORKLOADS[@]}"; do
        [ -n "${RESULT[$weights,$clients,$workload,direct]:-}${RESULT[$weights,$clients,$workload,splitpool]:-}" ] ||
            continue
        id=""
        # Nodes that share the cores have no capacity of their own to add up.
        if [ "$MODE" = capped ]; then id=$(ideal "$weights" "$clients" "$workload"); fi
        direct=$(median_of "${RESULT[$weights,$clients,$workload,direct]:-}")
        line="| $workload (c=${WORKLOAD_CLIENTS[$workload]:-$clients}) | ${id:--} |"
        for target in "${TARGETS_SEEN[@]}"; do
            if [ "$target" = direct ]; then line+=" $(cell "${RESULT[$weights,$clients,$workload,$target]:-}" "" "$id") |"
            else line+=" $(cell "${RESULT[$weights,$clients,$workload,$target]:-}" "$direct" "$id") |"; fi
        done
        echo "$line"
    done
}

cost_table() {
    local target relay_cpu cpu ratio
    relay_cpu=$(median_of "${COST[relay,cpu]:-}")
    echo "| target | TPS | proxy CPU s / 1000 tx | × relay | proxy ctx switches / tx | proxy syscalls / tx | system ctx switches / tx |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for target in "${TARGETS_SEEN[@]}"; do
        [ -n "${COST[$target,tps]:-}" ] || continue
        cpu=$(median_of "${COST[$target,cpu]:-}")
        ratio=-
        if [ "$cpu" != fail ] && [ "$relay_cpu" != fail ]; then ratio=$(awk -v a="$cpu" -v b="$relay_cpu" 'BEGIN { printf "%.2f", a / b }'); fi
        echo "| $target | $(value "${COST[$target,tps]}" %.0f) | $(value "${COST[$target,cpu]:-}" %.4f) | $ratio |" \
             "$(value "${COST[$target,cs]:-}" %.2f) | $(value "${COST[$target,sys]:-}" %.2f) | $(value "${COST[$target,syscs]:-}" %.2f) |"
    done
}

report() {
    local weights clients
    {
        echo "# splitpool benchmark ($MODE)"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, PostgreSQL ${PSQL_VERSION:-$(psql -X -A -t -h 127.0.0.1 -p $PG_PORT -U postgres -d $DB -c 'show server_version')},"
        echo "pgbench scale $SCALE, $THREADS threads, ${SECONDS_PER_RUN}s per run, median [min-max] of $ROUNDS interleaved rounds."
        case "$MODE" in
            primary) echo "One PostgreSQL node; every process shares the machine's cores." ;;
            colocated) echo "Primary + 2 streaming standbys on the same cores, uncapped." ;;
            capped) echo "Primary + 2 streaming standbys, each node (postmaster and children) in its own cgroup ($CG_MODE)"
                echo "capped at $NODE_CPU CPU per ${CPU_PERIOD_US} us: one small machine per node. pgbench and the proxies run outside." ;;
        esac
        echo "Direct, relay and PgBouncer use the primary only; splitpool and pgpool-II balance reads by the weights."
        echo "Ratios: to direct on the primary (×), and (capped) to the ideal: the nodes' combined capacity for the"
        echo "weights, each node as fast as the best primary-only target (direct, relay, PgBouncer) on -S, the"
        echo "primary's write share of read-write-90-10 from that target's speed on the mix; tpcb-like needs the"
        echo "primary throughout."
        echo "Workloads: select-simple -S, select-prepared -S -M prepared, tpcb-like (default script), select-connect"
        echo "-S -C (a new connection per transaction), select-latency -S -c 1, read-write-90-10 (-f read.sql@9"
        echo "-f write.sql@1: a primary-key SELECT or UPDATE on pgbench_accounts per transaction)."
        for weights in "${WEIGHT_SETS[@]}"; do
            for clients in "${CLIENT_COUNTS[@]}"; do
                echo
                echo "## weights $weights, $clients clients"
                echo
                throughput_table "$weights" "$clients"
            done
        done
        if [ "${#COST[@]}" -gt 0 ]; then
            echo
            echo "## the proxies' own cost (weights ${WEIGHT_SETS[0]}, pgbench -S -R $RATE -c $COST_CLIENTS, ${COST_SECONDS}s window)"
            echo
            echo "Proxy CPU from the proxy's cgroup ($CG_MODE cpu accounting: every process it forks), context switches"
            echo "and system calls of its processes from $([ "$PERF_OK" = 1 ] && echo "perf stat" || echo "/proc (no syscall count)"),"
            echo "system-wide context switches from /proc/stat (every process on the machine: pgbench, nodes, others)."
            echo
            cost_table
        fi
    } >"$OUT"
    echo
    cat "$OUT"
    echo
    echo "written to $OUT"
}

# ------------------------------------------------------------------ main

TARGETS_SEEN=()

# BENCH_REPORT_FROM=LOG: the report again from a run's log (its "[weights c=N] round ..." lines), e.g.
# after changing how ratios are computed; the proxy-cost table is not in the log and is left out.
report_from_log() {
    local line weights clients workload target tps key
    declare -A samples=() seen=()
    WEIGHT_SETS=() CLIENT_COUNTS=() WORKLOADS=()
    while read -r line; do
        [[ "$line" =~ ^bench:\ \[([0-9:]+)\ c=([0-9]+)\]\ round\ [0-9]+/[0-9]+\ ([a-z0-9-]+)\ via\ ([a-z]+):\ ([0-9.]+|fail)\ tps$ ]] ||
            continue
        weights=${BASH_REMATCH[1]} clients=${BASH_REMATCH[2]} workload=${BASH_REMATCH[3]}
        target=${BASH_REMATCH[4]} tps=${BASH_REMATCH[5]}
        [ -n "${seen[w$weights]:-}" ] || { seen[w$weights]=1; WEIGHT_SETS+=("$weights"); }
        [ -n "${seen[c$clients]:-}" ] || { seen[c$clients]=1; CLIENT_COUNTS+=("$clients"); }
        [ "$workload" != write-only ] || continue  # an older run's capacity probe
        [ -n "${seen[l$workload]:-}" ] || { seen[l$workload]=1; WORKLOADS+=("$workload"); }
        [ -n "${seen[t$target]:-}" ] || { seen[t$target]=1; TARGETS_SEEN+=("$target"); }
        key="$weights,$clients,$workload,$target"
        samples[$key]="${samples[$key]:-} $tps"
    done <"$BENCH_REPORT_FROM"
    for key in "${!samples[@]}"; do
        # shellcheck disable=SC2086 # one word per sample
        RESULT[$key]=$(stats ${samples[$key]})
    done
    ROUNDS=$(grep -o 'round [0-9]*/[0-9]*' "$BENCH_REPORT_FROM" | head -n 1 | cut -d/ -f2)
    CG_MODE=${CG_MODE:-v1}
    PSQL_VERSION="(from $BENCH_REPORT_FROM)"
    report
}

main() {
    if [ -n "${BENCH_REPORT_FROM:-}" ]; then report_from_log; return; fi
    ensure_packages "postgresql-15|postgresql" "postgresql-client-15|postgresql-client" pgbouncer pgpool2 ||
        exit 1
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    if ! cg_setup; then
        [ "$MODE" != capped ] || { log "capped mode needs a writable cpu cgroup (v2 cpu.max or v1 cpu.cfs_quota_us)"; exit 1; }
        log "no usable cgroup: the proxies' CPU seconds are not measured"
    fi
    WORK=$(mktemp -d /tmp/splitpool-bench.XXXXXX)
    chmod 755 "$WORK"
    write_scripts
    start_nodes
    local first=1
    for WEIGHTS in "${WEIGHT_SETS[@]}"; do
        start_targets
        [ "${#TARGETS[@]}" -gt 0 ] || { log "no target could be started"; exit 1; }
        [ "${#TARGETS_SEEN[@]}" -gt 0 ] || TARGETS_SEEN=("${TARGETS[@]}")
        log "weights $WEIGHTS; targets: ${TARGETS[*]}; ${#WORKLOADS[@]} workloads x ${#CLIENT_COUNTS[@]} client counts x $ROUNDS rounds x ${SECONDS_PER_RUN}s"
        measure
        if [ "$first" = 1 ] && [ "$COST_ON" = 1 ]; then measure_cost; fi
        first=0
        stop_targets
    done
    report
}

main "$@"
