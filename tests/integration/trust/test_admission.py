"""The deploy path's admission step, wired as the composition root wires it: real files."""

from __future__ import annotations

from pathlib import Path

from kiln.bootstrap import trust
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.statement import statement
from kiln.core.digest import digest_bytes
from kiln.core.ledger.kinds import EventKind
from kiln.core.spec.loader import load_spec
from kiln.services.attest import attest, generate_key
from kiln.services.verify import Admitted, AdmittedUnsigned, NotAdmitted

SPEC = """\
service: hello
environments:
  - name: dev
    allowUnsigned: true
  - name: prod
"""
TRUST = """\
keys:
  - id: ci
    publicKey: state/keys/ci.pub
    kinds: [builder]
require:
  - {predicate: provenance, signedBy: builder}
"""
IMAGE = digest_bytes(b"image for admission")


def test_admission_with_real_keys_policy_and_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "trust.yaml").write_text(TRUST)
    dev, prod = load_spec(SPEC).environments
    generate_key("ci", keys_dir=trust.keys_dir(state), generate=trust.key_generator())
    policy_path = tmp_path / "trust.yaml"

    refused = trust.admission(state, policy_path, IMAGE, prod)
    assert isinstance(refused, NotAdmitted)
    assert "requires provenance signed by 1 builder: found 0 of 1" in refused.to_error().message

    unsigned = trust.admission(state, policy_path, IMAGE, dev)
    assert isinstance(unsigned, AdmittedUnsigned)
    assert unsigned.record_as is EventKind.UNSIGNED_DEPLOY

    stmt = statement([("hello", IMAGE)], SLSA_PROVENANCE_V1, {"buildDefinition": {}})
    attest(stmt, signer=trust.signer(state, "ci"), store=trust.attestation_store(state))
    assert isinstance(trust.admission(state, policy_path, IMAGE, prod), Admitted)
    assert isinstance(trust.admission(state, policy_path, IMAGE, dev), Admitted)
