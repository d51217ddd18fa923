"""Running one analysis step: read metrics, feed the judges, report an outcome.

``RouterSource`` turns the ``Router`` port's typed per-release counters into
the readings judges take (no Prometheus text round trip for the built-in data
plane). ``AnalysisSession`` owns the judges of one step: each ``poll`` reads the
canary and its baseline together, hands the judges the difference since the
previous read, and returns the planner's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kiln.core.analysis.factory import judge_for
from kiln.core.analysis.observations import Counters, Histogram, Missing, Reading, observe
from kiln.core.analysis.verdicts import Judge, Status
from kiln.core.rollout import planner
from kiln.core.rollout.analysis import aggregate
from kiln.core.spec.models import AnalysisMetric, MetricSourceKind
from kiln.core.traffic.metrics import LatencyHistogram
from kiln.errors import Temporary
from kiln.ports.clock import Clock
from kiln.ports.metrics import MetricSource
from kiln.ports.traffic import Router


def cumulative(histogram: LatencyHistogram) -> Histogram:
    running = 0
    counts: list[int] = []
    for count in histogram.counts[:-1]:
        running += count
        counts.append(running)
    return Histogram(tuple(histogram.bounds), tuple(counts), histogram.count)


class RouterSource:
    """``MetricSource`` over the ``Router`` port (embedded router or HAProxy)."""

    def __init__(self, router: Router, clock: Clock) -> None:
        self._router = router
        self._clock = clock

    def read(self, releases: Sequence[str], metric: AnalysisMetric) -> Mapping[str, Reading]:
        at = self._clock.monotonic()
        try:
            snapshot = self._router.metrics()
        except Temporary as exc:
            return {r: Missing(at, str(exc), error=True) for r in releases}
        out: dict[str, Reading] = {}
        for release in releases:
            figures = snapshot.of(release)
            if figures is None:
                out[release] = Counters(at, 0, 0, None)  # no traffic yet: zero, not absent
                continue
            errors = min(figures.errors, figures.requests)
            out[release] = Counters(at, figures.requests, errors, cumulative(figures.latency))
        return out


@dataclass
class AnalysisSession:
    step: int
    canary: str
    baseline: str | None
    deadline: float
    metrics: Sequence[AnalysisMetric]
    judges: dict[str, Judge] = field(default_factory=dict)
    previous: dict[str, Mapping[str, Reading]] = field(default_factory=dict)
    last: dict[str, Status] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        *,
        step: int,
        canary: str,
        baseline: str | None,
        deadline: float,
        metrics: Sequence[AnalysisMetric],
    ) -> AnalysisSession:
        session = cls(step, canary, baseline, deadline, list(metrics))
        session.judges = {m.name: judge_for(m) for m in metrics}
        return session

    def poll(
        self, sources: Mapping[MetricSourceKind, MetricSource], *, now: float
    ) -> planner.AnalysisOutcome:
        for metric in self.metrics:
            source = sources.get(metric.source)
            names = [self.canary] + ([self.baseline] if self.baseline else [])
            if source is None:
                current: Mapping[str, Reading] = {
                    name: Missing(now, f"no {metric.source} source is configured") for name in names
                }
            else:
                current = source.read(names, metric)
            judge = self.judges[metric.name]
            observation = observe(
                self.previous.get(metric.name, {}),
                current,
                canary=self.canary,
                baseline=self.baseline,
            )
            self.previous[metric.name] = current
            judge.observe(observation)
            self.last[metric.name] = judge.verdict()
        final = now >= self.deadline
        if final:
            statuses = {name: judge.conclude() for name, judge in self.judges.items()}
            self.last = dict(statuses)
            return aggregate(statuses)
        return aggregate(self.last)

    def figures(self) -> dict[str, dict[str, float]]:
        return {name: dict(status.figures) for name, status in self.last.items()}
