"""Use case ``gate``: gather evidence from files, evaluate an environment's gates.

Reads the SBOM, the OSV database (a directory of ``*.json`` files, searched
recursively, or one file), and the optional evidence files; turns each into the
core's input types (every parse error names its file) and calls the pure
``kiln.core.gates.runner.evaluate``. Evidence that was not given stays ``None``,
so its gate is ``Inconclusive`` and blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.core.gates import evidence
from kiln.core.gates.inputs import (
    GateInputs,
    NamingEvidence,
    PerfEvidence,
    Sbom,
    TestEvidence,
    TrustEvidence,
    required_tests,
)
from kiln.core.gates.osv import Advisory, parse_database
from kiln.core.gates.record import EVENT_KIND, event_details
from kiln.core.gates.rules import activation, applicable, check_rule
from kiln.core.gates.runner import GateReport, evaluate
from kiln.core.gates.sbom import parse_sbom
from kiln.core.gates.spdx import parse as parse_spdx
from kiln.core.spec.models import GateName, ServiceSpec
from kiln.errors import InvalidInput, NotFound
from kiln.ports.clock import Clock
from kiln.ports.ledger import Recorder

# An OSV export for one ecosystem is tens of thousands of small files; a single
# file larger than this is not an advisory and is refused rather than parsed.
MAX_OSV_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class GateRequest:
    environment: str
    sbom: Path | None = None
    osv: Path | None = None
    tests: Path | None = None
    trust: Path | None = None
    perf: Path | None = None
    tags: tuple[str, ...] = ()
    artifact: str = ""
    first_release: bool = False


def _read(path: Path, what: str, limit: int = MAX_OSV_FILE_BYTES) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidInput(f"{what} {path} is larger than {limit} bytes")
    return data


def load_osv(path: Path) -> list[Advisory]:
    """Every advisory in an OSV directory (recursive ``*.json``) or one OSV JSON file."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        out: list[Advisory] = []
        for file in files:
            out.extend(parse_database(_read(file, "OSV file"), str(file)))
        return out
    if not path.exists():
        raise NotFound(
            f"OSV database {path} does not exist",
            hint="point policies.vulnerabilities.database or --osv at a directory of OSV files",
        )
    return parse_database(_read(path, "OSV file"), str(path))


def load_sbom(path: Path) -> Sbom:
    return parse_sbom(_read(path, "SBOM"), str(path))


def osv_path(spec_dir: Path, spec: ServiceSpec, override: Path | None) -> Path | None:
    if override is not None:
        return override
    database = spec.policies.vulnerabilities.database
    return spec_dir / database if database else None


def gather(spec: ServiceSpec, spec_dir: Path, request: GateRequest, *, clock: Clock) -> GateInputs:
    """Read every evidence file the request names into ``GateInputs``."""
    try:
        env = spec.environment(request.environment)
    except KeyError:
        raise NotFound(
            f"no environment {request.environment!r} in the spec",
            hint=f"environments are: {', '.join(spec.path_order)}",
        ) from None
    # The database can be large; read it only when this environment checks it.
    database = osv_path(spec_dir, spec, request.osv)
    advisories: tuple[Advisory, ...] | None = None
    if database is not None and GateName.VULNERABILITIES in env.gates:
        advisories = tuple(load_osv(database))
    tests: TestEvidence | None = None
    if request.tests is not None:
        results = evidence.parse_tests(_read(request.tests, "test results"), str(request.tests))
        tests = TestEvidence(required_tests(spec.tests), results)
    trust: TrustEvidence | None = None
    if request.trust is not None:
        trust = evidence.parse_trust(_read(request.trust, "trust checks"), str(request.trust))
    perf: PerfEvidence | None = None
    if request.perf is not None:
        perf = evidence.parse_perf(_read(request.perf, "performance results"), str(request.perf))
        if request.first_release and perf.baseline is None:
            perf = PerfEvidence(perf.candidate, None, first_release=True)
    return GateInputs(
        service=spec.service,
        artifact=request.artifact or (trust.artifact if trust else ""),
        trust=trust,
        tests=tests,
        sbom=load_sbom(request.sbom) if request.sbom is not None else None,
        advisories=advisories,
        database_label=str(database) if database else "",
        today=clock.now().date(),
        perf=perf,
        naming=NamingEvidence(spec.service, request.tags) if request.tags else None,
    )


def run_gates(
    spec: ServiceSpec, spec_dir: Path, request: GateRequest, *, clock: Clock
) -> GateReport:
    """Evaluate every gate ``request.environment`` requires; pure once evidence is read."""
    inputs = gather(spec, spec_dir, request, clock=clock)
    env = spec.environment(request.environment)
    return evaluate(env, spec.policies, inputs)


@dataclass(frozen=True)
class PolicyProblem:
    where: str
    message: str


@dataclass(frozen=True)
class PolicyCheck:
    problems: tuple[PolicyProblem, ...]
    warnings: tuple[PolicyProblem, ...]
    advisories: int | None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_policies(
    spec: ServiceSpec, spec_dir: Path, *, clock: Clock, osv: Path | None = None
) -> PolicyCheck:
    """Dry-run the policies: rules compile and evaluate per environment, license
    lists parse, the OSV database loads, ignores are not expired."""
    problems: list[PolicyProblem] = []
    warnings: list[PolicyProblem] = []
    policies = spec.policies
    for env in spec.environments:
        data = activation(env, spec.service)
        for rule in applicable(policies.rules, env.name):
            outcome = check_rule(rule, data)
            if not outcome.ok:
                problems.append(PolicyProblem(f"rules.{rule.name} in {env.name}", outcome.problem))
    for listname, entries in (("allow", policies.licenses.allow), ("deny", policies.licenses.deny)):
        for i, entry in enumerate(entries):
            try:
                parse_spdx(entry)
            except InvalidInput as exc:
                problems.append(PolicyProblem(f"licenses.{listname}[{i}]", exc.message))
    today = clock.now().date()
    for i, ignore in enumerate(policies.vulnerabilities.ignore):
        if ignore.expires < today.isoformat():
            warnings.append(
                PolicyProblem(
                    f"vulnerabilities.ignore[{i}]",
                    f"ignore of {ignore.id} expired on {ignore.expires}",
                )
            )
    count: int | None = None
    database = osv_path(spec_dir, spec, osv)
    if database is not None:
        try:
            count = len(load_osv(database))
        except (InvalidInput, NotFound) as exc:
            problems.append(PolicyProblem("vulnerabilities.database", exc.message))
    return PolicyCheck(tuple(problems), tuple(warnings), count)


def record_verdicts(
    report: GateReport,
    *,
    recorder: Recorder,
    actor: str,
    links: Mapping[str, str] | None = None,
) -> list[int]:
    """Append one ``gate.verdict`` event per gate, in evaluation order; return their seqs.

    ``links`` typically carries the digest of the signed policy-verdict
    attestation (``{"attestation": "sha256:…"}``) once the caller has made it.
    """
    return [
        recorder.record(
            EVENT_KIND,
            actor=actor,
            artifact=report.artifact or None,
            environment=report.environment,
            links=links,
            details=event_details(result, report),
        )
        for result in report.results
    ]
