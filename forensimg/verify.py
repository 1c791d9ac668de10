"""Verification of an image: every chunk's own check, the whole-media hashes and every reference.

:func:`verify` opens the image (or takes an open one), reads every chunk in parallel (decoded and checked
on worker threads, hashed in order by :class:`~forensimg.hashing.MultiHasher`), runs the format's
structure checks, and compares the media hashes with every reference it can find:

* ``stored``: the hashes the image records (E01 hash/digest sections, fimg footer, raw sidecar files);
* ``report``: the acquisition report beside the image (``IMAGE.json``);
* ``custody``: the latest ``acquire`` or ``convert`` event in the custody log that records hashes;
* ``expect``: values given by the caller (``--expect``);
* ``hash_file``: ``md5sum``-style files and dc3dd/FTK logs (:mod:`forensimg.hashfiles`);
* ``manifest``: the media hashes of a signed manifest whose signature checked out (:mod:`forensimg.signing`).

It never raises for the content of the image: every fault is in the :class:`VerifyReport`, whose
:attr:`~VerifyReport.status` and :attr:`~VerifyReport.exit_code` say what a script should do.
Chunk checks alone prove nothing about the media (a raw image has none, and an altered E01 can be
re-checksummed): an image with no reference hash is ``no_reference`` (exit 4), never ``verified``.
The JSON form is documented in ``docs/verify-json.md`` and ``forensimg/schemas/verify.schema.json``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensimg._version import __version__
from forensimg.custody import CustodyLog
from forensimg.errors import Error, FormatError, MissingSegmentError, UsageError
from forensimg.hashfiles import algorithm_for_hex, parse_hash_file, select_media_hashes
from forensimg.hashing import DEFAULT_HASHES, MultiHasher, normalize_algorithms
from forensimg.image import Fault, FaultKind, Image, ImageInfo, Range

__all__ = [
    "EXIT_ORDER",
    "STATUSES",
    "HashCheck",
    "HashReference",
    "VerifyReport",
    "parse_expect",
    "parse_range",
    "schema",
    "verify",
    "worst_exit_code",
]

SCHEMA_ID = "forensimg-verify/1"
"""Value of the ``schema`` field of :meth:`VerifyReport.to_dict`."""

STATUSES = ("verified", "mismatch", "faults", "no_reference", "unreadable")
"""Every value :attr:`VerifyReport.status` takes."""

_EXIT = {"verified": 0, "mismatch": 1, "faults": 1, "unreadable": 3, "no_reference": 4}

EXIT_ORDER = (1, 3, 4, 0)
"""Severity of exit codes, worst first, for several images: a proven integrity failure (1) outranks an
image that could not be read (3), which outranks having nothing to compare with (4)."""

_NOT_CORRUPTION = (FaultKind.HASH_MISMATCH, FaultKind.UNREADABLE_SOURCE)

ProgressCallback = Callable[[int, int], None]

_LABELS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}
_SOURCE_WORDS = {
    "stored": "the hashes stored in the image",
    "report": "the acquisition report",
    "custody": "the custody record",
    "expect": "--expect",
    "hash_file": "the hash file",
    "manifest": "the signed manifest",
}


def schema() -> dict[str, Any]:
    """The JSON Schema of :meth:`VerifyReport.to_dict` output (``forensimg/schemas/verify.schema.json``)."""
    from importlib.resources import files

    text = files("forensimg").joinpath("schemas/verify.schema.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def worst_exit_code(codes: Iterable[int]) -> int:
    """The exit code for several images: the worst by :data:`EXIT_ORDER` (0 for none)."""
    codes = list(codes)
    for code in EXIT_ORDER:
        if code in codes:
            return code
    return max(codes) if codes else 0


@dataclass(frozen=True, slots=True)
class HashReference:
    """One reference value a computed hash is compared with.

    Attributes:
        source: ``stored``, ``report``, ``custody``, ``expect``, ``hash_file`` or ``manifest``.
        value: lower-case hex digest.
        origin: where it came from (a file path, ``custody seq 3``, ...), if more precise than ``source``.
        match: whether it equals the computed digest (``None`` when nothing was computed).
    """

    source: str
    value: str
    origin: str | None = None
    match: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"source": self.source, "value": self.value, "origin": self.origin, "match": self.match}


@dataclass(frozen=True, slots=True)
class HashCheck:
    """One algorithm's result.

    Attributes:
        algorithm: ``md5``, ``sha1``, ``sha256`` or ``sha512``.
        stored: the digest stored in the image, if any.
        expected_sources: every reference for this algorithm (the stored one included), each with its match.
        computed: the digest of the media as read (``None`` if it could not be computed).
        match: ``True`` if every reference equals the computed digest, ``False`` if any differs,
            ``None`` if there is no reference or nothing was computed.
    """

    algorithm: str
    stored: str | None
    expected_sources: tuple[HashReference, ...]
    computed: str | None
    match: bool | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "algorithm": self.algorithm,
            "stored": self.stored,
            "computed": self.computed,
            "match": self.match,
            "references": [r.to_dict() for r in self.expected_sources],
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of verifying one image. Frozen; build it with :func:`verify`.

    Attributes:
        paths: the image paths as given.
        info: the image's metadata (``None`` when it could not be opened).
        hashes: one :class:`HashCheck` per algorithm computed or referenced.
        faults: every fault found (chunks, structure, signature, custody chain, hash mismatches, opening).
        unreadable: ranges recorded as unreadable at acquisition (zero-filled; listed, not corruption).
        bytes_read: media bytes read and checked.
        chunks_checked: chunks read and checked.
        started: start time (UTC).
        finished: end time (UTC).
        tool: ``forensimg <version>``.
        range: the media range verified with ``range=``, else ``None`` (whole media).
        range_method: ``merkle`` (proven against the stored root) or ``chunks`` (chunk checks only).
        signature: the signed-manifest check (see :func:`forensimg.signing.check_manifest`), if asked for.
        notes: remarks for the reader (what was not checked, and why).
        error: the error that stopped verification (opening failed, a read failed), if any.
    """

    paths: tuple[str, ...]
    info: ImageInfo | None
    hashes: tuple[HashCheck, ...] = ()
    faults: tuple[Fault, ...] = ()
    unreadable: tuple[Range, ...] = ()
    bytes_read: int = 0
    chunks_checked: int = 0
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: datetime = field(default_factory=lambda: datetime.now(UTC))
    tool: str = f"forensimg {__version__}"
    range: Range | None = None
    range_method: str | None = None
    signature: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None

    # -- verdict -------------------------------------------------------------------------------

    @property
    def corruption(self) -> tuple[Fault, ...]:
        """Faults that are damage (everything but hash mismatches and acquisition read errors)."""
        return tuple(f for f in self.faults if f.kind not in _NOT_CORRUPTION)

    @property
    def mismatches(self) -> tuple[HashCheck, ...]:
        """Algorithms whose computed digest differs from a reference."""
        return tuple(h for h in self.hashes if h.match is False)

    @property
    def matched(self) -> tuple[HashCheck, ...]:
        """Algorithms whose computed digest equals every reference."""
        return tuple(h for h in self.hashes if h.match is True)

    @property
    def status(self) -> str:
        """``verified``, ``mismatch``, ``faults``, ``no_reference`` or ``unreadable`` (see ``docs/verify-json.md``)."""
        if self.error is not None:
            return "unreadable"
        if self.corruption:
            return "faults"
        if self.mismatches:
            return "mismatch"
        if self.range is not None:
            return "verified" if self.range_method == "merkle" else "no_reference"
        if self.matched:
            return "verified"
        return "no_reference"

    @property
    def exit_code(self) -> int:
        """0 verified; 1 mismatch or faults; 3 unreadable; 4 no reference (``docs/cli.md``)."""
        return _EXIT[self.status]

    @property
    def verdict(self) -> str:
        """One line for the end of the human output."""
        status = self.status
        n_unread = len(self.unreadable)
        unread = (
            f"; {n_unread} unreadable range{'s' if n_unread != 1 else ''} recorded at acquisition (not corruption)"
            if n_unread
            else ""
        )
        nf = len(self.corruption)
        if status == "unreadable":
            return f"UNREADABLE: {self.error}"
        if status in ("faults", "mismatch"):
            parts: list[str] = []
            chunk_faults = [f for f in self.corruption if f.chunk is not None]
            if chunk_faults:
                n = len(chunk_faults)
                parts.append(f"{n} corrupt chunk{'s' if n != 1 else ''}")
            kinds: dict[str, int] = {}
            for f in self.corruption:
                if f.chunk is None:
                    kinds[str(f.kind)] = kinds.get(str(f.kind), 0) + 1
            words = {
                "signature": "signature check failed",
                "chain_broken": "custody chain broken",
                "merkle": "Merkle root mismatch",
                "metadata": "structure fault",
                "missing_segment": "missing segment",
            }
            for k, n in kinds.items():
                w = words.get(k, k.replace("_", " ") + " fault")
                parts.append(w if n == 1 or not w.endswith("fault") else f"{n} {w}s")
            if self.mismatches:
                names = ", ".join(_LABELS.get(h.algorithm, h.algorithm) for h in self.mismatches)
                bad = sorted({r.source for h in self.mismatches for r in h.expected_sources if r.match is False})
                parts.append(f"{names} mismatch ({', '.join(bad)})")
            return "FAILED: " + ", ".join(parts) + unread
        if self.range is not None:
            r = self.range
            what = f"bytes {r.start}..{r.end - 1}"
            if status == "verified":
                return (
                    f"VERIFIED: {what} proven against the Merkle root; {self.chunks_checked} chunks, 0 faults{unread}"
                )
            fmt = self.info.format if self.info else "this format"
            checks = "no chunk checks" if fmt in ("raw", "split") else "chunk checks only"
            return (
                f"NO REFERENCE: {what}: {self.chunks_checked} chunks read, 0 faults ({checks}: "
                f"a {fmt} image has no proof for a range){unread}"
            )
        if status == "verified":
            groups: dict[tuple[str, ...], list[str]] = {}
            for src, phrase in _SOURCE_WORDS.items():
                algs = tuple(
                    _LABELS.get(h.algorithm, h.algorithm)
                    for h in self.matched
                    if any(r.source == src for r in h.expected_sources)
                )
                if algs:
                    groups.setdefault(algs, []).append(phrase)
            said = [
                f"{', '.join(algs)} match{'es' if len(algs) == 1 else ''} {' and '.join(phrases)}"
                for algs, phrases in groups.items()
            ]
            return f"VERIFIED: {', '.join(said)}; {nf} faults{unread}"
        return (
            f"NO REFERENCE: {self.chunks_checked} chunks read, 0 faults, but no stored or given hash to compare "
            f"the media with (give --expect or --hash-file){unread}"
        )

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON form (schema ``forensimg-verify/1``, documented in ``docs/verify-json.md``)."""
        info = self.info
        ss = info.sector_size if info else None
        image: dict[str, Any] = {"paths": list(self.paths)}
        if info is not None:
            image.update(
                {
                    "segments": [str(p) for p in info.segments],
                    "format": info.format,
                    "format_version": info.format_version,
                    "size": info.size,
                    "sector_size": info.sector_size,
                    "chunk_size": info.chunk_size,
                    "chunk_count": info.chunk_count,
                    "complete": info.complete,
                    "case": info.case.to_dict(),
                    "merkle_root": _str_or_none(info.details.get("merkle_root")),
                }
            )
        else:
            image.update({"segments": [], "format": None, "size": None})
        return {
            "schema": SCHEMA_ID,
            "status": self.status,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "image": image,
            "hashes": [h.to_dict() for h in self.hashes],
            "faults": [f.to_dict(ss) for f in self.faults],
            "unreadable": [r.to_dict(ss) for r in self.unreadable],
            "range": (
                {**self.range.to_dict(ss), "method": self.range_method, "proven": self.range_method == "merkle"}
                if self.range is not None
                else None
            ),
            "signature": dict(self.signature) if self.signature is not None else None,
            "bytes_read": self.bytes_read,
            "chunks_checked": self.chunks_checked,
            "started": _utc(self.started),
            "finished": _utc(self.finished),
            "duration_seconds": round((self.finished - self.started).total_seconds(), 6),
            "tool": self.tool,
            "notes": list(self.notes),
            "error": self.error,
        }


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _str_or_none(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


# -- parsing helpers used by the CLI and by callers -----------------------------------------------


def parse_expect(values: Iterable[str]) -> dict[str, str]:
    """``["md5:ABC…", "sha256=…", "abc…"]`` → ``{"md5": "abc…"}``; a bare digest's algorithm from its length.

    Raises:
        UsageError: an unknown algorithm, a digest of the wrong length, or two values for one algorithm.
    """
    out: dict[str, str] = {}
    for raw in values:
        text = raw.strip()
        if ":" in text or "=" in text:
            alg_txt, _, hexd = text.replace("=", ":", 1).partition(":")
            alg = normalize_algorithms(alg_txt)[0] if alg_txt.strip() else ""
        else:
            hexd = text
            alg = algorithm_for_hex(hexd) or ""
        hexd = hexd.strip().lower()
        if not alg or algorithm_for_hex(hexd) != alg:
            raise UsageError(f"--expect '{raw}': give ALGO:HEX with a digest of the right length (md5:32 hex, ...)")
        if alg in out and out[alg] != hexd:
            raise UsageError(f"--expect gives two different {alg.upper()} values")
        out[alg] = hexd
    return out


def _parse_int(text: str) -> int:
    t = text.strip().lower().replace("_", "")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "s": 512}
    mult = 1
    if t and t[-1] in units and not t.startswith("0x"):
        mult = units[t[-1]]
        t = t[:-1]
    if t.endswith("i"):
        t = t[:-1]
    return int(t, 0) * mult


def parse_range(text: str) -> tuple[int, int | None]:
    """``START:END`` (end exclusive) or ``START+LENGTH`` in bytes: decimal, ``0x`` hex, or with a
    ``k``/``m``/``g`` (binary units) or ``s`` (512-byte sectors) suffix. ``START:`` runs to the end of the
    media (the end is then ``None``).

    Raises:
        UsageError: the text is not a range.
    """
    try:
        if "+" in text:
            a, b = text.split("+", 1)
            start = _parse_int(a)
            return start, start + _parse_int(b)
        a, sep, b = text.partition(":")
        if not sep:
            raise ValueError(text)
        start = _parse_int(a)
        return start, (_parse_int(b) if b.strip() else None)
    except ValueError:
        raise UsageError(
            f"--range '{text}': give START:END or START+LENGTH in bytes (e.g. 0:1M, 0x100000+4096)"
        ) from None


# -- reference collection ---------------------------------------------------------------------------


_HASH_KEYS = ("hashes", "media_hashes", "stored_hashes")


def _hash_map(obj: Any) -> dict[str, str] | None:
    if not isinstance(obj, Mapping):
        return None
    out: dict[str, str] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, str):
            continue
        try:
            alg = normalize_algorithms(k)
        except UsageError:
            continue
        if alg and algorithm_for_hex(v.strip()) == alg[0]:
            out[alg[0]] = v.strip().lower()
    return out or None


def _find_hashes(obj: Any, depth: int = 0) -> dict[str, str] | None:
    """The first ``hashes``-like mapping in a report, searching the top level first, then one level down."""
    if not isinstance(obj, Mapping) or depth > 2:
        return None
    for key in _HASH_KEYS:
        found = _hash_map(obj.get(key))
        if found:
            return found
    for key in ("result", "acquisition", "media", "verification"):
        found = _find_hashes(obj.get(key), depth + 1)
        if found:
            return found
    return None


def _report_hashes(first: Path) -> tuple[dict[str, str], str | None]:
    """Hashes from the acquisition report ``IMAGE.json`` beside the first segment."""
    for cand in (first.with_name(first.name + ".json"),):  # acquire/convert write TARGET.json
        try:
            data = json.loads(cand.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = _find_hashes(data)
        if found:
            return found, str(cand)
    return {}, None


def _custody_hashes(log_path: Path) -> tuple[dict[str, str], str | None, tuple[Fault, ...]]:
    """Hashes of the latest acquire/convert event that records them, and the chain's faults."""
    if not log_path.exists():
        return {}, None, ()
    log = CustodyLog(log_path)
    faults = log.check_chain()
    found: dict[str, str] = {}
    origin = None
    for line in log.lines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict) or ev.get("action") not in ("acquire", "convert"):
            continue
        h = _find_hashes(ev)
        if h:
            found, origin = h, f"{log_path} seq {ev.get('seq')}"
    return found, origin, faults


