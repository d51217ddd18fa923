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

import datetime as dt
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
    Strict,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from kiln.core.spec import crosscheck
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

# The models are strict (YAML `"5"` is not the integer 5), but strict pydantic only
# accepts enum *members* from Python input, so every enum field relaxes that one
# rule: the YAML string "canary" must still become the member.
LAX = Strict(False)
Percent = Annotated[int, Field(ge=0, le=100)]


def _relative_path(value: str) -> str:
    if value.startswith("/"):
        raise ValueError("a path relative to the spec's directory, not an absolute path")
    if ".." in value.split("/"):
        raise ValueError("a path inside the spec's directory (no '..')")
    return value


RelativePath = Annotated[str, AfterValidator(_relative_path)]


def _iso_date(value: object) -> object:
    # YAML reads an unquoted 2025-01-31 as a date; the field keeps the ISO text.
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class Model(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        # Strict: YAML `replicas: "3"`, `selfHeal: yes` or `port: 80.0` are mistakes to
        # report, not values to coerce. Enum fields opt out (LAX) so "canary" loads.
        strict=True,
    )


# --- build ---------------------------------------------------------------------------


class Build(Model):
    """How the artifact is built: the app layer, its Python dependencies, how it starts."""

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
    """Where a test runs."""

    UNIT = "unit"
    INTEGRATION = "integration"
    E2E = "e2e"
    PERFORMANCE = "performance"


class TestSpec(Model):
    """A test run against the built artifact (never the source tree); its result is attested."""

    name: Name = Field(..., description="Unique among the tests.")
    kind: Annotated[TestKind, LAX] = Field(
        TestKind.UNIT,
        description=(
            "unit runs inside the artifact's filesystem; the others run against a live "
            "ephemeral instance whose URL is in $KILN_TARGET_URL."
        ),
    )
    command: list[str] = Field(..., min_length=1, description="The test command, as a list.")
    timeout: Duration = Field(300.0, description="A test that runs longer fails.")
    matrix: dict[Annotated[str, Field(pattern=_ENV_KEY)], list[str]] = Field(
        default_factory=dict,
        description="Config variables to vary; the test runs once per combination, in parallel.",
    )


# --- policies ------------------------------------------------------------------------


class Severity(StrEnum):
    """Vulnerability severity, lowest to highest."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class VulnIgnore(Model):
    """An accepted advisory, with a reason and an expiry date."""

    id: str = Field(..., min_length=1, description="Advisory id (OSV id or alias).")
    reason: str = Field(..., min_length=1, description="Why it is acceptable; recorded.")
    expires: Annotated[str, BeforeValidator(_iso_date)] = Field(
        ...,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Date (YYYY-MM-DD) after which the ignore stops applying.",
    )


class VulnerabilityPolicy(Model):
    """The vulnerability gate: the OSV database and the failing severity."""

    database: RelativePath | None = Field(
        None, description="OSV database: a directory of OSV JSON files or one JSON file."
    )
    threshold: Annotated[Severity, LAX] = Field(
        Severity.HIGH, description="Findings at or above this severity fail the gate."
    )
    ignore: list[VulnIgnore] = Field(
        default_factory=list, description="Accepted advisories; each expires."
    )


class LicensePolicy(Model):
    """The license gate over the SBOM."""

    allow: list[str] = Field(default_factory=list, description="SPDX ids allowed.")
    deny: list[str] = Field(default_factory=list, description="SPDX ids refused.")


class ConfigRule(Model):
    """A CEL rule over an environment's resolved config."""

    name: Name = Field(..., description="Unique; named in the gate's verdict.")
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
    """The performance gate: a side-by-side load run against the last good release."""

    max_p95_ratio: float = Field(
        1.25, gt=0, description="Fail if p95 latency exceeds the last good release's by this ratio."
    )
    min_throughput_ratio: float = Field(
        0.8, gt=0, description="Fail if throughput falls below this ratio of the last good."
    )
    duration: Duration = Field(10.0, description="Length of each side-by-side load run.")
    rounds: int = Field(
        3, ge=1, le=20, description="Load runs per side, alternated; the gate compares medians."
    )
    concurrency: int = Field(4, ge=1, le=256, description="Concurrent connections of the load.")
    max_p95_ms: float | None = Field(
        None,
        gt=0,
        description=(
            "Absolute p95 limit in ms, checked whenever set; with no last good release it is "
            "the only latency limit."
        ),
    )
    min_throughput_rps: float | None = Field(
        None,
        gt=0,
        description="Absolute throughput floor in requests per second, checked whenever set.",
    )


