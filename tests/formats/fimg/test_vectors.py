"""formats/fimg/vectors: the spec's byte-level truths, checked against the reader, writer and Merkle code."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zlib
from pathlib import Path

import pytest

import forensimg
from forensimg.formats.fimg.layout import RECORD, parse_record
from forensimg.merkle import audit_path, leaf_hash, merkle_root, node_hash, tree_levels, verify_path
from tests.helpers import ROOT

VEC = ROOT / "formats" / "fimg" / "vectors"
IMAGES = json.loads((VEC / "images.json").read_text())


def _generator():
    spec = importlib.util.spec_from_file_location("fimg_vectors_generate", VEC / "generate.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_vector(name):
    exp = IMAGES[name]
    media = _generator().media()[: exp["size"]]
    assert hashlib.sha256(media).hexdigest() == exp["media_sha256"]
    with forensimg.open(VEC / name) as img:
        assert img.info.format == "fimg"
        assert img.info.complete is exp["complete"]
        assert img.size == exp["size"]
        assert img.chunk_size == exp["chunk_size"]
        assert img.read() == media
        assert dict(img.info.stored_hashes) == exp["stored_hashes"]
        assert img.info.case.case_number == exp["case_number"]
        got = [hashlib.sha256(img.read_chunk(i)).hexdigest() for i in range(img.chunk_count)]
        assert got == exp["chunk_digests"]
        assert img.check_structure() == ()
        if exp["complete"]:
            assert img._top is not None  # type: ignore[attr-defined]  # the stored tree level (spec §5.5a)
            assert img.info.details["merkle_root"] == exp["merkle_root"]
            assert img.prove_range(0, img.size) == ()
            assert [p.name for p in img.info.segments] == exp["segments"]
        else:
            assert img.info.details["merkle_root"] is None
            assert img.prove_range(0, img.size) is None
    assert merkle_root(bytes.fromhex(d) for d in exp["chunk_digests"]).hex() == exp["merkle_root"]


def test_writer_reproduces_vector_digests_and_root(tmp_path):
    """Same media and chunk size: same chunk digests and root as recorded, whatever the compression."""
    media = _generator().media()
    exp = IMAGES["zstd.fimg"]
    for comp in ("zstd", "zlib", "none"):
        with forensimg.create(tmp_path / f"{comp}.fimg", chunk_size=4096, compression=comp) as w:
            w.write(media)
        res = w.close()
        assert res.details["merkle_root"] == exp["merkle_root"]
        assert res.hashes["sha256"] == exp["media_sha256"]


def test_merkle_vectors():
    v = json.loads((VEC / "merkle.json").read_text())
    leaves = [bytes.fromhex(h) for h in v["leaf_digests"]]
    assert leaf_hash(leaves[0]).hex() == v["leaf_hash_0"] == hashlib.sha256(b"\x00" + leaves[0]).hexdigest()
    assert node_hash(leaf_hash(leaves[0]), leaf_hash(leaves[1])).hex() == v["node_hash_0_1"]
    assert v["roots"]["0"] == hashlib.sha256(b"").hexdigest()
    for n, root in v["roots"].items():
        assert merkle_root(leaves[: int(n)]).hex() == root
    levels = tree_levels(leaves[:7])
    for i, path in v["audit_paths_7"].items():
        p = [bytes.fromhex(h) for h in path]
        assert audit_path(levels, int(i)) == p
        assert verify_path(leaves[int(i)], int(i), 7, p, bytes.fromhex(v["roots"]["7"]))


def test_record_vectors():
    v = json.loads((VEC / "records.json").read_text())
    assert f"{zlib.crc32(b'123456789'):08x}" == v["crc32_123456789"]
    raw = bytes.fromhex(v["zero_chunk_record"]["hex"])
    assert len(raw) == RECORD.size == 64
    rh = parse_record(raw)
    assert rh is not None
    f = v["zero_chunk_record"]["fields"]
    assert rh.type == f["type"].encode() and rh.flags == f["flags"] and rh.method == f["method"]
    assert rh.number == f["number"] and rh.stored_length == f["stored_length"]
    assert rh.decoded_length == f["decoded_length"] and rh.digest.hex() == f["digest"]
    assert parse_record(raw[:10] + b"\xff" + raw[11:]) is None  # the CRC catches a flipped byte


def test_spec_documents_every_structure():
    spec = (ROOT / "formats" / "fimg" / "spec.md").read_text()
    for needle in ("FIMG\\r\\n\\x1a\\n", "FCHK", "FCKP", "FMET", "FIDX", "FDIG", "FIMGEND", "| Offset | Size | Type |",
                   "0x00", "0x01", "RFC 9162", "must reject", "seal", "FTOP"):
        assert needle.lower() in spec.lower(), needle


def test_vector_files_are_small():
    for p in Path(VEC).iterdir():
        assert p.stat().st_size < 64 * 1024, p
