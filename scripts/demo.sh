#!/bin/sh
# The main job on built-in sample data: acquire a sample disk to E01 and fimg, verify, browse, custody.
# Run through ./dev.sh demo (which sets everything up first). Writes only below demo-out/.
set -eu
cd "$(dirname "$0")/.."
F=".venv/bin/forensimg"
OUT="demo-out"
rm -rf "$OUT"; mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
export FORENSIMG_EXAMINER="Demo Examiner"

step "Sample disk: the 8 MiB MBR test disk (FAT16 + ext4) from testdata/disk_mbr.E01, as a raw file"
$F --no-custody convert testdata/disk_mbr.E01 "$OUT/sample-disk.raw" --quiet
ls -l "$OUT/sample-disk.raw"

step "Acquire it to E01 (fast compression, MD5+SHA-1) with case metadata and a report"
$F acquire "$OUT/sample-disk.raw" "$OUT/evidence.E01" --case-number DEMO-001 --evidence-number EV-1 \
  --description "demo sample disk" --notes "made by ./dev.sh demo" --quiet
sed -n 1,40p "$OUT/evidence.E01.txt"

step "Acquire it again to fimg (SHA-256 per chunk, Merkle root)"
$F acquire "$OUT/sample-disk.raw" "$OUT/evidence.fimg" --case-number DEMO-001 --quiet
$F info "$OUT/evidence.fimg"

step "Verify both (exit code 0 = every check passed and a reference hash matched)"
$F verify "$OUT/evidence.E01"
$F verify "$OUT/evidence.fimg"

step "Same media, same Merkle root, whatever the format"
$F hash --merkle "$OUT/evidence.E01"
$F hash --merkle "$OUT/evidence.fimg"

step "Browse: partitions, files of the ext4 partition, one file's content"
$F partitions "$OUT/evidence.E01"
$F ls "$OUT/evidence.E01" / --partition 2 --recursive | head -20
first_file=$($F ls "$OUT/evidence.E01" / --partition 2 --recursive --json | .venv/bin/python -c '
import json, sys
entries = json.load(sys.stdin)["entries"]
print(next(e["path"] for e in entries if e["type"] == "r/r" and not e["deleted"] and e["size"] > 0))')
echo "--- $first_file:"
$F cat "$OUT/evidence.E01" "$first_file" --partition 2 | head -c 300; echo

step "A damaged image: verify names the corrupt chunk, its media range and LBAs, and fails (exit 1)"
cp testdata/floppy_fat12_corrupt_chunk.E01 "$OUT/damaged.E01"
set +e
$F verify "$OUT/damaged.E01"
echo "exit code: $?"
set -e

step "Chain of custody beside the evidence"
$F custody show "$OUT/evidence.E01"
$F custody check "$OUT/evidence.E01"
