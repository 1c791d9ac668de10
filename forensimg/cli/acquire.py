"""``forensimg acquire SOURCE TARGET``: image a device, a file or standard input, write-blocked.

Exit codes: 0 complete (unreadable sectors, if any, are zero-filled, recorded and reported); 1 the
``--verify`` re-read does not match; 2 usage; 3 cannot read the source / every target failed (disk
full ...); 5 refused by a safeguard; 6 finished incomplete (interrupted with Ctrl-C: the image is left
resumable where the format allows; or one of several targets failed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click

from forensimg.cli._common import FILE_PATH, Ctx, emit_json, json_option, pass_ctx, record_custody
from forensimg.errors import UsageError, WriteBlockError, WriteError

__all__ = ["ProgressPrinter", "cli", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000, "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
          "g": 1 << 30, "gib": 1 << 30, "gb": 10**9, "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
          "s": 512}


def parse_size(text: str | None, what: str = "size") -> int | None:
    """``"650M"`` → 681574400; ``"1.5GiB"``, ``"4096"``, ``"2000s"`` (sectors of 512) …

    Raises:
        UsageError: not a size.
    """
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise UsageError(f"{what} '{text}' is not a size (examples: 4096, 64K, 650M, 2G, 1.5GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _rate(n: float) -> str:
    return f"{n / 1e6:,.1f} MB/s"


def _bytes(n: int) -> str:
    v = float(n)
    for u in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or u == "TiB":
            return f"{v:,.0f} {u}" if u == "B" else f"{v:,.1f} {u}"
        v /= 1024
    return f"{n} B"


class ProgressPrinter:
    """Progress on a terminal (bytes, percent, MB/s, ETA, unreadable sectors) and/or JSON lines to an fd.

    Args:
        stream: the terminal to draw on, or ``None`` for no bar.
        json_fd: a file descriptor to write one JSON object per update to (``--progress-fd``).
        interval: minimum seconds between bar redraws.
    """

    def __init__(self, stream: TextIO | None, json_fd: int | None = None, interval: float = 0.2) -> None:
        self.stream = stream
        self.json_fd = json_fd
        self.interval = interval
        self._last = 0.0
        self._drawn = False

    def __call__(self, p: Any) -> None:
        if self.json_fd is not None:
            line = (json.dumps(p.to_dict()) + "\n").encode()
            view = memoryview(line)
            while view:
                n = os.write(self.json_fd, view)
                view = view[n:]
        if self.stream is None:
            return
        now = time.monotonic()
        final = p.total is not None and p.done >= p.total
        if now - self._last < self.interval and not final:
            return
        self._last = now
        parts = [f"{p.phase:>7}"]
        if p.total:
            pct = 100.0 * p.done / p.total
            parts.append(f"{_bytes(p.done)} / {_bytes(p.total)}  {pct:5.1f}%")
        else:
            parts.append(_bytes(p.done))
        parts.append(_rate(p.rate))
        if p.total and p.rate > 0 and p.phase != "rehash":
            eta = int((p.total - p.done) / p.rate)
            parts.append(f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
        parts.append(f"unreadable {p.unreadable_sectors} sectors")
        self.stream.write("\r" + "  ".join(parts) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the bar's line."""
        if self.stream is not None and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _format_name(target: str, fmt: str | None) -> str:
    from forensimg.registry import _by_name, format_for_path

    spec = _by_name(fmt) if fmt else format_for_path(target)
    return spec.name


def _default_hashes(fmt: str) -> str:
    return "sha256" if fmt == "fimg" else "md5,sha1"


