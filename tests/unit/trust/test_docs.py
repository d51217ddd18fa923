"""docs/attestations.md shows real output: its examples are checked against the code."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from kiln.core.attest.dsse import parse_envelope
from kiln.core.attest.policy import parse_trust_file
from kiln.core.attest.predicates import (
    Approval,
    GateVerdict,
    PolicyVerdict,
    TestFailure,
    TestResult,
)
from kiln.core.attest.provenance import BuildFacts, LockFile, ci_run, provenance
from kiln.core.digest import digest_bytes
from kiln.core.keys import verify_ed25519
from tests.unit.trust.fakes import BUILDER

DOC = Path(__file__).resolve().parents[3] / "docs" / "attestations.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 12, 4, 30, tzinfo=UTC)


def blocks(info: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(DOC.read_text()) if m.group(1).strip() == info]


def json_blocks() -> list[dict[str, object]]:
    return [json.loads(body) for body in blocks("json")]


def test_every_json_example_is_valid_json() -> None:
    assert len(json_blocks()) == 5


def test_the_envelope_example_is_a_real_signature_by_the_example_key() -> None:
    (envelope_doc,) = [d for d in json_blocks() if "payloadType" in d]
    envelope = parse_envelope(json.dumps(envelope_doc).encode())
    sig = envelope.signatures[0]
    assert sig.keyid == BUILDER.key_id
    assert verify_ed25519(BUILDER.public_key, envelope.pae(), sig.sig)


def test_the_provenance_example_is_what_the_code_makes() -> None:
    (example,) = [d for d in json_blocks() if d.get("predicateType") == provenance_type()]
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/hello",
        "GITHUB_RUN_ID": "9001",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKFLOW_REF": "acme/hello/.github/workflows/release.yml@refs/heads/main",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_SHA": "4f1c0de5a7e9b3c2d1f0a9b8c7d6e5f4a3b2c1d0",
    }
    ci = ci_run(env)
    assert ci is not None
    facts = BuildFacts(
        "hello",
        digest_bytes(b"an image manifest"),
        "kiln.yaml",
        ci.source_uri,
        ci.revision,
        (LockFile("requirements.txt", digest_bytes(b"r")),),
        ci.builder_id,
        "",
        T0,
        T1,
    )
    assert provenance(facts, ci).to_json() == example


def provenance_type() -> str:
    from kiln.core.attest.provenance import SLSA_PROVENANCE_V1

    return SLSA_PROVENANCE_V1


def test_kilns_predicate_examples_are_what_the_code_makes() -> None:
    docs = json_blocks()
    result = TestResult(
        "integration",
        41,
        1,
        2,
        T0,
        T1,
        (TestFailure("test_healthz_under_load", "p99 412 ms > 250 ms"),),
        {"instances": 2},
    ).to_predicate()
    verdict = PolicyVerdict(
        "vulnerabilities",
        "prod",
        GateVerdict.FAIL,
        ("CVE-2026-1234 (high) in urllib3 2.2.1; fixed in 2.2.2",),
        "sha256:" + "9" * 64,
        T1,
    ).to_predicate()
    approval = Approval("prod", "alice", T1, "change 1432 reviewed").to_predicate()
    for made in (result, verdict, approval):
        assert made in docs


def test_the_trust_yaml_example_parses() -> None:
    examples = [b for b in blocks("yaml") if b.startswith("apiVersion: kiln.dev/v1\nkeys:")]
    assert examples
    for body in examples:
        parsed = parse_trust_file(body, source="docs/attestations.md")
        assert [k.id for k in parsed.doc.keys] == ["ci", "qa", "alice"]
