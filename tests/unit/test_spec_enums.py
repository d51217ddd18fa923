"""Enumerated values arrive from YAML as strings and must load (a regression: strict
pydantic models refused every enum written in kiln.yaml)."""

from __future__ import annotations

from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import (
    GateName,
    Judge,
    MetricSourceKind,
    ProviderKind,
    RouterKind,
    SecretSource,
    Severity,
)
from kiln.core.spec.models import TestKind as Kind  # a Test* name would be collected by pytest

SPEC = """\
service: shop
tests:
  - {name: smoke, kind: e2e, command: [pytest]}
policies:
  vulnerabilities: {threshold: critical}
environments:
  - name: prod
    gates: [signed, tests, licenses]
    analysis:
      metrics:
        - {name: p95, source: prometheus, query: "q", judge: comparative}
    secrets: {DB: {from: env, key: DB_URL}}
    runtime: {provider: podman}
    router: {kind: haproxy}
"""


def test_every_enum_loads_from_its_yaml_string() -> None:
    spec = load_spec(SPEC)
    env = spec.environments[0]
    assert spec.tests[0].kind is Kind.E2E
    assert spec.policies.vulnerabilities.threshold is Severity.CRITICAL
    assert env.gates == [GateName.SIGNED, GateName.TESTS, GateName.LICENSES]
    metric = env.analysis.metrics[0]
    assert (metric.source, metric.judge) == (MetricSourceKind.PROMETHEUS, Judge.COMPARATIVE)
    assert env.secrets["DB"].source is SecretSource.ENV
    assert env.runtime.provider is ProviderKind.PODMAN
    assert env.router.kind is RouterKind.HAPROXY
