#!/usr/bin/env bash
# compare.sh: mapfront's pay throughput through the gateway and through the
# single binary, next to what the same PostgreSQL server does with pgbench's
# simple-update transaction (pgbench -N), at the same number of clients for
# the same time, from one run; with what each costs in CPU per pay. pgbench
# runs before and after mapfront (the ratios are to the mean of the two), and
# every measured window starts after a CHECKPOINT.
#
#   bench/compare.sh [-c CLIENTS] [-d SECONDS] [-customers N] [-tool loadgen|wrk]
#                    [-mix MIX] [-only gateway|single] [-keep]
#
# Defaults: -c 16 -d 30 -customers 10000 -tool loadgen -mix pay=100, both
# modes (gateway: server + bin/gateway; single: the server serves the legacy
# paths itself; -single is -only single). -tool wrk drives both modes with
# wrk and bench/wrk/pay.lua (pays only) instead of loadgen. The PostgreSQL
# server is the private cluster of scripts/devdb.sh (started if needed), or
# the one whose maintenance-database URL is in MAPFRONT_BENCH_PG_ADMIN.
# Everything runs in fresh databases that are dropped at the end (-keep keeps
# them; a failed run keeps them and says so). What it starts it stops (trap).
# Ports: gRPC 19090, health 19091, gateway 18080, single binary 18081
# (MAPFRONT_BENCH_{GRPC,HEALTH,GATEWAY,LEGACY}_ADDR). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

clients=16
duration=30
customers=10000
mix=pay=100
keep=0
only=""
tool=loadgen
grpc_addr=${MAPFRONT_BENCH_GRPC_ADDR:-127.0.0.1:19090}
health_addr=${MAPFRONT_BENCH_HEALTH_ADDR:-127.0.0.1:19091}
gateway_addr=${MAPFRONT_BENCH_GATEWAY_ADDR:-127.0.0.1:18080}
legacy_addr=${MAPFRONT_BENCH_LEGACY_ADDR:-127.0.0.1:18081}
# Where the binaries, the demo PKI and the master key live (a test gives its own).
bin=${MAPFRONT_BENCH_BIN:-$top/bin}
pki=${MAPFRONT_BENCH_PKI_DIR:-$top/.data/pki}
master_key=${MAPFRONT_BENCH_MASTER_KEY_FILE:-$top/.data/master.key}
# wrk: bodies for this many pays per second of -d (a thread that runs out stops
# and fails the run rather than send a key twice).
wrk_rate=${MAPFRONT_BENCH_WRK_RATE:-20000}

say() { printf 'compare: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    -c) clients=${2:?-c needs a value}; shift 2 ;;
    -d) duration=${2:?-d needs a value}; duration=${duration%s}; shift 2 ;;
    -customers) customers=${2:?-customers needs a value}; shift 2 ;;
    -mix) mix=${2:?-mix needs a value}; shift 2 ;;
    -keep) keep=1; shift ;;
    -only) only=${2:?-only needs gateway or single}; shift 2 ;;
    -single) only=single; shift ;;
    -tool) tool=${2:?-tool needs loadgen or wrk}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for v in clients duration customers wrk_rate; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
case "$only" in
  "") modes=(gateway single) ;;
  gateway|single) modes=("$only") ;;
  *) die "-only: want gateway or single, got '$only'" ;;
esac
case "$tool" in
  loadgen) ;;
  wrk) [ "$mix" = pay=100 ] || die "-mix is loadgen's: wrk sends pays only" ;;
  *) die "-tool: want loadgen or wrk, got '$tool'" ;;
