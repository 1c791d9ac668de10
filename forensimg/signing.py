"""Signed manifests: a detached Ed25519 signature over what an image is and what it hashes to.

``forensimg sign IMAGE --key KEY`` verifies the image, then writes two files beside its first segment:

* ``IMAGE.manifest.json``: canonical JSON (sorted keys, no spaces, UTF-8) holding the image format and
  geometry, the media hashes as just computed (MD5, SHA-1, SHA-256), the hashes stored in the image, the
  fimg Merkle root, the case metadata, the acquisition time, the unreadable ranges, each segment file's
  name, size and SHA-256, and the head of the custody log (its last event's ``seq`` and line SHA-256);
* ``IMAGE.manifest.sig``: the 64-byte Ed25519 signature (RFC 8032) of the manifest file's exact bytes.

The cryptography is the ``cryptography`` package's; nothing is hand-rolled. The signature can also be
checked without forensimg::

    openssl pkeyutl -verify -pubin -inkey examiner.pub -rawin \\
        -in disk.E01.manifest.json -sigfile disk.E01.manifest.sig

:func:`check_manifest` (used by ``forensimg verify --public-key``) fails when the signature does not
match, or when any signed fact differs from the image as it is now: a segment's size or SHA-256, a stored
hash, the Merkle root, the format, size or case metadata. Segment *names* are not compared (a renamed
but identical set still verifies); the media hashes are handed to verify as a reference.
Keys: PEM, PKCS#8 private key (mode 0600) and SubjectPublicKeyInfo public key (:func:`generate_keypair`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from forensimg._version import __version__
from forensimg.errors import ImageNotFoundError, ImageReadError, IntegrityError, UsageError, WriteError
from forensimg.hashing import hash_file
from forensimg.image import Fault, FaultKind, Image
from forensimg.records import atomic_write

__all__ = [
    "MANIFEST_SCHEMA",
    "ManifestCheck",
    "build_manifest",
    "canonical_json",
    "check_manifest",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "manifest_paths",
    "sign_image",
]

MANIFEST_SCHEMA = "forensimg-manifest/1"
SIGNED_HASHES = ("md5", "sha1", "sha256")


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes of a manifest: sorted keys, no insignificant spaces, UTF-8, newline at the end."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def manifest_paths(first_segment: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``disk.E01`` → (``disk.E01.manifest.json``, ``disk.E01.manifest.sig``)."""
    p = Path(first_segment)
    return p.with_name(p.name + ".manifest.json"), p.with_name(p.name + ".manifest.sig")


# -- keys -------------------------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageNotFoundError(f"{what} '{path}' does not exist", path=path) from None
    except OSError as exc:
        raise ImageReadError(f"cannot read {what} '{path}': {exc.strerror}", path=path, errno_=exc.errno) from None


def generate_keypair(prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``PREFIX.key`` (PKCS#8 PEM, mode 0600) and ``PREFIX.pub`` (PEM).

    Raises:
        WriteError: a file exists already (keys are never overwritten) or cannot be written.
    """
    pre = Path(prefix)
    key_path, pub_path = pre.with_name(pre.name + ".key"), pre.with_name(pre.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists():
            raise WriteError(f"'{p}' exists already; not overwriting a key", path=p)
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, priv)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise WriteError(f"cannot write '{key_path}': {exc.strerror}", path=key_path, errno_=exc.errno) from None
    atomic_write(pub_path, pub)
    return key_path, pub_path


def load_private_key(path: str | os.PathLike[str], password: bytes | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key (PEM; ``password`` for an encrypted one).

    Raises:
        UsageError: the file is not an Ed25519 private key (or the password is wrong).
    """
    p = Path(path)
    try:
        key = serialization.load_pem_private_key(_read(p, "private key"), password=password)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"'{p}' is not a usable PEM private key: {exc}", path=p) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"'{p}' is not an Ed25519 private key", path=p)
    return key


