"""forensimg verify on E01: chunk faults located exactly, one flipped byte in each kind of place,
missing/truncated/renamed segments, unreadable ranges recorded at acquisition."""

from __future__ import annotations

import shutil
import struct
import zlib

import pytest

import forensimg
from forensimg.verify import verify
from tests.helpers import canonical, manifest
from tests.verify.common import cli, cli_json, copy_testdata, flip, md5

FLOPPY = manifest()["images"]["floppy_fat12.E01"]["media"]
DISK = manifest()["images"]["disk_mbr_seg.E01"]["media"]


def sections(path):
    """(type, offset, size) of each EWF1 section, from the section descriptors (ewf-notes §1.2)."""
    data = path.read_bytes()
    off, out = 13, []
    while True:
        kind = data[off : off + 16].rstrip(b"\0").decode()
        nxt, size = struct.unpack_from("<QQ", data, off + 16)
        out.append((kind, off, size))
        if kind in ("done", "next") or nxt == off:
            return out
        off = nxt


def section(path, kind):
    return next(off for k, off, _ in sections(path) if k == kind)


DESC = 76  # section descriptor size


@pytest.fixture
def floppy(tmp_path):
    return copy_testdata(tmp_path, "floppy_fat12.E01")[0]


@pytest.fixture
def seg(tmp_path):
    return copy_testdata(tmp_path, "disk_mbr_seg.E01", "disk_mbr_seg.E02", "disk_mbr_seg.E03")


def test_intact_e01_verifies(floppy, capsys):
    code, out, _ = cli(capsys, "verify", floppy, "--expect", f"sha256:{FLOPPY['sha256']}")
    assert code == 0
    assert out.strip().splitlines()[-1] == (
        "VERIFIED: MD5 matches the hashes stored in the image, SHA-256 matches --expect; 0 faults"
    )
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 0 and doc["image"]["format"] == "ewf" and doc["image"]["size"] == FLOPPY["size"]
    (h,) = doc["hashes"]
    assert h == {
        "algorithm": "md5",
        "stored": FLOPPY["md5"],
        "computed": FLOPPY["md5"],
        "match": True,
        "references": [{"source": "stored", "value": FLOPPY["md5"], "origin": None, "match": True}],
    }
    assert doc["chunks_checked"] == 23 and doc["bytes_read"] == FLOPPY["size"]


def test_corrupt_chunk_is_located_exactly(tmp_path, capsys):
    (img,) = copy_testdata(tmp_path, "floppy_fat12_corrupt_chunk.E01")
    damage = manifest()["images"]["floppy_fat12_corrupt_chunk.E01"]["damage"]
    code, doc = cli_json(capsys, "verify", img, "--jobs", "2")
    assert code == 1 and doc["status"] == "faults"
    (chunk,) = [f for f in doc["faults"] if f["chunk"] is not None]
    assert chunk["chunk"] == damage["chunk_index"] == 3
    assert chunk["kind"] in ("checksum", "decompress")
    assert chunk["media"] == {
        "start": damage["media_bytes"][0],
        "end": damage["media_bytes"][1] + 1,
        "length": 65536,
        "first_lba": damage["sectors"][0],
        "last_lba": damage["sectors"][1],
    }
    assert chunk["segment"] == str(img) and chunk["offset"] == damage["chunk_file_offset"]
    mism = [f for f in doc["faults"] if f["kind"] == "hash_mismatch"]
    assert len(mism) == 1 and mism[0]["expected"] == FLOPPY["md5"]
    assert doc["verdict"] == "FAILED: 1 corrupt chunk, MD5 mismatch (stored)"
    code, out, _ = cli(capsys, "verify", img)
    assert "chunk 3, media 196608..262143 (LBA 384..511)" in out and "offset 0x12463" in out


def test_flipped_byte_in_chunk_data(floppy, capsys):
    flip(floppy, section(floppy, "sectors") + DESC + 5000)
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 1 and doc["status"] == "faults"
    chunks = [f["chunk"] for f in doc["faults"] if f["chunk"] is not None]
    assert len(chunks) == 1 and doc["verdict"].startswith("FAILED: 1 corrupt chunk")


def test_flipped_byte_in_table(floppy, capsys):
    flip(floppy, section(floppy, "table") + DESC + 24 + 8)  # third table entry; table2 still holds
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 1 and doc["status"] == "faults"
    assert any(f["kind"] == "metadata" and "table" in f["detail"] for f in doc["faults"])
    # the media still reads right through table2, and verify says so: the hash matches
    assert doc["hashes"][0]["match"] is True


