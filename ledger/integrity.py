"""Tamper evidence: signing keys, signed checkpoints, proofs and verification.

The ledger is an RFC 6962 transparency log. Leaf ``i`` is the stored canonical JSON
of the event with ``sequence = i``. Checkpoints are C2SP signed notes over
(origin, size, root). Verification recomputes every leaf hash from the stored
bytes, never trusting stored hashes, and streams, so memory is flat in N.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import glob
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from ledger import merkle, notes
from ledger.location import KeyError_


class IntegrityError(Exception):
    """Verification failed; ``sequence`` is the first bad leaf when it is known."""

    def __init__(
        self, message: str, sequence: int | None = None, named: frozenset[int] | None = None
    ) -> None:
        self.sequence = sequence
        # The changed sequences a checkpoint's judgement names, every one (None: not
        # such a judgement, or not every one is known).
        self.named = named
        super().__init__(message)


# --- keys ----------------------------------------------------------------------


def create_key(path: Path, name: str) -> notes.Ed25519Signer:
    """Write a new Ed25519 signer key; the file is created 0600 and never overwritten."""
    if not notes.is_valid_key_name(name):
        raise KeyError_(
            f"the log origin {name!r} cannot name a signing key (no spaces or '+'); "
            "re-create the store with `init --origin NAME`"
        )
    signer = notes.generate_signer(name)
    if path.exists():
        raise KeyError_(f"{path} already exists; refusing to overwrite a signing key")
    # Written whole to a file of its own, synced, then linked into place: a full disk
    # or a crash never leaves an empty or partial key file, which would refuse to be
    # replaced and refuse to sign. link() fails if the name exists: never overwritten.
    _remove_stale_partials(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    text = signer.signer_key() + "\n"
    try:
        try:
            _write_new(partial, text)  # inside: one interrupted while written goes too
            os.chmod(partial, 0o600)  # in case a umask or filesystem widened it
            try:
                os.link(partial, path)
            except OSError as error:
                if error.errno not in _NO_HARD_LINKS:
                    raise
                _write_new(path, text)  # FAT, exFAT, some shares
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        _sync_directory(path.parent)
    except FileExistsError:
        raise KeyError_(f"{path} already exists; refusing to overwrite a signing key") from None
    except OSError as error:
        raise KeyError_(f"cannot write signing key {path}: {error.strerror}") from None
    return signer


def _remove_stale_partials(path: Path) -> None:
    """Remove the partial key files a killed `keygen` left beside ``path`` (its process
    is gone): each may hold a secret key, which no one else would clean up."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        pid = stale.name[len(path.name) + 2 : -len(".partial")]
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            stale.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


# What a file system without hard links (FAT and exFAT on removable media, some network
# shares) answers to link().
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (never overwriting), write and sync ``text``; a failure leaves
    no file behind."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # UTF-8: a key is named after its log, whose origin may hold any letters
        # (C2SP key names are UTF-8; ASCII failed keygen for a store named 漢.db).
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


