"""Header rules, cookie rules and sticky cookies on a real HAProxy 2.6, changed
at runtime through its maps (never reloaded): rules for more target releases than
the old two cookie slots, stickiness that holds across weight changes and lets go
of a drained release (as on the embedded router), what stays refused, and 0
failed requests under load while rules and weights change every 100 ms."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config, parse_stat
from kiln.adapters.traffic.haproxy_rules import RuleMaps
from kiln.core.traffic.table import (
    Backend,
    CookieMatch,
    HeaderMatch,
    Mirror,
    Release,
    RouteTable,
    Rule,
    Sticky,
)
from kiln.errors import InvalidInput

from .conftest import Processes, finish_load, free_port, start_backends, start_load

pytestmark = pytest.mark.integration


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[HAProxyRouter, str, HAProxyProcess]]:
    port = free_port()
    sock = tmp_path / "admin.sock"
    maps = RuleMaps.beside(tmp_path / "haproxy-dev")
    for path in maps.files():
        path.write_text("")
    config = tmp_path / "haproxy.cfg"
    config.write_text(base_config("dev", f"127.0.0.1:{port}", sock, rules=maps))
    process = HAProxyProcess(config=config, stats_socket=sock)
    api = process.start()
    try:
        router = HAProxyRouter(
            api=api, environment="dev", state_file=tmp_path / "routes.json", rules=maps
        )
        yield router, f"http://127.0.0.1:{port}", process
    finally:
        process.stop()


def releases(procs: Processes, weights: dict[str, int], per: int = 1) -> tuple[Release, ...]:
    """One release per name, ``per`` backends each answering ``<name><i>``."""
    out = []
    for name, weight in weights.items():
        started = start_backends(procs, [f"{name}{i}" for i in range(per)])
        out.append(Release(name, weight, tuple(Backend.parse(b.address) for b in started)))
    return tuple(out)


def reweigh(rels: tuple[Release, ...], weights: dict[str, int]) -> tuple[Release, ...]:
    return tuple(Release(r.name, weights[r.name], r.backends) for r in rels)


def answer(url: str, headers: dict[str, str] | None = None) -> str:
    return httpx.get(url, headers=headers or {}).text


def test_header_and_cookie_rules_route_four_releases_and_change_without_reload(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess], procs: Processes
) -> None:
    router, url, process = haproxy
    rels = releases(procs, {"a": 100, "b": 0, "c": 0, "d": 0})
    rules: tuple[Rule, ...] = (
        HeaderMatch("X-Cohort", "beta", "b"),
        CookieMatch("cohort", "beta", "c"),
        CookieMatch("cohort", "v$1.x", "c"),
        HeaderMatch("x-device", "tv", "d"),
        HeaderMatch("x-cohort", "gamma", "d"),
    )
    router.apply(RouteTable(1, "dev", rels, rules=rules))
    expected: dict[tuple[tuple[str, str], ...], str] = {
        (): "a0",
        (("x-cohort", "beta"),): "b0",
        (("X-COHORT", "beta"),): "b0",  # header names in any case
        (("x-cohort", "Beta"),): "a0",  # values exactly
        (("x-cohort", "betas"),): "a0",
        (("x-cohort", "gamma"),): "d0",
        (("x-device", "tv"),): "d0",
        (("cookie", "cohort=beta"),): "c0",
        (("cookie", "x=1; cohort=beta; y=2"),): "c0",
        (("cookie", 'cohort="beta"'),): "c0",
        (("cookie", "cohort=v$1.x"),): "c0",
        (("cookie", "cohort=v$1Xx"),): "a0",  # the dot is a literal, not a wildcard
        (("cookie", "xcohort=beta"),): "a0",
        (("cookie", "cohort=betas"),): "a0",
        # Header rules come before cookie rules, as on the embedded router.
        (("cookie", "cohort=beta"), ("x-device", "tv")): "d0",
    }
    got = {key: answer(url, dict(key)) for key in expected}
    assert got == expected
    assert router.differences() == []
    # Emptied by hand on the runtime socket: drift sees it.
    assert router.rules is not None
    router.api.expect(f"clear map {router.rules.rules}")
    assert router.differences() == [
        "HAProxy's map haproxy-dev.rules.map holds 0 entries that differ from the 5 the table gives"
    ]
    assert answer(url, {"x-device": "tv"}) == "a0"

    # Rules for c and d go away, b's value changes: the maps are replaced at once and
    # the release backends of c and d drained.
    router.apply(RouteTable(2, "dev", rels, rules=(HeaderMatch("x-cohort", "new", "b"),)))
    assert router.settle(timeout=10)
    assert answer(url, {"x-cohort": "beta"}) == "a0"
    assert answer(url, {"x-cohort": "new"}) == "b0"
    assert answer(url, {"cookie": "cohort=beta"}) == "a0"
    assert answer(url, {"x-device": "tv"}) == "a0"
    assert router.differences() == []
    by_release = {m.release: m.requests for m in router.metrics().releases}
    assert by_release["c"] == 4 and by_release["d"] == 3  # rule hits count for their release
    # Never reloaded: the same process served every change.
    assert process.proc is not None and process.proc.poll() is None


def sticky_client(url: str) -> tuple[httpx.Client, str]:
    """A client with a cookie jar, and the release it was first sent to."""
    client = httpx.Client(base_url=url)
    first = client.get("/")
    release = first.text[0]
    assert first.headers["set-cookie"] == (
        f"kiln_release={release}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
    )
    return client, release


def test_sticky_clients_keep_their_release_across_weight_changes(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess], procs: Processes
) -> None:
    router, url, _ = haproxy
    rels = releases(procs, {"a": 50, "b": 50}, per=2)
    router.apply(RouteTable(1, "dev", rels, sticky=Sticky()))
    clients = [sticky_client(url) for _ in range(8)]
    assert {release for _, release in clients} == {"a", "b"}  # 50/50 by weight
    try:
        # The second change also adds a rule for b: rule targets take the first release
        # backends, so a and b swap backends while their clients stay.
        for generation, weights, rules in (
            (2, {"a": 90, "b": 10}, ()),
            (3, {"a": 1, "b": 99}, (HeaderMatch("x-t", "1", "b"),)),
        ):
            table = RouteTable(generation, "dev", reweigh(rels, weights), rules, Sticky())
            router.apply(table)
            for client, release in clients:
                answers = [client.get("/") for _ in range(4)]
                assert {r.text[0] for r in answers} == {release}
                assert {r.text for r in answers} == {release + "0", release + "1"}  # spread
                assert all("set-cookie" not in r.headers for r in answers)  # stuck: no cookie
            assert router.differences() == []

        # a drained to 0: its clients re-stick to b (with a new cookie), b's stay.
        router.apply(RouteTable(4, "dev", reweigh(rels, {"a": 0, "b": 100}), sticky=Sticky()))
        for client, _ in clients:
            first = client.get("/")
            assert first.text[0] == "b"
            assert [client.get("/").text[0] for _ in range(3)] == ["b"] * 3
        assert all(c.cookies["kiln_release"] == "b" for c, _ in clients)
        assert router.settle(timeout=10)
        assert router.differences() == []

        # Without stickiness no cookie is set and a stale one is ignored.
        router.apply(RouteTable(5, "dev", reweigh(rels, {"a": 100, "b": 0})))
        client = clients[0][0]
        assert [client.get("/").text[0] for _ in range(3)] == ["a"] * 3
        assert "set-cookie" not in client.get("/").headers
    finally:
        for client, _ in clients:
            client.close()


def test_what_the_haproxy_router_cannot_map_is_refused_clearly(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess], procs: Processes
) -> None:
    router, _, _ = haproxy
    rels = releases(procs, {"a": 100, "b": 0, "c": 0, "d": 0, "e": 0})
    five = tuple(HeaderMatch("x-k", r.name, r.name) for r in rels)
    with pytest.raises(InvalidInput, match=r"has 4 release backends .* needs 5 \(a, b, c, d, e\)"):
        router.apply(RouteTable(1, "dev", rels, rules=five))
    with pytest.raises(InvalidInput, match=r"HAProxy 2\.6 has no native mirroring"):
        router.apply(RouteTable(1, "dev", rels, mirror=Mirror("b")))
    with pytest.raises(InvalidInput, match="sets the sticky cookie kiln_release"):
        router.apply(RouteTable(1, "dev", rels, sticky=Sticky(cookie="other")))
    assert router.current() is None


def test_sticky_and_rule_traffic_under_load_while_rules_and_weights_change(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess],
    procs: Processes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Three hey runs (plain on fresh connections, a rule's header, a sticky cookie) at
    150 req/s each while a table is applied every 100 ms: 0 failed requests; the
    rule's release backend serves exactly the rule's requests, the sticky release's
    exactly the sticky cookie's, and the releases' totals add up."""
    router, url, _ = haproxy
    rels = releases(procs, {"a": 50, "b": 50, "c": 0}, per=2)
    rule = HeaderMatch("x-cohort", "beta", "c")
    extra = CookieMatch("k", "v", "c")
    router.apply(RouteTable(1, "dev", rels, rules=(rule,), sticky=Sticky()))
    loads = {
        name: start_load(
            procs, url + "/", seconds=4, workers=3, qps_per_worker=50, headers=h, keepalive=ka
        )
        for name, h, ka in (
            ("plain", (), False),
            ("rule", ("x-cohort: beta",), True),
            ("sticky", ("Cookie: kiln_release=b",), True),
        )
    }
    stop = threading.Event()
    applied: list[int] = []

    def push() -> None:
        generation = 2
        while not stop.is_set():
            weights = {"a": 90, "b": 10, "c": 0} if generation % 2 else {"a": 10, "b": 90, "c": 0}
            rules: tuple[Rule, ...] = (rule, extra) if generation % 3 else (rule,)
            table = RouteTable(generation, "dev", reweigh(rels, weights), rules, Sticky())
            router.apply(table)
            applied.append(generation)
            generation += 1
            time.sleep(0.1)

    pusher = threading.Thread(target=push)
    pusher.start()
    try:
        results = {name: finish_load(proc) for name, proc in loads.items()}
    finally:
        stop.set()
        pusher.join(timeout=30)
    with capsys.disabled():
        print(
            f"\nHAProxy rules + sticky under load, {len(applied)} tables: "
            + ", ".join(
                f"{name} ok {r.ok} failed {r.failed} ({r.rps:.0f} req/s)"
                for name, r in results.items()
            )
        )
    for name, result in results.items():
        assert result.failed == 0, (name, result.raw)
        assert result.ok > 0, (name, result.raw)
    assert len(applied) >= 10
    # Release backends by slot: c (the rules' target), then a and b (sticky, by weight).
    served: dict[str, int] = {}
    for row in parse_stat(router.api.command("show stat")):
        served[row.backend] = served.get(row.backend, 0) + sum(row.responses)
    assert served["be_dev_r0"] == results["rule"].ok
    assert served.get("be_dev_r1", 0) == 0  # nobody holds a's cookie
    assert served["be_dev_r2"] == results["sticky"].ok
    by_release = {m.release: m.requests for m in router.metrics().releases}
    assert by_release["c"] == results["rule"].ok
    assert sum(by_release.values()) == sum(r.ok for r in results.values())
