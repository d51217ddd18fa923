"""The HAProxy router against a real HAProxy 2.6, driven only by its runtime API."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from kiln.core.traffic.table import Backend, HeaderMatch, Release, RouteTable
from kiln.errors import InvalidInput, Refused

from .conftest import Processes, free_port, start_backends

pytestmark = pytest.mark.integration


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[HAProxyRouter, str, HAProxyProcess]]:
    port = free_port()
    sock = tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(base_config("dev", f"127.0.0.1:{port}", sock))
    process = HAProxyProcess(config=config, stats_socket=sock)
    api = process.start()
    try:
        router = HAProxyRouter(api=api, environment="dev", state_file=tmp_path / "routes.json")
        yield router, f"http://127.0.0.1:{port}", process
    finally:
        process.stop()


def test_the_generated_config_is_valid_for_haproxy(tmp_path: Path) -> None:
    config = tmp_path / "h.cfg"
    config.write_text(base_config("dev", f"127.0.0.1:{free_port()}", tmp_path / "s.sock"))
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_weights_releases_and_removal_through_the_runtime_api(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess], procs: Processes
) -> None:
    router, url, process = haproxy
    a, c = start_backends(procs, ["a", "c"])
    table = RouteTable(
        1,
        "dev",
        (
            Release("a", 75, (Backend.parse(a.address),)),
            Release("c", 25, (Backend.parse(c.address),)),
        ),
    )
    assert router.apply(table) == 1
    with httpx.Client(base_url=url) as http:
        got = Counter(http.get("/").text for _ in range(200))
    assert got == {"a": 150, "c": 50}
    metrics = router.metrics()
    assert metrics.generation == 1
    assert {m.release: m.requests for m in metrics.releases} == {"a": 150, "c": 50}

    only_c = RouteTable(2, "dev", (Release("c", 100, (Backend.parse(c.address),)),))
    router.apply(only_c)
    assert router.settle(timeout=10)
    assert set(router.servers()) == {"s_127.0.0.1_" + str(c.port)}
    with httpx.Client(base_url=url) as http:
        assert {http.get("/").text for _ in range(10)} == {"c"}
    assert router.current() == only_c
    health = router.health()
    assert health.serving and health.generation == 2
    assert [(b.release, b.up) for b in health.backends] == [("c", True)]
    # Never reloaded: the same process served every change.
    assert process.proc is not None and process.proc.poll() is None


def test_older_generations_and_unmapped_features_are_refused(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess], procs: Processes
) -> None:
    router, _, _ = haproxy
    (a,) = start_backends(procs, ["a"])
    release = Release("a", 100, (Backend.parse(a.address),))
    router.apply(RouteTable(5, "dev", (release,)))
    with pytest.raises(Refused):
        router.apply(RouteTable(4, "dev", (release,)))
    with pytest.raises(InvalidInput, match="without rule maps: it maps only the preview header"):
        router.apply(RouteTable(6, "dev", (release,), rules=(HeaderMatch("x-p", "1", "a"),)))
    with pytest.raises(InvalidInput, match="this HAProxy serves 'dev'"):
        router.apply(RouteTable(6, "prod", (release,)))
