"""The read queries reach the partial indexes they were written for.

A partial index serves a query only when the planner can prove from the query's
WHERE that the index's predicate holds (the queries state it with
``status_facts_clause``); where it cannot, PostgreSQL silently scans instead, and
SQLite, whose queries name their index (INDEXED BY), fails the query. Both are
checked here, and that PostgreSQL's text keys compare byte by byte as SQLite's do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.generate import generate
from ledger.application import Ledger
from ledger.location import StoreLocation
from ledger.persistence import Database
from projections import queries
from projections.queries import Moment, TimelineFilter
from tests.conftest import Store

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(store: Store) -> Iterator[Database]:
    store.ok("append", "-", input="".join(line + "\n" for line in generate(3000, 5)))
    ledger = Ledger(StoreLocation.parse(store.url))
    connection = ledger.storage.connect()
    try:
        yield connection
    finally:
        connection.close()
        ledger.close()


def _plan(
    db: Database, sql: str, params: dict[str, Any], priced_out: str = "enable_seqscan"
) -> str:
    """The plan; on PostgreSQL with the ``priced_out`` plan node made prohibitive.

    By default sequential scans: whether an index *can* serve the query, since a
    usable index is then what the planner reaches for.
    """
    if db.dialect == "sqlite":
        rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        return "\n".join(str(row[-1]) for row in rows)
    with db.raw.transaction():
        db.raw.execute(f"SET LOCAL {priced_out} = off")
        rows = db.raw.execute(db.sql(f"EXPLAIN {sql}"), params).fetchall()
    return "\n".join(row[0] for row in rows)


def _timeline_plan(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    selection: TimelineFilter,
    priced_out: str = "enable_seqscan",
) -> str:
    """The plan of the statement timeline() would run for ``selection``."""
    captured: list[str] = []

    def capture(db: Database, sql: str, params: dict[str, Any], _: TimelineFilter) -> Any:
        captured.append(_plan(db, sql, params, priced_out))
        return iter(())

    monkeypatch.setattr(queries, "_rows", capture)
    list(queries.timeline(db, NOW, selection))
    (plan,) = captured
    return plan


def _one(db: Database, sql: str) -> str:
    (value,) = db.one(sql)
    return str(value)


def test_status_reads_through_the_status_facts_and_subject_indexes(db: Database) -> None:
    account = _one(
        db,
        "SELECT account FROM timeline WHERE type = 'account_registered' "
        "AND subject IS NOT NULL ORDER BY sequence LIMIT 1",
    )
    params = {**Moment(as_of=NOW, known_at=NOW).params(), "account": account}
    plan = _plan(db, queries._status_sql(db), params)
    expected = ["timeline_status_facts", "timeline_followers"]
    if db.dialect == "sqlite":
        # PostgreSQL may serve subject exemptions from the status-facts index too
        # (account IS NULL): its choice by cost, and both are index paths.
        expected.append("timeline_subject")
    for index in expected:
        assert index in plan, plan


def test_subject_timeline_reads_through_the_subject_index(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = _one(db, "SELECT subject FROM timeline WHERE type = 'subject_registered' LIMIT 1")
    plan = _timeline_plan(db, monkeypatch, TimelineFilter(subject=subject))
    assert "timeline_subject" in plan, plan


def test_subject_timeline_reads_its_accounts_through_the_account_index(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subject's events are its own and its accounts': both read through an index
    and combined, not found by a walk of every event in time order (PostgreSQL
    estimated an OR with IN (subquery) as half the log: 1.5 s at 1M events, against
    0.1 s through the indexes)."""
    subject = _one(
        db,
        "SELECT subject FROM timeline WHERE type = 'account_registered' "
        "AND subject IS NOT NULL ORDER BY sequence LIMIT 1",
    )
    plan = _timeline_plan(db, monkeypatch, TimelineFilter(subject=subject))
    assert "timeline_account" in plan, plan
    assert "timeline_occurred" not in plan, plan


@pytest.mark.parametrize("selection", [TimelineFilter(), TimelineFilter(platform="twitter")])
def test_events_across_accounts_look_each_accounts_subject_up_once(
    db: Database, monkeypatch: pytest.MonkeyPatch, selection: TimelineFilter
) -> None:
    """PostgreSQL caches each account's subject (Memoize) rather than looking it up
    for every row: a subquery per row took 15 against 10 s of a full timeline at 1M."""
    if db.dialect != "postgres":
        pytest.skip("SQLite joins every account's registration for a long answer")
    (version,) = db.one("SELECT current_setting('server_version_num')::int")
    if version < 140000:
        pytest.skip("Memoize came in PostgreSQL 14 (before it, a lookup a row, as before)")
    db.execute("ANALYZE timeline")  # how few accounts the rows hold, as autovacuum would
    plan = _timeline_plan(db, monkeypatch, selection)
    assert "Memoize" in plan, plan