def load_public_key(source: str | os.PathLike[str] | bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a PEM file path or PEM bytes.

    Raises:
        UsageError: not an Ed25519 public key.
    """
    where = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    data = source if isinstance(source, bytes) else _read(Path(source), "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"'{where}' is not a usable PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"'{where}' is not an Ed25519 public key")
    return key


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# -- manifest ---------------------------------------------------------------------------------------


def _custody_head(first: Path) -> dict[str, Any] | None:
    from forensimg.custody import CustodyLog, default_log_path

    lines = CustodyLog(default_log_path(first)).lines()
    if not lines:
        return None
    try:
        seq = json.loads(lines[-1]).get("seq")
    except (ValueError, AttributeError):
        seq = None
    return {"seq": seq, "sha256": hashlib.sha256(lines[-1]).hexdigest()}


def build_manifest(
    img: Image, media_hashes: Mapping[str, str], *, signer: Ed25519PublicKey | None = None, examiner: str = ""
) -> dict[str, Any]:
    """The manifest of an open image whose media hashes were just computed (see the module docstring)."""
    info = img.info
    first = Path(info.segments[0])
    segments = []
    for p in info.segments:
        segments.append({"name": Path(p).name, "size": Path(p).stat().st_size, "sha256": hash_file(str(p))["sha256"]})
    root = info.details.get("merkle_root")
    return {
        "schema": MANIFEST_SCHEMA,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "tool": f"forensimg {__version__}",
        "signer": {
            "examiner": examiner,
            "public_key_sha256": key_fingerprint(signer) if signer is not None else None,
        },
        "image": {
            "format": info.format,
            "format_version": info.format_version,
            "size": info.size,
            "sector_size": info.sector_size,
            "chunk_size": info.chunk_size,
        },
        "media_hashes": {k: v for k, v in media_hashes.items()},
        "stored_hashes": dict(info.stored_hashes),
        "merkle_root": root.hex() if isinstance(root, bytes) else (str(root) if root is not None else None),
        "case": info.case.to_dict(),
        "acquired_at": info.acquired_at.isoformat() if info.acquired_at else None,
        "unreadable": [[r.start, r.end] for r in info.unreadable],
        "segments": segments,
        "custody_head": _custody_head(first),
    }


def sign_image(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    key_path: str | os.PathLike[str],
    *,
    examiner: str = "",
    workers: int = 2,
    password: bytes | None = None,
) -> tuple[Path, Path, dict[str, Any]]:
    """Verify the image, then write ``IMAGE.manifest.json`` and ``IMAGE.manifest.sig`` (each atomically).

    The manifest is replaced first and the signature second; a crash between the two leaves a pair that
    fails to verify (visible), never a valid signature over the wrong manifest.

    Returns:
        The manifest path, the signature path and the manifest.

    Raises:
        IntegrityError: the image has a corrupt chunk or a hash mismatch; it is not signed.
        Error: the image cannot be opened (as :func:`forensimg.open`).
    """
    from forensimg.registry import open as open_image
    from forensimg.verify import verify

    key = load_private_key(key_path, password)
    paths = [source] if isinstance(source, str | os.PathLike) else list(source)
    with open_image(paths[0] if len(paths) == 1 else paths) as img:
        report = verify(img, hashes=SIGNED_HASHES, workers=workers, use_custody=False)
        if report.status not in ("verified", "no_reference"):
            raise IntegrityError(f"not signing '{img.info.segments[0]}': {report.verdict}", path=img.info.segments[0])
        computed = {h.algorithm: h.computed for h in report.hashes if h.computed and h.algorithm in SIGNED_HASHES}
        manifest = build_manifest(img, computed, signer=key.public_key(), examiner=examiner)
        first = Path(img.info.segments[0])
    data = canonical_json(manifest)
    mpath, spath = manifest_paths(first)
    atomic_write(mpath, data)
    atomic_write(spath, key.sign(data))
    return mpath, spath, manifest


@dataclass(frozen=True, slots=True)
class ManifestCheck:
    """Result of :func:`check_manifest`.

    Attributes:
        manifest_path: the manifest checked.
        valid: the signature matches the manifest bytes under the given key.
        faults: every difference (kind ``signature``): bad signature, changed segment, hash or field.
        media_hashes: the signed media hashes (a reference for verify), when the signature is valid.
        key_fingerprint: SHA-256 of the raw public key used.
        signed_at: when the manifest was made.
        custody_head: the custody log's last event (``seq``, ``sha256``) when the manifest was made.
    """

    manifest_path: Path
    valid: bool
    faults: tuple[Fault, ...] = ()
    media_hashes: Mapping[str, str] = field(default_factory=dict)
    key_fingerprint: str = ""
    signed_at: str | None = None
    custody_head: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ``signature`` member of the verify JSON)."""
        return {
            "manifest": str(self.manifest_path),
            "signature_valid": self.valid,
            "intact": self.valid and not self.faults,
            "public_key_sha256": self.key_fingerprint,
            "signed_at": self.signed_at,
            "media_hashes": dict(self.media_hashes),
        }


def check_manifest(img: Image, public_key: str | os.PathLike[str] | bytes) -> ManifestCheck:
    """Check the signed manifest of an open image against ``public_key`` and against the image as it is.

    Never raises for content: a missing manifest or signature, a bad signature and every changed fact are
    faults of kind ``signature``.

    Raises:
        UsageError: the public key cannot be loaded.
    """
    key = load_public_key(public_key)
    fp = key_fingerprint(key)
    info = img.info
    first = Path(info.segments[0])
    mpath, spath = manifest_paths(first)

    def fault(detail: str, *, segment: Path | str | None = None, expected: Any = None, found: Any = None) -> Fault:
        return Fault(
            FaultKind.SIGNATURE,
            detail,
            segment=str(segment if segment is not None else mpath),
            expected=None if expected is None else str(expected),
            found=None if found is None else str(found),
        )

    try:
        data = mpath.read_bytes()
        sig = spath.read_bytes()
    except OSError as exc:
        missing = exc.filename or mpath
        return ManifestCheck(
            mpath, False, (fault(f"no signed manifest: cannot read '{missing}'", segment=missing),), key_fingerprint=fp
        )
    try:
        key.verify(sig, data)
    except InvalidSignature:
        return ManifestCheck(
            mpath,
            False,
            (fault(f"the signature '{spath}' does not match '{mpath}' under the given public key", segment=spath),),
            key_fingerprint=fp,
        )
    try:
        m = json.loads(data)
        if not isinstance(m, dict) or m.get("schema") != MANIFEST_SCHEMA:
            raise ValueError("not a forensimg manifest")
    except ValueError as exc:
        return ManifestCheck(mpath, True, (fault(f"'{mpath}' is signed but unreadable: {exc}"),), key_fingerprint=fp)

    faults: list[Fault] = []
    im = m.get("image", {})
    for name, now in (
        ("format", info.format),
        ("size", info.size),
        ("sector_size", info.sector_size),
        ("chunk_size", info.chunk_size),
    ):
        if im.get(name) != now:
            faults.append(fault(f"image {name} changed since signing", expected=im.get(name), found=now))
    if dict(m.get("stored_hashes", {})) != dict(info.stored_hashes):
        faults.append(
            fault(
                "the hashes stored in the image changed since signing",
                expected=json.dumps(m.get("stored_hashes"), sort_keys=True),
                found=json.dumps(dict(info.stored_hashes), sort_keys=True),
            )
        )
    root = info.details.get("merkle_root")
    root_now = root.hex() if isinstance(root, bytes) else (str(root) if root is not None else None)
    if m.get("merkle_root") != root_now:
        faults.append(fault("the Merkle root changed since signing", expected=m.get("merkle_root"), found=root_now))
    if m.get("case") != info.case.to_dict():
        faults.append(
            fault(
                "the case metadata changed since signing",
                expected=json.dumps(m.get("case"), sort_keys=True),
                found=json.dumps(info.case.to_dict(), sort_keys=True),
            )
        )
    signed_segs = m.get("segments", [])
    if len(signed_segs) != len(info.segments):
        faults.append(
            fault(
                "the number of segment files changed since signing", expected=len(signed_segs), found=len(info.segments)
            )
        )
    for i, (seg, p) in enumerate(zip(signed_segs, info.segments, strict=False), 1):
        p = Path(p)
        try:
            size = p.stat().st_size
        except OSError:
            size = None
        if seg.get("size") != size:
            faults.append(
                fault(
                    f"segment {i} ('{p.name}') size changed since signing",
                    segment=p,
                    expected=seg.get("size"),
                    found=size,
                )
            )
            continue
        digest = hash_file(str(p))["sha256"]
        if seg.get("sha256") != digest:
            faults.append(
                fault(
                    f"segment {i} ('{p.name}') content changed since signing (SHA-256)",
                    segment=p,
                    expected=seg.get("sha256"),
                    found=digest,
                )
            )
    media = {k: v for k, v in dict(m.get("media_hashes", {})).items() if isinstance(v, str)}
    head = m.get("custody_head")
    head = head if isinstance(head, dict) and isinstance(head.get("seq"), int) else None
    return ManifestCheck(mpath, True, tuple(faults), media, fp, m.get("created_at"), head)
