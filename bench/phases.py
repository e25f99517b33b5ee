"""One benchmark phase per process: ``python -m bench.phases PHASE ARGS…``.

Prints one JSON line: the phase's wall time and this process's peak RSS. The
project's phases go through the public CLI in-process (start-up is negligible at
these sizes); baselines do the same work the plainest way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import resource
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cli(*args: str) -> None:
    from cli.main import main

    try:
        main(list(args))
    except SystemExit as done:
        if done.code not in (0, None):
            raise RuntimeError(f"CLI {args[2:4]} exited {done.code}") from None


@contextlib.contextmanager
def _stdout_to_devnull() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def _timed(work: Callable[[], Any]) -> dict[str, Any]:
    start = time.perf_counter()
    extra = work()
    result = {"seconds": time.perf_counter() - start}
    if isinstance(extra, dict):
        result.update(extra)
    return result


# --- phases ----------------------------------------------------------------------


def generate(args: list[str]) -> dict[str, Any]:
    from bench.generate import generate as lines

    events = int(args[args.index("--events") + 1])
    out = args[args.index("--out") + 1]

    def work() -> None:
        with open(out, "w", encoding="utf-8") as handle:
            for line in lines(events, 1):
                handle.write(line + "\n")

    return _timed(work)


def import_(args: list[str]) -> dict[str, Any]:
    url, key, data = args
    with _stdout_to_devnull():
        return _timed(lambda: _cli("--store", url, "--key-file", key, "append", data))


def import_baseline(args: list[str]) -> dict[str, Any]:
    kind, data, pg_url = args
    if kind == "sqlite":
        path = data + ".baseline.db"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)

        def work() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE events (line TEXT NOT NULL)")
            conn.execute("BEGIN")
            with open(data, encoding="utf-8") as handle:
                conn.executemany("INSERT INTO events VALUES (?)", ((line,) for line in handle))
            conn.execute("COMMIT")
            conn.close()

        return _timed(work)
    import psycopg

    # A name of this run's own: runs sharing a server must not drop each other's table.
    table = f"public.bench_baseline_{uuid.uuid4().hex[:12]}"

    def work_pg() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {table} (line TEXT NOT NULL)")
            try:
                with (
                    conn.transaction(),
                    conn.cursor() as cursor,
                    cursor.copy(f"COPY {table} (line) FROM STDIN") as copy,
                    open(data, encoding="utf-8") as handle,
                ):
                    for line in handle:
                        copy.write_row((line.rstrip("\n"),))
            finally:
                conn.execute(f"DROP TABLE {table}")

    return _timed(work_pg)


def checks_floor(args: list[str]) -> dict[str, Any]:
    """Only the per-event Python work every append must do before any rule or row:
    validate the line (as `append` does), build its leaf (canonical JSON with the
    ledger's fields) and hash it. No rules, no storage: with the storage-alone line,
    the two parts of the import figure that no check can avoid."""
    from ledger.canonical import canonical_json
    from ledger.events import event_content, parse_event
    from ledger.merkle import leaf_hash

    (data,) = args

    def work() -> None:
        with open(data, "rb") as handle:
            for sequence, line in enumerate(handle):
                record = event_content(parse_event(line, sequence + 1))
                record["recorded_at"] = "2026-01-01T00:00:00.000000Z"
                record["actor"] = "bench"
                record["sequence"] = sequence
                leaf_hash(canonical_json(record))

    return _timed(work)


# The tables an append writes, and the order their rows are read back in.
_FLOOR_TABLES = {
    "events": "{events}",
    "ledger_entries": "sequence",
    "merkle_nodes": "(idx << level), level",
    "timeline": "sequence",
}
_FLOOR_ROUND = 2000  # events per insert round, as an append flushes


def _timed_rounds(
    cursors: dict[str, Any], insert: Callable[[str, list[Any]], None]
) -> tuple[float, int]:
    """Insert the import's rows back a round of events at a time (Merkle nodes: about
    two per event); returns the seconds spent inserting, and the events."""
    seconds = 0.0
    count = 0
    while True:
        batch = {
            table: cursor.fetchmany(_FLOOR_ROUND * (2 if table == "merkle_nodes" else 1))
            for table, cursor in cursors.items()
        }
        if not any(batch.values()):
            return seconds, count
        count += len(batch["events"])
        start = time.perf_counter()
        for table, rows in batch.items():
            if rows:
                insert(table, rows)
        seconds += time.perf_counter() - start


def import_floor(args: list[str]) -> dict[str, Any]:
    """Store again exactly the rows the import stored, prebuilt: no parsing, rules,
    hashing or row building. The best any append could do with this layout, however
    cheap its checks (rows are read back outside the timed part)."""
    (url,) = args
    if url.startswith("postgresql://"):
        return _import_floor_pg(url)
    path = url + ".floor.db"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    src = sqlite3.connect(url)
    dst = sqlite3.connect(path, isolation_level=None)
    dst.execute("PRAGMA journal_mode=WAL")
    dst.execute("PRAGMA synchronous=FULL")
    dst.execute("PRAGMA cache_size=-65536")  # as the ledger's connections
    ddl = src.execute(
        "SELECT tbl_name, type, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' AND type IN ('table', 'index')"
    ).fetchall()
    for _, kind, sql in ddl:
        if kind == "table":
            dst.execute(sql)
    # A large import builds the timeline's secondary indexes after its rows, as here.
    later = [sql for table, kind, sql in ddl if kind == "index" and table == "timeline"]
    for table, kind, sql in ddl:
        if kind == "index" and table != "timeline":
            dst.execute(sql)
    order = {**_FLOOR_TABLES, "events": "rowid"}
    cursors = {
        table: src.execute(
            f"SELECT {'rowid, *' if table == 'events' else '*'} FROM "
            f"{'stored_events' if table == 'events' else table} ORDER BY {key}"
        )
        for table, key in order.items()
    }
    columns = {"events": " (rowid, originator_id, originator_version, topic, state)"}

    def insert(table: str, rows: list[Any]) -> None:
        name = "stored_events" if table == "events" else table
        marks = ",".join("?" * len(rows[0]))
        dst.executemany(f"INSERT INTO {name}{columns.get(table, '')} VALUES ({marks})", rows)

    dst.execute("BEGIN")
    seconds, count = _timed_rounds(cursors, insert)
    start = time.perf_counter()
    for sql in later:
        dst.execute(sql)
    dst.execute("COMMIT")
    seconds += time.perf_counter() - start
    src.close()
    dst.close()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    return {"seconds": seconds, "rows": count}


def _import_floor_pg(url: str) -> dict[str, Any]:
    import psycopg

    from ledger.postgres import EVENTS_TABLE

    schema = url.rsplit("schema=", 1)[1]
    floor = f"{schema}_floor"
    base = url.split("?", 1)[0]
    order = {**_FLOOR_TABLES, "events": "notification_id"}
    names = {table: EVENTS_TABLE if table == "events" else table for table in order}
    try:
        return _import_floor_pg_into(base, schema, floor, order, names)
    finally:  # a failed run leaves no schema behind on the server either
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{floor}" CASCADE')


def _import_floor_pg_into(
    base: str, schema: str, floor: str, order: dict[str, str], names: dict[str, str]
) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{floor}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{floor}"')
        for name in names.values():
            # Columns, defaults and every index; not the append-only triggers, which
            # fire only on UPDATE and DELETE.
            admin.execute(f'CREATE TABLE "{floor}".{name} (LIKE "{schema}".{name} INCLUDING ALL)')
    with psycopg.connect(base) as src, psycopg.connect(base) as dst:
        cursors = {}
        for table, key in order.items():
            cursor = src.cursor(name=f"floor_{table}")
            cursor.execute(f'SELECT * FROM "{schema}".{names[table]} ORDER BY {key}')
            cursors[table] = cursor

        def insert(table: str, rows: list[Any]) -> None:
            with dst.cursor().copy(f'COPY "{floor}".{names[table]} FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)

        with dst.transaction():
            seconds, count = _timed_rounds(cursors, insert)
            start = time.perf_counter()
        seconds += time.perf_counter() - start  # the commit
    return {"seconds": seconds, "rows": count}


def replay(args: list[str]) -> dict[str, Any]:
    (url,) = args
    with _stdout_to_devnull():
        return _timed(lambda: _cli("--store", url, "replay", "--silent"))


def _stored_leaves(url: str) -> Iterator[bytes]:
    from ledger.location import StoreLocation
    from ledger.persistence import open_storage

    storage = open_storage(StoreLocation.parse(url))
    with storage.connect() as db:
        yield from storage.iter_leaves(db)


def read_baseline(args: list[str]) -> dict[str, Any]:
    """SELECT every stored row and json.loads it: the floor under any rebuild."""
    (url,) = args

    def work() -> dict[str, Any]:
        count = sum(1 for leaf in _stored_leaves(url) if json.loads(leaf))
        return {"rows": count}

    return _timed(work)


def verify(args: list[str]) -> dict[str, Any]:
    url, vkey = args
    with _stdout_to_devnull():
        return _timed(lambda: _cli("--store", url, "verify", "--vkey", vkey))


def verify_baseline(args: list[str]) -> dict[str, Any]:
    """SELECT every row and fold a streaming RFC 6962 root with hashlib, nothing else."""
    (url,) = args
    sha256 = hashlib.sha256

    def work() -> dict[str, Any]:
        stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees
        count = 0
        for leaf in _stored_leaves(url):
            node = sha256(b"\x00" + leaf).digest()
            height = 0
            while stack and stack[-1][0] == height:
                node = sha256(b"\x01" + stack.pop()[1] + node).digest()
                height += 1
            stack.append((height, node))
            count += 1
        root = stack.pop()[1] if stack else sha256(b"").digest()
        while stack:
            root = sha256(b"\x01" + stack.pop()[1] + root).digest()
        return {"rows": count, "root": root.hex()}

    return _timed(work)


def export(args: list[str]) -> dict[str, Any]:
    (url,) = args
    with _stdout_to_devnull():
        return _timed(lambda: _cli("--store", url, "export", "--nl"))


def queries(args: list[str]) -> dict[str, Any]:
    """status and timeline of one account, in-process, over random accounts."""
    url, samples = args[0], int(args[1])
    from datetime import UTC, datetime

    from ledger.application import Ledger
    from ledger.location import StoreLocation
    from projections.projector import Projector
    from projections.queries import Moment, TimelineFilter, account_status, timeline

    ledger = Ledger(StoreLocation.parse(url))
    db = ledger.storage.connect()
    Projector(ledger, db).catch_up()
    accounts = [
        row[0]
        for row in db.execute(
            "SELECT DISTINCT account FROM timeline WHERE type = 'account_registered'"
        ).fetchall()
    ]
    rng = random.Random(7)
    picks = [rng.choice(accounts) for _ in range(samples)]
    now = datetime.now(UTC)
    moment = Moment(as_of=now, known_at=now)
    result: dict[str, Any] = {"accounts": len(accounts)}
    for name in ("status", "timeline"):
        times = []
        sizes = []  # events per timeline: accounts range from a few to thousands
        for account in picks:
            start = time.perf_counter()
            rows = 0
            try:
                # Each answer first checks the read model is current, as the CLI does.
                Projector(ledger, db).catch_up()
                if name == "status":
                    account_status(db, account, moment)
                else:
                    for _ in timeline(db, now, TimelineFilter(account=account)):
                        rows += 1
            except LookupError:
                pass
            times.append((time.perf_counter() - start) * 1000)
            sizes.append(rows)
        figures = {
            "p50_ms": statistics.median(times),
            "p99_ms": sorted(times)[max(0, int(len(times) * 0.99) - 1)],
        }
        if name == "timeline":
            # The p99 answer is one of the largest accounts, not a ~median one.
            per_event = sorted(1000 * t / max(n, 1) for t, n in zip(times, sizes, strict=True))
            figures["events_p50"] = statistics.median(sizes)
            figures["events_p99"] = sorted(sizes)[max(0, int(len(sizes) * 0.99) - 1)]
            figures["us_per_event_p50"] = statistics.median(per_event)
            figures["us_per_event_p99"] = per_event[max(0, int(len(per_event) * 0.99) - 1)]
        result[name] = figures
    db.close()
    ledger.close()
    return result


PHASES: dict[str, Callable[[list[str]], dict[str, Any]]] = {
    "generate": generate,
    "import": import_,
    "import_baseline": import_baseline,
    "import_floor": import_floor,
    "checks_floor": checks_floor,
    "replay": replay,
    "read_baseline": read_baseline,
    "verify": verify,
    "verify_baseline": verify_baseline,
    "export": export,
    "queries": queries,
}


def main() -> None:
    phase, args = sys.argv[1], sys.argv[2:]
    result = PHASES[phase](args)
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
