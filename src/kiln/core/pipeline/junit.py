"""Write a pipeline run as JUnit XML, the report format CI systems display.

The shape is the de-facto schema Jenkins, GitLab and GitHub test reporters read
(the "JUnit XML" of Ant's junitreport): ``<testsuites>`` holding one
``<testsuite>`` for the pipeline's stages and one per test, each
``<testcase>`` with an optional ``<failure>``, ``<error>`` or ``<skipped>``.
ElementTree escapes markup; characters XML 1.0 forbids outright (most control
characters, lone surrogates) are replaced first, since test output may carry
anything and an unreadable report hides every result.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from kiln.core.gates.runner import GateReport
from kiln.core.gates.verdict import Passed

# XML 1.0 section 2.2 "Char": tab, LF, CR, and #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF.
_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Case:
    """One stage of the run, or one test. ``message`` is one line; ``output`` any length."""

    name: str
    outcome: Outcome
    seconds: float = 0.0
    classname: str = ""
    message: str = ""
    output: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    cases: tuple[Case, ...]
    properties: dict[str, str] = field(default_factory=dict)
    timestamp: str = ""


def clean(text: str) -> str:
    return _ILLEGAL.sub("\ufffd", text)


def _count(cases: Sequence[Case], outcome: Outcome) -> int:
    return sum(1 for c in cases if c.outcome is outcome)


def to_xml(name: str, suites: Sequence[Suite]) -> bytes:
    """The whole run as a UTF-8 JUnit XML document."""
    everything = [c for s in suites for c in s.cases]
    root = ET.Element(
        "testsuites",
        {
            "name": clean(name),
            "tests": str(len(everything)),
            "failures": str(_count(everything, Outcome.FAILED)),
            "errors": str(_count(everything, Outcome.ERROR)),
            "skipped": str(_count(everything, Outcome.SKIPPED)),
            "time": f"{sum(c.seconds for c in everything):.3f}",
        },
    )
    for suite in suites:
        attrs = {
            "name": clean(suite.name),
            "tests": str(len(suite.cases)),
            "failures": str(_count(suite.cases, Outcome.FAILED)),
            "errors": str(_count(suite.cases, Outcome.ERROR)),
            "skipped": str(_count(suite.cases, Outcome.SKIPPED)),
            "time": f"{sum(c.seconds for c in suite.cases):.3f}",
        }
        if suite.timestamp:
            attrs["timestamp"] = clean(suite.timestamp)
        node = ET.SubElement(root, "testsuite", attrs)
        if suite.properties:
            props = ET.SubElement(node, "properties")
            for key, value in sorted(suite.properties.items()):
                ET.SubElement(props, "property", {"name": clean(key), "value": clean(value)})
        for case in suite.cases:
            _case(node, suite, case)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _case(parent: ET.Element, suite: Suite, case: Case) -> None:
    node = ET.SubElement(
        parent,
        "testcase",
        {
            "name": clean(case.name),
            "classname": clean(case.classname or suite.name),
            "time": f"{case.seconds:.3f}",
        },
    )
    tag = {Outcome.FAILED: "failure", Outcome.ERROR: "error", Outcome.SKIPPED: "skipped"}.get(
        case.outcome
    )
    if tag is not None:
        child = ET.SubElement(
            node, tag, {"message": clean(case.message.splitlines()[0] if case.message else "")}
        )
        if tag != "skipped":
            child.set("type", tag)
            if case.output or case.message:
                child.text = clean(case.output or case.message)
    elif case.output:
        ET.SubElement(node, "system-out").text = clean(case.output)


def gate_suite(report: GateReport) -> Suite:
    """A gate report as a suite: one case per gate; inconclusive is a failure too,
    since it blocks exactly like one."""
    cases = []
    for result in report.results:
        verdict = result.verdict
        reasons = "\n".join(verdict.reasons)
        if isinstance(verdict, Passed):
            cases.append(Case(result.gate.value, Outcome.PASSED, output=reasons))
        else:
            first = verdict.reasons[0] if verdict.reasons else verdict.outcome
            cases.append(
                Case(
                    result.gate.value,
                    Outcome.FAILED,
                    message=f"{verdict.outcome}: {first}",
                    output=reasons,
                )
            )
    props = {"environment": report.environment, "policy_digest": report.policy_digest}
    if report.artifact:
        props["artifact"] = report.artifact
    return Suite(f"gates.{report.environment}", tuple(cases), properties=props)
