"""Mirrored targets: group same-format same-options targets into one writer, report every copy on its own.

Targets that share a format (E01, fimg, raw or split raw) and every writer option are written by ONE
writer with ``mirror_paths`` (see :mod:`forensimg.outputs`): each chunk is compressed and digested once
(raw: each member's SHA-256 computed once) and the same bytes go to every copy, so a second copy costs a
second write, not a second encoding. The engine sees
one writer; :func:`expand_copies` turns its outcome back into one
:class:`~forensimg.acquire.engine.TargetOutcome` per copy (its own segment files, hashes, failure offset),
in the order the targets were given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forensimg.acquire.engine import AcquisitionResult, TargetOutcome

__all__ = ["MIRRORABLE_FORMATS", "expand_copies", "group_targets"]

MIRRORABLE_FORMATS = frozenset({"ewf", "fimg", "raw", "split"})
"""Formats whose writers take ``mirror_paths`` (encode once, write every copy)."""


def group_targets(targets: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[tuple[str, str, dict[str, Any],
                                                                                      list[str]]]:
    """Group ``(path, format, writer options)`` targets: same mirrorable format and equal options share a writer.

    Formats are compared by the writer they make, with the format's default options filled in: ``raw``
    and ``split`` targets with the same segment size share one raw writer (``disk.001`` with
    ``--segment-size`` and a mirror ``copy.raw``), a ``split`` target without one (2 GiB members by
    default) does not share a writer with a one-file ``raw`` copy.

    Returns ``(first path, format, options, further copy paths)`` per writer, in the order of each group's
    first target.
    """
    groups: list[tuple[str, str, dict[str, Any], list[str]]] = []
    keys: list[tuple[str, dict[str, Any]]] = []
    for path, fmt, opts in targets:
        key = _writer_key(fmt, opts)
        for g, k in zip(groups, keys, strict=True):
            if fmt in MIRRORABLE_FORMATS and g[1] in MIRRORABLE_FORMATS and k == key:
                g[3].append(path)
                break
        else:
            groups.append((path, fmt, dict(opts), []))
            keys.append(key)
    return groups


def _writer_key(fmt: str, opts: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The writer a target gets: its format's module and its options over the format's write defaults."""
    from forensimg.registry import _by_name

    spec = _by_name(fmt)
    return spec.module, {**dict(spec.write_defaults), **opts}


def expand_copies(result: AcquisitionResult, order: Sequence[str | os.PathLike[str]] = ()) -> None:
    """Replace the outcome of each mirroring writer with one outcome per copy (in place).

    A copy that was dropped while the writer went on is ``failed`` with its own error, errno, media offset
    (``failed_at`` and ``written``: the media its files took whole, to the byte for raw) and block
    (``block_at``: the writer's position when it failed); the copies of a finished writer are
    ``finished`` with their own segment paths. ``order``: the target paths as given, to sort the outcomes
    back into.
    """
    out: list[TargetOutcome] = []
    for t in result.targets:
        copies = getattr(t.writer, "copies", None)
        if not copies or len(copies) < 2:
            out.append(t)
            continue
        for c in copies:
            out.append(_copy_outcome(t, c))
    if order:
        rank = {os.path.abspath(p): i for i, p in enumerate(order)}
        out.sort(key=lambda o: rank.get(os.path.abspath(o.path), len(rank)))
    result.targets = out


def _copy_outcome(t: TargetOutcome, c: Mapping[str, Any]) -> TargetOutcome:
    o = TargetOutcome(t.writer, Path(c["path"]), state=t.state, stored_hashes=t.stored_hashes)
    if c["complete"]:
        if t.result is not None:
            o.result = dataclasses.replace(t.result, paths=tuple(Path(p) for p in c["paths"]))
        else:  # the writer failed, was aborted or is open: every copy shares its fate
            o.error, o.errno, o.failed_at, o.block_at = t.error, t.errno, t.failed_at, t.block_at
            o.written = t.written
        return o
    o.state = "failed"
    o.error = c["error"]
    o.errno = c["errno"]
    o.failed_at = min(int(c["media_stored"]), t.writer.position)
    o.written = o.failed_at  # what this copy holds, not the shared writer's position
    o.block_at = c["position_at_failure"]
    return o