# -- the walk ---------------------------------------------------------------------------------------


def verify(
    image_or_paths: Image | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    hashes: Sequence[str] | str | None = None,
    expect: Mapping[str, str] | None = None,
    hash_files: Sequence[str | os.PathLike[str]] = (),
    range: Range | tuple[int, int | None] | None = None,
    workers: int = 2,
    on_progress: ProgressCallback | None = None,
    public_key: str | os.PathLike[str] | bytes | None = None,
    custody_log: str | os.PathLike[str] | None = None,
    use_custody: bool = True,
    format: str | None = None,
) -> VerifyReport:
    """Verify an image and return a :class:`VerifyReport` (never raises for the image's content).

    Args:
        image_or_paths: an open :class:`~forensimg.image.Image` (not closed here), a path (any segment),
            or the segment paths in order.
        hashes: algorithms to compute besides those any reference needs (default: the referenced ones,
            or MD5 and SHA-1 when there is no reference).
        expect: ``{"md5": hex, ...}`` values the media must hash to.
        hash_files: ``md5sum``-style files or dc3dd/FTK logs holding the media hashes.
        range: verify only media ``[start, end)``: proven against the Merkle root where the format has
            one (fimg), else chunk checks only (status ``no_reference``). Hash references do not apply.
        workers: threads decoding and checking chunks.
        on_progress: called as ``on_progress(done_bytes, total_bytes)``.
        public_key: an Ed25519 public key (PEM path or bytes): also check ``IMAGE.manifest.sig``.
        custody_log: the custody log to read the acquisition hashes from and check (default: beside the image).
        use_custody: read the custody log at all.
        format: force the image format instead of detecting it.

    Raises:
        UsageError: invalid arguments (``expect`` values, a range outside the media, ``expect`` with a range).
    """
    started = datetime.now(UTC)
    expect = dict(expect or {})
    for alg, hexd in list(expect.items()):
        a = normalize_algorithms(alg)[0]
        if algorithm_for_hex(hexd.strip()) != a:
            raise UsageError(f"expected {a.upper()} value '{hexd}' has the wrong length")
        expect.pop(alg)
        expect[a] = hexd.strip().lower()
    rng_spec: tuple[int, int | None] | None = None
    if range is not None:
        rng_spec = (range.start, range.end) if isinstance(range, Range) else (int(range[0]), range[1])
    if range is not None and (expect or hash_files):
        raise UsageError("--expect and --hash-file compare whole-media hashes; they cannot be used with --range")
    extra_algs = normalize_algorithms(hashes) if hashes is not None else ()

    if isinstance(image_or_paths, Image):
        img: Image | None = image_or_paths
        paths = tuple(str(p) for p in image_or_paths.info.segments)
        owned = False
    else:
        if isinstance(image_or_paths, str | os.PathLike):
            paths = (os.fspath(image_or_paths),)
        else:
            paths = tuple(os.fspath(p) for p in image_or_paths)
        # hash files are read before the image so that a bad hash file is a usage error, not a finding
        img = None
        owned = True
    hash_entries = [e for hf in hash_files for e in parse_hash_file(hf)]

    if img is None:
        from forensimg.registry import open as open_image

        try:
            img = open_image(paths[0] if len(paths) == 1 else list(paths), format=format)
        except UsageError:
            raise
        except Error as exc:
            kind = (
                FaultKind.MISSING_SEGMENT
                if isinstance(exc, MissingSegmentError)
                else (FaultKind.METADATA if isinstance(exc, FormatError) else FaultKind.IO_ERROR)
            )
            fault = Fault(kind, str(exc), segment=exc.path, offset=exc.offset)
            return VerifyReport(
                paths=paths, info=None, faults=(fault,), started=started, finished=datetime.now(UTC), error=str(exc)
            )
    try:
        return _verify_open(
            img,
            paths,
            started=started,
            extra_algs=extra_algs,
            expect=expect,
            hash_entries=hash_entries,
            hash_files=[str(h) for h in hash_files],
            rng_spec=rng_spec,
            workers=workers,
            on_progress=on_progress,
            public_key=public_key,
            custody_log=custody_log,
            use_custody=use_custody,
        )
    finally:
        if owned:
            img.close()


