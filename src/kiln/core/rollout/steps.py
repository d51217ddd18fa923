"""The steps of a rollout, derived from an environment's strategy.

Both strategies compile to one list of typed steps, so the planner has a single
loop. Vocabulary follows Argo Rollouts (setWeight, pause, analysis, bake).

- canary: the spec's steps, then a final ``SetWeight(100)`` if the spec does not
  end there (a canary that never reaches 100% would never complete).
- blueGreen: ``Preview`` (the new release behind the preview header and, with
  ``previewPort``, on a listener of its own until promotion; 0% weight),
  the optional pre-promotion analysis, a ``Pause`` for ``autoPromotionSeconds``
  (indefinite when null: waits for ``kiln promote``), ``SetWeight(100)``, the
  optional post-promotion analysis, then ``Bake`` while the old release stays warm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kiln.core.spec.models import AnalysisStep as AnalysisSpec
from kiln.core.spec.models import Environment


@dataclass(frozen=True)
class SetWeight:
    weight: int


@dataclass(frozen=True)
class Pause:
    duration: float | None  # None: until `kiln promote`


@dataclass(frozen=True)
class Analyze:
    duration: float
    metrics: tuple[str, ...]  # empty: every metric of the environment
    label: str = "analysis"


@dataclass(frozen=True)
class Preview:
    header: str
    port: int | None


@dataclass(frozen=True)
class Bake:
    duration: float


Step = SetWeight | Pause | Analyze | Preview | Bake


def steps_for(env: Environment) -> tuple[Step, ...]:
    strategy = env.strategy
    if strategy.canary is not None:
        out: list[Step] = []
        for spec_step in strategy.canary.steps:
            if spec_step.set_weight is not None:
                out.append(SetWeight(spec_step.set_weight))
            elif spec_step.pause is not None:
                out.append(Pause(spec_step.pause.duration))
            elif spec_step.analysis is not None:
                out.append(_analyze(spec_step.analysis, "analysis"))
        if not any(isinstance(s, SetWeight) for s in out) or _last_weight(out) != 100:
            out.append(SetWeight(100))
        return tuple(out)
    blue_green = strategy.blue_green
    if blue_green is None:  # pragma: no cover - the model guarantees one of the two
        raise ValueError("strategy has neither canary nor blueGreen")
    steps: list[Step] = [Preview(blue_green.preview_header, blue_green.preview_port)]
    if blue_green.pre_promotion_analysis is not None:
        steps.append(_analyze(blue_green.pre_promotion_analysis, "pre-promotion analysis"))
    auto = blue_green.auto_promotion_seconds
    if auto is None or auto > 0:
        steps.append(Pause(None if auto is None else float(auto)))
    steps.append(SetWeight(100))
    if blue_green.post_promotion_analysis is not None:
        steps.append(_analyze(blue_green.post_promotion_analysis, "post-promotion analysis"))
    if blue_green.bake > 0:
        steps.append(Bake(blue_green.bake))
    return tuple(steps)


def _analyze(spec: AnalysisSpec, label: str) -> Analyze:
    return Analyze(duration=spec.duration, metrics=tuple(spec.metrics), label=label)


def _last_weight(steps: list[Step]) -> int:
    weights = [s.weight for s in steps if isinstance(s, SetWeight)]
    return weights[-1] if weights else 0


def candidate_replicas(replicas: int, weight: int, *, blue_green: bool) -> int:
    """Instances the new release needs at ``weight``: scaled to the weight for a canary
    (at least one while it takes any traffic or is being provisioned), all of them
    for blue/green (the preview must be a full copy)."""
    if blue_green:
        return replicas
    if replicas == 0:
        return 0
    return max(1, math.ceil(replicas * weight / 100))


def describe(step: Step) -> str:
    match step:
        case SetWeight(weight):
            return f"setWeight {weight}"
        case Pause(None):
            return "pause until promoted"
        case Pause(duration):
            return f"pause {duration:g}s"
        case Analyze(duration, metrics, label):
            names = ", ".join(metrics) if metrics else "all metrics"
            return f"{label} up to {duration:g}s ({names})"
        case Preview(header, port):
            via = f"header {header}" + (f", port {port}" if port else "")
            return f"preview via {via}"
        case Bake(duration):
            return f"bake {duration:g}s"
    raise AssertionError(step)  # pragma: no cover