def writer_options(
    fmt: str,
    *,
    compression: str | None,
    chunk_size: int | None,
    segment_size: int | None,
    sector_size: int = 512,
) -> dict[str, Any]:
    """Format-specific writer options from the command line (only those given).

    ``chunk_size`` is given to E01 as ``sectors_per_chunk`` (EWF stores chunks as a sector count).
    """
    opts: dict[str, Any] = {}
    if segment_size is not None:
        opts["segment_size"] = segment_size
    if fmt in ("raw", "split"):
        if compression not in (None, "none"):
            raise UsageError(f"--compression does not apply to {fmt} images")
        if chunk_size is not None:
            raise UsageError(f"--chunk-size does not apply to {fmt} images")
        return opts
    if compression is not None:
        opts["compression"] = compression
    if chunk_size is not None:
        if fmt == "ewf":
            if chunk_size % sector_size:
                raise UsageError(f"--chunk-size {chunk_size} is not a multiple of the sector size {sector_size}")
            opts["sectors_per_chunk"] = chunk_size // sector_size
        else:
            opts["chunk_size"] = chunk_size
    return opts


@click.command("acquire")
@click.argument("source", type=str)
@click.argument("target", type=FILE_PATH)
@click.option(
    "--format", "fmt", default=None, help="Output format: ewf (E01), fimg, raw, split (default: from TARGET)."
)
@click.option("--case-number", default="", help="Case number.")
@click.option("--evidence-number", default="", help="Evidence number.")
@click.option("--examiner", "examiner_opt", default=None, help="Examiner name (default: the global --examiner).")
@click.option("--description", default="", help="Description of the evidence.")
@click.option("--notes", default="", help="Notes.")
@click.option("--hash", "hash_opt", default=None, help="Hashes: any of md5,sha1,sha256,sha512 (default md5,sha1; "
              "sha256 for fimg).")
@click.option("--compression", default=None, help="Compression (format-specific: E01 none/fast/best; fimg ...).")
@click.option("--chunk-size", default=None, help="Chunk size (format-specific; e.g. 32K for E01).")
@click.option("--sector-size", "-P", "sector_size", default=None, type=int,
              help="Bytes per sector (default: what the device reports; 2048 for a CD/DVD drive).")
@click.option("--media-type", default=None, type=click.Choice(["fixed", "removable", "optical", "memory"]),
              help="Media type stored in the image (E01 media type byte, fimg source record). Default: "
              "detected (sysfs device/type 5 → optical, removable → removable, else fixed).")
@click.option("--segment-size", default=None, help="Maximum segment file size (e.g. 650M, 2G).")
@click.option("--offset", default="0", help="First source byte to acquire (e.g. 1M, 2048s).")
@click.option("--length", default=None, help="Bytes to acquire (default: to the end).")
@click.option("--retries", default=2, type=click.IntRange(0, 100), show_default=True,
              help="Extra attempts for a failed read before it is split down to single sectors.")
@click.option("--block-size", default="4M", show_default=True, help="Read block size.")
@click.option("--checkpoint", "checkpoint", default=None,
              help="fimg: commit a resumable checkpoint every SIZE of media (default: the writer's, 4096 chunks, "
              "fewer where a small --segment-size needs it).")
@click.option("--resume", is_flag=True, help="Continue an interrupted fimg acquisition into TARGET.")
@click.option("--verify", is_flag=True, help="Re-read the finished image and compare its hashes.")
@click.option("--allow-mounted", is_flag=True, help="Acquire a source mounted read-only (recorded as a warning).")
@click.option("--no-kernel-ro", is_flag=True, help="Do not set the kernel read-only flag (recorded as a warning).")
@click.option("--restore-rw", is_flag=True, help="Clear the kernel read-only flag again after acquisition.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--mirror", "mirrors", multiple=True, type=FILE_PATH, metavar="SECOND_TARGET",
              help="Also write the image to SECOND_TARGET (repeatable; any format, from its extension). The "
              "source is read and hashed once; a copy that fails (disk full) is recorded and the others go on.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--progress-fd", default=None, type=int,
              help="Also write progress as JSON lines to this open file descriptor (for scripts and GUIs).")