def test_flipped_byte_in_both_tables_is_unreadable(floppy, capsys):
    flip(floppy, section(floppy, "table") + DESC + 24 + 8)
    flip(floppy, section(floppy, "table2") + DESC + 24 + 8)
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 3 and doc["status"] == "unreadable" and "table" in doc["error"]
    assert doc["faults"][0]["segment"] == str(floppy)


def test_flipped_byte_in_stored_hash(floppy, capsys):
    flip(floppy, section(floppy, "hash") + DESC + 3)  # the section checksum now fails
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 1 and doc["status"] in ("faults", "mismatch")


def test_rewritten_stored_hash_with_valid_checksum_is_mismatch(floppy, capsys):
    off = section(floppy, "hash") + DESC
    with floppy.open("r+b") as f:
        f.seek(off)
        body = bytearray(f.read(32))
        body[0] ^= 0xFF
        f.seek(off)
        f.write(bytes(body) + struct.pack("<I", zlib.adler32(bytes(body))))
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 1 and doc["status"] == "mismatch"
    assert doc["hashes"][0]["references"][0] == {
        "source": "stored",
        "value": doc["hashes"][0]["stored"],
        "origin": None,
        "match": False,
    }
    assert doc["verdict"] == "FAILED: MD5 mismatch (stored)"


def test_flipped_byte_in_header_text(floppy, capsys):
    flip(floppy, section(floppy, "header") + DESC + 20)
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 3 and doc["status"] == "unreadable"
    assert doc["faults"][0]["segment"] == str(floppy) and doc["faults"][0]["offset"] is not None


def test_deleted_middle_segment(seg, capsys):
    seg[1].unlink()
    code, doc = cli_json(capsys, "verify", seg[0])
    assert code == 3 and doc["status"] == "unreadable"
    (f,) = doc["faults"]
    assert f["kind"] == "missing_segment" and f["segment"].endswith("disk_mbr_seg.E02")
    assert doc["verdict"].startswith("UNREADABLE: ") and "E02" in doc["verdict"]


def test_truncated_last_segment(seg, capsys):
    with seg[2].open("r+b") as f:
        f.truncate(seg[2].stat().st_size - 1000)
    code, doc = cli_json(capsys, "verify", seg[0])
    assert code in (1, 3) and doc["status"] != "verified"
    assert any(f["segment"] == str(seg[2]) for f in doc["faults"])


def test_renamed_identical_segment_set_verifies(seg, capsys):
    renamed = [shutil.move(p, p.with_name("other" + p.suffix)) for p in seg]
    code, doc = cli_json(capsys, "verify", renamed[1], "--expect", f"sha1:{DISK['sha1']}")
    assert code == 0 and doc["status"] == "verified", doc["verdict"]
    assert [s.rsplit("/", 1)[-1] for s in doc["image"]["segments"]] == ["other.E01", "other.E02", "other.E03"]


def test_range_on_e01_is_chunk_checks_only(tmp_path, capsys):
    (img,) = copy_testdata(tmp_path, "floppy_fat12_corrupt_chunk.E01")
    code, doc = cli_json(capsys, "verify", img, "--range", "0:64k")
    assert code == 4 and doc["range"]["method"] == "chunks" and doc["chunks_checked"] == 1
    code, out, _ = cli(capsys, "verify", img, "--range", "0:64k")
    assert "chunk checks only" in out.strip().splitlines()[-1]
    code, doc = cli_json(capsys, "verify", img, "--range", "200000+1")
    assert code == 1 and doc["faults"][0]["chunk"] == 3


def test_unreadable_ranges_are_listed_not_counted(tmp_path, capsys):
    data = bytearray(canonical())
    bad = (4096, 8192)
    data[bad[0] : bad[1]] = bytes(bad[1] - bad[0])
    target = tmp_path / "acq.E01"
    with forensimg.create(target, format="ewf") as w:
        w.write(bytes(data[: bad[0]]))
        w.mark_unreadable(bad[0], bad[1] - bad[0])
        w.write(bytes(data[bad[0] :]))
    code, doc = cli_json(capsys, "verify", target)
    assert code == 0 and doc["status"] == "verified", doc["verdict"]
    assert [(u["start"], u["end"], u["first_lba"], u["last_lba"]) for u in doc["unreadable"]] == [(4096, 8192, 8, 15)]
    assert doc["faults"] == []
    assert doc["verdict"].endswith("1 unreadable range recorded at acquisition (not corruption)")
    assert doc["hashes"][0]["computed"] == md5(bytes(data))


