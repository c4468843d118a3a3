#!/usr/bin/env bash
# Benchmark: `jarvis-db init --seed` (create the database, extensions, migrations, then the
# generated JARVIS dataset) against the raw tools putting the same data into PostgreSQL:
# `pg_restore -j2` of an uncompressed directory dump of the seeded database, in the same run,
# on the same throwaway server (the project's sandbox). Prints the ratio.
# Usage: bench/init-seed.sh [SCALE]   (SCALE 1 ≈ 700 MB; 0.1 for a quick run)
# Needs: a built dist/ (npx tsc), PostgreSQL server binaries.
set -euo pipefail
SCALE="${1:-1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/jarvis-bench-init.XXXXXX)"
chmod 755 "$WORK"
JDB=(node "$ROOT/bin/jarvis-db.js")
cleanup() { "${JDB[@]}" sandbox down --dir "$WORK/sandbox" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

"${JDB[@]}" sandbox up --dir "$WORK/sandbox" --services postgres >/dev/null
eval "$("${JDB[@]}" sandbox env --dir "$WORK/sandbox")"
PGBIN="$(node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(s.postgres.binDir)' "$WORK/sandbox/sandbox.json")"
# libpq variables for the raw tools, from the sandbox URL (never printed).
eval "$(node -e '
  const u = new URL(process.env.JARVIS_PG_URL);
  const q = (s) => "\x27" + s.replace(/\x27/g, "\x27\\\x27\x27") + "\x27";
  console.log(`export PGHOST=${u.hostname} PGPORT=${u.port} PGUSER=${q(decodeURIComponent(u.username))} PGPASSWORD=${q(decodeURIComponent(u.password))}`);
')"
# init creates the database itself: point the config at one that does not exist yet.
export JARVIS_PG_URL="${JARVIS_PG_URL%/*}/jarvis_bench"
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
YAML
export JARVIS_DB_CONFIG="$WORK/jarvis-db.yaml"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

echo "jarvis-db init --seed --scale $SCALE ..."
t0=$(now)
/usr/bin/time -v -o "$WORK/time.txt" "${JDB[@]}" --json init --seed --scale "$SCALE" > "$WORK/init.json"
t1=$(now); INIT_T=$(secs "$t0" "$t1")
RSS=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
DBSIZE=$(psql -d jarvis_bench -Atc "SELECT pg_database_size('jarvis_bench')")
SEED_MS=$(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(r.seed.ms, r.seed.phases.load, r.seed.phases.analyze, JSON.stringify(r.seed.counts), JSON.stringify(r.seed.tables))' "$WORK/init.json")
read -r SEED_TOTAL SEED_LOAD SEED_ANALYZE COUNTS TABLE_MS <<<"$SEED_MS"

# The raw tools, same data, same server: dump it uncompressed, restore it into a new database.
"$PGBIN/pg_dump" -d jarvis_bench -Fd -Z0 -j2 -f "$WORK/dump"
psql -d postgres -qc "CREATE DATABASE raw_restore"
sync
t0=$(now); "$PGBIN/pg_restore" -j2 -d raw_restore "$WORK/dump"; "$PGBIN/vacuumdb" -q -Z -d raw_restore; t1=$(now)
RAW_T=$(secs "$t0" "$t1")
RAW_SIZE=$(psql -d postgres -Atc "SELECT pg_database_size('raw_restore')")

echo
echo "== init-seed, $(date -u +%Y-%m-%d), $(nproc) cores, scale $SCALE =="
echo "rows: $COUNTS"
echo "ms per table (insert + indexes; two connections in parallel): $TABLE_MS"
printf 'pg_database_size after init --seed     %8.1f MB\n' "$(echo "$DBSIZE/1000000" | bc -l)"
printf 'jarvis-db init --seed (wall)           %8.2f s   (seed %.2f s: load %.2f s, analyze %.2f s; peak RSS %.1f MB)\n' "$INIT_T" "$(echo "$SEED_TOTAL/1000" | bc -l)" "$(echo "$SEED_LOAD/1000" | bc -l)" "$(echo "$SEED_ANALYZE/1000" | bc -l)" "$(echo "$RSS/1024" | bc -l)"
printf 'raw pg_restore -j2 + analyze, same data %8.2f s   (%.1f MB restored)\n' "$RAW_T" "$(echo "$RAW_SIZE/1000000" | bc -l)"
printf 'ratio (init --seed / raw restore)      %8.3f\n' "$(echo "$INIT_T/$RAW_T" | bc -l)"
printf 'target: init --seed of ~700 MB under 180 s: %s\n' "$(if [ "$(echo "$INIT_T < 180" | bc)" = 1 ]; then echo met; else echo MISSED; fi)"
