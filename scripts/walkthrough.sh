#!/usr/bin/env bash
# The seed's walk-through ("Connecting Through Windows Firewall"), one scenario at a time:
# what fails, where, with which HRESULT, and the least-privilege fix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
status=0
for f in examples/0*.toml; do
  printf '\n\033[1m=== wmilab check %s\033[0m\n' "$f"
  .venv/bin/wmilab check "$f" || status=1
done
tmp=$(mktemp -d)
printf '\n\033[1m=== wmilab fix examples/01-default-blocked.toml, then check the result\033[0m\n'
.venv/bin/wmilab fix examples/01-default-blocked.toml -o "$tmp/fixed.toml"
grep -n "wmilab fix" "$tmp/fixed.toml" || true
.venv/bin/wmilab check "$tmp/fixed.toml" || status=1
printf '\n\033[1m=== wmilab netsh examples/04-async-configured.toml A "firewall show config"\033[0m\n'
.venv/bin/wmilab netsh examples/04-async-configured.toml A "firewall show config"
rm -rf "$tmp"
# The emulated hosts: the same calls made on the wire by impacket, compared with the model.
for f in examples/0*.toml; do
  printf '\n\033[1m=== wmilab lab %s --verify\033[0m\n' "$f"
  rc=0
  .venv/bin/wmilab lab "$f" --verify || rc=$?
  if [ "$rc" = 2 ]; then
    echo "(skipped: the emulated hosts need TCP port 135 on loopback: run as root, or"
    echo " sysctl net.ipv4.ip_unprivileged_port_start=135)"
  elif [ "$rc" != 0 ]; then
    status=1
  fi
done
exit $status
