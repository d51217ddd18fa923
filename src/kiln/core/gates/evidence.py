"""Parse kiln's evidence files (JSON) into gate inputs, naming what is wrong.

These are the interchange formats ``kiln gate`` reads until the pipeline
runner hands evidence over in memory (docs/gates.md shows each):

- test results: ``{"results": [{"name", "kind", "passed", "counts", "matrix", "detail"}]}``
- trust checks: ``{"artifact", "checks": [{"kind", "verified", "signer", "problem"}],
  "revocation"}``
- performance: ``{"candidate": {"p95_ms": [...], "throughput_rps": [...]}, "baseline": {...} | null,
  "first_release": bool}``
"""

from __future__ import annotations

import json
from typing import Any

from kiln.core.gates.inputs import (
    AttestationCheck,
    PerfEvidence,
    Revocation,
    Side,
    TestCounts,
    TestRecord,
    TrustEvidence,
)
from kiln.core.spec.models import TestKind
from kiln.errors import InvalidInput


def _load(data: bytes, source: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{source}: not valid JSON ({exc})") from None


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    return value


def _str(obj: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise InvalidInput(f"{where}.{key} must be a string")
    return value


def _bool(obj: dict[str, Any], key: str, where: str, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}.{key} must be true or false")
    return value


def _numbers(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise InvalidInput(f"{where} must be a list of numbers")
    return tuple(float(x) for x in value)


def parse_tests(data: bytes, source: str) -> tuple[TestRecord, ...]:
    doc = _obj(_load(data, source), source)
    raw = doc.get("results")
    if not isinstance(raw, list):
        raise InvalidInput(f"{source}: 'results' must be a list")
    out: list[TestRecord] = []
    for i, item in enumerate(raw):
        where = f"{source}: results[{i}]"
        obj = _obj(item, where)
        try:
            kind = TestKind(obj.get("kind", "unit"))
        except ValueError:
            raise InvalidInput(
                f"{where}.kind must be one of {', '.join(k.value for k in TestKind)}"
            ) from None
        counts = _obj(obj.get("counts", {}), f"{where}.counts")
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()
        ):
            raise InvalidInput(f"{where}.counts values must be non-negative integers")
        unknown = set(counts) - {"passed", "failed", "errors", "skipped"}
        if unknown:
            raise InvalidInput(f"{where}.counts has unknown keys {sorted(unknown)}")
        matrix = _obj(obj.get("matrix", {}), f"{where}.matrix")
        if not all(isinstance(v, str) for v in matrix.values()):
            raise InvalidInput(f"{where}.matrix values must be strings")
        out.append(
            TestRecord(
                name=_str(obj, "name", where),
                kind=kind,
                passed=_bool(obj, "passed", where),
                counts=TestCounts(**counts),
                matrix=dict(matrix),
                detail=_str(obj, "detail", where, ""),
            )
        )
    return tuple(out)


def parse_trust(data: bytes, source: str) -> TrustEvidence:
    doc = _obj(_load(data, source), source)
    raw = doc.get("checks")
    if not isinstance(raw, list):
        raise InvalidInput(f"{source}: 'checks' must be a list")
    checks = []
    for i, item in enumerate(raw):
        where = f"{source}: checks[{i}]"
        obj = _obj(item, where)
        signer = obj.get("signer")
        if signer is not None and not isinstance(signer, str):
            raise InvalidInput(f"{where}.signer must be a string")
        checks.append(
            AttestationCheck(
                kind=_str(obj, "kind", where),
                verified=_bool(obj, "verified", where),
                signer=signer,
                problem=_str(obj, "problem", where, ""),
            )
        )
    revocation = None
    if doc.get("revocation") is not None:
        rev = _obj(doc["revocation"], f"{source}: revocation")
        where = f"{source}: revocation"
        revocation = Revocation(
            reason=_str(rev, "reason", where),
            by=_str(rev, "by", where, ""),
            at=_str(rev, "at", where, ""),
        )
    return TrustEvidence(_str(doc, "artifact", source), tuple(checks), revocation)


def _side(value: Any, where: str) -> Side:
    obj = _obj(value, where)
    return Side(
        p95_ms=_numbers(obj.get("p95_ms"), f"{where}.p95_ms"),
        throughput_rps=_numbers(obj.get("throughput_rps"), f"{where}.throughput_rps"),
    )


def parse_perf(data: bytes, source: str) -> PerfEvidence:
    doc = _obj(_load(data, source), source)
    baseline = doc.get("baseline")
    return PerfEvidence(
        candidate=_side(doc.get("candidate"), f"{source}: candidate"),
        baseline=None if baseline is None else _side(baseline, f"{source}: baseline"),
        first_release=_bool(doc, "first_release", source, False),
    )


def perf_to_dict(perf: PerfEvidence) -> dict[str, Any]:
    """The inverse of ``parse_perf``, for ``kiln perf`` output and fixtures."""

    def side(s: Side) -> dict[str, list[float]]:
        return {"p95_ms": list(s.p95_ms), "throughput_rps": list(s.throughput_rps)}

    return {
        "candidate": side(perf.candidate),
        "baseline": None if perf.baseline is None else side(perf.baseline),
        "first_release": perf.first_release,
    }
