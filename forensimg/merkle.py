"""Merkle trees over chunk digests (RFC 6962 / RFC 9162 construction), format-agnostic.

The media is cut into chunks of a fixed size (the last one may be shorter); each chunk's SHA-256 is a
*leaf digest*. The tree hashes them with domain separation, so that a leaf can never be passed off as
an inner node (RFC 6962 §2.1)::

    leaf_hash(d)      = SHA-256(0x00 || d)               d: the 32-byte SHA-256 of the chunk data
    node_hash(l, r)   = SHA-256(0x01 || l || r)
    MTH([])           = SHA-256("")                      the empty tree
    MTH([d0])         = leaf_hash(d0)
    MTH(D[0:n])       = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k: the largest power of two < n

Built level by level this is the same as hashing pairs and carrying an odd last node up unchanged.
Because the leaves cover *decoded* chunk data, the root depends only on the media bytes and the chunk
size: the same media held raw, in E01 or in fimg gives the same root (``forensimg hash --merkle``).
See ``formats/fimg/spec.md`` §6.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forensimg.image import Image

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EMPTY_ROOT",
    "MerkleBuilder",
    "audit_path",
    "image_root",
    "leaf_hash",
    "level_nodes",
    "level_up",
    "media_digests",
    "merkle_root",
    "node_hash",
    "root_from_nodes",
    "top_level",
    "tree_levels",
    "tree_levels_from_nodes",
    "verify_path",
]

DEFAULT_CHUNK_SIZE = 16384
"""The chunk size used for a Merkle root when none is given (fimg's default chunk size)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of a tree with no leaves (media of size 0)."""

_sha256 = hashlib.sha256


def leaf_hash(digest: bytes) -> bytes:
    """Hash of a leaf: ``SHA-256(0x00 || digest)``."""
    return _sha256(b"\x00" + digest).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an inner node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


class MerkleBuilder:
    """Incremental root computation in O(log n) memory: add leaf digests in order, then ask for the root.

    The stack holds the roots of the perfect subtrees built so far (strictly decreasing heights).
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self.count = 0

    def add(self, digest: bytes) -> None:
        """Append the next leaf (the 32-byte SHA-256 of a chunk)."""
        node = (0, leaf_hash(digest))
        stack = self._stack
        while stack and stack[-1][0] == node[0]:
            h, left = stack.pop()
            node = (h + 1, node_hash(left, node[1]))
        stack.append(node)
        self.count += 1

    def extend(self, digests: Iterable[bytes]) -> None:
        """Append several leaves."""
        for d in digests:
            self.add(d)

    def root(self) -> bytes:
        """The root of the leaves added so far (:data:`EMPTY_ROOT` for none)."""
        if not self._stack:
            return EMPTY_ROOT
        # RFC 6962 splits at the largest power of two: the perfect subtrees fold from the right.
        acc = self._stack[-1][1]
        for _, h in reversed(self._stack[:-1]):
            acc = node_hash(h, acc)
        return acc


def merkle_root(digests: Iterable[bytes]) -> bytes:
    """Root of the tree whose leaves are ``digests`` (32-byte chunk SHA-256s), in order."""
    sha = _sha256
    level = [sha(b"\x00" + d).digest() for d in digests]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # an odd last node is carried up unchanged
        level = nxt
    return level[0]


def tree_levels(digests: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves (already leaf-hashed) first, root last.

    An odd last node of a level is carried up unchanged (equivalent to the RFC 6962 split).
    """
    sha = _sha256
    level = [sha(b"\x00" + d).digest() for d in digests]
    levels = [level]
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def top_level(count: int) -> int:
    """The level whose nodes fimg stores in its ``FTOP`` record: about the square root of the leaf count.

    Level ``L`` holds one node per ``2**L`` leaves (the last one may cover fewer), so a proof needs the
    leaves of one block and the stored nodes, not every leaf (spec §5.5).
    """
    return max(0, (max(1, count).bit_length()) // 2)


def level_nodes(digests: Sequence[bytes], level: int) -> list[bytes]:
    """The nodes of ``level`` (0: leaf hashes) of the tree over ``digests``."""
    sha = _sha256
    return level_up([sha(b"\x00" + d).digest() for d in digests], level)


def level_up(nodes: Sequence[bytes], levels: int) -> list[bytes]:
    """The nodes ``levels`` levels above the given level's ``nodes`` (an odd last node is carried up)."""
    sha = _sha256
    out = list(nodes)
    for _ in range(levels):
        if len(out) <= 1:
            break
        nxt = [sha(b"\x01" + out[i] + out[i + 1]).digest() for i in range(0, len(out) - 1, 2)]
        if len(out) % 2:
            nxt.append(out[-1])
        out = nxt
    return out


def root_from_nodes(nodes: Sequence[bytes]) -> bytes:
    """The root of a tree given the nodes of one of its levels (:data:`EMPTY_ROOT` for none)."""
    if not nodes:
        return EMPTY_ROOT
    return _levels_from(list(nodes))[-1][0]


def tree_levels_from_nodes(nodes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree above (and including) the given level's nodes, root last."""
    return _levels_from(list(nodes))


def _levels_from(level: list[bytes]) -> list[list[bytes]]:
    sha = _sha256
    levels = [level]
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def audit_path(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """The audit path (RFC 6962 §2.1.1) of leaf ``index``, bottom-up, from :func:`tree_levels`.

    Raises:
        IndexError: ``index`` is not a leaf of the tree.
    """
    if not levels or not 0 <= index < len(levels[0]):
        raise IndexError(f"leaf {index} is not in the tree")
    path: list[bytes] = []
    i = index
    for level in levels[:-1]:
        sib = i ^ 1
        if sib < len(level):
            path.append(level[sib])
        i >>= 1
    return path


def verify_path(digest: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """Check an audit path (RFC 9162 §2.1.3.2): does chunk digest ``digest`` sit at ``index`` under ``root``?

    Args:
        digest: the 32-byte SHA-256 of the chunk data.
        index: the leaf index (chunk number).
        size: number of leaves in the tree.
        path: the audit path, bottom-up.
        root: the expected root.
    """
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(digest)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def media_digests(
    image: Image, chunk_size: int = DEFAULT_CHUNK_SIZE, *, workers: int = 2
) -> Iterator[bytes]:
    """SHA-256 of each ``chunk_size`` piece of the media of ``image``, in order (fails closed on bad chunks).

    Pieces are read and hashed in a thread pool (hashlib releases the GIL) and yielded in order.
    """
    if chunk_size <= 0:
        raise ValueError("chunk size must be positive")
    size = image.size
    count = -(-size // chunk_size)
    batch = max(1, (4 << 20) // chunk_size)

    def work(first: int) -> list[bytes]:
        start = first * chunk_size
        data = image.read_at(start, min(batch * chunk_size, size - start))
        mv = memoryview(data)
        return [_sha256(mv[o : o + chunk_size]).digest() for o in range(0, len(mv), chunk_size)]

    if workers <= 1:
        for first in range(0, count, batch):
            yield from work(first)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forensimg-merkle") as pool:
        pending = []
        firsts = iter(range(0, count, batch))
        for first in firsts:
            pending.append(pool.submit(work, first))
            if len(pending) >= workers * 2:
                yield from pending.pop(0).result()
        for fut in pending:
            yield from fut.result()


def image_root(image: Image, chunk_size: int = DEFAULT_CHUNK_SIZE, workers: int = 2) -> str:
    """Merkle root (hex) of the media of ANY image, cut into ``chunk_size`` pieces.

    For a fimg with the same chunk size this equals its stored root; for the same media held raw or in
    E01 it is the same value.

    Raises:
        ChecksumError: a chunk of the image fails its own check.
    """
    if chunk_size <= 0 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk size must be a power of two, not {chunk_size}")
    return merkle_root(media_digests(image, chunk_size, workers=workers)).hex()
