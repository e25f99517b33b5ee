"""A SQLite ledger an auditor may read but not write: a copy on read-only media, or in
a directory they have no write permission for. SQLite cannot make its -wal/-shm files
beside it, so the store is opened read-only: every read works, every write is refused
with a clear error, and the file is not changed by a byte.

The directory is made read-only for real: as root (which ignores file modes) by a
read-only bind mount in a private mount namespace, otherwise by file modes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ledger_helpers import REPO, SEED_EVENTS, account, cli_process, jsonl

SEED = REPO / "ledger" / "data" / "seed.jsonl"
AS_OF = ["--as-of", "2024-03-01", "--known-at", "2100-01-01"]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _ok(*args: str) -> subprocess.CompletedProcess[str]:
    result = cli_process(*args)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def _mount_read_only(directory: Path) -> list[str]:
    """The prefix that runs a command with ``directory`` mounted read-only on itself."""
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "--mount", "--", "sh", "-c", script, str(directory)]


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], Run]]:
    """``read_only(directory)`` gives a runner of the CLI that may not write there."""
    made_read_only: list[Path] = []

    def make(directory: Path) -> Run:
        if os.geteuid() == 0:
            probe = subprocess.run(
                [*_mount_read_only(directory), "sh", "-c", f'! touch "{directory}/probe"'],
                capture_output=True,
            )
            if probe.returncode != 0:
                pytest.skip("root without a private mount namespace: no read-only directory")
            prefix = _mount_read_only(directory)
        else:
            for path in directory.iterdir():
                path.chmod(0o444)
            directory.chmod(0o555)
            made_read_only.append(directory)
            prefix = []

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return cli_process(*args, prefix=prefix)

        return run

    yield make
    for directory in made_read_only:
        directory.chmod(0o755)
        for path in directory.iterdir():
            path.chmod(0o644)


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.fixture
def evidence(tmp_path: Path) -> tuple[Path, str]:
    """The seed ledger under a signing key, handed over as a directory of files;
    returns the directory and the verifier key."""
    directory = tmp_path / "evidence"
    directory.mkdir()
    store = str(directory / "ledger.db")
    _ok("--store", store, "init")
    vkey = _ok("--store", store, "keygen").stdout.strip()
    _ok("--store", store, "append", str(SEED))
    (directory / "ledger.db.key").unlink()  # the auditor has the verifier key only
    return directory, vkey


READS = [
    ["verify"],
    ["status", "twitter:khamenei_ir", *AS_OF, "--json"],
    ["accounts", *AS_OF, "--json"],
    ["posts", "twitter:khamenei_ir", *AS_OF, "--json"],
    ["timeline", "--account", "instagram:khamenei_ir", "--known-at", "2100-01-01", "--nl"],
    ["counts", "--by", "platform", "--json"],
    ["export", "--nl"],
    ["prove", "inclusion", "seed-x-post-oct7"],
]


def test_every_read_answers_as_on_a_writable_copy_and_changes_no_byte(
    evidence: tuple[Path, str], read_only: Callable[[Path], Run], tmp_path: Path
) -> None:
    directory, vkey = evidence
    writable = tmp_path / "writable"
    shutil.copytree(directory, writable)
    expected = {}
    for args in READS:
        extra = ["--vkey", vkey] if args == ["verify"] else []
        expected[args[0]] = _ok("--store", str(writable / "ledger.db"), *args, *extra).stdout
    before = _digests(directory)
    run = read_only(directory)
    for args in READS:
        extra = ["--vkey", vkey] if args == ["verify"] else []
        result = run("--store", str(directory / "ledger.db"), *args, *extra)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stdout == expected[args[0]], args
    assert f"OK size {SEED_EVENTS}" in expected["verify"]
    assert _digests(directory) == before


@pytest.mark.parametrize(
    "args",
    [
        ["append", "-"],
        [
            "record",
            "post-published",
            "--account",
            "twitter:khamenei_ir",
            "--post",
            "p2",
            "--occurred-at",
            "2024-03-01",
            "--source",
            "https://example.org",
        ],
        ["replay"],
        ["init"],
    ],
    ids=["append", "record", "replay", "init"],
)
def test_every_write_is_refused_and_nothing_changes(
    evidence: tuple[Path, str], read_only: Callable[[Path], Run], args: list[str]
) -> None:
    directory, _ = evidence
    before = _digests(directory)
    run = read_only(directory)
    store = str(directory / "ledger.db")
    if args[0] == "append":
        args = [*args[:-1], str(directory.parent / "new.jsonl")]
        (directory.parent / "new.jsonl").write_text(jsonl(account("mastodon:new", "2024-01-01")))
    result = run("--store", store, *args)
    if args[0] == "init":  # nothing to write: the ledger is there already
        assert result.returncode == 0, result.stderr
        assert "already exists" in result.stdout
    else:
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert result.stderr == (
            f"Error: {store} is read-only here and `{args[0]}` writes to it; nothing was "
            "written. Reading commands (status, timeline, verify, export, …) work on it\n"
        )
    assert _digests(directory) == before
    assert run("--store", store, "export", "--nl").stdout.count("\n") == SEED_EVENTS


def _write_uncheckpointed(directory: Path) -> None:
    """Leave one appended event in the store's -wal file only, as a copy taken while a
    reader held the log open (or after a crash) has it."""
    store = str(directory / "ledger.db")
    holder = sqlite3.connect(store)
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("SELECT count(*) FROM stored_events").fetchone()
        event = directory.parent / "late.jsonl"
        event.write_text(jsonl(account("mastodon:late", "2024-01-01")))
        _ok("--store", store, "append", str(event))
        assert (directory / "ledger.db-wal").stat().st_size > 0
        copy = directory.parent / f"{directory.name}-copy"
        copy.mkdir()
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
            shutil.copy(directory / name, copy / name)
    finally:
        holder.close()
    shutil.rmtree(directory)
    copy.rename(directory)


def test_a_copy_with_its_write_ahead_log_reads_the_events_only_the_log_holds(
    evidence: tuple[Path, str], read_only: Callable[[Path], Run]
) -> None:
    directory, _ = evidence
    _write_uncheckpointed(directory)
    run = read_only(directory)
    result = run("--store", str(directory / "ledger.db"), "export", "--nl")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == SEED_EVENTS + 1
    assert '"account":"mastodon:late"' in result.stdout


def test_a_write_ahead_log_without_its_index_is_refused_not_read_stale(
    evidence: tuple[Path, str], read_only: Callable[[Path], Run]
) -> None:
    """Without the -shm file SQLite could only read the file as immutable, ignoring
    the -wal file's events: a verify would pass on a shorter log than was handed over."""
    directory, _ = evidence
    _write_uncheckpointed(directory)
    (directory / "ledger.db-shm").unlink()
    run = read_only(directory)
    store = str(directory / "ledger.db")
    result = run("--store", store, "verify")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr == (
        f"Error: {store} is read-only and its write-ahead log ledger.db-wal holds changes not "
        "yet in the file, which cannot be read without writing beside it; copy the file "
        "together with its -wal file to a place you may write\n"
    )


