"""`verify --read-models`: the read models every query answers from are tied back to
the log. A read-model row changed, deleted or added, a retraction dropped or moved,
is named (exit 1), on both stores; an intact store passes, and read models not yet
brought up to date are checked as far as they go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.generate import generate
from ledger.integrity import IntegrityError
from tests.conftest import Store
from tests.ledger_helpers import SEED_EVENTS, account
from tests.test_tamper import Tables

SEED = Path(__file__).parents[1] / "ledger" / "data" / "seed.jsonl"
EVENTS = 600


@pytest.fixture
def filled(store: Store) -> Iterator[tuple[Store, Tables]]:
    store.ok("append", str(SEED))
    store.ok("append", "-", input="\n".join(generate(EVENTS, seed=4)) + "\n")
    tables = Tables(store)
    try:
        yield store, tables
    finally:
        tables.close()


def _checked(store: Store) -> tuple[int, str]:
    result = store.run("verify", "--read-models")
    return result.exit_code, result.stdout + result.stderr


def _retraction(tables: Tables) -> tuple[int, str]:
    """(sequence, target) of one projected retraction."""
    rows = tables.all(
        "SELECT sequence, event_id FROM timeline WHERE type = 'event_retracted' ORDER BY sequence"
    )
    assert rows, "the generated history has retractions"
    (sequence,) = rows[0][:1]
    (target,) = tables.all("SELECT target FROM retractions WHERE retraction = ?", (rows[0][1],))[0]
    return sequence, target


def test_intact_read_models_match(filled: tuple[Store, Tables]) -> None:
    store, _ = filled
    code, out = _checked(store)
    assert code == 0, out
    assert f"; read models match the log ({SEED_EVENTS + EVENTS} event(s))" in out


@pytest.mark.parametrize(
    ("change", "column", "value"),
    [
        ("UPDATE timeline SET account = 'twitter:someone_else' WHERE sequence = 30", "account", 30),
        ("UPDATE timeline SET type = 'account_suspended' WHERE sequence = 10", "type", 10),
        (
            "UPDATE timeline SET occurred_us = occurred_us + 1 WHERE sequence = 200",
            "occurred_us",
            200,
        ),
        ("UPDATE timeline SET policy = 'x' WHERE sequence = 13", "policy", 13),
    ],
    ids=["account", "type", "occurred", "policy"],
)
def test_a_changed_row_is_named_by_sequence_and_column(
    filled: tuple[Store, Tables], change: str, column: str, value: int
) -> None:
    store, tables = filled
    tables.execute(change)
    code, out = _checked(store)
    assert code == 1, out
    assert f"Error: sequence {value}: the timeline read model's {column} is " in out
    assert "`enforcement-ledger replay` rebuilds the read models from the log" in out
    store.ok("replay")
    assert _checked(store)[0] == 0


def test_a_deleted_or_added_row_is_found(filled: tuple[Store, Tables]) -> None:
    store, tables = filled
    tables.execute("DELETE FROM timeline WHERE sequence = 50")
    code, out = _checked(store)
    assert code == 1, out
    size = SEED_EVENTS + EVENTS
    assert f"the timeline read model has {size - 1} row(s) for the {size}" in out
    store.ok("replay")
    row = tables.all("SELECT * FROM timeline WHERE sequence = 51")[0]
    tables.execute(  # a forged row beyond the log
        f"INSERT INTO timeline VALUES ({', '.join('?' * len(row))})", (10**6, *row[1:])
    )
    code, out = _checked(store)
    assert code == 1, out
    assert "the timeline read model has 1 row(s) beyond the last event projected" in out
    store.ok("replay")
    (other,) = tables.all("SELECT notification_id FROM timeline WHERE sequence = 51")[0]
    tables.execute("UPDATE timeline SET notification_id = ? WHERE sequence = 50", (other,))
    code, out = _checked(store)
    assert code == 1, out
    assert "sequence 50: the timeline read model has no row for it, or its row names another" in out


def test_a_dropped_or_moved_retraction_is_found(filled: tuple[Store, Tables]) -> None:
    store, tables = filled
    sequence, target = _retraction(tables)
    tables.execute("DELETE FROM retractions WHERE target = ?", (target,))
    code, out = _checked(store)
    assert code == 1, out
    assert f"the retractions read model disagrees with the log about {target}" in out
    store.ok("replay")
    tables.execute("UPDATE timeline SET account = 'x:elsewhere' WHERE sequence = ?", (sequence,))
    code, out = _checked(store)
    assert code == 1, out
    assert (
        f"sequence {sequence}: the retraction's timeline row is not listed under its target" in out
    )
    store.ok("replay")
    if tables.kind == "sqlite":  # a record time made text: the report sorted it (exit 70)
        tables.execute("UPDATE retractions SET recorded_us = 'x' WHERE target = ?", (target,))
        code, out = _checked(store)
        assert code == 1, out
        assert f"the retractions read model disagrees with the log about {target}" in out


def test_read_models_behind_the_log_are_checked_as_far_as_they_go(
    filled: tuple[Store, Tables],
) -> None:
    store, _ = filled
    from ledger.application import Ledger
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    writer = Ledger(StoreLocation.parse(store.url))  # a library append: no read model updated
    try:
        writer.append([(1, parse_event(account("mastodon:late", "2024-01-01")))], actor="t")
    finally:
        writer.close()
    code, out = _checked(store)
    assert code == 0, out
    size = SEED_EVENTS + EVENTS
    assert f"warning: sequence {size}..{size}: not projected yet" in out
    assert f"read models match the log ({size} event(s))" in out


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((100_000, 99_999), "says sequence 99999 is projected, but the log has no event"),
        ((5, None), "pairs sequence"),  # None: the last sequence, at another notification
    ],
)
def test_a_position_past_or_beside_the_log_is_found(
    filled: tuple[Store, Tables], values: tuple[int, int | None], expected: str
) -> None:
    # Every event appended after it was then missing from every answer, and the
    # check said the read models match.
    store, tables = filled
    notification_id, sequence = values
    if sequence is None:
        sequence = SEED_EVENTS + EVENTS - 1
    tables.execute(
        "UPDATE projection_position SET notification_id = ?, sequence = ?",
        (notification_id, sequence),
    )
    code, out = _checked(store)
    assert code == 1, out
    assert "the read models' position (projection_position)" in out
    assert expected in out
    store.ok("replay", "--silent")
    assert _checked(store)[0] == 0


def test_read_models_are_a_store_check(store: Store, tmp_path: Path) -> None:
    export = tmp_path / "e.jsonl"
    export.write_text(json.dumps({}) + "\n")
    result = store.run("verify", "--read-models", "--export", str(export), "--vkey", "k")
    assert result.exit_code == 2
    assert "--read-models checks a store's read models: not with --export" in result.output


def test_the_check_reads_one_state_while_others_project(
    filled: tuple[Store, Tables], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append (which projects its events) lands between the check's first read
    and the rest: the check still sees one state of the store, and passes."""
    store, _ = filled
    from ledger.application import Ledger
    from ledger.location import StoreLocation
    from projections import check
    from projections.projector import projected_position as reads_position

    def then_append(db: Any) -> tuple[int, int]:
        position = reads_position(db)
        store.append(account("mastodon:meanwhile", "2024-01-01"))  # another connection
        return position

    monkeypatch.setattr(check, "projected_position", then_append)
    ledger = Ledger(StoreLocation.parse(store.url))
    db = ledger.storage.connect()
    try:
        assert check.check_read_models(db, 10**9) == SEED_EVENTS + EVENTS
    finally:
        db.close()
        ledger.close()
    monkeypatch.undo()
    code, out = _checked(store)  # and afterwards, with the new event
    assert code == 0, out
    assert f"read models match the log ({SEED_EVENTS + EVENTS + 1} event(s))" in out


def test_the_check_covers_the_log_verified_and_forged_retractions(
    filled: tuple[Store, Tables],
) -> None:
    store, tables = filled
    from ledger.application import Ledger
    from ledger.location import StoreLocation
    from projections.check import check_read_models

    ledger = Ledger(StoreLocation.parse(store.url))
    db = ledger.storage.connect()
    try:
        # Only the events before the size verified: later ones are not checked yet.
        assert check_read_models(db, 100) == 100
        tables.execute("UPDATE timeline SET policy = 'x' WHERE sequence = 100")
        assert check_read_models(db, 100) == 100
        tables.execute("UPDATE timeline SET policy = 'x' WHERE sequence = 99")
        with pytest.raises(IntegrityError, match="sequence 99: the timeline read model's policy"):
            check_read_models(db, 100)
        store.ok("replay")
        # A retraction made up in the read model alone, by no event of the log.
        tables.execute(
            "INSERT INTO retractions VALUES (?, ?, ?)", ("seed-x-post-oct7", "forged", 1)
        )
        with pytest.raises(IntegrityError, match="disagrees with the log about seed-x-post-oct7"):
            check_read_models(db, 10**9)
    finally:
        db.close()
        ledger.close()
