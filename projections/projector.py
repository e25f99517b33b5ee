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

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.application import Ledger
from ledger.persistence import Database, Storage
from ledger.vocabulary import platform_of
from projections import leaves

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


def status_facts_clause(table: str = "") -> str:
    """The status-facts index's predicate, which queries state too: a partial index
    serves a query only where the planner can prove its predicate from the query."""
    column = f"{table}.type" if table else "type"
    return "(" + " OR ".join(f"{column} = '{kind}'" for kind in STATUS_FACT_TYPES) + ")"


# Leaves per catch-up transaction read into Python: small enough that a chunk's rows
# and records stay in the CPU caches (a 1M replay took 10.1 s with 20,000, 9.4 s with
# 1,000-3,000), and each transaction holds SQLite's write lock only briefly.
READ_CHUNK = 2_000
# PostgreSQL projects in the server, where a chunk costs a round trip and a
# statement, not Python objects: larger chunks there.
SERVER_CHUNK_FACTOR = 10
# Connections a PostgreSQL rebuild projects from at once: the server does the work,
# one core per connection (2 cores here: 1.5x).
PARALLEL_CONNECTIONS = 2

INDEXES = [
    # Covering for one account's timeline: rows are filtered by record time, type and
    # retractions and joined to their leaves without reading the table itself. With
    # the type, an account's posts or appeals skip its other events in the index
    # (`posts` across 5,000 accounts at 1M events: 3.7-4.2 against 6.4-7.0 s of SQL;
    # 88 against 70 MB). A store made before keeps the narrower index until a replay.
    # (PostgreSQL keeps the narrower ones: see _NARROWER_ON_POSTGRES.)
    "CREATE INDEX IF NOT EXISTS timeline_account ON timeline "
    "(account, occurred_us, sequence, recorded_us, event_id, notification_id, type)",
    # Partial: most events name no subject (only its registration, its exemptions and
    # its accounts' registrations), so it is small and quick to build (0.06 s against
    # 0.76 s at 1M events).
    "CREATE INDEX IF NOT EXISTS timeline_subject ON timeline (subject, occurred_us, sequence) "
    "WHERE subject IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS timeline_platform ON timeline (platform, occurred_us, sequence)",
    # Covering for a timeline across accounts, as timeline_account is for one: rows in
    # time order are filtered by record time and joined to retractions, leaves and
    # their account's subject without a read of the table's row each (a full 1M
    # timeline's statement: 5.3 against 9.7 s; the index builds in 1.2 against 0.9 s
    # and takes 70 against 21 MB). A store made before keeps the narrower index, which
    # answers the same, until a replay builds this one.
    "CREATE INDEX IF NOT EXISTS timeline_occurred ON timeline "
    "(occurred_us, sequence, recorded_us, event_id, notification_id, account)",
    # Partial indexes: one account's status reads only its few status facts, however
    # many posts and follower counts it has (a small fraction of rows to maintain).
    # By type first: the newest registration or status change is one seek, and
    # exemptions are read without stepping over the other facts.
    # The predicate is a chain of ORs, not an IN list: SQLite evaluates a constant IN
    # list in an index's WHERE with a lookup per row (0.75 s against 0.32 s to build
    # this index at 1M events). Queries state it too (status_facts_clause).
    "CREATE INDEX IF NOT EXISTS timeline_status_facts ON timeline "
    f"(account, type, occurred_us, sequence) WHERE {status_facts_clause()}",
    "CREATE INDEX IF NOT EXISTS timeline_followers ON timeline (account, occurred_us, sequence) "
    "WHERE type = 'followers_observed'",
]
# PostgreSQL reads an index alone only where its visibility map allows, and keeps
# every index current row by row through a bulk append: the two wider indexes made a
# 200k append 3-15% slower there, and its timelines and posts no faster.
_NARROWER_ON_POSTGRES = {
    "(account, occurred_us, sequence, recorded_us, event_id, notification_id, type)": (
        "(account, occurred_us, sequence, recorded_us, event_id, notification_id)"
    ),
    "(occurred_us, sequence, recorded_us, event_id, notification_id, account)": (
        "(occurred_us, sequence)"
    ),
}


