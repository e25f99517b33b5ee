"""The ledger application: appends checked, sequenced, hashed events atomically."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from ledger import merkle
from ledger.domain import (
    Entry,
    RuleViolation,
    Stream,
    SubjectStream,
    check_not_in_future,
    stream_id,
    stream_of,
)
from ledger.events import ASSIGNED_FIELDS, AnyEvent, event_content, iso
from ledger.location import StoreLocation
from ledger.persistence import EntryRef, EntryRow, LeafMapper, open_storage

if TYPE_CHECKING:  # cryptography loads only when a key is in use
    from ledger.notes import Ed25519Signer


class InlineProjection(Protocol):
    """A read model updated in the append's own transaction (the write side
    knows only this protocol, never the read side's tables)."""

    def begin(self, db: Any, next_sequence: int) -> None: ...

    def apply(self, db: Any, records: Sequence[tuple[int, dict[str, Any]]]) -> None: ...


MAX_ATTEMPTS = 8
ANALYZE_AFTER = 10_000  # events in one batch
FLUSH_EVERY = 2000  # events per insert round inside one batch transaction


class LedgerError(Exception):
    """A data or domain error the user can act on (CLI exit status 1)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass
class AppendResult:
    appended: int = 0
    skipped: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    skipped_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "appended": self.appended,
            "skipped": self.skipped,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
        }


def _content_of(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record's submitted content: what idempotency compares."""
    return {k: v for k, v in record.items() if k not in _ASSIGNED}


_ASSIGNED = frozenset({"event_id", *ASSIGNED_FIELDS})


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


class Ledger(Application[uuid.UUID]):
    """Event-sourced enforcement ledger over one store."""

    name = "EnforcementLedger"

    def __init__(self, location: StoreLocation, signer: Ed25519Signer | None = None) -> None:
        self.location = location
        self.storage = open_storage(location)
        self.signer = signer
        super().__init__(env=self.storage.eventsourcing_env())
        self._origin: str | None = None
        self.conflicts_retried = 0
        # Read models that follow each append inside its transaction (see projections).
        self.inline_projections: list[InlineProjection] = []

    @property
    def origin(self) -> str:
        if self._origin is None:
            self._origin = self.storage.meta()["origin"]
        return self._origin

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return LeafMapper(transcoder=JSONTranscoder())

    # --- writing ---------------------------------------------------------------

    def append(
        self,
        events: Iterable[tuple[int, AnyEvent]] | Callable[[], Iterable[tuple[int, AnyEvent]]],
        *,
        actor: str,
        now: datetime | None = None,
    ) -> AppendResult:
        """Append a batch: every event or none of them.

        ``events`` pairs each event with its input line number, which errors name;
        pass a callable returning a fresh iterable to make the batch retryable.
        The batch runs under the store's write lock, so rule checks see every
        committed event and sequences are assigned without gaps. Should a
        concurrent writer still win a race on a stream version, sequence or
        event_id (a uniqueness conflict), the whole batch is rolled back and
        re-run from scratch, rules included: nothing is dropped silently.
        """
        source = events if callable(events) else None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            batch_events = source() if source is not None else events
            assert not callable(batch_events)
            try:
                result = self._append_once(batch_events, actor=actor, now=now)
                if result.appended >= ANALYZE_AFTER:
                    # Fresh statistics, or the planner keeps its empty-table plans.
                    self.storage.analyze()
                return result
            except Exception as error:
                if not _is_uniqueness_conflict(error) or source is None:
                    raise
                if attempt == MAX_ATTEMPTS:
                    raise LedgerError(
                        f"gave up after {attempt} attempts: concurrent writers kept "
                        f"conflicting ({error})"
                    ) from error
                self.conflicts_retried += 1
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def _append_once(
        self, events: Iterable[tuple[int, AnyEvent]], *, actor: str, now: datetime | None
    ) -> AppendResult:
        with self.storage.write_transaction() as tx:
            batch = _Batch(self, tx, actor=actor, now=now or datetime.now(UTC))
            for chunk in _chunks(events, FLUSH_EVERY):
                batch.add_chunk(chunk)
            result = batch.finish()
            if self.signer is not None and result.appended:
                # The batch's own signed tree head commits in the same transaction.
                from ledger.integrity import check_extends, sign_tree_head

                size = batch.tree.size
                root = batch.tree.root()
                check_extends(tx.get_node, tx.last_checkpoint(), size, root)
                note = sign_tree_head(self.origin, size, root, self.signer)
                tx.insert_checkpoint(size, root, note, iso(datetime.now(UTC)))
            return result

    # --- reading ---------------------------------------------------------------

    def read_leaves(self, after_notification_id: int, limit: int) -> list[tuple[int, bytes]]:
        """Stored leaves after a notification id, in log order."""
        notifications = self.recorder.select_notifications(
            after_notification_id, limit, inclusive_of_start=False
        )
        return [(n.id, n.state) for n in notifications]

    def iter_leaves(self) -> Iterator[bytes]:
        """Every stored leaf in sequence order, streamed (one cursor, bounded memory)."""
        with self.storage.connect() as db:
            yield from self.storage.iter_leaves(db)

    def close(self) -> None:
        self.storage.close()
        super().close()


