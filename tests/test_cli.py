"""CLI skeleton: version, info on every kind of bad input, exit codes, --json, python -m."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from forensimg.cli import cli, main
from tests.helpers import TESTDATA, canonical, write_split


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "forensimg" in capsys.readouterr().out


def test_python_dash_m():
    r = subprocess.run([sys.executable, "-m", "forensimg", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "0." in r.stdout


def test_info_json_split(capsys):
    assert main(["info", "--json", str(TESTDATA / "floppy_fat12.raw.002")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "split" and d["size"] == 1474560 and d["sector_size"] == 512
    assert len(d["segments"]) == 3


def test_info_text(capsys):
    assert main(["info", str(TESTDATA / "canonical.raw")]) == 0
    out = capsys.readouterr().out
    assert "Format:" in out and "1049600 bytes" in out


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "split-gap", "unreadable"])
def test_info_bad_input_one_line_exit_3(tmp_path, capsys, kind):
    if kind == "missing":
        target = tmp_path / "nothing.E01"
    elif kind == "directory":
        target = tmp_path
    elif kind == "empty":
        target = tmp_path / "empty.raw"
        target.write_bytes(b"")
    elif kind == "split-gap":
        paths = write_split(canonical(), tmp_path / "s.001", 300_000)
        paths[1].unlink()
        target = paths[0]
    else:
        target = tmp_path / "secret.raw"
        target.write_bytes(b"x" * 512)
        target.chmod(0)
        if sys.platform != "win32" and __import__("os").geteuid() == 0:
            # root reads anything: run the command as root without the capabilities that override file
            # permissions (works wherever the checkout lives, unlike switching to another user)
            drop = "-dac_override,-dac_read_search"
            r = subprocess.run(
                ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", sys.executable, "-m", "forensimg",
                 "info", str(target)], capture_output=True, text=True,
            )
            assert r.returncode == 3, r.stderr
            assert r.stderr.count("\n") == 1 and "Permission denied" in r.stderr and "secret.raw" in r.stderr
            return
    code = main(["info", str(target)])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and err.startswith("forensimg: error:")
    assert "Traceback" not in err
    if kind == "split-gap":
        assert "s.002" in err


def test_usage_error_is_2(capsys):
    assert main(["info"]) == 2
    assert main(["hash", "-a", "crc99", str(TESTDATA / "canonical.raw")]) == 2


def test_hash_command(capsys):
    assert main(["hash", "--json", "-a", "md5", str(TESTDATA / "floppy_fat12.raw.000")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["hashes"] == {"md5": "a7f393fbfa53f00f6045645306cda206"}


def test_clirunner_lists_commands():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "info" in r.output and "hash" in r.output


def test_debug_shows_traceback(tmp_path, capsys):
    assert main(["--debug", "info", str(tmp_path / "none")]) == 3
    assert "Traceback" in capsys.readouterr().err
