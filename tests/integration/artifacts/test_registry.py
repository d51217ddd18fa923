"""Push and pull by digest against a real OCI distribution registry (Debian's docker-registry)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kiln.adapters.artifacts.local import LocalStore
from kiln.adapters.artifacts.registry import RegistryAuth, RegistryClient
from kiln.core.artifacts.oci import MEDIA_MANIFEST
from kiln.core.digest import Digest, digest_bytes
from kiln.errors import IntegrityError, InvalidInput, Refused, Temporary
from kiln.services.artifacts import load_manifest, pull, push
from kiln.services.build import run_build
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import BuilderFactory
from tests.integration.artifacts.registry_fixture import (
    PASSWORD,
    USER,
    basic_auth_registry_url,
    free_port,
    registry_url,
)
from tests.unit.artifacts.fakes import FrozenClock

__all__ = ["basic_auth_registry_url", "registry_url"]


def _built(repo: Path, state: Path, make_builder: BuilderFactory) -> tuple[LocalStore, Digest]:
    builder = make_builder(state)
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    return builder.store, result.digest  # type: ignore[return-value]


@pytest.mark.parametrize("chunk_size", [None, 1000], ids=["monolithic", "chunked"])
def test_push_then_pull_round_trips_by_digest(
    repo: Path,
    tmp_path: Path,
    make_builder: BuilderFactory,
    registry_url: str,
    chunk_size: int | None,
) -> None:
    store, digest = _built(repo, tmp_path / "a", make_builder)
    client = RegistryClient.from_url(registry_url, chunk_size=chunk_size)
    report = push(store, client, digest)
    assert report.repository == "hello"
    assert report.sent == 3 and report.skipped == 0
    assert client.resolve_tag("hello", report.tags[0]) == digest
    again = push(store, client, digest)
    assert again.sent == 0 and again.skipped == 3

    other = LocalStore(tmp_path / "b" / "store")
    pulled = pull(other, client, "hello", report.tags[0], clock=FrozenClock())
    assert pulled.digest == digest
    assert other.read_blob(digest) == store.read_blob(digest)
    for blob in load_manifest(other, digest).blobs:
        assert other.read_blob(blob, limit=1 << 30) == store.read_blob(blob, limit=1 << 30)
    assert [str(t.tag) for t in other.tags()] == list(pulled.tags)
    by_digest = pull(LocalStore(tmp_path / "c"), client, "hello", digest, clock=FrozenClock())
    assert by_digest.digest == digest
    client.close()


def test_a_tag_in_the_registry_never_moves(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory, registry_url: str
) -> None:
    store, digest = _built(repo, tmp_path / "a", make_builder)
    client = RegistryClient.from_url(registry_url)
    push(store, client, digest)
    data = store.read_blob(digest)
    fake = data.replace(b'"schemaVersion":2', b'"schemaVersion":2 ')
    with pytest.raises(Refused) as info:
        client.put_manifest("hello", "stable", data, MEDIA_MANIFEST)
        client.put_manifest("hello", "stable", fake, MEDIA_MANIFEST)
    assert digest in info.value.message and digest_bytes(fake) in info.value.message
    client.close()


def test_a_pulled_blob_that_does_not_match_is_refused_and_not_kept(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    """A registry (here a mock transport) serving wrong bytes for a layer digest."""
    store, digest = _built(repo, tmp_path / "a", make_builder)
    manifest = load_manifest(store, digest)
    layer = manifest.layers[-1].digest

    def serve(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith(f"/manifests/{digest}"):
            data = store.read_blob(digest)
            return httpx.Response(200, content=data, headers={"Content-Type": MEDIA_MANIFEST})
        if path.endswith(f"/blobs/{layer}"):
            return httpx.Response(200, content=b"not the layer")
        blob = Digest(path.rsplit("/", 1)[-1])
        return httpx.Response(200, content=store.read_blob(blob, limit=1 << 30))

    client = RegistryClient(httpx.Client(transport=httpx.MockTransport(serve)), base="http://r")
    other = LocalStore(tmp_path / "b")
    with pytest.raises(IntegrityError, match="not the expected"):
        pull(other, client, "hello", digest, clock=FrozenClock())
    assert layer not in other.blobs()
    assert digest not in other.blobs()
    assert list((other.root / "tmp").iterdir()) == []


def test_an_unreachable_registry_is_a_temporary_error() -> None:
    client = RegistryClient.from_url(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Temporary, match="cannot reach the registry"):
        client.has_blob("hello", digest_bytes(b"x"))
    client.close()


@pytest.mark.parametrize("url", ["ftp://x", "http://user:pw@host:5000"])
def test_bad_registry_addresses_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        RegistryClient.from_url(url)


def test_a_missing_manifest_is_not_found(registry_url: str) -> None:
    client = RegistryClient.from_url(registry_url)
    from kiln.errors import NotFound

    with pytest.raises(NotFound, match="HTTP 404"):
        client.get_manifest("hello", "nope")
    client.close()
    assert httpx.get(f"{registry_url}/v2/").status_code == 200


def test_basic_authentication_with_credentials_from_the_environment(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory, basic_auth_registry_url: str
) -> None:
    from kiln.bootstrap.artifacts import registry

    store, digest = _built(repo, tmp_path / "a", make_builder)
    anonymous = registry(basic_auth_registry_url, environ={})
    with pytest.raises(Refused, match="HTTP 401") as info:
        push(store, anonymous, digest)
    assert "no credentials" in info.value.hint
    anonymous.close()
    env = {"KILN_REGISTRY_USERNAME": USER, "KILN_REGISTRY_PASSWORD": PASSWORD}
    client = registry(basic_auth_registry_url, environ=env)
    assert push(store, client, digest).sent == 3
    client.close()
    wrong = registry(basic_auth_registry_url, environ={**env, "KILN_REGISTRY_PASSWORD": "nope"})
    with pytest.raises(Refused) as refused:
        pull(LocalStore(tmp_path / "b"), wrong, "hello", digest, clock=FrozenClock())
    assert "nope" not in refused.value.message and PASSWORD not in refused.value.message
    wrong.close()


def test_bearer_tokens_are_fetched_from_the_realm_and_reused() -> None:
    """The docker token flow, against a mock registry and token server."""
    seen: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(
            f"{request.method} {request.url.path} {request.headers.get('Authorization', '-')}"
        )
        if request.url.path == "/token":
            assert request.url.params["scope"] == "repository:hello:pull"
            assert request.headers["Authorization"].startswith("Basic ")
            return httpx.Response(200, json={"token": "t0k3n"})
        if request.headers.get("Authorization") != "Bearer t0k3n":
            challenge = 'Bearer realm="http://r/token",service="r",scope="repository:hello:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(404)

    client = RegistryClient(
        httpx.Client(transport=httpx.MockTransport(serve), auth=RegistryAuth(("u", "p"))),
        base="http://r",
    )
    assert client.has_blob("hello", digest_bytes(b"x")) is False
    assert client.has_blob("hello", digest_bytes(b"y")) is False
    client.close()
    assert [s.split(" ")[2] for s in seen] == ["Basic", "Basic", "Bearer", "Bearer"]
