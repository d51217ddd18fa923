"""DORA's four keys for one environment over a window, computed from ledger events.

Exactly what each figure means, which events and detail fields feed it, and
where kiln departs from Google's Four Keys project is in ``docs/dora.md``; the
short version:

- deployment frequency: ``deploy.complete`` events per day. Its band follows the
  Four Keys dashboard: *daily* (median days-with-a-deployment per week >= 3) is
  elite, *weekly* (the median week has one) high, *monthly* (the median month
  has one) medium, otherwise low.
- lead time for changes: median of ``deploy.complete`` time minus the
  ``commit_time`` detail, over completed deployments in the window; non-positive
  values are ignored as Four Keys does.
- change failure rate: distinct deployments (``details.deployment``) started in
  the window that led to a ``rollback`` or an ``incident``, divided by all
  distinct deployments started in the window.
- time to restore: median of ``restored_at`` minus ``detected_at`` over the
  rollbacks and resolved incidents detected in the window.

Bands (``BANDS``) use the thresholds of the Accelerate State of DevOps 2021
report where it gives them and Four Keys' dashboard buckets where it does not.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kiln.core.ledger.events import Event, parse_time
from kiln.core.ledger.kinds import EventKind
from kiln.errors import InvalidInput

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 730 * HOUR  # Four Keys' month: 730 hours
SIX_MONTHS = 6 * MONTH


class Band(StrEnum):
    ELITE = "elite"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "no data"


# Upper bounds (exclusive for durations, inclusive for the rate), best band first.
LEAD_TIME_BANDS: tuple[tuple[float, Band], ...] = (
    (DAY, Band.ELITE),
    (WEEK, Band.HIGH),
    (SIX_MONTHS, Band.MEDIUM),
)
RESTORE_BANDS: tuple[tuple[float, Band], ...] = (
    (HOUR, Band.ELITE),
    (DAY, Band.HIGH),
    (WEEK, Band.MEDIUM),
)
FAILURE_RATE_BANDS: tuple[tuple[float, Band], ...] = (
    (0.15, Band.ELITE),
    (0.30, Band.HIGH),
    (0.45, Band.MEDIUM),
)


def _band_below(value: float, bands: Sequence[tuple[float, Band]], *, inclusive: bool) -> Band:
    for bound, band in bands:
        if value < bound or (inclusive and value <= bound):
            return band
    return Band.LOW


@dataclass(frozen=True)
class Figure:
    """One metric: its value (None when there is no data), unit, band and sample size."""

    value: float | None
    unit: str
    band: Band
    samples: int


@dataclass(frozen=True)
class DoraReport:
    environment: str
    since: datetime
    until: datetime
    deployment_frequency: Figure  # deployments per day
    lead_time: Figure  # seconds
    change_failure_rate: Figure  # fraction 0..1
    time_to_restore: Figure  # seconds
    deployments: int
    failed_deployments: int
    open_incidents: int


def _detail_time(event: Event, name: str) -> datetime | None:
    raw = event.details.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput(f"event {event.seq}: details.{name} must be a time string")
    try:
        return parse_time(raw)
    except InvalidInput:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"event {event.seq}: details.{name} is not a time") from None
        if moment.tzinfo is None:
            raise InvalidInput(f"event {event.seq}: details.{name} has no time zone") from None
        return moment


def _deployment_id(event: Event) -> str:
    """The deployment an event belongs to: ``details.deployment``, else its release."""
    raw = event.details.get("deployment")
    if isinstance(raw, str) and raw:
        return raw
    return event.release or f"seq:{event.seq}"


def frequency_band(deploy_times: Sequence[datetime], since: datetime, until: datetime) -> Band:
    """Four Keys' deployment-frequency bucket, over calendar weeks (Monday) and months."""
    if not deploy_times:
        return Band.NONE if until <= since else Band.LOW
    days = {t.date() for t in deploy_times}
    start = since.date()
    end = (until - timedelta(microseconds=1)).date()  # ``until`` is exclusive
    weeks: dict[object, int] = {}
    months: dict[tuple[int, int], int] = {}
    day = start
    while day <= end:
        week = day - timedelta(days=day.weekday())
        weeks.setdefault(week, 0)
        months.setdefault((day.year, day.month), 0)
        if day in days:
            weeks[week] += 1
        day += timedelta(days=1)
    for t in deploy_times:
        key = (t.year, t.month)
        if key in months:
            months[key] += 1
    if statistics.median(weeks.values()) >= 3:
        return Band.ELITE
    if statistics.median(1 if n else 0 for n in weeks.values()) >= 1:
        return Band.HIGH
    if statistics.median(months.values()) >= 1:
        return Band.MEDIUM
    return Band.LOW


def compute(
    events: Iterable[Event], *, environment: str, since: datetime, until: datetime
) -> DoraReport:
    """The four keys for ``environment`` over ``[since, until)``; events may be unfiltered."""
    if until <= since:
        raise InvalidInput("the report window is empty: --since must be before now")
    completes: list[Event] = []
    started: set[str] = set()
    failed: set[str] = set()
    restores: list[float] = []
    open_incidents = 0
    for event in events:
        if event.environment != environment:
            continue
        kind = event.kind
        if kind is EventKind.DEPLOY_START and since <= event.time < until:
            started.add(_deployment_id(event))
        elif kind is EventKind.DEPLOY_COMPLETE and since <= event.time < until:
            completes.append(event)
            # A deployment that somehow lacks its start still counts once.
            started.add(_deployment_id(event))
        elif kind in (EventKind.ROLLBACK, EventKind.INCIDENT):
            detected = _detail_time(event, "detected_at") or event.time
            if not since <= detected < until:
                continue
            failed.add(_deployment_id(event))
            restored = _detail_time(event, "restored_at")
            if restored is None and kind is EventKind.ROLLBACK:
                restored = event.time
            if restored is None:
                open_incidents += 1
            else:
                restores.append(max(0.0, (restored - detected).total_seconds()))
    failed &= started  # only failures of deployments counted in the denominator

    window_days = (until - since).total_seconds() / DAY
    deploy_times = [e.time for e in completes]
    freq = Figure(
        value=len(completes) / window_days,
        unit="per day",
        band=frequency_band(deploy_times, since, until),
        samples=len(completes),
    )

    leads: list[float] = []
    for event in completes:
        commit = _detail_time(event, "commit_time")
        if commit is not None:
            seconds = (event.time - commit).total_seconds()
            if seconds > 0:
                leads.append(seconds)
    lead_value = statistics.median(leads) if leads else None
    lead = Figure(
        value=lead_value,
        unit="seconds",
        band=Band.NONE
        if lead_value is None
        else _band_below(lead_value, LEAD_TIME_BANDS, inclusive=False),
        samples=len(leads),
    )

    rate_value = len(failed) / len(started) if started else None
    rate = Figure(
        value=rate_value,
        unit="fraction",
        band=Band.NONE
        if rate_value is None
        else _band_below(rate_value, FAILURE_RATE_BANDS, inclusive=True),
        samples=len(started),
    )

    restore_value = statistics.median(restores) if restores else None
    restore = Figure(
        value=restore_value,
        unit="seconds",
        band=Band.NONE
        if restore_value is None
        else _band_below(restore_value, RESTORE_BANDS, inclusive=False),
        samples=len(restores),
    )
    return DoraReport(
        environment=environment,
        since=since,
        until=until,
        deployment_frequency=freq,
        lead_time=lead,
        change_failure_rate=rate,
        time_to_restore=restore,
        deployments=len(started),
        failed_deployments=len(failed),
        open_incidents=open_incidents,
    )
