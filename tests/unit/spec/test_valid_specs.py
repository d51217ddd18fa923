"""Valid specs load, and the defaults make a ten-line spec enough."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.core.spec import models
from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import (
    GateName,
    Judge,
    MetricSourceKind,
    ProviderKind,
    RouterKind,
    SecretSource,
    ServiceSpec,
    Severity,
    dump,
)

ROOT = Path(__file__).resolve().parents[3]

TEN_LINES = b"""\
service: hello
build:
  command: ["python", "app.py"]
  requirements: requirements.txt
environments:
  - name: dev
  - name: prod
    replicas: 2
    strategy: {canary: {steps: [{setWeight: 20}, {analysis: {duration: 30s}}, {setWeight: 100}]}}
"""

# Every enum and variant set to a non-default value: strict models must still
# accept the YAML strings for them.
EVERYTHING = b"""\
apiVersion: kiln.dev/v1
service: shop
build:
  context: app
  include: ["**/*.py"]
  exclude: [".git/**"]
  requirements: requirements.lock
  command: [python, -m, shop]
  port: 8080
  env: {LOG_LEVEL: info}
  version: 1.2.3
tests:
  - {name: unit, command: [pytest, -q]}
  - name: smoke
    kind: integration
    command: [python, smoke.py]
    timeout: 2m
    matrix: {DB: [sqlite, postgres]}
policies:
  vulnerabilities:
    threshold: critical
    ignore:
      - {id: GHSA-xxxx, reason: not reachable, expires: 2030-01-31}
  licenses: {allow: [MIT, Apache-2.0], deny: [GPL-3.0-only]}
  rules:
    - {name: prod-replicas, expr: "env.replicas >= 2", environments: [prod]}
  performance: {maxP95Ratio: 1.5, duration: 15s}
  naming: {tagPattern: "^shop:.*$"}
environments:
  - name: staging
    strategy:
      blueGreen:
        previewPort: 9001
        autoPromotionSeconds: null
        prePromotionAnalysis: {duration: 1m, metrics: [p95]}
        bake: 5m
    analysis:
      metrics:
        - name: p95
          source: prometheus
          query: "histogram_quantile(0.95, x)"
          judge: threshold
          max: 0.5
    runtime: {provider: podman, sandbox: none, memory: 256m, cpus: 0.5}
    router: {kind: embedded, listen: "127.0.0.1:8081", sticky: true}
    secrets:
      DB_PASSWORD: {from: env, key: SHOP_DB_PASSWORD}
      API_TOKEN: {key: shop/api, version: 3}
    gates: [signed, tests, vulnerabilities]
  - name: prod
    replicas: 3
    strategy:
      canary:
        steps:
          - setWeight: 10
          - pause: {duration: 1h30m}
          - analysis: {duration: 250ms, metrics: [errors]}
          - pause: {}
          - setWeight: 100
    analysis:
      metrics:
        - {name: errors, metric: error-rate, judge: comparative, falsePositiveRate: 0.05}
    health: {path: /ready, interval: 100ms, timeout: 2s, startTimeout: 1m}
    rollback: {progressDeadline: 20m, stepDeadline: 5m}
    approvals: {required: 1, approvers: [alice, bob]}
    config: {WORKERS: 4, RATIO: 0.5, DEBUG: false, NAME: shop}
    selfHeal: false
    router: {kind: haproxy, haproxy: {binary: /usr/sbin/haproxy, threads: 2}}
