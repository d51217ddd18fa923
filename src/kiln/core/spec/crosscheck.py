"""Rules of ``kiln.yaml`` that span several fields: unique names and references.

Field-level checks live in the pydantic models, but pydantic runs a model's own
validator only once every field of that model is valid, so a duplicate
environment would stay hidden until an unrelated typo is fixed. These rules
therefore work on plain data (dicts, lists, strings), tolerate any malformed
shape by skipping what they cannot read, and are run twice:

* by the loader over the raw YAML tree, so cross-field mistakes are reported
  together with field errors, each at its exact position;
* by the models' validators over their own dump, so a ``ServiceSpec`` built in
  Python obeys the same rules. Both produce identical ``Finding`` values, which
  lets the loader drop the repeats.

Pure: no I/O, no pydantic.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]

# What a spec gets when it names none (the defaults of models.Analysis and
# models.ServiceSpec.environments); references are checked against these then.
DEFAULT_METRICS = ("error-rate",)
DEFAULT_ENVIRONMENTS = ("dev",)


@dataclass(frozen=True)
class Finding:
    """One cross-field mistake; ``loc`` is relative to the data that was checked."""

    loc: Loc
    message: str
    hint: str = ""
    expected: str = ""


def service_findings(tree: object) -> list[Finding]:
    """Every rule over a whole spec document, environments included."""
    if not isinstance(tree, Mapping):
        return []
    findings = spec_level_findings(tree)
    for index, env in _items(tree.get("environments")):
        findings.extend(
            Finding(("environments", index, *f.loc), f.message, f.hint, f.expected)
            for f in environment_findings(env)
        )
    return findings


def spec_level_findings(tree: Mapping[str, object]) -> list[Finding]:
    """Rules that relate top-level lists: names unique, references resolvable."""
    findings: list[Finding] = []
    envs = _named(tree.get("environments"))
    findings += _duplicates("environments", "environment", envs)
    findings += _duplicates("tests", "test", _named(tree.get("tests")))
    findings += _shared_ports(tree.get("environments"))
    known = list(dict.fromkeys(name for _, name in envs))
    if "environments" not in tree:
        known = list(DEFAULT_ENVIRONMENTS)
    promotion = tree.get("promotion")
    if isinstance(promotion, list):
        listed = [(i, n) for i, n in enumerate(promotion) if isinstance(n, str)]
        for index, name in listed:
            if known and name not in known:
                findings.append(_unknown(("promotion", index), "environment", name, known))
        findings += _repeats(("promotion",), "environment", listed, "promotion")
    policies = tree.get("policies")
    if isinstance(policies, Mapping):
        rules = policies.get("rules")
        findings += [
            Finding(("policies", *f.loc), f.message, f.hint)
            for f in _duplicates("rules", "rule", _named(rules))
        ]
        for index, rule in _items(rules):
            targets = rule.get("environments")
            if not isinstance(targets, list) or not known:
                continue
            for j, name in enumerate(targets):
                if isinstance(name, str) and name not in known:
                    loc = ("policies", "rules", index, "environments", j)
                    findings.append(_unknown(loc, "environment", name, known))
    return findings


def environment_findings(env: Mapping[str, object]) -> list[Finding]:
    """Rules inside one environment: gates, metric names and references, approvals."""
    findings: list[Finding] = []
    gates = env.get("gates")
    if isinstance(gates, list):
        if not gates:
            findings.append(
                Finding(
                    ("gates",),
                    "`gates` is empty; an empty list never passes",
                    hint="list at least one gate, e.g. `gates: [signed]`",
                )
            )
        listed = [(i, g) for i, g in enumerate(gates) if isinstance(g, str)]
        findings += _repeats(("gates",), "gate", listed, "gates")
    declared = list(DEFAULT_METRICS)
    analysis = env.get("analysis")
    if isinstance(analysis, Mapping) and "metrics" in analysis:
        metrics = _named(analysis.get("metrics"))
        declared = list(dict.fromkeys(name for _, name in metrics))
        findings += [
            Finding(("analysis", *f.loc), f.message, f.hint)
            for f in _duplicates("metrics", "metric", metrics)
        ]
    for loc, refs in _metric_references(env):
        for j, name in enumerate(refs):
            if isinstance(name, str) and name not in declared:
                findings.append(_unknown((*loc, j), "metric", name, declared, where="analysis"))
    approvals = env.get("approvals")
    if isinstance(approvals, Mapping):
        required = approvals.get("required")
        approvers = approvals.get("approvers")
        if (
            isinstance(required, int)
            and not isinstance(required, bool)
            and isinstance(approvers, list)
            and approvers
            and required > len(approvers)
        ):
            findings.append(
                Finding(
                    ("approvals", "required"),
                    f"{required} approvals required but only {len(approvers)} "
                    f"{'approver is' if len(approvers) == 1 else 'approvers are'} listed",
                    hint="lower `required` or add approvers",
                )
            )
    preview = _preview_address(env)
    listen = _listen_address(env)
    if preview is not None and preview == listen:
        findings.append(
            Finding(
                PREVIEW_PORT,
                f"previewPort {preview[1]} is the environment's own listener port (router.listen)",
                hint="choose another port: the preview listener opens beside the main one",
            )
        )
    return findings + router_findings(env)


PREVIEW_PORT: Loc = ("strategy", "blueGreen", "previewPort")
DEFAULT_LISTEN_HOST = "127.0.0.1"  # models.RouterSpec.listen's default host


def _listen_address(env: Mapping[str, object]) -> tuple[str, int] | None:
    """The (host, port) the environment's router listens on, when the spec fixes it."""
    router = env.get("router")
    listen = router.get("listen") if isinstance(router, Mapping) else None
    if not isinstance(listen, str):
        return None
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return None  # port 0: kiln picks a free one, which never collides
    return host, int(port)