def _sync_directory(directory: Path) -> None:
    """Make a new name in ``directory`` survive a crash (where the OS allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_signer(path: Path) -> notes.Ed25519Signer:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise KeyError_(f"cannot read signing key {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise KeyError_(f"{path} is not a signer key: not UTF-8 text") from None
    try:
        return notes.parse_signer_key(text)
    except notes.NoteError as error:
        raise KeyError_(f"{path} is not a signer key: {error}") from None


class CheckpointText(NamedTuple):
    """A signed checkpoint from outside the store, with where it came from."""

    source: str  # a file name, for messages
    text: str


def read_checkpoint_file(path: str) -> CheckpointText:
    try:
        # utf-8-sig: a byte order mark an editor put first is no part of the note (it
        # read as the origin's first character: an "invalid signature", like forgery).
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise IntegrityError(f"{path} is not a signed checkpoint: {error}") from None
    if not text.strip():
        raise IntegrityError(f"{path} is not a signed checkpoint: the file is empty")
    if text.startswith(notes.TLOG_PROOF_HEADER):
        # Its checkpoint's signature lines would be read as signing the whole proof: an
        # "invalid signature", which reads as forgery.
        raise IntegrityError(
            f"{path} is not a signed checkpoint: it is an inclusion proof (it starts "
            f"{notes.TLOG_PROOF_HEADER}, as `prove inclusion` prints it); give a checkpoint "
            "as `enforcement-ledger checkpoint` prints it (a proof's own is the part after "
            "its first blank line)"
        )
    return CheckpointText(path, _one_final_newline(text))


def _one_final_newline(text: str) -> str:
    """A note ends in one newline; blank lines an editor added after it are not part
    of it (the signature covers the text before the signature lines, not these)."""
    return text.rstrip("\n") + "\n" if text.endswith("\n\n") else text


def parse_vkeys(values: Iterable[str]) -> list[notes.Ed25519Verifier]:
    """Verifier keys given as text or as files holding one."""
    verifiers = []
    for value in values:
        # A byte order mark an editor put first is no part of the key (read from the
        # file, or passed on as "$(cat FILE)").
        text = value.strip().removeprefix("\ufeff")
        if os.path.exists(text):
            try:
                text = Path(text).read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
                text = text.strip()
            except (OSError, UnicodeDecodeError) as error:
                reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
                raise KeyError_(
                    f"--vkey {value!r}: cannot read a verifier key from it: {reason}"
                ) from None
        if text.startswith("PRIVATE+KEY+"):
            raise KeyError_(
                f"--vkey {value!r} is the private signing key, which must stay with the "
                "operator; give its verifier key (`enforcement-ledger keygen --show`)"
            )
        try:
            verifiers.append(notes.parse_verifier_key(text))
        except notes.NoteError as error:
            if "+" not in text:
                raise KeyError_(
                    f"--vkey {value!r} is neither a file nor a C2SP verifier key "
                    "(<name>+<key id>+<key>)"
                ) from None
            raise KeyError_(f"--vkey {value!r} is not a C2SP verifier key: {error}") from None
    return verifiers


def sign_tree_head(origin: str, size: int, root: bytes, signer: notes.Ed25519Signer) -> str:
    checkpoint = notes.Checkpoint(origin=origin, size=size, root_hash=root)
    return notes.sign_checkpoint(checkpoint, [signer])


def check_extends(
    get: merkle.NodeGetter, previous: tuple[int, bytes] | None, size: int, root: bytes
) -> None:
    """Refuse to sign a head that does not extend the last signed one.

    The new root is folded from stored nodes; a consistency proof from the last
    signed checkpoint, read from the same nodes, catches a corrupted node table
    before the operator's key vouches for a false tree (O(log n) lookups).
    """
    if previous is None or previous[0] == 0:
        return
    old_size, old_root = previous
    try:
        proof = merkle.consistency_proof(get, old_size, size)
        merkle.verify_consistency(old_size, size, old_root, root, proof)
    except (merkle.ProofError, KeyError) as error:
        raise IntegrityError(
            f"refusing to sign: the tree of size {size} does not extend the last signed "
            f"checkpoint (size {old_size}): {error}; run `enforcement-ledger verify`"
        ) from None


def check_nodes_give_leaves(
    get: merkle.NodeGetter,
    previous: tuple[int, bytes] | None,
    end: int,
    leaves: Iterable[tuple[bytes, bytes | None]],
) -> None:
    """Refuse to sign over stored tree nodes the events do not give, or over events
    that no longer hash to the leaf recorded for them at append time.

    A root is folded from the stored frontier; ``check_extends`` ties the nodes to
    the last signed checkpoint, but not those of the events since, which no signature
    covers yet: an edited node there would be signed, and ``verify`` would then blame
    the events. So the frontier at ``end`` is rebuilt from the last signed one and the
    hashes of ``leaves`` (the stored leaves from the last signed size to ``end``, with
    their recorded hashes): work in proportion to what is not yet signed, none for an
    append after a signed one. An event edited and the nodes rebuilt from it would
    pass the first check; signed, `verify` would then call the event intact and blame
    its recorded hash.
    """
    start = previous[0] if previous is not None else 0
    if start >= end:
        return  # nothing unsigned; a checkpoint beyond the tree is check_extends' to refuse
    refusal = (
        "refusing to sign: the stored Merkle nodes do not match the events from "
        f"sequence {start} on (the node table, or those events, which no checkpoint signs "
        "yet, were changed outside the ledger); run `enforcement-ledger verify`"
    )
    try:
        # The frontier at the signed size: check_extends ties it to the signed root.
        tree = merkle.StreamingRoot.from_nodes(get, start)
        for sequence, (leaf, recorded) in enumerate(leaves, start):
            hashed = merkle.leaf_hash(leaf)
            if recorded != hashed:
                changed = (
                    "the log index has no row for it"
                    if recorded is None
                    else "the stored event's bytes no longer hash to the leaf recorded for "
                    "it at append time"
                )
                raise IntegrityError(
                    f"refusing to sign: sequence {sequence}: {changed} (the event, or the "
                    "index, which no checkpoint signs yet, was changed outside the ledger); "
                    "nothing was written: run `enforcement-ledger verify`",
                    sequence,
                )
            tree.append(hashed)
        stored = merkle.StreamingRoot.from_nodes(get, end)
    except KeyError:
        raise IntegrityError(refusal) from None
    if tree.size != end or tree.frontier() != stored.frontier():
        raise IntegrityError(refusal)


def check_stored_frontier(get: merkle.NodeGetter, report: VerifyReport) -> None:
    """Raise where a stored node that every append and checkpoint start from (the
    perfect subtrees whose fold is the root at the log's size, and the last event's
    leaf, which they check first) is missing or is not what the verified leaves give:
    a missing one stops every append, a wrong one would be folded into the next root
    signed (or, the last leaf, stops every append)."""
    rebuild = (
        "; every leaf verified, so `export --nl` then `copy --export` into a new store "
        "rebuilds the tree from them"
    )
    nodes = list(zip(merkle.frontier_nodes(report.size), report.frontier, strict=True))
    if report.last_leaf is not None and nodes[-1][0][0] != 0:  # else the frontier's last
        nodes.append(((0, report.size - 1), (0, report.last_leaf)))
    for (level, index), (_, expected) in nodes:
        first = index << level
        end = first + (1 << level)
        try:
            stored = get(level, index)
        except KeyError:
            missing = (
                f"sequence {first}: the Merkle node table has no node (level {level}, index "
                f"{index}), which every append and checkpoint start from: it was deleted "
                "outside the ledger"
            )
            if report.unsigned_from is None or report.unsigned_from >= end:
                raise IntegrityError(missing + rebuild, first) from None
            # Events (with index rows) added outside the ledger have no nodes either: a
            # rebuild from the events as they are now would keep them.
            added = max(first, report.unsigned_from)
            raise IntegrityError(
                f"{missing}, or events from {added} on were added outside the ledger (with "
                f"their index rows), and no signed checkpoint covers {report.unsigned_from}.."
                f"{end - 1} to tell which. Compare the events with an earlier export or an "
                "auditor's checkpoint before anything is rebuilt from them",
                first,
            ) from None
        if stored != expected:
            effect = (
                "every append and checkpoint refuse on it"
                if (level, index) not in merkle.frontier_nodes(report.size)
                else "the next append would fold it into the root it signs"
            )
            if report.unsigned_from is None or report.unsigned_from >= end:
                raise IntegrityError(
                    f"sequence {first}: the Merkle node (level {level}, index {index}) is "
                    f"not the one the verified leaves give, and {effect}: the node table "
                    f"was changed outside the ledger{rebuild}",
                    first,
                )
            # Events no checkpoint covers may have been edited, their recorded hashes
            # fixed up to match: the node then still gives the events as appended, and a
            # rebuild from the events as they are now would keep the edit.
            raise IntegrityError(
                f"sequence {first}: the Merkle node (level {level}, index {index}) is not "
                f"the one the stored events {first}..{end - 1} give: the node table was "
                "changed outside the ledger, or those events were (with the hashes "
                f"recorded for them), and no signed checkpoint covers {report.unsigned_from}"
                f"..{end - 1} to tell which. Compare the events with an earlier export or an "
                "auditor's checkpoint before anything is rebuilt from them",
                first,
            )


def check_index_matches(
    mismatch: tuple[str, int] | None, size: int, *, verified: bool = True
) -> None:
    """Raise where the log index (checked once every leaf verified, or was read:
    ``verified`` False) lacks a row for a sequence, or has one no leaf has: rows
    renumbered, deleted or added past the triggers, and lookups by sequence would find
    no event there, or the wrong one."""
    if mismatch is None:
        return
    kind, sequence = mismatch
    what, how = {
        "missing": ("the log index has no row for it", "rows renumbered or deleted"),
        "stray": (
            f"the log index has a row for it, but the log's {size} leaves end before",
            "rows renumbered or deleted",
        ),
        "unbacked": (
            "the log index has a row for it that lists no stored event",
            "the row added, or its event deleted",
        ),
    }[kind]
    rebuild = (
        "; every leaf verified, so `export --nl` then `copy --export` into a new store "
        "rebuilds it from them"
        if verified
        else ""
    )
    raise IntegrityError(
        f"sequence {sequence}: {what}: the ledger's index (ledger_entries) was changed "
        f"outside the ledger ({how}){rebuild}",
        sequence if kind == "missing" else size,
    )


def check_no_node_beyond(
    node: tuple[int, int] | None, size: int, *, verified: bool = True, events: int | None = None
) -> None:
    """Raise if the node table holds a node past the log's end: the next append
    would collide with it (appends write every node once), so none could succeed.
    ``verified`` False: the log's ``size`` leaves were read, but did not verify.
    ``events``: the log, named truncated, has these, and ``size`` is the most a
    checkpoint commits to (the nodes of the events cut are no other finding)."""
    if node is not None:
        level, index = node
        if events is not None and events < size:
            raise IntegrityError(
                f"sequence {size}: the Merkle node table holds a node (level {level}, index "
                f"{index}) beyond the {size} event(s) a checkpoint commits to (the log, "
                f"truncated, has {events}): it was written outside the ledger, or events "
                f"from {size} on were deleted too, and the next append that reaches it will "
                "fail",
                size,
            )
        if not verified:  # (events from the end deleted leave their nodes behind)
            raise IntegrityError(
                f"sequence {size}: the Merkle node table holds a node (level {level}, index "
                f"{index}) beyond the log's {size} event(s): it was written outside the "
                f"ledger, or events from {size} on were deleted, and the next append that "
                "reaches it will fail",
                size,
            )
        # The leaves verifying cannot tell a forged node from the last events deleted
        # with every checkpoint over them: a rebuild is advice for the first only.
        raise IntegrityError(
            f"sequence {size}: the Merkle node table holds a node (level {level}, index "
            f"{index}) beyond the log's {size} event(s): it was written outside the "
            f"ledger, or events from {size} on were deleted with every checkpoint that "
            "covered them, and the next append that reaches it will fail; the leaves "
            "and the tree verify, so if an earlier export or auditor's checkpoint shows "
            f"the log ended at {size}, `export --nl` then `copy --export` into a new "
            "store rebuilds the store from them",
            size,
        )


# --- proofs ---------------------------------------------------------------------


def inclusion_proof_text(
    get: merkle.NodeGetter,
    index: int,
    leaf: bytes,
    size: int,
    signed_checkpoint: str,
) -> str:
    """The tlog-proof of ``leaf`` at ``index``, checked against the checkpoint's root
    before it is given out: the proof comes from the stored node table, which only
    appends write and nothing else checks. The leaf, read through the log index, is
    the caller's to check first (``check_leaf_is_the_one_asked``)."""
    proof = merkle.inclusion_proof(get, index, size)
    root = _signed_root(signed_checkpoint)
    hashed = merkle.leaf_hash(leaf)
    try:
        merkle.verify_inclusion(index, size, hashed, proof, root)
    except merkle.ProofError as error:
        why = _unservable_inclusion(get, index, size, hashed, proof, root, error)
        raise IntegrityError(why) from None
    return notes.format_tlog_proof(index, proof, signed_checkpoint)


def check_leaf_is_the_one_asked(
    get: merkle.NodeGetter, index: int, leaf: bytes, event_id: str | None
) -> None:
    """The leaf was read through the log index, whose rows verify alone does not tie
    to their events: a row renumbered, or its event_id edited, leads to another event,
    whose proof would fail as an "altered" event, or (a valid proof of another event)
    be given out for the one asked. The leaf names its own sequence and event_id."""
    try:
        record = json.loads(leaf)
    except ValueError:
        return  # no event at all: the proof check refuses it as altered
    if not isinstance(record, dict):
        return
    carried, theirs = record.get("sequence"), record.get("event_id")
    if carried == index and (event_id is None or theirs == event_id):
        return
    carries = f"carries sequence {carried!r}"
    if event_id is None:
        asked = f"sequence {index}: the log index row for it leads to a stored event that {carries}"
    else:
        there = f"is '{theirs}'" if carried == index else carries
        asked = (
            f"event_id '{event_id}': the log index gives it sequence {index}, but the stored "
            f"event there {there}"
        )
    # Its leaf the one the node table holds at the sequence it carries: that event is
    # intact where it was appended, and only the index row leads to it wrongly.
    try:
        intact = isinstance(carried, int) and get(0, carried) == merkle.leaf_hash(leaf)
    except KeyError:
        intact = False
    blame = (
        "the log index (ledger_entries) was changed outside the ledger; "
        "`enforcement-ledger verify --read-models` names it"
        if intact
        else "the log index (ledger_entries), or that event, was changed outside the "
        "ledger; `enforcement-ledger verify --read-models` checks both"
    )
    raise IntegrityError(f"refusing to give out an inclusion proof for {asked}: {blame}")


