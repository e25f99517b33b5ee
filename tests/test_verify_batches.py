"""Batched verification reports exactly what a leaf-by-leaf check would.

``verify_log`` hashes, compares and folds leaves a batch at a time. Against a
plain reference loop written here, over logs with altered bytes, wrong sequence
markers, missing or wrong recorded hashes and checkpoints with wrong roots, it
must fail at the same place for the same reason, or succeed with the same root.
The checkpoints are given (from outside the store) or stored; either way a
judgement is held while the check goes on: every one of those findings must be
reported, in order (a checkpoint from outside must not hide a later one).
"""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger import integrity, merkle, notes

SIGNER = notes.generate_signer("example.org/batches")
ORIGIN = "example.org/batches"


def _leaf(index: int) -> bytes:
    return b'{"event_id":"e%d","sequence":%d,"type":"t"}' % (index, index)


def _reference(
    leaves: list[tuple[bytes, bytes | None]], roots: dict[int, bytes], *, stored: bool = False
) -> list[tuple[str, int | bytes]]:
    """The checks one leaf at a time, in log order. A recorded hash that differs is
    judged by the next checkpoint: its root from the recorded hashes (and not from the
    bytes) proves the event altered, from the bytes only the hash changed, from neither
    it fails as a root; any failure before one, or none after it, leaves it undecided.
    A judgement is held and the check goes on, the next sequences judged against the
    tree the judging checkpoint signed (an altered event's recorded leaf, not its
    bytes). A root failure of a checkpoint from outside the store (not ``stored``) is
    named and the check goes on as it would without those checkpoints (here: none),
    save that a later one the stored bytes give shows a split view, named after it;
    the findings in order, or ("ok", root)."""
    found: list[tuple[str, int | bytes]] = []
    later: dict[int, bytes] = {}  # the outside ones after the one that failed
    splits: list[tuple[str, int | bytes]] = []

    def ending(result: list[tuple[str, int | bytes]]) -> list[tuple[str, int | bytes]]:
        at = next((i for i, f in enumerate(result) if f[0] == "root"), None)
        return result if at is None else [*result[: at + 1], *splits, *result[at + 1 :]]

    if 0 in roots and roots[0] != merkle.EMPTY_ROOT:
        if stored:
            return [("root", 0)]
        found, roots = [("root", 0)], {}
    as_bytes, as_recorded = merkle.StreamingRoot(), merkle.StreamingRoot()
    changed = None  # the first changed sequence since the last judgement
    for index, (leaf, recorded) in enumerate(leaves):
        marker = re.search(rb'"sequence":(\d+)([,}])', leaf)
        stop = "sequence" if marker is None or marker.group(1) != b"%d" % index else None
        stop = stop or ("unlisted" if recorded is None else None)
        if stop is not None:
            return ending(
                [*found, ("undecided", changed) if changed is not None else (stop, index)]
            )
        assert recorded is not None
        hashed = merkle.leaf_hash(leaf)
        if recorded != hashed and changed is None:
            changed = index
        as_bytes.append(hashed)
        as_recorded.append(recorded)
        size = as_bytes.size
        if later.get(size) == as_bytes.root():
            failed = next(f[1] for f in found if f[0] == "root")
            splits.append(("split", failed))
        if size not in roots:
            continue
        if changed is not None and roots[size] in (as_recorded.root(), as_bytes.root()):
            altered = roots[size] == as_recorded.root()
            found.append(("altered" if altered else "index", changed))
            signed = as_recorded if altered else as_bytes
            as_bytes, as_recorded, changed = signed.copy(), signed.copy(), None
        elif roots[size] != as_bytes.root():
            if stored:
                return [*found, ("root", size)]
            found.append(("root", size))
            later = {s: r for s, r in roots.items() if s > size}
            roots = {}
    if changed is not None:
        found.append(("undecided", changed))
    return ending(found) or [("ok", as_bytes.root() if leaves else merkle.EMPTY_ROOT)]


