"""forensimg verify on raw and split raw images: references, exit codes, faults, JSON, custody."""

from __future__ import annotations

import json
import os

import pytest

import forensimg
from forensimg.custody import CustodyEvent, CustodyLog
from forensimg.errors import UsageError
from forensimg.image import FaultKind
from forensimg.verify import parse_expect, parse_range, verify, worst_exit_code
from tests.helpers import canonical, write_split
from tests.verify.common import cli, cli_json, md5, sha256

DATA = canonical()
MD5 = md5(DATA)
SHA256 = sha256(DATA)


@pytest.fixture
def raw(tmp_path):
    p = tmp_path / "disk.raw"
    p.write_bytes(DATA)
    return p


@pytest.fixture
def split(tmp_path):
    return write_split(DATA, tmp_path / "disk.001", 400_000)  # 3 members


def _sidecar(p, alg="md5", value=None):
    value = value or (MD5 if alg == "md5" else sha256(DATA))
    p.with_name(p.name + "." + alg).write_text(f"{value}  {p.name}\n")


# -- exit codes -----------------------------------------------------------------------------------


def test_raw_without_reference_is_exit_4_not_verified(raw, capsys):
    code, out, _ = cli(capsys, "verify", raw)
    assert code == 4
    last = out.strip().splitlines()[-1]
    assert last.startswith("NO REFERENCE:") and "0 faults" in last
    code, doc = cli_json(capsys, "verify", raw)
    assert code == 4 and doc["status"] == "no_reference" and doc["exit_code"] == 4
    # the hashes are still computed and shown, so an examiner can record them
    assert {h["algorithm"]: h["computed"] for h in doc["hashes"]}["md5"] == MD5
    assert all(h["match"] is None for h in doc["hashes"])


def test_sidecar_hash_verifies_exit_0(raw, capsys):
    _sidecar(raw, "md5")
    _sidecar(raw, "sha256")
    code, out, _ = cli(capsys, "verify", raw)
    assert code == 0
    assert out.strip().splitlines()[-1] == "VERIFIED: MD5, SHA-256 match the hashes stored in the image; 0 faults"
    code, doc = cli_json(capsys, "verify", raw)
    assert doc["status"] == "verified" and doc["image"]["format"] == "raw" and doc["image"]["size"] == len(DATA)
    assert {h["algorithm"] for h in doc["hashes"]} == {"md5", "sha256"}
    assert all(h["match"] and h["stored"] == h["computed"] for h in doc["hashes"])


def test_expect_match_and_mismatch(raw, capsys):
    code, out, _ = cli(capsys, "verify", raw, "--expect", f"md5:{MD5.upper()}", "--expect", f"sha256:{SHA256}")
    assert code == 0 and "match --expect" in out
    bad = "0" * 32
    code, out, _ = cli(capsys, "verify", raw, "--expect", f"md5:{bad}")
    assert code == 1
    assert out.strip().splitlines()[-1] == "FAILED: MD5 mismatch (expect)"
    code, doc = cli_json(capsys, "verify", raw, "--expect", f"md5:{bad}")
    assert doc["status"] == "mismatch" and doc["exit_code"] == 1
    (f,) = doc["faults"]
    assert f["kind"] == "hash_mismatch" and f["expected"] == bad and f["found"] == MD5


def test_bad_expect_is_usage_error(raw, capsys):
    code, _, err = cli(capsys, "verify", raw, "--expect", "md5:abc")
    assert code == 2 and "--expect" in err
    with pytest.raises(UsageError):
        parse_expect(["sha1:" + "0" * 32])
    assert parse_expect(["0" * 64]) == {"sha256": "0" * 64}


def test_missing_image_is_exit_3_with_report(tmp_path, capsys):
    code, doc = cli_json(capsys, "verify", tmp_path / "nope.raw")
    assert code == 3 and doc["status"] == "unreadable" and doc["error"]
    assert doc["faults"][0]["kind"] == "io_error"
    assert not (tmp_path / "nope.raw.custody.jsonl").exists()


def test_deleted_middle_split_member_is_exit_3(split, capsys):
    _sidecar(split[0])
    split[1].unlink()
    code, doc = cli_json(capsys, "verify", split[0])
    assert code == 3 and doc["status"] == "unreadable"
    (f,) = doc["faults"]
    assert f["kind"] == "missing_segment" and f["segment"].endswith("disk.002")
    code, out, _ = cli(capsys, "verify", split[0])
    assert out.strip().splitlines()[-1].startswith("UNREADABLE:") and "disk.002" in out


def test_truncated_last_split_member_is_mismatch(split, capsys):
    _sidecar(split[0])
    os.truncate(split[-1], split[-1].stat().st_size - 512)
    code, doc = cli_json(capsys, "verify", split[0])
    assert code == 1 and doc["status"] == "mismatch"
    assert doc["image"]["size"] == len(DATA) - 512


