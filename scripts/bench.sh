#!/usr/bin/env bash
# Benchmark: pgbench against PostgreSQL directly and through splitpool, PgBouncer and pgpool-II, same primary.
# Env: BENCH_SECONDS (10) per run, BENCH_ROUNDS (2, median taken), BENCH_CLIENTS (8), BENCH_THREADS (2),
#      BENCH_SCALE (10), BENCH_OUT (bench-results.md), BENCH_TARGETS (direct relay splitpool pgbouncer pgpool),
#      SPLITPOOL_BIN (bin/splitpool), BASELINE_BIN (another splitpool build, e.g. the previous commit's:
#      adds the target "baseline", so a change is measured against what it replaces in the same run).
# Ports: PostgreSQL 16432, splitpool 16500, PgBouncer 16501, pgpool-II 16502 (pcp 16503), relay 16504,
#        baseline 16505.
# "relay" is scripts/bench_relay.c, a fork-per-client byte copier: the ceiling of any prefork proxy here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-2}
CLIENTS=${BENCH_CLIENTS:-8}
THREADS=${BENCH_THREADS:-2}
SCALE=${BENCH_SCALE:-10}
OUT=${BENCH_OUT:-bench-results.md}
BIN=${SPLITPOOL_BIN:-$repo/bin/splitpool}
BASELINE_BIN=${BASELINE_BIN:-}
read -r -a WANTED <<<"${BENCH_TARGETS:-direct relay splitpool ${BASELINE_BIN:+baseline} pgbouncer pgpool}"
PG_PORT=16432
declare -A PORT=([direct]=$PG_PORT [splitpool]=16500 [pgbouncer]=16501 [pgpool]=16502 [relay]=16504 [baseline]=16505)
PCP_PORT=16503
DB=bench

WORKLOADS=(select-simple select-prepared tpcb-like select-connect)
declare -A WORKLOAD_ARGS=(
    [select-simple]="-S"
    [select-prepared]="-S -M prepared"
    [tpcb-like]=""
    [select-connect]="-S -C"
)

export PGCONNECT_TIMEOUT=5 PGGSSENCMODE=disable
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS

WORK=""
declare -A SERVER_PID=()
TARGETS=()

log() { echo "bench: $*" >&2; }

# ------------------------------------------------------------------ process control