def _narrower(statement: str) -> str:
    for wide, narrow in _NARROWER_ON_POSTGRES.items():
        statement = statement.replace(wide, narrow)
    return statement


def index_statements(dialect: str) -> list[str]:
    """INDEXES as this dialect builds them."""
    return [_narrower(s) for s in INDEXES] if dialect == "postgres" else list(INDEXES)


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
TIMELINE_COLUMNS = (
    "sequence, event_id, type, account, subject, platform, policy, actor, occurred_us, "
    "recorded_us, notification_id"
)
TABLES = ("timeline", "retractions", "projection_position")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(value: str | datetime) -> int:
    """Exact microseconds since the epoch of an ISO time or an aware datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    """The UTC time ``us`` microseconds after the epoch: ``micros`` undone."""
    return _EPOCH + us * _MICROSECOND


def missing_parts(db: Database) -> list[str]:
    """The read-model tables and indexes this store lacks, by name (none normally; a
    replay stopped between dropping its indexes and building them leaves those)."""
    present = db.relation_names()
    return [name for name in (*TABLES, *INDEX_NAMES) if name not in present]


def build_indexes(db: Database) -> None:
    """The read models' indexes, in the caller's transaction (IF NOT EXISTS: those
    there stay). PostgreSQL sorts them in memory rather than in temporary files (server
    side); SQLite as its connection is set (a rebuild's small cache)."""
    if db.dialect == "postgres":
        db.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for statement in index_statements(db.dialect):
        db.execute(statement)


def create_tables(db: Database) -> None:
    for statement in DDL:
        if db.dialect == "sqlite":
            # INTEGER PRIMARY KEY is the rowid itself in SQLite; BIGINT would be a
            # second index to maintain on every insert.
            statement = statement.replace(
                "sequence BIGINT PRIMARY KEY", "sequence INTEGER PRIMARY KEY"
            )
        else:
            # Text sorts and compares byte by byte, as in SQLite, whatever the
            # database's default collation: the same order from both stores, and
            # indexes built and searched by memcmp instead of strcoll (the account
            # index built 17-25% faster than under C.UTF-8).
            statement = _narrower(statement).replace(" TEXT", ' TEXT COLLATE "C"')
        db.execute(statement)


def timeline_row(notification_id: int, record: dict[str, Any], recorded_us: int) -> tuple[Any, ...]:
    """An event's timeline row (``TIMELINE_COLUMNS``) as its own leaf gives it; a
    retraction's account, subject and platform are then its target's (``_write``)."""
    account = record.get("account")
    return (
        record["sequence"],
        record["event_id"],
        record["type"],
        account,
        record.get("subject"),
        record.get("platform") or (platform_of(account) if account else None),
        record.get("policy"),
        record["actor"],
        (datetime.fromisoformat(record["occurred_at"]) - _EPOCH) // _MICROSECOND,
        recorded_us,
        notification_id,
    )


def _write(db: Database, records: Iterable[tuple[int, dict[str, Any]]]) -> int:
    """Project records (in log order) and move the position past them; returns a count."""
    rows: list[tuple[Any, ...]] = []
    retractions = []
    pending: list[tuple[int, str]] = []  # (row index, target) found in no earlier row
    by_event: dict[str, tuple[Any, ...]] = {}
    recorded_cache: dict[str, int] = {}  # a batch shares one recorded_at
    last_id, last_sequence = -1, -1
    for notification_id, record in records:
        recorded_at = record["recorded_at"]
        recorded_us = recorded_cache.get(recorded_at)
        if recorded_us is None:
            recorded_us = recorded_cache[recorded_at] = micros(recorded_at)
        row = timeline_row(notification_id, record, recorded_us)
        if row[2] == "event_retracted":
            # A retraction belongs to its target's account, subject and platform, so
            # it shows up in the timeline where the retracted event does.
            target_id = record["target"]
            target = by_event.get(target_id)
            if target is None:
                pending.append((len(rows), target_id))
            else:
                row = (*row[:3], target[3], target[4], target[5], *row[6:])
            retractions.append((target_id, row[1], recorded_us))
        by_event[row[1]] = row
        rows.append(row)
        last_id, last_sequence = notification_id, row[0]
    if not rows:
        return 0
    if pending:
        found = _target_rows(db, sorted({target for _, target in pending}))
        for index, target_id in pending:
            target = found.get(target_id)
            if target is not None:
                row = rows[index]
                rows[index] = (*row[:3], *target, *row[6:])
    # COPY on PostgreSQL: its executemany sends a statement per row.
    db.insert_rows("timeline", TIMELINE_COLUMNS, rows)
    db.insert_rows("retractions", "target, retraction, recorded_us", retractions)
    _set_position(db, last_id, last_sequence)
    return len(rows)


def _set_position(db: Database, notification_id: int, sequence: int) -> None:
    db.execute(
        "INSERT INTO projection_position VALUES (?,?,?) ON CONFLICT (name) DO UPDATE "
        "SET notification_id = excluded.notification_id, sequence = excluded.sequence",
        (PROJECTION, notification_id, sequence),
    )


def _target_rows(db: Database, event_ids: Sequence[str]) -> dict[str, tuple[Any, Any, Any]]:
    """(account, subject, platform) of projected events, through the log's event_id index."""
    found: dict[str, tuple[Any, Any, Any]] = {}
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start : start + 500]
        for row in db.execute(
            "SELECT l.event_id, t.account, t.subject, t.platform FROM ledger_entries l "
            "JOIN timeline t ON t.sequence = l.sequence "
            f"WHERE l.event_id IN ({','.join('?' * len(chunk))})",
            tuple(chunk),
        ).fetchall():
            found[row[0]] = (row[1], row[2], row[3])
    return found


