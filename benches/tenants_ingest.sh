#!/usr/bin/env bash
# Tenant ingest benchmark: sentineld over HTTP against parse-only, top-10 over the socket,
# memory at 100k / 1M tenants, and PostgreSQL COPY + SQL for the same events.
# Usage (as root, on a quiet machine): benches/tenants_ingest.sh [SECONDS]   (default 60)
# Needs PostgreSQL 15 binaries (apt postgresql-15). Results go to docs/performance.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_SECS="${1:-60}"
cargo build --release --quiet --bin sentineld
export SENTINELD="$PWD/target/release/sentineld"

pg_bin=/usr/lib/postgresql/15/bin
work="$(mktemp -d)"
chown postgres "$work"
cleanup() {
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
runuser -u postgres -- "$pg_bin/initdb" -D "$work/data" --auth=trust -U postgres >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/data" -w -l "$work/pg.log" \
    -o "-k $work -c listen_addresses='' -c shared_buffers=256MB -c max_wal_size=4GB" start >/dev/null
export PGHOST="$work" PGPORT=5432 PGUSER=postgres

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
cargo bench --quiet --bench tenants_ingest
