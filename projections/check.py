"""Whether the read models are what the log makes them (``verify --read-models``).

``verify`` proves the log; every answer a reader gets (status, timelines, posts,
appeals, subjects) comes from the read models, which are ordinary tables a rebuild
rewrites, so no trigger guards them. This check ties them back to the log: one
timeline row per projected event, each row equal to what its own leaf gives it (a
retraction's names equal to its target's row), and the retractions table equal to
the retraction events, streamed in sequence order.
"""

from __future__ import annotations

from typing import Any

from ledger.integrity import IntegrityError
from ledger.persistence import Database
from projections import leaves
from projections.projector import (
    TIMELINE_COLUMNS,
    micros,
    missing_parts,
    projected_position,
    timeline_row,
)
from projections.queries import events_join

_COLUMNS = [c.strip() for c in TIMELINE_COLUMNS.split(",")]
_REBUILD = "; `enforcement-ledger replay` rebuilds the read models from the log"


def check_read_models(db: Database, upto: int) -> int:
    """Raise IntegrityError at the first read-model row the log does not give, for
    the events before sequence ``upto`` (those just verified: appends may go on);
    returns how many of them the read models cover (those projected so far)."""
    # One state of the store, though appends and a `follow` may project more
    # meanwhile (the count and the rows must agree).
    with db.read_snapshot():
        return _check(db, upto)


def _check_indexes(db: Database) -> None:
    """Every read-model index is there: a replay drops them and builds them again at
    its end, so one stopped in between (PostgreSQL: its session ended) leaves them
    gone, and every answer is then read by scanning whole tables."""
    missing = missing_parts(db)
    if missing:
        raise IntegrityError(
            f"the read models' {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "missing (a replay stopped before it built its indexes again, or a table was "
            "dropped); as the store's owner, `enforcement-ledger replay` rebuilds the read "
            "models whole, or `enforcement-ledger init` makes what is missing"
        )


def _checked_position(db: Database) -> int:
    """The last sequence projected, once checked to name an event of the log: a
    position set beyond it (or at another event's notification) hides every event
    appended from then on from every answer."""
    notification_id, last_sequence = projected_position(db)
    if not isinstance(last_sequence, int) or not isinstance(notification_id, int):
        raise IntegrityError(
            f"the read models' position (projection_position) is ({notification_id!r}, "
            f"{last_sequence!r}), not a notification id and a sequence{_REBUILD}"
        )
    if last_sequence < 0:
        return last_sequence
    found = db.one(
        "SELECT notification_id FROM ledger_entries WHERE sequence = ?", (last_sequence,)
    )
    if found is None:
        raise IntegrityError(
            f"the read models' position (projection_position) says sequence {last_sequence} "
            "is projected, but the log has no event at that sequence: events appended from "
            f"here on would be missing from every answer{_REBUILD}"
        )
    if found[0] != notification_id:
        raise IntegrityError(
            f"the read models' position (projection_position) pairs sequence {last_sequence} "
            f"with notification {notification_id}, which the log's index does not: events "
            f"appended from here on could be missing from answers{_REBUILD}"
        )
    return last_sequence


def _check(db: Database, upto: int) -> int:
    _check_indexes(db)
    last_sequence = _checked_position(db)
    covered = min(last_sequence + 1, upto)
    (rows,) = db.one("SELECT count(*) FROM timeline WHERE sequence < ?", (covered,))
    (beyond,) = db.one(
        "SELECT count(*) FROM timeline WHERE sequence >= ? AND sequence > ?",
        (covered, last_sequence),
    )
    if rows != covered:
        raise IntegrityError(
            f"the timeline read model has {rows} row(s) for the {covered} event(s) projected "
            f"so far{_REBUILD}"
        )
    if beyond:
        raise IntegrityError(
            f"the timeline read model has {beyond} row(s) beyond the last event projected "
            f"(sequence {last_sequence}){_REBUILD}"
        )
    selected = ", ".join(f"t.{c}" for c in _COLUMNS)
    statement = (
        f"SELECT {selected}, s.state FROM timeline t JOIN {events_join(db)} "
        "WHERE t.sequence < ? ORDER BY t.sequence"
    )
    parse = leaves.parser(covered)
    retractions: dict[str, tuple[str, int]] = {}
    named: list[tuple[int, str, tuple[Any, ...]]] = []  # retraction rows: names checked last
    for expected_sequence, stored in enumerate(db.stream(statement, (covered,), binary=True)):
        row, leaf = tuple(stored[:-1]), bytes(stored[-1])
        record = parse(leaf)
        sequence = row[0]
        if sequence != expected_sequence or record.get("sequence") != sequence:
            raise IntegrityError(
                f"sequence {expected_sequence}: the timeline read model has no row for it, or "
                f"its row names another event{_REBUILD}",
                expected_sequence,
            )
        expected = timeline_row(row[-1], record, micros(record["recorded_at"]))
        if record["type"] == "event_retracted":
            named.append((sequence, record["target"], row[3:6]))
            retractions[record["target"]] = (record["event_id"], expected[9])
            expected = (*expected[:3], *row[3:6], *expected[6:])
        _compare(sequence, row, expected)
    for sequence, target, names in named:
        found = db.one(
            "SELECT t.account, t.subject, t.platform FROM ledger_entries l "
            "JOIN timeline t ON t.sequence = l.sequence WHERE l.event_id = ?",
            (target,),
        )
        if found is None or tuple(found) != tuple(names):
            raise IntegrityError(
                f"sequence {sequence}: the retraction's timeline row is not listed under its "
                f"target {target}'s account, subject and platform{_REBUILD}",
                sequence,
            )
    stored_retractions = {
        target: (retraction, recorded_us)
        for target, retraction, recorded_us in db.execute(
            "SELECT r.target, r.retraction, r.recorded_us FROM retractions r "
            "LEFT JOIN ledger_entries l ON l.event_id = r.retraction "
            "WHERE l.sequence IS NULL OR l.sequence < ?",  # one of no event: forged
            (covered,),
        ).fetchall()
    }
    if stored_retractions != retractions:
        # By target alone: a value edited into another type does not sort with the rest.
        differing = set(stored_retractions.items()) ^ set(retractions.items())
        wrong = min((target for target, _ in differing), key=str)
        raise IntegrityError(
            f"the retractions read model disagrees with the log about {wrong}{_REBUILD}"
        )
    return covered


def _compare(sequence: int, row: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    for column, stored, derived in zip(_COLUMNS, row, expected, strict=True):
        if stored != derived:
            raise IntegrityError(
                f"sequence {sequence}: the timeline read model's {column} is {stored!r} but the "
                f"log gives {derived!r}{_REBUILD}",
                sequence,
            )
