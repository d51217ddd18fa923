"""Pure rules: tags, selection globs, chunking, OCI documents, gzip, trees."""

from __future__ import annotations

import gzip
import json

import pytest

from kiln.core.artifacts import chunking
from kiln.core.artifacts.compress import gzip_chunks
from kiln.core.artifacts.oci import (
    MEDIA_CONFIG,
    MEDIA_LAYER_TAR,
    Descriptor,
    ImageConfig,
    canonical_json,
    manifest_bytes,
    parse_manifest,
)
from kiln.core.artifacts.selection import Selection
from kiln.core.artifacts.tags import Tag, build_tag, clean_version, parse_tag
from kiln.core.artifacts.tarformat import Entry, Kind
from kiln.core.artifacts.tree import Node, diff, tree_digest
from kiln.core.digest import Digest, digest_bytes
from kiln.errors import IntegrityError, InvalidInput

D1 = Digest("sha256:" + "1" * 64)
D2 = Digest("sha256:" + "2" * 64)
REV = "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"


@pytest.mark.parametrize(
    ("version", "revision", "dirty", "expected"),
    [
        ("1.2.0", REV, False, "hello:1.2.0-g1a2b3c4"),
        ("v1.2.0", REV, False, "hello:1.2.0-g1a2b3c4"),
        ("1.2.0+build.5", REV, False, "hello:1.2.0_build.5-g1a2b3c4"),
        ("1.2.0", REV, True, f"hello:1.2.0-dirty.{'1' * 12}-g1a2b3c4"),
        ("0.0.0", None, True, f"hello:0.0.0-dirty.{'1' * 12}-g0000000"),
    ],
)
def test_the_tag_scheme(version: str, revision: str | None, dirty: bool, expected: str) -> None:
    tag = build_tag(service="hello", version=version, revision=revision, dirty=dirty, manifest=D1)
    assert str(tag) == expected


@pytest.mark.parametrize("text", ["hello", "Hello:1", "hello:", ":1", "hello:-x", "a:" + "x" * 129])
def test_malformed_tags_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tag(text)


def test_a_tag_parses_to_repository_and_name() -> None:
    assert parse_tag("hello:1.0.0-gabcdef0") == Tag("hello", "1.0.0-gabcdef0")


def test_a_version_with_spaces_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot be used in a tag"):
        clean_version("1 0")


@pytest.mark.parametrize(
    ("path", "selected"),
    [
        ("app.py", True),
        ("pkg/mod.py", True),
        (".git/config", False),
        ("pkg/__pycache__/mod.cpython-311.pyc", False),
        ("deep/a/b/c.pyc", False),
        (".venv/lib/x.py", False),
        (".kiln/store/blobs/sha256/aa", False),
    ],
)
def test_default_selection(path: str, selected: bool) -> None:
    rules = Selection(
        ["**/*"], [".git/**", ".kiln/**", "**/__pycache__/**", "**/*.pyc", ".venv/**"]
    )
    assert rules.selects(path) is selected


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.py", "a.py", True),
        ("*.py", "d/a.py", False),
        ("**/*.py", "d/e/a.py", True),
        ("**/*.py", "a.py", True),
        ("src/**", "src/a/b", True),
        ("src/**", "srcx/a", False),
        ("a?.txt", "ab.txt", True),
        ("[ab].txt", "c.txt", False),
        ("[!ab].txt", "c.txt", True),
    ],
)
def test_glob_patterns(pattern: str, path: str, matches: bool) -> None:
    assert Selection([pattern], []).selects(path) is matches


def test_excluded_directories_are_pruned_whole() -> None:
    rules = Selection(["**/*"], [".git/**", "build/**"])
    assert rules.prunes(".git") and rules.prunes("build")
    assert not rules.prunes("src")


def _tree(count: int, prefix: str = "app/f") -> list[Entry]:
    return [Entry(f"{prefix}{i:05d}", Kind.FILE, size=1) for i in range(count)]


def test_chunks_cover_every_entry_in_order() -> None:
    entries = _tree(5000)
    chunks = chunking.split(entries, lambda e: e, every=64)
    assert [e for c in chunks for e in c] == entries
    assert len(chunks) > 10
    assert all(chunks)


