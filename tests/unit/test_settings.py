"""Settings precedence (flags > KILN_* > kiln.yaml > defaults) and the state directory."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kiln.bootstrap.statedir import SUBDIRS, ensure_state_dir
from kiln.cli.main import main
from kiln.core.settings import Origin, resolve
from kiln.errors import ConfigError

SPEC_DIR = Path("/project")


@pytest.mark.parametrize(
    ("flag", "env", "spec", "value", "origin"),
    [
        ("/flag", "/env", "/spec", "/flag", Origin.FLAG),
        (None, "/env", "/spec", "/env", Origin.ENV),
        (None, "", "/spec", "/spec", Origin.SPEC),  # an empty variable is unset
        (None, None, "/spec", "/spec", Origin.SPEC),
        (None, None, None, None, Origin.DEFAULT),
        ("/flag", None, None, "/flag", Origin.FLAG),
        ("/flag", "/env", None, "/flag", Origin.FLAG),
    ],
)
def test_each_layer_wins_over_the_ones_below(
    flag: str | None, env: str | None, spec: str | None, value: str | None, origin: Origin
) -> None:
    environ = {} if env is None else {"KILN_STATE_DIR": env}
    settings = resolve(
        flags={"state_dir": flag}, environ=environ, spec={"state_dir": spec}, spec_dir=SPEC_DIR
    )
    resolved = settings.values["state_dir"]
    assert (resolved.value, resolved.origin) == (value, origin)


def test_defaults_and_relative_paths_resolve_beside_the_spec() -> None:
    settings = resolve(flags={}, environ={}, spec={}, spec_dir=SPEC_DIR)
    assert settings.state_dir == SPEC_DIR / ".kiln"
    assert settings.trust_policy == SPEC_DIR / "trust.yaml"
    assert settings.get("output") == "text"
    assert settings.get("controller") is None
    relative = resolve(flags={}, environ={}, spec={"state_dir": "var/kiln"}, spec_dir=SPEC_DIR)
    assert relative.state_dir == SPEC_DIR / "var" / "kiln"
    absolute = resolve(flags={"state_dir": "/srv/k"}, environ={}, spec={}, spec_dir=SPEC_DIR)
    assert absolute.state_dir == Path("/srv/k")


def test_an_invalid_output_names_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"output must be text or json, got 'yaml' \(from env\)"):
        resolve(flags={}, environ={"KILN_OUTPUT": "yaml"}, spec={}, spec_dir=SPEC_DIR)


def test_an_unknown_setting_name_is_a_bug_not_a_silent_no_op() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        resolve(flags={"colour": "x"}, environ={}, spec={}, spec_dir=SPEC_DIR)


def _config(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, tuple[object, str]]:
    assert main([*args, "config", "--output", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    return {row["name"]: (row["value"], row["origin"]) for row in payload["settings"]}


def test_kiln_config_shows_every_value_with_its_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kiln.yaml").write_text(
        "service: shop\nsettings:\n  stateDir: from-spec\n  controller: unix:/spec.sock\n"
        "  trustPolicy: spec-trust.yaml\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KILN_CONTROLLER", "http://127.0.0.1:7000")
    monkeypatch.setenv("KILN_TRUST_POLICY", "env-trust.yaml")
    rows = _config(capsys, "--state-dir", "/from-flag")
    assert rows == {
        "state_dir": ("/from-flag", "flag"),
        "controller": ("http://127.0.0.1:7000", "env"),
        "trust_policy": ("env-trust.yaml", "env"),
        "output": ("json", "flag"),
        "database": (None, "default"),
    }
    monkeypatch.delenv("KILN_TRUST_POLICY")
    rows = _config(capsys)
    assert rows["state_dir"] == ("from-spec", "kiln.yaml")
    assert rows["trust_policy"] == ("spec-trust.yaml", "kiln.yaml")


def test_kiln_output_from_the_environment_is_reported_as_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KILN_OUTPUT", "json")
    assert main(["config"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"name": "output", "value": "json", "origin": "env", "env": "KILN_OUTPUT"} in payload[
        "settings"
    ]
    assert payload["stateDir"] == str(tmp_path / ".kiln")


def test_kiln_config_without_a_spec_uses_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = _config(capsys)
    assert rows["state_dir"] == (None, "default")
    assert rows["controller"] == (None, "default")


def test_kiln_config_in_text_lists_every_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for name in ("state_dir", "controller", "trust_policy", "output", "KILN_STATE_DIR"):
        assert name in out
    assert f"state directory: {tmp_path / '.kiln'}" in out


def test_a_broken_spec_makes_kiln_config_fail_with_its_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kiln.yaml").write_text("service: shop\nsettings: {stateDri: x}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["config"]) == 2
    assert "did you mean `stateDir`?" in capsys.readouterr().err


# --- the state directory --------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_directory_is_created_private(tmp_path: Path) -> None:
    state = ensure_state_dir(tmp_path / "a" / ".kiln")
    assert _mode(state) == 0o700
    for sub in SUBDIRS:
        assert _mode(state / sub) == 0o700


def test_a_looser_state_directory_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / ".kiln"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    (state / "keys").mkdir()
    (state / "keys").chmod(0o755)
    (state / "keys" / "k.pem").write_text("key")
    ensure_state_dir(state)
    assert _mode(state) == 0o700
    assert _mode(state / "keys") == 0o700
    assert (state / "keys" / "k.pem").read_text() == "key"


def test_a_state_directory_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot create the state directory") as caught:
        ensure_state_dir(tmp_path / "file")
    assert "--state-dir" in caught.value.hint


def test_the_state_dir_flag_is_where_state_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.cli.context import App

    monkeypatch.chdir(tmp_path)
    app = App(spec_path="kiln.yaml", flags={"state_dir": str(tmp_path / "s")})
    assert app.state_dir() == tmp_path / "s"
    assert _mode(tmp_path / "s") == 0o700
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "e"))
    assert App(spec_path="kiln.yaml", flags={"state_dir": None}).state_dir() == tmp_path / "e"
