"""gc planning: what a retention policy keeps, and why."""

from __future__ import annotations

from kiln.core.artifacts.retention import ArtifactInfo, Policy, plan
from kiln.core.digest import Digest


def d(n: int) -> Digest:
    return Digest(f"sha256:{n:064x}")


def art(n: int, *, revoked: bool = False, blobs: tuple[int, ...] = ()) -> ArtifactInfo:
    return ArtifactInfo(
        digest=d(n),
        service="hello",
        created=f"2026-01-{n:02d}T00:00:00+00:00",
        revoked=revoked,
        blobs=tuple(d(100 + b) for b in blobs),
    )


def test_keeps_newest_referenced_and_per_environment_and_deletes_the_rest() -> None:
    arts = [art(i, blobs=(i, 50)) for i in range(1, 8)]
    result = plan(
        arts,
        referenced=frozenset({d(1)}),
        environments={"prod": [d(2), d(3)]},
        policy=Policy(keep_per_environment=1, keep_recent=2),
        all_blobs=frozenset(d(100 + i) for i in (*range(1, 8), 50, 99)),
    )
    assert result.keep == {
        d(1): "referenced by a release",
        d(2): "among the last 1 in prod",
        d(6): "among the newest 2 of hello",
        d(7): "among the newest 2 of hello",
    }
    assert result.delete_artifacts == (d(3), d(4), d(5))
    # shared blob 150 stays; 199 belongs to nobody; each deleted artifact's own blob goes
    assert set(result.delete_blobs) == {d(103), d(104), d(105), d(199)}


def test_revoked_artifacts_are_not_kept_for_being_recent() -> None:
    arts = [art(1), art(2, revoked=True)]
    result = plan(
        arts,
        referenced=frozenset(),
        environments={},
        policy=Policy(keep_recent=1),
        all_blobs=frozenset(),
    )
    assert result.keep == {d(1): "among the newest 1 of hello"}
    assert result.reasons == {d(2): "revoked"}


def test_a_referenced_revoked_artifact_is_still_kept() -> None:
    result = plan(
        [art(1, revoked=True)],
        referenced=frozenset({d(1)}),
        environments={},
        policy=Policy(keep_recent=0),
        all_blobs=frozenset(),
    )
    assert d(1) in result.keep