def test_editing_a_file_never_moves_a_boundary() -> None:
    entries = _tree(3000)
    edited = [Entry(e.path, e.kind, size=999) if e.path == "app/f01234" else e for e in entries]
    before = [[e.path for e in c] for c in chunking.split(entries, lambda e: e, every=64)]
    after = [[e.path for e in c] for c in chunking.split(edited, lambda e: e, every=64)]
    assert before == after


def test_adding_a_file_changes_only_its_own_chunk() -> None:
    entries = _tree(3000)
    grown = sorted([*entries, Entry("app/f01234x", Kind.FILE)], key=lambda e: e.path)
    before = [tuple(e.path for e in c) for c in chunking.split(entries, lambda e: e, every=64)]
    after = [tuple(e.path for e in c) for c in chunking.split(grown, lambda e: e, every=64)]
    assert len(set(before) - set(after)) <= 2  # the chunk that gained the file (and a new cut)


def test_the_layer_count_is_capped() -> None:
    chunks = chunking.split(_tree(20000), lambda e: e, every=8, max_layers=48)
    assert len(chunks) <= 48


def test_a_small_tree_is_one_layer() -> None:
    assert len(chunking.split(_tree(10), lambda e: e)) == 1


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == (
        '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()
    )


def _manifest() -> bytes:
    config = ImageConfig(
        created="2023-11-14T22:13:20Z",
        architecture="amd64",
        env=["PYTHONPATH=/deps"],
        cmd=["python", "app.py"],
        working_dir="/app",
        exposed_ports=[8000],
        labels={"dev.kiln.service": "hello"},
        diff_ids=[D1],
    ).to_bytes()
    return manifest_bytes(
        Descriptor(MEDIA_CONFIG, digest_bytes(config), len(config)),
        [Descriptor(MEDIA_LAYER_TAR, D1, 10, {"dev.kiln.layer": "app"})],
        {"org.opencontainers.image.version": "1.0.0"},
    )


def test_a_manifest_round_trips_and_is_verified_against_its_digest() -> None:
    data = _manifest()
    parsed = parse_manifest(data, digest=digest_bytes(data))
    assert parsed.layers[0].digest == D1
    assert parsed.annotations == {"org.opencontainers.image.version": "1.0.0"}
    assert json.loads(data)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    with pytest.raises(IntegrityError, match="hash to"):
        parse_manifest(data, digest=D2)


@pytest.mark.parametrize(
    "data", [b"not json", b"[]", b'{"schemaVersion": 1}', b'{"schemaVersion": 2, "layers": 3}']
)
def test_malformed_manifests_are_integrity_errors(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        parse_manifest(data)


def test_config_records_port_workdir_and_env() -> None:
    data = _manifest()
    config = json.loads(
        ImageConfig(
            created="x",
            architecture="amd64",
            env=["A=1"],
            cmd=["run"],
            working_dir="/app",
            exposed_ports=[8000],
            labels={},
            diff_ids=[],
        ).to_bytes()
    )
    assert config["config"]["ExposedPorts"] == {"8000/tcp": {}}
    assert config["config"]["WorkingDir"] == "/app"
    assert config["os"] == "linux"
    assert data


def test_gzip_has_no_name_and_no_time_and_is_stable() -> None:
    payload = [b"hello " * 1000, b"world"]
    first = b"".join(gzip_chunks(payload))
    assert first == b"".join(gzip_chunks(payload))
    assert first[:4] == b"\x1f\x8b\x08\x00"  # magic, deflate, no FNAME/FCOMMENT flags
    assert first[4:8] == b"\0\0\0\0"  # MTIME 0
    assert gzip.decompress(first) == b"".join(payload)


def test_tree_diff_names_added_removed_and_changed() -> None:
    before = [Node("a", "file", 0o444, 1, "sha256:x"), Node("b", "dir", 0o555)]
    after = [Node("a", "file", 0o444, 1, "sha256:y"), Node("c", "file", 0o444)]
    result = diff(before, after)
    assert (result.added, result.removed, result.changed) == (("c",), ("b",), ("a",))
    assert tree_digest(before) == tree_digest(list(reversed(before)))
    assert diff(before, before).empty
