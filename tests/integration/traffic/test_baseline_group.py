"""A fresh baseline group on both routers, unchanged: ``<stable>+baseline`` is one
more weighted release to them, served and counted apart from the stable release
whose artifact it runs (docs/analysis.md, "The baseline: stable or fresh").
Real HAProxy, the real embedded router, real backends."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.bootstrap import dataplane
from kiln.core.rollout import baseline as fresh
from kiln.core.spec.loader import load_spec
from kiln.core.traffic.table import Backend, Release, RouteTable
from kiln.ports.traffic import Router
from tests.integration.traffic import test_haproxy_dataplane as dataplane_tests
from tests.integration.traffic.conftest import Processes, start_backends, start_router

pytestmark = pytest.mark.integration

STABLE, CANARY = "rel-1111111111111111", "rel-2222222222222222"
GROUP = fresh.name_for(STABLE)


state_dir = dataplane_tests.state_dir  # the HAProxy stories' state dir, cleaned up after


def serve_and_count(router: Router, port: int, procs: Processes) -> None:
    stable, group, canary = start_backends(procs, ["stable", "baseline", "canary"])
    table = RouteTable(
        1,
        "prod",
        (
            Release(STABLE, 50, (Backend("127.0.0.1", stable.port),)),
            Release(GROUP, 25, (Backend("127.0.0.1", group.port),)),
            Release(CANARY, 25, (Backend("127.0.0.1", canary.port),)),
        ),
    )
    router.apply(table)
    answers: dict[str, int] = {}
    for _ in range(200):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            body = bytes(response.read()).decode()
        for name in ("stable", "baseline", "canary"):
            if name in body:
                answers[name] = answers.get(name, 0) + 1
    metrics = router.metrics()
    counted = {name: getattr(metrics.of(name), "requests", 0) for name in (STABLE, GROUP, CANARY)}
    assert sum(counted.values()) == 200, counted
    # Each group answered and is counted under its own name, at about its weight.
    assert counted == {
        STABLE: answers["stable"],
        GROUP: answers["baseline"],
        CANARY: answers["canary"],
    }
    assert 20 <= counted[GROUP] <= 80 and 20 <= counted[CANARY] <= 80


def test_the_embedded_router_serves_and_counts_the_group_apart(
    tmp_path: Path, procs: Processes
) -> None:
    proc = start_router(procs, tmp_path)
    client = EmbeddedRouterClient(socket_path=proc.admin)
    try:
        serve_and_count(client, proc.port, procs)
    finally:
        client.close()


def test_haproxy_serves_and_counts_the_group_apart(state_dir: Path, procs: Processes) -> None:
    env = load_spec(
        b"service: hello\nenvironments:\n  - name: prod\n    router: {kind: haproxy}\n"
    ).environment("prod")
    router = dataplane.router_for(state_dir, env)
    port = int(dataplane.listen_address(state_dir, env).rsplit(":", 1)[1])
    serve_and_count(router, port, procs)
