"""Attestations travel with the image: push as OCI referrers, pull back, verify there.

Against the real Debian ``docker-registry`` (distribution 2.8, no referrers API),
so the referrers tag schema's fallback index is what carries them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from kiln.adapters.artifacts.local import LocalStore
from kiln.adapters.artifacts.registry import RegistryClient
from kiln.bootstrap import trust
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.referrers import OCI_INDEX, referrers_in, referrers_tag
from kiln.core.attest.sbom import Dependency
from kiln.core.attest.statement import statement
from kiln.core.attest.verify import Verified
from kiln.core.digest import Digest, hex_of
from kiln.errors import IntegrityError, Refused, Temporary
from kiln.services.artifacts import pull, push
from kiln.services.attest import attest, generate_key, sbom_for
from kiln.services.build import run_build
from kiln.services.spec import read_spec
from kiln.services.verify import read_policy, verify_artifact
from tests.integration.artifacts.conftest import BuilderFactory, make_builder, repo
from tests.integration.artifacts.registry_fixture import registry_url
from tests.unit.artifacts.fakes import FrozenClock

__all__ = ["make_builder", "registry_url", "repo"]

TRUST = """\
keys:
  - id: ci
    publicKey: keys/ci.pub
    kinds: [builder]
require:
  - {predicate: provenance, signedBy: builder}
  - {predicate: sbom, signedBy: builder}
"""
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def _signed_artifact(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> tuple[LocalStore, Path, Digest, Path]:
    state = tmp_path / "a"
    builder = make_builder(state)
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    digest = result.digest
    generate_key("ci", keys_dir=trust.keys_dir(state), generate=trust.key_generator())
    signer, store = trust.signer(state, "ci"), trust.attestation_store(state)
    prov = statement([("hello", digest)], SLSA_PROVENANCE_V1, {"buildDefinition": {}})
    attest(prov, signer=signer, store=store)
    deps = [Dependency("packaging", "24.1", license="Apache-2.0 OR BSD-2-Clause")]
    attest(sbom_for("hello", digest, deps, timestamp=WHEN), signer=signer, store=store)
    policy = tmp_path / "trust.yaml"
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ci.pub").write_bytes((trust.keys_dir(state) / "ci.pub").read_bytes())
    policy.write_text(TRUST)
    return builder.store, state, digest, policy  # type: ignore[return-value]


def test_attestations_round_trip_through_the_tag_schema(
    repo: Path,
    tmp_path: Path,
    make_builder: BuilderFactory,
    registry_url: str,
    request: pytest.FixtureRequest,
) -> None:
    store, state, digest, policy = _signed_artifact(repo, tmp_path, make_builder)
    client = RegistryClient.from_url(registry_url)
    request.addfinalizer(client.close)
    pushed = push(store, client, digest, attestations=trust.attestation_store(state))
    assert pushed.attestations is not None
    assert pushed.attestations.to_json() == {
        "transferred": 2,
        "alreadyThere": 0,
        "via": "tag-schema",
    }
    index, media = client.get_manifest("hello", referrers_tag(digest))
    assert media == OCI_INDEX
    listed = referrers_in(index)
    assert len(listed) == 2
    kinds = sorted(d.annotations["in-toto.io/predicate-type"] for d in listed)
    assert kinds == ["https://cyclonedx.org/bom", SLSA_PROVENANCE_V1]

    again = push(store, client, digest, attestations=trust.attestation_store(state))
    assert again.attestations is not None and again.attestations.already == 2
    assert client.get_manifest("hello", referrers_tag(digest))[0] == index  # each entry once

    fresh = tmp_path / "b"
    other = LocalStore(fresh / "store")
    pulled = pull(
        other,
        client,
        "hello",
        pushed.tags[0],
        clock=FrozenClock(),
        attestations=trust.attestation_store(fresh),
    )
    assert pulled.attestations is not None and pulled.attestations.transferred == 2
    verdict = verify_artifact(
        digest, store=trust.attestation_store(fresh), policy=read_policy(policy)
    )
    assert isinstance(verdict, Verified), verdict
    empty = verify_artifact(
        digest, store=trust.attestation_store(tmp_path / "c"), policy=read_policy(policy)
    )
    assert not isinstance(empty, Verified)


def test_a_tampered_referrer_blob_is_refused(
    repo: Path,
    tmp_path: Path,
    make_builder: BuilderFactory,
    registry_url: str,
    request: pytest.FixtureRequest,
) -> None:
    store, state, digest, _ = _signed_artifact(repo, tmp_path, make_builder)
    client = RegistryClient.from_url(registry_url)
    request.addfinalizer(client.close)
    push(store, client, digest, attestations=trust.attestation_store(state))
    index, _ = client.get_manifest("hello", referrers_tag(digest))
    victim = referrers_in(index)[0]
    manifest = json.loads(client.get_manifest("hello", victim.digest)[0])
    layer = manifest["layers"][0]["digest"]
    data_dir = tmp_path / "registry" / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    blob = data_dir / hex_of(layer)[:2] / hex_of(layer) / "data"
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    blob.write_bytes(bytes(raw))
    assert httpx.get(f"{registry_url}/v2/hello/blobs/{layer}").content == bytes(raw)

    fresh = tmp_path / "b"
    with pytest.raises(IntegrityError, match="does not match its digest"):
        pull(
            LocalStore(fresh / "store"),
            client,
            "hello",
            digest,
            clock=FrozenClock(),
            attestations=trust.attestation_store(fresh),
        )
    assert trust.attestation_store(fresh).for_subject(digest) == []


def test_the_fallback_tag_moves_only_from_the_index_kiln_read(
    repo: Path,
    tmp_path: Path,
    make_builder: BuilderFactory,
    registry_url: str,
    request: pytest.FixtureRequest,
) -> None:
    store, state, digest, _ = _signed_artifact(repo, tmp_path, make_builder)
    client = RegistryClient.from_url(registry_url)
    request.addfinalizer(client.close)
    assert client.referrers("hello", digest) is None  # distribution 2.8: no referrers API
    push(store, client, digest, attestations=trust.attestation_store(state))
    tag = referrers_tag(digest)
    current = client.resolve_tag("hello", tag)
    index, _ = client.get_manifest("hello", tag)
    shorter = json.loads(index)
    shorter["manifests"] = shorter["manifests"][:1]
    data = json.dumps(shorter).encode()
    with pytest.raises(Temporary, match="changed while kiln updated it"):
        client.replace_tag("hello", tag, data, OCI_INDEX, expected=None)
    assert client.resolve_tag("hello", tag) == current
    with pytest.raises(Refused, match="refusing to move it"):
        client.put_manifest("hello", tag, data, OCI_INDEX)  # the ordinary path still refuses
