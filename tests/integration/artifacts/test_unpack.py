"""Unpacking artifacts for runtimes: safe, read-only, shared and verifiable."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from kiln.adapters.artifacts.local import LocalStore
from kiln.core.artifacts.oci import (
    MEDIA_CONFIG,
    MEDIA_LAYER_TAR,
    Descriptor,
    ImageConfig,
    manifest_bytes,
)
from kiln.core.digest import Digest
from kiln.errors import IntegrityError, Refused
from kiln.services.artifacts import verify
from kiln.services.build import run_build
from kiln.services.spec import read_spec
from kiln.services.unpack import remove_tree, unpack, verify_unpacked
from tests.integration.artifacts.conftest import BuilderFactory


@pytest.fixture
def built(repo: Path, tmp_path: Path, make_builder: BuilderFactory) -> tuple[LocalStore, Digest]:
    builder = make_builder(tmp_path / "state")
    result = run_build(
        builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="tester"
    )
    return builder.store, result.digest  # type: ignore[return-value]


def test_unpacked_tree_holds_app_and_deps_read_only(
    built: tuple[LocalStore, Digest], tmp_path: Path
) -> None:
    store, digest = built
    instances = tmp_path / "instances"
    rootfs = unpack(store, digest, instances)
    try:
        assert (rootfs / "app" / "app.py").read_text() == "print('hello')\n"
        assert (rootfs / "deps" / "fakepkg" / "__init__.py").is_file()
        assert {p.name for p in rootfs.iterdir()} == {"app", "deps", "dev", "proc", "tmp"}
        assert stat.S_IMODE((rootfs / "app" / "app.py").stat().st_mode) == 0o444
        assert stat.S_IMODE((rootfs / "app" / "bin" / "run.sh").stat().st_mode) == 0o555
        assert stat.S_IMODE((rootfs / "app").stat().st_mode) == 0o555
        assert verify_unpacked(instances, digest).empty
    finally:
        remove_tree(instances)


def test_instances_of_one_digest_share_the_tree(
    built: tuple[LocalStore, Digest], tmp_path: Path
) -> None:
    store, digest = built
    instances = tmp_path / "instances"
    first = unpack(store, digest, instances)
    marker = (first.parent / "tree.json").stat().st_ino
    second = unpack(store, digest, instances)
    assert first == second
    assert (second.parent / "tree.json").stat().st_ino == marker
    assert [p.name for p in instances.iterdir()] == [digest.split(":")[1]]
    remove_tree(instances)


def test_verify_unpacked_names_changed_added_and_removed_files(
    built: tuple[LocalStore, Digest], tmp_path: Path
) -> None:
    store, digest = built
    instances = tmp_path / "instances"
    rootfs = unpack(store, digest, instances)
    (rootfs / "app").chmod(0o755)
    target = rootfs / "app" / "app.py"
    target.chmod(0o644)
    target.write_text("print('owned')\n")
    (rootfs / "app" / "implant.py").write_text("")
    (rootfs / "app" / "pkg" / "util.py").unlink()
    changes = verify_unpacked(instances, digest)
    assert changes.changed == ("app", "app/app.py")  # content, and the directory's mode
    assert changes.added == ("app/implant.py",)
    assert changes.removed == ("app/pkg/util.py",)
    report = verify(store, digest, instances=instances)
    assert not report.ok
    remove_tree(instances)


def test_a_revoked_artifact_is_not_unpacked(
    built: tuple[LocalStore, Digest], tmp_path: Path
) -> None:
    store, digest = built
    store.revoke(digest, reason="bad", actor="t", at="now")
    with pytest.raises(Refused, match="revoked"):
        unpack(store, digest, tmp_path / "instances")


def _evil_image(store: LocalStore, members: list[tuple[tarfile.TarInfo, bytes]]) -> Digest:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    layer = store.put_blob(buffer.getvalue())
    config = ImageConfig(
        created="x",
        architecture="amd64",
        env=[],
        cmd=["x"],
        working_dir="/",
        exposed_ports=[],
        labels={},
        diff_ids=[layer.digest],
    ).to_bytes()
    cfg = store.put_blob(config)
    manifest = manifest_bytes(
        Descriptor(MEDIA_CONFIG, cfg.digest, cfg.size),
        [Descriptor(MEDIA_LAYER_TAR, layer.digest, layer.size)],
        {},
    )
    return store.put_blob(manifest).digest


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, *, size: int = 0, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([(_info("../escape", size=1), b"x")], "'..'"),
        ([(_info("/etc/cron.d/x", size=1), b"x")], "absolute path"),
        ([(_info("bin/su", size=1, mode=0o4755), b"x")], "setuid"),
        ([(_info("dev/sda", tarfile.BLKTYPE), b"")], "device node"),
        ([(_info("etc", tarfile.SYMTYPE, link="/etc"), b"")], "absolute or empty"),
        ([(_info("up", tarfile.SYMTYPE, link="../../.."), b"")], "leaves the tree"),
        ([(_info("h", tarfile.LNKTYPE, link="/etc/shadow"), b"")], "absolute path"),
        (
            [
                (_info("d", tarfile.SYMTYPE, link="sub"), b""),
                (_info("sub", tarfile.DIRTYPE, mode=0o755), b""),
                (_info("d/x", size=1), b"x"),
            ],
            "is not a directory",
        ),
    ],
)
def test_unsafe_layers_are_refused_and_leave_nothing(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], why: str
) -> None:
    store = LocalStore(tmp_path / "store")
    digest = _evil_image(store, members)
    instances = tmp_path / "instances"
    with pytest.raises(IntegrityError) as info:
        unpack(store, digest, instances)
    assert why in str(info.value)
    assert list(instances.iterdir()) == []


def test_expansion_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    digest = _evil_image(store, [(_info("big", size=4096), b"x" * 4096)])
    with pytest.raises(IntegrityError, match="exceed 1000 bytes"):
        unpack(store, digest, tmp_path / "instances", max_bytes=1000)
    assert list((tmp_path / "instances").iterdir()) == []


def test_a_corrupted_layer_is_refused_while_unpacking(
    built: tuple[LocalStore, Digest], tmp_path: Path
) -> None:
    store, digest = built
    from kiln.services.artifacts import load_manifest

    layer = load_manifest(store, digest).layers[-1].digest
    path = store.blob_path(layer)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[600] ^= 0xFF  # inside the first file's data: still a valid tar, wrong digest
    path.write_bytes(bytes(data))
    instances = tmp_path / "instances"
    with pytest.raises(IntegrityError, match="is corrupt"):
        unpack(store, digest, instances)
    assert list(instances.iterdir()) == []


def test_the_expected_tree_is_derived_from_the_layers(
    built: tuple[LocalStore, Digest], tmp_path: Path
) -> None:
    from kiln.services.unpack import expected_tree, scan_tree

    store, digest = built
    instances = tmp_path / "instances"
    rootfs = unpack(store, digest, instances)
    assert expected_tree(store, digest) == sorted(scan_tree(rootfs))
    assert verify_unpacked(instances, digest, store=store).empty
    remove_tree(instances)


def test_rewriting_the_tree_and_its_listing_together_is_caught(
    built: tuple[LocalStore, Digest], tmp_path: Path
) -> None:
    import json

    from kiln.core.artifacts.oci import canonical_json
    from kiln.core.artifacts.tree import tree_digest
    from kiln.services.unpack import scan_tree

    store, digest = built
    instances = tmp_path / "instances"
    rootfs = unpack(store, digest, instances)
    (rootfs / "app").chmod(0o755)
    (rootfs / "app" / "app.py").chmod(0o644)
    (rootfs / "app" / "app.py").write_text("print('owned')\n")
    (rootfs / "app").chmod(0o555)
    (rootfs / "app" / "app.py").chmod(0o444)
    nodes = scan_tree(rootfs)
    listing = rootfs.parent / "tree.json"
    listing.chmod(0o644)
    record = json.loads(listing.read_bytes())
    record["nodes"] = [n.to_json() for n in sorted(nodes)]
    record["tree"] = tree_digest(nodes)
    listing.write_bytes(canonical_json(record))
    assert verify_unpacked(instances, digest).empty  # the listing alone is fooled
    with pytest.raises(IntegrityError, match="does not match artifact"):
        verify_unpacked(instances, digest, store=store)
    remove_tree(instances)


def test_utf8_names_and_long_paths_round_trip(tmp_path: Path, make_builder: BuilderFactory) -> None:
    from tests.integration.artifacts.conftest import FILES, make_repo

    long = "/".join(["deep" * 12] * 6) + "/leaf.txt"  # beyond ustar's 255 bytes
    files: dict[str, str | bytes] = {**FILES, "données/café.txt": "é\n", long: "leaf\n"}
    repo = make_repo(tmp_path / "repo", files)
    builder = make_builder(tmp_path / "state")
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    instances = tmp_path / "instances"
    rootfs = unpack(builder.store, result.digest, instances)  # type: ignore[arg-type]
    try:
        assert (rootfs / "app" / "données" / "café.txt").read_text() == "é\n"
        assert (rootfs / "app" / long).read_text() == "leaf\n"
        assert verify_unpacked(instances, result.digest, store=builder.store).empty
    finally:
        remove_tree(instances)
