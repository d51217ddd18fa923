"""Builders for judge tests: observations from plain numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from kiln.core.analysis import Histogram, Missing, Observation, Sample

BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def counts(
    start: float, end: float, requests: int, errors: int, latency: Histogram | None = None
) -> Sample:
    return Sample(start, end, requests, errors, latency=latency)


def pair(
    start: float,
    end: float,
    canary: tuple[int, int],
    baseline: tuple[int, int] | None = (100, 1),
) -> Observation:
    return Observation(
        canary=counts(start, end, *canary),
        baseline=None if baseline is None else counts(start, end, *baseline),
    )


def series(per_window: Sequence[tuple[int, int]], *, every: float = 1.0) -> list[Observation]:
    """One observation per (requests, errors) of the canary; the baseline is 100/1."""
    return [pair(i * every, (i + 1) * every, c) for i, c in enumerate(per_window)]


def missing(at: float, *, error: bool = False) -> Observation:
    return Observation(canary=Missing(at, "no series", error=error), baseline=None)


def histogram(latencies: Iterable[float], bounds: Sequence[float] = BOUNDS) -> Histogram:
    values = np.asarray(list(latencies), dtype=np.float64)
    cumulative = tuple(int((values <= b).sum()) for b in bounds)
    return Histogram(tuple(bounds), cumulative, int(values.size))


def traffic(
    seed: int,
    seconds: int,
    *,
    canary_error: float,
    baseline_error: float = 0.01,
    rate: int = 50,
    canary_latency_scale: float = 1.0,
    latency: bool = False,
) -> list[Observation]:
    """Seeded per-second traffic for both sides (errors, and lognormal latencies)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(seconds):
        c_hist = b_hist = None
        if latency:
            c_hist = histogram(canary_latency_scale * rng.lognormal(np.log(0.05), 0.5, rate))
            b_hist = histogram(rng.lognormal(np.log(0.05), 0.5, rate))
        out.append(
            Observation(
                canary=Sample(t, t + 1, rate, int(rng.binomial(rate, canary_error)), c_hist),
                baseline=Sample(t, t + 1, rate, int(rng.binomial(rate, baseline_error)), b_hist),
            )
        )
    return out
