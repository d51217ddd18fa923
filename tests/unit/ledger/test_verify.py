"""verify_log names the first bad seq for every kind of tampering (in memory)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core.ledger.checkpoint import Checkpoint
from kiln.core.ledger.events import EventDraft, encode
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.merkle import leaf_hash, root_of
from kiln.core.ledger.verify import LogEntry, Tampered, Verified, verify_log

WHEN = datetime(2026, 11, 20, tzinfo=UTC)
ORIGIN = "kiln.local/ledger/test"


def _log(n: int, actor: str = "ci") -> list[LogEntry]:
    out = []
    for seq in range(n):
        leaf = encode(EventDraft(EventKind.BUILD, actor, release=f"r{seq}").at(seq, WHEN))
        out.append(LogEntry(seq, leaf, leaf_hash(leaf)))
    return out


def _cp(entries: list[LogEntry], size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, root_of([leaf_hash(e.leaf) for e in entries[:size]]))


def test_an_untouched_log_verifies_against_its_checkpoints() -> None:
    log = _log(10)
    result = verify_log(log, [_cp(log, 4), _cp(log, 10)], head=_cp(log, 10))
    assert result == Verified(size=10, root=_cp(log, 10).root, checkpoints=2)


def test_an_edited_event_is_named() -> None:
    log = _log(10)
    log[6] = log[6]._replace(leaf=log[6].leaf.replace(b'"ci"', b'"cj"'))
    result = verify_log(log, [])
    assert isinstance(result, Tampered) and result.seq == 6 and "edited" in result.reason


def test_a_deleted_event_is_named() -> None:
    log = _log(10)
    del log[3]
    result = verify_log(log, [])
    assert isinstance(result, Tampered) and result.seq == 3 and "missing" in result.reason


def test_reordered_events_are_named() -> None:
    log = _log(10)
    log[4], log[5] = log[5]._replace(seq=4), log[4]._replace(seq=5)
    result = verify_log(log, [])
    assert isinstance(result, Tampered) and result.seq == 4
    assert "holds the event of seq 5" in result.reason


def test_an_inserted_event_is_named() -> None:
    log = _log(10)
    forged = encode(EventDraft(EventKind.APPROVAL, "mallory").at(2, WHEN))
    shifted = [LogEntry(i + 1, e.leaf, e.stored_hash) for i, e in enumerate(log[2:], start=2)]
    log = [*log[:2], LogEntry(2, forged, leaf_hash(forged)), *shifted]
    result = verify_log(log, [])
    assert isinstance(result, Tampered) and result.seq == 3


def test_a_rewrite_with_recomputed_hashes_is_caught_by_an_earlier_checkpoint() -> None:
    original = _log(10)
    checkpoints = [_cp(original, 3), _cp(original, 8)]
    forged = _log(10)
    leaf = encode(EventDraft(EventKind.BUILD, "mallory", release="r5").at(5, WHEN))
    forged[5] = LogEntry(5, leaf, leaf_hash(leaf))  # hash recomputed: consistent in itself
    assert isinstance(verify_log(forged, []), Verified)
    result = verify_log(forged, checkpoints, head=_cp(forged, 10))
    assert isinstance(result, Tampered)
    assert (result.seq, result.upto) == (3, 8) and "rewritten" in result.reason
    assert result.where == "seq 3..7"


def test_a_truncated_log_is_caught_by_a_checkpoint_or_the_head() -> None:
    log = _log(10)
    result = verify_log(log[:7], [_cp(log, 10)])
    assert isinstance(result, Tampered) and result.seq == 7
    result = verify_log(log[:7], [], head=_cp(log, 10))
    assert isinstance(result, Tampered) and "stored tree head" in result.reason


def test_an_empty_log_verifies() -> None:
    assert verify_log([], [], head=Checkpoint(ORIGIN, 0, root_of([]))) == Verified(
        0, root_of([]), 0
    )


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=70),
    op=st.sampled_from(["none", "edit", "rehash", "delete", "swap", "insert", "truncate"]),
    where=st.integers(min_value=0, max_value=69),
    cps=st.lists(st.integers(min_value=0, max_value=70), max_size=4),
    exported=st.booleans(),
)
def test_the_chunked_walk_gives_the_same_answer_as_the_one_by_one_walk(
    size: int, op: str, where: int, cps: list[int], exported: bool
) -> None:
    log = _log(size)
    checkpoints = [_cp(log, n) for n in cps if n <= size]
    head = _cp(log, size)
    if exported:
        log = [e._replace(stored_hash=None) for e in log]
    if size and op != "none":
        i = where % size
        if op == "edit":
            log[i] = log[i]._replace(leaf=log[i].leaf.replace(b'"ci"', b'"cx"'))
        elif op == "rehash":
            leaf = log[i].leaf.replace(b'"ci"', b'"cx"')
            log[i] = LogEntry(i, leaf, None if exported else leaf_hash(leaf))
        elif op == "delete":
            del log[i]
        elif op == "swap" and i + 1 < size:
            log[i], log[i + 1] = log[i + 1]._replace(seq=i), log[i]._replace(seq=i + 1)
        elif op == "insert":
            forged = encode(EventDraft(EventKind.APPROVAL, "m").at(i, WHEN))
            shifted = [e._replace(seq=e.seq + 1) for e in log[i:]]
            log = [*log[:i], LogEntry(i, forged, None if exported else leaf_hash(forged)), *shifted]
        elif op == "truncate":
            log = log[:i]
    reference = verify_log(log, checkpoints, head=head, chunk=1 << 40)
    for chunk in (1, 2, 8, 16):
        assert verify_log(log, checkpoints, head=head, chunk=chunk) == reference


def test_verify_nodes_finds_a_wrong_missing_or_extra_node() -> None:
    from kiln.core.ledger.merkle import MemoryTree
    from kiln.core.ledger.verify import verify_nodes

    tree = MemoryTree(bytes([i]) for i in range(11))
    leaves = tree.levels[0]

    def stored(levels: list[list[bytes]]):  # type: ignore[no-untyped-def]
        return lambda level: list(enumerate(levels[level])) if level < len(levels) else []

    assert verify_nodes(leaves, stored(tree.levels)) is None
    wrong = [list(level) for level in tree.levels]
    wrong[1][3] = bytes(32)
    bad = verify_nodes(leaves, stored(wrong))
    assert bad is not None and (bad.seq, bad.upto) == (6, 8) and "wrong" in bad.reason
    missing = [list(level) for level in tree.levels]
    del missing[2][1]
    bad = verify_nodes(leaves, stored(missing))
    assert bad is not None and (bad.seq, bad.upto) == (4, 8) and "missing" in bad.reason
    extra = [list(level) for level in tree.levels]
    extra[3].append(bytes(32))
    bad = verify_nodes(leaves, stored(extra))
    assert bad is not None and "extra" in bad.reason
