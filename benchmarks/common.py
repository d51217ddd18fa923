"""Shared helpers: medians, timing, and one table + JSON per benchmark."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OUT = Path(".bench")


def median_time(func: Callable[[], object], *, repeat: int = 10) -> tuple[float, list[float]]:
    samples: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def report(name: str, rows: Sequence[dict[str, Any]], meta: dict[str, Any] | None = None) -> Path:
    """Print rows as an aligned table and write ``.bench/NAME.json``; return its path."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{name}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    payload = {
        "benchmark": name,
        "machine": {"python": platform.python_version(), "system": platform.platform()},
        "meta": meta or {},
        "rows": list(rows),
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"(json: {path})")
    return path


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