class NamingPolicy(Model):
    """The naming gate over human tags."""

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
    """Policies the gates evaluate."""

    vulnerabilities: VulnerabilityPolicy = Field(default_factory=VulnerabilityPolicy)
    licenses: LicensePolicy = Field(default_factory=LicensePolicy)
    rules: list[ConfigRule] = Field(
        default_factory=list, description="CEL rules over each environment's config."
    )
    performance: PerformanceBudget = Field(default_factory=PerformanceBudget)
    naming: NamingPolicy = Field(default_factory=NamingPolicy)


# --- environments --------------------------------------------------------------------


class Judge(StrEnum):
    """How an analysis metric is judged."""

    THRESHOLD = "threshold"
    COMPARATIVE = "comparative"
    SEQUENTIAL = "sequential"


class MetricSourceKind(StrEnum):
    """Where metric samples come from."""

    ROUTER = "router"
    PROMETHEUS = "prometheus"


class RouterMetric(StrEnum):
    """A per-release figure the router measures."""

    ERROR_RATE = "error-rate"
    LATENCY_P50 = "latency-p50"
    LATENCY_P95 = "latency-p95"
    LATENCY_P99 = "latency-p99"
    REQUEST_RATE = "request-rate"


class AnalysisMetric(Model):
    """One metric to judge during analysis."""

    name: Name = Field(
        ..., description="Unique within the environment; analysis steps refer to it."
    )
    source: Annotated[MetricSourceKind, LAX] = Field(
        MetricSourceKind.ROUTER, description="router (per-release figures, no setup) or prometheus."
    )
    metric: Annotated[RouterMetric, LAX] | None = Field(
        None, description="For source: router, which per-release figure to judge."
    )
    query: str | None = Field(
        None, description="For source: prometheus, a PromQL query; {{release}} is substituted."
    )
    judge: Annotated[Judge, LAX] = Field(
        Judge.SEQUENTIAL,
        description="sequential (anytime-valid, stops early), comparative (Mann-Whitney U "
        "against the baseline, see canary.baseline) or threshold (Argo/Flagger semantics).",
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
    """The metrics an environment's analysis steps judge."""

    metrics: list[AnalysisMetric] = Field(
        default_factory=_default_metrics,
        description="What to judge; by default the router's error rate, sequential judge.",
    )


class AnalysisStep(Model):
    """Judge the new release for a while; a failure rolls back."""

    duration: Duration = Field(60.0, description="Upper bound; sequential judges may stop early.")
    metrics: list[Name] = Field(
        default_factory=list, description="Names from the environment's analysis; empty = all."
    )


class Pause(Model):
    """Hold the rollout for a time, or until `kiln promote`."""

    duration: Duration | None = Field(None, description="Omit to wait for `kiln promote`.")


class CanaryStep(Model):
    """One canary step: exactly one of setWeight, pause or analysis."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    set_weight: Percent | None = Field(None, description="Percent of traffic to the canary.")
    pause: Pause | None = Field(None, description="Hold for a duration, or until promoted.")
    analysis: AnalysisStep | None = Field(None, description="Judge the canary for a while.")

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        chosen = [
            alias
            for name, alias in (
                ("set_weight", "setWeight"),
                ("pause", "pause"),
                ("analysis", "analysis"),
            )
            if getattr(self, name) is not None
        ]
        if not chosen:
            raise LocatedValueError(
                (),
                "a canary step is empty",
                expected="one of setWeight, pause or analysis",
                hint="for example `- setWeight: 20`, `- pause: {duration: 1m}` "
                "or `- analysis: {duration: 30s}`",
            )
        if len(chosen) > 1:
            raise LocatedValueError(
                (),
                f"a canary step has both {chosen[0]} and {chosen[1]}",
                expected="exactly one of setWeight, pause or analysis per step",
                hint="split it into separate steps, in the order they should run",
            )
        return self


def _default_steps() -> list[CanaryStep]:
    return [
        CanaryStep(set_weight=20),
        CanaryStep(analysis=AnalysisStep(duration=30.0)),
        CanaryStep(set_weight=50),
        CanaryStep(analysis=AnalysisStep(duration=30.0)),
        CanaryStep(set_weight=100),
    ]


class BaselineKind(StrEnum):
    """What a canary's analysis compares the canary with."""

    STABLE = "stable"  # the stable release's own (warm) instances
    FRESH = "fresh"  # fresh instances of the stable release, started beside the canary


class Canary(Model):
    """Shift traffic in steps, judging the canary between them."""

    steps: list[CanaryStep] = Field(
        default_factory=_default_steps,
        min_length=1,
        description="In order; the default moves 20% then 50% then 100%, judging in between.",
    )
    # The default stays `stable`: a fresh baseline costs as many extra instances as
    # the canary has, and their start-up, for every rollout (docs/analysis.md).
    baseline: Annotated[BaselineKind, LAX] = Field(
        BaselineKind.STABLE,
        description=(
            "What analysis compares the canary with: `stable` (the warm stable instances) "
            "or `fresh` (as many new instances of the stable release as the canary has, "
            "started with it and sent the same weight)."
        ),
    )

    @model_validator(mode="after")
    def _fresh_needs_analysis(self) -> Canary:
        if self.baseline is BaselineKind.FRESH and not any(
            step.analysis is not None for step in self.steps
        ):
            raise LocatedValueError(
                ("baseline",),
                "`baseline: fresh` but no canary step is an analysis",
                expected="at least one `- analysis: {...}` step, or `baseline: stable`",
                hint="a fresh baseline only exists to be compared with during analysis steps",
            )
        return self


class BlueGreen(Model):
    """Start the new release beside the old, preview it, then switch all traffic at once."""

    preview_header: str = Field(
        "x-kiln-preview", description="Requests with this header set reach the new release."
    )
    preview_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=(
            "A second listener on the router's host that serves only the new release "
            "while the preview is open (closed after promotion or rollback)."
        ),
    )
    auto_promotion_seconds: int | None = Field(
        0,
        ge=0,
        description=(
            "Promote this long after the preview is healthy; null waits for `kiln promote`."
        ),
    )
    pre_promotion_analysis: AnalysisStep | None = Field(
        None, description="Judge the preview before the switch; a failure keeps the old release."
    )
    post_promotion_analysis: AnalysisStep | None = Field(
        None, description="Judge after the switch, while the old release is still warm."
    )
    bake: Duration = Field(
        0.0,
        description="How long the old release stays warm after promotion, for instant rollback.",
    )


