"""forensimg custody show / check, and the custody log's detection of edits, deletions and reordering."""

from __future__ import annotations

import json

import pytest

from forensimg.custody import CustodyEvent, CustodyLog
from tests.helpers import canonical
from tests.verify.common import cli, cli_json, flip, md5


@pytest.fixture
def image(tmp_path, capsys):
    p = tmp_path / "disk.raw"
    p.write_bytes(canonical())
    p.with_name("disk.raw.md5").write_text(f"{md5(canonical())}  disk.raw\n")
    for _ in range(4):
        assert cli(capsys, "--examiner", "Ann Example", "verify", p)[0] == 0
    return p


def _log(p):
    return p.with_name(p.name + ".custody.jsonl")


def test_show_table_and_json(image, capsys):
    code, out, _ = cli(capsys, "custody", "show", image)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "(UTC)", "ACTION", "EXAMINER", "USER@HOST", "RESULT", "CHAIN"]
    assert len(lines) == 6 and all("verify" in ln and "Ann Example" in ln and "ok" in ln for ln in lines[1:5])
    assert "verified (exit 0)" in lines[1]
    assert lines[-1].endswith("chain intact")
    code, out, _ = cli(capsys, "custody", "show", image, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["chain"]["intact"] and [e["seq"] for e in doc["events"]] == [1, 2, 3, 4]


def test_check_intact_exit_0(image, capsys):
    code, out, _ = cli(capsys, "custody", "check", image)
    assert code == 0 and out.startswith("INTACT: 4 events")
    code, out, _ = cli(capsys, "custody", "check", _log(image), "--json")  # the log itself may be named
    doc = json.loads(out)
    assert code == 0 and doc["intact"] and doc["head"]["seq"] == 4 and doc["first_broken"] is None


def _lines(image):
    return _log(image).read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("flip_middle", "line 2"),  # a flipped byte inside a value of event 2
        ("flip_last", "line 4"),  # the last event, which no later line links to
        ("delete_middle", "line 2"),
        ("delete_first", "line 1"),
        ("swap", "line 2"),
        ("insert", "line 3"),
        ("truncate_line", "line 4"),
    ],
)
def test_check_names_first_broken_event(image, capsys, damage, named):
    lines = _lines(image)
    logp = _log(image)
    if damage == "flip_middle":
        i = lines[1].index(b'"host":"') + 9
        logp.write_bytes(b"".join(lines))
        flip(logp, len(lines[0]) + i, 0x02)
    elif damage == "flip_last":
        i = lines[3].index(b'"examiner":"') + 13
        logp.write_bytes(b"".join(lines))
        flip(logp, sum(map(len, lines[:3])) + i, 0x20)
    elif damage == "delete_middle":
        logp.write_bytes(b"".join([lines[0], *lines[2:]]))
    elif damage == "delete_first":
        logp.write_bytes(b"".join(lines[1:]))
    elif damage == "swap":
        logp.write_bytes(b"".join([lines[0], lines[2], lines[1], lines[3]]))
    elif damage == "insert":
        logp.write_bytes(b"".join([*lines[:2], lines[1], *lines[2:]]))
    elif damage == "truncate_line":
        logp.write_bytes(b"".join(lines)[:-10])
    code, out, _ = cli(capsys, "custody", "check", image)
    assert code == 1
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("BROKEN: ") and f"{named} " in verdict, verdict
    code, out, _ = cli(capsys, "custody", "show", image)
    assert code == 0 and "BROKEN" in out


def test_removed_tail_found_against_signed_manifest_head(image, tmp_path, capsys):
    assert cli(capsys, "keygen", tmp_path / "k")[0] == 0
    assert cli(capsys, "sign", image, "--key", tmp_path / "k.key")[0] == 0
    lines = _lines(image)  # 4 verify events + the sign event; the manifest records head seq 4
    _log(image).write_bytes(b"".join(lines[:3]))  # removing events from the end keeps the chain valid
    assert CustodyLog(_log(image)).check_chain() == ()
    code, out, _ = cli(capsys, "custody", "check", image)
    assert code == 1 and "records event 4, but the log holds 3 events" in out
    code, doc = cli_json(capsys, "verify", image, "--public-key", tmp_path / "k.pub")
    assert (
        code == 1
        and doc["faults"][0]["kind"] == "chain_broken"
        and "events were removed" in doc["verdict"] + doc["faults"][0]["detail"]
    )


def test_check_without_log_is_exit_3(tmp_path, capsys):
    code, _, err = cli(capsys, "custody", "check", tmp_path / "none.raw")
    assert code == 3 and "no custody log" in err


def test_global_custody_log_option(tmp_path, capsys):
    img = tmp_path / "d.raw"
    img.write_bytes(b"x" * 4096)
    log = tmp_path / "case.custody.jsonl"
    assert cli(capsys, "--custody-log", log, "verify", img, "--expect", f"md5:{md5(b'x' * 4096)}")[0] == 0
    assert not _log(img).exists() and len(CustodyLog(log).events()) == 1
    assert cli(capsys, "--custody-log", log, "custody", "check", img)[0] == 0


def test_event_fields(tmp_path):
    log = CustodyLog(tmp_path / "x.custody.jsonl")
    rec = log.append(CustodyEvent("verify", examiner="E", argv=("forensimg", "verify", "x")))
    assert set(rec) >= {
        "seq",
        "at",
        "action",
        "examiner",
        "host",
        "user",
        "tool",
        "argv",
        "inputs",
        "outputs",
        "result",
        "prev_sha256",
        "event_sha256",
    }
    assert log.head() == (1, __import__("hashlib").sha256(log.lines()[0]).hexdigest())
    assert log.check_anchor(1, log.head()[1]) == ()
    assert log.check_anchor(1, "0" * 64)[0].expected == "0" * 64
