#!/usr/bin/env bash
# `npm run demo`: on a fresh machine, install what is missing, start throwaway servers, run
# jarvis-db against them with the real jarvis-db.yaml, and stop them again.
# JARVIS_DEMO_SKIP_INSTALL=1 skips the installs and JARVIS_DEMO_DIR moves the sandbox (the demo test
# uses both).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SANDBOX="${JARVIS_DEMO_DIR:-$ROOT/.sandbox}"
JDB=(node "$ROOT/bin/jarvis-db.js")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -z "${JARVIS_DEMO_SKIP_INSTALL:-}" ]; then
  bash scripts/install-system-deps.sh
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    step "npm ci"
    npm ci --no-audit --no-fund
  fi
  step "build"
  npm run --silent build
fi

step "jarvis-db sandbox up"
trap '"${JDB[@]}" sandbox down --dir "$SANDBOX" >/dev/null 2>&1 || true' EXIT
"${JDB[@]}" sandbox up --dir "$SANDBOX"
eval "$("${JDB[@]}" sandbox env --dir "$SANDBOX")"
# Backups, archives, the journal and health history of the demo stay in the sandbox.
export JARVIS_STORAGE="$SANDBOX/storage"
export JARVIS_DB_CONFIG="$ROOT/jarvis-db.yaml"
# The sandbox's S3 server is the off-site repository: backups are copied there too.
if [ -n "${JARVIS_S3_ENDPOINT:-}" ]; then export JARVIS_REPOSITORY_OFFSITE=true; fi

step "jarvis-db validate"
"${JDB[@]}" validate

step "jarvis-db init --seed (the JARVIS schema, and two years of generated data)"
"${JDB[@]}" init --seed --scale "${JARVIS_DEMO_SCALE:-0.05}"

step "jarvis-db plan (exit 2: changes pending)"
set +e
"${JDB[@]}" plan --detailed-exitcode
code=$?
set -e
[ "$code" -eq 2 ] || { echo "expected plan to exit 2 (changes pending), got $code" >&2; exit 1; }

step "jarvis-db apply --auto-approve"
"${JDB[@]}" apply --auto-approve

step "jarvis-db plan (exit 0: nothing left to do)"
"${JDB[@]}" plan --detailed-exitcode

# The machine's own checks (load, disk) are left out: they judge the machine the demo runs on.
# consistency: the seed filled the three stores alike, and retention kept them so (links: in jarvis-db.yaml).
for service in postgres redis chroma backups consistency; do
  step "jarvis-db health check --service $service (exit 0: healthy; retention vacuumed what it deleted)"
  "${JDB[@]}" health check --service "$service"
done

step "jarvis-db backup list"
"${JDB[@]}" backup list

step "jarvis-db archive list"
"${JDB[@]}" archive list

# Point-in-time recovery with examples/pitr.yaml: the WAL archived continuously, a restore point,
# a dropped table, and the table back in a copy recovered to that point.
# Its storage, the recovered copy and the stream's log are in $SANDBOX/pitr, made anew each run.
PITR_DIR="$SANDBOX/pitr"
rm -rf "$PITR_DIR" && mkdir -p "$PITR_DIR"
PITR=(env JARVIS_DB_CONFIG="$ROOT/examples/pitr.yaml" JARVIS_STORAGE="$PITR_DIR/storage" "${JDB[@]}")
psql_() { psql "$1" -X -q -v ON_ERROR_STOP=1 -At -c "$2"; }
wait_for() { # wait_for DESCRIPTION COMMAND...: until COMMAND succeeds, 60 s at most
  local what=$1; shift
  for _ in $(seq 1 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "timed out waiting for $what" >&2; exit 1
}

step "jarvis-db wal stream (examples/pitr.yaml, in the background: pg_receivewal on a slot, every completed segment archived)"
"${PITR[@]}" wal stream >"$PITR_DIR/wal-stream.log" 2>&1 &
STREAM=$!
trap 'kill "$STREAM" 2>/dev/null; wait "$STREAM" 2>/dev/null; "${JDB[@]}" sandbox down --dir "$SANDBOX" >/dev/null 2>&1 || true' EXIT
wait_for "the replication slot" bash -c '"$@" wal status | grep -q "slot jarvis_db: active"' _ "${PITR[@]}"

step "jarvis-db backup create --service postgres (a physical base backup: pg_basebackup)"
"${PITR[@]}" backup create --service postgres

step "jarvis-db restore-point before-drop, then DROP TABLE metrics"
echo "metrics has $(psql_ "$JARVIS_PG_URL" 'SELECT count(*) FROM metrics') rows"
"${PITR[@]}" restore-point before-drop
psql_ "$JARVIS_PG_URL" 'DROP TABLE metrics'
echo "metrics dropped"
# The segment holding the drop completes (as it would once more WAL is written), and is archived.
SEGMENT=$(psql_ "$JARVIS_PG_URL" 'SELECT pg_walfile_name(pg_switch_wal())')
wait_for "the archiving of $SEGMENT" bash -c '"${@:2}" wal status --json | grep -q "\"last\": \"$1\""' _ "$SEGMENT" "${PITR[@]}"

step "jarvis-db wal status"
"${PITR[@]}" wal status

PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
step "jarvis-db restore latest --to-name before-drop --target-dir $PITR_DIR/restored --start --port $PORT"
RESTORED=$("${PITR[@]}" restore latest --to-name before-drop --target-dir "$PITR_DIR/restored" --start --port "$PORT")
echo "$RESTORED"
RECOVERED_URL=$(node -e 'const u = new URL(process.argv[1]); u.hostname = "127.0.0.1"; u.port = process.argv[2]; u.search = ""; console.log(u.toString())' "$JARVIS_PG_URL" "$PORT")
echo "metrics is back in the recovered copy: $(psql_ "$RECOVERED_URL" 'SELECT count(*) FROM metrics') rows"
STOP=$(sed -n 's/^stop it with: //p' <<<"$RESTORED")
step "stop the recovered copy: $STOP"
$STOP >/dev/null
kill "$STREAM"
wait "$STREAM" || true
trap '"${JDB[@]}" sandbox down --dir "$SANDBOX" >/dev/null 2>&1 || true' EXIT

step "jarvis-db sandbox down"
"${JDB[@]}" sandbox down --dir "$SANDBOX"
trap - EXIT
echo
echo "Demo done."
