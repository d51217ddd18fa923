"""An in-memory ``Router`` for unit tests of services; it checks its own contract
(the same generation rule as the real routers, via ``must_install``)."""

from __future__ import annotations

from kiln.core.traffic.metrics import (
    LATENCY_BOUNDS,
    BackendHealth,
    DataPlaneHealth,
    LatencyHistogram,
    ReleaseMetrics,
    RouterMetrics,
)
from kiln.core.traffic.table import RouteTable, must_install


class FakeRouter:
    def __init__(self) -> None:
        self.table: RouteTable | None = None
        self.applied: list[int] = []
        self.counts: dict[str, tuple[int, int, int]] = {}

    def apply(self, table: RouteTable) -> int:
        if must_install(self.table, table):
            self.table = table
            self.applied.append(table.generation)
        return table.generation

    def current(self) -> RouteTable | None:
        return self.table

    def record(
        self, release: str, *, requests: int, errors_5xx: int = 0, failures: int = 0
    ) -> None:
        """Test helper: pretend traffic was served."""
        r, e, f = self.counts.get(release, (0, 0, 0))
        self.counts[release] = (r + requests, e + errors_5xx, f + failures)

    def metrics(self) -> RouterMetrics:
        empty = LatencyHistogram(LATENCY_BOUNDS, (0,) * (len(LATENCY_BOUNDS) + 1), 0.0)
        return RouterMetrics(
            self.table.generation if self.table else None,
            tuple(
                ReleaseMetrics(name, r, e, f, empty)
                for name, (r, e, f) in sorted(self.counts.items())
            ),
        )

    def health(self) -> DataPlaneHealth:
        table = self.table
        return DataPlaneHealth(
            serving=table is not None,
            generation=table.generation if table else None,
            backends=tuple(
                BackendHealth(release, b.address, True, 0)
                for release, b in (table.backends if table else ())
            ),
            detail="serving" if table else "no route table yet",
        )
