#!/usr/bin/env bash
# deploy/systemd/*.service checked by `systemd-analyze verify` (unknown keys, bad values,
# a command that is not executable), with ExecStart pointed at the binaries just built.
# Any output counts as a failure. First the checker is shown to catch a broken unit.
# Exit 77 (ctest: skipped) where systemd-analyze is not installed.
set -uo pipefail
project="$1"
bin="$2"
if ! command -v systemd-analyze > /dev/null; then
  echo "SKIP: systemd-analyze is not installed (scripts/install-deps.sh installs systemd)"
  exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
# The checker catches a misspelt key and a missing binary.
printf '[Unit]\nDescription=x\n[Service]\nExecStart=/nonexistent/shardpress-coordinator\nRestrat=always\n' > "$dir/broken.service"
if out="$(systemd-analyze verify "$dir/broken.service" 2>&1)" && [ -z "$out" ]; then
  echo "FAIL: systemd-analyze verify accepted a broken unit"
  exit 1
fi
rm "$dir/broken.service"
status=0
for unit in "$project"/deploy/systemd/*.service; do
  name="$(basename "$unit")"
  sed "s|/opt/shardpress/bin|$bin|g" "$unit" > "$dir/$name"
  out="$(systemd-analyze verify "$dir/$name" 2>&1)"
  rc=$?
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL: $name (exit $rc):"
    echo "$out"
    status=1
  else
    echo "ok: $name"
  fi
done
exit $status
