"""SQLite durability: a killed append leaves all of its batch or none of it, and the
event tables refuse UPDATE and DELETE. These tests work on SQLite files directly
(tmp_path), so they do not use the backend-parametrised ``store`` fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from tests.ledger_helpers import account, ev, jsonl

BATCH = 20_000


def _read_position(pid: int, path: Path) -> int | None:
    """How far process ``pid`` has read the file ``path`` (Linux /proc), or None while
    it has not opened it."""
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if Path(os.readlink(fd)) == path:
                    info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                    return int(info.split("pos:", 1)[1].split()[0])
    return None


def run(path: Path, *args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(
        cli, ["--store", str(path), *args], input=input, env={"ENFORCEMENT_LEDGER_ACTOR": "t"}
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def leaves(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run(path, "export", "--nl").stdout.splitlines()]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    run(path, "init")
    run(
        path,
        "append",
        "-",
        input=jsonl(
            account("twitter:before", event_id="reg-before"),
            ev("account_suspended", "2021-01-08", account="twitter:before", policy="p"),
            ev("followers_observed", "2021-02-01", account="twitter:before", count=7),
        ),
    )
    return path


def write_big_batch(path: Path) -> int:
    """A valid batch: one registration, then posts and follower counts."""
    with path.open("w", encoding="utf-8") as out:
        out.write(jsonl(account("twitter:big", event_id="big-reg")))
        for n in range(BATCH):
            if n % 2:
                event = ev(
                    "followers_observed",
                    "2021-01-01T00:00:00Z",
                    account="twitter:big",
                    count=n,
                    event_id=f"big-{n}",
                )
            else:
                event = ev(
                    "post_published",
                    "2021-01-01T00:00:00Z",
                    account="twitter:big",
                    post=f"p{n}",
                    event_id=f"big-{n}",
                )
            out.write(json.dumps(event) + "\n")
    return BATCH + 1


@pytest.mark.parametrize(
    "stop", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill", "ctrl-c", "term"]
)
def test_a_stopped_append_leaves_all_or_nothing(
    ledger: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    if not Path("/proc/self/fdinfo").is_dir():
        pytest.skip("needs Linux /proc to see how far the append has read")
    batch_file = tmp_path / "big.jsonl"
    write_big_batch(batch_file)
    before = leaves(ledger)
    assert len(before) == 3

    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "--store",
            str(ledger),
            "append",
            str(batch_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # Stopped a third into reading its input, mid-transaction: the batch commits only
    # once it is read whole. (Not once the WAL grew: a batch this size fits the
    # writer's page cache, so the WAL grows only at the commit, and a stop then raced
    # the process's end on a busy machine.) Frozen first, so that it is still reading
    # when the signal comes, however slow this process is to send it.
    whole = batch_file.stat().st_size
    third = whole // 3
    deadline = time.monotonic() + 120
    signalled = False
    try:
        while writer.poll() is None and time.monotonic() < deadline:
            if (_read_position(writer.pid, batch_file.resolve()) or 0) >= third:
                os.kill(writer.pid, signal.SIGSTOP)
                break
            time.sleep(0.002)
        assert writer.poll() is None, (
            "the append ended before it could be killed mid-write",
            writer.returncode,
        )
        position = _read_position(writer.pid, batch_file.resolve())
        assert position is not None
        assert position < whole, "read whole: it may be committing"
        os.kill(writer.pid, stop)
        signalled = True
    finally:
        if not signalled and writer.poll() is None:
            writer.kill()  # a failed check must not leave it frozen, nor wait on it
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer.pid, signal.SIGCONT)  # SIGINT waits for it; SIGKILL does not
        writer.wait(timeout=30)
        assert writer.stderr is not None
        stderr = writer.stderr.read().decode()
        writer.stderr.close()
    if stop == signal.SIGKILL:
        assert writer.returncode == -signal.SIGKILL
    elif stop == signal.SIGTERM:
        # As Ctrl-C, with a shell's status for SIGTERM (du20: it died without a word).
        assert writer.returncode == 143, stderr
        assert stderr == "Terminated before the commit: nothing was appended\n"
    else:
        # Ctrl-C: the transaction is rolled back, and the status is a shell's 130, not
        # the 1 of a data error.
        assert writer.returncode == 130, stderr
        assert stderr == "Interrupted before the commit: nothing was appended\n"

    after = leaves(ledger)
    assert len(after) == len(before)  # stopped before its commit: none of it
    assert after == before

    # The store is intact and usable: reads agree with the log, and the next
    # append continues the sequence without a gap.
    timeline = run(ledger, "timeline", "--nl").stdout.splitlines()
    assert len(timeline) == len(after)
    summary = json.loads(
        run(
            ledger,
            "append",
            "--json",
            "-",
            input=jsonl(ev("account_reinstated", "2021-03-01", account="twitter:before")),
        ).stdout
    )
    assert summary["first_sequence"] == len(after)
    status = json.loads(run(ledger, "status", "twitter:before", "--json").stdout)
    assert status["status"] == "active"
    assert [r["sequence"] for r in leaves(ledger)] == list(range(len(after) + 1))


@pytest.mark.parametrize("table", ["stored_events", "ledger_entries"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET rowid = rowid",
        "DELETE FROM {table}",
        "DELETE FROM {table} WHERE rowid = (SELECT max(rowid) FROM {table})",
    ],
    ids=["update", "delete-all", "delete-last"],
)
def test_event_tables_refuse_update_and_delete(ledger: Path, table: str, statement: str) -> None:
    before = leaves(ledger)
    connection = sqlite3.connect(ledger, isolation_level=None)
    try:
        with pytest.raises(sqlite3.DatabaseError, match=f"{table} is append-only"):
            connection.execute(statement.format(table=table))
    finally:
        connection.close()
    assert leaves(ledger) == before


def test_a_tampered_state_update_is_refused(ledger: Path) -> None:
    connection = sqlite3.connect(ledger, isolation_level=None)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute(
                "UPDATE stored_events SET state = CAST(? AS BLOB) WHERE rowid = 1",
                ('{"forged": true}',),
            )
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute("UPDATE ledger_entries SET event_id = 'forged' WHERE sequence = 0")
    finally:
        connection.close()
    assert leaves(ledger)[0]["event_id"] == "reg-before"


def test_an_interrupt_after_the_commit_says_the_append_is_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the summary is written or the read side catches up: "committed whole
    or not at all" left the user to guess, and to send the batch again."""
    import cli.main
    from tests.conftest import Store
    from tests.ledger_helpers import account, jsonl

    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.main, "_after_append", interrupted)
    result = store.run("append", "-", input=jsonl(account("twitter:late", "2020-01-01")))
    assert result.exit_code == 130, result.output
    assert result.stderr == (
        "Interrupted after the append was committed (1 event(s), sequence 0..0): do not "
        "append them again\n"
    )
    assert store.count() == 1


