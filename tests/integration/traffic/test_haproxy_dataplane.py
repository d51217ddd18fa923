"""The composition root's HAProxy for an environment with `router: {kind: haproxy}`:
started detached from the generated config, adopted when it already runs,
restarted with its persisted table after a kill -9, and clear errors for a bad
binary or a taken port. Real HAProxy, real backends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.bootstrap import dataplane
from kiln.bootstrap.dataplane import SupervisedHAProxy
from kiln.bootstrap.down import peer_pid
from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import Environment
from kiln.core.traffic.table import Backend, HeaderMatch, Release, RouteTable, Sticky
from kiln.errors import ConfigError, Temporary
from tests.integration.traffic.conftest import Processes, free_port, start_backends

pytestmark = pytest.mark.integration


def environment(router: str) -> Environment:
    spec = load_spec(
        f"service: hello\nenvironments:\n  - name: prod\n    router: {router}\n".encode()
    )
    return spec.environment("prod")


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / ".kiln"
    for sub in ("", "run", "logs"):
        (state / sub).mkdir(mode=0o700, exist_ok=True)
    try:
        yield state
    finally:
        pid = peer_pid(dataplane.haproxy_socket(state, "prod"))
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return bytes(response.read()).decode()


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"{pid} still runs"
        time.sleep(0.02)


def test_started_adopted_and_restarted_with_its_table(state_dir: Path, procs: Processes) -> None:
    env = environment("{kind: haproxy}")
    (backend,) = start_backends(procs, ["a"])
    router = dataplane.router_for(state_dir, env)
    assert isinstance(router, SupervisedHAProxy)
    sock = dataplane.haproxy_socket(state_dir, "prod")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    port = int(dataplane.listen_address(state_dir, env).rsplit(":", 1)[1])
    table = RouteTable(1, "prod", (Release("v1", 100, (Backend("127.0.0.1", backend.port),)),))
    assert router.apply(table) == 1
    assert "a" in get(port)
    first = peer_pid(sock)
    assert first is not None

    # A second controller adopts it: no new HAProxy, the same table.
    again = dataplane.router_for(state_dir, env)
    assert peer_pid(sock) == first
    assert again.current() == table

    # kill -9 of HAProxy: the next start serves the persisted table at once, no apply.
    os.kill(first, signal.SIGKILL)
    wait_gone(first)
    restarted = dataplane.router_for(state_dir, env)
    second = peer_pid(sock)
    assert second not in (None, first)
    assert "a" in get(port)
    assert isinstance(restarted, SupervisedHAProxy) and restarted.differences() == []


def test_threads_from_the_spec_reach_the_generated_config(state_dir: Path) -> None:
    env = environment("{kind: haproxy, haproxy: {threads: 2}}")
    dataplane.router_for(state_dir, env)
    config = (state_dir / "run" / "haproxy-prod.cfg").read_text()
    assert "nbthread 2" in config
    assert stat.S_IMODE((state_dir / "run" / "haproxy-prod.cfg").stat().st_mode) == 0o600


def test_a_binary_that_is_not_executable_names_the_field(state_dir: Path) -> None:
    env = environment("{kind: haproxy, haproxy: {binary: /nonexistent/haproxy}}")
    with pytest.raises(ConfigError) as caught:
        dataplane.router_for(state_dir, env)
    assert "router.haproxy.binary /nonexistent/haproxy is not an executable file" in str(
        caught.value.message
    )


def test_a_taken_port_is_a_clear_error(state_dir: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        env = environment(f'{{kind: haproxy, listen: "127.0.0.1:{port}"}}')
        with pytest.raises(Temporary) as caught:
            dataplane.router_for(state_dir, env)
    assert "the HAProxy of prod did not start" in caught.value.message
    assert "cannot bind socket" in caught.value.message
    assert f"127.0.0.1:{port}" in caught.value.hint


def fetch(port: int, headers: dict[str, str]) -> tuple[str, str | None]:
    """(body, Set-Cookie) of one GET / carrying ``headers``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return bytes(response.read()).decode(), response.headers.get("set-cookie")


def get_with(port: int, headers: dict[str, str]) -> str:
    return fetch(port, headers)[0]


def two_releases(
    state_dir: Path, procs: Processes, router: str
) -> tuple[SupervisedHAProxy, int, Backend, Backend]:
    """The HAProxy of an environment with ``router``, its port, and two backends
    answering ``a`` and ``b``."""
    env = environment(router)
    a, b = start_backends(procs, ["a", "b"])
    port = int(dataplane.listen_address(state_dir, env).rsplit(":", 1)[1])
    routed = dataplane.router_for(state_dir, env)
    assert isinstance(routed, SupervisedHAProxy)
    return routed, port, Backend("127.0.0.1", a.port), Backend("127.0.0.1", b.port)


