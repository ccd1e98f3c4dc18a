#!/usr/bin/env bash
# Set up everything wmilab needs on a fresh Debian machine with Python 3.11:
# Debian packages (only when running as root), a virtualenv in .venv, and the pinned
# Python packages. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "bootstrap: $PY not found; install Python 3.11 or newer" >&2
  exit 1
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "bootstrap: wmilab needs Python 3.11 or newer ($("$PY" --version))" >&2; exit 1; }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=("python3-venv")
  command -v tshark >/dev/null 2>&1 || need+=("tshark")
  command -v nft >/dev/null 2>&1 || need+=("nftables")
  command -v ip >/dev/null 2>&1 || need+=("iproute2")
  command -v git >/dev/null 2>&1 || need+=("git")
  # Headless Chromium renders `check --html` in the tests (about 25 s to install), with a font.
  command -v chromium >/dev/null 2>&1 || need+=("chromium")
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=("fonts-dejavu-core")
  if [ ${#need[@]} -gt 0 ]; then
    echo "bootstrap: apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.wmilab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
