"""Running one analysis step: read metrics, feed the judges, report an outcome.

``RouterSource`` turns the ``Router`` port's typed per-release counters into
the readings judges take (no Prometheus text round trip for the built-in data
plane). ``AnalysisSession`` owns the judges of one step: each ``poll`` reads the
canary and its baseline together, hands the judges the difference since the
previous read, and returns the planner's outcome.

Each poll's readings (a *round*) go to the ``AnalysisJournal`` before the
judges see them, so a controller that dies in the middle of the step can
``AnalysisSession.resume`` it: replaying the rounds rebuilds the same judges
(they are deterministic), the last round is the cursor the next poll continues
from -- traffic the router counted while no controller was running is
evidence too -- and the window keeps its original deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiln.core.analysis.factory import judge_for, metric_kind
from kiln.core.analysis.observations import (
    Counters,
    Histogram,
    Missing,
    Reading,
    decode_reading,
    encode_reading,
    observe,
)
from kiln.core.analysis.verdicts import Judge, Status
from kiln.core.rollout import planner
from kiln.core.rollout.analysis import aggregate
from kiln.core.spec.models import AnalysisMetric, MetricSourceKind
from kiln.core.traffic.metrics import LatencyHistogram
from kiln.errors import Temporary
from kiln.ports.clock import Clock
from kiln.ports.metrics import MetricSource
from kiln.ports.traffic import Router


def _lean(metric: AnalysisMetric, readings: Mapping[str, Reading]) -> Mapping[str, Reading]:
    """Drop latency histograms a metric never looks at: the journal keeps every round,
    and a histogram is most of a round's bytes."""
    if metric.source is not MetricSourceKind.ROUTER or metric_kind(metric).quantile is not None:
        return readings
    return {
        release: Counters(r.at, r.requests, r.errors, None) if isinstance(r, Counters) else r
        for release, r in readings.items()
    }


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
    rounds: int = 0  # polls taken so far, including those replayed after a restart
    deployment: str = ""  # the rollout the step belongs to: step numbers repeat across rollouts

    @classmethod
    def start(
        cls,
        *,
        step: int,
        canary: str,
        baseline: str | None,
        deadline: float,
        metrics: Sequence[AnalysisMetric],
        deployment: str = "",
    ) -> AnalysisSession:
        session = cls(step, canary, baseline, deadline, list(metrics), deployment=deployment)
        session.judges = {m.name: judge_for(m) for m in metrics}
        return session

    @classmethod
    def resume(
        cls,
        *,
        step: int,
        canary: str,
        baseline: str | None,
        deadline: float,
        metrics: Sequence[AnalysisMetric],
        rounds: Sequence[Mapping[str, Mapping[str, Mapping[str, object]]]],
        deployment: str = "",
    ) -> AnalysisSession:
        """The session as it was after ``rounds`` (from the journal): same judges, same cursor."""
        session = cls.start(
            step=step,
            canary=canary,
            baseline=baseline,
            deadline=deadline,
            metrics=metrics,
            deployment=deployment,
        )
        for body in rounds:
            readings = {
                metric: {release: decode_reading(r) for release, r in per.items()}
                for metric, per in body.items()
            }
            session._feed(readings)
        return session

    def poll(
        self,
        sources: Mapping[MetricSourceKind, MetricSource],
        *,
        now: float,
        record: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> planner.AnalysisOutcome:
        """Read every metric, journal the round (``record``), feed the judges."""
        readings: dict[str, Mapping[str, Reading]] = {}
        names = [self.canary] + ([self.baseline] if self.baseline else [])
        for metric in self.metrics:
            source = sources.get(metric.source)
            if source is None:
                readings[metric.name] = {
                    name: Missing(now, f"no {metric.source} source is configured") for name in names
                }
            else:
                readings[metric.name] = _lean(metric, source.read(names, metric))
        if record is not None:
            body = {
                metric: {release: encode_reading(r) for release, r in per.items()}
                for metric, per in readings.items()
            }
            record(self.rounds, body)
        self._feed(readings)
        final = now >= self.deadline
        if final:
            statuses = {name: judge.conclude() for name, judge in self.judges.items()}
            self.last = dict(statuses)
            return aggregate(statuses)
        return aggregate(self.last)

    def _feed(self, readings: Mapping[str, Mapping[str, Reading]]) -> None:
        for metric in self.metrics:
            current = readings.get(metric.name)
            if current is None:
                continue
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
        self.rounds += 1

    def belongs_to(self, deployment: str, step: int) -> bool:
        return self.deployment == deployment and self.step == step

    def figures(self) -> dict[str, dict[str, float]]:
        return {name: dict(status.figures) for name, status in self.last.items()}
