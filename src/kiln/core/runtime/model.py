"""The runtime's domain types: launch specs, instances, labels, health results.

A ``LaunchSpec`` is everything a provider needs to start fresh instances of one
release: the unpacked read-only tree (``root`` with ``app/`` and ``deps/``), the
image config's command, environment, port and labels, the release's plain
config, secret *references* (never values) and the runtime block of the spec.
The artifacts unpacker fills it in; providers never read ``kiln.yaml``.

Instances carry six kiln labels (``dev.kiln.service`` ... ``dev.kiln.instance``)
so a provider can find its own instances again after a restart, whatever made
them. An instance is never patched: a bad one is destroyed and a new one is
created from the same ``LaunchSpec``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from kiln.errors import InvalidInput

# --- labels ----------------------------------------------------------------------------

SERVICE = "dev.kiln.service"
ENVIRONMENT = "dev.kiln.environment"
RELEASE = "dev.kiln.release"
ARTIFACT = "dev.kiln.artifact"
CONFIG = "dev.kiln.config"
INSTANCE = "dev.kiln.instance"
LABEL_KEYS = (SERVICE, ENVIRONMENT, RELEASE, ARTIFACT, CONFIG, INSTANCE)

# Processes carry their labels in the environment (a process has nowhere else to
# keep them that survives our restart); these are the variable names.
LABEL_ENV = {
    SERVICE: "KILN_SERVICE",
    ENVIRONMENT: "KILN_ENVIRONMENT",
    RELEASE: "KILN_RELEASE",
    ARTIFACT: "KILN_ARTIFACT",
    CONFIG: "KILN_CONFIG",
    INSTANCE: "KILN_INSTANCE_ID",
}

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")
_TOKEN = re.compile(r"^[0-9a-f]{8,32}$")


@dataclass(frozen=True, order=True)
class InstanceId:
    """``<service>-<environment>-<hex token>``: readable in ``ps`` and unique."""

    value: str

    def __post_init__(self) -> None:
        if not _ID.match(self.value):
            raise InvalidInput(
                f"{self.value!r} is not an instance id",
                hint="instance ids are lowercase letters, digits and dashes",
            )

    def __str__(self) -> str:
        return self.value

    @classmethod
    def new(cls, service: str, environment: str, token: str) -> InstanceId:
        """A fresh id; ``token`` is random hex the caller drew (the core draws nothing)."""
        if not _TOKEN.match(token):
            raise ValueError("token must be 8-32 lowercase hex digits")
        return cls(f"{service}-{environment}-{token}")


def matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """True when every key of ``selector`` is in ``labels`` with the same value."""
    return all(labels.get(key) == value for key, value in selector.items())


# --- what a provider receives ----------------------------------------------------------


class SecretSource(StrEnum):
    STORE = "store"
    ENV = "env"
    FILE = "file"


@dataclass(frozen=True)
class SecretBinding:
    """One secret an instance receives as the variable ``name``.

    ``key`` is the store name, the controller's variable name or a file path;
    ``version`` pins a store version (latest when None). Only this reference and
    the resolved version are ever recorded, never the value.
    """

    name: str
    source: SecretSource
    key: str
    version: int | None = None


Sandbox = Literal["auto", "bubblewrap", "none"]
Network = Literal["isolated", "host"]


@dataclass(frozen=True)
class Limits:
    """The spec's runtime block as far as a provider cares."""

    sandbox: Sandbox = "auto"
    network: Network = "isolated"
    memory: str | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class ImageRef:
    """Where the artifact is as an OCI layout, for container providers."""

    layout: Path
    reference: str


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start fresh instances of one release."""

    service: str
    environment: str
    release: str
    artifact: str
    config_digest: str
    root: Path
    command: tuple[str, ...]
    image_env: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, str] = field(default_factory=dict)
    port: int = 8000
    image_labels: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[SecretBinding, ...] = ()
    health_path: str = "/healthz"
    limits: Limits = field(default_factory=Limits)
    image: ImageRef | None = None

    def __post_init__(self) -> None:
        if not self.command:
            raise InvalidInput("the image config has no Cmd", hint="set build.command")
        if not self.health_path.startswith("/"):
            raise InvalidInput(f"health path {self.health_path!r} must start with /")
        names = [binding.name for binding in self.secrets]
        if len(set(names)) != len(names):
            raise InvalidInput("two secrets bind the same variable name")

    def labels(self, instance: InstanceId) -> dict[str, str]:
        return {
            SERVICE: self.service,
            ENVIRONMENT: self.environment,
            RELEASE: self.release,
            ARTIFACT: self.artifact,
            CONFIG: self.config_digest,
            INSTANCE: instance.value,
        }

    def selector(self) -> dict[str, str]:
        """Labels every instance of this release carries."""
        return {SERVICE: self.service, ENVIRONMENT: self.environment, RELEASE: self.release}


# --- what a provider observes ----------------------------------------------------------


class State(StrEnum):
    """What the provider sees of an instance, before any health probe.

    ``running``: ours and alive. ``dead``: ours, recorded, but its process or
    container is gone. ``orphan``: carries this provider's owner marker and kiln
    labels but no record claims it (a leftover of a crash); reaped.
    ``impostor``: carries all kiln labels but no owner marker, so no kiln
    provider made it; reported so a human looks, never routed to, never
    signalled (kiln does not kill what it did not start).
    """

    RUNNING = "running"
    DEAD = "dead"
    ORPHAN = "orphan"
    IMPOSTOR = "impostor"


@dataclass(frozen=True)
class Instance:
    id: InstanceId
    state: State
    labels: Mapping[str, str]
    host: str = "127.0.0.1"
    port: int = 0
    pid: int | None = None
    created: str = ""
    secrets: Mapping[str, int | None] = field(default_factory=dict)
    detail: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def release(self) -> str:
        return self.labels.get(RELEASE, "")

    def summary(self) -> dict[str, object]:
        """Plain data for ``--output json`` and the API: names and versions, no values."""
        return {
            "id": self.id.value,
            "state": self.state.value,
            "address": self.address if self.port else None,
            "pid": self.pid,
            "created": self.created,
            "labels": dict(sorted(self.labels.items())),
            "secrets": dict(sorted(self.secrets.items())),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Healthy:
    instance: InstanceId
    status: int
    seconds: float


@dataclass(frozen=True)
class Unhealthy:
    instance: InstanceId
    reason: str


HealthResult = Healthy | Unhealthy


@dataclass(frozen=True)
class Decommissioned:
    """How an instance ended: drained in time (``graceful``) or killed after the timeout."""

    instance: InstanceId
    graceful: bool
    seconds: float
    exit_code: int | None
