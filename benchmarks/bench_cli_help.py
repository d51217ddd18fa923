"""How long ``kiln --help`` takes, against starting a bare Python.

The CLI imports command modules lazily (``kiln.cli.main.COMMANDS``), so help
should cost little more than the interpreter itself plus click. Each row is the
median wall time of N fresh subprocesses; the ratio is against ``python -c pass``
measured in the same run, so machine noise mostly cancels.

    .venv/bin/python -m benchmarks.bench_cli_help [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import median_time, report


def _runner(argv: list[str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_cli_help")
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 10")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 10
    python = sys.executable
    script = Path(python).parent / "kiln"
    cases: list[tuple[str, list[str]]] = [
        ("python -c pass (baseline)", [python, "-c", "pass"]),
        ("python -c 'import click'", [python, "-c", "import click"]),
        ("kiln --help", [str(script), "--help"] if script.exists() else []),
        ("python -m kiln --help", [python, "-m", "kiln", "--help"]),
        ("kiln validate --help", [python, "-m", "kiln", "validate", "--help"]),
    ]
    rows = []
    baseline = 0.0
    for name, command in cases:
        if not command:
            continue
        run = _runner(command)
        run()  # warm the page cache and .pyc files; not counted
        median, samples = median_time(run, repeat=repeat)
        if not baseline:
            baseline = median
        rows.append(
            {
                "command": name,
                "median_ms": median * 1000,
                "min_ms": min(samples) * 1000,
                "max_ms": max(samples) * 1000,
                "ratio": median / baseline,
            }
        )
    report("cli_help", rows, {"runs": repeat, "python": python})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
