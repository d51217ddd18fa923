"""Times as people type them for ``kiln audit at`` and ``--since``. Pure: ``now`` is passed in.

Accepted (times without a zone are UTC, as every time kiln stores):

- ISO-8601: ``2026-11-20T14:02:00Z``, ``2026-11-20T14:02+01:00``, ``2026-11-20``
- ``2026-11-20 14:02`` and ``2026-11-20 14:02:33``
- ``now``, ``today``, ``yesterday``, a weekday (``tuesday``) or ``last tuesday``,
  each optionally followed by ``HH:MM``; a weekday means its latest occurrence
  before today
- a bare ``HH:MM`` (today)
- an age: ``30d``, ``2h``, ``90m``, ``1h30m``, optionally followed by ``ago``
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from kiln.core.spec.durations import parse_duration
from kiln.errors import InvalidInput

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_HINT = 'use ISO-8601 ("2026-11-20T14:02Z"), "2026-11-20 14:02", "last tuesday 14:02" or "30d"'


def _clock(text: str) -> time:
    match = _CLOCK.match(text)
    if not match:
        raise InvalidInput(f"{text!r} is not a time of day", hint="write it as HH:MM")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidInput(f"{text!r} is not a time of day", hint="write it as HH:MM")
    return time(hour, minute, second, tzinfo=UTC)


def parse_when(text: str, *, now: datetime) -> datetime:
    """A timezone-aware UTC datetime for ``text`` (module docstring lists the forms)."""
    raw = " ".join(text.strip().split())
    lowered = raw.lower()
    if not raw:
        raise InvalidInput("an empty time", hint=_HINT)
    now = now.astimezone(UTC)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    else:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    age = lowered.removesuffix(" ago").replace(" ", "")
    try:
        return now - timedelta(seconds=parse_duration(age))
    except ValueError:
        pass
    words = lowered.split(" ")
    clock = None
    if words and _CLOCK.match(words[-1]):
        clock = _clock(words.pop())
    day = _day(" ".join(words), now) if words else now.date()
    if day is None:
        raise InvalidInput(f"cannot read {text!r} as a time", hint=_HINT)
    if clock is None:
        if words == ["now"]:
            return now
        clock = time(0, 0, tzinfo=UTC)
    return datetime.combine(day, clock)


def _day(phrase: str, now: datetime) -> date | None:
    today = now.date()
    if phrase in ("now", "today"):
        return today
    if phrase == "yesterday":
        return today - timedelta(days=1)
    name = phrase.removeprefix("last ").strip()
    if name in _WEEKDAYS:
        back = (today.weekday() - _WEEKDAYS.index(name)) % 7 or 7
        return today - timedelta(days=back)
    return None
