"""`kiln routes show` against a running `kiln router`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.cli.main import main
from kiln.core.traffic.table import Backend, HeaderMatch, Listener, Mirror, Release, RouteTable

from .conftest import Processes, free_port, start_router

pytestmark = pytest.mark.integration


def test_routes_show_prints_the_served_table(
    tmp_path: Path, procs: Processes, capsys: pytest.CaptureFixture[str]
) -> None:
    router = start_router(procs, tmp_path)
    preview = free_port()
    table = RouteTable(
        3,
        "dev",
        (
            Release("r1", 90, (Backend("127.0.0.1", 9001),)),
            Release("r2", 10, (Backend("127.0.0.1", 9002), Backend("127.0.0.1", 9003))),
        ),
        rules=(HeaderMatch("x-preview", "r2", "r2"),),
        mirror=Mirror("r2", 5),
        listeners=(Listener(preview, "r2"),),
    )
    with EmbeddedRouterClient(socket_path=router.admin) as client:
        client.apply(table)
    sock = str(router.admin)
    assert main(["routes", "show", "dev", "--admin-socket", sock]) == 0
    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "environment dev  generation 3",
        " release  weight  backends",
        " r1       90%     127.0.0.1:9001",
        " r2       10%     127.0.0.1:9002 127.0.0.1:9003",
        "rule: header x-preview=r2 -> r2",
        f"listener: port {preview} -> r2 only",
        "mirror: 5% of bodiless requests -> r2",
    ]
    assert main(["routes", "show", "dev", "--admin-socket", sock, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == table.to_dict()


def test_routes_show_before_any_table_is_not_found(
    tmp_path: Path, procs: Processes, capsys: pytest.CaptureFixture[str]
) -> None:
    router = start_router(procs, tmp_path)
    code = main(["routes", "show", "dev", "--admin-socket", str(router.admin)])
    assert code == 1
    assert "serves no route table yet" in capsys.readouterr().err
