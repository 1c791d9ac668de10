"""forensimg verify on fimg: SHA-256 chunk checks, Merkle range proofs, segments, signed Merkle root."""

from __future__ import annotations

import json
import random

import pytest

import forensimg
from forensimg.signing import generate_keypair
from forensimg.verify import verify
from tests.verify.common import cli, cli_json, flip, sha256

CHUNK = 65536
DATA = random.Random(6).randbytes(16 * CHUNK)  # incompressible: chunk bytes appear as such in the files


@pytest.fixture
def fimg(tmp_path):
    target = tmp_path / "ev.fimg"
    with forensimg.create(target, format="fimg", chunk_size=CHUNK, segment_size=300_000) as w:
        w.write(DATA)
    with forensimg.open(target) as img:
        segs = list(img.info.segments)
    assert len(segs) >= 3
    return segs


def _locate(segs, media_offset):
    """(file, offset) of the media byte ``media_offset`` inside the segment files."""
    needle = DATA[media_offset : media_offset + 32]
    for p in segs:
        i = p.read_bytes().find(needle)
        if i >= 0:
            return p, i
    raise AssertionError("chunk bytes not found")


def test_intact_fimg_verifies_with_merkle_root(fimg, capsys):
    code, doc = cli_json(capsys, "verify", fimg[0])
    assert code == 0 and doc["status"] == "verified" and doc["image"]["format"] == "fimg"
    assert doc["hashes"][0]["algorithm"] == "sha256" and doc["hashes"][0]["computed"] == sha256(DATA)
    assert len(doc["image"]["merkle_root"]) == 64
    assert doc["chunks_checked"] == 16


def test_flipped_chunk_byte_is_located(fimg, capsys):
    seg, off = _locate(fimg, 5 * CHUNK + 1000)
    flip(seg, off)
    code, doc = cli_json(capsys, "verify", fimg[0])
    assert code == 1 and doc["status"] == "faults"
    (f,) = [f for f in doc["faults"] if f["chunk"] is not None]
    assert f["chunk"] == 5 and f["media"]["start"] == 5 * CHUNK and f["media"]["first_lba"] == 5 * CHUNK // 512
    assert f["segment"] == str(seg)
    assert doc["verdict"].startswith("FAILED: 1 corrupt chunk")


def test_range_is_proven_against_merkle_root(fimg, capsys):
    code, out, _ = cli(capsys, "verify", fimg[1], "--range", f"{3 * CHUNK + 10}+100")
    assert code == 0
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith(f"VERIFIED: bytes {3 * CHUNK + 10}..{3 * CHUNK + 109} proven against the Merkle root; 1 chunks")
    )
    code, doc = cli_json(capsys, "verify", fimg[0], "--range", f"0:{2 * CHUNK}")
    assert code == 0 and doc["range"]["method"] == "merkle" and doc["range"]["proven"] is True
    assert doc["chunks_checked"] == 2 and doc["hashes"] == []


def test_range_over_corrupt_chunk_fails_elsewhere_passes(fimg, capsys):
    seg, off = _locate(fimg, 9 * CHUNK + 77)
    flip(seg, off)
    code, doc = cli_json(capsys, "verify", fimg[0], "--range", f"{9 * CHUNK}+{CHUNK}")
    assert code == 1 and doc["faults"][0]["chunk"] == 9
    code, doc = cli_json(capsys, "verify", fimg[0], "--range", f"0+{CHUNK}")
    assert code == 0


def test_deleted_middle_segment_and_truncated_last(fimg, capsys):
    data = fimg[-1].read_bytes()
    fimg[-1].write_bytes(data[:-100])
    code, doc = cli_json(capsys, "verify", fimg[0])
    assert code in (1, 3) and doc["status"] != "verified"
    fimg[-1].write_bytes(data)
    assert cli(capsys, "verify", fimg[0])[0] == 0
    fimg[1].unlink()
    code, doc = cli_json(capsys, "verify", fimg[0])
    assert code == 3 and doc["faults"][0]["kind"] == "missing_segment"
    assert doc["faults"][0]["segment"] == str(fimg[1])


def test_renamed_identical_set_verifies(fimg, capsys):
    renamed = [p.rename(p.with_name("copy" + p.suffix)) for p in fimg]
    code, doc = cli_json(capsys, "verify", renamed[2])
    assert code == 0, doc["verdict"]


def test_signed_manifest_holds_merkle_root(fimg, tmp_path, capsys):
    key, pub = generate_keypair(tmp_path / "k")
    assert cli(capsys, "sign", fimg[0], "--key", key)[0] == 0
    m = json.loads(fimg[0].with_name(fimg[0].name + ".manifest.json").read_text())
    with forensimg.open(fimg[0]) as img:
        assert m["merkle_root"] == img.info.details["merkle_root"]
    code, doc = cli_json(capsys, "verify", fimg[0], "--public-key", pub)
    assert code == 0 and doc["signature"]["intact"]
    seg, off = _locate(fimg, 2 * CHUNK)
    flip(seg, off)
    code, doc = cli_json(capsys, "verify", fimg[0], "--public-key", pub)
    assert code == 1 and any(f["kind"] == "signature" and "segment" in f["detail"] for f in doc["faults"])


def test_unreadable_ranges_in_fimg(tmp_path):
    target = tmp_path / "u.fimg"
    with forensimg.create(target, format="fimg", chunk_size=CHUNK) as w:
        w.write(DATA[:CHUNK])
        w.mark_unreadable(CHUNK, 1024)
        w.write(bytes(1024))
        w.write(DATA[CHUNK + 1024 :])
    rep = verify(target, use_custody=False)
    assert rep.status == "verified" and [(r.start, r.end) for r in rep.unreadable] == [(CHUNK, CHUNK + 1024)]
    assert rep.faults == () and "not corruption" in rep.verdict


def test_misordered_segments_are_unreadable(fimg, capsys):
    tmp = fimg[1].with_name("swap")
    fimg[1].rename(tmp)
    fimg[2].rename(fimg[1])
    tmp.rename(fimg[2])
    code, doc = cli_json(capsys, "verify", fimg[0])
    assert code == 3 and doc["status"] == "unreadable"
    assert doc["faults"][0]["segment"] in (str(fimg[1]), str(fimg[2])) and "segment" in doc["error"]
