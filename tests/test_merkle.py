"""forensimg.merkle: the RFC 6962 tree, audit paths, and the root of any image's media."""

from __future__ import annotations

import hashlib
import os

import pytest

import forensimg
from forensimg.merkle import (
    EMPTY_ROOT,
    MerkleBuilder,
    audit_path,
    image_root,
    leaf_hash,
    merkle_root,
    node_hash,
    tree_levels,
    verify_path,
)


def _mth(d: list[bytes]) -> bytes:
    """RFC 6962 §2.1, literally (recursive split at the largest power of two below n)."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < len(d):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), literally."""
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


LEAVES = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(40)]


def test_domain_separation():
    d = LEAVES[0]
    assert leaf_hash(d) == hashlib.sha256(b"\x00" + d).digest()
    assert node_hash(d, d) == hashlib.sha256(b"\x01" + d + d).digest()
    assert leaf_hash(d) != node_hash(d[:16], d[16:])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 40])
def test_root_matches_rfc6962_definition(n):
    d = LEAVES[:n]
    assert merkle_root(d) == _mth(d) == tree_levels(d)[-1][0] if n else merkle_root(d) == EMPTY_ROOT == _mth(d)
    b = MerkleBuilder()
    b.extend(d)
    assert b.root() == _mth(d) and b.count == n


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 8, 11, 13, 21, 40])
def test_audit_paths(n):
    d = LEAVES[:n]
    levels = tree_levels(d)
    root = _mth(d)
    for i in range(n):
        p = audit_path(levels, i)
        assert p == _path(i, d)
        assert verify_path(d[i], i, n, p, root)
        assert not verify_path(LEAVES[39] if i != 39 else LEAVES[0], i, n, p, root)  # other data
        if n > 1:
            assert not verify_path(d[i], (i + 1) % n, n, p, root)  # other position
            assert not verify_path(d[i], i, n, p[:-1], root)  # short path
            assert not verify_path(d[i], i, n, [*p, root], root)  # long path
    assert not verify_path(d[0], n, n, [], root)
    with pytest.raises(IndexError):
        audit_path(levels, n)


def test_image_root_same_for_raw_and_e01_and_fimg(tmp_path):
    data = os.urandom(200_000) + bytes(100_000) + b"x" * 33_333
    (tmp_path / "m.raw").write_bytes(data)
    with forensimg.create(tmp_path / "m.fimg", chunk_size=16384) as w:
        w.write(data)
    stored = w.close().details["merkle_root"]
    expect = merkle_root(hashlib.sha256(data[i : i + 16384]).digest() for i in range(0, len(data), 16384))
    paths = [tmp_path / "m.raw", tmp_path / "m.fimg"]
    try:
        from forensimg.formats.ewf.writer import EWFWriter

        with EWFWriter(tmp_path / "m.E01", compression="fast") as ew:  # type: ignore[arg-type]
            ew.write(data + bytes(-len(data) % 512))
        paths.append(tmp_path / "m.E01")
        padded = data + bytes(-len(data) % 512)
    except ImportError:  # the E01 writer is another issue's work
        padded = data
    for p in paths:
        with forensimg.open(p) as img:
            want = expect if img.size == len(data) else merkle_root(
                hashlib.sha256(padded[i : i + 16384]).digest() for i in range(0, len(padded), 16384))
            assert image_root(img, 16384, workers=2) == want.hex()
            assert image_root(img, 16384, workers=1) == want.hex()
    assert stored == expect.hex()
    with forensimg.open(tmp_path / "m.raw") as img, pytest.raises(ValueError):
        image_root(img, 1000)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 31, 40])
def test_stored_level_nodes_lead_to_the_root(n):
    from forensimg.merkle import level_nodes, root_from_nodes, top_level, tree_levels_from_nodes

    d = LEAVES[:n]
    for lvl in range(0, 7):
        nodes = level_nodes(d, lvl)
        assert len(nodes) == (-(-n >> lvl) if n else 0)
        assert root_from_nodes(nodes) == _mth(d)
        if n:  # a leaf's path = its path inside its block + its block's path in the tree above the nodes
            top = tree_levels_from_nodes(nodes)
            for i in range(n):
                j = i >> lvl
                block = tree_levels(d[j << lvl : min((j + 1) << lvl, n)])
                path = audit_path(block, i - (j << lvl)) + audit_path(top, j)
                assert path == _path(i, d) and verify_path(d[i], i, n, path, _mth(d))
    assert top_level(n) == max(1, n).bit_length() // 2
