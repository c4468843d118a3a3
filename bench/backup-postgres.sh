#!/usr/bin/env bash
# Benchmark (issues 4 and 14): `jarvis-db backup create --service postgres` as a user runs it
# (`node bin/jarvis-db.js …`, a fresh process, config parsing included) against bare
# `pg_dump -Fd -j2 -Z1` of the same database, in the same run, interleaved (raw, CLI, raw, CLI…),
# then one `jarvis-db restore` against bare `pg_restore -j2`. Prints medians, spreads and ratios.
#
# One command:   npm run build && bench/backup-postgres.sh [SCALE=0.5] [PAIRS=5]
#
# It starts its own sandbox PostgreSQL (`jarvis-db sandbox up`, never the machine's shared 5432)
# and seeds it with `jarvis-db init --seed --scale SCALE` (0.5 ≈ 350 MB, 1 ≈ 700 MB).
# jarvis-db's backup includes what a user's does: start-up, config, the apply lock, exact
# per-table row counts in the dump's snapshot, SHA-256 and fsync of every file, the manifest.
# The bare pg_dump fsyncs its files too (its default).
# JARVIS_BENCH_COMPARE=/other/checkout/bin/jarvis-db.js adds that build's backup create to every
# pair, between the bare pg_dump and this build (a before/after in the same run; that checkout
# needs its own built dist/).
set -euo pipefail
SCALE="${1:-0.5}"
PAIRS="${2:-5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/jarvis-bench-backup.XXXXXX)"
chmod 755 "$WORK"
JDB=(node "$ROOT/bin/jarvis-db.js")
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
cleanup() { sandbox_down; rm -rf "$WORK"; }
trap cleanup EXIT

sandbox_up postgres

cat > "$WORK/jarvis-db.yaml" <<YAML
version: 1
project: bench
services:
  postgres: { url: "\${JARVIS_PG_URL}" }
storage:
  path: $WORK/storage
schema:
  migrations: $ROOT/migrations
  target: latest
backups:
  - name: nightly
    service: postgres
    cron: "0 3 * * *"
    format: directory
    jobs: 2
    compression: 1
    keep: { last: 100 }
YAML
export JARVIS_DB_CONFIG="$WORK/jarvis-db.yaml"

echo "jarvis-db init --seed --scale $SCALE ..."
"${JDB[@]}" init --seed --scale "$SCALE" | grep seeded
DBSIZE=$(raw "$PGBIN/psql" -Atc "SELECT pg_database_size(current_database())")

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMPARE="${JARVIS_BENCH_COMPARE:-}"
RAW_T=(); JDB_T=(); CMP_T=(); RATIOS=(); RSS=0; RAW_BYTES=0; JDB_BYTES=0; ID=""
for i in $(seq 1 "$PAIRS"); do
  rm -rf "$WORK/raw"; sync
  t0=$(now); raw "$PGBIN/pg_dump" -Fd -j2 -Z1 -f "$WORK/raw"; t1=$(now)
  R=$(secs "$t0" "$t1"); RAW_T+=("$R"); RAW_BYTES=$(du -sb "$WORK/raw" | cut -f1)
  CMP=""
  if [ -n "$COMPARE" ]; then
    rm -rf "$WORK/storage/postgres"; sync
    t0=$(now); node "$COMPARE" backup create --service postgres >/dev/null 2>&1; t1=$(now)
    C=$(secs "$t0" "$t1"); CMP_T+=("$C"); CMP=$(printf ', compared build %.2f s' "$C")
    rm -rf "$WORK/storage/postgres"
  fi
  rm -rf "$WORK/storage/postgres"; sync
  t0=$(now)
  /usr/bin/time -v -o "$WORK/time.txt" "${JDB[@]}" --json backup create --service postgres > "$WORK/create.json"
  t1=$(now)
  J=$(secs "$t0" "$t1"); JDB_T+=("$J"); RATIOS+=("$(echo "$J / $R" | bc -l)")
  KB=$(peak_kb "$WORK/time.txt")
  [ "$KB" -gt "$RSS" ] && RSS=$KB
  read -r ID JDB_BYTES < <(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).backups[0]; console.log(r.id, r.totalBytes)' "$WORK/create.json")
  printf 'pair %d: pg_dump %.2f s, jarvis-db %.2f s, ratio %.3f%s\n' "$i" "$R" "$J" "$(echo "$J / $R" | bc -l)" "$CMP"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
RM=$(median "${RAW_T[@]}"); JM=$(median "${JDB_T[@]}")

raw "$PGBIN/psql" -qc "CREATE DATABASE bare_restore"
t0=$(now); raw "$PGBIN/pg_restore" -j2 -d bare_restore "$WORK/raw"; t1=$(now); BR=$(secs "$t0" "$t1")
# The last pair's backup is restored (each pair's compared build ran before it, its backup removed).
t0=$(now); "${JDB[@]}" restore "$ID" --target-db jdb_restore >/dev/null 2>&1; t1=$(now); JR=$(secs "$t0" "$t1")

echo
echo "== backup-postgres, $(date -u +%Y-%m-%d), $(nproc) cores, scale $SCALE, $PAIRS interleaved pairs =="
echo "load average (1/5/15 min) before $LOAD_BEFORE, after $LOAD_AFTER"
printf 'database size (pg_database_size)            %8.1f MB\n' "$(echo "$DBSIZE/1000000" | bc -l)"
printf 'bare pg_dump -Fd -j2 -Z1, median             %8.2f s   (spread %s s; %.1f MB)\n' "$RM" "$(minmax "${RAW_T[@]}")" "$(echo "$RAW_BYTES/1000000" | bc -l)"
printf 'jarvis-db backup create --service postgres   %8.2f s   (spread %s s; %.1f MB)\n' "$JM" "$(minmax "${JDB_T[@]}")" "$(echo "$JDB_BYTES/1000000" | bc -l)"
printf 'ratio backup, medians (jarvis-db / bare)     %8.3f   (target <= 1.15)\n' "$(echo "$JM/$RM" | bc -l)"
printf 'ratio of each pair: median %.3f, spread %s\n' "$(median "${RATIOS[@]}")" "$(minmax "${RATIOS[@]}")"
if [ -n "$COMPARE" ]; then
  CM=$(median "${CMP_T[@]}")
  printf 'compared build (%s), median %.2f s (spread %s s); ratio to bare %.3f\n' "$COMPARE" "$CM" "$(minmax "${CMP_T[@]}")" "$(echo "$CM/$RM" | bc -l)"
fi
printf 'compressed size / database size             %8.3f   (target <= 0.30)\n' "$(echo "$JDB_BYTES/$DBSIZE" | bc -l)"
printf 'peak RSS of jarvis-db                        %8.1f MB  (target < 150)\n' "$(echo "$RSS/1024" | bc -l)"
printf 'bare pg_restore -j2                          %8.2f s\n' "$BR"
printf 'jarvis-db restore (checksums, restore, row counts) %.2f s\n' "$JR"
printf 'ratio restore (jarvis-db / bare)             %8.3f\n' "$(echo "$JR/$BR" | bc -l)"
