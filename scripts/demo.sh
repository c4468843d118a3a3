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
for service in postgres redis chroma backups; do
  step "jarvis-db health check --service $service (exit 0: healthy; retention vacuumed what it deleted)"
  "${JDB[@]}" health check --service "$service"
done

step "jarvis-db backup list"
"${JDB[@]}" backup list

step "jarvis-db archive list"
"${JDB[@]}" archive list

step "jarvis-db sandbox down"
"${JDB[@]}" sandbox down --dir "$SANDBOX"
trap - EXIT
echo
echo "Demo done."
