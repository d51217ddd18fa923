"""The pure parts of HAProxy's rules and stickiness (``haproxy_rules``) and the
runtime commands ``HAProxyRouter`` sends for them, against a recording fake of the
runtime API (the real HAProxy: tests/integration/traffic/test_haproxy_rules.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kiln.adapters.traffic.haproxy import (
    HAProxyRouter,
    PreviewRoute,
    RuntimeAPI,
    base_config,
    server_name,
)
from kiln.adapters.traffic.haproxy_rules import (
    RuleMaps,
    cli_argument,
    cookie_regex,
    header_regex,
    mapped_rules,
    release_slots,
    sticky_releases,
)
from kiln.core.traffic.table import (
    Backend,
    CookieMatch,
    HeaderMatch,
    Release,
    RouteTable,
    Rule,
    Sticky,
)
from kiln.errors import InvalidInput, Permanent

MAPS = RuleMaps.beside(Path("/run/haproxy-prod"))


def block(*headers: str) -> str:
    """A header block as ``req.hdrs`` gives it: lower-case names, CRLF, empty last line."""
    return "".join(h + "\r\n" for h in headers) + "\r\n"


def test_the_maps_live_beside_the_config() -> None:
    assert [p.name for p in MAPS.files()] == [
        "haproxy-prod.rules.map",
        "haproxy-prod.sticky.map",
        "haproxy-prod.servers.map",
    ]
    assert (MAPS.cookie, MAPS.max_age, MAPS.slots) == ("kiln_release", 3600, 4)


def test_the_config_routes_rules_then_stickiness_then_weights() -> None:
    preview = PreviewRoute("x-kiln-preview", Path("/run/prod.preview"))
    text = base_config("prod", "127.0.0.1:8080", Path("/k.sock"), preview=preview, rules=MAPS)
    frontend = text[text.index("frontend fe_prod\n") : text.index("\nbackend be_prod\n")]
    lines = [line.strip() for line in frontend.splitlines()]
    # http-request rules before every use_backend (HAProxy runs them first anyway and
    # warns otherwise); the preview, then the rules map, then the sticky map.
    assert lines.index(
        "http-request set-var(txn.kiln_rule) req.hdrs,map_reg(/run/haproxy-prod.rules.map)"
    ) < lines.index("acl kiln_preview req.hdr(x-kiln-preview) -m str -f /run/prod.preview")
    assert (
        "http-request set-var(txn.kiln_sticky) "
        "req.cook(kiln_release),map(/run/haproxy-prod.sticky.map)" in lines
    )
    uses = [line for line in lines if line.startswith(("use_backend", "default_backend"))]
    assert uses == [
        "use_backend be_prod_preview if kiln_preview { nbsrv(be_prod_preview) gt 0 }",
        "use_backend %[var(txn.kiln_rule)] if { var(txn.kiln_rule) -m found }",
        "use_backend %[var(txn.kiln_sticky)] if { var(txn.kiln_sticky) -m found }",
        "default_backend be_prod",
    ]
    weighted = text[text.index("\nbackend be_prod\n") : text.index("\nbackend be_prod_preview")]
    assert (
        'http-response add-header Set-Cookie "kiln_release='
        "%[srv_name,map(/run/haproxy-prod.servers.map)]; Path=/; Max-Age=3600; HttpOnly; "
        'SameSite=Lax" if { srv_name,map(/run/haproxy-prod.servers.map) -m found }'
    ) in weighted
    assert [f"backend be_prod_r{i}" in text for i in range(5)] == [True] * 4 + [False]


def test_without_rules_the_config_has_no_maps() -> None:
    text = base_config("prod", "127.0.0.1:8080", Path("/k.sock"))
    assert "map" not in text and "Set-Cookie" not in text and "be_prod_r0" not in text


def test_a_sticky_cookie_that_is_not_a_token_is_refused() -> None:
    maps = RuleMaps(Path("/r"), Path("/s"), Path("/v"), cookie="a b")
    with pytest.raises(InvalidInput, match="is not a cookie name"):
        base_config("prod", "127.0.0.1:8080", Path("/k.sock"), rules=maps)


@pytest.mark.parametrize(
    ("headers", "matches"),
    [
        (("x-cohort: beta",), True),
        (("host: h", "x-cohort:beta", "accept: */*"), True),
        (("x-cohort: beta  ",), True),
        (("x-cohort: betas",), False),
        (("x-cohort: Beta",), False),
        (("x-cohortx: beta",), False),
        (("y-x-cohort: beta",), False),
        (("x-other: x-cohort: beta",), False),
    ],
)
def test_a_header_pattern_matches_the_exact_value_of_its_header(
    headers: tuple[str, ...], matches: bool
) -> None:
    pattern = re.compile(header_regex("x-cohort", "beta"))
    assert bool(pattern.search(block(*headers))) is matches


@pytest.mark.parametrize(
    ("cookie", "matches"),
    [
        ("k=v$1.x", True),
        ("a=1; k=v$1.x", True),
        ("a=1; k=v$1.x; b=2", True),
        ('k="v$1.x"', True),
        ("k=v$1Xx", False),
        ("k=v$1.xy", False),
        ("ak=v$1.x", False),
        ("a=k=v$1.x", False),
    ],
)
def test_a_cookie_pattern_matches_its_cookie_anywhere_in_the_header(
    cookie: str, matches: bool
) -> None:
    pattern = re.compile(cookie_regex("k", "v$1.x"))
    assert bool(pattern.search(block("host: h", f"cookie: {cookie}"))) is matches
    assert "\\x3b" in pattern.pattern and ";" not in pattern.pattern and " " not in pattern.pattern
    assert cli_argument(pattern.pattern).count("\\\\") == pattern.pattern.count("\\")


def table(
    rules: tuple[Rule, ...] = (),
    weights: tuple[int, ...] = (60, 40, 0, 0),
    sticky: Sticky | None = None,
) -> RouteTable:
    rels = tuple(
        Release(name, w, (Backend("127.0.0.1", 9000 + i),))
        for i, (name, w) in enumerate(zip("abcd", weights, strict=True))
    )
    return RouteTable(1, "prod", rels, rules, sticky)


def test_rules_are_mapped_in_the_embedded_routers_decision_order() -> None:
    rules: tuple[Rule, ...] = (
        CookieMatch("k", "1", "b"),
        HeaderMatch("x-kiln-preview", "1", "d"),
        HeaderMatch("X-A", "1", "c"),
        HeaderMatch("x-b", "1", "b"),
        HeaderMatch("x-a", "2", "d"),
        HeaderMatch("x-kiln-preview", "2", "c"),
        CookieMatch("k", "1", "c"),  # the same value again: the first rule wins
    )
    entries = mapped_rules(table(rules), "X-Kiln-Preview")
    assert entries == [
        (header_regex("x-a", "1"), "c"),
        (header_regex("x-a", "2"), "d"),
        (header_regex("x-b", "1"), "b"),
        (header_regex("x-kiln-preview", "2"), "c"),  # only the first preview rule is the ACL's
        (cookie_regex("k", "1"), "b"),
    ]
    assert release_slots(table(rules), "x-kiln-preview") == ["c", "d", "b"]


def test_stickiness_holds_only_releases_with_weight_and_needs_slots() -> None:
    assert sticky_releases(table()) == []
    assert sticky_releases(table(sticky=Sticky())) == ["a", "b"]
    rules = (HeaderMatch("x", "1", "c"),)
    assert release_slots(table(rules, sticky=Sticky())) == ["c", "a", "b"]


class RecordingAPI(RuntimeAPI):
    """Answers like HAProxy 2.6's runtime API for maps and servers, and records."""

    STAT = (
        "# pxname,svname,status,weight,scur,stot,"
        "hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,econ,eresp,addr\n"
    )

    def __init__(self) -> None:
        super().__init__(Path("/nowhere"))
        self.sent: list[str] = []
        self.maps: dict[str, list[tuple[str, str]]] = {}
        self.servers: dict[str, tuple[str, int]] = {}  # backend/name -> status, weight
        self.versions: dict[str, list[tuple[str, str]]] = {}

    def command(self, line: str) -> str:
        words = line.split(" ")
        if line == "show stat":
            rows = [
                f"{key.split('/')[0]},{key.split('/')[1]},{status},{weight},0,0,0,0,0,0,0,0,0,"
                for key, (status, weight) in self.servers.items()
            ]
            return self.STAT + "".join(r + "\n" for r in rows)
        if line.startswith("show map "):
            return "".join(f"0x1 {k} {v}\n" for k, v in self.maps.get(words[2], []))
        if line.startswith("show acl "):
            return ""
        if line == "show info":
            return "Name: HAProxy\nPid: 1\n"
        self.sent.append(line)
        if line.startswith("prepare map "):
            self.versions[words[2]] = []
            return "New version created: 7\n"
        if line.startswith("add map @7 "):
            self.versions[words[3]].append((words[4].replace("\\\\", "\\"), words[5]))
        elif line.startswith("commit map @7 "):
            self.maps[words[3]] = self.versions.pop(words[3])
        elif line.startswith("del server "):
            del self.servers[words[2]]
            return "Server deleted.\n"
        elif line.startswith("add server "):
            self.servers[words[2]] = ("MAINT", int(words[5]))
            return "New server registered.\n"
        elif line.startswith("set server ") and words[3] == "state":
            status = {"ready": "no check", "drain": "DRAIN"}.get(words[4], "MAINT")
            self.servers[words[2]] = (status, self.servers[words[2]][1])
        elif line.startswith("set server ") and words[3] == "weight":
            self.servers[words[2]] = (self.servers[words[2]][0], int(words[4]))
        return ""


