"""Invariants every judge keeps, whatever the traffic (hypothesis, fixed seeds)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core.analysis import (
    ComparativeConfig,
    ComparativeJudge,
    ComparedMetric,
    Fail,
    Inconclusive,
    MetricKind,
    Observation,
    Pending,
    SequentialConfig,
    SequentialJudge,
    ThresholdConfig,
    ThresholdJudge,
)
from kiln.core.analysis.msprt import log_lr_one_sided, proportion_difference
from kiln.core.analysis.verdicts import Judge

from .helpers import pair

windows = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 60)).map(lambda t: (max(t), min(t))),
    min_size=1,
    max_size=40,
)

MAKERS: dict[str, Callable[[int], Judge]] = {
    "threshold": lambda n: ThresholdJudge(
        ThresholdConfig(
            "e", MetricKind.ERROR_RATE, max=0.1, interval=1.0, min_samples=n, inconclusive_limit=99
        )
    ),
    "comparative": lambda n: ComparativeJudge(
        ComparativeConfig(
            "e", (ComparedMetric("e", MetricKind.ERROR_RATE),), interval=1.0, min_samples=n
        )
    ),
    "sequential": lambda n: SequentialJudge(
        SequentialConfig("e", MetricKind.ERROR_RATE, min_samples=n)
    ),
}


def feed(j: Judge, per_window: list[tuple[int, int]]) -> None:
    for i, (requests, errors) in enumerate(per_window):
        j.observe(pair(i, i + 1, (requests, errors), baseline=(requests, errors // 2)))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(per_window=windows, which=st.sampled_from(sorted(MAKERS)))
def test_the_same_observations_give_the_same_verdict(
    per_window: list[tuple[int, int]], which: str
) -> None:
    a, b = MAKERS[which](50), MAKERS[which](50)
    feed(a, per_window)
    feed(b, per_window)
    va, vb = a.conclude(), b.conclude()
    assert type(va) is type(vb)
    assert dict(va.figures) == dict(vb.figures)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(per_window=windows, which=st.sampled_from(sorted(MAKERS)))
def test_fewer_requests_than_min_samples_is_never_a_pass(
    per_window: list[tuple[int, int]], which: str
) -> None:
    total = sum(r for r, _ in per_window)
    j = MAKERS[which](total + 1)
    feed(j, per_window)
    verdict = j.conclude()
    # too little data may still show a failure (threshold: a failed measurement),
    # but it is never enough to pass.
    assert isinstance(verdict, Fail | Inconclusive)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(per_window=windows, which=st.sampled_from(sorted(MAKERS)))
def test_a_verdict_once_given_never_changes(per_window: list[tuple[int, int]], which: str) -> None:
    j = MAKERS[which](1)
    feed(j, per_window)
    first = j.verdict()
    if isinstance(first, Pending):
        return
    feed(j, [(60, 0)] * 10)
    assert j.verdict() is first
    assert j.conclude() is first


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    n=st.integers(100, 100_000),
    baseline_errors=st.integers(0, 50),
    canary_errors=st.integers(0, 500),
    extra=st.integers(1, 100),
)
def test_more_canary_errors_never_lower_the_evidence(
    n: int, baseline_errors: int, canary_errors: int, extra: int
) -> None:
    """For fixed counts, evidence grows with the canary's errors once it is ahead."""
    canary_errors = min(canary_errors, n - extra)
    tau = 0.01
    before = log_lr_one_sided(*proportion_difference(canary_errors, n, baseline_errors, n), tau)
    after = log_lr_one_sided(
        *proportion_difference(canary_errors + extra, n, baseline_errors, n), tau
    )
    theta, _ = proportion_difference(canary_errors, n, baseline_errors, n)
    if float(theta) >= 0:
        # the pooled variance grows a little with the errors; the shift dominates
        assert float(after) >= float(before) - 1e-9


@settings(max_examples=100, deadline=None, derandomize=True)
@given(theta=st.floats(-0.05, 0.05), step=st.floats(1e-6, 0.05), var=st.floats(1e-7, 1e-3))
def test_the_one_sided_evidence_is_increasing_in_the_estimated_harm(
    theta: float, step: float, var: float
) -> None:
    assert float(log_lr_one_sided(theta + step, var, 0.01)) >= float(
        log_lr_one_sided(theta, var, 0.01)
    )


def test_sequential_false_alarms_stay_near_alpha_on_seeded_a_a_traffic() -> None:
    """200 seeded A/A runs of 300 s at 50 req/s: at most a few false alarms at alpha 1%."""
    rng = np.random.default_rng(1234)
    alarms = 0
    for _ in range(200):
        j = SequentialJudge(SequentialConfig("e", MetricKind.ERROR_RATE, alpha=0.01))
        for t in range(300):
            c, b = rng.binomial(50, 0.01, 2)
            j.observe(
                Observation(
                    canary=pair(t, t + 1, (50, int(c))).canary,
                    baseline=pair(t, t + 1, (50, int(b))).canary,
                )
            )
            if not isinstance(j.verdict(), Pending):
                break
        alarms += isinstance(j.verdict(), Fail)
    assert alarms <= 6  # 3% of 200: alpha plus the binomial spread, fixed seed
