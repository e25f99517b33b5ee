"""Read models rebuilt from the log, kept in the same store.

One ``timeline`` row per event carries the columns queries filter on, with times
as integer microseconds since the epoch (portable, and ordered correctly in every
engine), and the notification id of the stored event, whose leaf JSON queries
join rather than copy. Retractions are a separate insert-only table, so "was this
retracted as known at K?" is a join, never an update.

The projector follows the notification log itself and tracks its position in the
same transaction as the rows it writes: a crash replays nothing twice and skips
nothing (eventsourcing 9.5's SQLite recorder cannot ``subscribe``). An append
whose projections were current also projects its own events inside its own
transaction (``InlineProjection``), so a bulk import never re-reads what it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.application import Ledger
from ledger.persistence import Database

PROJECTION = "timeline"
STATUS_FACT_TYPES = (
    "account_registered",
    "account_reinstated",
    "account_removed",
    "account_restricted",
    "account_suspended",
    "exemption_applied",
    "exemption_revoked",
)
READ_CHUNK = 10_000  # leaves per catch-up transaction: fewer commits (fsyncs) on replay

INDEXES = [
    "CREATE INDEX IF NOT EXISTS timeline_account ON timeline (account, occurred_us, sequence)",
    "CREATE INDEX IF NOT EXISTS timeline_subject ON timeline (subject, occurred_us, sequence)",
    "CREATE INDEX IF NOT EXISTS timeline_platform ON timeline (platform, occurred_us, sequence)",
    "CREATE INDEX IF NOT EXISTS timeline_occurred ON timeline (occurred_us, sequence)",
    # Partial indexes: one account's status reads only its few status facts, however
    # many posts and follower counts it has (a small fraction of rows to maintain).
    "CREATE INDEX IF NOT EXISTS timeline_status_facts ON timeline (account, occurred_us) "
    f"WHERE type IN ({', '.join(repr(t) for t in STATUS_FACT_TYPES)})",
    "CREATE INDEX IF NOT EXISTS timeline_followers ON timeline (account, occurred_us) "
    "WHERE type = 'followers_observed'",
]
INDEX_NAMES = (
    "timeline_account",
    "timeline_subject",
    "timeline_platform",
    "timeline_occurred",
    "timeline_status_facts",
    "timeline_followers",
)
DDL = [
    """CREATE TABLE IF NOT EXISTS projection_position (
        name TEXT PRIMARY KEY, notification_id BIGINT NOT NULL, sequence BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS timeline (
        sequence BIGINT PRIMARY KEY,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        account TEXT,
        subject TEXT,
        platform TEXT,
        policy TEXT,
        actor TEXT NOT NULL,
        occurred_us BIGINT NOT NULL,
        recorded_us BIGINT NOT NULL,
        notification_id BIGINT NOT NULL)""",
    *INDEXES,
    """CREATE TABLE IF NOT EXISTS retractions (
        target TEXT PRIMARY KEY,
        retraction TEXT NOT NULL,
        recorded_us BIGINT NOT NULL)""",
]
TABLES = ("timeline", "retractions", "projection_position")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(value: str | datetime) -> int:
    """Exact microseconds since the epoch of an ISO time or an aware datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment - _EPOCH) // _MICROSECOND


def create_tables(db: Database) -> None:
    for statement in DDL:
        db.execute(statement)


def timeline_row(record: dict[str, Any], notification_id: int) -> tuple[Any, ...]:
    account = record.get("account")
    platform = record.get("platform") or (account.split(":", 1)[0] if account else None)
    return (
        record["sequence"],
        record["event_id"],
        record["type"],
        account,
        record.get("subject"),
        platform,
        record.get("policy"),
        record["actor"],
        micros(record["occurred_at"]),
        micros(record["recorded_at"]),
        notification_id,
    )


def _write(db: Database, records: Sequence[tuple[int, dict[str, Any]]]) -> None:
    rows = []
    retractions = []
    chunk: dict[str, tuple[Any, ...]] = {}
    for notification_id, record in records:
        row = timeline_row(record, notification_id)
        if record["type"] == "event_retracted":
            # A retraction belongs to its target's account, subject and platform, so
            # it shows up in the timeline where the retracted event does.
            target = chunk.get(record["target"]) or _target_row(db, record["target"])
            if target is not None:
                row = (*row[:3], target[3], target[4], target[5], *row[6:])
            retractions.append(
                (record["target"], record["event_id"], micros(record["recorded_at"]))
            )
        chunk[record["event_id"]] = row
        rows.append(row)
    db.executemany("INSERT INTO timeline VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO retractions VALUES (?,?,?)", retractions)
    last_id, last = records[-1]
    db.execute(
        "INSERT INTO projection_position VALUES (?,?,?) ON CONFLICT (name) DO UPDATE "
        "SET notification_id = excluded.notification_id, sequence = excluded.sequence",
        (PROJECTION, last_id, last["sequence"]),
    )


