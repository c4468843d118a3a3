#!/usr/bin/env bash
# Benchmark (issue 16): a point-in-time restore of the seeded database plus ~1 GB of WAL,
# `jarvis-db restore latest --to-time T --target-dir X --start --port N` (the real CLI: the base
# backup checked and unpacked, the WAL fetched from the repository verified and decompressed, the
# server started, recovery to T, promotion) against the bare tools on the same data in the same
# run: untar of the same base backup (zstd -d | tar -x, pg_wal.tar into pg_wal/), recovery
# settings with `cp ARCHIVE/%f %p` as restore_command over the same WAL uncompressed, `pg_ctl
# start`, until promoted. Interleaved pairs (bare, jarvis-db, …); prints each, medians, the ratio
# (target <= 1.2), and checks both copies hold the same rows.
#
# One command:   npm run build && bench/pitr-restore.sh [SCALE=1] [PAIRS=3] [WAL_MB=1024]
#
# Its own sandbox PostgreSQL (never the machine's 5432), seeded by `jarvis-db init --seed --scale
# SCALE` (1 ≈ 700 MB). The WAL: `jarvis-db wal stream` runs while rows are inserted until WAL_MB of
# WAL were written after the base backup; T is taken then, one more row is committed after it.
# JARVIS_BENCH_KEEP=1 keeps the work directory and its sandbox for a closer look.
set -euo pipefail
SCALE="${1:-1}"
PAIRS="${2:-3}"
WAL_MB="${3:-1024}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/jarvis-bench-pitr-restore.XXXXXX)"
chmod 755 "$WORK"
JDB=(node "$ROOT/bin/jarvis-db.js")
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
STREAM=""
AS_PG=()
[ "$(id -u)" = 0 ] && AS_PG=(runuser -u postgres --)
stop_copy() { [ -f "$1/postmaster.pid" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true; }
cleanup() {
  [ -n "$STREAM" ] && kill "$STREAM" 2>/dev/null && wait "$STREAM" 2>/dev/null
  for d in "$WORK"/bare-* "$WORK"/jdb-*; do [ -d "$d" ] && stop_copy "$d"; done
  if [ -n "${JARVIS_BENCH_KEEP:-}" ]; then echo "kept $WORK (its sandbox runs: jarvis-db sandbox down --dir $WORK/sandbox)"; return; fi
  sandbox_down
  rm -rf "$WORK"
}
trap cleanup EXIT

sandbox_up postgres
psql_() { raw "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

cat > "$WORK/jarvis-db.yaml" <<YAML
version: 1
project: bench
services:
  postgres:
    url: "\${JARVIS_PG_URL}"
    pitr: { enabled: true, slot: jarvis_db, rpo: 1m }
storage:
  path: $WORK/storage
schema:
  migrations: $ROOT/migrations
  target: latest
backups:
  - name: base
    service: postgres
    method: physical
    cron: "0 3 * * *"
    compression: 1
    keep: { last: 100 }
YAML
export JARVIS_DB_CONFIG="$WORK/jarvis-db.yaml"

echo "jarvis-db init --seed --scale $SCALE ..."
"${JDB[@]}" init --seed --scale "$SCALE" | grep seeded
DBSIZE=$(psql_ -c "SELECT pg_database_size(current_database())")

"${JDB[@]}" wal stream >"$WORK/wal-stream.log" 2>&1 &
STREAM=$!
until grep -q "pg_receivewal on slot" "$WORK/wal-stream.log"; do sleep 0.2; done
"${JDB[@]}" backup create --service postgres >/dev/null
ID=$(ls "$WORK/storage/postgres/base" | grep -v '^\.' | sort | tail -1)

echo "writing ${WAL_MB} MB of WAL ..."
psql_ -c "CREATE TABLE walgen (id bigint, v text)"
START_LSN=$(psql_ -c "SELECT pg_current_wal_lsn()")
while [ "$(psql_ -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$START_LSN') < $WAL_MB::numeric * 1000000")" = t ]; do
  psql_ -c "INSERT INTO walgen SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 500000) g"
done
WAL_BYTES=$(psql_ -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$START_LSN')")
sleep 1.1
T=$(psql_ -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
AT_T=$(psql_ -c "SELECT count(*) FROM walgen")
sleep 1.1
psql_ -c "INSERT INTO walgen VALUES (-1, 'after T')"
LAST=$(psql_ -c "SELECT pg_walfile_name(pg_switch_wal())")
until "${JDB[@]}" wal status --json | grep -q "\"last\": \"$LAST\""; do sleep 0.5; done
kill "$STREAM"; wait "$STREAM" || true; STREAM=""

# The bare tools' archive: the same WAL, uncompressed, as archive_command = 'cp %p ARCHIVE/%f' leaves it.
mkdir -p "$WORK/archive"
for seg in $(ls "$WORK/storage/wal/00000001"); do
  [[ "$seg" =~ ^[0-9A-F]{24}$ ]] && "${JDB[@]}" wal fetch "$seg" "$WORK/archive/$seg"
done
chmod -R a+rX "$WORK/archive"
SEGMENTS=$(ls "$WORK/archive" | wc -l)
BASE="$WORK/storage/postgres/base/$ID"

free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }
copy_url() { node -e 'const u = new URL(process.argv[1]); u.hostname = "127.0.0.1"; u.port = process.argv[2]; console.log(u.toString())' "$JARVIS_PG_URL" "$1"; }
wait_promoted() { until [ "$(raw "$PGBIN/psql" -X -At -d "$(copy_url "$1")" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.3; done; }

bare_restore() { # DIR PORT
  mkdir -m 700 "$1"
  zstd -q -d -c "$BASE/base.tar.zst" | tar -x -f - -C "$1"
  tar -x -f "$BASE/pg_wal.tar" -C "$1/pg_wal"
  cat >> "$1/postgresql.auto.conf" <<CONF
restore_command = 'cp $WORK/archive/%f %p'
recovery_target_time = '$(sed 's/T/ /; s/Z$/+00/' <<<"$T")'
recovery_target_action = 'promote'
archive_mode = off
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
CONF
  touch "$1/recovery.signal"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$1"
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$1" -l "$1/recovery.log" -w -t 600 start >/dev/null
  wait_promoted "$2"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RAW_T=(); JDB_T=(); RATIOS=()
for i in $(seq 1 "$PAIRS"); do
  sync; P=$(free_port)
  t0=$(now); bare_restore "$WORK/bare-$i" "$P"; t1=$(now)
  R=$(secs "$t0" "$t1"); RAW_T+=("$R")
  BARE_ROWS=$(raw "$PGBIN/psql" -X -At -d "$(copy_url "$P")" -c "SELECT count(*) FROM walgen")
  stop_copy "$WORK/bare-$i"; rm -rf "$WORK/bare-$i"
  sync; P=$(free_port)
  t0=$(now)
  "${JDB[@]}" restore latest --to-time "$T" --target-dir "$WORK/jdb-$i" --start --port "$P" > "$WORK/restore.out"
  t1=$(now)
  J=$(secs "$t0" "$t1"); JDB_T+=("$J"); RATIOS+=("$(echo "$J / $R" | bc -l)")
  JDB_ROWS=$(raw "$PGBIN/psql" -X -At -d "$(copy_url "$P")" -c "SELECT count(*) FROM walgen")
  stop_copy "$WORK/jdb-$i"; rm -rf "$WORK/jdb-$i"
  [ "$BARE_ROWS" = "$AT_T" ] && [ "$JDB_ROWS" = "$AT_T" ] || { echo "rows differ: at T $AT_T, bare $BARE_ROWS, jarvis-db $JDB_ROWS" >&2; exit 1; }
  printf 'pair %d: bare untar + cp recovery %.2f s, jarvis-db restore --to-time --start %.2f s, ratio %.3f (both: %s rows at T)\n' "$i" "$R" "$J" "$(echo "$J / $R" | bc -l)" "$AT_T"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
RM=$(median "${RAW_T[@]}"); JM=$(median "${JDB_T[@]}")

echo
echo "== pitr-restore, $(date -u +%Y-%m-%d), $(nproc) cores, scale $SCALE, $PAIRS interleaved pairs =="
echo "load average (1/5/15 min) before $LOAD_BEFORE, after $LOAD_AFTER"
printf 'database size (pg_database_size)              %8.1f MB; base backup %s, %.1f MB stored\n' "$(echo "$DBSIZE/1000000" | bc -l)" "$ID" "$(echo "$(du -sb "$BASE" | cut -f1)/1000000" | bc -l)"
printf 'WAL after the base backup                     %8.1f MB, %d segments archived (%.1f MB stored)\n' "$(echo "$WAL_BYTES/1000000" | bc -l)" "$SEGMENTS" "$(echo "$(du -sb "$WORK/storage/wal" | cut -f1)/1000000" | bc -l)"
printf 'bare untar + recovery (cp), median            %8.2f s   (spread %s s)\n' "$RM" "$(minmax "${RAW_T[@]}")"
printf 'jarvis-db restore --to-time --start, median   %8.2f s   (spread %s s)\n' "$JM" "$(minmax "${JDB_T[@]}")"
printf 'ratio, medians (jarvis-db / bare)             %8.3f   (target <= 1.2)\n' "$(echo "$JM/$RM" | bc -l)"
printf 'ratio of each pair: median %.3f, spread %s\n' "$(median "${RATIOS[@]}")" "$(minmax "${RATIOS[@]}")"
