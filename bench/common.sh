# Sourced by the shell benchmarks (after ROOT, WORK and JDB are set): the sandbox they start,
# the bare tools' libpq variables (raw-postgres.sh), and the timing and summary helpers.
# shellcheck source=bench/raw-postgres.sh
source "$ROOT/bench/raw-postgres.sh"

# `sandbox_up SERVICES`: a sandbox of its own in $WORK/sandbox (never the machine's shared
# servers), its JARVIS_* variables exported, PGBIN its PostgreSQL binaries, `raw` pointed at it.
sandbox_up() {
  "${JDB[@]}" sandbox up --dir "$WORK/sandbox" --services "$1" >/dev/null
  eval "$("${JDB[@]}" sandbox env --dir "$WORK/sandbox")"
  PGBIN="$(node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(s.postgres.binDir)' "$WORK/sandbox/sandbox.json")"
  raw_postgres_env
}
sandbox_down() { "${JDB[@]}" sandbox down --dir "$WORK/sandbox" >/dev/null 2>&1 || true; }

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.2f–%.2f", lo, hi}'; }
# Peak RSS in kB from a `/usr/bin/time -v -o FILE` report.
peak_kb() { awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$1"; }

# The S3 benchmarks' baseline: Debian's awscli against the sandbox's S3 server (`s3 cp …`).
AWS=/usr/bin/aws
require_awscli() { [ -x "$AWS" ] || { echo "Debian's awscli is the baseline: apt-get install -y awscli" >&2; exit 1; }; }
s3() { "$AWS" --endpoint-url "$JARVIS_S3_ENDPOINT" --no-cli-pager s3 "$@"; }