def _verify_open(
    img: Image,
    paths: tuple[str, ...],
    *,
    started: datetime,
    extra_algs: tuple[str, ...],
    expect: dict[str, str],
    hash_entries: list[Any],
    hash_files: list[str],
    rng_spec: tuple[int, int | None] | None,
    workers: int,
    on_progress: ProgressCallback | None,
    public_key: str | os.PathLike[str] | bytes | None,
    custody_log: str | os.PathLike[str] | None,
    use_custody: bool,
) -> VerifyReport:
    info = img.info
    first = Path(info.segments[0]) if info.segments else Path(paths[0])
    faults: list[Fault] = []
    notes: list[str] = []
    refs: dict[str, list[HashReference]] = {}

    def add(source: str, values: Mapping[str, str], origin: str | None = None) -> None:
        for alg, hexd in values.items():
            refs.setdefault(alg, []).append(HashReference(source, hexd.lower(), origin))

    if not info.complete:
        faults.append(
            Fault(FaultKind.METADATA, f"'{first}': the image was never finished by its writer", segment=str(first))
        )

    # references (whole-media only)
    rng: Range | None = None
    if rng_spec is None:
        for alg, hexd in info.stored_hashes.items():
            # raw images keep their hashes in md5sum-style sidecars (IMAGE.md5, ...): name the file
            add("stored", {alg: hexd}, f"{first}.{alg}" if info.format in ("raw", "split") else None)
        report_h, report_path = _report_hashes(first)
        add("report", report_h, report_path)
        if expect:
            add("expect", expect)
        if hash_entries:
            selected = select_media_hashes(hash_entries, [str(p) for p in info.segments])
            if not selected:
                notes.append(f"no media hash found in {', '.join(hash_files)}")
            for alg, hexd in selected.items():
                origin = next((e.source for e in hash_entries if e.algorithm == alg and e.value == hexd), None)
                add("hash_file", {alg: hexd}, origin)
    log_path = Path(custody_log) if custody_log is not None else first.with_name(first.name + ".custody.jsonl")
    if use_custody:
        cust_h, cust_origin, chain_faults = _custody_hashes(log_path)
        faults.extend(chain_faults[:1])  # the first break locates it; `custody check` lists the rest
        if rng_spec is None:
            add("custody", cust_h, cust_origin)

    signature: dict[str, Any] | None = None
    if public_key is not None:
        from forensimg.signing import check_manifest

        sig = check_manifest(img, public_key)
        signature = sig.to_dict()
        faults.extend(sig.faults)
        if sig.valid and rng_spec is None:
            add("manifest", sig.media_hashes, str(sig.manifest_path))
        head = sig.custody_head
        if sig.valid and use_custody and head is not None and log_path.exists():
            # events removed from the end of the log leave a valid chain: the signed head finds them
            faults.extend(
                CustodyLog(log_path).check_anchor(
                    int(head["seq"]), str(head.get("sha256")), what=f"the signed manifest '{sig.manifest_path.name}'"
                )
            )

    # the walk
    if rng_spec is None:
        wanted = list(refs) if refs else list(DEFAULT_HASHES)
        algs = normalize_algorithms([*wanted, *extra_algs])
        helper = threading.Thread(target=_prepare_quietly, args=(img,), name="forensimg-verify-structure", daemon=True)
        helper.start()
        try:
            computed, read, chunks, io_error = _walk(img, 0, img.chunk_count, algs, workers, on_progress, faults)
        finally:
            helper.join()
        if io_error is None:
            faults.extend(img.check_structure())
        range_method = None
    else:
        start, end = rng_spec[0], (img.size if rng_spec[1] is None else rng_spec[1])
        if not 0 <= start < end <= img.size:
            raise UsageError(f"--range {start}:{end} is empty or outside the media (size {img.size})")
        rng = Range(start, end)
        proof = img.prove_range(rng.start, rng.end)
        first_chunk, last_chunk = rng.start // img.chunk_size, (rng.end - 1) // img.chunk_size
        io_error = None
        computed = {}
        if proof is not None:
            faults.extend(proof)
            range_method = "merkle"
            read, chunks = rng.length, last_chunk - first_chunk + 1
            if on_progress is not None:
                on_progress(read, read)
        else:
            range_method = "chunks"
            notes.append(f"a {info.format} image has no proof for a byte range: chunks were checked, nothing more")
            _, read, chunks, io_error = _walk(img, first_chunk, last_chunk + 1, (), workers, on_progress, faults)

    # compare
    checks: list[HashCheck] = []
    for alg in normalize_algorithms([*computed, *refs]):
        got = computed.get(alg)
        rlist = tuple(
            HashReference(r.source, r.value, r.origin, None if got is None else r.value == got)
            for r in refs.get(alg, [])
        )
        match = None if got is None or not rlist else all(r.match for r in rlist)
        stored = info.stored_hashes.get(alg)
        checks.append(HashCheck(alg, stored, rlist, got, match))
        for r in rlist:
            if r.match is False:
                faults.append(
                    Fault(
                        FaultKind.HASH_MISMATCH,
                        f"{_LABELS.get(alg, alg)} of the media differs from {_SOURCE_WORDS.get(r.source, r.source)}"
                        + (f" ({r.origin})" if r.origin else ""),
                        media=Range(0, info.size),
                        segment=r.origin if r.source in ("hash_file", "report", "manifest") else None,
                        expected=r.value,
                        found=got,
                    )
                )
    if rng is None and any(f.chunk is not None for f in faults):
        notes.append("the computed hashes read corrupt chunks as zeros")
    if info.unreadable:
        notes.append(
            "ranges unreadable at acquisition are stored as zeros and included in the hashes; they are not corruption"
        )
    return VerifyReport(
        paths=paths,
        info=info,
        hashes=tuple(checks),
        faults=tuple(faults),
        unreadable=tuple(info.unreadable),
        bytes_read=read,
        chunks_checked=chunks,
        started=started,
        finished=datetime.now(UTC),
        range=rng,
        range_method=range_method,
        signature=signature,
        notes=tuple(notes),
        error=io_error,
    )


