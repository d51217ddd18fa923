"""The evidence gates read, as plain frozen dataclasses.

These are deliberately narrow: the trust layer verifies signatures, the test
runner runs tests, the SBOM is parsed by ``sbom.py`` and the OSV database by
``osv.py``. Each producer converts its own rich result into these shapes, so
gates never depend on how the evidence was obtained.

Every field of ``GateInputs`` may be ``None``: a gate whose evidence is missing
is ``Inconclusive`` (blocks), never ``Passed``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from kiln.core.gates.osv import Advisory
from kiln.core.spec.models import TestKind, TestSpec

# in-toto predicate types of the attestations kiln writes for every build
# (ARCHITECTURE.md, "attest"). The signed gate requires these by default.
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
DEFAULT_REQUIRED_ATTESTATIONS = (SLSA_PROVENANCE_V1, CYCLONEDX_BOM)


@dataclass(frozen=True)
class AttestationCheck:
    """What the trust layer concluded about one attestation of the artifact.

    ``kind`` is the in-toto predicate type. ``verified`` is true only when the
    envelope's signature checked out against a key the trust policy accepts;
    ``signer`` names that key (a key id or a trust.yaml name). ``problem``
    explains a failed check in words.
    """

    kind: str
    verified: bool
    signer: str | None = None
    problem: str = ""


@dataclass(frozen=True)
class Revocation:
    """The artifact was revoked: it must never be promoted again."""

    reason: str
    by: str = ""
    at: str = ""


@dataclass(frozen=True)
class TrustEvidence:
    """Input of the signed gate: every attestation check, and any revocation."""

    artifact: str
    checks: tuple[AttestationCheck, ...]
    revocation: Revocation | None = None


@dataclass(frozen=True)
class TestCounts:
    __test__ = False  # not a pytest test class

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class TestRecord:
    """One run of one test for one matrix combination."""

    __test__ = False  # not a pytest test class

    name: str
    kind: TestKind
    passed: bool
    counts: TestCounts = field(default_factory=TestCounts)
    matrix: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""

    @property
    def label(self) -> str:
        return label(self.name, self.matrix)


@dataclass(frozen=True)
class RequiredTest:
    """One (test, matrix combination) the spec says must pass."""

    name: str
    kind: TestKind
    matrix: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return label(self.name, self.matrix)

    def key(self) -> tuple[str, frozenset[tuple[str, str]]]:
        return (self.name, frozenset(self.matrix.items()))


def label(name: str, matrix: Mapping[str, str]) -> str:
    if not matrix:
        return name
    values = ",".join(f"{k}={v}" for k, v in sorted(matrix.items()))
    return f"{name}[{values}]"


def required_tests(specs: Sequence[TestSpec]) -> tuple[RequiredTest, ...]:
    """Expand every test of the spec over its matrix (the cartesian product)."""
    out: list[RequiredTest] = []
    for spec in specs:
        keys = sorted(spec.matrix)
        for values in itertools.product(*(spec.matrix[k] for k in keys)):
            out.append(RequiredTest(spec.name, spec.kind, dict(zip(keys, values, strict=True))))
    return tuple(out)


@dataclass(frozen=True)
class TestEvidence:
    __test__ = False  # not a pytest test class

    required: tuple[RequiredTest, ...]
    results: tuple[TestRecord, ...]


@dataclass(frozen=True)
class License:
    """A component's license: an SPDX expression, or a free-text name."""

    expression: str
    is_spdx: bool = True


@dataclass(frozen=True)
class Component:
    """One SBOM component, reduced to what the gates need."""

    name: str
    version: str
    purl: str | None
    licenses: tuple[License, ...] = ()
    ecosystem: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name


@dataclass(frozen=True)
class Sbom:
    components: tuple[Component, ...]
    source: str = ""


@dataclass(frozen=True)
class Side:
    """Several runs of one side of a load test: p95 latency (ms), throughput (req/s)."""

    p95_ms: tuple[float, ...]
    throughput_rps: tuple[float, ...]


@dataclass(frozen=True)
class PerfEvidence:
    """Candidate and last good release, measured side by side in one run.

    ``baseline`` is ``None`` when there is no last good release; that passes only
    when ``first_release`` is true.
    """

    candidate: Side
    baseline: Side | None
    first_release: bool = False


@dataclass(frozen=True)
class NamingEvidence:
    service: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class GateInputs:
    """Everything a gate run may look at. ``None`` means "not provided"."""

    service: str = ""
    artifact: str = ""
    trust: TrustEvidence | None = None
    tests: TestEvidence | None = None
    sbom: Sbom | None = None
    advisories: tuple[Advisory, ...] | None = None
    today: date | None = None
    perf: PerfEvidence | None = None
    naming: NamingEvidence | None = None
    required_attestations: tuple[str, ...] = DEFAULT_REQUIRED_ATTESTATIONS
    database_label: str = ""
