"""SPDX license expressions: a small parser and the allow/deny evaluation.

Grammar (SPDX specification v2.3, Annex D "SPDX License Expressions"):
``WITH`` binds tightest, then ``AND``, then ``OR``; parentheses group.
Identifiers are matched case-insensitively, as the annex asks; operators are
the upper-case words. ``LicenseRef-…`` and a trailing ``+`` are kept as part
of the identifier.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from kiln.errors import InvalidInput

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")
NOASSERTION = "NOASSERTION"


@dataclass(frozen=True)
class Leaf:
    license: str
    exception: str | None = None

    def __str__(self) -> str:
        return f"{self.license} WITH {self.exception}" if self.exception else self.license


@dataclass(frozen=True)
class AllOf:
    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.terms)) + ")"


@dataclass(frozen=True)
class AnyOf:
    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.terms)) + ")"


Expr = Leaf | AllOf | AnyOf


def parse(text: str) -> Expr:
    tokens: list[str] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None:
            raise InvalidInput(f"unexpected character {stripped[pos:].strip()[:1]!r} in {text!r}")
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        raise InvalidInput("empty license expression")
    parser = _Parser(tokens, text)
    expr = parser.or_expr()
    if parser.pos != len(tokens):
        raise InvalidInput(f"unexpected {tokens[parser.pos]!r} in license expression {text!r}")
    return expr


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise InvalidInput(f"license expression {self.text!r} ends too early")
        self.pos += 1
        return token

    def or_expr(self) -> Expr:
        terms = [self.and_expr()]
        while self.peek() == "OR":
            self.take()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else AnyOf(tuple(terms))

    def and_expr(self) -> Expr:
        terms = [self.atom()]
        while self.peek() == "AND":
            self.take()
            terms.append(self.atom())
        return terms[0] if len(terms) == 1 else AllOf(tuple(terms))

    def atom(self) -> Expr:
        token = self.take()
        if token == "(":  # noqa: S105 - a parenthesis, not a password
            inner = self.or_expr()
            if self.take() != ")":
                raise InvalidInput(f"unbalanced parentheses in {self.text!r}")
            return inner
        if token in ("AND", "OR", "WITH", ")"):
            raise InvalidInput(f"unexpected {token!r} in license expression {self.text!r}")
        if self.peek() == "WITH":
            self.take()
            exception = self.take()
            if exception in ("AND", "OR", "WITH", "(", ")"):
                raise InvalidInput(f"WITH needs an exception id in {self.text!r}")
            return Leaf(token, exception)
        return Leaf(token)


@dataclass(frozen=True)
class LicenseRules:
    """Allow and deny lists, compared case-insensitively.

    An empty allow list allows everything not denied. A ``WITH`` term is allowed
    when either the full ``X WITH Y`` or the bare ``X`` is allowed (an exception
    only adds permissions), and denied when either is denied.
    """

    allow: frozenset[str]
    deny: frozenset[str]

    @classmethod
    def of(cls, allow: Collection[str], deny: Collection[str]) -> LicenseRules:
        return cls(frozenset(a.upper() for a in allow), frozenset(d.upper() for d in deny))

    def leaf(self, leaf: Leaf) -> str | None:
        """``None`` when acceptable, else why not."""
        names = {leaf.license.upper()}
        if leaf.exception:
            names.add(str(leaf).upper())
        if names & self.deny:
            return f"{leaf} is denied"
        if self.allow and not names & self.allow:
            return f"{leaf} is not in the allow list"
        return None

    def check(self, expr: Expr) -> str | None:
        if isinstance(expr, Leaf):
            return self.leaf(expr)
        if isinstance(expr, AllOf):
            problems = [p for p in (self.check(t) for t in expr.terms) if p]
            return "; ".join(problems) if problems else None
        problems = []
        for term in expr.terms:
            problem = self.check(term)
            if problem is None:
                return None
            problems.append(problem)
        return "no option of " + str(expr) + " is acceptable: " + "; ".join(problems)
