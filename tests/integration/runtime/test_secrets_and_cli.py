"""Secrets reach the instance's environment and nothing else; the CLI around it."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.core.runtime.model import Healthy, SecretBinding, SecretSource
from kiln.ports.secrets import SecretValue
from kiln.services.instances import heal
from tests.integration.runtime.conftest import hello_spec, make_provider
from tests.integration.runtime.test_process import Ledger

pytestmark = pytest.mark.integration

STORED = "stored-Value-93c1d"
FROM_ENV = "env-Value-28ab4"
FROM_FILE = "file-Value-61f0e"


def everything_written_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_secret_values_reach_the_instance_and_nothing_else(
    state_dir: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(FROM_FILE + "\n")
    provider = make_provider(state_dir, bwrap=None, environ={"CI_TOKEN": FROM_ENV})
    from kiln.adapters.secrets.filestore import FileSecretStore

    store = FileSecretStore.in_state_dir(state_dir)
    store.put("db-password", SecretValue("old"))
    store.put("db-password", SecretValue(STORED))
    spec = hello_spec(
        tree,
        config={"ACCESS_LOG": "1"},
        secrets=(
            SecretBinding("DB_PASSWORD", SecretSource.STORE, "db-password"),
            SecretBinding("CI_TOKEN", SecretSource.ENV, "CI_TOKEN"),
            SecretBinding("TLS_KEY", SecretSource.FILE, str(secret_file)),
        ),
    )
    made = provider.create(spec, 2)
    assert all(
        isinstance(r, Healthy)
        for r in provider.wait_ready([i.id for i in made], timeout=10).values()
    )

    environ = Path(f"/proc/{made[0].pid}/environ").read_bytes().split(b"\0")
    for item in (f"DB_PASSWORD={STORED}", f"CI_TOKEN={FROM_ENV}", f"TLS_KEY={FROM_FILE}"):
        assert item.encode() in environ
    assert made[0].secrets == {"DB_PASSWORD": 2, "CI_TOKEN": None, "TLS_KEY": None}

    # Exercise every path that writes or prints: heal (ledger), list, logs, the CLI.
    provider.destroy(made[1].id, drain_timeout=1)
    ledger = Ledger()
    heal(provider, spec, 2, recorder=ledger)
    listed = json.dumps([i.summary() for i in provider.list()])
    capsys.readouterr()
    assert main(["--state-dir", str(state_dir), "instances", "list", "--output", "json"]) == 0
    assert main(["--state-dir", str(state_dir), "instances", "list"]) == 0
    assert main(["--state-dir", str(state_dir), "instances", "logs", made[0].id.value]) == 0
    assert main(["--state-dir", str(state_dir), "secrets", "list", "-o", "json"]) == 0
    printed = capsys.readouterr()
    for value in (STORED, FROM_ENV, FROM_FILE):
        assert value not in listed
        assert value not in repr(ledger.events)
        assert value not in printed.out + printed.err
        for path in everything_written_under(state_dir):
            assert value.encode() not in path.read_bytes(), f"{value} leaked into {path}"
    assert '"DB_PASSWORD": 2' in printed.out


def test_instances_list_json_shows_states_and_labels(
    state_dir: Path, tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = make_provider(state_dir, bwrap=None)
    (instance,) = provider.create(hello_spec(tree), 1)
    capsys.readouterr()
    code = main(["--state-dir", str(state_dir), "instances", "list", "dev", "-o", "json"])
    (row,) = json.loads(capsys.readouterr().out)["instances"]
    assert code == 0
    assert row["id"] == instance.id.value
    assert row["state"] == "running"
    assert row["address"] == instance.address
    assert row["labels"]["dev.kiln.release"] == "r1"
    code = main(["--state-dir", str(state_dir), "instances", "list", "prod", "-o", "json"])
    assert json.loads(capsys.readouterr().out) == {"instances": []}


def test_secrets_set_reads_stdin_and_list_shows_versions_only(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in ("first\n", STORED + "\n"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(value))
        assert main(["--state-dir", str(state_dir), "secrets", "set", "api-key"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "stored api-key version 1",
        "stored api-key version 2",
    ]
    assert main(["--state-dir", str(state_dir), "secrets", "list"]) == 0
    assert capsys.readouterr().out == "api-key  v2  (2 versions)\n"
    from kiln.adapters.secrets.filestore import FileSecretStore

    assert FileSecretStore.in_state_dir(state_dir).get("api-key")[0].reveal() == STORED


def test_an_empty_secret_is_refused(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["--state-dir", str(state_dir), "secrets", "set", "api-key"]) == 2
    assert "empty" in capsys.readouterr().err


def test_logs_of_an_unknown_instance_is_a_clear_error(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--state-dir", str(state_dir), "instances", "logs", "hello-dev-00000000"]) == 1
    err = capsys.readouterr().err
    assert "no logs for instance hello-dev-00000000" in err and "Traceback" not in err


def test_instances_list_of_an_unknown_environment_names_the_known_ones(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "kiln.yaml"
    spec.write_text("service: hello\nenvironments:\n  - name: dev\n  - name: prod\n")
    code = main(["-f", str(spec), "--state-dir", str(state_dir), "instances", "list", "qa"])
    err = capsys.readouterr().err
    assert code == 1
    assert "has no environment 'qa'" in err and "dev, prod" in err
