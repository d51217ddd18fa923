"""The drift domain: what is declared, what is observed, findings and actions.

Findings say *what* differs and why; actions say what heals it. Healing only
ever replaces: a drifted instance is never patched, a fresh one is created from
the declared release and the old one is destroyed once traffic left it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiln.core.runtime.model import Instance
from kiln.core.traffic.table import RouteTable

# --- what is declared and what is observed ---------------------------------------------


@dataclass(frozen=True)
class DeclaredRelease:
    id: str
    artifact: str
    config: str


@dataclass(frozen=True)
class Desired:
    """The truth: the spec's environment plus its declared release in ``DesiredState``.

    ``release`` is the pin when there is one, otherwise the stable release (a
    rollback or a pin changes it *before* the reconciler looks, so healing never
    undoes an operator's decision).
    """

    service: str
    environment: str
    replicas: int
    release: DeclaredRelease | None
    paused: bool = False
    rollout_in_progress: bool = False
    self_heal: bool = True
    # router.sticky: the declared table keeps a client on its release by cookie.
    sticky: bool = False


@dataclass(frozen=True)
class Observed:
    """What the provider, the router, the tree check and the secret store report.

    ``unhealthy``: instances that failed their readiness probe ``failureThreshold``
    times in a row, with the last reason (fewer failures are not drift yet).
    ``tampered``: artifact digest -> paths that differ in its unpacked tree.
    ``secrets``: secret variable name -> the store's current version, for
    bindings that follow the latest version. ``data_plane``: differences the
    router reads back from its live data plane (a weight set by hand on HAProxy).
    """

    instances: Sequence[Instance]
    table: RouteTable | None
    unhealthy: Mapping[str, str] = field(default_factory=dict)
    tampered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    secrets: Mapping[str, int] = field(default_factory=dict)
    data_plane: tuple[str, ...] = ()  # live data plane vs the table it was given


# --- findings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingInstance:
    release: str
    want: int
    have: int

    @property
    def reason(self) -> str:
        return f"release {self.release} declares {self.want} instances, {self.have} run"


@dataclass(frozen=True)
class DeadInstance:
    instance: str
    release: str
    detail: str

    @property
    def reason(self) -> str:
        return f"instance {self.instance} of {self.release} is {self.detail}"


@dataclass(frozen=True)
class ExtraInstance:
    instance: str
    release: str
    detail: str

    @property
    def reason(self) -> str:
        return f"instance {self.instance} ({self.release or 'no release label'}) {self.detail}"


@dataclass(frozen=True)
class WrongArtifact:
    instance: str
    expected: str
    found: str

    @property
    def reason(self) -> str:
        return (
            f"instance {self.instance} runs artifact {self.found or '(none)'}, "
            f"the declared release runs {self.expected}"
        )


@dataclass(frozen=True)
class WrongConfig:
    instance: str
    expected: str
    found: str

    @property
    def reason(self) -> str:
        return (
            f"instance {self.instance} runs config {self.found or '(none)'}, "
            f"the declared release has config {self.expected}"
        )


@dataclass(frozen=True)
class TamperedTree:
    artifact: str
    paths: tuple[str, ...]
    instances: tuple[str, ...]

    @property
    def reason(self) -> str:
        shown = ", ".join(self.paths[:5]) + (" ..." if len(self.paths) > 5 else "")
        return (
            f"the unpacked tree of {self.artifact} differs from the artifact in "
            f"{len(self.paths)} path(s): {shown}; used by {len(self.instances)} instance(s)"
        )


@dataclass(frozen=True)
class RouteDrift:
    expected: Mapping[str, Any]
    found: Mapping[str, Any] | None
    detail: str

    @property
    def reason(self) -> str:
        return f"the router's table differs from the declared split: {self.detail}"


@dataclass(frozen=True)
class Impostor:
    instance: str
    orphan: bool
    detail: str

    @property
    def reason(self) -> str:
        if self.orphan:
            return (
                f"instance {self.instance} carries this controller's labels and owner "
                f"marker but no record claims it (an orphan): {self.detail}"
            )
        return (
            f"process {self.instance} carries kiln's labels but kiln did not create it; "
            f"left alone for a human: {self.detail}"
        )


@dataclass(frozen=True)
class SecretVersionChanged:
    instance: str
    secret: str
    running: int
    current: int

    @property
    def reason(self) -> str:
        return (
            f"instance {self.instance} runs secret {self.secret} version {self.running}, "
            f"the store now holds version {self.current}"
        )


Finding = (
    MissingInstance
    | DeadInstance
    | ExtraInstance
    | WrongArtifact
    | WrongConfig
    | TamperedTree
    | RouteDrift
    | Impostor
    | SecretVersionChanged
)

KIND: dict[type, str] = {
    MissingInstance: "missing",
    DeadInstance: "dead",
    ExtraInstance: "extra",
    WrongArtifact: "wrong-artifact",
    WrongConfig: "wrong-config",
    TamperedTree: "tampered-tree",
    RouteDrift: "route",
    Impostor: "impostor",
    SecretVersionChanged: "secret-version",
}


def finding_kind(finding: Finding) -> str:
    if isinstance(finding, Impostor) and finding.orphan:
        return "orphan"
    return KIND[type(finding)]


# --- actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Replace:
    """Start a fresh instance of ``release``, move traffic, then destroy ``instance``."""

    instance: str
    release: str
    reason: str


@dataclass(frozen=True)
class Provision:
    release: str
    count: int


@dataclass(frozen=True)
class Destroy:
    instance: str
    reason: str


@dataclass(frozen=True)
class Reunpack:
    """Set the tampered tree of ``artifact`` aside so the next launch unpacks it afresh."""

    artifact: str


@dataclass(frozen=True)
class ReapplyRoute:
    """Install the declared split, built from the ready instances of ``release``."""

    release: str
    table: RouteTable | None


@dataclass(frozen=True)
class ReportOnly:
    reason: str


Action = Replace | Provision | Destroy | Reunpack | ReapplyRoute | ReportOnly


def action_kind(action: Action) -> str:
    return {
        Replace: "replace",
        Provision: "provision",
        Destroy: "destroy",
        Reunpack: "reunpack",
        ReapplyRoute: "reapply-route",
        ReportOnly: "report-only",
    }[type(action)]


def action_json(action: Action) -> dict[str, Any]:
    match action:
        case Replace(instance, release, reason):
            return {"kind": "replace", "instance": instance, "release": release, "reason": reason}
        case Provision(release, count):
            return {"kind": "provision", "release": release, "count": count}
        case Destroy(instance, reason):
            return {"kind": "destroy", "instance": instance, "reason": reason}
        case Reunpack(artifact):
            return {"kind": "reunpack", "artifact": artifact}
        case ReapplyRoute(release, _table):
            return {"kind": "reapply-route", "release": release}
        case ReportOnly(reason):
            return {"kind": "report-only", "reason": reason}
    raise AssertionError(action)  # pragma: no cover


def finding_json(finding: Finding) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": finding_kind(finding), "reason": finding.reason}
    for name, value in vars(finding).items():
        data[name] = list(value) if isinstance(value, tuple) else value
    return data


@dataclass(frozen=True)
class Plan:
    environment: str
    findings: tuple[Finding, ...]
    actions: tuple[Action, ...]
    note: str = ""

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "clean": self.clean,
            "note": self.note,
            "findings": [finding_json(f) for f in self.findings],
            "actions": [action_json(a) for a in self.actions],
        }
