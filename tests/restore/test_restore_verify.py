"""What a restore's read-back is compared with, and that a wrong image or a lying destination fails.

Where the image stores hashes, they are the reference: the write phase computes no whole-media hash
(each chunk is checked before it is written) and the read-back from the device must equal the stored
hashes. Where it stores none (raw without a sidecar), or for an algorithm asked for with ``hashes=``
that is not stored, the hash of what was written, computed while writing, is the reference. A mismatch
with a stored hash is located by hashing the media again from the image. The destinations are real:
regular files, loop devices, and a loop device over a FUSE file that flips bytes on read
(tests/restore/liar.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import forensimg.restore as R
from forensimg.cli import main
from forensimg.restore import restore
from tests.helpers import canonical
from tests.restore.liar import needs_fuse
from tests.restore.loopdev import make_backing, needs_loop, read_device

FLIP = (700_001, 700_003)  # bytes the lying destination inverts on read (inside the media)


def _raw(tmp_path: Path, name: str = "canonical.raw", *, sidecars: dict[str, str] | None = None) -> tuple[Path, bytes]:
    data = canonical()
    p = tmp_path / name
    p.write_bytes(data)
    for alg, digest in (sidecars or {}).items():
        (tmp_path / f"{name}.{alg}").write_text(f"{digest}  {name}\n")
    return p, data


def _good_sidecars(data: bytes) -> dict[str, str]:
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


def _cli_json(capsys, *args: str) -> tuple[int, dict]:
    rc = main(["--no-custody", "restore", "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_stored_hashes_are_the_reference_and_nothing_is_hashed_while_writing(tmp_path):
    image, data = _raw(tmp_path, sidecars=_good_sidecars(canonical()))
    dest = tmp_path / "clone.dd"
    res = restore(image, dest, confirm=str(dest))
    assert dest.read_bytes() == data
    assert res.status == "verified" and res.exit_code == 0
    assert res.written_hashes == {} and res.written_from == {}
    assert res.readback_hashes == res.stored_hashes == _good_sidecars(data)
    checks = res.hash_checks()
    assert [h["algorithm"] for h in checks] == ["md5", "sha256"]
    assert all(h["compared_with"] == ["stored"] and h["matches_stored"] for h in checks)
    assert all(h["written"] is None and h["read_back_matches_written"] is None for h in checks)
    text = res.to_text()
    assert "VERIFIED: the read-back equals the image's stored hashes" in text
    assert "not hashed while writing" in text
    assert res.readback_method.startswith("O_DIRECT read-back behind the writer")


def test_without_stored_hashes_what_was_written_is_the_reference(tmp_path, capsys):
    image, data = _raw(tmp_path)  # no sidecar: nothing stored
    dest = tmp_path / "clone.dd"
    rc, d = _cli_json(capsys, str(image), str(dest), "--confirm", str(dest), "--report", str(tmp_path / "r.txt"))
    assert rc == 4 and d["status"] == "no_reference" and d["stored_hashes"] == {}
    want = {"md5": hashlib.md5(data).hexdigest(), "sha1": hashlib.sha1(data).hexdigest()}
    assert d["written_hashes"] == d["readback_hashes"] == want
    assert d["written_from"] == {"md5": "write", "sha1": "write"}
    assert all(h["compared_with"] == ["written"] and h["read_back_matches_written"] for h in d["hashes"])


def test_an_algorithm_not_stored_is_hashed_while_writing_only_for_itself(tmp_path):
    image, data = _raw(tmp_path, sidecars={"md5": hashlib.md5(canonical()).hexdigest()})
    dest = tmp_path / "clone.dd"
    res = restore(image, dest, confirm=str(dest), hashes="sha256")
    assert res.status == "verified"
    assert res.written_hashes == {"sha256": hashlib.sha256(data).hexdigest()}  # md5 is stored: not hashed twice
    assert res.readback_hashes == {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}
    by = {h["algorithm"]: h for h in res.hash_checks()}
    assert by["sha256"]["compared_with"] == ["written"] and by["md5"]["compared_with"] == ["stored"]


def test_a_wrong_stored_hash_fails_and_the_image_is_named_as_the_cause(tmp_path, capsys):
    data = canonical()
    wrong = {"md5": hashlib.md5(data + b"x").hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    image, _ = _raw(tmp_path, sidecars=wrong)
    dest = tmp_path / "clone.dd"
    rc, d = _cli_json(capsys, str(image), str(dest), "--confirm", str(dest), "--report", str(tmp_path / "r.txt"))
    assert rc == 1 and d["status"] == "mismatch"
    assert dest.read_bytes() == data  # the destination holds the media: the image's stored hash is wrong
    by = {h["algorithm"]: h for h in d["hashes"]}
    assert by["md5"]["matches_stored"] is False and by["sha256"]["matches_stored"] is True
    # located: the media hashed again from the image equals the read-back
    assert by["md5"]["written_from"] == "image" and by["md5"]["read_back_matches_written"] is True
    assert by["md5"]["compared_with"] == ["stored"]
    assert "does not match its own stored MD5" in d["diagnosis"]
    assert "MISMATCH" in (tmp_path / "r.txt").read_text()


@pytest.mark.root
@needs_loop
@needs_fuse
@pytest.mark.parametrize(("window", "direct"), [(0, True), (0, False), (None, False)],
                         ids=["behind-direct", "behind-buffered", "after-buffered"])
@pytest.mark.parametrize("stored", [True, False], ids=["stored", "no-stored"])
def test_a_destination_returning_other_bytes_fails_the_read_back(tmp_path, capsys, monkeypatch, liar_device, window,
                                                                 direct, stored):
    data = canonical()
    image, _ = _raw(tmp_path, sidecars=_good_sidecars(data) if stored else None)
    backing = make_backing(tmp_path / "disk.img", len(data) + (1 << 20))
    dev = liar_device(backing, flip=FLIP)
    # the read-back overlapping the writes (default) after O_DIRECT or buffered writes (an O_DIRECT read
    # writes back the range's dirty pages first), and the read-back after the final fsync: each must see
    # what the device returns
    monkeypatch.setattr(R, "VERIFY_WINDOW", window)
    monkeypatch.setattr(R, "DIRECT_WRITE", direct)
    rc, d = _cli_json(capsys, str(image), dev, "--confirm", dev, "--report", str(tmp_path / "r.txt"))
    assert rc == 1 and d["status"] == "mismatch", d
    assert backing.read_bytes()[: len(data)] == data  # it was written right ...
    got = read_device(dev, 0, len(data))  # ... but is read back wrong
    assert got[FLIP[0] : FLIP[1]] != data[FLIP[0] : FLIP[1]]
    corrupted = hashlib.md5(got).hexdigest()
    assert d["readback_hashes"]["md5"] == corrupted
    by = {h["algorithm"]: h for h in d["hashes"]}
    assert by["md5"]["read_back_matches_written"] is False
    assert by["md5"]["written"] == hashlib.md5(data).hexdigest()
    if stored:
        assert by["md5"]["matches_stored"] is False and by["md5"]["written_from"] == "image"
    else:
        assert by["md5"]["matches_stored"] is None and by["md5"]["written_from"] == "write"
    assert "the destination returned other bytes than were written" in d["diagnosis"]
    assert d["readback_method"].startswith("O_DIRECT read-back " + ("behind the writer" if window == 0 else
                                                                    "after the final fsync"))
    assert ("(O_DIRECT writes" if direct else "(buffered writes") in d["readback_method"]
