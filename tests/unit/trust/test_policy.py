"""trust.yaml: every mistake with its file:line, and keys that fail to load kept as problems."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kiln.core.attest.policy import KeyKind, parse_trust_file, resolve_policy
from kiln.core.attest.predicates import APPROVAL_V1, CYCLONEDX_BOM
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.errors import SpecError
from tests.unit.trust.fakes import BUILDER, TESTER

GOOD = f"""\
apiVersion: kiln.dev/v1
keys:
  - id: ci
    publicKey: keys/ci.pub
    kinds: [builder]
  - id: qa
    pem: |
{"".join("      " + line + chr(10) for line in TESTER.public_pem().decode().splitlines())}\
    kinds: [tester, approver]
require:
  - {{predicate: provenance, signedBy: builder}}
  - {{predicate: https://cyclonedx.org/bom, signedBy: builder}}
  - {{predicate: approval, signedBy: approver, threshold: 1, keys: [qa]}}
"""


def files(mapping: dict[str, bytes]):  # type: ignore[no-untyped-def]
    def read(path: str) -> bytes:
        if path not in mapping:
            raise FileNotFoundError(path)
        return mapping[path]

    return read


def test_a_good_policy_loads_keys_from_files_and_inline_pem() -> None:
    parsed = parse_trust_file(GOOD, source="trust.yaml")
    policy = resolve_policy(parsed, read=files({"keys/ci.pub": BUILDER.public_pem()}))
    assert policy.problems == ()
    assert [(k.name, k.key_id, k.kinds) for k in policy.keys] == [
        ("ci", BUILDER.key_id, frozenset({KeyKind.BUILDER})),
        ("qa", TESTER.key_id, frozenset({KeyKind.TESTER, KeyKind.APPROVER})),
    ]
    assert [(r.predicate_type, r.signed_by, r.threshold) for r in policy.requirements] == [
        (SLSA_PROVENANCE_V1, KeyKind.BUILDER, 1),
        (CYCLONEDX_BOM, KeyKind.BUILDER, 1),
        (APPROVAL_V1, KeyKind.APPROVER, 1),
    ]
    assert policy.requirements[2].keys == frozenset({"qa"})


def test_a_missing_key_file_is_a_problem_with_its_line() -> None:
    policy = resolve_policy(parse_trust_file(GOOD, source="trust.yaml"), read=files({}))
    assert policy.problems == (
        "trust.yaml:4:16: key ci: public key file keys/ci.pub does not exist",
    )
    assert [k.name for k in policy.keys] == ["qa"]


def test_a_key_file_that_is_not_ed25519_is_a_problem() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    policy = resolve_policy(
        parse_trust_file(GOOD, source="trust.yaml"), read=files({"keys/ci.pub": pem})
    )
    assert policy.problems == (
        "trust.yaml:4:16: key ci: public key file keys/ci.pub is not an Ed25519 public key",
    )


def test_garbage_in_a_key_file_is_a_problem() -> None:
    policy = resolve_policy(
        parse_trust_file(GOOD, source="trust.yaml"), read=files({"keys/ci.pub": b"hello"})
    )
    assert "is not a PEM public key" in policy.problems[0]


def test_the_same_key_under_two_names_is_a_problem() -> None:
    text = GOOD.replace("keys/ci.pub", "keys/qa.pub")
    policy = resolve_policy(
        parse_trust_file(text, source="trust.yaml"),
        read=files({"keys/qa.pub": TESTER.public_pem()}),
    )
    assert any("are the same key" in p for p in policy.problems)


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_trust_file(text, source="trust.yaml")
    assert "kiln verify" in caught.value.hint
    return [p.render() for p in caught.value.problems]


def test_every_schema_mistake_is_reported_with_file_line_and_column() -> None:
    text = (
        "apiVersion: kiln.dev/v1\n"
        "keys:\n"
        "  - id: ci\n"
        "    publicKey: ci.pub\n"
        "    kinds: [builder, deployer]\n"
        "require:\n"
        "  - predicate: provenance\n"
        "    signedBy: builder\n"
        "    treshold: 2\n"
    )
    assert problems_of(text) == [
        "trust.yaml:5:22: keys[0].kinds[1]: Input should be 'builder', 'tester' or 'approver'",
        "trust.yaml:9:15: require[0].treshold: unknown key `treshold`\n"
        "    hint: did you mean `threshold`?",
    ]


def test_a_key_with_both_or_neither_source_is_refused() -> None:
    text = "keys:\n  - id: ci\n    kinds: [builder]\n"
    (problem,) = problems_of(text)
    assert problem.startswith("trust.yaml:2:5: keys[0]: give exactly one of publicKey")


def test_yaml_syntax_errors_point_at_the_line() -> None:
    (problem,) = problems_of("keys: [\n  - id: x\n")
    assert problem.startswith("trust.yaml:2:3: YAML syntax error")


def test_duplicate_yaml_keys_are_refused() -> None:
    (problem,) = problems_of("keys: []\nkeys: []\n")
    assert problem.startswith("trust.yaml:2:1: YAML syntax error: a key appears twice")


def test_a_requirement_naming_an_undeclared_key_is_refused() -> None:
    text = "require:\n  - {predicate: approval, signedBy: approver, keys: [ghost]}\n"
    (problem,) = problems_of(text)
    assert "unknown key 'ghost'" in problem


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    (problem,) = problems_of("- just\n- a list\n")
    assert problem == "trust.yaml:1:1: the document is not a mapping"


def test_binary_garbage_is_refused_not_a_traceback() -> None:
    with pytest.raises(SpecError, match="1 problem"):
        parse_trust_file(b"\xff\xfe\x00garbage", source="trust.yaml")


def test_an_empty_file_parses_to_an_empty_policy() -> None:
    policy = resolve_policy(parse_trust_file(b"", source="trust.yaml"), read=files({}))
    assert (policy.keys, policy.requirements, policy.problems) == ((), (), ())
