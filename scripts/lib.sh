# Shared shell helpers for the scripts: package checks, running as postgres, PostgreSQL binaries.
# shellcheck shell=bash
# Sourced, not executed.

# PostgreSQL server binaries (initdb, pg_ctl, ...): PG_BINDIR wins, then 15, then the newest installed.
pg_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
    if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then echo /usr/lib/postgresql/15/bin; return; fi
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1)
    if [ -n "$d" ]; then echo "$d"; return; fi
    dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)"
}

# Runs a command as the PostgreSQL owner: postgres when we are root, ourselves otherwise.
# The working directory moves to / because the caller's folder may be unreadable by postgres.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Prints the packages (from the arguments) that are not installed. An argument "a|b" is
# satisfied by either package and, when missing, is reported as its first choice.
missing_packages() {
    local want=() spec alt alts
    for spec in "$@"; do
        IFS='|' read -r -a alts <<<"$spec"
        want+=("${alts[@]}")
    done
    local installed
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${want[@]}" 2>/dev/null |
                awk '$2 == "ii" { print $1 }')
    for spec in "$@"; do
        local ok=0
        IFS='|' read -r -a alts <<<"$spec"
        for alt in "${alts[@]}"; do
            if grep -qx -- "$alt" <<<"$installed"; then ok=1; break; fi
        done
        [ "$ok" = 1 ] || echo "${alts[0]}"
    done
}

# Package scripts may start a default cluster (15/main on 5432) and the pgbouncer/pgpool2
# services; nothing of ours uses them and they would hold ports, so stop them.
stop_distro_services() {
    if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
            if [ "$status" = online ]; then
                pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
            fi
        done
    fi
    local svc
    for svc in pgbouncer pgpool2; do
        if [ -x "/etc/init.d/$svc" ]; then
            if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
                systemctl stop "$svc" >/dev/null 2>&1 || true
            else
                "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            fi
        fi
    done
}

# Installs the missing packages among the arguments (see missing_packages for "a|b").
# Quiet when nothing is missing. Not root: prints the apt-get line and fails.
ensure_packages() {
    local missing
    missing=$(missing_packages "$@" | tr '\n' ' ')
    missing=${missing% }
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages: $missing" >&2
        echo "install them with: sudo apt-get install -y $missing" >&2
        return 1
    fi
    echo "installing: $missing" >&2
    # A policy-rc.d that answers 101 keeps package scripts from starting services.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0 aptlog
    aptlog=$(mktemp)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$aptlog" 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >>"$aptlog" 2>&1 || rc=$?
    fi
    if [ "$added_policy" = 1 ]; then rm -f "$policy"; fi
    stop_distro_services
    if [ "$rc" != 0 ]; then
        tail -n 30 "$aptlog" >&2
        echo "apt-get failed (exit $rc) installing: $missing" >&2
    fi
    rm -f "$aptlog"
    [ "$rc" = 0 ]
}
