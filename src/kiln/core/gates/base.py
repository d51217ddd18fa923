"""The ``Gate`` protocol: a pure function from evidence to a verdict."""

from __future__ import annotations

from typing import Protocol

from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.verdict import Verdict
from kiln.core.spec.models import GateName


class Gate(Protocol):
    """One policy. ``evaluate`` never raises for bad evidence: it says so in the verdict."""

    @property
    def name(self) -> GateName: ...

    def evaluate(self, inputs: GateInputs) -> Verdict: ...
