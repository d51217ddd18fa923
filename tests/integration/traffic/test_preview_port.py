"""The blue/green preview port on both routers, as real processes: a table's listener
serves its release only while the main port follows the weights; it closes (embedded)
or answers 503 (HAProxy) once a table no longer names it; it survives a restart."""

from __future__ import annotations

import concurrent.futures
import http.server
import os
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.adapters.traffic.haproxy import (
    HAProxyProcess,
    HAProxyRouter,
    PreviewRoute,
    base_config,
)
from kiln.bootstrap import dataplane
from kiln.bootstrap.down import peer_pid
from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import Environment
from kiln.core.traffic.table import Backend, HeaderMatch, Listener, Release, RouteTable
from kiln.errors import InvalidInput, Refused, Temporary

from . import test_haproxy_dataplane
from .conftest import BackendProc, Processes, free_port, start_backends, start_router
from .test_haproxy_dataplane import wait_gone

pytestmark = pytest.mark.integration

HEADER = "x-kiln-preview"


def preview_table(
    generation: int,
    stable: BackendProc,
    new: BackendProc,
    port: int | None,
    environment: str = "dev",
) -> RouteTable:
    """What the executor applies during a blue/green preview: all traffic on stable,
    the new release behind the header and (with ``port``) its own listener."""
    return RouteTable(
        generation,
        environment,
        (
            Release("stable", 100, (Backend.parse(stable.address),)),
            Release("new", 0, (Backend.parse(new.address),)),
        ),
        (HeaderMatch(HEADER, "1", "new"),),
        listeners=(Listener(port, "new"),) if port is not None else (),
    )


def promoted_table(generation: int, new: BackendProc) -> RouteTable:
    return RouteTable(generation, "dev", (Release("new", 100, (Backend.parse(new.address),)),))


def answers(url: str, n: int = 20) -> Counter[str]:
    with httpx.Client(base_url=url, timeout=5) as http:
        return Counter(http.get("/").text for _ in range(n))


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) != 0


# --- the embedded router -----------------------------------------------------------------


def test_the_embedded_router_opens_serves_reopens_and_closes_the_preview_port(
    procs: Processes, tmp_path: Path
) -> None:
    stable, new = start_backends(procs, ["stable", "new"])
    router = start_router(procs, tmp_path)
    client = EmbeddedRouterClient(socket_path=router.admin)
    port = free_port()
    assert refuses_connections(port)

    client.apply(preview_table(1, stable, new, port))
    assert answers(router.url) == {"stable": 20}
    assert answers(f"http://127.0.0.1:{port}") == {"new": 20}
    # weights do not apply there: even a header naming nothing keeps it on the release
    with httpx.Client(timeout=5) as http:
        assert http.get(f"http://127.0.0.1:{port}/", headers={HEADER: "0"}).text == "new"
    counts = {m.release: m.requests for m in client.metrics().releases}
    assert counts == {"stable": 20, "new": 21}  # preview requests count under the release
    assert f"port {port} serves new" in client.health().detail

    # A restarted router reopens the listener from its persisted table.
    procs.kill9(router.proc)
    router = start_router(procs, tmp_path, router.port)
    client = EmbeddedRouterClient(socket_path=router.admin)
    assert answers(f"http://127.0.0.1:{port}") == {"new": 20}
    assert answers(router.url) == {"stable": 20}

    # Promotion: a table without the listener closes it.
    client.apply(promoted_table(2, new))
    assert refuses_connections(port)
    assert answers(router.url) == {"new": 20}


