#!/usr/bin/env bash
# readme-curls.sh: run the README's "Try it" section as written, top to bottom,
# against a running `make run` on a fresh demo database, and check each answer.
#
#   scripts/readme-curls.sh [README.md]
#
# Every ```sh block of the section runs in this one shell, in order, so that
# the variables a block sets (G, PIN, PAY, ORDER) are there for the next, as
# for a reader who pastes the blocks into a terminal. The ```json block after
# a ```sh block is the answer the README shows for that block's last request:
# its errcode, errmsg and (when it has one) status must be what the server
# answers. Every earlier answer of the block must have errcode 0. Exit 0 when
# all agree; 1, with the differences, otherwise.
#
# It needs a FRESH database: the blocks open a card with fixed keys, and a
# database that has already answered them (a second run) answers the repeated
# open_card with 10011, and later blocks disagree. For a fresh one, stop
# `make run` (Ctrl-C) and start it on a new database of its private cluster:
#
#   MAPFRONT_DATABASE_URL=$(scripts/devdb.sh url mapfront_$(date +%s)) make run
#
# (devdb.sh url NAME creates the database NAME; `make run` then migrates it
# and loads the demo data into it.)
#
# For a test harness (server/readme_test.go): README_CURLS_BASE replaces the
# README's gateway address http://127.0.0.1:8080, README_CURLS_SERVER its
# bin/server, in the blocks before they run.
set -uo pipefail
cd "$(dirname "$0")/.."
readme=${1:-README.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The section, cut into numbered blocks: $tmp/N.sh and, when shown, $tmp/N.json.
awk -v dir="$tmp" '
  /^### Try it/ { on = 1; next }
  on && /^## / { exit }
  !on { next }
  /^```sh$/   { n++; out = dir "/" n ".sh"; printf "" > out; next }
  /^```json$/ { out = dir "/" n ".json"; printf "" > out; next }
  /^```$/     { out = ""; next }
  out != ""   { print >> out }
' "$readme"
blocks=$(ls "$tmp"/*.sh 2>/dev/null | wc -l)
[ "$blocks" -gt 0 ] || { echo "readme-curls: no \"Try it\" blocks in $readme" >&2; exit 1; }

# field NAME JSON: the value of the first top-level-or-nested "NAME" string or
# number in an answer (the envelope's order is fixed: errcode, errmsg first).
field() { sed -n 's/^{"errcode":[0-9]*,"errmsg":"[^"]*".*"'"$1"'":"\{0,1\}\([^",}]*\).*/\1/p;' <<<"$2" | head -1; }
errcode() { sed -n 's/^{"errcode":\([0-9]*\),.*/\1/p' <<<"$1"; }
errmsg() { sed -n 's/^{"errcode":[0-9]*,"errmsg":"\([^"]*\)".*/\1/p' <<<"$1"; }

echo "readme-curls: needs a fresh demo database (a reused one answers 10011 to the repeated open_card)."
echo "  for one: stop make run, then: MAPFRONT_DATABASE_URL=\$(scripts/devdb.sh url mapfront_\$(date +%s)) make run"
fail=0
for i in $(seq 1 "$blocks"); do
  code="$tmp/$i.sh"
  if [ -n "${README_CURLS_BASE:-}" ]; then sed -i "s#http://127.0.0.1:8080#$README_CURLS_BASE#g" "$code"; fi
  if [ -n "${README_CURLS_SERVER:-}" ]; then sed -i "s#bin/server #$README_CURLS_SERVER #g" "$code"; fi
  printf '== block %d: %s\n' "$i" "$(grep -m1 -o 'curl -s [^ ]*' "$code" || head -1 "$code")"
  # shellcheck disable=SC1090
  source "$code" > "$tmp/$i.out" 2> "$tmp/$i.err" || { echo "   block $i failed: $(cat "$tmp/$i.err")"; fail=1; continue; }
  # curl -s prints no newline after an answer: two requests in one block
  # print `{...}{...}` on one line. An answer's inner quotes in "request"
  # are escaped, so `}{"errcode"` is only ever a boundary.
  mapfile -t answers < <(sed 's/}{"errcode"/}\n{"errcode"/g' "$tmp/$i.out" | grep '^{')
  if [ ! -f "$tmp/$i.json" ]; then
    continue
  fi
  if [ ${#answers[@]} -eq 0 ]; then
    echo "   no answer; the README shows one"; fail=1; continue
  fi
  for a in "${answers[@]:0:${#answers[@]}-1}"; do
    [ "$(errcode "$a")" = 0 ] || { echo "   an earlier answer of the block: ${a:0:160}"; fail=1; }
  done
  got=${answers[-1]}
  want=$(grep '^{' "$tmp/$i.json" | head -1)
  for f in errcode errmsg status; do
    case $f in
      errcode) g=$(errcode "$got"); w=$(errcode "$want") ;;
      errmsg) g=$(errmsg "$got"); w=$(errmsg "$want") ;;
      *) w=$(field "$f" "$want"); [ -n "$w" ] || continue; g=$(field "$f" "$got") ;;
    esac
    if [ "$g" = "$w" ]; then
      printf '   %-8s %s\n' "$f" "$g"
    else
      printf '   %-8s %s, the README shows %s\n   answer: %.300s\n' "$f" "$g" "$w" "$got"; fail=1
    fi
  done
done
if [ "$fail" = 0 ]; then echo "readme-curls: every answer is the one the README shows"; else
  echo "readme-curls: the README and the server disagree" >&2
  echo "  (errcode 10011 on an open_card: the database is not fresh; see the start of this output)" >&2
fi
exit "$fail"
