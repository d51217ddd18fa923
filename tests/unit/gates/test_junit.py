"""The JUnit XML report of a pipeline run: structure, counts, escaping.

S314 is silenced where we parse: the XML is the document our own writer produced.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kiln.core.pipeline.junit import Case, Outcome, Suite, to_xml

STAGES = Suite(
    "pipeline",
    (
        Case("build", Outcome.PASSED, 3.5),
        Case(
            "gate prod",
            Outcome.FAILED,
            0.2,
            message="vulnerabilities: requests@2.90.1 <critical>\nmore",
        ),
        Case("deploy prod", Outcome.SKIPPED, message="stopped at the first failing gate"),
    ),
    properties={"artifact": "sha256:" + "0" * 64},
    timestamp="2026-11-27T12:00:00Z",
)
TESTS = Suite(
    "tests",
    (
        Case("unit[PY=3.11]", Outcome.PASSED, 1.25, classname="unit", output="12 passed"),
        Case(
            "e2e & <smoke>",
            Outcome.ERROR,
            0.5,
            message="instance crashed",
            output='"quoted" ]]> end',
        ),
    ),
)


def _root() -> ET.Element:
    return ET.fromstring(  # noqa: S314
        to_xml("kiln pipeline hello", [STAGES, TESTS])
    )


def test_the_document_has_suites_cases_and_totals() -> None:
    root = _root()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped", "time")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
        "time": "5.450",
    }
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["pipeline", "tests"]
    assert suites[0].get("timestamp") == "2026-11-27T12:00:00Z"
    prop = suites[0].find("properties/property")
    assert prop is not None and prop.get("name") == "artifact"
    assert [c.get("name") for c in suites[0].findall("testcase")] == [
        "build",
        "gate prod",
        "deploy prod",
    ]


def test_failures_errors_and_skips_carry_their_messages() -> None:
    root = _root()
    failure = root.find("testsuite/testcase[@name='gate prod']/failure")
    assert failure is not None
    assert failure.get("message") == "vulnerabilities: requests@2.90.1 <critical>"
    assert failure.text == "vulnerabilities: requests@2.90.1 <critical>\nmore"
    skipped = root.find("testsuite/testcase[@name='deploy prod']/skipped")
    assert skipped is not None and skipped.get("message") == "stopped at the first failing gate"
    error = root.find("testsuite/testcase[@name='e2e & <smoke>']/error")
    assert error is not None and error.text == '"quoted" ]]> end'
    out = root.find("testsuite/testcase[@name='unit[PY=3.11]']/system-out")
    assert out is not None and out.text == "12 passed"


def test_characters_xml_forbids_are_replaced_not_fatal() -> None:
    suite = Suite(
        "t", (Case("ctrl", Outcome.FAILED, message="bell\x07 nul\x00 esc\x1b", output="\ud800x"),)
    )
    root = ET.fromstring(  # noqa: S314
        to_xml("x", [suite])
    )
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "bell\ufffd nul\ufffd esc\ufffd"
    assert failure.text == "\ufffdx"


def test_an_empty_run_is_still_a_valid_document() -> None:
    root = ET.fromstring(  # noqa: S314
        to_xml("empty", [])
    )
    assert root.get("tests") == "0" and root.findall("testsuite") == []


def test_a_gate_report_becomes_a_suite_with_inconclusive_as_failure() -> None:
    from kiln.core.gates.runner import GateReport
    from kiln.core.gates.verdict import Failed, GateResult, Inconclusive, Passed
    from kiln.core.pipeline.junit import gate_suite
    from kiln.core.spec.models import GateName

    report = GateReport(
        "prod",
        (
            GateResult(GateName.SIGNED, Passed()),
            GateResult(GateName.TESTS, Failed(("unit failed", "smoke did not run"))),
            GateResult(GateName.PERFORMANCE, Inconclusive("no baseline")),
        ),
        artifact="sha256:" + "1" * 64,
        policy_digest="sha256:" + "2" * 64,
    )
    root = ET.fromstring(to_xml("gates", [gate_suite(report)]))  # noqa: S314
    assert root.get("tests") == "3" and root.get("failures") == "2"
    tests = root.find("testsuite/testcase[@name='tests']/failure")
    assert tests is not None and tests.get("message") == "failed: unit failed"
    assert tests.text == "unit failed\nsmoke did not run"
    perf = root.find("testsuite/testcase[@name='performance']/failure")
    assert perf is not None and perf.get("message") == "inconclusive: no baseline"
