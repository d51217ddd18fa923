"""The ``Router`` port's contract, checked against the fake here and against both
real routers in tests/integration/traffic/test_router_contract.py."""

from __future__ import annotations

import pytest

from kiln.core.traffic.table import Backend, Release, RouteTable, next_generation
from kiln.errors import Refused
from kiln.ports.traffic import Router


def check_router_contract(router: Router, addresses: list[str]) -> None:
    assert router.current() is None
    assert router.health().serving is False
    first = RouteTable(10, "dev", (Release("a", 100, tuple(Backend.parse(a) for a in addresses)),))
    assert router.apply(first) == 10
    assert router.current() == first
    assert router.apply(first) == 10  # same table again: a no-op
    with pytest.raises(Refused):
        router.apply(RouteTable(9, "dev", first.releases))
    with pytest.raises(Refused):
        router.apply(RouteTable(10, "dev", (Release("b", 100, (Backend.parse(addresses[0]),)),)))
    health = router.health()
    assert health.serving is True
    assert health.generation == 10
    assert router.metrics().generation == 10

    # Fencing (docs/controller.md): the leader of term 2 pushes over the table of
    # term 1 it found; the stale leader of term 1 had read the table before that
    # and pushes next, from its own count: the router refuses it and keeps term 2's.
    seen = router.current()
    newer = RouteTable(next_generation(seen, 2), "dev", first.releases)
    assert router.apply(newer) == 2 << 32
    stale = RouteTable(
        next_generation(seen, 1), "dev", (Release("b", 100, (Backend.parse(addresses[0]),)),)
    )
    with pytest.raises(Refused):
        router.apply(stale)
    assert router.current() == newer
