"""forensimg: forensic disk images — read, write, acquire, verify, browse.

Quick start::

    import forensimg
    with forensimg.open("disk.E01") as img:      # raw, split raw, E01 or fimg
        img.seek(512)
        sector = img.read(512)
        print(img.info.stored_hashes)

    with forensimg.create("copy.E01", case=forensimg.CaseInfo(case_number="42")) as w:
        w.write(data)
"""

from __future__ import annotations

from forensimg import errors
from forensimg._version import __version__
from forensimg.errors import (
    ChecksumError,
    Error,
    FormatError,
    ImageNotFoundError,
    MissingSegmentError,
    UnsupportedFormatError,
)
from forensimg.hashing import MultiHasher, hash_image
from forensimg.image import CaseInfo, Fault, FaultKind, Image, ImageInfo, Range, SourceInfo
from forensimg.registry import create, detect, open
from forensimg.verify import VerifyReport, verify
from forensimg.writer import ImageWriter, WriteResult

__all__ = [
    "CaseInfo",
    "ChecksumError",
    "Error",
    "Fault",
    "FaultKind",
    "FormatError",
    "Image",
    "ImageInfo",
    "ImageNotFoundError",
    "ImageWriter",
    "MissingSegmentError",
    "MultiHasher",
    "Range",
    "SourceInfo",
    "UnsupportedFormatError",
    "VerifyReport",
    "WriteResult",
    "__version__",
    "create",
    "detect",
    "errors",
    "hash_image",
    "open",
    "verify",
]
