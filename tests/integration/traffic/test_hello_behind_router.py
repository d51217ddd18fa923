"""The example app (stdlib http.server) behind `kiln router`: a real, slower,
thread-per-connection backend, including a canary with injected errors counted
per release."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.core.traffic.table import Backend, Release, RouteTable

from .conftest import Processes, free_port, start_router, wait_port

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[3] / "examples" / "hello" / "app.py"


def start_hello(procs: Processes, version: str, error_rate: str = "0") -> int:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "APP_VERSION": version, "ERROR_RATE": error_rate}
    procs.start(
        [sys.executable, str(APP)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    return port


def test_a_canary_of_the_example_app_gets_its_share_and_its_errors_counted(
    tmp_path: Path, procs: Processes
) -> None:
    stable = start_hello(procs, "1.0.0")
    canary = start_hello(procs, "1.1.0", error_rate="1")
    router = start_router(procs, tmp_path)
    table = RouteTable(
        1,
        "dev",
        (
            Release("stable", 80, (Backend("127.0.0.1", stable),)),
            Release("canary", 20, (Backend("127.0.0.1", canary),)),
        ),
    )
    with EmbeddedRouterClient(socket_path=router.admin) as client:
        client.apply(table)
        with httpx.Client(base_url=router.url) as http:
            answers = [http.get("/") for _ in range(50)]
            assert http.get("/healthz").status_code == 200
        metrics = client.metrics()
    versions = [a.json()["version"] for a in answers]
    assert versions.count("1.0.0") == 40 and versions.count("1.1.0") == 10
    assert {a.status_code for a in answers if a.json()["version"] == "1.1.0"} == {500}
    stable_m, canary_m = metrics.of("stable"), metrics.of("canary")
    assert stable_m is not None and canary_m is not None
    assert (canary_m.requests, canary_m.responses_5xx) == (10, 10)
    assert stable_m.responses_5xx == 0
