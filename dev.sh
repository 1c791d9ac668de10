#!/bin/sh
# forensimg developer entry point.
#   ./dev.sh demo    set up, then acquire / verify / browse the built-in sample disk
#   ./dev.sh test    set up, then lint (ruff, mypy strict) and run the whole test suite
#   ./dev.sh bench   set up, then run the benchmarks in bench/ (minutes; 1 GiB input)
set -eu
cd "$(dirname "$0")"
cmd="${1:-test}"
[ $# -gt 0 ] && shift
sh scripts/setup.sh
case "$cmd" in
  demo)  exec sh scripts/demo.sh "$@" ;;
  test)
    .venv/bin/ruff check .
    .venv/bin/mypy
    exec .venv/bin/python -m pytest -n 2 --dist loadgroup -p no:cacheprovider "$@" ;;
  lint)  .venv/bin/ruff check . && exec .venv/bin/mypy ;;
  bench) exec .venv/bin/python bench/run_all.py "$@" ;;
  *) echo "usage: ./dev.sh demo|test|lint|bench" >&2; exit 2 ;;
esac
