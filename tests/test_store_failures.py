"""When the disk, not the command, fails: a full disk and a damaged store file are
errors that say what happened and what to do (exit 1), not internal failures, and a
full disk loses no committed event and keeps none of the failed batch."""

from __future__ import annotations

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

from bench.generate import generate
from tests.conftest import PG_URL, Store
from tests.ledger_helpers import CLI, REPO, SEED_EVENTS, account, jsonl
from tests.ledger_helpers import cli_process as _cli

SEED = REPO / "ledger" / "data" / "seed.jsonl"


def _generated(tmp_path: Path, events: int) -> Path:
    path = tmp_path / f"generated-{events}.jsonl"
    with path.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "bench.generate", "--events", str(events), "--seed", "3"],
            cwd=REPO,
            stdout=out,
            check=True,
        )
    return path


def _on_a_small_disk(tmp_path: Path, cli_args: str, script: str) -> tuple[Path, Path]:
    """Run ``script`` (its ``{cli}`` the CLI with ``cli_args``, its ``{disk}`` a small
    tmpfs it mounts, its ``{out}`` a directory for results) in a private mount
    namespace; returns (disk, out). Skips where that is not possible."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small filesystem in a private mount namespace")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    cli = tmp_path / "enforcement-ledger"
    cli.write_text(
        f"#!/bin/sh\ncd {REPO} && ENFORCEMENT_LEDGER_ACTOR=tester exec {sys.executable} -c "
        f"'from cli.main import main; main()' {cli_args.format(disk=disk)} \"$@\"\n"
    )
    cli.chmod(0o755)
    run = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c", script.format(cli=cli, disk=disk, out=out)],
        capture_output=True,
    )
    if run.returncode == 99:
        pytest.skip("no private mount namespace here: cannot make a small filesystem")
    assert run.returncode == 0, run.stderr
    return disk, out


def _cli_limited(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a process that may write files of at most ``limit`` bytes (`ulimit
    -f`, systemd's LimitFSIZE), set in the child before it runs."""
    import resource

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return subprocess.run(
        [*CLI, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "ENFORCEMENT_LEDGER_ACTOR": "tester"},
        preexec_fn=limited,
        timeout=120,
    )


