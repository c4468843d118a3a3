#!/usr/bin/env bash
# Benchmark: jarvis-db's Redis backups against `redis-cli --rdb`, on the same server and data,
# in the same run. 700k keys at scale 1: 500k strings of 100 B, 100k hashes, 100k keys with a TTL.
# - method rdb (uncompressed, the default) vs `redis-cli --rdb`: ratio of the best of 5 runs each,
#   alternated; peak RSS of the jarvis-db process; the same with gzip level 1 for information;
# - method logical (SCAN + DUMP, gzip 1): keys/s and peak RSS;
# - restore of each into a second empty server: keys/s.
# Usage: bench/backup-redis.sh [SCALE]   (needs redis-server, redis-cli and a built dist/: npx tsc)
set -euo pipefail
SCALE="${1:-1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN="$ROOT/bench/backup-redis-run.mjs"
WORK="$(mktemp -d /tmp/jarvis-bench-redis.XXXXXX)"
PASS="bench$RANDOM$RANDOM$RANDOM"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
# A throwaway server: the password in a 0600 config file, never on a command line.
start_redis() { # name -> sets PORT_<name>
  local name=$1 port; port=$(free_port); mkdir -p "$WORK/$name"
  printf 'port %s\nbind 127.0.0.1\ndir %s\nsave ""\nappendonly no\nrequirepass %s\nrepl-diskless-sync-delay 0\nlogfile %s/redis.log\n' "$port" "$WORK/$name" "$PASS" "$WORK/$name" > "$WORK/$name/redis.conf"
  chmod 600 "$WORK/$name/redis.conf"
  redis-server "$WORK/$name/redis.conf" & PIDS+=($!)
  until REDISCLI_AUTH="$PASS" redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
  eval "PORT_$name=$port"
}
start_redis source
start_redis target
export REDISCLI_AUTH="$PASS"
SRC="redis://:$PASS@127.0.0.1:$PORT_source/0"
DST="redis://:$PASS@127.0.0.1:$PORT_target/0"

