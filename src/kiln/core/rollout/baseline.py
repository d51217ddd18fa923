"""The fresh baseline: new instances of the stable release, started beside a canary.

A canary is judged against a *baseline*. With ``baseline: fresh`` that baseline is
a group of fresh instances of the stable artifact and config, as many as the
canary has, started together with it and sent the same weight, so both sides
are equally new and see the same traffic mix (docs/analysis.md).

The group is the stable release run in another *role*, and it carries its own
name, ``<stable release id>+baseline``, everywhere a release name goes: the
instances' ``dev.kiln.release`` label, the route table and so the routers'
per-release metrics. Nothing downstream needs to know about roles: both routers
serve it as one more weighted group and count it separately, the rollout
executor groups instances by that label, and once no rollout owns the
environment the drift planner sees instances of an undeclared release and
removes them. Only the executor maps the name back to the stable release to
launch it. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from kiln.core.rollout.steps import Analyze, Step

SUFFIX = "+baseline"


def name_for(stable: str) -> str:
    """The route-table and label name of ``stable``'s fresh baseline group."""
    return stable + SUFFIX


def stable_of(name: str) -> str | None:
    """The stable release a baseline group runs; None when ``name`` is no baseline."""
    if name.endswith(SUFFIX) and len(name) > len(SUFFIX):
        return name[: -len(SUFFIX)]
    return None


def share(weight: int) -> int:
    """The baseline's weight beside a canary at ``weight``: the same, as long as the
    stable release has that much to give (above 50% it gets what is left, and the
    judges weigh each side by its own traffic)."""
    return max(0, min(weight, 100 - weight))


def last_analysis(steps: Sequence[Step]) -> int | None:
    """Index of the last analysis step: the baseline lives until it is done."""
    found = [i for i, step in enumerate(steps) if isinstance(step, Analyze)]
    return found[-1] if found else None
