"""Gate ``tests``: every test the spec declares, for every matrix combination, passed.

A test with no result did not run, which fails the gate; a spec with no
tests at all gives ``Inconclusive`` (nothing shows the artifact works). A
record that says "passed" while counting failures is contradictory and fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.core.gates.inputs import GateInputs, TestRecord
from kiln.core.gates.verdict import Failed, Inconclusive, Passed, Verdict
from kiln.core.spec.models import GateName


@dataclass(frozen=True)
class TestsGate:
    __test__ = False  # not a pytest test class

    @property
    def name(self) -> GateName:
        return GateName.TESTS

    def evaluate(self, inputs: GateInputs) -> Verdict:
        evidence = inputs.tests
        if evidence is None:
            return Inconclusive("no test results were provided")
        if not evidence.required:
            return Inconclusive(
                "the spec declares no tests, so nothing shows this artifact works; "
                "add tests to kiln.yaml or remove the tests gate from this environment"
            )
        runs: dict[tuple[str, frozenset[tuple[str, str]]], list[TestRecord]] = {}
        for record in evidence.results:
            runs.setdefault((record.name, frozenset(record.matrix.items())), []).append(record)
        reasons: list[str] = []
        passed = 0
        for required in evidence.required:
            records = runs.get(required.key(), [])
            if not records:
                reasons.append(
                    f"{required.label} ({required.kind.value}): no result; it did not run"
                )
                continue
            ok = True
            for record in records:
                c = record.counts
                tally = f"{c.passed} passed, {c.failed} failed, {c.errors} errors"
                extra = f": {record.detail}" if record.detail else ""
                if not record.passed:
                    reasons.append(f"{record.label} ({record.kind.value}) failed ({tally}){extra}")
                    ok = False
                elif c.failed or c.errors:
                    reasons.append(f"{record.label} reports passed but counts {tally}")
                    ok = False
            passed += ok
        known = {r.key() for r in evidence.required}
        extra_runs = sorted(
            {
                r.label
                for r in evidence.results
                if (r.name, frozenset(r.matrix.items())) not in known
            }
        )
        details = {"required": len(evidence.required), "passed": passed, "unexpected": extra_runs}
        if reasons:
            return Failed(tuple(reasons), details)
        return Passed(details)
