"""Sleuth Kit bridge and browse commands against Sleuth Kit's own tools (mmls, fls -r, icat) and the manifest.

The test disks (testdata/MANIFEST.json ``sources``): disk_mbr (MBR: FAT16 p1 at LBA 2048 with a deleted
file and a non-ASCII name, ext4 p2 at LBA 8192 with a deleted file and Cyrillic/accented names) and the
FAT12 floppy (no partition table, one deleted file). Every check runs on every image format forensimg
reads: raw, split raw, E01 (single and segmented), fimg.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import forensimg
from forensimg.cli import main
from forensimg.fs import tsk
from tests.fs.media import (
    FORMATS,
    build_disk_raw,
    build_floppy_raw,
    disk_variant,
    floppy_variant,
    fls,
    icat,
    mmls,
    sources,
)
from tests.helpers import ROOT, TESTDATA, have, run

pytest.importorskip("pytsk3")
pytestmark = pytest.mark.skipif(not have("fls"), reason="sleuthkit tools not installed")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fsmedia")


@pytest.fixture(scope="module")
def disk_raw(media_dir: Path) -> Path:
    return build_disk_raw(media_dir)


@pytest.fixture(scope="module")
def floppy_raw(media_dir: Path) -> Path:
    return build_floppy_raw(media_dir)


def _open(paths: list[Path]) -> forensimg.Image:
    return forensimg.open(paths[0] if len(paths) == 1 else paths)


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    rc = main(["--no-custody", *[str(a) for a in args]])
    out, err = capsys.readouterr()
    return rc, out, err


# -- partitions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_partitions_match_mmls(kind, media_dir, disk_raw, capsys):
    paths = disk_variant(kind, media_dir)
    expected = mmls(disk_raw)
    with _open(paths) as img:
        rows = tsk.partitions(img)
    assert [(p.addr, p.slot, p.start, p.end, p.length, p.description) for p in rows] == expected
    alloc = [p for p in rows if p.allocated]
    assert [(p.index, p.start, p.fs_type, p.table_type) for p in alloc] == [
        (1, 2048, "fat16", "dos"),
        (2, 8192, "ext4", "dos"),
    ]
    # the manifest's partitions (mmls at generation time)
    want = [
        (e["slot"], e["start"], e["length"], e["description"]) for e in sources()["disk_mbr"]["partitions"]["entries"]
    ]
    assert [(p.slot, p.start, p.length, p.description) for p in alloc] == want
    rc, out, _ = _cli(capsys, "partitions", paths[0], "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["volume_system"]["type"] == "dos"
    assert [(p["addr"], p["start"], p["length"]) for p in doc["volume_system"]["partitions"]] == [
        r[:1] + r[2:3] + r[4:5] for r in expected
    ]
    rc, out, _ = _cli(capsys, "partitions", paths[0])
    assert rc == 0 and "DOS Partition Table" in out and "002:  000:000   0000002048   0000008191   0000006144" in out


@pytest.mark.parametrize("kind", ["raw", "split", "ewf", "fimg"])
def test_floppy_without_table_is_one_filesystem(kind, media_dir, floppy_raw, capsys):
    paths = floppy_variant(kind, media_dir)
    with _open(paths) as img:
        assert tsk.partitions(img) == []
        fs = img.filesystem()
        assert (fs.type, fs.offset, fs.partition) == ("fat12", 0, None)
        got = [(e.type, e.deleted, e.inode, e.path) for e in fs.ls(recursive=True)]
    assert got == fls(floppy_raw)
    rc, out, _ = _cli(capsys, "partitions", paths[0], "--json")
    assert rc == 0 and json.loads(out)["volume_system"] is None and json.loads(out)["filesystem"]["type"] == "fat12"


def test_gpt_partitions_match_mmls(tmp_path, capsys):
    if not (have("sfdisk") and have("mkfs.ext4")):
        pytest.skip("sfdisk / mkfs.ext4 missing")
    disk = tmp_path / "gpt.raw"
    with open(disk, "wb") as f:
        f.truncate(6 << 20)
    script = "label: gpt\nunit: sectors\nstart=2048, size=4096, type=L, name=one\nstart=6144, size=4096, type=L\n"
    subprocess.run(["sfdisk", "-q", str(disk)], input=script, text=True, check=True, capture_output=True)
    part = tmp_path / "p.img"
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "gpt.txt").write_text("inside a GPT partition\n")
    run("mkfs.ext4", "-q", "-F", "-b", "1024", "-d", tmp_path / "stage", part, "2048")
    with open(disk, "r+b") as f:
        f.seek(6144 * 512)
        f.write(part.read_bytes())
    with forensimg.open(disk) as img:
        rows = tsk.partitions(img)
        assert [(p.addr, p.slot, p.start, p.end, p.length, p.description) for p in rows] == mmls(disk)
        alloc = [p for p in rows if p.allocated]
        assert [(p.index, p.table_type) for p in alloc] == [(1, "gpt"), (2, "gpt")]
        assert alloc[1].fs_type == "ext4" and alloc[0].fs_type is None
        fs = img.filesystem()  # the only partition holding a file system
        assert fs.read("/gpt.txt") == b"inside a GPT partition\n"
    rc, out, _ = _cli(capsys, "partitions", disk)
    assert rc == 0 and out.startswith("GUID Partition Table (EFI)")


# -- ls / cat against fls / icat --------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("index", [1, 2])
def test_ls_matches_fls_and_cat_matches_icat(kind, index, media_dir, disk_raw, capsys):
    paths = disk_variant(kind, media_dir)
    fsinfo = sources()["disk_mbr"]["filesystems"][index - 1]
    start = fsinfo["offset_bytes"] // 512
    expected = fls(disk_raw, start)
    with _open(paths) as img:
        fs = img.filesystem(partition=index)
        assert fs.offset == fsinfo["offset_bytes"]
        entries = fs.ls("/", recursive=True)
        assert [(e.type, e.deleted, e.inode, e.path) for e in entries] == expected
        assert {(e.type, e.deleted, e.inode, e.path) for e in fs.ls("/", recursive=True, allocated=False)} == {
            r for r in expected if r[1]
        }
        by_path = {e.path: e for e in entries}
        for want in fsinfo["entries"]:
            e = by_path[want["path"]]
            assert (str(e.inode), e.type, e.size, e.deleted) == (
                want["inode"],
                want["type"],
                want["size"],
                want["deleted"],
            )
            assert e.mtime is None or e.mtime.tzinfo is not None
            if "sha256" in want:
                data = fs.read(want["path"])
                assert hashlib.sha256(data).hexdigest() == want["sha256"]
                assert data == icat(disk_raw, e.inode, start)
    # the CLI gives the same listing, and cat is binary-safe on stdout (deleted and non-ASCII names)
    rc, out, _ = _cli(capsys, "ls", paths[0], "/", "-p", index, "-r", "--json")
    assert rc == 0
    assert [(d["type"], d["deleted"], d["inode"], d["path"]) for d in json.loads(out)["entries"]] == expected


def _cat_bytes(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "forensimg", "--no-custody", "cat", *args], capture_output=True, cwd=ROOT, check=False
    )


def test_cat_cli_binary_deleted_and_unicode(media_dir, disk_raw):
    known = {f["path"]: f for f in sources()["disk_mbr"]["filesystems"][1]["entries"] if "sha256" in f}
    for path in ("/ünïcödé/файл.txt", "/deleted_secret.txt", "/random_1250K.bin"):
        p = _cat_bytes([str(disk_raw), path, "-p", "2"])
        assert p.returncode == 0, p.stderr
        assert hashlib.sha256(p.stdout).hexdigest() == known[path]["sha256"]
    p = _cat_bytes([str(disk_raw), "--inode", "12", "--offset", str(8192 * 512)])
    assert p.stdout == icat(disk_raw, 12, 8192)
    fat = {f["path"]: f for f in sources()["disk_mbr"]["filesystems"][0]["entries"] if "sha256" in f}
    p = _cat_bytes([str(disk_raw), "/_ELETED.TXT", "-p", "1"])
    assert hashlib.sha256(p.stdout).hexdigest() == fat["/_ELETED.TXT"]["sha256"]


def test_text_listing_is_fls_long_format(disk_raw, capsys):
    rc, out, _ = _cli(capsys, "ls", disk_raw, "-p", "2", "-r")
    want = run("fls", "-r", "-p", "-l", "-o", "8192", disk_raw).stdout
    # fls -l prints uid/gid after the size; compare the columns both show
    strip = lambda text: [line.split("\t")[:7] for line in text.splitlines()]  # noqa: E731
    assert rc == 0 and strip(out) == strip(want)
    rc, out, _ = _cli(capsys, "ls", disk_raw, "/", "-p", "2", "--deleted")
    assert rc == 0 and out.splitlines()[0].startswith("r/r * 12:\tdeleted_secret.txt")


def test_partition_by_offset_equals_by_index(disk_raw):
    with forensimg.open(disk_raw) as img:
        a = img.filesystem(partition=1)
        b = img.filesystem(offset=2048 * 512)
        assert a.ls(recursive=True) == b.ls(recursive=True)
        assert b.partition is None and a.partition is not None and a.partition.index == 1


# -- extraction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["raw", "ewf-seg"])
def test_extract_folder_hashes_times_and_refusal(kind, media_dir, tmp_path, capsys):
    paths = disk_variant(kind, media_dir)
    known = {f["path"]: f for f in sources()["disk_mbr"]["filesystems"][1]["entries"]}
    out = tmp_path / "out"
    out.mkdir()
    rc, text, err = _cli(capsys, "extract", paths[0], "/", out / "ext4", "-p", "2", "--deleted", "--json")
    assert rc == 0, err
    doc = json.loads(text)
    got = {f["source"]: f for f in doc["files"]}
    want = {p: f for p, f in known.items() if f["type"] == "r/r"}
    assert set(got) == set(want)
    for p, f in want.items():
        dest = Path(got[p]["dest"])
        st = dest.stat()  # before reading it (reading updates the access time)
        assert st.st_mtime == 1700000000 and st.st_atime == 1700000000
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == f["sha256"] == got[p]["sha256"]
    assert (out / "ext4" / "ünïcödé" / "файл.txt").is_file()
    assert (out / "ext4" / "dir").stat().st_mtime == 1700000000
    # the manifest checks with sha256sum -c from the target's folder
    manifest = out / "ext4.sha256"
    assert Path(doc["manifest"]) == manifest
    check = subprocess.run(["sha256sum", "-c", manifest.name], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert len(manifest.read_text().splitlines()) == len(want)
    # never overwrite; one clear line
    before = manifest.read_bytes()
    for dest in (out / "ext4", out / "ext4" / "hello.txt"):  # into the folder, or naming the file
        rc, _, err = _cli(capsys, "extract", paths[0], "/hello.txt", dest, "-p", "2")
        assert rc == 3 and "refusing to overwrite" in err and len(err.strip().splitlines()) == 1, err
    assert manifest.read_bytes() == before
    assert not (out / "ext4" / "hello.txt.sha256").exists()
    # a single file into an existing folder (allocated entries only by default)
    rc, text, _ = _cli(capsys, "extract", paths[0], "/DOCS/Ångström_ñandú.txt", out, "-p", "1")
    assert rc == 0
    assert hashlib.sha256((out / "Ångström_ñandú.txt").read_bytes()).hexdigest() == (
        "5e371ef903e6c14cf37b47d0b5d1ee8fd88424ebbdae973e5526ed6315e6632f"
    )
    assert (out / "Ångström_ñandú.txt.sha256").read_text().endswith("  Ångström_ñandú.txt\n")
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_extract_is_safe_against_path_traversal(tmp_path):
    """A stored name holding '/' (crafted by rewriting an ext4 directory entry) stays inside the target."""
    if not have("mkfs.ext4"):
        pytest.skip("mkfs.ext4 missing")
    stage = tmp_path / "stage"
    (stage / "sub").mkdir(parents=True)
    (stage / "sub" / "ABCDEvil.txt").write_bytes(b"payload\n")
    fsimg = tmp_path / "fs.img"
    run("mkfs.ext4", "-q", "-F", "-b", "1024", "-O", "^metadata_csum,^dir_index", "-d", stage, fsimg, "1024")
    blob = bytearray(fsimg.read_bytes())
    at = blob.find(b"ABCDEvil.txt")
    assert at > 0 and blob.find(b"ABCDEvil.txt", at + 1) < 0
    blob[at : at + 12] = b"../../vil.tx"
    fsimg.write_bytes(bytes(blob))
    with forensimg.open(fsimg) as img:
        fs = img.filesystem()
        names = [e.name for e in fs.ls("/sub")]
        assert "../../vil.tx" in names
        res = fs.extract("/sub", tmp_path / "out")
    assert [Path(f.dest).name for f in res.files] == [".._.._vil.tx"]
    assert (tmp_path / "out" / ".._.._vil.tx").read_bytes() == b"payload\n"
    assert not (tmp_path / "vil.tx").exists() and not (tmp_path.parent / "vil.tx").exists()


# -- fail closed, errors ----------------------------------------------------------------------------


def test_corrupt_chunk_fails_closed(media_dir, tmp_path, capsys):
    from tests.fs.media import ewf_available

    if not ewf_available():
        pytest.skip("forensimg cannot open E01 yet")
    bad = TESTDATA / "floppy_fat12_corrupt_chunk.E01"
    rc, out, err = _cli(capsys, "cat", bad, "/LOG/system.log")
    assert rc == 3 and out == "" and "chunk" in err and len(err.strip().splitlines()) == 1
    # files away from the corrupt chunk read fine
    rc, out, _ = _cli(capsys, "cat", bad, "/AUTOEXEC.BAT")
    assert rc == 0 and out.startswith("@ECHO OFF")
    rc, _, err = _cli(capsys, "extract", bad, "/LOG", tmp_path / "log")
    assert rc == 3 and not (tmp_path / "log").exists() and not (tmp_path / "log.sha256").exists()
    assert not list(tmp_path.iterdir())
    with forensimg.open(bad, zero_fill=True) as img:
        data = img.filesystem().read("/LOG/system.log")
        assert len(data) == 370000 and img.faults and img.faults[0].chunk == 3


def test_errors_are_one_clear_line(disk_raw, tmp_path, capsys, monkeypatch):
    cases = [
        (["ls", disk_raw, "-p", "5"], 2, "partition 5 does not exist (partitions: 1, 2)"),
        (["ls", disk_raw], 2, "choose a partition"),
        (["cat", disk_raw, "/missing.txt", "-p", "2"], 2, "path '/missing.txt' not found"),
        (["cat", disk_raw, "/dir", "-p", "2"], 2, "is a folder"),
        (["ls", TESTDATA / "canonical.raw"], 3, "no file system found"),
        (["ls", disk_raw, "--offset", "512"], 3, "no file system found"),
        (["ls", tmp_path / "nope.raw"], 3, "nope.raw"),
        (["ls", disk_raw, "-p", "1", "--offset", "0"], 2, "not both"),
    ]
    for args, code, text in cases:
        rc, _, err = _cli(capsys, *args)
        assert rc == code, (args, err)
        assert text in err and len(err.strip().splitlines()) == 1 and err.startswith("forensimg: error:"), err
    monkeypatch.setitem(sys.modules, "pytsk3", None)  # as if the tsk extra were not installed
    rc, _, err = _cli(capsys, "ls", disk_raw, "-p", "1")
    assert rc == 3 and "pip install 'forensimg[tsk]'" in err and len(err.strip().splitlines()) == 1


def test_library_example_in_docs_runs(disk_raw, tmp_path):
    """docs/library.md's browsing example, run as written against disk_mbr."""
    text = (ROOT / "docs" / "library.md").read_text()
    start = text.index("<!-- example: browse -->")
    block = text[
        text.index("```python", start) + len("```python") : text.index("```", text.index("```python", start) + 9)
    ]
    os.symlink(disk_raw, tmp_path / "disk.E01")  # the example opens "disk.E01"; content decides the format
    out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "r/r 17 48 /hello.txt" in out.stdout
    assert "Hello from the forensimg shared ext4 partition." in out.stdout