def test_a_piped_input_that_cannot_be_held_on_disk_says_nothing_was_appended(
    tmp_path: Path,
) -> None:
    """rv28: past 16 MiB a pipe's input is spooled to a temporary file; a write there
    that failed was told as "cannot write to standard output", exit 74, which says an
    append is committed: a script would not send the lost batch again."""
    import resource

    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    limit = 4 * 1024 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    result = subprocess.run(
        [*CLI, "--store", store, "append", "-"],
        cwd=REPO,
        input=b"a" * (17 * 1024 * 1024),
        capture_output=True,
        env={**os.environ, "ENFORCEMENT_LEDGER_ACTOR": "tester", "TMPDIR": str(tmp_path)},
        preexec_fn=limited,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.decode() == (
        f"Error: cannot hold the input in a temporary file in {tmp_path} (File too large); "
        "nothing was appended: give a file rather than a pipe, or set TMPDIR to a directory "
        "with room\n"
    )
    # rv29: the input's last few bytes, read alone, wait in the file's buffer and fail
    # only as it is flushed (they were told as output that failed, exit 74).
    limit = 20 * 1024 * 1024  # past the 16 MiB held in memory
    writer = subprocess.Popen(
        [*CLI, "--store", store, "append", "-"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "ENFORCEMENT_LEDGER_ACTOR": "tester", "TMPDIR": str(tmp_path)},
        preexec_fn=limited,
    )
    assert writer.stdin is not None
    writer.stdin.write(b"a" * limit)
    writer.stdin.flush()
    time.sleep(1)  # read apart from the rest
    _, err = writer.communicate(b"tail\n", timeout=120)
    assert writer.returncode == 1, err
    assert b"nothing was appended" in err, err
    assert b"Exception ignored" not in err, err


def test_a_full_disk_keeps_what_was_committed_and_none_of_the_batch(tmp_path: Path) -> None:
    """On a 700 KiB filesystem: the seed fits, 3,000 more events do not."""
    batch = _generated(tmp_path, 3_000)
    script = f"""
        mount -t tmpfs -o size=700k tmpfs {{disk}} || exit 99
        {{cli}} init > /dev/null && {{cli}} append {SEED} > /dev/null || exit 98
        {{cli}} append {batch} 2> {{out}}/full.err; echo $? > {{out}}/full.rc
        {{cli}} export --nl > {{out}}/after-full.nl
        {{cli}} verify > {{out}}/after-full.verify 2>&1
        mount -o remount,size=20m {{disk}}
        {{cli}} append {batch} > {{out}}/freed.out 2>&1; echo $? > {{out}}/freed.rc
        {{cli}} verify > {{out}}/after-freed.verify 2>&1
    """
    disk, out = _on_a_small_disk(tmp_path, "--store {disk}/ledger.db", script)
    assert (out / "full.rc").read_text() == "1\n"
    assert (out / "full.err").read_text() == (
        f"Error: the disk holding {disk}/ledger.db is full (database or disk is full): the "
        "write in progress was rolled back whole (events are appended all or nothing, and "
        "what earlier commands wrote is intact); free space and run the command again\n"
    )
    assert (out / "after-full.nl").read_text().count("\n") == SEED_EVENTS
    assert f"OK size {SEED_EVENTS} " in (out / "after-full.verify").read_text()
    assert (out / "freed.rc").read_text() == "0\n", (out / "freed.out").read_text()
    assert f"OK size {SEED_EVENTS + 3000} " in (out / "after-freed.verify").read_text()


def test_a_file_size_limit_is_named_and_the_store_not_called_damaged(tmp_path: Path) -> None:
    """`ulimit -f` (systemd's LimitFSIZE): SQLite reports EFBIG as an I/O error, which
    was told as a damaged store to be restored from a backup (losing what came since)."""

    batch = _generated(tmp_path, 300)
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    limit = 300 * 1024
    appending = _cli_limited(limit, "--store", store, "append", str(batch))
    assert appending.returncode == 1, appending.stderr
    assert appending.stderr == (
        f"Error: a write to {store} failed (disk I/O error, SQLITE_IOERR_WRITE); this process "
        f"may write files of at most {limit:,} bytes (`ulimit -f`, LimitFSIZE), the likely "
        "cause: the write in progress was rolled back whole, and what earlier commands wrote "
        "is intact (`enforcement-ledger verify --read-models` checks it); run the command "
        "again once the cause is fixed\n"
    )
    verified = _cli("--store", store, "verify", "--read-models")
    assert verified.returncode == 0, verified.stderr
    assert "OK size 0 " in verified.stdout
    assert _cli("--store", store, "append", str(batch)).returncode == 0


def test_init_on_a_full_disk_says_so_and_the_next_init_makes_the_ledger(tmp_path: Path) -> None:
    """Probe: `init` with room for the file's header but not for SQLite's -shm index
    beside it (SQLITE_IOERR_SHMSIZE) called the new store "damaged or unreadable" to
    be restored from a backup. It leaves a file holding no ledger: the commands after
    say to run init, which makes the ledger once there is room."""
    script = """
        mount -t tmpfs -o size=128k tmpfs {disk} || exit 99
        dd if=/dev/zero of={disk}/fill bs=1k count=100 2> /dev/null
        {cli} init 2> {out}/init.err; echo $? > {out}/init.rc
        rm {disk}/fill
        {cli} status twitter:a 2> {out}/status.err
        mount -o remount,size=20m {disk}
        {cli} init > {out}/again.out 2>&1; echo $? > {out}/again.rc
        {cli} verify > {out}/verify.out 2>&1
    """
    disk, out = _on_a_small_disk(tmp_path, "--store {disk}/ledger.db", script)
    assert (out / "init.rc").read_text() == "1\n"
    said = (out / "init.err").read_text()
    assert said.startswith(f"Error: the disk holding {disk}/ledger.db is full ("), said
    assert said.endswith("free space and run the command again\n"), said
    assert (out / "status.err").read_text() == (
        f"Error: {disk}/ledger.db is not an enforcement ledger; run `init` first\n"
    )
    assert (out / "again.rc").read_text() == "0\n", (out / "again.out").read_text()
    assert "OK size 0 " in (out / "verify.out").read_text()


@pytest.mark.parametrize("leftover", ["as init left it", "an empty file"])
def test_init_past_a_file_size_limit_names_it_and_leaves_a_file_init_can_use(
    tmp_path: Path, leftover: str
) -> None:
    """SQLite reports a -shm index it cannot grow (EFBIG, SQLITE_IOERR_SHMSIZE) as an
    I/O error, which was told as a damaged store to restore from a backup. What init
    left, or an empty file (an init killed at once), is no ledger, and is said to be
    so by the commands that read or append; init makes the ledger in it."""

    store = tmp_path / "ledger.db"
    limit = 8192
    initialising = _cli_limited(limit, "--store", str(store), "init")
    assert (initialising.returncode, initialising.stderr) == (
        1,
        f"Error: a write to {store} failed (disk I/O error, SQLITE_IOERR_SHMSIZE); this "
        f"process may write files of at most {limit:,} bytes (`ulimit -f`, LimitFSIZE), the "
        "likely cause: the write in progress was rolled back whole, and what earlier "
        "commands wrote is intact (`enforcement-ledger verify --read-models` checks it); "
        "run the command again once the cause is fixed\n",
    )
    if leftover == "an empty file":
        for beside in tmp_path.glob("ledger.db-*"):
            beside.unlink()
        store.write_bytes(b"")
    for command in (("status", "twitter:a"), ("verify",), ("append", str(SEED))):
        result = _cli("--store", str(store), *command)
        assert (result.returncode, result.stderr) == (
            1,
            f"Error: {store} is not an enforcement ledger; run `init` first\n",
        ), command
    assert _cli("--store", str(store), "init").returncode == 0
    assert _cli("--store", str(store), "append", str(SEED)).returncode == 0
    assert f"OK size {SEED_EVENTS} " in _cli("--store", str(store), "verify").stdout


def test_reading_from_a_full_disk_says_the_disk_is_full_not_that_the_store_is_bad(
    tmp_path: Path,
) -> None:
    """Opening writes beside the file (its -shm index): on a full disk every read
    said "not a usable SQLite ledger", which sends an operator to their backups."""
    script = f"""
        mount -t tmpfs -o size=700k tmpfs {{disk}} || exit 99
        {{cli}} init > /dev/null && {{cli}} append {SEED} > /dev/null || exit 98
        dd if=/dev/zero of={{disk}}/fill bs=1k count=2000 2> /dev/null
        {{cli}} status twitter:khamenei_ir 2> {{out}}/status.err; echo $? > {{out}}/status.rc
        rm {{disk}}/fill
        {{cli}} verify > {{out}}/freed.verify 2>&1
    """
    disk, out = _on_a_small_disk(tmp_path, "--store {disk}/ledger.db", script)
    assert (out / "status.rc").read_text() == "1\n"
    message = (out / "status.err").read_text()
    assert message.startswith(f"Error: cannot open {disk}/ledger.db: the disk holding it is full")
    assert message.endswith("nothing was changed: free space and run the command again\n")
    assert f"OK size {SEED_EVENTS} " in (out / "freed.verify").read_text()


def _store_with_a_garbled_root_page(tmp_path: Path, table_or_index: str) -> Path:
    """A store of 2,000 events whose table's or index's root page header is garbled."""
    store = tmp_path / "ledger.db"
    assert _cli("--store", str(store), "init").returncode == 0
    assert _cli("--store", str(store), "append", str(_generated(tmp_path, 2_000))).returncode == 0
    with sqlite3.connect(store) as db:
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table_or_index,)
        ).fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    with store.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * 12)
    return store


def test_a_damaged_store_file_is_named_as_such(tmp_path: Path) -> None:
    store = _store_with_a_garbled_root_page(tmp_path, "stored_events")
    for args in (["verify"], ["export", "--nl"], ["replay"]):
        result = _cli("--store", str(store), *args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.endswith(
            f"Error: {store} is damaged or unreadable (database disk image is malformed): the "
            "disk failed, or the store was changed outside the ledger. Restore it from a copy "
            "or a backup and check that with `enforcement-ledger verify --read-models`\n"
        ), (args, result.stderr)


def test_a_damaged_index_page_fails_verify_read_models_as_it_fails_appends(
    tmp_path: Path,
) -> None:
    """verify reads the tables in rowid order and never met a garbled index page,
    which every append then failed on, pointing to verify: OK."""
    store = _store_with_a_garbled_root_page(tmp_path, "ledger_entries_lane")
    result = _cli("--store", str(store), "verify", "--read-models")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("Error: the store's file is damaged ("), result.stderr
    assert result.stderr.endswith(
        "the disk failed, or it was written outside the database engine. Restore it from "
        "a copy or a backup and check that with `enforcement-ledger verify --read-models`\n"
    )


@pytest.mark.parametrize("args", [["export", "--nl"], ["timeline", "--csv"], ["accounts"]])
def test_output_to_a_full_disk_is_an_error_saying_so(tmp_path: Path, args: list[str]) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    assert _cli("--store", store, "append", str(SEED)).returncode == 0
    result = _output_to_a_full_disk("--store", store, *args)
    assert result.returncode == 74  # sysexits' EX_IOERR: not 1, a refusal
    assert result.stderr == "Error: cannot write to standard output: No space left on device\n"


def _output_to_a_full_disk(*args: str) -> subprocess.CompletedProcess[str]:
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [*CLI, *args],
            cwd=REPO,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )


