#!/usr/bin/env python3
"""Generate the fimg test vectors in this folder (``formats/fimg/spec.md``).

Generated with::

    .venv/bin/python formats/fimg/vectors/generate.py

The media is deterministic (:func:`media`); the image files are not byte-for-byte reproducible (each has
a random UUID and acquisition times), so the files are committed and the JSON records what any
conforming reader must find in them: size, chunk digests, Merkle root, media hashes, completeness.
``merkle.json`` holds leaf/node hash vectors and audit paths for the tree of spec §6.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHUNK = 4096


def media() -> bytes:
    """Five chunks and a bit: zeros, text, pseudo-random, a chunk with one non-zero byte, zeros, 1000 bytes."""
    text = b"".join(b"LBA %012d fimg test vector line\n" % i for i in range(200))[:CHUNK]
    rnd = b"".join(hashlib.sha256(b"fimg-vector-%d" % i).digest() for i in range(CHUNK // 32))
    one = bytearray(CHUNK)
    one[1234] = 0x5A
    tail = bytes(range(256)) * 3 + bytes(232)
    return bytes(CHUNK) + text + rnd + bytes(one) + bytes(CHUNK) + tail


def merkle_vectors() -> dict[str, object]:
    """Leaf and node hashes, roots for 0..9 leaves, and every audit path of a 7-leaf tree."""
    from forensimg.merkle import audit_path, leaf_hash, merkle_root, node_hash, tree_levels

    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(10)]
    levels7 = tree_levels(leaves[:7])
    return {
        "leaf_digests": [d.hex() for d in leaves],
        "leaf_hash_0": leaf_hash(leaves[0]).hex(),
        "node_hash_0_1": node_hash(leaf_hash(leaves[0]), leaf_hash(leaves[1])).hex(),
        "roots": {str(n): merkle_root(leaves[:n]).hex() for n in range(0, 11)},
        "audit_paths_7": {str(i): [h.hex() for h in audit_path(levels7, i)] for i in range(7)},
    }


def main() -> int:
    sys.path.insert(0, str(HERE.parents[2]))
    from forensimg.formats.fimg import create_writer
    from forensimg.image import CaseInfo
    from forensimg.merkle import merkle_root

    data = media()
    cases: dict[str, dict[str, object]] = {
        "zstd.fimg": {"compression": "zstd"},
        "zlib.fimg": {"compression": "zlib"},
        "none-seg.fimg": {"compression": "none", "segment_size": 128 + 2 * (64 + CHUNK) + 64 + 64 + 8 * 2 + 4096,
                          "checkpoint_interval": 2},
        "incomplete.fimg": {"compression": "zstd", "checkpoint_interval": 2},
    }
    digests = [hashlib.sha256(data[i : i + CHUNK]).digest() for i in range(0, len(data), CHUNK)]
    out: dict[str, object] = {}
    for f in HERE.glob("*.f[0-9i]*"):
        f.unlink()
    for name, opts in cases.items():
        path = HERE / name
        w = create_writer(path, chunk_size=CHUNK, hashes=("md5", "sha1", "sha256"), workers=1,
                          case=CaseInfo(case_number="VEC-1", examiner="vector generator"), **opts)
        if name == "incomplete.fimg":
            w.write(data[: 4 * CHUNK + 10])
            w.abort()  # chunks 0..3 committed; the 10 extra bytes are lost
            size = 4 * CHUNK
            expect = {"complete": False, "stored_hashes": {}}
        else:
            w.write(data)
            res = w.close()
            size = len(data)
            expect = {"complete": True, "stored_hashes": dict(res.hashes), "segments": [p.name for p in res.paths]}
        part = data[:size]
        n = -(-size // CHUNK)
        out[name] = {
            **expect,
            "options": opts,
            "size": size,
            "chunk_size": CHUNK,
            "media_sha256": hashlib.sha256(part).hexdigest(),
            "media_md5": hashlib.md5(part).hexdigest(),
            "chunk_digests": [d.hex() for d in digests[:n]],
            "merkle_root": merkle_root(digests[:n]).hex(),
            "case_number": "VEC-1",
        }
    (HERE / "images.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    (HERE / "merkle.json").write_text(json.dumps(merkle_vectors(), indent=2, sort_keys=True) + "\n")
    record = {
        "crc32_123456789": "cbf43926",
        "zero_chunk_record": {
            "comment": "FCHK record header for chunk 0, ZERO flag, 4096 bytes (spec §4.1, §4.2)",
            "fields": {"type": "FCHK", "flags": 2, "method": 0, "number": 0, "stored_length": 0,
                       "decoded_length": 4096, "digest": hashlib.sha256(bytes(4096)).hexdigest()},
        },
    }
    from forensimg.formats.fimg.layout import FLAG_ZERO, T_CHUNK, pack_record

    rec = pack_record(T_CHUNK, 0, 0, hashlib.sha256(bytes(4096)).digest(), flags=FLAG_ZERO, decoded_length=4096)
    record["zero_chunk_record"]["hex"] = rec.hex()  # type: ignore[index]
    (HERE / "records.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