def test_a_blue_green_preview_header_routes_to_the_preview_release(
    state_dir: Path, procs: Processes
) -> None:
    router, port, b, g = two_releases(
        state_dir, procs, "{kind: haproxy}\n    strategy: {blueGreen: {previewHeader: x-peek}}"
    )
    preview = RouteTable(
        1,
        "prod",
        (Release("blue", 100, (b,)), Release("green", 0, (g,))),
        (HeaderMatch("x-peek", "1", "green"),),
    )
    router.apply(preview)
    assert {get(port) for _ in range(6)} == {"a"}
    assert {get_with(port, {"x-peek": "1"}) for _ in range(6)} == {"b"}
    assert get_with(port, {"x-peek": "2"}) == "a"  # only the rule's value
    assert isinstance(router, SupervisedHAProxy) and router.differences() == []
    by_release = {m.release: m.requests for m in router.metrics().releases}
    assert by_release["green"] >= 6  # preview requests count for the preview release

    # Another header than the one HAProxy was started with goes through the rules map:
    # no restart, and the preview header no longer routes.
    other = RouteTable(2, "prod", preview.releases, (HeaderMatch("x-other", "1", "green"),))
    router.apply(other)
    assert {get_with(port, {"x-other": "1"}) for _ in range(4)} == {"b"}
    assert get_with(port, {"x-peek": "1"}) == "a"

    # Promotion: all traffic to green, no rule; the preview value no longer routes.
    router.apply(RouteTable(3, "prod", (Release("green", 100, (g,)),)))
    assert {get_with(port, {"x-peek": "1"}) for _ in range(4)} == {"b"}
    assert router.router.settle(timeout=10)
    assert router.differences() == []


def test_a_restarted_haproxy_gets_its_preview_rule_back(state_dir: Path, procs: Processes) -> None:
    env = environment("{kind: haproxy}\n    strategy: {blueGreen: {}}")
    blue, green = start_backends(procs, ["blue", "green"])
    router = dataplane.router_for(state_dir, env)
    port = int(dataplane.listen_address(state_dir, env).rsplit(":", 1)[1])
    b, g = Backend("127.0.0.1", blue.port), Backend("127.0.0.1", green.port)
    router.apply(
        RouteTable(
            1,
            "prod",
            (Release("blue", 100, (b,)), Release("green", 0, (g,))),
            (HeaderMatch("x-kiln-preview", "1", "green"),),
        )
    )
    pid = peer_pid(dataplane.haproxy_socket(state_dir, "prod"))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    dataplane.router_for(state_dir, env)
    assert get_with(port, {"x-kiln-preview": "1"}) == "green"
    assert get(port) == "blue"


def test_a_sticky_environment_keeps_clients_on_their_release_across_a_restart(
    state_dir: Path, procs: Processes
) -> None:
    router, port, a, b = two_releases(state_dir, procs, "{kind: haproxy, sticky: true}")
    rels = (Release("v1", 50, (a,)), Release("v2", 50, (b,)))
    router.apply(RouteTable(1, "prod", rels, sticky=Sticky()))
    first = {fetch(port, {}) for _ in range(4)}
    assert first == {
        ("a", "kiln_release=v1; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
        ("b", "kiln_release=v2; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
    }
    pid = peer_pid(dataplane.haproxy_socket(state_dir, "prod"))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    # A fresh HAProxy (empty maps at start) gets the maps back with the table.
    assert router.differences() == []
    assert {fetch(port, {"cookie": "kiln_release=v2"}) for _ in range(4)} == {("b", None)}
    assert {fetch(port, {"cookie": "kiln_release=v1"}) for _ in range(4)} == {("a", None)}


def test_a_killed_haproxy_is_started_again_by_the_next_call(
    state_dir: Path, procs: Processes
) -> None:
    env = environment("{kind: haproxy}")
    (backend,) = start_backends(procs, ["a"])
    router = dataplane.router_for(state_dir, env)
    port = int(dataplane.listen_address(state_dir, env).rsplit(":", 1)[1])
    table = RouteTable(1, "prod", (Release("v1", 100, (Backend("127.0.0.1", backend.port),)),))
    router.apply(table)
    sock = dataplane.haproxy_socket(state_dir, "prod")
    pid = peer_pid(sock)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    # What the controller's heal loop calls each interval: it finds HAProxy gone,
    # starts it with the persisted table, and then finds nothing to heal.
    assert router.differences() == []
    assert peer_pid(sock) not in (None, pid)
    assert get(port) == "a"
    assert router.health().serving
