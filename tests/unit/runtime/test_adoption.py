"""Matching records with live processes after a restart."""

from __future__ import annotations

from kiln.core.runtime.adoption import Orphan, Process, Recorded, classify

OWNER = "/srv/.kiln"


def proc(
    pid: int, start: int, instance: str, *, session: int | None = None, owner: str = OWNER
) -> Process:
    return Process(
        pid=pid,
        start_time=start,
        session=pid if session is None else session,
        owner=owner,
        labels={"dev.kiln.instance": instance},
    )


def test_a_live_process_with_the_recorded_pid_start_time_and_label_is_adopted() -> None:
    result = classify([Recorded("i-1", 10, 500)], [proc(10, 500, "i-1")], owner=OWNER)
    assert result.adopted == ("i-1",) and result.gone == () and result.orphans == ()


def test_a_reused_pid_is_not_adopted_and_the_impostor_is_an_orphan() -> None:
    result = classify([Recorded("i-1", 10, 500)], [proc(10, 900, "i-1")], owner=OWNER)
    assert result.adopted == ()
    assert result.gone == ("i-1",)
    assert result.orphans == (Orphan(session=10, instance="i-1", pids=(10,)),)


def test_a_record_without_a_process_is_gone() -> None:
    assert classify([Recorded("i-1", 10, 500)], [], owner=OWNER).gone == ("i-1",)


def test_children_in_an_adopted_session_are_not_orphans() -> None:
    processes = [proc(10, 500, "i-1"), proc(11, 501, "i-1", session=10)]
    assert classify([Recorded("i-1", 10, 500)], processes, owner=OWNER).orphans == ()


def test_leftovers_of_a_dead_leader_are_one_orphan_session() -> None:
    processes = [proc(11, 501, "i-1", session=10), proc(12, 502, "i-1", session=10)]
    result = classify([], processes, owner=OWNER)
    assert result.orphans == (Orphan(session=10, instance="i-1", pids=(11, 12)),)


def test_processes_of_another_state_directory_are_ignored() -> None:
    result = classify([], [proc(10, 500, "i-1", owner="/other/.kiln")], owner=OWNER)
    assert result.orphans == ()
