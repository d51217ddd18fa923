"""The artifact commands, called in-process through ``kiln.cli.main.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.adapters.artifacts.local import LocalStore
from kiln.bootstrap.ledger import open_ledger
from kiln.cli.main import main
from kiln.core.digest import Digest
from kiln.core.ledger.kinds import EventKind
from kiln.errors import Refused
from kiln.services.artifacts import ensure_deployable, load_manifest
from kiln.services.unpack import remove_tree
from tests.integration.artifacts.conftest import git, make_repo
from tests.integration.artifacts.registry_fixture import registry_url

__all__ = ["registry_url"]

SPEC = 'service: hello\nbuild:\n  command: ["python", "app.py"]\n  port: 8000\n'
FILES = {"kiln.yaml": SPEC, "app.py": "print('hi')\n", "lib/x.py": "", ".gitignore": ".kiln/\n"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", FILES)


def kiln(repo: Path, *args: str) -> int:
    return main(["-f", str(repo / "kiln.yaml"), *args])


def build_json(repo: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, object]:
    assert kiln(repo, "build", "-o", "json", *extra) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_build_prints_the_tag_digest_and_layers(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kiln(repo, "build") == 0
    out = capsys.readouterr().out.splitlines()
    revision = git(repo, "rev-parse", "HEAD")
    assert out[0] == f"built hello:0.0.0-g{revision[:7]}"
    assert out[1].startswith("  digest  sha256:")
    assert out[2].startswith("  at      20")
    assert out[3].startswith("  layers  1 (0 unchanged) · ")


def test_build_json_and_list_and_show(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = build_json(repo, capsys)
    assert kiln(repo, "artifacts", "list", "-o", "json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["digest"] == built["digest"]
    assert listed["tags"] == [built["tag"]]
    assert listed["revoked"] is None
    assert kiln(repo, "artifacts", "show", str(built["tag"]), "-o", "json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["digest"] == built["digest"]
    assert shown["workingDir"] == "/app"
    assert shown["exposedPorts"] == ["8000/tcp"]
    assert kiln(repo, "artifacts", "show", str(built["digest"])[7:19]) == 0
    assert str(built["digest"]) in capsys.readouterr().out


def test_a_dirty_build_is_refused_with_a_hint(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    assert kiln(repo, "build") == 1
    err = capsys.readouterr().err
    assert "uncommitted changes: app.py" in err
    assert "hint: commit or stash them, or pass --allow-dirty" in err
    data = build_json(repo, capsys, "--allow-dirty")
    assert data["dirty"] is True


def test_moving_a_tag_is_refused_naming_both_digests(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = build_json(repo, capsys)
    (repo / "app.py").write_text("print('v2')\n")
    git(repo, "commit", "-qam", "v2")
    second = build_json(repo, capsys)
    assert kiln(repo, "artifacts", "tag", str(first["digest"]), "hello:stable") == 0
    capsys.readouterr()
    assert kiln(repo, "artifacts", "tag", str(second["digest"]), "hello:stable") == 1
    err = capsys.readouterr().err
    assert str(first["digest"]) in err and str(second["digest"]) in err
    assert "tags never move" in err


def test_revoked_artifacts_cannot_be_deployed_or_pushed(
    repo: Path, capsys: pytest.CaptureFixture[str], registry_url: str
) -> None:
    built = build_json(repo, capsys)
    digest = Digest(str(built["digest"]))
    store = LocalStore(repo / ".kiln" / "store")
    assert ensure_deployable(store, digest).digest == digest
    assert kiln(repo, "artifacts", "revoke", str(built["tag"]), "--reason", "CVE-2026-0001") == 0
    assert capsys.readouterr().out.strip() == f"revoked {digest} (CVE-2026-0001)"
    with pytest.raises(Refused, match=r"revoked .* CVE-2026-0001"):
        ensure_deployable(store, digest)
    assert kiln(repo, "push", digest, "--registry", registry_url) == 1
    assert "was revoked" in capsys.readouterr().err
    assert kiln(repo, "artifacts", "list") == 0
    assert "REVOKED" in capsys.readouterr().out
    ledger = open_ledger(repo / ".kiln")
    try:
        events = [e for e in ledger.store.events() if e.artifact == digest]
    finally:
        ledger.close()
    assert [e.kind for e in events] == [EventKind.BUILD, EventKind.REVOCATION]
    assert events[0].details["tag"] == built["tag"]
    assert dict(events[1].details) == {"reason": "CVE-2026-0001"}


def test_verify_detects_a_corrupt_blob(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = build_json(repo, capsys)
    digest = Digest(str(built["digest"]))
    assert kiln(repo, "artifacts", "verify", digest) == 0
    assert ": 3 blobs, " in capsys.readouterr().out  # manifest, config, the one layer
    store = LocalStore(repo / ".kiln" / "store")
    layer = store.blob_path(load_manifest(store, digest).layers[0].digest)
    layer.chmod(0o644)
    layer.write_bytes(layer.read_bytes()[:-1] + b"\1")
    assert kiln(repo, "artifacts", "verify", digest) == 1
    assert "is corrupt" in capsys.readouterr().err


def test_verify_unpacked_names_the_changed_file(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = build_json(repo, capsys)
    assert kiln(repo, "artifacts", "unpack", str(built["tag"])) == 0
    rootfs = Path(capsys.readouterr().out.strip())
    try:
        assert kiln(repo, "artifacts", "verify", "--unpacked", str(built["tag"])) == 0
        assert "unchanged" in capsys.readouterr().out
        target = rootfs / "app" / "app.py"
        target.chmod(0o644)
        target.write_text("print('tampered')\n")
        assert kiln(repo, "artifacts", "verify", "--unpacked", str(built["tag"]), "-o", "json") == 1
        report = json.loads(capsys.readouterr().out)
        assert report["unpacked"]["changed"] == ["app/app.py"]
        assert report["ok"] is False
    finally:
        remove_tree(rootfs.parent)


def test_gc_keeps_the_newest_and_reports_what_it_freed(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = build_json(repo, capsys)
    (repo / "app.py").write_text("print('v2')\n")
    git(repo, "commit", "-qam", "v2")
    new = build_json(repo, capsys)
    assert (
        kiln(
            repo, "artifacts", "gc", "--keep-recent", "1", "--grace", "0", "--dry-run", "-o", "json"
        )
        == 0
    )
    dry = json.loads(capsys.readouterr().out)
    assert list(dry["deletedArtifacts"]) == [old["digest"]]
    assert kiln(repo, "artifacts", "gc", "--keep-recent", "1", "--grace", "0", "-o", "json") == 0
    done = json.loads(capsys.readouterr().out)
    assert done["freedBytes"] == dry["freedBytes"] > 0
    assert done["kept"] == {new["digest"]: "among the newest 1 of hello"}
    assert kiln(repo, "artifacts", "list", "-o", "json") == 0
    assert [a["digest"] for a in json.loads(capsys.readouterr().out)] == [new["digest"]]
    # the tag of the deleted artifact stays as a tombstone: it can never point elsewhere
    assert kiln(repo, "artifacts", "tag", str(new["digest"]), str(old["tag"])) == 1


def test_rebuild_verify_reproduces_a_clean_build(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = build_json(repo, capsys)
    assert kiln(repo, "rebuild", "--verify", str(built["digest"])) == 0
    assert capsys.readouterr().out.startswith(f"reproduced {built['digest']} from ")


def test_rebuild_verify_names_the_layer_and_file_that_differ(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # git told to ignore modes: the tree looks clean, but the build saw an executable bit
    git(repo, "config", "core.fileMode", "false")
    (repo / "app.py").chmod(0o755)
    built = build_json(repo, capsys)
    assert kiln(repo, "rebuild", "--verify", str(built["digest"]), "-o", "json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["matches"] is False
    (layer,) = report["layers"]
    assert layer["role"] == "app"
    assert layer["files"] == {"app/app.py": "mode"}


def test_push_and_pull_through_the_cli(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], registry_url: str
) -> None:
    built = build_json(repo, capsys)
    assert kiln(repo, "push", str(built["tag"]), "--registry", registry_url, "-o", "json") == 0
    pushed = json.loads(capsys.readouterr().out)
    assert pushed["blobsTransferred"] == 2  # config and the one app layer
    other = tmp_path / "other"
    tag = str(built["tag"]).split(":", 1)[1]
    args = ["--state-dir", str(other), "pull", f"hello:{tag}", "--registry", registry_url]
    assert main([*args, "-o", "json"]) == 0
    pulled = json.loads(capsys.readouterr().out)
    assert pulled["digest"] == built["digest"]
    assert main(["--state-dir", str(other), "artifacts", "verify", str(built["tag"])]) == 0


def test_rebuild_verify_works_for_a_service_in_a_subdirectory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "mono", {f"services/hello/{k}": v for k, v in FILES.items()})
    service = repo / "services" / "hello"
    built = build_json(service, capsys)
    assert kiln(service, "rebuild", "--verify", str(built["tag"])) == 0
    assert capsys.readouterr().out.startswith("reproduced ")


def test_gc_sweeps_temp_files_of_crashed_writers(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import time

    build_json(repo, capsys)
    leftover = repo / ".kiln" / "store" / "tmp" / "blob-123-deadbeef"
    leftover.write_bytes(b"x" * 100)
    fresh = repo / ".kiln" / "store" / "tmp" / "blob-456-cafebabe"
    fresh.write_bytes(b"y")
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    assert kiln(repo, "artifacts", "gc", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["freedBytes"] == 100
    assert not leftover.exists() and fresh.exists()  # a live writer's file is left alone
