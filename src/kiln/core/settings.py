"""Settings and where each value came from.

Precedence, highest first: command-line flags, ``KILN_*`` environment variables,
the ``settings:`` block of ``kiln.yaml``, then defaults. ``resolve`` is pure: the
caller passes the four layers in, so it is tested without touching the process
environment. ``kiln config`` shows each value with its origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kiln.errors import ConfigError


class Origin(StrEnum):
    FLAG = "flag"
    ENV = "env"
    SPEC = "kiln.yaml"
    DEFAULT = "default"


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str | None
    help: str


# The table of settings. A default's reason lives in its help text.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "state_dir", "KILN_STATE_DIR", None, "state directory; default .kiln/ beside kiln.yaml"
    ),
    Setting("controller", "KILN_CONTROLLER", None, "controller address; none starts one locally"),
    Setting("trust_policy", "KILN_TRUST_POLICY", None, "trust.yaml path; default beside kiln.yaml"),
    Setting("output", "KILN_OUTPUT", "text", "text or json for read commands"),
    Setting(
        "database",
        "KILN_DATABASE",
        None,
        "PostgreSQL DSN shared by controllers (leadership, desired state, ledger); none: state.db",
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Resolved:
    value: str | None
    origin: Origin


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Resolved]
    spec_dir: Path

    def get(self, name: str) -> str | None:
        return self.values[name].value

    @property
    def state_dir(self) -> Path:
        raw = self.get("state_dir")
        path = Path(raw) if raw else Path(".kiln")
        return path if path.is_absolute() else (self.spec_dir / path)

    @property
    def trust_policy(self) -> Path:
        raw = self.get("trust_policy")
        path = Path(raw) if raw else Path("trust.yaml")
        return path if path.is_absolute() else (self.spec_dir / path)


def resolve(
    *,
    flags: Mapping[str, str | None],
    environ: Mapping[str, str],
    spec: Mapping[str, str | None],
    spec_dir: Path,
) -> Settings:
    """Merge the four layers. Unknown names in ``flags`` or ``spec`` are a bug, not input."""
    for name in (*flags, *spec):
        if name not in _BY_NAME:
            raise ConfigError(f"unknown setting {name!r}")
    values: dict[str, Resolved] = {}
    for setting in SETTINGS:
        flag = flags.get(setting.name)
        if flag is not None:
            values[setting.name] = Resolved(flag, Origin.FLAG)
        elif environ.get(setting.env):
            values[setting.name] = Resolved(environ[setting.env], Origin.ENV)
        elif spec.get(setting.name) is not None:
            values[setting.name] = Resolved(spec[setting.name], Origin.SPEC)
        else:
            values[setting.name] = Resolved(setting.default, Origin.DEFAULT)
    output = values["output"].value
    if output not in {"text", "json"}:
        origin = values["output"].origin
        raise ConfigError(
            f"output must be text or json, got {output!r} (from {origin})",
            hint="use --output text or --output json",
        )
    return Settings(values=values, spec_dir=spec_dir)