class Strategy(Model):
    """How traffic moves to a new release: exactly one of blueGreen or canary."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    blue_green: BlueGreen | None = Field(None, description="Preview, then switch at once.")
    canary: Canary | None = Field(None, description="Shift traffic in steps.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        if self.blue_green is None and self.canary is None:
            raise LocatedValueError(
                (),
                "`strategy` names no strategy",
                expected="one of blueGreen or canary",
                hint="write `strategy: {canary: {}}` or `strategy: {blueGreen: {}}`",
            )
        if self.blue_green is not None and self.canary is not None:
            raise LocatedValueError(
                (),
                "`strategy` has both blueGreen and canary",
                expected="exactly one of blueGreen or canary",
                hint="an environment uses one strategy; keep one of the two",
            )
        return self

    @property
    def kind(self) -> Literal["blueGreen", "canary"]:
        return "blueGreen" if self.blue_green is not None else "canary"


class Health(Model):
    """Readiness checks that gate every new instance."""

    path: str = Field("/healthz", pattern=r"^/", description="Readiness path, polled over HTTP.")
    interval: Duration = Field(
        0.05, description="Poll interval while starting; tight so deploys are not tick-bound."
    )
    timeout: Duration = Field(1.0, description="One probe's timeout.")
    success_threshold: int = Field(1, ge=1, description="Consecutive passes that make ready.")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failures that make an instance unhealthy."
    )
    start_timeout: Duration = Field(30.0, description="An instance not ready by then is replaced.")
    max_replacements: int = Field(3, ge=0, description="Replacements before the rollout fails.")


class Rollback(Model):
    """When a rollout is rolled back automatically."""

    on_health_failure: bool = Field(True, description="Roll back when instances fail health.")
    on_analysis_failure: bool = Field(True, description="Roll back when analysis fails.")
    progress_deadline: Duration = Field(
        600.0, description="The whole rollout must finish in this time or it is rolled back."
    )
    step_deadline: Duration | None = Field(
        None, description="A single step (other than an indefinite pause) must finish in this time."
    )


class GateName(StrEnum):
    """A gate an artifact must pass to enter an environment."""

    SIGNED = "signed"
    TESTS = "tests"
    VULNERABILITIES = "vulnerabilities"
    LICENSES = "licenses"
    RULES = "rules"
    PERFORMANCE = "performance"
    NAMING = "naming"


class Approvals(Model):
    """Signed human approvals required before promotion."""

    required: int = Field(0, ge=0, description="Signed approvals needed before promotion.")
    approvers: list[str] = Field(
        default_factory=list, description="Identities (key ids or names in trust.yaml) allowed."
    )


class SecretSource(StrEnum):
    """Where a secret's value is read from, at instance start only."""

    STORE = "store"
    ENV = "env"
    FILE = "file"


class SecretRef(Model):
    """A reference to a secret; the value never appears in specs, logs or the ledger."""

    source: Annotated[SecretSource, LAX] = Field(
        SecretSource.STORE, alias="from", description="store (kiln's secret store), env or file."
    )
    key: str = Field(..., min_length=1, description="Store key, variable name, or file path.")
    version: int | None = Field(None, ge=1, description="Store version; latest when omitted.")


