"""Whether the ledger's index is what its leaves give (``verify --read-models``).

An append checks its rules against ``ledger_entries``: which stream and lane each
event is in, its type, its event_id, what it targets. The leaves are hashed into the
signed tree, but that index is not: a row edited past its trigger (a lane moved, an
event_id renamed) would let the ledger accept, and sign, events its rules refuse,
while the tree still verifies. This check derives each row from its leaf, exactly as
an append wrote it, and names the first row that differs.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ledger.integrity import IntegrityError
from ledger.persistence import Database, Storage, lane_key, leaf_bytes
from ledger.rules import Entry, stream_of

_COLUMNS = ("event_id", "originator_id", "type", "recorded_at", "subject_ref", "lane", "lane_key")


def check_index(storage: Storage, db: Database, upto: int) -> None:
    """Raise IntegrityError at the first ``ledger_entries`` row before sequence
    ``upto`` that its leaf (or, for a retraction, its target's row) does not give.

    Streams in sequence order; memory is flat (a retraction's target row is read by
    its event_id, ~1% of rows)."""
    events, column = storage.events_table, storage.notification_column
    statement = (
        "SELECT l.sequence, l.event_id, l.originator_id, l.type, l.recorded_at, "
        "l.subject_ref, l.lane, l.lane_key, l.target, s.originator_id, s.state "
        f"FROM ledger_entries l JOIN {events} s ON s.{column} = l.notification_id "
        "WHERE l.sequence < ? ORDER BY l.sequence"
    )
    target_row = db.sql(
        "SELECT originator_id, lane, lane_key FROM ledger_entries WHERE event_id = ?"
    )
    for row in db.stream(statement, (upto,), binary=True):
        sequence, *stored, target, stream_of_event, state = row
        record = json.loads(leaf_bytes(state))
        if record["type"] == "event_retracted":
            # A retraction is filed in its target's stream and lane.
            found = db.raw.execute(target_row, (record.get("target"),)).fetchone()
            if found is None:
                raise IntegrityError(
                    f"sequence {sequence}: the index files this retraction under no "
                    f"recorded event (its target {record.get('target')!r} has no index row): "
                    f"the ledger's index (ledger_entries) was changed{_EDITED}",
                    sequence,
                )
            originator, lane, key = found
        else:
            kind, sid = stream_of(record)
            lane = kind.lane_key(Entry.from_record(record))
            originator, key = storage.originator_param(sid), lane_key(sid.hex, lane)
        subject_ref = record.get("subject") if record["type"] == "account_registered" else None
        expected = (
            record["event_id"],
            originator,
            record["type"],
            record["recorded_at"],
            subject_ref,
            lane,
            key,
        )
        _compare(sequence, stored, expected, stream_of_event)
        if target != record.get("target"):
            raise IntegrityError(_differs(sequence, "target", target, record.get("target")))


_EDITED = (
    ", edited outside the ledger. Appends check their rules against it, so events the "
    "rules refuse may have been accepted since; the leaves and the tree verify, so "
    "`export --nl` then `copy --export` into a new store rebuilds it from them"
)


def _same(stored: Any, expected: Any, column: str) -> bool:
    if column == "originator_id":  # uuid text on SQLite, uuid on PostgreSQL
        return stored is not None and uuid.UUID(str(stored)) == uuid.UUID(str(expected))
    return bool(stored == expected)


def _compare(
    sequence: int, stored: list[Any], expected: tuple[Any, ...], stream_of_event: Any
) -> None:
    for column, value, derived in zip(_COLUMNS, stored, expected, strict=True):
        if not _same(value, derived, column):
            raise IntegrityError(_differs(sequence, column, value, derived), sequence)
    if not _same(stream_of_event, expected[1], "originator_id"):
        raise IntegrityError(
            f"sequence {sequence}: the stored event is in stream {stream_of_event}, but its "
            f"leaf puts it in {expected[1]}: the events table was changed{_EDITED}",
            sequence,
        )


def _differs(sequence: int, column: str, stored: Any, derived: Any) -> str:
    return (
        f"sequence {sequence}: the index row's {column} is {stored!r}, but the leaf gives "
        f"{derived!r}: the ledger's index (ledger_entries) was changed{_EDITED}"
    )
