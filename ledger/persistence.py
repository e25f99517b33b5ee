"""Storage: the library's event table plus the ledger's own append-only tables.

The event payload stored by eventsourcing *is* the Merkle leaf: the canonical JSON
of the full record, ``sequence`` included. Verification therefore hashes stored
bytes directly, with no decoding, and an export is those bytes one per line.

``sequence`` (the gapless leaf index) cannot be the library's notification id:
PostgreSQL's ``bigserial`` leaves gaps after rollbacks. It is assigned by the
writer while it holds the store's write lock (``BEGIN IMMEDIATE`` on SQLite,
``LOCK TABLE … IN EXCLUSIVE MODE`` on PostgreSQL), so sequence order equals
commit order equals notification order.

Tables besides the library's ``stored_events``:

* ``ledger_meta``: origin and format version, written once at ``init``;
* ``ledger_entries``: sequence → event_id, stream, content hash, leaf hash;
* ``merkle_nodes``: hashes of perfect subtrees, for O(log n) roots and proofs;
* ``checkpoints``: signed tree heads.

All of them refuse UPDATE and DELETE through triggers.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import get_topic, resolve_topic

from ledger.canonical import canonical_json
from ledger.location import StoreError, StoreLocation

FORMAT_VERSION = "1"
APPEND_ONLY_TABLES = ("stored_events", "ledger_meta", "ledger_entries", "merkle_nodes", "checkpoints")
SQLITE_BUSY_TIMEOUT_S = 120.0  # concurrent writers wait for the file lock, not fail


class LeafMapper(Mapper[uuid.UUID]):
    """Stores an aggregate event as the canonical JSON of its ledger record.

    The library's envelope fields are not duplicated in the payload: the id and
    version are table columns, the timestamp is the record's ``recorded_at`` and a
    Started event's originator topic follows from its own topic.
    """

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=canonical_json(domain_event.record),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        record = json.loads(stored_event.state)
        state: dict[str, Any] = {
            "originator_id": uuid.UUID(str(stored_event.originator_id)),
            "originator_version": stored_event.originator_version,
            "timestamp": datetime.fromisoformat(record["recorded_at"]),
            "record": record,
        }
        if issubclass(cls, Aggregate.Created):
            state["originator_topic"] = stored_event.topic.rsplit(".", 1)[0]
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event


@dataclass(frozen=True)
class Head:
    """The log's end, read under the write lock."""

    next_sequence: int
    last_recorded_at: datetime | None


@dataclass(frozen=True)
class EntryRef:
    sequence: int
    event_id: str
    originator_id: uuid.UUID
    type: str
    content_hash: str


@dataclass(frozen=True)
class EntryRow:
    sequence: int
    event_id: str
    originator_id: uuid.UUID
    type: str
    content_hash: str
    leaf_hash: bytes
    recorded_at: str
    subject_ref: str | None


# The library's own stored_events DDL is prepended at create time.
_SQLITE_DDL = [
    """CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ledger_entries (
        sequence INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        notification_id INTEGER NOT NULL UNIQUE,
        originator_id TEXT NOT NULL,
        type TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        leaf_hash BLOB NOT NULL,
        recorded_at TEXT NOT NULL,
        subject_ref TEXT)""",
    """CREATE INDEX IF NOT EXISTS ledger_entries_subject_ref
        ON ledger_entries (subject_ref) WHERE subject_ref IS NOT NULL""",
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


def _sqlite_triggers() -> list[str]:
    statements = []
    for table in APPEND_ONLY_TABLES:
        for action in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                f"BEFORE {action} ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'enforcement ledger: {table} is append-only'); END"
            )
    return statements


