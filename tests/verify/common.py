"""Helpers for the verify tests: run the CLI, validate JSON against the shipped schema, flip bytes."""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from forensimg.cli import main
from forensimg.verify import schema
from tests.helpers import TESTDATA


@cache
def _validator() -> jsonschema.Draft202012Validator:
    doc = schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(doc, format_checker=jsonschema.FormatChecker())


def validate(doc: Any) -> Any:
    """Raise if ``doc`` does not follow forensimg/schemas/verify.schema.json; return it."""
    _validator().validate(doc)
    return doc


def cli(capsys, *argv: str | Path) -> tuple[int, str, str]:
    """Run ``forensimg ARGV`` in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys, *argv: str | Path) -> tuple[int, Any]:
    """Run ``forensimg verify ... --json``, validate the JSON against the schema."""
    code, out, _err = cli(capsys, *argv, "--json")
    doc = validate(json.loads(out))
    return code, doc


def copy_testdata(tmp: Path, *names: str) -> list[Path]:
    """Copy testdata files into ``tmp`` (verify writes custody logs beside images)."""
    out = []
    for n in names:
        dst = tmp / n
        shutil.copyfile(TESTDATA / n, dst)
        out.append(dst)
    return out


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    """XOR one byte of ``path`` at ``offset`` with ``mask``."""
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
