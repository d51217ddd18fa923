"""CEL config rules over the resolved environment."""

from __future__ import annotations

import pytest

from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.rules import RulesGate, activation
from kiln.core.gates.verdict import Failed, Passed
from kiln.core.spec.models import ConfigRule, Environment

from .conftest import spec_of

NO_DEBUG = ConfigRule(
    name="no-debug-in-prod",
    expr="!(has(config.DEBUG) && config.DEBUG == true)",
    message="DEBUG must be off in prod",
    environments=["prod"],
)
HA = ConfigRule(name="ha", expr="env.replicas >= 2", environments=["prod"])


def _env(**data: object) -> Environment:
    spec = spec_of({"service": "hello", "environments": [{"name": "prod", **data}]})
    return spec.environments[0]


def _run(env: Environment, *rules: ConfigRule) -> Passed | Failed:
    verdict = RulesGate(rules, env, "hello").evaluate(GateInputs())
    assert isinstance(verdict, Passed | Failed)
    return verdict


def test_rules_pass_on_a_compliant_prod() -> None:
    verdict = _run(_env(replicas=3, config={"DEBUG": False}), NO_DEBUG, HA)
    assert isinstance(verdict, Passed)
    assert verdict.details["evaluated"] == ["no-debug-in-prod", "ha"]


def test_debug_in_prod_fails_with_the_rule_and_its_message() -> None:
    verdict = _run(_env(replicas=1, config={"DEBUG": True}), NO_DEBUG, HA)
    assert isinstance(verdict, Failed)
    assert verdict.reasons == (
        "rule no-debug-in-prod: DEBUG must be off in prod",
        "rule ha: env.replicas >= 2 is false",
    )


def test_rules_for_other_environments_are_skipped_but_none_applying_fails() -> None:
    staging_only = ConfigRule(name="s", expr="false", environments=["staging"])
    verdict = _run(_env(replicas=2), staging_only, HA)
    assert isinstance(verdict, Passed) and verdict.details["skipped"] == ["s"]
    nothing = _run(_env(), staging_only)
    assert (
        isinstance(nothing, Failed) and "no rule applies to environment prod" in nothing.reasons[0]
    )


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("env.replicas >=", "does not compile"),
        ("config.DEBUG == true", "evaluation error: no such member"),
        ("1 / 0 == 1", "evaluation error"),
        ("env.replicas + 1", "returned IntType"),
        ("'yes'", "not a boolean"),
    ],
)
def test_broken_rules_fail_with_the_rule_named_never_raise(expr: str, problem: str) -> None:
    verdict = _run(_env(), ConfigRule(name="broken", expr=expr))
    assert isinstance(verdict, Failed)
    assert verdict.reasons[0].startswith("rule broken: ")
    assert problem in verdict.reasons[0]


def test_the_activation_exposes_strategy_runtime_and_router() -> None:
    env = _env(
        replicas=2,
        strategy={"blueGreen": {}},
        runtime={"provider": "podman"},
        config={"LOG_LEVEL": "info", "WORKERS": 4},
    )
    data = activation(env, "hello")
    assert data["env"]["strategy"] == {"kind": "blueGreen"}
    assert data["env"]["runtime"]["provider"] == "podman"
    assert data["config"] == {"LOG_LEVEL": "info", "WORKERS": 4}
    rule = ConfigRule(
        name="shape",
        expr='env.strategy.kind == "blueGreen" && env.runtime.provider == "podman" '
        '&& config.WORKERS > 2 && env.service == "hello" && "signed" in env.gates',
    )
    assert isinstance(_run(env, rule), Passed)
