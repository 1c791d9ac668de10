#!/bin/sh
# Set up everything forensimg's demo and tests need on a fresh Debian machine:
# Debian packages (when run as root), a virtual environment in .venv, the package and its extras.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

DEB_PACKAGES="python3-venv python3-dev gcc make pkg-config fuse3 libfuse3-dev ewf-tools sleuthkit e2fsprogs dosfstools mtools fdisk util-linux faketime xfsprogs kmod openssl"

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for p in $DEB_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: not root; these Debian packages are missing (tests that need them will fail):$missing" >&2
  fi
fi
# FUSE needs its device node; loop devices need the loop module (both best effort)
[ -e /dev/fuse ] || { command -v modprobe >/dev/null 2>&1 && modprobe fuse 2>/dev/null || true; }
[ -e /dev/loop-control ] || { command -v modprobe >/dev/null 2>&1 && modprobe loop 2>/dev/null || true; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.forensimg-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