def _verify(
    leaves: list[tuple[bytes, bytes | None]], roots: dict[int, bytes], *, stored: bool = False
) -> list[tuple[str, int | bytes]]:
    signed = {
        size: integrity.sign_tree_head(ORIGIN, size, root, SIGNER) for size, root in roots.items()
    }
    try:
        report = integrity.verify_log(
            leaves,
            [integrity.StoredCheckpoint(size, roots[size], note) for size, note in signed.items()]
            if stored
            else [],
            origin=ORIGIN,
            verifiers=[SIGNER.verifier()],
            given=[]
            if stored
            else [integrity.CheckpointText(f"size-{size}", note) for size, note in signed.items()],
            compare_recorded=True,
        )
    except integrity.IntegrityError as error:
        parts = re.split(r"; the check went on to find: |; and then: ", str(error))
        return [_kind(part) for part in parts]
    return [("ok", report.root)]


def _kind(text: str) -> tuple[str, int | bytes]:
    """What one finding of a failure message says, and the sequence it names."""
    if "it is no checkpoint of any log" in text:  # a size-0 root that is not the empty one
        return "root", 0
    split = re.search(r"the one from outside at size (\d+) are not of one history", text)
    if split is not None:
        return "split", int(split.group(1))
    for phrase, kind in (
        ("tell which", "undecided"),
        ("does not carry sequence", "sequence"),
        ("confirms (the event was altered)", "altered"),
        ("confirms (the events were altered)", "altered"),
        ("the log index does not list", "unlisted"),
        ("themselves are intact", "index"),
        ("the stored event itself is intact", "index"),
    ):
        if phrase in text:
            return kind, int(text.split()[1].rstrip(":"))
    found = re.search(r"root at size (\d+)", text)
    assert found is not None, text
    return "root", int(found.group(1))


damage = st.lists(
    st.tuples(
        st.sampled_from(["bytes", "sequence", "recorded", "missing"]),
        st.integers(min_value=0, max_value=80),
    ),
    max_size=3,
)
checkpoints = st.lists(st.tuples(st.integers(min_value=0, max_value=80), st.booleans()), max_size=4)


@settings(max_examples=300, deadline=None)
# The store's checkpoint at 19 judges event 18 altered; 19's index hash edited after it
# was then blamed on the range 0..29 and the judgement lost.
@example(
    size=38,
    damage=[("bytes", 18), ("recorded", 19)],
    checkpoints=[(19, False), (30, False)],
    batch=8,
    stored=True,
)
# A checkpoint from outside judged 5's index hash changed; the verification stopped
# there, and event 25's alteration (which the stored ones report) went unreported.
@example(
    size=38,
    damage=[("recorded", 5), ("bytes", 25)],
    checkpoints=[(19, False), (30, False)],
    batch=8,
    stored=False,
)
# vt22: a wrong checkpoint from outside, then a right one: two histories (a split view),
# where the later one was not compared.
@example(size=20, damage=[], checkpoints=[(7, True), (17, False)], batch=8, stored=False)
# The same past an event the first checkpoint judged altered: the later one matches the
# log with that event as signed.
@example(
    size=3, damage=[("bytes", 0)], checkpoints=[(1, False), (2, True), (3, False)], batch=1,
    stored=False,
)  # fmt: skip
@given(
    size=st.integers(min_value=0, max_value=80),
    damage=damage,
    checkpoints=checkpoints,
    batch=st.sampled_from([1, 3, 8, 4096]),
    stored=st.booleans(),
)
def test_batched_verify_matches_leaf_by_leaf(
    size: int,
    damage: list[tuple[str, int]],
    checkpoints: list[tuple[int, bool]],
    batch: int,
    stored: bool,
) -> None:
    leaves: list[tuple[bytes, bytes | None]] = [
        (_leaf(i), merkle.leaf_hash(_leaf(i))) for i in range(size)
    ]
    truth = merkle.StreamingRoot()
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    for _, recorded in leaves:
        assert recorded is not None
        truth.append(recorded)
        roots[truth.size] = truth.root()
    signed = {}
    for at, wrong in checkpoints:
        if at <= size:
            signed[at] = hashlib.sha256(b"wrong").digest() if wrong else roots[at]
    for kind, at in damage:
        if at >= size:
            continue
        leaf, recorded = leaves[at]
        if kind == "bytes":
            leaf = leaf.replace(b'"type":"t"', b'"type":"x"')
        elif kind == "sequence":
            leaf = _leaf(at + 1)
        elif kind == "recorded":
            recorded = hashlib.sha256(b"other").digest()
        else:
            recorded = None
        leaves[at] = (leaf, recorded)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(integrity, "_VERIFY_BATCH", batch)
        assert _verify(leaves, signed, stored=stored) == _reference(leaves, signed, stored=stored)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=300),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6),
)
def test_extend_trusted_equals_appending_one_by_one(size: int, cuts: list[int]) -> None:
    hashes = [merkle.leaf_hash(b"%d" % i) for i in range(size)]
    one_by_one = merkle.StreamingRoot()
    for h in hashes:
        one_by_one.append_trusted(h)
    extended = merkle.StreamingRoot()
    start = 0
    for cut in [*sorted(c for c in cuts if c <= size), size]:
        extended.extend_trusted(hashes[start:cut])
        start = max(start, cut)
    assert extended.size == one_by_one.size == size
    assert extended.frontier() == one_by_one.frontier()
    assert extended.root() == one_by_one.root()


