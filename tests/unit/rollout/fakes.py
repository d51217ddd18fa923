"""What the executor's unit tests share: a clock the test moves, and a launcher
that turns a release into a plain launch spec for the fake provider."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kiln.core.release import Release
from kiln.core.runtime.model import LaunchSpec


@dataclass
class Clock:
    at: datetime = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def launcher(root: Path) -> Callable[[Release], LaunchSpec]:
    def launch(release: Release) -> LaunchSpec:
        return LaunchSpec(
            service="hello",
            environment=release.environment,
            release=release.id,
            artifact=release.artifact,
            config_digest=release.config,
            root=root,
            command=("python", "app.py"),
        )

    return launch
