"""The podman runtime: each instance is a container run from the artifact's OCI layout.

A container of a ``LaunchSpec`` is created from ``spec.image`` (an OCI layout
directory and a reference, imported once per ``create`` with
``podman pull oci:DIR:REF``) with a read-only root filesystem
(``--read-only``; ``/tmp`` is a private tmpfs), the memory and CPU limits of
the spec's runtime block, no capabilities, and its port published on
``127.0.0.1:PORT`` only. The six kiln labels plus ``dev.kiln.owner`` (this
provider's state directory) are container labels: podman keeps them, so after
a controller restart ``list`` finds every instance again with no record of our
own. Secret values reach the container through podman's environment
(``-e NAME`` with no value), never through its command line, which any local
user can read in /proc.

The local-dev compromise, stated plainly: kiln's artifacts carry the app and
its dependencies but no Python (there are no base images on this machine and
no internet to pull one). The container therefore gets the host's ``/usr``,
``/lib``/``/lib64`` and the host Python's prefix bind-mounted read-only, and
runs the app with that interpreter (``-S``, ``PYTHONPATH=/deps``). A
production artifact would include a Python base layer and need none of these
mounts.

This machine's podman quirks (ARCHITECTURE.md): podman works only with a
``CONTAINERS_CONF`` that selects runc and the cgroupfs manager and sets default
ulimits; we also pin the CNI network backend (with fresh storage podman picks
netavark, whose forwarding of 127.0.0.1 ports never answered here). The
provider writes that file under ``<state>/run/podman/`` unless it
is given one. Logs use podman's k8s-file driver with ``max-size``; podman
truncates at that size rather than keeping numbered backups.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kiln.adapters.runtime import portpick
from kiln.adapters.runtime.probe import poll_ready, probe
from kiln.core.runtime import launch
from kiln.core.runtime.adoption import Recovery
from kiln.core.runtime.model import (
    INSTANCE,
    LABEL_KEYS,
    Decommissioned,
    HealthResult,
    ImageRef,
    Instance,
    InstanceId,
    LaunchSpec,
    State,
    Unhealthy,
    matches,
)
from kiln.errors import ConfigError, InvalidInput, NotFound, Permanent, Temporary
from kiln.ports.secrets import SecretResolver

OWNER = "dev.kiln.owner"
HEALTH = "dev.kiln.health"
SECRETS = "dev.kiln.secrets"
CONTAINERS_CONF = """\
# Written by kiln: podman on this host needs runc, cgroupfs and explicit ulimits.
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"

