"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification (SHA-256).

Everything here is pure computation. Trees are addressed through perfect subtrees:
node ``(level, index)`` is the hash of the ``2**level`` leaves starting at leaf
``index * 2**level``; level 0 holds the leaf hashes. Any RFC 6962 root or proof for
a tree of size ``n`` needs only O(log n) such nodes, so a store that keeps every
perfect subtree ever completed (about two rows per leaf) can serve all of them.

Verification semantics follow transparency-dev/merkle (proof/verify.go), which is
stricter than the bare RFC text in a few corners (see ``verify_consistency``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NodeGetter",
    "NodeStore",
    "PendingNodes",
    "ProofError",
    "StreamingRoot",
    "consistency_proof",
    "frontier_nodes",
    "inclusion_proof",
    "leaf_hash",
    "new_nodes_for_leaf",
    "node_hash",
    "root_at",
    "root_from_inclusion_proof",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# RFC 6962 §2.1: the hash of an empty list is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Domain separation prefixes (RFC 6962 §2.1) stop a leaf being passed off as a node.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """MTH of a single entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class ProofError(ValueError):
    """A proof, or the sizes and hashes it was checked against, did not verify."""


NodeGetter = Callable[[int, int], bytes]
"""``get(level, index)`` -> hash of a perfect subtree; raises ``KeyError`` if unknown."""


class NodeStore(Protocol):
    """Read side of a node store, e.g. a table of ``(level, index, hash)`` rows.

    ``get(level, index)`` returns the hash of the perfect subtree covering leaves
    ``[index * 2**level, (index + 1) * 2**level)``. A storage layer implements it
    with a ``(level, index) -> hash`` table whose rows are exactly the ones that
    ``new_nodes_for_leaf`` / ``PendingNodes.new_nodes`` emit; rows are never updated,
    only inserted, because a perfect subtree never changes once complete.
    Pass ``store.get`` wherever a ``NodeGetter`` is expected.
    """

    def get(self, level: int, index: int) -> bytes:
        """Hash of perfect subtree ``(level, index)``; ``KeyError`` if absent."""
        ...


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _split(n: int) -> int:
    """Largest power of two strictly less than ``n`` (``n >= 2``): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _pieces(start: int, end: int) -> list[tuple[int, int]]:
    """Perfect subtrees ``(level, index)`` tiling ``[start, end)``, largest first.

    The RFC 6962 hash of ``[start, end)`` folds these right to left, because the
    left child of every non-perfect node is the largest perfect subtree that fits.
    That only maps onto stored nodes when ``start`` is aligned to the first piece,
    which holds for every range that occurs inside a tree rooted at leaf 0.
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or invalid leaf range [{start}, {end})")
    n = end - start
    top = n.bit_length() - 1
    if start & ((1 << top) - 1):
        raise ValueError(f"range [{start}, {end}) is not aligned to a subtree of the tree")
    out: list[tuple[int, int]] = []
    pos = start
    for level in range(top, -1, -1):
        if n >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def frontier_nodes(size: int) -> list[tuple[int, int]]:
    """``(level, index)`` of the perfect subtrees whose fold is the root at ``size``."""
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    return [] if size == 0 else _pieces(0, size)


def _fold(hashes: Sequence[bytes]) -> bytes:
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def subtree_root(get: NodeGetter, start: int, end: int) -> bytes:
    """RFC 6962 hash of leaves ``[start, end)`` from at most log2(n)+1 ``get`` calls.

    ``start`` must be aligned the way every subtree of a tree rooted at leaf 0 is
    (a multiple of the largest power of two <= ``end - start``).
    """
    return _fold([get(level, index) for level, index in _pieces(start, end)])


def root_at(get: NodeGetter, size: int) -> bytes:
    """Root hash of the first ``size`` leaves (``EMPTY_ROOT`` for size 0)."""
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    return EMPTY_ROOT if size == 0 else subtree_root(get, 0, size)


def inclusion_proof(get: NodeGetter, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf sibling first.

    Only the first step that descends left has a non-perfect sibling (the right
    edge of the tree); every later sibling is a single stored node, so the whole
    proof costs O(log n) lookups.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    top_down: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            top_down.append(subtree_root(get, mid, hi))
            hi = mid
        else:
            top_down.append(subtree_root(get, lo, mid))
            lo = mid
    top_down.reverse()
    return top_down


def consistency_proof(get: NodeGetter, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]) via SUBPROOF, deepest first.

    ``old_size`` must be > 0: proofs from the empty tree are meaningless and
    ``verify_consistency`` rejects them, so we refuse to produce them.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(f"need 0 < old_size <= new_size, got {old_size}, {new_size}")
    top_down: list[bytes] = []
    lo, hi = 0, new_size
    # `whole` is SUBPROOF's b flag: true while the current subtree is the old tree's
    # own left edge, whose hash the verifier already holds as the old root.
    whole = True
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            top_down.append(subtree_root(get, mid, hi))
            hi = mid
        else:
            top_down.append(subtree_root(get, lo, mid))
            lo = mid
            whole = False
    if not whole:
        top_down.append(subtree_root(get, lo, hi))
    top_down.reverse()
    return top_down


def new_nodes_for_leaf(
    index: int, leaf_hash: bytes, get: NodeGetter
) -> list[tuple[int, int, bytes]]:
    """Nodes completed by appending leaf hash ``leaf_hash`` at position ``index``.

    Returns ``(level, index, hash)`` rows: the leaf itself, then each ancestor that
    becomes perfect. A node at level L completes when the new leaf is the last of
    its 2**L leaves, i.e. once per trailing 1-bit of ``index``; that is 1 extra row
    and lookup on average, log2(n) at worst. ``get`` must already know every node
    completed by leaves ``< index``.
    """
    if index < 0:
        raise ValueError(f"negative leaf index {index}")
    _check_hash(leaf_hash, "leaf hash")
    rows = [(0, index, leaf_hash)]
    level, idx, h = 0, index, leaf_hash
    while idx & 1:
        h = node_hash(get(level, idx - 1), h)
        level, idx = level + 1, idx >> 1
        rows.append((level, idx, h))
    return rows


class PendingNodes:
    """A batch of appends computed in memory on top of a read-only node getter.

    Lets a writer derive every new node row, the new root and even proofs for the
    batch before anything is persisted; afterwards it inserts ``new_nodes()``
    (in one transaction) and discards this object.
    """

    __slots__ = ("_base", "_base_size", "_nodes", "_order", "_size")

    def __init__(self, base: NodeGetter, size: int) -> None:
        """``base`` serves the committed tree of ``size`` leaves."""
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        self._base = base
        self._base_size = size
        self._size = size
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._order: list[tuple[int, int, bytes]] = []

    @property
    def base_size(self) -> int:
        """Tree size of the committed base."""
        return self._base_size

    @property
    def size(self) -> int:
        """Tree size including the pending appends."""
        return self._size

    def get(self, level: int, index: int) -> bytes:
        """``NodeGetter`` over pending nodes first, then the base."""
        found = self._nodes.get((level, index))
        return found if found is not None else self._base(level, index)

    def append(self, leaf_hash: bytes) -> int:
        """Append a leaf hash; returns its leaf index."""
        index = self._size
        for level, idx, h in new_nodes_for_leaf(index, leaf_hash, self.get):
            self._nodes[(level, idx)] = h
            self._order.append((level, idx, h))
        self._size += 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def new_nodes(self) -> list[tuple[int, int, bytes]]:
        """``(level, index, hash)`` rows to insert, in creation order."""
        return list(self._order)

    def root(self) -> bytes:
        """Root of the tree including the pending appends."""
        return root_at(self.get, self._size)


class StreamingRoot:
    """Root of an append-only tree in O(log n) memory (a "compact range").

    Keeps one perfect-subtree root per 1-bit of the size, largest first; appending
    merges equal-sized neighbours like a binary counter carries.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._frontier: list[tuple[int, bytes]] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append a leaf hash (hash raw entries with ``merkle.leaf_hash()`` first)."""
        _check_hash(leaf_hash, "leaf hash")
        frontier = self._frontier
        level, h = 0, leaf_hash
        while frontier and frontier[-1][0] == level:
            h = node_hash(frontier.pop()[1], h)
            level += 1
        frontier.append((level, h))
        self._size += 1

    def append_trusted(self, leaf_hash: bytes) -> None:
        """``append`` for a hash this process just computed: the verifier's hot loop."""
        frontier = self._frontier
        level, h = 0, leaf_hash
        while frontier and frontier[-1][0] == level:
            h = _sha256(b"\x01" + frontier.pop()[1] + h).digest()
            level += 1
        frontier.append((level, h))
        self._size += 1

    def extend_trusted(self, leaf_hashes: Sequence[bytes]) -> None:
        """``append_trusted`` for many hashes at once, with the same result.

        Each aligned power-of-two run is folded level by level (one list
        comprehension per level) and pushed as one perfect subtree.
        """
        frontier = self._frontier
        start, end = 0, len(leaf_hashes)
        while start < end:
            level = (end - start).bit_length() - 1
            if self._size:
                # The run must start on a boundary of its own size.
                level = min(level, (self._size & -self._size).bit_length() - 1)
            count = 1 << level
            block = leaf_hashes[start : start + count]
            while len(block) > 1:
                pairs = iter(block)  # a power of two long: zip pairs neighbours, none left over
                block = [
                    _sha256(b"\x01" + left + right).digest()
                    for left, right in zip(pairs, pairs, strict=False)
                ]
            h = block[0]
            while frontier and frontier[-1][0] == level:
                h = _sha256(b"\x01" + frontier.pop()[1] + h).digest()
                level += 1
            frontier.append((level, h))
            self._size += count
            start += count

    def root(self) -> bytes:
        """RFC 6962 root at the current size."""
        if not self._frontier:
            return EMPTY_ROOT
        return _fold([h for _, h in self._frontier])

    def frontier(self) -> list[tuple[int, bytes]]:
        """``(level, hash)`` pairs, largest subtree first, for persisting."""
        return list(self._frontier)

    def copy(self) -> StreamingRoot:
        """Independent copy, e.g. to compute a tentative root."""
        return StreamingRoot.from_frontier(self._frontier)

    @classmethod
    def from_frontier(cls, frontier: Iterable[tuple[int, bytes]]) -> StreamingRoot:
        """Rebuild from ``frontier()`` output; levels must strictly decrease."""
        out = cls()
        prev: int | None = None
        for level, h in frontier:
            if level < 0 or (prev is not None and level >= prev):
                raise ValueError("frontier levels must be non-negative and strictly decreasing")
            _check_hash(h, "frontier hash")
            out._frontier.append((level, h))
            out._size += 1 << level
            prev = level
        return out

    @classmethod
    def from_nodes(cls, get: NodeGetter, size: int) -> StreamingRoot:
        """Rebuild the frontier at ``size`` from a node store (O(log n) lookups)."""
        return cls.from_frontier((level, get(level, idx)) for level, idx in frontier_nodes(size))


# --- Verification (RFC 9162 §2.1.3.2, §2.1.4.2); needs no tree. ---------------------


def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """Split PATH(index, size) into (inner, border) lengths.

    Below the highest bit where ``index`` and ``size - 1`` differ, the leaf sits in
    a full subtree and has a sibling at every level ("inner"). Above it the path
    runs along the tree's right edge, where only 1-bits of ``index`` have a (left)
    sibling ("border").
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise ProofError(f"proof hash {i} has {len(p)} bytes, want {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Root implied by an inclusion proof for leaf hash ``leaf_hash`` at ``index``."""
    if size < 0 or index < 0:
        raise ProofError(f"negative index {index} or size {size}")
    if index >= size:
        raise ProofError(f"leaf index {index} is beyond tree size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash has {len(leaf_hash)} bytes, want {HASH_SIZE}")
    inner, border = _inclusion_shape(index, size)
    if len(proof) != inner + border:
        raise ProofError(
            f"wrong inclusion proof length {len(proof)} for index {index} in tree size "
            f"{size}, want {inner + border}"
        )
    _check_proof_hashes(proof)
    h = leaf_hash
    for i, p in enumerate(proof):
        # Inner levels: the bit of index says which side we are on; border levels
        # always hash a left sibling.
        h = node_hash(h, p) if i < inner and not index >> i & 1 else node_hash(p, h)
    return h


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``leaf_hash`` at ``index`` under ``root``."""
    calc = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if len(root) != HASH_SIZE:
        raise ProofError(f"root hash has {len(root)} bytes, want {HASH_SIZE}")
    if calc != root:
        raise ProofError(
            f"inclusion proof for index {index} yields root {calc.hex()}, expected {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows tree ``old_size`` is a prefix of ``new_size``.

    As transparency-dev/merkle: ``old_size == 0`` is always rejected (even 0 -> 0,
    since such a proof proves nothing), and equal sizes need an empty proof and
    byte-equal roots (compared as given, without a length check).
    """
    if old_size < 0 or new_size < 0:
        raise ProofError(f"negative tree size ({old_size}, {new_size})")
    if new_size < old_size:
        raise ProofError(f"new size {new_size} is smaller than old size {old_size}")
    if old_size == 0:
        raise ProofError("consistency proofs from the empty tree (old size 0) are not accepted")
    if old_size == new_size:
        if proof:
            raise ProofError(f"sizes are equal ({old_size}) but the proof is not empty")
        if old_root != new_root:
            raise ProofError(f"sizes are equal ({old_size}) but the roots differ")
        return
    if not proof:
        raise ProofError(f"empty consistency proof for sizes {old_size} -> {new_size}")

    # Start from the smallest perfect subtree at the old tree's right edge, at level
    # `shift`. If the old tree is itself perfect that node is old_root and the proof
    # omits it; otherwise it is the first proof element.
    shift = (old_size & -old_size).bit_length() - 1
    inner, border = _inclusion_shape(old_size - 1, new_size)
    inner -= shift
    omitted = old_size == 1 << shift
    want = inner + border + (0 if omitted else 1)
    if len(proof) != want:
        raise ProofError(
            f"wrong consistency proof length {len(proof)} for sizes {old_size} -> {new_size}, "
            f"want {want}"
        )
    _check_proof_hashes(proof)
    if omitted:
        seed, path = old_root, proof
    else:
        seed, path = proof[0], proof[1:]
    mask = (old_size - 1) >> shift
    old_h = new_h = seed
    for i, p in enumerate(path):
        if i < inner and not mask >> i & 1:
            # Right sibling: lies beyond the old tree, so only the new root sees it.
            new_h = node_hash(new_h, p)
        else:
            old_h = node_hash(p, old_h)
            new_h = node_hash(p, new_h)
    if old_h != old_root:
        raise ProofError(
            f"consistency proof yields old root {old_h.hex()}, expected {old_root.hex()}"
        )
    if new_h != new_root:
        raise ProofError(
            f"consistency proof yields new root {new_h.hex()}, expected {new_root.hex()}"
        )
