#!/usr/bin/env bash
# Throwaway PostgreSQL streaming-replication cluster on loopback: a primary and N replicas in one folder.
#   pg_cluster.sh start DIR BASEPORT NREPLICAS   primary DIR/node0 on BASEPORT, replicas DIR/nodeK on BASEPORT+K
#   pg_cluster.sh stop DIR                       fast shutdown of every node (idempotent)
#   pg_cluster.sh status DIR                     one line per node
#   pg_cluster.sh destroy DIR                    stop, then remove DIR
# Unix sockets live in DIR. Env: PG_BINDIR (server binaries), PG_CLUSTER_TIMEOUT (seconds, default 60),
# PG_MAX_CONNECTIONS (max_connections of every node, default 200; read when a node is created).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

BIN=$(pg_bindir)
TIMEOUT=${PG_CLUSTER_TIMEOUT:-60}
MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-200}

die() { echo "pg_cluster: $*" >&2; exit 1; }

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Absolute path without requiring it to exist yet.
abspath() {
    case "$1" in
        /*) echo "$1" ;;
        *) echo "$(pwd)/$1" ;;
    esac
}

node_dirs() {
    local dir=$1 nd
    for nd in "$dir"/node[0-9]*; do
        if [ -d "$nd" ]; then echo "$nd"; fi
    done | sort -V
}

# Port of a node from its running postmaster.pid (line 4), else from its configuration.
node_port() {
    local nd=$1
    if [ -f "$nd/postmaster.pid" ]; then
        sed -n 4p "$nd/postmaster.pid"
    else
        grep -E '^port *=' "$nd/postgresql.conf" 2>/dev/null | tail -n 1 | sed 's/[^0-9]//g'
    fi
}

node_running() {
    as_pg "$BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

dump_logs() {
    local dir=$1 f
    for f in "$dir"/node*.log; do
        [ -f "$f" ] || continue
        echo "----- tail of $f -----" >&2
        tail -n 25 "$f" >&2
    done
}

fail() {
    echo "pg_cluster: $1" >&2
    dump_logs "$2"
    exit 1
}

psql_node() {
    local dir=$1 port=$2
    shift 2
    as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"
}

# Settings shared by every node; the port and cluster_name are appended per node.
write_conf() {
    local nd=$1 dir=$2
    cat >>"$nd/postgresql.conf" <<EOF

# --- pg_cluster.sh ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = $MAX_CONNECTIONS
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 10
wal_keep_size = 256MB
hot_standby = on
logging_collector = off
log_line_prefix = '%m [%p] %a '
password_encryption = 'scram-sha-256'
EOF
    cat >"$nd/pg_hba.conf" <<'EOF'
# pg_cluster.sh: loopback only
local   all          all                    trust
local   replication  all                    trust
host    replication  all      127.0.0.1/32  trust
host    all          postgres 127.0.0.1/32  trust
host    all          md5user  127.0.0.1/32  md5
host    all          all      127.0.0.1/32  scram-sha-256
EOF
}

set_node_identity() {
    local nd=$1 port=$2 name=$3
    printf "port = %s\ncluster_name = '%s'\n" "$port" "$name" >>"$nd/postgresql.conf"
}

start_node() {
    local dir=$1 k=$2
    local nd="$dir/node$k"
    node_running "$nd" && return 0
    as_pg "$BIN/pg_ctl" -D "$nd" -l "$dir/node$k.log" -w -t "$TIMEOUT" start >/dev/null ||
        fail "node$k did not start" "$dir"
}

create_users() {
    local dir=$1 port=$2
    psql_node "$dir" "$port" >/dev/null <<'EOF'
SET client_min_messages = warning;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'digoal') THEN
    CREATE ROLE digoal SUPERUSER LOGIN PASSWORD 'pwd123';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plainuser') THEN
    CREATE ROLE plainuser LOGIN PASSWORD 'plainpass';
  END IF;
END $$;
SET password_encryption = 'md5';
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'md5user') THEN
    CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
  END IF;
END $$;
CREATE EXTENSION IF NOT EXISTS sslinfo;
EOF
}

init_primary() {
    local dir=$1 port=$2
    local nd="$dir/node0"
    as_pg "$BIN/initdb" -D "$nd" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    write_conf "$nd" "$dir"
    set_node_identity "$nd" "$port" node0
}

init_replica() {
    local dir=$1 baseport=$2 k=$3
    local nd="$dir/node$k"
    as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$baseport" -U postgres -D "$nd" -R -X stream \
        -c fast --no-sync >"$dir/basebackup$k.log" 2>&1 ||
        { cat "$dir/basebackup$k.log" >&2; fail "pg_basebackup for node$k failed" "$dir"; }
    set_node_identity "$nd" $((baseport + k)) "node$k"
}

wait_ready() {
    local dir=$1 port=$2 name=$3 deadline=$4
    until as_pg "$BIN/pg_isready" -q -h "$dir" -p "$port" -d postgres; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$name on port $port not accepting connections" "$dir"
        sleep 0.1
    done
}

wait_streaming() {
    local dir=$1 port=$2 nwant=$3 deadline=$4 have=0
    while :; do
        have=$(psql_node "$dir" "$port" -c \
            "select count(*) from pg_stat_replication where state = 'streaming'" 2>/dev/null || echo 0)
        [ "$have" -ge "$nwant" ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] ||
            fail "only $have of $nwant replicas streaming after ${TIMEOUT}s" "$dir"
        sleep 0.1
    done
}

cmd_start() {
    [ $# -eq 3 ] || usage
    local dir baseport=$2 nrep=$3
    dir=$(abspath "$1")
    [[ "$baseport" =~ ^[0-9]+$ && "$nrep" =~ ^[0-9]+$ ]] || usage
    [ -x "$BIN/pg_ctl" ] || die "PostgreSQL server binaries not found in $BIN (set PG_BINDIR)"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    chmod 755 "$dir"
    as_pg test -w "$dir" || die "$dir is not writable by the PostgreSQL user (is a parent folder private?)"
    local deadline=$(($(date +%s) + TIMEOUT)) k
    if [ ! -f "$dir/node0/PG_VERSION" ]; then init_primary "$dir" "$baseport"; fi
    start_node "$dir" 0
    wait_ready "$dir" "$baseport" node0 "$deadline"
    create_users "$dir" "$baseport" || fail "creating users failed" "$dir"
    for ((k = 1; k <= nrep; k++)); do
        if [ ! -f "$dir/node$k/PG_VERSION" ]; then init_replica "$dir" "$baseport" "$k"; fi
        start_node "$dir" "$k"
    done
    for ((k = 1; k <= nrep; k++)); do
        wait_ready "$dir" $((baseport + k)) "node$k" "$deadline"
    done
    wait_streaming "$dir" "$baseport" "$nrep" "$deadline"
    for ((k = 0; k <= nrep; k++)); do
        local role=replica
        [ "$k" = 0 ] && role=primary
        echo "node$k $role 127.0.0.1:$((baseport + k)) socket=$dir data=$dir/node$k log=$dir/node$k.log"
    done
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    local dir nd
    dir=$(abspath "$1")
    [ -d "$dir" ] || return 0
    # Replicas first, so they do not log reconnect attempts to a vanished primary.
    for nd in $(node_dirs "$dir" | sort -rV); do
        if [ -f "$nd/postmaster.pid" ] && node_running "$nd"; then
            as_pg "$BIN/pg_ctl" -D "$nd" -m fast -w -t "$TIMEOUT" stop >/dev/null ||
                echo "pg_cluster: stopping $nd failed" >&2
            echo "$(basename "$nd") stopped"
        fi
    done
}

cmd_status() {
    [ $# -eq 1 ] || usage
    local dir nd state role
    dir=$(abspath "$1")
    [ -d "$dir" ] || die "$dir does not exist"
    for nd in $(node_dirs "$dir"); do
        state=stopped
        node_running "$nd" && state=running
        role=primary
        [ -f "$nd/standby.signal" ] && role=replica
        echo "$(basename "$nd") $role 127.0.0.1:$(node_port "$nd") $state data=$nd"
    done
}

cmd_destroy() {
    [ $# -eq 1 ] || usage
    local dir
    dir=$(abspath "$1")
    cmd_stop "$dir"
    rm -rf "$dir"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    destroy) cmd_destroy "$@" ;;
    *) usage ;;
esac