promotion: [staging, prod]
settings: {stateDir: /var/lib/kiln, controller: "http://127.0.0.1:7000"}
"""


def test_the_ten_line_spec_from_the_readme_is_valid() -> None:
    spec = load_spec(TEN_LINES)
    assert spec.service == "hello"
    assert spec.path_order == ["dev", "prod"]
    prod = spec.environment("prod")
    assert prod.replicas == 2
    assert prod.strategy.kind == "canary"
    assert prod.strategy.canary is not None
    assert [s.set_weight for s in prod.strategy.canary.steps] == [20, None, 100]


def test_the_readme_still_shows_the_ten_line_spec() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert TEN_LINES.decode() in readme


def test_the_example_service_spec_is_valid() -> None:
    spec = load_spec((ROOT / "examples" / "hello" / "kiln.yaml").read_bytes())
    assert spec.service == "hello"
    assert spec.path_order == ["dev", "staging", "prod"]


def test_a_spec_with_only_a_service_gets_the_documented_defaults() -> None:
    spec = load_spec(b"service: hello\n")
    (dev,) = spec.environments
    assert dev.name == "dev"
    assert dev.replicas == 1
    assert dev.strategy.canary is not None
    assert [s.set_weight for s in dev.strategy.canary.steps] == [20, None, 50, None, 100]
    assert dev.gates == [GateName.SIGNED, GateName.TESTS]
    assert dev.health.path == "/healthz"
    assert dev.health.interval == 0.05
    assert [m.name for m in dev.analysis.metrics] == ["error-rate"]
    assert dev.analysis.metrics[0].judge is Judge.SEQUENTIAL
    assert dev.rollback.on_health_failure and dev.rollback.on_analysis_failure
    assert dev.runtime.provider is ProviderKind.PROCESS
    assert dev.router.kind is RouterKind.EMBEDDED
    assert dev.router.listen == "127.0.0.1:0"
    assert dev.allow_unsigned is False
    assert spec.build.command == ["python", "app.py"]
    assert spec.build.port == 8000
    assert ".kiln/**" in spec.build.exclude
    assert spec.policies.vulnerabilities.threshold is Severity.HIGH


def test_every_field_and_variant_loads_from_yaml_strings() -> None:
    spec = load_spec(EVERYTHING)
    staging, prod = spec.environments
    assert staging.runtime.provider is ProviderKind.PODMAN
    assert staging.router.kind is RouterKind.EMBEDDED and staging.router.sticky
    assert prod.router.kind is RouterKind.HAPROXY
    assert prod.router.haproxy is not None
    assert (prod.router.haproxy.binary, prod.router.haproxy.threads) == ("/usr/sbin/haproxy", 2)
    assert staging.secrets["DB_PASSWORD"].source is SecretSource.ENV
    assert staging.secrets["API_TOKEN"].source is SecretSource.STORE
    assert staging.analysis.metrics[0].source is MetricSourceKind.PROMETHEUS
    assert staging.strategy.blue_green is not None
    assert staging.strategy.blue_green.auto_promotion_seconds is None
    assert staging.strategy.blue_green.bake == 300.0
    assert spec.tests[1].kind is models.TestKind.INTEGRATION
    assert spec.tests[1].timeout == 120.0
    assert spec.policies.vulnerabilities.threshold is Severity.CRITICAL
    # An unquoted YAML date is kept as its ISO text.
    assert spec.policies.vulnerabilities.ignore[0].expires == "2030-01-31"
    assert prod.strategy.canary is not None
    pause = prod.strategy.canary.steps[1].pause
    assert pause is not None and pause.duration == 5400.0
    assert prod.strategy.canary.steps[2].analysis is not None
    assert prod.strategy.canary.steps[2].analysis.duration == 0.25
    assert prod.config == {"WORKERS": 4, "RATIO": 0.5, "DEBUG": False, "NAME": "shop"}


def test_dumping_and_reloading_gives_the_same_spec() -> None:
    import json

    spec = load_spec(EVERYTHING)
    again = load_spec(json.dumps(dump(spec)))
    assert again == spec


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"\xef\xbb\xbfservice: hello\n", id="utf-8-bom"),
        pytest.param(b"service: hello # the name\n\n\n", id="comments-and-blank-lines"),
        pytest.param(b"service: hello\r\nbuild:\r\n  port: 9000\r\n", id="crlf"),
    ],
)
def test_encodings_and_line_endings(document: bytes) -> None:
    assert load_spec(document).service == "hello"


def test_yaml_merge_keys_are_expanded() -> None:
    spec = load_spec(
        b"service: hello\nenvironments:\n  - &base {name: dev, replicas: 3}\n"
        b"  - <<: *base\n    name: prod\n"
    )
    assert [(e.name, e.replicas) for e in spec.environments] == [("dev", 3), ("prod", 3)]


def test_snake_case_names_still_work_from_python() -> None:
    spec = ServiceSpec(service="hello", environments=[{"name": "dev", "self_heal": False}])  # type: ignore[list-item]
    assert spec.environments[0].self_heal is False


def test_a_spec_built_in_python_obeys_the_cross_field_rules() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="duplicate environment name 'dev'"):
        ServiceSpec(service="hello", environments=[{"name": "dev"}, {"name": "dev"}])  # type: ignore[list-item]


def test_router_latency_metrics_are_accepted_under_haproxy() -> None:
    # HAProxy's request log feeds per-release latency histograms (haproxy_metrics).
    spec = load_spec(
        b"service: shop\nenvironments:\n  - name: prod\n    router: {kind: haproxy}\n"
        b"    analysis: {metrics: [{name: p95, metric: latency-p95, max: 0.2}]}\n"
    )
    prod = spec.environment("prod")
    assert prod.router.kind is RouterKind.HAPROXY
    assert [m.name for m in prod.analysis.metrics] == ["p95"]


def test_sticky_cookies_are_accepted_under_haproxy() -> None:
    # Mapped on HAProxy's runtime maps and release backends (haproxy_rules).
    spec = load_spec(
        b"service: shop\nenvironments:\n  - name: prod\n    router: {kind: haproxy, sticky: true}\n"
    )
    prod = spec.environment("prod")
    assert prod.router.kind is RouterKind.HAPROXY and prod.router.sticky