[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
# With fresh storage podman 4.3 picks netavark, whose loopback port forwarding
# does not answer on this host; CNI's does.
network_backend = "cni"
"""
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


_IMAGE_PATH = re.compile(r"^(/[a-z0-9]+([._-][a-z0-9]+)*)+$")


def _alias_dir() -> Path:
    temp = tempfile.gettempdir()
    return Path(temp if _IMAGE_PATH.match(temp) else "/tmp")  # noqa: S108 - a link, mode 0700


def _secret_label(versions: Mapping[str, int | None]) -> str:
    return ",".join(f"{n}:{'-' if v is None else v}" for n, v in sorted(versions.items()))


def _secret_versions(label: str) -> dict[str, int | None]:
    versions: dict[str, int | None] = {}
    for item in filter(None, label.split(",")):
        name, _, version = item.partition(":")
        versions[name] = None if version in {"", "-"} else int(version)
    return versions


class PodmanProvider:
    """Implements ``kiln.ports.runtime.Provider`` with podman containers."""

    name = "podman"

    def __init__(
        self,
        state_dir: Path,
        *,
        resolver: SecretResolver,
        podman: str = "podman",
        root: Path | None = None,
        runroot: Path | None = None,
        storage_driver: str | None = None,
        containers_conf: Path | None = None,
        interpreter: Path | None = None,
        host: str = "127.0.0.1",
        log_max_bytes: int = 10 * 1024 * 1024,
        port_range: tuple[int, int] | None = None,
    ) -> None:
        self._state = state_dir.resolve()
        self._owner = str(self._state)
        self._resolver = resolver
        self._host = host
        self._log_max = log_max_bytes
        self._port_range = port_range
        self._interpreter = interpreter or Path(
            sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}"
        )
        self._prefix = Path(os.path.realpath(sys.base_prefix))
        self._base = [podman]
        if root is not None:
            self._base += ["--root", str(root)]
        if runroot is not None:
            if len(str(runroot)) > 50:  # podman 4.3 refuses longer ones with an opaque error
                raise ConfigError(
                    f"podman's runroot {runroot} is longer than 50 characters",
                    hint="choose a shorter path, e.g. under /run or /tmp",
                )
            # libpod's own run state (the ``alive`` file that detects a reboot, exit
            # files, attach sockets) goes with it: by default it is /run/libpod for
            # every storage on the host, which a `podman system reset` of any of
            # them deletes under the others ("open /run/libpod/alive: no such file").
            self._base += ["--runroot", str(runroot), "--tmpdir", str(runroot / "libpod")]
        if storage_driver is not None:
            self._base += ["--storage-driver", storage_driver]
        if containers_conf is None:
            containers_conf = self._state / "run" / "podman" / "containers.conf"
            if not containers_conf.exists():
                containers_conf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                containers_conf.write_text(CONTAINERS_CONF, encoding="utf-8")
        self._conf = containers_conf

    # --- running podman ------------------------------------------------------------------

    def _podman(
        self, *args: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "CONTAINERS_CONF": str(self._conf), **(env or {})}
        try:
            result = subprocess.run(  # noqa: S603 - argv assembled here, no shell
                [*self._base, *args],
                capture_output=True,
                text=True,
                env=environ,
                timeout=120,
                check=False,
            )
        except FileNotFoundError:
            raise Permanent(
                "podman is not installed",
                hint="install podman and runc, or use the process runtime",
            ) from None
        except subprocess.TimeoutExpired:
            raise Temporary(f"podman {args[0]} did not answer in 120 s", delay=5.0) from None
        if check and result.returncode != 0:
            message = result.stderr.strip().splitlines()[-1:] or ["(no message)"]
            raise Permanent(f"podman {args[0]} failed: {message[0]}")
        return result

    # --- create --------------------------------------------------------------------------

    def create(self, spec: LaunchSpec, count: int) -> builtins.list[Instance]:
        if count < 0:
            raise InvalidInput("count must be >= 0")
        if spec.image is None:
            raise InvalidInput(
                "the podman runtime runs OCI layouts; this launch spec has none",
                hint="the artifacts store provides the layout of every artifact",
            )
        image = self._pull(spec.image)
        resolved = self._resolver.resolve(spec.secrets)
        versions = {item.binding.name: item.version for item in resolved}
        values = {item.binding.name: item.value.reveal() for item in resolved}
        made: builtins.list[Instance] = []
        try:
            for _ in range(count):
                made.append(self._run(spec, image, values, versions))
        except BaseException:
            for instance in made:
                with contextlib.suppress(Exception):
                    self.destroy(instance.id, drain_timeout=0)
            raise
        return made

    def _pull(self, image: ImageRef) -> str:
        """Import the layout into podman's storage; return the image id.

        podman names an image pulled from ``oci:DIR`` after DIR's path, and
        refuses the pull when that path is not a valid image name (an uppercase
        letter, a component starting with ``.`` such as ``.kiln``, a trailing
        ``_``). So the layout is pulled through a symlink with a plain name.
        """
        alias = _alias_dir() / f"kiln-oci-{secrets.token_hex(8)}"
        alias.mkdir(mode=0o700)
        try:
            (alias / "layout").symlink_to(image.layout.resolve())
            source = f"oci:{alias / 'layout'}:{image.reference}"
            return self._podman("pull", "--quiet", source).stdout.strip()
        finally:
            shutil.rmtree(alias, ignore_errors=True)  # removes the link, never its target

    def _run(
        self,
        spec: LaunchSpec,
        image: str,
        values: Mapping[str, str],
        versions: Mapping[str, int | None],
    ) -> Instance:
        instance = InstanceId.new(spec.service, spec.environment, secrets.token_hex(4))
        taken = {i.port for i in self.list() if i.port}
        port = portpick.pick(self._host, taken=taken, port_range=self._port_range)
        env = launch.environment(
            spec,
            instance,
            owner=self._owner,
            host="0.0.0.0",  # noqa: S104 - inside the container's own network namespace
            port=spec.port,
            scratch="/tmp",  # noqa: S108 - the container's private tmpfs
            pythonpath="/deps",
            secrets=values,
            base=BASE_ENV,
        )
        args = ["run", "--detach", "--name", instance.value, "--read-only"]
        args += ["--cap-drop", "all", "--security-opt", "no-new-privileges"]
        args += ["--publish", f"{self._host}:{port}:{spec.port}", "--workdir", "/app"]
        args += ["--log-driver", "k8s-file", "--log-opt", f"max-size={self._log_max}"]
        if spec.limits.memory:
            args += ["--memory", spec.limits.memory]
        if spec.limits.cpus:
            args += ["--cpus", f"{spec.limits.cpus:g}"]
        labels = {
            **spec.labels(instance),
            OWNER: self._owner,
            HEALTH: spec.health_path,
            SECRETS: _secret_label(versions),
        }
        for key, value in sorted(labels.items()):
            args += ["--label", f"{key}={value}"]
        for name, value in sorted(env.items()):
            if name in values:
                args += ["--env", name]  # a secret: podman reads it from its environment
            else:
                args += ["--env", f"{name}={value}"]
        args += ["--volume", "/usr:/usr:ro"]
        for top in ("/lib", "/lib64"):
            if Path(top).exists():
                args += ["--volume", f"{os.path.realpath(top)}:{top}:ro"]
        args += ["--volume", f"{self._prefix}:{self._prefix}:ro"]
        args += [image, *launch.argv(spec.command, interpreter=str(self._interpreter))]
        self._podman(*args, env={name: env[name] for name in values})
        return self._find(instance)

    # --- observe -------------------------------------------------------------------------

    def _containers(self) -> builtins.list[dict[str, Any]]:
        out = self._podman("ps", "--all", "--filter", f"label={INSTANCE}", "--format", "json")
        try:
            data = json.loads(out.stdout or "[]")
        except ValueError as exc:
            raise Permanent(f"podman ps printed something that is not JSON: {exc}") from None
        return data if isinstance(data, builtins.list) else []

    def _to_instance(self, container: Mapping[str, Any]) -> Instance | None:
        labels = container.get("Labels") or {}
        try:
            instance = InstanceId(labels.get(INSTANCE, ""))
        except InvalidInput:
            return None
        port = 0
        for mapping in container.get("Ports") or []:
            port = int(mapping.get("host_port") or 0)
        ours = labels.get(OWNER) == self._owner
        running = container.get("State") == "running"
        state = State.ORPHAN if not ours else State.RUNNING if running else State.DEAD
        detail = str(container.get("Status", ""))
        if not running and container.get("ExitCode") is not None:
            detail = f"exited with code {container['ExitCode']}"
        return Instance(
            id=instance,
            state=state,
            labels={k: v for k, v in labels.items() if k in LABEL_KEYS},
            host=self._host,
            port=port,
            pid=int(container.get("Pid") or 0) or None,
            created=str(container.get("CreatedAt", "")),
            secrets=_secret_versions(labels.get(SECRETS, "")),
            detail=detail,
        )

    def list(self, selector: Mapping[str, str] | None = None) -> builtins.list[Instance]:
        wanted = selector or {}
        found = [self._to_instance(c) for c in self._containers()]
        return [i for i in found if i is not None and matches(i.labels, wanted)]

    def _find(self, instance: InstanceId) -> Instance:
        for candidate in self.list({INSTANCE: instance.value}):
            return candidate
        raise NotFound(f"no instance {instance}", hint="see `kiln instances list`")

    def _health_path(self, instance: InstanceId) -> str:
        out = self._podman(
            "inspect", "--format", "{{json .Config.Labels}}", instance.value, check=False
        )
        with contextlib.suppress(ValueError):
            labels = json.loads(out.stdout or "{}")
            if isinstance(labels, dict) and labels.get(HEALTH):
                return str(labels[HEALTH])
        return "/healthz"

    def health(self, instance: InstanceId, *, timeout: float = 1.0) -> HealthResult:
        current = self._find(instance)
        if current.state is not State.RUNNING:
            return Unhealthy(instance, f"not running: {current.detail}")
        return probe(
            instance, current.host, current.port, self._health_path(instance), timeout=timeout
        )

    def wait_ready(
        self, instances: Sequence[InstanceId], *, timeout: float, interval: float = 0.02
    ) -> dict[InstanceId, HealthResult]:
        known = {i: self._find(i) for i in instances}
        paths = {i: self._health_path(i) for i in instances}

        def look(instance: InstanceId, round_: int) -> tuple[str, int, str] | str:
            # Asking podman costs tens of ms; look at the container every 25 rounds.
            if round_ % 25 == 0:
                known[instance] = self._find(instance)
            current = known[instance]
            if current.state is not State.RUNNING:
                return current.detail
            return current.host, current.port, paths[instance]

        return poll_ready(instances, timeout=timeout, interval=interval, look=look)

    def logs(self, instance: InstanceId, *, tail: int = 100) -> builtins.list[str]:
        # No --tail: podman 4.3's k8s-file reader prints an empty line for
        # --tail N when the log has fewer than N lines. The file is bounded by
        # max-size, so reading it whole is fine.
        result = self._podman("logs", instance.value, check=False)
        if result.returncode != 0:
            raise NotFound(f"no logs for instance {instance}", hint="see `kiln instances list`")
        return (result.stdout + result.stderr).splitlines()[-tail:] if tail else []

    def recover(self, *, drain_timeout: float = 2.0) -> Recovery:
        """Adopt our running containers; podman itself is the record.

        Exited containers of ours stay listed as ``dead`` until healed, so their
        exit code and logs remain readable. Containers with kiln labels but
        another owner are never touched: they may belong to another state
        directory sharing this podman storage.
        """
        mine = [i for i in self.list() if i.state is State.RUNNING]
        return Recovery(tuple(sorted(i.id.value for i in mine)), (), ())

    # --- destroy -------------------------------------------------------------------------

    def destroy(self, instance: InstanceId, *, drain_timeout: float) -> Decommissioned:
        started = time.monotonic()
        self._find(instance)
        seconds = max(0, math.ceil(drain_timeout))
        self._podman("stop", "--time", str(seconds), instance.value, check=False)
        out = self._podman(
            "inspect", "--format", "{{.State.ExitCode}}", instance.value, check=False
        )
        code = int(out.stdout.strip()) if out.stdout.strip().lstrip("-").isdigit() else None
        self._podman("rm", "--force", instance.value, check=False)
        elapsed = time.monotonic() - started
        graceful = code is not None and code != 128 + 9
        return Decommissioned(instance, graceful, elapsed, code)
