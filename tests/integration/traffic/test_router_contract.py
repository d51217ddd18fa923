"""Both real routers keep the ``Router`` port's contract (same checks as the fake)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from tests.unit.traffic.router_contract import check_router_contract

from .conftest import Processes, free_port, start_backends, start_router

pytestmark = pytest.mark.integration


def test_the_embedded_router_keeps_the_contract(tmp_path: Path, procs: Processes) -> None:
    backends = start_backends(procs, ["a", "b"])
    router = start_router(procs, tmp_path)
    with EmbeddedRouterClient(socket_path=router.admin) as client:
        check_router_contract(client, [b.address for b in backends])


def test_the_haproxy_router_keeps_the_contract(tmp_path: Path, procs: Processes) -> None:
    backends = start_backends(procs, ["a", "b"])
    sock = tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(base_config("dev", f"127.0.0.1:{free_port()}", sock))
    process = HAProxyProcess(config=config, stats_socket=sock)
    api = process.start()
    try:
        router = HAProxyRouter(api=api, environment="dev", state_file=tmp_path / "t.json")
        check_router_contract(router, [b.address for b in backends])
    finally:
        process.stop()