def test_a_failed_statistics_update_after_the_commit_says_the_append_is_in(
    ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """du20: the statistics update a large batch runs after its commit (ANALYZE; VACUUM
    ANALYZE on PostgreSQL) failing (another writer holding the lock past the busy
    timeout, a lock_timeout, pg_cancel_backend) made the append exit 1 with "gave up
    waiting and wrote nothing" (PostgreSQL: "the write in progress was rolled back
    whole") though the batch was committed."""
    from ledger import application, persistence
    from ledger.persistence import Storage

    monkeypatch.setattr(application, "ANALYZE_AFTER", 1)
    monkeypatch.setattr(persistence, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    analyze = Storage.analyze

    def with_the_lock_held(self: Storage) -> None:
        other = sqlite3.connect(self.path, isolation_level=None)  # type: ignore[attr-defined]
        try:
            other.execute("BEGIN IMMEDIATE")  # another writer, right after the commit
            analyze(self)
        finally:
            other.close()

    monkeypatch.setattr(Storage, "analyze", with_the_lock_held)
    before = len(leaves(ledger))
    batch = jsonl(ev("account_reinstated", "2021-03-01", account="twitter:before"))
    result = CliRunner().invoke(
        cli,
        ["--store", str(ledger), "append", "--json", "-"],
        input=batch,
        env={"ENFORCEMENT_LEDGER_ACTOR": "t"},
    )
    assert len(leaves(ledger)) == before + 1  # committed
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert (summary["appended"], summary["first_sequence"]) == (1, before)
    assert summary["statistics_refreshed"] is False  # said to a JSON reader too (rv35)
    assert "the append is committed" in result.stderr, result.stderr
    assert "statistics" in result.stderr
    assert "wrote nothing" not in result.stderr

    # A copy's statistics update too: it is in, and said so (copying again is refused).
    export = ledger.parent / "export.jsonl"
    export.write_text(run(ledger, "export", "--nl").stdout)
    target = ledger.parent / "copy.db"
    result = CliRunner().invoke(
        cli, ["--store", str(target), "copy", "--export", str(export)], env={}
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "the copy is committed" in result.stderr, result.stderr
    assert len(leaves(target)) == before + 1


def test_a_statistics_update_failing_as_a_damaged_store_says_to_verify_it(
    ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv35: a statistics update that failed reading a damaged page (SQLITE_CORRUPT;
    XX001 on PostgreSQL) was told as "queries may plan slowly"."""
    from ledger import application
    from ledger.persistence import Storage

    def damaged(self: Storage) -> None:
        error = sqlite3.DatabaseError("database disk image is malformed")
        error.sqlite_errorcode = 11  # SQLITE_CORRUPT
        raise error

    monkeypatch.setattr(application, "ANALYZE_AFTER", 1)
    monkeypatch.setattr(Storage, "analyze", damaged)
    result = CliRunner().invoke(
        cli,
        ["--store", str(ledger), "append", "-"],
        input=jsonl(ev("account_reinstated", "2021-03-01", account="twitter:before")),
        env={"ENFORCEMENT_LEDGER_ACTOR": "t"},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "the append is committed" in result.stderr, result.stderr
    assert "verify --read-models" in result.stderr
    assert "plan slowly" not in result.stderr


def test_a_postgres_statistics_update_tries_every_table_and_names_those_it_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rv35: VACUUM (ANALYZE) stopped at the first table it could not lock, leaving
    every later table without statistics and the warning naming none of them."""
    import uuid

    import psycopg

    from ledger.location import StoreLocation
    from ledger.persistence import StatisticsNotRefreshed, open_storage
    from tests.conftest import PG_URL, drop_schema, require_postgres

    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{PG_URL}?schema={schema}"
    try:
        assert CliRunner().invoke(cli, ["--store", url, "init"]).exit_code == 0
        storage = open_storage(StoreLocation.parse(url))
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                    (schema,),
                )
            ]
            first, later = tables[0], tables[1:]
            conn.execute("BEGIN")
            conn.execute(f'LOCK TABLE "{schema}"."{first}" IN SHARE UPDATE EXCLUSIVE MODE')
            monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=200")
            try:
                with pytest.raises(StatisticsNotRefreshed) as raised:
                    storage.analyze()
            finally:
                monkeypatch.delenv("PGOPTIONS")
                conn.execute("ROLLBACK")
                storage.close()
            assert raised.value.tables == [first]
            assert f"not refreshed: {first}" in str(raised.value)

            def analyzed() -> set[str]:
                return {
                    row[0]
                    for row in conn.execute(
                        "SELECT relname FROM pg_stat_user_tables "
                        "WHERE schemaname = %s AND last_vacuum IS NOT NULL",
                        (schema,),
                    )
                }

            # A session's statistics reach the views when it ends, a moment after close.
            deadline = time.monotonic() + 10
            while analyzed() != set(later) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert analyzed() == set(later)
    finally:
        drop_schema(schema)
