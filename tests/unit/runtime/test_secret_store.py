"""The encrypted file secret store and the reference resolver."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kiln.adapters.secrets.filestore import FileSecretStore
from kiln.adapters.secrets.resolver import SecretResolver
from kiln.core.runtime.model import SecretBinding, SecretSource
from kiln.errors import IntegrityError, InvalidInput, NotFound, Refused
from kiln.ports.secrets import SecretValue

VALUE = "s3cr3t-value-7f1e"


@pytest.fixture
def store(tmp_path: Path) -> FileSecretStore:
    return FileSecretStore.in_state_dir(tmp_path)


def test_versions_are_numbered_and_each_stays_readable(store: FileSecretStore) -> None:
    assert store.put("DB_PASSWORD", SecretValue("one")) == 1
    assert store.put("DB_PASSWORD", SecretValue("two")) == 2
    assert store.get("DB_PASSWORD") == (SecretValue("two"), 2)
    assert store.get("DB_PASSWORD", 1) == (SecretValue("one"), 1)
    (info,) = store.list()
    assert (info.name, info.versions, info.latest) == ("DB_PASSWORD", (1, 2), 2)


def test_values_are_encrypted_at_rest_and_files_are_private(
    store: FileSecretStore, tmp_path: Path
) -> None:
    store.put("API_KEY", SecretValue(VALUE))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert VALUE.encode() not in path.read_bytes(), path
    key = tmp_path / "keys" / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets" / "API_KEY.json").stat().st_mode) == 0o600


def test_a_version_moved_to_another_name_does_not_open(
    store: FileSecretStore, tmp_path: Path
) -> None:
    store.put("A", SecretValue("alpha"))
    store.put("B", SecretValue("beta"))
    a = json.loads((tmp_path / "secrets" / "A.json").read_text())
    b = json.loads((tmp_path / "secrets" / "B.json").read_text())
    b["versions"][0]["ciphertext"] = a["versions"][0]["ciphertext"]
    b["versions"][0]["nonce"] = a["versions"][0]["nonce"]
    (tmp_path / "secrets" / "B.json").write_text(json.dumps(b))
    with pytest.raises(IntegrityError, match="does not open"):
        store.get("B")


def test_a_key_readable_by_others_is_refused(store: FileSecretStore, tmp_path: Path) -> None:
    store.put("A", SecretValue("alpha"))
    (tmp_path / "keys" / "secrets.key").chmod(0o644)
    with pytest.raises(Refused, match="readable by others"):
        store.get("A")


@pytest.mark.parametrize("name", ["", "1ABC", "A B", "../x", "a/b"])
def test_bad_names_are_invalid(store: FileSecretStore, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(name, SecretValue("x"))


def test_missing_secrets_and_versions_are_not_found(store: FileSecretStore) -> None:
    with pytest.raises(NotFound):
        store.get("NOPE")
    store.put("A", SecretValue("alpha"))
    with pytest.raises(NotFound, match="no version 3"):
        store.get("A", 3)


def test_a_secret_value_never_prints_itself() -> None:
    value = SecretValue(VALUE)
    assert VALUE not in repr(value) and VALUE not in str(value) and VALUE not in f"{value}"


def test_the_resolver_reads_store_env_and_file(store: FileSecretStore, tmp_path: Path) -> None:
    store.put("TOKEN", SecretValue("v1"))
    store.put("TOKEN", SecretValue("v2"))
    secret_file = tmp_path / "cert.txt"
    secret_file.write_text("from-file\n")
    resolver = SecretResolver(store=store, environ={"CI_TOKEN": "from-env"})
    resolved = resolver.resolve(
        [
            SecretBinding("A", SecretSource.STORE, "TOKEN"),
            SecretBinding("B", SecretSource.STORE, "TOKEN", version=1),
            SecretBinding("C", SecretSource.ENV, "CI_TOKEN"),
            SecretBinding("D", SecretSource.FILE, str(secret_file)),
        ]
    )
    assert [(r.binding.name, r.value.reveal(), r.version) for r in resolved] == [
        ("A", "v2", 2),
        ("B", "v1", 1),
        ("C", "from-env", None),
        ("D", "from-file", None),
    ]


def test_a_missing_env_reference_names_the_variable_not_a_value(store: FileSecretStore) -> None:
    resolver = SecretResolver(store=store, environ={})
    with pytest.raises(NotFound, match="CI_TOKEN is not set"):
        resolver.resolve([SecretBinding("A", SecretSource.ENV, "CI_TOKEN")])
