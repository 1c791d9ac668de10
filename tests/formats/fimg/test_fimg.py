"""fimg reader and writer: storage rules, segments, damage localisation, structure checks, proofs, fuzzing."""

from __future__ import annotations

import hashlib
import os
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forensimg
from forensimg.errors import ChecksumError, Error, FormatError, MissingSegmentError, UsageError
from forensimg.formats.fimg import create_writer, resume_writer
from forensimg.formats.fimg.layout import (
    FLAG_COMPRESSED,
    FLAG_ZERO,
    RECORD_SIZE,
    parse_record,
    split_location,
)
from forensimg.image import CaseInfo, FaultKind, Range, SourceInfo
from forensimg.merkle import image_root
from tests.helpers import canonical

CS = 4096


def _media(size: int = 300_000, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        k = rng.randrange(3)
        n = rng.randrange(1, 6) * CS
        out += bytes(n) if k == 0 else rng.randbytes(n) if k == 1 else b"text line %d\n" % rng.randrange(9) * (n // 12)
    return bytes(out[:size])


def _write(path: Path, data: bytes, **opts: object) -> forensimg.WriteResult:
    opts.setdefault("chunk_size", CS)
    with create_writer(path, **opts) as w:  # type: ignore[arg-type]
        w.write(data)
    return w.close()


def _records(img: forensimg.Image) -> list[tuple[int, int, int]]:
    """(chunk, segment index, offset) of every chunk record."""
    out = []
    for i, loc in enumerate(img._locations):  # type: ignore[attr-defined]
        seg, off = split_location(loc)
        out.append((i, seg - 1, off))
    return out


def test_round_trip_metadata_and_storage_rules(tmp_path):
    data = bytes(CS) + os.urandom(CS) + b"a" * CS + bytes(100)
    case = CaseInfo(case_number="C-9", evidence_number="E-1", examiner="Ann", description="laptop", notes="n")
    src = SourceInfo(path="/dev/sdz", size=len(data), model="Disk", serial="SN1", physical_sector_size=4096)
    res = _write(tmp_path / "d.fimg", data, case=case, source=src, hashes=("md5", "sha1", "sha256"),
                 custody_event={"action": "acquire"})
    assert res.hashes == {"md5": hashlib.md5(data).hexdigest(), "sha1": hashlib.sha1(data).hexdigest(),
                          "sha256": hashlib.sha256(data).hexdigest()}
    with forensimg.open(tmp_path / "d.fimg") as img:
        assert img.read() == data
        i = img.info
        assert i.case == case and i.source is not None and i.source.serial == "SN1"
        assert i.stored_hashes == res.hashes and i.complete
        assert i.acquired_at is not None and i.acquired_at.tzinfo is not None
        assert i.details["merkle_root"] == res.details["merkle_root"]
        assert i.details["chunk_count"] == 4 and i.details["compression"] == "zlib"
        assert i.details["custody_event"] == {"action": "acquire"}
        heads = []
        for _, seg, off in _records(img):
            rh = parse_record(img._segs.pread(seg, off, RECORD_SIZE))  # type: ignore[attr-defined]
            assert rh is not None
            heads.append(rh)
    assert heads[0].flags == FLAG_ZERO and heads[0].stored_length == 0  # zero chunk: a flag alone
    assert heads[1].flags == 0 and heads[1].stored_length == CS  # random: stored raw (compression would grow it)
    assert heads[2].flags == FLAG_COMPRESSED and heads[2].stored_length < 100  # compressible: compressed
    assert heads[3].flags == FLAG_ZERO and heads[3].decoded_length == 100  # short last chunk


def test_root_is_the_same_for_raw_and_fimg(tmp_path):
    data = _media()
    (tmp_path / "m.raw").write_bytes(data)
    res = _write(tmp_path / "m.fimg", data, compression="zlib")
    with forensimg.open(tmp_path / "m.raw") as raw, forensimg.open(tmp_path / "m.fimg") as fi:
        assert image_root(raw, CS) == res.details["merkle_root"] == image_root(fi, CS)
        assert image_root(raw, 65536) == image_root(fi, 65536) != res.details["merkle_root"]


def test_segments_naming_missing_and_any_member(tmp_path):
    data = os.urandom(200_000)
    res = _write(tmp_path / "s.fimg", data, compression="none", segment_size=40_000, checkpoint_interval=2)
    names = [p.name for p in res.paths]
    assert names[:3] == ["s.fimg", "s.f002", "s.f003"] and len(names) >= 5
    assert all(p.stat().st_size <= 40_000 for p in res.paths[:-1])
    for member in res.paths:
        with forensimg.open(member) as img:
            assert img.read() == data
            assert img.check_structure() == ()
    res.paths[2].rename(tmp_path / "away")
    with pytest.raises(MissingSegmentError, match=r"s\.f003"):
        forensimg.open(res.paths[0])
    (tmp_path / "away").rename(res.paths[2])
    res.paths[-1].rename(tmp_path / "away")
    with forensimg.open(res.paths[0]) as img:  # without its last segment the image is unfinished
        assert not img.info.complete
    (tmp_path / "away").rename(res.paths[-1])
    res.paths[0].rename(tmp_path / "away")
    with pytest.raises(MissingSegmentError, match=r"s\.fimg"):
        forensimg.open(res.paths[1])


def test_swapped_segments_are_refused(tmp_path):
    data = os.urandom(100_000)
    res = _write(tmp_path / "s.fimg", data, compression="none", segment_size=40_000, checkpoint_interval=2)
    a, b = res.paths[1], res.paths[2]
    a.rename(tmp_path / "tmp")
    b.rename(a)
    (tmp_path / "tmp").rename(b)
    with pytest.raises(FormatError, match="segment"):
        forensimg.open(res.paths[0])


def test_abort_then_read_and_resume(tmp_path):
    data = _media(200_000)
    w = create_writer(tmp_path / "a.fimg", chunk_size=CS, checkpoint_interval=4, hashes="sha1")
    w.write(data[:123_456])
    w.abort()
    with forensimg.open(tmp_path / "a.fimg") as img:
        assert not img.info.complete and img.info.details["state"] == "incomplete"
        assert img.size == 123_456 // CS * CS
        assert img.read() == data[: img.size]
        assert img.info.stored_hashes == {}
        assert img.prove_range(0, 10) is None
    with pytest.raises(UsageError):
        resume_writer(tmp_path / "a.fimg", chunk_size=8192)
    w2 = resume_writer(tmp_path / "a.fimg")
    assert w2.position == 123_456 // CS * CS
    w2.write(data[w2.position :])
    res = w2.close()
    assert res.hashes == {"sha1": hashlib.sha1(data).hexdigest()}
    with pytest.raises(UsageError, match="finished"):
        resume_writer(tmp_path / "a.fimg")


def test_resume_skips_a_corrupt_committed_chunk(tmp_path):
    data = os.urandom(40 * CS)
    w = create_writer(tmp_path / "r.fimg", chunk_size=CS, checkpoint_interval=4, compression="none")
    w.write(data)
    w.abort()
    with forensimg.open(tmp_path / "r.fimg") as img:
        _, _seg, off = _records(img)[21]
    with open(tmp_path / "r.fimg", "r+b") as f:
        f.seek(off + RECORD_SIZE + 10)
        f.write(b"\xff")
    w2 = resume_writer(tmp_path / "r.fimg")
    assert w2.position == 20 * CS  # back to the checkpoint before chunk 21
    w2.write(data[w2.position :])
    res = w2.close()
    assert res.hashes == {"sha256": hashlib.sha256(data).hexdigest()}  # the kept prefix was hashed again
    with forensimg.open(tmp_path / "r.fimg") as img:
        assert img.read() == data


def test_corruption_is_localised_in_every_chunk(tmp_path):
    data = _media(400_000, seed=3)
    res = _write(tmp_path / "c.fimg", data, compression="zstd")
    path = res.paths[0]
    with forensimg.open(path) as img:
        recs = _records(img)
        n = img.chunk_count
    victims = [3, 17, 40, n - 1]
    raw = bytearray(path.read_bytes())
    for i in victims:
        _, _, off = recs[i]
        rh = parse_record(bytes(raw[off : off + RECORD_SIZE]))
        assert rh is not None
        if rh.stored_length:
            raw[off + RECORD_SIZE + rh.stored_length // 2] ^= 0x01  # a byte of the data
        else:
            raw[off + 30] ^= 0x01  # a zero chunk: a byte of its stored digest (the CRC catches it)
    path.write_bytes(bytes(raw))
    with forensimg.open(path) as img:
        faults = [f for _, _, f in img.scan_chunks(workers=2) if f is not None]
        assert [f.chunk for f in faults] == victims
        for f in faults:
            assert f.media == img.chunk_range(f.chunk)
            assert f.segment == str(path) and f.offset == recs[f.chunk][2]
            assert f.kind in (FaultKind.CHECKSUM, FaultKind.DECOMPRESS)
        for i in victims:
            with pytest.raises(ChecksumError) as ei:
                img.read_chunk(i)
            e = ei.value
            assert (e.chunk, e.media_start, e.media_end) == (i, i * CS, min((i + 1) * CS, len(data)))
            assert e.path == str(path) and e.offset == recs[i][2]
            assert f"chunk {i}" in str(e)
            _, fault = img.check_chunk(i)
            assert fault is not None and fault.chunk == i
        proof = img.prove_range(0, img.size)
        assert proof is not None and sorted(f.chunk for f in proof if f.chunk is not None) == victims
        assert img.prove_range(17 * CS + 5, 17 * CS + 6)[0].chunk == 17  # type: ignore[index]
        assert img.prove_range(4 * CS, 17 * CS) == ()  # the chunks between are proven
        # the first damaged record header (a zero chunk's) ends the record walk: reported once, located
        structural = [f for f in img.check_structure() if f.kind != FaultKind.CHECKSUM]
        assert len(structural) == 1
        hit = [i for i in victims if f"chunk {i}," in structural[0].detail]
        assert len(hit) == 1 and structural[0].offset == recs[hit[0]][2]
    with forensimg.open(path, zero_fill=True) as img:
        got = img.read()
        assert got[3 * CS : 4 * CS] == bytes(CS)
        assert [f.chunk for f in img.faults] == victims


def test_structure_damage_is_reported(tmp_path):
    data = _media(100_000)
    res = _write(tmp_path / "m.fimg", data)
    path = res.paths[0]
    good = path.read_bytes()
    size = len(good)
    from forensimg.formats.fimg.structs import FOOTER

    foot = FOOTER.parse(good[-136:])

    def damaged(loc_field: str, delta: int) -> bytes:
        _, off = split_location(foot[loc_field])
        raw = bytearray(good)
        raw[off + RECORD_SIZE + delta] ^= 0x20
        return bytes(raw)

    cases = {
        "metadata": damaged("metadata_location", 5),
        "index": damaged("index_location", 3),
        "digest table": damaged("digests_location", 7),
    }
    root_bad = bytearray(good)
    root_bad[size - 136 + 72] ^= 1
    cases["seal"] = bytes(root_bad)
    for what, raw in cases.items():
        path.write_bytes(raw)
        with forensimg.open(path) as img:
            faults = img.check_structure()
            assert faults, what
            assert any(what.split()[0] in f.detail or f.kind == FaultKind.MERKLE for f in faults), (what, faults)
            if what != "digest table":
                assert img.read() == data  # chunk data is still checked and readable
    # a header digest failure refuses the open
    raw = bytearray(good)
    raw[33] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError):
        forensimg.open(path)
    # a chunk rewritten with a matching record digest and CRC (a deliberate edit): the digest table catches
    # the read, and the record walk vs table comparison names the chunk
    from forensimg.formats.fimg.layout import pack_record

    path.write_bytes(good)
    with forensimg.open(path) as img:
        victim = next(i for i, _, off in _records(img)
                      if (rh := parse_record(good[off : off + 64])) and rh.flags == 0 and rh.method == 0)
        _, _, off = _records(img)[victim]
    rh = parse_record(good[off : off + 64])
    assert rh is not None
    forged = bytes(rh.stored_length)[:-1] + b"\x01"
    raw = bytearray(good)
    raw[off : off + 64] = pack_record(b"FCHK", victim, rh.stored_length, hashlib.sha256(forged).digest(),
                                      decoded_length=rh.decoded_length)
    raw[off + 64 : off + 64 + rh.stored_length] = forged
    path.write_bytes(bytes(raw))
    with forensimg.open(path) as img:
        with pytest.raises(ChecksumError, match="digest table"):
            img.read_chunk(victim)
        faults = img.check_structure()
        assert [f.chunk for f in faults if f.kind == FaultKind.CHECKSUM] == [victim]


def test_range_proof_uses_the_stored_tree_level(tmp_path):
    data = _media(600_000, seed=5)
    res = _write(tmp_path / "t.fimg", data)
    path = res.paths[0]
    with forensimg.open(path) as img:
        lvl, nodes = img._top  # type: ignore[attr-defined]
        n = img.chunk_count
        assert lvl == n.bit_length() // 2 and len(nodes) == -(-n >> lvl)
        assert img.prove_range(0, img.size) == ()
        assert img.prove_range(CS * 7 + 1, CS * 9) == ()
    # a tampered node: check_structure says so, proofs fall back to the digest table and still hold
    raw = bytearray(path.read_bytes())
    pos = raw.rfind(b"FTOP")
    raw[pos + 64 + 5] ^= 1
    head = bytes(raw[pos : pos + 28]) + hashlib.sha256(bytes(raw[pos + 64 : pos + 64 + 32 * len(nodes)])).digest()
    import zlib as _z

    raw[pos : pos + 64] = head + struct.pack("<I", _z.crc32(head))
    path.write_bytes(bytes(raw))
    with forensimg.open(path) as img:
        assert img.prove_range(0, img.size) == ()
        assert [f.kind for f in img.check_structure()] == [FaultKind.MERKLE]


def test_info_cli_says_incomplete(tmp_path, capsys):
    from forensimg.cli import main

    w = create_writer(tmp_path / "i.fimg", chunk_size=CS, checkpoint_interval=2)
    w.write(_media(50_000))
    w.abort()
    assert main(["info", str(tmp_path / "i.fimg")]) == 0
    out = capsys.readouterr().out
    assert "incomplete" in out.lower() and "NO" in out


def test_writer_options_are_checked(tmp_path):
    for bad in ({"chunk_size": 3000}, {"chunk_size": 1 << 25}, {"compression": "lz4"}, {"segment_size": 1000},
                {"checkpoint_interval": 0}, {"sync": "never"}, {"compression": "zstd", "compression_level": 99}):
        with pytest.raises(UsageError):
            create_writer(tmp_path / "x.fimg", **bad)
    _write(tmp_path / "y.fimg", b"abc")
    with pytest.raises(Error):
        create_writer(tmp_path / "y.fimg")


def test_empty_media(tmp_path):
    res = _write(tmp_path / "e.fimg", b"")
    assert res.details["merkle_root"] == hashlib.sha256(b"").hexdigest()
    with forensimg.open(tmp_path / "e.fimg") as img:
        assert img.size == 0 and img.read() == b"" and img.check_structure() == ()


def test_merkle_cli(tmp_path, capsys):
    from forensimg.cli import main

    data = canonical()
    (tmp_path / "c.raw").write_bytes(data)
    res = _write(tmp_path / "c.fimg", data, chunk_size=65536)
    assert main(["hash", "--merkle", str(tmp_path / "c.fimg"), "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    root = res.details["merkle_root"]
    assert out["merkle"] == {"root": root, "chunk_size": 65536, "stored": root, "match": True}
    assert main(["hash", "--merkle", str(tmp_path / "c.raw")]) == 0
    text = capsys.readouterr().out
    assert res.details["merkle_root"] not in text and "chunk size 16384" in text  # the default chunk size
    assert main(["hash", "--merkle", "--chunk-size", "65536", str(tmp_path / "c.raw")]) == 0
    text = capsys.readouterr().out
    assert res.details["merkle_root"] in text and "chunk size 65536" in text


# -- fuzzing: hostile bytes never crash, hang or exhaust memory -------------------------------------------


def _sample(tmp: Path) -> bytes:
    p = tmp / "fz.fimg"
    if not p.exists():
        _write(p, _media(40_000, seed=9), checkpoint_interval=3)
    return p.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_hostile_bytes(tmp_path, data):
    base = bytearray(_sample(tmp_path))
    n = data.draw(st.integers(1, 8))
    for _ in range(n):
        kind = data.draw(st.sampled_from(["flip", "u64", "truncate", "zero"]))
        pos = data.draw(st.integers(0, len(base) - 1))
        if kind == "flip":
            base[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "u64" and pos + 8 <= len(base):
            base[pos : pos + 8] = struct.pack("<Q", data.draw(st.sampled_from([0, 1, 2**31, 2**47, 2**63, 2**64 - 1])))
        elif kind == "truncate":
            del base[max(129, pos) :]
        else:
            base[pos : pos + 64] = bytes(min(64, len(base) - pos))
    p = tmp_path / "victim.fimg"
    p.write_bytes(bytes(base))
    try:
        with forensimg.open(p) as img:
            _ = img.info.to_dict()
            for _i, _d, _f in img.scan_chunks():
                pass
            img.check_structure()
            img.prove_range(0, max(1, img.size))
            try:
                img.read(1 << 20)
            except ChecksumError:
                pass
    except Error:
        pass
    try:
        w = resume_writer(p)
        w.abort()
    except Error:
        pass


@pytest.mark.parametrize("count", [0, 2, 7])
def test_footer_segment_count_damage_is_refused(tmp_path, count):
    """Found by fuzzing: a footer naming 0 segments made the reader index an empty list."""
    path = _write(tmp_path / "f.fimg", _media(30_000)).paths[0]
    raw = bytearray(path.read_bytes())
    raw[-136 + 48 : -136 + 52] = struct.pack("<I", count)
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="segment"):
        forensimg.open(path)


def test_fuzz_sample_is_valid(tmp_path):
    raw = _sample(tmp_path)
    assert raw.startswith(b"FIMG\r\n\x1a\n")
    with forensimg.open(tmp_path / "fz.fimg") as img:
        assert img.check_structure() == () and img.size == 40_000


def test_range_helpers(tmp_path):
    res = _write(tmp_path / "u.fimg", bytes(3 * CS))
    assert res.unreadable == ()
    w = create_writer(tmp_path / "v.fimg", chunk_size=CS)
    w.write(bytes(3 * CS))
    w.mark_unreadable(CS, 512)
    res = w.close()
    with forensimg.open(tmp_path / "v.fimg") as img:
        assert img.info.unreadable == (Range(CS, CS + 512),) == res.unreadable


@pytest.mark.parametrize("chunks", [1, 33, 32 * 40 + 7, 4096])
@pytest.mark.parametrize("segment_size", [None, 100_000])
def test_root_from_subtrees_of_the_pool_equals_the_full_tree(tmp_path: Path, chunks: int,
                                                            segment_size: int | None) -> None:
    """The writer hashes the Merkle subtree of each aligned run of chunks in its pool: the root and the stored
    FTOP level must equal those computed from every leaf, for any count (short last run, one chunk, a
    segment change inside a run) and written in pieces that do not follow the runs."""
    from forensimg.merkle import merkle_root

    cs = 4096
    rnd = random.Random(chunks)
    kinds = [lambda i: bytes(cs), lambda i: rnd.randbytes(cs), lambda i: (b"text %06d\n" % i) * 400]
    data = b"".join(rnd.choice(kinds)(i)[:cs] for i in range(chunks))[: chunks * cs - 100]
    w = create_writer(tmp_path / "r.fimg", chunk_size=cs, segment_size=segment_size, checkpoint_interval=40)
    for o in range(0, len(data), 10_000):
        w.write(data[o : o + 10_000])
    res = w.close()
    if chunks >= 1024:  # the stored level (5 or 6) lies above the runs' subtrees (level 5): they were used
        assert w._job_nodes  # type: ignore[attr-defined]
    digests = [hashlib.sha256(data[o : o + cs]).digest() for o in range(0, len(data), cs)]
    assert res.details["merkle_root"] == merkle_root(digests).hex()
    with forensimg.open(res.paths) as img:
        assert img.check_structure() == ()  # the stored FTOP nodes and the root agree with the digests
        assert img.read() == data


def test_default_checkpoint_interval_fits_a_small_segment(tmp_path: Path) -> None:
    """The default interval (128 MiB of media) shrinks to what a small segment can hold; a chosen one that
    does not fit is refused with the minimum size."""
    from forensimg.errors import UsageError
    from forensimg.formats.fimg.layout import DEFAULT_CHECKPOINT_BYTES, DEFAULT_CHECKPOINT_INTERVAL

    data = random.Random(9).randbytes(200 * 4096)
    w = create_writer(tmp_path / "s.fimg", chunk_size=4096, segment_size=40_000)
    assert 1 <= w.checkpoint_interval < DEFAULT_CHECKPOINT_INTERVAL  # type: ignore[attr-defined]
    w.write(data)
    res = w.close()
    assert len(res.paths) > 10 and all(p.stat().st_size <= 40_000 for p in res.paths[:-1])
    with forensimg.open(res.paths) as img:
        assert img.read() == data
    wb = create_writer(tmp_path / "b.fimg", chunk_size=4096)
    assert wb.checkpoint_interval == DEFAULT_CHECKPOINT_BYTES // 4096  # type: ignore[attr-defined]
    wd = create_writer(tmp_path / "d.fimg")  # the default chunk size: 8192 chunks of 16 KiB
    assert wd.checkpoint_interval == DEFAULT_CHECKPOINT_INTERVAL == 8192  # type: ignore[attr-defined]
    wd.close()
    wb.abort()
    with pytest.raises(UsageError, match="at least"):
        create_writer(tmp_path / "c.fimg", chunk_size=4096, segment_size=40_000, checkpoint_interval=4096)
