"""SPDX expressions and the licenses gate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.core.gates.inputs import Component, GateInputs, License, Sbom
from kiln.core.gates.licenses import LicensesGate
from kiln.core.gates.spdx import AllOf, AnyOf, Leaf, LicenseRules, parse
from kiln.core.gates.verdict import Failed, Inconclusive, Passed
from kiln.core.spec.models import LicensePolicy
from kiln.errors import InvalidInput

from .conftest import sbom


def test_and_binds_tighter_than_or_and_with_tightest() -> None:
    expr = parse("MIT OR Apache-2.0 AND GPL-2.0-only WITH Classpath-exception-2.0")
    assert expr == AnyOf(
        (Leaf("MIT"), AllOf((Leaf("Apache-2.0"), Leaf("GPL-2.0-only", "Classpath-exception-2.0"))))
    )
    assert parse("(MIT OR BSD-3-Clause) AND Zlib") == AllOf(
        (AnyOf((Leaf("MIT"), Leaf("BSD-3-Clause"))), Leaf("Zlib"))
    )
    assert parse("LicenseRef-custom-1") == Leaf("LicenseRef-custom-1")


@pytest.mark.parametrize("text", ["", "MIT OR", "(MIT", "MIT)", "AND MIT", "MIT WITH", "MIT $ BSD"])
def test_malformed_expressions_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse(text)


RULES = LicenseRules.of(
    allow=["MIT", "Apache-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"], deny=["GPL-3.0-only"]
)


@pytest.mark.parametrize(
    ("expression", "ok"),
    [
        ("MIT", True),
        ("mit", True),  # SPDX ids match case-insensitively
        ("MIT OR GPL-3.0-only", True),  # OR: one acceptable option is enough
        ("MIT AND GPL-3.0-only", False),  # AND: every part must be acceptable
        ("GPL-3.0-only", False),
        ("BSD-3-Clause", False),  # not in the allow list
        ("GPL-2.0-only WITH Classpath-exception-2.0", True),
        ("MIT WITH Some-exception", True),  # an exception only adds permissions
        ("(BSD-3-Clause OR Apache-2.0) AND MIT", True),
    ],
)
def test_allow_and_deny_evaluation(expression: str, ok: bool) -> None:
    assert (RULES.check(parse(expression)) is None) is ok


def test_a_deny_only_policy_allows_everything_else() -> None:
    rules = LicenseRules.of(allow=[], deny=["AGPL-3.0-only"])
    assert rules.check(parse("Unlicense")) is None
    assert rules.check(parse("AGPL-3.0-only")) == "AGPL-3.0-only is denied"


POLICY = LicensePolicy(
    allow=["Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "MIT", "MPL-2.0"], deny=["GPL-3.0-only"]
)


def test_permissive_sbom_passes() -> None:
    verdict = LicensesGate(POLICY).evaluate(GateInputs(sbom=sbom("clean")))
    assert isinstance(verdict, Passed), verdict


def test_a_denied_license_fails_naming_component_and_license() -> None:
    verdict = LicensesGate(POLICY).evaluate(GateInputs(sbom=sbom("denied-license")))
    assert isinstance(verdict, Failed)
    assert verdict.reasons == ("copyleft-thing@1.0.0 (GPL-3.0-only): GPL-3.0-only is denied",)


def _one(*licenses: License) -> GateInputs:
    return GateInputs(sbom=Sbom((Component("x", "1", "pkg:pypi/x@1", licenses, "pypi"),)))


def test_a_component_without_a_license_fails_unless_noassertion_is_allowed() -> None:
    verdict = LicensesGate(POLICY).evaluate(_one())
    assert isinstance(verdict, Failed) and "declares no license" in verdict.reasons[0]
    relaxed = LicensePolicy(allow=[*POLICY.allow, "NOASSERTION"])
    assert isinstance(LicensesGate(relaxed).evaluate(_one()), Passed)


def test_several_license_entries_must_all_be_acceptable() -> None:
    verdict = LicensesGate(POLICY).evaluate(_one(License("MIT"), License("GPL-3.0-only")))
    assert isinstance(verdict, Failed)


def test_free_text_names_compare_whole_and_bad_expressions_fail() -> None:
    verdict = LicensesGate(POLICY).evaluate(_one(License("Some Custom License", is_spdx=False)))
    assert isinstance(verdict, Failed) and "not in the allow list" in verdict.reasons[0]
    broken = LicensesGate(POLICY).evaluate(_one(License("MIT OR (")))
    assert isinstance(broken, Failed) and "cannot read license expression" in broken.reasons[0]


def test_an_empty_policy_and_a_missing_sbom_never_pass() -> None:
    assert isinstance(
        LicensesGate(LicensePolicy()).evaluate(GateInputs(sbom=sbom("clean"))), Failed
    )
    assert isinstance(LicensesGate(POLICY).evaluate(GateInputs()), Inconclusive)


_IDS = st.sampled_from(["MIT", "Apache-2.0", "GPL-3.0-only", "BSD-3-Clause", "Zlib"])
_TREES = st.recursive(
    _IDS.map(Leaf),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda t: AllOf(tuple(t))),
        st.lists(inner, min_size=2, max_size=3).map(lambda t: AnyOf(tuple(t))),
    ),
    max_leaves=8,
)


def _truth(expr: AllOf | AnyOf | Leaf, ok: set[str]) -> bool:
    if isinstance(expr, Leaf):
        return expr.license in ok
    if isinstance(expr, AllOf):
        return all(_truth(t, ok) for t in expr.terms)
    return any(_truth(t, ok) for t in expr.terms)


@given(tree=_TREES)
def test_or_and_semantics_match_boolean_logic_for_any_expression(
    tree: AllOf | AnyOf | Leaf,
) -> None:
    # str() fully parenthesises, so parsing it back must give a tree with the same meaning.
    acceptable = {"MIT", "Apache-2.0", "BSD-3-Clause"}
    rules = LicenseRules.of(allow=sorted(acceptable), deny=["GPL-3.0-only"])
    assert (rules.check(parse(str(tree))) is None) is _truth(tree, acceptable)
