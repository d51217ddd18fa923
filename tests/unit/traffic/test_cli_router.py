"""`kiln router` and `kiln routes show`: the failures that need no running router."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.cli.main import main


def test_a_bad_listen_address_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "router",
            "--listen",
            "nowhere",
            "--admin-socket",
            str(tmp_path / "a.sock"),
            "--state-file",
            str(tmp_path / "t.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--listen 'nowhere' is not host:port" in err
    assert "Traceback" not in err


def test_a_corrupt_state_file_stops_the_router_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "t.json"
    state.write_text('{"generation": 1}')
    code = main(
        [
            "router",
            "--listen",
            "127.0.0.1:0",
            "--admin-socket",
            str(tmp_path / "a.sock"),
            "--state-file",
            str(state),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "is not a valid route table" in err
    assert "move the file away" in err


def test_showing_routes_without_a_router_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["routes", "show", "dev", "--admin-socket", str(tmp_path / "none.sock")])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not answer" in err
    assert "is `kiln router` running?" in err
