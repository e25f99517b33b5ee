"""Replay through the raw-cursor paths equals the projection appends made inline.

SQLite parses leaves in Python; PostgreSQL projects each chunk inside the server
(and falls back to the Python path when a time is not in the ledger's one form).
Whatever the path and chunk size, the read-model tables must come out identical
to what the appends wrote, retractions included: their target in the same chunk,
in an earlier one, or in an earlier append.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import projections.projector as projector
from bench.generate import generate
from ledger.application import Ledger
from ledger.location import StoreLocation
from ledger.persistence import Database
from projections import leaves
from projections.queries import Moment, TimelineFilter, account_status, timeline
from tests.conftest import Store
from tests.ledger_helpers import account, ev, jsonl, subject

SEED = Path(__file__).resolve().parents[1] / "ledger" / "data" / "seed.jsonl"

GENERATED = 1500


def _tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "timeline": [
            tuple(r) for r in db.execute("SELECT * FROM timeline ORDER BY sequence").fetchall()
        ],
        "retractions": [
            tuple(r) for r in db.execute("SELECT * FROM retractions ORDER BY target").fetchall()
        ],
        "position": [tuple(r) for r in db.execute("SELECT * FROM projection_position").fetchall()],
    }


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    """The statements SQLite runs on this connection meanwhile."""
    seen: list[str] = []
    db.raw.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        db.raw.set_trace_callback(None)


@pytest.fixture
def populated(store: Store) -> Iterator[tuple[Ledger, Database]]:
    """A few appends projected inline: generated history plus odd times and retractions."""
    lines = list(generate(GENERATED, 3))
    # Several batches, so retractions also name events of an earlier append.
    for start in range(0, len(lines), 400):
        store.ok("append", "-", input="".join(line + "\n" for line in lines[start : start + 400]))
    store.ok(
        "append",
        "-",
        input=jsonl(
            subject("old_subject", "1965-03-01T10:00:00.000123Z"),
            account("twitter:old_one", "1965-03-02T00:00:00Z", subject="old_subject"),
            ev(
                "account_suspended",
                "1969-12-31T23:59:59.999999Z",
                account="twitter:old_one",
                policy="p",
                event_id="old-suspension",
            ),
            ev(
                "event_retracted",
                "1970-01-01T00:00:00.000001Z",
                target="old-suspension",
                reason="mistake",
            ),
        ),
    )
    ledger = Ledger(StoreLocation.parse(store.url))
    db = ledger.storage.connect()
    try:
        yield ledger, db
    finally:
        db.close()
        ledger.close()


@pytest.mark.parametrize("chunk", [97, 1000, 100_000])
def test_rebuild_equals_inline_projection(
    populated: tuple[Ledger, Database], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, db = populated
    inline = _tables(db)
    assert len(inline["timeline"]) == GENERATED + 4
    assert len(inline["retractions"]) > 5
    monkeypatch.setattr(projector, "READ_CHUNK", chunk)
    assert projector.Projector(ledger, db).rebuild() == GENERATED + 4
    assert _tables(db) == inline


def _sort_settings(db: Database) -> list[int]:
    return [db.one(f"PRAGMA {name}")[0] for name in ("threads", "cache_size", "temp_store")]


def test_sqlite_rebuild_sorts_indexes_with_a_helper_thread_then_restores_settings(
    populated: tuple[Ledger, Database],
) -> None:
    ledger, db = populated
    if db.dialect != "sqlite":
        pytest.skip("PRAGMA threads, cache_size and temp_store are SQLite's")
    # As a status query leaves the connection: index sorts must still spill to files.
    account_status(db, "twitter:old_one", Moment(datetime.now(UTC), datetime.now(UTC)))
    before = _sort_settings(db)
    assert before[2] == 2  # MEMORY
    inline = _tables(db)
    with _statements(db) as seen:
        projector.Projector(ledger, db).rebuild()
    builds = [i for i, sql in enumerate(seen) if sql.startswith("CREATE INDEX")]
    threads = [i for i, sql in enumerate(seen) if sql == f"PRAGMA threads={projector.SORT_THREADS}"]
    on_files = [i for i, sql in enumerate(seen) if sql == "PRAGMA temp_store=FILE"]
    assert projector.SORT_THREADS >= 1
    assert builds
    assert threads
    assert on_files
    assert threads[0] < builds[0]  # every index is sorted with the helper allowed
    assert on_files[0] < builds[0]  # and spills to files, not memory
    assert _sort_settings(db) == before
    assert _tables(db) == inline


def test_a_bulk_import_outgrowing_the_table_rebuilds_indexes_and_equals_a_replay(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite drops the timeline's secondary indexes once a batch outgrows the table
    and builds them before the commit: the read models must come out as a replay
    makes them, with every index back."""
    if store.kind != "sqlite":
        pytest.skip("only SQLite drops indexes during an import")
    monkeypatch.setattr(projector, "BULK_ROWS", 300)
    dropped: list[bool] = []
    apply = projector.InlineProjection.apply

    def watching(self: projector.InlineProjection, db: Database, records: Any) -> None:
        apply(self, db, records)
        dropped.append(self.indexes_dropped)

    monkeypatch.setattr(projector.InlineProjection, "apply", watching)
    monkeypatch.setattr("ledger.application.FLUSH_EVERY", 100)
    lines = [line + "\n" for line in generate(GENERATED, 5)]
    store.ok("append", "-", input="".join(lines[:200]))  # a small table first
    store.ok("append", "-", input="".join(lines[200:]))
    assert dropped[:2] == [False, False]
    assert any(dropped)  # the second batch outgrew the table
    ledger = Ledger(StoreLocation.parse(store.url))
    db = ledger.storage.connect()
    try:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert set(projector.INDEX_NAMES) <= names
        inline = _tables(db)
        assert len(inline["timeline"]) == GENERATED
        assert projector.Projector(ledger, db).rebuild() == GENERATED
        assert _tables(db) == inline
    finally:
        db.close()
        ledger.close()


