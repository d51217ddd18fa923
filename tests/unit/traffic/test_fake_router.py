"""The fake router keeps the same contract as the real ones."""

from __future__ import annotations

from kiln.ports.traffic import Router

from .fake_router import FakeRouter
from .router_contract import check_router_contract


def test_the_fake_router_keeps_the_router_contract() -> None:
    router: Router = FakeRouter()
    check_router_contract(router, ["127.0.0.1:9001", "127.0.0.1:9002"])


def test_the_fake_reports_recorded_traffic() -> None:
    fake = FakeRouter()
    fake.record("a", requests=10, errors_5xx=1, failures=2)
    got = fake.metrics().of("a")
    assert got is not None and (got.requests, got.errors) == (10, 3)
