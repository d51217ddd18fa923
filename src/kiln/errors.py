"""kiln's own exceptions.

Every expected failure is a ``KilnError`` carrying a ``hint`` that tells the user
what to do next. Entry points map the class to a documented exit code:

    0 ok · 1 failed or refused · 2 usage or invalid input · 3 internal error

Third-party errors are translated at the edge (``raise SpecError(...) from exc``)
so vendor exceptions never leak through the layers. Retry behaviour is part of
the type: ``Temporary`` errors may be retried after ``delay`` seconds,
``Permanent`` ones must not be.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    INVALID = 2
    INTERNAL = 3


@dataclass(frozen=True)
class Problem:
    """One precise mistake in a user's input: where it is and what to do.

    ``location`` is ``file:line:column`` when known, ``path`` the dotted field path
    inside the document (``environments[1].replicas``).
    """

    message: str
    path: str = ""
    file: str = ""
    line: int | None = None
    column: int | None = None
    expected: str = ""
    hint: str = ""

    @property
    def location(self) -> str:
        if not self.file:
            return ""
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def render(self) -> str:
        head = f"{self.location}: " if self.location else ""
        where = f"{self.path}: " if self.path else ""
        text = f"{head}{where}{self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class KilnError(Exception):
    """Base of every error kiln expects and explains."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInput(KilnError):
    """The user's input (a file, a flag, a payload) is malformed."""

    exit_code = ExitCode.INVALID


class UsageError(InvalidInput):
    """A command was called the wrong way."""


class SpecError(InvalidInput):
    """``kiln.yaml`` (or another declarative file) has one or more mistakes.

    All problems are collected and reported together, never just the first.
    """

    def __init__(self, problems: list[Problem], *, source: str = "") -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        where = f" in {source}" if source else ""
        super().__init__(
            f"{count} {noun}{where}",
            hint="fix every problem listed above, then run `kiln validate` again",
        )
        self.problems = list(problems)
        self.source = source


class ConfigError(InvalidInput):
    """A setting (flag, KILN_* variable, kiln.yaml) has a bad value."""


class NotFound(KilnError):
    """Something the user named does not exist."""


class Refused(KilnError):
    """kiln understood the request and refuses it on purpose (policy, immutability)."""


class StaleLeader(Refused):
    """A newer leader holds the environment: this controller's term (its fencing
    epoch) is over, so its write was refused and it must stop driving it."""

    @classmethod
    def term_over(cls, environment: str, mine: int, current: int) -> StaleLeader:
        return cls(
            f"{environment}: this controller's term {mine} is over (current term {current})",
            hint="another controller leads it now; this one stands down",
        )


class IntegrityError(Refused):
    """Stored bytes do not match their digest, a signature fails, or history was rewritten."""


class Permanent(KilnError):
    """An operation failed and retrying it will not help."""


class Temporary(KilnError):
    """An operation failed for a reason that may pass; retry after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.delay = delay


class InternalError(KilnError):
    """A bug in kiln. The entry point writes the traceback to a log file."""

    exit_code = ExitCode.INTERNAL
