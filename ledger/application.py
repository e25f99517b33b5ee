"""The ledger application: appends checked, sequenced, hashed events atomically."""

from __future__ import annotations

import bisect
import functools
import gc
import json
import re
import time
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ledger import merkle
from ledger.canonical import canonical_json
from ledger.location import StoreLocation
from ledger.persistence import (
    Database,
    EntryRef,
    EntryRow,
    EventRow,
    TargetEntry,
    WriteTransaction,
    lane_key,
    leaf_bytes,
    open_storage,
)
from ledger.rules import (
    CLOCK_BEHIND_LIMIT,
    FUTURE_TOLERANCE,
    NEW_INPUT_CHECKS_SINCE,
    RECORD_TIME_STEP,
    AccountKind,
    Entry,
    LaneCache,
    LaterEventInvalid,
    RetractedBeforeTarget,
    RuleViolation,
    StreamKind,
    StreamView,
    SubjectKind,
    Unregistered,
    check_not_in_future,
    live_entries,
    stream_id,
    stream_of,
)
from ledger.vocabulary import (
    ASSIGNED_FIELDS,
    HIDDEN_CHARACTERS,
    PART_OF_A_REPR_ESCAPE,
    SLUG,
    TARGETED_TYPES,
    actor_problem,
    iso,
    name_key,
    platform_of,
    quoted,
    shorten,
)

if TYPE_CHECKING:  # cryptography, pydantic and eventsourcing load only when in use
    from eventsourcing.application import LocalNotificationLog, Repository
    from eventsourcing.persistence import ApplicationRecorder

    from ledger.events import AnyEvent
    from ledger.library import LedgerLibrary
    from ledger.notes import Ed25519Signer


class InlineProjection(Protocol):
    """A read model updated in the append's own transaction (the write side
    knows only this protocol, never the read side's tables)."""

    def begin(self, db: Any, next_sequence: int) -> None: ...

    def apply(self, db: Any, records: Sequence[tuple[int, dict[str, Any]]]) -> None: ...

    def finish(self, db: Any) -> None: ...


MAX_ATTEMPTS = 8
ANALYZE_AFTER = 10_000  # events in one batch
FLUSH_EVERY = 2000  # events per insert round inside one batch transaction
# What one append keeps in memory, whatever its size: lanes and streams beyond these
# are dropped least recently used first and re-read from the log when needed.
LANE_CACHE = 20_000  # in each of LaneCache's two segments
STREAM_CACHE = 20_000


class LedgerError(Exception):
    """A data or domain error the user can act on (CLI exit status 1)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.reason = message
        # (field, id) when the event names an account or subject with no registration:
        # the CLI then looks for the registered id that was likely meant.
        self.unregistered: tuple[str, str] | None = None
        # Refused for the file's order alone: a later line gives what it lacked.
        self.given_too_early = False
        super().__init__(f"line {line}: {message}" if line is not None else message)

    def with_note(self, note: str) -> LedgerError:
        """The same error with ``note`` added to its reason."""
        # No "did you mean" for it (the note names the line that gives what it lacked).
        return LedgerError(self.reason + note, self.line)

    def without_line(self) -> LedgerError:
        """The same error for input that has no lines (an event from flags)."""
        bare = LedgerError(self.reason)
        bare.unregistered = self.unregistered
        return bare


# _sign_head's previous checkpoint not yet read (None is "no checkpoint").
_UNREAD: Any = object()


def _check_not_cut_short(size: int, previous: tuple[int, bytes] | None) -> None:
    """Refuse to sign a log shorter than its last signed checkpoint: a consistency
    proof needs the old size within the new one."""
    if previous is None or previous[0] <= size:
        return
    from ledger.integrity import IntegrityError

    raise IntegrityError(
        f"refusing to sign: the log index lists {size} event(s), fewer than the "
        f"{previous[0]} the last signed checkpoint commits to: events, or their index "
        "rows, were removed outside the ledger; nothing was written: "
        "`enforcement-ledger verify` names what changed",
        size,
    )


# Skipped ids an append result names; the rest are counted.
SKIPPED_NAMED = 5
# Already recorded ids a batch remembers having skipped, to tell a line repeating one
# from the first re-sent: the most recent, so memory stays flat (a repeat further back
# than this is counted as already recorded, which it also is).
SKIPS_REMEMBERED = 100_000


@dataclass
class AppendResult:
    appended: int = 0
    skipped: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    # Skipped as already recorded, and as repeating an earlier line of the batch (same
    # id, same content): counted, and the first SKIPPED_NAMED of each named, so a batch
    # of a million re-sent events holds no million ids.
    skipped_recorded: int = 0
    skipped_repeated: int = 0
    skipped_ids: list[str] = field(default_factory=list)
    repeated_ids: list[str] = field(default_factory=list)
    # Skipped events that are retracted, each with its retraction (re-sending an event
    # does not restore it, which a person re-sending it would likely expect), unless the
    # batch re-sent that retraction after it, saying so itself.
    skipped_retracted: dict[str, str] = field(default_factory=dict)
    # Checked in full, then rolled back: what an append would do now.
    dry_run: bool = False
    # The event_id made for the last event given none (`record` names it: a retraction
    # or an appeal of the event needs it); one, so memory stays flat in a bulk append.
    last_assigned_id: str | None = None
    # Events before the batch that no checkpoint covered and its checkpoint signs (first,
    # last sequence): checkpoints deleted from under an edit would be signed over so.
    first_signed: tuple[int, int] | None = None
    # The batch's first registrations (type, id, platform, event_id), for the CLI to
    # point out one that is likely a misspelling of an id the ledger holds.
    registered: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    # The batch's registrations past those listed: not compared, which the CLI says.
    registered_unlisted: int = 0
    # The statistics update after a large batch's commit, if it failed (the batch is in).
    analyze_error: BaseException | None = None

    def as_json(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "appended": self.appended,
            "skipped": self.skipped,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
        }
        if self.skipped:
            # Which were skipped, as the text names them: the first SKIPPED_NAMED of each
            # kind, with each kind's count to say whether that is all.
            summary["skipped_recorded"] = self.skipped_recorded
            summary["skipped_ids"] = list(self.skipped_ids)
            summary["skipped_repeated"] = self.skipped_repeated
            summary["repeated_ids"] = list(self.repeated_ids)
        if self.dry_run:
            summary["dry_run"] = True
        if self.analyze_error is not None:  # the batch is in; said on stderr too
            summary["statistics_refreshed"] = False
        return summary


class _RolledBack(Exception):
    """Ends a dry run's transaction after every check has passed."""

    def __init__(self, result: AppendResult) -> None:
        self.result = result


@dataclass(frozen=True)
class SourceCheckpoint:
    """A signed checkpoint of the log being copied, as that store holds it."""

    size: int
    root: bytes
    note: str
    created_at: str

    def check_note(self) -> None:
        """The note must state the size and root its columns hold: the copy keeps both,
        and a store whose two disagree fails verify. (Its signature is the verifier
        key's to check, which the copy does not have.)"""
        from ledger import notes

        try:
            text, _ = notes.split_note(self.note)
            stated = notes.Checkpoint.parse(text)
        except (notes.NoteError, notes.CheckpointError) as error:
            raise LedgerError(
                f"the source's stored checkpoint at size {self.size} is not a signed "
                f"checkpoint ({error}); verify the source"
            ) from None
        if (stated.size, stated.root_hash) != (self.size, self.root):
            raise LedgerError(
                f"the source's stored checkpoint at size {self.size}: its columns disagree "
                "with its signed note; verify the source"
            )


# An event_id the ledger generated (for a line given without one), as rule messages
# name it; "the recorded event" before it when the message calls it recorded.
_GENERATED_ID = re.compile(r"(the recorded event )?(ev-[0-9a-f]{32})")
# A given event_id a message calls recorded (ids hold no spaces; its description follows).
_RECORDED_EVENT = re.compile(r"the recorded event (\S+) \(([^()]*)\)")


def _same_name(a: object, b: object) -> bool:
    return name_key(a) == name_key(b)