echo "loading $(echo "700000 * $SCALE" | bc | cut -d. -f1) keys (scale $SCALE)..."
node "$RUN" gen "$SCALE" | redis-cli -p "$PORT_source" --pipe >/dev/null
KEYS=$(redis-cli -p "$PORT_source" dbsize)
USED=$(redis-cli -p "$PORT_source" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
echo "keys: $KEYS, used_memory: $((USED / 1000000)) MB"

desired() { # url schedule-json
  cat <<JSON
{"version":1,"project":"bench","configFile":"$WORK/jarvis-db.yaml","configHash":"bench",
 "services":{"redis":{"url":"$1"}},"storage":{"path":"$WORK/storage"},
 "backups":[$2],"retention":[],"health":{"thresholds":{},"intervalSeconds":60,"historySeconds":3600}}
JSON
}
S_RDB='{"name":"rdb","service":"redis","cron":"0 * * * *","timezone":"UTC","keep":{"last":10},"verify":"checksum","method":"rdb","path":"backups[0]"}'
S_RDBGZ='{"name":"rdbgz","service":"redis","cron":"0 * * * *","timezone":"UTC","keep":{"last":10},"verify":"checksum","method":"rdb","compression":1,"path":"backups[0]"}'
S_LOG='{"name":"logical","service":"redis","cron":"0 * * * *","timezone":"UTC","keep":{"last":10},"verify":"checksum","method":"logical","path":"backups[0]"}'
desired "$SRC" "$S_RDB" > "$WORK/rdb.json"
desired "$SRC" "$S_RDBGZ" > "$WORK/rdbgz.json"
desired "$SRC" "$S_LOG" > "$WORK/logical.json"
desired "$DST" "$S_RDB" > "$WORK/restore.json"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
best() { printf '%s\n' "$@" | sort -n | head -1; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rss() { awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt"; }
jdb() { # json-file -> sets T (seconds), R (peak RSS, kB), OUT (the JSON line)
  local t0 t1; t0=$(now)
  /usr/bin/time -v -o "$WORK/time.txt" node "$RUN" create "$1" > "$WORK/out.json"; t1=$(now)
  T=$(secs "$t0" "$t1"); R=$(rss); OUT=$(cat "$WORK/out.json")
}

# A SYNC that arrives while the previous snapshot's fork is still exiting waits for the server's
# next replication cron (up to 1 s): let each run start on an idle server, for both tools.
wait_idle() {
  until redis-cli -p "$PORT_source" info persistence | grep -q '^rdb_bgsave_in_progress:0' \
     && redis-cli -p "$PORT_source" info replication | grep -q '^connected_slaves:0'; do sleep 0.05; done
  sleep 0.2
}
CLI_T=(); RDB_T=(); RDB_RSS=0
for round in 1 2 3 4 5; do
  rm -f "$WORK/cli.rdb"; sync; wait_idle
  t0=$(now); redis-cli -p "$PORT_source" --rdb "$WORK/cli.rdb" >/dev/null 2>&1; t1=$(now); CLI_T+=("$(secs "$t0" "$t1")")
  sync; wait_idle
  jdb "$WORK/rdb.json"; RDB_T+=("$T"); [ "$R" -gt "$RDB_RSS" ] && RDB_RSS=$R
  RDB_ID=$(echo "$OUT" | sed -E 's/.*"id":"([^"]+)".*/\1/'); RDB_BYTES=$(echo "$OUT" | sed -E 's/.*"totalBytes":([0-9]+).*/\1/')
done
CLI_BYTES=$(stat -c %s "$WORK/cli.rdb")
wait_idle; jdb "$WORK/rdbgz.json"; GZ_T=$T; GZ_BYTES=$(echo "$OUT" | sed -E 's/.*"totalBytes":([0-9]+).*/\1/')
LOG_T=(); LOG_RSS=0
for round in 1 2; do
  jdb "$WORK/logical.json"; LOG_T+=("$T"); [ "$R" -gt "$LOG_RSS" ] && LOG_RSS=$R
  LOG_ID=$(echo "$OUT" | sed -E 's/.*"id":"([^"]+)".*/\1/'); LOG_BYTES=$(echo "$OUT" | sed -E 's/.*"totalBytes":([0-9]+).*/\1/')
done

restore() { # id -> sets T, R
  local t0 t1; t0=$(now)
  /usr/bin/time -v -o "$WORK/time.txt" node "$RUN" restore "$WORK/restore.json" "$1" flush >/dev/null; t1=$(now)
  T=$(secs "$t0" "$t1"); R=$(rss)
}
restore "$LOG_ID"; RL_T=$T; RL_RSS=$R; RL_KEYS=$(redis-cli -p "$PORT_target" dbsize)
restore "$RDB_ID"; RR_T=$T; RR_RSS=$R; RR_KEYS=$(redis-cli -p "$PORT_target" dbsize)

CT=$(best "${CLI_T[@]}"); JT=$(best "${RDB_T[@]}"); LT=$(best "${LOG_T[@]}")
echo
echo "== backup-redis, $(date -u +%Y-%m-%d), $(nproc) cores, scale $SCALE, $KEYS keys, used_memory $((USED / 1000000)) MB =="
printf 'redis-cli --rdb                          %7.2f s  %7.1f MB  (runs: %s)\n' "$CT" "$(echo "$CLI_BYTES/1000000" | bc -l)" "${CLI_T[*]}"
printf 'jarvis-db backup, method rdb             %7.2f s  %7.1f MB  (runs: %s)\n' "$JT" "$(echo "$RDB_BYTES/1000000" | bc -l)" "${RDB_T[*]}"
printf 'ratio rdb (jarvis-db / redis-cli)        %7.3f   (target <= 1.2; best of each)\n' "$(echo "$JT/$CT" | bc -l)"
printf 'ratio rdb, medians                       %7.3f   (%.2f s / %.2f s)\n' "$(echo "$(median "${RDB_T[@]}")/$(median "${CLI_T[@]}")" | bc -l)" "$(median "${RDB_T[@]}")" "$(median "${CLI_T[@]}")"
printf 'peak RSS, method rdb                     %7.1f MB\n' "$(echo "$RDB_RSS/1024" | bc -l)"
printf 'jarvis-db backup, method rdb, gzip 1     %7.2f s  %7.1f MB\n' "$GZ_T" "$(echo "$GZ_BYTES/1000000" | bc -l)"
printf 'jarvis-db backup, method logical (gzip 1) %6.2f s  %7.1f MB  (runs: %s)\n' "$LT" "$(echo "$LOG_BYTES/1000000" | bc -l)" "${LOG_T[*]}"
printf 'logical throughput                       %7.0f keys/s  (target >= 150000)\n' "$(echo "$KEYS/$LT" | bc -l)"
printf 'peak RSS, method logical                 %7.1f MB\n' "$(echo "$LOG_RSS/1024" | bc -l)"
printf 'restore logical (--flush, RESTORE)       %7.2f s  %7.0f keys/s  (%s keys, RSS %.0f MB)\n' "$RL_T" "$(echo "$RL_KEYS/$RL_T" | bc -l)" "$RL_KEYS" "$(echo "$RL_RSS/1024" | bc -l)"
printf 'restore rdb (load + copy, --flush)       %7.2f s  %7.0f keys/s  (%s keys, RSS %.0f MB)\n' "$RR_T" "$(echo "$RR_KEYS/$RR_T" | bc -l)" "$RR_KEYS" "$(echo "$RR_RSS/1024" | bc -l)"
