#!/usr/bin/env bash
# Benchmark (issue 15): copying a PostgreSQL backup off-site to S3 with the real CLI against
# `aws s3 cp --recursive` (Debian's awscli) of the same files to the same server, in the same run,
# interleaved (aws, jarvis-db, aws, jarvis-db…); peak RSS of jarvis-db for every size; then a
# restore from S3 against the same tool's download plus `pg_restore -j2`.
#
# One command:   npm run build && bench/s3-copy.sh ["0.15 0.75 1.5"] [PAIRS=3]
#
# Each scale gets its own sandbox (PostgreSQL + the s3rver S3 server, never the machine's shared
# services), seeded with `jarvis-db init --seed --scale S`, and one backup (`compression: 0`, so the
# bytes copied are about the table data: 0.15 ≈ 100 MB, 0.75 ≈ 500 MB, 1.5 ≈ 1 GB) written to the
# `local` repository with `offsite` off. The copy is then `jarvis-db apply --auto-approve` with
# `offsite` on: the plan finds the backup missing there and runs one copy_backup (start-up, config,
# the locks, the catalogs of both repositories, reading every file back through its SHA-256, the
# multipart uploads, the manifest). The offsite copy is removed between pairs. The ratio is taken
# at the middle scale (the issue's ~500 MB); the other sizes show that memory does not grow.
set -euo pipefail
SCALES="${1:-0.15 0.75 1.5}"
PAIRS="${2:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/jarvis-bench-s3.XXXXXX)"
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
backups:
  - name: nightly
    service: postgres
    cron: "0 3 * * *"
    format: directory
    jobs: 2
    compression: 0
    keep: { last: 100 }
YAML
export JARVIS_DB_CONFIG="$WORK/jarvis-db.yaml"

REPORT=()
for SCALE in $SCALES; do
  sandbox_down
  rm -rf "$WORK/sandbox" "$WORK/storage" "$WORK/repo"
  sandbox_up postgres,s3

  echo "scale $SCALE: jarvis-db init --seed ..."
  BENCH_OFFSITE=false "${JDB[@]}" init --seed --scale "$SCALE" | grep seeded
  BENCH_OFFSITE=false "${JDB[@]}" --json backup create --service postgres > "$WORK/create.json"
  read -r ID BYTES < <(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).backups[0]; console.log(r.id, r.totalBytes)' "$WORK/create.json")
  SRC="$WORK/repo/postgres/nightly/$ID"
  [ -f "$SRC/manifest.json" ] || { echo "backup $ID is not at $SRC" >&2; exit 1; }
  FILES=$(find "$SRC" -type f | wc -l)

  AWS_T=(); JDB_T=(); RSS=0
  pairs=1; [ "$SCALE" = "$(echo "$SCALES" | awk '{print $(int((NF+1)/2))}')" ] && pairs=$PAIRS
  for i in $(seq 1 "$pairs"); do
    s3 rm --quiet --recursive "s3://$JARVIS_S3_BUCKET/raw/" >/dev/null 2>&1 || true
    t0=$(now); s3 cp --quiet --recursive "$SRC" "s3://$JARVIS_S3_BUCKET/raw/$ID"; t1=$(now)
    A=$(secs "$t0" "$t1"); AWS_T+=("$A")
    s3 rm --quiet --recursive "s3://$JARVIS_S3_BUCKET/bench/" >/dev/null 2>&1 || true
    t0=$(now)
    BENCH_OFFSITE=true /usr/bin/time -v -o "$WORK/time.txt" "${JDB[@]}" apply --auto-approve > "$WORK/apply.txt" 2>&1 || { cat "$WORK/apply.txt" >&2; exit 1; }
    t1=$(now)
    grep -q "copy" "$WORK/apply.txt" || { echo "apply did not copy the backup:" >&2; cat "$WORK/apply.txt" >&2; exit 1; }
    J=$(secs "$t0" "$t1"); JDB_T+=("$J")
    KB=$(peak_kb "$WORK/time.txt"); [ "$KB" -gt "$RSS" ] && RSS=$KB
    printf 'scale %s pair %d: aws s3 cp %.2f s, jarvis-db apply (copy) %.2f s, ratio %.3f, peak RSS %.1f MB\n' "$SCALE" "$i" "$A" "$J" "$(echo "$J / $A" | bc -l)" "$(echo "$KB/1024" | bc -l)"
  done
  AM=$(median "${AWS_T[@]}"); JM=$(median "${JDB_T[@]}")

  # Restore from S3: the raw tool downloads the same files, then pg_restore -j2.
  rm -rf "$WORK/download"
  raw "$PGBIN/psql" -qc "CREATE DATABASE bare_restore"
  # A jarvis-db directory-format backup keeps pg_dump's directory under data/.
  t0=$(now); s3 cp --quiet --recursive "s3://$JARVIS_S3_BUCKET/raw/$ID" "$WORK/download"; raw "$PGBIN/pg_restore" -j2 -d bare_restore "$WORK/download/data"; t1=$(now)
  BR=$(secs "$t0" "$t1")
  t0=$(now)
  BENCH_OFFSITE=true /usr/bin/time -v -o "$WORK/time-restore.txt" "${JDB[@]}" restore "$ID" --repository offsite --target-db jdb_restore > "$WORK/restore.txt" 2>&1 || { cat "$WORK/restore.txt" >&2; exit 1; }
  t1=$(now); JR=$(secs "$t0" "$t1"); RKB=$(peak_kb "$WORK/time-restore.txt")

  REPORT+=("$(printf '| %s | %.1f MB, %d files | %.2f s (%s) | %.2f s (%s) | **%.3f** | %.1f MB | %.2f s | %.2f s | %.3f | %.1f MB |' \
    "$SCALE" "$(echo "$BYTES/1000000" | bc -l)" "$FILES" "$AM" "$(minmax "${AWS_T[@]}")" "$JM" "$(minmax "${JDB_T[@]}")" "$(echo "$JM/$AM" | bc -l)" \
    "$(echo "$RSS/1024" | bc -l)" "$BR" "$JR" "$(echo "$JR/$BR" | bc -l)" "$(echo "$RKB/1024" | bc -l)")")
done

echo
echo "== s3-copy, $(date -u +%Y-%m-%d), $(nproc) cores, $("$AWS" --version 2>&1 | cut -d' ' -f1), s3rver $(cd "$ROOT" && node -p 'require("s3rver/package.json").version' 2>/dev/null || echo '?') =="
echo "| scale | backup | aws s3 cp --recursive, median | jarvis-db apply (copy_backup), median | ratio (target ≤ 1.2) | peak RSS copy (target < 200 MB) | aws download + pg_restore -j2 | jarvis-db restore --repository offsite | ratio | peak RSS restore |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${REPORT[@]}"
