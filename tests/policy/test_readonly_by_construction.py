"""House rule 7: evidence is read-only by construction, checked on the source code (AST).

- Only ``forensimg/acquire/source.py`` opens evidence sources (the only module using ``O_NOATIME``),
  and it opens them read-only.
- Only the modules that produce outputs may open files for writing: writers, records, custody, reports,
  restore (its destination), extraction, signing, and the CLI. Any other module that gains a write
  path fails this test, which forces a conscious decision.
- The library never prints, exits or configures logging (house rule 6).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "forensimg"

WRITE_ALLOWED = {
    "records.py",
    "custody.py",
    "restore.py",
    "outputs.py",
    "signing.py",
    "convert.py",
    "formats/raw.py",
    "formats/ewf/writer.py",
    "formats/fimg/writer.py",
    "acquire/report.py",
    "fs/tsk.py",
}
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


@cache
def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).as_posix()
        out.append((rel, ast.parse(p.read_text(), filename=str(p))))
    return out


def _names(node: ast.AST) -> set[str]:
    return (
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        | {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        | {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    )


def _write_sites(tree: ast.Module) -> list[int]:
    sites = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if fname in ("write_bytes", "write_text"):
            sites.append(node.lineno)
        elif fname == "open":
            is_os_open = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "os"
            if is_os_open:
                if len(node.args) >= 2 and _names(node.args[1]) & WRITE_FLAGS:
                    sites.append(node.lineno)
            else:
                modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords if k.arg == "mode"]
                if isinstance(f, ast.Attribute) and node.args[:1] and not modes:
                    modes = node.args[:1]  # Path.open(mode)
                for m in modes:
                    if isinstance(m, ast.Constant) and isinstance(m.value, str) and set(m.value) & set("wax+"):
                        sites.append(node.lineno)
                    elif not isinstance(m, ast.Constant) and isinstance(f, ast.Name):
                        sites.append(node.lineno)  # builtins.open with a computed mode counts as a write
    return sites


def test_only_output_modules_open_files_for_writing():
    offenders = []
    for rel, tree in _modules():
        if rel in WRITE_ALLOWED or rel.startswith("cli/"):
            continue
        for line in _write_sites(tree):
            offenders.append(f"forensimg/{rel}:{line}")
    assert offenders == [], "files opened for writing outside the output modules: " + ", ".join(offenders)


def test_only_source_module_uses_o_noatime_and_it_opens_read_only():
    users = [rel for rel, tree in _modules() if "O_NOATIME" in _names(tree)]
    assert users == ["acquire/source.py"]
    tree = dict(_modules())["acquire/source.py"]
    assert _write_sites(tree) == [], "acquire/source.py must never open anything for writing"
    text = (PKG / "acquire" / "source.py").read_text()
    assert "O_RDONLY" in text and "O_CLOEXEC" in text


def test_library_never_prints_exits_or_configures_logging():
    offenders = []
    for rel, tree in _modules():
        if rel.startswith("cli/") or rel == "__main__.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
                if (isinstance(f, ast.Name) and name in ("print", "exit", "quit")) or (
                    owner == "sys" and name == "exit"
                ) or (owner == "logging" and name in ("basicConfig", "disable")) or name == "setLevel":
                    offenders.append(f"forensimg/{rel}:{node.lineno} {name}")
    assert offenders == []
