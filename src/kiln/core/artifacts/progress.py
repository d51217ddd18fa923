"""Typed progress events of a build, push or pull.

A service calls ``on_event(event)``; the CLI's progress bar, the controller's
log and the dashboard subscribe to the same stream. ``total`` is in the
step's ``unit`` (bytes or files), 0 when unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StepStarted:
    step: str
    total: int = 0
    unit: str = "bytes"


@dataclass(frozen=True)
class StepAdvanced:
    step: str
    done: int


@dataclass(frozen=True)
class StepFinished:
    step: str
    detail: str = ""
    cached: bool = False


Event = StepStarted | StepAdvanced | StepFinished
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener used when nobody is watching."""
