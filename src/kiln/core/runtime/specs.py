"""Building a ``LaunchSpec`` from a release, its environment and its image config.

This is where the artifacts side (an unpacked tree and the OCI image config)
meets the spec side (the environment's config, secrets, health and runtime
blocks). The image config is parsed here, at the edge: ``Cmd`` must be a list
of strings, ``Env`` a list of ``NAME=value``, ``ExposedPorts`` keys
``PORT/tcp``; anything else is an ``InvalidInput`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.core.release import Release
from kiln.core.runtime.model import ImageRef, LaunchSpec, Limits, SecretBinding, SecretSource
from kiln.core.spec.models import Environment
from kiln.errors import InvalidInput


def _image_config(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = raw.get("config", raw)
    if not isinstance(inner, Mapping):
        raise InvalidInput("image config: 'config' is not an object")
    return inner


def _command(config: Mapping[str, Any]) -> tuple[str, ...]:
    cmd = config.get("Cmd")
    if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
        raise InvalidInput("image config: Cmd must be a non-empty list of strings")
    return tuple(config.get("Entrypoint") or ()) + tuple(cmd)


def _env(config: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        if not isinstance(item, str) or "=" not in item:
            raise InvalidInput(f"image config: Env entry {item!r} is not NAME=value")
        name, _, value = item.partition("=")
        env[name] = value
    return env


def _port(config: Mapping[str, Any]) -> int:
    ports = config.get("ExposedPorts") or {}
    if not isinstance(ports, Mapping) or not ports:
        return 8000
    key = sorted(ports)[0]
    number, _, proto = str(key).partition("/")
    if not number.isdigit() or proto not in {"", "tcp"} or not 0 < int(number) < 65536:
        raise InvalidInput(f"image config: ExposedPorts key {key!r} is not PORT/tcp")
    return int(number)


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def launch_spec(
    *,
    service: str,
    environment: Environment,
    release: Release,
    root: Path,
    image_config: Mapping[str, Any],
    image: ImageRef | None = None,
) -> LaunchSpec:
    config = _image_config(image_config)
    labels = config.get("Labels") or {}
    return LaunchSpec(
        service=service,
        environment=environment.name,
        release=release.id,
        artifact=release.artifact,
        config_digest=release.config,
        root=root,
        command=_command(config),
        image_env=_env(config),
        config={name: _plain(value) for name, value in environment.config.items()},
        port=_port(config),
        image_labels={str(k): str(v) for k, v in labels.items()},
        secrets=tuple(
            SecretBinding(name, SecretSource(ref.source.value), ref.key, ref.version)
            for name, ref in sorted(environment.secrets.items())
        ),
        health_path=environment.health.path,
        limits=Limits(
            sandbox=environment.runtime.sandbox,
            network=environment.runtime.network,
            memory=environment.runtime.memory,
            cpus=environment.runtime.cpus,
        ),
        image=image,
    )