def _prepare_quietly(img: Image) -> None:
    """Image.prepare_structure in a helper thread: it only saves check_structure time, which recomputes and
    reports whatever went wrong here (a thread must not print a traceback)."""
    try:
        img.prepare_structure()
    except Exception:  # check_structure, run next, recomputes it and reports what is wrong
        pass


def _walk(
    img: Image,
    start: int,
    stop: int,
    algs: Sequence[str],
    workers: int,
    on_progress: ProgressCallback | None,
    faults: list[Fault],
) -> tuple[dict[str, str], int, int, str | None]:
    """Read chunks ``start..stop-1`` in parallel, hash them in order; returns digests, bytes, chunks, I/O error."""
    hasher = MultiHasher(algs) if algs else None
    total = max(0, min(stop * img.chunk_size, img.size) - start * img.chunk_size)
    read = 0
    chunks = 0
    io_error: str | None = None
    try:
        for lo, hi, parts, run_faults in img.scan_blocks(start, stop, workers=max(1, workers)):
            faults.extend(run_faults)
            if hasher is not None:
                if len(parts) == 1:  # one buffer (a scan process's slot): hashed where it is, before the next run
                    hasher.wait(hasher.update_borrowed(parts[0]))
                else:
                    hasher.update_gathered(parts)  # copied: the parts may be reused for the next run
            read += sum(len(p) for p in parts)
            chunks += hi - lo
            if on_progress is not None:
                on_progress(read, total)
    except (Error, OSError) as exc:
        # a read that fails outside the chunk checks (EIO on a segment file): nothing more can be said
        path = getattr(exc, "path", None) or getattr(exc, "filename", None)
        offset = getattr(exc, "offset", None)
        faults.append(Fault(FaultKind.IO_ERROR, str(exc), segment=str(path) if path else None, offset=offset))
        io_error = str(exc)
    digests = hasher.hexdigests() if hasher is not None else {}
    if io_error is not None:
        digests = {}
    return digests, read, chunks, io_error
