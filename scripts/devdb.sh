#!/usr/bin/env bash
# devdb.sh: print the URL of a PostgreSQL server for `make run` and `make test`,
# starting a private cluster under .data/ when none is given.
#
#   scripts/devdb.sh url DBNAME   ensure the database DBNAME exists, print its URL
#   scripts/devdb.sh admin        print a URL of a maintenance database (for tests)
#   scripts/devdb.sh stop         stop the private cluster
#
# Order of preference: MAPFRONT_DATABASE_URL / DATABASE_URL (run) or
# MAPFRONT_TEST_DATABASE_URL (test) as given; else the private cluster under
# .data/pg on port ${MAPFRONT_DEV_PGPORT:-55432 or the next free one}, created with the system's
# PostgreSQL binaries (Debian's postgresql package is installed when missing
# and we are root). initdb refuses to run as root, so as root the cluster
# belongs to the unprivileged user "postgres" (created if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
data="$top/.data/pg"
# Where the cluster goes when the postgres user cannot reach the checkout.
alt="/var/tmp/mapfront-devdb-$(printf '%s' "$top" | md5sum | cut -c1-12)/pg"
[ ! -f "$data/PG_VERSION" ] && [ -f "$alt/PG_VERSION" ] && data="$alt"
# The port: as given, else the one this cluster was started on before, else
# the first free one from 55432 (another checkout's cluster may hold 55432).
port_file="$top/.data/pg.port"
free_port() {
  local p
  for p in $(seq 55432 55499); do
    (echo > "/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}
if [ -n "${MAPFRONT_DEV_PGPORT:-}" ]; then port="$MAPFRONT_DEV_PGPORT"
elif [ -f "$port_file" ]; then port=$(cat "$port_file")
else port=""
fi
log() { printf 'devdb: %s\n' "$*" >&2; }

bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return; }
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_cluster() {
  local bin
  if ! bin=$(bindir); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing Debian's postgresql package"
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
      bin=$(bindir)
    else
      log "no PostgreSQL binaries found: install Debian's postgresql package or set a database URL"
      exit 1
    fi
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir "$top/.data" --shell /usr/sbin/nologin postgres
  fi
  mkdir -p "$top/.data"
  if [ "$(id -u)" = 0 ] && [ ! -f "$data/PG_VERSION" ] && ! (cd / && runuser -u postgres -- test -x "$top/.data"); then
    # The checkout lies where the postgres user cannot reach (a home directory
    # closed to others): keep this checkout's cluster under /var/tmp instead.
    data="$alt"
    mkdir -p "$(dirname "$data")"; chown postgres "$(dirname "$data")"
    log "checkout not reachable by user postgres; cluster in $data"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "creating a private PostgreSQL cluster in $data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data" "$top/.data"
    chmod 700 "$data"
    as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  fi
  if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    cd /  # runuser keeps the working directory, which postgres may not reach
    if [ -z "$port" ] || (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      port=$(free_port) || { log "no free port in 55432..55499"; exit 1; }
    fi
    echo "$port" > "$port_file"
    as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" start >/dev/null
    log "private PostgreSQL running on 127.0.0.1:$port"
  fi
  # The running cluster says its port itself (line 4 of postmaster.pid).
  port=$(sed -n 4p "$data/postmaster.pid")
}

url_for() { echo "postgres://postgres@127.0.0.1:$port/$1?sslmode=disable"; }

case "${1:-}" in
  url)
    db="${2:-mapfront}"
    if [ -n "${MAPFRONT_DATABASE_URL:-${DATABASE_URL:-}}" ]; then
      echo "${MAPFRONT_DATABASE_URL:-$DATABASE_URL}"; exit 0
    fi
    ensure_cluster
    bin=$(bindir)
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    url_for "$db"
    ;;
  admin)
    if [ -n "${MAPFRONT_TEST_DATABASE_URL:-}" ]; then echo "$MAPFRONT_TEST_DATABASE_URL"; exit 0; fi
    ensure_cluster
    url_for postgres
    ;;
  stop)
    bin=$(bindir) && [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" -m fast stop || true
    ;;
  *)
    echo "usage: $0 url DBNAME | admin | stop" >&2; exit 2
    ;;
esac
