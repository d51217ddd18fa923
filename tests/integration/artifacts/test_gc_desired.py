"""``kiln artifacts gc`` fed from a real SQLite desired state with releases in three environments.

The store holds ten artifacts of one service (a layer each, plus one layer
they all share: ``tests.unit.artifacts.fakes.make_artifact``). The desired
state (``state.db``, written through ``SqliteDesiredState`` as the controller
writes it) has a release history in dev, staging and prod, a pin in staging
and a prod rollout in progress.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.adapters.artifacts.local import LocalStore
from kiln.adapters.store.desired import SqliteDesiredState
from kiln.cli.main import main
from kiln.core.artifacts.retention import Policy
from kiln.core.canonical import canonical_json
from kiln.core.digest import Digest, digest_bytes
from kiln.core.release import Release
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.services.artifacts import gc, release_facts
from tests.unit.artifacts.fakes import make_artifact

SPEC = 'service: hello\nbuild:\n  command: ["python", "app.py"]\n'


def release(desired: SqliteDesiredState, env: str, artifact: Digest) -> Release:
    document = {"environment": env, "replicas": 1}
    made = Release.of(env, artifact, digest_bytes(canonical_json(document)))
    desired.put_release(made, document)
    return made


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "project"
        self.state = self.dir / ".kiln"
        self.state.mkdir(parents=True, mode=0o700)
        (self.dir / "kiln.yaml").write_text(SPEC)
        self.store = LocalStore(self.state / "store")
        self.a = [make_artifact(self.store, n, service="hello") for n in range(10)]
        desired = SqliteDesiredState(self.state / "state.db")
        try:
            # dev ran a0..a5 in turn; staging ran a1, a3, a5 and is pinned to a1;
            # prod ran a0, a2 (stable) and is rolling out a4
            for n in range(6):
                desired.set_stable("dev", release(desired, "dev", self.a[n]).id)
            for n in (1, 3, 5):
                desired.set_stable("staging", release(desired, "staging", self.a[n]).id)
            desired.set_pin("staging", release(desired, "staging", self.a[1]).id)
            prod = [release(desired, "prod", self.a[n]) for n in (0, 2)]
            for made in prod:
                desired.set_stable("prod", made.id)
            candidate = release(desired, "prod", self.a[4])
            desired.save_rollout(
                RolloutState("prod", candidate.id, prod[-1].id, Phase.STEPPING, started=1.0)
            )
        finally:
            desired.close()

    def kiln(self, *args: str) -> int:
        return main(["-f", str(self.dir / "kiln.yaml"), *args])


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_release_facts_come_from_the_desired_state(world: World) -> None:
    desired = SqliteDesiredState(world.state / "state.db")
    try:
        facts = release_facts(desired)
    finally:
        desired.close()
    a = world.a
    assert facts.environments == {
        "dev": [a[5], a[4], a[3], a[2], a[1], a[0]],
        "prod": [a[2], a[0]],
        "staging": [a[5], a[3], a[1]],
    }
    assert facts.referenced == {
        a[5]: facts.referenced[a[5]],
        a[1]: facts.referenced[a[1]],
        a[2]: facts.referenced[a[2]],
        a[4]: facts.referenced[a[4]],
    }
    assert facts.referenced[a[4]].startswith("rolling out in prod (rel-")
    assert facts.referenced[a[1]].startswith("pinned in staging (rel-")
    assert facts.referenced[a[2]].startswith("stable in prod (rel-")


def test_gc_keeps_the_last_n_per_environment_and_every_live_release(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    a = world.a
    args = ("artifacts", "gc", "--keep-per-env", "2", "--keep-recent", "0", "--grace", "0")
    assert world.kiln(*args, "--dry-run", "-o", "json") == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["desiredState"] is True
    assert world.kiln(*args, "-o", "json") == 0
    done = json.loads(capsys.readouterr().out)
    # dev's last 2: a5, a4; staging's: a5, a3; prod's: a2, a0; live: a5, a1 (pin), a2, a4
    assert set(done["kept"]) == {a[0], a[1], a[2], a[3], a[4], a[5]}
    assert done["kept"][a[1]].startswith("pinned in staging")
    assert done["kept"][a[3]] == "among the last 2 in staging"
    assert done["kept"][a[0]] == "among the last 2 in prod"
    assert set(done["deletedArtifacts"]) == {a[6], a[7], a[8], a[9]}
    assert done["freedBytes"] == dry["freedBytes"] > 0
    # what was freed: each deleted artifact's manifest, config and own layer; never
    # the layer every artifact shares
    shared = digest_bytes(b"shared layer")
    assert shared not in done["deletedBlobs"]
    assert len(done["deletedBlobs"]) == 12
    assert world.store.has_blob(shared)
    assert {r.digest for r in world.store.artifacts()} == set(a[:6])
    assert done["environments"]["prod"] == [a[2], a[0]]


def test_gc_human_report_names_reasons_and_bytes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        world.kiln("artifacts", "gc", "--keep-per-env", "1", "--keep-recent", "0", "--grace", "0")
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("freed ")
    # kept: a5 (last in dev and staging), a2 (prod), a1 (pinned), a4 (rolling out)
    assert out.splitlines()[0].endswith(" KiB): 6 artifacts, 18 blobs; kept 4")
    assert "  dev: 6 artifacts in its release history" in out
    assert f"  keep   {world.a[4][:19]}  rolling out in prod (rel-" in out
    assert f"  delete {world.a[0][:19]}  beyond the retention policy" in out


def test_without_a_desired_state_gc_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "bare"
    (project / ".kiln").mkdir(parents=True, mode=0o700)
    (project / "kiln.yaml").write_text(SPEC)
    store = LocalStore(project / ".kiln" / "store")
    make_artifact(store, 1, service="hello")
    assert main(["-f", str(project / "kiln.yaml"), "artifacts", "gc", "--dry-run"]) == 0
    assert "no desired state (state.db) yet" in capsys.readouterr().out
    assert not (project / ".kiln" / "state.db").exists()


def test_a_finished_rollout_no_longer_protects_its_candidate(world: World) -> None:
    desired = SqliteDesiredState(world.state / "state.db")
    try:
        rollout = desired.rollout("prod")
        assert rollout is not None
        desired.save_rollout(
            RolloutState("prod", rollout.candidate, rollout.stable, Phase.ROLLED_BACK, started=1.0)
        )
        report = gc(
            world.store,
            policy=Policy(keep_per_environment=1, keep_recent=0),
            history=desired,
            grace_seconds=0,
            dry_run=True,
        )
    finally:
        desired.close()
    assert world.a[4] not in report.plan.keep
    assert world.a[4] in report.plan.delete_artifacts