class ProviderKind(StrEnum):
    """The runtime provider that creates instances."""

    PROCESS = "process"
    PODMAN = "podman"
    KUBERNETES = "kubernetes"


class Runtime(Model):
    """Where and how instances run."""

    provider: Annotated[ProviderKind, LAX] = Field(
        ProviderKind.PROCESS, description="process (no setup), podman or kubernetes."
    )
    sandbox: Literal["auto", "bubblewrap", "none"] = Field(
        "auto", description="process provider: bubblewrap when available (auto)."
    )
    network: Literal["isolated", "host"] = Field(
        "isolated",
        description="process sandbox: isolated (only its own port) or host (outbound allowed).",
    )
    memory: str | None = Field(None, pattern=r"^\d+[kmg]?$", description="Limit, e.g. 256m.")
    cpus: float | None = Field(None, gt=0, description="CPU limit in cores; none by default.")


class RouterKind(StrEnum):
    """The data plane that owns the environment's listener."""

    EMBEDDED = "embedded"
    HAPROXY = "haproxy"
    KUBERNETES = "kubernetes"


class HAProxySettings(Model):
    """For router kind haproxy: kiln generates HAProxy's config from these."""

    binary: str | None = Field(
        None,
        min_length=1,
        description="Path of the haproxy executable; default: haproxy on PATH.",
    )
    threads: int = Field(1, ge=1, le=64, description="HAProxy's nbthread.")


class RouterSpec(Model):
    """The environment's router: its listener and stickiness."""

    kind: Annotated[RouterKind, LAX] = Field(
        RouterKind.EMBEDDED, description="embedded (kiln router, no setup), haproxy or kubernetes."
    )
    listen: str = Field(
        "127.0.0.1:0",
        pattern=r"^[^\s:]+:\d{1,5}$",
        description="host:port of the environment's listener; loopback unless you say so.",
    )
    sticky: bool = Field(False, description="Keep a client on one release by cookie.")
    haproxy: HAProxySettings | None = Field(
        None, description="kind: haproxy only; omit to take the defaults."
    )


ConfigValue = str | int | float | bool


class Environment(Model):
    """One stage of the promotion path."""

    name: Name = Field(..., description="Unique; used in promotion, rules and commands.")
    replicas: int = Field(
        1, ge=0, le=1000, description="Instances per release; one is enough to start."
    )
    strategy: Strategy = Field(
        default_factory=lambda: Strategy(canary=Canary()),
        description="How traffic moves to a new release; canary by default.",
    )
    health: Health = Field(default_factory=Health)
    analysis: Analysis = Field(default_factory=Analysis)
    rollback: Rollback = Field(default_factory=Rollback)
    gates: list[Annotated[GateName, LAX]] = Field(
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
        _raise_first(crosscheck.environment_findings(self.model_dump(mode="json", by_alias=True)))
        return self


class Settings(Model):
    """Local settings; flags and KILN_* variables override them."""

    state_dir: str | None = Field(None, description="Where kiln keeps state; default .kiln/ here.")
    controller: str | None = Field(
        None, description="Controller address: unix:PATH or http://127.0.0.1:PORT."
    )
    trust_policy: str | None = Field(None, description="Path of trust.yaml.")


class ServiceSpec(Model):
    """kiln.yaml: the desired state of one service."""

    api_version: Literal["kiln.dev/v1"] = Field("kiln.dev/v1", description="Spec format version.")
    service: Name = Field(..., description="The service's name: lowercase, digits and dashes.")
    build: Build = Field(default_factory=Build)
    tests: list[TestSpec] = Field(
        default_factory=list, description="Tests run against the artifact before promotion."
    )
    policies: Policies = Field(default_factory=Policies)
    environments: list[Environment] = Field(
        default_factory=lambda: [Environment(name="dev")],
        min_length=1,
        description="The promotion path, in order. By default one environment, dev, "
        "with every default.",
    )
    promotion: list[Name] | None = Field(
        None, description="Order of promotion; defaults to the order of environments."
    )
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="after")
    def _names(self) -> ServiceSpec:
        _raise_first(crosscheck.spec_level_findings(self.model_dump(mode="json", by_alias=True)))
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

    def __init__(
        self, loc: tuple[str | int, ...], message: str, *, hint: str = "", expected: str = ""
    ) -> None:
        super().__init__(message)
        self.loc = loc
        self.hint = hint
        self.expected = expected


def _raise_first(findings: list[crosscheck.Finding]) -> None:
    # A validator can raise only one error; the loader's raw pass reports them all.
    if findings:
        first = findings[0]
        raise LocatedValueError(first.loc, first.message, hint=first.hint, expected=first.expected)


def dump(spec: ServiceSpec) -> dict[str, Any]:
    """The spec as plain data with camelCase keys and defaults filled in."""
    return spec.model_dump(mode="json", by_alias=True)
