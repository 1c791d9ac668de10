"""Signed manifests: keygen, sign, verify --public-key; any changed segment, hash or field fails."""

from __future__ import annotations

import json
import stat
import subprocess

import pytest

from forensimg.signing import MANIFEST_SCHEMA, canonical_json, generate_keypair
from tests.helpers import canonical, have, write_split
from tests.verify.common import cli, cli_json, flip, md5, sha256

DATA = canonical()


@pytest.fixture
def keys(tmp_path):
    return generate_keypair(tmp_path / "examiner")


@pytest.fixture
def signed(tmp_path, keys, capsys):
    members = write_split(DATA, tmp_path / "disk.001", 400_000)
    code, out, _ = cli(capsys, "--examiner", "Ann", "sign", members[0], "--key", keys[0])
    assert code == 0 and out.strip().splitlines()[-1].startswith("SIGNED: 3 segment file(s)")
    return members


def _manifest(members):
    return members[0].with_name(members[0].name + ".manifest.json")


def test_keygen_modes_and_no_overwrite(tmp_path, capsys):
    code, out, _ = cli(capsys, "keygen", tmp_path / "lab", "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["public_key_sha256"]) == 64
    assert stat.S_IMODE((tmp_path / "lab.key").stat().st_mode) == 0o600
    assert (tmp_path / "lab.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = (tmp_path / "lab.key").read_bytes()
    code, _, err = cli(capsys, "keygen", tmp_path / "lab")
    assert code == 3 and "exists already" in err and (tmp_path / "lab.key").read_bytes() == before


def test_manifest_content_is_canonical(signed, keys):
    raw = _manifest(signed).read_bytes()
    m = json.loads(raw)
    assert canonical_json(m) == raw  # sorted keys, compact, UTF-8
    assert m["schema"] == MANIFEST_SCHEMA and m["image"]["format"] == "split" and m["image"]["size"] == len(DATA)
    assert m["media_hashes"]["md5"] == md5(DATA) and m["media_hashes"]["sha256"] == sha256(DATA)
    assert [s["name"] for s in m["segments"]] == ["disk.001", "disk.002", "disk.003"]
    assert m["segments"][1] == {"name": "disk.002", "size": 400_000, "sha256": sha256(DATA[400_000:800_000])}
    assert m["signer"]["examiner"] == "Ann" and m["merkle_root"] is None
    assert len(signed[0].with_name("disk.001.manifest.sig").read_bytes()) == 64


def test_verify_with_public_key_passes(signed, keys, capsys):
    code, doc = cli_json(capsys, "verify", signed[0], "--public-key", keys[1])
    assert code == 0 and doc["status"] == "verified"
    assert doc["signature"]["intact"] and doc["signature"]["signature_valid"]
    assert {r["source"] for h in doc["hashes"] for r in h["references"]} == {"manifest"}
    # the custody log records the signing and the verification
    ev = [json.loads(x) for x in signed[0].with_name("disk.001.custody.jsonl").read_text().splitlines()]
    assert [e["action"] for e in ev] == ["sign", "verify"]


@pytest.mark.skipif(not have("openssl"), reason="openssl not installed")
def test_signature_checks_with_openssl(signed, keys):
    r = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            keys[1],
            "-rawin",
            "-in",
            _manifest(signed),
            "-sigfile",
            signed[0].with_name("disk.001.manifest.sig"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr + r.stdout


def test_flipped_signature_byte_fails(signed, keys, capsys):
    flip(signed[0].with_name("disk.001.manifest.sig"), 10)
    code, doc = cli_json(capsys, "verify", signed[0], "--public-key", keys[1])
    assert code == 1 and doc["status"] == "faults" and not doc["signature"]["signature_valid"]
    assert doc["faults"][0]["kind"] == "signature" and "does not match" in doc["faults"][0]["detail"]
    assert doc["verdict"].startswith("FAILED: signature check failed")


def test_edited_manifest_field_fails(signed, keys, capsys):
    mp = _manifest(signed)
    m = json.loads(mp.read_bytes())
    m["case"]["case_number"] = "43"
    mp.write_bytes(canonical_json(m))
    code, doc = cli_json(capsys, "verify", signed[0], "--public-key", keys[1])
    assert code == 1 and not doc["signature"]["signature_valid"]


def test_changed_segment_fails_even_with_same_media_size(signed, keys, capsys):
    flip(signed[2], 5)
    code, doc = cli_json(capsys, "verify", signed[0], "--public-key", keys[1])
    assert code == 1 and doc["signature"]["signature_valid"] and not doc["signature"]["intact"]
    seg = [f for f in doc["faults"] if f["kind"] == "signature"]
    assert len(seg) == 1 and "segment 3" in seg[0]["detail"] and seg[0]["segment"].endswith("disk.003")


def test_changed_stored_hash_fails(signed, keys, capsys):
    # a sidecar written after signing: the stored hashes differ from the signed ones
    signed[0].with_name("disk.001.md5").write_text(f"{md5(DATA)}  disk.001\n")
    code, doc = cli_json(capsys, "verify", signed[0], "--public-key", keys[1])
    assert code == 1
    assert any("stored in the image changed" in f["detail"] for f in doc["faults"])


def test_wrong_key_and_missing_manifest_fail(signed, keys, tmp_path, capsys):
    other = generate_keypair(tmp_path / "other")
    code, doc = cli_json(capsys, "verify", signed[0], "--public-key", other[1])
    assert code == 1 and not doc["signature"]["signature_valid"]
    _manifest(signed).unlink()
    code, doc = cli_json(capsys, "verify", signed[0], "--public-key", keys[1])
    assert code == 1 and "no signed manifest" in doc["faults"][0]["detail"]
    code, _, _err = cli(capsys, "verify", signed[0], "--public-key", keys[0].with_suffix(".nope"))
    assert code == 3


def test_renamed_identical_set_still_verifies(signed, keys, capsys):
    for i, p in enumerate(signed, 1):
        p.rename(p.with_name(f"copy.{i:03d}"))
    for ext in ("manifest.json", "manifest.sig"):
        signed[0].with_name(f"disk.001.{ext}").rename(signed[0].with_name(f"copy.001.{ext}"))
    code, doc = cli_json(capsys, "verify", signed[0].with_name("copy.002"), "--public-key", keys[1])
    assert code == 0 and doc["signature"]["intact"], doc["faults"]


def test_refuses_to_sign_corrupt_image(tmp_path, keys, capsys):
    p = tmp_path / "d.raw"
    p.write_bytes(DATA)
    p.with_name("d.raw.md5").write_text("0" * 32 + "  d.raw\n")
    code, _, err = cli(capsys, "sign", p, "--key", keys[0])
    assert code == 1 and "not signing" in err and not p.with_name("d.raw.manifest.json").exists()
