"""The signed, tests, performance and naming gates."""

from __future__ import annotations

import pytest

from kiln.core.gates.inputs import (
    CYCLONEDX_BOM,
    SLSA_PROVENANCE_V1,
    AttestationCheck,
    GateInputs,
    NamingEvidence,
    PerfEvidence,
    Revocation,
    Side,
    TestCounts,
    TestEvidence,
    TestRecord,
    TrustEvidence,
    required_tests,
)
from kiln.core.gates.naming import NamingGate
from kiln.core.gates.performance import PerformanceGate
from kiln.core.gates.signed import SignedGate
from kiln.core.gates.testresults import TestsGate
from kiln.core.gates.verdict import Failed, Inconclusive, Passed
from kiln.core.spec import models
from kiln.core.spec.models import NamingPolicy, PerformanceBudget

from .conftest import spec_of

ART = "sha256:" + "ab" * 32
GOOD = (
    AttestationCheck(SLSA_PROVENANCE_V1, True, "ci-key"),
    AttestationCheck(CYCLONEDX_BOM, True, "ci-key"),
)

# --- signed -------------------------------------------------------------------------


def test_signed_passes_with_every_required_attestation_verified() -> None:
    verdict = SignedGate().evaluate(GateInputs(trust=TrustEvidence(ART, GOOD)))
    assert isinstance(verdict, Passed)
    assert verdict.details["signers"][SLSA_PROVENANCE_V1] == ["ci-key"]


def test_an_unsigned_artifact_fails_naming_each_missing_kind() -> None:
    verdict = SignedGate().evaluate(GateInputs(trust=TrustEvidence(ART, ())))
    assert isinstance(verdict, Failed)
    assert verdict.reasons == (
        f"unsigned: no {SLSA_PROVENANCE_V1} attestation for {ART}",
        f"unsigned: no {CYCLONEDX_BOM} attestation for {ART}",
    )


def test_an_untrusted_signature_fails_with_the_trust_layers_words() -> None:
    checks = (GOOD[0], AttestationCheck(CYCLONEDX_BOM, False, None, "key abc is not in trust.yaml"))
    verdict = SignedGate().evaluate(GateInputs(trust=TrustEvidence(ART, checks)))
    assert isinstance(verdict, Failed)
    assert verdict.reasons == (
        f"{CYCLONEDX_BOM} attestation is not signed by a trusted key: key abc is not in trust.yaml",
    )


def test_a_revoked_artifact_fails_even_when_perfectly_signed() -> None:
    revoked = Revocation("shipped a credential in a layer", by="alice", at="2026-11-20T10:00:00Z")
    verdict = SignedGate().evaluate(GateInputs(trust=TrustEvidence(ART, GOOD, revoked)))
    assert isinstance(verdict, Failed)
    assert verdict.reasons == (
        f"artifact {ART} was revoked by alice at 2026-11-20T10:00:00Z: "
        "shipped a credential in a layer",
    )


def test_a_bad_extra_attestation_fails_and_nothing_required_never_passes() -> None:
    extra = (
        *GOOD,
        AttestationCheck("https://kiln.dev/attestations/test/v1", False, None, "bad sig"),
    )
    assert isinstance(SignedGate().evaluate(GateInputs(trust=TrustEvidence(ART, extra))), Failed)
    assert isinstance(SignedGate(()).evaluate(GateInputs(trust=TrustEvidence(ART, GOOD))), Failed)
    assert isinstance(SignedGate().evaluate(GateInputs()), Inconclusive)


# --- tests --------------------------------------------------------------------------

SPEC = spec_of(
    {
        "service": "hello",
        "tests": [
            {"name": "unit", "command": ["pytest"], "matrix": {"PY": ["3.11", "3.12"]}},
            {"name": "smoke", "kind": "e2e", "command": ["./smoke"]},
        ],
    }
)
REQUIRED = required_tests(SPEC.tests)


def _rec(name: str, passed: bool = True, **kw: object) -> TestRecord:
    kind = models.TestKind.E2E if name == "smoke" else models.TestKind.UNIT
    return TestRecord(name, kind, passed, **kw)  # type: ignore[arg-type]


def test_the_matrix_expands_to_one_required_run_per_combination() -> None:
    assert [r.label for r in REQUIRED] == ["unit[PY=3.11]", "unit[PY=3.12]", "smoke"]


def test_every_required_run_passing_passes() -> None:
    results = (
        _rec("unit", matrix={"PY": "3.11"}, counts=TestCounts(passed=10)),
        _rec("unit", matrix={"PY": "3.12"}, counts=TestCounts(passed=10)),
        _rec("smoke"),
    )
    verdict = TestsGate().evaluate(GateInputs(tests=TestEvidence(REQUIRED, results)))
    assert isinstance(verdict, Passed) and verdict.details["passed"] == 3


def test_a_failing_test_and_a_missing_run_each_give_a_reason() -> None:
    results = (
        _rec(
            "unit",
            False,
            matrix={"PY": "3.11"},
            counts=TestCounts(passed=9, failed=1),
            detail="test_x",
        ),
        _rec("smoke"),
    )
    verdict = TestsGate().evaluate(GateInputs(tests=TestEvidence(REQUIRED, results)))
    assert isinstance(verdict, Failed)
    assert verdict.reasons == (
        "unit[PY=3.11] (unit) failed (9 passed, 1 failed, 0 errors): test_x",
        "unit[PY=3.12] (unit): no result; it did not run",
    )


