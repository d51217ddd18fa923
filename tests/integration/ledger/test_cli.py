"""The ledger's commands, called in-process on a real state directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiln.bootstrap.ledger import Ledger, open_ledger
from kiln.cli.main import main
from kiln.core.ledger.kinds import EventKind as K
from tests.integration.ledger.conftest import StepClock

pytestmark = pytest.mark.integration

A1, A2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
C1, C2 = "sha256:" + "c" * 64, "sha256:" + "d" * 64


def story(ledger: Ledger) -> None:
    """r1 deployed to prod at 14:01-14:02; r2 canaried at 14:03-14:05 and rolled back."""
    s = ledger.store
    s.record(K.BUILD, actor="ci", artifact=A1, details={"dependencies": ["flask==3.0.0"]})
    s.record(
        K.DEPLOY_START,
        actor="alice",
        artifact=A1,
        environment="prod",
        release="r1",
        links={"config": C1},
        details={"deployment": "d1"},
    )
    s.record(
        K.DEPLOY_COMPLETE,
        actor="kiln",
        artifact=A1,
        environment="prod",
        release="r1",
        links={"config": C1},
        details={"deployment": "d1", "weights": {"r1": 100}},
    )
    s.record(K.BUILD, actor="ci", artifact=A2, details={"dependencies": ["flask==3.1.0"]})
    s.record(
        K.DEPLOY_START,
        actor="bob",
        artifact=A2,
        environment="prod",
        release="r2",
        links={"config": C2, "previous_release": "r1"},
        details={"deployment": "d2"},
    )
    s.record(
        K.TRAFFIC_CHANGE,
        actor="kiln",
        environment="prod",
        details={"deployment": "d2", "weights": {"r1": 75, "r2": 25}},
    )
    s.record(K.ROLLBACK, actor="kiln", environment="prod", release="r2",
             links={"previous_release": "r1"}, details={"deployment": "d2"})  # fmt: skip


@pytest.fixture
def populated(ledger: Ledger) -> Path:
    story(ledger)
    return ledger.state_dir


def run(state: Path, *args: str) -> int:
    return main(["--state-dir", str(state), *args])


def test_history_lists_releases_who_and_outcome(
    populated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(populated, "history", "prod") == 0
    assert capsys.readouterr().out == (
        f"2026-11-20 14:00  r1                   {A1[:18]}…  by alice        succeeded\n"
        f"2026-11-20 14:00  r2                   {A2[:18]}…  by bob          rolled back\n"
    )


def test_audit_at_shows_weights_and_digests(
    populated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(populated, "audit", "at", "prod", "2026-11-20", "14:00:06") == 0
    assert capsys.readouterr().out == (
        "prod at 2026-11-20 14:00:06 UTC (ledger up to seq 5):\n"
        f"  75%  r1  artifact {A1}  config {C1}\n"
        f"  25%  r2  artifact {A2}  config {C2}\n"
    )
    assert run(populated, "audit", "at", "prod", "2026-11-20T14:00:07Z", "-o", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["releases"] == [{"release": "r1", "weight": 100.0, "artifact": A1, "config": C1}]


def test_diff_of_two_releases_and_of_two_artifacts(
    populated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(populated, "diff", "r1", "r2") == 0
    assert capsys.readouterr().out == (
        f"artifact: {A1} -> {A2}\nconfig: {C1} -> {C2}\ndependency flask: 3.0.0 -> 3.1.0\n"
    )
    assert run(populated, "diff", A1, A2, "-o", "json") == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert {"what": "dependency", "name": "flask", "a": "3.0.0", "b": "3.1.0"} in changes
    assert run(populated, "diff", "r1", "nope") == 1
    assert "no release or artifact 'nope'" in capsys.readouterr().err


def test_audit_log_filters(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(populated, "audit", "log", "--artifact", A2, "-o", "json") == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert [(e["seq"], e["kind"]) for e in events] == [(3, "build"), (4, "deploy.start")]
    assert run(populated, "audit", "log", "--env", "prod", "--since", "2026-11-20 14:00:06") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["5", "6"]
    assert run(populated, "audit", "log", "--since", "whenever") == 2
    capsys.readouterr()
    assert (
        run(populated, "audit", "log", "--kind", "rollback", "--kind", "build", "-o", "json") == 0
    )
    kinds = [e["kind"] for e in json.loads(capsys.readouterr().out)["events"]]
    assert kinds == ["build", "build", "rollback"]
    assert run(populated, "audit", "log", "--kind", "rolback") == 2
    assert "not an event kind" in capsys.readouterr().err


def test_verify_prove_and_check_the_proof_offline(
    populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(populated, "audit", "verify") == 0
    out = capsys.readouterr().out
    # The first use created the ledger key and recorded it as event 7.
    assert out.startswith("ledger verified: 8 events")
    assert (populated / "ledger" / "checkpoints" / "latest.note").exists()
    assert run(populated, "audit", "prove", "4", "-o", "json") == 0
    proof = tmp_path / "proof.json"
    proof.write_text(capsys.readouterr().out)
    key = populated / "keys" / "ledger.pub"
    assert run(populated, "audit", "verify", "--proof", str(proof), "--key", str(key)) == 0
    assert capsys.readouterr().out == "proof verified: event 4 (deploy.start) is in the ledger\n"
    document = json.loads(proof.read_text())
    document["leaf"] = document["leaf"].replace("bob", "eve")
    proof.write_text(json.dumps(document))
    assert run(populated, "audit", "verify", "--proof", str(proof), "--key", str(key)) == 1
    assert "does not match its signed checkpoint" in capsys.readouterr().err


def test_export_verifies_with_only_the_public_key(
    populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "ledger.jsonl"
    assert run(populated, "audit", "export", "--out", str(export)) == 0
    capsys.readouterr()
    key = tmp_path / "ledger.pub"
    key.write_bytes((populated / "keys" / "ledger.pub").read_bytes())
    nowhere = tmp_path / "no-state"
    assert run(nowhere, "audit", "verify", "--export", str(export), "--key", str(key)) == 0
    assert capsys.readouterr().out.startswith("ledger verified: 8 events")
    assert not (nowhere / "state.db").exists()

    lines = export.read_bytes().split(b"\n")
    tampered = tmp_path / "tampered.jsonl"
    edited = list(lines)
    edited[3] = edited[3].replace(b'"r1"', b'"r9"')
    tampered.write_bytes(b"\n".join(edited))
    assert run(nowhere, "audit", "verify", "--export", str(tampered), "--key", str(key)) == 1
    assert capsys.readouterr().out.startswith("ledger TAMPERED at seq 0..7")

    dropped = [*lines[:3], *lines[4:]]
    tampered.write_bytes(b"\n".join(dropped))
    assert run(nowhere, "audit", "verify", "--export", str(tampered), "--key", str(key)) == 1
    assert capsys.readouterr().out.startswith("ledger TAMPERED at seq 2: position 2 holds")


def test_consistency_with_an_older_checkpoint(
    populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(populated, "audit", "verify") == 0
    old = tmp_path / "old.note"
    old.write_bytes((populated / "ledger" / "checkpoints" / "latest.note").read_bytes())
    ledger = open_ledger(populated)
    ledger.store.record(K.HEAL, actor="kiln", environment="prod")
    ledger.close()
    capsys.readouterr()
    assert run(populated, "audit", "consistency", str(old)) == 0
    assert capsys.readouterr().out == "consistent: size 8 -> 9 (1 hash in the proof)\n"


def test_report_dora_counts_the_window(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = StepClock()
    clock.moment = datetime.now(UTC) - timedelta(days=2)
    ledger = open_ledger(state_dir, clock=clock)
    story(ledger)
    ledger.close()
    assert run(state_dir, "report", "dora", "--env", "prod", "--since", "7d", "-o", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["deployments"], data["failedDeployments"]) == (2, 1)
    assert data["changeFailureRate"] == {
        "value": 0.5,
        "unit": "fraction",
        "band": "low",
        "samples": 2,
    }
    assert data["deploymentFrequency"]["samples"] == 1
    assert run(state_dir, "report", "dora") == 0
    out = capsys.readouterr().out
    assert "change failure rate    50%" in out
    # A window that ends before the story: no deployments, no data, never a pass.
    args = ["report", "dora", "--since", "7d", "--until", "3d", "-o", "json"]
    assert run(state_dir, *args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["deployments"] == 0 and data["changeFailureRate"]["band"] == "no data"
    assert run(state_dir, "report", "dora", "--since", "1d", "--until", "3d") == 2
    assert "window is empty" in capsys.readouterr().err


def test_a_forged_or_foreign_checkpoint_fails_closed(
    populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(populated, "audit", "verify") == 0
    good = (populated / "ledger" / "checkpoints" / "latest.note").read_bytes()
    forged = tmp_path / "forged.note"
    forged.write_bytes(good.replace(b"\n8\n", b"\n9\n"))
    capsys.readouterr()
    assert run(populated, "audit", "verify", "--checkpoint", str(forged)) == 1
    assert capsys.readouterr().err.startswith(f"error: {forged}: checkpoint at size 9 has a bad")

    other = tmp_path / "other" / ".kiln"
    other.mkdir(parents=True)
    assert run(other, "audit", "verify") == 0
    foreign = other / "ledger" / "checkpoints" / "latest.note"
    capsys.readouterr()
    assert run(populated, "audit", "verify", "--checkpoint", str(foreign)) == 1
    assert "checkpoint is for log" in capsys.readouterr().err
    assert run(populated, "audit", "verify", "--checkpoint", str(tmp_path / "none.note")) == 1
    assert "does not exist" in capsys.readouterr().err


def test_an_export_resigned_with_a_stolen_key_is_caught_by_an_earlier_checkpoint(
    populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kiln.adapters.keys.file import FileSigner
    from kiln.core.ledger.checkpoint import Checkpoint, sign
    from kiln.core.ledger.merkle import leaf_hash, root_of

    assert run(populated, "audit", "verify") == 0
    earlier = tmp_path / "earlier.note"
    earlier.write_bytes((populated / "ledger" / "checkpoints" / "latest.note").read_bytes())
    export = tmp_path / "ledger.jsonl"
    assert run(populated, "audit", "export", "--out", str(export)) == 0
    capsys.readouterr()

    lines = export.read_bytes().split(b"\n")[:-1]
    header, leaves = json.loads(lines[0]), lines[1:-1]
    leaves[1] = leaves[1].replace(b'"alice"', b'"mallory"')  # who deployed r1
    key = FileSigner.from_file(populated / "keys" / "ledger.key")
    forged_cp = Checkpoint(header["origin"], len(leaves), root_of([leaf_hash(x) for x in leaves]))
    note = sign(forged_cp, public_key=key.public_key, sign_bytes=key.sign).note
    trailer = json.dumps({"checkpoint": note.decode()}).encode()
    export.write_bytes(b"\n".join([lines[0], *leaves, trailer]) + b"\n")

    pub = str(populated / "keys" / "ledger.pub")
    assert run(tmp_path, "audit", "verify", "--export", str(export), "--key", pub) == 0
    capsys.readouterr()
    args = ["audit", "verify", "--export", str(export), "--key", pub, "--checkpoint", str(earlier)]
    assert run(tmp_path, *args) == 1
    assert "history was rewritten" in capsys.readouterr().out