class SQLiteWriteTransaction:
    """One write transaction holding the database's write lock."""

    def __init__(self, connection: sqlite3.Connection, recorder: SQLiteApplicationRecorder) -> None:
        self.connection = connection
        self.cursor = connection.cursor()
        self.recorder = recorder

    def head(self) -> Head:
        row = self.cursor.execute(
            "SELECT sequence, recorded_at FROM ledger_entries ORDER BY sequence DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return Head(0, None)
        return Head(row[0] + 1, datetime.fromisoformat(row[1]))

    def find_entry(self, event_id: str) -> EntryRef | None:
        row = self.cursor.execute(
            "SELECT sequence, event_id, originator_id, type, content_hash "
            "FROM ledger_entries WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        return EntryRef(row[0], row[1], uuid.UUID(row[2]), row[3], row[4])

    def stream_events(self, originator_id: uuid.UUID) -> list[StoredEvent]:
        rows = self.cursor.execute(
            "SELECT originator_version, topic, state FROM stored_events "
            "WHERE originator_id = ? ORDER BY originator_version",
            (originator_id.hex,),
        ).fetchall()
        return [StoredEvent(originator_id, r[0], r[1], r[2]) for r in rows]

    def accounts_referencing(self, subject: str) -> list[uuid.UUID]:
        rows = self.cursor.execute(
            "SELECT DISTINCT originator_id FROM ledger_entries WHERE subject_ref = ?",
            (subject,),
        ).fetchall()
        return [uuid.UUID(r[0]) for r in rows]

    def insert(self, stored_events: Sequence[StoredEvent], entries: Sequence[EntryRow]) -> None:
        cursor = self.cursor
        # The library's own insert, inside our transaction; it returns the rowids.
        notification_ids = self.recorder._insert_events(SQLiteCursor(cursor), stored_events)
        assert notification_ids is not None
        cursor.executemany(
            "INSERT INTO ledger_entries VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    e.sequence,
                    e.event_id,
                    n_id,
                    e.originator_id.hex,
                    e.type,
                    e.content_hash,
                    e.leaf_hash,
                    e.recorded_at,
                    e.subject_ref,
                )
                for e, n_id in zip(entries, notification_ids, strict=True)
            ],
        )

    def insert_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self.cursor.executemany("INSERT INTO merkle_nodes VALUES (?,?,?)", nodes)

    def get_node(self, level: int, index: int) -> bytes:
        row = self.cursor.execute(
            "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise KeyError((level, index))
        return bytes(row[0])

    def insert_checkpoint(self, size: int, root: bytes, note: str, created_at: str) -> None:
        self.cursor.execute(
            "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?,?,?,?)",
            (size, root, note, created_at),
        )


class SQLiteStorage:
    """The embedded store: one SQLite file in WAL mode."""

    def __init__(self, location: StoreLocation) -> None:
        assert location.path is not None
        self.location = location
        self.path = location.path
        self._writer: sqlite3.Connection | None = None

    def eventsourcing_env(self) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(self.path),
            "SQLITE_LOCK_TIMEOUT": str(int(SQLITE_BUSY_TIMEOUT_S)),
            # Tables are made once, by `init`; other commands never race to create them.
            "CREATE_TABLE": "n",
        }

    def exists(self) -> bool:
        if not self.path.exists():
            return False
        with self.connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_meta'"
            ).fetchone()
        return row is not None

    def require(self) -> None:
        if not self.path.exists():
            raise StoreError(
                f"no ledger at {self.path}; create one with `enforcement-ledger init` "
                "or choose another with --store"
            )
        if not self.exists():
            raise StoreError(f"{self.path} is not an enforcement ledger; run `init` first")

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss, not only a process kill.
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def create(self, meta: dict[str, str]) -> bool:
        """Create the schema once. Returns False when it already existed."""
        if self.path.exists() and self.exists():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            library_ddl = SQLiteApplicationRecorder(
                SQLiteDatastore(str(self.path))
            ).construct_create_table_statements()
            for statement in [*library_ddl, *_SQLITE_DDL, *_sqlite_triggers()]:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO ledger_meta VALUES (?, ?)",
                sorted({**meta, "format_version": FORMAT_VERSION}.items()),
            )
            conn.execute("COMMIT")
        return True

    # --- reads for integrity: plain SQL, streamed, no decoding -------------------

    def iter_leaves(self, connection: sqlite3.Connection) -> Iterator[bytes]:
        """Stored leaves in log order (notification order equals sequence order)."""
        cursor = connection.execute("SELECT state FROM stored_events ORDER BY rowid")
        while rows := cursor.fetchmany(5000):
            for (state,) in rows:
                yield bytes(state)

    def iter_leaf_hashes(self, connection: sqlite3.Connection) -> Iterator[tuple[int, bytes]]:
        cursor = connection.execute(
            "SELECT sequence, leaf_hash FROM ledger_entries ORDER BY sequence"
        )
        while rows := cursor.fetchmany(5000):
            for sequence, digest in rows:
                yield sequence, bytes(digest)

    def checkpoints(self, connection: sqlite3.Connection) -> list[tuple[int, bytes, str]]:
        rows = connection.execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size, id"
        ).fetchall()
        return [(r[0], bytes(r[1]), r[2]) for r in rows]

    def tree_size(self, connection: sqlite3.Connection) -> int:
        row = connection.execute("SELECT MAX(sequence) FROM ledger_entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def node_getter(self, connection: sqlite3.Connection) -> Callable[[int, int], bytes]:
        def get(level: int, index: int) -> bytes:
            row = connection.execute(
                "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
            if row is None:
                raise KeyError((level, index))
            return bytes(row[0])

        return get

    def find_sequence(self, connection: sqlite3.Connection, event_id: str) -> int | None:
        row = connection.execute(
            "SELECT sequence FROM ledger_entries WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    def insert_checkpoint(self, connection: sqlite3.Connection, size: int, root: bytes, note: str, created_at: str) -> None:
        connection.execute(
            "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?,?,?,?)",
            (size, root, note, created_at),
        )

    def meta(self) -> dict[str, str]:
        with self.connect() as conn:
            return dict(conn.execute("SELECT key, value FROM ledger_meta").fetchall())

    @contextmanager
    def write_transaction(
        self, recorder: SQLiteApplicationRecorder
    ) -> Iterator[SQLiteWriteTransaction]:
        """All or nothing: commit on success, roll back on any exception or kill."""
        if self._writer is None:
            self._writer = self.connect()
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield SQLiteWriteTransaction(connection, recorder)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