def _apply_leaves(db: Database, storage: Storage, after: int) -> int:
    """The next chunk of leaves after ``after``, parsed and projected here."""
    events, column = storage.events_table, storage.notification_column
    rows = db.execute(
        f"SELECT {column}, state FROM {events} WHERE {column} > ? ORDER BY {column} LIMIT ?",
        (after, READ_CHUNK),
    ).fetchall()
    parse = leaves.parser(len(rows))
    return _write(db, ((n_id, parse(leaf)) for n_id, leaf in rows))


# PostgreSQL projects a chunk inside the server: no leaf crosses the wire. Each
# column is what timeline_row computes from the parsed record. A time that is not
# in the ledger's one textual form (iso()) gives NULL, which the NOT NULL column
# refuses, and the chunk is then projected by _apply_leaves instead. The form is
# checked by mapping every ASCII digit to 9 and comparing with its two shapes: what
# the regular expression ^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$ accepts (in
# ASCII), at a fraction of its cost (two matches a row were a fifth of a replay).
_PG_MICROS = (
    "CASE WHEN translate({0}, '0123456789', '9999999999') "
    "IN ('9999-99-99T99:99:99Z', '9999-99-99T99:99:99.999999Z') "
    "THEN (extract(epoch FROM {0}::timestamptz) * 1000000)::bigint END"
)
_PG_PROJECT_CHUNK = f"""
WITH raw AS MATERIALIZED (
    SELECT e.notification_id AS n, r.sequence, r.event_id, r.type, r.account, r.subject,
        coalesce(nullif(r.platform, ''),
                 CASE WHEN r.account <> '' THEN split_part(r.account, ':', 1) END) AS platform,
        r.policy, r.actor, r.target,
        {_PG_MICROS.format("r.occurred_at")} AS occurred_us,
        r.recorded_at
    FROM {{events}} e,
        json_to_record(convert_from(e.state, 'UTF8')::json) AS r(
            sequence bigint, event_id text, type text, account text, subject text,
            platform text, policy text, actor text, target text,
            occurred_at text, recorded_at text)
    WHERE e.notification_id > %(after)s AND e.notification_id <= %(upto)s
    ORDER BY e.notification_id
    LIMIT %(limit)s
), times AS (
    -- A batch shares one record time: each distinct one is converted once (the
    -- conversion was a tenth of a chunk's time; Python's path caches it likewise).
    SELECT d.recorded_at, {_PG_MICROS.format("d.recorded_at")} AS recorded_us
    FROM (SELECT DISTINCT recorded_at FROM raw) d
), src AS MATERIALIZED (
    SELECT raw.n, raw.sequence, raw.event_id, raw.type, raw.account, raw.subject, raw.platform,
        raw.policy, raw.actor, raw.target, raw.occurred_us, t.recorded_us
    FROM raw LEFT JOIN times t ON t.recorded_at = raw.recorded_at
), retracted AS (
    INSERT INTO retractions
    SELECT target, event_id, recorded_us FROM src WHERE type = 'event_retracted'
), targets AS (
    -- A retraction's target, read from the target's own leaf (an earlier event of the
    -- log, found through the event_id index; a few per chunk): the columns its
    -- projected row holds, whether that row is in this chunk, in an earlier one, or
    -- in one being projected alongside (parallel rebuild).
    SELECT s.n, t.account, t.subject, t.platform, t.found
    FROM src s
    LEFT JOIN LATERAL (
        SELECT j.account, j.subject,
            coalesce(nullif(j.platform, ''),
                     CASE WHEN j.account <> '' THEN split_part(j.account, ':', 1) END) AS platform,
            true AS found
        FROM ledger_entries l
        JOIN {{events}} g ON g.notification_id = l.notification_id,
            json_to_record(convert_from(g.state, 'UTF8')::json)
                AS j(account text, subject text, platform text)
        WHERE l.event_id = s.target AND l.sequence < s.sequence
        OFFSET 0  -- keeps this a per-row index lookup, never a join of whole tables
    ) t ON true
    WHERE s.type = 'event_retracted'
), projected AS (
    INSERT INTO timeline
    SELECT s.sequence, s.event_id, s.type,
        CASE WHEN g.found THEN g.account ELSE s.account END,
        CASE WHEN g.found THEN g.subject ELSE s.subject END,
        CASE WHEN g.found THEN g.platform ELSE s.platform END,
        s.policy, s.actor, s.occurred_us, s.recorded_us, s.n
    FROM src s LEFT JOIN targets g ON g.n = s.n
)
SELECT count(*), max(n), (SELECT sequence FROM src ORDER BY n DESC LIMIT 1) FROM src
"""


