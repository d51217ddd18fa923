"""The router's start-up hook that takes its long-lived heap out of the collector's view."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kiln.adapters.traffic.embedded.server import settle_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_settle_heap_freezes_what_lives_now_and_reports_how_much() -> None:
    assert gc.get_freeze_count() == 0
    kept = [object() for _ in range(10)]  # a few long-lived things made before serving
    frozen = settle_heap()
    assert frozen == gc.get_freeze_count() > len(kept)
    assert gc.get_count()[0] < 10  # the young generation starts empty