def _unservable_inclusion(
    get: merkle.NodeGetter,
    index: int,
    size: int,
    hashed: bytes,
    proof: Sequence[bytes],
    root: bytes,
    error: merkle.ProofError,
) -> str:
    """Why an inclusion proof failed: the node table also holds the leaf (node level 0),
    so the event is blamed where that leaf and the proof give the signed root (the
    table's path is then sound), the table where the event's bytes are that leaf, and
    either or both where neither gives the root."""
    try:
        stored = get(0, index)
    except KeyError:
        stored = None
    if stored is not None and stored != hashed:
        try:
            merkle.verify_inclusion(index, size, stored, proof, root)
        except merkle.ProofError:
            pass
        else:
            return (
                f"refusing to give out an inclusion proof for sequence {index}: the stored "
                "event's bytes no longer hash to the leaf the signed checkpoint holds for it "
                "(the Merkle node table's copy of that leaf, with the proof, gives the signed "
                "root): the event was altered; `enforcement-ledger verify` names it"
            )
        return (
            f"refusing to give out an inclusion proof that does not verify against the signed "
            f"checkpoint ({error}): the stored event's bytes are not the leaf the Merkle node "
            "table holds for it, and neither gives the signed root: the event was altered, or "
            "the node table it is read from was changed or damaged, or both; "
            "`enforcement-ledger verify` checks the log itself from its leaves"
        )
    if stored is None:
        # With the table's copy of the leaf gone, nothing tells the event from the path.
        return (
            f"refusing to give out an inclusion proof that does not verify against the "
            f"signed checkpoint ({error}): the stored event was altered, or the Merkle node "
            f"table it is read from was changed (it has lost its copy of the leaf, level 0 "
            f"index {index}, that would tell which); `enforcement-ledger verify` checks the "
            "log itself from its leaves and names an altered event"
        )
    # The table's leaf is the event's bytes: the path above it was changed, or the
    # event was, its leaf in the table (and the hash recorded for it) made to match.
    return (
        f"refusing to give out an inclusion proof that does not verify against the "
        f"signed checkpoint ({error}): the stored Merkle node table it is read from was "
        "changed or damaged, or the event was altered and its leaf in that table changed "
        "to match; `enforcement-ledger verify` checks the log itself from its leaves and "
        "names an altered event"
    )


def consistency_proof_lines(
    get: merkle.NodeGetter, old_size: int, new_size: int, signed: dict[int, str]
) -> list[str]:
    """The consistency proof, base64 a line; checked first against the signed root at
    each of the two sizes a checkpoint (``signed``: size to note) vouches for, the other
    root computed from the same nodes (a damaged node then cannot pass unseen when one
    side is signed)."""
    proof = merkle.consistency_proof(get, old_size, new_size)
    if old_size in signed or new_size in signed:
        old_root, new_root = (
            _signed_root(signed[size]) if size in signed else merkle.root_at(get, size)
            for size in (old_size, new_size)
        )
        try:
            merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
        except merkle.ProofError as error:
            raise IntegrityError(_unservable("a consistency", error)) from None
    return [base64.b64encode(h).decode("ascii") for h in proof]


class ProofCheck(NamedTuple):
    """What an auditor's proof check established about one signed checkpoint."""

    origin: str
    size: int
    root: bytes
    signers: list[str]  # the trusted keys that signed it, as name+keyid

    @property
    def root_b64(self) -> str:
        return _b64(self.root)


def _check_exported_form(leaf: bytes) -> None:
    """The proof is for the event's exact bytes: the same event re-serialised (spaces,
    other key order, escapes) is another leaf, and is refused as that, not as an event
    without a sequence or outside the log."""
    from ledger.canonical import canonical_json

    try:
        record = json.loads(leaf)
    except ValueError:
        raise IntegrityError(
            "the event file is not an event as `export --nl` gives it: not JSON"
        ) from None
    if not isinstance(record, dict):
        raise IntegrityError(
            "the event file is not an event as `export --nl` gives it: not a JSON object"
        )
    if canonical_json(record) != leaf:
        raise IntegrityError(
            "the event is not byte for byte as `export --nl` gives it (RFC 8785 canonical "
            "JSON: keys sorted, no spaces, no needless escapes), and a proof is for those "
            "bytes: take the event's line from `export --nl` as it is"
        )


def check_inclusion_proof(
    proof_text: str, leaf: bytes, verifiers: Sequence[notes.Verifier]
) -> tuple[int, ProofCheck]:
    """Check a tlog-proof of ``leaf`` (an event as `export --nl` gives it) offline:
    the checkpoint's signature by a trusted key, the leaf's own sequence against the
    proof's index, and the path to the signed root. Returns (index, what was checked)."""
    if not proof_text.strip():
        raise IntegrityError("not an inclusion proof: the file is empty")
    try:
        proof = notes.parse_tlog_proof(_one_final_newline(proof_text))
    except notes.TlogProofError as error:
        raise IntegrityError(f"not an inclusion proof: {error}") from None
    # The leaf names its own sequence (canonical JSON escapes every quote in a value, so
    # this pattern is the key's): a proof for another position is refused by name.
    found = re.search(rb'"sequence":(\d+)[,}]', leaf)
    _check_exported_form(leaf)
    if found is None or int(found[1]) != proof.index:
        carries = f"sequence {int(found[1])}" if found else "no sequence"
        raise IntegrityError(
            f"the event carries {carries}, but the proof is for sequence {proof.index}"
        )
    signed = _signed(proof.checkpoint, verifiers, "the proof's checkpoint")
    try:
        reached = merkle.root_from_inclusion_proof(
            proof.index, signed.size, merkle.leaf_hash(leaf), proof.hashes
        )
    except merkle.ProofError as error:
        raise IntegrityError(f"the event is not in the signed log: {error}") from None
    if reached != signed.root:
        raise IntegrityError(
            f"the event is not in the signed log: the proof leads from it to root "
            f"{_b64(reached)}, but the signed checkpoint's root is {_b64(signed.root)}"
        )
    return proof.index, signed


def check_consistency_proof(
    proof_lines: Sequence[str], old_note: str, new_note: str, verifiers: Sequence[notes.Verifier]
) -> tuple[ProofCheck, ProofCheck]:
    """Check offline that the log at ``old_note``'s size is a prefix of the log at
    ``new_note``'s: both signed by a trusted key, for one origin, joined by the proof
    (one base64 hash a line, as `prove consistency` prints it)."""
    old = _signed(old_note, verifiers, "the old checkpoint")
    new = _signed(new_note, verifiers, "the new checkpoint")
    if old.origin != new.origin:
        raise IntegrityError(f"the checkpoints name two logs: {old.origin!r} and {new.origin!r}")
    try:
        proof = [base64.b64decode(line, validate=True) for line in proof_lines if line.strip()]
    except ValueError as error:
        raise IntegrityError(f"not a consistency proof: a line is not base64 ({error})") from None
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except merkle.ProofError as error:
        raise IntegrityError(
            f"the log of size {old.size} is not shown to be a prefix of the log of size "
            f"{new.size}: {error}"
        ) from None
    return old, new


def _signed(note: str, verifiers: Sequence[notes.Verifier], what: str) -> ProofCheck:
    """A signed checkpoint opened with the trusted keys (IntegrityError otherwise)."""
    checkpoint = _open(note, verifiers, None, what)
    trusted = {(v.name, v.key_id) for v in verifiers}
    _, signatures = notes.split_note(note)
    signers = [f"{s.name}+{s.key_id:08x}" for s in signatures if (s.name, s.key_id) in trusted]
    return ProofCheck(checkpoint.origin, checkpoint.size, checkpoint.root_hash, signers)


def _signed_root(note: str) -> bytes:
    text, _ = notes.split_note(note)
    return notes.Checkpoint.parse(text).root_hash


def _unservable(kind: str, error: merkle.ProofError) -> str:
    return (
        f"refusing to give out {kind} proof that does not verify against the signed "
        f"checkpoint ({error}): the stored Merkle node table it is read from was changed "
        "or damaged; `enforcement-ledger verify` checks the log itself from its leaves"
    )


# --- verification ---------------------------------------------------------------


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str


def logs_named(notes: Iterable[str]) -> set[str]:
    """The origins signed checkpoints name (a checkpoint note's first line)."""
    return {note.partition("\n")[0] for note in notes}


def check_origin_row(origin: str, stored: Sequence[StoredCheckpoint]) -> None:
    """Raise where every stored checkpoint names one log and the store's origin row
    another: the row was changed (each checkpoint, signed, was not), and the checkpoint
    that verify reads first is not what to blame."""
    named = logs_named(checkpoint.note for checkpoint in stored)
    if len(named) == 1 and origin not in named:
        raise IntegrityError(
            f"the store's origin (the ledger_meta row 'origin') is {origin!r}, but every "
            f"stored checkpoint names the log {named.pop()!r}: the origin row was changed "
            "outside the ledger"
        )


