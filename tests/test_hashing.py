from __future__ import annotations

import hashlib
import random

import pytest

from forensimg.errors import UsageError
from forensimg.hashing import MultiHasher, hash_image, normalize_algorithms


def test_normalize():
    assert normalize_algorithms("MD5, sha-1,sha256,md5") == ("md5", "sha1", "sha256")
    with pytest.raises(UsageError, match="crc"):
        normalize_algorithms("crc32")


@pytest.mark.parametrize("threaded", [True, False])
def test_multihasher_matches_hashlib_for_mixed_update_sizes(threaded):
    rng = random.Random(7)
    blobs = [rng.randbytes(rng.choice([0, 1, 100, 70_000, 1 << 20, 3 << 20])) for _ in range(40)]
    h = MultiHasher(("md5", "sha1", "sha256"), threaded=threaded)
    for b in blobs:
        h.update(memoryview(b) if len(b) % 2 else b)
    whole = b"".join(blobs)
    assert h.hexdigests() == {
        "md5": hashlib.md5(whole).hexdigest(),
        "sha1": hashlib.sha1(whole).hexdigest(),
        "sha256": hashlib.sha256(whole).hexdigest(),
    }
    assert h.bytes_hashed == len(whole)
    assert h.hexdigests() == h.hexdigests()  # finishing twice is stable
    with pytest.raises(ValueError):
        h.update(b"more")


def test_hash_image_reports_progress(tmp_path):
    import forensimg

    data = random.Random(3).randbytes(5_000_000)
    (tmp_path / "m.raw").write_bytes(data)
    seen = []
    with forensimg.open(tmp_path / "m.raw") as img:
        out = hash_image(img, "sha1", block_size=1 << 20, on_progress=lambda d, t: seen.append((d, t)))
    assert out == {"sha1": hashlib.sha1(data).hexdigest()}
    assert seen[-1] == (len(data), len(data)) and len(seen) == 5


@pytest.mark.parametrize("threaded", [True, False])
def test_update_gathered_reuses_its_buffers_without_losing_bytes(threaded):
    """Many gathered blocks (more than the hasher keeps buffers for), of bytes, bytearrays and memoryviews,
    mixed with small and plain updates: the digests are those of the concatenation. The queue depth of 1
    makes the hasher wait for its threads before it overwrites a buffer they may still be reading."""
    import random

    rng = random.Random(2)
    ref = {a: hashlib.new(a) for a in ("md5", "sha256")}
    h = MultiHasher(("md5", "sha256"), threaded=threaded, queue_depth=1)
    for round_ in range(12):
        parts: list[bytes | bytearray | memoryview] = []
        for _ in range(rng.randrange(1, 40)):
            b = rng.randbytes(rng.randrange(1, 200_000))
            parts.append(b if round_ % 3 == 0 else bytearray(b) if round_ % 3 == 1 else memoryview(b)[1:])
        if round_ == 5:
            parts = [b"tiny", b"parts"]  # below the gathering size: plain updates
        h.update_gathered(parts)
        for p in parts:
            for r in ref.values():
                r.update(p)
        extra = rng.randbytes(rng.randrange(0, 5000))
        h.update(extra)
        for r in ref.values():
            r.update(extra)
    assert h.hexdigests() == {a: r.hexdigest() for a, r in ref.items()}