esac
for t in psql pgbench go; do command -v "$t" >/dev/null || die "$t not found (Debian: postgresql-client, Go 1.26)"; done
if [ "$tool" = wrk ] && ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing wrk (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || true
  fi
  command -v wrk >/dev/null || die "wrk not found (Debian: apt-get install wrk)"
fi
has_mode() { [[ " ${modes[*]} " == *" $1 "* ]]; }

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
server_pid="" gateway_pid="" load_pid="" sampler_pid="" created=() failed=1
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
  stop_pid "$sampler_pid"; stop_pid "$load_pid"; stop_pid "$gateway_pid"; stop_pid "$server_pid"
  if [ "$keep" = 1 ] || [ "$failed" = 1 ]; then
    [ ${#created[@]} -gt 0 ] && say "kept databases: ${created[*]} (drop with: psql '$admin' -c 'DROP DATABASE name')"
  else
    for db in "${created[@]}"; do sql "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || say "could not drop $db"; done
  fi
  rm -rf "$work"/bodies-* # large, and not needed to inspect a run
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
for a in "$grpc_addr" "$health_addr" "$gateway_addr" "$legacy_addr"; do
  port_open "$a" && die "$a is already in use (another compare.sh?): set MAPFRONT_BENCH_*_ADDR"
done

# ---- build -------------------------------------------------------------------
say "building server, gateway and loadgen into $bin"
mkdir -p "$bin"
go build -o "$bin/" ./server ./gateway
go build -o "$bin/loadgen" ./bench/loadgen
if [ ! -f "$master_key" ]; then
  mkdir -p "$(dirname "$master_key")"
  (umask 077 && go run ./server keygen >"$master_key")
  say "generated a local master key in $master_key"
fi
# Mutual TLS on gRPC: the demo PKI (created the first time), one certificate
# per program; the roles file gives loadgen admin, operator and posp, the
# gateway posp (the single binary's in-process legacy client uses it too).
"$bin/server" certs -dir "$pki" >/dev/null
tls_args() { # tls_args NAME: the -grpc-*-file flags of certificate NAME
  echo -grpc-ca-file "$pki/ca.crt" -grpc-cert-file "$pki/$1.crt" -grpc-key-file "$pki/$1.key"
}
kv() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -1; } # kv FILE KEY
# per_op SECONDS COUNT: microseconds per operation
per_op() { awk -v s="${1:-0}" -v n="${2:-0}" 'BEGIN { if (n > 0) printf "%.0f", s * 1e6 / n; else print "n/a" }'; }
# ceiling CPU_SECONDS OPS OPS_PER_S: what the machine's CPUs allow at that
# CPU per operation (all the processes measured together), and how much of
# them the run used: a run far under its ceiling waits on latency, not CPU.
ceiling() {
  awk -v s="${1:-0}" -v n="${2:-0}" -v r="${3:-0}" -v c="$(nproc)" 'BEGIN {
    if (n <= 0 || s <= 0) { print "n/a"; exit }
    u = s * 1e6 / n; printf "all %.0f µs: %d CPUs allow %.0f a second, this run used %.0f %% of them", u, c, c * 1e6 / u, 100 * r * u / (c * 1e6) }'
}

# ---- (a) pgbench -N ------------------------------------------------------------
# pgbench runs twice, before mapfront's modes and after them, each on a fresh
# database: a machine whose speed drifts over the minutes of a run (a shared
# VM) shows it as two different figures, and the ratios are taken to their
# mean rather than to whichever came first.
scale=$(( (customers + 99999) / 100000 ))
threads=$(( clients < 2 ? clients : 2 ))
run_pgbench() { # run_pgbench RUN (1 before, 2 after): sets pgb_tps_RUN, pgb_lat_RUN, pgb_n_RUN
  local run=$1 db="${pgb_db}_$1" log="$work/pgbench.$1.log" tps lat n
  sql "CREATE DATABASE \"$db\""; created+=("$db")
  say "pgbench -i -s $scale in $db"
  pgbench -i -q -s "$scale" "$(db_url "$db")" >"$work/pgbench-init.log" 2>&1 || { cat "$work/pgbench-init.log" >&2; die "pgbench -i failed"; }
  # Each measured window starts without dirty buffers of what came before:
  # mapfront's writes are flushed before pgbench's second run, pgbench -i's
  # before its own.
  sql "CHECKPOINT" || say "CHECKPOINT refused (needs a superuser or pg_checkpoint)"
  say "pgbench -N -M prepared -c $clients -j $threads -T $duration (run $run of 2)"
  "$bin/loadgen" measure -db "$db" -out "$work/pgbench.$run.cpu" -- \
    pgbench -N -M prepared -c "$clients" -j "$threads" -T "$duration" "$(db_url "$db")" >"$log" 2>&1 ||
    { cat "$log" >&2; die "pgbench failed"; }
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$log")
  [ -n "$tps" ] || { cat "$log" >&2; die "no TPS in pgbench's output"; }
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$log")
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
  printf -v "pgb_tps_$run" '%.1f' "$tps"; printf -v "pgb_lat_$run" '%s' "$lat"; printf -v "pgb_n_$run" '%s' "$n"
  sql "DROP DATABASE \"$db\" WITH (FORCE)" # its disk and cache are not mapfront's
  local kept=(); for d in "${created[@]}"; do [ "$d" = "$db" ] || kept+=("$d"); done; created=("${kept[@]}")
}
run_pgbench 1

# ---- (b) a fresh mapfront --------------------------------------------------------
sql "CREATE DATABASE \"$mf_db\""; created+=("$mf_db")
export MAPFRONT_DATABASE_URL
MAPFRONT_DATABASE_URL=$(db_url "$mf_db")
export MAPFRONT_MASTER_KEY_FILE="$master_key"
unset MAPFRONT_MASTER_KEY DATABASE_URL # exactly one master key source; the URL above
"$bin/server" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; die "migrate failed"; }
# The load generator drives a few bench terminals far above a real POS's
# rate, from one address: the edge's rate limits (README, "The POSP edge")
# would measure themselves, not the pay path. Other server settings (e.g.
# MAPFRONT_TERMINAL_PIN_LIMIT) pass through from the environment.
export MAPFRONT_GATEWAY_TERMINAL_LIMIT=off MAPFRONT_GATEWAY_SOURCE_LIMIT=off MAPFRONT_GATEWAY_OPEN_CARD_LIMIT=off
export MAPFRONT_LEGACY_TERMINAL_LIMIT=off MAPFRONT_LEGACY_SOURCE_LIMIT=off MAPFRONT_LEGACY_OPEN_CARD_LIMIT=off
# One server for both modes: it serves the legacy paths itself on
# $legacy_addr (single binary, with the gateway's posp certificate for its
# in-process client) when that mode is asked for, and the gateway program
# calls its gRPC port; the gateway is stopped before the single-binary run.
serve_args=(-grpc-addr "$grpc_addr" -http-addr "$health_addr" $(tls_args server) -roles-file "$pki/roles")
server_addrs=("$grpc_addr" "$health_addr")
if has_mode single; then
  serve_args+=(-legacy-addr "$legacy_addr" -legacy-client-cert-file "$pki/gateway.crt" -legacy-client-key-file "$pki/gateway.key")
  server_addrs+=("$legacy_addr")
