#!/bin/sh
# The main job on built-in sample data. Run through ./dev.sh demo (which sets everything up first).
set -eu
cd "$(dirname "$0")/.."
F=".venv/bin/forensimg"
OUT="demo-out"
rm -rf "$OUT"; mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Sample disk: testdata/generate.py writes an LBA-stamped 1 MiB disk"
.venv/bin/python testdata/generate.py "$OUT" >/dev/null
ls -l "$OUT/canonical.raw"

step "forensimg info"
$F info "$OUT/canonical.raw"

step "forensimg hash (MD5, SHA-1, SHA-256 in one pass)"
$F hash "$OUT/canonical.raw"

step "Shared E01-era sample: a split raw floppy (three pieces), opened from any member"
$F info testdata/floppy_fat12.raw.001
$F hash -a md5 testdata/floppy_fat12.raw.001
