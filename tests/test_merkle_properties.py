"""Property tests: the node-store tree, the streaming root and a naive RFC 6962
reference agree, generated proofs verify, and tampering is always caught."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.merkle import ProofError

MAX_SIZE = 300


# --- Naive reference, straight from RFC 6962 §2.1 / RFC 9162 §2.1.3-2.1.4 ------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if whole else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], whole), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# --- Helpers --------------------------------------------------------------------------


class CountingStore:
    """Dict-backed NodeStore that counts lookups, to check the O(log n) claims."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, int], bytes] = {}
        self.lookups = 0

    def get(self, level: int, index: int) -> bytes:
        self.lookups += 1
        return self.rows[(level, index)]


def build(data: Sequence[bytes]) -> CountingStore:
    store = CountingStore()
    for i, item in enumerate(data):
        for level, idx, h in merkle.new_nodes_for_leaf(i, merkle.leaf_hash(item), store.get):
            assert (level, idx) not in store.rows  # rows are insert-only
            store.rows[(level, idx)] = h
    store.lookups = 0
    return store


def leaves(salt: bytes, n: int) -> list[bytes]:
    return [salt + i.to_bytes(2, "big") for i in range(n)]


def flip(h: bytes, bit: int) -> bytes:
    bit %= len(h) * 8
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


salts = st.binary(max_size=8)
sizes = st.integers(min_value=1, max_value=MAX_SIZE)


def _log_bound(n: int) -> int:
    return 2 * n.bit_length() + 2


# --- Properties -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(salt=salts, n=st.integers(min_value=0, max_value=MAX_SIZE), data=st.data())
def test_roots_agree(salt: bytes, n: int, data: st.DataObject) -> None:
    d = leaves(salt, n)
    store = build(d)
    stream = merkle.StreamingRoot()
    for i, item in enumerate(d):
        assert stream.root() == merkle.root_at(store.get, i)
        stream.append(merkle.leaf_hash(item))
    assert stream.size == n
    assert len(stream.frontier()) == n.bit_count()
    assert stream.root() == merkle.root_at(store.get, n) == ref_mth(d)
    k = data.draw(st.integers(min_value=0, max_value=n), label="k")
    assert merkle.root_at(store.get, k) == ref_mth(d[:k])
    restored = merkle.StreamingRoot.from_frontier(stream.frontier())
    assert restored.size == n
    assert restored.root() == stream.root()
    assert merkle.StreamingRoot.from_nodes(store.get, n).frontier() == stream.frontier()


@settings(max_examples=40, deadline=None)
@given(salt=salts, n=sizes, split=st.integers(min_value=0, max_value=MAX_SIZE))
def test_pending_batch_matches_one_shot(salt: bytes, n: int, split: int) -> None:
    d = leaves(salt, n)
    split = min(split, n)
    full = build(d)
    committed = build(d[:split])
    batch = merkle.PendingNodes(committed.get, split)
    batch.extend(merkle.leaf_hash(x) for x in d[split:])
    assert batch.size == n
    assert batch.base_size == split
    assert batch.root() == ref_mth(d)
    new = batch.new_nodes()
    assert {(lv, ix) for lv, ix, _ in new}.isdisjoint(committed.rows)
    assert {(lv, ix): h for lv, ix, h in new} | committed.rows == full.rows


@settings(max_examples=100, deadline=None)
@given(salt=salts, n=sizes, data=st.data())
def test_inclusion_proofs(salt: bytes, n: int, data: st.DataObject) -> None:
    d = leaves(salt, n)
    store = build(d)
    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    proof = merkle.inclusion_proof(store.get, index, n)
    assert store.lookups <= _log_bound(n)
    assert proof == ref_path(index, d)
    root = ref_mth(d)
    leaf = merkle.leaf_hash(d[index])
    merkle.verify_inclusion(index, n, leaf, proof, root)
    assert merkle.root_from_inclusion_proof(index, n, leaf, proof) == root

    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, n, leaf, proof, flip(root, data.draw(st.integers())))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, n, flip(leaf, data.draw(st.integers())), proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, n, leaf, [*proof, root], root)
    if proof:
        pos = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="pos")
        bad = list(proof)
        bad[pos] = flip(bad[pos], data.draw(st.integers()))
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, n, leaf, bad, root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, n, leaf, proof[:pos] + proof[pos + 1 :], root)
    other = data.draw(st.integers(min_value=0, max_value=n), label="other")
    if other != index:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(other, n, leaf, proof, root)
    # No wrong-size check: a proof binds the size only through its shape (index 0
    # has two-hash proofs at sizes 3 and 4); the signed checkpoint pins the size.


@settings(max_examples=100, deadline=None)
@given(salt=salts, n=sizes, data=st.data())
def test_consistency_proofs(salt: bytes, n: int, data: st.DataObject) -> None:
    d = leaves(salt, n)
    store = build(d)
    m = data.draw(st.integers(min_value=1, max_value=n), label="m")
    proof = merkle.consistency_proof(store.get, m, n)
    assert store.lookups <= _log_bound(n) + 1
    assert proof == ref_subproof(m, d, True)
    old, new = ref_mth(d[:m]), ref_mth(d)
    merkle.verify_consistency(m, n, old, new, proof)

    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, flip(old, data.draw(st.integers())), new, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, old, flip(new, data.draw(st.integers())), proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, old, new, [*proof, new])
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, n, merkle.EMPTY_ROOT, new, proof)
    if proof:
        pos = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="pos")
        bad = list(proof)
        bad[pos] = flip(bad[pos], data.draw(st.integers()))
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, old, new, bad)
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, old, new, proof[:pos] + proof[pos + 1 :])
    if m < n:
        # A proof for m -> n must not pass for a neighbouring old size.
        with pytest.raises(ProofError):
            merkle.verify_consistency(m + 1, n, ref_mth(d[: m + 1]), new, proof)
        with pytest.raises(ProofError):
            merkle.verify_consistency(n, m, new, old, proof)


def test_lookup_counts_are_logarithmic_for_large_trees() -> None:
    # Proofs over a big tree touch O(log n) nodes; only those nodes need to exist.
    n = (1 << 40) + 12345

    def get(level: int, index: int) -> bytes:
        calls.append((level, index))
        return hashlib.sha256(f"{level}/{index}".encode()).digest()

    calls: list[tuple[int, int]] = []
    merkle.inclusion_proof(get, n - 777, n)
    assert len(calls) <= _log_bound(n)
    calls.clear()
    merkle.consistency_proof(get, n - 1000, n)
    assert len(calls) <= _log_bound(n) + 1
    calls.clear()
    merkle.root_at(get, n)
    assert len(calls) == n.bit_count()


def test_invalid_arguments() -> None:
    store = build(leaves(b"", 5))
    with pytest.raises(ValueError, match="out of range"):
        merkle.inclusion_proof(store.get, 5, 5)
    with pytest.raises(ValueError, match="0 < old_size"):
        merkle.consistency_proof(store.get, 0, 5)
    with pytest.raises(ValueError, match="not aligned"):
        merkle.subtree_root(store.get, 1, 3)  # not a subtree of any tree from leaf 0
    with pytest.raises(ValueError, match="strictly decreasing"):
        merkle.StreamingRoot.from_frontier([(0, bytes(32)), (1, bytes(32))])
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.StreamingRoot().append(b"short")