def test_read_models_behind_the_log_are_an_error_naming_what_to_do(
    evidence: tuple[Path, str], read_only: Callable[[Path], Run]
) -> None:
    directory, vkey = evidence
    store = str(directory / "ledger.db")
    from ledger.application import Ledger
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    writer = Ledger(StoreLocation.parse(store))  # a library append: no read model updated
    try:
        writer.append([(1, parse_event(account("mastodon:late", "2024-01-01")))], actor="t")
    finally:
        writer.close()
    run = read_only(directory)
    result = run("--store", store, "status", "mastodon:late")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr == (
        f"Error: the read models are behind the log and {store} is read-only here, so they "
        "cannot be brought up to date; copy its files (with any -wal and -shm beside it) to a "
        "place you may write and read the copy there\n"
    )
    verified = run("--store", store, "verify", "--vkey", vkey)  # the log, not the models
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"OK size {SEED_EVENTS + 1}")


def test_a_new_store_in_a_read_only_directory_is_refused_saying_so(
    tmp_path: Path, read_only: Callable[[Path], Run]
) -> None:
    # SQLite's "unable to open database file" read as a store that is no ledger.
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / "keep").write_text("x")  # the fixture makes what it holds read-only too
    run = read_only(shelf)
    for command in (["init"], ["copy", "--export", str(SEED)]):
        result = run("--store", str(shelf / "new.db"), *command)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert result.stderr.startswith(
            f"Error: cannot create {shelf / 'new.db'}: the directory {shelf} is read-only here"
        ), result.stderr
    assert sorted(p.name for p in shelf.iterdir()) == ["keep"]
