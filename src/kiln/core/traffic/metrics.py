"""What a router reports: per-release counters and latency histograms, and the
health of the data plane itself.

Counters are cumulative since the router started (Prometheus semantics): a
judge takes differences between two reads. ``errors`` counts answers a client
saw as failures from the backend side: 5xx responses (including the router's own
502/503/504) plus connection failures and resets of upstream attempts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiln.errors import InvalidInput

# Seconds. Dense below 10 ms, where a healthy loopback backend answers.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Counts per bucket (not cumulative); ``counts`` has one more entry than
    ``bounds``: the last bucket is everything above the largest bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum_seconds: float

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.bounds) + 1:
            raise InvalidInput("histogram needs len(bounds) + 1 counts")

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q``; None when empty or beyond
        the last bound (unknown, never guessed low)."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return self.bounds[i] if i < len(self.bounds) else None
        return None


@dataclass(frozen=True, slots=True)
class ReleaseMetrics:
    release: str
    requests: int
    responses_5xx: int
    connect_failures: int
    latency: LatencyHistogram

    @property
    def errors(self) -> int:
        return self.responses_5xx + self.connect_failures


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    generation: int | None
    releases: tuple[ReleaseMetrics, ...]

    def of(self, release: str) -> ReleaseMetrics | None:
        for item in self.releases:
            if item.release == release:
                return item
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "releases": {
                m.release: {
                    "requests": m.requests,
                    "responses_5xx": m.responses_5xx,
                    "connect_failures": m.connect_failures,
                    "latency": {
                        "bounds": list(m.latency.bounds),
                        "counts": list(m.latency.counts),
                        "sum_seconds": m.latency.sum_seconds,
                    },
                }
                for m in self.releases
            },
        }


def metrics_from_dict(raw: Mapping[str, Any]) -> RouterMetrics:
    try:
        releases = tuple(
            ReleaseMetrics(
                release=str(name),
                requests=int(item["requests"]),
                responses_5xx=int(item["responses_5xx"]),
                connect_failures=int(item["connect_failures"]),
                latency=LatencyHistogram(
                    bounds=tuple(float(b) for b in item["latency"]["bounds"]),
                    counts=tuple(int(c) for c in item["latency"]["counts"]),
                    sum_seconds=float(item["latency"]["sum_seconds"]),
                ),
            )
            for name, item in sorted(raw["releases"].items())
        )
        generation = raw.get("generation")
        return RouterMetrics(
            generation=None if generation is None else int(generation), releases=releases
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"router metrics are malformed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class BackendHealth:
    release: str
    address: str
    up: bool
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class DataPlaneHealth:
    """Is the data plane itself serving, which table, and what it thinks of backends."""

    serving: bool
    generation: int | None
    backends: tuple[BackendHealth, ...]
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "serving": self.serving,
            "generation": self.generation,
            "detail": self.detail,
            "backends": [
                {
                    "release": b.release,
                    "address": b.address,
                    "up": b.up,
                    "consecutive_failures": b.consecutive_failures,
                }
                for b in self.backends
            ],
        }


def health_from_dict(raw: Mapping[str, Any]) -> DataPlaneHealth:
    try:
        generation = raw.get("generation")
        return DataPlaneHealth(
            serving=bool(raw["serving"]),
            generation=None if generation is None else int(generation),
            detail=str(raw.get("detail", "")),
            backends=tuple(
                BackendHealth(
                    release=str(b["release"]),
                    address=str(b["address"]),
                    up=bool(b["up"]),
                    consecutive_failures=int(b["consecutive_failures"]),
                )
                for b in raw["backends"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"router health is malformed: {exc}") from exc
