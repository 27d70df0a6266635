#!/usr/bin/env bash
# compare.sh: mapfront's pay throughput through the gateway, next to what the
# same PostgreSQL server does with pgbench's simple-update transaction
# (pgbench -N), at the same number of clients for the same time.
#
#   bench/compare.sh [-c CLIENTS] [-d SECONDS] [-customers N] [-mix MIX] [-keep] [-single]
#   (-single: the server serves the legacy paths in-process, no gateway program)
#
# Defaults: -c 16 -d 30 -customers 100000 -mix pay=100. The PostgreSQL server is
# the private cluster of scripts/devdb.sh (started if needed), or the one whose
# maintenance-database URL is in MAPFRONT_BENCH_PG_ADMIN. Everything runs in
# fresh databases that are dropped at the end (-keep keeps them; a failed run
# keeps them for inspection and says so). What it starts it stops (trap), and
# its ports (gRPC 19090, health 19091, gateway 18080; MAPFRONT_BENCH_*_ADDR to
# change) do not clash with `make run`. See bench/README.md for the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

clients=16
duration=30
customers=100000
mix=pay=100
keep=0
grpc_addr=${MAPFRONT_BENCH_GRPC_ADDR:-127.0.0.1:19090}
health_addr=${MAPFRONT_BENCH_HEALTH_ADDR:-127.0.0.1:19091}
gateway_addr=${MAPFRONT_BENCH_GATEWAY_ADDR:-127.0.0.1:18080}

say() { printf 'compare: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    -c) clients=${2:?-c needs a value}; shift 2 ;;
    -d) duration=${2:?-d needs a value}; duration=${duration%s}; shift 2 ;;
    -customers) customers=${2:?-customers needs a value}; shift 2 ;;
    -mix) mix=${2:?-mix needs a value}; shift 2 ;;
    -keep) keep=1; shift ;;
    -single) single=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for v in clients duration customers; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "-$v must be a positive integer, got '${!v}'"
done
for t in psql pgbench go; do command -v "$t" >/dev/null || die "$t not found (Debian: postgresql-client, Go 1.26)"; done