def test_a_current_reader_checks_with_one_statement_and_a_missing_position_is_behind(
    populated: tuple[Ledger, Database],
) -> None:
    ledger, db = populated
    inline = _tables(db)
    if db.dialect == "sqlite":
        with _statements(db) as seen:
            assert projector.Projector(ledger, db).catch_up() == 0
        assert len(seen) == 1, seen  # every read command pays this: no PRAGMAs, one query
    with db.transaction():
        for table in projector.TABLES:
            db.execute(f"DELETE FROM {table}")
    assert projector.Projector(ledger, db).catch_up() == GENERATED + 4
    assert _tables(db) == inline


def test_postgres_rebuild_projects_the_whole_log_from_parallel_connections(
    populated: tuple[Ledger, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, db = populated
    if db.dialect != "postgres":
        pytest.skip("the parallel phase is PostgreSQL's")
    inline = _tables(db)
    monkeypatch.setattr(projector, "READ_CHUNK", 30)  # 300-event ranges, both connections busy
    in_parallel: list[int] = []
    project = projector.Projector._project_in_parallel

    def counting(self: projector.Projector) -> int:
        in_parallel.append(project(self))
        return in_parallel[-1]

    monkeypatch.setattr(projector.Projector, "_project_in_parallel", counting)
    assert projector.Projector(ledger, db).rebuild() == GENERATED + 4
    assert in_parallel == [GENERATED + 4]  # nothing was left for the serial catch-up
    assert _tables(db) == inline


def test_catch_up_heals_rows_left_beyond_the_position(
    populated: tuple[Ledger, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parallel rebuild killed before it set the position leaves projected rows
    beyond it (PostgreSQL), as does a position set back by hand (either store: on
    SQLite every read command then failed with exit 70); the next catch-up drops them
    and projects again."""
    ledger, db = populated
    inline = _tables(db)
    (middle_id, middle_sequence) = db.one(
        "SELECT notification_id, sequence FROM timeline ORDER BY sequence LIMIT 1 OFFSET 700"
    )
    with db.transaction():
        # Rows stay beyond the position, as a stopped parallel phase leaves them.
        db.execute(
            "UPDATE projection_position SET notification_id = ?, sequence = ?",
            (middle_id, middle_sequence),
        )
    monkeypatch.setattr(projector, "READ_CHUNK", 15)
    assert projector.Projector(ledger, db).catch_up() == GENERATED + 4 - 701
    assert _tables(db) == inline


def test_catch_up_from_the_middle_equals_inline_projection(
    populated: tuple[Ledger, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, db = populated
    inline = _tables(db)
    (middle_id, middle_sequence) = db.one(
        "SELECT notification_id, sequence FROM timeline ORDER BY sequence LIMIT 1 OFFSET 700"
    )
    with db.transaction():
        db.execute("DELETE FROM timeline WHERE sequence > ?", (middle_sequence,))
        db.execute(
            "DELETE FROM retractions WHERE retraction IN "
            "(SELECT event_id FROM ledger_entries WHERE sequence > ?)",
            (middle_sequence,),
        )
        db.execute(
            "UPDATE projection_position SET notification_id = ?, sequence = ?",
            (middle_id, middle_sequence),
        )
    monkeypatch.setattr(projector, "READ_CHUNK", 150)
    seen: list[int] = []
    applied = projector.Projector(ledger, db).catch_up(progress=seen.append)
    assert applied == sum(seen) == GENERATED + 4 - 701
    assert _tables(db) == inline
    assert projector.Projector(ledger, db).catch_up() == 0


def test_postgres_falls_back_to_python_for_unusual_times(
    populated: tuple[Ledger, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, db = populated
    if db.dialect != "postgres":
        pytest.skip("the in-server path is PostgreSQL's")
    inline = _tables(db)
    # Treat every time as unusual: the server yields NULL, every chunk goes through Python.
    refusing = projector._PG_PROJECT_CHUNK.replace("Z') THEN", "Z') AND false THEN")
    assert refusing != projector._PG_PROJECT_CHUNK
    monkeypatch.setattr(projector, "_PG_PROJECT_CHUNK", refusing)
    monkeypatch.setattr(projector, "READ_CHUNK", 300)
    python_chunks: list[int] = []
    apply_leaves = projector._apply_leaves

    def counting(db: Database, storage: Any, after: int) -> int:
        python_chunks.append(after)
        return apply_leaves(db, storage, after)

    monkeypatch.setattr(projector, "_apply_leaves", counting)
    assert projector.Projector(ledger, db).rebuild() == GENERATED + 4
    assert len(python_chunks) == -(-(GENERATED + 4) // 300)
    assert _tables(db) == inline


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-08T00:00:00Z",
        "2024-02-08T12:34:56.000001Z",
        "1969-12-31T23:59:59.999999Z",
        "1965-03-01T10:00:00.000123Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "2024-02-29T23:59:59.5Z",  # not the ledger's form: NULL, so Python decides
        "2024-02-08T00:00:00+00:00",
    ],
)
def test_postgres_micros_match_python(store: Store, text: str) -> None:
    if store.kind != "postgres":
        pytest.skip("SQL time conversion is PostgreSQL's")
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        with ledger.storage.connect() as db:
            (value,) = db.raw.execute(
                "SELECT " + projector._PG_MICROS.format("%(t)s::text"), {"t": text}
            ).fetchone()
    finally:
        ledger.close()
    canonical = text.endswith("Z") and len(text) in (20, 27)
    assert value == (projector.micros(text) if canonical else None)


def _force_parser(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    monkeypatch.setattr(leaves, "_parsed", 0)
    monkeypatch.setattr(leaves, "_fast", None)
    monkeypatch.setattr(leaves, "FAST_AFTER", 0 if fast else 10**12)


@pytest.mark.parametrize("fast", [False, True])
def test_python_replay_with_either_leaf_parser_equals_inline(
    populated: tuple[Ledger, Database], monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    ledger, db = populated
    inline = _tables(db)
    _force_parser(monkeypatch, fast)
    # PostgreSQL projects in the server: take the Python path there too.
    monkeypatch.setattr(projector, "_apply_sql", projector._apply_leaves)
    monkeypatch.setattr(projector.Projector, "_project_in_parallel", lambda self: 0)
    monkeypatch.setattr(projector, "READ_CHUNK", 700)
    assert projector.Projector(ledger, db).rebuild() == GENERATED + 4
    assert (leaves._fast is not None) is fast
    assert _tables(db) == inline


def test_timelines_read_the_same_with_either_leaf_parser(
    populated: tuple[Ledger, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, db = populated
    accounts = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT account FROM timeline WHERE account IS NOT NULL ORDER BY account"
        ).fetchall()
    ]
    now = datetime.now(UTC)
    selections = [TimelineFilter(), *(TimelineFilter(account=a) for a in accounts)]

    def read() -> list[list[dict[str, Any]]]:
        return [list(timeline(db, now, selection)) for selection in selections]

    _force_parser(monkeypatch, fast=False)
    slow = read()
    assert leaves._fast is None
    _force_parser(monkeypatch, fast=True)
    assert read() == slow
    assert leaves._fast is not None
    assert sum(len(rows) for rows in slow[1:]) > GENERATED / 2
    assert any(row["retracted"] for rows in slow for row in rows)


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_postgres_read_waits_for_a_rebuild_under_way_and_a_rebuild_for_reads(
    store: Store, tmp_path: Path
) -> None:
    """A PostgreSQL rebuild commits its phases apart (emptied, projected, indexed): a
    read arriving meanwhile answered from the emptied tables, with exit 0 ("(no
    events)", an account with "no registration"). Readers now hold the rebuild lock
    shared, and a rebuild holds it whole."""
    import subprocess
    import time

    import psycopg

    from tests.conftest import PG_URL
    from tests.ledger_helpers import CLI

    store.ok("append", str(SEED))
    expected = store.ok("timeline", "--nl").stdout
    schema = store.url.rsplit("schema=", 1)[1]
    key = f"hashtext('{schema}' || ':' || '{projector.REBUILD_LOCK}')"
    with psycopg.connect(PG_URL, autocommit=True) as rebuild:
        # A rebuild between its phases: the lock held, the read models emptied.
        rebuild.execute(f'SET search_path TO "{schema}"')
        rebuild.execute(f"SELECT pg_advisory_lock({key})")
        rebuild.execute(f"TRUNCATE {', '.join(projector.TABLES)}")
        reader = subprocess.Popen(
            [*CLI, "--store", store.url, "timeline", "--nl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.5)
        assert reader.poll() is None, reader.communicate()  # it waits
        rebuild.execute(f"SELECT pg_advisory_unlock({key})")
        out, err = reader.communicate(timeout=60)
    assert (reader.returncode, err) == (0, b"")
    assert out.decode() == expected  # caught up from the log, not the emptied tables

    # The other way round: a replay waits for a read under way, and reads arriving
    # meanwhile are not held up behind the waiting replay (a queued request for the
    # lock would hold up every new reader: they waited for it, up to two minutes).
    with psycopg.connect(PG_URL, autocommit=True) as reading:
        reading.execute(f"SELECT pg_advisory_lock_shared({key})")
        replay = subprocess.Popen(
            [*CLI, "--store", store.url, "replay"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        time.sleep(1.5)
        assert replay.poll() is None, replay.communicate()
        started = time.monotonic()
        assert store.ok("timeline", "--nl").stdout == expected
        assert time.monotonic() - started < 10
        reading.execute(f"SELECT pg_advisory_unlock_shared({key})")
        replay.communicate(timeout=60)
        assert replay.returncode == 0
    assert store.ok("timeline", "--nl").stdout == expected


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_waits_for_the_rebuild_lock_give_up_saying_what_happened(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from ledger import persistence
    from tests.conftest import PG_URL
    from tests.ledger_helpers import account

    monkeypatch.setattr(persistence, "WRITE_LOCK_WAIT_S", 1)
    store.ok("append", str(SEED))
    schema = store.url.rsplit("schema=", 1)[1]
    key = f"hashtext('{schema}' || ':' || '{projector.REBUILD_LOCK}')"
    with psycopg.connect(PG_URL, autocommit=True) as other:
        other.execute(f"SELECT pg_advisory_lock_shared({key})")  # a long read
        refused = store.fail("replay").stderr
        assert refused == (
            "Error: reads kept the read models busy for 1 s, so this command gave up "
            "waiting and changed nothing; run it again once they are done\n"
        )
        other.execute(f"SELECT pg_advisory_unlock_shared({key})")
        # Another replay holds it whole: not blamed on reads.
        other.execute(f"SELECT pg_advisory_lock({key})")
        assert store.fail("replay").stderr == (
            "Error: another replay held the read models for 1 s, so this command gave up "
            "waiting and changed nothing; run it again once it is done\n"
        )
        other.execute(f"SELECT pg_advisory_unlock({key})")
        # A long replay: an append whose read side is behind commits, and says so
        # when catching the read side up after it fails ("wrote nothing; run it again").
        other.execute(f'SET search_path TO "{schema}"')
        other.execute(f"SELECT pg_advisory_lock({key})")
        other.execute(f"TRUNCATE {', '.join(projector.TABLES)}")
        result = store.fail("append", "-", input=jsonl(account("twitter:late", "2024-03-01")))
        assert result.stdout.startswith("Appended 1 event(s), sequence 19..19"), result.stdout
        assert result.stderr.startswith(
            "Error: the append above is committed, but the read side could not catch up after "
        ), result.stderr
        assert result.stderr.endswith("does it: do not append it again\n"), result.stderr
        other.execute(f"SELECT pg_advisory_unlock({key})")
    assert store.count() == 20
    assert len(store.timeline()) == 20  # the next read caught up


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_an_interrupted_postgres_replay_says_it_stopped_part_way(store: Store) -> None:
    """Its phases commit apart: "committed whole or not at all" was not true of it."""
    import signal
    import subprocess
    import time

    import psycopg

    from tests.conftest import PG_URL
    from tests.ledger_helpers import CLI

    store.ok("append", str(SEED))
    schema = store.url.rsplit("schema=", 1)[1]
    key = f"hashtext('{schema}' || ':' || '{projector.REBUILD_LOCK}')"
    with psycopg.connect(PG_URL, autocommit=True) as reading:
        reading.execute(f"SELECT pg_advisory_lock_shared({key})")  # the replay waits
        replay = subprocess.Popen(
            [*CLI, "--store", store.url, "replay"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        time.sleep(1.5)
        replay.send_signal(signal.SIGINT)
        _, err = replay.communicate(timeout=30)
    assert replay.returncode == 130
    assert err.decode().startswith("Interrupted: the replay stopped part way, which may leave ")
