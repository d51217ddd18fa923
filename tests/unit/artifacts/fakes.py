"""In-memory fakes of the artifact area's ports; each checks its own contract."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kiln.core.ledger.kinds import EventKind
from kiln.ports.artifacts import SourceState


@dataclass
class FakeRecorder:
    events: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self,
        kind: EventKind,
        *,
        actor: str,
        artifact: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        links: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        assert isinstance(kind, EventKind), kind
        assert actor, "every event names its actor"
        assert artifact is None or artifact.startswith("sha256:")
        self.events.append(
            {"kind": kind, "actor": actor, "artifact": artifact, "details": dict(details or {})}
        )
        return len(self.events)


@dataclass
class FrozenClock:
    at: datetime = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 1000.0

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class FakeInstaller:
    """Installs a fixed tree (a fake package) instead of calling pip."""

    files: Mapping[str, bytes] = field(
        default_factory=lambda: {
            "fakepkg/__init__.py": b"VERSION = '1.0'\n",
            "fakepkg-1.0.dist-info/METADATA": b"Name: fakepkg\nVersion: 1.0\n",
        }
    )
    env: str = "python 3.11 fake"
    installs: int = 0

    def environment(self) -> str:
        return self.env

    def install(self, requirements: Path, target: Path) -> None:
        assert requirements.is_file()
        assert target.is_dir() and not any(target.iterdir()), "installs into an empty dir"
        self.installs += 1
        for rel, data in self.files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


@dataclass
class FakeSource:
    state_value: SourceState = field(
        default_factory=lambda: SourceState(
            revision="1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
            commit_time=1_700_000_000,
            remote=None,
            version="1.2.0",
        )
    )

    def state(self, directory: Path) -> SourceState:
        return self.state_value

    def last_change(self, directory: Path, path: Path) -> int | None:
        return self.state_value.commit_time

    def export(self, directory: Path, revision: str, dest: Path) -> Path:
        raise NotImplementedError
