#!/usr/bin/env bash
# The seed's walk-through ("Connecting Through Windows Firewall"), one scenario at a time:
# what fails, where, with which HRESULT, and the least-privilege fix. It works as a user
# would: the shipped examples are copied out with `wmilab examples` into a scratch
# directory and checked there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
wm="$PWD/.venv/bin/wmilab"
names=()
for f in src/wmilab/examples/[0-9]*.toml; do names+=("$(basename "$f" .toml)"); done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
bold() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }
status=0

bold "wmilab examples"
"$wm" examples
for name in "${names[@]}"; do
  "$wm" examples "$name" -o "$name.toml" >/dev/null
done
for name in "${names[@]}"; do
  bold "wmilab check $name.toml"
  "$wm" check "$name.toml" || status=1
done
bold "wmilab fix 01-default-blocked.toml -o fixed.toml, then check the result"
"$wm" fix 01-default-blocked.toml -o fixed.toml
grep -n "wmilab fix" fixed.toml || true
"$wm" check fixed.toml || status=1
bold 'wmilab netsh 04-async-configured.toml A "firewall show config"'
"$wm" netsh 04-async-configured.toml A "firewall show config"
# The emulated hosts: the same calls made on the wire by impacket, compared with the model.
for name in "${names[@]}"; do
  bold "wmilab lab $name.toml --verify"
  rc=0
  "$wm" lab "$name.toml" --verify || rc=$?
  if [ "$rc" = 2 ]; then
    echo "(skipped: the emulated hosts could not listen, as the error above says; port 135"
    echo " needs root or sysctl net.ipv4.ip_unprivileged_port_start=135)"
  elif [ "$rc" != 0 ]; then
    status=1
  fi
done
exit $status
