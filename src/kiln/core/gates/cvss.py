"""CVSS v3 base score from a vector string, and the qualitative rating.

Implements the base equations of FIRST's "Common Vulnerability Scoring System
v3.1: Specification Document" (https://www.first.org/cvss/v3-1/specification-document),
section 7.1 (base equations), 7.4 (metric values) and Appendix A (``Roundup``),
and the qualitative severity rating scale of section 5. ``CVSS:3.0`` vectors
use the same weights; we apply the v3.1 ``Roundup`` to them too, which the 3.1
specification introduced only to remove floating-point surprises.
"""

from __future__ import annotations

import math
from functools import lru_cache

from kiln.core.spec.models import Severity
from kiln.errors import InvalidInput

# Section 7.4, Table 16: metric values.
_AV = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_AC = {"L": 0.77, "H": 0.44}
_PR_UNCHANGED = {"N": 0.85, "L": 0.62, "H": 0.27}
_PR_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}
_UI = {"N": 0.85, "R": 0.62}
_CIA = {"H": 0.56, "L": 0.22, "N": 0.0}
_BASE_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


def roundup(value: float) -> float:
    """Appendix A: the smallest number with one decimal that is >= value.

    Working in integers of 1e-5 avoids 4.000000001 rounding up to 4.1.
    """
    as_int = round(value * 100_000)
    if as_int % 10_000 == 0:
        return as_int / 100_000.0
    return (math.floor(as_int / 10_000) + 1) / 10.0


def parse_vector(vector: str) -> dict[str, str]:
    """Split ``CVSS:3.1/AV:N/...`` into its metrics; every base metric is required."""
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        raise InvalidInput(
            f"not a CVSS v3 vector (must start with CVSS:3.0/ or CVSS:3.1/): {vector}"
        )
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep or not value:
            raise InvalidInput(f"malformed CVSS metric {part!r} in {vector}")
        if key in metrics:
            raise InvalidInput(f"CVSS metric {key} appears twice in {vector}")
        metrics[key] = value
    missing = [m for m in _BASE_METRICS if m not in metrics]
    if missing:
        raise InvalidInput(f"CVSS vector lacks base metrics {', '.join(missing)}: {vector}")
    return metrics


@lru_cache(maxsize=4096)  # databases repeat a few hundred distinct vectors
def base_score(vector: str) -> float:
    """The CVSS v3.x base score (0.0-10.0) of a vector string (section 7.1)."""
    m = parse_vector(vector)
    try:
        changed = {"U": False, "C": True}[m["S"]]
        pr = (_PR_CHANGED if changed else _PR_UNCHANGED)[m["PR"]]
        av, ac, ui = _AV[m["AV"]], _AC[m["AC"]], _UI[m["UI"]]
        conf, integ, avail = _CIA[m["C"]], _CIA[m["I"]], _CIA[m["A"]]
    except KeyError as exc:
        raise InvalidInput(f"unknown CVSS metric value {exc.args[0]!r} in {vector}") from None
    iss = 1 - (1 - conf) * (1 - integ) * (1 - avail)
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    if changed:
        return roundup(min(1.08 * (impact + exploitability), 10.0))
    return roundup(min(impact + exploitability, 10.0))


def rating(score: float) -> Severity | None:
    """Section 5: None 0.0 · Low 0.1-3.9 · Medium 4.0-6.9 · High 7.0-8.9 · Critical 9.0-10.0.

    A score of 0.0 ("None") returns ``None``: no severity at all, which callers
    rank below every threshold because the vector itself says there is no impact.
    """
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return None


# --- CVSS v2 -------------------------------------------------------------------------
# FIRST, "A Complete Guide to the Common Vulnerability Scoring System Version 2.0",
# section 3.2.1 (base equation) and 3.2.4 (metric values). Older advisories
# carry only a v2 vector; scoring it keeps them out of "unknown".

_V2_AV = {"L": 0.395, "A": 0.646, "N": 1.0}
_V2_AC = {"H": 0.35, "M": 0.61, "L": 0.71}
_V2_AU = {"M": 0.45, "S": 0.56, "N": 0.704}
_V2_CIA = {"N": 0.0, "P": 0.275, "C": 0.660}
_V2_METRICS = ("AV", "AC", "Au", "C", "I", "A")


@lru_cache(maxsize=1024)
def base_score_v2(vector: str) -> float:
    """The CVSS v2 base score of ``AV:N/AC:L/Au:N/C:P/I:P/A:P`` (optionally in parentheses)."""
    metrics: dict[str, str] = {}
    for part in vector.strip().strip("()").split("/"):
        key, sep, value = part.partition(":")
        if not sep or key in metrics:
            raise InvalidInput(f"malformed CVSS v2 vector: {vector}")
        metrics[key] = value
    missing = [m for m in _V2_METRICS if m not in metrics]
    if missing:
        raise InvalidInput(f"CVSS v2 vector lacks base metrics {', '.join(missing)}: {vector}")
    try:
        av, ac, au = _V2_AV[metrics["AV"]], _V2_AC[metrics["AC"]], _V2_AU[metrics["Au"]]
        conf, integ, avail = _V2_CIA[metrics["C"]], _V2_CIA[metrics["I"]], _V2_CIA[metrics["A"]]
    except KeyError as exc:
        raise InvalidInput(f"unknown CVSS v2 metric value {exc.args[0]!r} in {vector}") from None
    impact = 10.41 * (1 - (1 - conf) * (1 - integ) * (1 - avail))
    exploitability = 20 * av * ac * au
    f_impact = 0.0 if impact == 0 else 1.176
    score = ((0.6 * impact) + (0.4 * exploitability) - 1.5) * f_impact
    # The guide rounds to one decimal; round half up, as its worked examples do.
    return math.floor(score * 10 + 0.5 + 1e-9) / 10


def rating_v2(score: float) -> Severity | None:
    """NVD's v2 scale: Low 0.0-3.9, Medium 4.0-6.9, High 7.0-10.0 (v2 has no Critical)."""
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return None
