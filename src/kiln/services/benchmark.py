"""Use case: measure a candidate against an environment's last good release.

The ``performance`` gate needs evidence that nobody has to gather by hand. Before
an artifact is promoted into an environment whose gates include
``performance``, ``measure`` here:

1. finds the environment's **last good release**: what the ledger says serves
   the environment now (the release with the largest route weight after
   replaying its deploys, rollbacks and traffic changes), or nothing;
2. starts one **fresh ephemeral instance** of the candidate and one of that
   release, both with the environment's config (never its secrets), under the
   test provider, so neither touches the environment's own instances;
3. runs the same load against both, alternated round by round
   (``kiln.services.perf.measure``: ``hey``, loopback only, bounded in time);
4. destroys both instances in a ``finally`` (Ctrl-C included; a second Ctrl-C
   does not skip it);
5. signs the measurement as a performance attestation
   (``https://kiln.dev/attestations/performance/v1``) about the candidate.

The gate then reads that attestation like any other evidence
(``evidence_from``): only a signed measurement of this candidate, for this
environment, against the release that serves it *now*, counts. A measurement
made before the environment changed is stale and ignored.

No last good release (nothing has run in the environment) is recorded as
``baseline: null``; the gate then passes with "no baseline" in its notes, or
fails on the budget's absolute limits when it sets them.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kiln.core.attest.predicates import PERFORMANCE_V1
from kiln.core.attest.provenance import rfc3339
from kiln.core.attest.statement import statement
from kiln.core.digest import Digest, short
from kiln.core.gates.evidence import parse_perf, perf_to_dict
from kiln.core.gates.inputs import PerfEvidence
from kiln.core.ledger.history import running_at
from kiln.core.runtime.model import InstanceId
from kiln.core.spec.models import Environment, GateName, ServiceSpec
from kiln.errors import InvalidInput, Permanent
from kiln.ports.attestations import AttestationStore
from kiln.ports.clock import Clock
from kiln.ports.keys import Signer
from kiln.ports.ledger import EventLog, Recorder
from kiln.ports.runtime import Provider
from kiln.services import perf
from kiln.services.attest import attest
from kiln.services.testing import Target, start_instance

#: Benchmark instances carry this environment name (and so this label).
BENCH_ENVIRONMENT = "perf"


class Measure(Protocol):
    def __call__(
        self,
        candidate_url: str,
        baseline_url: str | None,
        *,
        duration: float,
        rounds: int,
        concurrency: int,
        on_progress: Callable[[str], None] | None,
        warmup: float,
    ) -> PerfEvidence: ...


@dataclass(frozen=True)
class Measurement:
    """One side-by-side run: what was compared, how, and the figures."""

    environment: str
    candidate: Digest
    baseline: Digest | None
    evidence: PerfEvidence
    duration: float
    rounds: int
    concurrency: int
    measured_on: datetime

    def predicate(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "method": {
                "tool": "hey",
                "duration": self.duration,
                "rounds": self.rounds,
                "concurrency": self.concurrency,
                "keepalive": False,
                "order": "alternated, last good first",
                "warmup": warmup_for(self.duration),
            },
            "measurement": perf_to_dict(self.evidence),
            "measuredOn": rfc3339(self.measured_on),
        }

    def summary(self) -> dict[str, Any]:
        """Medians per side, for progress lines and ``-o json``."""

        def side(p95: Sequence[float], rps: Sequence[float]) -> dict[str, float]:
            return {
                "p95_ms": round(statistics.median(p95), 1),
                "throughput_rps": round(statistics.median(rps), 1),
            }

        cand = self.evidence.candidate
        out: dict[str, Any] = {
            "environment": self.environment,
            "baseline": self.baseline,
            "candidate": side(cand.p95_ms, cand.throughput_rps),
            "rounds": self.rounds,
            "duration": self.duration,
            "runs": perf_to_dict(self.evidence),
        }
        base = self.evidence.baseline
        if base is not None:
            out["last_good"] = side(base.p95_ms, base.throughput_rps)
        return out


def warmup_for(duration: float) -> float:
    """Uncounted load before the rounds: half a run, at most two seconds."""
    return min(2.0, duration / 2)


def needs_measurement(spec: ServiceSpec, environment: str) -> bool:
    try:
        return GateName.PERFORMANCE in spec.environment(environment).gates
    except KeyError:
        return False


def last_good(log: EventLog, environment: str, *, now: datetime) -> Digest | None:
    """The artifact that serves ``environment`` now according to the ledger, if any."""
    snapshot = running_at(log.query(environment=environment), environment=environment, at=now)
    for running in snapshot.releases:  # largest weight first
        if running.artifact:
            return Digest(running.artifact)
    return None


def run_side_by_side(
    env: Environment,
    candidate: Target,
    baseline: Target | None,
    *,
    spec: ServiceSpec,
    provider: Provider,
    clock: Clock,
    measure: Measure = perf.measure,
    on_progress: Callable[[str], None] | None = None,
) -> Measurement:
    """Start fresh instances of both, load them alternately, always destroy them."""
    budget = spec.policies.performance
    say = on_progress or (lambda message: None)
    bench_env = env.model_copy(update={"name": BENCH_ENVIRONMENT, "secrets": {}})
    started: list[InstanceId] = []
    try:
        urls: dict[str, str] = {}
        for label, target in (("last good", baseline), ("candidate", candidate)):
            if target is None:
                continue
            say(f"starting a fresh instance of the {label} {short(target.digest)}")
            try:
                _, urls[label] = start_instance(target, bench_env, provider, created=started.append)
            except RuntimeError as exc:
                raise Permanent(f"the {label} {short(target.digest)}: {exc}") from None
        evidence = measure(
            urls["candidate"],
            urls.get("last good"),
            duration=budget.duration,
            rounds=budget.rounds,
            concurrency=budget.concurrency,
            on_progress=say,
            warmup=warmup_for(budget.duration),
        )
    finally:
        say("stopping the benchmark instances")
        _destroy_all(provider, started)
    return Measurement(
        environment=env.name,
        candidate=candidate.digest,
        baseline=baseline.digest if baseline is not None else None,
        evidence=evidence,
        duration=budget.duration,
        rounds=budget.rounds,
        concurrency=budget.concurrency,
        measured_on=clock.now(),
    )


def _destroy_all(provider: Provider, instances: Sequence[InstanceId]) -> None:
    """Destroy each instance; a second Ctrl-C while doing so does not skip the rest."""
    for instance in instances:
        while True:
            try:
                with contextlib.suppress(Exception):
                    provider.destroy(instance, drain_timeout=0.5)
                break
            except KeyboardInterrupt:
                continue


def measure_for_promotion(
    spec: ServiceSpec,
    environment: str,
    candidate: Digest,
    *,
    log: EventLog,
    target_of: Callable[[Digest], Target],
    provider: Provider,
    clock: Clock,
    signer: Signer,
    store: AttestationStore,
    recorder: Recorder,
    actor: str,
    measure: Measure = perf.measure,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[Measurement, Digest]:
    """Measure ``candidate`` against what serves ``environment`` now; sign the result."""
    env = spec.environment(environment)
    baseline = last_good(log, environment, now=clock.now())
    measured = run_side_by_side(
        env,
        target_of(candidate),
        target_of(baseline) if baseline is not None else None,
        spec=spec,
        provider=provider,
        clock=clock,
        measure=measure,
        on_progress=on_progress,
    )
    stmt = statement([(spec.service, candidate)], PERFORMANCE_V1, measured.predicate())
    signed = attest(stmt, signer=signer, store=store, recorder=recorder, actor=actor)
    return measured, signed.digest


def evidence_from(
    statements: Sequence[Mapping[str, Any]], environment: str, baseline: Digest | None
) -> PerfEvidence | None:
    """The newest signed measurement for ``environment`` against ``baseline``, if any.

    ``statements`` are the candidate's attestations that verified against a
    trusted key. ``baseline`` is the environment's last good release now; a
    measurement against any other release (or against none when one exists) is
    stale and does not count.
    """
    newest: tuple[str, PerfEvidence] | None = None
    for stmt in statements:
        if stmt.get("predicateType") != PERFORMANCE_V1:
            continue
        body = stmt.get("predicate") or {}
        if body.get("environment") != environment or body.get("baseline") != baseline:
            continue
        try:
            raw = _measurement_bytes(body.get("measurement"))
            found = parse_perf(raw, "the signed performance attestation")
        except InvalidInput:
            continue
        found = PerfEvidence(found.candidate, found.baseline, first_release=baseline is None)
        when = str(body.get("measuredOn", ""))
        if newest is None or newest[0] <= when:
            newest = (when, found)
    return newest[1] if newest else None


def _measurement_bytes(measurement: object) -> bytes:
    if not isinstance(measurement, dict):
        raise InvalidInput("the performance attestation has no measurement")
    return json.dumps(measurement).encode()
