"""Hash files from other tools: md5sum/sha*sum, BSD tags, dc3dd and FTK Imager logs."""

from __future__ import annotations

import pytest

from forensimg.errors import UsageError
from forensimg.hashfiles import parse_hash_file, parse_hash_text, select_media_hashes
from tests.helpers import canonical
from tests.verify.common import cli_json, md5, sha256

DATA = canonical()
MD5 = md5(DATA)
SHA1 = __import__("hashlib").sha1(DATA).hexdigest()
SHA256 = sha256(DATA)

DC3DD_LOG = f"""dc3dd 7.2.646 started at 2026-11-27 10:01:02 +0000
compiled options:
command line: dc3dd if=/dev/sdb hof=disk.raw hash=md5 hash=sha1 log=disk.log
device size: 2050 sectors (probed),    1,049,600 bytes
sector size: 512 bytes (probed)
     1049600 bytes ( 1 M ) copied ( 100% ),    0 s, 9.1 M/s
     1049600 bytes ( 1 M ) hashed ( 100% ),    0 s, 9.1 M/s

input results for device `/dev/sdb':
   2050 sectors in
   0 bad sectors replaced by zeros
   {MD5} (md5)
   {"a" * 32} (md5), sectors 0 - 1023
   {SHA1} (sha1)

output results for file `disk.raw':
   2050 sectors out
   [ok] {MD5} (md5)
   [ok] {SHA1} (sha1)

dc3dd completed at 2026-11-27 10:01:03 +0000
"""

FTK_LOG = f"""Created By AccessData® FTK® Imager 4.7.1.2

Case Information:
Acquired using: ADI4.7.1.2
Case Number: 42
Evidence Number: 1
Examiner: Ann

[Computed Hashes]
 MD5 checksum:    {MD5}
 SHA1 checksum:   {SHA1}

Image Information:
 Acquisition started:   Fri Nov 27 10:01:02 2026
 Segment list:
  disk.raw.001

Image Verification Results:
 Verification started:  Fri Nov 27 10:02:02 2026
 MD5 checksum:    {MD5} : verified
 SHA1 checksum:   {SHA1} : verified
"""


def test_coreutils_and_bsd_forms():
    text = (
        f"# made by hand\n{MD5}  disk.raw\n{SHA1} *disk.raw\n"
        f"SHA256 (disk.raw) = {SHA256.upper()}\n{'b' * 32}  other.raw\nnot a hash line\n"
    )
    entries = parse_hash_text(text, "h.txt")
    assert [(e.algorithm, e.name, e.line) for e in entries] == [
        ("md5", "disk.raw", 2),
        ("sha1", "disk.raw", 3),
        ("sha256", "disk.raw", 4),
        ("md5", "other.raw", 5),
    ]
    assert entries[2].value == SHA256
    assert select_media_hashes(entries, ["/x/disk.raw"]) == {"md5": MD5, "sha1": SHA1, "sha256": SHA256}
    assert select_media_hashes(entries, ["/x/other.raw"])["md5"] == "b" * 32
    with pytest.raises(UsageError, match="2 different MD5"):
        select_media_hashes(entries, ["/x/third.raw"])


def test_segment_lists_are_not_media_hashes():
    text = f"{'1' * 32}  disk.001\n{'2' * 32}  disk.002\n{MD5}  /dev/sdb\n"
    assert select_media_hashes(parse_hash_text(text), ["disk.001", "disk.002"]) == {"md5": MD5}


def test_dc3dd_log_skips_piece_hashes():
    entries = parse_hash_text(DC3DD_LOG)
    assert {e.value for e in entries if e.algorithm == "md5"} == {MD5}
    assert select_media_hashes(entries, ["disk.raw"]) == {"md5": MD5, "sha1": SHA1}


def test_ftk_log_and_utf16(tmp_path):
    p = tmp_path / "disk.raw.txt"
    p.write_bytes(FTK_LOG.encode("utf-16"))  # with BOM, as Windows tools write it
    entries = parse_hash_file(p)
    assert select_media_hashes(entries, ["disk.raw.001"]) == {"md5": MD5, "sha1": SHA1}


def test_label_with_wrong_length_is_refused():
    with pytest.raises(UsageError, match="MD5 digest must have 32"):
        parse_hash_text(f"MD5 checksum: {SHA1}\n")


@pytest.mark.parametrize("kind", ["md5sum", "sha256sum", "dc3dd", "ftk"])
def test_verify_with_hash_file(tmp_path, capsys, kind):
    img = tmp_path / "disk.raw"
    img.write_bytes(DATA)
    hf = tmp_path / f"hashes.{kind}"
    hf.write_text(
        {
            "md5sum": f"{MD5}  disk.raw\n",
            "sha256sum": f"{SHA256}  /dev/sdb\n",
            "dc3dd": DC3DD_LOG,
            "ftk": FTK_LOG,
        }[kind]
    )
    code, doc = cli_json(capsys, "--no-custody", "verify", img, "--hash-file", hf)
    assert code == 0 and doc["status"] == "verified"
    refs = [r for h in doc["hashes"] for r in h["references"]]
    assert refs and all(r["source"] == "hash_file" and r["origin"] == str(hf) and r["match"] for r in refs)
    hf.write_text(f"{'0' * 64}  disk.raw\n")
    code, doc = cli_json(capsys, "--no-custody", "verify", img, "--hash-file", hf)
    assert code == 1 and doc["status"] == "mismatch"


def test_missing_hash_file_is_exit_3(tmp_path, capsys):
    img = tmp_path / "disk.raw"
    img.write_bytes(DATA)
    from tests.verify.common import cli

    code, _, err = cli(capsys, "verify", img, "--hash-file", tmp_path / "none.md5")
    assert code == 3 and "none.md5" in err