def _is_uniqueness_conflict(error: BaseException) -> bool:
    import sqlite3

    if isinstance(error, sqlite3.IntegrityError):
        return "UNIQUE" in str(error) or "PRIMARY KEY" in str(error)
    return type(error).__name__ == "UniqueViolation"  # psycopg.errors, imported lazily


class _Batch:
    """One append transaction: streams loaded once, events flushed in rounds."""

    def __init__(self, ledger: Ledger, tx: Any, *, actor: str, now: datetime) -> None:
        self.ledger = ledger
        self.tx = tx
        self.actor = actor
        head = tx.head()
        # Record time never runs backwards, so "known at T" is always a log prefix.
        last = head.last_recorded_at
        self.recorded_at = now if last is None or now > last else last
        self.recorded_iso = iso(self.recorded_at)
        self.next_sequence = head.next_sequence
        self.result = AppendResult()
        self.streams: dict[uuid.UUID, Stream | None] = {}
        self.pending: list[tuple[Any, EntryRow]] = []
        self.tree = merkle.PendingNodes(tx.get_node, head.next_sequence)
        self.unflushed: dict[str, EntryRef] = {}
        # Lanes left invalid by a backfill, pending later lines:
        # (stream, lane) -> (line, "type event_id") of the line that broke it.
        self.deferred: dict[tuple[uuid.UUID, str], tuple[int, str]] = {}
        self.current = (0, "")
        for projection in ledger.inline_projections:
            projection.begin(tx.db, head.next_sequence)

    def add_chunk(self, chunk: list[tuple[int, AnyEvent]]) -> None:
        # One lookup query for the chunk's ids instead of one per event.
        ids = [event.event_id for _, event in chunk if event.event_id is not None]
        known = self.tx.find_entries(ids) if ids else {}
        for line, event in chunk:
            self.add(line, event, known)

    def add(self, line: int, event: AnyEvent, known: dict[str, EntryRef]) -> None:
        self.current = (line, f"{event.type} {event.event_id}" if event.event_id else event.type)
        content = event_content(event)
        if event.event_id is not None and self.is_repeat(event.event_id, content, known, line):
            return
        event_id = event.event_id or f"ev-{uuid.uuid4().hex}"
        record = content
        record["event_id"] = event_id
        record["recorded_at"] = self.recorded_iso
        record["actor"] = self.actor
        record["sequence"] = self.next_sequence
        try:
            check_not_in_future(record, self.recorded_at)
            stream = self.apply(record)
        except RuleViolation as violation:
            named = f" {event.event_id}" if event.event_id else ""
            raise LedgerError(f"{event.type}{named} rejected: {violation}", line) from None
        domain_event = stream.pending_events[-1]
        subject_ref = record.get("subject") if record["type"] == "account_registered" else None
        row = EntryRow(
            sequence=self.next_sequence,
            event_id=event_id,
            originator_id=stream.id,
            type=record["type"],
            leaf_hash=b"",
            recorded_at=self.recorded_iso,
            subject_ref=subject_ref,
        )
        self.pending.append((domain_event, row))
        self.unflushed[event_id] = EntryRef(row.sequence, event_id, stream.id, row.type)
        self.result.appended += 1
        if self.result.first_sequence is None:
            self.result.first_sequence = self.next_sequence
        self.result.last_sequence = self.next_sequence
        self.next_sequence += 1
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def is_repeat(
        self, event_id: str, content: dict[str, Any], known: dict[str, EntryRef], line: int
    ) -> bool:
        """True for a harmless re-send; an error when the id names different content."""
        existing = self.unflushed.get(event_id) or known.get(event_id)
        if existing is None:
            return False
        if _content_of(self.stored_record(existing)) == content:
            self.result.skipped += 1
            self.result.skipped_ids.append(event_id)
            return True
        raise LedgerError(
            f"event_id: '{event_id}' is already recorded (sequence "
            f"{existing.sequence}) with different content; an event_id names one "
            "event forever, so use a new id or retract the old event",
            line,
        )

    def find(self, event_id: str) -> EntryRef | None:
        found = self.unflushed.get(event_id)
        return found if found is not None else self.tx.find_entry(event_id)

    def load(self, sid: uuid.UUID) -> Stream | None:
        """A stream as this transaction sees it, including its own unflushed events.

        Read through the write transaction rather than the library's repository,
        whose pooled connections cannot see events this batch has not committed.
        """
        if sid in self.streams:
            return self.streams[sid]
        aggregate: Any = None
        mapper = self.ledger.mapper
        for stored in self.tx.stream_events(sid):
            event: Any = mapper.to_domain_event(stored)
            aggregate = event.mutate(aggregate)
        self.streams[sid] = aggregate
        return aggregate  # type: ignore[no-any-return]

    def apply(self, record: dict[str, Any]) -> Stream:
        if record["type"] == "event_retracted":
            return self.retract(record)
        stream_class, sid = stream_of(record)
        if record["type"] == "account_registered" and record.get("subject"):
            subject = self.load(stream_id("subject", record["subject"]))
            if subject is None or subject.registration is None:
                raise RuleViolation(
                    f"subject '{record['subject']}' is not registered; append its "
                    "subject_registered event first"
                )
        stream = self.load(sid)
        if stream is None:
            stream = stream_class.start(sid, record)
            self.streams[sid] = stream
        else:
            stream.record(record, defer_later=True)
            for key, _ in stream.deferred_conflicts():
                self.deferred.setdefault((sid, key), self.current)
        return stream

    def retract(self, record: dict[str, Any]) -> Stream:
        target = self.find(record["target"])
        if target is None:
            raise RuleViolation(f"target '{record['target']}' is not an event in this ledger")
        stream = self.load(target.originator_id)
        assert stream is not None
        if target.type == "subject_registered" and isinstance(stream, SubjectStream):
            subject = stream.registration.record["subject"] if stream.registration else None
            for account_id in self.tx.accounts_referencing(subject):
                account = self.load(account_id)
                registration = account.registration if account else None
                if registration is not None and registration.record.get("subject") == subject:
                    raise RuleViolation(
                        f"account {registration.record['account']} still refers to subject "
                        f"'{subject}' ({registration.describe()}); retract that first"
                    )
        unretained = None
        if target.event_id not in stream.live and target.event_id not in stream.retracted:
            unretained = Entry.from_record(self.stored_record(target))
        stream.retract(record, unretained)
        return stream

    def stored_record(self, entry: EntryRef) -> dict[str, Any]:
        """A recorded event's full record, from this batch or from the log."""
        if entry.event_id in self.unflushed:
            return next(e.record for e, row in self.pending if row.event_id == entry.event_id)
        return json.loads(self.tx.leaf(entry.sequence))  # type: ignore[no-any-return]

    def flush(self) -> None:
        if not self.pending:
            return
        mapper = self.ledger.mapper
        stored: list[StoredEvent] = []
        rows: list[EntryRow] = []
        # Nodes computed this round go to the table; the next round reads them back,
        # so memory stays bounded however large the batch.
        tree = merkle.PendingNodes(self.tx.get_node, self.tree.size)
        for domain_event, row in self.pending:
            stored_event = mapper.to_stored_event(domain_event)
            stored.append(stored_event)
            digest = merkle.leaf_hash(stored_event.state)
            tree.append(digest)
            rows.append(dataclasses.replace(row, leaf_hash=digest))
        notification_ids = self.tx.insert(stored, rows)
        self.tx.insert_nodes(tree.new_nodes())
        if self.ledger.inline_projections:
            records = [
                (n_id, domain_event.record)
                for n_id, (domain_event, _) in zip(notification_ids, self.pending, strict=True)
            ]
            for projection in self.ledger.inline_projections:
                projection.apply(self.tx.db, records)
        self.tree = tree
        for stream in self.streams.values():
            if stream is not None:
                stream.collect_events()
        self.pending.clear()
        self.unflushed.clear()

    def finish(self) -> AppendResult:
        # A backfill may invalidate a later event that a later line repairs; whatever
        # is still invalid now is refused, naming the line that broke it.
        for (sid, key), (line, label) in sorted(self.deferred.items(), key=lambda i: i[1]):
            stream = self.streams.get(sid)
            lane = stream.lanes.get(key) if stream is not None else None
            if lane is not None and lane.deferred is not None:
                raise LedgerError(f"{label} rejected: {lane.deferred}", line)
        self.flush()
        return self.result
