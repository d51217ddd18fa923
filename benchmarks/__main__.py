"""Run every benchmark module in turn: ``python -m benchmarks [--quick]``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    args = sys.argv[1:]
    here = Path(__file__).parent
    failed = 0
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        code = module.main(args)
        failed += int(bool(code))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
