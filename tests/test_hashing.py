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
