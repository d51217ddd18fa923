"""Gate ``naming``: human tags follow the policy, and name the service.

Every human tag must match ``policies.naming.tagPattern`` as a whole
(``re.fullmatch``, so a pattern without anchors cannot match a substring).
A tag of the form ``NAME:VERSION`` must name this service, and the service
name itself must follow the spec's name rule. No tag at all is
``Inconclusive``: the artifact has no human name to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.verdict import Inconclusive, Verdict, combine
from kiln.core.spec.models import GateName, NamingPolicy

SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class NamingGate:
    policy: NamingPolicy

    @property
    def name(self) -> GateName:
        return GateName.NAMING

    def evaluate(self, inputs: GateInputs) -> Verdict:
        naming = inputs.naming
        if naming is None or not naming.tags:
            return Inconclusive("no human tag was given for the artifact")
        pattern = re.compile(self.policy.tag_pattern)
        reasons: list[str] = []
        if not SERVICE_NAME.fullmatch(naming.service):
            reasons.append(
                f"service name {naming.service!r} must be lowercase letters, digits and dashes, "
                "starting with a letter, at most 63 characters"
            )
        for tag in naming.tags:
            if not pattern.fullmatch(tag):
                reasons.append(f"tag {tag!r} does not match {self.policy.tag_pattern}")
            repo, sep, _ = tag.partition(":")
            if sep and repo != naming.service:
                reasons.append(f"tag {tag!r} names {repo!r}, not the service {naming.service!r}")
        details = {
            "service": naming.service,
            "tags": list(naming.tags),
            "pattern": self.policy.tag_pattern,
        }
        return combine(reasons, [], details)
