#!/usr/bin/env bash
# Installs the Debian packages jarvis-db needs when their binaries are missing:
# PostgreSQL (server binaries for the sandbox, client tools for backups), redis-server and
# redis-tools (redis-check-rdb), prometheus (promtool), tmux (a terminal for the progress test), chromium (the status page test). Used by `npm run demo` and by .ci/run. Exits 1 if it cannot.
set -uo pipefail

missing=()
command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-check-rdb >/dev/null 2>&1 || missing+=(redis-tools)
# promtool, for the tests of the generated alert rules and of the /metrics exposition.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# tmux, for the test of the progress display on a real terminal.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
# chromium, for the browser test of the daemon's status page (driven by playwright-core).
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
  echo "missing ${missing[*]}, and no root or sudo to install them: apt-get install ${missing[*]}" >&2
  exit 1
fi
$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
  || { echo "cannot install ${missing[*]}" >&2; exit 1; }
