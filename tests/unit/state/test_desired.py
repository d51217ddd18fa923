"""Releases are named by their parts; desired state survives a reopen (a crash)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import Digest, digest_bytes
from kiln.core.release import Release, config_digest
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.spec.models import Environment
from kiln.ports.state import Signal

ART = digest_bytes(b"artifact")


def env(**fields: object) -> Environment:
    return Environment.model_validate({"name": "prod", **fields})


def test_the_same_parts_name_the_same_release() -> None:
    cfg = config_digest(env())
    assert Release.of("prod", ART, cfg) == Release.of("prod", ART, cfg)
    assert Release.of("prod", ART, cfg).id != Release.of("staging", ART, cfg).id


def test_what_runs_changes_the_config_digest_but_how_it_rolls_out_does_not() -> None:
    base = config_digest(env())
    assert config_digest(env(config={"DEBUG": False})) != base
    assert config_digest(env(replicas=3)) != base
    assert config_digest(env(secrets={"DB": {"key": "db", "version": 2}})) != base
    assert config_digest(env(strategy={"blueGreen": {}})) == base


def test_desired_state_survives_reopening(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteDesiredState(db)
    release = Release.of("prod", ART, Digest(config_digest(env())))
    store.put_release(release)
    store.put_release(release)  # idempotent
    store.set_stable("prod", release.id)
    store.set_paused("prod", True)
    rollout = replace(RolloutState.begin("prod", "rel-b", release.id, 10.0), weight=25, step=2)
    store.save_rollout(rollout)
    store.signal("prod", Signal.PROMOTE)
    store.signal("prod", Signal.PROMOTE)
    store.close()

    again = SqliteDesiredState(db)
    assert again.release(release.id) == release
    state = again.environment("prod")
    assert (state.stable, state.paused, state.pinned) == (release.id, True, None)
    assert again.rollout("prod") == rollout
    assert again.rollout("prod").phase is Phase.PROVISIONING  # type: ignore[union-attr]
    assert again.take_signals("prod") == frozenset({Signal.PROMOTE})
    assert again.take_signals("prod") == frozenset()
    assert again.environment("dev").stable is None
    again.close()