def _root(hashes: list[bytes]) -> bytes:
    tree = merkle.StreamingRoot()
    for digest in hashes:
        tree.append(digest)
    return tree.root()


def test_the_log_is_read_again_through_reread_whatever_the_leaves_are() -> None:
    """Review of ee1d697 (3): whether the log was walked again, past a stored checkpoint
    contradicting a --trusted one's judgement, turned on ``isinstance(leaves,
    Iterator)``: leaves given as a generator silently skipped it. ``reread`` says how
    to read them again; without it there is no second walk."""
    original = [_leaf(index) for index in range(10)]
    lines = list(original)
    for sequence in (1, 5):  # altered, their recorded hashes left as they were
        lines[sequence] = lines[sequence].replace(b'"type":"t"', b'"type":"u"')
    lines[8] = lines[8].replace(b'"type":"t"', b'"type":"v"')  # rewritten whole
    leaf = [hashlib.sha256(b"\x00" + line).digest() for line in original]
    now = [hashlib.sha256(b"\x00" + line).digest() for line in lines]
    recorded = [now[8] if index == 8 else digest for index, digest in enumerate(leaf)]
    stored = [  # the store's checkpoints re-signed over the stored bytes
        integrity.StoredCheckpoint(
            size,
            _root(now[:size]),
            integrity.sign_tree_head(ORIGIN, size, _root(now[:size]), SIGNER),
        )
        for size in (4, 6, 10)
    ]
    trusted = [  # the auditor's, of the log as it was
        integrity.CheckpointText(
            f"auditor-{size}", integrity.sign_tree_head(ORIGIN, size, _root(leaf[:size]), SIGNER)
        )
        for size in (2, 10)
    ]

    def read() -> list[tuple[bytes, bytes | None]]:
        return list(zip(lines, recorded, strict=True))

    def message(**reread: object) -> str:
        with pytest.raises(integrity.IntegrityError) as failed:
            integrity.verify_log(
                (leaf for leaf in read()),
                stored,
                origin=ORIGIN,
                verifiers=[SIGNER.verifier()],
                trusted=trusted,
                compare_recorded=True,
                **reread,  # type: ignore[arg-type]
            )
        return str(failed.value)

    walked_again = message(reread=read)
    assert walked_again.startswith(
        "sequence 1: the stored event's bytes no longer hash to the leaf recorded at append "
        "time, which the trusted checkpoint auditor-2 at size 2 confirms (the event was "
        "altered); the stored checkpoint at size 4 gives the stored bytes instead"
    ), walked_again
    assert "; the check went on to find: " in walked_again, walked_again
    assert "sequence 5" in walked_again.partition("; the check went on to find: ")[2]
    # Without a way to read the leaves again, the contradiction alone is named.
    once = message()
    assert "sequence 5" not in once, once
    assert once.endswith(
        "the check went on to find: the trusted checkpoint auditor-10 at size 10 was not "
        "compared: past the stored checkpoint at size 4 that contradicts the one from outside, "
        "the check stopped; verify with it alone to have it judge"
    ), once