@dataclass
class VerifyReport:
    size: int
    root: bytes
    checkpoints: int = 0
    signatures: int = 0
    trusted: int = 0
    warnings: list[str] = field(default_factory=list)
    # The first sequence no signed checkpoint covers (None: every event is covered).
    unsigned_from: int | None = None
    # The recomputed perfect-subtree roots whose fold is the root (largest first).
    frontier: list[tuple[int, bytes]] = field(default_factory=list)
    # The hash of the last leaf (None for an empty log).
    last_leaf: bytes | None = None
    # The most events a checkpoint commits to past the log's end (0: none): the log was
    # named truncated (the nodes of the events cut are no other finding; nodes beyond
    # that size are).
    truncated: int = 0

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode("ascii")


_VERIFY_BATCH = 4096  # leaves per batch: an aligned subtree, a few MB of leaves


def _sequence_marker(index: int) -> bytes:
    return b'"sequence":%d' % index


def _check_sequence(leaf: bytes, index: int) -> None:
    """The leaf must carry its own position: a deleted or swapped row shows here.

    In canonical JSON a key's quotes are never escaped while any quote inside a
    string value is, so this byte pattern can only be the record's own key.
    """
    marker = _sequence_marker(index)
    at = leaf.find(marker)
    end = at + len(marker)
    if at < 0 or leaf[end : end + 1] not in (b",", b"}"):
        raise IntegrityError(
            f"sequence {index}: the leaf at position {index} does not carry sequence {index} "
            "(an event was deleted, reordered or edited)",
            index,
        )


def _judge_changed_hashes(
    found: list[tuple[str, notes.Checkpoint | None, str]],
    from_bytes: bytes,
    from_recorded: bytes | None,
    size: int,
    changed: list[int],
    total: int,
    *,
    final: bool,
    altered_below: int = 0,
) -> tuple[str, IntegrityError, str] | None:
    """What the checkpoints at ``size`` prove of the sequences below it whose bytes and
    recorded hashes differ, as ("altered" or "intact", the error saying so, the deciding
    checkpoint as messages name it): one whose root the recorded hashes give
    (``from_recorded``; None when some recorded hash is no hash at all), and the bytes
    do not, proves those events altered; when every one the bytes give, only the index's
    hashes were changed. Checkpoints from outside the
    store (trusted, given) decide when there are any: the store's own are evidence only
    if its key never left the operator's hands, so they decide only when none from
    outside is given at this size or beyond (``final``). ``altered_below``: the size
    below which events were found altered, their signed leaves taken for them. None:
    nothing proven here."""
    outside = [entry for entry in found if entry[0] != "stored"]
    deciding = outside or (found if final else [])
    if not deciding:
        return None
    within, named = _listed(changed, size, total)
    every = frozenset(within) if total <= len(within) else None

    def which(kind: str, source: str) -> str:
        return f"{_checkpoint_name(kind, source)} at size {size}"

    giving_bytes = [e for e in deciding if e[1] is not None and e[1].root_hash == from_bytes]
    giving_recorded = [
        e
        for e in deciding
        if e[1] is not None and from_recorded is not None and e[1].root_hash == from_recorded
    ]
    if giving_bytes and giving_recorded and from_bytes != from_recorded:
        (kind, _, source), (other, _, other_source) = giving_bytes[0], giving_recorded[0]
        decides = "" if outside else "; an auditor's --trusted checkpoint decides"
        return (
            "conflict",
            IntegrityError(
                f"sequence {within[0]}: the stored event's bytes and the hash recorded for it at "
                f"append time disagree, and so do two signed checkpoints of one size: "
                f"{which(kind, source)} gives the stored bytes, {which(other, other_source)} the "
                "recorded hashes. One was signed over a changed log (had the signing key left "
                f"the operator's hands?){decides}",
                within[0],
                every,
            ),
            "",
        )
    for kind, checkpoint, source in deciding:
        assert checkpoint is not None
        if from_recorded is not None and checkpoint.root_hash == from_recorded != from_bytes:
            if len(within) == 1:
                return (
                    "altered",
                    IntegrityError(
                        f"sequence {within[0]}: the stored event's bytes no longer hash to the "
                        f"leaf recorded at append time, which {which(kind, source)} confirms (the "
                        "event was altered)",
                        within[0],
                        every,
                    ),
                    _checkpoint_name(kind, source),
                )
            return (
                "altered",
                IntegrityError(
                    f"sequence {within[0]}: the stored events at sequences {named} no longer hash "
                    f"to the leaves recorded at append time, which {which(kind, source)} confirms "
                    "(the events were altered)",
                    within[0],
                    every,
                ),
                _checkpoint_name(kind, source),
            )
    if all(
        checkpoint is not None and checkpoint.root_hash == from_bytes
        for _, checkpoint, _ in deciding
    ):
        kind, _, source = deciding[0]
        if len(within) == 1:
            what = "the leaf hash the log index recorded for it at append time was"
            intact = "the stored event itself is intact"
        else:
            what = f"the leaf hashes the log index recorded at append time for {named} were"
            intact = "the stored events themselves are intact"
        log = (
            f"the log, with the events found altered before {altered_below} as signed,"
            if altered_below
            else "the log"
        )
        return (
            "intact",
            IntegrityError(
                f"sequence {within[0]}: {what} changed outside the ledger; {intact} ({log} "
                f"still matches {which(kind, source)})",
                within[0],
                every,
            ),
            _checkpoint_name(kind, source),
        )
    return None


def _checkpoints_disagree(
    sequence: int,
    first: tuple[int, str],
    gives: str,
    later: tuple[int, str],
    named: frozenset[int] | None = None,
) -> IntegrityError:
    """Two signed checkpoints, (size, name) each, judge one changed sequence apart."""
    other = "the recorded hashes" if gives == "the stored bytes" else "the stored bytes"
    decides = ""
    if first[1] == later[1] == _checkpoint_name("stored", ""):
        which = (
            f"the store's own signed checkpoints: the one at size {first[0]} gives {gives}, "
            f"the one at size {later[0]} {other}"
        )
        decides = "; an auditor's --trusted checkpoint decides"
    else:
        which = (
            f"two signed checkpoints: {first[1]} at size {first[0]} gives {gives}, "
            f"{later[1]} at size {later[0]} {other}"
        )
    return IntegrityError(
        f"sequence {sequence}: the stored event's bytes and the hash recorded for it at "
        f"append time disagree, and so do {which}. One of them was signed over a changed "
        f"log (had the signing key left the operator's hands?){decides}",
        sequence,
        named,
    )


def _checkpoint_name(kind: str, source: str) -> str:
    """ "the stored checkpoint", "the trusted checkpoint FILE": as messages name one."""
    return f"the {kind} checkpoint{' ' + source if source else ''}"


_NAMED_AT_MOST = 5


def _listed(sequences: list[int], size: int, total: int) -> tuple[list[int], str]:
    """The sequences below ``size`` and how a message names them (the first few of
    ``total``)."""
    within = [n for n in sequences if n < size]
    more = total - len(sequences)
    return within, ", ".join(str(n) for n in within) + (f" and {more} more" if more > 0 else "")


def _also_recorded(changed: list[int], total: int) -> str:
    _, named = _listed(changed, 1 << 62, total)
    return (
        f"; the hashes the index recorded at append time also differ from the stored "
        f"events at sequences {named}, and give no signed root either"
    )


def _findings(
    judgements: Sequence[tuple[str, IntegrityError, int, str]],
    undecided: int | None,
    stopped: IntegrityError | None,
    contradicted: int = 0,
) -> list[IntegrityError]:
    """The checkpoints' judgements with what the check found after them: a changed hash
    no checkpoint judged, the finding that stopped it. ``contradicted``: the size of a
    checkpoint from outside the store the log contradicts (0: none)."""
    found = [error for _, error, _, _ in judgements]
    if undecided is not None and (
        stopped is None or stopped.sequence is None or stopped.sequence > undecided
    ):
        found.append(_undecided_hash(undecided, stopped, contradicted))
    elif stopped is not None:
        found.append(stopped)
    return found


def _went_on(found: Sequence[IntegrityError]) -> str:
    """The first finding with what the check found after it."""
    return f"{found[0]}; the check went on to find: " + "; and then: ".join(map(str, found[1:]))


# How a finding of the store's own checkpoints is marked once one from outside the
# store contradicted the log (the check went on as plain verify does).
_STORE_OWN = (
    "that is the store's own checkpoint, evidence only if the signing key never left the "
    "operator's hands"
)


def _and_the_stores_own(error: IntegrityError, found: Sequence[IntegrityError]) -> str:
    """A finding that stopped the check, with what the store's own checkpoints had
    found before it (their evidence only)."""
    return (
        f"{error}; the store's own checkpoints, evidence only if the signing key never "
        "left the operator's hands, found: " + "; and then: ".join(map(str, found))
    )