def test_library_verify_e01_with_workers(tmp_path):
    (img,) = copy_testdata(tmp_path, "disk_mbr.E01")
    for workers in (1, 4):
        rep = verify(img, hashes=["sha256"], workers=workers, use_custody=False)
        assert rep.status == "verified" and rep.exit_code == 0
        computed = {h.algorithm: h.computed for h in rep.hashes}
        assert computed == {"md5": DISK["md5"], "sha1": DISK["sha1"], "sha256": DISK["sha256"]}


def test_swapped_segment_names_read_in_header_order(seg, capsys):
    """EWF segments carry their number: swapped names are read in the right order (and the hash says so)."""
    tmp = seg[1].with_name("swap")
    seg[1].rename(tmp)
    seg[2].rename(seg[1])
    tmp.rename(seg[2])
    code, doc = cli_json(capsys, "verify", seg[0])
    assert code == 0 and doc["hashes"][0]["computed"] == DISK["md5"]


@pytest.mark.parametrize("copy", [0, 1])
def test_damaged_header2_copy_fails(floppy, copy, capsys):
    """A flipped byte in either header2 copy (EnCase 6 writes two) is a structure fault, though the other
    copy still gives the case metadata and the media hash matches."""
    off = [o for k, o, _ in sections(floppy) if k == "header2"][copy]
    flip(floppy, off + DESC + 40)
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 1 and doc["status"] == "faults"
    (f,) = doc["faults"]
    assert f["kind"] == "metadata" and f["segment"] == str(floppy) and f["offset"] == off
    assert f"copy {copy + 1} of the 'header2' section" in f["detail"] and "damaged" in f["detail"]
    assert doc["hashes"][0]["match"] is True and doc["image"]["case"]["examiner"] == "Test Examiner"
    assert doc["verdict"] == "FAILED: structure fault"
    code, out, _ = cli(capsys, "verify", floppy)
    assert code == 1 and f"offset 0x{off:08x}" in out


def test_differing_header2_copy_fails(floppy, capsys):
    """A second header2 copy that is valid zlib but says something else (an edited examiner) is reported."""
    _, off, size = [s for s in sections(floppy) if s[0] == "header2"][1]
    data = floppy.read_bytes()
    text = zlib.decompress(data[off + DESC : off + size])
    edited = text.replace("Test Examiner".encode("utf-16-le"), "Evil Examiner".encode("utf-16-le"))
    assert edited != text
    for level in range(1, 10):  # a deflate of exactly the original length, so the section chain holds
        c = zlib.compressobj(level, zlib.DEFLATED, 15, 8)
        packed = c.compress(edited) + c.flush()
        if len(packed) == size - DESC:
            break
    else:
        pytest.fail("no deflate level gives the original section length")
    floppy.write_bytes(data[: off + DESC] + packed + data[off + size :])
    code, doc = cli_json(capsys, "verify", floppy)
    assert code == 1 and doc["status"] == "faults"
    (f,) = doc["faults"]
    assert f["kind"] == "metadata" and f["offset"] == off and "differs from the copy in use" in f["detail"]


def test_chunk_fault_carries_expected_and_found(tmp_path, capsys):
    """A corrupt compressed chunk names the Adler-32 its zlib trailer stores and the one of what it inflates to."""
    (img,) = copy_testdata(tmp_path, "floppy_fat12_corrupt_chunk.E01")
    code, doc = cli_json(capsys, "verify", img)
    assert code == 1
    (f,) = [f for f in doc["faults"] if f["chunk"] is not None]
    assert f["expected"].startswith("adler32:") and f["found"].startswith("adler32:")
    assert f["expected"] != f["found"]
    code, out, _ = cli(capsys, "verify", img)
    assert code == 1 and f"expected {f['expected']}, found {f['found']}" in out


def test_uncompressed_chunk_fault_values():
    """decode_chunk: stored vs computed Adler-32 of a raw chunk, and decoded vs expected lengths."""
    from forensimg.formats.ewf.reader import decode_chunk

    body = bytes(range(256)) * 16
    stored = body + zlib.adler32(body).to_bytes(4, "little")
    bad = bytearray(stored)
    bad[7] ^= 1
    _, problem = decode_chunk(bytes(bad), False, len(body), len(body))
    assert problem is not None and problem[0] == "checksum"
    assert problem[2:] == (f"adler32:{zlib.adler32(body):08x}", f"adler32:{zlib.adler32(bytes(bad[:-4])):08x}")
    _, problem = decode_chunk(zlib.compress(body[:100]), True, len(body), len(body))
    assert problem is not None and problem[0] == "size" and problem[2:] == (f"{len(body)} bytes", "100 bytes")
    _, problem = decode_chunk(b"\x78\x9c garbage", True, len(body), len(body))
    assert problem is not None and problem[3] is not None and problem[3].startswith("zlib error:")
