"""Whether the ledger's index is what its leaves give (``verify --read-models``).

An append checks its rules against ``ledger_entries``: which stream and lane each
event is in, its type, its event_id, what it targets. The leaves are hashed into the
signed tree, but that index is not: a row edited past its trigger (a lane moved, an
event_id renamed) would let the ledger accept, and sign, events its rules refuse,
while the tree still verifies. This check derives each row from its leaf, exactly as
an append wrote it, and names the first row that differs.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any, NamedTuple

from ledger.integrity import IntegrityError
from ledger.persistence import Database, Storage, lane_key, leaf_bytes
from ledger.rules import AccountKind, PlatformKind, SubjectKind, stream_of


def check_index(storage: Storage, db: Database, upto: int) -> None:
    """Raise IntegrityError at the first ``ledger_entries`` row before sequence
    ``upto`` that its leaf (or, for a retraction, its target's row) does not give.

    Streams in sequence order; memory is flat (a retraction's target row is read by
    its event_id, ~1% of rows; a bounded cache holds the forms of recent streams)."""
    events, column = storage.events_table, storage.notification_column
    statement = (
        "SELECT l.sequence, l.event_id, l.type, l.recorded_at, l.subject_ref, l.lane, "
        "l.lane_key, l.target, l.originator_id, s.originator_id, s.originator_version, "
        "s.topic, s.state "
        f"FROM ledger_entries l JOIN {events} s ON s.{column} = l.notification_id "
        "WHERE l.sequence < ? ORDER BY l.sequence"
    )
    target_row = db.sql(
        "SELECT originator_id, lane, lane_key FROM ledger_entries WHERE event_id = ?"
    )
    first_topic = db.sql(
        f"SELECT topic FROM {events} WHERE originator_id = ? AND originator_version = 1"
    )
    for row in db.stream(statement, (upto,), binary=True):
        sequence, *stored, originator, stream_of_event, version, topic, state = row
        record = json.loads(str(leaf_bytes(state), "utf-8"))  # UTF-8 by the format
        if record.get("sequence") != sequence:
            # Rows renumbered (swapped whole, past the triggers by INSERT OR REPLACE):
            # lookups by sequence, such as export --known-at, then read the wrong event.
            raise IntegrityError(
                f"sequence {sequence}: the index row points to the event whose leaf carries "
                f"sequence {record.get('sequence')!r}: the ledger's index (ledger_entries) "
                f"was changed{_EDITED}",
                sequence,
            )
        kind = record["type"]
        if kind == "event_retracted":
            # A retraction is filed in its target's stream and lane.
            found = db.raw.execute(target_row, (record.get("target"),)).fetchone()
            if found is None:
                raise IntegrityError(
                    f"sequence {sequence}: the index files this retraction under no "
                    f"recorded event (its target {record.get('target')!r} has no index row): "
                    f"the ledger's index (ledger_entries) was changed{_EDITED}",
                    sequence,
                )
            forms, lane, key = _forms(str(found[0])), found[1], found[2]
            # Its stream's kind, as its first event is stored (checked in its own row).
            started = db.raw.execute(first_topic, (stream_of_event,)).fetchone()
            topics = _TOPICS.get(started[0] if started else "", ("", ""))
        else:
            stream, sid = stream_of(record)
            lane = stream.lane_key(_LaneOnly(kind, record))  # type: ignore[arg-type]
            forms, key = _stream(sid, lane)
            topics = (stream.started_topic, stream.recorded_topic)
        subject_ref = record.get("subject") if kind == "account_registered" else None
        expected = [
            record["event_id"], kind, record["recorded_at"], subject_ref, lane, key,
            record.get("target"),
        ]  # fmt: skip
        if stored != expected:
            name, value, derived = next(
                c for c in zip(_COLUMNS, stored, expected, strict=True) if c[1] != c[2]
            )
            raise IntegrityError(_differs(sequence, name, value, derived), sequence)
        if originator not in forms:
            raise IntegrityError(
                _differs(sequence, "originator_id", originator, min(forms, key=str)), sequence
            )
        if stream_of_event not in forms:
            raise IntegrityError(
                f"sequence {sequence}: the stored event is in stream {stream_of_event}, but "
                f"its leaf puts it in {min(forms, key=str)}: the events table was "
                f"changed{_EDITED}",
                sequence,
            )
        # The library's repository rebuilds a stream from its events by their topics.
        expected_topic = topics[0 if version == 1 else 1]
        if topic != expected_topic:
            raise IntegrityError(
                f"sequence {sequence}: the stored event's topic is {topic!r}, but its stream "
                f"and version give {expected_topic!r}: the events table was changed{_EDITED}",
                sequence,
            )


# Each stream kind's topics, (its first event's, the later ones'), by the first's.
_TOPICS = {
    kind.started_topic: (kind.started_topic, kind.recorded_topic)
    for kind in (AccountKind, SubjectKind, PlatformKind)
}

_COLUMNS = ("event_id", "type", "recorded_at", "subject_ref", "lane", "lane_key", "target")


class _LaneOnly(NamedTuple):
    """What a stream kind's lane_key reads of an entry: its type and record."""

    type: str
    record: dict[str, Any]


@functools.lru_cache(maxsize=1 << 16)
def _stream(sid: uuid.UUID, lane: str) -> tuple[frozenset[Any], int]:
    """A stream's stored forms and one of its lanes' index key: computed once for the
    many events of an account's lane."""
    return _forms(sid.hex), lane_key(sid.hex, lane)


@functools.lru_cache(maxsize=1 << 16)
def _forms(stream_hex: str) -> frozenset[Any]:
    """Every form a stream id is stored in: uuid hex and text (SQLite), a uuid
    (PostgreSQL); compared by membership, not parsed once a row."""
    sid = uuid.UUID(stream_hex)
    return frozenset({sid.hex, str(sid), sid})


_EDITED = (
    ", edited outside the ledger. Appends check their rules against it, so events the "
    "rules refuse may have been accepted since; the leaves and the tree verify, so "
    "`export --nl` then `copy --export` into a new store rebuilds it from them"
)


def _differs(sequence: int, column: str, stored: Any, derived: Any) -> str:
    return (
        f"sequence {sequence}: the index row's {column} is {stored!r}, but the leaf gives "
        f"{derived!r}: the ledger's index (ledger_entries) was changed{_EDITED}"
    )
