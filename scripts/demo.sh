#!/usr/bin/env bash
# Demo: primary + 2 replicas on loopback (15432-15434) with splitpool on 127.0.0.1:9999 in front.
#   demo.sh start   set up everything in /tmp/splitpool-demo, run a short pgbench, print how to connect
#   demo.sh stop    stop splitpool and the cluster, remove the folder (idempotent)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

DEMO=${SPLITPOOL_DEMO_DIR:-/tmp/splitpool-demo}
PGPORT0=15432
PORT=9999
BIN=${SPLITPOOL_BIN:-$repo/bin/splitpool}
CONF=$DEMO/splitpool.toml
LOG=$DEMO/splitpool.log
PIDFILE=$DEMO/splitpool.pid
PCP_USER=pcpadm
PCP_PASSWORD=pwd123
PCPPASS=$DEMO/.pcppass

export PGCONNECT_TIMEOUT=5 PGGSSENCMODE=disable
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS

running_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(head -n 1 "$PIDFILE" | tr -dc 0-9)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

write_config() {
    cat >"$CONF" <<EOF
# splitpool demo configuration (written by scripts/demo.sh)
listen_addresses = "127.0.0.1"
port = $PORT
unix_socket_directories = "$DEMO"
pcp_listen_addresses = "127.0.0.1"
pcp_port = 9898
pcp_socket_dir = "$DEMO"
pid_file_name = "$PIDFILE"
logdir = "$DEMO"
num_init_children = 16
max_pool = 2
enable_pool_hba = false
allow_clear_text_frontend_auth = true
pool_passwd = ""
log_min_messages = "info"

[[backend]]
hostname = "127.0.0.1"
port = $PGPORT0
weight = 1
flag = ["ALWAYS_PRIMARY", "DISALLOW_TO_FAILOVER"]
application_name = "node0"

[[backend]]
hostname = "127.0.0.1"
port = $((PGPORT0 + 1))
weight = 2
flag = ["DISALLOW_TO_FAILOVER"]
application_name = "node1"

[[backend]]
hostname = "127.0.0.1"
port = $((PGPORT0 + 2))
weight = 2
flag = ["DISALLOW_TO_FAILOVER"]
application_name = "node2"
EOF
}

# pcp.conf next to the config (splitpool's -F default), pgpool's format: user:md5(password); and a
# .pcppass for the tools' -w (never prompt), as a DBA keeps in ~/.pcppass on a server.
write_pcp_files() {
    local digest
    digest=$(printf '%s' "$PCP_PASSWORD" | md5sum | cut -d' ' -f1)
    printf '# PCP users of the splitpool demo (written by scripts/demo.sh)\n%s:%s\n' "$PCP_USER" "$digest" >"$DEMO/pcp.conf"
    (umask 077 && printf '*:*:%s:%s\n' "$PCP_USER" "$PCP_PASSWORD" >"$PCPPASS")
}

wait_answers() {
    local deadline=$(($(date +%s) + 20))
    until [ "$(psql -X -A -t -w -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c 'select 1' 2>/dev/null)" = 1 ]; do
        if [ "$(date +%s)" -ge "$deadline" ] || ! running_pid >/dev/null; then
            echo "demo: splitpool did not answer on port $PORT; last log lines:" >&2
            tail -n 30 "$LOG" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

print_usage() {
    cat <<EOF

splitpool demo is running (folder $DEMO, log $LOG)
  connect:   psql -h 127.0.0.1 -p $PORT -U postgres postgres
             PGPASSWORD=pwd123 psql -h 127.0.0.1 -p $PORT -U digoal postgres
  nodes:     primary 127.0.0.1:$PGPORT0, replicas 127.0.0.1:$((PGPORT0 + 1)) and :$((PGPORT0 + 2))
  pcp:       user $PCP_USER, password $PCP_PASSWORD (in $DEMO/pcp.conf; $PCPPASS for -w)
             PCPPASSFILE=$PCPPASS $repo/bin/pcp_node_info -h 127.0.0.1 -p 9898 -U $PCP_USER -w
             $repo/bin/pcp_node_info -h 127.0.0.1 -p 9898 -U $PCP_USER -W    (asks for the password)
  stop:      make demo-stop
EOF
}

cmd_start() {
    if running_pid >/dev/null; then
        echo "demo already running (splitpool pid $(running_pid))"
        print_usage
        return 0
    fi
    [ -x "$BIN" ] || { echo "demo: $BIN not found; run make first" >&2; exit 1; }
    ensure_packages "postgresql-15|postgresql" "postgresql-client-15|postgresql-client"
    "$here/pg_cluster.sh" start "$DEMO" "$PGPORT0" 2
    write_config
    write_pcp_files
    echo "starting splitpool on 127.0.0.1:$PORT"
    if ! "$BIN" -f "$CONF" >>"$LOG" 2>&1 </dev/null; then
        echo "demo: splitpool failed to start; last log lines:" >&2
        tail -n 30 "$LOG" >&2
        cmd_stop
        exit 1
    fi
    wait_answers || { cmd_stop; exit 1; }
    echo "pgbench -i -s 1 through splitpool"
    pgbench -i -s 1 -q -h 127.0.0.1 -p "$PORT" -U postgres postgres >"$DEMO/pgbench-init.log" 2>&1 ||
        { cat "$DEMO/pgbench-init.log" >&2; echo "demo: pgbench -i failed" >&2; exit 1; }
    echo "pgbench -n -S -c 4 -j 2 -T 5 through splitpool"
    local out
    out=$(pgbench -n -S -c 4 -j 2 -T 5 -h 127.0.0.1 -p "$PORT" -U postgres postgres 2>&1) ||
        { echo "$out" >&2; echo "demo: pgbench failed" >&2; exit 1; }
    grep -E '^(number of transactions actually processed|tps)' <<<"$out" | sed 's/^/  /'
    print_usage
}

cmd_stop() {
    local pid
    if pid=$(running_pid); then
        if [ -x "$BIN" ]; then
            "$BIN" -f "$CONF" stop -m fast >/dev/null 2>&1 </dev/null || true
        fi
        # Without the binary (or if it failed), signal the daemon directly and wait for it.
        if kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid" 2>/dev/null || true
            local deadline=$(($(date +%s) + 15))
            while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "splitpool stopped"
    fi
    "$here/pg_cluster.sh" destroy "$DEMO"
    echo "demo stopped"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
