"""Persisted instance records: ``<dir>/<instance>.json``, one per live instance.

A record is how a restarted controller recognises its instances: the leader
pid with its start time, the port, the labels, and the launch spec the instance
came from (so it can be replaced from the same tree). Secrets appear as names,
references and resolved versions only; values are never written here. Records
are written atomically with mode 0600 and read leniently: a corrupt record is
skipped (its process, if any, then shows up as an orphan and is reaped).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.core.runtime.model import (
    ImageRef,
    InstanceId,
    LaunchSpec,
    Limits,
    SecretBinding,
    SecretSource,
)
from kiln.errors import InvalidInput
from kiln.fsio import write_atomic

FORMAT = 1


@dataclass(frozen=True)
class InstanceRecord:
    instance: InstanceId
    pid: int
    start_time: int
    host: str
    port: int
    labels: dict[str, str]
    created: str
    spec: LaunchSpec
    secrets: dict[str, int | None] = field(default_factory=dict)
    sandbox: str = "none"
    network: str = "host"
    scratch: str = ""
    log: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def spec_to_json(spec: LaunchSpec) -> dict[str, Any]:
    return {
        "service": spec.service,
        "environment": spec.environment,
        "release": spec.release,
        "artifact": spec.artifact,
        "config_digest": spec.config_digest,
        "root": str(spec.root),
        "command": list(spec.command),
        "image_env": dict(spec.image_env),
        "config": dict(spec.config),
        "port": spec.port,
        "image_labels": dict(spec.image_labels),
        "secrets": [
            {"name": b.name, "source": b.source.value, "key": b.key, "version": b.version}
            for b in spec.secrets
        ],
        "health_path": spec.health_path,
        "limits": {
            "sandbox": spec.limits.sandbox,
            "network": spec.limits.network,
            "memory": spec.limits.memory,
            "cpus": spec.limits.cpus,
        },
        "image": None
        if spec.image is None
        else {"layout": str(spec.image.layout), "reference": spec.image.reference},
    }


def spec_from_json(data: dict[str, Any]) -> LaunchSpec:
    limits = data.get("limits") or {}
    image = data.get("image")
    return LaunchSpec(
        service=data["service"],
        environment=data["environment"],
        release=data["release"],
        artifact=data["artifact"],
        config_digest=data["config_digest"],
        root=Path(data["root"]),
        command=tuple(data["command"]),
        image_env=dict(data.get("image_env") or {}),
        config=dict(data.get("config") or {}),
        port=int(data.get("port", 8000)),
        image_labels=dict(data.get("image_labels") or {}),
        secrets=tuple(
            SecretBinding(s["name"], SecretSource(s["source"]), s["key"], s.get("version"))
            for s in data.get("secrets") or []
        ),
        health_path=data.get("health_path", "/healthz"),
        limits=Limits(
            sandbox=limits.get("sandbox", "auto"),
            network=limits.get("network", "isolated"),
            memory=limits.get("memory"),
            cpus=limits.get("cpus"),
        ),
        image=None if not image else ImageRef(Path(image["layout"]), image["reference"]),
    )


def to_json(record: InstanceRecord) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "instance": record.instance.value,
        "pid": record.pid,
        "start_time": record.start_time,
        "host": record.host,
        "port": record.port,
        "labels": record.labels,
        "created": record.created,
        "spec": spec_to_json(record.spec),
        "secrets": record.secrets,
        "sandbox": record.sandbox,
        "network": record.network,
        "scratch": record.scratch,
        "log": record.log,
        "extra": record.extra,
    }


def from_json(data: dict[str, Any]) -> InstanceRecord:
    return InstanceRecord(
        instance=InstanceId(data["instance"]),
        pid=int(data["pid"]),
        start_time=int(data["start_time"]),
        host=data["host"],
        port=int(data["port"]),
        labels=dict(data["labels"]),
        created=data["created"],
        spec=spec_from_json(data["spec"]),
        secrets=dict(data.get("secrets") or {}),
        sandbox=data.get("sandbox", "none"),
        network=data.get("network", "host"),
        scratch=data.get("scratch", ""),
        log=data.get("log", ""),
        extra=dict(data.get("extra") or {}),
    )


class RecordStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock over this directory (``flock``), across threads and processes."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, instance: InstanceId) -> Path:
        return self.directory / f"{instance.value}.json"

    def save(self, record: InstanceRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(to_json(record), indent=1, sort_keys=True).encode() + b"\n"
        write_atomic(self._path(record.instance), data, mode=0o600)

    def get(self, instance: InstanceId) -> InstanceRecord | None:
        try:
            return from_json(json.loads(self._path(instance).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, InvalidInput):
            return None

    def all(self) -> list[InstanceRecord]:
        if not self.directory.is_dir():
            return []
        records: list[InstanceRecord] = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, InvalidInput):
                records.append(from_json(json.loads(path.read_text(encoding="utf-8"))))
        return records

    def delete(self, instance: InstanceId) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(instance).unlink()