def test_an_append_whose_summary_cannot_be_written_says_it_is_committed(
    tmp_path: Path,
) -> None:
    """Exit 1 and "cannot write to standard output" alone read as a refusal: a script
    sent the batch again, and events without an event_id were recorded twice."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    for args in (["append", "--json", str(SEED)], ["record", "subject-registered",
                 "--subject", "s", "--name", "S", "--kind", "person",
                 "--occurred-at", "2020-01-01", "--source", "https://example.org"]):  # fmt: skip
        result = _output_to_a_full_disk("--store", store, *args)
        assert result.returncode == 74  # not 1: a script retrying on a refusal sends it again
        note, error = result.stderr.splitlines()
        assert note.startswith("note: appended "), note
        assert note.endswith(
            ": committed, but this summary could not be written to standard output; do not "
            "append them again"
        )
        assert error == "Error: cannot write to standard output: No space left on device"
    assert _cli("--store", store, "export", "--nl").stdout.count("\n") == 20


def test_a_dry_run_whose_summary_cannot_be_written_says_nothing_was_appended(
    tmp_path: Path,
) -> None:
    """Exit 74 reads as "committed, do not send it again" (README): a dry run said only
    "cannot write to standard output", and nothing of what it had (not) done."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    for args in (["append", "--dry-run", str(SEED)], ["append", "--dry-run", "--json", str(SEED)],
                 ["record", "subject-registered", "--dry-run", "--subject", "s", "--name", "S",
                  "--kind", "person", "--occurred-at", "2020-01-01",
                  "--source", "https://example.org"]):  # fmt: skip
        result = _output_to_a_full_disk("--store", store, *args)
        assert result.returncode == 74, result.stderr  # as any output that failed
        note, error = result.stderr.splitlines()
        assert note == (
            "note: dry run: every check passed and nothing was appended, but this summary "
            "could not be written to standard output"
        )
        assert error == "Error: cannot write to standard output: No space left on device"
    assert _cli("--store", store, "export", "--nl").stdout == ""


