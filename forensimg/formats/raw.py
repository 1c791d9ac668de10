"""Raw (``dd``) images and split raw sets: reader, writer and the naming rules.

Split naming (see ``formats/raw/naming.md``): members share a stem and differ in a suffix that is either
three or more digits (``.000``/``.001``…, also ``disk.raw.000``) or two lower-case letters
(``.aa``/``.ab``…, as ``split`` makes them). A numbered set starts at ``000`` or ``001``; a lettered set
starts at ``aa``. Any member may be given. Raw images carry no hashes of their own; the writer stores
them in ``md5sum``-style sidecar files (``disk.raw.md5`` …) that the reader reports as stored hashes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from forensimg.errors import FormatError, MissingSegmentError, UsageError, WriteError
from forensimg.image import Image, ImageInfo, Range
from forensimg.outputs import Copy, OutputSet, copy_bases
from forensimg.records import atomic_write, fsync_dir
from forensimg.streams import SegmentSet, check_input_file
from forensimg.writer import ImageWriter, WriteResult

__all__ = [
    "RAW_CHUNK_SIZE",
    "RawImage",
    "RawWriter",
    "create_writer",
    "find_split_members",
    "open_image",
    "split_name",
]

RAW_CHUNK_SIZE = 1 << 18
"""Raw media has no chunks of its own; reads go through a 256 KiB grid (the cache unit)."""

_NUMERIC = re.compile(r"^(?P<stem>.+)\.(?P<num>\d{3,})$")
_LETTERS = re.compile(r"^(?P<stem>.+)\.(?P<let>[a-z]{2})$")

HASH_SIDECARS = ("md5", "sha1", "sha256", "sha512")


def _letters_value(s: str) -> int:
    return (ord(s[0]) - 97) * 26 + (ord(s[1]) - 97)


def _letters_name(v: int) -> str:
    return chr(97 + v // 26) + chr(97 + v % 26)


def find_split_members(path: str | os.PathLike[str]) -> list[Path] | None:
    """The members of the split set that ``path`` belongs to, in order; ``None`` if it is not split.

    Raises:
        MissingSegmentError: the set has a gap, or starts late; the message names the missing file.
    """
    p = Path(path)
    name = p.name
    m = _NUMERIC.match(name)
    if m:
        stem, num = m.group("stem"), m.group("num")
        width = len(num)
        found: dict[int, Path] = {}
        for sib in p.parent.glob(glob_escape(stem) + "." + "[0-9]" * width):
            found[int(sib.name[len(stem) + 1 :])] = sib
        found[int(num)] = p
        start = 0 if 0 in found else 1
        last = max(found)
        if len(found) == 1 and int(num) <= 1:
            return None  # a lone 'disk.001': an ordinary raw file
        for k in range(start, last + 1):
            if k not in found:
                missing = p.parent / f"{stem}.{k:0{width}d}"
                raise MissingSegmentError(
                    f"split raw set '{stem}.{'#' * width}' is missing member '{missing}'", path=missing
                )
        return [found[k] for k in range(start, last + 1)]
    m = _LETTERS.match(name)
    if m:
        stem = m.group("stem")
        lfound: dict[int, Path] = {}
        for sib in p.parent.glob(glob_escape(stem) + ".[a-z][a-z]"):
            lfound[_letters_value(sib.name[-2:])] = sib
        if 0 not in lfound or len(lfound) < 2:
            return None  # e.g. 'disk.dd' alone: an ordinary raw file
        last = max(lfound)
        for k in range(0, last + 1):
            if k not in lfound:
                missing = p.parent / f"{stem}.{_letters_name(k)}"
                raise MissingSegmentError(
                    f"split raw set '{stem}.??' is missing member '{missing}'", path=missing
                )
        return [lfound[k] for k in range(0, last + 1)]
    return None


def glob_escape(s: str) -> str:
    """Escape glob metacharacters in a literal file-name part."""
    return re.sub(r"([*?\[])", r"[\1]", s)


def split_name(first: Path, index: int) -> Path:
    """Name of member ``index`` (0-based) of a split set whose first member is ``first``.

    ``disk.001`` → ``disk.002``…; ``disk.000`` → ``disk.001``…; ``disk.aa`` → ``disk.ab``…;
    any other name gets ``.001``, ``.002``… appended.

    Raises:
        WriteError: the naming scheme has no name left for ``index``.
    """
    m = _NUMERIC.match(first.name)
    if m:
        width = len(m.group("num"))
        v = int(m.group("num")) + index
        if len(str(v)) > width:
            raise WriteError(f"split raw naming '{first.name}' has no member number {v}", path=first)
        return first.with_name(f"{m.group('stem')}.{v:0{width}d}")
    m = _LETTERS.match(first.name)
    if m:
        v = _letters_value(m.group("let")) + index
        if v >= 26 * 26:
            raise WriteError(f"split raw naming '{first.name}' has no member after '.zz'", path=first)
        return first.with_name(f"{m.group('stem')}.{_letters_name(v)}")
    if index + 1 > 999:
        raise WriteError(f"split raw naming '{first.name}.###' has no member number {index + 1}", path=first)
    return first.with_name(f"{first.name}.{index + 1:03d}")


def read_sidecar_hashes(first: Path) -> dict[str, str]:
    """Hashes from ``md5sum``-style sidecar files next to the first member (``disk.raw.md5`` …)."""
    out: dict[str, str] = {}
    lengths = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
    for alg in HASH_SIDECARS:
        side = first.with_name(first.name + "." + alg)
        try:
            text = side.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            token = line.strip().split(" ")[0].lower()
            if len(token) == lengths[alg] and all(c in "0123456789abcdef" for c in token):
                out[alg] = token
                break
    return out


class RawImage(Image):
    """A raw image: one file, or the concatenation of a split set's members."""

    format: ClassVar[str] = "raw"

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, zero_fill: bool = False) -> None:
        self._segs = SegmentSet(paths)
        try:
            if self._segs.total_size == 0:
                raise FormatError(f"'{self._segs.paths[0]}' is empty: no media to read", path=self._segs.paths[0])
            fmt = "split" if len(self._segs) > 1 else "raw"
            info = ImageInfo(
                format=fmt,
                format_version=None,
                size=self._segs.total_size,
                sector_size=512,
                chunk_size=RAW_CHUNK_SIZE,
                segments=self._segs.paths,
                stored_hashes=read_sidecar_hashes(self._segs.paths[0]),
                details={"segment_sizes": list(self._segs.sizes)},
            )
        except BaseException:
            self._segs.close()
            raise
        self.format = fmt  # type: ignore[misc]
        super().__init__(info, zero_fill=zero_fill, cache_chunks=16)

    def _read_chunk(self, index: int) -> bytes:
        r = self.chunk_range(index)
        return self._segs.read_concat(r.start, r.length)

    def _close_files(self) -> None:
        self._segs.close()


