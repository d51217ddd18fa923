"""Full verification of a ledger: every entry, every stored hash, every checkpoint. Pure.

``verify_log`` reads the entries once, in order, and stops at the first problem:

- a gap in the sequence numbers is a *deletion* (the first missing seq is bad);
- a sequence number that goes backwards or repeats is a *reordering or insertion*;
- an entry whose leaf bytes do not start with ``{"seq":N,`` for its position holds
  another event: *reordered or inserted* rows;
- leaf bytes that no longer hash to the stored leaf hash were *edited*;
- a tree root that differs from a signed checkpoint of the same size means the
  history was *rewritten* even if every stored hash was recomputed: the first bad
  seq lies between the last matching checkpoint and this one;
- a checkpoint (or the stored head) larger than the log means entries were
  *deleted at the end*.

Signatures are checked by the caller (``checkpoint.open_note``) before the
checkpoints are handed in: this module only compares hashes.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from kiln.core.ledger.checkpoint import Checkpoint
from kiln.core.ledger.merkle import EMPTY_ROOT, Frontier

_SEQ = re.compile(rb'^\{"seq":(\d+),')


class LogEntry(NamedTuple):
    """One stored entry: its position, its leaf bytes, and the hash stored beside it.

    A tuple, not a dataclass: verification reads a million of them, and a store may
    hand over its driver's row tuples unchanged.
    """

    seq: int
    leaf: bytes
    stored_hash: bytes | None = None


@dataclass(frozen=True)
class Verified:
    size: int
    root: bytes
    checkpoints: int  # how many checkpoints were matched


@dataclass(frozen=True)
class Tampered:
    seq: int  # the first bad sequence number (or the lower bound, see ``upto``)
    reason: str
    upto: int | None = None  # for a rewrite: the bad seq is in [seq, upto)

    @property
    def where(self) -> str:
        if self.upto is not None and self.upto - self.seq > 1:
            return f"seq {self.seq}..{self.upto - 1}"
        return f"seq {self.seq}"


Outcome = Verified | Tampered


def _seq_in(leaf: bytes) -> int | None:
    match = _SEQ.match(leaf)
    return int(match.group(1)) if match else None


CHUNK = 4096
"""Entries verified per fast step: a perfect subtree of 2**12 leaves."""


class _Walk:
    """The running state of one verification: position, frontier, matched checkpoints."""

    def __init__(self, wanted: dict[int, list[Checkpoint]], head: Checkpoint | None) -> None:
        self.wanted = wanted
        self.head = head
        self.stack: list[bytes] = []  # the frontier, largest subtree first
        self.expected = 0
        self.matched = 0
        self.last_good = 0  # the size of the latest checkpoint matched so far

    def reached(self) -> Tampered | None:
        """Compare the root at ``expected`` with every checkpoint of that size."""
        cps = self.wanted.get(self.expected)
        if not cps:
            return None
        root = Frontier(self.expected, list(self.stack)).root()
        for cp in cps:
            if cp.root != root:
                what = "stored tree head" if cp is self.head else "checkpoint signed at that size"
                return Tampered(
                    self.last_good,
                    f"the tree of the first {self.expected} events differs from the {what}: "
                    "history was rewritten",
                    upto=self.expected,
                )
            self.matched += cp is not self.head
        self.last_good = self.expected
        return None

    def one_by_one(self, rows: Iterable[tuple[int, bytes, bytes | None]]) -> Tampered | None:
        """The reference walk: every check on every entry, naming the first failure."""
        stack = self.stack
        push, pop = stack.append, stack.pop
        sha256 = hashlib.sha256
        for seq, leaf, stored in rows:
            expected = self.expected
            if seq != expected:
                if seq > expected:
                    return Tampered(expected, f"seq {expected} is missing (deleted)")
                return Tampered(seq, f"seq {seq} appears again after seq {expected - 1}")
            try:
                in_place = leaf.startswith(b'{"seq":%d,' % seq)
            except TypeError:  # a driver returned text: someone rewrote the column's type
                leaf = str(leaf).encode("utf-8")
                in_place = leaf.startswith(b'{"seq":%d,' % seq)
            if not in_place:
                inner = _seq_in(leaf)
                what = (
                    f"the event of seq {inner}" if inner is not None else "bytes that are no event"
                )
                return Tampered(seq, f"position {seq} holds {what} (reordered or inserted)")
            h = sha256(b"\x00" + leaf).digest()
            if stored is not None and stored != h:
                return Tampered(seq, f"event {seq} was edited: its bytes no longer match its hash")
            index = seq
            while index & 1:
                h = sha256(b"\x01" + pop() + h).digest()
                index >>= 1
            push(h)
            self.expected = expected + 1
            if self.expected in self.wanted and (bad := self.reached()):
                return bad
        return None

    def chunk(self, rows: list[tuple[int, bytes, bytes | None]]) -> Tampered | None:
        """``CHUNK`` entries starting at a multiple of ``CHUNK``, checked list by list.

        Each check runs over the whole chunk in C-level comprehensions; the chunk's
        leaves form one perfect subtree whose root joins the frontier. Anything
        unusual (a failed check, a checkpoint inside the chunk, mixed stored
        hashes) goes to ``one_by_one``, which names the exact entry.
        """
        start = self.expected
        end = start + len(rows)
        if any(start < size < end for size in self.wanted):
            return self.one_by_one(rows)
        sha256 = hashlib.sha256
        seqs = [r[0] for r in rows]
        leaves = [r[1] for r in rows]
        stored = [r[2] for r in rows]
        try:
            ok = seqs == list(range(start, end)) and all(
                map(bytes.startswith, leaves, [b'{"seq":%d,' % s for s in seqs])
            )
        except TypeError:
            ok = False
        if not ok:
            return self.one_by_one(rows)
        level = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
        if stored[0] is None:
            if any(h is not None for h in stored):
                return self.one_by_one(rows)
        elif level != stored:
            return self.one_by_one(rows)
        while len(level) > 1:
            pairs = iter(level)
            level = [sha256(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
        h = level[0]
        index = start // len(rows)
        stack = self.stack
        while index & 1:
            h = sha256(b"\x01" + stack.pop() + h).digest()
            index >>= 1
        stack.append(h)
        self.expected = end
        return self.reached()


def verify_log(
    entries: Iterable[tuple[int, bytes, bytes | None]],
    checkpoints: Sequence[Checkpoint],
    *,
    head: Checkpoint | None = None,
    chunk: int = CHUNK,
) -> Outcome:
    """Check ``entries`` (in storage order) against ``checkpoints`` and the stored ``head``.

    Entries are ``LogEntry`` values or any (seq, leaf, stored hash or None) tuples.
    ``chunk`` (a power of two) only changes speed, never the answer.
    """
    if chunk < 1 or chunk & (chunk - 1):
        raise ValueError("chunk must be a power of two")
    wanted: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        wanted.setdefault(cp.size, []).append(cp)
    if head is not None:
        # The stored head is unsigned: it is compared like a checkpoint but not counted.
        wanted.setdefault(head.size, []).append(head)
    walk = _Walk(wanted, head)
    rows = iter(entries)
    while batch := list(itertools.islice(rows, chunk)):
        bad = walk.chunk(batch) if len(batch) == chunk else walk.one_by_one(batch)
        if bad is not None:
            return bad
    expected = walk.expected
    for size in sorted(wanted):
        if size > expected:
            what = "the stored tree head" if wanted[size] == [head] else "a checkpoint"
            return Tampered(
                expected,
                f"{what} covers {size} events but only {expected} exist "
                f"(seq {expected} onwards deleted)",
            )
        if size == 0:
            for cp in wanted[0]:
                if cp.root != EMPTY_ROOT:
                    return Tampered(0, "the checkpoint of the empty log has a wrong root")
                walk.matched += cp is not head
    root = Frontier(expected, walk.stack).root()
    return Verified(size=expected, root=root, checkpoints=walk.matched)


def verify_nodes(
    leaf_hashes: Sequence[bytes], stored: Callable[[int], Iterable[tuple[int, bytes]]]
) -> Tampered | None:
    """Check every stored perfect node against the (already verified) leaf hashes.

    ``stored(level)`` yields the store's ``(index, hash)`` of one level in index
    order. Nodes only serve proofs, and a proof is checked against a signed root
    before kiln hands it out, so a bad node can never yield a false proof; this
    finds such damage before someone asks for the proof that needs it.
    """
    level_hashes = list(leaf_hashes)
    level = 0
    sha256 = hashlib.sha256
    while len(level_hashes) > 1:
        pairs = iter(level_hashes[: len(level_hashes) // 2 * 2])
        level_hashes = [sha256(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
        level += 1
        found = list(stored(level))
        for position, want in enumerate(level_hashes):
            index, got = found[position] if position < len(found) else (position, None)
            if index != position or got != want:
                first = position << level
                return Tampered(
                    first,
                    f"the stored Merkle node ({level}, {position}) over seq {first}.."
                    f"{first + (1 << level) - 1} is {'missing' if got is None else 'wrong'}: "
                    "proofs through it would fail",
                    upto=first + (1 << level),
                )
        if len(found) > len(level_hashes):
            index = found[len(level_hashes)][0]
            return Tampered(
                index << level, f"the store holds an extra Merkle node ({level}, {index})"
            )
    return None


__all__ = ["LogEntry", "Outcome", "Tampered", "Verified", "verify_log", "verify_nodes"]
