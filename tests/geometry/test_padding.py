"""Padding only where a format needs whole sectors (issue 8, point 10), from one read of the source.

A source that ends inside a sector is mirrored to E01 + raw + fimg: the raw and fimg copies hold the
exact bytes and the exact hashes; only the E01 copy is zero-padded, stores the hashes of its padded
media (libewf's ewfverify agrees), and the report and ``--json`` say so per copy.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from forensimg.hashing import MultiHasher, hash_image
from tests.helpers import have, run


@pytest.mark.parametrize("threaded", [True, False])
def test_multihasher_digests_with_suffix(threaded):
    rnd = random.Random(3)
    parts = [rnd.randbytes(n) for n in (10, 3 << 20, 777, 5000)]  # small (gathered) and large updates
    data = b"".join(parts)
    suffix = bytes(445)
    h = MultiHasher(("md5", "sha1", "sha256"), threaded=threaded)
    for p in parts:
        h.update(memoryview(p))
    with_suffix = h.hexdigests_with_suffix(suffix)
    assert list(with_suffix) == ["md5", "sha1", "sha256"]
    for alg in ("md5", "sha1", "sha256"):
        assert with_suffix[alg] == hashlib.new(alg, data + suffix).hexdigest()
    # the plain digests stay available, unchanged by the suffix; a second suffix is independent
    assert h.hexdigests() == {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")}
    assert h.digests_with_suffix(b"x")["sha1"] == hashlib.sha1(data + b"x").digest()
    assert h.hexdigests_with_suffix(suffix) == with_suffix
    with pytest.raises(ValueError):
        h.update(b"more")  # finished


def test_mirror_pads_only_the_e01_copy(tmp_path, capsys):
    size = 1_000_003
    data = random.Random(10).randbytes(size)
    src = tmp_path / "odd.bin"
    src.write_bytes(data)
    e01, raw, fimg = tmp_path / "ev.E01", tmp_path / "ev.raw", tmp_path / "ev.fimg"
    rc = main(["--no-custody", "acquire", str(src), str(e01), "--mirror", str(raw), "--mirror", str(fimg),
               "--hash", "md5,sha1,sha256", "--json", "-q", "--verify"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0, d
    exact = {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")}
    padded_media = data + bytes(445)
    padded = {a: hashlib.new(a, padded_media).hexdigest() for a in ("md5", "sha1", "sha256")}
    # the acquisition: the exact media, read and hashed once
    assert d["size"] == size and d["hashes"] == exact
    te, tr, tf = d["targets"]
    assert (te["padded"], te["padded_bytes"], te["stored_size"], te["hashes"]) == (True, 445, 1_000_448, padded)
    for t in (tr, tf):
        assert (t["padded"], t["padded_bytes"], t["stored_size"], t["hashes"]) == (False, 0, size, exact)
    assert all(v["ok"] for v in d["verification"]) and len(d["verification"]) == 3
    # what each copy holds and stores
    assert raw.stat().st_size == size and raw.read_bytes() == data
    for p, media, hashes in ((raw, data, exact), (fimg, data, exact), (e01, padded_media, padded)):
        with forensimg.open(p) as img:
            assert img.size == len(media)
            assert hash_image(img, ("md5", "sha256")) == {a: hashes[a] for a in ("md5", "sha256")}
            stored = dict(img.info.stored_hashes)
            assert stored and all(stored[a] == hashes[a] for a in stored if a in hashes)
    if have("ewfverify"):
        out = run("ewfverify", "-q", e01).stdout
        assert "SUCCESS" in out and padded["md5"] in out
    # the report says which copy was padded, by how much, and which hashes it stores
    report = Path(str(e01) + ".txt").read_text()
    assert "1 copy(ies) padded to a whole sector" in report
    block = report[report.index(f"{e01} (ewf)"):]
    assert "stores 1000448 bytes: PADDED with 445 zero bytes" in block.splitlines()[1]
    assert padded["sha256"] in block and exact["sha256"] in report
    for p in (raw, fimg):
        line = report[report.index(f"{p} ("):].splitlines()[1]
        assert f"stores {size} bytes: the exact media, not padded" in line
    rj = json.loads(Path(str(raw) + ".json").read_text())
    assert [t["padded_bytes"] for t in rj["result"]["targets"]] == [445, 0, 0]


@pytest.mark.parametrize("threaded", [True, False])
def test_multihasher_update_blocks_shares_blocks_in_order(threaded):
    rnd = random.Random(4)
    blocks = [rnd.randbytes(n) for n in (32768, 5, 1 << 20, 32768)]
    h = MultiHasher(("md5", "sha256"), threaded=threaded)
    h.update(b"head")  # a small pending update goes out first
    h.update_blocks(blocks)
    h.update_blocks([])
    data = b"head" + b"".join(blocks)
    assert h.bytes_hashed == len(data)
    assert h.hexdigests() == {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha256")}
    if threaded:
        with MultiHasher(("md5",)) as m, pytest.raises(TypeError):
            m.update_blocks([bytearray(4)])  # type: ignore[list-item]
