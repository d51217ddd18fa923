"""RFC 6962 tree hashes, inclusion and consistency proofs against published vectors.

The vectors are facts taken from transparency-dev/merkle (Apache-2.0):
``testonly/constants.go`` (leaf inputs, the hash of every perfect node, the root
of every tree size 0..8) and ``proof/verify_test.go`` (inclusion and consistency
proofs, and the ways to corrupt a proof that a verifier must reject). Their
inclusion vectors number leaves from 1; here they are converted to 0-based.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# (leaf index, tree size, proof) -- 0-based index
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
TREE = MemoryTree(LEAVES)


def _mth(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH written as the recursive definition, for cross-checks."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return leaf_hash(data[0])
    k = 1
    while k * 2 < len(data):
        k *= 2
    return node_hash(_mth(data[:k]), _mth(data[k:]))


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_root_of_every_prefix_matches_the_published_root(size: int) -> None:
    assert TREE.root(size).hex() == ROOTS[size]
    assert root_of([leaf_hash(x) for x in LEAVES[:size]]).hex() == ROOTS[size]


def test_every_perfect_node_matches_the_published_node_hash() -> None:
    for level, hashes in enumerate(NODES):
        assert [TREE.node(level, i).hex() for i in range(len(hashes))] == hashes


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert Frontier().root() == EMPTY_ROOT


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_are_generated_and_verified_as_published(
    index: int, size: int, proof: list[str]
) -> None:
    assert [p.hex() for p in inclusion_proof(TREE, index, size)] == proof
    path = [bytes.fromhex(p) for p in proof]
    root = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(index, size, leaf_hash(LEAVES[index]), path, root)


def _inclusion_probes(
    index: int, size: int, leaf: bytes, path: list[bytes], root: bytes
) -> list[tuple[int, int, bytes, list[bytes], bytes]]:
    """The corruptions proof/verify_test.go's corruptInclusionProof applies."""
    probes = [
        (index - 1, size, leaf, path, root),
        (index + 1, size, leaf, path, root),
        (index ^ 2, size, leaf, path, root),
        (index, size * 2, leaf, path, root),
        (index, size // 2, leaf, path, root),
        (index, size, b"WrongLeaf", path, root),
        (index, size, leaf, path, EMPTY_ROOT),
        (index, size, leaf, path, SOME_HASH),
        (index, size, leaf, [*path, b""], root),
        (index, size, leaf, [*path, root], root),
        (index, size, leaf, [b"", *path], root),
        (index, size, leaf, [root, *path], root),
    ]
    for i in range(len(path)):
        bad = list(path)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((index, size, leaf, bad, root))
    if path:
        probes.append((index, size, leaf, path[:-1], root))
    if len(path) > 1:
        probes.append((index, size, leaf, [path[0], SOME_HASH, *path[1:]], root))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[1:])
def test_every_corrupted_inclusion_proof_is_rejected(
    index: int, size: int, proof: list[str]
) -> None:
    path = [bytes.fromhex(p) for p in proof]
    root = bytes.fromhex(ROOTS[size])
    probes = _inclusion_probes(index, size, leaf_hash(LEAVES[index]), path, root)
    accepted = [p for p in probes if verify_inclusion(*p[:3], p[3], p[4])]
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_are_generated_and_verified_as_published(
    old: int, new: int, proof: list[str]
) -> None:
    assert [p.hex() for p in consistency_proof(TREE, old, new)] == proof
    path = [bytes.fromhex(p) for p in proof]
    assert verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), path)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY[1:])
def test_every_corrupted_consistency_proof_is_rejected(
    old: int, new: int, proof: list[str]
) -> None:
    path = [bytes.fromhex(p) for p in proof]
    r1, r2 = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    probes = [
        (old - 1, new, r1, r2, path),
        (old + 1, new, r1, r2, path),
        (old ^ 2, new, r1, r2, path),
        (old, new * 2, r1, r2, path),
        (old, new // 2, r1, r2, path),
        (old, new, b"WrongRoot", r2, path),
        (old, new, r1, b"WrongRoot", path),
        (old, new, r2, r1, path),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*path, b""]),
        (old, new, r1, r2, [*path, r1]),
        (old, new, r1, r2, [*path, r2]),
        (old, new, r1, r2, [b"", *path]),
        (old, new, r1, r2, [r1, *path]),
        (old, new, r1, r2, [r2, *path]),
        (old, new, r1, r2, [path[0], *path]),
        (old, new, r1, r2, path[:-1]),
    ]
    for i in range(len(path)):
        bad = list(path)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((old, new, r1, r2, bad))
    assert [p for p in probes if verify_consistency(*p)] == []


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, b"x", b"y", [], True),
        (1, 1, SOME_HASH, SOME_HASH, [], True),
        (1, 1, SOME_HASH, EMPTY_ROOT, [], False),
        (1, 0, SOME_HASH, SOME_HASH, [], False),
        (1, 2, SOME_HASH, EMPTY_ROOT, [], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_trivial_consistency_cases(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes], ok: bool
) -> None:
    assert verify_consistency(old, new, r1, r2, proof) is ok


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_proofs_hold_for_any_size(size: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(2, "big") for i in range(size)]
    tree = MemoryTree(leaves)
    assert tree.root() == _mth(leaves) == tree.frontier.root()
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=0, max_value=size))
    path = inclusion_proof(tree, index, size)
    assert verify_inclusion(index, size, leaf_hash(leaves[index]), path, tree.root())
    assert not verify_inclusion(index, size, leaf_hash(b"other"), path, tree.root())
    proof = consistency_proof(tree, old, size)
    assert verify_consistency(old, size, tree.root(old), tree.root(), proof)
    if 0 < old < size:
        assert not verify_consistency(old, size, tree.root(old), _mth([*leaves, b"x"]), proof)


def test_frontier_push_reports_the_perfect_nodes_it_completes() -> None:
    frontier = Frontier()
    created = [frontier.push(leaf_hash(x)) for x in LEAVES]
    assert [[(lvl, idx) for lvl, idx, _ in c] for c in created] == [
        [],
        [(1, 0)],
        [],
        [(1, 1), (2, 0)],
        [],
        [(1, 2)],
        [],
        [(1, 3), (2, 1), (3, 0)],
    ]
    assert created[-1][-1][2].hex() == NODES[3][0]
    assert Frontier.levels(7) == [(2, 0), (1, 2), (0, 6)]


def test_proof_of_a_leaf_outside_the_tree_is_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(TREE, 8, 8)
    with pytest.raises(ValueError):
        consistency_proof(TREE, 5, 4)