def _target_row(db: Database, event_id: str) -> tuple[Any, ...] | None:
    """The projected row of an event, found through the log's event_id index."""
    row = db.one(
        "SELECT t.* FROM ledger_entries l JOIN timeline t ON t.sequence = l.sequence "
        "WHERE l.event_id = ?",
        (event_id,),
    )
    return tuple(row) if row is not None else None


def _position(db: Database) -> tuple[int, int]:
    row = db.one(
        "SELECT notification_id, sequence FROM projection_position WHERE name = ?",
        (PROJECTION,),
    )
    return (row[0], row[1]) if row else (0, -1)


BULK_ROWS = 50_000  # a batch this large (and larger than the table) builds indexes once


class InlineProjection:
    """Projects an append's own events inside the append's transaction.

    Only when the read models were current when the batch began; otherwise the
    batch leaves them to the catch-up loop, which then applies everything in order.

    A bulk import into a small ledger on SQLite drops the timeline's secondary
    indexes once it has outgrown the table, and builds them again before the
    batch commits: one sort per index instead of a million scattered index updates
    (which, once the indexes outgrow the page cache, cost most of the import).
    Readers never notice: they see the last committed snapshot (WAL) until the
    batch commits with its indexes. PostgreSQL keeps its indexes, since dropping
    one there would lock out readers until the commit.
    """

    def __init__(self) -> None:
        self.active = False
        self.rows_before = 0
        self.applied = 0
        self.indexes_dropped = False

    def begin(self, db: Database, next_sequence: int) -> None:
        if db.dialect == "postgres":
            db.advisory_lock("ledger-projection")
        self.active = _position(db)[1] == next_sequence - 1
        self.rows_before = next_sequence
        self.applied = 0
        self.indexes_dropped = False

    def apply(self, db: Database, records: Sequence[tuple[int, dict[str, Any]]]) -> None:
        if not (self.active and records):
            return
        if (
            not self.indexes_dropped
            and db.dialect == "sqlite"
            and self.applied >= BULK_ROWS
            and self.applied > self.rows_before
        ):
            for name in INDEX_NAMES:
                db.execute(f"DROP INDEX IF EXISTS {name}")
            self.indexes_dropped = True
        _write(db, records)
        self.applied += len(records)

    def finish(self, db: Database) -> None:
        """Before the batch commits: the read models are whole again."""
        if self.indexes_dropped:
            for statement in INDEXES:
                db.execute(statement)
            self.indexes_dropped = False


class Projector:
    """Applies new log entries to the read models, exactly once."""

    def __init__(self, ledger: Ledger, db: Database) -> None:
        self.ledger = ledger
        self.db = db

    def position(self) -> tuple[int, int]:
        return _position(self.db)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply everything after the tracked position; returns events applied."""
        applied = 0
        while True:
            notification_id, _ = self.position()
            leaves = self.ledger.read_leaves(notification_id, READ_CHUNK)
            if not leaves:
                return applied
            with self.db.transaction(lock="ledger-projection") as db:
                # Re-check under the lock: a concurrent catch-up may have applied these.
                if _position(db)[0] >= leaves[0][0]:
                    continue
                _write(db, [(n_id, json.loads(leaf)) for n_id, leaf in leaves])
            applied += len(leaves)
            if progress is not None:
                progress(len(leaves))

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Empty the read models and replay the whole log.

        Secondary indexes are dropped during the replay and built once at the end:
        one sort instead of a million scattered index updates.
        """
        # Only the tables' owner may drop indexes; the writer role replays with them.
        rebuild_indexes = _owns_read_models(self.db)
        with self.db.transaction(lock="ledger-projection") as db:
            # DELETE, not DROP TABLE: the writer role may empty the read models.
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")
            if rebuild_indexes:
                for name in INDEX_NAMES:
                    db.execute(f"DROP INDEX IF EXISTS {name}")
        try:
            return self.catch_up(progress)
        finally:
            if rebuild_indexes:
                with self.db.transaction(lock="ledger-projection") as db:
                    for statement in INDEXES:
                        db.execute(statement)


def _owns_read_models(db: Database) -> bool:
    if db.dialect == "sqlite":
        return True
    row = db.one(
        "SELECT tableowner = current_user FROM pg_tables "
        "WHERE schemaname = current_schema() AND tablename = 'timeline'"
    )
    return bool(row and row[0])
