"""Cookie rules on a real HAProxy 2.6, changed at runtime (no reload): requests
carrying a rule's cookie value go to its release, others by weight; removing the
rule routes them back; more target releases than slots, sticky cookies and
mirroring are refused with what HAProxy lacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from kiln.adapters.traffic.haproxy_rules import cookie_regex
from kiln.core.traffic.table import Backend, CookieMatch, Mirror, Release, RouteTable, Sticky
from kiln.errors import InvalidInput

from .conftest import Processes, free_port, start_backends

pytestmark = pytest.mark.integration


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[HAProxyRouter, str, HAProxyProcess]]:
    port = free_port()
    sock = tmp_path / "admin.sock"
    files = (tmp_path / "cookie0", tmp_path / "cookie1")
    for path in files:
        path.write_text("")
    config = tmp_path / "haproxy.cfg"
    config.write_text(base_config("dev", f"127.0.0.1:{port}", sock, cookie_files=files))
    process = HAProxyProcess(config=config, stats_socket=sock)
    api = process.start()
    try:
        router = HAProxyRouter(
            api=api, environment="dev", state_file=tmp_path / "routes.json", cookie_files=files
        )
        yield router, f"http://127.0.0.1:{port}", process
    finally:
        process.stop()


def three_releases(procs: Processes) -> tuple[Release, ...]:
    """a at 100 %, b and c at 0 % (reached only through rules), one backend each."""
    return tuple(
        Release(name, 100 if name == "a" else 0, (Backend.parse(b.address),))
        for name, b in zip("abc", start_backends(procs, ["a", "b", "c"]), strict=True)
    )


def answer(url: str, cookie: str | None) -> str:
    headers = {"cookie": cookie} if cookie is not None else {}
    return httpx.get(url, headers=headers).text


def test_cookie_rules_route_by_value_and_change_without_reload(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess], procs: Processes
) -> None:
    router, url, process = haproxy
    rels = three_releases(procs)
    rules = (
        CookieMatch("cohort", "beta", "b"),
        CookieMatch("cohort", "v$1.x", "b"),
        CookieMatch("canary", "yes", "c"),
    )
    router.apply(RouteTable(1, "dev", rels, rules=rules))
    expected = {
        None: "a",
        "cohort=beta": "b",
        "x=1; cohort=beta; y=2": "b",
        'cohort="beta"': "b",
        "cohort=v$1.x": "b",
        "cohort=v$1Xx": "a",  # the dot is a literal, not a regex wildcard
        "cohort=betas": "a",
        "xcohort=beta": "a",
        "canary=yes": "c",
        "canary=no": "a",
    }
    assert {cookie: answer(url, cookie) for cookie in expected} == expected
    assert router.differences() == []

    # The rule for c goes away: its slot is emptied and its server drained.
    router.apply(RouteTable(2, "dev", rels, rules=rules[:1]))
    assert router.settle(timeout=10)
    assert answer(url, "canary=yes") == "a"
    assert answer(url, "cohort=beta") == "b"
    assert answer(url, "cohort=v$1.x") == "a"
    assert router.differences() == []
    # Never reloaded: the same process served every change.
    assert process.proc is not None and process.proc.poll() is None


def test_what_the_haproxy_router_cannot_map_is_refused_clearly(
    haproxy: tuple[HAProxyRouter, str, HAProxyProcess], procs: Processes
) -> None:
    router, _, _ = haproxy
    rels = three_releases(procs)
    three = (
        CookieMatch("k", "1", "a"),
        CookieMatch("k", "2", "b"),
        CookieMatch("k", "3", "c"),
    )
    with pytest.raises(InvalidInput, match="cookie rules for at most 2 release"):
        router.apply(RouteTable(1, "dev", rels, rules=three))
    with pytest.raises(InvalidInput, match=r"HAProxy 2\.6 has no native mirroring"):
        router.apply(RouteTable(1, "dev", rels, mirror=Mirror("b")))
    with pytest.raises(InvalidInput, match="does not map sticky cookies"):
        router.apply(RouteTable(1, "dev", rels, sticky=Sticky()))
    assert router.current() is None


def test_a_cookie_pattern_escapes_every_punctuation_character() -> None:
    assert cookie_regex("a.b", "x$y") == '(^|\\x3b)\\s*a\\.b="?x\\$y"?\\s*(\\x3b|$)'