@json_option
@pass_ctx
def cli(ctx: Ctx, source: str, target: str, fmt: str | None, case_number: str, evidence_number: str,
        examiner_opt: str | None, description: str, notes: str, hash_opt: str | None, compression: str | None,
        chunk_size: str | None, sector_size: int | None, media_type: str | None, segment_size: str | None,
        offset: str, length: str | None,
        retries: int, block_size: str, checkpoint: str | None, resume: bool, verify: bool, allow_mounted: bool,
        no_kernel_ro: bool, restore_rw: bool, overwrite: bool, mirrors: tuple[str, ...], quiet: bool,
        progress_fd: int | None, as_json: bool) -> int:
    """Acquire SOURCE (a block device, an image file, or - for standard input) into TARGET.

    The source is opened read-only (O_NOATIME), a block device and its partitions get the kernel
    read-only flag, and a mounted source or a target on the source is refused. Unreadable sectors are
    retried, isolated, zero-filled and recorded. A report is written to TARGET.txt and TARGET.json.
    """
    from concurrent.futures import ThreadPoolExecutor

    from forensimg.acquire import safeguards as sg
    from forensimg.acquire.engine import acquire, verify_targets
    from forensimg.acquire.report import AcquisitionReport, segment_hashes
    from forensimg.acquire.source import open_source
    from forensimg.hashing import normalize_algorithms
    from forensimg.image import CaseInfo, SourceInfo
    from forensimg.registry import create

    fmt_name = _format_name(target, fmt)
    mirror_fmts = [_format_name(m, None) for m in mirrors]
    algs = normalize_algorithms(hash_opt or ",".join(_default_hashes(f) for f in [fmt_name, *mirror_fmts]))
    if mirrors and resume:
        raise UsageError("--resume continues one fimg target: run it without --mirror, once per copy to complete")
    if len({os.path.realpath(t) for t in (target, *mirrors)}) != 1 + len(mirrors):
        raise UsageError("every --mirror target must differ from TARGET and from the other mirrors")
    off = parse_size(offset, "--offset") or 0
    length_n = parse_size(length, "--length")
    block = parse_size(block_size, "--block-size") or (4 << 20)
    seg = parse_size(segment_size, "--segment-size")
    chunk = parse_size(chunk_size, "--chunk-size")
    examiner = examiner_opt if examiner_opt is not None else ctx.examiner
    case = CaseInfo(case_number=case_number, evidence_number=evidence_number, examiner=examiner,
                    description=description, notes=notes)
    if resume and fmt_name != "fimg":
        raise UsageError(
            f"--resume works for fimg targets only; a {fmt_name} image cannot be continued safely "
            "(E01 keeps its tables and hashes in sections written at the end): start a new acquisition"
        )
    if source == "-" and resume:
        raise UsageError("a stream (standard input) cannot be resumed: the data already read is gone")
    if restore_rw and no_kernel_ro:
        raise UsageError("--restore-rw and --no-kernel-ro contradict each other")
    src = open_source(source)
    report_sg = sg.SafeguardReport()
    started = datetime.now(UTC)
    bd = None
    try:
        report_sg.add(sg.Safeguard(
            "read_only_open", "applied" if src.noatime or src.is_stream else "warning",
            "opened O_RDONLY|O_NOATIME|O_CLOEXEC" if src.noatime else
            ("standard input (stream)" if src.is_stream else
             "opened O_RDONLY|O_CLOEXEC: O_NOATIME refused (EPERM, not the owner); access time may change")))
        identity: dict[str, Any] = {"path": source, "kind": src.kind, "size": src.size,
                                    "logical_sector_size": src.sector_size,
                                    "physical_sector_size": src.physical_sector_size}
        if src.kind == "block":
            bd = sg.resolve_block(src.st_rdev)
            if bd is None:
                raise WriteBlockError(f"cannot find '{source}' in sysfs: safeguards cannot be checked", path=source)
            identity.update(sg.source_identity(bd.name))
            identity["size"] = src.size
            report_sg.add(sg.check_mounts(bd.name, allow_mounted=allow_mounted))
        else:
            report_sg.add(sg.Safeguard("mounts", "not_applicable", f"source is a {src.kind}, not a block device"))
        report_sg.add(sg.check_targets(src, [target, *mirrors]))
        if bd is not None:
            if no_kernel_ro:
                now = sg.get_kernel_ro([bd.name])
                report_sg.add(sg.Safeguard("kernel_ro", "warning",
                                           "kernel read-only flag NOT set (--no-kernel-ro)", before=now))
            else:
                before, after, errors = sg.set_kernel_ro(bd.name, True)
                if errors:
                    raise WriteBlockError(
                        "cannot set the kernel read-only flag (BLKROSET): " + "; ".join(errors)
                        + " (run as root, or give --no-kernel-ro)", path=source)
                report_sg.add(sg.Safeguard("kernel_ro", "applied",
                                           "BLKROSET on the device and every partition before the first read",
                                           before=before, after=after))
            identity["hpa_dco"] = sg.hpa_dco(f"/dev/{bd.name}")
        else:
            report_sg.add(sg.Safeguard("kernel_ro", "not_applicable", f"source is a {src.kind}"))
            identity["hpa_dco"] = {"status": "not applicable"}

        mt, mt_why = sg.detect_media_type(identity if bd is not None else None)
        if media_type is not None:
            mt, mt_why = media_type, f"--media-type (detected: {mt})"
        identity["media_type"] = mt
        identity["media_type_from"] = mt_why
        if mt == "optical":
            # sessions "where the source reports them": the TOC of a CD, read best effort from the drive
            identity["optical_toc"] = src.read_cd_toc()
        ss = sector_size or src.sector_size
        opts = writer_options(fmt_name, compression=compression, chunk_size=chunk, segment_size=seg, sector_size=ss)
        ckpt = parse_size(checkpoint, "--checkpoint")
        if ckpt is not None:
            if fmt_name != "fimg":
                raise UsageError("--checkpoint applies to fimg targets only")
            from forensimg.formats.fimg.layout import DEFAULT_CHUNK_SIZE

            opts["checkpoint_interval"] = max(1, ckpt // (chunk or DEFAULT_CHUNK_SIZE))
        src_info = SourceInfo(
            path=source,
            size=src.size,
            logical_sector_size=ss,
            physical_sector_size=src.physical_sector_size,
            model=str(identity.get("model", "")),
            serial=str(identity.get("serial", "")),
            media_type=mt,
            is_physical=src.kind == "block" and not identity.get("is_partition", False),
            extra={**{k: v for k, v in identity.items() if k not in ("path", "size", "model", "serial")},
                   "safeguards": {i.name: i.status for i in report_sg.items}},
        )
        common: dict[str, Any] = dict(case=case, source=src_info, sector_size=ss, hashes=algs,
                                      compute_hashes=False, acquired_at=started, **opts)
        start = 0
        specs: list[tuple[str, str, dict[str, Any]]] = [(target, fmt_name, opts)]
        for m, mf in zip(mirrors, mirror_fmts, strict=True):
            mopts = writer_options(mf, compression=compression if mf == fmt_name else None,
                                   chunk_size=chunk if mf == fmt_name else None, segment_size=seg,
                                   sector_size=ss)
            if mf == "fimg" and "checkpoint_interval" in opts:
                mopts["checkpoint_interval"] = opts["checkpoint_interval"]
            specs.append((m, mf, mopts))
        # same format and options (E01 with E01, fimg with fimg): one writer encodes once and writes every
        # copy (forensimg.acquire.copies); the outcome is split per copy again after the acquisition
        from forensimg.acquire.copies import expand_copies, group_targets

        base = {k: v for k, v in common.items() if k not in opts}
        writers: list[Any] = []
        try:
            for gpath, gfmt, gopts, copies in group_targets(specs):
                if resume:  # (--resume takes no --mirror: one group)
                    import importlib

                    fimg_mod: Any = importlib.import_module("forensimg.formats.fimg")
                    writers.append(fimg_mod.resume_writer(Path(target), **common))
                    start = writers[0].position
                    continue
                extra: dict[str, Any] = {"mirror_paths": copies} if copies else {}
                writers.append(create(gpath, format=gfmt, overwrite=overwrite, **base, **gopts, **extra))
        except BaseException:
            for w in writers:
                w.abort()
            raise
        writer, mirror_writers = writers[0], writers[1:]
        rep = AcquisitionReport("acquire", ["forensimg", *sys.argv[1:]] if sys.argv else [], case,
                                {"identity": identity}, report_sg.to_dict(), started_at=started,
                                settings={"format": fmt_name, "hashes": list(algs), "sector_size": ss, "media_type": mt,
                                          "offset": off, "length": length_n, "retries": retries,
                                          "block_size": block, **{k: v for k, v in opts.items()}})
        if mt == "optical" and "ewf" in (fmt_name, *mirror_fmts):
            toc = identity.get("optical_toc") or {}
            rep.notes.append("optical sessions: not stored in E01 (this E01 writer writes no session section); "
                             + ("the TOC the drive reported is recorded in this report (Source) and in the "
                                "image's source metadata" if toc.get("status") == "read" else
                                f"the source reported none ({toc.get('detail', 'not available')})"))
        if resume:
            rep.notes.append(f"resumed at media offset {start} at {started.isoformat()}; the prefix was re-read "
                             "from the source for the whole-media hashes, and the finished image is re-read "
                             "and compared with them (--verify implied), so a source that changed is detected")
            verify = True
        rep.write(target)
        for m in mirrors:
            rep.write(m)
        tty = sys.stderr if (not quiet and sys.stderr.isatty()) else None
        printer = ProgressPrinter(tty, progress_fd)
        err: BaseException | None = None
        res = None
        stop = threading.Event()
        old_handlers = _catch_signals(stop)
        try:
            res = acquire(src, [writer, *mirror_writers], offset=off, length=length_n, sector_size=ss,
                          block_size=block, hashes=algs, retries=retries, start=start, on_progress=printer, stop=stop)
            expand_copies(res, [target, *mirrors])  # one outcome per copy, in the order given
            _restore_signals(old_handlers)  # from here on Ctrl-C interrupts at once (verify: exit 130)
            old_handlers = {}
            if verify and res.complete:
                verify_targets(res, on_progress=printer)
        except BaseException as exc:
            err = exc
        finally:
            _restore_signals(old_handlers)
            printer.finish()
            if bd is not None and not no_kernel_ro:
                if restore_rw:
                    b2, a2, errors = sg.set_kernel_ro(bd.name, False)
                    report_sg.add(sg.Safeguard("restore_rw", "warning" if not errors else "refused",
                                               "kernel read-only flag cleared (--restore-rw)"
                                               + (": " + "; ".join(errors) if errors else ""), before=b2, after=a2))
                else:
                    k = report_sg.get("kernel_ro")
                    if k is not None:
                        report_sg.add(sg.Safeguard(k.name, k.status, k.detail + "; left set afterwards",
                                                   before=k.before, after=sg.get_kernel_ro(list(k.before or {}))))
        rep.safeguards = report_sg.to_dict()
        rep.finished_at = datetime.now(UTC)
        if res is None:
            rep.status = "FAILED"
            rep.notes.append(f"error: {err}")
            partial = writer.position
            rep.result = {"size": partial, "targets": [{"path": str(writer.path), "format": writer.format,
                                                        "state": "failed", "error": str(err),
                                                        "failed_at": partial}]}
            try:
                rep.write(target)
            except WriteError:
                pass  # e.g. the target disk is full: the report written at the start stays
            assert err is not None
            raise err
        if err is not None:  # the acquisition finished; what followed (--verify) was stopped or failed
            rep.notes.append("verification not completed: "
                             + ("interrupted (Ctrl-C)" if isinstance(err, KeyboardInterrupt) else str(err)))
        # segment SHA-256s: every writer lists them in details["segment_sha256"] (fimg and raw from the
        # bytes they appended, E01 read back while its files were synced); any file missing there is read
        # again, every copy at once (hashlib releases the GIL)
        finished = [(str(t.path), list(t.result.paths), dict(t.result.details.get("segment_sha256") or {}))
                    for t in res.targets if t.result is not None]
        with ThreadPoolExecutor(max_workers=max(1, len(finished))) as pool:
            jobs = pool.map(segment_hashes, [p for _, p, _ in finished], [k for _, _, k in finished])
            for (tpath, _, _), segs in zip(finished, jobs, strict=True):
                rep.segments[tpath] = segs
        status = "complete" if res.complete else "INCOMPLETE"
        if res.verification and not all(v.ok for v in res.verification):
            status = "VERIFICATION FAILED"
        rep.status = status
        rep.result = res.to_dict()
        if res.interrupted:
            rep.notes.append("interrupted by the user (Ctrl-C)"
                             + ("; continue with: forensimg acquire --resume SOURCE TARGET" if fmt_name == "fimg"
                                else ""))
        txt, js = rep.write(target)
        for t in res.targets[1:]:
            try:
                rep.write(t.path)
            except WriteError:
                pass  # that copy's disk is full: its report from the start stays
        out_paths = [p for t in res.targets if t.result for p in t.result.paths]
        seg_sha = {s["path"]: s["sha256"] for segs in rep.segments.values() for s in segs}
        record_custody(ctx, target, "acquire", inputs=[source], outputs=[*out_paths, txt], examiner=examiner,
                       hashes=seg_sha,
                       result={"status": status, "media_hashes": res.hashes, "size": res.size,
                               "safeguards": {i.name: i.status for i in report_sg.items},
                               "source_identity": {k: identity.get(k) for k in ("model", "serial", "size")},
                               "unreadable": [r.to_dict(ss) for r in res.unreadable],
                               "verified": [v.ok for v in res.verification] or None})
        if err is not None:
            raise err
        if as_json:
            d = res.to_dict()
            d.update(status=status, report=str(txt), report_json=str(js), safeguards=report_sg.to_dict(),
                     source_identity=identity)
            emit_json(d)
        elif not quiet:
            _summary(res, status, txt)
        if res.verification and not all(v.ok for v in res.verification):
            return 1
        if not res.complete:
            return 6
        return 0
    finally:
        src.close()


def _catch_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGINT/SIGTERM set ``stop``: the engine then stops between two blocks (no exception in a writer)."""
    old: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return old

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    return old


def _restore_signals(old: dict[int, Any]) -> None:
    for sig, h in old.items():
        signal.signal(sig, h)


def _summary(res: Any, status: str, txt: Path) -> None:
    echo: Callable[[str], None] = lambda s: click.echo(s, err=True)  # noqa: E731
    echo(f"{status}: {res.size} bytes acquired from {res.source}")
    for alg, h in res.hashes.items():
        echo(f"  {alg.upper():<7}{h}")
    if res.unreadable:
        echo(f"  unreadable: {len(res.unreadable)} range(s), zero-filled (see the report)")
    for v in res.verification:
        echo(f"  verify {v.path}: {'ok' if v.ok else 'FAILED'} ({v.detail})")
    if len(res.targets) > 1:
        for t in res.targets:
            state = t.state + (f" at media offset {t.failed_at}: {t.error}" if t.state == "failed" else "")
            echo(f"  copy {t.path} ({t.writer.format}): {state}")
    for t in res.targets:
        if t.padded_bytes:
            echo(f"  {t.path}: padded with {t.padded_bytes} zero bytes to a whole sector ({t.writer.format}"
                 " stores whole sectors); its stored hashes cover the padded media (see the report)")
    echo(f"  report: {txt}")
