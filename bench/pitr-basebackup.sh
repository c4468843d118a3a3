#!/usr/bin/env bash
# Benchmark (issue 16): a physical base backup, `jarvis-db backup create --service postgres` with a
# `method: physical` schedule as a user runs it (`node bin/jarvis-db.js …`, a fresh process), against
# bare `pg_basebackup -Ft -X stream -D DIR` to a local directory with the same flags jarvis-db
# passes (client-zstd:1, --checkpoint=fast, SHA-256 backup_manifest), same data, same run,
# interleaved (bare, jarvis-db, bare, …). Prints each pair, the medians and the ratio (target <= 1.1).
#
# One command:   npm run build && bench/pitr-basebackup.sh [SCALE=1] [PAIRS=3]
#
# Its own sandbox PostgreSQL (never the machine's 5432), seeded by `jarvis-db init --seed --scale
# SCALE` (1 ≈ 700 MB). jarvis-db's run includes what a user's does: start-up, config, the apply
# lock, SHA-256 and fsync of every file, the row counts, the manifest. pg_basebackup fsyncs too.
# JARVIS_BENCH_PROFILE=DIR runs jarvis-db under `node --cpu-prof --cpu-prof-dir DIR`.
set -euo pipefail
SCALE="${1:-1}"
PAIRS="${2:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/jarvis-bench-basebackup.XXXXXX)"
chmod 755 "$WORK"
JDB=(node "$ROOT/bin/jarvis-db.js")
PROFILE="${JARVIS_BENCH_PROFILE:-}"
JDB_RUN=(node ${PROFILE:+--cpu-prof --cpu-prof-dir "$PROFILE"} "$ROOT/bin/jarvis-db.js")
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
CLUSTER=$(raw "$PGBIN/psql" -Atc "SELECT sum(pg_database_size(oid)) FROM pg_database WHERE datallowconn")

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RAW_T=(); JDB_T=(); RATIOS=(); RAW_BYTES=0; JDB_BYTES=0; RSS=0
for i in $(seq 1 "$PAIRS"); do
  rm -rf "$WORK/raw"; sync
  t0=$(now)
  raw "$PGBIN/pg_basebackup" -D "$WORK/raw" -Ft -X stream --checkpoint=fast --compress=client-zstd:1 --manifest-checksums=SHA256 --no-password
  t1=$(now)
  R=$(secs "$t0" "$t1"); RAW_T+=("$R"); RAW_BYTES=$(du -sb "$WORK/raw" | cut -f1)
  rm -rf "$WORK/storage/postgres"; sync
  t0=$(now)
  /usr/bin/time -v -o "$WORK/time.txt" "${JDB_RUN[@]}" --json backup create --service postgres > "$WORK/create.json"
  t1=$(now)
  J=$(secs "$t0" "$t1"); JDB_T+=("$J"); RATIOS+=("$(echo "$J / $R" | bc -l)")
  KB=$(peak_kb "$WORK/time.txt")
  [ "$KB" -gt "$RSS" ] && RSS=$KB
  JDB_BYTES=$(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).backups[0]; console.log(r.totalBytes)' "$WORK/create.json")
  printf 'pair %d: pg_basebackup %.2f s, jarvis-db %.2f s, ratio %.3f\n' "$i" "$R" "$J" "$(echo "$J / $R" | bc -l)"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
RM=$(median "${RAW_T[@]}"); JM=$(median "${JDB_T[@]}")

echo
echo "== pitr-basebackup, $(date -u +%Y-%m-%d), $(nproc) cores, scale $SCALE, $PAIRS interleaved pairs =="
echo "load average (1/5/15 min) before $LOAD_BEFORE, after $LOAD_AFTER"
printf 'cluster size (sum of pg_database_size)        %8.1f MB\n' "$(echo "$CLUSTER/1000000" | bc -l)"
printf 'bare pg_basebackup -Ft -X stream, median      %8.2f s   (spread %s s; %.1f MB)\n' "$RM" "$(minmax "${RAW_T[@]}")" "$(echo "$RAW_BYTES/1000000" | bc -l)"
printf 'jarvis-db backup create (physical), median    %8.2f s   (spread %s s; %.1f MB)\n' "$JM" "$(minmax "${JDB_T[@]}")" "$(echo "$JDB_BYTES/1000000" | bc -l)"
printf 'ratio, medians (jarvis-db / bare)             %8.3f   (target <= 1.1)\n' "$(echo "$JM/$RM" | bc -l)"
printf 'ratio of each pair: median %.3f, spread %s\n' "$(median "${RATIOS[@]}")" "$(minmax "${RATIOS[@]}")"
printf 'peak RSS of jarvis-db                         %8.1f MB\n' "$(echo "$RSS/1024" | bc -l)"