def _content_of(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record's submitted content: what idempotency compares."""
    return {k: v for k, v in record.items() if k not in _ASSIGNED}


_ASSIGNED = frozenset({"event_id", *ASSIGNED_FIELDS})

_REGISTRATIONS = frozenset({"subject_registered", "account_registered"})
# A batch's first registrations are compared with the ledger's ids after the append
# (those an admin types; a bulk import's thousands are not all listed).
REGISTRATIONS_LISTED = 20


_SLUG = re.compile(SLUG)


def _recorded_before_new_checks(record: dict[str, Any]) -> bool:
    """Whether a copied event was recorded before the checks for new input added on
    NEW_INPUT_CHECKS_SINCE, which it is then spared (a record time that is no time is
    refused by _copied_record_time)."""
    try:
        recorded = datetime.fromisoformat(str(record.get("recorded_at")))
    except ValueError:
        return False
    return recorded.tzinfo is not None and recorded < NEW_INPUT_CHECKS_SINCE


def _copied_record_time(given: object, line: int) -> datetime:
    """A copied event's record time, which must be one this ledger could have written:
    UTC in its own spelling, and not ahead of this clock (every later append would
    inherit it, record time never running backwards, and answer "as known now" without
    the events recorded "after" it)."""
    moment = None
    if isinstance(given, str):
        with suppress(ValueError):
            moment = datetime.fromisoformat(given)
    if moment is None or moment.tzinfo is None or iso(moment) != given:
        raise LedgerError(
            f"recorded_at {quoted(given)} is not a record time as a ledger writes it "
            "(UTC, e.g. 2024-02-08T10:00:00.123456Z)",
            line,
        )
    if moment > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise LedgerError(
            f"recorded_at {given} is in the future by this machine's clock; a ledger "
            "records events when it learns them (check the source's clock)",
            line,
        )
    return moment


def _leaves_as_appended(rows: Iterable[tuple[Any, Any]]) -> Iterator[bytes]:
    """A source store's leaves, each checked against the hash its append recorded, as
    verify checks them: a copy made anew from an edited event would hash and verify
    clean, the edit's trace gone (only a signed checkpoint would have caught it)."""
    for index, (stored, recorded) in enumerate(rows):
        leaf = leaf_bytes(stored)
        if recorded is None or merkle.leaf_hash(leaf) != bytes(recorded):
            _source_record(leaf, index)  # no JSON object at all: said so first
            raise LedgerError(
                "the stored event's bytes no longer hash to the leaf recorded at append "
                "time (the event or its index row was altered); verify the source first",
                index,
            )
        yield leaf


def _source_record(leaf: bytes, index: int) -> dict[str, Any]:
    """A copied store's stored event as a JSON object, or a LedgerError naming its
    position: the source file may have been edited outside the ledger."""
    try:
        record = json.loads(leaf)
    except (ValueError, RecursionError) as error:
        problem = f"is not JSON ({error})"
    else:
        if isinstance(record, dict):
            return record
        kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        problem = f"is {kinds.get(type(record), 'a number')}, not a JSON object"
    raise LedgerError(f"the stored event {problem}; verify the source first", index)


def _differences(
    stored: dict[str, Any],
    given: dict[str, Any],
    limit: int = 3,
    verbs: tuple[str, str] = ("recorded", "given"),
) -> str:
    """Which fields differ, as 'field: recorded X, given Y' (the first few: type, then
    the rest by name)."""

    def shown(record: dict[str, Any], name: str, verb: str) -> str:
        if name not in record:
            return f"not {verb}"
        return f"{verb} {shorten(repr(record[name]), 60, PART_OF_A_REPR_ESCAPE)}"

    def pair(name: str) -> str:
        old, new = stored.get(name), given.get(name)
        if isinstance(old, str) and isinstance(new, str):
            return _text_difference(old, new, verbs)
        return f"{shown(stored, name, verbs[0])}, {shown(given, name, verbs[1])}"

    # A different type says most (another event altogether): never one of the "more".
    names = sorted(
        (n for n in stored.keys() | given.keys() if stored.get(n) != given.get(n)),
        key=lambda name: (name != "type", name),
    )
    parts = [f"{n}: {pair(n)}" for n in names[:limit]]
    more = f"; and {len(names) - limit} more" if len(names) > limit else ""
    return "; ".join(parts) + more


def _text_difference(old: str, new: str, verbs: tuple[str, str]) -> str:
    """Two texts that differ, shown where they do: around the first character that
    differs when long (both cut alike read the same), with escapes when the difference
    is only in how Unicode composes them (which prints alike)."""
    if unicodedata.normalize("NFC", old) == unicodedata.normalize("NFC", new):
        return (
            f"{verbs[0]} {shorten(ascii(old), 60, PART_OF_A_REPR_ESCAPE)}, "
            f"{verbs[1]} {shorten(ascii(new), 60, PART_OF_A_REPR_ESCAPE)}: the "
            "same text in another Unicode form (composed and combining accents)"
        )
    pairs = enumerate(zip(old, new, strict=False))
    at = next((i for i, (a, b) in pairs if a != b), min(len(old), len(new)))
    start = max(0, at - 20) if max(len(old), len(new)) > 60 else 0

    def excerpt(text: str) -> str:
        part = text[start : start + 50] if start or len(text) > 60 else text
        return ("…" if start else "") + repr(part) + ("…" if start + len(part) < len(text) else "")

    where = f" (first differing at character {at + 1})" if start else ""
    return f"{verbs[0]} {excerpt(old)}, {verbs[1]} {excerpt(new)}{where}"


def _chunks(
    events: Iterable[tuple[int, AnyEvent]], size: int
) -> Iterator[list[tuple[int, AnyEvent]]]:
    chunk: list[tuple[int, AnyEvent]] = []
    for item in events:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Ledger:
    """Event-sourced enforcement ledger over one store.

    Appends and queries go through our storage; the eventsourcing application over
    the same store (repository, notification log, recorder) is built on first use:
    importing the library and building its infrastructure cost a single `record`
    ~30 ms, and on PostgreSQL a connection pool.
    """

    def __init__(self, location: StoreLocation, signer: Ed25519Signer | None = None) -> None:
        self.location = location
        self.storage = open_storage(location)
        self.signer = signer
        self._library: LedgerLibrary | None = None
        self._origin: str | None = None
        self.conflicts_retried = 0
        # Read models that follow each append inside its transaction (see projections).
        self.inline_projections: list[InlineProjection] = []

    @property
    def origin(self) -> str:
        if self._origin is None:
            with self.storage.connect() as db:
                return self._origin_in(db)
        return self._origin

    def _origin_in(self, db: Database) -> str:
        """The log's origin, read through ``db`` (an open transaction needs no second
        connection) and remembered."""
        if self._origin is None:
            row = db.one("SELECT value FROM ledger_meta WHERE key = 'origin'")
            if row is None or not isinstance(row[0], str):
                from ledger.integrity import IntegrityError

                raise IntegrityError(
                    "the store's origin (the ledger_meta row 'origin', the log's name in "
                    "its checkpoints) is missing or not text: it was changed outside the "
                    "ledger"
                )
            self._origin = row[0]
        return self._origin

    @property
    def library(self) -> LedgerLibrary:
        """The eventsourcing application over this store."""
        if self._library is None:
            from ledger.library import LedgerLibrary

            self._library = LedgerLibrary(env=self.storage.eventsourcing_env())
        return self._library

    @property
    def recorder(self) -> ApplicationRecorder:
        return self.library.recorder

    @property
    def repository(self) -> Repository[uuid.UUID]:
        return self.library.repository

    @property
    def notification_log(self) -> LocalNotificationLog:
        return self.library.notification_log

    # --- writing ---------------------------------------------------------------

    def append(
        self,
        events: Iterable[tuple[int, AnyEvent]] | Callable[[], Iterable[tuple[int, AnyEvent]]],
        *,
        actor: str,
        now: datetime | None = None,
        dry_run: bool = False,
        time_ordered: bool = False,
    ) -> AppendResult:
        """Append a batch: every event or none of them.

        ``time_ordered``: the events come in dependency order (``append --sort``), not
        as given, so a line they lack that comes later is later in time, not in the file.

        ``dry_run``: everything an append does (validation, every rule, hashing, the
        read models), in its transaction, which is then rolled back: the result says
        what it would append, with the sequences it would take now.

        ``events`` pairs each event with its input line number, which errors name;
        pass a callable returning a fresh iterable to make the batch retryable.
        The batch runs under the store's write lock, so rule checks see every
        committed event and sequences are assigned without gaps. Should a
        concurrent writer still win a race on a stream version, sequence or
        event_id (a uniqueness conflict), the whole batch is rolled back and
        re-run from scratch, rules included: nothing is dropped silently.
        """
        # Filtered and counted by its text, as a policy is: one spelling (NFC).
        actor = unicodedata.normalize("NFC", actor)
        problem = actor_problem(actor)
        if problem is not None:
            from ledger.events import EventInputError

            raise EventInputError(
                [f"actor: {problem} (given {shorten(repr(actor), 100, PART_OF_A_REPR_ESCAPE)})"]
            )
        source = events if callable(events) else None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            batch_events = source() if source is not None else events
            assert not callable(batch_events)
            try:
                try:
                    result = self._append_once(
                        batch_events,
                        actor=actor,
                        now=now,
                        dry_run=dry_run,
                        time_ordered=time_ordered,
                    )
                except _RolledBack as rolled_back:
                    return rolled_back.result
                self._refresh_statistics(result)
                return result
            except Exception as error:
                if not _is_uniqueness_conflict(error) or source is None:
                    raise
                if attempt == MAX_ATTEMPTS:
                    raise LedgerError(
                        f"gave up after {attempt} attempts: a stored row was in the way "
                        f"each time ({error}); writers wait for each other, so it was "
                        "most likely written outside the ledger: `enforcement-ledger "
                        "verify` names it"
                    ) from error
                self.conflicts_retried += 1
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def _append_once(
        self,
        events: Iterable[tuple[int, AnyEvent]],
        *,
        actor: str,
        now: datetime | None,
        dry_run: bool = False,
        time_ordered: bool = False,
    ) -> AppendResult:
        with _no_automatic_collections(), self.storage.write_transaction() as tx:
            previous = None
            if self.signer is not None:
                self._check_key_is_this_logs(tx, self.signer)  # before any work
                previous = tx.last_checkpoint()  # a scan: read once, for _sign_head too
            batch = _Batch(
                self, tx, actor=actor, now=now or datetime.now(UTC), time_ordered=time_ordered
            )
            try:
                if self.signer is not None:
                    # Else the batch's first insert collides with the unlisted events.
                    _check_not_cut_short(batch.start_size, previous)
                for chunk in _chunks(events, FLUSH_EVERY):
                    batch.add_chunk(chunk)
                result = batch.finish()
            finally:
                batch.close()
            if dry_run:
                result.dry_run = True
                raise _RolledBack(result)  # write_transaction rolls back on any exception
            if self.signer is not None and result.appended:
                # The batch's own signed tree head commits in the same transaction; its
                # root is built on the stored nodes at the batch's start (and on the
                # nodes of its own leaves, hashed here).
                tree, start = batch.tree, batch.start_size
                _, result.first_signed = self._sign_head(
                    tx, tree.size, tree.root(), self.signer, start, previous=previous
                )
            return result

    def sign_checkpoint(self, signer: Ed25519Signer) -> tuple[str, tuple[int, int] | None]:
        """Sign the log as it is now and store the checkpoint (once: a size already
        signed with this key is not stored again); returns its note and the events it
        is the first to sign (first, last sequence), if any."""
        with self.storage.write_transaction() as tx:
            size = tx.head().next_sequence
            return self._sign_head(tx, size, merkle.root_at(tx.get_node, size), signer, size)

    def _check_key_is_this_logs(self, tx: WriteTransaction, signer: Ed25519Signer) -> str:
        """This log's origin, once ``signer`` is shown to be named after it: keygen
        names a key after its log, and another log's key would mix two logs'
        signatures into this one's checkpoints for good (they are append-only)."""
        origin = self._origin_in(tx.db)
        if signer.name != origin:
            raise LedgerError(
                f"the signing key signs as log {signer.name!r}, not as this log "
                f"({origin!r}); nothing was written: sign with this log's key (or unset "
                "ENFORCEMENT_LEDGER_KEY_FILE, which overrides a SQLite store's own "
                "<store>.key)"
            )
        return origin

    def _sign_head(
        self,
        tx: WriteTransaction,
        size: int,
        root: bytes,
        signer: Ed25519Signer,
        stored: int,
        *,
        previous: Any = _UNREAD,
    ) -> tuple[str, tuple[int, int] | None]:
        """Sign (size, root) once it is checked to extend the last signed head, and the
        stored nodes it was built on (those of the first ``stored`` events) to be what
        the leaves since that head give; store the checkpoint in ``tx`` unless that very
        note is stored already (Ed25519 signs deterministically: the same key, origin,
        size and root give the same bytes, and a second row would only inflate the
        checkpoint count). Returns the note and the stored events no checkpoint covered
        before (first, last sequence), if any."""
        from ledger.integrity import check_extends, check_nodes_give_leaves, sign_tree_head

        origin = self._check_key_is_this_logs(tx, signer)
        if previous is _UNREAD:  # the append read it already, under the same lock
            previous = tx.last_checkpoint()
        start = previous[0] if previous is not None else 0
        _check_not_cut_short(stored, previous)
        leaves = self.storage.iter_leaves_between(tx.db, start, stored) if start < stored else ()
        check_nodes_give_leaves(tx.get_node, previous, stored, leaves)
        check_extends(tx.get_node, previous, size, root)
        note = sign_tree_head(origin, size, root, signer)
        if not tx.has_checkpoint(size, note):
            tx.insert_checkpoint(size, root, note, iso(datetime.now(UTC)))
        return note, ((start, stored - 1) if start < stored else None)

    def copy_from(self, source: Ledger) -> tuple[AppendResult, int]:
        """``copy_log`` of the whole of ``source``: (result, checkpoints copied)."""
        with source.storage.connect() as db, db.read_snapshot():
            source.storage.read_once(db)
            # One state of the source while appends go on there: the checkpoints and the
            # events they sign (a batch committed between the two reads left its
            # checkpoint out, and the copy failed `verify --all-signed`).
            checkpoints = [SourceCheckpoint(*row) for row in source.storage.checkpoint_rows(db)]
            for checkpoint in checkpoints:
                checkpoint.check_note()
            rows = source.storage.iter_leaves_with_hashes(db)
            try:
                result = self.copy_log(
                    _leaves_as_appended(rows), checkpoints, origin=source._origin_in(db)
                )
            finally:
                # A stream this store stopped reading (its own failure, a Ctrl-C) is
                # cancelled first: PostgreSQL's COPY was still sending into a full
                # socket, and the snapshot's ROLLBACK behind it waited for ever.
                rows.close()
        return result, len(checkpoints)

    def copy_log(
        self,
        leaves: Iterable[bytes],
        checkpoints: Sequence[SourceCheckpoint],
        *,
        origin: str,
    ) -> AppendResult:
        """Append another ledger's whole log to this empty one, verbatim.

        Each stored event is validated and checked against the rules as an append
        would be (but for the checks added since for new input only: an account id's
        spelling, a retraction's date), keeping its event_id, sequence, recorded_at
        and actor, and must come out as the very bytes it was stored as: the tree,
        every root and so every
        signed checkpoint (copied too, each checked against its root) are the
        source's. One transaction: all of it or none.
        """
        from ledger.events import EventInputError, parse_event

        if origin != self.origin:
            raise LedgerError(
                f"the source log's origin is {origin!r} but this store's is {self.origin!r}; "
                f"signed checkpoints name their origin, so copy into a new store (a new "
                f"path, or a new schema) made with `enforcement-ledger init --origin "
                f"'{origin}'`"
            )
        pending = sorted(checkpoints, key=lambda c: c.size)
        with _no_automatic_collections(), self.storage.write_transaction() as tx:
            # Each copied event brings its own record time; the batch's is only the
            # floor they must not run below.
            batch = _Batch(self, tx, actor="", now=datetime.min.replace(tzinfo=UTC), copying=True)
            if batch.next_sequence:
                raise LedgerError(
                    f"this store already holds {batch.next_sequence} event(s); "
                    "copy into a freshly initialised store"
                )
            try:
                chunk: list[tuple[int, AnyEvent]] = []
                originals: list[tuple[dict[str, Any], bytes]] = []
                checked = 0  # checkpoints whose root has been compared
                for index, leaf in enumerate(leaves):
                    record = _source_record(leaf, index)
                    if record.get("sequence") != index:
                        raise LedgerError(
                            f"the event at this position carries sequence "
                            f"{quoted(record.get('sequence'))}; verify the source first",
                            index,
                        )
                    data = {**_content_of(record), "event_id": record.get("event_id")}
                    older = _recorded_before_new_checks(record)
                    originals.append((record, leaf_bytes(leaf)))
                    chunk.append((index, parse_event(data, index, stored=older)))
                    if len(chunk) >= FLUSH_EVERY:
                        checked = batch.add_copied(chunk, originals, pending, checked)
                        chunk, originals = [], []
                checked = batch.add_copied(chunk, originals, pending, checked)
                if checked < len(pending):
                    raise LedgerError(
                        f"the source's checkpoint at size {pending[checked].size} is beyond "
                        f"its {batch.tree.size} event(s)"
                    )
                result = batch.finish()
            except (LedgerError, EventInputError) as error:
                if error.line is None:
                    raise
                reason = error.reason if isinstance(error, LedgerError) else error.summary()
                failed = [r for r, _ in originals if r.get("sequence") == error.line]
                spared = failed and _recorded_before_new_checks(failed[0])
                if (isinstance(error, EventInputError) or " rejected: " in reason) and not spared:
                    # A rule or a field check: it may be one the source's version lacked.
                    reason += (
                        f" (a copy checks the events a log recorded since "
                        f"{iso(NEW_INPUT_CHECKS_SINCE)} as new input; one an older version "
                        "recorded may fail a check that version did not have)"
                    )
                raise LedgerError(f"source sequence {error.line}: {reason}") from None
            finally:
                batch.close()
            for checkpoint in pending:
                tx.insert_checkpoint(
                    checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.created_at
                )
        self._refresh_statistics(result)
        return result

    def _refresh_statistics(self, result: AppendResult) -> None:
        """After a large batch's or copy's commit: fresh statistics, or the planner keeps
        its empty-table plans. A failure (a lock held past the wait, a lock_timeout, a
        cancel, a lost session) is kept on ``result`` to be said as a warning: the batch
        is in, not a failed, unwritten append."""
        if result.appended < ANALYZE_AFTER:
            return
        try:
            self.storage.analyze()
        except Exception as error:
            result.analyze_error = error

    # --- reading ---------------------------------------------------------------

    def iter_leaves(self) -> Generator[bytes, None, None]:
        """Every stored leaf in sequence order, streamed (one cursor, bounded memory)."""
        with self.storage.connect() as db:
            yield from self.storage.iter_leaves(db)

    def recorded_events(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each of these events the log holds, as recorded (``append --sort`` places
        retractions of recorded events by their type and what they are about)."""
        events, column = self.storage.events_table, self.storage.notification_column
        with self.storage.connect() as db:
            marks = ",".join("?" * len(event_ids))
            rows = db.execute(
                f"SELECT l.event_id, s.state FROM ledger_entries l JOIN {events} s "
                f"ON s.{column} = l.notification_id WHERE l.event_id IN ({marks})",
                tuple(event_ids),
            ).fetchall()
            return {event_id: json.loads(leaf_bytes(state)) for event_id, state in rows}

    def size_known_at(self, moment: datetime) -> int:
        """How many events the ledger held at record time ``moment``. Record times never
        run backwards, so those are the log's first N: found by bisection (O(log N)
        lookups, as record time is text whose fraction digits vary)."""
        # One state of the index: a batch committed between its reads is no row out of place.
        with self.storage.connect() as db, db.read_snapshot():
            size = self.storage.tree_size(db)
            # The bisection reads the log index: a row renumbered or deleted outside the
            # ledger leaves a sequence below its highest with no row to read.
            mismatch = self.storage.index_mismatch(db, size)
            if mismatch is not None:
                from ledger.integrity import IntegrityError

                kind, sequence = mismatch
                found = (
                    f"which has no row for sequence {sequence} though it lists sequence "
                    f"{size - 1}: the index was changed outside the ledger (a row renumbered "
                    "or deleted)"
                    if kind == "missing"
                    else f"which has a row for sequence {sequence}, outside the log's "
                    f"0..{size - 1}: the index was changed outside the ledger (a row "
                    "renumbered or added)"
                )
                raise IntegrityError(
                    "--known-at reads record times from the log index (ledger_entries), "
                    f"{found}; `enforcement-ledger verify` names what changed (`export` "
                    "without --known-at reads the events themselves)",
                    sequence,
                )

            def recorded(sequence: int) -> datetime:
                (text,) = db.one(
                    "SELECT recorded_at FROM ledger_entries WHERE sequence = ?", (sequence,)
                )
                return datetime.fromisoformat(text)

            return bisect.bisect_right(range(size), moment, key=recorded)

    def close(self) -> None:
        self.storage.close()
        if self._library is not None:
            self._library.close()


@contextmanager
def _no_automatic_collections() -> Iterator[None]:
    """Pause the cyclic GC's automatic runs for one batch.

    A large batch keeps many long-lived objects (cached lanes), and every automatic
    full collection walks all of them: measured at a third of a 200k-event import's
    time. A batch makes no cyclic garbage per event (checked with DEBUG_SAVEALL); its
    one cycle, batch <-> stream views, is broken by ``_Batch.close``.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _is_uniqueness_conflict(error: BaseException) -> bool:
    import sqlite3

    if isinstance(error, sqlite3.IntegrityError):
        return "UNIQUE" in str(error) or "PRIMARY KEY" in str(error)
    return type(error).__name__ == "UniqueViolation"  # psycopg.errors, imported lazily


class _Batch:
    """One append transaction: rules over bounded caches, events flushed in rounds.

    It is also the rules' view of history (``domain.History``): the log as the
    transaction sees it plus this round's unflushed events.
    """

    def __init__(
        self,
        ledger: Ledger,
        tx: WriteTransaction,
        *,
        actor: str,
        now: datetime,
        time_ordered: bool = False,
        copying: bool = False,
    ) -> None:
        from ledger.events import event_content  # pydantic: only when appending

        self.event_content = event_content
        self.ledger = ledger
        self.tx = tx
        self.actor = actor
        head = tx.head()
        # Record time never runs backwards, so "known at T" is always a log prefix.
        last = head.last_recorded_at
        # A copy's events keep the record times the source gave them.
        if last is not None and not copying and last > now + CLOCK_BEHIND_LIMIT:
            raise LedgerError(
                f"the log's last record time, {iso(last)} (sequence "
                f"{head.next_sequence - 1}), is more than {CLOCK_BEHIND_LIMIT.days} day "
                f"ahead of this clock ({iso(now)}); every event appended now would be "
                "recorded just past it, so nothing was written. Set this machine's clock "
                "right; if it is right, that event was recorded by a clock far ahead "
                "(`enforcement-ledger verify` then finds nothing: the time is as recorded) "
                "or edited since (verify names it), and appends resume once this clock "
                f"reaches {iso(last - CLOCK_BEHIND_LIMIT)}, {CLOCK_BEHIND_LIMIT.days} day "
                "before that time"
            )
        # A clock behind (set back, or another writer's ahead) records a microsecond past
        # the last record time, not at it: an answer known at that time, as a default
        # answer says it is, is the same answer when asked for again later.
        self.recorded_at = now if last is None or now > last else last + RECORD_TIME_STEP
        self.recorded_iso = iso(self.recorded_at)
        self.next_sequence = head.next_sequence
        self.next_notification_id = head.last_notification_id + 1
        self.originator = ledger.storage.originator_param
        self.result = AppendResult()
        self.views: OrderedDict[uuid.UUID, StreamView] = OrderedDict()
        self.lanes = LaneCache(LANE_CACHE)
        self.first_notification_id = self.next_notification_id
        self.tree = merkle.PendingNodes(tx.get_node, head.next_sequence)
        self.start_size = head.next_sequence  # the tree this batch builds on
        # Recorded before, re-sent in this batch (the most recent SKIPS_REMEMBERED).
        self.skipped_once: OrderedDict[str, None] = OrderedDict()
        # The retractions of skipped retracted events, to their targets: re-sent after
        # them, they drop the target's note (the batch says itself it stays retracted).
        self.retractions_awaited: dict[str, str] = {}
        self.said_retracted: set[str] = set()  # targets whose retraction followed them
        self.copying = copying  # events already in a log (copy_log), kept verbatim
        self._renames: dict[str, dict[str, Any]] | None = None  # _live_renames, once read
        self._platform_accounts: dict[str, set[str]] | None = None  # _accounts_by_platform
        # This round's unflushed rows, and indexes over them for the rules.
        self.events: list[EventRow] = []
        self.entries: list[EntryRow] = []
        self.records: list[dict[str, Any]] = []
        self.unflushed: dict[str, tuple[EntryRef, dict[str, Any]]] = {}
        self.round_lanes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.round_retractions: dict[str, str] = {}
        self.round_referring: dict[str, list[dict[str, Any]]] = {}
        self.round_versions: dict[uuid.UUID, int] = {}  # for views dropped mid-round
        # Lanes left invalid by a line, for the end of the batch to judge: the line
        # that broke each, its event, that event's id and the conflict it caused.
        self.deferred: dict[tuple[str, str], tuple[int, Any, str, LaterEventInvalid]] = {}
        # Checks of a retraction that a later line may settle (the account registered
        # again), run at the end of the batch: (line, event, event_id, check).
        self.end_checks: list[tuple[int, Any, str, Callable[[], None]]] = []
        # Lines come in dependency order (``append --sort``), not as given.
        self.time_ordered = time_ordered
        # The line, event and event_id being added (the id may be generated just now).
        self.current: tuple[int, Any, str] = (0, None, "")
        # Ids of the current chunk found in the log, plus those flushed since the
        # chunk's lookup (a round can end mid-chunk once repeats were skipped).
        self.known: dict[str, EntryRef] = {}
        # The chunk's appeal and retraction targets as the log held them when the chunk
        # was looked up (a looked-up id missing here was not in the log then), and the
        # retractions flushed since: together they answer the rules' questions about
        # targets without a query each.
        self.looked_up: set[str] = set()
        self.targets: dict[str, TargetEntry] = {}
        self.chunk_retractions: dict[str, str] = {}
        for projection in ledger.inline_projections:
            projection.begin(tx.db, head.next_sequence)

    def add_chunk(self, chunk: list[tuple[int, AnyEvent]]) -> None:
        self.look_up(chunk)
        for position, (line, event) in enumerate(chunk):
            try:
                self.add(line, event)
            except LedgerError as error:
                giving = self._later_line_giving(error, event, chunk[position + 1 :])
                if giving is None:
                    raise
                later, given = giving
                what = (
                    f"its {error.unregistered[0]}'s registration"
                    if error.unregistered
                    else "its target"
                )
                if self.time_ordered:
                    # Sorted, a line comes later for its time: the file's order is not
                    # the fault, the times are.
                    named = f" {event.event_id}" if event.event_id else ""
                    raise LedgerError(
                        f"{event.type}{named} rejected: it occurs at "
                        f"{iso(event.occurred_at)}, before {what}, line {later} of this "
                        f"batch (at {iso(given.occurred_at)})",
                        line,
                    ) from None
                gives = "registers it" if error.unregistered else "is that event"
                noted = error.with_note(
                    f" (line {later} of this batch {gives}, after this line: each line is "
                    "checked against the lines before it, so give that one first)"
                )
                noted.given_too_early = True
                raise noted from None

    def _later_line_giving(
        self, error: LedgerError, event: AnyEvent, rest: list[tuple[int, AnyEvent]]
    ) -> tuple[int, AnyEvent] | None:
        """The line (and event) of the batch's current chunk, after the refused one,
        that registers the account or subject it lacked or is the event it targets."""
        if error.unregistered is not None:
            field, value = error.unregistered
            wanted = f"{field}_registered"
            for line, later in rest:
                if later.type == wanted and getattr(later, field) == value:
                    return line, later
            return None
        target = getattr(event, "target", None) if event.type in TARGETED_TYPES else None
        if target is None or self.find(target) is not None:
            return None
        return next(((line, later) for line, later in rest if later.event_id == target), None)

    def look_up(self, chunk: list[tuple[int, AnyEvent]]) -> None:
        """One lookup query for the chunk's ids and targets instead of one per event."""
        ids = [event.event_id for _, event in chunk if event.event_id is not None]
        self.known = self.tx.find_entries(ids) if ids else {}
        # (By type: getattr of a missing field on a pydantic model raises, slowly.)
        self.looked_up = {event.target for _, event in chunk if event.type in TARGETED_TYPES}  # type: ignore[union-attr]
        # Re-sent events too: comparing one needs its leaf, reporting it its retraction.
        self.looked_up.update(self.known)
        self.targets = self.tx.target_entries(sorted(self.looked_up)) if self.looked_up else {}
        self.chunk_retractions = {}

    def add_copied(
        self,
        chunk: list[tuple[int, AnyEvent]],
        originals: list[tuple[dict[str, Any], bytes]],
        checkpoints: Sequence[SourceCheckpoint],
        checked: int,
    ) -> int:
        """Add copied events (see ``Ledger.copy_log``); returns how many of the
        source's checkpoints (sorted by size) have had their root compared so far."""
        self.look_up(chunk)
        for (line, event), original in zip(chunk, originals, strict=True):
            checked = self.compare_roots(checkpoints, checked)
            self.add(line, event, original)
        return self.compare_roots(checkpoints, checked)

    def compare_roots(self, checkpoints: Sequence[SourceCheckpoint], checked: int) -> int:
        """Compare the tree as it is now with the checkpoints of its size."""
        while checked < len(checkpoints) and checkpoints[checked].size == self.tree.size:
            root = self.tree.root() if self.tree.size else merkle.EMPTY_ROOT
            if root != checkpoints[checked].root:
                raise LedgerError(
                    f"the source's signed checkpoint at size {self.tree.size} does not match "
                    "its own events (verify the source)"
                )
            checked += 1
        return checked

    def add(
        self, line: int, event: AnyEvent, original: tuple[dict[str, Any], bytes] | None = None
    ) -> None:
        """Check and stage one event; ``original`` (a copy) is its source record and
        stored bytes, whose assigned fields it keeps."""
        content = self.event_content(event)
        if event.event_id is not None and self.is_repeat(event.event_id, content, line):
            if original is not None:
                raise LedgerError(f"event_id {event.event_id} appears twice in the source", line)
            return
        event_id = event.event_id
        if event_id is None:
            event_id = self.result.last_assigned_id = f"ev-{uuid.uuid4().hex}"
        self.current = (line, event, event_id)
        record = content
        record["event_id"] = event_id
        if original is None:
            recorded_iso, recorded_at, actor = self.recorded_iso, self.recorded_at, self.actor
        else:
            for field in ("recorded_at", "actor"):
                if field not in original[0]:
                    raise LedgerError(
                        f"{field}: required field is missing (the ledger gives every event "
                        "one); verify the source first",
                        line,
                    )
            recorded_iso, actor = original[0]["recorded_at"], original[0]["actor"]
            recorded_at = _copied_record_time(recorded_iso, line)
            problem = actor_problem(actor) if isinstance(actor, str) else "must be text"
            # Its invisible characters (a joiner) as the version that recorded it saw them.
            if problem == HIDDEN_CHARACTERS and _recorded_before_new_checks(original[0]):
                problem = None
            if problem is not None:
                raise LedgerError(f"actor {quoted(actor)} {problem}", line)
            if recorded_at < self.recorded_at:
                raise LedgerError(
                    f"recorded_at {recorded_iso} is earlier than an event before it; a "
                    "ledger's record time never runs backwards",
                    line,
                )
            self.recorded_at = recorded_at
        record["recorded_at"] = recorded_iso
        record["actor"] = actor
        record["sequence"] = sequence = self.next_sequence
        try:
            check_not_in_future(record, recorded_at)
            view, lane = self.apply(record)
        except RuleViolation as violation:
            error = LedgerError(self.rejection(event, event_id, violation), line)
            if isinstance(violation, Unregistered):
                error.unregistered = (violation.field, record[violation.field])
            raise error from None
        kind = record["type"]
        leaf = canonical_json(record)
        if original is not None and leaf != original[1]:
            raise LedgerError(
                "the event validates to other bytes than it was stored as (stored by "
                "another version?); a copy must keep every leaf as it is",
                line,
            )
        digest = merkle.leaf_hash(leaf)
        self.tree.append(digest)
        sid = view.id
        originator = self.originator(sid)
        self.events.append((originator, view.version, _topic(view), leaf))
        self.round_versions[sid] = view.version
        target = record.get("target")
        subject_ref = record.get("subject") if kind == "account_registered" else None
        self.entries.append(
            (
                sequence,
                event_id,
                originator,
                kind,
                digest,
                recorded_iso,
                subject_ref,
                lane,
                lane_key(view.key, lane),
                target,
            )
        )
        self.records.append(record)
        self.unflushed[event_id] = (EntryRef(sequence, event_id, sid, kind), record)
        self.round_lanes.setdefault((view.key, lane), []).append(record)
        if target is not None:
            self.round_referring.setdefault(target, []).append(record)
            if kind == "event_retracted":
                self.round_retractions[target] = event_id
        result = self.result
        result.appended += 1
        if kind not in _REGISTRATIONS:
            pass
        elif len(result.registered) < REGISTRATIONS_LISTED:
            registered = record["subject" if kind == "subject_registered" else "account"]
            result.registered.append((kind, registered, record.get("platform"), event_id))
        else:
            result.registered_unlisted += 1
        if result.first_sequence is None:
            result.first_sequence = sequence
        result.last_sequence = sequence
        self.next_sequence += 1
        if len(self.events) >= FLUSH_EVERY:
            self.flush()

    def is_repeat(self, event_id: str, content: dict[str, Any], line: int) -> bool:
        """True for a harmless re-send; an error when the id names different content."""
        existing = self.find(event_id) if event_id in self.unflushed else self.known.get(event_id)
        if existing is None:
            return False
        stored = _content_of(self.stored_record(existing))
        first = self.result.first_sequence
        in_batch = first is not None and existing.sequence >= first
        if stored == content:
            result = self.result
            result.skipped += 1
            # Not recorded yet, or already skipped once: a line repeated in the batch.
            if in_batch or event_id in self.skipped_once:
                result.skipped_repeated += 1
                if len(result.repeated_ids) < SKIPPED_NAMED:
                    result.repeated_ids.append(event_id)
                return True
            self.skipped_once[event_id] = None
            if len(self.skipped_once) > SKIPS_REMEMBERED:
                self.skipped_once.popitem(last=False)
            result.skipped_recorded += 1
            if len(result.skipped_ids) < SKIPPED_NAMED:
                result.skipped_ids.append(event_id)
            if (target := self.retractions_awaited.pop(event_id, None)) is not None:
                result.skipped_retracted.pop(target, None)
                self.said_retracted.add(target)  # a repeat forgotten since adds no note
            retraction = self.retraction_of(event_id)
            if retraction is not None and event_id not in self.said_retracted:
                result.skipped_retracted[event_id] = retraction
                self.retractions_awaited[retraction] = event_id
            return True
        if in_batch:
            differences = _differences(stored, content, verbs=("given earlier", "given here"))
            where = "the source" if self.copying else "this batch"
            raise LedgerError(
                f"event_id: '{event_id}' is given twice in {where}, with different "
                f"content ({differences}); an event_id names one event: give each its own",
                line,
            )
        raise LedgerError(
            f"event_id: '{event_id}' is already recorded (sequence "
            f"{existing.sequence}) with different content ({_differences(stored, content)}); "
            "an event_id names one event forever, so use a new id or retract the old event",
            line,
        )

    # --- the rules' view of history (domain.History) ------------------------------

    def find(self, event_id: str) -> EntryRef | None:
        pending = self.unflushed.get(event_id)
        if pending is not None:
            return pending[0]
        known = self.known.get(event_id)
        if known is not None:
            return known
        if event_id in self.looked_up:  # flushed since the lookup would be in known
            target = self.targets.get(event_id)
            return None if target is None else target.ref
        return self.tx.find_entry(event_id)

    def stored_record(self, entry: EntryRef) -> dict[str, Any]:
        """A recorded event's full record, from this round or from the log."""
        pending = self.unflushed.get(entry.event_id)
        if pending is not None:
            return pending[1]
        target = self.targets.get(entry.event_id)
        leaf = target.leaf if target is not None else self.tx.leaf(entry.sequence)
        return json.loads(leaf)  # type: ignore[no-any-return]

    def lane_entries(self, stream: uuid.UUID, lane: str) -> list[Entry]:
        records = [json.loads(leaf) for leaf in self.tx.lane_leaves(stream, lane)]
        records.extend(self.round_lanes.get((stream.hex, lane), ()))
        return live_entries(records)

    def rejection(self, event: Any, event_id: str, violation: RuleViolation) -> str:
        """The refusal of ``event``, naming only events the user can find. An id the
        ledger generated is never stored when the batch is refused: the event's own
        reads "this event", another line's "another line of this batch". A date
        given without a time is read as 00:00Z, before the events later that day it
        may have followed: when the refusal concerns such events, the message says so."""
        reason = str(violation)
        if not event.event_id:
            reason = reason.replace(event_id, "this event")
        reason = _GENERATED_ID.sub(self._as_given, reason)
        reason = _RECORDED_EVENT.sub(self._of_this_batch, reason)
        if self.later_that_day(event, violation):
            day = event.occurred_at.date().isoformat()
            reason += (
                f" (occurred_at {day} is a date alone, read as {day}T00:00:00Z, before the "
                "events later that day; if it happened after them, give the time)"
            )
        named = f" {event.event_id}" if event.event_id else ""
        return f"{event.type}{named} rejected: {reason}"

    def _in_this_batch(self, event_id: str) -> bool:
        """Whether ``event_id`` is a line of this batch (another line: with --sort it
        may come later in the input), not an event recorded before it, which the user
        can look up."""
        ref = self.find(event_id)
        first = self.result.first_sequence
        return ref is not None and first is not None and ref.sequence >= first

    def _of_this_batch(self, match: re.Match[str]) -> str:
        """ "the recorded event X" where X is a line of this batch, not yet recorded."""
        if not self._in_this_batch(match[1]):
            return match[0]
        return f"the event {match[1]} ({match[2]}, another line of this batch)"

    def _as_given(self, match: re.Match[str]) -> str:
        return "another line of this batch" if self._in_this_batch(match[2]) else match[0]

    def later_that_day(self, event: Any, violation: RuleViolation) -> bool:
        """Whether ``event``, given a date alone, has events later that day in the lanes
        its refusal can be about: its own, and its stream's registration (for a
        message only: it reads the whole stream); a retraction, its target, when
        refused for coming before it."""
        if getattr(event, "occurred_at_precision", None) != "day":
            return False
        midnight = event.occurred_at
        if event.type == "event_retracted":
            found = self.entry(event.target)
            return (
                isinstance(violation, RetractedBeforeTarget)
                and found is not None
                and midnight < found[1].occurred_at < midnight + timedelta(days=1)
            )
        content = self.event_content(event)
        kind, stream = stream_of(content)
        own = kind.lane_key(Entry.from_record({**content, "event_id": "", "sequence": -1}))
        return any(
            midnight < e.occurred_at < midnight + timedelta(days=1)
            and kind.lane_key(e) in (own, "registration")
            for e in self.stream_entries(stream)
        )

    def stream_entries(self, stream: uuid.UUID) -> list[Entry]:
        records = [json.loads(leaf) for leaf in self.tx.stream_leaves(stream)]
        records.extend(
            record for ref, record in self.unflushed.values() if ref.originator_id == stream
        )
        return live_entries(records)

    def entry(self, event_id: str) -> tuple[uuid.UUID, Entry] | None:
        found = self.find(event_id)
        if found is None:
            return None
        return found.originator_id, Entry.from_record(self.stored_record(found))

    def retraction_of(self, event_id: str) -> str | None:
        recent = self.round_retractions.get(event_id) or self.chunk_retractions.get(event_id)
        if recent is not None:
            return recent
        if event_id in self.looked_up:
            target = self.targets.get(event_id)
            return None if target is None else target.retraction
        return self.tx.retraction_of(event_id)

    def referring(self, event_id: str) -> list[Entry]:
        records = [json.loads(leaf) for leaf in self.tx.referring_leaves(event_id)]
        records.extend(self.round_referring.get(event_id, ()))
        return [
            Entry.from_record(r)
            for r in records
            if r["type"] != "event_retracted" and self.retraction_of(r["event_id"]) is None
        ]

    # --- rules ------------------------------------------------------------------------

    def view(self, kind: type[StreamKind], sid: uuid.UUID) -> StreamView:
        view = self.views.get(sid)
        if view is not None:
            self.views.move_to_end(sid)
            return view
        version, first = self.tx.stream_extent(sid)
        version = self.round_versions.get(sid) or version
        pre_existing = first is not None and first < self.first_notification_id
        view = StreamView(kind, sid, version, self, self.lanes, pre_existing=pre_existing)
        self.views[sid] = view
        if len(self.views) > STREAM_CACHE:
            self.views.popitem(last=False)
        return view

    def apply(self, record: dict[str, Any]) -> tuple[StreamView, str]:
        if record["type"] == "event_retracted":
            return self.retract(record)
        kind, sid = stream_of(record)
        if record["type"] == "account_registered" and record.get("subject"):
            subject = self.view(SubjectKind, stream_id("subject", record["subject"]))
            if subject.registration is None:
                raise Unregistered(
                    f"subject '{record['subject']}' is not registered; append its "
                    "subject_registered event first",
                    "subject",
                )
        if record["type"] == "exemption_applied" and record.get("subject"):
            self._check_exemption_platform(record)
        # Asked of these types only: a copy would parse every event's record time again.
        if record["type"] in ("account_registered", "platform_renamed") and not (
            self.copying and _recorded_before_new_checks(record)
        ):
            self._check_platform_is_no_renamed_name(record)
            if record["type"] == "platform_renamed":
                self._check_name_is_no_platform_in_use(record)
        view = self.view(kind, sid)
        try:
            lane = self._settled_later(view, view.record(record, defer_later=True))
        except RuleViolation as refusal:
            if type(refusal) is not RuleViolation or record["type"] != "exemption_revoked":
                raise
            raise RuleViolation(f"{refusal}{self._exemption_held_elsewhere(record)}") from None
        if record["type"] == "platform_renamed" and self._renames is not None:
            self._renames[record["event_id"]] = record
        if record["type"] == "account_registered" and self._platform_accounts is not None:
            self._platform_accounts.setdefault(record["platform"], set()).add(record["account"])
        return view, lane

    def _exemption_held_elsewhere(self, revoked: dict[str, Any]) -> str:
        """For a revocation of an exemption not in force where it names: where one of
        that name is in force then (on the account's subject, on another platform's
        rule, on the subject's accounts), as a hint; "" where nowhere."""
        name, when = revoked["exemption"], Entry.from_record(revoked).occurred_at
        holders: list[tuple[str, str, str | None]] = []
        if revoked.get("account"):
            account = revoked["account"]
            registration = self.view(AccountKind, stream_id("account", account)).registration
            subject = registration.record.get("subject") if registration else None
            if subject:
                holders += [("subject", subject, platform_of(account)), ("subject", subject, None)]
        else:
            subject = revoked["subject"]
            accounts = [r.record["account"] for r in self._registrations_to(subject)]
            holders += [("account", account, None) for account in accounts]
            scopes = {None, *(platform_of(account) for account in accounts)}
            scopes.discard(revoked.get("platform"))
            holders += [("subject", subject, scope) for scope in sorted(scopes, key=str)]
        for holder, key, platform in holders:
            scope = f"@{platform}" if platform else ""
            entries = [
                e
                for e in self.lane_entries(stream_id(holder, key), f"exemption:{name}{scope}")
                if e.occurred_at <= when
            ]
            if entries and entries[-1].type == "exemption_applied":
                where = f" for platform {platform}" if platform else ""
                return (
                    f"; it is in force on {holder} '{key}'{where} "
                    f"({entries[-1].describe()}): revoke it there"
                )
        return ""

    def _live_renames(self) -> dict[str, dict[str, Any]]:
        """The platform renames in force (not retracted), by event_id: read once a
        batch (renames are few; the index has no way to them but a scan)."""
        if self._renames is None:
            self._renames = {
                record["event_id"]: record
                for record in self._records_of_type("platform_renamed")
                if self.retraction_of(record["event_id"]) is None
            }
        return self._renames

    def _rename_taking(self, slug: str) -> dict[str, Any] | None:
        """The live rename of another platform whose name reads as ``slug`` (twitter's
        "X" for "x"), if any."""
        for rename in self._live_renames().values():
            if rename["platform"] != slug and name_key(rename["name"]) == slug:
                return rename
        return None

    def _check_platform_is_no_renamed_name(self, record: dict[str, Any]) -> None:
        """A platform keeps its slug when renamed (Twitter, now X, is still twitter):
        an account registered, or a rename recorded, under the new name's slug split
        one platform in two (counts, subjects and a subject's platform exemption then
        missed it)."""
        platform = record["platform"]
        rename = self._rename_taking(platform)
        if rename is None:
            return
        slug = rename["platform"]
        if record["type"] == "platform_renamed":  # X's names are twitter's
            advice = f"record the rename under platform '{slug}'"
        else:
            handle = record["account"].partition(":")[2]
            advice = f"register it as '{slug}:{handle}' with platform '{slug}'"
        raise RuleViolation(
            f"platform: '{platform}' is the name platform '{slug}' took "
            f"({rename['event_id']} at {rename['occurred_at']}); a platform keeps "
            f"its slug when renamed: {advice}"
        )

    def _check_name_is_no_platform_in_use(self, record: dict[str, Any]) -> None:
        """The other way round: a rename onto the slug accounts are registered under
        would leave them a second platform."""
        claimed, platform = name_key(record["name"]), record["platform"]
        for rename in self._live_renames().values():
            other = rename["platform"]
            if other != platform and _same_name(rename["name"], record["name"]):
                raise RuleViolation(
                    f"'{rename['name']}' is the name platform '{other}' took "
                    f"({rename['event_id']}): two platforms under one name would read as one"
                )
        if claimed == platform or not _SLUG.fullmatch(claimed):
            return  # its own name, or one no account can be registered under
        for rename in self._live_renames().values():
            if rename["platform"] == claimed:  # a platform with renames of its own
                raise RuleViolation(
                    f"'{claimed}' is the slug of a platform of this ledger (renamed "
                    f"'{rename['name']}' by {rename['event_id']}): naming platform "
                    f"'{platform}' '{record['name']}' would make the two one name"
                )
        for account in sorted(self._accounts_by_platform().get(claimed, ())):
            registration = self.view(AccountKind, stream_id("account", account)).registration
            if registration is not None and registration.record.get("platform") == claimed:
                raise RuleViolation(
                    f"accounts are registered under platform '{claimed}' (e.g. "
                    f"'{account}'): naming platform '{platform}' '{record['name']}' would "
                    f"make them a second platform; register them under '{platform}' first "
                    "(retract each registration and register it again), then record the "
                    "rename"
                )

    def _accounts_by_platform(self) -> dict[str, set[str]]:
        """Every account ever registered, by platform slug: read once a batch, the
        first time a rename's name is a slug (one scan of the index). Kept current with
        the batch's registrations; a retracted one is checked where it is used."""
        if self._platform_accounts is None:
            found: dict[str, set[str]] = {}
            for registration in self._records_of_type("account_registered"):
                found.setdefault(registration["platform"], set()).add(registration["account"])
            self._platform_accounts = found
        return self._platform_accounts

    def _records_of_type(self, kind: str) -> list[dict[str, Any]]:
        """Every recorded event of one type, this batch's unflushed ones included."""
        records = [json.loads(leaf) for leaf in self.tx.leaves_of_type(kind)]
        records += [r for ref, r in self.unflushed.values() if ref.type == kind]
        return records

    def _registrations_to(self, subject: str) -> list[Entry]:
        """The registrations in force of the accounts registered to ``subject``."""
        accounts = set(self.tx.accounts_referencing(subject))
        accounts.update(
            ref.originator_id
            for ref, r in self.unflushed.values()
            if ref.type == "account_registered" and r.get("subject") == subject
        )
        found = []
        for account_id in sorted(accounts):
            registration = self.view(AccountKind, account_id).registration
            if registration is not None and registration.record.get("subject") == subject:
                found.append(registration)
        return found

    def _platforms_of(self, subject: str) -> set[str]:
        """The platforms the subject has an account on (by registrations in force)."""
        return {platform_of(r.record["account"]) for r in self._registrations_to(subject)}

    def _check_exemption_platform(self, record: dict[str, Any]) -> None:
        """A subject's exemption under one platform's rule names a platform it has an
        account on, by its slug: "x", a typo or a platform's new name held by nobody."""
        platform = record.get("platform")
        if platform is None:
            return
        held = sorted(self._platforms_of(record["subject"]))
        if platform not in held:
            renamed = self._rename_taking(platform)
            took = (
                f"; '{platform}' is the name platform '{renamed['platform']}' took "
                f"({renamed['event_id']}): a platform keeps its slug when renamed"
                if renamed
                else ""
            )
            raise RuleViolation(
                f"platform: subject '{record['subject']}' has no account on platform "
                f"'{platform}' (its accounts are on {', '.join(held) or 'no platform yet'}); "
                f"an exemption names the platform slug its accounts' ids begin with{took}"
            )

    def _check_no_exemption_rests_on(self, registration: dict[str, Any]) -> None:
        """A registration whose retraction would leave a subject's exemption under one
        platform's rule held by no account there is refused, as an exemption naming
        that platform would be: the exemption is retracted or revoked first."""
        subject, account = registration.get("subject"), registration["account"]
        platform = platform_of(account)
        if subject is None:
            return
        own = self.lane_entries(stream_id("account", account), "registration")
        # Another account there, or this account's other registration to the subject.
        if any(
            platform_of(r.record["account"]) == platform and r.record.get("subject") == subject
            for r in self._registrations_to(subject) + own
            if r.event_id != registration["event_id"]
        ):
            return
        in_force: dict[str, Entry | None] = {}
        for entry in self.stream_entries(stream_id("subject", subject)):
            if entry.type.startswith("exemption_") and entry.record.get("platform") == platform:
                applied = entry.type == "exemption_applied"
                in_force[entry.record["exemption"]] = entry if applied else None
        held = [entry for entry in in_force.values() if entry is not None]
        if held:
            raise RuleViolation(
                f"subject '{subject}' holds {held[0].describe()} under platform '{platform}' "
                f"through account {account} alone; revoke or retract it first"
            )

    def _check_no_account_refers_to(self, registration: dict[str, Any]) -> None:
        """A subject's registration is retracted only with no account in force
        referring to the subject, or with the subject registered again."""
        subject = registration["subject"]
        if self.view(SubjectKind, stream_id("subject", subject)).registration is not None:
            return
        registrations = self._registrations_to(subject)
        if registrations:
            first = registrations[0]
            raise RuleViolation(
                f"account {first.record['account']} still refers to subject "
                f"'{subject}' ({first.describe()}); retract that first (in this batch "
                "too), or register the subject again"
            )

    def _check_exemption_comes_back_held(self, revocation: dict[str, Any]) -> None:
        """Retracting the revocation of a subject's exemption under one platform's rule
        puts the exemption back in force: it needs an account there, as when applied."""
        platform, subject = revocation["platform"], revocation["subject"]
        if platform not in self._platforms_of(subject):
            raise RuleViolation(
                f"retracting {revocation['event_id']} would put exemption "
                f"{revocation['exemption']} back in force on subject '{subject}' under "
                f"platform '{platform}', where it has no account any more"
            )

    def _settled_later(self, view: StreamView, lane: str) -> str:
        """Note a lane this line left invalid for the end of the batch to judge."""
        key = (view.key, lane)
        cached = self.lanes.get(key)
        if cached is None or cached.deferred is None:
            self.deferred.pop(key, None)  # settled by this line
            return lane
        conflict, first = cached.deferred, self.deferred.get(key)
        # Still invalid as an earlier line left it: that line stays the one to name.
        if first is None or first[3].invalid.event_id != conflict.invalid.event_id:
            self.deferred[key] = (*self.current, conflict)
        return lane

    def retract(self, record: dict[str, Any]) -> tuple[StreamView, str]:
        target_id = record["target"]
        found = self.find(target_id)
        if found is None:
            raise RuleViolation(f"target '{target_id}' is not an event in this ledger")
        if found.type == "event_retracted":
            raise RuleViolation(f"{target_id} is itself a retraction and cannot be retracted")
        target_record = self.stored_record(found)
        kind, sid = stream_of(target_record)
        view = self.view(kind, sid)
        if found.type == "subject_registered":
            # Judged at the end: a later line may retract the accounts too, or register
            # the subject again (a name's typo fixed under the same id).
            self.end_checks.append(
                (
                    *self.current,
                    functools.partial(self._check_no_account_refers_to, target_record),
                )
            )
        older = self.copying and _recorded_before_new_checks(record)
        if found.type == "account_registered" and not older:
            self.end_checks.append(
                (*self.current, functools.partial(self._check_no_exemption_rests_on, target_record))
            )
        if found.type == "exemption_revoked" and target_record.get("platform") and not older:
            self.end_checks.append(
                (
                    *self.current,
                    functools.partial(self._check_exemption_comes_back_held, target_record),
                )
            )
        target = Entry.from_record(target_record)
        lane = view.retract(record, target, defer_later=True, stored=older)
        if found.type == "platform_renamed" and self._renames is not None:
            self._renames.pop(target_id, None)
        return view, self._settled_later(view, lane)

    # --- writing ----------------------------------------------------------------------

    def flush(self) -> None:
        if not self.events:
            return
        tx = self.tx
        notification_ids = tx.insert(self.events, self.entries, self.next_notification_id)
        self.next_notification_id = notification_ids[-1] + 1
        # Nodes computed this round go to the table; the next round reads them back,
        # so memory stays bounded however large the batch.
        tx.insert_nodes(self.tree.new_nodes())
        self.tree = merkle.PendingNodes(tx.get_node, self.tree.size)
        if self.ledger.inline_projections:
            records = list(zip(notification_ids, self.records, strict=True))
            for projection in self.ledger.inline_projections:
                projection.apply(tx.db, records)
        self.known.update((event_id, ref) for event_id, (ref, _) in self.unflushed.items())
        self.chunk_retractions.update(self.round_retractions)
        self.events = []
        self.entries = []
        self.records = []
        self.unflushed.clear()
        self.round_lanes.clear()
        self.round_retractions.clear()
        self.round_referring.clear()
        self.round_versions.clear()

    def close(self) -> None:
        """Drop the caches now (they refer back to the batch, a cycle)."""
        self.views.clear()
        self.lanes.clear()

    def finish(self) -> AppendResult:
        # A backfill may invalidate a later event that a later line repairs; whatever
        # is still invalid now is refused, naming the line that broke it.
        for key, (line, event, event_id, conflict) in sorted(
            self.deferred.items(), key=lambda i: i[1][0]
        ):
            lane = self.lanes.get(key)
            if lane is None or lane.deferred is None:
                continue
            if key[1] == "registration" and not self.stream_entries(uuid.UUID(key[0])):
                continue  # a registration retracted, and every event after it as well
            raise LedgerError(self.rejection(event, event_id, conflict), line)
        # Latest line first: the line that made the state a check refuses (the second of
        # two registrations retracted, the retraction that brought an exemption back).
        for line, event, event_id, check in reversed(self.end_checks):
            try:
                check()
            except RuleViolation as violation:
                raise LedgerError(self.rejection(event, event_id, violation), line) from None
        self.flush()
        for projection in self.ledger.inline_projections:
            projection.finish(self.tx.db)
        return self.result


def _topic(view: StreamView) -> str:
    """The stored topic of the view's newest event: its aggregate's Started or Recorded."""
    return view.kind.started_topic if view.version == 1 else view.kind.recorded_topic