@pytest.mark.parametrize("kind", ["account_removed", "exemption_applied"])
def test_one_status_type_across_accounts_reads_the_status_facts_index(
    db: Database, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Those rows are a few percent of the log: found through the status facts and
    sorted, not by walking every event in time order (SQLite's choice for the order)."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL weighs the two plans by its statistics")
    plan = _timeline_plan(db, monkeypatch, TimelineFilter(types=(kind,)))
    assert "timeline_status_facts" in plan, plan
    assert "timeline_occurred" not in plan, plan


@pytest.mark.parametrize(
    "selection",
    [
        TimelineFilter(policy="Hate Speech"),
        TimelineFilter(actor="nobody"),
        TimelineFilter(policy="Hate Speech", limit=5),
        TimelineFilter(policy="Hate Speech", types=("post_removed",), platform="x"),
        TimelineFilter(types=("appeal_decided",)),
        TimelineFilter(types=("account_removed", "account_suspended")),
    ],
)
def test_a_type_policy_or_actor_across_accounts_is_a_scan_and_a_sort(
    db: Database, monkeypatch: pytest.MonkeyPatch, selection: TimelineFilter
) -> None:
    """No index holds them across accounts (but one status type's, test above):
    SQLite walked the whole time index with a table lookup a row for the order (SQL
    at 1M events: 2.6 s for a policy no event has, 0.13 s scanned)."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL weighs the two plans by its statistics")
    plan = _timeline_plan(db, monkeypatch, selection)
    assert "SCAN t\n" in plan + "\n", plan
    assert "timeline_occurred" not in plan, plan
    # An index bounding the rows keeps its plan.
    bounded = TimelineFilter(policy="Hate Speech", since=datetime(2024, 1, 1, tzinfo=UTC))
    assert "SCAN t\n" not in _timeline_plan(db, monkeypatch, bounded) + "\n"
    # So does a filter too broad to sort (its rows' leaves would fill temporary files).
    monkeypatch.setattr(queries, "SORTED_AT_MOST", 0)
    broad = TimelineFilter(policy="Hate Speech")
    assert "timeline_occurred" in _timeline_plan(db, monkeypatch, broad)


def test_a_limited_timeline_of_rows_found_early_and_often_walks_the_time_index(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv36: `--limit 5` of an actor every event has, or a policy on 0.5% of rows,
    was scanned (the count's scan, then the query's: 0.4 s at 1M events, against 0.15
    for the walk, which stops at its fifth row; each scan linear in the log's size)."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL weighs the two plans by its statistics")
    (actor,) = db.one("SELECT actor FROM timeline GROUP BY actor ORDER BY count(*) DESC")
    limited = TimelineFilter(actor=actor, limit=5, offset=1)
    assert "timeline_occurred" in _timeline_plan(db, monkeypatch, limited)
    # Unlimited, or limited to more rows than a walk finds early, it is scanned.
    for scanned in (TimelineFilter(actor=actor), TimelineFilter(actor=actor, limit=1000)):
        assert "SCAN t\n" in _timeline_plan(db, monkeypatch, scanned) + "\n", scanned
    monkeypatch.undo()
    walked = list(queries.timeline(db, NOW, limited))
    monkeypatch.setattr(queries, "WALK_BEATS_SCANS_AT", 10**9)
    assert list(queries.timeline(db, NOW, limited)) == walked
    assert len(walked) == 5


def test_a_type_policy_or_actor_scanned_and_sorted_answers_as_walked_in_time_order(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = [row[0] for row in db.execute("SELECT DISTINCT policy FROM timeline").fetchall()]
    actors = [row[0] for row in db.execute("SELECT DISTINCT actor FROM timeline").fetchall()]
    selections = [TimelineFilter(policy=p) for p in policies if p is not None]
    selections += [TimelineFilter(actor=a) for a in actors]
    selections += [TimelineFilter(policy=policies[-1], limit=3, offset=2)]
    kinds = [row[0] for row in db.execute("SELECT DISTINCT type FROM timeline").fetchall()]
    selections += [TimelineFilter(types=(kind,)) for kind in kinds]
    selections += [TimelineFilter(types=tuple(kinds[:3]), platform="instagram")]
    assert len(selections) > 5
    for selection in selections:
        scanned = list(queries.timeline(db, NOW, selection))
        monkeypatch.setattr(queries, "SORTED_AT_MOST", -1)
        walked = list(queries.timeline(db, NOW, selection))
        monkeypatch.undo()
        assert scanned == walked, selection
        assert scanned or selection.offset


def test_account_timeline_never_reads_the_timeline_table_itself(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account index covers the query: each row costs one leaf read, not two
    page reads (a selected column outside the index would add the table's row)."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL chooses index-only scans by its visibility map, not the query")
    account = _one(db, "SELECT account FROM timeline WHERE account IS NOT NULL LIMIT 1")
    plan = _timeline_plan(db, monkeypatch, TimelineFilter(account=account))
    assert "USING COVERING INDEX timeline_account" in plan, plan


def test_an_accounts_posts_and_appeals_are_found_in_the_account_index(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By their type too: the account's other events are stepped over in the index, not
    each read from the table (`posts` across 5,000 accounts at 1M: 3.7-4.2 against
    6.4-7.0 s of SQL)."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL chooses index-only scans by its visibility map, not the query")
    account = _one(db, "SELECT account FROM timeline WHERE type = 'post_published' LIMIT 1")
    moment = Moment(as_of=NOW, known_at=NOW)
    plans: list[str] = []
    execute = db.execute

    def explained(sql: str, params: Any = (), **options: Any) -> Any:
        if "FROM timeline t JOIN" in sql:
            rows = execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            plans.append("\n".join(str(row[-1]) for row in rows))
        return execute(sql, params, **options)

    monkeypatch.setattr(db, "execute", explained)
    queries.posts(db, account, moment)
    monkeypatch.setattr(queries, "_rows", lambda db, sql, params, _: explained(sql, params))
    queries.appeals(db, account, moment)
    through_the_account = [plan for plan in plans if "timeline_account" in plan]
    assert len(through_the_account) == 2, plans  # the posts' fold, the appeals' timeline
    for plan in through_the_account:
        assert "USING COVERING INDEX timeline_account" in plan, plan


def test_the_covering_indexes_are_widened_on_sqlite_only(db: Database) -> None:
    """PostgreSQL keeps them narrow: it reads an index alone only where its visibility
    map allows, and a bulk append there maintains every index row by row (3-15% slower
    with them wide, its reads no faster)."""
    if db.dialect == "sqlite":
        sql = "SELECT sql FROM sqlite_master WHERE name = :name"
    else:
        sql = (
            "SELECT indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND indexname = :name"
        )
    definitions = {
        name: " ".join(str(db.one(sql, {"name": name})[0]).split())
        for name in ("timeline_account", "timeline_occurred")
    }
    wide = db.dialect == "sqlite"
    assert ("notification_id, type)" in definitions["timeline_account"]) is wide, definitions
    assert ("notification_id, account)" in definitions["timeline_occurred"]) is wide, definitions
    assert "occurred_us, sequence" in definitions["timeline_occurred"], definitions


@pytest.mark.parametrize("window", [{}, {"since": NOW.replace(year=2020)}])
def test_timeline_across_accounts_never_reads_the_timeline_table_itself(
    db: Database, monkeypatch: pytest.MonkeyPatch, window: dict[str, datetime]
) -> None:
    """The time-order index covers it as the account index covers one account's (a
    full 1M timeline's statement took 9.7 s with a table row read per event, 5.3 s
    without)."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL chooses index-only scans by its visibility map, not the query")
    plan = _timeline_plan(db, monkeypatch, TimelineFilter(**window))  # type: ignore[arg-type]
    assert "USING COVERING INDEX timeline_occurred" in plan, plan


