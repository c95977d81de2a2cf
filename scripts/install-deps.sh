#!/usr/bin/env bash
# Installs the Debian packages needed to build, test and demo splitpool; only what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

packages=(
    build-essential g++ make pkg-config
    clang "libclang-rt-dev|libclang-rt-14-dev"
    libev-dev libssl-dev libpg-query-dev libprotobuf-c-dev libtomlplusplus-dev libboost-dev doctest-dev
    "postgresql-15|postgresql" "postgresql-client-15|postgresql-client"
    python3 python3-pytest python3-psycopg python3-psycopg2 python3-asyncpg
    # drivers of test_drivers.py: pgjdbc (node-postgres comes from npm, into build/, at the test)
    libpostgresql-jdbc-java "default-jre-headless|openjdk-17-jre-headless" nodejs "npm|nodejs"
    openssl procps iproute2 curl tcpdump
)

ensure_packages "${packages[@]}"
