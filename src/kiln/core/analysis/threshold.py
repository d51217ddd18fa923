"""The threshold judge, with Argo Rollouts' measurement semantics.

Follows the Argo Rollouts documentation, "Analysis & Progressive Delivery"
(docs/features/analysis.md), sections *Analysis at a Predefined Step* (``count``
and ``interval``), *Failure Conditions and Failure Limit* and *Inconclusive
Runs*, and the metric fields of the AnalysisTemplate specification
(``failureLimit``, ``inconclusiveLimit``, ``consecutiveErrorLimit``):

* one measurement every ``interval`` seconds; ``count`` measurements, or, when
  ``count`` is 0, measurements until the analysis step ends;
* a measurement *fails* when its value is above ``max`` or below ``min``
  (a value equal to a bound passes);
* a measurement with no value (missing metric, NaN, no traffic) is
  *inconclusive*; one where the source could not be reached is an *error*;
* the analysis **fails** as soon as failed measurements exceed ``failure_limit``
  (Flagger's ``threshold`` is the same rule with ``threshold = failureLimit + 1``),
  is **inconclusive** as soon as inconclusive ones exceed ``inconclusive_limit``,
  and fails when consecutive errors exceed ``consecutive_error_limit``;
* after ``count`` measurements with none of the above, it **passes**.

Argo takes its first measurement when the run starts, reading whatever range
the query itself looks back over; kiln measures the traffic of each interval,
so its first measurement comes one interval after the start.

Two deliberate departures, both failing closed: Argo reports *Successful* when
an analysis is stopped before its first measurement; kiln reports
*Inconclusive*. And fewer than ``min_samples`` requests over the whole analysis
(router metrics) is *Inconclusive*, never *Pass*.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kiln.core.analysis.observations import MetricKind, Missing, Observation, measure, weight
from kiln.core.analysis.verdicts import Fail, Figures, Inconclusive, Pass, Pending, Status, Verdict
from kiln.core.analysis.windows import Window, Windower


class Outcome(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class Measurement:
    at: float
    outcome: Outcome
    value: float | None
    note: str = ""


@dataclass(frozen=True)
class ThresholdConfig:
    name: str
    metric: MetricKind
    max: float | None = None
    min: float | None = None
    interval: float = 5.0
    count: int = 0
    failure_limit: int = 0
    # Argo's defaults: inconclusiveLimit 0, consecutiveErrorLimit 4.
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    min_samples: int = 1

    def __post_init__(self) -> None:
        if self.max is None and self.min is None:
            raise ValueError("a threshold judge needs max, min or both")
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if min(self.count, self.failure_limit, self.inconclusive_limit) < 0:
            raise ValueError("count and limits are not negative")


class ThresholdJudge:
    def __init__(self, config: ThresholdConfig) -> None:
        self.config = config
        self._windows = Windower(config.interval)
        self.measurements: list[Measurement] = []
        self._samples = 0
        self._decided: Verdict | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def observe(self, observation: Observation) -> None:
        if self._decided is not None:
            return
        for closed in self._windows.add(observation):
            self._measure(closed)
            self._decided = self._assess(final=False)
            if self._decided is not None:
                return

    def verdict(self) -> Status:
        if self._decided is not None:
            return self._decided
        taken = len(self.measurements)
        planned = f"/{self.config.count}" if self.config.count else ""
        return Pending(f"{taken}{planned} measurements taken", self._figures())

    def conclude(self) -> Verdict:
        if self._decided is not None:
            return self._decided
        verdict = self._assess(final=True)
        if verdict is None:  # pragma: no cover - _assess(final=True) always decides
            verdict = Inconclusive("no decision", self._figures())
        self._decided = verdict
        return verdict

    # --- internals -----------------------------------------------------------------

    def _measure(self, closed: Window) -> None:
        cfg = self.config
        part = closed.canary
        if isinstance(part, Missing):
            outcome = Outcome.ERROR if part.error else Outcome.INCONCLUSIVE
            self.measurements.append(Measurement(closed.end, outcome, None, part.reason))
            return
        self._samples += weight(cfg.metric, part)
        value = measure(cfg.metric, part)
        if value is None:
            note = f"{cfg.metric} is undefined in this interval (no traffic or no data)"
            self.measurements.append(Measurement(closed.end, Outcome.INCONCLUSIVE, None, note))
            return
        if cfg.max is not None and value > cfg.max:
            note = f"{value:.6g} > max {cfg.max:g}"
            self.measurements.append(Measurement(closed.end, Outcome.FAILED, value, note))
        elif cfg.min is not None and value < cfg.min:
            note = f"{value:.6g} < min {cfg.min:g}"
            self.measurements.append(Measurement(closed.end, Outcome.FAILED, value, note))
        else:
            self.measurements.append(Measurement(closed.end, Outcome.SUCCESSFUL, value))

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for m in self.measurements if m.outcome is outcome)

    def _consecutive_errors(self) -> int:
        run = 0
        for m in reversed(self.measurements):
            if m.outcome is not Outcome.ERROR:
                break
            run += 1
        return run

    def _assess(self, *, final: bool) -> Verdict | None:
        cfg = self.config
        figures = self._figures()
        failed = self._count(Outcome.FAILED)
        if failed > cfg.failure_limit:
            notes = [m.note for m in self.measurements if m.outcome is Outcome.FAILED]
            head = (
                f"{cfg.name}: {failed} failed measurements exceed failureLimit {cfg.failure_limit}"
            )
            return Fail((head, *notes), figures)
        inconclusive = self._count(Outcome.INCONCLUSIVE)
        if inconclusive > cfg.inconclusive_limit:
            last = next(m for m in reversed(self.measurements) if m.outcome is Outcome.INCONCLUSIVE)
            return Inconclusive(
                f"{cfg.name}: {inconclusive} inconclusive measurements exceed "
                f"inconclusiveLimit {cfg.inconclusive_limit} ({last.note})",
                figures,
            )
        errors = self._consecutive_errors()
        if errors > cfg.consecutive_error_limit:
            return Fail(
                (
                    f"{cfg.name}: {errors} consecutive measurement errors exceed "
                    f"consecutiveErrorLimit {cfg.consecutive_error_limit}",
                    self.measurements[-1].note,
                ),
                figures,
            )
        done = cfg.count > 0 and len(self.measurements) >= cfg.count
        if not (done or final):
            return None
        if not self.measurements:
            return Inconclusive(f"{cfg.name}: the analysis ended before any measurement", figures)
        if cfg.metric.counts_requests and self._samples < cfg.min_samples:
            return Inconclusive(
                f"{cfg.name}: {self._samples} requests observed, fewer than "
                f"minSamples {cfg.min_samples}",
                figures,
            )
        return Pass(
            f"{cfg.name}: {len(self.measurements)} measurements, {failed} failed "
            f"(limit {cfg.failure_limit})",
            figures,
        )

    def _figures(self) -> Figures:
        last = next((m.value for m in reversed(self.measurements) if m.value is not None), None)
        figures: dict[str, float] = {
            "measurements": float(len(self.measurements)),
            "failed": float(self._count(Outcome.FAILED)),
            "inconclusive": float(self._count(Outcome.INCONCLUSIVE)),
            "errors": float(self._count(Outcome.ERROR)),
            "samples": float(self._samples),
        }
        if last is not None:
            figures["last_value"] = last
        return figures