fi
"$bin/server" serve "${serve_args[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
await_own "$server_pid" "$work/server.log" '"msg":"server listening"' "${server_addrs[@]}"
if has_mode gateway; then
  "$bin/gateway" -addr "$gateway_addr" -grpc-addr "$grpc_addr" $(tls_args gateway) >"$work/gateway.log" 2>&1 &
  gateway_pid=$!
  await_own "$gateway_pid" "$work/gateway.log" '"msg":"gateway listening"' "$gateway_addr"
fi
say "mapfront up: server $server_pid ($grpc_addr${gateway_pid:+, gateway $gateway_pid on $gateway_addr}$(has_mode single && echo ", single binary on $legacy_addr")), database $mf_db"

say "provisioning $customers customers"
pconc=$(( clients > 32 ? clients : 32 ))
"$bin/loadgen" provision -customers "$customers" -grpc-addr "$grpc_addr" $(tls_args loadgen) -concurrency "$pconc" | tee "$work/provision.txt"
[ "${PIPESTATUS[0]}" = 0 ] || die "provisioning failed"
# As pgbench -i ends with VACUUM ANALYZE: the customers were all inserted
# within a minute, and until autovacuum's ANALYZE finds them the planner
# plans for the near-empty tables it last saw (measured: the first mode run
# cost PostgreSQL 3.5 times the CPU per pay of the second).
psql "$(db_url "$mf_db")" -X -v ON_ERROR_STOP=1 -qc 'VACUUM ANALYZE' >/dev/null

# ---- (c) one measured run per mode ------------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sample_rss() { # sample_rss FILE PID...: the peak sum of the PIDs' VmRSS, once a second
  local file=$1 peak=0 sum p line; shift
  while :; do
    sum=0 line=""
    for p in "$@"; do k=$(rss_kb "$p"); sum=$(( sum + ${k:-0} )); line+=" ${k:-0}"; done
    if [ "$sum" -gt "$peak" ]; then peak=$sum; echo "$peak$line" >"$file"; fi
    sleep 1
  done
}