def _preview_address(env: Mapping[str, object]) -> tuple[str, int] | None:
    """The (host, port) of the blue/green preview listener: the router's host."""
    strategy = env.get("strategy")
    blue_green = strategy.get("blueGreen") if isinstance(strategy, Mapping) else None
    port = blue_green.get("previewPort") if isinstance(blue_green, Mapping) else None
    if not isinstance(port, int) or isinstance(port, bool):
        return None
    router = env.get("router")
    listen = router.get("listen") if isinstance(router, Mapping) else None
    host = listen.rpartition(":")[0] if isinstance(listen, str) else DEFAULT_LISTEN_HOST
    return host, port


def _shared_ports(environments: object) -> list[Finding]:
    """A preview port that another environment's preview or main listener already uses
    on the same host: one of the two routers could never bind it."""
    used: dict[tuple[str, int], str] = {}
    for _, env in _items(environments):
        listen = _listen_address(env)
        name = env.get("name")
        if listen is not None and isinstance(name, str):
            used.setdefault(listen, f"the listener port of environment {name!r}")
    findings: list[Finding] = []
    for index, env in _items(environments):
        preview = _preview_address(env)
        name = env.get("name")
        if preview is None or not isinstance(name, str) or preview == _listen_address(env):
            continue
        owner = used.get(preview)
        if owner is not None:
            findings.append(
                Finding(
                    ("environments", index, *PREVIEW_PORT),
                    f"previewPort {preview[1]} is already {owner}",
                    hint="give each environment its own preview port",
                )
            )
        else:
            used[preview] = f"the preview port of environment {name!r}"
    return findings


def router_findings(env: Mapping[str, object]) -> list[Finding]:
    """What the chosen router cannot do, refused here rather than half-applied later."""
    router = env.get("router")
    if not isinstance(router, Mapping):
        return []
    kind = router.get("kind", "embedded")
    if not isinstance(kind, str):
        return []
    # Everything the spec can ask of a router, HAProxy maps too (sticky cookies on
    # runtime maps, kiln.adapters.traffic.haproxy_rules): only misplaced settings stay.
    if kind.lower() != "haproxy" and router.get("haproxy") is not None:
        return [
            Finding(
                ("router", "haproxy"),
                f"`haproxy` settings apply to router kind haproxy, not {kind}",
                hint="set `kind: haproxy` or remove the `haproxy` block",
            )
        ]
    return []


def _metric_references(env: Mapping[str, object]) -> Iterator[tuple[Loc, list[object]]]:
    """Every ``metrics:`` list of an analysis step, with its location."""
    strategy = env.get("strategy")
    if not isinstance(strategy, Mapping):
        return
    canary = strategy.get("canary")
    if isinstance(canary, Mapping):
        for index, step in _items(canary.get("steps")):
            analysis = step.get("analysis")
            if isinstance(analysis, Mapping) and isinstance(analysis.get("metrics"), list):
                loc: Loc = ("strategy", "canary", "steps", index, "analysis", "metrics")
                yield loc, list(analysis["metrics"])
    blue_green = strategy.get("blueGreen")
    if isinstance(blue_green, Mapping):
        for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
            analysis = blue_green.get(key)
            if isinstance(analysis, Mapping) and isinstance(analysis.get("metrics"), list):
                yield ("strategy", "blueGreen", key, "metrics"), list(analysis["metrics"])


def _items(value: object) -> Iterator[tuple[int, Mapping[str, object]]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                yield index, item


def _named(value: object) -> list[tuple[int, str]]:
    """(index, name) of every item of a list that has a string ``name``."""
    named: list[tuple[int, str]] = []
    for index, item in _items(value):
        name = item.get("name")
        if isinstance(name, str):
            named.append((index, name))
    return named


def _duplicates(key: str, noun: str, named: Sequence[tuple[int, str]]) -> list[Finding]:
    first: dict[str, int] = {}
    findings: list[Finding] = []
    for index, name in named:
        if name in first:
            findings.append(
                Finding(
                    (key, index, "name"),
                    f"duplicate {noun} name {name!r}",
                    hint=f"{key}[{first[name]}] is already named {name!r}; names must be unique",
                )
            )
        else:
            first[name] = index
    return findings


def _repeats(loc: Loc, noun: str, listed: Sequence[tuple[int, str]], where: str) -> list[Finding]:
    first: dict[str, int] = {}
    findings: list[Finding] = []
    for index, value in listed:
        if value in first:
            findings.append(
                Finding(
                    (*loc, index),
                    f"{noun} {value!r} is listed twice in `{where}`",
                    hint=f"remove one; it is already at {where}[{first[value]}]",
                )
            )
        else:
            first[value] = index
    return findings


def _unknown(
    loc: Loc, noun: str, name: str, known: Sequence[str], *, where: str = "environments"
) -> Finding:
    guess = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    choices = ", ".join(known)
    hint = f"did you mean `{guess[0]}`? " if guess else ""
    hint += f"{noun}s declared under `{where}`: {choices}"
    return Finding(loc, f"unknown {noun} {name!r}", hint=hint, expected=f"one of {choices}")