_NO_END = 2**63 - 1


def _project_in_server(
    db: Database, statement: str, after: int, upto: int = _NO_END
) -> tuple[int, Any, Any]:
    """One chunk of ids in (after, upto] projected by _PG_PROJECT_CHUNK, in the
    caller's transaction: (rows, last notification id, last sequence)."""
    # The chunk's rows stay in memory (the default 4 MB spills them to disk). The
    # commit need not wait for its WAL flush: like SQLite's synchronous=NORMAL, a
    # crash may undo the last chunks, always with their position.
    db.raw.execute("SET LOCAL work_mem = '64MB'")
    db.raw.execute("SET LOCAL synchronous_commit = off")
    count, last_id, last_sequence = db.raw.execute(
        statement, {"after": after, "upto": upto, "limit": READ_CHUNK * SERVER_CHUNK_FACTOR}
    ).fetchone()
    return int(count), last_id, last_sequence


def _apply_sql(db: Database, storage: Storage, after: int) -> int:
    statement = _PG_PROJECT_CHUNK.replace("{events}", storage.events_table)
    db.raw.execute("SAVEPOINT project_chunk")
    try:
        count, last_id, last_sequence = _project_in_server(db, statement, after)
    except Exception as error:
        if not _is_not_null_violation(error):
            raise
        db.raw.execute("ROLLBACK TO SAVEPOINT project_chunk")
        return _apply_leaves(db, storage, after)
    db.raw.execute("RELEASE SAVEPOINT project_chunk")
    if count:
        _set_position(db, last_id, last_sequence)
    return count


def _is_not_null_violation(error: BaseException) -> bool:
    return getattr(error, "sqlstate", None) == "23502"


def _is_unique_violation(error: BaseException) -> bool:
    """A duplicate key: PostgreSQL's 23505, or SQLite's unique or primary key constraint
    (sqlite3 names it only in ``sqlite_errorname``)."""
    if getattr(error, "sqlstate", None) == "23505":
        return True
    return getattr(error, "sqlite_errorname", None) in (
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "SQLITE_CONSTRAINT_UNIQUE",
    )


def _drop_beyond_position(db: Database) -> None:
    _, sequence = projected_position(db)
    db.execute(
        "DELETE FROM retractions WHERE retraction IN "
        "(SELECT event_id FROM timeline WHERE sequence > ?)",
        (sequence,),
    )
    db.execute("DELETE FROM timeline WHERE sequence > ?", (sequence,))


