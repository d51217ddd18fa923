"""DORA figures on a synthetic ledger whose answers are worked out by hand below."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiln.core.insights.dora import (
    DAY,
    FAILURE_RATE_BANDS,
    HOUR,
    LEAD_TIME_BANDS,
    RESTORE_BANDS,
    Band,
    _band_below,
    compute,
    frequency_band,
)
from kiln.core.ledger.events import Event
from kiln.core.ledger.kinds import EventKind as K
from kiln.errors import InvalidInput

SINCE = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
UNTIL = datetime(2026, 11, 30, tzinfo=UTC)  # four whole weeks later


def t(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_seq = iter(range(10_000))


def ev(kind: K, when: datetime, dep: str, env: str = "prod", **details: object) -> Event:
    return Event(
        seq=next(_seq),
        time=when,
        kind=kind,
        actor="ci",
        environment=env,
        release=f"rel-{dep}",
        details={"deployment": dep, **details},
    )


LEDGER = [
    # d7 started and completed before the window; its incident is inside it.
    ev(K.DEPLOY_START, t(30, 9, month=10), "d7"),
    ev(K.DEPLOY_COMPLETE, t(30, 10, month=10), "d7", commit_time=iso(t(30, 8, month=10))),
    # d1: lead time 10:00 - 08:00 = 2 h
    ev(K.DEPLOY_START, t(2, 9), "d1"),
    ev(K.DEPLOY_COMPLETE, t(2, 10), "d1", commit_time=iso(t(2, 8))),
    # d2: lead time 09:30 on the 3rd - 21:30 on the 2nd = 12 h
    ev(K.DEPLOY_START, t(3, 9), "d2"),
    ev(K.DEPLOY_COMPLETE, t(3, 9, 30), "d2", commit_time=iso(t(2, 21, 30))),
    # d3: rolled back during its canary; restored 4 minutes after detection
    ev(K.DEPLOY_START, t(4, 9), "d3"),
    ev(
        K.ROLLBACK,
        t(4, 9, 20),
        "d3",
        detected_at=iso(t(4, 9, 10)),
        restored_at=iso(t(4, 9, 14)),
    ),
    # staging is another environment: ignored entirely
    ev(K.DEPLOY_START, t(5, 9), "s1", env="staging"),
    ev(K.DEPLOY_COMPLETE, t(5, 9, 5), "s1", env="staging", commit_time=iso(t(5, 9))),
    ev(K.ROLLBACK, t(5, 9, 6), "s1", env="staging"),
    # d4: lead time 3 days = 72 h; an incident still open at the end of the window
    ev(K.DEPLOY_START, t(9, 9), "d4"),
    ev(K.DEPLOY_COMPLETE, t(9, 10), "d4", commit_time=iso(t(6, 10))),
    ev(K.INCIDENT, t(28, 12), "d4", detected_at=iso(t(28, 12))),
    # d5: lead time 30 min; an incident restored after 2 h
    ev(K.DEPLOY_START, t(16, 12), "d5"),
    ev(K.DEPLOY_COMPLETE, t(16, 13), "d5", commit_time=iso(t(16, 12, 30))),
    ev(
        K.INCIDENT,
        t(17, 10),
        "d5",
        detected_at=iso(t(17, 8)),
        restored_at=iso(t(17, 10)),
    ),
    # d7's incident: 30 min to restore; counts for time to restore, not for the rate
    ev(
        K.INCIDENT,
        t(20, 1, 30),
        "d7",
        detected_at=iso(t(20, 1)),
        restored_at=iso(t(20, 1, 30)),
    ),
    # d6: the commit is dated after the deployment (clock skew): no lead time sample
    ev(K.DEPLOY_START, t(25, 9), "d6"),
    ev(K.DEPLOY_COMPLETE, t(25, 9, 0), "d6", commit_time=iso(t(25, 9, 1))),
    # after the window
    ev(K.DEPLOY_START, t(1, 9, month=12), "d8"),
    ev(K.DEPLOY_COMPLETE, t(1, 10, month=12), "d8", commit_time=iso(t(1, 8, month=12))),
]


def test_the_four_keys_of_the_synthetic_ledger() -> None:
    report = compute(LEDGER, environment="prod", since=SINCE, until=UNTIL)
    # Completed in the window: d1, d2, d4, d5, d6 = 5 over 28 days.
    assert report.deployment_frequency.samples == 5
    assert report.deployment_frequency.value == pytest.approx(5 / 28)
    # Weeks (Mon-Sun): {2nd, 3rd} / {9th} / {16th} / {25th}: median 1 day a week, so
    # not "daily"; every week has one, so "weekly": high.
    assert report.deployment_frequency.band is Band.HIGH
    # Lead times 0.5 h, 2 h, 12 h, 72 h -> median (2 + 12) / 2 = 7 h: under a day, elite.
    assert report.lead_time.samples == 4
    assert report.lead_time.value == 7 * HOUR
    assert report.lead_time.band is Band.ELITE
    # Started in the window: d1..d6 = 6; failed: d3 (rollback), d4 and d5 (incidents).
    assert (report.deployments, report.failed_deployments) == (6, 3)
    assert report.change_failure_rate.value == 0.5
    assert report.change_failure_rate.band is Band.LOW
    # Restores: 4 min (d3), 2 h (d5), 30 min (d7) -> median 30 min: under an hour, elite.
    assert report.time_to_restore.samples == 3
    assert report.time_to_restore.value == 30 * 60
    assert report.time_to_restore.band is Band.ELITE
    assert report.open_incidents == 1


def test_staging_has_its_own_figures() -> None:
    report = compute(LEDGER, environment="staging", since=SINCE, until=UNTIL)
    assert (report.deployments, report.failed_deployments) == (1, 1)
    assert report.lead_time.value == 5 * 60
    # The rollback has no detected_at/restored_at: detected and restored at its own time.
    assert report.time_to_restore.value == 0


def test_no_deployments_means_no_data_not_a_pass() -> None:
    report = compute([], environment="prod", since=SINCE, until=UNTIL)
    assert report.lead_time.value is None and report.lead_time.band is Band.NONE
    assert report.change_failure_rate.value is None
    assert report.change_failure_rate.band is Band.NONE
    assert report.deployment_frequency.band is Band.LOW


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(InvalidInput):
        compute(LEDGER, environment="prod", since=UNTIL, until=SINCE)


@pytest.mark.parametrize(
    ("bands", "value", "inclusive", "band"),
    [
        (LEAD_TIME_BANDS, DAY - 1, False, Band.ELITE),
        (LEAD_TIME_BANDS, DAY, False, Band.HIGH),
        (LEAD_TIME_BANDS, 7 * DAY, False, Band.MEDIUM),
        (LEAD_TIME_BANDS, 6 * 730 * HOUR, False, Band.LOW),
        (RESTORE_BANDS, HOUR - 1, False, Band.ELITE),
        (RESTORE_BANDS, HOUR, False, Band.HIGH),
        (RESTORE_BANDS, DAY, False, Band.MEDIUM),
        (RESTORE_BANDS, 7 * DAY, False, Band.LOW),
        (FAILURE_RATE_BANDS, 0.15, True, Band.ELITE),
        (FAILURE_RATE_BANDS, 0.16, True, Band.HIGH),
        (FAILURE_RATE_BANDS, 0.30, True, Band.HIGH),
        (FAILURE_RATE_BANDS, 0.45, True, Band.MEDIUM),
        (FAILURE_RATE_BANDS, 0.46, True, Band.LOW),
    ],
)
def test_band_thresholds(
    bands: tuple[tuple[float, Band], ...], value: float, inclusive: bool, band: Band
) -> None:
    assert _band_below(value, bands, inclusive=inclusive) is band


def test_frequency_band_daily_weekly_monthly() -> None:
    daily = [t(d, 9) for d in range(2, 30) if d % 7 in (2, 3, 4)]  # Mon, Tue, Wed
    assert frequency_band(daily, SINCE, UNTIL) is Band.ELITE
    monthly = [t(10, 9)]  # one week in four
    assert frequency_band(monthly, SINCE, UNTIL) is Band.MEDIUM
    long_since = datetime(2026, 1, 1, tzinfo=UTC)
    assert frequency_band(monthly, long_since, UNTIL) is Band.LOW