def test_flipped_byte_in_split_member_is_mismatch(split, capsys):
    _sidecar(split[0], "sha256")
    with split[1].open("r+b") as f:
        f.seek(1234)
        f.write(b"\xff")
    code, out, _ = cli(capsys, "verify", split[0])
    assert code == 1 and out.strip().splitlines()[-1] == "FAILED: SHA-256 mismatch (stored)"


def test_renamed_identical_split_set_verifies(split, tmp_path, capsys):
    hf = tmp_path / "acq.md5"
    hf.write_text(f"{MD5}  disk.001\n")  # names the set as it was acquired
    renamed = []
    for i, p in enumerate(split, 1):
        q = p.with_name(f"evidence.{i:03d}")
        p.rename(q)
        renamed.append(q)
    code, doc = cli_json(capsys, "verify", renamed[1], "--hash-file", hf)  # any member names the set
    assert code == 0 and doc["status"] == "verified"
    assert doc["image"]["format"] == "split" and len(doc["image"]["segments"]) == 3
    assert doc["hashes"][0]["references"][0]["source"] == "hash_file"


def test_several_images_worst_exit_code_wins(tmp_path, raw, capsys):
    _sidecar(raw)
    noref = tmp_path / "other.raw"
    noref.write_bytes(DATA[:4096])
    bad = tmp_path / "bad.raw"
    bad.write_bytes(DATA)
    _sidecar(bad, value="1" * 32)
    missing = tmp_path / "missing.raw"
    code, doc = cli_json(capsys, "verify", raw, noref)
    assert code == 4 and [d["exit_code"] for d in doc] == [0, 4]
    code, doc = cli_json(capsys, "verify", raw, missing, noref)
    assert code == 3 and [d["status"] for d in doc] == ["verified", "unreadable", "no_reference"]
    code, doc = cli_json(capsys, "verify", missing, bad, raw)
    assert code == 1 and [d["exit_code"] for d in doc] == [3, 1, 0]
    code, out, _ = cli(capsys, "verify", raw, bad)
    assert code == 1 and out.count("== ") == 2
    assert out.strip().splitlines()[-1] == "OVERALL FAILED: 1 of 2 images verified; exit code 1"
    assert worst_exit_code([0, 4, 3, 1]) == 1 and worst_exit_code([0, 4]) == 4 and worst_exit_code([]) == 0


# -- references -----------------------------------------------------------------------------------


def test_acquisition_report_and_custody_record_are_references(raw, capsys):
    (raw.with_name(raw.name + ".json")).write_text(json.dumps({"result": {"hashes": {"md5": MD5}}}))
    code, doc = cli_json(capsys, "--no-custody", "verify", raw)
    assert code == 0 and doc["hashes"][0]["references"][0]["source"] == "report"
    raw.with_name(raw.name + ".json").unlink()
    log = CustodyLog(raw.with_name(raw.name + ".custody.jsonl"))
    log.append(CustodyEvent("acquire", result={"hashes": {"md5": "2" * 32, "sha1": "3" * 40}}))
    log.append(CustodyEvent("acquire", result={"hashes": {"sha256": SHA256}}))  # the latest one counts
    log.append(CustodyEvent("verify", result={"hashes": {"md5": "4" * 32}}))  # not an acquisition
    code, doc = cli_json(capsys, "verify", raw)
    assert code == 0, doc["verdict"]
    (h,) = doc["hashes"]
    assert h["algorithm"] == "sha256" and h["references"][0]["source"] == "custody"
    assert h["references"][0]["origin"].endswith("seq 2")


def test_every_verify_appends_one_custody_event(raw, capsys):
    _sidecar(raw)
    log = CustodyLog(raw.with_name(raw.name + ".custody.jsonl"))
    for expected in (1, 2):
        assert cli(capsys, "--examiner", "Ann", "verify", raw)[0] == 0
        ev = log.events()
        assert len(ev) == expected
    last = ev[-1]
    assert last["action"] == "verify" and last["examiner"] == "Ann"
    assert last["result"]["status"] == "verified" and last["result"]["exit_code"] == 0
    assert last["result"]["hashes"]["md5"] == MD5
    assert last["inputs"][0]["path"].endswith("disk.raw") and last["inputs"][0]["size"] == len(DATA)
    assert log.check_chain() == ()
    assert cli(capsys, "--no-custody", "verify", raw)[0] == 0
    assert len(log.events()) == 2


