"""Gate ``rules``: CEL expressions over the resolved environment.

Each ``ConfigRule`` is a CEL expression (https://github.com/google/cel-spec),
evaluated with cel-python (``celpy``) against two variables:

``env``
    ``name``, ``replicas``, ``strategy`` (``{kind: "canary" | "blueGreen"}``),
    ``runtime`` (``{provider, sandbox, memory, cpus}``), ``router``
    (``{kind, listen, sticky}``), ``gates`` (list of names),
    ``approvals`` (``{required, approvers}``), ``self_heal``, ``allow_unsigned``,
    ``service`` (the service's name, when known).
``config``
    The environment's ``config`` map, values as typed in kiln.yaml.

A rule passes only when it evaluates to the boolean ``true``. A compile error,
an evaluation error (such as reading a key that is absent without ``has()``)
or a non-boolean result fails the gate with the rule named; nothing raises.
Rules whose ``environments`` list excludes this environment are skipped; if no
rule applies at all, the gate fails (an empty rule set never passes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.verdict import Verdict, combine
from kiln.core.spec.models import ConfigRule, Environment, GateName


def activation(environment: Environment, service: str = "") -> dict[str, Any]:
    """The plain-data view of an environment that CEL rules read."""
    runtime = environment.runtime
    router = environment.router
    env: dict[str, Any] = {
        "name": environment.name,
        "replicas": environment.replicas,
        "strategy": {"kind": environment.strategy.kind},
        "runtime": {
            "provider": runtime.provider.value,
            "sandbox": runtime.sandbox,
            "memory": runtime.memory or "",
            "cpus": float(runtime.cpus or 0.0),
        },
        "router": {"kind": router.kind.value, "listen": router.listen, "sticky": router.sticky},
        "gates": [g.value for g in environment.gates],
        "approvals": {
            "required": environment.approvals.required,
            "approvers": list(environment.approvals.approvers),
        },
        "self_heal": environment.self_heal,
        "allow_unsigned": environment.allow_unsigned,
        "service": service,
    }
    return {"env": env, "config": dict(environment.config)}


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    ok: bool
    problem: str = ""


def check_rule(rule: ConfigRule, data: Mapping[str, Any]) -> RuleOutcome:
    """Compile and evaluate one rule; every failure becomes a problem string."""
    cel = celpy.Environment()
    try:
        program = cel.program(cel.compile(rule.expr))
    except Exception as exc:  # celpy raises its own CELParseError and lark's errors
        return RuleOutcome(rule.name, False, f"does not compile: {_first_line(exc)}")
    try:
        # Annotated as a CEL value, but some celpy versions return the error object.
        result: object = program.evaluate({k: json_to_cel(v) for k, v in data.items()})
    except Exception as exc:  # CELEvalError and friends; never let one escape
        return RuleOutcome(rule.name, False, f"evaluation error: {_first_line(exc)}")
    if isinstance(result, CELEvalError):
        return RuleOutcome(rule.name, False, f"evaluation error: {_first_line(result)}")
    if not isinstance(result, celtypes.BoolType):
        return RuleOutcome(
            rule.name, False, f"returned {type(result).__name__} {result!r}, not a boolean"
        )
    if not bool(result):
        return RuleOutcome(rule.name, False, rule.message or f"{rule.expr} is false")
    return RuleOutcome(rule.name, True)


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def applicable(rules: Sequence[ConfigRule], environment: str) -> list[ConfigRule]:
    return [r for r in rules if not r.environments or environment in r.environments]


@dataclass(frozen=True)
class RulesGate:
    rules: tuple[ConfigRule, ...]
    environment: Environment
    service: str = ""

    @property
    def name(self) -> GateName:
        return GateName.RULES

    def evaluate(self, inputs: GateInputs) -> Verdict:
        rules = applicable(self.rules, self.environment.name)
        if not rules:
            return combine(
                [
                    f"no rule applies to environment {self.environment.name}; "
                    "an empty rule set never passes"
                ],
                [],
            )
        data = activation(self.environment, self.service)
        outcomes = [check_rule(rule, data) for rule in rules]
        reasons = [f"rule {o.rule}: {o.problem}" for o in outcomes if not o.ok]
        details = {
            "evaluated": [o.rule for o in outcomes],
            "skipped": [r.name for r in self.rules if r not in rules],
        }
        return combine(reasons, [], details)
