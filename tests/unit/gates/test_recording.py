"""Recording verdicts through the ``Recorder`` port (an in-memory fake)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.runner import evaluate
from kiln.core.ledger.kinds import EventKind
from kiln.services.gates import record_verdicts

from .conftest import TODAY, spec_of


class FakeRecorder:
    """Keeps events in memory and checks the port's contract on every call."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(
        self,
        kind: EventKind,
        *,
        actor: str,
        artifact: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        links: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        assert isinstance(kind, EventKind)
        assert actor, "every event names its actor"
        assert details is None or json.loads(json.dumps(details)) == dict(details)
        self.events.append(
            {"kind": kind, "actor": actor, "artifact": artifact, "environment": environment}
            | {"links": dict(links or {}), "details": dict(details or {})}
        )
        return len(self.events)


def test_one_gate_verdict_event_per_gate_in_order() -> None:
    spec = spec_of(
        {
            "service": "hello",
            "policies": {"rules": [{"name": "ha", "expr": "env.replicas >= 2"}]},
            "environments": [{"name": "prod", "gates": ["rules", "signed"]}],
        }
    )
    artifact = "sha256:" + "f" * 64
    report = evaluate(
        spec.environment("prod"), spec.policies, GateInputs(artifact=artifact, today=TODAY)
    )
    recorder = FakeRecorder()
    seqs = record_verdicts(
        report, recorder=recorder, actor="ci", links={"attestation": "sha256:" + "a" * 64}
    )
    assert seqs == [1, 2]
    assert [e["kind"] for e in recorder.events] == [EventKind.GATE_VERDICT] * 2
    assert [e["details"]["gate"] for e in recorder.events] == ["rules", "signed"]
    first = recorder.events[0]
    assert first["artifact"] == artifact and first["environment"] == "prod"
    assert first["details"]["reasons"] == ["rule ha: env.replicas >= 2 is false"]
    assert recorder.events[1]["details"]["outcome"] == "inconclusive"


def test_the_fake_refuses_what_the_port_forbids() -> None:
    with pytest.raises(AssertionError):
        FakeRecorder().record(EventKind.GATE_VERDICT, actor="")