def test_postgres_compares_identifiers_byte_by_byte(db: Database) -> None:
    """Text columns that are indexed, joined or sorted use COLLATE "C" on PostgreSQL:
    the same order as SQLite's, whatever the database's default collation."""
    if db.dialect != "postgres":
        pytest.skip("SQLite always compares text byte by byte")
    rows = db.execute(
        "SELECT c.relname, a.attname, co.collname FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_collation co ON co.oid = a.attcollation "
        "WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 "
        "AND a.atttypid = 'text'::regtype "
        "AND c.relname IN ('timeline', 'retractions', 'ledger_entries')"
    ).fetchall()
    collations = {(table, column): collation for table, column, collation in rows}
    for column in ("event_id", "type", "account", "subject", "platform", "policy", "actor"):
        assert collations[("timeline", column)] == "C", column
    assert collations[("retractions", "target")] == "C"
    for column in ("event_id", "type", "subject_ref", "lane", "target"):
        assert collations[("ledger_entries", column)] == "C", column


def test_postgres_timeline_probes_retractions_per_row(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a hash of the whole retractions table: its cost would grow with the log
    rather than with the answer (the plain join planned one for one-shot queries)."""
    if db.dialect != "postgres":
        pytest.skip("SQLite joins by per-row index lookups only")
    account = _one(db, "SELECT account FROM timeline WHERE account IS NOT NULL LIMIT 1")
    # The choice a large retractions table and a short answer lead to: nested
    # loops priced out, so only the query's shape can rule out a hash join.
    plan = _timeline_plan(
        db, monkeypatch, TimelineFilter(account=account), priced_out="enable_nestloop"
    )
    assert "retractions" in plan, plan
    assert "Hash Cond: (r.target" not in plan, plan


def test_a_registration_finds_the_platform_renames_through_their_partial_index(
    db: Database, store: Store
) -> None:
    """Every registration checks the renames (a rename's name is no slug to register
    under): through their partial index, not a scan of the log's whole index."""
    from ledger.application import Ledger as _Ledger
    from ledger.persistence import WriteTransaction

    ledger = _Ledger(StoreLocation.parse(store.url))
    try:
        tx = WriteTransaction(db, ledger.storage)
        sql = tx._leaves_with_sequence_sql + "WHERE l.type = 'platform_renamed'"
        plan = _plan(db, sql, {})
        assert "ledger_entries_renames" in plan, plan
        # And the method reads them.
        rename = (
            '{"type": "platform_renamed", "platform": "twitter", "name": "X", '
            '"occurred_at": "2023-07-23", "source": "s"}\n'
        )
        store.ok("append", "-", input=rename)
        assert [b'"name":"X"' in leaf for leaf in tx.leaves_of_type("platform_renamed")] == [True]
    finally:
        ledger.close()


def test_the_index_check_seeks_rows_beyond_the_log_without_scanning_the_index(
    db: Database, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv22: its stray-row query, ``sequence < 0 OR sequence >= ?``, was planned on
    SQLite, once statistics were taken, as a scan of the notification index: ~12 ms at
    200k rows, on every verify. Each bound is an index seek."""
    from ledger.persistence import Storage

    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        storage = ledger.storage
        storage.analyze()  # as after a bulk append: the plans the store then gets
        size = int(db.one("SELECT count(*) FROM ledger_entries")[0])
        ran: list[tuple[str, Any]] = []
        execute = Database.execute

        def recorded(self: Database, statement: str, params: Any = (), **kwargs: Any) -> Any:
            ran.append((statement, params))
            return execute(self, statement, params, **kwargs)

        monkeypatch.setattr(Database, "execute", recorded)
        assert Storage.index_mismatch(storage, db, size) is None
        monkeypatch.undo()
        assert any("sequence < 0" in sql for sql, _ in ran), ran
        for sql, params in ran:  # the count within 0..size-1 too: a range of the index
            plan = _plan(db, sql, params)
            assert "SCAN" not in plan, (sql, plan)  # SQLite's
            assert "Seq Scan" not in plan, (sql, plan)
    finally:
        ledger.close()


def test_postgres_account_timeline_reads_the_account_index_alone_once_vacuumed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account's rows come from its index alone where the visibility map allows
    (as `ANALYZE`/vacuum leaves it): selecting its retractions' projected subject and
    platform with every row, outside that index, would read each row's table page too."""
    if db.dialect != "postgres":
        pytest.skip("SQLite's plan is checked above")
    db.raw.commit()
    db.raw.autocommit, autocommit = True, db.raw.autocommit
    try:
        db.raw.execute("VACUUM (ANALYZE) timeline")
    finally:
        db.raw.autocommit = autocommit
    account = _one(db, "SELECT account FROM timeline WHERE account IS NOT NULL LIMIT 1")
    plan = _timeline_plan(db, monkeypatch, TimelineFilter(account=account), "enable_bitmapscan")
    assert "Index Only Scan using timeline_account" in plan, plan