# ---- PostgreSQL ------------------------------------------------------------
admin=${MAPFRONT_BENCH_PG_ADMIN:-$(scripts/devdb.sh admin)}
# db_url NAME: the admin URL with its database replaced by NAME.
db_url() {
  local base=${admin%%\?*} query=""
  [[ $admin == *\?* ]] && query="?${admin#*\?}"
  base=${base%/}
  if [[ ${base#*://} == */* ]]; then base=${base%/*}; fi
  echo "$base/$1$query"
}
sql() { psql "$admin" -X -v ON_ERROR_STOP=1 -qtAc "$1"; }
pg_version=$(sql 'SHOW server_version')
load_before=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine skews every number

stamp=$(date +%Y%m%d%H%M%S)
pgb_db="bench_pgbench_${stamp}_$$"
mf_db="bench_mapfront_${stamp}_$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/mapfront-bench.XXXXXX")
say "logs and outputs in $work"

# ---- cleanup: stop what we started, drop what we created --------------------
server_pid="" gateway_pid="" loadgen_pid="" sampler_pid="" created=() failed=1
stop_pid() { # stop_pid PID: TERM, up to 25 s of grace (servers drain), then KILL
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$sampler_pid"; stop_pid "$loadgen_pid"; stop_pid "$gateway_pid"; stop_pid "$server_pid"
  if [ "$keep" = 1 ] || [ "$failed" = 1 ]; then
    [ ${#created[@]} -gt 0 ] && say "kept databases: ${created[*]} (drop with: psql '$admin' -c 'DROP DATABASE name')"
  else
    for db in "${created[@]}"; do sql "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || say "could not drop $db"; done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (echo >"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
# await_own PID LOG PATTERN ADDR...: wait until the process we started says it
# listens and, where ss can tell, is the one listening on each ADDR. A port
# that merely answers is not enough: another program on it would receive our
# customers and our load.
await_own() {
  local pid=$1 log=$2 pattern=$3 i a; shift 3
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "process $pid exited during start-up"; }
    grep -q "$pattern" "$log" 2>/dev/null && break
    sleep 0.2
  done
  grep -q "$pattern" "$log" || die "process $pid did not start listening within 30 s (see $log)"
  for a in "$@"; do
    port_open "$a" || die "nothing listens on $a"
    if command -v ss >/dev/null; then
      ss -ltnpH "sport = :${a##*:}" | grep -q "pid=$pid," || die "$a is not served by our process $pid: $(ss -ltnpH "sport = :${a##*:}")"
    fi
  done
}
for a in "$grpc_addr" "$health_addr" "$gateway_addr"; do
  port_open "$a" && die "$a is already in use (another compare.sh?): set MAPFRONT_BENCH_*_ADDR"
done

# ---- build -------------------------------------------------------------------
say "building server, gateway and loadgen"
mkdir -p bin
go build -o bin/ ./server ./gateway
go build -o bin/loadgen ./bench/loadgen
if [ ! -f .data/master.key ]; then
  mkdir -p .data
  (umask 077 && go run ./server keygen >.data/master.key)
  say "generated a local master key in .data/master.key"
fi
# Mutual TLS on gRPC: the demo PKI (created the first time), one certificate
# per program; the roles file gives loadgen admin, operator and posp.
bin/server certs -dir .data/pki >/dev/null
tls_args() { # tls_args NAME: the -grpc-*-file flags of certificate NAME
  echo -grpc-ca-file "$top/.data/pki/ca.crt" -grpc-cert-file "$top/.data/pki/$1.crt" -grpc-key-file "$top/.data/pki/$1.key"
}

# ---- (a) pgbench -N ------------------------------------------------------------
scale=$(( (customers + 99999) / 100000 ))
threads=$(( clients < 2 ? clients : 2 ))
sql "CREATE DATABASE \"$pgb_db\""; created+=("$pgb_db")
say "pgbench -i -s $scale in $pgb_db"
pgbench -i -q -s "$scale" "$(db_url "$pgb_db")" >"$work/pgbench-init.log" 2>&1 || { cat "$work/pgbench-init.log" >&2; die "pgbench -i failed"; }
say "pgbench -N -M prepared -c $clients -j $threads -T $duration"
pgbench -N -M prepared -c "$clients" -j "$threads" -T "$duration" "$(db_url "$pgb_db")" >"$work/pgbench.log" 2>&1 ||
  { cat "$work/pgbench.log" >&2; die "pgbench failed"; }
pgb_tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$work/pgbench.log")
pgb_lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$work/pgbench.log")
[ -n "$pgb_tps" ] || { cat "$work/pgbench.log" >&2; die "no TPS in pgbench's output"; }
sql "DROP DATABASE \"$pgb_db\" WITH (FORCE)"; created=() # its disk and cache are not mapfront's

# ---- (b) a fresh mapfront --------------------------------------------------------
sql "CREATE DATABASE \"$mf_db\""; created+=("$mf_db")
export MAPFRONT_DATABASE_URL
MAPFRONT_DATABASE_URL=$(db_url "$mf_db")
export MAPFRONT_MASTER_KEY_FILE="$top/.data/master.key"
unset MAPFRONT_MASTER_KEY DATABASE_URL # exactly one master key source; the URL above
bin/server migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; die "migrate failed"; }
# The load generator drives a few bench terminals far above a real POS's
# rate, from one address: the edge's rate limits (README, "The POSP edge")
# would measure themselves, not the pay path.
export MAPFRONT_GATEWAY_TERMINAL_LIMIT=off MAPFRONT_GATEWAY_SOURCE_LIMIT=off MAPFRONT_GATEWAY_OPEN_CARD_LIMIT=off
export MAPFRONT_LEGACY_TERMINAL_LIMIT=off MAPFRONT_LEGACY_SOURCE_LIMIT=off MAPFRONT_LEGACY_OPEN_CARD_LIMIT=off
if [ -n "${single:-}" ]; then
  # Single-binary mode: the server serves the legacy paths in-process.
  bin/server serve -grpc-addr "$grpc_addr" -http-addr "$health_addr" -legacy-addr "$gateway_addr" $(tls_args server) -roles-file "$top/.data/pki/roles" >"$work/server.log" 2>&1 &
  server_pid=$!
  await_own "$server_pid" "$work/server.log" '"msg":"server listening"' "$grpc_addr" "$health_addr" "$gateway_addr"
else
  bin/server serve -grpc-addr "$grpc_addr" -http-addr "$health_addr" $(tls_args server) -roles-file "$top/.data/pki/roles" >"$work/server.log" 2>&1 &
  server_pid=$!
  await_own "$server_pid" "$work/server.log" '"msg":"server listening"' "$grpc_addr" "$health_addr"
  bin/gateway -addr "$gateway_addr" -grpc-addr "$grpc_addr" $(tls_args gateway) >"$work/gateway.log" 2>&1 &
  gateway_pid=$!
  await_own "$gateway_pid" "$work/gateway.log" '"msg":"gateway listening"' "$gateway_addr"
fi
say "mapfront up: server $server_pid ($grpc_addr), gateway $gateway_pid ($gateway_addr), database $mf_db"

say "provisioning $customers customers"
pconc=$(( clients > 32 ? clients : 32 ))
bin/loadgen provision -customers "$customers" -grpc-addr "$grpc_addr" $(tls_args loadgen) -concurrency "$pconc" | tee "$work/provision.txt"
[ "${PIPESTATUS[0]}" = 0 ] || die "provisioning failed"

# ---- (c) resident memory of server + gateway during the run ----------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sample_rss() {
  local peak=0 s g sum
  while :; do
    s=$(rss_kb "$server_pid"); g=0; [ -z "$gateway_pid" ] || g=$(rss_kb "$gateway_pid"); sum=$(( ${s:-0} + ${g:-0} ))
    if [ "$sum" -gt "$peak" ]; then peak=$sum; echo "$peak $s $g" >"$work/rss"; fi
    sleep 1
  done
}
sample_rss & sampler_pid=$!

say "loadgen run -c $clients -d ${duration}s -mix $mix through the gateway"
set +e
bin/loadgen run -customers "$customers" -c "$clients" -d "${duration}s" -mix "$mix" -mode http \
  -gateway "http://$gateway_addr" -grpc-addr "$grpc_addr" $(tls_args loadgen) -out "$work/run.kv" >"$work/run.txt" 2>&1 &
loadgen_pid=$!
wait "$loadgen_pid"; run_rc=$?; loadgen_pid=""
set -e
stop_pid "$sampler_pid"; sampler_pid=""
cat "$work/run.txt"
alive=""
kill -0 "$server_pid" 2>/dev/null || alive+=" server DIED during the run (see $work/server.log);"
[ -z "$gateway_pid" ] || kill -0 "$gateway_pid" 2>/dev/null || alive+=" gateway DIED during the run (see $work/gateway.log);"
[ -z "$alive" ] || { say "$alive"; run_rc=1; }

# ---- (d) the ledger proof ------------------------------------------------------
set +e
bin/server verify-ledger -grpc-addr "$grpc_addr" $(tls_args auditor) >"$work/verify.txt" 2>&1; verify_rc=$?
set -e
cat "$work/verify.txt"

# ---- (e) summary -------------------------------------------------------------------
kv() { sed -n "s/^$1=//p" "$work/run.kv" 2>/dev/null | head -1; }
read -r rss_peak rss_s rss_g 2>/dev/null <"$work/rss" || { rss_peak=0 rss_s=0 rss_g=0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
pay_tps=$(kv pay_tps)
ratio=$(awk -v a="${pay_tps:-0}" -v b="$pgb_tps" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')
if [ "$verify_rc" = 0 ]; then verdict="proves ($(head -1 "$work/verify.txt"))"; else verdict="DOES NOT PROVE: $(tr '\n' ' ' <"$work/verify.txt")"; fi
if [ "$run_rc" = 0 ]; then run_verdict="all answers errcode 0"; else run_verdict="FAILED: $(kv unexpected) unexpected answers (see above)$alive"; fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)

cat <<EOF

==== mapfront vs pgbench: same PostgreSQL, $clients clients, ${duration} s ====
pgbench -N TPS               ${pgb_tps} (scale $scale, -M prepared -c $clients -j $threads, excluding connection time; latency avg ${pgb_lat:-?} ms)
mapfront pay TPS $( [ -n "${single:-}" ] && echo "single bin  " || echo "via gateway" ) $pay_tps (approved pays/s; $(kv pay_ok) pays, $(kv total) requests, mix $mix, $customers customers; $run_verdict)
ratio mapfront / pgbench     $ratio
mapfront latency             p50 $(kv p50_ms) ms, p99 $(kv p99_ms) ms (p95 $(kv p95_ms) ms, max $(kv max_ms) ms)
peak RSS server+gateway      $(mib "$rss_peak") (server $(mib "${rss_s:-0}"), gateway $(mib "${rss_g:-0}") at that moment)
VerifyLedger                 $verdict
machine                      $(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM, PostgreSQL $pg_version; load average before: $load_before
outputs                      $work
EOF

if [ "$run_rc" = 0 ] && [ "$verify_rc" = 0 ]; then failed=0; exit 0; fi
exit 1
