"""Attest and verify services over fakes: signing, storing, recording, admission."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.core.attest.policy import KeyKind, Requirement
from kiln.core.attest.predicates import APPROVAL_V1, TEST_RESULT_V1, TestResult
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.statement import Statement, statement
from kiln.core.digest import Digest
from kiln.core.ledger.kinds import EventKind
from kiln.core.spec.models import Environment
from kiln.errors import InvalidInput, Refused
from kiln.services.attest import (
    approval_statement,
    attest,
    generate_key,
    list_keys,
    predicate_statement,
    show,
)
from kiln.services.verify import Admitted, AdmittedUnsigned, NotAdmitted, admit, verdict_json
from tests.unit.recorder import MemoryRecorder
from tests.unit.trust.fakes import (
    APPROVER_A,
    APPROVER_B,
    ARTIFACT,
    BUILDER,
    STRANGER,
    T0,
    T1,
    MemorySigner,
    MemoryStore,
    policy,
)

NEEDS_PROVENANCE = Requirement(SLSA_PROVENANCE_V1, KeyKind.BUILDER)


def provenance_about(subject: Digest = ARTIFACT) -> Statement:
    return statement([("hello", subject)], SLSA_PROVENANCE_V1, {"buildDefinition": {}})


def test_attest_signs_stores_and_records() -> None:
    store, recorder = MemoryStore(), MemoryRecorder()
    result = attest(
        provenance_about(),
        signer=BUILDER,
        store=store,
        recorder=recorder,
        actor="ci-bot",
    )
    assert result.subjects == (ARTIFACT,)
    assert [s.digest for s in store.for_subject(ARTIFACT)] == [result.digest]
    assert recorder.events == [
        {
            "kind": EventKind.ATTEST,
            "actor": "ci-bot",
            "artifact": ARTIFACT,
            "environment": None,
            "links": {"attestation": result.digest},
            "details": {"predicateType": SLSA_PROVENANCE_V1, "keyId": BUILDER.key_id},
        }
    ]


def test_attesting_the_same_statement_twice_stores_one_envelope() -> None:
    store = MemoryStore()
    stmt = provenance_about()
    one = attest(stmt, signer=BUILDER, store=store)
    two = attest(stmt, signer=BUILDER, store=store)
    assert one.digest == two.digest  # Ed25519 is deterministic, the envelope canonical
    assert len(store.for_subject(ARTIFACT)) == 1


def test_generate_key_records_only_the_public_key_id(tmp_path: Path) -> None:
    made: list[Path] = []

    def fake_generate(path: Path) -> MemorySigner:
        made.append(path)
        return APPROVER_A

    recorder = MemoryRecorder()
    info = generate_key(
        "release", keys_dir=tmp_path, generate=fake_generate, recorder=recorder, actor="dev"
    )
    assert made == [tmp_path / "release.key"]
    assert info.key_id == APPROVER_A.key_id
    assert recorder.events[0]["kind"] == EventKind.KEY_CHANGE
    assert recorder.events[0]["details"] == {
        "action": "generate",
        "key": "release",
        "keyId": APPROVER_A.key_id,
    }


@pytest.mark.parametrize("name", ["", "Upper", "../escape", "a/b", "-dash"])
def test_key_names_that_could_escape_or_confuse_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not allowed"):
        generate_key(name, keys_dir=tmp_path, generate=lambda p: BUILDER)


def test_list_keys_reads_public_keys_and_notes_missing_private_halves(tmp_path: Path) -> None:
    (tmp_path / "ci.pub").write_bytes(BUILDER.public_pem())
    (tmp_path / "ci.key").write_bytes(b"private")
    (tmp_path / "ops.pub").write_bytes(STRANGER.public_pem())
    found = [(k.name, k.key_id, k.has_private) for k in list_keys(tmp_path)]
    assert found == [("ci", BUILDER.key_id, True), ("ops", STRANGER.key_id, False)]
    assert list_keys(tmp_path / "absent") == []


def test_show_lists_every_attestation_and_flags_unreadable_ones() -> None:
    store = MemoryStore()
    attest(provenance_about(), signer=BUILDER, store=store)
    result = TestResult("unit", 10, 0, 1, T0, T1)
    attest(
        predicate_statement("hello", ARTIFACT, "test-result", result.to_predicate()),
        signer=BUILDER,
        store=store,
    )
    store.put(b'{"truncated', [ARTIFACT])
    views = show(ARTIFACT, store=store)
    assert [(v.predicate_type, v.summary) for v in views] == [
        ("", "unreadable"),
        (SLSA_PROVENANCE_V1, "built from ?@? by ?"),
        (TEST_RESULT_V1, "suite unit passed: 10 passed, 0 failed"),
    ]
    assert "truncated or corrupted" in views[0].problem


def test_predicate_statement_refuses_a_non_object() -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        predicate_statement("hello", ARTIFACT, "test-result", [1, 2])


def env(**fields: object) -> Environment:
    return Environment.model_validate({"name": "prod", **fields})


def test_admit_lets_in_a_verified_artifact() -> None:
    store = MemoryStore()
    attest(provenance_about(), signer=BUILDER, store=store)
    admission = admit(ARTIFACT, env(), store=store, policy=policy(NEEDS_PROVENANCE))
    assert isinstance(admission, Admitted)


def test_admit_refuses_an_unsigned_artifact_with_every_reason() -> None:
    admission = admit(ARTIFACT, env(), store=MemoryStore(), policy=policy(NEEDS_PROVENANCE))
    assert isinstance(admission, NotAdmitted)
    error = admission.to_error()
    assert isinstance(error, Refused)
    assert error.message == (
        f"{ARTIFACT} is not admitted to prod:\n"
        f"  - no attestations found for {ARTIFACT}\n"
        "  - requires provenance signed by 1 builder: found 0 of 1"
    )


def test_allow_unsigned_admits_but_marks_the_deploy_to_be_recorded_unsigned() -> None:
    admission = admit(
        ARTIFACT, env(allowUnsigned=True), store=MemoryStore(), policy=policy(NEEDS_PROVENANCE)
    )
    assert isinstance(admission, AdmittedUnsigned)
    assert admission.record_as is EventKind.UNSIGNED_DEPLOY
    assert admission.environment == "prod"
    assert admission.reasons[-1] == "requires provenance signed by 1 builder: found 0 of 1"


def test_the_environment_approval_rule_is_added_and_scoped_to_the_environment() -> None:
    store = MemoryStore()
    attest(provenance_about(), signer=BUILDER, store=store)
    prod = env(approvals={"required": 2, "approvers": ["alice", APPROVER_B.key_id]})
    for signer, where in ((APPROVER_A, "prod"), (APPROVER_B, "staging")):
        stmt = approval_statement(
            "hello", ARTIFACT, environment=where, approver="x", at=T0, note=""
        )
        attest(stmt, signer=signer, store=store)
    admission = admit(ARTIFACT, prod, store=store, policy=policy(NEEDS_PROVENANCE))
    assert isinstance(admission, NotAdmitted)
    assert [r.message for r in admission.verdict.reasons] == [
        "requires approval signed by 2 approver among alice, bob for prod: found 1 of 2"
        " (counted: alice)"
    ]
    stmt = approval_statement("hello", ARTIFACT, environment="prod", approver="x", at=T0, note="")
    attest(stmt, signer=APPROVER_B, store=store)
    assert isinstance(admit(ARTIFACT, prod, store=store, policy=policy(NEEDS_PROVENANCE)), Admitted)


def test_verdict_json_lists_reasons_with_codes() -> None:
    admission = admit(ARTIFACT, env(), store=MemoryStore(), policy=policy(NEEDS_PROVENANCE))
    assert isinstance(admission, NotAdmitted)
    doc = verdict_json(admission.verdict)
    assert doc["verified"] is False
    assert [r["code"] for r in doc["reasons"]] == ["no-attestations", "missing"]
    assert APPROVAL_V1 not in str(doc)