# batch_counts: the server's group-commit counters from /metrics: the sum and
# count of mapfront_pay_batch_size and mapfront_pay_batch_singly_total ("0 0 0"
# without curl or metrics).
batch_counts() {
  command -v curl >/dev/null || { echo "0 0 0"; return; }
  curl -s "http://$health_addr/metrics" | awk '
    /^mapfront_pay_batch_size_sum / { s = $2 } /^mapfront_pay_batch_size_count / { c = $2 }
    /^mapfront_pay_batch_singly_total / { f = $2 }
    END { printf "%d %d %d\n", s, c, f }'
}

# run_mode MODE: the load through MODE's address for -d seconds (the CPU of
# the tool, the PostgreSQL backends and our processes measured around it),
# then VerifyLedger. Results in $work/MODE.{txt,kv,cpu,rss,verify}.
run_mode() {
  local mode=$1 url pids=(-pid "server=$server_pid") rc verify_rc n
  if [ "$mode" = gateway ]; then
    url="http://$gateway_addr"; pids+=(-pid "gateway=$gateway_pid")
  else
    url="http://$legacy_addr"
  fi
  local batch="${stamp}$([ "$mode" = gateway ] && echo 1 || echo 2)" # new terminal keys per mode
  # The writes before this mode's window (provisioning, the mode before) are
  # flushed before it starts.
  sql "CHECKPOINT" || say "CHECKPOINT refused (needs a superuser or pg_checkpoint)"
  sample_rss "$work/$mode.rss" "$server_pid" $gateway_pid & sampler_pid=$!
  batch_counts >"$work/$mode.batch"
  set +e
  if [ "$tool" = loadgen ]; then
    say "$mode: loadgen run -c $clients -d ${duration}s -mix $mix ($url)"
    "$bin/loadgen" measure -db "$mf_db" "${pids[@]}" -out "$work/$mode.cpu" -- \
      "$bin/loadgen" run -customers "$customers" -c "$clients" -d "${duration}s" -mix "$mix" -mode http -batch "$batch" \
      -gateway "$url" -grpc-addr "$grpc_addr" $(tls_args loadgen) -out "$work/$mode.kv" >"$work/$mode.txt" 2>&1 &
    load_pid=$!; wait "$load_pid"; rc=$?; load_pid=""
  else
    local wthreads=$(( clients % 2 == 0 ? 2 : 1 )) bodies="$work/bodies-$mode"
    n=$(( wrk_rate * duration ))
    mkdir -p "$bodies"
    say "$mode: loadgen bodies -n $n (${wrk_rate}/s for ${duration} s) for $wthreads wrk threads"
    "$bin/loadgen" bodies -customers "$customers" -files "$wthreads" -n "$n" -batch "$batch" -out "$bodies" >"$work/$mode.bodies.txt" 2>&1 ||
      { cat "$work/$mode.bodies.txt" >&2; die "loadgen bodies failed"; }
    say "$mode: wrk -t $wthreads -c $clients -d ${duration}s -s bench/wrk/pay.lua ($url)"
    "$bin/loadgen" measure -db "$mf_db" "${pids[@]}" -out "$work/$mode.cpu" -- \
      wrk -t "$wthreads" -c "$clients" -d "${duration}s" --timeout 30s -s "$top/bench/wrk/pay.lua" "$url" -- "$bodies" >"$work/$mode.txt" 2>&1 &
    load_pid=$!; wait "$load_pid"; rc=$?; load_pid=""
    rm -rf "$bodies"
    # The same keys as loadgen's -out, from pay.lua's done().
    awk -F= '
      /^wrk_/ { v[substr($1, 5)] = substr($0, length($1) + 2) }
      END {
        bad = v["bad"] + v["socket_errors"] + v["timeouts"]
        printf "total=%d\npay_ok=%d\npay_tps=%s\np50_ms=%s\np95_ms=%s\np99_ms=%s\nmax_ms=%s\n", v["requests"], v["ok"], v["pay_tps"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["max_ms"]
        printf "unexpected=%d\nexhausted=%d\nfirst_unexpected=%s\n", bad, v["exhausted_threads"], v["first_unexpected"]
      }' "$work/$mode.txt" >"$work/$mode.kv"
    [ -n "$(kv "$work/$mode.kv" pay_tps)" ] || { cat "$work/$mode.txt" >&2; rc=1; }
    [ "$(kv "$work/$mode.kv" unexpected)" = 0 ] || rc=1
    [ "$(kv "$work/$mode.kv" exhausted)" = 0 ] || { say "$mode: wrk ran out of bodies: raise MAPFRONT_BENCH_WRK_RATE ($wrk_rate)"; rc=1; }
  fi
  set -e
  batch_counts >>"$work/$mode.batch"
  stop_pid "$sampler_pid"; sampler_pid=""
  cat "$work/$mode.txt"
  local alive=""
  kill -0 "$server_pid" 2>/dev/null || alive+=" server DIED during the run (see $work/server.log);"
  [ "$mode" != gateway ] || kill -0 "$gateway_pid" 2>/dev/null || alive+=" gateway DIED during the run (see $work/gateway.log);"
  [ -z "$alive" ] || { say "$alive"; rc=1; }
  echo "$rc" >"$work/$mode.rc"; echo "$alive" >"$work/$mode.alive"
  set +e
  "$bin/server" verify-ledger -grpc-addr "$grpc_addr" $(tls_args auditor) >"$work/$mode.verify" 2>&1; verify_rc=$?
  set -e
  echo "$verify_rc" >"$work/$mode.verify_rc"
  cat "$work/$mode.verify"
}

for mode in "${modes[@]}"; do
  if [ "$mode" = single ] && [ -n "$gateway_pid" ]; then
    stop_pid "$gateway_pid"; gateway_pid="" # a single binary runs alone
  fi
  run_mode "$mode"
done

run_pgbench 2
pgb_tps=$(awk -v a="$pgb_tps_1" -v b="$pgb_tps_2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
# pgbench's CPU per transaction over both runs.
pgb_n=$(( pgb_n_1 + pgb_n_2 ))
sum_kv() { awk -v a="$(kv "$work/pgbench.1.cpu" "$1")" -v b="$(kv "$work/pgbench.2.cpu" "$1")" 'BEGIN { print a + b }'; }

# ---- (d) summary -------------------------------------------------------------------
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
unit="pay"; [ "$mix" = pay=100 ] || unit="request"
ok=1

summary() { # summary MODE LABEL
  local mode=$1 label=$2 f="$work/$1.kv" c="$work/$1.cpu" rc verify_rc pay_tps ratio n verdict run_verdict rss cpu_line all_s
  rc=$(cat "$work/$mode.rc"); verify_rc=$(cat "$work/$mode.verify_rc")
  pay_tps=$(kv "$f" pay_tps)
  ratio=$(awk -v a="${pay_tps:-0}" -v b="$pgb_tps" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')
  n=$(kv "$f" total)
  if [ "$verify_rc" = 0 ]; then verdict="proves ($(head -1 "$work/$mode.verify"))"; else verdict="DOES NOT PROVE: $(tr '\n' ' ' <"$work/$mode.verify")"; ok=0; fi
  if [ "$rc" = 0 ]; then run_verdict="all answers errcode 0"; else
    run_verdict="FAILED: $(kv "$f" unexpected) unexpected answers$( [ "$(kv "$f" exhausted)" = 0 ] || [ -z "$(kv "$f" exhausted)" ] || echo ", bodies ran out") $(kv "$f" first_unexpected)$(cat "$work/$mode.alive")"
    ok=0
  fi
  cpu_line="PostgreSQL backends $(per_op "$(kv "$c" pg_cpu_s)" "$n") µs, server $(per_op "$(kv "$c" cpu_server_s)" "$n") µs"
  [ "$mode" != gateway ] || cpu_line+=", gateway $(per_op "$(kv "$c" cpu_gateway_s)" "$n") µs"
  cpu_line+=", $tool $(per_op "$(kv "$c" tool_cpu_s)" "$n") µs"
  all_s=$(awk -v a="$(kv "$c" pg_cpu_s)" -v b="$(kv "$c" cpu_server_s)" -v g="$(kv "$c" cpu_gateway_s)" \
    -v t="$(kv "$c" tool_cpu_s)" 'BEGIN { print a + b + g + t }')
  cpu_line+="; $(ceiling "$all_s" "$n" "$pay_tps")"
  # What a pay costs the machine next to what a pgbench transaction does
  # (each with its own load tool's CPU): below 1, the pay is the cheaper.
  cpu_line+="; $(awk -v s="$all_s" -v n="${n:-0}" -v ps="$pgb_all_s" -v pn="${pgb_n:-0}" -v u="$unit" 'BEGIN {
    if (n <= 0 || s <= 0 || pn <= 0 || ps <= 0) { print "cost to pgbench n/a"; exit }
    printf "a %s costs %.2f of a pgbench transaction", u, (s / n) / (ps / pn) }')"
  read -r -a rss <"$work/$mode.rss" 2>/dev/null || rss=(0 0 0)
  printf '%-28s %s\n' "$label pays/s" "$pay_tps (ratio to pgbench $ratio; $(kv "$f" pay_ok) approved pays, $n requests; $run_verdict)"
  printf '%-28s %s\n' "$label latency" "p50 $(kv "$f" p50_ms) ms, p99 $(kv "$f" p99_ms) ms (p95 $(kv "$f" p95_ms) ms, max $(kv "$f" max_ms) ms)"
  printf '%-28s %s\n' "$label CPU/$unit" "$cpu_line"
  # A batch every wall / batches ms: with one lane, the batch cycle (the
  # round trip that writes one batch and loads the next, and the decisions);
  # with more lanes (MAPFRONT_PAY_BATCH_LANES) batches overlap, and it is
  # only the mean time between two.
  printf '%-28s %s\n' "$label group commit" "$(awk -v w="$(kv "$c" wall_s)" 'NR == 1 { s = $1; c = $2; f = $3 } NR == 2 { s = $1 - s; c = $2 - c; f = $3 - f }
    END { if (c > 0) { printf "%d batches, %.1f pays per batch on average, %d run one pay at a time", c, s / c, f
                       if (w > 0) printf "; a batch every %.2f ms", 1000 * w / c }
          else print "no batches (-pay-batch-max 1, or no metrics)" }' "$work/$mode.batch")"
  if [ "$mode" = gateway ]; then
    printf '%-28s %s\n' "$label peak RSS" "$(mib "${rss[0]}") (server $(mib "${rss[1]:-0}"), gateway $(mib "${rss[2]:-0}") at that moment)"
  else
    printf '%-28s %s\n' "$label peak RSS" "$(mib "${rss[0]}")"
  fi
  printf '%-28s %s\n' "$label VerifyLedger" "$verdict"
}

pgb_all_s=$(awk -v a="$(sum_kv pg_cpu_s)" -v b="$(sum_kv tool_cpu_s)" 'BEGIN { print a + b }')
{
  echo
  echo "==== mapfront vs pgbench: same PostgreSQL, $clients clients, ${duration} s, $customers customers, load tool $tool$( [ "$tool" = wrk ] || echo ", mix $mix") ===="
  printf '%-28s %s\n' "pgbench -N TPS" "$pgb_tps (the mean of $pgb_tps_1 before mapfront and $pgb_tps_2 after; scale $scale, -M prepared -c $clients -j $threads, excluding connection time; latency avg ${pgb_lat_1:-?} / ${pgb_lat_2:-?} ms)"
  printf '%-28s %s\n' "pgbench CPU/transaction" "PostgreSQL backends $(per_op "$(sum_kv pg_cpu_s)" "$pgb_n") µs, pgbench $(per_op "$(sum_kv tool_cpu_s)" "$pgb_n") µs; $(ceiling "$pgb_all_s" "$pgb_n" "$pgb_tps")"
  for mode in "${modes[@]}"; do
    if [ "$mode" = gateway ]; then summary gateway "via gateway"; else summary single "single binary"; fi
  done
  printf '%-28s %s\n' "machine" "$(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM, PostgreSQL $pg_version; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%-28s %s\n' "outputs" "$work"
} >"$work/summary.txt" # not a pipe: summary sets ok in this shell
cat "$work/summary.txt"

if [ "$ok" = 1 ]; then failed=0; exit 0; fi
exit 1