def open_image(paths: Sequence[Path], *, zero_fill: bool = False, **_: Any) -> Image:
    """Open a raw image or split set (registry entry point).

    A single path that is a member of a split set opens the whole set.
    """
    if len(paths) == 1:
        check_input_file(paths[0])
        members = find_split_members(paths[0])
        if members:
            paths = members
    return RawImage(paths, zero_fill=zero_fill)


class RawWriter(ImageWriter):
    """Writes raw media to one file, or to a split set when ``segment_size`` is given.

    Files are written under a ``.partial`` name and renamed when the image is closed, so an aborted or
    crashed write is visibly incomplete. Hashes go to ``md5sum``-style sidecars (``NAME.md5`` …).

    Args:
        path: output path (first member of a split set: ``disk.001``, ``disk.000``, ``disk.aa``, or any
            name, which then gets ``.001`` … appended).
        segment_size: maximum bytes per member; ``None`` for one file.
        mirror_paths: paths of further identical copies (see :mod:`forensimg.outputs`), each with its own
            ``.partial`` files, member names derived from its own path, and sidecars. The same bytes go to
            every copy; a copy that fails (disk full, I/O error) is dropped with its file and offset and the
            others go on; the writer raises only when every copy failed. Per-copy results are in
            ``WriteResult.details["copies"]`` (a dropped copy's ``media_stored`` is, to the byte, the media
            its files hold).
        direct: write the files with ``O_DIRECT`` where the file system supports it (default), bypassing
            the page cache (see :class:`~forensimg.outputs.OutputSet`): the bytes are gathered in aligned
            buffers and each copy's blocks are written by its own helper thread while the caller goes on;
            a failed write is reported no later than the next :meth:`write` or :meth:`close`, with the exact
            media the copy's files hold. ``False``: ordinary writes through the page cache.
        **kwargs: see :class:`~forensimg.writer.ImageWriter`.
    """

    format: ClassVar[str] = "raw"

    def __init__(self, path: str | os.PathLike[str], *, segment_size: int | None = None,
                 mirror_paths: Sequence[str | os.PathLike[str]] = (), direct: bool = True, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        if segment_size is not None and segment_size < self.sector_size:
            raise UsageError(f"segment size {segment_size} is smaller than a sector ({self.sector_size})")
        self.segment_size = segment_size
        if segment_size is not None:
            self.format = "split"  # type: ignore[misc]
        # every copy gets the same bytes; the SHA-256 of each member file is computed once, from the
        # exact bytes written (on a helper thread), so the acquisition report need not read the files back:
        # ``WriteResult.details["segment_sha256"]`` (for every live copy)
        self._out = OutputSet(copy_bases(self.path, mirror_paths), self._partial_name, self._check_partial,
                              lambda: self._pos, hash_segments=True, media_bytes=True, direct=direct)
        self._segments = 0
        self._seg_written = 0
        self._out.check_new(1)  # refuse before creating any copy
        self._open_next()

    def _final_name(self, base: Path, number: int) -> Path:
        return base if self.segment_size is None else split_name(base, number - 1)

    def _partial_name(self, base: Path, number: int) -> Path:
        final = self._final_name(base, number)
        return final.with_name(final.name + ".partial")

    def _check_partial(self, partial: Path) -> None:
        self._check_target(partial.with_name(partial.name.removesuffix(".partial")))

    def _open_next(self) -> None:
        if self._out.is_open:
            self._out.fsync()
            self._out.close_segment()
        self._out.open_segment(self._segments + 1)
        self._segments += 1
        self._seg_written = 0

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.segment_size is not None and self._seg_written >= self.segment_size:
                self._open_next()
            room = len(view) if self.segment_size is None else self.segment_size - self._seg_written
            piece = view[:room]
            # the block as it is (no copy) in the common case; a view of it at a member boundary
            self._out.writev([data if len(piece) == len(data) else piece], len(piece))
            self._seg_written += len(piece)
            view = view[len(piece):]

    @property
    def media_stored(self) -> int:
        """Media bytes the OS accepted in the first copy (a short write before ENOSPC counts to the byte;
        in direct mode, bytes still buffered count once written: exact after :meth:`close` or :meth:`abort`)."""
        return self._out.copies[0].media

    @property
    def copies(self) -> list[dict[str, Any]]:
        """Every copy (the first is ``path``): paths, whether it is still complete, failure offset and error."""
        return self._out.details()

    def _finalize(self, hashes: Mapping[str, str], unreadable: tuple[Range, ...]) -> WriteResult:
        self._out.fsync()
        self._out.close_segment()
        partial_sha = {str(p): h for p, h in self._out.segment_sha256.items()}
        segment_sha256: dict[str, str] = {}

        def finish(c: Copy) -> None:
            # this copy's sidecars (naming its final first member), then its members renamed from
            # ``.partial``: a copy that fails here is dropped and keeps a ``.partial`` name
            first = c.paths[0].with_name(c.paths[0].name.removesuffix(".partial"))
            for alg, hexd in hashes.items():
                atomic_write(first.with_name(first.name + "." + alg), f"{hexd}  {first.name}\n".encode())
            shas: dict[str, str] = {}
            for i, p in enumerate(list(c.paths)):
                f = p.with_name(p.name.removesuffix(".partial"))
                try:
                    os.replace(p, f)
                except OSError as exc:
                    raise WriteError(f"cannot rename '{p}' to '{f.name}': {exc.strerror}", path=p,
                                     errno_=exc.errno) from None
                c.paths[i] = f
                if str(p) in partial_sha:
                    shas[str(f)] = partial_sha[str(p)]
            fsync_dir(first.parent)
            segment_sha256.update(shas)

        self._out.each_live(finish)
        return WriteResult(
            format=self.format,
            paths=tuple(self._out.primary.paths),
            size=self.position,
            hashes=dict(hashes),
            unreadable=unreadable,
            details={"copies": self._out.details(), "segment_sha256": segment_sha256},
        )

    def _abort(self) -> None:
        try:
            if self._out.is_open:
                self._out.fsync()
        except WriteError:
            pass
        finally:
            self._out.close_segment()


def create_writer(path: Path, **options: Any) -> ImageWriter:
    """Registry entry point for raw and split raw output."""
    return RawWriter(path, **options)