def projected_position(db: Database) -> tuple[int, int]:
    """(notification id, sequence) of the last event projected; (0, -1) before any."""
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
        self.active = projected_position(db)[1] == next_sequence - 1
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
            # Sorted in small runs: faster, and memory does not grow with the batch.
            with _small_cache(db):
                build_indexes(db)
            self.indexes_dropped = False


# PostgreSQL: held whole by a rebuild, shared by every reader of the read models.
REBUILD_LOCK = "ledger-rebuild"


def wait_for_rebuilds(db: Database) -> None:
    """Hold off any rebuild while this connection reads the read models (PostgreSQL; a
    SQLite rebuild is one transaction, which readers never see half done)."""
    if db.dialect == "postgres":
        db.hold_shared(REBUILD_LOCK)


class Projector:
    """Applies new log entries to the read models, exactly once."""

    def __init__(self, ledger: Ledger, db: Database) -> None:
        self.ledger = ledger
        self.db = db

    def restore_indexes(self) -> tuple[list[str], list[str]]:
        """PostgreSQL: the read models' indexes a replay stopped part way dropped, built
        again by their owner (the rows catch up by themselves; without the indexes
        every query reads whole tables, until a replay or `init` made them). Not while
        a replay runs or a reader's connection holds the read models: asked again next
        time. Returns the names built, and those missing but left for now."""
        db = self.db
        if db.dialect != "postgres":
            return [], []
        # By name in the catalog's index (the schema's whole list scans pg_class).
        present = (
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) "
            "AND relnamespace = current_schema()::regnamespace"
        )

        def missing() -> list[str]:
            there = {name for (name,) in db.raw.execute(present, (list(INDEX_NAMES),))}
            return [name for name in INDEX_NAMES if name not in there]

        if not missing() or not _owns_read_models(db):
            return [], []
        with db.session_lock_if_free(REBUILD_LOCK) as free:
            if not free:
                return [], missing()
            built = missing()  # again, under the lock: a replay may have ended meanwhile
            with db.transaction(lock="ledger-projection") as tx:
                # As a replay builds them: a role's statement_timeout would stop it.
                tx.execute("SET LOCAL statement_timeout = 0")
                # But a table lock it waits for (a session writing the read models
                # outside the ledger's lock) ends this try: follow tries again later,
                # rather than hold appends up past their own wait.
                tx.execute("SET LOCAL lock_timeout = '10s'")
                build_indexes(tx)
        return built, []

    def position(self) -> tuple[int, int]:
        return projected_position(self.db)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply everything after the tracked position; returns events applied.

        Each chunk is read, projected and its position recorded in one transaction,
        straight from the events table (no library notification objects).
        """
        storage = self.ledger.storage
        apply = _apply_sql if self.db.dialect == "postgres" else _apply_leaves
        events, column = storage.events_table, storage.notification_column
        # The position is read inside the statement: every read command asks this
        # first, so a current reader's answer is one statement and no settings changed
        # (0.22 against 0.50 ms on PostgreSQL with the position read apart, 6.5 against
        # 54 µs on SQLite). ORDER BY: without it PostgreSQL's generic plan for the
        # prepared statement (psycopg prepares it from the 5th call on a connection) is
        # a sequential scan that finds nothing when current: 240 ms per check at 1M.
        behind = (
            f"SELECT 1 FROM {events} WHERE {column} > coalesce((SELECT notification_id "
            f"FROM projection_position WHERE name = ?), 0) ORDER BY {column} LIMIT 1"
        )
        # Checked outside a write transaction: a current reader takes no lock.
        if self.db.one(behind, (PROJECTION,)) is None:
            return 0
        applied = 0
        healed = False
        with _relaxed_commits(self.db):
            while True:
                try:
                    with self.db.transaction(lock="ledger-projection") as db:
                        # Re-read under the lock: a concurrent catch-up may have moved it.
                        count = apply(db, storage, projected_position(db)[0])
                except Exception as error:
                    if healed or not _is_unique_violation(error):
                        raise
                    # Rows beyond the position: a parallel rebuild stopped before it
                    # set the position, or the position was set back by hand. They are
                    # a function of the log alone, so they are dropped and projected
                    # again.
                    with self.db.transaction(lock="ledger-projection") as db:
                        _drop_beyond_position(db)
                    healed = True
                    continue
                applied += count
                if progress is not None and count:
                    progress(count)
                if self.db.one(behind, (PROJECTION,)) is None:
                    return applied

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Empty the read models and replay the whole log.

        Secondary indexes are dropped during the replay and built once at the end:
        one sort instead of a million scattered index updates.
        """
        # Only the tables' owner may drop indexes; the writer role replays with them.
        owner = _owns_read_models(self.db)
        with _small_cache(self.db):
            if self.db.dialect == "sqlite":
                return self._rebuild_in_one_transaction(owner, progress)
            # Its phases commit apart (emptied, projected from two connections, indexed):
            # readers, who hold this lock shared, wait for the whole rather than answer
            # from tables half rebuilt, and it waits for those reading. A statement_timeout
            # set for the role would stop it part way, the read models emptied.
            self.db.raw.execute(_NO_STATEMENT_TIMEOUT)
            with self.db.session_lock_when_free(REBUILD_LOCK, "reads", "another replay"):
                return self._rebuild(owner, progress)

    def _rebuild_in_one_transaction(
        self, owner: bool, progress: Callable[[int], None] | None
    ) -> int:
        """SQLite: the whole rebuild is one transaction. Readers meanwhile answer from
        the read models as they were, indexes included (their WAL snapshot), rather than
        meet tables half rebuilt and indexes dropped; a rebuild killed or stopped (a
        full disk) leaves them as they were. Appends wait for it, as for any writer."""
        storage = self.ledger.storage
        applied = 0
        with _relaxed_commits(self.db), self.db.transaction() as db:
            self._empty_in(db, owner)
            while count := _apply_leaves(db, storage, projected_position(db)[0]):
                applied += count
                if progress is not None:
                    progress(count)
            if owner:
                build_indexes(db)
        return applied

    def _rebuild(self, owner: bool, progress: Callable[[int], None] | None) -> int:
        parallel = owner and self.db.dialect == "postgres"
        try:
            # The parallel phase writes chunks out of order, so no other projector may
            # run between the emptying and the position that ends the phase: the
            # lock is held across them (appends wait; they project nothing meanwhile).
            with self.db.session_lock("ledger-projection") if parallel else nullcontext():
                self._empty(owner)
                applied = self._project_in_parallel() if parallel else 0
            if progress is not None and applied:
                progress(applied)
            return applied + self.catch_up(progress)
        finally:
            if owner:
                with self.db.transaction(lock="ledger-projection") as db:
                    build_indexes(db)

    def _empty(self, owner: bool) -> None:
        # Emptying a large table touches all its pages too: the small cache is on
        # from the start (RSS was 109 MB at 1M events against 70 MB at 100k without).
        with self.db.transaction(lock="ledger-projection") as db:
            self._empty_in(db, owner)

    @staticmethod
    def _empty_in(db: Database, owner: bool) -> None:
        if owner:  # first: then emptying the table does not walk every index too
            for name in INDEX_NAMES:
                db.execute(f"DROP INDEX IF EXISTS {name}")
        if owner and db.dialect == "postgres":
            # TRUNCATE leaves no dead rows behind for the replay to step over.
            db.execute(f"TRUNCATE {', '.join(TABLES)}")
        else:
            # DELETE, not DROP TABLE: the writer role may empty the read models.
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")

    def _project_in_parallel(self) -> int:
        """PostgreSQL: project the whole log from PARALLEL_CONNECTIONS connections.

        The server projects a chunk on one core while the client waits; disjoint
        ranges of notification ids from several connections keep more cores busy
        (1.3-1.6x at 300k events on 2 cores). Retraction targets are read from the
        target's leaf, so no chunk depends on another. The position is set once, after
        every chunk is in; should a chunk fail, everything projected here is emptied
        again and the ordinary catch-up (with its Python fallback) does the work.
        """
        storage = self.ledger.storage
        events, column = storage.events_table, storage.notification_column
        (end,) = self.db.one(f"SELECT max({column}) FROM {events}")
        if not end:
            return 0
        step = READ_CHUNK * SERVER_CHUNK_FACTOR
        ranges = [(start, min(start + step, end)) for start in range(0, end, step)]
        statement = _PG_PROJECT_CHUNK.replace("{events}", events)
        results: list[tuple[int, Any, Any]] = []
        failures: list[BaseException] = []

        def work(assigned: list[tuple[int, int]]) -> None:
            try:
                with storage.connect() as db:
                    db.raw.execute(_NO_STATEMENT_TIMEOUT)
                    for after, upto in assigned:
                        if failures:
                            return
                        with db.transaction():
                            results.append(_project_in_server(db, statement, after, upto))
            except BaseException as error:  # re-raised by the caller's thread
                failures.append(error)

        workers = [
            threading.Thread(target=work, args=(ranges[i::PARALLEL_CONNECTIONS],))
            for i in range(PARALLEL_CONNECTIONS)
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except BaseException as stop:
            # Ctrl-C or SIGTERM while they work: each stops after its chunk in flight
            # (rv36: they went on through all their chunks, the process waiting for
            # them at exit, deaf to another Ctrl-C, after saying it had stopped).
            failures.append(stop)
            raise
        with self.db.transaction(lock="ledger-projection") as db:
            if failures:
                db.execute(f"TRUNCATE {', '.join(TABLES)}")
            else:
                done = [r for r in results if r[0]]
                if done:
                    _, last_id, last_sequence = max(done, key=lambda r: r[1])
                    _set_position(db, last_id, last_sequence)
        if failures and not all(_is_not_null_violation(error) for error in failures):
            raise failures[0]
        return 0 if failures else sum(r[0] for r in results)


# For this session only: any role may set it.
_NO_STATEMENT_TIMEOUT = "SET statement_timeout = 0"

REBUILD_CACHE_KIB = 8192
# Helper threads SQLite may sort with while building an index (beside the caller's).
SORT_THREADS = 1


@contextmanager
def _small_cache(db: Database) -> Iterator[None]:
    """SQLite: a small page cache while rebuilding, and index sorts on two cores.

    A replay writes each page once and never reads it back, and CREATE INDEX sorts
    in memory up to the cache size: with the connection's usual 64 MiB both fill
    up, so memory grew with the log (167 MB at 1M events against 74 MB at 100k),
    and the index sorts ran slower than with small in-memory runs merged. Those
    runs are sorted by a helper thread too (``PRAGMA threads``). The sorts spill
    to temporary *files* whatever the connection was set to: a connection that ran
    a status query has ``temp_store=MEMORY``, and with it a 1M-event index sort
    would hold its whole spill in memory.
    """
    if db.dialect != "sqlite":
        yield
        return
    (previous,) = db.one("PRAGMA cache_size")
    (threads,) = db.one("PRAGMA threads")
    (temp_store,) = db.one("PRAGMA temp_store")
    db.execute(f"PRAGMA cache_size=-{REBUILD_CACHE_KIB}")
    db.execute(f"PRAGMA threads={SORT_THREADS}")
    db.execute("PRAGMA temp_store=FILE")
    try:
        yield
    finally:
        db.execute(f"PRAGMA cache_size={int(previous)}")
        db.execute(f"PRAGMA threads={int(threads)}")
        db.execute(f"PRAGMA temp_store={int(temp_store)}")


@contextmanager
def _relaxed_commits(db: Database) -> Iterator[None]:
    """SQLite: commit projection chunks without an fsync each.

    In WAL mode with synchronous=NORMAL a commit is atomic but may be undone by a
    power loss; the read models and their position are undone together, so the
    next catch-up re-applies exactly what was lost. The log itself is never
    written through this connection.
    """
    if db.dialect != "sqlite":
        yield
        return
    (previous,) = db.one("PRAGMA synchronous")
    db.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        db.execute(f"PRAGMA synchronous={int(previous)}")


def _owns_read_models(db: Database) -> bool:
    if db.dialect == "sqlite":
        return True
    row = db.one(
        "SELECT tableowner = current_user FROM pg_tables "
        "WHERE schemaname = current_schema() AND tablename = 'timeline'"
    )
    return bool(row and row[0])