def test_broken_custody_log_fails_verify(raw, capsys):
    _sidecar(raw)
    for _ in range(3):
        cli(capsys, "verify", raw)
    logp = raw.with_name(raw.name + ".custody.jsonl")
    lines = logp.read_bytes().splitlines(keepends=True)
    logp.write_bytes(lines[0] + lines[2])  # a deleted middle event
    code, doc = cli_json(capsys, "verify", raw)
    assert code == 1 and doc["status"] == "faults"
    assert doc["faults"][0]["kind"] == "chain_broken" and "line 2" in doc["faults"][0]["detail"]
    assert doc["verdict"] == "FAILED: custody chain broken"


# -- ranges ---------------------------------------------------------------------------------------


def test_range_on_raw_is_chunk_checks_only_exit_4(raw, capsys):
    _sidecar(raw)
    code, doc = cli_json(capsys, "verify", raw, "--range", "0x100000:")
    assert code == 4 and doc["status"] == "no_reference"
    assert doc["range"]["method"] == "chunks" and doc["range"]["proven"] is False
    assert doc["range"]["start"] == 1 << 20 and doc["range"]["end"] == len(DATA)
    assert doc["range"]["first_lba"] == 2048 and doc["hashes"] == []
    assert doc["bytes_read"] < len(DATA)
    code, out, _ = cli(capsys, "verify", raw, "--range", "0:4k")
    assert code == 4 and "no chunk checks" in out.strip().splitlines()[-1]
    assert cli(capsys, "verify", raw, "--range", "0:2M")[0] == 2
    assert cli(capsys, "verify", raw, "--range", "zzz")[0] == 2
    assert cli(capsys, "verify", raw, "--range", "0:10", "--expect", f"md5:{MD5}")[0] == 2
    assert parse_range("1s+2s") == (512, 1536) and parse_range("0x10:0x20") == (16, 32)


# -- library API ----------------------------------------------------------------------------------


def test_library_verify_open_image_and_progress(raw):
    seen = []
    with forensimg.open(raw) as img:
        rep = verify(img, expect={"MD5": MD5}, workers=3, on_progress=lambda d, t: seen.append((d, t)))
        assert not img.closed  # an image passed in stays open
    assert rep.status == "verified" and rep.exit_code == 0 and rep.bytes_read == len(DATA)
    assert seen[-1] == (len(DATA), len(DATA))
    assert rep.started <= rep.finished and rep.started.tzinfo is not None
    assert rep.to_dict()["image"]["paths"] == [str(raw)]
    assert forensimg.verify is verify


def test_faults_from_chunk_checks_are_all_reported(tmp_path):
    """A format whose chunks fail: every bad chunk is listed with its location, not only the first."""
    from forensimg.errors import ChecksumError
    from forensimg.formats.raw import RawImage

    class Flaky(RawImage):
        def _read_chunk(self, index):
            if index in (1, 3):
                r = self.chunk_range(index)
                raise ChecksumError(
                    f"chunk {index} bad",
                    path=self.info.segments[0],
                    offset=r.start,
                    chunk=index,
                    media_start=r.start,
                    media_end=r.end,
                )
            return super()._read_chunk(index)

    p = tmp_path / "f.raw"
    p.write_bytes(DATA)
    with Flaky([p]) as img:
        rep = verify(img, expect={"md5": MD5}, workers=2, use_custody=False)
    assert rep.status == "faults" and rep.exit_code == 1
    chunk_faults = [f for f in rep.faults if f.kind == FaultKind.CHECKSUM]
    assert [f.chunk for f in chunk_faults] == [1, 3]
    d = chunk_faults[0].to_dict(512)
    assert d["media"] == {"start": 262144, "end": 524288, "length": 262144, "first_lba": 512, "last_lba": 1023}
    assert d["segment"] == str(p) and d["offset"] == 262144
    assert rep.verdict == "FAILED: 2 corrupt chunks, MD5 mismatch (expect)"


def test_documented_example_follows_the_schema():
    import re

    from tests.helpers import ROOT
    from tests.verify.common import validate

    text = (ROOT / "docs" / "verify-json.md").read_text()
    (block,) = re.findall(r"```json\n(.*?)```", text, re.S)
    doc = validate(json.loads(block))
    assert doc["status"] == "faults" and doc["exit_code"] == 1


def test_real_acquisition_report_and_custody_event_are_found(tmp_path, capsys):
    src = tmp_path / "src.bin"
    src.write_bytes(DATA)
    target = tmp_path / "t.raw"
    assert cli(capsys, "acquire", src, target, "-q")[0] == 0
    for alg in ("md5", "sha1"):
        target.with_name(f"t.raw.{alg}").unlink()  # no sidecars: only the report and the custody log remain
    code, out, _ = cli(capsys, "verify", target)
    assert code == 0
    assert out.strip().splitlines()[-1] == (
        "VERIFIED: MD5, SHA-1 match the acquisition report and the custody record; 0 faults"
    )
