#!/usr/bin/env bash
# Benchmark: jarvis-db's postgres backup against bare `pg_dump -Fd -j2 -Z1`, and its restore
# against bare `pg_restore -j2`, on the same generated JARVIS-like database, in the same run.
# Prints the ratios; appends nothing by itself (copy the summary into bench/RESULTS.md).
# Usage: bench/backup-postgres.sh [SCALE]   (SCALE 1 ≈ 700 MB; 0.1 for a quick run)
# Needs: PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin), a built dist/ (npx tsc).
set -euo pipefail
SCALE="${1:-1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d /tmp/jarvis-bench-backup.XXXXXX)"
PORT=$(( 56000 + RANDOM % 2000 ))
PASS="bench$RANDOM$RANDOM"
AS=(); [ "$(id -u)" = 0 ] && AS=(runuser -u postgres --) && chown postgres "$WORK"
cleanup() { "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

# A throwaway server of our own (the project's sandbox replaces this once `jarvis-db sandbox` exists).
echo "$PASS" > "$WORK/pw"; [ ${#AS[@]} -gt 0 ] && chown postgres "$WORK/pw"
"${AS[@]}" "$PGBIN/initdb" -D "$WORK/data" -U jarvis --auth=scram-sha-256 --pwfile="$WORK/pw" >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_wal_size=4GB -c fsync=on" start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=jarvis PGPASSWORD="$PASS"
psql -q -d postgres -c "CREATE DATABASE jarvis"
export PGDATABASE=jarvis

echo "generating JARVIS-like data (scale $SCALE)..."
psql -q -v ON_ERROR_STOP=1 -v scale="$SCALE" <<'SQL'
\set users 'round(100000 * :scale)::int'
\set convs 'round(400000 * :scale)::int'
\set msgs 'round(2600000 * :scale)::int'
\set mets 'round(2000000 * :scale)::int'
\set mems 'round(60000 * :scale)::int'
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text UNIQUE NOT NULL, display_name text, created_at timestamptz, updated_at timestamptz, last_active_at timestamptz NOT NULL DEFAULT now(), anonymized_at timestamptz);
CREATE TABLE conversations (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint REFERENCES users ON DELETE CASCADE, title text, created_at timestamptz, updated_at timestamptz NOT NULL);
CREATE TABLE messages (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, conversation_id bigint REFERENCES conversations ON DELETE CASCADE, role text CHECK (role IN ('user','assistant','system','tool')), content text, tokens int CHECK (tokens >= 0), created_at timestamptz NOT NULL);
CREATE TABLE memory (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint REFERENCES users ON DELETE CASCADE, conversation_id bigint REFERENCES conversations ON DELETE SET NULL, content text, embedding real[], importance real CHECK (importance BETWEEN 0 AND 1), created_at timestamptz, last_accessed_at timestamptz);
CREATE TABLE metrics (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, value double precision, labels jsonb, recorded_at timestamptz NOT NULL);
CREATE TABLE lorem (t text);
INSERT INTO lorem SELECT string_agg(w, ' ') FROM (SELECT (ARRAY['the','assistant','user','asked','about','weather','schedule','meeting','reminder','email','project','deadline','summary','please','thanks','could','you','help','with','this','that','code','review','function','error','database','backup','restore','memory','context','jarvis','today','tomorrow','call','notes','list','open','close','update','plan'])[1 + (random()*39)::int] AS w FROM generate_series(1, 3000)) s;
INSERT INTO users (email, display_name, created_at, updated_at, last_active_at)
  SELECT 'user' || i || '@example.com', 'User ' || i, now() - (i % 900 || ' days')::interval, now() - (i % 90 || ' days')::interval, now() - (i % 60 || ' days')::interval FROM generate_series(1, :users) i;
INSERT INTO conversations (user_id, title, created_at, updated_at)
  SELECT 1 + i % :users, substr(l.t, 1 + (i * 31) % 2000, 30 + i % 30), now() - (i % 700 || ' days')::interval, now() - (i % 400 || ' days')::interval FROM generate_series(1, :convs) i, lorem l;
INSERT INTO messages (conversation_id, role, content, tokens, created_at)
  SELECT 1 + i % :convs, (ARRAY['user','assistant','system','tool'])[1 + i % 4], substr(l.t, 1 + ((i::bigint * 7919) % 15000)::int, 60 + (i * 13) % 240), (i * 13) % 400, now() - (i % 700 || ' days')::interval FROM generate_series(1, :msgs) i, lorem l;
INSERT INTO memory (user_id, conversation_id, content, embedding, importance, created_at, last_accessed_at)
  SELECT 1 + i % :users, 1 + i % :convs, substr(l.t, 1 + (i * 17) % 15000, 120), ARRAY(SELECT round((random() * 2 - 1)::numeric, 3)::real FROM generate_series(1, 384) WHERE i > 0), (i % 100) / 100.0, now() - (i % 300 || ' days')::interval, now() FROM generate_series(1, :mems) i, lorem l;
INSERT INTO metrics (name, value, labels, recorded_at)
  SELECT (ARRAY['latency_ms','tokens','requests','errors'])[1 + i % 4], (i % 1000) / 10.0, jsonb_build_object('host', 'h' || i % 8, 'model', 'm' || i % 3), now() - (i % 43200 || ' minutes')::interval FROM generate_series(1, :mets) i;
DROP TABLE lorem;
CREATE INDEX ON conversations (updated_at); CREATE INDEX ON messages (created_at); CREATE INDEX ON messages (conversation_id);
CREATE INDEX ON metrics (recorded_at); CREATE INDEX ON users (last_active_at); CREATE INDEX ON memory (user_id);
VACUUM ANALYZE;
SQL
DBSIZE=$(psql -Atc "SELECT pg_database_size('jarvis')")
echo "database size: $((DBSIZE / 1000000)) MB"

cat > "$WORK/desired.json" <<JSON
{"version":1,"project":"bench","configFile":"$WORK/jarvis-db.yaml","configHash":"bench",
 "services":{"postgres":{"url":"postgres://jarvis:$PASS@127.0.0.1:$PORT/jarvis"}},
 "storage":{"path":"$WORK/storage"},
 "backups":[{"name":"bench","service":"postgres","cron":"0 3 * * *","timezone":"UTC","keep":{"last":10},"verify":"checksum","format":"directory","jobs":2,"compression":1,"path":"backups[0]"}],
 "retention":[],"health":{"thresholds":{},"intervalSeconds":60,"historySeconds":3600}}
JSON

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
BASE_T=(); JDB_T=(); RSS=0; JDB_BYTES=0; BASE_BYTES=0; ID=""
for round in 1 2; do
  rm -rf "$WORK/raw"; sync
  t0=$(now); pg_dump -Fd -j2 -Z1 -f "$WORK/raw" jarvis; t1=$(now)
  BASE_T+=("$(secs "$t0" "$t1")"); BASE_BYTES=$(du -sb "$WORK/raw" | cut -f1)
  sync
  t0=$(now)
  OUT=$(env -u PGPASSWORD -u PGUSER -u PGHOST -u PGPORT -u PGDATABASE /usr/bin/time -v -o "$WORK/time.txt" node "$ROOT/bench/backup-postgres-run.mjs" create "$WORK/desired.json")
  t1=$(now)
  JDB_T+=("$(secs "$t0" "$t1")")
  R=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt")
  [ "$R" -gt "$RSS" ] && RSS=$R
  ID=$(echo "$OUT" | sed -E 's/.*"id":"([^"]+)".*/\1/'); JDB_BYTES=$(echo "$OUT" | sed -E 's/.*"totalBytes":([0-9]+).*/\1/')
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
BT=$(best "${BASE_T[@]}"); JT=$(best "${JDB_T[@]}")
psql -q -d postgres -c "CREATE DATABASE bare_restore"
t0=$(now); pg_restore -j2 -d bare_restore "$WORK/raw"; t1=$(now); BR=$(secs "$t0" "$t1")
t0=$(now); env -u PGPASSWORD node "$ROOT/bench/backup-postgres-run.mjs" restore "$WORK/desired.json" "$ID" jdb_restore >/dev/null; t1=$(now); JR=$(secs "$t0" "$t1")

echo
echo "== backup-postgres, $(date -u +%Y-%m-%d), $(nproc) cores, scale $SCALE =="
printf 'database size (pg_database_size)     %8.1f MB\n' "$(echo "$DBSIZE/1000000" | bc -l)"
printf 'bare pg_dump -Fd -j2 -Z1              %8.2f s   %8.1f MB   (runs: %s)\n' "$BT" "$(echo "$BASE_BYTES/1000000" | bc -l)" "${BASE_T[*]}"
printf 'jarvis-db backup create (postgres)    %8.2f s   %8.1f MB   (runs: %s)\n' "$JT" "$(echo "$JDB_BYTES/1000000" | bc -l)" "${JDB_T[*]}"
printf 'ratio backup (jarvis-db / bare)       %8.3f   (target <= 1.15)\n' "$(echo "$JT/$BT" | bc -l)"
printf 'compressed size / database size       %8.3f   (target <= 0.30)\n' "$(echo "$JDB_BYTES/$DBSIZE" | bc -l)"
printf 'peak RSS of jarvis-db                 %8.1f MB  (target < 150)\n' "$(echo "$RSS/1024" | bc -l)"
printf 'bare pg_restore -j2                   %8.2f s\n' "$BR"
printf 'jarvis-db restore (checksums+restore+row counts) %8.2f s\n' "$JR"
printf 'ratio restore (jarvis-db / bare)      %8.3f\n' "$(echo "$JR/$BR" | bc -l)"
