"""Storage: the library's event table plus the ledger's own append-only tables.

The event payload stored by eventsourcing *is* the Merkle leaf: the canonical JSON
of the full record, ``sequence`` included. Verification therefore hashes stored
bytes directly, with no decoding, and an export is those bytes one per line.

``sequence`` (the gapless leaf index) cannot be the library's notification id:
PostgreSQL's ``bigserial`` leaves gaps after rollbacks. It is assigned by the
writer while it holds the log's write lock (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL, see ``ledger.postgres``), so sequence
order equals commit order equals notification order. Appends write the library's
rows themselves; the library reads them back through ``ledger.library.LeafMapper``.

Tables besides the library's events table:

* ``ledger_meta``: origin and format version, written once at ``init``;
* ``ledger_entries``: sequence → event_id, stream, content hash, leaf hash;
* ``merkle_nodes``: hashes of perfect subtrees, for O(log n) roots and proofs;
* ``checkpoints``: signed tree heads.

All of them, and the events table, refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL) through triggers, for every role including the owner.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NamedTuple

from ledger import merkle
from ledger.location import NoLedgerError, StoreError, StoreLocation

# psycopg's pq.TransactionStatus.ACTIVE: a statement is running (its result not read).
_PG_ACTIVE = 1


def describe_stored(value: object) -> str:
    """What a stored event column holds instead of bytes, for a message."""
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return "a number"
    return "text" if isinstance(value, str) else f"a {type(value).__name__} value"


def leaf_bytes(value: object) -> bytes:
    """A stored leaf (BLOB, bytea) as bytes. Anything else was written outside the
    ledger (the sqlite3 shell's replace() returns TEXT); ``bytes()`` would raise, or
    turn a number into that many zero bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise StoreError(
        f"the store holds an event that is {describe_stored(value)}, not bytes: it was "
        "changed outside the ledger; `enforcement-ledger verify` finds where"
    )


FORMAT_VERSION = "2"  # 2: ledger_entries gained lane and target
APPLICATION_NAME = "EnforcementLedger"
LEDGER_TABLES = ("ledger_meta", "ledger_entries", "merkle_nodes", "checkpoints")
SQLITE_BUSY_TIMEOUT_S = 120.0  # concurrent writers wait for the file lock, not fail
WRITE_LOCK_WAIT_S = SQLITE_BUSY_TIMEOUT_S  # PostgreSQL writers, for the log's lock
# Noted on a lock timeout that ended that wait (a server's lock_timeout ends others).
OWN_LOCK_WAIT = "enforcement-ledger: gave up waiting for the ledger's own lock"
READ_CHUNK = 5000


# --- a thin DB-API shell over both engines ----------------------------------------

_PLACEHOLDER = re.compile(r"'[^']*'|\?|(?<![:\w]):([a-z_][a-z0-9_]*)")


def _to_pyformat(sql: str) -> str:
    """``?`` and ``:name`` (sqlite3 style) to ``%s`` and ``%(name)s`` (psycopg)."""

    def swap(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("'"):
            return text
        if text == "?":
            return "%s"
        return f"%({match.group(1)})s"

    return _PLACEHOLDER.sub(swap, sql)


# An advisory lock's key: its name within this ledger's schema.
_ADVISORY_KEY = "hashtext(coalesce(current_schema(), '') || ':' || %s)"


class MissingMerkleNode(StoreError, KeyError):
    """A tree node the log needs is not stored (deleted outside the ledger): appends,
    checkpoints and proofs cannot go on. A KeyError too, for the node getters' users."""

    def __init__(self, level: int, index: int) -> None:
        super().__init__(
            f"the Merkle node table has no node (level {level}, index {index}), which this "
            "needs: it was deleted outside the ledger (a write in progress is rolled back "
            "whole)",
            "`export --nl` then `copy --export` into a new store rebuilds the tree from the "
            "leaves, which `verify` checks",
        )

    def __str__(self) -> str:  # KeyError's would quote the message
        return Exception.__str__(self)


class StatisticsNotRefreshed(Exception):
    """VACUUM (ANALYZE) failed for these tables after a bulk append's commit (every
    table was tried). Its cause is the first table's error."""

    def __init__(self, failures: Sequence[tuple[str, Exception]]) -> None:
        self.tables = [table for table, _ in failures]
        first = failures[0][1]
        detail = (str(first).strip().splitlines() or [type(first).__name__])[0]
        super().__init__(f"{detail} (not refreshed: {', '.join(self.tables)})")
        self.__cause__ = first


class Database:
    """One connection, written against in sqlite3's SQL dialect and placeholders."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self._translated: dict[str, str] = {}
        self.commit_failed = False  # the last COMMIT sent raised its error

    def sql(self, statement: str) -> str:
        if self.dialect == "sqlite":
            return statement
        found = self._translated.get(statement)
        if found is None:
            found = self._translated[statement] = _to_pyformat(statement)
        return found

    def execute(
        self,
        statement: str,
        params: Sequence[Any] | dict[str, Any] = (),
        *,
        prepare: bool | None = None,
    ) -> Any:
        """``prepare=True``: PostgreSQL prepares the statement on its first run (psycopg
        otherwise waits for five), for large queries whose planning costs more than
        their execution; SQLite caches every statement anyway."""
        if self.dialect == "sqlite":
            return self.raw.execute(statement, params)
        # Without parameters psycopg must not look for placeholders (plpgsql uses %).
        return self.raw.execute(self.sql(statement), params or None, prepare=prepare)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.dialect == "sqlite":
            self.raw.executemany(statement, rows)
        else:
            with self.raw.cursor() as cursor:
                cursor.executemany(self.sql(statement), rows)

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert: one executemany on SQLite, one COPY on PostgreSQL (psycopg's
        executemany sends a statement per row)."""
        if not rows:
            return
        if self.dialect == "sqlite":
            marks = ",".join("?" * len(rows[0]))
            self.raw.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            return
        with (
            self.raw.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def one(self, statement: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self.execute(statement, params).fetchone()

    def relation_names(self) -> set[str]:
        """The names of the tables and indexes this store holds (in its schema), for
        the checks that find one missing."""
        if self.dialect == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
        else:
            sql = (
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() UNION ALL "
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        return {name for (name,) in self.execute(sql).fetchall()}

    def stream(
        self, statement: str, params: Sequence[Any] | dict[str, Any] = (), *, binary: bool = False
    ) -> Generator[Any, None, None]:
        """Rows as they come: a server-side cursor on PostgreSQL, lazy on SQLite.

        ``binary``: PostgreSQL sends bytea as bytes, not hex text twice its size.
        """
        if self.dialect == "sqlite":
            cursor = self.raw.execute(statement, params)
            while rows := cursor.fetchmany(READ_CHUNK):
                yield from rows
            return
        # Declared and fetched by hand, not through psycopg's named cursor: a FETCH the
        # server stops part way (a statement_timeout, a cancel) sends some rows, then
        # its error, and the named cursor raised "received 2 results from command" with
        # no SQLSTATE, told as a lost connection; a plain cursor raises the server's.
        name = f"c_{uuid.uuid4().hex[:12]}"
        fetch = f'FETCH FORWARD {READ_CHUNK} FROM "{name}"'
        nested = self.raw.info.transaction_status != 0  # psycopg's IDLE: none open
        with self.raw.transaction(), self.raw.cursor() as cursor:
            declare = f'DECLARE "{name}" NO SCROLL CURSOR FOR {self.sql(statement)}'
            cursor.execute(declare, params or None, prepare=False)
            while rows := cursor.execute(fetch, binary=binary, prepare=False).fetchall():
                yield from rows
            if nested:
                # Inside an outer transaction this one is a savepoint, and releasing it
                # keeps the cursors opened in it until the outer one ends: closed here
                # when read to its end. (Closed early, the savepoint is rolled back,
                # which closes it; on its own, the commit does.)
                cursor.execute(f'CLOSE "{name}"', prepare=False)

    def copy_out(self, statement: str, types: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """PostgreSQL: a query's rows by binary ``COPY … TO STDOUT``, typed as given.

        One statement whose rows the server keeps sending while the client works on
        them, where a server-side cursor waits for a FETCH round trip per chunk:
        reading and hashing every leaf took ~20% less. Closing early cancels it.
        """
        with (
            self.raw.cursor() as cursor,
            cursor.copy(f"COPY ({self.sql(statement)}) TO STDOUT (FORMAT BINARY)") as copy,
        ):
            copy.set_types(list(types))
            yield from copy.rows()

    def begin(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        self.commit_failed = False

    def commit(self) -> None:
        try:
            self.raw.execute("COMMIT")
        except Exception:
            # Noted before anything else runs (no call, so no pending Ctrl-C raised in
            # its place): SQLite ends a transaction whose COMMIT failed (an I/O error, a
            # full disk) by rolling it back, so it is no longer open, yet not in.
            self.commit_failed = True
            raise

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    def abandon(self, error: BaseException) -> None:
        """Roll back the transaction ``error`` cut off, leaving ``error`` the one raised.

        Ctrl-C can land inside psycopg while a statement is still running (its result
        not read: psycopg's own cancel does not always get that far), and a ROLLBACK
        sent then fails with "another command is already in progress", an error that
        would replace the interrupt and read as a lost connection. An interrupted
        session whose ROLLBACK cannot be sent is closed instead: the server rolls back
        the transaction of a session that ends (its statement cancelled first), and
        nothing was committed (COMMIT is sent only after the block's work is done).
        """
        if self.dialect == "postgres" and self.raw.info.transaction_status == _PG_ACTIVE:
            # A statement still running, whatever cut it off (Ctrl-C, or the exception a
            # signal handler raises: follow's SIGTERM): cancelled first, as a closed
            # session's statement would run on, its locks held.
            with suppress(Exception):
                self.raw.cancel_safe(timeout=5.0)
            self.raw.close()
            return
        if isinstance(error, Exception):
            if self.dialect == "sqlite" and not self.raw.in_transaction:
                # SQLite rolled it back itself (an I/O error past `ulimit -f`): a ROLLBACK
                # now fails, "no transaction is active", in place of the error that counts.
                return
            self.rollback()
            return
        try:
            self.rollback()
        except Exception:
            self.raw.close()

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Database]:
        """A write transaction; ``lock`` names what it serialises on (PostgreSQL).

        SQLite's ``BEGIN IMMEDIATE`` takes the database's single write lock.
        """
        self.begin()
        try:
            if lock is not None and self.dialect == "postgres":
                self.advisory_lock(lock)
            yield self
        except BaseException as error:
            self.abandon(error)
            raise
        self.commit()

    @contextmanager
    def read_snapshot(self) -> Iterator[Database]:
        """Every statement inside sees one state of the store while appends go on (a
        check that reads the log, its index and its checkpoints in turn would otherwise
        see rows committed between two of its statements as rows out of place).

        SQLite: a deferred BEGIN, whose first read fixes the WAL snapshot (no lock);
        PostgreSQL: a REPEATABLE READ transaction. Inside one already, it is that one.
        """
        if self.dialect == "sqlite":
            if self.raw.in_transaction:
                yield self
                return
            self.raw.execute("BEGIN")
            try:
                yield self
            finally:
                self.raw.execute("COMMIT")
            return
        if self.raw.info.transaction_status != 0:  # psycopg's IDLE: no transaction open
            yield self
            return
        with self.raw.transaction():
            self.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield self

    def _wait_for_lock(self, statement: str, name: str) -> None:
        """Run a statement that waits for one of the ledger's own locks, up to
        WRITE_LOCK_WAIT_S; a lock timeout then is that wait's, not a server setting's."""
        try:
            self.raw.execute(statement, (f"{int(WRITE_LOCK_WAIT_S * 1000)}ms", name))
        except Exception as error:
            if getattr(error, "sqlstate", None) == "55P03":
                error.add_note(OWN_LOCK_WAIT)
            raise

    def advisory_lock(self, name: str) -> None:
        """A transaction-scoped lock, per schema: ledgers sharing a database never wait
        on each other. Waited for as long as SQLite waits for its file lock, not for
        ever: any session may take an advisory lock, a stuck writer or a reader's
        psql included (the setting is the transaction's, made before the wait)."""
        self._wait_for_lock(
            f"SELECT set_config('lock_timeout', %s, true), pg_advisory_xact_lock({_ADVISORY_KEY})",
            name,
        )
        # The wait for this lock only: the transaction's other locks wait as before.
        self.raw.execute("SET LOCAL lock_timeout TO DEFAULT")

    @contextmanager
    def session_lock(self, name: str) -> Iterator[None]:
        """The same lock held by this session across transactions (PostgreSQL)."""
        self._wait_for_lock(
            f"SELECT set_config('lock_timeout', %s, false), pg_advisory_lock({_ADVISORY_KEY})",
            name,
        )
        # The wait for this lock only: a replay's TRUNCATE then waits for readers, as before.
        self.raw.execute("RESET lock_timeout")
        try:
            yield
        finally:
            self.raw.execute(f"SELECT pg_advisory_unlock({_ADVISORY_KEY})", (name,))

    @contextmanager
    def session_lock_when_free(self, name: str, sharing: str, holding: str) -> Iterator[None]:
        """The lock held whole by this session, taken once no one holds it: asked for
        again and again rather than queued for, since a queued request holds up every
        shared one behind it (each new reader would wait for the one in the queue).
        ``sharing`` and ``holding`` name who holds it shared and whole, for the message
        when it never comes free."""
        import time

        deadline = time.monotonic() + WRITE_LOCK_WAIT_S
        take = f"SELECT pg_try_advisory_lock({_ADVISORY_KEY})"
        while not self.raw.execute(take, (name,)).fetchone()[0]:
            if time.monotonic() > deadline:
                # Shared, it is readers that hold it; else one session holds it whole.
                shared = self.raw.execute(
                    f"SELECT pg_try_advisory_lock_shared({_ADVISORY_KEY})", (name,)
                ).fetchone()[0]
                if shared:
                    self.raw.execute(f"SELECT pg_advisory_unlock_shared({_ADVISORY_KEY})", (name,))
                busy, done = (
                    (f"{sharing} kept the read models busy", "they are")
                    if shared
                    else (f"{holding} held the read models", "it is")
                )
                raise StoreError(
                    f"{busy} for {WRITE_LOCK_WAIT_S:g} s, so this command gave up "
                    "waiting and changed nothing",
                    f"run it again once {done} done",
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            self.raw.execute(f"SELECT pg_advisory_unlock({_ADVISORY_KEY})", (name,))

    @contextmanager
    def session_lock_if_free(self, name: str) -> Iterator[bool]:
        """The lock held whole by this session if no one holds it now (PostgreSQL):
        yields whether it was taken (work that can wait for its next turn)."""
        taken = bool(
            self.raw.execute(f"SELECT pg_try_advisory_lock({_ADVISORY_KEY})", (name,)).fetchone()[0]
        )
        unlock = f"SELECT pg_advisory_unlock({_ADVISORY_KEY})"
        try:
            yield taken
        except BaseException:
            # The session may be gone (abandoned: its locks with it); the error that
            # ended the work is the one to raise, not the unlock's.
            if taken and not self.raw.closed:
                with suppress(Exception):
                    self.raw.execute(unlock, (name,))
            raise
        if taken:
            self.raw.execute(unlock, (name,))

    def hold_shared(self, name: str) -> None:
        """The lock in shared mode, held until this connection closes (PostgreSQL):
        many holders at once, none while a session holds it whole (``session_lock``).
        Waited for as long as the other locks."""
        self._wait_for_lock(
            "SELECT set_config('lock_timeout', %s, false), "
            f"pg_advisory_lock_shared({_ADVISORY_KEY})",
            name,
        )
        self.raw.execute("RESET lock_timeout")

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# --- write transactions -----------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """The log's end, read under the write lock."""

    next_sequence: int
    last_recorded_at: datetime | None
    last_notification_id: int


class EntryRef(NamedTuple):
    """Where a recorded event is (a tuple: a batch makes one per event)."""

    sequence: int
    event_id: str
    originator_id: uuid.UUID
    type: str


def _entry_ref(row: Sequence[Any]) -> EntryRef:
    """An EntryRef from a row starting (sequence, event_id, originator_id, type)."""
    return EntryRef(row[0], row[1], uuid.UUID(str(row[2])), row[3])


class TargetEntry(NamedTuple):
    """A recorded event that later events refer to, with its leaf and retraction."""

    ref: EntryRef
    leaf: bytes
    retraction: str | None  # event_id of the event's retraction, if any


# One ledger_entries row, in column order; notification_id is filled in at insert.
EntryRow = tuple[int, str, Any, str, bytes, str, "str | None", str, int, "str | None"]
# One events-table row: (originator, version, topic, leaf).
EventRow = tuple[Any, int, str, bytes]

_ENTRY_COLUMNS = (
    "sequence, event_id, notification_id, originator_id, type, leaf_hash, recorded_at, "
    "subject_ref, lane, lane_key, target"
)


def lane_key(stream_key: str, lane: str) -> int:
    """A 64-bit digest of (stream, lane) for the lane index.

    Indexing 8 bytes instead of the uuid text and the lane name keeps that index a
    fraction of the size, so a large import's random index updates stay in the
    page cache; lookups still compare the stream and lane themselves.
    """
    digest = hashlib.blake2b(f"{stream_key}:{lane}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class WriteTransaction:
    """One append transaction holding the log's write lock."""

    def __init__(self, db: Database, storage: Storage) -> None:
        self.db = db
        self.storage = storage
        events = storage.events_table
        self._leaves_sql = (
            f"SELECT s.state FROM ledger_entries l JOIN {events} s "
            f"ON s.{storage.notification_column} = l.notification_id "
        )
        self._leaves_with_sequence_sql = self._leaves_sql.replace(
            "SELECT s.state", "SELECT l.sequence, s.state"
        )

    def head(self) -> Head:
        row = self.db.one(
            "SELECT sequence, recorded_at, notification_id FROM ledger_entries "
            "ORDER BY sequence DESC LIMIT 1"
        )
        if row is None:
            return Head(0, None, 0)
        # Every later batch inherits this time if it is ahead of the clock, into leaves
        # it signs: it is read from the event itself, which the log's hashes cover, and
        # an index column that disagrees stops the append.
        leaf = self.db.one(self._leaves_sql + "WHERE l.sequence = ?", (row[0],))
        if leaf is None:
            raise StoreError(
                f"the index's last row, sequence {row[0]}, lists no stored event "
                f"(notification_id {row[2]}): it was added outside the ledger (or its event "
                "deleted); nothing was written: `enforcement-ledger verify` names what changed"
            )
        recorded = carried = None
        with suppress(ValueError, TypeError, KeyError):
            record = json.loads(leaf_bytes(leaf[0]))
            carried = record["sequence"]
            recorded = record["recorded_at"]
        # A row renumbered past the end would have the append start there: its tree
        # would then need nodes that never were, and the log a gap.
        if carried is not None and carried != row[0]:
            raise StoreError(
                f"the index's last row, sequence {row[0]}, lists the stored event that "
                f"carries sequence {carried!r}: the index (ledger_entries) was changed "
                "outside the ledger; nothing was written: `enforcement-ledger verify` names "
                "what changed"
            )
        if recorded is None or recorded != row[1]:
            raise StoreError(
                f"the index gives the last event, sequence {row[0]}, the record time "
                f"{row[1]!r}, but the stored event holds {recorded!r}: the store was "
                "changed outside the ledger; nothing was written: `enforcement-ledger "
                "verify --read-models` names what changed"
            )
        # Every append stores its leaves in the node table: an event added with its index
        # row outside the ledger has none (and would be signed by the next checkpoint),
        # one put in place of the last event a leaf that is not its hash.
        node = self.db.one("SELECT hash FROM merkle_nodes WHERE level = 0 AND idx = ?", (row[0],))
        signed = self.last_checkpoint() if node is None else None  # a scan: only then
        if node is None and signed is not None and signed[0] > row[0]:
            raise StoreError(
                f"the Merkle node table has no leaf (level 0, index {row[0]}) for the last "
                f"event, sequence {row[0]}, which the stored checkpoint at size {signed[0]} "
                "covers: the node was deleted outside the ledger; nothing was written: "
                "`enforcement-ledger verify` checks the events, and then `export --nl` and "
                "`copy --export` into a new store rebuild the tree from them"
            )
        if node is None:
            raise StoreError(
                f"the Merkle node table has no leaf (level 0, index {row[0]}) for the last "
                f"event, sequence {row[0]}: the event was added outside the ledger (with its "
                "index row), or the node deleted; nothing was written: `enforcement-ledger "
                "verify` names what changed"
            )
        if not isinstance(node[0], bytes | memoryview) or bytes(node[0]) != merkle.leaf_hash(
            leaf_bytes(leaf[0])
        ):
            raise StoreError(
                f"the Merkle node table's leaf (level 0, index {row[0]}) is not the hash of the "
                f"event the index's last row, sequence {row[0]}, lists: the index, that event "
                "or the node was changed outside the ledger; nothing was written: "
                "`enforcement-ledger verify` names what changed"
            )
        return Head(row[0] + 1, datetime.fromisoformat(recorded), int(row[2]))

    def _rows_by_event_id(self, select: str, event_ids: Sequence[str]) -> Iterator[Any]:
        """Rows of ``select`` (ending in ``… IN``) for these event ids, one query per
        500 ids rather than one per id."""
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"{select} ({marks})", tuple(chunk)).fetchall()

    def find_entries(self, event_ids: Sequence[str]) -> dict[str, EntryRef]:
        """Entries for these event ids."""
        return {
            row[1]: _entry_ref(row)
            for row in self._rows_by_event_id(
                "SELECT sequence, event_id, originator_id, type FROM ledger_entries "
                "WHERE event_id IN",
                event_ids,
            )
        }

    def target_entries(self, event_ids: Sequence[str]) -> dict[str, TargetEntry]:
        """What rules ask of the events a batch refers to (appeal and retraction
        targets): where each is, its leaf and its retraction, in one query instead of
        three queries per referring event."""
        events, column = self.storage.events_table, self.storage.notification_column
        rows = self._rows_by_event_id(
            "SELECT l.sequence, l.event_id, l.originator_id, l.type, s.state, r.event_id "
            f"FROM ledger_entries l JOIN {events} s ON s.{column} = l.notification_id "
            "LEFT JOIN ledger_entries r ON r.target = l.event_id "
            "AND r.type = 'event_retracted' WHERE l.event_id IN",
            event_ids,
        )
        return {row[1]: TargetEntry(_entry_ref(row), leaf_bytes(row[4]), row[5]) for row in rows}

    def find_entry(self, event_id: str) -> EntryRef | None:
        return self.find_entries([event_id]).get(event_id)

    def leaf(self, sequence: int) -> bytes:
        row = self.db.one(self._leaves_sql + "WHERE l.sequence = ?", (sequence,))
        return leaf_bytes(row[0])

    def stream_extent(self, originator_id: uuid.UUID) -> tuple[int, int | None]:
        """How many events a stream has stored (its aggregate version) and the
        notification id of its first one."""
        # Two walks of the (originator_id, originator_version) key, one from each end.
        # Written as min()/max(), PostgreSQL may instead walk the whole notification-id
        # index looking for the stream's first row: a table scan per new stream.
        events, column = self.storage.events_table, self.storage.notification_column
        originator = self.storage.originator_param(originator_id)
        row = self.db.one(
            f"SELECT (SELECT originator_version FROM {events} WHERE originator_id = ? "
            "ORDER BY originator_version DESC LIMIT 1), "
            f"(SELECT {column} FROM {events} WHERE originator_id = ? "
            "ORDER BY originator_version LIMIT 1)",
            (originator, originator),
        )
        if row is None or row[0] is None:
            return 0, None
        return int(row[0]), int(row[1])

    # Lookups by a secondary key sort in Python, not with ORDER BY sequence: given
    # that, PostgreSQL may walk the sequence index and filter, a scan per lookup.

    def lane_leaves(self, originator_id: uuid.UUID, lane: str) -> list[bytes]:
        """Leaves of one lane of a stream (its retractions included), in log order."""
        rows = self.db.execute(
            self._leaves_with_sequence_sql
            + "WHERE l.lane_key = ? AND l.originator_id = ? AND l.lane = ?",
            (
                lane_key(originator_id.hex, lane),
                self.storage.originator_param(originator_id),
                lane,
            ),
        ).fetchall()
        return [leaf_bytes(state) for _, state in sorted(rows)]

    def stream_leaves(self, originator_id: uuid.UUID) -> list[bytes]:
        """Leaves of a whole stream, in log order (its aggregate version order)."""
        rows = self.db.execute(
            f"SELECT state FROM {self.storage.events_table} WHERE originator_id = ? "
            "ORDER BY originator_version",
            (self.storage.originator_param(originator_id),),
        ).fetchall()
        return [leaf_bytes(r[0]) for r in rows]

    def leaves_of_type(self, kind: str) -> list[bytes]:
        """Leaves of every event of one type, in log order. Renames come through their
        partial index (its predicate spelt out, as the planners need to use it); any
        other type is a scan of the index, for rare moments only (a rename's check)."""
        params: tuple[str, ...] = ()
        if kind == "platform_renamed":
            where = "WHERE l.type = 'platform_renamed'"
        else:
            where, params = "WHERE l.type = ?", (kind,)
        rows = self.db.execute(self._leaves_with_sequence_sql + where, params).fetchall()
        return [leaf_bytes(state) for _, state in sorted(rows)]

    def referring_leaves(self, event_id: str) -> list[bytes]:
        """Leaves of events whose ``target`` is ``event_id`` (appeals, retractions)."""
        rows = self.db.execute(
            self._leaves_with_sequence_sql + "WHERE l.target = ?", (event_id,)
        ).fetchall()
        return [leaf_bytes(state) for _, state in sorted(rows)]

    def retraction_of(self, event_id: str) -> str | None:
        row = self.db.one(
            "SELECT event_id FROM ledger_entries WHERE target = ? AND type = 'event_retracted'",
            (event_id,),
        )
        return None if row is None else str(row[0])

    def accounts_referencing(self, subject: str) -> list[uuid.UUID]:
        rows = self.db.execute(
            "SELECT DISTINCT originator_id FROM ledger_entries WHERE subject_ref = ?",
            (subject,),
        ).fetchall()
        return [uuid.UUID(str(r[0])) for r in rows]

    def insert(
        self, events: Sequence[EventRow], entries: Sequence[EntryRow], next_notification_id: int
    ) -> list[int]:
        """Insert events and their index rows; returns the notification ids."""
        notification_ids = self.storage.insert_events(self.db, events, next_notification_id)
        self.db.insert_rows(
            "ledger_entries",
            _ENTRY_COLUMNS,
            [(e[0], e[1], n_id, *e[2:]) for e, n_id in zip(entries, notification_ids, strict=True)],
        )
        return notification_ids

    def insert_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self.db.insert_rows("merkle_nodes", "level, idx, hash", nodes)

    def get_node(self, level: int, index: int) -> bytes:
        return self.storage.node_getter(self.db)(level, index)

    def insert_checkpoint(self, size: int, root: bytes, note: str, created_at: str) -> None:
        self.storage.insert_checkpoint(self.db, size, root, note, created_at)

    def has_checkpoint(self, size: int, note: str) -> bool:
        found = self.db.one("SELECT 1 FROM checkpoints WHERE size = ? AND note = ?", (size, note))
        return found is not None

    def last_checkpoint(self) -> tuple[int, bytes] | None:
        row = self.db.one("SELECT size, root FROM checkpoints ORDER BY size DESC, id DESC LIMIT 1")
        return None if row is None else (int(row[0]), bytes(row[1]))


# --- the two engines ----------------------------------------------------------------


class Storage:
    """What both engines share; subclasses supply connections, DDL and inserts."""

    dialect = ""
    events_table = ""
    notification_column = ""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self._writer: Database | None = None
        # Write transactions whose commit has begun, and has ended: interrupted before
        # any began, a command knows it wrote nothing; after one ended, that it is in.
        self.commits_begun = 0
        self.commits_done = 0

    # engine-specific
    def eventsourcing_env(self) -> dict[str, str]:
        raise NotImplementedError

    def connect(self) -> Database:
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    def require(self) -> None:
        raise NotImplementedError

    def create(self, meta: dict[str, str], then: Callable[[Database], None] | None = None) -> bool:
        """Make the store's tables once, then ``then`` (the read side's), all in one
        transaction: a concurrent command never meets the one without the other.
        Returns False when it already existed."""
        raise NotImplementedError

    def insert_events(
        self, db: Database, events: Sequence[EventRow], next_notification_id: int
    ) -> list[int]:
        """Insert events in order; returns their notification ids."""
        raise NotImplementedError

    def originator_param(self, originator_id: uuid.UUID) -> Any:
        raise NotImplementedError

    # The ledger's own indexes (not the read models'): appends read lanes and targets
    # through them, so a store without one answers rightly but ever more slowly.
    ledger_ddl: ClassVar[Sequence[str]] = ()

    def ledger_indexes(self) -> dict[str, str]:
        """Each of the ledger's indexes by name, with the statement that makes it."""
        return {
            statement.split()[5]: statement
            for statement in self.ledger_ddl
            if statement.startswith("CREATE INDEX IF NOT EXISTS ")
        }

    def structure_problems(self, db: Database) -> list[str]:
        """What the database engine finds wrong with the store's own structure (pages,
        b-trees, indexes against their tables): none where it cannot tell."""
        return []

    def may_update_read_models(self, db: Database) -> bool:
        """Whether this connection's role may project the log into the read models."""
        return True

    def missing_ledger_indexes(self, db: Database) -> list[str]:
        present = db.relation_names()
        return [name for name in self.ledger_indexes() if name not in present]

    def guard_triggers(self) -> dict[str, str]:
        """Each append-only trigger of the log's tables by name, with its statement
        (run after ``guard_setup``)."""
        raise NotImplementedError

    def guard_setup(self) -> list[str]:
        """What the triggers need made first (PostgreSQL: the function they call)."""
        return []

    def guards_in_force(self, db: Database) -> dict[str, bool]:
        """Each append-only trigger that fires in every session, by name, with whether
        it is still the one the ledger made (an owner may replace a trigger, or the
        function it calls, by one that refuses nothing)."""
        raise NotImplementedError

    def drop_guard(self, db: Database, name: str) -> None:
        """Drop a changed trigger before it is made again (PostgreSQL replaces it)."""

    def guard_faults(self, db: Database) -> tuple[list[str], list[str]]:
        """The append-only triggers the store lacks (dropped or disabled by whoever owns
        it), and those present but not as the ledger made them: one read of both."""
        present = self.guards_in_force(db)
        made = self.guard_triggers()
        return (
            [name for name in made if name not in present],
            [name for name in made if present.get(name) is False],
        )

    # shared
    def check_format(self, db: Database) -> None:
        """Refuse a ledger whose tables this version does not write."""
        row = db.one("SELECT value FROM ledger_meta WHERE key = 'format_version'")
        found = None if row is None else row[0]
        if found != FORMAT_VERSION:
            raise StoreError(
                f"{self.location.display} holds ledger format {found}, this version reads "
                f"format {FORMAT_VERSION}",
                "export it with the version that wrote it (`export --nl`) and copy the export "
                "into a new ledger (`copy --export`)",
            )

    @contextmanager
    def write_transaction(self) -> Iterator[WriteTransaction]:
        """All or nothing: commit on success, roll back on any exception or kill."""
        if self._writer is None:
            self._writer = self.connect()
        db = self._writer
        db.begin()
        try:
            self.lock_log(db)
            yield WriteTransaction(db, self)
        except BaseException as error:
            db.abandon(error)
            if db.dialect == "postgres" and db.raw.closed:
                self._writer = None  # an interrupt closed it: a next write opens a new one
            raise
        self.commits_begun += 1
        db.commit()
        self.commits_done += 1

    def interrupted_commit_landed(self) -> bool | None:
        """After an interrupt between ``commits_begun`` and ``commits_done``: whether
        that commit took effect; None when no commit was cut off or it cannot be told.

        SQLite's COMMIT runs to its end in C (Python raises KeyboardInterrupt only as
        it returns), so the transaction still open means COMMIT was never sent (du20:
        a batch that was in got "committed whole or not at all"). PostgreSQL's server
        may have committed before the client stopped waiting: not known. A COMMIT that
        failed ended its transaction too, rolled back (rv36: said to be in)."""
        if self.commits_begun == self.commits_done or self._writer is None:
            return None
        if self._writer.dialect != "sqlite":
            return None
        return not self._writer.raw.in_transaction and not self._writer.commit_failed

    def lock_log(self, db: Database) -> None:
        """Serialise writers (SQLite's BEGIN IMMEDIATE already did)."""

    def iter_leaves(self, db: Database) -> Iterator[bytes]:
        """Stored leaves in log order (notification order equals sequence order)."""
        order = self.notification_column
        statement = f"SELECT state FROM {self.events_table} ORDER BY {order}"
        for (state,) in db.stream(statement, binary=True):
            yield leaf_bytes(state)

    @property
    def _recorded_hash(self) -> str:
        """The hash the index row ``l`` recorded for its event, as a column: None only
        where no index row lists the event; a row whose hash was set to NULL (its NOT
        NULL dropped) gives an empty hash, judged as a changed one."""
        empty = "X''" if self.dialect == "sqlite" else "''::bytea"
        return (
            f"CASE WHEN l.notification_id IS NULL THEN NULL ELSE coalesce(l.leaf_hash, {empty}) END"
        )

    def iter_leaves_between(
        self, db: Database, start: int, stop: int
    ) -> Iterator[tuple[bytes, bytes | None]]:
        """(leaf, hash recorded at append time) of sequences ``start`` to ``stop``
        (exclusive), in log order: the events table's own order, not the index's, which
        an edited row could reorder. The hash is None where no index row lists the
        event, empty where a row's was set to NULL."""
        order = self.notification_column
        # The range first, then the join: SQLite joined every row OFFSET skipped (a
        # checkpoint after 10 unsigned events of 1M took 384 ms against 21).
        statement = (
            f"SELECT s.state, {self._recorded_hash} FROM (SELECT {order} AS n, state FROM "
            f"{self.events_table} ORDER BY {order} LIMIT ? OFFSET ?) s "
            "LEFT JOIN ledger_entries l ON l.notification_id = s.n ORDER BY s.n"
        )
        for state, recorded in db.stream(statement, (stop - start, start), binary=True):
            yield leaf_bytes(state), None if recorded is None else bytes(recorded)

    def iter_leaves_with_hashes(
        self, db: Database
    ) -> Generator[tuple[bytes, bytes | None], None, None]:
        """(leaf, hash recorded at append time) in log order, one streamed query.

        Rows pass through as the drivers return them (bytes for BLOB and binary
        bytea): verify reads every row, so no per-row copy.
        """
        order = self.notification_column
        statement = (
            f"SELECT s.state, {self._recorded_hash} FROM {self.events_table} s "
            f"LEFT JOIN ledger_entries l ON l.notification_id = s.{order} ORDER BY s.{order}"
        )
        if self.dialect == "postgres":
            yield from db.copy_out(statement, ("bytea", "bytea"))
        else:
            yield from db.stream(statement)

    def checkpoint_rows(self, db: Database) -> list[tuple[int, bytes, str, str]]:
        """(size, root, note, created_at) of every stored checkpoint, in log order."""
        rows = db.execute(
            "SELECT size, root, note, created_at FROM checkpoints ORDER BY size, id"
        ).fetchall()
        for row in rows:
            shapes = zip(
                ("size", "root", "note"), row[:3], (int, bytes | memoryview, str), strict=True
            )
            for column, value, kind in shapes:
                if not isinstance(value, kind):  # SQLite keeps whatever was written
                    from ledger.integrity import IntegrityError

                    raise IntegrityError(
                        f"a stored checkpoint's {column} is {describe_stored(value)} "
                        f"({value!r:.40}), not what the ledger writes there: the "
                        "checkpoints table was changed outside the ledger"
                    )
        return [(int(r[0]), bytes(r[1]), r[2], r[3]) for r in rows]

    def answering(self, db: Database) -> None:
        """Set ``db`` up to answer one command (a status, a timeline, counts): SQLite
        with an 8 MiB page cache, not the 64 MiB appends want. An answer reads most
        pages once, and SQLite sizes each sort by the page cache: with 64 MiB, `counts`
        by six fields peaked at 228 MB at 1M events (54 MB with 8 MiB, as fast), and
        every read command grew to ~95 MB (~35 MB). (2 MiB: 36 MB, 20% slower.)"""
        if self.dialect == "sqlite":
            db.execute("PRAGMA cache_size=-8192")

    def read_once(self, db: Database) -> None:
        """Set ``db`` up for one pass over the log: SQLite then needs no page cache
        beyond a few pages (the usual 64 MiB would only grow the process)."""
        if self.dialect == "sqlite":
            db.execute("PRAGMA cache_size=-2048")

    def checkpoints(self, db: Database) -> list[tuple[int, bytes, str]]:
        """(size, root, note) of every stored checkpoint, in log order."""
        return [(size, root, note) for size, root, note, _ in self.checkpoint_rows(db)]

    def tree_size(self, db: Database) -> int:
        row = db.one("SELECT MAX(sequence) FROM ledger_entries")
        return 0 if row[0] is None else int(row[0]) + 1

    def index_mismatch(self, db: Database, size: int) -> tuple[str, int] | None:
        """Where the log index differs from one row for each of ``size`` leaves:
        ("missing", the first sequence without a row), ("stray", a row's sequence no
        leaf has) or ("unbacked", that of such a row that lists no stored event); None
        when it does not (two cheap reads then)."""
        (within,) = db.one(
            "SELECT count(*) FROM ledger_entries WHERE sequence >= 0 AND sequence < ?", (size,)
        )
        if int(within) < size:  # sequences are unique: some in 0..size-1 are missing
            if db.one("SELECT 1 FROM ledger_entries WHERE sequence = 0") is None:
                return "missing", 0
            row = db.one(
                "SELECT min(l.sequence) + 1 FROM ledger_entries l WHERE l.sequence >= 0 "
                "AND l.sequence < ? AND NOT EXISTS "
                "(SELECT 1 FROM ledger_entries m WHERE m.sequence = l.sequence + 1)",
                (size - 1,),
            )
            return "missing", int(row[0])
        # Each bound on its own, a seek in the primary key: as one OR, SQLite planned
        # (with statistics taken) a scan of the notification index, ~12 ms at 200k rows.
        stray = db.one(
            "SELECT sequence, notification_id FROM ledger_entries WHERE sequence < 0 LIMIT 1"
        ) or db.one(
            "SELECT sequence, notification_id FROM ledger_entries WHERE sequence >= ? LIMIT 1",
            (size,),
        )
        if stray is None:
            return None
        event = db.one(
            f"SELECT 1 FROM {self.events_table} WHERE {self.notification_column} = ?",
            (stray[1],),
        )
        return ("stray" if event is not None else "unbacked"), int(stray[0])

    def first_node_beyond(self, db: Database, size: int) -> tuple[int, int] | None:
        """A stored tree node (level, index) the tree of ``size`` leaves does not have,
        or None. Appends write only the complete subtrees: ``size >> level`` a level."""
        odd = db.one(
            "SELECT level, idx FROM merkle_nodes WHERE level < 0 OR level > 63 OR idx < 0 "
            "ORDER BY level, idx LIMIT 1"
        )
        if odd is not None:
            return int(odd[0]), int(odd[1])
        statement = db.sql(
            "SELECT idx FROM merkle_nodes WHERE level = ? AND idx >= ? ORDER BY idx LIMIT 1"
        )
        for level in range(64):
            row = db.raw.execute(statement, (level, size >> level)).fetchone()
            if row is not None:
                return level, int(row[0])
        return None

    def node_getter(self, db: Database) -> Callable[[int, int], bytes]:
        statement = db.sql("SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?")
        raw = db.raw

        def get(level: int, index: int) -> bytes:
            row = raw.execute(statement, (level, index)).fetchone()
            if row is None:
                raise MissingMerkleNode(level, index)
            return bytes(row[0])

        return get

    def leaf_at(self, db: Database, sequence: int) -> bytes:
        """The stored leaf of one sequence (read through the log index)."""
        row = db.one(
            f"SELECT s.state FROM ledger_entries l JOIN {self.events_table} s "
            f"ON s.{self.notification_column} = l.notification_id WHERE l.sequence = ?",
            (sequence,),
        )
        if row is None:  # no row, or one listing no event: not a stored NULL
            raise StoreError(
                f"the log index (ledger_entries) lists no stored event for sequence "
                f"{sequence}: it was changed outside the ledger (a row renumbered or deleted); "
                "`enforcement-ledger verify` names it"
            )
        return leaf_bytes(row[0])

    def find_sequence(self, db: Database, event_id: str) -> int | None:
        row = db.one("SELECT sequence FROM ledger_entries WHERE event_id = ?", (event_id,))
        return None if row is None else int(row[0])

    def insert_checkpoint(
        self, db: Database, size: int, root: bytes, note: str, created_at: str
    ) -> None:
        db.execute(
            "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?,?,?,?)",
            (size, root, note, created_at),
        )

    def analyze(self) -> None:
        """Refresh the query planner's statistics after a bulk append."""
        with self.connect() as db:
            if self.dialect == "sqlite":
                # Sampled statistics (as PRAGMA optimize takes them): plans need the
                # shape of the data, not a full scan of every index.
                db.execute("PRAGMA analysis_limit=1000")
                db.execute("ANALYZE")
                return
            # This ledger's schema only; tables the role does not own are skipped with
            # a notice, not an error. VACUUM too: it marks the new pages all-visible,
            # without which the covering indexes cannot answer from the index alone.
            tables = db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            ).fetchall()
            failures: list[tuple[str, Exception]] = []
            for (table,) in tables:
                # Each table is tried: one that fails (a lock held past a timeout, a
                # cancel) leaves the others' statistics worth having (rv35).
                try:
                    db.execute(f'VACUUM (ANALYZE) "{table}"')
                except Exception as error:
                    failures.append((table, error))
            if failures:
                raise StatisticsNotRefreshed(failures)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_SQLITE_LEDGER_DDL = [
    "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS ledger_entries (
        sequence INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        notification_id INTEGER NOT NULL UNIQUE,
        originator_id TEXT NOT NULL,
        type TEXT NOT NULL,
        leaf_hash BLOB NOT NULL,
        recorded_at TEXT NOT NULL,
        subject_ref TEXT,
        lane TEXT NOT NULL,
        lane_key INTEGER NOT NULL,
        target TEXT)""",
    """CREATE INDEX IF NOT EXISTS ledger_entries_subject_ref
        ON ledger_entries (subject_ref) WHERE subject_ref IS NOT NULL""",
    # Appends read one lane of a stream, or what refers to an event, from here.
    "CREATE INDEX IF NOT EXISTS ledger_entries_lane ON ledger_entries (lane_key)",
    """CREATE INDEX IF NOT EXISTS ledger_entries_target
        ON ledger_entries (target) WHERE target IS NOT NULL""",
    # A registration checks the platform renames (a rename's name is no slug to
    # register under): a handful of rows, found without reading the whole index.
    """CREATE INDEX IF NOT EXISTS ledger_entries_renames
        ON ledger_entries (sequence) WHERE type = 'platform_renamed'""",
    """CREATE TABLE IF NOT EXISTS merkle_nodes (
        level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        id INTEGER PRIMARY KEY,
        size INTEGER NOT NULL,
        root BLOB NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
]


# What SQLite says when it may read a file but not write it or beside it.
_NOT_WRITABLE = {"SQLITE_CANTOPEN", "SQLITE_READONLY"}


class SQLiteStorage(Storage):
    """The embedded store: one SQLite file in WAL mode."""

    dialect = "sqlite"
    ledger_ddl: ClassVar[Sequence[str]] = _SQLITE_LEDGER_DDL
    events_table = "stored_events"
    notification_column = "rowid"

    def __init__(self, location: StoreLocation) -> None:
        super().__init__(location)
        assert location.path is not None
        self.path = location.path

    def eventsourcing_env(self) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(self.path),
            "SQLITE_LOCK_TIMEOUT": str(int(SQLITE_BUSY_TIMEOUT_S)),
            # Tables are made once, by `init`; other commands never race to create them.
            "CREATE_TABLE": "n",
        }

    def originator_param(self, originator_id: uuid.UUID) -> Any:
        return originator_id.hex

    def exists(self) -> bool:
        if not self.path.exists():
            return False
        with self.connect() as db:
            return self._has_meta(db)

    @staticmethod
    def _has_meta(db: Database) -> bool:
        row = db.one("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_meta'")
        return row is not None

    def _refuse_foreign(self, db: Database, advice: str) -> None:
        """A database of someone else's tables or views: no place for a ledger."""
        if db.one("SELECT 1 FROM sqlite_master"):
            raise StoreError(f"{self.path} is a SQLite database but not a ledger", advice)

    def require(self) -> None:
        if not self.path.exists():
            raise NoLedgerError(
                f"no ledger at {self.path}",
                advice="create one with `enforcement-ledger init` or choose another with --store",
            )
        with self.connect() as db:  # one connection for both checks
            if not self._has_meta(db):
                # `init` refuses such a file: "run init" would not help.
                self._refuse_foreign(db, "choose another --store (`init` adds no ledger to it)")
                raise NoLedgerError(f"{self.path} is not an enforcement ledger", "run `init` first")
            self.check_format(db)

    def connect(self) -> Database:
        return self._connect(creating=False)

    def _connect(self, *, creating: bool) -> Database:
        """The file opened for reading and writing (read-only where it cannot be
        written). It is put in WAL mode (persistent, so once) only when it is a ledger
        or ``init`` is making one in it: any other file given as a store, an empty one
        or someone's database, is left as it was (the switch rewrote it, even to read)."""
        try:
            try:
                raw = self._open(self.path, uri=False)
                if raw.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    empty = raw.execute("SELECT 1 FROM sqlite_master").fetchone() is None
                    if (creating and empty) or self._has_meta(Database(raw, "sqlite")):
                        raw.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as error:
                # An auditor's copy on read-only media or in a directory they may not
                # write: SQLite cannot make its -wal/-shm files. Read it read-only.
                if error.sqlite_errorname not in _NOT_WRITABLE or not self.path.is_file():
                    raise
                raw = self._open_read_only()
            # FULL: a committed batch survives power loss, not only a process kill.
            raw.execute("PRAGMA synchronous=FULL")
            # 64 MiB page cache (default 2 MiB): bulk appends touch several indexes.
            raw.execute("PRAGMA cache_size=-65536")
        except sqlite3.DatabaseError as error:
            if self._disk_full(error):
                # Opening writes beside the file (its -shm index); a full disk is no
                # damage, and the message must not send anyone to their backups.
                raise StoreError(
                    f"cannot open {self.path}: the disk holding it is full ({error}); "
                    "nothing was changed: free space and run the command again"
                ) from None
            raise StoreError(f"{self.path} is not a usable SQLite ledger: {error}") from None
        return Database(raw, "sqlite")

    def _disk_full(self, error: sqlite3.DatabaseError) -> bool:
        name = getattr(error, "sqlite_errorname", "")
        if name == "SQLITE_FULL":
            return True
        if not name.startswith("SQLITE_IOERR"):
            return False
        import shutil  # here: at module level it loads the compression modules

        try:  # an I/O error on a disk without room is that disk being full
            return shutil.disk_usage(self.path.absolute().parent).free < 1024 * 1024
        except OSError:
            return False

    @staticmethod
    def _open(target: str | os.PathLike[str], *, uri: bool) -> sqlite3.Connection:
        # check_same_thread off: a connection is used by one thread at a time, but a
        # Ledger dropped unclosed is closed by the garbage collector, which may run
        # in any thread (psycopg's pool workers, for one).
        return sqlite3.connect(
            target,
            timeout=SQLITE_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
            uri=uri,
        )

    def _open_read_only(self) -> sqlite3.Connection:
        """The file opened read-only; every write on it fails with SQLITE_READONLY."""
        base = self.path.absolute().as_uri() + "?mode=ro"
        raw = self._open(base, uri=True)
        try:
            raw.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return raw
        except sqlite3.OperationalError as error:
            raw.close()
            if error.sqlite_errorname not in _NOT_WRITABLE:
                raise
        # No -shm file, and none can be made: no connection has the file open (ours
        # are all WAL, which keeps one). Immutable (no locks, no WAL) is then right
        # unless a write-ahead log left behind holds changes the file does not have.
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"{self.path} is read-only and its write-ahead log {wal.name} holds changes "
                "not yet in the file, which cannot be read without writing beside it",
                "copy the file together with its -wal file to a place you may write",
            )
        raw = self._open(base + "&immutable=1", uri=True)
        raw.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return raw

    def guard_triggers(self) -> dict[str, str]:
        return {
            f"{table}_no_{action.lower()}": (
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                f"BEFORE {action} ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'enforcement ledger: {table} is append-only'); END"
            )
            for table in (self.events_table, *LEDGER_TABLES)
            for action in ("UPDATE", "DELETE")
        }

    def guards_in_force(self, db: Database) -> dict[str, bool]:
        # SQLite keeps a trigger's statement as written, less its IF NOT EXISTS.
        made = {
            name: " ".join(statement.replace(" IF NOT EXISTS", "", 1).split())
            for name, statement in self.guard_triggers().items()
        }
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        return {name: " ".join(str(sql).split()) == made.get(name) for name, sql in rows}

    def drop_guard(self, db: Database, name: str) -> None:
        db.execute(f'DROP TRIGGER IF EXISTS "{name}"')

    def structure_problems(self, db: Database) -> list[str]:
        # Every page and b-tree, and each index against its table (not the cells'
        # contents, which the log's hashes check): verify's scans read tables in rowid
        # order and never meet a damaged index, which appends then fail on.
        rows = [str(message) for (message,) in db.execute("PRAGMA quick_check(5)")]
        return [] if rows == ["ok"] else rows

    def create(self, meta: dict[str, str], then: Callable[[Database], None] | None = None) -> bool:
        """Create the schema once. Returns False when it already existed."""
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        if not self.path.parent.is_dir():
            # Not made: a mistyped path would give a new, empty ledger somewhere else.
            raise StoreError(
                f"no directory {self.path.parent} to hold {self.path.name}",
                "create the directory first, or check the --store path",
            )
        if not self.path.exists() and not os.access(self.path.parent, os.W_OK | os.X_OK):
            # SQLite says only "unable to open database file", as for a damaged one.
            raise StoreError(
                f"cannot create {self.path}: the directory {self.path.parent} is read-only "
                "here; nothing was made",
                "give a --store path in a directory you may write",
            )
        with self._connect(creating=True) as db, db.transaction():
            if db.one("SELECT 1 FROM sqlite_master WHERE name='ledger_meta'"):
                return False
            self._refuse_foreign(db, "refusing to add tables to it (choose another --store)")
            library_ddl = SQLiteApplicationRecorder(
                SQLiteDatastore(str(self.path))
            ).construct_create_table_statements()
            for statement in [*library_ddl, *_SQLITE_LEDGER_DDL]:
                db.execute(statement)
            for statement in self.guard_triggers().values():
                db.execute(statement)
            if then is not None:  # what else the store needs, in the same transaction
                then(db)
            db.executemany(
                "INSERT INTO ledger_meta VALUES (?, ?)",
                sorted({**meta, "format_version": FORMAT_VERSION}.items()),
            )
        return True

    def insert_events(
        self, db: Database, events: Sequence[EventRow], next_notification_id: int
    ) -> list[int]:
        # Rowids are given, not awaited one by one: under the write lock nobody else
        # inserts, so the batch's ids are the consecutive ones after the last.
        first = next_notification_id
        db.raw.executemany(
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
            "VALUES (?,?,?,?,?)",
            [(first + i, *row) for i, row in enumerate(events)],
        )
        return list(range(first, first + len(events)))


def open_storage(location: StoreLocation) -> Storage:
    if location.kind == "postgres":
        from ledger.postgres import PostgresStorage

        return PostgresStorage(location)
    return SQLiteStorage(location)
