"""The pure parts of the HAProxy router: weight mapping, names, `show stat` parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.adapters.traffic.haproxy import (
    PreviewRoute,
    base_config,
    parse_stat,
    server_name,
    server_weights,
)
from kiln.core.traffic.table import Backend, Release, RouteTable
from kiln.errors import InvalidInput, Permanent


def b(port: int) -> Backend:
    return Backend("127.0.0.1", port)


@pytest.mark.parametrize(
    ("releases", "expected"),
    [
        # one release, two backends: equal weights
        ([("a", 100, [1, 2])], {1: 1, 2: 1}),
        # exact ratios when they fit in 0..256
        ([("a", 90, [1]), ("b", 10, [2])], {1: 9, 2: 1}),
        ([("a", 75, [1]), ("b", 25, [2])], {1: 3, 2: 1}),
        # shares are per backend: 50 % over 2 backends vs 50 % over 1
        ([("a", 50, [1, 2]), ("b", 50, [3])], {1: 1, 2: 1, 3: 2}),
        # weight 0 stays 0 (no new traffic)
        ([("a", 99, [1]), ("b", 1, [2]), ("c", 0, [3])], {1: 99, 2: 1, 3: 0}),
        ([("a", 100, [1]), ("b", 0, [2])], {1: 1, 2: 0}),
        # too fine for 0..256 once spread over 7 and 3 servers (297:7): scaled, rounded
        (
            [("a", 99, [1, 2, 3, 4, 5, 6, 7]), ("b", 1, [8, 9, 10])],
            {**dict.fromkeys(range(1, 8), 256), 8: 6, 9: 6, 10: 6},
        ),
        # a live share never rounds to 0
        (
            [("a", 99, [1]), ("b", 1, list(range(2, 8)))],
            {1: 256, **dict.fromkeys(range(2, 8), 1)},
        ),
    ],
)
def test_release_weights_become_server_weights_in_proportion(
    releases: list[tuple[str, int, list[int]]], expected: dict[int, int]
) -> None:
    table = RouteTable(
        1, "dev", tuple(Release(n, w, tuple(b(p) for p in ports)) for n, w, ports in releases)
    )
    got = {backend.port: weight for backend, _, weight in server_weights(table).values()}
    assert got == expected
    assert all(0 <= w <= 256 for w in got.values())


def test_server_names_are_stable_and_haproxy_safe() -> None:
    assert server_name(Backend("127.0.0.1", 8080)) == "s_127.0.0.1_8080"
    assert server_name(Backend("[::1]", 80)) == "s____1__80"


STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
    "wretr,wredis,status,weight,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,addr\n"
    "fe_dev,FRONTEND,,,1,2,100,9,0,0,0,0,0,,,,,OPEN,,,,,,,\n"
    "be_dev,s_127.0.0.1_1,0,0,2,4,,120,0,0,,0,,3,1,0,0,UP,256,0,110,0,5,5,127.0.0.1:1\n"
    "be_dev,s_127.0.0.1_2,0,0,0,1,,7,0,0,,0,,0,0,0,0,DRAIN,0,0,7,0,0,0,127.0.0.1:2\n"
    "be_dev,BACKEND,0,0,2,4,,127,0,0,0,0,,3,1,0,0,UP,256,0,117,0,5,5,\n"
)


def test_show_stat_rows_are_typed_servers_only() -> None:
    rows = parse_stat(STAT)
    assert [r.name for r in rows] == ["s_127.0.0.1_1", "s_127.0.0.1_2"]
    first = rows[0]
    assert (first.status, first.weight, first.current_sessions, first.total_sessions) == (
        "UP",
        256,
        2,
        120,
    )
    assert first.responses == (0, 110, 0, 5, 5)
    assert (first.connect_errors, first.response_errors, first.address) == (3, 1, "127.0.0.1:1")


@pytest.mark.parametrize("text", ["", "Unknown command", "# pxname,svname\nbe,s1\n"])
def test_an_unexpected_show_stat_answer_is_a_clear_error(text: str) -> None:
    with pytest.raises(Permanent):
        parse_stat(text)


def test_the_base_config_has_an_admin_socket_and_an_empty_dynamic_backend() -> None:
    text = base_config("prod", "127.0.0.1:8080", Path("/run/k.sock"))
    assert "stats socket /run/k.sock mode 600 level admin" in text
    assert "backend be_prod\n    balance roundrobin" in text
    assert "retry-on conn-failure empty-response response-timeout" in text
    assert "\n    server " not in text
    # A second HAProxy on a taken port must fail to bind, not share it (SO_REUSEPORT).
    assert "\n    noreuseport\n" in text


def test_the_preview_route_is_a_second_backend_behind_a_runtime_acl() -> None:
    preview = PreviewRoute("x-kiln-preview", Path("/run/prod.preview"))
    text = base_config("prod", "127.0.0.1:8080", Path("/run/k.sock"), preview=preview)
    assert "acl kiln_preview req.hdr(x-kiln-preview) -m str -f /run/prod.preview" in text
    assert "use_backend be_prod_preview if kiln_preview { nbsrv(be_prod_preview) gt 0 }" in text
    assert "backend be_prod_preview\n    balance roundrobin" in text
    assert "default_backend be_prod\n" in text


@pytest.mark.parametrize("header", ["x preview", "x-a\n    bind :80", ""])
def test_a_preview_header_that_is_not_a_token_is_refused(header: str) -> None:
    with pytest.raises(InvalidInput, match="is not a header name"):
        base_config(
            "prod", "127.0.0.1:8080", Path("/k.sock"), preview=PreviewRoute(header, Path("/p"))
        )


def test_a_preview_port_is_a_frontend_of_its_own_on_the_preview_backend() -> None:
    preview = PreviewRoute("x-kiln-preview", Path("/run/prod.preview"), 9001)
    text = base_config("prod", "127.0.0.1:8080", Path("/run/k.sock"), preview=preview)
    assert (
        "frontend fe_prod_preview\n    bind 127.0.0.1:9001\n    option forwardfor\n"
        "    default_backend be_prod_preview\n"
    ) in text
    # without a port, no second frontend
    plain = base_config(
        "prod", "127.0.0.1:8080", Path("/run/k.sock"), preview=PreviewRoute("x", Path("/p"))
    )
    assert "fe_prod_preview" not in plain
