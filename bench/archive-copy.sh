#!/usr/bin/env bash
# Benchmark (archives in every repository): copying retention archives off-site to S3 with the real
# CLI against `aws s3 cp --recursive` (Debian's awscli) of the same files to the same server, in the
# same run, interleaved (aws, jarvis-db, aws, jarvis-db…); peak RSS of jarvis-db.
#
# One command:   npm run build && bench/archive-copy.sh [ROWS=1000000] [PAIRS=3]
#
# A sandbox (PostgreSQL + the s3rver S3 server, never the machine's shared services); ROWS
# cache_entries older than the policy's cut-off are archived by `jarvis-db apply` into the `local`
# repository with `offsite` off (batches of 5,000: ROWS/5,000 chunks, each a gzip data file, its
# manifest and its committed marker). The copy is then `jarvis-db apply --auto-approve` with
# `offsite` on: the plan finds the archive missing there and runs one copy_archive (start-up,
# config, the locks, both listings, every chunk read back through its SHA-256, uploaded, hashed as
# stored, the header published last). The offsite copy is removed between pairs.
set -euo pipefail
ROWS="${1:-1000000}"
PAIRS="${2:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/jarvis-bench-archive-copy.XXXXXX)"
chmod 755 "$WORK"
JDB=(node "$ROOT/bin/jarvis-db.js")
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
require_awscli
cleanup() { sandbox_down; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/jarvis-db.yaml" <<YAML
version: 1
project: bench
services:
  postgres: { url: "\${JARVIS_PG_URL}" }
storage:
  path: $WORK/storage
repositories:
  - name: local
    path: $WORK/repo
  - name: offsite
    enabled: \${BENCH_OFFSITE:-false}
    s3:
      bucket: "\${JARVIS_S3_BUCKET}"
      prefix: bench/
      region: "\${AWS_REGION}"
      endpoint: "\${JARVIS_S3_ENDPOINT}"
      forcePathStyle: true
schema:
  migrations: $ROOT/migrations
  target: latest
  backupBefore: false
retention:
  policies:
    - { name: cache-archive, table: cache_entries, age: { column: created_at, olderThan: 7d }, action: archive, batchSize: 5000, archive: { deleteAfter: 1y } }
YAML
export JARVIS_DB_CONFIG="$WORK/jarvis-db.yaml"

sandbox_up postgres,s3
BENCH_OFFSITE=false "${JDB[@]}" init > /dev/null
raw "$PGBIN/psql" -qc "INSERT INTO cache_entries (key, value, created_at)
  SELECT 'key:' || i, jsonb_build_object('user', i % 977, 'answer', md5(i::text), 'tokens', i % 4096), now() - interval '8 days' - i * interval '1 second'
  FROM generate_series(1, $ROWS) i"
echo "archiving $ROWS rows into the local repository ..."
BENCH_OFFSITE=false "${JDB[@]}" apply --auto-approve > "$WORK/archive.txt" 2>&1 || { cat "$WORK/archive.txt" >&2; exit 1; }
SRC=$(find "$WORK/repo/archives/cache-archive" -mindepth 1 -maxdepth 1 -type d | head -1)
[ -f "$SRC/archive.json" ] || { echo "no archive under $WORK/repo/archives" >&2; cat "$WORK/archive.txt" >&2; exit 1; }
ID=$(basename "$SRC")
FILES=$(find "$SRC" -type f | wc -l)
BYTES=$(du -sb "$SRC" | cut -f1)

AWS_T=(); JDB_T=(); RSS=0
for i in $(seq 1 "$PAIRS"); do
  s3 rm --quiet --recursive "s3://$JARVIS_S3_BUCKET/raw/" >/dev/null 2>&1 || true
  t0=$(now); s3 cp --quiet --recursive "$SRC" "s3://$JARVIS_S3_BUCKET/raw/$ID"; t1=$(now)
  A=$(secs "$t0" "$t1"); AWS_T+=("$A")
  s3 rm --quiet --recursive "s3://$JARVIS_S3_BUCKET/bench/" >/dev/null 2>&1 || true
  t0=$(now)
  BENCH_OFFSITE=true /usr/bin/time -v -o "$WORK/time.txt" "${JDB[@]}" apply --auto-approve > "$WORK/apply.txt" 2>&1 || { cat "$WORK/apply.txt" >&2; exit 1; }
  t1=$(now)
  grep -q "copied from local to offsite" "$WORK/apply.txt" || { echo "apply did not copy the archive:" >&2; cat "$WORK/apply.txt" >&2; exit 1; }
  J=$(secs "$t0" "$t1"); JDB_T+=("$J")
  KB=$(peak_kb "$WORK/time.txt"); [ "$KB" -gt "$RSS" ] && RSS=$KB
  printf 'pair %d: aws s3 cp %.2f s, jarvis-db apply (copy_archive) %.2f s, ratio %.3f, peak RSS %.1f MB\n' "$i" "$A" "$J" "$(echo "$J / $A" | bc -l)" "$(echo "$KB/1024" | bc -l)"
done
AM=$(median "${AWS_T[@]}"); JM=$(median "${JDB_T[@]}")

echo
echo "== archive-copy, $(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $("$AWS" --version 2>&1 | cut -d' ' -f1) =="
echo "| rows | archive | aws s3 cp --recursive, median | jarvis-db apply (copy_archive), median | ratio | peak RSS |"
echo "|---|---|---|---|---|---|"
printf '| %s | %.1f MB, %d files | %.2f s (%s) | %.2f s (%s) | **%.3f** | %.1f MB |\n' "$ROWS" "$(echo "$BYTES/1000000" | bc -l)" "$FILES" "$AM" "$(minmax "${AWS_T[@]}")" "$JM" "$(minmax "${JDB_T[@]}")" "$(echo "$JM/$AM" | bc -l)" "$(echo "$RSS/1024" | bc -l)"
