#!/usr/bin/env bash
# kill-during-pay.sh: issue 10, "What it must show" 1. Starts the real server
# and gateway (demo PKI, edge rate limits off) on a fresh database, provisions
# bench customers, drives pays with unique terminal keys and no resends
# (bench/killtest load), SIGKILLs the server -kills times during the load
# (restarting it each time), then sends the POS-style reversal of every pay
# answered 10000 and checks in the database (bench/killtest check): no pay
# answered 10018 moved money, every 10000 is absent or reversed, every 0
# stands; and the ledger proves (server verify-ledger).
#
#   scripts/kill-during-pay.sh                 # 10 kills
#   scripts/kill-during-pay.sh -kills 3        # the short version
#   options: -kills N (10), -c workers (8), -customers N (200), -keep
#
# PostgreSQL: MAPFRONT_KILLTEST_PG_ADMIN (a maintenance-database URL whose role
# may create databases), else the private cluster of scripts/devdb.sh.
# Ports 29090 (gRPC), 29091 (health), 28080 (gateway); MAPFRONT_KILLTEST_GRPC_ADDR,
# _HEALTH_ADDR, _GATEWAY_ADDR override them.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
kills=10 conc=8 customers=200 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    -kills) kills=${2:?}; shift 2 ;;
    -c) conc=${2:?}; shift 2 ;;
    -customers) customers=${2:?}; shift 2 ;;
    -keep) keep=1; shift ;;
    *) sed -n '2,18p' "$0" >&2; exit 2 ;;
  esac
done
grpc_addr=${MAPFRONT_KILLTEST_GRPC_ADDR:-127.0.0.1:29090}
health_addr=${MAPFRONT_KILLTEST_HEALTH_ADDR:-127.0.0.1:29091}
gateway_addr=${MAPFRONT_KILLTEST_GATEWAY_ADDR:-127.0.0.1:28080}
say() { printf 'kill-during-pay: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
port_open() { (echo >"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for a in $grpc_addr $health_addr $gateway_addr; do port_open "$a" && die "$a is in use"; done

admin=${MAPFRONT_KILLTEST_PG_ADMIN:-$(scripts/devdb.sh admin)}
db_url() {
  local base=${admin%%\?*} query=""
  [[ $admin == *\?* ]] && query="?${admin#*\?}"
  base=${base%/}
  if [[ ${base#*://} == */* ]]; then base=${base%/*}; fi
  echo "$base/$1$query"
}
sql() { psql "$admin" -X -v ON_ERROR_STOP=1 -qtAc "$1"; }
db="killtest_$(date +%Y%m%d%H%M%S)_$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/mapfront-kill.XXXXXX")
say "logs in $work"

server_pid="" gateway_pid="" load_pid="" failed=1 created=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in $load_pid $gateway_pid $server_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$created" ]; then
    if [ "$keep" = 1 ] || [ "$failed" = 1 ]; then say "kept database $db"
    else sql "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building"
mkdir -p bin
go build -o bin/ ./server ./gateway
go build -o bin/loadgen ./bench/loadgen
go build -o bin/killtest ./bench/killtest
if [ ! -f .data/master.key ]; then mkdir -p .data; (umask 077 && go run ./server keygen >.data/master.key); fi
bin/server certs -dir .data/pki >/dev/null
tls_args() { echo -grpc-ca-file "$top/.data/pki/ca.crt" -grpc-cert-file "$top/.data/pki/$1.crt" -grpc-key-file "$top/.data/pki/$1.key"; }

sql "CREATE DATABASE \"$db\""; created=1
export MAPFRONT_DATABASE_URL
MAPFRONT_DATABASE_URL=$(db_url "$db")
export MAPFRONT_MASTER_KEY_FILE="$top/.data/master.key"
unset MAPFRONT_MASTER_KEY DATABASE_URL
# One client drives many pays from one address: the edge's rate limits would
# answer 10018 themselves (correctly, nothing done) and hide the kills'.
export MAPFRONT_GATEWAY_TERMINAL_LIMIT=off MAPFRONT_GATEWAY_SOURCE_LIMIT=off MAPFRONT_GATEWAY_OPEN_CARD_LIMIT=off
bin/server migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; die "migrate failed"; }

starts=0
start_server() { # a new server process; waits until it listens
  starts=$((starts + 1))
  local log="$work/server.$starts.log" i
  bin/server serve -grpc-addr "$grpc_addr" -http-addr "$health_addr" $(tls_args server) -roles-file "$top/.data/pki/roles" >"$log" 2>&1 &
  server_pid=$!
  for i in $(seq 1 150); do
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "server exited during start-up"; }
    grep -q '"msg":"server listening"' "$log" 2>/dev/null && return 0
    sleep 0.1
  done
  die "server did not start (see $log)"
}
start_server
bin/gateway -addr "$gateway_addr" -grpc-addr "$grpc_addr" $(tls_args gateway) >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for i in $(seq 1 150); do grep -q '"msg":"gateway listening"' "$work/gateway.log" && break; sleep 0.1; done
grep -q '"msg":"gateway listening"' "$work/gateway.log" || die "gateway did not start"

say "provisioning $customers customers"
bin/loadgen provision -customers "$customers" -grpc-addr "$grpc_addr" $(tls_args loadgen) >"$work/provision.txt" 2>&1 ||
  { cat "$work/provision.txt" >&2; die "provisioning failed"; }

# The load runs while the server is killed every 1-2 s and restarted.
duration=$((kills * 3 + 4))
say "pays for ${duration}s with $conc workers, $kills kills"
bin/killtest load -gateway "http://$gateway_addr" -customers "$customers" -c "$conc" -d "${duration}s" -out "$work/answers.tsv" &
load_pid=$!
sleep 2
done_kills=0
while [ "$done_kills" -lt "$kills" ] && kill -0 "$load_pid" 2>/dev/null; do
  kill -KILL "$server_pid"; wait "$server_pid" 2>/dev/null || true
  done_kills=$((done_kills + 1))
  start_server
  sleep "1.$((RANDOM % 10))"
done
wait "$load_pid"; load_pid=""
[ "$done_kills" -ge "$kills" ] || die "only $done_kills kills before the load ended"

bin/killtest check -gateway "http://$gateway_addr" -answers "$work/answers.tsv" -kills "$done_kills" | tee "$work/check.txt"
[ "${PIPESTATUS[0]}" = 0 ] || die "check failed (answers in $work/answers.tsv)"
bin/server verify-ledger -grpc-addr "$grpc_addr" $(tls_args auditor) | tee "$work/verify.txt"
[ "${PIPESTATUS[0]}" = 0 ] || die "the ledger does not prove"
failed=0
say "PASS: $done_kills kills; $(cat "$work/check.txt")"