class HeldBackend:
    """A backend that holds each request until told to answer: an in-flight request
    the test can see arrive, with no sleeping."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.answer = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                backend.arrived.set()
                backend.answer.wait(30)
                self.send_response(200)
                self.send_header("content-length", "4")
                self.end_headers()
                self.wfile.write(b"held")

            def log_message(self, *args: object) -> None:
                return

        return Handler

    def close(self) -> None:
        self.answer.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_request_in_flight_on_the_preview_port_finishes_after_it_closes(
    procs: Processes, tmp_path: Path
) -> None:
    (stable,) = start_backends(procs, ["stable"])
    held = HeldBackend()
    try:
        router = start_router(procs, tmp_path)
        client = EmbeddedRouterClient(socket_path=router.admin)
        port = free_port()
        releases = (
            Release("stable", 100, (Backend.parse(stable.address),)),
            Release("new", 0, (Backend("127.0.0.1", held.port),)),
        )
        client.apply(RouteTable(1, "dev", releases, listeners=(Listener(port, "new"),)))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.get, f"http://127.0.0.1:{port}/", timeout=30)
            assert held.arrived.wait(30)
            client.apply(RouteTable(2, "dev", releases))  # the listener closes
            assert refuses_connections(port)
            held.answer.set()
            assert pending.result().text == "held"
        assert answers(router.url) == {"stable": 20}
    finally:
        held.close()


def test_a_preview_port_that_cannot_be_bound_refuses_the_table_not_the_router(
    procs: Processes, tmp_path: Path
) -> None:
    stable, new = start_backends(procs, ["stable", "new"])
    router = start_router(procs, tmp_path)
    client = EmbeddedRouterClient(socket_path=router.admin)
    client.apply(preview_table(1, stable, new, None))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(Refused, match=f"cannot open the listener on 127.0.0.1:{taken}"):
            client.apply(preview_table(2, stable, new, taken))
    assert client.current() == preview_table(1, stable, new, None)  # not persisted
    assert answers(router.url) == {"stable": 20}
    assert router.proc.poll() is None
    # Once the port is free the same table goes through.
    client.apply(preview_table(2, stable, new, taken))
    assert answers(f"http://127.0.0.1:{taken}") == {"new": 20}


# --- HAProxy --------------------------------------------------------------------------------


@pytest.fixture
def haproxy_preview(tmp_path: Path) -> Iterator[tuple[Path, int, int, PreviewRoute]]:
    """A config with a preview frontend; yields (config, main port, preview port, route)."""
    main, preview_port = free_port(), free_port()
    values = tmp_path / "preview.values"
    values.write_text("")
    route = PreviewRoute(HEADER, values, preview_port)
    config = tmp_path / "haproxy.cfg"
    sock = tmp_path / "admin.sock"
    config.write_text(base_config("dev", f"127.0.0.1:{main}", sock, preview=route))
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    yield config, main, preview_port, route


def test_haproxy_serves_the_preview_port_from_the_preview_backend(
    haproxy_preview: tuple[Path, int, int, PreviewRoute], procs: Processes, tmp_path: Path
) -> None:
    config, main, port, route = haproxy_preview
    stable, new = start_backends(procs, ["stable", "new"])
    sock = tmp_path / "admin.sock"
    process = HAProxyProcess(config=config, stats_socket=sock)
    api = process.start()
    try:
        router = HAProxyRouter(
            api=api, environment="dev", state_file=tmp_path / "routes.json", preview=route
        )
        with httpx.Client(timeout=5) as http:
            assert http.get(f"http://127.0.0.1:{port}/").status_code == 503  # no preview yet
        router.apply(preview_table(1, stable, new, port))
        assert answers(f"http://127.0.0.1:{main}") == {"stable": 20}
        assert answers(f"http://127.0.0.1:{port}") == {"new": 20}
        with httpx.Client(timeout=5) as http:
            assert http.get(f"http://127.0.0.1:{main}/", headers={HEADER: "1"}).text == "new"
        assert {m.release: m.requests for m in router.metrics().releases} == {
            "stable": 20,
            "new": 21,
        }
        # HAProxy cannot open another port at runtime: a table asking for one is refused.
        with pytest.raises(InvalidInput, match="preview port on"):
            router.apply(preview_table(2, stable, new, free_port()))

        # A restarted HAProxy gets the preview servers back from the persisted table.
        process.stop()
        api = process.start()
        router = HAProxyRouter(
            api=api, environment="dev", state_file=tmp_path / "routes.json", preview=route
        )
        assert router.restore() == 1
        assert answers(f"http://127.0.0.1:{port}") == {"new": 20}

        # Promotion: the preview backend empties and the port answers 503.
        router.apply(promoted_table(2, new))
        assert router.settle(timeout=10)
        assert answers(f"http://127.0.0.1:{main}") == {"new": 20}
        with httpx.Client(timeout=5) as http:
            assert http.get(f"http://127.0.0.1:{port}/").status_code == 503
        assert router.differences() == []
    finally:
        process.stop()


def test_haproxy_without_a_preview_port_refuses_a_listener(
    procs: Processes, tmp_path: Path
) -> None:
    stable, new = start_backends(procs, ["stable", "new"])
    sock = tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    route = PreviewRoute(HEADER, tmp_path / "preview.values")
    route.values.write_text("")
    config.write_text(base_config("dev", f"127.0.0.1:{free_port()}", sock, preview=route))
    process = HAProxyProcess(config=config, stats_socket=sock)
    api = process.start()
    try:
        router = HAProxyRouter(
            api=api, environment="dev", state_file=tmp_path / "routes.json", preview=route
        )
        with pytest.raises(InvalidInput, match="no preview port"):
            router.apply(preview_table(1, stable, new, free_port()))
    finally:
        process.stop()


# --- the composition root: `router: {kind: haproxy}` with previewPort -----------------------


# the composition root's fixture: a state directory whose HAProxy is killed at teardown
state_dir = test_haproxy_dataplane.state_dir


def haproxy_environment(preview_port: int) -> Environment:
    spec = load_spec(
        b"service: hello\nenvironments:\n  - name: prod\n    router: {kind: haproxy}\n"
        + f"    strategy: {{blueGreen: {{previewPort: {preview_port}}}}}\n".encode()
    )
    return spec.environment("prod")


def test_a_haproxy_environment_with_a_preview_port_serves_it_across_a_kill(
    state_dir: Path, procs: Processes
) -> None:
    preview_port = free_port()
    env = haproxy_environment(preview_port)
    stable, new = start_backends(procs, ["stable", "new"])
    router = dataplane.router_for(state_dir, env)
    main = int(dataplane.listen_address(state_dir, env).rsplit(":", 1)[1])
    assert dataplane.preview_url(state_dir, env) == f"http://127.0.0.1:{preview_port}"
    router.apply(preview_table(1, stable, new, preview_port, "prod"))
    assert answers(f"http://127.0.0.1:{preview_port}") == {"new": 20}
    assert answers(f"http://127.0.0.1:{main}") == {"stable": 20}

    pid = peer_pid(dataplane.haproxy_socket(state_dir, "prod"))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    dataplane.router_for(state_dir, env)
    assert answers(f"http://127.0.0.1:{preview_port}") == {"new": 20}


def test_a_taken_preview_port_stops_haproxy_with_a_clear_error(state_dir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        env = haproxy_environment(holder.getsockname()[1])
        with pytest.raises(Temporary, match="cannot bind socket"):
            dataplane.router_for(state_dir, env)
