"""The embedded router as a real process: routing, headers, bodies, admin API."""

from __future__ import annotations

import json
import socket
import stat
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.core.traffic.table import (
    Backend,
    CookieMatch,
    HeaderMatch,
    Mirror,
    Release,
    RouteTable,
    Sticky,
)
from kiln.errors import InvalidInput, Refused, Temporary

from .conftest import BackendProc, Processes, RouterProc, start_backends, start_router

pytestmark = pytest.mark.integration


class Env:
    def __init__(self, router: RouterProc, backends: list[BackendProc]) -> None:
        self.router = router
        self.backends = {b.name: b for b in backends}
        self.client = EmbeddedRouterClient(socket_path=router.admin)
        self.generation = 0

    def table(self, weights: dict[str, int], **kw: object) -> RouteTable:
        self.generation += 1
        releases = tuple(
            Release(name, w, (Backend.parse(self.backends[name].address),))
            for name, w in weights.items()
        )
        return RouteTable(self.generation, "dev", releases, **kw)  # type: ignore[arg-type]

    def apply(self, weights: dict[str, int], **kw: object) -> RouteTable:
        table = self.table(weights, **kw)
        assert self.client.apply(table) == table.generation
        return table


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    procs = Processes()
    try:
        backends = start_backends(procs, ["a", "b", "c"])
        router = start_router(procs, tmp_path_factory.mktemp("router"))
        e = Env(router, backends)
        yield e
        e.client.close()
    finally:
        procs.stop_all()


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for_a_client(client: EmbeddedRouterClient, timeout: float = 10.0) -> None:
    """Until the router holds a client connection (then a moment for its request to
    reach the backend): a fixed sleep alone is too short on a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = client.prometheus_text()
        line = next(ln for ln in text.splitlines() if ln.startswith("kiln_router_client_conn"))
        if float(line.rsplit(" ", 1)[1]) >= 1:
            time.sleep(0.2)
            return
        time.sleep(0.02)
    raise TimeoutError("no client reached the router")


def test_the_router_runs_on_uvloop(env: Env) -> None:
    assert env.router.ready["loop"] == "uvloop"


def test_the_start_up_heap_is_frozen_before_serving(env: Env) -> None:
    # Modules, the table and the listeners leave the collector's view (settle_heap).
    assert int(str(env.router.ready["gc_frozen"])) > 10_000


def test_the_admin_socket_is_private(env: Env) -> None:
    mode = stat.S_IMODE(env.router.admin.stat().st_mode)
    assert mode == 0o600


def test_weights_split_traffic_exactly_over_a_cycle(env: Env) -> None:
    env.apply({"a": 75, "b": 25})
    with httpx.Client(base_url=env.router.url) as http:
        got = Counter(http.get("/").text for _ in range(200))
    assert got == {"a": 150, "b": 50}


def test_an_older_generation_is_refused_and_the_same_one_is_a_no_op(env: Env) -> None:
    table = env.apply({"a": 100})
    assert env.client.apply(table) == table.generation
    older = RouteTable(table.generation - 1, "dev", table.releases)
    with pytest.raises(Refused, match="not newer"):
        env.client.apply(older)
    assert env.client.current() == table


def test_a_malformed_table_is_invalid_input_from_the_router(env: Env) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(env.router.admin))) as admin:
        answer = admin.put("http://r/table", content=b'{"generation": 1}')
    assert answer.status_code == 400
    with pytest.raises(InvalidInput):
        env.client._call("PUT", "/table", b"[]")


def test_a_preview_header_reaches_a_release_at_weight_0(env: Env) -> None:
    env.apply({"a": 100, "b": 0}, rules=(HeaderMatch("X-Preview", "b", "b"),))
    with httpx.Client(base_url=env.router.url) as http:
        assert http.get("/", headers={"x-preview": "b"}).text == "b"
        assert http.get("/", headers={"x-preview": "nope"}).text == "a"


def test_a_cookie_rule_routes_a_cohort(env: Env) -> None:
    env.apply({"a": 50, "b": 50, "c": 0}, rules=(CookieMatch("cohort", "c", "c"),))
    with httpx.Client(base_url=env.router.url) as http:
        assert {http.get("/", headers={"cookie": "x=1; cohort=c"}).text for _ in range(6)} == {"c"}


def test_sticky_clients_stay_on_their_release(env: Env) -> None:
    env.apply({"a": 50, "b": 50}, sticky=Sticky("kiln_release", 60))
    with httpx.Client(base_url=env.router.url) as http:
        first = http.get("/")
        assert first.headers["set-cookie"].startswith(f"kiln_release={first.text}; Path=/;")
        assert {http.get("/").text for _ in range(10)} == {first.text}
    with httpx.Client(base_url=env.router.url) as fresh:
        other = "b" if first.text == "a" else "a"
        stuck = {fresh.get("/", headers={"cookie": f"kiln_release={other}"}).text for _ in range(6)}
        assert stuck == {other}


def test_mirrored_copies_reach_the_shadow_release_and_are_counted(env: Env) -> None:
    before = env.client.metrics().of("c")
    env.apply({"a": 100, "c": 0}, mirror=Mirror("c", 100))
    with httpx.Client(base_url=env.router.url) as http:
        answers = {http.get("/").text for _ in range(20)}
    assert answers == {"a"}
    text = env.client.prometheus_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("kiln_router_mirrored_total"))
    assert 'release="c"' in text
    after = env.client.metrics().of("c")
    assert after is not None
    assert after.requests - (before.requests if before else 0) >= 15  # counted as they finish
    assert line


def test_hop_by_hop_headers_are_dropped_and_forwarded_headers_added(env: Env) -> None:
    env.apply({"a": 100})
    answer = raw_request(
        env.router.port,
        b"GET /echo HTTP/1.1\r\nHost: shop.example\r\nConnection: close, X-Secret\r\n"
        b"X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: x\r\n"
        b"Upgrade-Insecure-Requests: 1\r\nX-Forwarded-For: 203.0.113.9\r\n"
        b"X-Forwarded-Proto: https\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    seen = {name.lower(): value for name, value in json.loads(body)["headers"]}
    for gone in ("x-secret", "keep-alive", "te", "proxy-authorization", "connection"):
        assert gone not in seen
    assert seen["upgrade-insecure-requests"] == "1"
    assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "shop.example"
    with httpx.Client(base_url=env.router.url) as http:
        first_hop = dict(http.get("/echo").json()["headers"])
    assert first_hop["x-forwarded-for"] == "127.0.0.1"


def test_a_chunked_response_is_relayed_without_the_backends_hop_headers(env: Env) -> None:
    env.apply({"a": 100})
    answer = raw_request(
        env.router.port, b"GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    lower = head.lower()
    assert b"transfer-encoding: chunked" in lower
    assert b"x-secret" not in lower and b"keep-alive" not in lower
    assert body == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"


def test_request_bodies_stream_with_length_or_chunked(env: Env) -> None:
    env.apply({"a": 100})
    with httpx.Client(base_url=env.router.url) as http:
        assert http.post("/body", content=b"x" * 300_000).content == b"x" * 300_000
        chunks = (bytes([65 + i]) * 1000 for i in range(5))
        assert http.post("/body", content=chunks).content == b"".join(
            bytes([65 + i]) * 1000 for i in range(5)
        )


def test_head_answers_carry_no_body_and_the_connection_stays_usable(env: Env) -> None:
    env.apply({"a": 100})
    with httpx.Client(base_url=env.router.url) as http:
        assert http.head("/").headers["content-length"] == "1"
        assert http.get("/").text == "a"


def test_http_1_0_clients_get_a_close_delimited_answer(env: Env) -> None:
    env.apply({"a": 100})
    answer = raw_request(env.router.port, b"GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"chunked" not in head.lower()
    assert body == b"hello world"


def test_metrics_are_prometheus_text_per_release(env: Env) -> None:
    env.apply({"a": 100})
    with httpx.Client(base_url=env.router.url) as http:
        http.get("/")
    text = env.client.prometheus_text()
    assert 'kiln_router_requests_total{code="2xx",environment="dev",release="a"}' in text
    assert "kiln_router_request_duration_seconds_bucket{" in text
    assert 'kiln_router_table_generation{environment="dev"}' in text
    a = env.client.metrics().of("a")
    assert a is not None and a.requests >= 1 and a.latency.count == a.requests


def test_a_dead_backend_is_ejected_and_its_requests_retried(env: Env, procs: Processes) -> None:
    extra = start_backends(procs, ["d", "e"])
    env.backends.update({b.name: b for b in extra})
    env.generation += 1
    table = RouteTable(
        env.generation,
        "dev",
        (Release("de", 100, tuple(Backend.parse(b.address) for b in extra)),),
    )
    env.client.apply(table)
    procs.kill9(extra[0].proc)
    with httpx.Client(base_url=env.router.url) as http:
        assert {http.get("/").text for _ in range(20)} == {"e"}
    health = {b.address: b for b in env.client.health().backends}
    assert health[extra[0].address].up is False
    assert health[extra[1].address].up is True


def test_no_table_means_503_and_health_says_so(tmp_path: Path, procs: Processes) -> None:
    router = start_router(procs, tmp_path)
    with httpx.Client(base_url=router.url) as http:
        assert http.get("/").status_code == 503
    with EmbeddedRouterClient(socket_path=router.admin) as client:
        health = client.health()
        assert (health.serving, health.detail) == (False, "no route table yet")
        assert client.current() is None


def test_an_unreachable_admin_socket_is_temporary(tmp_path: Path) -> None:
    with (
        EmbeddedRouterClient(socket_path=tmp_path / "none.sock") as client,
        pytest.raises(Temporary, match="does not answer"),
    ):
        client.current()


def test_a_large_body_to_a_cold_backend_is_held_bounded_then_streamed(
    env: Env, procs: Processes
) -> None:
    (cold,) = start_backends(procs, ["cold"])
    env.backends["cold"] = cold
    env.apply({"cold": 100})
    body = bytes(range(256)) * (3 * 4096)  # 3 MiB, more than the pending limit
    with httpx.Client(base_url=env.router.url, timeout=30) as http:
        assert http.post("/body", content=body).content == body


def test_a_request_in_flight_finishes_on_its_backend_after_the_swap(
    env: Env, procs: Processes
) -> None:
    import threading

    old, new = start_backends(procs, ["old", "new"])
    env.backends.update({"old": old, "new": new})
    env.apply({"old": 100})
    answers: list[httpx.Response] = []

    def slow() -> None:
        with httpx.Client(base_url=env.router.url, timeout=10) as http:
            answers.append(http.get("/slow"))

    worker = threading.Thread(target=slow)
    worker.start()
    wait_for_a_client(env.client)  # the slow request is now at the old backend
    env.apply({"new": 100})  # the old backend leaves the table
    with httpx.Client(base_url=env.router.url) as http:
        assert {http.get("/").text for _ in range(5)} == {"new"}
    worker.join(timeout=10)
    assert [(r.status_code, r.text) for r in answers] == [(200, "old")]


def test_sigterm_drains_in_flight_requests_then_exits(tmp_path: Path, procs: Processes) -> None:
    import signal
    import threading

    (slow_backend,) = start_backends(procs, ["slow"])
    router = start_router(procs, tmp_path)
    with EmbeddedRouterClient(socket_path=router.admin) as client:
        client.apply(
            RouteTable(1, "dev", (Release("s", 100, (Backend.parse(slow_backend.address),)),))
        )
    answers: list[httpx.Response] = []

    def slow() -> None:
        with httpx.Client(base_url=router.url, timeout=10) as http:
            answers.append(http.get("/slow"))

    worker = threading.Thread(target=slow)
    worker.start()
    with EmbeddedRouterClient(socket_path=router.admin) as client:
        wait_for_a_client(client)
    router.proc.send_signal(signal.SIGTERM)
    worker.join(timeout=10)
    assert [(r.status_code, r.text) for r in answers] == [(200, "slow")]
    assert router.proc.wait(timeout=10) == 0
    assert not router.admin.exists()


def test_prometheus_can_scrape_a_tcp_metrics_listener(tmp_path: Path, procs: Processes) -> None:
    from .conftest import free_port, wait_port

    port = free_port()
    router = start_router(procs, tmp_path, extra=("--metrics-listen", f"127.0.0.1:{port}"))
    wait_port(port)
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "kiln_router_table_generation" in answer.text
    assert router.proc.poll() is None


def test_a_dead_mirror_never_fails_or_holds_the_real_request(env: Env, procs: Processes) -> None:
    live, shadow = start_backends(procs, ["live", "shadow"])
    env.backends.update({"live": live, "shadow": shadow})
    procs.kill9(shadow.proc)
    env.apply({"live": 100, "shadow": 0}, mirror=Mirror("shadow", 100))
    with httpx.Client(base_url=env.router.url) as http:
        answers = [http.get("/") for _ in range(20)]
    assert {(a.status_code, a.text) for a in answers} == {(200, "live")}
    shadow_metrics = env.client.metrics().of("shadow")
    assert shadow_metrics is not None and shadow_metrics.connect_failures > 0


def test_an_ejected_backend_is_probed_back_into_rotation(env: Env, procs: Processes) -> None:
    import sys

    from .conftest import BACKEND, wait_port

    flaky, steady = start_backends(procs, ["flaky", "steady"])
    env.generation += 1
    env.client.apply(
        RouteTable(
            env.generation,
            "dev",
            (Release("fs", 100, (Backend.parse(flaky.address), Backend.parse(steady.address))),),
        )
    )
    procs.kill9(flaky.proc)
    with httpx.Client(base_url=env.router.url) as http:
        assert {http.get("/").text for _ in range(10)} == {"steady"}
    assert not {b.address: b.up for b in env.client.health().backends}[flaky.address]
    procs.start([sys.executable, str(BACKEND), str(flaky.port), "flaky"])
    wait_port(flaky.port)
    deadline = time.monotonic() + 10
    while not {b.address: b.up for b in env.client.health().backends}[flaky.address]:
        assert time.monotonic() < deadline, "never probed back"
        time.sleep(0.1)
    with httpx.Client(base_url=env.router.url) as http:
        assert {http.get("/").text for _ in range(10)} == {"flaky", "steady"}


def test_a_restarted_backend_is_served_again_despite_stale_pooled_connections(
    env: Env, procs: Processes
) -> None:
    import subprocess
    import sys

    from .conftest import BACKEND, hey_args, parse_hey, wait_port

    (phoenix,) = start_backends(procs, ["phoenix"])
    env.backends["phoenix"] = phoenix
    env.apply({"phoenix": 100})
    warm = subprocess.run(
        hey_args(env.router.url + "/", seconds=1, workers=8, qps_per_worker=100),
        capture_output=True,
        text=True,
        check=True,
    )
    assert parse_hey(warm.stdout).failed == 0  # the pool now holds several connections
    procs.kill9(phoenix.proc)
    procs.start([sys.executable, str(BACKEND), str(phoenix.port), "phoenix"])
    wait_port(phoenix.port)
    with httpx.Client(base_url=env.router.url) as http:
        answers = [http.get("/") for _ in range(30)]
    assert {(a.status_code, a.text) for a in answers} == {(200, "phoenix")}


def test_plain_keep_alive_requests_get_forwarded_headers_and_whole_answers(env: Env) -> None:
    # The fast path end to end: whole plain heads and answers on one connection.
    env.apply({"a": 100})
    with socket.create_connection(("127.0.0.1", env.router.port), timeout=5) as sock:
        for path in (b"/echo", b"/echo?again", b"/"):
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: shop.example\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            head, _, body = head.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 200 ")
            if path == b"/":
                assert body == b"a"
                continue
            seen = dict(json.loads(body)["headers"])
            assert seen["x-forwarded-for"] == "127.0.0.1"
            assert seen["x-forwarded-proto"] == "http"
            assert seen["x-forwarded-host"] == "shop.example"
            assert json.loads(body)["url"] == path.decode()


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1])


def test_a_slow_client_pauses_the_backend_instead_of_filling_the_router(env: Env) -> None:
    # 48 MiB answered at once by the backend, read by a client that first stalls:
    # the router must stop reading the backend (flow control), not buffer it all.
    env.apply({"a": 100})
    pid = env.router.proc.pid
    before = _rss_kib(pid)
    with socket.create_connection(("127.0.0.1", env.router.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /big?48 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.5)  # not reading: the backend has written everything by now
        stalled = _rss_kib(pid)
        received = bytearray()
        while b"\r\n\r\n" not in received:
            received += sock.recv(1 << 20)
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        got = len(body)
        digest = bytearray(body)
        while got < 48 << 20:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {got} bytes"
            got += len(chunk)
            if len(digest) < 1 << 20:
                digest += chunk
    assert got == 48 << 20
    assert bytes(digest[:1024]) == (bytes(range(256)) * 4)
    assert stalled - before < 16 * 1024, f"router grew {stalled - before} KiB while stalled"
