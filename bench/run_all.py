"""Run every benchmark in bench/ one after the other (``./dev.sh bench``).

Each script generates or reuses the shared 1 GiB input under bench/out/ and prints its own table of
throughputs and ratios against its peers (ewfacquire, ewfverify, ewfexport, ewfmount, pyewf, md5sum,
sha1sum, hashlib). Pass script names to run a subset, e.g. ``./dev.sh bench bench_hash bench_fimg``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "bench_hash",
    "bench_ewf_write",
    "bench_ewf_read",
    "bench_fimg",
    "bench_verify",
    "bench_acquire",
    "bench_mirror",
    "bench_restore",
    "bench_mount",
]


def main(argv: list[str]) -> int:
    names = [a.removesuffix(".py") for a in argv] or ORDER
    failed = []
    for name in names:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"run_all: no such benchmark {script}", file=sys.stderr)
            failed.append(name)
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