def test_contradictory_records_fail_and_no_tests_is_inconclusive() -> None:
    liar = (_rec("smoke", counts=TestCounts(passed=3, errors=1)),)
    required = required_tests(SPEC.tests[1:])
    verdict = TestsGate().evaluate(GateInputs(tests=TestEvidence(required, liar)))
    assert isinstance(verdict, Failed) and "reports passed but counts" in verdict.reasons[0]
    assert isinstance(TestsGate().evaluate(GateInputs(tests=TestEvidence((), ()))), Inconclusive)
    assert isinstance(TestsGate().evaluate(GateInputs()), Inconclusive)


# --- performance ----------------------------------------------------------------------

BUDGET = PerformanceBudget(max_p95_ratio=1.25, min_throughput_ratio=0.8)


def _perf(cand: Side, base: Side | None, first: bool = False) -> GateInputs:
    return GateInputs(perf=PerfEvidence(cand, base, first))


def test_performance_compares_medians_of_the_runs() -> None:
    base = Side((10.0, 11.0, 50.0), (100.0, 98.0, 20.0))  # one noisy run; the median ignores it
    cand = Side((11.0, 12.0, 11.5), (95.0, 96.0, 97.0))
    verdict = PerformanceGate(BUDGET).evaluate(_perf(cand, base))
    assert isinstance(verdict, Passed)
    assert verdict.details["p95_ratio"] == pytest.approx(11.5 / 11.0, abs=1e-4)


def test_a_2x_latency_regression_fails_with_the_ratio() -> None:
    base = Side((20.0, 21.0, 20.5), (100.0, 100.0, 100.0))
    cand = Side((41.0, 40.0, 42.0), (50.0, 51.0, 49.0))
    verdict = PerformanceGate(BUDGET).evaluate(_perf(cand, base))
    assert isinstance(verdict, Failed)
    assert verdict.reasons == (
        "p95 latency ratio 2.00x exceeds the budget 1.25x "
        "(candidate 41.0 ms vs last good 20.5 ms, medians)",
        "throughput ratio 0.50x is below the budget 0.80x "
        "(candidate 50.0 req/s vs last good 100.0 req/s, medians)",
    )


def test_no_baseline_blocks_unless_first_release() -> None:
    cand = Side((10.0,), (100.0,))
    blocked = PerformanceGate(BUDGET).evaluate(_perf(cand, None))
    assert isinstance(blocked, Inconclusive) and "no baseline" in blocked.reason
    first = PerformanceGate(BUDGET).evaluate(_perf(cand, None, first=True))
    assert isinstance(first, Passed)
    assert first.notes[0].startswith("no baseline: nothing has run in this environment yet")
    assert "candidate p95 10.0 ms, 100.0 req/s" in first.notes[0]
    assert "no absolute limit is set" in first.notes[0]


def test_absolute_limits_judge_a_first_release_and_every_other() -> None:
    strict = PerformanceBudget(max_p95_ms=8.0, min_throughput_rps=150.0)
    cand = Side((10.0, 9.0, 11.0), (100.0, 90.0, 110.0))
    first = PerformanceGate(strict).evaluate(_perf(cand, None, first=True))
    assert isinstance(first, Failed)
    assert first.reasons == (
        "p95 latency 10.0 ms exceeds the absolute limit 8 ms (median)",
        "throughput 100.0 req/s is below the absolute floor 150 req/s (median)",
    )
    within = PerformanceBudget(max_p95_ms=12.0)
    passed = PerformanceGate(within).evaluate(_perf(cand, None, first=True))
    assert isinstance(passed, Passed) and "within the absolute limits" in passed.notes[0]
    # with a baseline the ratios pass (same figures) but the absolute limit still applies
    same = PerformanceGate(PerformanceBudget(max_p95_ms=8.0)).evaluate(_perf(cand, cand))
    assert isinstance(same, Failed)
    assert same.reasons == ("p95 latency 10.0 ms exceeds the absolute limit 8 ms (median)",)


def test_unusable_measurements_are_inconclusive() -> None:
    good = Side((10.0,), (100.0,))
    assert isinstance(PerformanceGate(BUDGET).evaluate(GateInputs()), Inconclusive)
    assert isinstance(PerformanceGate(BUDGET).evaluate(_perf(Side((), ()), good)), Inconclusive)
    zero = PerformanceGate(BUDGET).evaluate(_perf(good, Side((0.0,), (0.0,))))
    assert isinstance(zero, Inconclusive) and "baseline" in zero.reason


# --- naming -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "reasons"),
    [
        (("hello:1.2.3-gabcdef0",), ()),
        (("hello:1.2.3-rc.1-gabcdef0",), ()),
        (("hello:latest",), ("tag 'hello:latest' does not match",)),
        (
            ("other:1.2.3-gabcdef0",),
            ("tag 'other:1.2.3-gabcdef0' names 'other', not the service 'hello'",),
        ),
    ],
)
def test_tags_must_match_the_pattern_and_name_the_service(
    tags: tuple[str, ...], reasons: tuple[str, ...]
) -> None:
    verdict = NamingGate(NamingPolicy()).evaluate(GateInputs(naming=NamingEvidence("hello", tags)))
    got = verdict.reasons if isinstance(verdict, Failed) else ()
    assert len(got) == len(reasons)
    for have, want in zip(got, reasons, strict=True):
        assert have.startswith(want)


def test_the_pattern_must_match_the_whole_tag_and_a_tag_is_required() -> None:
    loose = NamingPolicy(tag_pattern=r"hello:\d+")
    verdict = NamingGate(loose).evaluate(GateInputs(naming=NamingEvidence("hello", ("hello:1x",))))
    assert isinstance(verdict, Failed)
    assert isinstance(NamingGate(loose).evaluate(GateInputs()), Inconclusive)
    bad_service = NamingGate(loose).evaluate(
        GateInputs(naming=NamingEvidence("Hello_", ("Hello_:1",)))
    )
    assert isinstance(bad_service, Failed) and "service name" in bad_service.reasons[0]
