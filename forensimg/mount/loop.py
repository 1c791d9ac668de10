"""forensimg's own request loop for libfuse 3: one request at a time, polling briefly for the next one.

Why: a FUSE server that serves one request at a time pays, for every request of a reader that waits for
each answer (``cat``, ``sha256sum``, Sleuth Kit, a database engine reading pages), a sleep in
``read(/dev/fuse)`` after its reply and a wake-up when the next request comes. On the two-vCPU VM the
benchmarks run on, the wake-up of an idle vCPU costs more than serving a cached 4 KiB read, and the next
request of such a reader comes 20-100 µs after the reply. So after each request this loop keeps asking
``/dev/fuse`` (non-blocking) for the next one for a short window (``poll_us``, default 100 µs) before it
sleeps in ``poll(2)``, yielding the CPU between its tries (``sched_yield``: the readers it waits for may
need that CPU; an idle one returns at once). When requests queue up (several readers) it never waits at
all, and unlike a pool of libfuse worker threads it never hands the GIL between threads.

Measured with ``bench/bench_mount.py`` (2026-11-28 10:40 UTC, 5 rounds of 10,000 random 4 KiB reads on a
256 MiB E01, ratios to ewfmount, best / median / paired): one ``O_DIRECT`` reader 1.81x / 1.30x / 1.43x
(libfuse's single-threaded loop 1.12x / 0.74x / 0.76x), four readers 1.28x / 1.13x / 1.13x (libfuse's
single-threaded loop 1.30x / 1.15x / 1.22x, the same CPU per read). The window sweep and the earlier loops
are in bench/README.md. The window costs at most ``poll_us`` of CPU after the last request of a burst.

How: the steps of libfuse's ``fuse_main_real`` (lib/helper.c: ``fuse_new``, ``fuse_mount``, the signal
handlers, then ``fuse_unmount`` and ``fuse_destroy``) around the loop of ``fuse_session_loop``
(lib/fuse_loop.c: ``fuse_session_receive_buf`` then ``fuse_session_process_buf``), all public libfuse 3
API called through ctypes; the file system callbacks are the table mfusepy built. SIGINT, SIGTERM and
SIGHUP end the loop through libfuse's handlers (they mark the session exited and interrupt ``poll``);
an unmount ends it through ``ENODEV``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from typing import Any

__all__ = ["DEFAULT_POLL_US", "available", "run"]

DEFAULT_POLL_US = 100
"""How long the loop keeps asking for the next request after serving one, in µs (see the module docstring)."""

_POLLIN = 0x001
_NEEDED = (
    "fuse_new_31", "fuse_mount", "fuse_unmount", "fuse_destroy", "fuse_get_session", "fuse_set_signal_handlers",
    "fuse_remove_signal_handlers", "fuse_session_fd", "fuse_session_exited", "fuse_session_receive_buf",
    "fuse_session_process_buf", "fuse_opt_free_args",
)  # fmt: skip
_FUSE_BUF_BYTES = 256
"""Room for ``struct fuse_buf`` (40 bytes in libfuse 3.14), zeroed: libfuse allocates its ``mem``."""
_FUSE_BUF_MEM = 16
"""Offset of ``void *mem`` in ``struct fuse_buf`` (after ``size_t size`` and ``enum fuse_buf_flags``)."""


class _FuseArgs(ctypes.Structure):
    """``struct fuse_args`` (fuse_opt.h)."""

    _fields_ = [("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p)), ("allocated", ctypes.c_int)]


class _PollFd(ctypes.Structure):
    """``struct pollfd`` (poll.h)."""

    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def available(lib: Any, version: tuple[int, int]) -> bool:
    """Whether ``lib`` (the libfuse mfusepy loaded, of ``version``) offers what :func:`run` calls."""
    return version[0] == 3 and all(hasattr(lib, name) for name in _NEEDED)


def _declare(lib: Any) -> None:
    vp, i = ctypes.c_void_p, ctypes.c_int
    lib.fuse_new_31.restype = vp
    lib.fuse_new_31.argtypes = [ctypes.POINTER(_FuseArgs), vp, ctypes.c_size_t, vp]
    lib.fuse_mount.restype = i
    lib.fuse_mount.argtypes = [vp, ctypes.c_char_p]
    for name in ("fuse_unmount", "fuse_destroy", "fuse_remove_signal_handlers"):
        getattr(lib, name).restype = None
        getattr(lib, name).argtypes = [vp]
    lib.fuse_get_session.restype = vp
    lib.fuse_get_session.argtypes = [vp]
    for name in ("fuse_set_signal_handlers", "fuse_session_fd", "fuse_session_exited"):
        getattr(lib, name).restype = i
        getattr(lib, name).argtypes = [vp]
    lib.fuse_session_receive_buf.restype = i
    lib.fuse_session_receive_buf.argtypes = [vp, vp]
    lib.fuse_session_process_buf.restype = None
    lib.fuse_session_process_buf.argtypes = [vp, vp]
    lib.fuse_opt_free_args.restype = None
    lib.fuse_opt_free_args.argtypes = [ctypes.POINTER(_FuseArgs)]


def run(lib: Any, argv: list[bytes], ops: Any, ops_size: int, user_data: Any, *, poll_us: int = DEFAULT_POLL_US) -> int:
    """Mount and serve until unmounted or signalled, as ``fuse_main_real(argc, argv, ops, size, data)`` would.

    ``argv`` is the command line mfusepy built (``fuse [-f] [-d] [-s] -o OPTIONS MOUNTPOINT``): the
    mount point is its last item; ``-f`` and ``-s`` (foreground, single-threaded) describe this loop
    anyway and are dropped; the rest goes to ``fuse_new``. Returns ``fuse_main_real``'s codes: 0 when
    the loop ended normally, 3 ``fuse_new`` failed, 4 the mount failed, 6 the signal handlers could not
    be set, 7 the loop ended on an error.
    """
    _declare(lib)
    words = [a for a in argv[:-1] if a not in (b"-f", b"-s")]
    mountpoint = argv[-1]
    cargv = (ctypes.c_char_p * (len(words) + 1))(*words, None)
    args = _FuseArgs(len(words), cargv, 0)
    fuse = lib.fuse_new_31(ctypes.byref(args), ctypes.cast(ops, ctypes.c_void_p), ops_size, user_data)
    try:
        if not fuse:
            return 3
        try:
            if lib.fuse_mount(fuse, mountpoint) != 0:
                return 4
            se = lib.fuse_get_session(fuse)
            if lib.fuse_set_signal_handlers(se) != 0:
                return 6
            try:
                return 7 if _serve(lib, se, poll_us * 1000) < 0 else 0
            finally:
                lib.fuse_remove_signal_handlers(se)
        finally:
            lib.fuse_unmount(fuse)  # nothing to do when the kernel mount is already gone
            lib.fuse_destroy(fuse)
    finally:
        lib.fuse_opt_free_args(ctypes.byref(args))


def _serve(lib: Any, se: int, poll_ns: int) -> int:
    """The request loop; 0 when the session ended (unmount, signal), else the negative errno that ended it."""
    libc = ctypes.CDLL(None, use_errno=True)
    cpoll = libc.poll
    cpoll.restype = ctypes.c_int
    cpoll.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]
    fd = lib.fuse_session_fd(se)
    pfd = _PollFd(fd, _POLLIN, 0)
    pref = ctypes.byref(pfd)
    buf = ctypes.create_string_buffer(_FUSE_BUF_BYTES)
    bref = ctypes.byref(buf)
    receive = lib.fuse_session_receive_buf
    process = lib.fuse_session_process_buf
    exited = lib.fuse_session_exited
    clock = time.perf_counter_ns
    yield_cpu = os.sched_yield
    again, intr = -errno.EAGAIN, -errno.EINTR
    # non-blocking: receive answers -EAGAIN (silently, fuse_lowlevel.c) when no request is waiting
    os.set_blocking(fd, False)
    res = 0
    try:
        # fuse_session_receive_buf itself answers 0 once the session is exited (a signal, fuse_exit) or
        # unmounted (lib/fuse_lowlevel.c), so the loop needs no separate exited() call per request
        while True:
            res = receive(se, bref)
            if res > 0:
                process(se, bref)
                continue
            if res == again:
                if poll_ns:
                    deadline = clock() + poll_ns
                    while res == again and clock() < deadline:
                        # give the CPU to whatever else is runnable here (the readers whose next requests
                        # are awaited, on a machine with few cores); on an otherwise idle CPU this returns
                        # at once
                        yield_cpu()
                        res = receive(se, bref)
                    if res > 0:
                        process(se, bref)
                        continue
                if res == again:
                    # sleep until a request comes; a signal interrupts poll (EINTR) and the next receive
                    # answers 0 if libfuse's handler has marked the session exited
                    cpoll(pref, 1, -1)
                    continue
            if res == intr:
                if exited(se):
                    break
                continue
            break  # 0: unmounted or exited; another negative errno: a failure of /dev/fuse
    finally:
        mem = ctypes.c_void_p.from_buffer(buf, _FUSE_BUF_MEM).value
        if mem:
            libc.free.restype = None
            libc.free.argtypes = [ctypes.c_void_p]
            libc.free(mem)
    return res if res < 0 else 0
