"""The trust commands end to end in-process: keys, attest, show, verify; exact output and codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.core.digest import digest_bytes

SUBJECT = digest_bytes(b"an image manifest for the cli tests")
OTHER = digest_bytes(b"another image")


class Kiln:
    """Runs ``kiln`` in-process in one project directory and captures its output."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys
        self.state = root / ".kiln"

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["-f", str(self.root / "kiln.yaml"), "--state-dir", str(self.state), *args])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *args: str) -> tuple[int, object]:
        code, out, err = self(*args, "-o", "json")
        assert "Traceback" not in err
        return code, json.loads(out)

    def key(self, name: str) -> str:
        code, doc = self.json("keys", "generate", name)
        assert code == 0
        assert isinstance(doc, dict)
        return str(doc["keyId"])

    def policy(self, text: str, name: str = "trust.yaml") -> str:
        path = self.root / name
        path.write_text(text)
        return str(path)


@pytest.fixture
def kiln(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Kiln:
    (tmp_path / "requirements.txt").write_text("packaging==24.0 --hash=sha256:" + "a" * 64 + "\n")
    return Kiln(tmp_path, capsys)


TRUST = """\
keys:
  - id: ci
    publicKey: .kiln/keys/ci.pub
    kinds: [builder]
require:
  - {predicate: provenance, signedBy: builder}
  - {predicate: sbom, signedBy: builder}
"""


def provenance(kiln: Kiln, subject: str = SUBJECT, key: str = "ci") -> int:
    code, _, err = kiln(
        "attest",
        "provenance",
        subject,
        "--source-uri",
        "git+https://git.example/acme/hello",
        "--revision",
        "0" * 40,
        "--started",
        "2026-03-01T12:00:00Z",
        "--finished",
        "2026-03-01T12:05:00Z",
        "--key",
        key,
    )
    assert "Traceback" not in err
    return code


def sbom(kiln: Kiln, subject: str = SUBJECT, key: str = "ci") -> int:
    code, _, _ = kiln(
        "attest",
        "sbom",
        subject,
        "--requirements",
        str(kiln.root / "requirements.txt"),
        "--key",
        key,
    )
    return code


def test_keys_generate_prints_the_key_id_and_keeps_the_private_key_0600(kiln: Kiln) -> None:
    code, out, _ = kiln("keys", "generate", "ci")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("key ci: ") and len(lines[0]) == len("key ci: ") + 64
    assert lines[1] == f"public key: {kiln.state / 'keys' / 'ci.pub'}"
    mode = stat.S_IMODE((kiln.state / "keys" / "ci.key").stat().st_mode)
    assert mode == 0o600


def test_keys_generate_never_overwrites(kiln: Kiln) -> None:
    kiln.key("ci")
    code, _, err = kiln("keys", "generate", "ci")
    assert code == 1
    assert "already exists; kiln never overwrites a key" in err
    assert "Traceback" not in err


def test_keys_list_shows_each_key_id(kiln: Kiln) -> None:
    assert kiln("keys", "list")[1] == "no keys; make one with `kiln keys generate`\n"
    first, second = kiln.key("default"), kiln.key("ci")
    code, out, _ = kiln("keys", "list")
    assert code == 0
    assert out == f"ci  {second}\ndefault  {first}\n"
    code, doc = kiln.json("keys", "list")
    assert isinstance(doc, list) and [k["name"] for k in doc] == ["ci", "default"]


def test_attest_then_verify_passes_with_a_trusting_policy(kiln: Kiln) -> None:
    kiln.key("ci")
    assert provenance(kiln) == 0
    assert sbom(kiln) == 0
    policy = kiln.policy(TRUST)
    code, out, _ = kiln("verify", SUBJECT, "--policy", policy)
    assert code == 0
    assert out == (
        f"verified {SUBJECT} against {policy}\n"
        "  ok  provenance signed by 1 builder\n"
        "  ok  sbom signed by 1 builder\n"
    )


def test_verify_uses_trust_yaml_beside_the_spec_by_default(kiln: Kiln) -> None:
    kiln.key("ci")
    provenance(kiln)
    sbom(kiln)
    kiln.policy(TRUST)
    assert kiln("verify", SUBJECT)[0] == 0


def test_verify_refuses_and_prints_every_reason(kiln: Kiln) -> None:
    kiln.key("ci")
    stranger = kiln.key("stranger")
    provenance(kiln, key="stranger")
    policy = kiln.policy(TRUST)
    code, out, err = kiln("verify", SUBJECT, "--policy", policy)
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"refused {SUBJECT}: 3 reason(s)"
    assert lines[1].endswith(
        f"signed only by keys the trust policy does not name: keyid {stranger[:12]}"
    )
    assert lines[2:] == [
        "  - requires provenance signed by 1 builder: found 0 of 1",
        "  - requires sbom signed by 1 builder: found 0 of 1",
    ]


def test_verify_json_lists_reasons_and_exits_1(kiln: Kiln) -> None:
    code, doc = kiln.json("verify", SUBJECT, "--policy", kiln.policy(TRUST))
    assert code == 1
    assert isinstance(doc, dict)
    assert doc["verified"] is False
    assert [r["code"] for r in doc["reasons"]] == [
        "policy",
        "no-attestations",
        "missing",
        "missing",
    ]
    assert "ci.pub does not exist" in doc["reasons"][0]["message"]


def test_an_empty_policy_file_never_passes(kiln: Kiln) -> None:
    kiln.key("ci")
    provenance(kiln)
    code, doc = kiln.json("verify", SUBJECT, "--policy", kiln.policy(""))
    assert code == 1
    assert isinstance(doc, dict)
    assert [r["code"] for r in doc["reasons"]][:2] == ["empty-policy", "empty-policy"]


def test_a_missing_policy_file_never_passes(kiln: Kiln) -> None:
    code, _, err = kiln("verify", SUBJECT, "--policy", str(kiln.root / "nope.yaml"))
    assert code == 1
    assert f"no trust policy at {kiln.root / 'nope.yaml'}" in err


def test_a_malformed_policy_is_reported_with_file_and_line(kiln: Kiln) -> None:
    policy = kiln.policy("keys:\n  - id: ci\n    kinds: [builder]\n    colour: red\n")
    code, _, err = kiln("verify", SUBJECT, "--policy", policy)
    assert code == 2
    assert f"{policy}:4:13: keys[0].colour: unknown key `colour`" in err
    assert "Traceback" not in err


def test_a_stored_envelope_changed_on_disk_is_refused(kiln: Kiln) -> None:
    kiln.key("ci")
    provenance(kiln)
    sbom(kiln)
    blobs = sorted((kiln.state / "attestations" / "blobs" / "sha256").iterdir())
    data = blobs[0].read_bytes()
    blobs[0].write_bytes(data[: len(data) // 2])
    code, doc = kiln.json("verify", SUBJECT, "--policy", kiln.policy(TRUST))
    assert code == 1
    assert isinstance(doc, dict)
    assert doc["reasons"][0]["code"] == "corrupt"


def test_attest_show_lists_readable_and_json(kiln: Kiln) -> None:
    kiln.key("ci")
    provenance(kiln)
    sbom(kiln)
    code, out, _ = kiln("attest", "show", SUBJECT)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"2 attestation(s) for {SUBJECT}"
    assert lines[1].split() == [
        "provenance",
        "built",
        "from",
        "git+https://git.example/acme/hello@" + "0" * 40,
        "by",
        "https://kiln.dev/builders/local",
    ]
    assert lines[3].split()[:3] == ["sbom", "CycloneDX", "1.6"]
    code, doc = kiln.json("attest", "show", SUBJECT)
    assert isinstance(doc, dict)
    assert [a["kind"] for a in doc["attestations"]] == ["provenance", "sbom"]
    assert (
        doc["attestations"][0]["statement"]["predicate"]["runDetails"]["metadata"]["startedOn"]
        == "2026-03-01T12:00:00Z"
    )


def test_show_of_an_unknown_artifact_says_so(kiln: Kiln) -> None:
    assert kiln("attest", "show", OTHER)[1] == f"no attestations for {OTHER}\n"


def test_approve_and_predicate_sign_kilns_own_types(kiln: Kiln) -> None:
    kiln.key("ci")
    assert kiln("attest", "approve", SUBJECT, "-e", "prod", "--key", "ci")[0] == 0
    result = kiln.root / "result.json"
    result.write_text('{"suite": "unit", "result": "passed", "counts": {"passed": 3}}')
    code, _, _ = kiln(
        "attest",
        "predicate",
        SUBJECT,
        "--type",
        "test-result",
        "--file",
        str(result),
        "--key",
        "ci",
    )
    assert code == 0
    code, doc = kiln.json("attest", "show", SUBJECT)
    assert isinstance(doc, dict)
    assert [a["kind"] for a in doc["attestations"]] == ["approval", "test-result"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["verify", "sha256:abc"], 2, "is not a sha256 digest"),
        (["attest", "show", "latest"], 2, "is not a sha256 digest"),
        (
            ["attest", "sbom", SUBJECT, "--requirements", "/nonexistent/req.txt"],
            1,
            "does not exist",
        ),
        (["attest", "provenance", SUBJECT, "--source-uri", "x"], 2, "together"),
        (
            [
                "attest",
                "provenance",
                SUBJECT,
                "--key",
                "absent",
                "--source-uri",
                "x",
                "--revision",
                "y",
            ],
            1,
            "does not exist",
        ),
        (
            [
                "attest",
                "provenance",
                SUBJECT,
                "--started",
                "yesterday",
                "--source-uri",
                "x",
                "--revision",
                "y",
            ],
            2,
            "not an ISO 8601 time",
        ),
        (
            ["attest", "predicate", SUBJECT, "--type", "x", "--file", "/nonexistent"],
            1,
            "does not exist",
        ),
    ],
)
def test_bad_input_is_a_message_and_an_exit_code_never_a_traceback(
    kiln: Kiln, args: list[str], code: int, message: str
) -> None:
    got, out, err = kiln(*args)
    assert (got, message in err) == (code, True), err
    assert "Traceback" not in err + out


def test_the_stored_sbom_validates_against_the_cyclonedx_schema(kiln: Kiln) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    kiln.key("ci")
    assert sbom(kiln) == 0
    code, doc = kiln.json("attest", "show", SUBJECT)
    assert code == 0
    assert isinstance(doc, dict)
    (only,) = doc["attestations"]
    bom = only["statement"]["predicate"]
    assert [c["purl"] for c in bom["components"]] == ["pkg:pypi/packaging@24.0"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None


SPEC = """\
service: hello
environments:
  - name: dev
    allowUnsigned: true
  - name: prod
    approvals: {required: 1, approvers: [alice]}
"""


def test_verify_for_an_environment_adds_its_approval_rule(kiln: Kiln) -> None:
    (kiln.root / "kiln.yaml").write_text(SPEC)
    trust_text = TRUST.replace(
        "require:\n",
        "  - id: alice\n    publicKey: .kiln/keys/alice.pub\n    kinds: [approver]\nrequire:\n",
    )
    kiln.policy(trust_text)
    kiln.key("ci")
    kiln.key("alice")
    provenance(kiln)
    sbom(kiln)
    assert kiln("verify", SUBJECT)[0] == 0
    code, _, err = kiln("verify", SUBJECT, "-e", "prod")
    assert code == 1
    assert err.splitlines()[1:2] == [
        "  - requires approval signed by 1 approver among alice for prod: found 0 of 1"
    ]
    assert kiln("attest", "approve", SUBJECT, "-e", "staging", "--key", "alice")[0] == 0
    assert kiln("verify", SUBJECT, "-e", "prod")[0] == 1
    assert kiln("attest", "approve", SUBJECT, "-e", "prod", "--key", "alice")[0] == 0
    code, out, _ = kiln("verify", SUBJECT, "-e", "prod")
    assert code == 0
    assert out.splitlines()[-1] == "  ok  approval signed by 1 approver among alice for prod"


def test_verify_for_an_allow_unsigned_environment_admits_but_says_unsigned(kiln: Kiln) -> None:
    (kiln.root / "kiln.yaml").write_text(SPEC)
    kiln.policy(TRUST)
    code, out, err = kiln("verify", SUBJECT, "-e", "dev")
    assert (code, out) == (0, "")
    assert err.splitlines()[0].startswith(
        "admitted UNSIGNED to dev (allowUnsigned: true); the deploy is recorded as deploy.unsigned"
    )
    code, doc = kiln.json("verify", SUBJECT, "-e", "dev")
    assert code == 0
    assert isinstance(doc, dict)
    assert (doc["admission"], doc["verified"]) == ("admitted-unsigned", False)
    code, doc = kiln.json("verify", SUBJECT, "-e", "prod")
    assert code == 1
    assert isinstance(doc, dict) and doc["admission"] == "refused"


def test_verify_for_an_unknown_environment_names_the_known_ones(kiln: Kiln) -> None:
    (kiln.root / "kiln.yaml").write_text(SPEC)
    code, _, err = kiln("verify", SUBJECT, "-e", "qa")
    assert code == 1
    assert "no environment 'qa' in the spec" in err and "environments: dev, prod" in err