def test_cat_json_and_extract_custody_event(disk_raw, tmp_path, capsys):
    rc, out, _ = _cli(capsys, "cat", disk_raw, "/hello.txt", "-p", "2", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["inode"] == 17 and doc["size"] == 48
    assert doc["sha256"] == "2538f99e16dadae42bb89b26fc14c6c556aeeebe89cfe46a71cba5831c03b6b8"
    import base64

    assert base64.b64decode(doc["content_base64"]).startswith(b"Hello from the forensimg")
    log = tmp_path / "custody.jsonl"
    rc = main(["--custody-log", str(log), "extract", str(disk_raw), "/dir", str(tmp_path / "x"), "-p", "2"])
    capsys.readouterr()
    assert rc == 0
    event = json.loads(log.read_text().splitlines()[-1])
    assert event["action"] == "export" and event["result"]["files"] == 1
    assert event["outputs"][0]["path"].endswith("x.sha256")


def test_deleted_folder_listing_matches_fls_and_extracts(tmp_path):
    """A FAT folder removed with mdeltree: fls -r lists it and what is inside; so do ls and extract -d."""
    if not (have("mkfs.fat") and have("mcopy") and have("mdeltree")):
        pytest.skip("dosfstools / mtools missing")
    img = tmp_path / "fat.img"
    run("mkfs.fat", "-C", "-n", "DELDIR", "-i", "5EED0009", "--invariant", img, "1440")
    (tmp_path / "a.txt").write_bytes(b"kept inside a deleted folder\n" * 20)
    (tmp_path / "keep.txt").write_bytes(b"still here\n")
    run("mmd", "-i", img, "::/OLD")
    run("mcopy", "-i", img, tmp_path / "a.txt", "::/OLD/A.TXT")
    run("mcopy", "-i", img, tmp_path / "keep.txt", "::/KEEP.TXT")
    run("mdeltree", "-i", img, "::/OLD")
    with forensimg.open(img) as image:
        fs = image.filesystem()
        got = [(e.type, e.deleted, e.inode, e.path) for e in fs.ls(recursive=True)]
        assert got == fls(img)
        assert ("d/d", True, 4, "/_LD") in got  # deleted FAT names lose their first letter
        assert any(e[1] and e[3] == "/_LD/_.TXT" for e in got)
        res = fs.extract("/", tmp_path / "out", deleted=True)
    sources_ = {f.source for f in res.files}
    assert sources_ == {"/KEEP.TXT", "/_LD/_.TXT", "/DELDIR      (Volume Label Entry)"}
    deleted_a = next(f for f in res.files if f.source == "/_LD/_.TXT")
    assert Path(deleted_a.dest).read_bytes() == icat(img, deleted_a.inode)