def test_a_resent_batch_whose_summary_cannot_be_written_says_nothing_new_was_appended(
    tmp_path: Path,
) -> None:
    """Every event already in: exit 74 (the output failed), and stderr says nothing new
    went in, where the bare error read as README's "committed" of an append."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    assert _cli("--store", store, "append", str(SEED)).returncode == 0
    before = _cli("--store", store, "export", "--nl").stdout
    lines = SEED.read_text().splitlines()
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text("\n".join([*lines, *lines[:3]]) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for given, what in (
        (SEED, f"nothing new was appended ({len(lines)} already recorded event(s))"),
        (
            repeated,
            f"nothing new was appended ({len(lines)} already recorded event(s), "
            "3 repeated line(s))",
        ),
        (empty, "nothing to append"),
    ):
        result = _output_to_a_full_disk("--store", store, "append", str(given))
        assert result.returncode == 74, result.stderr
        note, error = result.stderr.splitlines()
        assert note == f"note: {what}, but this summary could not be written to standard output"
        assert error == "Error: cannot write to standard output: No space left on device"
    assert _cli("--store", store, "export", "--nl").stdout == before


@pytest.mark.parametrize("args", [["export", "--nl"], ["timeline", "--csv"], ["timeline"]])
def test_output_whose_reader_stops_ends_quietly_with_the_sigpipe_status(
    tmp_path: Path, args: list[str]
) -> None:
    """`… | head`: the reader went away. Not exit 1 with nothing said (click's own
    handling), which a script would take for a data error: 141, as a shell reports a
    Unix tool ended by SIGPIPE, and nothing on stderr."""
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    assert _cli("--store", store, "append", str(_generated(tmp_path, 3_000))).returncode == 0
    reading = subprocess.Popen(
        [*CLI, "--store", store, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reading.stdout is not None
    assert reading.stderr is not None
    assert reading.stdout.readline()  # the reader takes a line, then stops reading
    reading.stdout.close()
    with reading.stderr:
        stderr = reading.stderr.read()
    assert reading.wait(timeout=120) == 141, stderr
    assert stderr == b""


@pytest.mark.parametrize("encoding", ["ascii", "cp1252", "iso8859-15", "koi8-r"])
def test_text_the_output_encoding_cannot_hold_is_an_error_saying_so(
    tmp_path: Path, encoding: str
) -> None:
    # cp1252 (Windows' redirected output) names itself 'charmap' in the error: exit 70.
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    assert _cli("--store", store, "append", str(SEED)).returncode == 0
    persian = jsonl(
        {"type": "subject_registered", "subject": "fa", "name": "علی خامنه‌ای", "kind": "person",
         "occurred_at": "2024-01-01", "source": "s"}
    )  # fmt: skip
    assert subprocess.run([*CLI, "--store", store, "append", "-"], input=persian, text=True,
                          cwd=REPO, capture_output=True).returncode == 0  # fmt: skip
    result = subprocess.run(
        [*CLI, "--store", store, "timeline", "--nl"],
        cwd=REPO,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": encoding},
        timeout=120,
    )  # bytes: the lines before the one it cannot hold are in that encoding
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, stderr
    assert stderr.startswith(f"Error: standard output takes {encoding} only, which cannot hold"), (
        stderr
    )
    assert stderr.endswith(
        "set PYTHONIOENCODING=utf-8 (or use a UTF-8 terminal) and run it again\n"
    )


def _cut_off(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], bool]:
    """Run the CLI and have the server end its session while it works (as a restart
    or an admin's pg_terminate_backend would); returns the process and whether its
    session was ended before the command finished."""
    import psycopg

    name = f"el-cut-{tmp_path.name}"[:60]
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGAPPNAME": name},  # libpq names the session
    )
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        # Until the command ends: on a loaded machine it spends most of its time in
        # Python between statements, its session idle inside its transaction.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            row = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND state IN ('active', 'idle in transaction')",
                (name,),
            ).fetchone()
            if row is not None and row[0]:
                return process, True
            time.sleep(0.02)
    return process, False


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_lost_server_connection_says_so_and_commits_nothing(
    bare_store: Store, tmp_path: Path
) -> None:
    """The server ends the session mid-append (a restart, an admin's
    pg_terminate_backend): an error saying so, exit 1, and the batch is not in; cut off
    before its commit began, it says so (du20: it said the batch "may have committed")."""

    assert _cli("--store", bare_store.url, "init").returncode == 0
    batch = _generated(tmp_path, 30_000)
    appending, terminated = _cut_off(tmp_path, "--store", bare_store.url, "append", str(batch))
    out, err = appending.communicate(timeout=120)
    assert terminated, (out, err)
    assert appending.returncode == 1, (out, err)
    assert err.startswith(f"Error: lost the connection to {bare_store.url.split('://')[0]}"), err
    assert "before the append began to commit: nothing was appended; run it again" in err
    assert _cli("--store", bare_store.url, "export", "--nl").stdout == ""  # all or nothing


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_connection_lost_after_the_commit_is_said_after_it_plainly(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv35: a connection lost after the append committed (in the checks that follow
    it) said "the append above is committed …: what failed after it: … one cut off
    while committing may have committed", doubting what it had just said."""
    import psycopg

    from cli.main import Session

    def cut_off(self: Session, result: Any) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Session, "warn_after_append", cut_off)
    result = store.run("append", "-", input=jsonl(account("twitter:a", "2020-01-01")))
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr == (
        "Error: the append above is committed (1 event(s), sequence 0..0): do not append "
        f"it again; what failed after it: lost the connection to {store.url} (server "
        "closed the connection unexpectedly)\n"
    ), result.stderr
    assert store.count() == 1


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_sigterm_mid_append_rolls_back_says_so_and_leaves_no_statement_running(
    bare_store: Store, tmp_path: Path
) -> None:
    """du20: `kill` of an append ended it without a word (status -15), its PostgreSQL
    session left to the server to notice. Now it is abandoned as Ctrl-C is."""
    import psycopg

    assert _cli("--store", bare_store.url, "init").returncode == 0
    batch = _generated(tmp_path, 30_000)
    name = f"el-term-{tmp_path.name}"[:60]
    appending = subprocess.Popen(
        [*CLI, "--store", bare_store.url, "append", str(batch)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGAPPNAME": name},
    )
    sessions = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND state IN ('active', 'idle in transaction')"
    )
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and appending.poll() is None:
            if admin.execute(sessions, (name,)).fetchone() != (0,):
                break
            time.sleep(0.02)
        appending.send_signal(signal.SIGTERM)
        out, err = appending.communicate(timeout=60)
        assert appending.returncode == 143, (out, err)
        assert err == "Terminated before the commit: nothing was appended\n"
        # Its statement cancelled, its transaction ended (a closed session's backend
        # leaves the view a moment after the process has gone).
        deadline = time.monotonic() + 10
        while admin.execute(sessions, (name,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the append's session is still at work"
            time.sleep(0.05)
    assert _cli("--store", bare_store.url, "export", "--nl").stdout == ""


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_ctrl_c_while_a_statement_runs_is_an_interrupt_not_a_lost_connection(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C can land inside psycopg while the server still runs a statement (psycopg
    leaves it running): the ROLLBACK sent then failed with "another command is already
    in progress", told as a lost connection that "may have committed", exit 1."""
    import psycopg

    from ledger import persistence
    from ledger.postgres import PostgresStorage

    store.append(account("twitter:a", "2020-01-01"))
    lock_log = PostgresStorage.lock_log
    sleep = f"SELECT pg_sleep(60) -- {store.url}"

    def interrupted_mid_statement(self: PostgresStorage, db: persistence.Database) -> None:
        lock_log(self, db)
        db.raw.pgconn.send_query(sleep.encode())  # running, its result unread
        raise KeyboardInterrupt

    monkeypatch.setattr(PostgresStorage, "lock_log", interrupted_mid_statement)
    result = store.run("append", "-", input=jsonl(account("twitter:b", "2020-01-01")))
    assert result.exit_code == 130, result.output
    assert result.stderr == "Interrupted before the commit: nothing was appended\n"
    monkeypatch.undo()
    # Nothing committed, and the statement was cancelled, not left holding the log's lock.
    monkeypatch.setattr(persistence, "WRITE_LOCK_WAIT_S", 5)
    assert store.count() == 1
    store.append(account("twitter:c", "2020-01-01"))
    with psycopg.connect(PG_URL) as admin:
        running = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s AND state = 'active'",
            (sleep,),
        ).fetchone()
    assert running == (0,)


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_store_locked_too_long_gives_up_cleanly(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer waits for another's lock (a long append, a replay) up to the busy
    timeout, then gives up with an error saying so and nothing written."""
    from ledger import persistence

    monkeypatch.setattr(persistence, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    store.append(account("twitter:a", "2020-01-01"))
    holder = sqlite3.connect(store.url, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
        result = store.fail("append", "-", input=jsonl(account("twitter:b", "2020-01-01")))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.stderr == (
        f"Error: another process kept {store.url} locked for 0.2 s (database is locked), so "
        "this command gave up waiting and wrote nothing; run it again once that process (a "
        "long append or a replay) is done\n"
    )
    assert store.count() == 1


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_postgres_write_lock_held_too_long_gives_up_cleanly(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any session may take the log's advisory lock (a reader's psql, a stuck writer):
    an append waited for it in silence, for ever."""
    import psycopg

    from ledger import persistence
    from ledger.location import StoreLocation

    monkeypatch.setattr(persistence, "WRITE_LOCK_WAIT_S", 0.3)
    store.append(account("twitter:a", "2020-01-01"))
    schema = StoreLocation.parse(store.url).schema
    with psycopg.connect(PG_URL, autocommit=True) as holder:
        holder.execute(f'SET search_path TO "{schema}"')
        holder.execute("SELECT pg_advisory_lock(hashtext(current_schema() || ':ledger-log'))")
        result = store.fail("append", "-", input=jsonl(account("twitter:b", "2020-01-01")))
    assert result.stderr.startswith(f"Error: another process kept {store.url} locked for 0.3 s")
    assert "gave up waiting and wrote nothing" in result.stderr
    assert store.count() == 1
    # The limit is for that wait only: a replay's TRUNCATE, say, waits for readers.
    storage = persistence.open_storage(StoreLocation.parse(store.url))
    with storage.connect() as db:
        with db.transaction(lock="ledger-log"):
            assert db.one("SHOW lock_timeout")[0] == "0"
        with db.session_lock("ledger-projection"):
            assert db.one("SHOW lock_timeout")[0] == "0"


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_lock_timeout_set_for_the_role_is_named_not_the_ledgers_own_wait(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lock timeout was told as the ledger's own 120 s wait for "a long append or
    a replay", and to readers as having "wrote nothing"."""
    import psycopg

    from ledger.location import StoreLocation

    store.append(account("twitter:a", "2020-01-01"))
    schema = StoreLocation.parse(store.url).schema
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=300ms")
    with psycopg.connect(PG_URL) as holder:  # a transaction, holding its lock till the end
        holder.execute(f'SET search_path TO "{schema}"')
        holder.execute("LOCK TABLE ledger_entries, timeline IN ACCESS EXCLUSIVE MODE")
        append = store.fail("append", "-", input=jsonl(account("twitter:b", "2020-01-01")))
        timeline = store.fail("timeline")
        holder.rollback()
    said = (
        f"Error: another session held a lock on {store.url} that this command needed for "
        "longer than the lock_timeout (300ms) set for this role or database (or in PGOPTIONS) "
        "allows (canceling statement due to lock timeout), so the server cancelled the wait"
    )
    assert append.stderr == (
        f"{said}; the write in progress was rolled back whole. Run it again once that "
        "session is done, or raise the limit for this role (ALTER ROLE … SET lock_timeout)\n"
    ), append.stderr
    assert timeline.stderr == (
        f"{said}. Run it again once that session is done, or raise the limit for this role "
        "(ALTER ROLE … SET lock_timeout)\n"
    ), timeline.stderr
    monkeypatch.delenv("PGOPTIONS")
    assert store.count() == 1


# --- a replay that others read through, or that dies -------------------------------


def _replayable(tmp_path: Path, events: int) -> str:
    url = str(tmp_path / "ledger.db")
    assert _cli("--store", url, "init").returncode == 0
    loaded = _cli("--store", url, "append", str(_generated(tmp_path, events)))
    assert loaded.returncode == 0, loaded.stderr
    return url


def _accounts(url: str) -> subprocess.CompletedProcess[str]:
    """Every account's status at one fixed instant (rows name it): answers compare."""
    return _cli("--store", url, "accounts", "--nl", "--as-of", FIXED, "--known-at", FIXED)


FIXED = "2030-01-01T00:00:00Z"


def _indexes(url: str) -> set[str]:
    with sqlite3.connect(url) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {name for (name,) in rows if name.startswith("timeline_")}


def test_readers_during_a_sqlite_replay_answer_from_the_read_models_as_they_were(
    tmp_path: Path,
) -> None:
    # The replay dropped the indexes and committed chunk by chunk: a reader between
    # chunks failed with exit 70 ("no such index"), or caught up part of the log itself.
    url = _replayable(tmp_path, 30_000)
    expected = _accounts(url).stdout
    indexes = _indexes(url)
    replay = subprocess.Popen([*CLI, "--store", url, "replay"], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    answers: list[subprocess.CompletedProcess[str]] = []
    while replay.poll() is None or not answers:
        answers.append(_accounts(url))
    out, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    assert out == "Rebuilt projections from 30000 event(s)\n"
    for answer in answers:
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout == expected
    assert _indexes(url) == indexes


@pytest.mark.parametrize("after", [0.25, 0.4, 0.6])
def test_a_sqlite_replay_killed_leaves_the_read_models_as_they_were(
    tmp_path: Path, after: float
) -> None:
    # Killed after dropping the indexes, every status query failed with exit 70 until
    # the next replay, and `verify --read-models` said OK.
    url = _replayable(tmp_path, 30_000)
    expected = _accounts(url).stdout
    indexes = _indexes(url)
    replay = subprocess.Popen([*CLI, "--store", url, "replay"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(after)
    replay.kill()
    replay.wait(timeout=60)
    assert _indexes(url) == indexes
    answer = _accounts(url)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout == expected
    verified = _cli("--store", url, "verify", "--read-models")
    assert verified.returncode == 0, verified.stderr


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_replay_that_loses_its_connection_says_to_run_it_again(
    bare_store: Store, tmp_path: Path
) -> None:
    # Not the append's advice to look for a half-known batch: a replay writes no event.

    assert _cli("--store", bare_store.url, "init").returncode == 0
    loaded = _cli("--store", bare_store.url, "append", str(_generated(tmp_path, 30_000)))
    assert loaded.returncode == 0, loaded.stderr
    replay, terminated = _cut_off(tmp_path, "--store", bare_store.url, "replay", "--silent")
    _, err = replay.communicate(timeout=120)
    if not terminated:
        pytest.skip("the replay ended before its session could be terminated")
    assert replay.returncode == 1, err
    assert err.startswith(f"Error: lost the connection to {bare_store.url.split('://')[0]}"), err
    assert "the replay stopped part way" in err
    assert "recorded-since" not in err


def test_a_replay_past_a_file_size_limit_names_it_and_keeps_the_read_models(
    tmp_path: Path,
) -> None:
    """kl21: SQLite rolls a transaction back itself on such an I/O error; the ROLLBACK
    sent after it failed ("no transaction is active") in its place: exit 70."""

    batch = _generated(tmp_path, 3000)
    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    assert _cli("--store", store, "append", str(batch)).returncode == 0
    limit = 100 * 1024  # below what the rebuild writes to the write-ahead log
    replaying = _cli_limited(limit, "--store", store, "replay")
    assert replaying.returncode == 1, replaying.stderr
    assert replaying.stderr.startswith(f"Error: a write to {store} failed (disk I/O error, ")
    assert f"may write files of at most {limit:,} bytes (`ulimit -f`" in replaying.stderr
    verified = _cli("--store", store, "verify", "--read-models")
    assert verified.returncode == 0, verified.stderr
    assert "read models match the log (3000 event(s))" in verified.stdout


def test_keygen_removes_the_partial_key_file_a_killed_keygen_left(tmp_path: Path) -> None:
    """A keygen killed while writing its key left `.NAME.PID.partial` (a secret key)
    that nothing removed; one of a live process is not touched."""
    store = tmp_path / "ledger.db"
    key = tmp_path / "k.key"
    assert _cli("--store", str(store), "init").returncode == 0
    dead = tmp_path / ".k.key.999999999.partial"  # above any pid_max: no such process
    live = tmp_path / f".k.key.{os.getpid()}.partial"
    for partial in (dead, live):
        partial.write_text("secret\n")
    made = _cli("--store", str(store), "--key-file", str(key), "keygen")
    assert made.returncode == 0, made.stderr
    assert key.exists()
    assert not dead.exists()
    assert live.exists()


def test_keygen_on_a_full_disk_leaves_no_key_file_behind(tmp_path: Path) -> None:
    # It left an empty key file: keygen then refused to overwrite it, and every
    # append failed with "malformed signer key".
    store = tmp_path / "ledger.db"
    assert _cli("--store", str(store), "init").returncode == 0
    script = f"""
        mount -t tmpfs -o size=64k tmpfs {{disk}} || exit 99
        dd if=/dev/zero of={{disk}}/filler bs=4k 2> /dev/null
        {{cli}} keygen > /dev/null 2> {{out}}/full.err; echo $? > {{out}}/full.rc
        ls -A {{disk}} > {{out}}/files
        rm {{disk}}/filler
        {{cli}} keygen > /dev/null 2> {{out}}/freed.err; echo $? > {{out}}/freed.rc
        {{cli}} append {SEED} > {{out}}/append.out 2>&1; echo $? > {{out}}/append.rc
    """
    disk, out = _on_a_small_disk(tmp_path, f"--store {store} --key-file {{disk}}/k.key", script)
    assert (out / "full.rc").read_text() == "1\n"
    assert (out / "full.err").read_text() == (
        f"Error: cannot write signing key {disk}/k.key: No space left on device\n"
    )
    assert (out / "files").read_text() == "filler\n"  # no key file, no partial one
    assert (out / "freed.rc").read_text() == "0\n", (out / "freed.err").read_text()
    assert (out / "append.rc").read_text() == "0\n", (out / "append.out").read_text()


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_session_the_server_makes_read_only_is_named_as_that(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """default_transaction_read_only set for a role (here through PGOPTIONS, as a DBA's
    ALTER ROLE would): an "internal failure" with advice to look for tampering, exit 70."""
    monkeypatch.setenv("PGOPTIONS", "-c default_transaction_read_only=on")
    for args in (("append", "-"), ("replay",)):
        result = store.run(*args, input=jsonl(account("twitter:ro", "2020-01-01")))
        assert result.exit_code == 1, result.output
        assert " is opened read-only for this session (cannot execute " in result.stderr
        assert result.stderr.endswith(
            f"default_transaction_read_only is on for this role or database, and `{args[0]}` "
            "writes; nothing was written. Run it as a role whose sessions may write\n"
        )
    monkeypatch.delenv("PGOPTIONS")
    assert store.count() == 0


def test_whether_a_commit_began_is_unknown_without_the_ledger_that_wrote(tmp_path: Path) -> None:
    """`demo` writes through a session of its own: the command's has no ledger, which
    must not read as "nothing was appended" (rv35: said of demo's committed events)."""
    from cli.main import Session, _commit_begun

    store = str(tmp_path / "l.db")
    assert _commit_begun(None)
    session = Session(store)
    assert _commit_begun(session)  # no ledger opened: not known
    assert _cli("--store", store, "init").returncode == 0
    ledger = session.ledger()
    try:
        assert not _commit_begun(session)  # opened, nothing committed by it yet
        ledger.storage.commits_begun += 1
        assert _commit_begun(session)
    finally:
        ledger.close()


def test_an_append_whose_signing_check_fails_after_its_commit_warns_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Advice after the commit, as the misspelling check is: exit 1 read as "refused"
    to a script that then sent the batch again (rv35: a server gone after the append)."""
    from click.testing import CliRunner

    from cli.main import cli
    from ledger.persistence import Database

    store = str(tmp_path / "l.db")
    assert _cli("--store", store, "init").returncode == 0
    one = Database.one

    def gone(self: Database, statement: str, *args: Any, **kwargs: Any) -> Any:
        if "FROM checkpoints LIMIT 1" in statement:
            raise sqlite3.OperationalError("unable to open database file")
        return one(self, statement, *args, **kwargs)

    monkeypatch.setattr(Database, "one", gone)
    result = CliRunner().invoke(
        cli, ["--store", store, "append", "-"], input="".join(SEED.read_text().splitlines(True)[:3])
    )
    assert result.exit_code == 0, result.output
    assert "warning: could not check whether this log's appends are signed" in result.output
    monkeypatch.undo()
    assert len(_cli("--store", store, "export", "--nl").stdout.splitlines()) == 3


def test_server_limits_on_statements_and_idle_sessions_are_named() -> None:
    """A statement_timeout or idle_in_transaction_session_timeout a DBA set: exit 70
    and "internal failure" before; said what it is, and for a replay that it stopped
    part way."""
    psycopg = pytest.importorskip("psycopg")
    from cli.main import _store_failure

    cancelled = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    said = _store_failure(cancelled, "the store", "timeline")
    assert said is not None
    assert said.startswith(
        "the server cancelled a statement of this command (canceling statement due to "
        "statement timeout): a statement_timeout set for this role or database (or in "
        "PGOPTIONS) is shorter than it needs. Raise it"
    )
    replay = _store_failure(cancelled, "the store", "replay")
    assert replay is not None
    assert ": the replay stopped part way, which may leave the read models" in replay
    append = _store_failure(cancelled, "the store", "append")
    assert append is not None
    assert "; the write in progress was rolled back whole. Raise it" in append
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    for begun, said_of_it in (
        (False, "before the append began to commit: nothing was appended; run it again"),
        (True, "one cut off while committing may have committed: see what the log holds"),
    ):
        said = _store_failure(lost, "the store", "record", commit_begun=begun)
        assert said is not None
        assert said_of_it in said
    asked = psycopg.errors.QueryCanceled("canceling statement due to user request")
    said = _store_failure(asked, "the store", "append")
    assert said == (
        "the server cancelled a statement of this command (canceling statement due to user "
        "request): an administrator or another session asked it to; the write in progress "
        "was rolled back whole"
    )
    idle = psycopg.errors.IdleInTransactionSessionTimeout("terminating connection due to idle")
    said = _store_failure(idle, "the store", "export")
    assert said is not None
    assert "longer than the idle_in_transaction_session_timeout" in said


@pytest.mark.parametrize("store_kind", ["postgres"])
@pytest.mark.parametrize("output", ["--nl", "--json", "--csv"])
def test_a_statement_timeout_that_ends_a_fetch_is_named_not_a_lost_connection(
    store: Store, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement_timeout that fires as a FETCH ends (after its rows, before the
    server is ready again) reaches libpq as two results: the rows, then the error.
    psycopg's named cursor raised "received 2 results from command 'FETCH …'" with no
    SQLSTATE, which export told as a lost connection, "run the command again". The
    race is made certain here: the server's own error is fetched after a FETCH's rows."""
    from psycopg import _cursor_base, generators

    store.append(account("twitter:a", "2020-01-01"), account("twitter:b", "2020-01-01"))
    execute = generators.execute

    def fetch_then_timed_out(pgconn: Any) -> Any:
        results = yield from execute(pgconn)
        if results and results[-1].command_status.startswith(b"FETCH") and results[-1].ntuples:
            pgconn.send_query(b"SET LOCAL statement_timeout = 10; SELECT pg_sleep(5)")
            results = [*results, (yield from execute(pgconn))[-1]]
        return results

    monkeypatch.setattr(generators, "execute", fetch_then_timed_out)
    monkeypatch.setattr(_cursor_base, "execute", fetch_then_timed_out)
    result = store.fail("export", output)
    monkeypatch.undo()
    assert result.stderr.startswith(
        "Error: the server cancelled a statement of this command (canceling statement due "
        "to statement timeout): a statement_timeout set for this role or database (or in "
        "PGOPTIONS) is shorter than it needs. Raise it"
    ), result.stderr


def test_a_read_command_that_waited_too_long_for_the_ledgers_lock_is_not_said_to_write() -> None:
    psycopg = pytest.importorskip("psycopg")
    from cli.main import _store_failure
    from ledger.persistence import OWN_LOCK_WAIT, WRITE_LOCK_WAIT_S

    waited = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    waited.add_note(OWN_LOCK_WAIT)
    said = _store_failure(waited, "the store", "timeline")
    assert said == (
        f"another process kept the store locked for {WRITE_LOCK_WAIT_S:g} s (canceling "
        "statement due to lock timeout), so this command gave up waiting; run it again once "
        "that process (a long append or a replay) is done"
    )
    append = _store_failure(waited, "the store", "append")
    assert append is not None
    assert "gave up waiting and wrote nothing; run it again" in append


def test_a_postgres_stream_inside_a_transaction_closes_its_cursor_when_done() -> None:
    """rv23: a stream's DECLAREd cursor, read to its end inside an outer transaction,
    stayed open (its savepoint released, not rolled back) until that transaction
    ended, holding its snapshot and resources; closed early it goes too."""
    from ledger.location import StoreLocation
    from ledger.postgres import PostgresStorage
    from tests.conftest import require_postgres

    require_postgres()
    with PostgresStorage(StoreLocation.parse(PG_URL)).connect() as db, db.raw.transaction():
        assert list(db.stream("SELECT generate_series(1, 3)")) == [(1,), (2,), (3,)]
        assert db.one("SELECT count(*) FROM pg_cursors")[0] == 0
        rows = db.stream("SELECT generate_series(1, 3)")
        assert next(rows) == (1,)
        assert db.one("SELECT count(*) FROM pg_cursors")[0] == 1
        rows.close()
        assert db.one("SELECT count(*) FROM pg_cursors")[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["status", "twitter:a"],
        ["timeline"],
        ["export"],
        ["counts", "--by", "type"],
        ["accounts"],
        ["verify"],
        ["prove", "inclusion", "0", "--by", "sequence"],
    ],
)
def test_ctrl_c_in_a_command_that_writes_nothing_says_only_that_it_was_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """kl21: every Ctrl-C said "a write in progress was committed whole or not at
    all", a reader left to wonder what status or export had written."""
    from ledger.location import StoreLocation

    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    store.append(account("twitter:a", "2020-01-01"))

    def interrupted(cls: type[StoreLocation], value: str | None) -> StoreLocation:
        raise KeyboardInterrupt

    monkeypatch.setattr(StoreLocation, "parse", classmethod(interrupted))
    result = store.run(*args)
    monkeypatch.undo()
    assert result.exit_code == 130, (result.output, result.exception)
    assert result.stderr == "Interrupted\n"


@pytest.mark.parametrize("command", ["append", "record"])
def test_ctrl_c_in_a_dry_run_says_nothing_was_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """fxpg2: a dry run interrupted said "a write in progress was committed whole or
    not at all", though a dry run commits nothing."""
    from ledger.application import Ledger

    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    store.append(account("twitter:a", "2020-01-01"))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Ledger, "append", interrupted)
    if command == "append":
        result = store.run(
            "append", "--dry-run", "-", input=jsonl(account("twitter:b", "2020-01-02"))
        )
    else:
        result = store.run(
            "record", "followers-observed", "--dry-run", "--account", "twitter:a",
            "--count", "5", "--occurred-at", "2021-01-01", "--source", "s",
        )  # fmt: skip
    monkeypatch.undo()
    assert result.exit_code == 130, (result.output, result.exception)
    assert result.stderr == "Interrupted: a dry run, nothing was appended\n"
    # Not a dry run, stopped before its commit began: nothing was appended either.
    monkeypatch.setattr(Ledger, "append", interrupted)
    result = store.run("append", "-", input=jsonl(account("twitter:b", "2020-01-02")))
    assert result.stderr == "Interrupted before the commit: nothing was appended\n"
    monkeypatch.undo()
    # Committed, stopped while the store's statistics are updated after a large batch
    # (rv32): it is in.
    from ledger import application
    from ledger.persistence import Database, Storage

    monkeypatch.setattr(application, "ANALYZE_AFTER", 1)
    monkeypatch.setattr(Storage, "analyze", interrupted)
    result = store.run("append", "-", input=jsonl(account("twitter:b", "2020-01-02")))
    assert result.stderr == (
        "Interrupted after the append was committed: do not append it again\n"
    ), result.stderr
    assert store.count() == 2
    monkeypatch.undo()
    # A copy into a store of the same origin, stopped there too, says it is the copy.
    source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
    source.ok("init", "--origin", "example.org/source")
    source.append(account("twitter:c", "2020-01-01"))
    target = Store(str(tmp_path / "target.db"), "sqlite", tmp_path)
    target.ok("init", "--origin", "example.org/source")
    monkeypatch.setattr(application, "ANALYZE_AFTER", 1)
    monkeypatch.setattr(Storage, "analyze", interrupted)
    result = target.run("copy", source.url)
    monkeypatch.undo()
    assert result.stderr == "Interrupted after the copy was committed: do not copy it again\n"
    assert target.count() == 1
    # Stopped as it commits: SQLite's COMMIT runs to its end before Python can raise,
    # so whether it was sent tells (du20: a batch that was in got the careful message).
    monkeypatch.setattr(Database, "commit", interrupted)
    result = store.run("append", "-", input=jsonl(account("twitter:c", "2020-01-02")))
    monkeypatch.undo()
    assert result.stderr == "Interrupted before the commit: nothing was appended\n"
    assert store.count() == 2
    result = _interrupted_as_the_commit_returns(store, monkeypatch)
    assert result.stderr == (
        "Interrupted after the append was committed: do not append it again\n"
    ), result.stderr
    assert store.count() == 3


def test_ctrl_c_as_a_sqlite_commit_fails_says_nothing_was_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv36: a COMMIT that fails (an I/O error, a full disk) ends the transaction, as
    SQLite rolls it back, and a Ctrl-C met on the way up found no open transaction and
    said the append was in: "do not append it again" of a batch that was not."""
    import _thread
    import resource

    from ledger.persistence import Database

    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    store.append(account("twitter:a", "2020-01-01"))
    commit = Database.commit

    def fails_as_ctrl_c_comes(self: Database) -> None:
        # Ctrl-C pressed while COMMIT runs in C (sqlite3 calls interrupt_main, which
        # only marks it pending), and no room for the write-ahead log's frames.
        self.raw.set_progress_handler(_thread.interrupt_main, 1)
        limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, limits[1]))
        try:
            commit(self)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)  # the interrupt is raised here
            self.raw.set_progress_handler(None, 1)

    monkeypatch.setattr(Database, "commit", fails_as_ctrl_c_comes)
    result = store.run("append", "-", input=jsonl(account("twitter:b", "2020-01-02")))
    monkeypatch.undo()
    assert result.exit_code == 130, (result.output, result.exception)
    assert store.count() == 1
    assert result.stderr == "Interrupted before the commit: nothing was appended\n", result.stderr


def _interrupted_as_the_commit_returns(store: Store, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An append that a Ctrl-C stops just as its COMMIT returns (every patch undone after)."""
    from ledger.persistence import Database

    commit = Database.commit

    def interrupted_as_it_returns(self: Database) -> None:
        commit(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Database, "commit", interrupted_as_it_returns)
    try:
        return store.run("append", "-", input=jsonl(account("twitter:c", "2020-01-02")))
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_ctrl_c_as_a_postgres_commit_is_sent_says_it_may_be_in(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server may have committed before the client stopped waiting: not known."""
    result = _interrupted_as_the_commit_returns(store, monkeypatch)
    assert result.exit_code == 130, (result.output, result.exception)
    assert result.stderr == (
        "Interrupted: a write in progress was committed whole or not at all\n"
    ), result.stderr


def test_an_exception_a_signal_raises_mid_statement_is_the_one_raised() -> None:
    """Review rv26: follow's SIGTERM raises an Exception of its own; landing while a
    statement ran, the ROLLBACK sent for it failed ("another command is already in
    progress") and that error, read as a lost connection, replaced the stop: follow
    went on. Now the statement is cancelled and the session closed, as for Ctrl-C."""
    import signal

    from ledger.location import StoreLocation
    from ledger.postgres import PostgresStorage
    from tests.conftest import require_postgres

    require_postgres()

    class Stop(Exception):
        pass

    def stop(signum: int, frame: object) -> None:
        raise Stop

    previous = signal.signal(signal.SIGALRM, stop)
    db = PostgresStorage(StoreLocation.parse(PG_URL)).connect()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(Stop), db.transaction():
            db.execute("SELECT pg_sleep(10)")
        assert time.monotonic() - started < 5
        assert db.raw.closed
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        db.close()


def test_a_sort_whose_temporary_database_cannot_grow_names_that_directory(
    tmp_path: Path,
) -> None:
    """rv30: `append --sort` holds the batch in SQLite's temporary database; one that
    could not grow there was told as the store's disk being full."""
    import resource

    store = str(tmp_path / "ledger.db")
    assert _cli("--store", store, "init").returncode == 0
    batch = _generated(tmp_path, 40_000)  # ~13 MB: it spills past SQLite's page cache

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, resource.RLIM_INFINITY))

    env = {k: v for k, v in os.environ.items() if k != "SQLITE_TMPDIR"}
    result = subprocess.run(
        [*CLI, "--store", store, "append", "--sort", str(batch)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**env, "ENFORCEMENT_LEDGER_ACTOR": "tester", "TMPDIR": str(tmp_path)},
        preexec_fn=limited,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(
        f"Error: cannot hold the batch in a temporary database in {tmp_path} ("
    ), result.stderr
    assert "nothing was appended" in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["term", "ctrl-c"])
def test_a_stop_as_the_store_closes_after_the_work_is_said_keeps_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: signal.Signals
) -> None:
    """rv36: SIGTERM as the session closed (a SQLite connection checkpointing the
    append it had committed and reported) was raised outside the group's handling:
    click's "Aborted!", status 1, after a summary saying the batch is in."""
    from cli.main import _raise_terminated
    from ledger.application import Ledger

    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    close = Ledger.close

    def stopped_as_it_closes(self: Ledger) -> None:
        close(self)
        os.kill(os.getpid(), stop)

    previous = signal.signal(signal.SIGTERM, _raise_terminated)  # as main() sets it
    try:
        monkeypatch.setattr(Ledger, "close", stopped_as_it_closes)
        result = store.run("append", "--json", "-", input=jsonl(account("twitter:a", "2020-01-01")))
        monkeypatch.undo()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Aborted" not in result.stderr
    assert json.loads(result.stdout)["appended"] == 1
    assert store.count() == 1


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_an_interrupted_postgres_replay_stops_its_workers(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv36: Ctrl-C or SIGTERM while a PostgreSQL replay's workers projected the log
    stopped the main thread only: it said "Interrupted: the replay stopped part way"
    and the workers went on through every chunk left, the process waiting for them
    at exit with Ctrl-C and SIGTERM ignored."""
    import threading

    from projections import projector

    store.ok("append", "-", input="".join(line + "\n" for line in generate(400, 2)))
    monkeypatch.setattr(projector, "READ_CHUNK", 5)
    monkeypatch.setattr(projector, "SERVER_CHUNK_FACTOR", 1)  # 80 chunks
    interrupted = threading.Event()
    after_it: list[int] = []
    project = projector._project_in_server

    def noted(db: Any, statement: str, after: int, upto: int) -> Any:
        if interrupted.is_set():
            after_it.append(after)
        time.sleep(0.02)
        return project(db, statement, after, upto)

    join = threading.Thread.join

    def interrupted_while_waiting(self: threading.Thread, timeout: float | None = None) -> None:
        if self.name.startswith("Thread") and not interrupted.is_set():
            time.sleep(0.1)
            interrupted.set()
            raise KeyboardInterrupt
        join(self, timeout)

    monkeypatch.setattr(projector, "_project_in_server", noted)
    monkeypatch.setattr(threading.Thread, "join", interrupted_while_waiting)
    result = store.run("replay")
    monkeypatch.setattr(threading.Thread, "join", join)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.name.startswith("Thread"):
            thread.join(timeout=60)
    monkeypatch.undo()
    assert result.exit_code == 130, (result.output, result.exception)
    assert len(after_it) <= projector.PARALLEL_CONNECTIONS, after_it  # those in flight