# Starts a server in its own session (Ctrl-C in the terminal does not reach it; cleanup decides),
# as postgres when root if asked; exec chains keep $! equal to the server's pid.
spawn() {
    local name=$1 as_postgres=$2 logfile=$3
    shift 3
    if [ "$as_postgres" = yes ] && [ "$(id -u)" = 0 ]; then
        setsid setpriv --reuid=postgres --regid=postgres --init-groups "$@" >>"$logfile" 2>&1 </dev/null &
    else
        setsid "$@" >>"$logfile" 2>&1 </dev/null &
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

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server splitpool INT
    stop_server baseline INT
    stop_server pgbouncer TERM
    stop_server pgpool INT
    stop_server relay TERM
    if [ -n "$WORK" ]; then
        "$here/pg_cluster.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
        rm -rf "$WORK"
    fi
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

# ------------------------------------------------------------------ targets

# start_splitpool [name binary pcp_port]: the same configuration for splitpool and the baseline build.
start_splitpool() {
    local name=${1:-splitpool} bin=${2:-$BIN} pcp=${3:-16510}
    local dir=$WORK/$name
    [ -x "$bin" ] || { log "skipping $name: $bin not found (run make)"; return 1; }
    mkdir -p "$dir"
    cat >"$dir/splitpool.toml" <<EOF
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

[[backend]]
hostname = "127.0.0.1"
port = $PG_PORT
weight = 1
flag = ["ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"]
application_name = "node0"
EOF
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

start_pgpool() {
    local dir=$WORK/pgpool
    [ -x /usr/sbin/pgpool ] || { log "skipping pgpool: /usr/sbin/pgpool not installed"; return 1; }
    mkdir -p "$dir"
    : >"$dir/pcp.conf"
    cat >"$dir/pgpool.conf" <<EOF
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
load_balance_mode = off
sr_check_period = 0
health_check_period = 0
failover_on_backend_error = off
use_watchdog = off
memory_cache_enabled = off
backend_hostname0 = '127.0.0.1'
backend_port0 = $PG_PORT
backend_weight0 = 1
backend_flag0 = 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER'
EOF
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

# ------------------------------------------------------------------ measuring

# Prints the TPS of one pgbench run, or "fail".
run_pgbench() {
    local target=$1 workload=$2 out
    # shellcheck disable=SC2086
    if out=$(pgbench -n ${WORKLOAD_ARGS[$workload]} -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_PER_RUN" \
            -h 127.0.0.1 -p "${PORT[$target]}" -U postgres "$DB" 2>&1); then
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1
    else
        log "pgbench $workload via $target failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
        echo fail
    fi
}

median() {
    local vals
    vals=$(tr ' ' '\n' <<<"$*" | grep -v '^fail$' | grep . | sort -g) || true
    [ -n "$vals" ] || { echo fail; return; }
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<<"$vals"
}

declare -A RESULT=()

measure() {
    local workload round target tps
    declare -A samples=()
    for workload in "${WORKLOADS[@]}"; do
        samples=()
        for ((round = 1; round <= ROUNDS; round++)); do
            for target in "${TARGETS[@]}"; do
                tps=$(run_pgbench "$target" "$workload")
                log "round $round/$ROUNDS $workload via $target: $tps tps"
                samples[$target]="${samples[$target]:-} $tps"
            done
        done
        for target in "${TARGETS[@]}"; do
            # shellcheck disable=SC2086 # one word per sample
            RESULT[$workload,$target]=$(median ${samples[$target]})
        done
    done
}

cell() {
    local tps=$1 base=$2
    if [ "$tps" = fail ]; then echo "failed"; return; fi
    if [ "$base" = fail ] || [ -z "$base" ]; then printf '%.0f' "$tps"; return; fi
    awk -v t="$tps" -v b="$base" 'BEGIN { printf "%.0f (%.2f)", t, t / b }'
}

report() {
    local workload target line header sep
    header="| workload |"
    sep="|---|"
    for target in "${TARGETS[@]}"; do header+=" $target |"; sep+="---:|"; done
    {
        echo "# splitpool benchmark"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, PostgreSQL $(psql -X -A -t -h 127.0.0.1 -p $PG_PORT -U postgres -d $DB -c 'show server_version'),"
        echo "pgbench scale $SCALE, $CLIENTS clients / $THREADS threads, ${SECONDS_PER_RUN}s per run, median of $ROUNDS rounds."
        echo "TPS, ratio to direct in parentheses. Workloads: select-simple \`-S\`, select-prepared \`-S -M prepared\`,"
        echo "tpcb-like (default script), select-connect \`-S -C\` (a new connection per transaction)."
        echo "relay: scripts/bench_relay.c, a fork-per-client byte copier with no parsing or pooling, the"
        echo "ceiling for any process-per-client proxy on this machine (except -C, where it pays a fork per connection)."
        echo
        echo "$header"
        echo "$sep"
        for workload in "${WORKLOADS[@]}"; do
            line="| $workload |"
            for target in "${TARGETS[@]}"; do
                line+=" $(cell "${RESULT[$workload,$target]}" "${RESULT[$workload,direct]:-}") |"
            done
            echo "$line"
        done
    } >"$OUT"
    echo
    cat "$OUT"
    echo
    echo "written to $OUT"
}

# ------------------------------------------------------------------ main

main() {
    ensure_packages "postgresql-15|postgresql" "postgresql-client-15|postgresql-client" pgbouncer pgpool2 ||
        exit 1
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    WORK=$(mktemp -d /tmp/splitpool-bench.XXXXXX)
    chmod 755 "$WORK"
    "$here/pg_cluster.sh" start "$WORK/pg" "$PG_PORT" 0 >/dev/null
    psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "create database $DB"
    log "pgbench -i -s $SCALE"
    pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB" >"$WORK/init.log" 2>&1 ||
        { cat "$WORK/init.log" >&2; exit 1; }
    start_targets
    [ "${#TARGETS[@]}" -gt 0 ] || { log "no target could be started"; exit 1; }
    log "targets: ${TARGETS[*]}; ${#WORKLOADS[@]} workloads x $ROUNDS rounds x ${SECONDS_PER_RUN}s each"
    measure
    report
}

main "$@"
