"""Group observations into fixed windows of ``interval`` seconds.

The threshold judge takes one measurement per window (Argo's ``interval``); the
comparative judge takes one data point per window and side (Kayenta's ``step``).
Observations can arrive at any cadence (the controller scrapes every second or
so); a window closes on the first observation that reaches its end. A window in
which a side never had a sample is ``Missing`` for that side, with the last
reason the source gave.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.core.analysis.observations import Missing, Observation, Sample

# Scrape times jitter; a window that is 0.1% short of its interval is still whole.
_SLACK = 1e-3


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    canary: Sample | Missing
    baseline: Sample | Missing | None


class _Side:
    def __init__(self) -> None:
        self.sample: Sample | None = None
        self.missing: Missing | None = None
        self.seen = False

    def add(self, part: Sample | Missing | None) -> None:
        if part is None:
            return
        self.seen = True
        if isinstance(part, Missing):
            self.missing = part
        elif self.sample is None:
            self.sample = part
        else:
            self.sample = self.sample.plus(part)

    def result(self, at: float) -> Sample | Missing | None:
        if self.sample is not None:
            return self.sample
        if self.missing is not None:
            return self.missing
        return Missing(at, "no data in this window") if self.seen else None


class Windower:
    """Accumulates observations; ``add`` returns the windows it closed (0 or 1)."""

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("a window interval is positive")
        self.interval = interval
        self._start: float | None = None
        self._canary = _Side()
        self._baseline = _Side()

    def add(self, observation: Observation) -> list[Window]:
        canary = observation.canary
        begin = canary.at if isinstance(canary, Missing) else canary.start
        if self._start is None:
            self._start = begin
        self._canary.add(canary)
        self._baseline.add(observation.baseline)
        end = observation.end
        if end - self._start < self.interval * (1 - _SLACK):
            return []
        closed = self._start
        canary_result = self._canary.result(end) or Missing(end, "no data in this window")
        window = Window(closed, end, canary_result, self._baseline.result(end))
        self._start = end
        self._canary = _Side()
        self._baseline = _Side()
        return [window]