def router(api: RecordingAPI, tmp_path: Path) -> HAProxyRouter:
    return HAProxyRouter(
        api=api,
        environment="prod",
        state_file=tmp_path / "routes.json",
        rules=RuleMaps.beside(tmp_path / "h"),
    )


def test_maps_are_replaced_whole_after_their_servers_are_added(tmp_path: Path) -> None:
    api = RecordingAPI()
    r = router(api, tmp_path)
    rules, sticky, servers = (str(p) for p in RuleMaps.beside(tmp_path / "h").files())
    c = server_name(Backend("127.0.0.1", 9002))
    r.apply(table((HeaderMatch("x", "1", "c"),), sticky=Sticky()))
    sent = api.sent
    # Who answers -> release, before the weighted servers are ready.
    assert sent.index(f"commit map @7 {servers}") < sent.index(
        f"add server be_prod/{server_name(Backend('127.0.0.1', 9000))} 127.0.0.1:9000 "
        "weight 3 pool-purge-delay 10s pool-max-conn -1"
    )
    # c's release backend has its server, ready, before the rule points there.
    assert sent.index(f"set server be_prod_r0/{c} state ready") < sent.index(
        f"commit map @7 {rules}"
    )
    assert api.maps[rules] == [(header_regex("x", "1"), "be_prod_r0")]
    assert api.maps[sticky] == [("a", "be_prod_r1"), ("b", "be_prod_r2")]
    assert sorted(v for _, v in api.maps[servers]) == ["a", "b", "c", "d"]
    assert r.differences() == []

    # A map changed behind kiln's back is a difference (the heal loop re-applies).
    api.maps[sticky] = [("a", "be_prod_r1")]
    assert r.differences() == [
        "HAProxy's map h.sticky.map holds 1 entries that differ from the 2 the table gives"
    ]
    api.maps[sticky] = [("a", "be_prod_r1"), ("b", "be_prod_r2")]

    # The same maps again: nothing is sent for them.
    api.sent.clear()
    r.apply(table((HeaderMatch("x", "1", "c"),), (40, 60, 0, 0), Sticky()).with_generation(2))
    assert [line for line in api.sent if " map " in line] == []

    # No rule, no stickiness: the maps are emptied, then the release backends drained.
    api.sent.clear()
    r.apply(RouteTable(3, "prod", table().releases))
    assert api.maps[rules] == api.maps[sticky] == api.maps[servers] == []
    assert api.sent.index(f"commit map @7 {rules}") < api.sent.index(
        f"set server be_prod_r0/{c} state drain"
    )


class MaplessAPI(RecordingAPI):
    """An HAProxy whose config has no kiln maps (started by an older kiln)."""

    def command(self, line: str) -> str:
        if " map " in f" {line} ":
            return "Unknown map identifier. Please use #<id> or <file>.\n"
        return super().command(line)


def test_an_haproxy_without_the_maps_refuses_rules_with_a_hint(tmp_path: Path) -> None:
    r = router(MaplessAPI(), tmp_path)
    r.apply(table())  # no rule, no stickiness: nothing to write in a map
    with pytest.raises(Permanent, match="refused `prepare map") as caught:
        r.apply(table((HeaderMatch("x", "1", "c"),)).with_generation(2))
    assert "`kiln down`, then deploy" in (caught.value.hint or "")
