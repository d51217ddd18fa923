"""RFC 6962 Merkle tree hashing, proofs and their verification. Pure.

Hashes (RFC 6962 §2.1, unchanged in RFC 9162 §2.1.1):

    leaf hash  = SHA-256(0x00 || leaf bytes)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n

Storage never needs the whole tree. Every subtree the proofs of RFC 6962 §2.1.1
(``PATH``) and §2.1.2 (``PROOF``/``SUBPROOF``) touch is either a *perfect* subtree
(2^level leaves starting at a multiple of 2^level), which a store can keep as
node ``(level, index)``, or the imperfect right edge of the tree, which is folded
from at most log2(n) perfect ones. ``NodeSource`` is that one question a store
answers; ``MemoryTree`` answers it from lists and is what tests use.

``Frontier`` is the compact form of a tree of size n: the roots of the perfect
subtrees of n's binary decomposition, largest first. Appending a leaf is a binary
increment (merge equal neighbours), so an append costs O(log n) hashes and yields
the new perfect nodes a store should keep.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency)
step by step, which rejects proofs with extra or missing elements.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, iteratively (no recursion, O(n))."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.push(h)
    return frontier.root()


@dataclass
class Frontier:
    """The right edge of a tree: perfect subtree roots, largest first, and the size.

    ``push`` returns the perfect nodes it created as ``(level, index, hash)``,
    level 1 and up (level 0, the leaf itself, is the caller's).
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def push(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        created: list[tuple[int, int, bytes]] = []
        index = self.size
        h = leaf
        level = 0
        hashes = self.hashes
        # Each trailing 1 bit of the old size is a perfect subtree of the same
        # height as the carry: merge it, exactly like a binary increment.
        while index & 1:
            h = _sha256(b"\x01" + hashes.pop() + h).digest()
            level += 1
            index >>= 1
            created.append((level, index, h))
        hashes.append(h)
        self.size += 1
        return created

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))

    @staticmethod
    def levels(size: int) -> list[tuple[int, int]]:
        """The perfect subtrees ``(level, index)`` of a tree of ``size``, largest first."""
        out: list[tuple[int, int]] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                out.append((level, start >> level))
                start += 1 << level
        return out


class NodeSource(Protocol):
    def node(self, level: int, index: int) -> bytes:
        """The hash of perfect subtree ``index`` at ``level`` (level 0 = leaf hashes)."""
        ...


def range_hash(source: NodeSource, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a range the RFC recursion visits (``lo`` aligned to its split)."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return source.node(level, lo >> level)
    k = _largest_power_of_two_below(n)
    return node_hash(range_hash(source, lo, lo + k), range_hash(source, lo + k, hi))


def inclusion_proof(source: NodeSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 §2.1.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; siblings are collected top-down, returned bottom-up.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append(range_hash(source, lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(source, lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_proof(source: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2; empty when m is 0 or m == n."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    lo, hi, m = 0, new_size, old_size
    complete = True  # SUBPROOF's b flag: D[lo:lo+m] is the whole old tree
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            proof.append(range_hash(source, lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(source, lo, lo + k))
            lo, m = lo + k, m - k
            complete = False
    if not complete:
        proof.append(range_hash(source, lo, hi))
    proof.reverse()
    return proof


def _check_hash(h: bytes) -> bool:
    return len(h) == HASH_SIZE


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root ``proof`` implies, or None if it is malformed."""
    if index >= size or index < 0 or not _check_hash(leaf):
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0 or not _check_hash(p):
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, with the trivial cases (old size 0, equal sizes) made explicit."""
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof or not all(_check_hash(p) for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class MemoryTree:
    """An in-memory tree keeping every perfect node: the reference ``NodeSource``."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self.frontier = Frontier()
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, data: bytes) -> int:
        """Append leaf *data* (not its hash); return its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, h: bytes) -> int:
        index = self.frontier.size
        self.levels[0].append(h)
        for level, _, node in self.frontier.push(h):
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(node)
        return index

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return range_hash(self, 0, size) if size else EMPTY_ROOT
