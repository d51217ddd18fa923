"""Typed models of ``kiln.yaml``.

Keys are camelCase in YAML (``autoPromotionSeconds``) and snake_case in Python.
Every model forbids unknown keys, so a typo is an error, never silently ignored.
Defaults are chosen so a ten-line spec deploys a Python web app; each default's
reason is in the field description, which also feeds the JSON Schema and the
generated reference in ``docs/reference/kiln-yaml.md``.

Variants follow Argo Rollouts' shape: a strategy is a mapping with exactly one of
``blueGreen`` or ``canary``; a canary step has exactly one of ``setWeight``,
``pause`` or ``analysis``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from kiln.core.spec.durations import format_duration, parse_duration

API_VERSION = "kiln.dev/v1"

_NAME = r"^[a-z][a-z0-9-]{0,62}$"
_ENV_KEY = r"^[A-Za-z_][A-Za-z0-9_]*$"

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 250ms, 30s, 5m, 1h30m; a bare number is seconds.",
        }
    ),
]
Name = Annotated[str, Field(pattern=_NAME)]
Percent = Annotated[int, Field(ge=0, le=100)]


def _relative_path(value: str) -> str:
    if value.startswith("/"):
        raise ValueError("a path relative to the spec's directory, not an absolute path")
    if ".." in value.split("/"):
        raise ValueError("a path inside the spec's directory (no '..')")
    return value


RelativePath = Annotated[str, AfterValidator(_relative_path)]


class Model(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=False,  # lax: YAML strings must become enums; numbers never become strings
    )


# --- build ---------------------------------------------------------------------------


class Build(Model):
    context: RelativePath = Field(
        ".", description="Directory the application layer is built from, relative to kiln.yaml."
    )
    include: list[str] = Field(
        default_factory=lambda: ["**/*"],
        description="Glob patterns of files to put in the application layer.",
    )
    exclude: list[str] = Field(
        default_factory=lambda: [
            ".git/**",
            ".kiln/**",
            "**/__pycache__/**",
            "**/*.pyc",
            ".venv/**",
        ],
        description="Glob patterns left out; the defaults drop VCS, caches and kiln's own state.",
    )
    requirements: RelativePath | None = Field(
        None,
        description=(
            "Pinned Python dependencies (requirements.txt with hashes, or a lock exported "
            "to that format). Detected automatically when omitted."
        ),
    )
    command: list[str] = Field(
        default_factory=lambda: ["python", "app.py"],
        min_length=1,
        description="The command an instance runs, relative to the application root.",
    )
    port: int = Field(
        8000,
        ge=1,
        le=65535,
        description="The port the app listens on; kiln passes the real one in $PORT.",
    )
    env: dict[Annotated[str, Field(pattern=_ENV_KEY)], str] = Field(
        default_factory=dict,
        description="Environment baked into the image config (never secrets).",
    )
    version: str | None = Field(
        None, description="Version for the human tag; defaults to the nearest git tag or 0.0.0."
    )


# --- tests ---------------------------------------------------------------------------


class TestKind(StrEnum):
    UNIT = "unit"
    INTEGRATION = "integration"
    E2E = "e2e"
    PERFORMANCE = "performance"


class TestSpec(Model):
    name: Name
    kind: TestKind = Field(
        TestKind.UNIT,
        description=(
            "unit runs inside the artifact's filesystem; the others run against a live "
            "ephemeral instance whose URL is in $KILN_TARGET_URL."
        ),
    )
    command: list[str] = Field(..., min_length=1)
    timeout: Duration = Field(300.0, description="A test that runs longer fails.")
    matrix: dict[Annotated[str, Field(pattern=_ENV_KEY)], list[str]] = Field(
        default_factory=dict,
        description="Config variables to vary; the test runs once per combination, in parallel.",
    )


# --- policies ------------------------------------------------------------------------


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class VulnIgnore(Model):
    id: str = Field(..., min_length=1, description="Advisory id (OSV id or alias).")
    reason: str = Field(..., min_length=1, description="Why it is acceptable; recorded.")
    expires: str = Field(
        ...,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Date (YYYY-MM-DD) after which the ignore stops applying.",
    )


class VulnerabilityPolicy(Model):
    database: RelativePath | None = Field(
        None, description="OSV database: a directory of OSV JSON files or one JSON file."
    )
    threshold: Severity = Field(
        Severity.HIGH, description="Findings at or above this severity fail the gate."
    )
    ignore: list[VulnIgnore] = Field(default_factory=list)


class LicensePolicy(Model):
    allow: list[str] = Field(default_factory=list, description="SPDX ids allowed.")
    deny: list[str] = Field(default_factory=list, description="SPDX ids refused.")


class ConfigRule(Model):
    name: Name
    expr: str = Field(
        ...,
        min_length=1,
        description="CEL expression over `env` (name, replicas) and `config`; true passes.",
    )
    message: str = Field("", description="Shown when the rule fails.")
    environments: list[Name] = Field(
        default_factory=list, description="Where the rule applies; empty means everywhere."
    )


class PerformanceBudget(Model):
    max_p95_ratio: float = Field(
        1.25, gt=0, description="Fail if p95 latency exceeds the last good release's by this ratio."
    )
    min_throughput_ratio: float = Field(
        0.8, gt=0, description="Fail if throughput falls below this ratio of the last good."
    )
    duration: Duration = Field(10.0, description="Length of each side-by-side load run.")


class NamingPolicy(Model):
    tag_pattern: str = Field(
        r"^[a-z][a-z0-9-]*:\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?-g[0-9a-f]{7,}$",
        description="Regular expression every human tag must match.",
    )

    @model_validator(mode="after")
    def _compiles(self) -> NamingPolicy:
        try:
            re.compile(self.tag_pattern)
        except re.error as exc:
            raise ValueError(f"tagPattern is not a valid regular expression: {exc}") from exc
        return self


class Policies(Model):
    vulnerabilities: VulnerabilityPolicy = Field(default_factory=VulnerabilityPolicy)
    licenses: LicensePolicy = Field(default_factory=LicensePolicy)
    rules: list[ConfigRule] = Field(default_factory=list)
    performance: PerformanceBudget = Field(default_factory=PerformanceBudget)
    naming: NamingPolicy = Field(default_factory=NamingPolicy)


# --- environments --------------------------------------------------------------------


class Judge(StrEnum):
    THRESHOLD = "threshold"
    COMPARATIVE = "comparative"
    SEQUENTIAL = "sequential"


class MetricSourceKind(StrEnum):
    ROUTER = "router"
    PROMETHEUS = "prometheus"


class RouterMetric(StrEnum):
    ERROR_RATE = "error-rate"
    LATENCY_P50 = "latency-p50"
    LATENCY_P95 = "latency-p95"
    LATENCY_P99 = "latency-p99"
    REQUEST_RATE = "request-rate"


class AnalysisMetric(Model):
    name: Name
    source: MetricSourceKind = MetricSourceKind.ROUTER
    metric: RouterMetric | None = Field(
        None, description="For source: router, which per-release figure to judge."
    )
    query: str | None = Field(
        None, description="For source: prometheus, a PromQL query; {{release}} is substituted."
    )
    judge: Judge = Field(
        Judge.SEQUENTIAL,
        description="sequential (anytime-valid, stops early), comparative (Mann-Whitney U "
        "against a fresh baseline) or threshold (Argo/Flagger semantics).",
    )
    max: float | None = Field(None, description="threshold: fail above this value.")
    min: float | None = Field(None, description="threshold: fail below this value.")
    interval: Duration = Field(5.0, description="threshold: time between measurements.")
    count: int = Field(
        0, ge=0, description="threshold: measurements to take; 0 = until the step ends."
    )
    failure_limit: int = Field(0, ge=0, description="threshold: failed measurements tolerated.")
    false_positive_rate: float = Field(
        0.01, gt=0, lt=0.5, description="sequential/comparative: accepted chance of a false alarm."
    )
    min_samples: int = Field(
        50, ge=1, description="Fewer observations than this is 'inconclusive', never 'pass'."
    )

    @model_validator(mode="after")
    def _source_fields(self) -> AnalysisMetric:
        if self.source is MetricSourceKind.PROMETHEUS and not self.query:
            raise ValueError("a metric with source: prometheus needs a query")
        if self.source is MetricSourceKind.ROUTER and self.query:
            raise ValueError("query applies to source: prometheus only; use metric: for router")
        if self.judge is Judge.THRESHOLD and self.max is None and self.min is None:
            raise ValueError("a threshold judge needs max, min or both")
        return self


def _default_metrics() -> list[AnalysisMetric]:
    return [AnalysisMetric(name="error-rate", metric=RouterMetric.ERROR_RATE)]


class Analysis(Model):
    metrics: list[AnalysisMetric] = Field(
        default_factory=_default_metrics,
        description="What to judge; by default the router's error rate, sequential judge.",
    )


class AnalysisStep(Model):
    duration: Duration = Field(60.0, description="Upper bound; sequential judges may stop early.")
    metrics: list[Name] = Field(
        default_factory=list, description="Names from the environment's analysis; empty = all."
    )


class Pause(Model):
    duration: Duration | None = Field(None, description="Omit to wait for `kiln promote`.")


class CanaryStep(Model):
    set_weight: Percent | None = Field(None, description="Percent of traffic to the canary.")
    pause: Pause | None = None
    analysis: AnalysisStep | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        chosen = [k for k in ("set_weight", "pause", "analysis") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("a canary step has exactly one of setWeight, pause or analysis")
        return self


def _default_steps() -> list[CanaryStep]:
    return [
        CanaryStep(set_weight=20),
        CanaryStep(analysis=AnalysisStep(duration=30.0)),
        CanaryStep(set_weight=50),
        CanaryStep(analysis=AnalysisStep(duration=30.0)),
        CanaryStep(set_weight=100),
    ]


class Canary(Model):
    steps: list[CanaryStep] = Field(default_factory=_default_steps, min_length=1)


class BlueGreen(Model):
    preview_header: str = Field(
        "x-kiln-preview", description="Requests with this header set reach the new release."
    )
    preview_port: int | None = Field(
        None, ge=1, le=65535, description="A second listener that always routes to the preview."
    )
    auto_promotion_seconds: int | None = Field(
        0,
        ge=0,
        description=(
            "Promote this long after the preview is healthy; null waits for `kiln promote`."
        ),
    )
    pre_promotion_analysis: AnalysisStep | None = None
    post_promotion_analysis: AnalysisStep | None = None
    bake: Duration = Field(
        0.0,
        description="How long the old release stays warm after promotion, for instant rollback.",
    )


class Strategy(Model):
    blue_green: BlueGreen | None = None
    canary: Canary | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        if (self.blue_green is None) == (self.canary is None):
            raise ValueError("a strategy has exactly one of blueGreen or canary")
        return self

    @property
    def kind(self) -> Literal["blueGreen", "canary"]:
        return "blueGreen" if self.blue_green is not None else "canary"


class Health(Model):
    path: str = Field("/healthz", pattern=r"^/", description="Readiness path, polled over HTTP.")
    interval: Duration = Field(
        0.05, description="Poll interval while starting; tight so deploys are not tick-bound."
    )
    timeout: Duration = Field(1.0, description="One probe's timeout.")
    success_threshold: int = Field(1, ge=1)
    failure_threshold: int = Field(3, ge=1)
    start_timeout: Duration = Field(30.0, description="An instance not ready by then is replaced.")
    max_replacements: int = Field(3, ge=0, description="Replacements before the rollout fails.")


class Rollback(Model):
    on_health_failure: bool = True
    on_analysis_failure: bool = True
    progress_deadline: Duration = Field(
        600.0, description="The whole rollout must finish in this time or it is rolled back."
    )
    step_deadline: Duration | None = Field(
        None, description="A single step (other than an indefinite pause) must finish in this time."
    )


class GateName(StrEnum):
    SIGNED = "signed"
    TESTS = "tests"
    VULNERABILITIES = "vulnerabilities"
    LICENSES = "licenses"
    RULES = "rules"
    PERFORMANCE = "performance"
    NAMING = "naming"


class Approvals(Model):
    required: int = Field(0, ge=0, description="Signed approvals needed before promotion.")
    approvers: list[str] = Field(
        default_factory=list, description="Identities (key ids or names in trust.yaml) allowed."
    )


class SecretSource(StrEnum):
    STORE = "store"
    ENV = "env"
    FILE = "file"


class SecretRef(Model):
    source: SecretSource = Field(SecretSource.STORE, alias="from")
    key: str = Field(..., min_length=1, description="Store key, variable name, or file path.")
    version: int | None = Field(None, ge=1, description="Store version; latest when omitted.")


class ProviderKind(StrEnum):
    PROCESS = "process"
    PODMAN = "podman"
    KUBERNETES = "kubernetes"


class Runtime(Model):
    provider: ProviderKind = ProviderKind.PROCESS
    sandbox: Literal["auto", "bubblewrap", "none"] = Field(
        "auto", description="process provider: bubblewrap when available (auto)."
    )
    memory: str | None = Field(None, pattern=r"^\d+[kmg]?$", description="Limit, e.g. 256m.")
    cpus: float | None = Field(None, gt=0)


class RouterKind(StrEnum):
    EMBEDDED = "embedded"
    HAPROXY = "haproxy"
    KUBERNETES = "kubernetes"


class RouterSpec(Model):
    kind: RouterKind = RouterKind.EMBEDDED
    listen: str = Field(
        "127.0.0.1:0",
        pattern=r"^[^\s:]+:\d{1,5}$",
        description="host:port of the environment's listener; loopback unless you say so.",
    )
    sticky: bool = Field(False, description="Keep a client on one release by cookie.")


ConfigValue = str | int | float | bool


class Environment(Model):
    name: Name
    replicas: int = Field(1, ge=0, le=1000)
    strategy: Strategy = Field(
        default_factory=lambda: Strategy(canary=Canary()),
        description="How traffic moves to a new release; canary by default.",
    )
    health: Health = Field(default_factory=Health)
    analysis: Analysis = Field(default_factory=Analysis)
    rollback: Rollback = Field(default_factory=Rollback)
    gates: list[GateName] = Field(
        default_factory=lambda: [GateName.SIGNED, GateName.TESTS],
        description="Gates an artifact must pass to enter; an empty list is refused, not passed.",
    )
    approvals: Approvals = Field(default_factory=Approvals)
    config: dict[Annotated[str, Field(pattern=_ENV_KEY)], ConfigValue] = Field(
        default_factory=dict, description="Plain config, passed to instances as variables."
    )
    secrets: dict[Annotated[str, Field(pattern=_ENV_KEY)], SecretRef] = Field(
        default_factory=dict, description="Secret references; values never leave the instance."
    )
    runtime: Runtime = Field(default_factory=Runtime)
    router: RouterSpec = Field(default_factory=RouterSpec)
    self_heal: bool = Field(True, description="Replace drifted instances automatically.")
    allow_unsigned: bool = Field(
        False,
        description="Deploy artifacts without trusted signatures; each such deploy is recorded.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Environment:
        if not self.gates:
            raise ValueError("gates is empty; list at least one gate (an empty list never passes)")
        if len(set(self.gates)) != len(self.gates):
            raise ValueError("gates lists the same gate twice")
        if self.approvals.required > len(self.approvals.approvers) and self.approvals.approvers:
            raise ValueError("approvals.required is larger than the number of approvers")
        return self


class Settings(Model):
    state_dir: str | None = Field(None, description="Where kiln keeps state; default .kiln/ here.")
    controller: str | None = Field(
        None, description="Controller address: unix:PATH or http://127.0.0.1:PORT."
    )
    trust_policy: str | None = Field(None, description="Path of trust.yaml.")


class ServiceSpec(Model):
    api_version: Literal["kiln.dev/v1"] = Field("kiln.dev/v1", description="Spec format version.")
    service: Name = Field(..., description="The service's name: lowercase, digits and dashes.")
    build: Build = Field(default_factory=Build)
    tests: list[TestSpec] = Field(default_factory=list)
    policies: Policies = Field(default_factory=Policies)
    environments: list[Environment] = Field(
        default_factory=lambda: [Environment(name="dev")],
        min_length=1,
        description="The promotion path, in order.",
    )
    promotion: list[Name] | None = Field(
        None, description="Order of promotion; defaults to the order of environments."
    )
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="after")
    def _names(self) -> ServiceSpec:
        seen: set[str] = set()
        for index, env in enumerate(self.environments):
            if env.name in seen:
                raise _at(("environments", index, "name"), f"duplicate environment {env.name!r}")
            seen.add(env.name)
        tests: set[str] = set()
        for index, test in enumerate(self.tests):
            if test.name in tests:
                raise _at(("tests", index, "name"), f"duplicate test {test.name!r}")
            tests.add(test.name)
        for index, name in enumerate(self.promotion or []):
            if name not in seen:
                raise _at(("promotion", index), f"unknown environment {name!r}")
        return self

    def environment(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)

    @property
    def path_order(self) -> list[str]:
        return list(self.promotion) if self.promotion else [e.name for e in self.environments]


class LocatedValueError(ValueError):
    """A cross-field error that knows which field it is about.

    Pydantic reports model-validator errors at the model's own location; the loader
    reads ``.loc`` to point at the exact key instead.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _at(loc: tuple[str | int, ...], message: str) -> LocatedValueError:
    return LocatedValueError(loc, message)


def dump(spec: ServiceSpec) -> dict[str, Any]:
    """The spec as plain data with camelCase keys and defaults filled in."""
    return spec.model_dump(mode="json", by_alias=True)
