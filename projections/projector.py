"""Read models rebuilt from the log, kept in the same store.

One ``timeline`` row per event carries the columns queries filter on, with times
as integer microseconds since the epoch (portable, and ordered correctly in every
engine), plus the leaf JSON itself. Retractions are a separate insert-only table,
so "was this retracted as known at K?" is a join, never an update.

The projector follows the notification log itself and tracks its position in the
same transaction as the rows it writes: a crash replays nothing twice and skips
nothing (eventsourcing 9.5's SQLite recorder cannot ``subscribe``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.application import Ledger
from ledger.persistence import Database

PROJECTION = "timeline"
READ_CHUNK = 2000

DDL = [
    """CREATE TABLE IF NOT EXISTS projection_position (
        name TEXT PRIMARY KEY, notification_id BIGINT NOT NULL, sequence BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS timeline (
        sequence BIGINT PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        account TEXT,
        subject TEXT,
        platform TEXT,
        policy TEXT,
        actor TEXT NOT NULL,
        occurred_us BIGINT NOT NULL,
        recorded_us BIGINT NOT NULL,
        record TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS timeline_account ON timeline (account, occurred_us, sequence)",
    "CREATE INDEX IF NOT EXISTS timeline_account_type ON timeline (account, type, occurred_us)",
    "CREATE INDEX IF NOT EXISTS timeline_subject ON timeline (subject, occurred_us, sequence)",
    "CREATE INDEX IF NOT EXISTS timeline_platform ON timeline (platform, occurred_us, sequence)",
    "CREATE INDEX IF NOT EXISTS timeline_occurred ON timeline (occurred_us, sequence)",
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


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def create_tables(db: Database) -> None:
    for statement in DDL:
        db.execute(statement)


def timeline_row(record: dict[str, Any], leaf: str) -> tuple[Any, ...]:
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
        leaf,
    )


class Projector:
    """Applies new log entries to the read models, exactly once."""

    def __init__(self, ledger: Ledger, db: Database) -> None:
        self.ledger = ledger
        self.db = db

    def position(self) -> tuple[int, int]:
        row = self.db.one(
            "SELECT notification_id, sequence FROM projection_position WHERE name = ?",
            (PROJECTION,),
        )
        return (row[0], row[1]) if row else (0, -1)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply everything after the tracked position; returns events applied."""
        applied = 0
        while True:
            notification_id, _ = self.position()
            leaves = self.ledger.read_leaves(notification_id, READ_CHUNK)
            if not leaves:
                return applied
            self._apply(leaves)
            applied += len(leaves)
            if progress is not None:
                progress(len(leaves))

    def _apply(self, leaves: list[tuple[int, bytes]]) -> None:
        rows = []
        retractions = []
        last_sequence = -1
        for _, leaf in leaves:
            text = leaf.decode("utf-8")
            record = json.loads(text)
            rows.append(timeline_row(record, text))
            if record["type"] == "event_retracted":
                retractions.append(
                    (record["target"], record["event_id"], micros(record["recorded_at"]))
                )
            last_sequence = record["sequence"]
        with self.db.transaction(lock="ledger-projection") as db:
            # Re-check under the lock: a concurrent catch-up may have applied these.
            if self.position()[0] >= leaves[0][0]:
                return
            db.executemany("INSERT INTO timeline VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            db.executemany("INSERT INTO retractions VALUES (?,?,?)", retractions)
            db.execute(
                "INSERT INTO projection_position VALUES (?,?,?) ON CONFLICT (name) DO UPDATE "
                "SET notification_id = excluded.notification_id, sequence = excluded.sequence",
                (PROJECTION, leaves[-1][0], last_sequence),
            )

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Drop the read models and replay the whole log."""
        with self.db.transaction(lock="ledger-projection") as db:
            # DELETE, not DROP: the writer role may empty the read models, not own them.
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")
        return self.catch_up(progress)
