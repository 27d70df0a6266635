#!/usr/bin/env bash
# console-users.sh SERVER_BIN: the demo's operations-console accounts for
# `make run`: operator, supervisor and auditor (each the role of its name).
# Their passwords are generated once into .data/console-passwords (mode 600,
# never committed: .data/ is ignored) and printed the first time; running it
# again sets the same passwords back and unlocks the accounts.
set -euo pipefail
bin=$1
file=.data/console-passwords
if [ ! -f "$file" ]; then
  mkdir -p .data
  (umask 077
   for u in operator supervisor auditor; do
     echo "$u $(head -c 15 /dev/urandom | base64 | tr -d '/+=')"
   done > "$file")
  echo "console: demo accounts created (name password), kept in $file:"
  cat "$file"
fi
while read -r name password; do
  printf '%s\n' "$password" | "$bin" console-user add "$name" "$name" >/dev/null
done < "$file"
