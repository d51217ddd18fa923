"""History, what ran when, diffs, and human time input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiln.core.ledger.events import Event
from kiln.core.ledger.history import Running, diff, history, profile, running_at
from kiln.core.ledger.kinds import EventKind as K
from kiln.core.ledger.when import parse_when
from kiln.errors import InvalidInput

A1, A2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
C1, C2 = "sha256:" + "c" * 64, "sha256:" + "d" * 64


def t(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 20, hour, minute, tzinfo=UTC)


EVENTS = [
    Event(
        0,
        t(9),
        K.BUILD,
        "ci",
        artifact=A1,
        details={"dependencies": ["flask==3.0.0", "pkg:pypi/idna@3.6"]},
    ),
    Event(
        1,
        t(9, 5),
        K.ATTEST,
        "ci",
        artifact=A1,
        links={"attestation.provenance": "sha256:p1", "sbom": "sha256:s1"},
    ),
    Event(
        2,
        t(10),
        K.DEPLOY_START,
        "alice",
        artifact=A1,
        environment="prod",
        release="r1",
        links={"config": C1},
        details={"deployment": "d1"},
    ),
    Event(
        3,
        t(10, 5),
        K.DEPLOY_COMPLETE,
        "kiln",
        artifact=A1,
        environment="prod",
        release="r1",
        links={"config": C1},
        details={"deployment": "d1", "weights": {"r1": 100}},
    ),
    Event(
        4,
        t(13),
        K.BUILD,
        "ci",
        artifact=A2,
        details={
            "dependencies": [
                "flask==3.0.1",
                "pkg:pypi/idna@3.6",
                {"name": "rich", "version": "13.7"},
            ]
        },
    ),
    Event(
        5,
        t(13, 5),
        K.ATTEST,
        "ci",
        artifact=A2,
        links={"attestation.provenance": "sha256:p2", "sbom": "sha256:s2"},
    ),
    Event(
        6,
        t(14),
        K.DEPLOY_START,
        "bob",
        artifact=A2,
        environment="prod",
        release="r2",
        links={"config": C2, "previous_release": "r1"},
        details={"deployment": "d2"},
    ),
    Event(
        7,
        t(14, 1),
        K.TRAFFIC_CHANGE,
        "kiln",
        environment="prod",
        details={"deployment": "d2", "weights": {"r1": 90, "r2": 10}},
    ),
    Event(
        8,
        t(14, 3),
        K.TRAFFIC_CHANGE,
        "kiln",
        environment="prod",
        details={"deployment": "d2", "weights": {"r1": 50, "r2": 50}},
    ),
    Event(
        9,
        t(14, 4),
        K.ROLLBACK,
        "kiln",
        environment="prod",
        release="r2",
        links={"previous_release": "r1"},
        details={"deployment": "d2"},
    ),
    Event(10, t(14, 30), K.DECOMMISSION, "kiln", environment="prod", release="r2"),
]


def test_history_lists_each_deployment_with_who_and_outcome() -> None:
    rows = history(e for e in EVENTS if e.environment == "prod")
    assert [(d.release, d.started_by, d.outcome) for d in rows] == [
        ("r1", "alice", "succeeded"),
        ("r2", "bob", "rolled back"),
    ]
    assert rows[1].previous_release == "r1" and rows[1].finished_at == t(14, 4)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (t(9, 59), []),
        (t(10, 2), []),
        (t(12), [Running("r1", 100.0, A1, C1)]),
        (t(14, 2), [Running("r1", 90.0, A1, C1), Running("r2", 10.0, A2, C2)]),
        (t(14, 3), [Running("r1", 50.0, A1, C1), Running("r2", 50.0, A2, C2)]),
        (t(15), [Running("r1", 100.0, A1, C1)]),
    ],
)
def test_running_at_replays_weights_up_to_the_time(at: datetime, expected: list[Running]) -> None:
    assert running_at(EVENTS, environment="prod", at=at).releases == expected


def test_diff_names_digests_config_attestations_and_dependencies() -> None:
    expected = [
        ("artifact", "artifact", A1, A2),
        ("config", "config", C1, C2),
        ("sbom", "sbom", "sha256:s1", "sha256:s2"),
        ("attestation.provenance", "attestation.provenance", "sha256:p1", "sha256:p2"),
        ("dependency", "flask", "3.0.0", "3.0.1"),
        ("dependency", "rich", None, "13.7"),
    ]
    # A release brings in the build and attestations of the artifact it ran.
    changes = diff(profile(EVENTS, "r1"), profile(EVENTS, "r2"))
    assert [(c.what, c.name, c.a, c.b) for c in changes] == expected
    changes = diff(profile(EVENTS, A1), profile(EVENTS, A2))
    assert [(c.what, c.name, c.a, c.b) for c in changes] == expected
    assert diff(profile(EVENTS, "r1"), profile(EVENTS, A1)) == []


NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T14:02:00Z", datetime(2026, 11, 20, 14, 2, tzinfo=UTC)),
        ("2026-11-20T15:02:00+01:00", datetime(2026, 11, 20, 14, 2, tzinfo=UTC)),
        ("2026-11-20 14:02", datetime(2026, 11, 20, 14, 2, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("last tuesday 14:02", datetime(2026, 11, 24, 14, 2, tzinfo=UTC)),
        ("Friday 09:00", datetime(2026, 11, 20, 9, 0, tzinfo=UTC)),
        ("yesterday 23:59", datetime(2026, 11, 26, 23, 59, tzinfo=UTC)),
        ("14:02", datetime(2026, 11, 27, 14, 2, tzinfo=UTC)),
        ("now", NOW),
        ("30d", datetime(2026, 10, 28, 18, 30, tzinfo=UTC)),
        ("2h ago", datetime(2026, 11, 27, 16, 30, tzinfo=UTC)),
    ],
)
def test_parse_when_accepts_iso_and_human_forms(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "soon", "25:00", "tuesday 9"])
def test_parse_when_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_when(text, now=NOW)


def test_attestations_recorded_by_kiln_attest_are_typed_by_predicate() -> None:
    def attest(seq: int, artifact: str, digest: str) -> Event:
        return Event(seq, t(9), K.ATTEST, "ci", artifact=artifact, links={"attestation": digest},
                     details={"predicateType": "https://slsa.dev/provenance/v1"})  # fmt: skip

    events = [attest(0, A1, "sha256:x1"), attest(1, A2, "sha256:x2")]
    changes = diff(profile(events, A1), profile(events, A2))
    assert [(c.what, c.a, c.b) for c in changes] == [
        ("artifact", A1, A2),
        ("attestation.https://slsa.dev/provenance/v1", "sha256:x1", "sha256:x2"),
    ]
