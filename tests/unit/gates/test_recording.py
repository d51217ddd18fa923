"""Recording verdicts through the ``Recorder`` port (an in-memory fake)."""

from __future__ import annotations

import pytest

from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.runner import evaluate
from kiln.core.ledger.kinds import EventKind
from kiln.services.gates import record_verdicts
from tests.unit.recorder import MemoryRecorder

from .conftest import TODAY, spec_of

FakeRecorder = MemoryRecorder


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