def _undecided_hash(
    sequence: int, stopped: IntegrityError | None = None, contradicted: int = 0
) -> IntegrityError:
    """A changed hash no checkpoint judged; ``contradicted``: the size of a checkpoint
    from outside the store the log contradicts (0: none), which covers it if beyond."""
    if stopped is not None:
        why = f"the check stopped before a signed checkpoint could tell which: {stopped}"
    elif sequence < contradicted:
        why = (
            "the checkpoint from outside the store that covers it gives neither, and no "
            "other signed checkpoint covers it to tell which"
        )
    else:
        why = "no signed checkpoint covers it to tell which"
    return IntegrityError(
        f"sequence {sequence}: the stored event's bytes no longer hash to the leaf recorded "
        f"at append time: the event, or the hash recorded for it, was altered ({why})",
        sequence,
    )


class _StoreContradicts(IntegrityError):
    """A stored checkpoint, at size ``at``, contradicts what one from outside the store
    judged: it leads the report, and ``verify_log`` names after it what plain verify
    finds (``named``: the changed sequences it names, which plain verify's judgements
    of them repeat)."""

    def __init__(
        self, message: str, sequence: int | None, named: frozenset[int] | None, at: int
    ) -> None:
        self.at = at
        super().__init__(message, sequence, named)


def _reworded(error: IntegrityError, message: str) -> IntegrityError:
    """``error`` said as ``message``, of its kind (a store checkpoint contradicting one
    from outside stays that)."""
    if isinstance(error, _StoreContradicts):
        return _StoreContradicts(message, error.sequence, error.named, error.at)
    return IntegrityError(message, error.sequence, error.named)


class _OutsideDisagrees(IntegrityError):
    """A checkpoint from outside the store (trusted, given) contradicts the log: its
    finding leads the report, and ``verify_log`` goes on as plain verify would, to name
    what the store's own checkpoints and the leaves show after it. ``walk``: the walk
    with the store's own judgements held when it was met, which plain verify has."""

    def __init__(
        self,
        message: str,
        sequence: int | None,
        walk: tuple[_Walk, list[tuple[str, IntegrityError, int, str]]] | None = None,
    ) -> None:
        super().__init__(message, sequence)
        self.walk = walk


@dataclass
class _Walk:
    """What ``verify_log`` had judged, and the trees it judged against, before the
    store's own checkpoints judged while one from outside the store is still to come:
    restored should anything contradict them (their key may have left the operator's
    hands). Its trees (None: the stored bytes and the recorded hashes from the start)
    grow with the log meanwhile, and its changed sequences with them."""

    signed_bytes: merkle.StreamingRoot | None
    signed_recorded: merkle.StreamingRoot | None
    signed_broken: bool
    open_changed: int | None
    changed: list[int]
    changed_total: int
    altered_below: int
    judgements: list[tuple[str, IntegrityError, int, str]]
    last_good_size: int

    def extend(self, hashes: list[bytes], recorded: list[bytes], broken: bool) -> None:
        """The leaves folded meanwhile: their hashes, and the hashes recorded for them
        (``broken``: one is no hash)."""
        self.signed_broken = self.signed_broken or broken
        if self.signed_bytes is not None:
            assert self.signed_recorded is not None
            self.signed_bytes.extend_trusted(hashes)
            if not self.signed_broken:
                self.signed_recorded.extend_trusted(recorded)

    def count_changed(self, sequence: int) -> None:
        if self.open_changed is None:
            self.open_changed = sequence
        if len(self.changed) < _NAMED_AT_MOST:
            self.changed.append(sequence)
        self.changed_total += 1


class _Walked(NamedTuple):
    """What one walk of the log found (in order; none: it verified), the sequence to
    report, the report of the walk (None: it stopped before the log's end) and, where a
    stored checkpoint contradicting one from outside stopped it, that finding (None: it
    did not)."""

    findings: list[IntegrityError]
    sequence: int | None
    report: VerifyReport | None
    contradiction: _StoreContradicts | None


def verify_log(
    leaves: Iterable[tuple[bytes, bytes | None]],
    checkpoints: Sequence[StoredCheckpoint],
    *,
    origin: str | None,
    verifiers: Sequence[notes.Verifier],
    trusted: Sequence[CheckpointText] = (),
    given: Sequence[CheckpointText] = (),
    compare_recorded: bool = False,
    export: bool = False,
    then: Callable[[VerifyReport], list[IntegrityError]] | None = None,
    reread: Callable[[], Iterable[tuple[bytes, bytes | None]]] | None = None,
) -> VerifyReport:
    """Recompute the tree from leaf bytes and check every claim made about it (see
    ``_walk_log``). ``then``: what else to find once every leaf was read, where the
    walk found something (the report it gives is of the log as read); that follows.

    Where a stored checkpoint contradicts what one from outside the store judged, that
    leads the report, and the log is walked again as plain verify walks it (the leaves
    ``reread`` gives; none given: the contradiction ends the check): what that finds,
    the store's own checkpoints' findings marked as their evidence only, follows, save
    the judgements of sequences the lead names already. (The --trusted checkpoints
    past the contradicted size do not judge in that walk.)"""
    walked = _walk_log(
        leaves,
        checkpoints,
        origin=origin,
        verifiers=verifiers,
        trusted=trusted,
        given=given,
        compare_recorded=compare_recorded,
        export=export,
    )
    findings, sequence, report = walked.findings, walked.sequence, walked.report
    contradiction = walked.contradiction
    if contradiction is not None and reread is not None:
        contradicted = contradiction.named or frozenset()
        plain = _walk_log(
            reread(),
            checkpoints,
            origin=origin,
            verifiers=verifiers,
            compare_recorded=compare_recorded,
            export=export,
            store_own=True,
        )
        said = {str(found) for found in findings}
        findings += [
            found
            for found in plain.findings
            if str(found) not in said and (found.named is None or not found.named <= contradicted)
        ]
        report = plain.report
    if contradiction is not None:
        # Not reached: said, so the auditor does not take them for compared and agreeing.
        past = [
            f"{text.source} at size {size}"
            for text in trusted
            if (
                size := _open(
                    text.text, verifiers, origin, f"trusted checkpoint {text.source}"
                ).size
            )
            > contradiction.at
        ]
        if past:
            findings.append(
                IntegrityError(
                    f"the trusted checkpoint{'s' * (len(past) > 1)} {', '.join(past)} "
                    f"{'were' if len(past) > 1 else 'was'} not compared: past the stored "
                    f"checkpoint at size {contradiction.at} that contradicts the one from "
                    "outside, the check "
                    f"{'reads the log as plain verify does' if reread else 'stopped'}; verify with "
                    f"{'them' if len(past) > 1 else 'it'} alone to have "
                    f"{'them' if len(past) > 1 else 'it'} judge",
                    None,
                )
            )
    if not findings:
        assert report is not None
        return report
    if report is not None and then is not None:
        findings += then(report)
    if len(findings) == 1:
        raise findings[0]
    raise IntegrityError(_went_on(findings), sequence)


def _walk_log(
    leaves: Iterable[tuple[bytes, bytes | None]],
    checkpoints: Sequence[StoredCheckpoint],
    *,
    origin: str | None,
    verifiers: Sequence[notes.Verifier],
    trusted: Sequence[CheckpointText] = (),
    given: Sequence[CheckpointText] = (),
    compare_recorded: bool = False,
    export: bool = False,
    store_own: bool = False,
) -> _Walked:
    """Recompute the tree from leaf bytes and check every claim made about it.

    * each leaf carries its own sequence (gapless, in order);
    * each stored checkpoint is signed by a known key and its root equals the
      recomputed root at its size (which also makes successive checkpoints
      consistent with each other: they are prefixes of one recomputed log);
    * each ``trusted`` checkpoint (an auditor's own copy) matches likewise, which
      catches a history rewritten and re-signed with the operator's key.

    ``leaves`` yields (leaf bytes, hash recorded at append time or None). With
    ``compare_recorded`` the recorded hash only sharpens the report: it names the
    first sequence whose recomputed hash differs from the one written then.
    ``export``: the leaves are an export's, which may predate a checkpoint file given
    (a store's cannot: one shorter than a checkpoint was truncated). ``store_own``: the
    store's own checkpoints' findings are marked as their evidence only.
    """
    by_size: dict[int, list[tuple[str, notes.Checkpoint | None, str]]] = {}
    report_sigs = 0
    for stored in checkpoints:
        checkpoint = _open(
            stored.note, verifiers, origin, f"stored checkpoint at size {stored.size}"
        )
        if checkpoint.size != stored.size or checkpoint.root_hash != stored.root:
            raise IntegrityError(
                f"stored checkpoint at size {stored.size}: its columns disagree with its "
                "signed note"
            )
        report_sigs += 1
        by_size.setdefault(checkpoint.size, []).append(("stored", checkpoint, ""))
    trusted_count = 0
    for source, text in trusted:
        checkpoint = _open(text, verifiers, origin, f"trusted checkpoint {source}")
        by_size.setdefault(checkpoint.size, []).append(("trusted", checkpoint, source))
        trusted_count += 1
    for source, text in given:
        checkpoint = _open(text, verifiers, origin, f"checkpoint {source}")
        by_size.setdefault(checkpoint.size, []).append(("given", checkpoint, source))
        report_sigs += 1

    tree = merkle.StreamingRoot()
    last_good_size = 0
    # The last size a checkpoint from outside the store (trusted, given) matched: when
    # one of those disagrees, the store's own checkpoints may have been re-signed with
    # the operator's key in other hands, so the change may lie anywhere after it.
    last_vouched_size = 0
    pending_sizes = sorted(by_size)
    next_check = 0
    root_at_zero = merkle.EMPTY_ROOT

    # The first sequence whose hash recorded at append time is not its bytes' hash: the
    # event was altered, or the recorded hash was. A signed checkpoint over it tells
    # which: the stored bytes give its root (only the index's hashes changed), or the
    # recorded hashes do (the events changed), or neither (both, or other events too).
    hash_changed: int | None = None
    changed: list[int] = []  # such sequences (the first few), to name them together
    changed_total = 0
    as_recorded: merkle.StreamingRoot | None = None  # the tree of the recorded hashes
    recorded_broken = False  # a recorded "hash" that is no 32-byte hash: it gives no root
    # The checkpoints' judgements, in log order, held while the check goes on and later
    # checkpoints may contradict them: (outcome, its error, the size that gave it, the
    # deciding checkpoint as messages name it). The first is the report's lead.
    judgements: list[tuple[str, IntegrityError, int, str]] = []
    # Once the store's checkpoints have judged the sequences below a size, those after it
    # are judged afresh (`changed` then holds only theirs) against the tree that
    # checkpoint signed: an altered event's recorded leaf, not its bytes, which would put
    # every later root off by that one event and blame a range for it.
    open_changed: int | None = None  # the first such sequence not judged yet (folded)
    signed_bytes: merkle.StreamingRoot | None = None  # the signed tree, then the bytes
    signed_recorded: merkle.StreamingRoot | None = None  # the signed tree, then as recorded
    signed_broken = False  # recorded_broken, for signed_recorded
    altered_below = 0  # the size of the last judgement that found events altered
    # The store's own checkpoints' judgements, held while one from outside is still to
    # come: the sequences after them are judged against the tree they signed, as plain
    # verify would. The checkpoint from outside confirms them when it matches that tree
    # (its root commits to every leaf below it); anything that contradicts them restores
    # the walk as it was before them (``before_held``), which the one from outside then
    # decides alone. The report's lead if the check stops before that one.
    held: list[tuple[str, IntegrityError, int, str]] = []
    before_held: _Walk | None = None
    # Sizes of checkpoints from outside the store (trusted, given): the store's own are
    # evidence only if its key never left the operator's hands, so a judgement waits
    # for one of these when there is one.
    outside_sizes = sorted(
        size for size, found in by_size.items() if any(k != "stored" for k, _, _ in found)
    )
    # Once one from outside contradicts the log: what the check would have reported had
    # it stopped there, which leads the report, and the ids of the findings it names.
    # The check then goes on as plain verify does, without the checkpoints from outside.
    outside_found: list[IntegrityError] | None = None
    reported: set[int] = set()
    contradicted = 0  # the size of that one
    # The later ones from outside, set aside then, by size: one that matches the log as
    # stored shows the two from outside are not of one history (a split view).
    set_aside: dict[int, list[tuple[str, notes.Checkpoint | None, str]]] = {}
    split: list[IntegrityError] = []  # what those showed

    def rebase(outcome: str) -> None:
        """Judge what follows against the tree the checkpoint that just judged signed."""
        nonlocal signed_bytes, signed_recorded, signed_broken, open_changed, changed_total
        nonlocal altered_below
        if outcome == "altered":
            signed = signed_recorded if signed_recorded is not None else as_recorded
            assert signed is not None
            altered_below = signed.size
        else:
            signed = signed_bytes if signed_bytes is not None else tree
        signed_bytes, signed_recorded = signed.copy(), signed.copy()
        signed_broken = False
        open_changed = None
        changed.clear()
        changed_total = 0

    def walk_now() -> _Walk:
        return _Walk(
            None if signed_bytes is None else signed_bytes.copy(),
            None if signed_recorded is None else signed_recorded.copy(),
            signed_broken,
            open_changed,
            list(changed),
            changed_total,
            altered_below,
            list(judgements),
            last_good_size,
        )

    def restore(walk: _Walk) -> None:
        nonlocal signed_bytes, signed_recorded, signed_broken, open_changed
        nonlocal changed_total, altered_below, last_good_size
        signed_bytes, signed_recorded = walk.signed_bytes, walk.signed_recorded
        signed_broken, open_changed = walk.signed_broken, walk.open_changed
        changed[:], changed_total = walk.changed, walk.changed_total
        altered_below, judgements[:] = walk.altered_below, walk.judgements
        last_good_size = walk.last_good_size

    def hold() -> None:
        """Keep the walk as it is before the store's own checkpoints judge."""
        nonlocal before_held
        if before_held is None:
            before_held = walk_now()

    def unhold() -> None:
        """The walk as it was before the held judgements, which are dropped."""
        nonlocal before_held
        assert before_held is not None
        was, before_held = before_held, None
        held.clear()
        restore(was)

    def stopped_findings(error: IntegrityError) -> tuple[list[IntegrityError], int | None]:
        """What the check reports when ``error`` stops it (and the sequence to report)."""
        # The first finding is reported: a leaf whose recorded hash differs, met before
        # anything decided whether the event or that hash changed.
        if hash_changed is None or (error.sequence is not None and error.sequence <= hash_changed):
            return [error], error.sequence
        if held:
            # The store's own judged, and the check stopped before one from outside could.
            kind, lead, size, name = held[0]
            noted = IntegrityError(
                f"{lead}; that is the store's own checkpoint, evidence only if the signing "
                "key never left the operator's hands (the check stopped before one from "
                "outside the store could decide)",
                lead.sequence,
            )
            found = [*judgements, (kind, noted, size, name), *held[1:]]
            return _findings(found, open_changed, error), hash_changed
        if judgements and error is not judgements[0][1]:
            # The checkpoints judged it (and maybe more) before this later finding.
            return _findings(judgements, open_changed, error), hash_changed
        return [_undecided_hash(hash_changed, error)], hash_changed

    def check_size() -> None:
        nonlocal next_check
        while next_check < len(pending_sizes) and pending_sizes[next_check] == tree.size:
            size = pending_sizes[next_check]
            if by_size[size]:  # (none left: only outside ones, dropped)
                try:
                    check_at(size)
                except _OutsideDisagrees as error:
                    go_on_without_outside(size, error)
            for kind, checkpoint, source in set_aside.pop(size, ()):
                assert checkpoint is not None
                # Compared with the tree the walk judges roots by (events found altered
                # taken as signed). Past a forged one at size 0, no history to split.
                walked = signed_bytes if signed_bytes is not None else tree
                if contradicted and checkpoint.root_hash == walked.root():
                    log = (
                        f"the log, with the events found altered before {altered_below} as signed,"
                        if altered_below
                        else "the log as stored,"
                    )
                    split.append(
                        IntegrityError(
                            f"{_checkpoint_name(kind, source)} at size {size} matches "
                            f"{log} so it and the one from outside at size {contradicted} "
                            "are not of one history: their key signed two logs (a split "
                            "view), or one of them is not the log's",
                            contradicted,
                        )
                    )
            next_check += 1

    def go_on_without_outside(size: int, error: _OutsideDisagrees) -> None:
        """A checkpoint from outside contradicts the log at ``size``: what the check
        would report, had it stopped here, leads; the walk goes on as plain verify's,
        the store's own checkpoints judging (the later ones from outside commit to the
        log this one contradicts, and are not compared)."""
        nonlocal outside_found, contradicted, before_held
        outside_found, _ = stopped_findings(error)
        contradicted = size
        reported.update(map(id, outside_found))
        if error.walk is not None:  # the store's own judgements, named in its message
            walk, walk_held = error.walk
            restore(walk)
            reported.update(id(judged) for _, judged, _, _ in walk_held)
            judgements.extend(walk_held)
            held.clear()
            before_held = None
        for later in pending_sizes[next_check:]:
            set_aside[later] = [entry for entry in by_size[later] if entry[0] != "stored"]
            by_size[later] = [entry for entry in by_size[later] if entry[0] == "stored"]
        outside_sizes.clear()
        if by_size[size]:
            check_one(size)

    def check_alone(size: int) -> tuple[IntegrityError, str] | None:
        """Check ``size`` again as if the store's own checkpoints had judged nothing
        (their judgements dropped): where that fails too, its error and the message
        naming it with what they found, as their evidence only."""
        store_found = [error for _, error, _, _ in held]
        unhold()
        try:
            check_one(size)
        except IntegrityError as error:
            return error, _and_the_stores_own(error, store_found)
        return None

    def check_at(size: int) -> None:
        nonlocal before_held
        if before_held is None:
            check_one(size)
        elif any(kind != "stored" for kind, _, _ in by_size[size]):
            # One from outside decides as if the store's own had judged nothing;
            # where it cannot, it may still confirm what they judged.
            walk, walk_held, walked = walk_now(), list(held), before_held
            unhold()
            try:
                check_one(size)
            except IntegrityError:
                restore(walk)
                held[:], before_held = walk_held, walked
                try:
                    check_one(size)
                except IntegrityError:
                    failed = check_alone(size)  # fails as it did first
                    if failed is not None:
                        error, message = failed
                        if isinstance(error, _OutsideDisagrees):
                            raise _OutsideDisagrees(
                                message, error.sequence, (walk, walk_held)
                            ) from None
                        raise _reworded(error, message) from None
        else:
            try:
                check_one(size)
            except IntegrityError:
                # The check stops here, before the one from outside (unless the walk
                # without the store's own judgements passes).
                failed = check_alone(size)
                if failed is not None:
                    raise _reworded(*failed) from None
            else:
                if before_held is not None:
                    # The store's own checkpoints here that the walk before the held
                    # judgements gives (it names ranges with them, once restored).
                    was = before_held.signed_bytes
                    root = (tree if was is None else was).root() if size else root_at_zero
                    stored_here = [c for k, c, _ in by_size[size] if k == "stored"]
                    if all(c is not None and c.root_hash == root for c in stored_here):
                        before_held.last_good_size = size

    def check_one(size: int) -> None:
        nonlocal last_good_size, last_vouched_size, before_held
        root = tree.root() if size else root_at_zero
        found = by_size[size]
        from_outside = any(kind != "stored" for kind, _, _ in found)
        # While a checkpoint from outside is given at this size or later, the store's
        # own narrow nothing and decide nothing.
        outside_later = any(n >= size for n in outside_sizes)
        if judgements:  # judged already: do the later checkpoints agree?
            assert as_recorded is not None
            all_recorded = None if recorded_broken else as_recorded.root()
            for kind, checkpoint, source in found:
                assert checkpoint is not None
                # The recorded hashes throughout contradict every "intact" judgement
                # (and agree with every "altered" one); the stored bytes the reverse.
                if checkpoint.root_hash == all_recorded:
                    contradicted, gives = "intact", "the stored bytes"
                elif checkpoint.root_hash == root:
                    contradicted, gives = "altered", "the recorded hashes"
                else:
                    continue
                at = next((i for i, j in enumerate(judgements) if j[0] == contradicted), None)
                if at is not None:
                    _, error, first, name = judgements[at]
                    assert error.sequence is not None
                    if kind == "stored" and name != _checkpoint_name("stored", ""):
                        # The auditor's copy is not signed with the key in question.
                        other = (
                            "the recorded hashes"
                            if gives == "the stored bytes"
                            else "the stored bytes"
                        )
                        decided = f"{name} at size {first}"
                        confirms = (
                            ""
                            if decided in str(error)
                            else f"; {decided} confirms it from outside the store"
                        )
                        found_too = [
                            later
                            if name_later != _checkpoint_name("stored", "")
                            or _STORE_OWN in str(later)
                            else IntegrityError(
                                f"{later}; {_STORE_OWN}", later.sequence, later.named
                            )
                            for _, later, _, name_later in judgements[at + 1 :]
                        ]
                        del judgements[at:]  # it and what was judged on top of it
                        named = frozenset().union(
                            *(e.named for e in (error, *found_too) if e.named is not None)
                        )
                        contradiction = _StoreContradicts(
                            f"{error}{confirms}; the stored checkpoint at size {size} gives "
                            f"{other} instead: it was signed over a changed log (had the "
                            "signing key left the operator's hands?)",
                            error.sequence,
                            named,
                            size,
                        )
                        if not found_too:
                            raise contradiction
                        # What was judged on top of it, from outside the store or (marked)
                        # by its own checkpoints, stands: the judgement it rests on does.
                        raise _StoreContradicts(
                            _went_on([contradiction, *found_too]), error.sequence, named, size
                        )
                    del judgements[at:]  # it and what was judged on top of it
                    raise _checkpoints_disagree(
                        error.sequence,
                        (first, name),
                        gives,
                        (size, _checkpoint_name(kind, source)),
                        error.named,
                    )
        # Judged against the tree the last judgement found signed (before one: the
        # stored bytes and the recorded hashes from the start).
        bytes_tree = signed_bytes if signed_bytes is not None else tree
        root = bytes_tree.root() if size else root_at_zero
        from_recorded = None  # the recorded hashes' root, while a judgement waits
        judged = None
        if open_changed is not None:
            recorded_tree = signed_recorded if signed_recorded is not None else as_recorded
            assert recorded_tree is not None
            broken = signed_broken if signed_recorded is not None else recorded_broken
            from_recorded = None if broken else recorded_tree.root()
            judged = _judge_changed_hashes(
                found, root, from_recorded, size, changed, changed_total,
                final=not outside_later, altered_below=altered_below,
            )  # fmt: skip
            if judged is not None and judged[0] == "conflict":
                raise judged[1]
            if judged is None and outside_later and not from_outside:
                # What the store's own would judge, held until the checkpoint from
                # outside decides (plain verify names it).
                alone = _judge_changed_hashes(
                    found, root, from_recorded, size, changed, changed_total,
                    final=True, altered_below=altered_below,
                )  # fmt: skip
                if alone is not None and alone[0] != "conflict":
                    hold()
                    held.append((alone[0], alone[1], size, alone[2]))
                    rebase(alone[0])
                    from_recorded = None
                    assert signed_bytes is not None
                    root = signed_bytes.root()
            if judged is not None:
                # Held, from outside the store or not: a checkpoint from outside
                # decides these sequences, and those after it are still to be checked.
                error = judged[1]
                if outside_found is not None or store_own:  # evidence only
                    error = IntegrityError(f"{error}; {_STORE_OWN}", error.sequence, error.named)
                judgements.append((judged[0], error, size, judged[2]))
                rebase(judged[0])
                from_recorded = None
                assert signed_bytes is not None
                root = signed_bytes.root()  # the signed root: this checkpoint's
        skipped = False
        # Outside checkpoints first: theirs is the finding that counts when both differ.
        for kind, checkpoint, source in sorted(found, key=lambda entry: entry[0] == "stored"):
            assert checkpoint is not None
            if kind == "stored" and judged is not None and from_outside:
                continue  # one from outside judged this size: the store's decide nothing
            if (
                kind == "stored"
                and from_recorded is not None
                and checkpoint.root_hash == from_recorded
            ):
                # It agrees with the recorded hashes, not the bytes: judged above, or
                # by a checkpoint from outside still to come (this one may be
                # re-signed), so it vouches for no range here.
                skipped = True
                continue
            if checkpoint.root_hash != root:
                hint = {
                    "trusted": "history was rewritten since the auditor saved it",
                    "given": "these events differ from the log the checkpoint signed",
                }.get(kind, "an event in this range was altered")
                start = last_good_size
                # One from outside contradicting the log leads the report; the check
                # goes on (check_size) to name what plain verify finds after it.
                failed = IntegrityError if kind == "stored" else _OutsideDisagrees
                if size == 0:
                    raise failed(
                        f"{_checkpoint_name(kind, source)} at size 0 "
                        f"says {_b64(checkpoint.root_hash)}, but an empty log's root is "
                        f"{_b64(root)}: it is no checkpoint of any log (forged)",
                        0,
                    )
                if (kind != "stored" or outside_later) and last_vouched_size < last_good_size:
                    # A checkpoint from outside disagrees: the store's own ones are
                    # signed with the key in question, so they narrow nothing.
                    start = last_vouched_size
                    hint += (
                        f" (the store's own checkpoints would place it in "
                        f"{last_good_size}..{size - 1}, but they are evidence only if "
                        "the signing key never left the operator's hands)"
                    )
                if outside_found is not None or store_own:  # evidence only
                    hint += f"; {_STORE_OWN}"
                if open_changed is not None:
                    hint += _also_recorded(changed, changed_total)
                taken = (
                    f", with the events found altered before {altered_below} as signed,"
                    if altered_below
                    else ""
                )
                raise failed(
                    f"sequence {start}..{size - 1}: root at size {size}{taken} is "
                    f"{_b64(root)} but {_checkpoint_name(kind, source)} says "
                    f"{_b64(checkpoint.root_hash)}; {hint}",
                    start,
                )
        if not skipped:
            last_good_size = size
        if from_outside:
            last_vouched_size = size
            if held:
                # It matched the tree the store's own judgements signed: it confirms
                # them, before its own judgement at this size.
                kind, source = next((k, s) for k, _, s in found if k != "stored")
                outside = _checkpoint_name(kind, source)
                at = next((i for i, j in enumerate(judgements) if j[2] == size), None)
                if at is None:  # it judged nothing itself: say that it confirms them
                    at = len(judgements)
                    outcome, error, judged_at, name = held[-1]
                    held[-1] = (
                        outcome,
                        IntegrityError(
                            f"{error}; {outside} at size {size} matches the log as found "
                            "here, which confirms from outside the store what its own "
                            "checkpoints found",
                            error.sequence,
                        ),
                        judged_at,
                        name,
                    )
                # Credited to it (a later checkpoint contradicting them contradicts it,
                # not only the store's own), as the one that decides them.
                judgements[at:at] = [(o, e, size, outside) for o, e, _, _ in held]
                held.clear()
                before_held = None

    check_size()
    sha256 = hashlib.sha256
    iterator = iter(leaves)
    index = 0  # leaves before the current batch
    last_leaf: bytes | None = None
    # Batches: hashing, comparing and folding go through list comprehensions and C
    # list equality; the checks and their order (first bad leaf or root) are those
    # of a leaf-by-leaf loop.
    reached_end = False  # every leaf read: the report's size is the log's
    truncated = 0
    try:
        while batch := list(islice(iterator, _VERIFY_BATCH)):
            not_bytes = None  # offset of a stored event that is not bytes at all
            try:
                hashes = [sha256(b"\x00" + leaf).digest() for leaf, _ in batch]
            except TypeError:  # TEXT or NULL where a leaf was: changed outside the ledger
                not_bytes = next(i for i, (leaf, _) in enumerate(batch) if not _is_bytes(leaf))
                hashes = [sha256(b"\x00" + leaf).digest() for leaf, _ in batch[:not_bytes]]
            bad = len(batch) if not_bytes is None else not_bytes  # first leaf failing a check
            for offset, (leaf, _) in enumerate(batch[:bad]):
                marker = b'"sequence":%d' % (index + offset)
                at = leaf.find(marker)
                if at < 0 or leaf[at + len(marker) : at + len(marker) + 1] not in (b",", b"}"):
                    bad = offset
                    break
            altered = None  # a stored event the index does not list
            pending: list[int] = []  # this batch's such sequences, counted once folded
            if compare_recorded:
                recorded = [digest for _, digest in batch[:bad]]
                good = hashes[:bad]
                if recorded != good:
                    for offset, (was, now) in enumerate(zip(recorded, good, strict=True)):
                        if was is None:
                            altered = bad = offset
                            break
                        if was != now:
                            if hash_changed is None:
                                hash_changed = index + offset
                                as_recorded = tree.copy()  # the two trees part here
                            pending.append(index + offset)
            # Fold the good leaves, checking every checkpoint size they reach.
            stop = index + bad
            while tree.size < stop:
                upto = stop
                if next_check < len(pending_sizes):
                    upto = min(upto, pending_sizes[next_check])
                if as_recorded is not None:
                    # A recorded "hash" that is no bytes (edited into text) gives no root.
                    fold = [digest for _, digest in batch[tree.size - index : upto - index]]
                    broken = not all(isinstance(d, bytes) and len(d) == 32 for d in fold)
                    if broken:
                        # Any length would fold: two neighbours' values cut and joined
                        # anew gave the signed root. None of them is a hash.
                        recorded_broken = signed_broken = True
                    if not recorded_broken:
                        as_recorded.extend_trusted(fold)  # type: ignore[arg-type]
                    if signed_bytes is not None:
                        assert signed_recorded is not None
                        signed_bytes.extend_trusted(hashes[tree.size - index : upto - index])
                        if not signed_broken:
                            signed_recorded.extend_trusted(fold)  # type: ignore[arg-type]
                    if before_held is not None:
                        before_held.extend(
                            hashes[tree.size - index : upto - index],
                            fold,  # type: ignore[arg-type]
                            broken,
                        )
                tree.extend_trusted(hashes[tree.size - index : upto - index])
                last_leaf = hashes[upto - index - 1]
                # Judged with the checkpoint at this size: only the sequences below it.
                while pending and pending[0] < upto:
                    if before_held is not None:
                        before_held.count_changed(pending[0])
                    if open_changed is None:
                        open_changed = pending[0]
                    if len(changed) < _NAMED_AT_MOST:
                        changed.append(pending[0])
                    changed_total += 1
                    pending.pop(0)
                check_size()
            if altered is not None:
                raise IntegrityError(
                    f"sequence {stop}: a stored event the log index does not list (it was "
                    "added outside the ledger, or its index row deleted)",
                    stop,
                )
            if not_bytes is not None and bad == not_bytes:
                from ledger.persistence import describe_stored

                raise IntegrityError(
                    f"sequence {stop}: the stored event is {describe_stored(batch[bad][0])}, "
                    "not bytes: it was changed outside the ledger",
                    stop,
                )
            if bad < len(batch):
                _check_sequence(batch[bad][0], stop)  # raises with the full explanation
            index += len(batch)
        reached_end = True
        # Sizes still to come whose checkpoints count (none left: only outside ones,
        # dropped once one contradicted the log).
        if any(by_size[size] for size in pending_sizes[next_check:]):
            missing = max(size for size in pending_sizes[next_check:] if by_size[size])
            truncated = missing
            sources = [source for kind, _, source in by_size[missing] if kind != "stored"]
            if sources and export:  # a checkpoint file signed after the export was taken?
                raise IntegrityError(
                    f"sequence {tree.size}: the log has {tree.size} events but the checkpoint "
                    f"{sources[0]} commits to {missing}: the log was truncated, or (an export) "
                    "it was written before that checkpoint was signed: export it again, or give "
                    "the checkpoint of its own size",
                    tree.size,
                )
            which = f"the checkpoint {sources[0]}" if sources else "a checkpoint"
            raise IntegrityError(
                f"sequence {tree.size}: the log has {tree.size} events but {which} commits "
                f"to {missing}; the log was truncated",
                tree.size,
            )
        findings: list[IntegrityError] = []
        if judgements:
            findings = _findings(judgements, open_changed, None, contradicted)
        elif hash_changed is not None:
            findings = [_undecided_hash(hash_changed, None, contradicted)]
        sequence = findings[0].sequence if findings else None
        stopped = None
    except IntegrityError as error:
        findings, sequence = stopped_findings(error)
        stopped = error
    if outside_found is not None:
        # One from outside contradicted the log: its finding leads, then what the check,
        # gone on as plain verify, found that it does not name already.
        findings = [
            *outside_found,
            *split,
            *(f for f in findings if id(f) not in reported),
        ]
        sequence = outside_found[0].sequence
    contradicting = stopped if isinstance(stopped, _StoreContradicts) else None
    if findings and not reached_end:
        return _Walked(findings, sequence, None, contradicting)

    warnings = []
    # Every checkpoint opened above is signed by a known key, whatever its kind.
    covered = max(by_size, default=0)
    if covered < tree.size:
        warnings.append(
            f"sequence {covered}..{tree.size - 1}: covered by no signed checkpoint "
            "(the key holder signs them with `enforcement-ledger checkpoint`; or compare "
            "with a --trusted checkpoint)"
        )
    report = VerifyReport(
        warnings=warnings,
        size=tree.size,
        root=tree.root() if tree.size else merkle.EMPTY_ROOT,
        checkpoints=len(checkpoints) + len(given),
        signatures=report_sigs,
        trusted=trusted_count,
        unsigned_from=covered if covered < tree.size else None,
        frontier=tree.frontier(),
        last_leaf=last_leaf,
        truncated=truncated,
    )
    return _Walked(findings, sequence, report, contradicting)


def _is_bytes(value: object) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)


def _open(
    text: str, verifiers: Sequence[notes.Verifier], origin: str | None, what: str
) -> notes.Checkpoint:
    try:
        checkpoint, _ = notes.open_checkpoint(text, verifiers, origin=origin)
    except notes.UnverifiedNoteError:
        given = ", ".join(f"{v.name}+{v.key_id:08x}" for v in verifiers)
        signers = ", ".join(_signers(text)) or "no key"
        advice = f"checked with {given}" if given else "give the log's key with --vkey"
        raise IntegrityError(
            f"{what}: no signature by a trusted key: it is signed by {signers}; {advice}"
        ) from None
    except (notes.NoteError, notes.CheckpointError) as error:
        raise IntegrityError(f"{what}: {error}") from None
    return checkpoint


def _signers(text: str) -> list[str]:
    """``name+keyid`` of each signature of a note (as written, none verified)."""
    try:
        _, signatures = notes.split_note(text)
    except notes.NoteError:
        return []
    return [f"{sig.name}+{sig.key_id:08x}" for sig in signatures]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
