"""The `enforcement-ledger` command: a thin shell over the ledger and its projections.

Exit status: 0 success; 1 a data, domain or verification error (``Error: …`` on
stderr); 2 a usage error; 70 an unexpected internal failure (reported without a
traceback; set ENFORCEMENT_LEDGER_DEBUG=1 to see one).

Heavy modules are imported inside commands so `--help` and single appends start fast:
a command loads only what it uses (pydantic for input, eventsourcing for the store,
cryptography only with a signing key). tests/test_startup.py pins this.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeGuard

import click

from cli.output import F, output_options, printable, write_document, write_rows

if TYPE_CHECKING:
    from ledger.application import Ledger
    from ledger.location import StoreLocation
    from ledger.persistence import Database, Storage
    from ledger.postgres import PostgresStorage
    from projections.projector import Projector

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_INTERNAL = 70
EXIT_OUTPUT_FAILED = 74  # sysexits' EX_IOERR: not 1, which reads as "refused"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of the output went away

STATUS_COLUMNS = [
    "account",
    "platform",
    "handle",
    "subject",
    "status",
    "since",
    "until",
    "policy",
    "restrictions",
    "cause_event",
    "exemptions",
    "followers",
    "as_of",
    "known_at",
]
ACCOUNTS_TABLE = [
    "account",
    "subject",
    "status",
    "since",
    "until",
    "policy",
    "restrictions",
    "exemptions",
    "followers",
]
POST_COLUMNS = [
    "account",
    "post",
    "state",
    "account_status",
    "since",
    "policy",
    "reason",
    "exception",
    "cause_event",
    "warning_screen_since",
    "published_at",
    "url",
    "as_of",
    "known_at",
]
POSTS_TABLE = [
    "post",
    "state",
    "account_status",
    "since",
    "policy",
    "exception",
    "cause_event",
    "published_at",
]
HISTORY_COLUMNS = ["account", "status", "from", "to", "until", "policy", "cause_event"]
HISTORY_TABLE = HISTORY_COLUMNS[1:]  # one account: its id is the question
TIMELINE_COLUMNS = [
    "sequence",
    "event_id",
    "type",
    "occurred_at",
    "occurred_at_precision",
    "recorded_at",
    "actor",
    "account",
    "subject",
    "platform",
    "post",
    "policy",
    "reason",
    "exception",
    "exemption",
    "restrictions",
    "until",
    "count",
    "appeal",
    "target",
    "outcome",
    "name",
    "kind",
    "roles",
    "country",
    "handle",
    "language",
    "url",
    "excerpt",
    "source",
    "note",
    "retracted",
]
TIMELINE_TABLE = [
    "sequence",
    "event_id",
    "occurred_at",
    "type",
    "account",
    "policy",
    "detail",
    "retracted",
]
_DETAIL_FIELDS = (
    "subject", "name", "post", "count", "exception", "exemption", "restrictions", "until",
    "appeal", "outcome", "target", "reason",
)  # fmt: skip


def _with_detail(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Table view only: the type-specific fields folded into one readable column."""
    for row in rows:
        # An account's event carries the subject its registration names (JSON and CSV
        # have the column); the table's detail shows it on the registration only.
        derived = row.get("account") is not None and row["type"] != "account_registered"
        parts = [
            f"{key}={', '.join(map(str, value)) if isinstance(value, list) else value}"
            for key in _DETAIL_FIELDS
            if (value := row.get(key)) is not None and not (key == "subject" and derived)
        ]
        if row.get("account") is None and row.get("platform") is not None:
            # A row of no account (a platform's rename): the table has no platform column.
            parts.insert(0, f"platform={row['platform']}")
        yield {**row, "detail": "; ".join(parts)}


def _with_exemption_names(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The table's exemptions cell: their names (JSON and CSV give each in full),
    under the same column name."""
    for row in rows:
        yield {**row, "exemptions": [e["exemption"] for e in row["exemptions"]]}


EXPORT_TABLE = ["sequence", "event_id", "type", "occurred_at", "recorded_at", "actor", "account"]


class Session:
    """What the commands share: the store location and lazily opened handles."""

    def __init__(
        self, store: str | None, key_file: str | None = None, unsigned: bool = False
    ) -> None:
        self.store = store
        self.key_file = key_file
        self.unsigned = unsigned  # appends sign with no key, whatever is configured (demo)
        self.key_file_from_environment = False
        self._ledger: Ledger | None = None
        # An append's result once it is committed: an interrupt after it says so.
        self.committed: Any = None
        # What a failed copy removed again of the store it made, for its message.
        self.undone: str | None = None
        # An append's or a record's --dry-run: interrupted, it had nothing to commit.
        self.dry_run = False
        self._read: Any = None

    @property
    def location(self) -> StoreLocation:
        """--store (else its environment variable) read: a malformed one is a usage
        error, exit 2, not a store's failure."""
        from ledger.location import StoreError, StoreLocation

        try:
            return StoreLocation.parse(self.store)
        except StoreError as error:
            # Given as --store or as $ENFORCEMENT_LEDGER_STORE, which click reads as it;
            # told with the usage of the command --store belongs to.
            root = click.get_current_context(silent=True)
            raise click.BadParameter(
                str(error), ctx=root.find_root() if root else None, param_hint="--store"
            ) from None

    def location_if_valid(self) -> StoreLocation | None:
        """The location, for a message about another failure: None if malformed."""
        try:
            return self.location
        except click.BadParameter:
            return None

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from ledger.application import Ledger

            ledger = Ledger(self.location)
            try:
                ledger.storage.require()  # its connection is kept for the writes
            except BaseException:
                ledger.close()
                raise
            self._ledger = ledger
        return self._ledger

    def writing_ledger(self) -> Ledger:
        """The ledger set up to append: signing key if configured, read models inline."""
        ledger = self.ledger()
        if ledger.signer is None and not self.unsigned:
            ledger.signer = self.log_signer(required=False)
        if not ledger.inline_projections:
            from projections.projector import InlineProjection

            ledger.inline_projections.append(InlineProjection())
        return ledger

    def warn_after_append(self, result: Any) -> None:
        """A registration likely misspelling an id the ledger holds: said (the rules
        take it as new, and the data is split). An append committed without a key to a
        log whose appends were signed: said,
        as the key file moved or deleted would otherwise leave every append unsigned
        unseen. One whose checkpoint signs earlier events no checkpoint covered: said,
        as checkpoints deleted from under an edit would otherwise be signed over."""
        from ledger.location import key_path

        ledger = self.ledger()
        projections = ledger.inline_projections
        if (
            result.registered
            and projections
            and all(getattr(p, "active", False) for p in projections)
        ):
            # Only on read models the append kept current: catching them up here would
            # wait (a replay) or fail before the catch-up that says the append is in.
            from projections.queries import near_duplicates

            unread = False
            try:
                with ledger.storage.connect() as db:
                    warnings = near_duplicates(
                        db, result.registered, _first_sequence(result), dry_run=result.dry_run
                    )
            except Exception as error:  # advice only: the append stands, said so
                warnings = [f"the new ids could not be compared with the ledger's ({error})"]
                unread = True
            for warning in warnings:
                click.echo(f"warning: {warning}", err=True)
            if result.registered_unlisted and not unread:  # once, for a bulk import
                from ledger.application import REGISTRATIONS_LISTED

                click.echo(
                    f"note: only the batch's first {REGISTRATIONS_LISTED} registrations were "
                    f"compared with the ledger's ids for misspellings; its other "
                    f"{result.registered_unlisted:,} were not",
                    err=True,
                )
        _warn_if_not_analyzed(result, "append")
        if result.first_signed is not None:
            first, last = result.first_signed
            click.echo(
                f"warning: this append's checkpoint also signs sequence {first}..{last}, "
                "which no checkpoint covered: appended unsigned, or signed once and those "
                "checkpoints deleted (an edit hidden so would now bear your signature); "
                "`enforcement-ledger verify --trusted FILE` checks them against a "
                "checkpoint you hold",
                err=True,
            )
        if result.dry_run or not result.appended or ledger.signer is not None or self.unsigned:
            return
        try:
            with ledger.storage.connect() as db:
                signed = db.one("SELECT 1 FROM checkpoints LIMIT 1") is not None
        except Exception as error:  # advice only, as above: the append stands (rv35)
            click.echo(
                f"warning: could not check whether this log's appends are signed ({error})",
                err=True,
            )
            return
        if signed:
            path = key_path(self.location, self.key_file)
            where = f" at {path}" if path else " (--key-file)"
            click.echo(
                f"warning: no signing key{where}, though this log holds signed checkpoints: "
                "this append went unsigned (`verify --all-signed` fails on it until a "
                "checkpoint covers it); restore the log's key file or pass --key-file, and "
                "`checkpoint` with it signs what went unsigned",
                err=True,
            )

    def signer(self, *, required: bool) -> Any:
        """The signing key, if configured: every append batch is then checkpointed."""
        from ledger.location import KeyError_, key_path

        path = key_path(self.location, self.key_file)
        explicit = bool(self.key_file or os.environ.get("ENFORCEMENT_LEDGER_KEY_FILE"))
        if path is None or not path.exists():
            if required or (explicit and path is not None):
                if path is None:  # PostgreSQL: no file beside the store to look in
                    raise KeyError_(
                        "no signing key: a PostgreSQL store needs --key-file or "
                        "ENFORCEMENT_LEDGER_KEY_FILE naming its key file (`enforcement-ledger "
                        "--key-file PATH keygen` creates one)"
                    )
                raise KeyError_(
                    f"no signing key at {path}; create one with `enforcement-ledger keygen`"
                )
            return None
        from ledger.integrity import load_signer

        signer = load_signer(path)
        mode = path.stat().st_mode & 0o777
        if os.name == "posix" and mode & 0o077:
            # As ssh does for private keys, but a warning: the key still signs.
            click.echo(
                f"warning: signing key {path} can be read by other users (mode {mode:04o}); "
                f"anyone who can read it can sign checkpoints as this log: chmod 600 {path}",
                err=True,
            )
        return signer

    def log_signer(self, *, required: bool) -> Any:
        """``signer``, once it is shown to be this log's: a key names the log keygen
        made it for, and the ledger refuses another's; here the refusal names the file
        and where it came from."""
        from ledger.location import KeyError_, key_path

        signer = self.signer(required=required)
        ledger = self.ledger()
        origin = ledger.origin
        if signer is None or signer.name == origin:
            return signer
        from ledger.integrity import logs_named

        with ledger.storage.connect() as db:
            signed = logs_named(note for _, _, note in ledger.storage.checkpoints(db))
        if signer.name in signed and origin not in signed:
            # The key and every signed checkpoint agree: the origin row is what changed.
            raise KeyError_(
                f"the store's origin (the ledger_meta row 'origin') is {origin!r}, but this "
                f"key and every stored checkpoint name the log {signer.name!r}: the origin "
                "row was changed outside the ledger; nothing was written (`enforcement-ledger "
                "verify` names it)"
            )
        path = key_path(self.location, self.key_file)
        if self.key_file and not self.key_file_from_environment:
            advice = "give --key-file this log's key"
        elif self.key_file:
            # A SQLite store has a default key beside it; a PostgreSQL one has none.
            fallback = (
                ", or unset it to use the store's own"
                if self.location.kind == "sqlite"
                else " (a PostgreSQL store has no key file of its own)"
            )
            advice = f"ENFORCEMENT_LEDGER_KEY_FILE names it: point it at this log's key{fallback}"
        else:
            advice = (
                "it is left from another ledger once at this path: move it away, then "
                "`enforcement-ledger keygen` makes this log's"
            )
        raise KeyError_(
            f"the signing key {path} signs as log {signer.name!r}, not as this log "
            f"({origin!r}); nothing was written: {advice}"
        )

    def reader(self) -> Any:
        """A read connection whose projections have caught up: never stale."""
        ledger = self.ledger()
        from projections.projector import Projector, wait_for_rebuilds

        if self._read is None:
            self._read = ledger.storage.connect()
            ledger.storage.answering(self._read)
            wait_for_rebuilds(self._read)

        projector = Projector(ledger, self._read)
        try:
            projector.catch_up()
        except Exception as error:
            from ledger.location import StoreError

            if _is_read_only_store(error):
                raise StoreError(
                    f"the read models are behind the log and {self.location.display} is "
                    "read-only here, so they cannot be brought up to date",
                    "copy its files (with any -wal and -shm beside it) to a place you may "
                    "write and read the copy there",
                ) from None
            if not _is_permission_error(error):
                raise
            raise StoreError(
                "the read models are behind the log and this role may not update them; "
                "run `enforcement-ledger follow` (or any append) as a writer"
            ) from None
        return self._read

    def close(self) -> None:
        if self._read is not None:
            self._read.close()
            self._read = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def _close_undisturbed(session: Session) -> None:
    """Close the session once the command has done and said its work (or its failure),
    Ctrl-C and SIGTERM ignored meanwhile, as the console script ignores them at exit:
    raised here, outside the group's handling, click said "Aborted!" with status 1 (rv36:
    SIGTERM as the closing SQLite connection checkpointed an append already committed
    and reported)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        session.close()  # only the main thread sets handlers (and receives signals)
        return
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(stop, signal.SIG_IGN) for stop in stops]
    try:
        session.close()
    finally:
        for stop, handler in zip(stops, previous, strict=True):
            if handler is not None:  # None: set outside Python, not restorable
                signal.signal(stop, handler)


def _discard_stdout() -> None:
    """Send what is left of standard output nowhere: flushing it at exit would fail
    again (Python's own advice for a closed pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _is_stdout_encoding(encoding: str) -> bool:
    import codecs

    try:
        if encoding == "charmap":  # how every single-byte code page names itself there
            return True
        return codecs.lookup(encoding).name == codecs.lookup(sys.stdout.encoding).name
    except (LookupError, TypeError):
        return False


def _meant(ctx: click.Context, error: Exception) -> str:
    """For an event refused because its account or subject has no registration: its
    retracted registration, or the registered ids it may have meant, as the read
    models hold them."""
    unregistered = getattr(error, "unregistered", None)
    session = ctx.find_object(Session)
    if unregistered is None or session is None:
        return ""
    from projections.queries import unregistered_hint

    field, given = unregistered
    try:
        return unregistered_hint(session.reader(), field, given)
    except Exception:  # a hint only: the refusal it would add to stands without it
        return ""


def _is_unreadable_store_data(error: BaseException) -> bool:
    """A stored event that does not parse: input is parsed into EventInputError with
    its line, so what fails here was read from the store, edited outside the ledger
    (PostgreSQL parses leaves itself when replaying: its DataError)."""
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
        return True
    if "psycopg" in sys.modules:
        import psycopg

        return isinstance(error, psycopg.errors.DataError)
    return False


def _is_read_only_store(error: BaseException) -> bool:
    """A write to a SQLite store opened read-only (read-only media or permissions)."""
    sqlite3 = sys.modules.get("sqlite3")  # not imported here just to ask
    return (
        sqlite3 is not None
        and isinstance(error, sqlite3.OperationalError)
        and getattr(error, "sqlite_errorname", None) == "SQLITE_READONLY"
    )


# What the store's engine reports when the disk, not the command, failed: by SQLite
# error name, and by PostgreSQL SQLSTATE (53100 disk_full, 58030 io_error, XX001
# data_corrupted, XX002 index_corrupted).
_DISK_FULL = {"SQLITE_FULL", "53100"}
_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_IOERR", "58030", "XX001", "XX002"}
_SQLITE_PRIMARY = {
    1: "SQLITE_ERROR",
    5: "SQLITE_BUSY",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
}
_OUTPUT_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # errors only a write raises


class _OutputFailed(click.ClickException):
    """What the command prints could not be written. Not exit 1: an append is committed
    by then, and a script that retries on a refusal would send it again (a `record`
    without --event-id recorded twice)."""

    exit_code = EXIT_OUTPUT_FAILED


# SQLite's I/O errors in writing (a file-size limit, a quota, a failing disk), as
# against reading what is stored.
_SQLITE_WRITE_FAILED = frozenset(
    {
        "SQLITE_IOERR_WRITE",
        "SQLITE_IOERR_FSYNC",
        "SQLITE_IOERR_DIR_FSYNC",
        "SQLITE_IOERR_TRUNCATE",
        # Growing the shared-memory index beside the file (-shm), which a write
        # transaction does first: on a full disk or past a file-size limit, not damage.
        "SQLITE_IOERR_SHMSIZE",
    }
)


def _disk_nearly_full(location: StoreLocation | None) -> bool:
    """The disk holding a SQLite store has (nearly) no room: an I/O error in writing
    there is that disk being full, which SQLite does not always report as such."""
    if location is None or location.path is None:
        return False
    import shutil

    try:
        return shutil.disk_usage(location.path.absolute().parent).free < 1024 * 1024
    except OSError:
        return False


def _file_size_limit() -> str:
    """Names the process's file-size limit, when it has one: the likely cause of a
    failed write (EFBIG from `ulimit -f`, systemd's LimitFSIZE), which SQLite reports
    only as an I/O error."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return ""
    return (
        f"; this process may write files of at most {limit:,} bytes (`ulimit -f`, "
        "LimitFSIZE), the likely cause"
    )


# Commands that append events: a connection lost while committing leaves it open
# whether their batch went in.
_APPENDING = frozenset({"append", "record", "copy", "demo"})
# The commands that write nothing a user asked for (a read's catch-up of the read models,
# derived data, is its own transaction): interrupted, they say only that.
_WRITING_NOTHING = frozenset(
    {
        "accounts",
        "appeals",
        "counts",
        "export",
        "posts",
        "prove",
        "schema",
        "status",
        "subjects",
        "timeline",
        "verify",
    }
)


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, for a message of our own ("" if none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _store_error_code(error: BaseException) -> str | None:
    """What kind of store error this is: SQLite's primary code name, PostgreSQL's
    SQLSTATE, or "connection lost"; None for any other error."""
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(error, sqlite3.DatabaseError):
        # The primary code: extended ones (SQLITE_IOERR_SHORT_READ, …) add high bits.
        return _SQLITE_PRIMARY.get(getattr(error, "sqlite_errorcode", 0) & 0xFF)
    if "psycopg" not in sys.modules:
        return None
    import psycopg

    if not isinstance(error, psycopg.Error):
        return None
    code = error.sqlstate
    # Class 08 (connection exception), 57P0x (the server shut down or ended this
    # session), or the client finding its connection gone (no SQLSTATE).
    if isinstance(error, psycopg.OperationalError) and (
        code is None or code.startswith(("08", "57P0"))
    ):
        return "connection lost"
    # The client's own protocol error with no SQLSTATE ("received 2 results from
    # command FETCH"): what a session ended mid-fetch leaves behind.
    if isinstance(error, psycopg.InternalError) and code is None:
        return "connection lost"
    return code


def _store_failure(
    error: BaseException,
    where: str,
    command: str | None = None,
    location: StoreLocation | None = None,
    *,
    commit_begun: bool = True,
    committed: bool = False,
) -> str | None:
    """The message for a store that could not do its part, or None. ``commit_begun``:
    whether an append's write transaction had begun to commit (Storage.commits_begun);
    ``committed``: whether it is known to have committed (the failure came after it)."""
    code = _store_error_code(error)
    detail = _first_line(error) or type(error).__name__
    if (code == "SQLITE_ERROR" and detail.startswith("no such table")) or code == "42P01":
        # Every table is made by init and none is ever dropped by the ledger.
        return (
            f"{where} lacks a table the ledger needs ({detail}): it was dropped outside "
            "the ledger. Restore the store from a copy or a backup and check that with "
            "`enforcement-ledger verify`"
        )
    rolled_back = command in _APPENDING and not committed
    writes = "; the write in progress was rolled back whole" if rolled_back else ""
    if code in ("SQLITE_BUSY", "55P03"):  # PostgreSQL's lock_not_available
        from ledger import persistence

        if code == "55P03" and persistence.OWN_LOCK_WAIT not in getattr(error, "__notes__", ()):
            # Not the ledger's own wait: a lock_timeout the server was given for this
            # role, database or session ended a wait for a table's lock.
            limit = None
            if location is not None and location.kind == "postgres":
                from ledger.postgres import server_setting

                limit = server_setting(location, "lock_timeout")
            given = f" ({limit})" if limit and limit != "0" else ""
            return (
                f"another session held a lock on {where} that this command needed for longer "
                f"than the lock_timeout{given} set for this role or database (or in PGOPTIONS) "
                f"allows ({detail}), so the server cancelled the wait{writes}. Run it again "
                "once that session is done, or raise the limit for this role (ALTER ROLE … "
                "SET lock_timeout)"
            )
        waited = (
            persistence.SQLITE_BUSY_TIMEOUT_S
            if code == "SQLITE_BUSY"
            else persistence.WRITE_LOCK_WAIT_S
        )
        # A read command's wait was for the read models' catch-up: it writes no events.
        reads = command is not None and command not in {*_APPENDING, "checkpoint", "replay", "init"}
        wrote = "" if reads else " and wrote nothing"
        return (
            f"another process kept {where} locked for {waited:g} s ({detail}), "
            f"so this command gave up waiting{wrote}; run it again once that "
            "process (a long append or a replay) is done"
        )
    if code == "connection lost":
        if command == "replay":
            return (
                f"lost the connection to {where} ({detail}): the replay stopped part way, "
                "which may leave the read models without their indexes; run it again"
            )
        if committed:  # said after "the append above is committed"
            return f"lost the connection to {where} ({detail})"
        if command not in _APPENDING:
            return f"lost the connection to {where} ({detail}); run the command again"
        if command == "copy":  # copied events keep the source's record times
            return (
                f"lost the connection to {where} ({detail}). A copy is committed whole or "
                "not at all, but one cut off while committing may have committed: compare "
                "this store's size with the source's (`verify` prints both) before running "
                "it again"
            )
        if not commit_begun:  # cut off before COMMIT was sent: rolled back by the server
            return (
                f"lost the connection to {where} ({detail}) before the append began to "
                "commit: nothing was appended; run it again"
            )
        return (
            f"lost the connection to {where} ({detail}). A write is committed whole or not "
            "at all, but one cut off while committing may have committed: see what the log "
            "holds (`enforcement-ledger timeline --recorded-since …`) before running it again"
        )
    if code == "57014":  # query_canceled: a statement_timeout, or pg_cancel_backend
        timeout = "statement timeout" in detail
        stopped = (
            ": the replay stopped part way, which may leave the read models without their "
            f"rows or indexes; run it again{' once the limit allows' * timeout}"
            if command == "replay"
            else writes
        )
        if not timeout:
            return (
                f"the server cancelled a statement of this command ({detail}): an "
                f"administrator or another session asked it to{stopped}"
            )
        return (
            f"the server cancelled a statement of this command ({detail}): a "
            "statement_timeout set for this role or database (or in PGOPTIONS) is shorter "
            f"than it needs{stopped}. Raise it for this role (ALTER ROLE … SET "
            "statement_timeout), or run the command where none applies"
        )
    if code == "25006":  # read_only_sql_transaction
        return (
            f"{where} is opened read-only for this session ({detail}): "
            "default_transaction_read_only is on for this role or database, and "
            f"`{command}` writes; nothing was written. Run it as a role whose sessions may "
            "write"
        )
    if code == "25P03":  # idle_in_transaction_session_timeout
        return (
            f"the server ended the session ({detail}): it waited in a transaction longer "
            "than the idle_in_transaction_session_timeout set for this role or database, "
            "while the output was read slowly; read it into a file, or raise that limit for "
            "this role"
        )
    name = getattr(error, "sqlite_errorname", "")
    if code in _DISK_FULL or (name in _SQLITE_WRITE_FAILED and _disk_nearly_full(location)):
        return (
            f"the disk holding {where} is full ({detail}): the write in progress was "
            "rolled back whole (events are appended all or nothing, and what earlier "
            "commands wrote is intact); free space and run the command again"
        )
    if name in _SQLITE_WRITE_FAILED:
        # SQLite rolls a failed write back (its journal is written first): the store is
        # as the last command left it, and sending anyone to a backup loses what came since.
        return (
            f"a write to {where} failed ({detail}, {name}){_file_size_limit()}: "
            "the write in progress was rolled back whole, and what earlier commands wrote is "
            "intact (`enforcement-ledger verify --read-models` checks it); run the command "
            "again once the cause is fixed"
        )
    if code in _DAMAGED:
        return (
            f"{where} is damaged or unreadable ({detail}): the disk failed, or the store "
            "was changed outside the ledger. Restore it from a copy or a backup and check "
            "that with `enforcement-ledger verify --read-models`"
        )
    return None


def _is_permission_error(error: BaseException) -> bool:
    if "psycopg" in sys.modules:
        import psycopg

        # Or the eventsourcing library's own error for one (it wraps psycopg's).
        return any(
            isinstance(e, psycopg.errors.InsufficientPrivilege) for e in (error, error.__cause__)
        )
    return False


# Errors a user can act on, by module and class name. Only modules already imported
# are consulted: an exception cannot come from a module that was never loaded, and a
# failing command should not load the ledger, pydantic or the read side to say so.
_USER_ERRORS = (
    ("ledger.application", "LedgerError"),
    ("ledger.events", "EventInputError"),
    ("ledger.location", "StoreError"),
    ("ledger.location", "KeyError_"),
    ("projections.queries", "NotFound"),
    ("ledger.integrity", "IntegrityError"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = []
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None:
            errors.append(getattr(module, class_name))
    return tuple(errors)


def _refuse_repeated_options(command: click.Command, ctx: click.Context, args: list[str]) -> None:
    """An option that takes one value given twice: click keeps the last silently, so a
    command line edited by adding `--account b` would act on b, not the a it shows first
    (`append` refuses a field given twice in one object for the same reason)."""
    if ctx.resilient_parsing:  # shell completion: a half-typed line, nothing run
        return
    if any(arg in ctx.help_option_names for arg in args):  # help wins, as click's does
        return
    _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    seen: set[str | None] = set()
    for param in order:
        if not isinstance(param, click.Option) or param.multiple or param.count or param.is_flag:
            continue
        if param.name in seen:
            raise click.UsageError(
                f"{param.opts[0]} is given more than once; it takes one value: give it once",
                ctx=ctx,
            )
        seen.add(param.name)


def _complete_files(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Shell completion offers paths (a --store is a file, unless a URL)."""
    return [click.shell_completion.CompletionItem(incomplete, type="file")]


def _complete_event_types(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from ledger.vocabulary import EVENT_TYPE_NAMES

    return [
        click.shell_completion.CompletionItem(name)
        for name in EVENT_TYPE_NAMES
        if name.startswith(incomplete)
    ]


def _is_undecodable(text: str) -> bool:
    """Whether ``text`` is bytes Python could not decode, kept as lone surrogates."""
    return bool(text) and all("\udc80" <= char <= "\udcff" for char in text)


def _given_text(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A --policy or --actor: given, and in the one spelling (NFC) the ledger keeps
    them in, however the terminal composed its accents."""
    import unicodedata

    value = _given_value(ctx, param, value)
    return None if value is None else unicodedata.normalize("NFC", value)


def _given_value(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A filter or time given an empty value is refused: `--account "$ACCOUNT"` or
    `--since "$START"` with the variable unset would otherwise filter nothing and answer
    for the whole ledger (or for now)."""
    for item in value if isinstance(value, tuple) else (value,):
        if item is not None and not item.strip():
            instead = (
                "leave the option out rather than give it empty"
                if isinstance(param, click.Option)
                else "give one"
            )
            raise click.BadParameter(
                f"needs a value (given {item!r}); {instead} (an unset shell variable?)",
                ctx=ctx,
                param=param,
            )
    return value


# The group's own options: given after a command, click's "did you mean" named one of
# the command's (`timeline --store x.db`: "--actor, --json, --type?").
_GLOBAL_OPTIONS = ("--store", "--key-file")
_COMMAND_LINE = "enforcement_ledger.command_line"


@contextmanager
def _option_hints(command: click.Command, ctx: click.Context, args: list[str]) -> Iterator[None]:
    """An unknown option that is known elsewhere: said where it goes instead."""
    try:
        yield
    except click.NoSuchOption as error:
        name = error.option_name
        has = {opt for param in command.params for opt in param.opts}
        if name in _GLOBAL_OPTIONS:
            # The whole line again, the option moved: one that dropped the rest of it
            # (an ACCOUNT, the filters, options given before the command) ran another
            # command when copied.
            given = list(ctx.find_root().meta.get(_COMMAND_LINE, args))
            at = max(n for n, arg in enumerate(given) if arg == name or arg.startswith(name + "="))
            if given[at] == name:
                value = given[at + 1] if at + 1 < len(given) else "PATH"
            else:
                value = given[at].partition("=")[2]
            rest, skip = [], False
            for arg in given:  # without it, nor the same option given before the command
                if skip or arg.startswith(name + "="):
                    skip = False
                elif arg == name:
                    skip = True
                else:
                    rest.append(arg)
            line = shlex.join(["enforcement-ledger", name, value, *rest])
            raise click.NoSuchOption(
                name, f"{name} is a global option, given before the command: {line}", ctx=ctx
            ) from None
        if name == "--reason" and "--note" in has:  # a record type without a reason field
            raise click.NoSuchOption(
                name,
                f"No such option '--reason': {ctx.info_name} has no reason field; "
                "say why in --note",
                ctx=ctx,
            ) from None
        raise


class StrictCommand(click.Command):
    """A command that refuses an option given twice (see _refuse_repeated_options)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _option_hints(self, ctx, args):
            _refuse_repeated_options(self, ctx, args)
            return super().parse_args(ctx, args)


class StrictGroup(click.Group):
    command_class = StrictCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            ctx.meta[_COMMAND_LINE] = list(args)  # for _option_hints' corrected line
        with _option_hints(self, ctx, args):
            _refuse_repeated_options(self, ctx, args)
            return super().parse_args(ctx, args)


StrictGroup.group_class = StrictGroup


def _on_postgres(ctx: click.Context) -> bool:
    """Whether the command's store is a PostgreSQL one."""
    location = session.location_if_valid() if (session := ctx.find_object(Session)) else None
    return location is not None and location.kind == "postgres"


def _committed(ctx: click.Context) -> Any:
    """The append this command committed (not a dry run's), if it got that far."""
    done = getattr(ctx.find_object(Session), "committed", None)
    return done if done is not None and done.appended and not done.dry_run else None


def _said_if_undone(ctx: click.Context, message: str) -> str:
    """A failed copy's message, saying what it removed again of the store it made."""
    undone = getattr(ctx.find_object(Session), "undone", None)
    return f"{message} (nothing of the copy was left: {undone})" if undone else message


def _said_if_committed(ctx: click.Context, explained: click.ClickException) -> click.ClickException:
    """A failure after an append committed (its summary printed, a warning, the read
    side) says so first: "wrote nothing" alone would have it appended twice."""
    done = _committed(ctx)
    if done is None or explained.message.startswith("the append above is committed"):
        return explained
    return click.ClickException(
        f"the append above is committed ({done.appended} event(s), sequence "
        f"{done.first_sequence}..{done.last_sequence}): do not append it again; what "
        f"failed after it: {explained.message}"
    )


def _commit_begun(session: Session | None) -> bool:
    """Whether this session's writes reached a commit; True when it is not known.

    No ledger: nothing says whether one was written through (rv35: `demo`, which then
    wrote through a session the group did not see, said of its events that none were in)."""
    ledger = getattr(session, "_ledger", None)
    return ledger is None or ledger.storage.commits_begun > 0


def _warn_if_not_analyzed(result: Any, what: str) -> None:
    """The statistics update after a large batch's commit failed (a lock held past
    the wait, a lock_timeout, a cancel, a lost session): said as a warning, for the
    batch is in (du20: it was reported as an append that wrote nothing)."""
    error = getattr(result, "analyze_error", None)
    if error is None:
        return
    detail = _first_line(error) or type(error).__name__
    if _store_error_code(error.__cause__ or error) in _DAMAGED:
        # Reading the tables failed as a damaged store fails: not a planning matter.
        consequence = (
            "the store may be damaged: check it with `enforcement-ledger verify "
            "--read-models` (and restore it from a copy or a backup if that fails)"
        )
    else:
        consequence = "queries may plan slowly until the next large append"
    click.echo(
        f"warning: the {what} is committed, but the store's statistics could not be "
        f"refreshed after it ({detail}): {consequence}; do not {what} it again",
        err=True,
    )


class LedgerGroup(StrictGroup):
    """Turns domain and data errors into `Error: …` with exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt as interrupt:
            # Not click's "Aborted!" with status 1, which a script would take for a
            # data error. Every write is one transaction: it is wholly in, or not at all
            # (but a PostgreSQL replay, whose phases commit apart).
            if ctx.invoked_subcommand == "replay" and _on_postgres(ctx):
                message = (
                    "Interrupted: the replay stopped part way, which may leave the read "
                    "models partly rebuilt or without their indexes (reads stay right, "
                    "catching up from the log, but slow, and fail for a reader role "
                    "until a writer catches up); run `enforcement-ledger replay` "
                    "again. The log is unchanged"
                )
            elif ctx.invoked_subcommand in _WRITING_NOTHING:
                message = "Interrupted"
            elif getattr(ctx.find_object(Session), "dry_run", False):
                message = "Interrupted: a dry run, nothing was appended"
            else:
                message = "Interrupted: a write in progress was committed whole or not at all"
                done = _committed(ctx)
                session = ctx.find_object(Session)
                ledger = getattr(session, "_ledger", None)
                if (
                    ctx.invoked_subcommand in ("append", "record")
                    and done is None
                    and (ledger is None or ledger.storage.commits_begun == 0)
                ):
                    # Stopped before its one transaction began to commit (ux19: it
                    # said "whole or not at all" of a batch stopped a third in).
                    message = "Interrupted before the commit: nothing was appended"
                elif done is None and ledger is not None:
                    what = "copy" if ctx.invoked_subcommand == "copy" else "append"
                    landed = ledger.storage.interrupted_commit_landed()
                    if ledger.storage.commits_done or landed:
                        # Committed, stopped before the append returned (rv32: a large
                        # batch's statistics update, VACUUM ANALYZE on PostgreSQL, comes
                        # after), or as its COMMIT returned.
                        message = (
                            f"Interrupted after the {what} was committed: do not {what} it again"
                        )
                    elif landed is False and what == "append":
                        message = "Interrupted before the commit: nothing was appended"
                if done is not None:
                    # Known here: after the commit (the summary, the read side catching up).
                    message = (
                        f"Interrupted after the append was committed ({done.appended} "
                        f"event(s), sequence {done.first_sequence}..{done.last_sequence}): "
                        "do not append them again"
                    )
            if undone := getattr(ctx.find_object(Session), "undone", None):
                message = f"Interrupted: nothing of the copy was left ({undone})"
            if isinstance(interrupt, Terminated):
                click.echo(message.replace("Interrupted", "Terminated", 1), err=True)
                ctx.exit(EXIT_TERMINATED)
            click.echo(message, err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as error:
            try:
                self._explain(ctx, error)
            except click.ClickException as explained:
                if isinstance(error, OSError) and error.errno in _OUTPUT_FAILURES:
                    raise  # the summary's own failure: _report's note says it is committed
                if (said := _said_if_undone(ctx, explained.message)) != explained.message:
                    explained = click.ClickException(said)
                raise _said_if_committed(ctx, explained) from None

    def _explain(self, ctx: click.Context, error: Exception) -> NoReturn:
        """Raise the ClickException a user can act on for ``error``, or ``error``."""
        if isinstance(error, _user_errors()):
            raise click.ClickException(str(error) + _meant(ctx, error)) from None
        if _is_unreadable_store_data(error):
            detail = str(error).strip().splitlines()[0]
            raise click.ClickException(
                f"the store holds an event that is not valid JSON ({detail}): it was "
                "changed outside the ledger; `enforcement-ledger verify` finds where"
            ) from None
        if _is_permission_error(error):
            message = str(error).strip().splitlines()[0]
            writing = ctx.invoked_subcommand in {
                *_APPENDING,
                "checkpoint",
                "replay",
                "follow",
            }
            advice = ""
            if message.startswith("permission denied for database"):
                # CREATE SCHEMA, for a new store: the ledger's writer may write to
                # one, but not make one.
                advice = (
                    "; this role may not create a schema in that database (it lacks "
                    "CREATE on it): nothing was written. Have the database's owner make "
                    "the store (`init`, with --origin for a copy), or run it as a role "
                    "that may"
                )
            elif writing and _on_postgres(ctx):
                what = {
                    "replay": "rebuild the read models",
                    "follow": "update the read models, which follow keeps current",
                }.get(ctx.invoked_subcommand or "", "write to the ledger")
                advice = (
                    f"; this role may not {what} (a reader?): nothing was written; run "
                    "it as the ledger's writer role or its owner"
                )
            raise click.ClickException(f"permission denied: {message}{advice}") from None
        if isinstance(error, OSError) and error.errno == errno.EPIPE:
            # The reader of the output stopped (`… | head`): not an error of this
            # command. The status a shell gives a process ended by SIGPIPE, as a
            # Unix tool in its place would end; nothing more is written.
            _discard_stdout()
            ctx.exit(EXIT_BROKEN_PIPE)
        if isinstance(error, UnicodeEncodeError) and _is_undecodable(
            error.object[error.start : error.end]
        ):
            # Python keeps a byte of the command line that is not UTF-8 as a lone
            # surrogate: the input is at fault, not the output's encoding.
            raise click.ClickException(
                f"{error.object[error.start : error.end]!r} is no text: the command line "
                "(or environment) holds a byte that is not UTF-8; give the value in "
                "UTF-8"
            ) from None
        if isinstance(error, UnicodeEncodeError) and _is_stdout_encoding(error.encoding):
            raise click.ClickException(
                f"standard output takes {sys.stdout.encoding} only, which cannot hold "
                f"{error.object[error.start : error.end]!r} from the ledger; set "
                "PYTHONIOENCODING=utf-8 (or use a UTF-8 terminal) and run it again"
            ) from None
        if isinstance(error, OSError) and error.errno in _OUTPUT_FAILURES:
            # Writing what the command prints (stdout to a full disk, say): the
            # store's own writes fail through its driver, not as OSError.
            target = error.filename or "standard output"
            raise _OutputFailed(f"cannot write to {target}: {error.strerror}") from None
        ordering = sys.modules.get("ledger.ordering")
        if ordering is not None and ordering.SPOOL_FAILED in getattr(error, "__notes__", ()):
            import tempfile

            detail = str(error).strip().splitlines()[0]
            where = os.environ.get("SQLITE_TMPDIR") or tempfile.gettempdir()
            raise click.ClickException(
                f"cannot hold the batch in a temporary database in {where} ({detail}) to "
                "sort it; nothing was appended: set SQLITE_TMPDIR (or TMPDIR) to a "
                "directory with room"
            ) from None
        session = ctx.find_object(Session)
        location = session.location_if_valid() if session else None
        where = location.display if location else "the store"
        failure = _store_failure(
            error,
            where,
            ctx.invoked_subcommand,
            location,
            commit_begun=_commit_begun(session),
            committed=_committed(ctx) is not None,
        )
        if failure is not None:
            raise click.ClickException(failure) from None
        if _is_read_only_store(error):
            raise click.ClickException(
                f"{where} is read-only here and `{ctx.invoked_subcommand}` writes to "
                "it; nothing was written. Reading commands (status, timeline, verify, "
                "export, …) work on it"
            ) from None
        raise error


@click.group(cls=LedgerGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="enforcement-ledger")
@click.option(
    "--store",
    envvar="ENFORCEMENT_LEDGER_STORE",
    show_envvar=True,
    metavar="PATH|URL",
    help="SQLite file (default ./enforcement-ledger.db) or postgresql:// URL.",
    callback=_given_value,
    shell_complete=_complete_files,
)
@click.option(
    "--key-file",
    envvar="ENFORCEMENT_LEDGER_KEY_FILE",
    show_envvar=True,
    metavar="PATH",
    help="Ed25519 signing key (default: the SQLite store's path + .key).",
    callback=_given_value,
)
@click.pass_context
def cli(ctx: click.Context, store: str | None, key_file: str | None) -> None:
    """Event-sourced ledger of platform enforcement actions.

    Every action is an immutable event; status and timelines are rebuilt from them,
    as of any valid time (--as-of) and as known at any record time (--known-at).

    \b
    Example:
      enforcement-ledger init
      enforcement-ledger record account-registered --account twitter:example \\
          --platform twitter --handle @example --occurred-at 2020-01-01 \\
          --source https://example.org/report
      enforcement-ledger record account-suspended --account twitter:example \\
          --occurred-at 2021-01-08T16:00:00Z --policy "Glorification of violence" \\
          --source https://example.org/report
      enforcement-ledger status twitter:example
    """
    for name in _SETTINGS:
        if os.environ.get(name) == "":
            # Click reads an empty variable as unset: `export ENFORCEMENT_LEDGER_STORE=
            # "$STORE"` with $STORE unset would act on ./enforcement-ledger.db.
            raise click.UsageError(f"{name} is set but empty: unset it, or give it a value")
    session = Session(store, key_file)
    # Where --key-file's value came from, for messages about the key: click fills it
    # from ENFORCEMENT_LEDGER_KEY_FILE too.
    source = ctx.get_parameter_source("key_file")
    session.key_file_from_environment = source == click.core.ParameterSource.ENVIRONMENT
    ctx.obj = session
    ctx.call_on_close(lambda: _close_undisturbed(session))


_SETTINGS = ("ENFORCEMENT_LEDGER_STORE", "ENFORCEMENT_LEDGER_KEY_FILE", "ENFORCEMENT_LEDGER_ACTOR")


def _parse_time(value: str, option: str, *, whole_day: bool = False) -> datetime:
    """An aware time for --as-of/--known-at/--since/--until; a date means 00:00Z.

    With ``whole_day`` (an upper bound, --until) a date means the last microsecond of
    that day, so `--until 2024-01-31` keeps what occurred during the 31st.
    """
    from ledger.times import TimeError, parse_utc

    try:
        # As event input reads it: spaces around it are refused, not dropped.
        moment = parse_utc(value)
    except TimeError as error:
        raise click.BadParameter(f"{error}, given {value!r}", param_hint=option) from None
    if whole_day and len(value) == len("2024-02-08"):  # parse_utc took it as a date alone
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
    return moment


def _actor(actor: str | None) -> str:
    """Who records: --actor, else $ENFORCEMENT_LEDGER_ACTOR, else the OS user; each
    checked before anything is read, naming where it came from."""
    from ledger.vocabulary import PART_OF_A_REPR_ESCAPE, actor_problem, shorten

    source = "--actor (or $ENFORCEMENT_LEDGER_ACTOR)"
    if actor is None:
        import getpass

        source = "the OS user name, the actor by default; give --actor"
        try:
            actor = getpass.getuser()
        except Exception:  # no user database entry in some containers
            actor = f"uid:{os.getuid()}"
    problem = actor_problem(actor)
    if problem is not None:
        raise click.BadParameter(
            f"{problem} (given {shorten(repr(actor), 100, PART_OF_A_REPR_ESCAPE)})",
            param_hint=source,
        )
    return actor


actor_option = click.option(
    "--actor",
    envvar="ENFORCEMENT_LEDGER_ACTOR",
    show_envvar=True,
    help="Who is recording (default: the OS user).",
)


# --- init -----------------------------------------------------------------------


@cli.command()
@click.option("--origin", help="Log origin line for checkpoints (default: derived from the store).")
@click.option(
    "--roles",
    is_flag=True,
    help="PostgreSQL: also create <prefix>_writer and <prefix>_reader roles.",
)
@click.option(
    "--role-prefix",
    metavar="PREFIX",
    help="Role name prefix (default: ledger_<schema>); implies --roles.",
)
@click.pass_obj
def init(session: Session, origin: str | None, roles: bool, role_prefix: str | None) -> None:
    """Create the store: event tables, immutability triggers, projection tables.

    Safe to run again, and from several processes at once: the schema is created
    exactly once. Other commands never create tables.

    \b
    Example:
      enforcement-ledger --store ledger.db init
      enforcement-ledger --store "postgresql://postgres@127.0.0.1/test?schema=newsroom" init --roles
    """
    location = session.location
    if origin is not None and (not origin or any(c.isspace() or c == "+" for c in origin)):
        raise click.BadParameter(
            "an origin names the log's signing key: a non-empty name without spaces or '+'"
            f" (given {origin!r})",
            param_hint="--origin",
        )
    prefix = None
    if roles or role_prefix:
        from ledger.location import StoreError

        if location.kind != "postgres":
            raise StoreError("--roles needs a PostgreSQL store; SQLite has no roles")
        from ledger.postgres import RolePrefixError, role_names

        prefix = role_prefix or f"ledger_{location.schema}"
        try:
            role_names(prefix)  # before anything is created
        except RolePrefixError as error:
            if role_prefix is None:  # the default, made from the schema's name
                raise click.BadParameter(
                    f"{error} (not given, it is ledger_<schema>)", param_hint="--roles"
                ) from None
            raise click.BadParameter(str(error), param_hint="--role-prefix") from None
    if origin is not None:
        _refuse_another_origin(location, origin)  # before init changes anything
    if prefix is not None:  # before the ledger is made: all or nothing
        from ledger.persistence import open_storage

        open_storage(location).require_role_rights(prefix)  # type: ignore[attr-defined]
    created, storage, remade = _create_store(location, origin or _default_origin(location))
    if created:
        click.echo(f"Created ledger at {location.display}")
    elif remade:
        from projections.projector import TABLES as READ_MODEL_TABLES

        rebuilt = (
            "; they are projected again from the log by the next command that reads them "
            "(or run `replay` now)"
            if set(remade) & set(READ_MODEL_TABLES)
            else ""
        )
        lost = [part for part in remade if not part.startswith("changed ")]
        restored = [part.removeprefix("changed ") for part in remade if part not in lost]
        done = [
            *([f"made again its missing {', '.join(lost)}"] if lost else []),
            *([f"restored its changed {', '.join(restored)}"] if restored else []),
        ]
        click.echo(
            f"Ledger already exists at {location.display}; {' and '.join(done)} "
            f"(the log is unchanged){rebuilt}"
        )
    elif prefix is None:
        click.echo(f"Ledger already exists at {location.display}; nothing changed")
    if prefix is not None:
        writer, reader = storage.grant_roles(prefix)  # type: ignore[attr-defined]
        if not created and not remade:  # only once granted: a refusal says it alone
            click.echo(f"Ledger already exists at {location.display}")
        click.echo(f"Roles ready: {writer} (append, checkpoint), {reader} (read only)")


def _refuse_another_origin(location: StoreLocation, origin: str) -> None:
    """The origin names the log in every checkpoint: fixed when the store is made."""
    from ledger.application import Ledger
    from ledger.location import StoreError
    from ledger.persistence import open_storage

    if not open_storage(location).exists():
        return
    ledger = Ledger(location)
    try:
        held = ledger.origin
    finally:
        ledger.close()
    if held != origin:
        raise StoreError(
            f"{location.display} already exists with origin {held!r}; --origin names "
            "a new store's log and cannot change an existing one: give a new path "
            "(or, on PostgreSQL, a new schema)"
        )


def _create_store(location: StoreLocation, origin: str) -> tuple[bool, Storage, list[str]]:
    """Create the store once (False when it existed); returns with it the read-model
    tables and indexes an existing store lacked and that were made again."""
    from ledger.persistence import open_storage
    from ledger.vocabulary import iso
    from projections.projector import TABLES as READ_MODEL_TABLES
    from projections.projector import create_tables, missing_parts

    storage = open_storage(location)
    created = storage.create(
        {"origin": origin, "created_at": iso(datetime.now(UTC))}, then=create_tables
    )
    with storage.connect() as db, db.transaction(lock="ledger-projection"):
        # A store of another format is not this version's to add to, as for every command.
        storage.check_format(db)
        missing = [] if created else missing_parts(db)
        for name in [] if created else storage.missing_ledger_indexes(db):
            db.execute(storage.ledger_indexes()[name])  # the log's rows stay as they are
            missing.append(name)
        lacking, changed = ([], []) if created else storage.guard_faults(db)
        guards = [*lacking, *changed]
        try:
            for statement in storage.guard_setup() if guards else []:
                db.execute(statement)
            for name in guards:
                storage.drop_guard(db, name)
                db.execute(storage.guard_triggers()[name])
                # A changed one is restored, not "missing": the message says which.
                missing.append(f"{'changed ' * (name in changed)}append-only trigger {name}")
        except Exception as error:
            if not _is_permission_error(error):
                raise
            from ledger.location import StoreError

            faults = [
                f"{what} its append-only triggers {', '.join(names)}"
                for what, names in (("lacks", lacking), ("holds changed", changed))
                if names
            ]
            raise StoreError(
                f"{location.display} {' and '.join(faults)}, and only the store's owner may "
                "make them; nothing was changed",
                "run `enforcement-ledger init` as the owner",
            ) from None
        if missing:
            # Only then: CREATE … IF NOT EXISTS needs CREATE on a PostgreSQL schema even
            # for what exists, and the writer and reader roles lack it.
            create_tables(db)
        remade_tables = [t for t in READ_MODEL_TABLES if t in missing]
        if remade_tables:
            # A table made again is empty while the others and the position say the
            # log was projected: answers would be wrong. Emptied, the read models are
            # projected from the start by the next read.
            for table in READ_MODEL_TABLES:
                db.execute(f"DELETE FROM {table}")
            if location.kind == "postgres":  # the team's roles keep their access
                storage.grant_as_before(db, remade_tables)  # type: ignore[attr-defined]
    return created, storage, missing


def _made_schema(storage: Storage) -> TypeGuard[PostgresStorage]:
    """Whether creating this store made its PostgreSQL schema (a failed copy's to drop)."""
    from ledger.postgres import PostgresStorage

    return isinstance(storage, PostgresStorage) and storage.made_schema


@contextmanager
def _created_for_copy(session: Session, origin: str) -> Iterator[None]:
    """Create this store for a copy. If the copy fails, a SQLite store this command
    created is removed again, and so is a PostgreSQL schema it created: a failed copy
    leaves nothing behind. (A schema that was there before stays as it was, or, empty
    before, with the empty ledger the copy made in it; one that others put tables in
    meanwhile stays with theirs, the ledger's own removed.)"""
    location = session.location
    path = location.path
    files = [f"{path}{suffix}" for suffix in ("", "-wal", "-shm", "-journal")] if path else []
    before = {name for name in files if os.path.lexists(name)}
    created, storage, _ = _create_store(location, origin)
    try:
        yield
    except BaseException:
        if created:
            session.close()
            if location.kind != "postgres":
                for name in files:
                    if name not in before:  # only what this command made
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(name)
                session.undone = f"the store this copy made ({location.display}) was removed again"
            elif _made_schema(storage):
                # The copy's own failure (or Ctrl-C) is what to report: a drop that fails
                # too (the connection lost, the log's lock held past lock_timeout) only
                # leaves the empty ledger, and the message then claims no removal.
                with contextlib.suppress(Exception):
                    removed = storage.drop_made_schema()
                    if removed == "schema":
                        session.undone = (
                            f"the schema this copy made ({location.schema}) was dropped again"
                        )
                    elif removed == "ledger":
                        session.undone = (
                            f"the ledger this copy made was removed again; schema "
                            f"{location.schema!r} stays, holding only tables or other "
                            "objects the copy did not make"
                        )
        raise


def _default_origin(location: StoreLocation) -> str:
    """A C2SP origin naming this log: no spaces, no '+', unique per store."""
    import secrets

    if location.kind == "postgres":
        host = location.libpq("host")
        host = "localhost" if not host or host.startswith("/") else host  # a Unix socket
        name = f"{host}/{location.libpq('dbname')}/{location.schema}"
    else:
        name = location.path.stem if location.path else "ledger"
    safe = "".join(c if c.isalnum() or c in "-._/" else "-" for c in name)
    return f"enforcement-ledger.invalid/{safe}/{secrets.token_hex(4)}"


# --- append and record ----------------------------------------------------------


# The largest valid event is well under 100 KiB; a longer line is refused before it
# is held whole, so a runaway input (a file with no newlines) cannot exhaust memory.
MAX_LINE_BYTES = 1024 * 1024


def _read_lines(stream: IO[Any]) -> Iterator[tuple[int, Any]]:
    """Events with their line numbers."""
    from ledger.events import parse_event

    for number, line in _input_lines(stream):
        yield number, parse_event(line, number)


# One object's end and another's start split by a CR alone: never valid JSON (after a
# value comes a comma or a bracket), so it can only be a line ending no reader split on.
_BARE_CR_BETWEEN_OBJECTS = re.compile(r"\}[ \t]*\r[ \t]*\{")


def _input_lines(stream: IO[Any]) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their numbers; the input is read as bytes, checked as UTF-8."""
    from ledger.events import EventInputError

    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 2):  # the most, with a CRLF after it
        number += 1
        content = len(raw)  # without the line's end: a last line may have none
        if raw[-1:] in (b"\n", "\n"):
            content -= 2 if raw[-2:] in (b"\r\n", "\r\n") else 1
        if content > MAX_LINE_BYTES:
            raise EventInputError(
                [f"event: the line is longer than {MAX_LINE_BYTES:,} bytes, the most accepted"],
                number,
            )
        line = raw
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                problem = f"not UTF-8 text (byte {error.start + 1} of the line)"
                if number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    # What Windows tools (PowerShell's Out-File, Notepad's "Unicode") write.
                    problem = (
                        "not UTF-8 text: the input starts with a UTF-16 byte order mark; "
                        "convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"
                    )
                raise EventInputError([f"event: {problem}"], number) from None
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]  # a byte order mark some editors write: not part of the data
        elif line.startswith("\ufeff"):
            raise EventInputError(
                [
                    "event: the line starts with a byte order mark (U+FEFF), which only the "
                    "input's start may hold (files joined with `cat`?); remove it"
                ],
                number,
            )
        if _BARE_CR_BETWEEN_OBJECTS.search(line):
            raise EventInputError(
                [
                    "event: lines end in a bare carriage return (CR, old Mac line endings); "
                    "events are read one a line, ending in LF or CRLF: convert it with "
                    "`tr '\\r' '\\n'`"
                ],
                number,
            )
        if line.strip():
            yield number, line


# A leaf is an accepted input line plus the fields the ledger assigns.
MAX_LEAF_BYTES = 2 * MAX_LINE_BYTES


def _export_leaves(handle: IO[bytes]) -> Iterator[bytes]:
    """An export's lines, each held only if it could be a leaf: flat memory on any file."""
    from ledger.integrity import IntegrityError

    sequence = 0
    while line := handle.readline(MAX_LEAF_BYTES + 1):
        if len(line) > MAX_LEAF_BYTES:
            raise IntegrityError(
                f"sequence {sequence}: the export's line is longer than {MAX_LEAF_BYTES:,} "
                "bytes, so it is no leaf of this ledger",
                sequence,
            )
        leaf = line.removesuffix(b"\n")
        # Neither is ever part of a leaf (canonical JSON escapes control characters),
        # so each is named for what it is rather than left to fail as a wrong root.
        if leaf.endswith(b"\r"):
            raise IntegrityError(
                f"sequence {sequence}: line {sequence + 1} of the export ends with a carriage "
                "return: its line endings were converted to CRLF on the way (an export "
                "separates leaves with LF alone; `tr -d '\\r'` restores it exactly)",
                sequence,
            )
        if not leaf:
            raise IntegrityError(
                f"sequence {sequence}: line {sequence + 1} of the export is empty; an export "
                "holds one leaf a line and nothing else",
                sequence,
            )
        if sequence == 0 and leaf.startswith(b"\xef\xbb\xbf"):
            raise IntegrityError(
                "sequence 0: the export starts with a byte order mark (U+FEFF), added on "
                "the way (an export is written without one); remove its first three bytes",
                sequence,
            )
        if sequence == 0 and not leaf.startswith(b'{"'):
            # Not the export's own first leaf edited: a file of another shape (the
            # table `export` prints without --nl, JSON, CSV), which is no tampering.
            raise IntegrityError(
                "line 1 of the file is not a leaf as `export --nl` writes it (one JSON "
                f"object an event; it starts {leaf[:40]!r}): was it written "
                "by `export` without --nl, or by another command?",
                sequence,
            )
        if not line.endswith(b"\n") and not _json_object(leaf):
            # Every line of an export ends in LF: a last line without one that is no
            # JSON object was cut short, which a root would only call "differs".
            raise IntegrityError(
                f"sequence {sequence}: line {sequence + 1} of the export, its last, is an "
                "incomplete JSON object with no final newline: the export was truncated "
                "(cut short when written or copied); export it again, or copy it whole",
                sequence,
            )
        yield leaf
        sequence += 1


def _json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        return False


def _replayable(stream: IO[bytes]) -> IO[bytes]:
    """A seekable copy of the input, so a conflicting batch can be re-run.

    Pipes are spooled (in memory up to 16 MiB, then on disk), never held whole.
    """
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError, OSError):
        pass
    import tempfile

    spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - returned, closed with the process
        max_size=16 * 1024 * 1024, mode="w+b"
    )
    # read1, not read: a buffered read(n) goes on reading after a terminal's end of
    # input (Ctrl-D) to fill n bytes, so that one Ctrl-D would not end the input.
    read = getattr(stream, "read1", stream.read)
    try:
        while chunk := read(1 << 16):
            spool.write(chunk)
        # The last chunk may wait in the file's buffer: a full disk shows at its flush.
        spool.flush()
    except OSError as error:
        if error.errno not in _OUTPUT_FAILURES:
            raise
        with contextlib.suppress(OSError):  # its buffer cannot be flushed either
            spool.close()
        # Not "cannot write to standard output" (exit 74, which says an append is
        # committed): the input could not be held, so nothing was appended (rv28).
        raise click.ClickException(
            f"cannot hold the input in a temporary file in {tempfile.gettempdir()} "
            f"({error.strerror}); nothing was appended: give a file rather than a "
            "pipe, or set TMPDIR to a directory with room"
        ) from None
    return spool


def _rewound(stream: IO[bytes]) -> IO[bytes]:
    stream.seek(0)
    return stream


def _first_sequence(result: Any) -> int:
    """The sequence an append's (or a dry run's) first event took."""
    return int(result.first_sequence if result.first_sequence is not None else 0)


def _report(result: Any, as_json: bool, *, generated_id: str | None = None) -> None:
    """The append's summary; ``generated_id``: the event_id `record` made for its
    event, named with it. The append is committed by now: if the summary cannot be
    written out (a full disk, a reader gone), stderr says so, as a failing status alone
    would read as "refused" to a script that then sends it again."""
    try:
        _write_report(result, as_json, generated_id=generated_id)
    except OSError:
        if result.appended and not result.dry_run:
            named = f" (event_id {generated_id})" if generated_id is not None else ""
            click.echo(
                f"note: appended {result.appended} event(s), sequence "
                f"{result.first_sequence}..{result.last_sequence}{named}: committed, but "
                "this summary could not be written to standard output; do not append "
                "them again",
                err=True,
            )
        elif result.dry_run:
            # Exit 74 says an append is in: a dry run's says that nothing is.
            click.echo(
                "note: dry run: every check passed and nothing was appended, but this "
                "summary could not be written to standard output",
                err=True,
            )
        else:  # every event was skipped (each is in already), or none was given
            parts = []
            if result.skipped_recorded:
                parts.append(f"{result.skipped_recorded} already recorded event(s)")
            if result.skipped_repeated:
                parts.append(f"{result.skipped_repeated} repeated line(s)")
            what = (
                f"nothing new was appended ({', '.join(parts)})" if parts else "nothing to append"
            )
            click.echo(
                f"note: {what}, but this summary could not be written to standard output",
                err=True,
            )
        raise


def _write_report(result: Any, as_json: bool, *, generated_id: str | None) -> None:
    retracted = list(result.skipped_retracted.items())
    for event_id, retraction in retracted[:5]:
        click.echo(
            f"note: {event_id} is already recorded and stays retracted (by {retraction}); "
            "to record it again, give it a new event_id",
            err=True,
        )
    if len(retracted) > 5:
        click.echo(f"note: and {len(retracted) - 5} more re-sent event(s) stay retracted", err=True)
    if as_json:
        summary = result.as_json()
        if generated_id is not None:
            summary["event_id"] = generated_id
        click.echo(json.dumps(summary))
        return
    would = "Would append" if result.dry_run else "Appended"
    if result.appended:
        named = f" (event_id {generated_id})" if generated_id is not None else ""
        click.echo(
            f"{would} {result.appended} event(s), sequence "
            f"{result.first_sequence}..{result.last_sequence}{named}"
        )
    verb = "Would skip" if result.dry_run else "Skipped"
    for count, ids, what in (
        (result.skipped_recorded, result.skipped_ids, "already recorded event(s)"),
        (
            result.skipped_repeated,
            result.repeated_ids,
            "line(s) repeating an earlier line of this batch",
        ),
    ):
        if count:
            shown = ", ".join(ids) + ("…" if count > len(ids) else "")
            click.echo(f"{verb} {count} {what}: {shown}")
    if not result.appended and not result.skipped:
        click.echo("Nothing to append")
    if result.dry_run:
        click.echo("Dry run: every check passed; nothing was written")


def _after_append(session: Session) -> None:
    """Keep the read side current after each committed append.

    Nothing to do when the append projected its own events in its transaction (the
    read models were current when it began, so they are current at its commit):
    a single append then opens no second connection.
    """
    ledger = session.ledger()
    projections = ledger.inline_projections
    if projections and all(getattr(p, "active", False) for p in projections):
        return
    try:
        session.reader()
    except Exception as error:  # the append is committed: not "nothing was written"
        detail = _first_line(error) or repr(error)
        raise click.ClickException(
            "the append above is committed, but the read side could not catch up after "
            f"it ({detail}); reads catch up by themselves, so the next one (or "
            "`enforcement-ledger follow --once`) does it: do not append it again"
        ) from None


class _InputFile(click.File):
    """A FILE to read, ``-`` for standard input: started with that closed (`<&-`),
    there is nothing to read, which click reports as a RuntimeError (an "internal
    failure" that sent people to check the store)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "-" and sys.stdin is None:
            raise click.ClickException("standard input is closed; nothing was read or written")
        return super().convert(value, param, ctx)


@cli.command()
@click.argument("file", type=_InputFile("rb"), default="-")
@actor_option
@click.option(
    "--sort",
    "in_dependency_order",
    is_flag=True,
    help="Append the lines in dependency order, not as given: retractions of recorded "
    "events first, then subject registrations, then every other event (platform renames "
    "too) by occurred_at, each retraction of a line after its target (see README); "
    "errors still name input lines.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check everything an append checks, then write nothing: what it would append.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def append(
    session: Session,
    file: IO[bytes],
    actor: str | None,
    in_dependency_order: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Append events from JSON Lines (FILE, or - for stdin): all or nothing.

    Each line is one event object with a "type". Lines whose event_id is already
    recorded with identical content are skipped; one bad line rejects the batch.
    Lines are checked in the order given, each after the lines it needs; --sort
    first orders a dump in any other order (spooled to a temporary file).

    \b
    Example:
      enforcement-ledger append events.jsonl
      cat events.jsonl | enforcement-ledger append --json -
      enforcement-ledger append --sort shuffled-dump.jsonl
      enforcement-ledger append --dry-run events.jsonl
    """
    session.dry_run = dry_run
    ledger = session.writing_ledger()
    if file.isatty():  # `append` typed alone would otherwise wait without a word
        click.echo(
            "Reading events from the terminal, one JSON object a line; end with Ctrl-D "
            "(nothing is appended before then)",
            err=True,
        )
    if in_dependency_order:
        from ledger.application import LedgerError
        from ledger.ordering import DependencyOrder

        with DependencyOrder(_input_lines(file), ledger.recorded_events) as ordered:
            try:
                result = ledger.append(
                    ordered.events, actor=_actor(actor), dry_run=dry_run, time_ordered=True
                )
            except LedgerError as refused:
                # Never refused for being sorted: a batch of corrections the rules accept
                # as given (a shape the sort misreads) goes in as given. Only a batch
                # with retractions: no other shape is misread, and a refused batch is
                # then checked twice.
                if not ordered.has_retractions:
                    raise
                try:
                    result = ledger.append(
                        ordered.events_as_given, actor=_actor(actor), dry_run=dry_run
                    )
                except LedgerError as as_given:
                    if ordered.fails_in_both(refused, as_given) is as_given:
                        raise as_given from None
                    raise refused from None
    else:
        replayable = _replayable(file)
        result = ledger.append(
            lambda: _read_lines(_rewound(replayable)), actor=_actor(actor), dry_run=dry_run
        )
    # Said before the read side catches up: a failure there (or Ctrl-C) is after the
    # commit, and the batch is in whatever follows.
    session.committed = result
    _report(result, as_json)
    session.warn_after_append(result)
    if not dry_run:
        _after_append(session)


def _export_option(help_text: str) -> Callable[[F], F]:
    """--export FILE: an `export --nl` file (verify and copy read one)."""
    return click.option(
        "--export", "export_file", type=click.Path(exists=True, dir_okay=False), help=help_text
    )


def _checkpoint_option(help_text: str) -> Callable[[F], F]:
    """--checkpoint FILE, repeatable: signed checkpoints given beside an export."""
    return click.option(
        "--checkpoint",
        "checkpoint_files",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help=help_text,
    )


def _verifier_keys(vkeys: tuple[str, ...]) -> list[Any]:
    """The --vkey values as verifiers; one that holds no verifier key is a usage error
    (exit 2), unlike a well-formed key that did not sign (a verification failure)."""
    from ledger.integrity import parse_vkeys
    from ledger.location import KeyError_

    try:
        return parse_vkeys(vkeys)
    except KeyError_ as error:
        raise click.UsageError(str(error)) from None


def _vkey_option(help_text: str) -> Callable[[F], F]:
    """--vkey KEY, repeatable: a C2SP verifier key, or a file holding one."""
    return click.option("--vkey", "vkeys", multiple=True, metavar="KEY", help=help_text)


@cli.command("copy")
@click.argument("source", metavar="[SOURCE]", required=False, callback=_given_value)
@_export_option("Copy from an `export --nl` file instead of a store.")
@_checkpoint_option("With --export: a signed checkpoint of that log to keep; repeatable.")
@_vkey_option("With --checkpoint: the log's verifier key (or a file holding one).")
@click.pass_obj
def copy_command(
    session: Session,
    source: str | None,
    export_file: str | None,
    checkpoint_files: tuple[str, ...],
    vkeys: tuple[str, ...],
) -> None:
    """Copy the whole log of the ledger at SOURCE into this store, verbatim.

    For moving a ledger, e.g. from SQLite to PostgreSQL. The copy keeps every event
    as it was stored (event_id, sequence, recorded_at, actor) and the signed
    checkpoints, so its Merkle roots are the source's and the source's verifier key
    verifies it. Every event is validated and checked against the rules on the way
    in; one failure copies nothing. This store is created with the source's origin
    if it does not exist yet (a SQLite store or a PostgreSQL schema so created is
    removed again if the copy fails); if it does, it must be empty, with the same
    origin.

    With --export instead of SOURCE, the log comes from an `export --nl` file (an
    auditor's copy), with any signed checkpoints of it given by --checkpoint and
    checked against --vkey: the store then answers status, timeline and every
    --as-of / --known-at question about exactly that log. The checkpoints give it
    the log's origin (its name); without any, the copy is a log of this store's own
    origin, the same leaves and roots under another name, and a checkpoint saved
    from the source names another log (`verify --trusted` then refuses it).

    \b
    Example:
      enforcement-ledger --store "postgresql://…/db?schema=newsroom" copy ledger.db
      enforcement-ledger --store "postgresql://…/db?schema=newsroom" verify --vkey ledger.vkey
      enforcement-ledger --store audit.db copy --export ledger.jsonl \\
          --checkpoint latest.checkpoint --vkey "$(cat ledger.vkey)"
    """
    if (source is None) == (export_file is None):
        raise click.UsageError("give SOURCE (a ledger store) or --export FILE, one of them")
    if export_file is None and (checkpoint_files or vkeys):
        raise click.UsageError("--checkpoint and --vkey go with --export")
    if export_file is not None:
        _copy_export(session, export_file, checkpoint_files, vkeys)
        return
    assert source is not None
    from ledger.application import Ledger
    from ledger.location import NoLedgerError, StoreError, StoreLocation

    try:
        parsed = StoreLocation.parse(source)
    except StoreError as error:  # a malformed SOURCE: a usage error, as a bad --store is
        raise click.BadParameter(str(error), param_hint="SOURCE") from None
    source_ledger = Ledger(parsed)
    try:
        try:
            source_ledger.storage.require()
        except StoreError as error:
            # Without the advice meant for this store ("run init", "choose another with
            # --store"): the source is read, never created.
            missing = isinstance(error, NoLedgerError)
            advice = "copy reads an existing ledger" if missing else None
            if hint := _export_hint(source):
                advice = f"{advice}; {hint}" if advice else hint
            raise StoreError(f"SOURCE: {error.problem}", advice) from None
        with _created_for_copy(session, source_ledger.origin):
            result, checkpoints = session.writing_ledger().copy_from(source_ledger)
    finally:
        source_ledger.close()
    click.echo(
        f"Copied {result.appended} event(s) and {checkpoints} signed checkpoint(s) "
        f"from {source_ledger.location.display}"
    )
    _warn_if_not_analyzed(result, "copy")
    _after_append(session)


def _export_hint(path: str) -> str | None:
    """For a file that starts as an export does, not as SQLite: how to copy it (an
    `export --nl` file) or what to export instead (`--json`, `--csv`, which a copy
    cannot read: they are not the stored leaves)."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()
    except OSError:  # a URL, a directory, a file that is not there
        return None
    if start.startswith(b"{"):
        return f"for an `export --nl` file use `copy --export {shlex.quote(path)}`"
    if start.startswith(b"[") or start.startswith(b"sequence,"):
        return (
            "it looks like an `export --json` or `--csv` file, which holds no stored leaves; "
            "export the log with `export --nl` and copy that with `copy --export FILE`"
        )
    return None


def _copy_export(
    session: Session, export_file: str, checkpoint_files: tuple[str, ...], vkeys: tuple[str, ...]
) -> None:
    """`copy --export`: the log of an export file, with its checked checkpoints."""
    from ledger.application import SourceCheckpoint
    from ledger.integrity import IntegrityError, read_checkpoint_file
    from ledger.notes import CheckpointError, NoteError, open_checkpoint
    from ledger.vocabulary import iso

    verifiers = _verifier_keys(vkeys)
    if checkpoint_files and not verifiers:
        raise click.UsageError(
            "--checkpoint needs --vkey: a signature is checked before it is kept"
        )
    if verifiers and not checkpoint_files:
        # The key checks checkpoint signatures only: with none given, nothing would be.
        raise click.UsageError(
            "--vkey checks the signatures of --checkpoint files, and none was given: the "
            "export alone would be copied unchecked. Give its checkpoints, or verify it "
            "first (`verify --export FILE --checkpoint F --vkey KEY`)"
        )
    checkpoints: list[SourceCheckpoint] = []
    origins = set()
    # Kept as of now: a checkpoint file does not say when it was signed.
    now = iso(datetime.now(UTC))
    for path in checkpoint_files:
        text = read_checkpoint_file(path).text
        try:
            checkpoint, _ = open_checkpoint(text, verifiers)
        except (NoteError, CheckpointError) as error:
            raise IntegrityError(f"checkpoint {path}: {error}") from None
        origins.add(checkpoint.origin)
        if any(kept.note == text for kept in checkpoints):
            continue  # the same checkpoint given twice (two copies of one file) is one
        checkpoints.append(SourceCheckpoint(checkpoint.size, checkpoint.root_hash, text, now))
    if len(origins) > 1:
        raise IntegrityError(f"the checkpoints name {len(origins)} logs: {sorted(origins)}")
    origin = origins.pop() if origins else _default_origin(session.location)
    with _created_for_copy(session, origin), open(export_file, "rb") as handle:
        ledger = session.writing_ledger()
        result = ledger.copy_log(
            _export_leaves(handle), checkpoints, origin=origin if checkpoints else ledger.origin
        )
    click.echo(
        f"Copied {result.appended} event(s) and {len(checkpoints)} signed checkpoint(s) "
        f"from {export_file}"
    )
    _warn_if_not_analyzed(result, "copy")
    _after_append(session)
    signed = max((c.size for c in checkpoints), default=0)
    if signed < result.appended:
        # The store answers from these events too, and no signature vouches for them.
        click.echo(
            f"warning: sequence {signed}..{result.appended - 1}: covered by no signed "
            "checkpoint given, so nothing shows they are the operator's (`verify "
            "--all-signed` fails on them)",
            err=True,
        )


class RecordGroup(StrictGroup):
    """`record TYPE`: one subcommand per event type, options generated from its model."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from ledger.vocabulary import EVENT_TYPE_NAMES

        return [name.replace("_", "-") for name in EVENT_TYPE_NAMES]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from ledger.events import EVENT_TYPES

        name = cmd_name.replace("-", "_")
        model = EVENT_TYPES.get(name)
        return _record_command(name, model) if model is not None else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:
            # click suggests from the commands made so far: none, as they are made lazily.
            from ledger.vocabulary import event_type_meant

            meant = event_type_meant(args[0])
            if meant is None:
                raise
            command = meant.replace("_", "-")
            raise click.exceptions.NoSuchCommand(
                args[0], f"No such command {args[0]!r}. Did you mean {command!r}?", ctx=ctx
            ) from None


def _field_help(description: str | None, *, repeated: bool) -> str:
    text = (description or "").strip()
    if not repeated:
        return text
    return (text.rstrip(".") + ". " if text else "") + "Repeat the option for several."


class _JsonInteger(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """A number spelt as a JSON line spells it: Python's int() also takes "1_000",
    " 5" and other scripts' digits, which `append` refuses for the same event. It is
    read as JSON reads it and the model judges it, as in a line (5.0 and 1e3 are whole
    numbers, 5.5 is not)."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if not re.fullmatch(
            r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?", str(value), flags=re.ASCII
        ):
            self.fail(f"{value!r} is not a number as JSON writes it, e.g. 1000", param, ctx)
        # Exactly as written: a float would round 9007199254740990.5 or 1e-400 whole.
        from decimal import Decimal

        number = Decimal(value)
        if number.is_zero():  # 0e999: its exponent says nothing of its size
            return 0
        if number.copy_abs().adjusted() > 20:  # not made an int of a million digits
            bound = "at least 0" if number < 0 else "at most 2**53 - 1"
            self.fail(f"expected a whole number {bound}, given {value!r}", param, ctx)
        if number != number.to_integral_value():
            self.fail(f"expected a whole number, given {value!r}", param, ctx)
        return int(number)


def _completing(values: tuple[str, ...]) -> Callable[..., list[Any]]:
    """Shell completion of a closed set of values (a str option, so that a wrong one
    gets the model's own error, not click's)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(value) for value in values if value.startswith(incomplete)]

    return complete


def _record_command(type_name: str, model: Any) -> click.Command:
    import typing

    params: list[click.Parameter] = []
    for field_name, info in model.model_fields.items():
        if field_name in ("type", "occurred_at_precision"):
            continue
        origin = typing.get_origin(info.annotation)
        args = typing.get_args(info.annotation)
        is_list = (
            info.annotation is list
            or origin is list
            or any(typing.get_origin(a) is list for a in args)
        )
        is_int = info.annotation is int or int in args
        if typing.get_origin(info.annotation) is typing.Annotated:
            is_int = is_int or args[0] is int
        # A closed set of values (kind, outcome) is named in --help; the model still
        # validates it, so a wrong value gets the same error as in a JSON line.
        literal = next(
            (
                typing.get_args(a)
                for a in (info.annotation, *args)
                if typing.get_origin(a) is typing.Literal
            ),
            None,
        )
        params.append(
            click.Option(
                ["--" + field_name.replace("_", "-"), field_name],
                multiple=is_list,
                type=_JsonInteger() if is_int else str,
                metavar=f"[{'|'.join(literal)}]" if literal else None,
                required=info.is_required(),
                help=_field_help(info.description, repeated=is_list),
                shell_complete=_completing(literal) if literal else None,
            )
        )
    params.append(
        click.Option(
            ["--actor"],
            envvar="ENFORCEMENT_LEDGER_ACTOR",
            show_envvar=True,
            help="Who is recording (default: the OS user).",
        )
    )
    params.append(
        click.Option(
            ["--dry-run"],
            is_flag=True,
            help="Check everything, then write nothing: what it would append.",
        )
    )
    params.append(click.Option(["--json", "as_json"], is_flag=True, help="Summary as JSON."))

    @click.pass_obj
    def callback(
        session: Session, /, actor: str | None, dry_run: bool, as_json: bool, **fields: Any
    ) -> None:
        from ledger.events import parse_event

        session.dry_run = dry_run
        data: dict[str, Any] = {"type": type_name}
        for key, value in fields.items():
            if value is None or value == ():
                continue
            if isinstance(value, tuple):
                listed = next((item for item in value if "," in item), None)
                if listed is not None:  # the lists hold slugs, which have no commas
                    option = "--" + key.replace("_", "-")
                    values = " ".join(f"{option} {v.strip()}" for v in listed.split(","))
                    raise click.BadParameter(
                        f"one value each time, repeated: {values} (given {listed!r})",
                        param_hint=option,
                    )
            data[key] = list(value) if isinstance(value, tuple) else value
        event = parse_event(data)
        from ledger.application import LedgerError  # only now: bad flags load no more

        try:
            result = session.writing_ledger().append(
                [(1, event)], actor=_actor(actor), dry_run=dry_run
            )
        except LedgerError as error:
            raise error.without_line() from None  # flags have no input line
        # The id the ledger made, named: a retraction or an appeal of it needs it (a
        # dry run's is made again by the append, so it names none).
        session.committed = result
        _report(result, as_json, generated_id=None if dry_run else result.last_assigned_id)
        session.warn_after_append(result)
        if not dry_run:
            _after_append(session)

    required = [n for n, i in model.model_fields.items() if i.is_required() and n != "type"]
    doc = (model.__doc__ or "").strip()
    help_text = (
        f"Record one {type_name} event from flags.\n\n"
        + (doc + "\n\n" if doc and not doc.startswith("Fields") else "")
        + f"\b\nExample:\n{_record_example(type_name, required)}"
    )
    return StrictCommand(
        type_name.replace("_", "-"), params=params, callback=callback, help=help_text
    )


# Values for the examples in `record TYPE --help`: each example is a valid event
# (tests/test_events_schema.py runs them), though its account must exist to be recorded.
_EXAMPLE_VALUES = {
    "account": "twitter:example",
    "platform": "twitter",
    "handle": "@example",
    "subject": "example_person",
    "name": "Example Person",
    "kind": "person",
    "count": "1000",
    "post": "post-1",
    "policy": "Hateful Conduct",
    "reason": "In the public interest",
    "restrictions": "read_only",
    "exemption": "un_recognised_government_official",
    "appeal": "appeal-1",
    "target": "evt-1",
    "outcome": "overturned",
    "occurred_at": "2024-02-08",
    "source": "https://example.org/report",
}
_EXAMPLE_OVERRIDES = {("platform_renamed", "name"): "X", ("event_retracted", "reason"): "Typo"}
# Optional fields an example needs: an exemption names its account or its subject.
_EXAMPLE_CHOICES = {"exemption_applied": ["subject"], "exemption_revoked": ["subject"]}


def _record_example(type_name: str, fields: list[str]) -> str:
    """`enforcement-ledger record TYPE --field value …`, wrapped as a shell line."""
    import shlex

    words = [f"enforcement-ledger record {type_name.replace('_', '-')}"]
    common = ("occurred_at", "source")  # every type has them: last, after what is its own
    fields = _EXAMPLE_CHOICES.get(type_name, []) + fields
    for field in [f for f in fields if f not in common] + [f for f in fields if f in common]:
        value = _EXAMPLE_OVERRIDES.get((type_name, field), _EXAMPLE_VALUES.get(field, "…"))
        words.append(f"--{field.replace('_', '-')} {shlex.quote(value)}")
    lines = ["  " + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + len(word) + 3 > 78:
            lines[-1] += " \\"
            lines.append("      " + word)
        else:
            lines[-1] += " " + word
    return "\n".join(lines)


@cli.group(cls=RecordGroup)
def record() -> None:
    """Record one event from flags; options come from the event schema.

    \b
    Example (an account is registered before anything happens to it):
      enforcement-ledger record account-registered --account twitter:example \\
          --platform twitter --handle @example --occurred-at 2020-01-01 \\
          --source https://example.org/report
      enforcement-ledger record account-suspended --account twitter:example \\
          --occurred-at 2021-01-08T16:00:00Z --policy "Glorification of violence" \\
          --source https://example.org/report
    """


# --- read commands --------------------------------------------------------------


class RowCount(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """A --limit or --offset. Both stores hold row counts in signed 64 bits: a larger
    one was an internal failure (the driver's overflow), not a usage error."""

    name = "N"
    largest = 2**63 - 1

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        # Digits only: Python's int() also reads "1_000", " 5" and "٥" (Arabic five).
        text = str(value)
        number = int(text) if text.isascii() and text.isdigit() else -1
        if not 0 <= number <= self.largest:
            self.fail(f"expected a whole number from 0 to {self.largest}, given {value!r}")
        return number


ROW_COUNT = RowCount()


def paging_options(func: F) -> F:
    """--limit / --offset for a listing that streams its rows: the command receives
    ``page``, which cuts an iterator of rows (as timeline's and counts' own do)."""

    @functools.wraps(func)
    def with_page(*args: Any, limit: int | None, offset: int, **kwargs: Any) -> Any:
        def page(rows: Iterable[Any]) -> Iterator[Any]:
            # islice takes no bound past sys.maxsize (2**63 - 1 here): "no limit" then.
            stop = None if limit is None else min(offset + limit, sys.maxsize)
            return itertools.islice(rows, offset, stop)

        return func(*args, page=page, **kwargs)

    with_page = click.option(
        "--offset", type=ROW_COUNT, default=0, help="Skip this many rows first."
    )(with_page)
    with_page = click.option("--limit", type=ROW_COUNT, help="At most this many rows.")(with_page)
    return with_page  # type: ignore[return-value]


as_of_option = click.option(
    "--as-of",
    metavar="TIME",
    help="Valid time: what was true then (default: --known-at's time, else now).",
    callback=_given_value,
)
known_at_option = click.option(
    "--known-at",
    metavar="TIME",
    help="Record time: what the ledger knew then (default now, or the newest record time "
    "if a clock behind made it later); alone, the answer "
    "the ledger gave then.",
    callback=_given_value,
)


def _moment(session: Session, as_of: str | None, known_at: str | None) -> Any:
    """The moment asked about, its times read before the store is opened."""
    from projections.queries import Moment

    given_as_of = _parse_time(as_of, "--as-of") if as_of else None
    # Record time defaults to the ledger's present (a clock ahead may have recorded
    # past this one's now); valid time to this clock's: a record time ahead of it is
    # no reason to answer for a moment still to come (a suspension's `until`).
    clock = datetime.now(UTC)
    known = _known_at(session, known_at, clock)
    # --known-at alone asks what the ledger said then: as of then too (a suspension
    # that has ended by its `until` since still shows). Both given: the two axes apart.
    # A record time still to come knows what is known now: as of now, not a forecast.
    return Moment(as_of=given_as_of or min(known, clock), known_at=known)


def _known_at(session: Session, known_at: str | None, clock: datetime | None = None) -> datetime:
    """--known-at, else the present as the ledger knows it (see ledger_now; ``clock``:
    this clock's now, read once by a caller that needs it too)."""
    from projections.queries import ledger_now

    if known_at:
        return _parse_time(known_at, "--known-at")
    return ledger_now(session.reader(), clock)


@cli.command()
@click.argument("account", callback=_given_value)
@as_of_option
@known_at_option
@click.option(
    "--history",
    is_flag=True,
    help="Every period of the account's status over valid time, from its registration "
    "(from inclusive, to exclusive), as known at --known-at.",
)
@output_options
@click.pass_obj
def status(
    session: Session,
    account: str,
    as_of: str | None,
    known_at: str | None,
    history: bool,
    fmt: str,
) -> None:
    """Status of one ACCOUNT: active, restricted, suspended or removed.

    \b
    Example:
      enforcement-ledger status twitter:khamenei_ir
      enforcement-ledger status instagram:khamenei_ir --as-of 2024-02-09 --json
      enforcement-ledger status twitter:example --known-at 2024-03-01T12:00:00Z
      enforcement-ledger status twitter:realDonaldTrump --history --csv
    """
    from projections.queries import account_status

    if history:
        if as_of is not None:
            raise click.UsageError("--history covers all valid time: give it without --as-of")
        from projections.queries import status_history

        known = _known_at(session, known_at)
        periods = status_history(session.reader(), account, known)
        write_rows(iter(periods), fmt, HISTORY_COLUMNS, table_columns=HISTORY_TABLE)
        return
    moment = _moment(session, as_of, known_at)
    document = account_status(session.reader(), account, moment)
    if fmt == "table":
        for key in STATUS_COLUMNS:
            value = document[key]
            if key == "exemptions":
                value = (
                    ", ".join(f"{e['exemption']} ({e['holder']}, {e['policy']})" for e in value)
                    or "none"
                )
            elif key == "restrictions":
                if value is None:
                    continue  # only a restriction has them
                value = ", ".join(value) or "none given"
            label = f"{key + ':':<14}"  # "restrictions:" is the longest label
            click.echo(f"{label}{'' if value is None else printable(str(value))}")
        return
    write_document(document, fmt, STATUS_COLUMNS)


def _account_or_selection(
    session: Session,
    account: str | None,
    platform: str | None,
    subject: str | None,
    as_of: str | None,
    known_at: str | None,
) -> tuple[Any, Any]:
    """The reader and moment of a command over ACCOUNT, or over the accounts that
    --platform and --subject select (posts, appeals)."""
    if account is not None and (platform or subject):
        raise click.UsageError(
            "--platform and --subject select accounts: give them without ACCOUNT"
        )
    db, moment = session.reader(), _moment(session, as_of, known_at)
    _check_platform(db, platform)
    _note_unregistered(db, subject=subject)
    return db, moment


@cli.command(name="posts")
@click.argument("account", required=False, callback=_given_value)
@click.option(
    "--platform",
    help="Without ACCOUNT: the posts of every account on this platform.",
    callback=_given_value,
)
@click.option(
    "--subject",
    help="Without ACCOUNT: the posts of every account of this subject.",
    callback=_given_value,
)
@click.option("--post", help="Only this post id.", callback=_given_value)
@click.option(
    "--state",
    "state_filter",
    type=click.Choice(["visible", "warning_screen", "removed"]),
    help="Only posts in this state.",
)
@as_of_option
@known_at_option
@paging_options
@output_options
@click.pass_obj
def posts_command(
    session: Session,
    account: str | None,
    platform: str | None,
    subject: str | None,
    post: str | None,
    state_filter: str | None,
    as_of: str | None,
    known_at: str | None,
    fmt: str,
    page: Callable[[Iterable[Any]], Iterator[Any]],
) -> None:
    """The posts of ACCOUNT (or of every account) and their state: visible,
    warning_screen or removed.

    Each with the event that put it there (its policy, reason and exception: e.g. a
    post kept behind a screen in the public interest) and its account's status then
    (a post is "visible" unless removed itself, even on a removed account), as of a
    valid time and as known at a record time.

    \b
    Example:
      enforcement-ledger posts twitter:khamenei_ir
      enforcement-ledger posts twitter:khamenei_ir --post oct-7-praise --as-of 2023-10-08
      enforcement-ledger posts --platform twitter --state warning_screen --csv
    """
    from projections.queries import every_accounts_posts, post_holders, posts

    db, moment = _account_or_selection(session, account, platform, subject, as_of, known_at)
    holders = None  # the accounts publishing --post, once read
    if account is not None:
        rows: Iterator[dict[str, Any]] = iter(
            posts(db, account, moment, post=post, state=state_filter)
        )
        table = POSTS_TABLE
    else:
        # Read once, for the rows and for an empty answer's note.
        holders = None if post is None else post_holders(db, post)
        rows = every_accounts_posts(
            db,
            moment,
            platform=platform,
            subject=subject,
            post=post,
            state=state_filter,
            holders=holders,
        )
        table = ["account", *POSTS_TABLE]
    if post is not None:
        # An empty answer for a post id never published says so, as an unregistered
        # --account does (not for one only screened or published later).
        first = next(rows, None)
        if first is None:
            from projections.queries import unpublished_post_hint

            hint = unpublished_post_hint(db, post, account, holders)
            if hint is not None:
                where = "in this ledger" if account is None else f"on {account!r}"
                click.echo(f"note: no post {post!r} is published {where}{hint}", err=True)
        else:
            rows = itertools.chain([first], rows)
    write_rows(page(rows), fmt, POST_COLUMNS, table_columns=table, empty_message="(no posts)")


APPEAL_COLUMNS = [
    "account",
    "appeal",
    "state",
    "outcome",
    "target",
    "target_type",
    "post",
    "policy",
    "filed_at",
    "decided_at",
    "filed_event",
    "decided_event",
    "as_of",
    "known_at",
]
APPEALS_TABLE = ["appeal", "state", "outcome", "target_type", "policy", "filed_at", "decided_at"]


@cli.command(name="appeals")
@click.argument("account", required=False, callback=_given_value)
@click.option(
    "--platform",
    help="Without ACCOUNT: the appeals on every account on this platform.",
    callback=_given_value,
)
@click.option(
    "--subject",
    help="Without ACCOUNT: the appeals on every account of this subject.",
    callback=_given_value,
)
@click.option(
    "--state",
    "state_filter",
    type=click.Choice(["pending", "decided"]),
    help="Only appeals in this state at --as-of.",
)
@as_of_option
@known_at_option
@paging_options
@output_options
@click.pass_obj
def appeals_command(
    session: Session,
    account: str | None,
    platform: str | None,
    subject: str | None,
    state_filter: str | None,
    as_of: str | None,
    known_at: str | None,
    fmt: str,
    page: Callable[[Iterable[Any]], Iterator[Any]],
) -> None:
    """The appeals of ACCOUNT (or of every account): pending or decided, and how.

    Each with the action appealed against (its type and policy), when it was filed and
    decided, and the outcome, as of a valid time and as known at a record time.

    \b
    Example:
      enforcement-ledger appeals twitter:example
      enforcement-ledger appeals --platform instagram --state pending --csv
    """
    from projections.queries import appeals, every_accounts_appeals

    db, moment = _account_or_selection(session, account, platform, subject, as_of, known_at)
    if account is not None:
        rows: Iterator[dict[str, Any]] = iter(appeals(db, account, moment, state=state_filter))
        table = APPEALS_TABLE
    else:
        rows = every_accounts_appeals(
            db, moment, platform=platform, subject=subject, state=state_filter
        )
        table = ["account", *APPEALS_TABLE]
    write_rows(page(rows), fmt, APPEAL_COLUMNS, table_columns=table, empty_message="(no appeals)")


SUBJECT_COLUMNS = [
    "subject",
    "name",
    "kind",
    "roles",
    "country",
    "accounts",
    "divergent",
    "as_of",
    "known_at",
]
SUBJECTS_TABLE = ["subject", "name", "divergent", "platforms"]


def _with_platform_summary(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Table rows: each subject's accounts as 'facebook removed, twitter active
    (exempt: …)' (a count where one platform holds several accounts alike)."""
    for row in rows:
        tally: dict[tuple[str, str], int] = {}
        for held in row["accounts"]:
            exempt = sorted({e["exemption"] for e in held["exemptions"]})
            shown = held["status"] + (f" (exempt: {', '.join(exempt)})" if exempt else "")
            key = (held["platform"], shown)
            tally[key] = tally.get(key, 0) + 1
        parts = [f"{p} {s}" + (f" x{n}" if n > 1 else "") for (p, s), n in sorted(tally.items())]
        yield {**row, "platforms": ", ".join(parts) or "(no accounts)"}


@cli.command(name="subjects")
@click.option("--subject", help="Only this subject id.", callback=_given_value)
@click.option(
    "--divergent",
    is_flag=True,
    help="Only subjects whose accounts are not all in one status (treated differently).",
)
@as_of_option
@known_at_option
@paging_options
@output_options
@click.pass_obj
def subjects_command(
    session: Session,
    subject: str | None,
    divergent: bool,
    as_of: str | None,
    known_at: str | None,
    fmt: str,
    page: Callable[[Iterable[Any]], Iterator[Any]],
) -> None:
    """Every subject with its accounts' statuses side by side, across platforms.

    A subject is divergent when its accounts are not all in one status: the same
    person removed on one platform and active on another.

    \b
    Example:
      enforcement-ledger subjects --divergent
      enforcement-ledger subjects --as-of 2024-02-09 --json
    """
    from projections.queries import subjects

    db = session.reader()
    _note_unregistered(db, subject=subject)
    moment = _moment(session, as_of, known_at)
    rows = page(subjects(db, moment, subject=subject, divergent=divergent))
    if fmt == "table":
        rows = _with_platform_summary(rows)
    write_rows(
        rows, fmt, SUBJECT_COLUMNS, table_columns=SUBJECTS_TABLE, empty_message="(no subjects)"
    )


@cli.command(name="accounts")
@click.option("--platform", help="Only accounts on this platform slug.", callback=_given_value)
@click.option("--subject", help="Only accounts of this subject id.", callback=_given_value)
@click.option(
    "--status",
    "status_filter",
    type=click.Choice(["active", "restricted", "suspended", "removed"]),
    help="Only accounts in this status.",
)
@as_of_option
@known_at_option
@click.option(
    "--history",
    is_flag=True,
    help="Every period of each account's status over valid time, as in `status "
    "--history` (with --status, only the periods in that status).",
)
@paging_options
@output_options
@click.pass_obj
def accounts_command(
    session: Session,
    platform: str | None,
    subject: str | None,
    status_filter: str | None,
    as_of: str | None,
    known_at: str | None,
    history: bool,
    fmt: str,
    page: Callable[[Iterable[Any]], Iterator[Any]],
) -> None:
    """Every account with its status, across platforms.

    \b
    Example:
      enforcement-ledger accounts --subject khamenei
      enforcement-ledger accounts --status removed --csv > removed.csv
      enforcement-ledger accounts --platform twitter --status suspended --history --csv
    """
    from projections.queries import accounts

    db = session.reader()
    _check_platform(db, platform)
    _note_unregistered(db, subject=subject)
    if history:
        if as_of is not None:
            raise click.UsageError("--history covers all valid time: give it without --as-of")
        from projections.queries import every_accounts_history

        periods = every_accounts_history(
            db,
            _known_at(session, known_at),
            platform=platform,
            subject=subject,
            status=status_filter,
        )
        write_rows(page(periods), fmt, HISTORY_COLUMNS, empty_message="(no periods)")
        return
    rows = page(
        accounts(
            db,
            _moment(session, as_of, known_at),
            platform=platform,
            subject=subject,
            status=status_filter,
        )
    )
    if fmt == "table":
        rows = _with_exemption_names(rows)
    write_rows(
        rows, fmt, STATUS_COLUMNS, table_columns=ACCOUNTS_TABLE, empty_message="(no accounts)"
    )


def _check_platform(db: Any, platform: str | None) -> None:
    """Refuse a platform's display name where its slug is meant, naming the slug."""
    if not platform:
        return
    from ledger.vocabulary import SLUG, SLUG_MEANING
    from projections.queries import platforms, renamed_platform

    renamed = renamed_platform(db, platform)
    if renamed is not None:
        slug, name, when = renamed
        raise click.BadParameter(
            f"no platform has the slug {platform!r}; {name!r} is the name platform "
            f"{slug!r} took on {when}, and filters name a platform by its slug, which "
            f"never changes: --platform {slug}",
            param_hint="--platform",
        )
    known = platforms(db)
    if not re.fullmatch(SLUG, platform):
        # No event can be on it (a display name, capitals, a space): said so, with the
        # slug likely meant only where the ledger holds it.
        import unicodedata

        lowered = unicodedata.normalize("NFKC", platform).strip().lower()
        meant = (
            f"--platform {lowered}"
            if lowered in known
            else (f"its platforms are {', '.join(known)}" if known else "it has no platforms")
        )
        raise click.BadParameter(
            f"no platform has the slug {platform!r} ({SLUG_MEANING}); {meant}",
            param_hint="--platform",
        )
    if platform not in known:
        # Like an unregistered id: the answer stays what was asked (nothing), said why.
        listed = f"; its platforms are {', '.join(known)}" if known else ""
        click.echo(f"note: no event in this ledger is on platform {platform!r}{listed}", err=True)


def _note_unmatched_text(db: Any, selection: Any) -> None:
    """A --policy or --actor no event has matches nothing (a policy is each platform's
    own text, matched exactly): say so on stderr, with the values likely meant."""
    from projections.queries import unmatched_text_hint

    for column in ("policy", "actor"):
        given = getattr(selection, column)
        if given and (hint := unmatched_text_hint(db, column, given)) is not None:
            click.echo(f"note: no event in this ledger has {column} {given!r}{hint}", err=True)


def _note_unregistered(db: Any, account: str | None = None, subject: str | None = None) -> None:
    """An --account or --subject the ledger never registered matches nothing: say so on
    stderr (the output stays what was asked), with the registered id likely meant."""
    from projections.queries import ever_registered, meant_hint

    for field, given in (("account", account), ("subject", subject)):
        if given and not ever_registered(db, field, given):
            hint = meant_hint(db, field, given)
            click.echo(f"note: no {field} {given!r} is registered in this ledger{hint}", err=True)


def selection_options(func: F) -> F:
    """The event filters shared by `timeline` and `counts`."""
    options = [
        click.option("--account", help="Events about this account.", callback=_given_value),
        click.option(
            "--subject",
            help="Events about this subject and all its accounts.",
            callback=_given_value,
        ),
        click.option("--platform", help="Events on this platform slug.", callback=_given_value),
        click.option(
            "--type",
            "types",
            multiple=True,
            help="Event type; repeat for several.",
            callback=_given_value,
            shell_complete=_complete_event_types,
        ),
        click.option("--policy", help="Events citing exactly this policy.", callback=_given_text),
        click.option("--actor", help="Events recorded by this actor.", callback=_given_text),
        click.option(
            "--since", metavar="TIME", help="Occurred at or after TIME.", callback=_given_value
        ),
        click.option(
            "--until",
            metavar="TIME",
            help="Occurred at or before TIME; a date alone includes its day.",
            callback=_given_value,
        ),
        click.option(
            "--recorded-since",
            metavar="TIME",
            help="Recorded by the ledger at or after TIME: with --known-at, what was "
            "added between the two. To follow the ledger, give the newest recorded_at "
            "you hold, not the wall clock (a batch being written records its start).",
            callback=_given_value,
        ),
        known_at_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _selection(
    session: Session, filters: dict[str, Any], limit: int | None = None, offset: int = 0
) -> tuple[Any, datetime]:
    """The TimelineFilter and record time that selection_options' values ask for."""
    from ledger.vocabulary import EVENT_TYPE_NAMES
    from projections.queries import TimelineFilter

    types = tuple(t.replace("-", "_") for t in filters["types"])
    unknown = [t for t in types if t not in EVENT_TYPE_NAMES]
    if unknown:
        from ledger.vocabulary import event_type_meant

        meant = event_type_meant(unknown[0])
        hint = f" (did you mean {meant!r}?)" if meant else ""
        raise click.BadParameter(
            f"unknown type {unknown[0]!r}{hint}; expected one of: {', '.join(EVENT_TYPE_NAMES)}",
            param_hint="--type",
        )
    since, until = filters["since"], filters["until"]
    since_time = _parse_time(since, "--since") if since else None
    until_time = _parse_time(until, "--until", whole_day=True) if until else None
    if since_time and until_time and since_time > until_time:
        raise click.BadParameter(
            f"--since {since} is later than --until {until}: the range is empty",
            param_hint="--since/--until",
        )
    recorded = filters["recorded_since"]
    recorded_since = _parse_time(recorded, "--recorded-since") if recorded else None
    known_at = _known_at(session, filters["known_at"])
    if recorded_since and recorded_since > known_at:
        asked = "--known-at" if filters["known_at"] else "now; the newest record time if later"
        raise click.BadParameter(
            f"--recorded-since {recorded} is later than the record time asked for "
            f"({asked}): the range is empty",
            param_hint="--recorded-since",
        )
    selection = TimelineFilter(
        account=filters["account"],
        subject=filters["subject"],
        platform=filters["platform"],
        types=types,
        policy=filters["policy"],
        actor=filters["actor"],
        since=since_time,
        until=until_time,
        recorded_since=recorded_since,
        limit=limit,
        offset=offset,
    )
    return selection, known_at


@cli.command(name="timeline")
@selection_options
@click.option("--limit", type=ROW_COUNT, help="At most this many events.")
@click.option("--offset", type=ROW_COUNT, default=0, help="Skip this many first.")
@output_options
@click.pass_obj
def timeline_command(
    session: Session,
    /,
    limit: int | None,
    offset: int,
    fmt: str,
    **filters: Any,
) -> None:
    """Audit timeline: events ordered by occurred_at, then sequence.

    Every event carries its fields plus sequence, recorded_at, actor and whether it
    was retracted (as known at --known-at).

    \b
    Example:
      enforcement-ledger timeline --subject khamenei
      enforcement-ledger timeline --platform instagram --type account_removed --nl
      enforcement-ledger timeline --since 2024-01-01 --known-at 2024-02-10 --csv
    """
    from projections.queries import timeline

    selection, known = _selection(session, filters, limit, offset)
    db = session.reader()
    _check_platform(db, selection.platform)
    _note_unregistered(db, selection.account, selection.subject)
    _note_unmatched_text(db, selection)
    rows = timeline(db, known, selection)
    if fmt == "table":
        rows = _with_detail(rows)
    write_rows(
        rows, fmt, TIMELINE_COLUMNS, table_columns=TIMELINE_TABLE, empty_message="(no events)"
    )


@cli.command(name="counts")
@selection_options
@click.option(
    "--by",
    "dimensions",
    multiple=True,
    type=click.Choice(["platform", "type", "policy", "actor", "account", "subject"]),
    help="Count per value of this field; repeat for several. subject: an account's "
    "events count under the subject its registration names (as known at --known-at).",
)
@click.option(
    "--per",
    type=click.Choice(["day", "month", "year"]),
    help="Count per UTC day, month or year of occurred_at.",
)
@click.option(
    "--include-retracted", is_flag=True, help="Count retracted events too (left out by default)."
)
@click.option("--limit", type=ROW_COUNT, help="At most this many rows.")
@click.option("--offset", type=ROW_COUNT, default=0, help="Skip this many first.")
@output_options
@click.pass_obj
def counts_command(
    session: Session,
    /,
    dimensions: tuple[str, ...],
    per: str | None,
    include_retracted: bool,
    limit: int | None,
    offset: int,
    fmt: str,
    **filters: Any,
) -> None:
    """How many events, per field value and per period: the timeline's filters apply.

    Retracted events (as known at --known-at) are left out unless
    --include-retracted. Rows come most numerous first (within each period, in time
    order).

    \b
    Example:
      enforcement-ledger counts --by platform --type account_removed
      enforcement-ledger counts --by policy --per month --platform instagram --csv
      enforcement-ledger counts --subject khamenei --by platform --by type
      enforcement-ledger counts --by subject --by platform --type account_removed
    """
    from projections.queries import counts

    if len(set(dimensions)) < len(dimensions):
        raise click.BadParameter("give each field once", param_hint="--by")
    selection, known = _selection(session, filters, limit, offset)
    db = session.reader()
    _check_platform(db, selection.platform)
    _note_unregistered(db, selection.account, selection.subject)
    _note_unmatched_text(db, selection)
    rows = counts(
        db,
        known,
        selection,
        by=dimensions,
        per=per,
        include_retracted=include_retracted,
    )
    columns = (["period"] if per else []) + list(dimensions) + ["count"]
    write_rows(rows, fmt, columns, empty_message="(no events)")


@cli.command()
@click.option(
    "--known-at",
    metavar="TIME",
    callback=_given_value,
    help="Only the events the ledger held at TIME: the log's first N, as a checkpoint "
    "of size N signed then covers them.",
)
@output_options
@click.pass_obj
def export(session: Session, known_at: str | None, fmt: str) -> None:
    """The whole log in sequence order (or as the ledger held it at --known-at).

    With --nl each line is exactly the stored leaf (RFC 8785 canonical JSON), so
    anyone can rebuild the Merkle tree from an export.

    \b
    Example:
      enforcement-ledger export --nl > ledger.jsonl
      enforcement-ledger export --nl --known-at 2024-03-01T00:00:00Z > then.jsonl
    """
    from contextlib import closing

    ledger = session.ledger()
    size = None if known_at is None else ledger.size_known_at(_parse_time(known_at, "--known-at"))
    # Closed on any failure too: the stream holds a connection (on PostgreSQL, a
    # transaction and a cursor) that would otherwise live as long as the generator.
    with closing(ledger.iter_leaves()) as stream:
        leaves: Iterator[bytes] = stream if size is None else itertools.islice(stream, size)
        if fmt == "nl":
            out = sys.stdout.buffer
            for leaf in leaves:
                out.write(leaf + b"\n")
            out.flush()
            return
        rows = (json.loads(leaf) for leaf in leaves)
        columns = [c for c in TIMELINE_COLUMNS if c != "retracted"]
        empty = "(empty ledger)" if known_at is None else f"(no events recorded by {known_at})"
        write_rows(rows, fmt, columns, table_columns=EXPORT_TABLE, empty_message=empty)


@cli.command()
@click.option("--silent", is_flag=True, help="No progress bar.")
@click.pass_obj
def replay(session: Session, silent: bool) -> None:
    """Rebuild every projection from zero by replaying the log.

    \b
    Example:
      enforcement-ledger replay
    """
    from projections.projector import Projector

    ledger = session.ledger()
    with ledger.storage.connect() as db:
        total = ledger.storage.tree_size(db)  # one entry an event
        show = not silent and sys.stderr.isatty()
        with click.progressbar(
            length=total,
            label="Replaying",
            file=sys.stderr if show else _Null(),  # type: ignore[arg-type]
        ) as bar:
            applied = Projector(ledger, db).rebuild(progress=bar.update)
        from projections.projector import missing_parts

        lacking = missing_parts(db)  # a role other than the owner cannot make them
    click.echo(f"Rebuilt projections from {applied} event(s)")
    if lacking:
        click.echo(
            f"warning: the read models still lack {', '.join(lacking)}, which only the "
            "store's owner may make (`enforcement-ledger init` or `replay` as the owner); "
            "answers are right meanwhile, but read by scanning whole tables",
            err=True,
        )


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


class _Stopped(Exception):
    """SIGTERM asked `follow` to stop (a service manager's normal stop)."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped


def _polling_interval(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    if value is None:  # the store's own default (follow)
        return None
    # NaN passes a FloatRange (every comparison with it is false): refused by hand.
    if not 0.01 <= value <= 3600:
        raise click.BadParameter(f"expected seconds from 0.01 to 3600, given {value}")
    return value


# PostgreSQL: seconds `follow` waits for a notification before it checks the read
# models anyway (one small query): a replay stopped part way leaves them emptied or
# partly rebuilt, and no append may come to announce it.
FOLLOW_CHECK_EVERY = 10.0


def _wakes(subscription: Iterator[Any], every: float) -> Iterator[bool]:
    """True for each notification the subscription delivers (those queued meanwhile
    are one wake: one catch-up covers them), False after ``every`` seconds without
    one. The subscription is read in a thread of its own, which wakes this one through
    a pipe: a wait in select() that SIGTERM's handler interrupts leaves no lock half
    released (a queue's Condition.wait could: "release unlocked lock", exit 70). An
    error the subscription raises is raised here, and its end ends this."""
    import select
    import threading

    readable, writable = os.pipe()
    ended: list[BaseException] = []

    def listen() -> None:
        try:
            for _ in subscription:
                os.write(writable, b"n")
            ended.append(StopIteration())
        except BaseException as error:  # re-raised in the caller's thread
            ended.append(error)
        finally:
            with contextlib.suppress(OSError):  # the reader gone: nothing to wake
                os.write(writable, b"e")
            os.close(writable)

    threading.Thread(target=listen, name="follow-subscription", daemon=True).start()
    try:
        while True:
            if not select.select([readable], [], [], every)[0]:
                yield False
                continue
            woken = os.read(readable, 65536)
            if not woken or b"e" in woken:
                if not ended or isinstance(ended[0], StopIteration):
                    return
                raise ended[0]
            yield True
    finally:
        os.close(readable)


def _follow_notifications(
    ledger: Ledger, check_every: float = FOLLOW_CHECK_EVERY, waiting: set[str] | None = None
) -> None:
    """PostgreSQL: catch up on each notification of the events table, and every
    ``check_every`` seconds without one (read models a stopped replay left behind,
    which no append announces). A lost connection (a server restart, an admin ending
    the session) is said and followed again, waiting longer each time it fails at
    once, as a daemon should not end on it."""
    import time

    import psycopg
    from eventsourcing.persistence import OperationalError as LibraryOperationalError

    from ledger.location import ConnectError
    from projections.projector import Projector

    wait = 1.0
    first = True
    next_check = time.monotonic() + check_every  # for missing indexes (follow did at start)
    waiting = set() if waiting is None else waiting  # missing indexes said to be waiting
    while True:
        try:
            # A connection of its own each time: a lost one stays closed.
            with ledger.storage.connect() as db:
                projector = Projector(ledger, db)
                projector.catch_up()  # what came before, or while it was down
                position = projector.position()[0]
                if first:
                    _try_subscription_connections(ledger)
                    first = False
                with ledger.recorder.subscribe(gt=position) as subscription:
                    wait = 1.0
                    for notified in _wakes(subscription, check_every):
                        # Not behind: one small query, and nothing written.
                        applied = projector.catch_up()
                        if applied and notified:
                            click.echo(f"Applied {applied} event(s)", err=True)
                        elif applied:
                            click.echo(
                                f"Applied {applied} event(s) the read models lacked "
                                "though no append announced them (a replay stopped part "
                                "way, or the read models emptied)",
                                err=True,
                            )
                        # On a clock: notifications coming faster than the check
                        # would otherwise put it off for as long as they come.
                        if time.monotonic() >= next_check:
                            _restore_indexes(projector, waiting)
                            next_check = time.monotonic() + check_every
        except (psycopg.OperationalError, LibraryOperationalError, ConnectError) as error:
            # A server restarting, or at its connection limit a while: tried again.
            detail = _first_line(error) or "no detail"
            click.echo(
                f"warning: lost the connection to the store ({detail}); following again in "
                f"{wait:g} s",
                err=True,
            )
            # The pool's idle connections died with it: let it test and replace them
            # now, or the next catch-up meets one and this is said twice.
            with contextlib.suppress(Exception):  # a server still down: said next time
                ledger.recorder.datastore.pool.check()  # type: ignore[attr-defined]
            time.sleep(wait)
            wait = min(wait * 2, 60.0)


def _restore_indexes(projector: Projector, said: set[str]) -> None:
    """The read models' indexes a stopped replay left out, built again where this role
    may (``Projector.restore_indexes``), and said. A failure (a timeout, a lock) is a
    warning: follow goes on, and tries again at its next check. ``said``: the names
    already said to be waiting, so that is said once."""
    import psycopg

    try:
        built, waiting = projector.restore_indexes()
    except psycopg.Error as error:
        if projector.db.raw.closed:
            raise  # the connection lost: follow's own handling says so
        first = _first_line(error) or repr(error)
        click.echo(
            f"warning: could not build the read models' missing indexes ({first}); "
            "trying again at the next check",
            err=True,
        )
        return
    if built:
        click.echo(
            f"Built the read models' indexes a stopped replay left out: {', '.join(built)}",
            err=True,
        )
    if waiting and not set(waiting) <= said:
        click.echo(
            f"note: the read models lack indexes ({', '.join(waiting)}): a replay runs, or "
            "a reader's connection is open; they are built at a later check if still "
            "missing",
            err=True,
        )
    said.clear()
    said.update(waiting)


def _try_subscription_connections(ledger: Ledger) -> None:
    """Before the first subscription, the connections it needs of its pool (the one it
    listens on, the one each pull takes) are opened, as the library opens them, and
    closed: one it cannot have (a role's or the server's connection limit) is an error
    now, not a warning after the library's pool waited 30 s for it, then again. (The
    pool opens a third as it starts, asked for one before its two are ready; refused,
    it does without.)"""
    from ledger.location import StoreError

    size = int(ledger.storage.eventsourcing_env()["POSTGRES_POOL_SIZE"])
    with contextlib.ExitStack() as opened:
        for _ in range(size):
            try:
                opened.enter_context(ledger.storage.connect())
            except StoreError as error:
                raise StoreError(
                    f"follow needs {size} connections for its subscription besides its "
                    f"own, and {error.problem}",
                    "free connections (the role's or the server's connection limit), "
                    "then follow again",
                ) from None


@cli.command()
@click.option("--once", is_flag=True, help="Catch up and exit.")
@click.option(
    "--interval",
    type=float,
    callback=_polling_interval,
    help="Seconds between polls on SQLite (default 1); on PostgreSQL, which wakes on "
    "each append, between checks for read models a stopped replay left behind "
    f"(default {FOLLOW_CHECK_EVERY:g}). 0.01 to 3600.",
)
@click.pass_obj
def follow(session: Session, once: bool, interval: float | None) -> None:
    """Keep the read models current, continuously, in this process.

    On PostgreSQL it wakes on the event table's LISTEN/NOTIFY channel through the
    library's subscription, and checks every --interval seconds without one too
    (read models a replay stopped part way left emptied or partly rebuilt, which no
    append announces; run by their owner, it builds again the indexes such a replay
    left out); on SQLite (which cannot subscribe) it polls. Queries
    catch up by themselves too, so this only keeps them fast. Ctrl-C or SIGTERM
    stops it with status 0: each catch-up commits whole, so nothing is left half
    applied.

    \b
    Example:
      enforcement-ledger --store "postgresql://…?schema=newsroom" follow &
    """
    import time

    from projections.projector import Projector

    ledger = session.ledger()
    with ledger.storage.connect() as db:
        if db.dialect == "postgres":
            # A role that may not write the read models (a reader) could never apply
            # what it follows: refused now, with the message a catch-up with events
            # to apply gets, not "Caught up" and a wait. An insert of no rows, checked
            # for its privileges all the same.
            with db.transaction():
                db.execute(
                    "INSERT INTO projection_position SELECT * FROM projection_position "
                    "WHERE false ON CONFLICT (name) DO UPDATE SET sequence = excluded.sequence"
                )
        projector = Projector(ledger, db)
        applied = projector.catch_up()
        click.echo(f"Caught up: {applied} event(s) applied", err=True)
        waiting: set[str] = set()  # missing indexes said to be waiting, said once
        if once:
            if db.dialect == "postgres":
                _restore_indexes(projector, waiting)
            return
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
        try:
            if ledger.storage.dialect == "postgres":
                _restore_indexes(projector, waiting)  # a SIGTERM meanwhile stops it
                # Its subscriptions open connections of their own (a lost one stays
                # closed): this one is not held idle meanwhile.
                db.close()
                _follow_notifications(ledger, interval or FOLLOW_CHECK_EVERY, waiting)
            else:
                while True:
                    time.sleep(interval or 1.0)
                    applied = projector.catch_up()
                    if applied:
                        click.echo(f"Applied {applied} event(s)", err=True)
        except (KeyboardInterrupt, _Stopped):
            click.echo("Stopped", err=True)
        finally:
            signal.signal(signal.SIGTERM, previous)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the event union (input format of append).

    \b
    Example:
      enforcement-ledger schema > event.schema.json
    """
    from ledger.events import event_schema

    click.echo(json.dumps(event_schema(), indent=2, sort_keys=True))


@cli.command()
@click.option(
    "--store",
    "demo_store",
    metavar="PATH",
    help="Where to build the demo ledger (default: the store given before `demo`, or "
    "$ENFORCEMENT_LEDGER_STORE, else a new temporary file); it must not exist yet.",
    callback=_given_value,
    shell_complete=_complete_files,
)
@click.pass_context
def demo(ctx: click.Context, demo_store: str | None) -> None:
    """Build the Khamenei / Trump story in a fresh store and show it.

    Loads the seed events shipped with the package (ledger/data/seed.jsonl), then
    prints the cross-platform status table, Khamenei's timeline, the post X kept
    behind a warning screen and the history of Trump's account.

    \b
    Example:
      enforcement-ledger demo --store demo.db
    """
    import tempfile
    from importlib import resources

    from ledger.location import StoreError

    path = demo_store or ctx.obj.store
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="enforcement-ledger-demo-"), "demo.db")
    # Unsigned: a team's key (ENFORCEMENT_LEDGER_KEY_FILE) signs as its own log, not
    # the demo's, and refused every append after the store was made.
    session = Session(path, unsigned=True)
    if session.location.kind == "postgres":
        from ledger.persistence import open_storage

        # A schema that holds a ledger is a team's: 18 seed events could only be
        # retracted from it, never taken out.
        if open_storage(session.location).exists():
            session.close()
            raise StoreError(
                f"{session.location.display} already holds a ledger; the demo builds a "
                "fresh store, give a new schema"
            )
    elif os.path.exists(path):
        raise StoreError(f"{path} already exists; the demo builds a fresh store, give a new path")
    ctx.call_on_close(lambda: _close_undisturbed(session))
    # The command's session from here on, the group's too: its error messages name
    # the store the demo writes, and know what this session committed (rv35).
    ctx.obj = ctx.find_root().obj = session
    ctx.invoke(init)
    seed = resources.files("ledger").joinpath("data/seed.jsonl").read_text(encoding="utf-8")
    import io

    result = session.writing_ledger().append(_read_lines(io.StringIO(seed)), actor="demo")
    session.reader()
    _report(result, as_json=False)

    # As of the article's date: its facts (and Trump's earlier reinstatement) say
    # nothing of what happened since.
    def accounts_on(title: str, as_of: str, platform: str | None = None) -> None:
        click.echo(f"\n{title}:\n")
        ctx.invoke(
            accounts_command,
            platform=platform,
            subject=None,
            status_filter=None,
            as_of=as_of,
            known_at=None,
        )

    accounts_on("Cross-platform status on 9 Feb 2024, the article's date", "2024-02-09")
    click.echo("\nKhamenei's timeline:\n")
    ctx.invoke(
        timeline_command,
        account=None,
        subject="khamenei",
        platform=None,
        types=(),
        policy=None,
        actor=None,
        since=None,
        until=None,
        known_at=None,
        limit=None,
        offset=0,
    )
    click.echo("\nThe post X kept behind a warning screen:\n")
    ctx.invoke(
        posts_command,
        account="twitter:khamenei_ir",
        post=None,
        state_filter=None,
        as_of=None,
        known_at=None,
    )
    # The double standard the article reports: Trump banned, Khamenei's account kept.
    accounts_on("Twitter on 9 Jan 2021, the day after it banned Trump", "2021-01-09", "twitter")
    click.echo("\nTrump's Twitter account over time:\n")
    ctx.invoke(
        status,
        account="twitter:realDonaldTrump",
        as_of=None,
        known_at=None,
        history=True,
    )
    import shlex  # a PostgreSQL URL's "?" would be a shell pattern unquoted

    shown = session.location.display  # a password in the URL is not printed
    click.echo(
        f"\nDemo ledger: {shown}  (try: enforcement-ledger --store {shlex.quote(shown)} timeline)"
    )


# --- tamper evidence ------------------------------------------------------------


@cli.command()
@click.option(
    "--show", is_flag=True, help="Print the verifier key of the existing signing key instead."
)
@click.pass_obj
def keygen(session: Session, show: bool) -> None:
    """Create the Ed25519 signing key (file mode 0600) and print its verifier key.

    The key file is the SQLite store's path + ".key" unless --key-file or
    ENFORCEMENT_LEDGER_KEY_FILE says otherwise. Give the printed verifier key to
    auditors: it is what `verify --vkey` checks signatures against. --show prints
    it again from the key file (a key is never overwritten).

    \b
    Example:
      enforcement-ledger --store ledger.db keygen
      enforcement-ledger --store ledger.db keygen --show > ledger.vkey
    """
    from ledger.integrity import create_key
    from ledger.location import KeyError_, key_path

    if show:
        click.echo(session.signer(required=True).verifier_key())
        return
    ledger = session.ledger()
    path = key_path(session.location, session.key_file)
    if path is None:
        raise KeyError_("a PostgreSQL store needs --key-file or ENFORCEMENT_LEDGER_KEY_FILE")
    signer = create_key(path, ledger.origin)
    click.echo(f"Wrote signing key {path} (mode 0600); keep it secret.", err=True)
    click.echo(signer.verifier_key())


@cli.command()
@click.pass_obj
def checkpoint(session: Session) -> None:
    """Sign a C2SP checkpoint of the log as it is now, store it in the ledger (this
    writes to the store, as the signing-key holder) and print it. At a size already
    signed with this key it prints that checkpoint again (the same bytes: Ed25519
    signatures are deterministic) and stores no second copy.

    \b
    Example:
      enforcement-ledger checkpoint > trusted.checkpoint
    """
    note, first_signed = session.ledger().sign_checkpoint(session.log_signer(required=True))
    click.echo(note, nl=False)
    if first_signed is not None:
        first, last = first_signed
        click.echo(
            f"note: this is the first checkpoint to sign sequence {first}..{last}: appended "
            "unsigned, or signed once and those checkpoints deleted (`verify --trusted FILE` "
            "checks them against a checkpoint you hold)",
            err=True,
        )


@cli.group()
def prove() -> None:
    """Inclusion and consistency proofs (RFC 9162 §2.1.3-2.1.4).

    \b
    Example:
      enforcement-ledger prove inclusion seed-ig-khamenei-en-removed
      enforcement-ledger prove consistency 10 --to 18
    """


def _latest_checkpoint(
    session: Session, covering: int, what: str | None = None, connection: Database | None = None
) -> tuple[int, str]:
    """The newest signed checkpoint covering sequence ``covering`` (``what`` names it
    in the refusal: "sequence 9", "size 10"), read on ``connection`` if given (a
    caller's snapshot), else on one of its own."""
    from ledger.location import StoreError

    storage = session.ledger().storage
    with nullcontext(connection) if connection is not None else storage.connect() as db:
        stored = storage.checkpoints(db)
    for size, _, note in reversed(stored):
        if size > covering:
            return size, note
    raise StoreError(
        f"no signed checkpoint covers {what or f'sequence {covering}'} yet; run "
        "`enforcement-ledger checkpoint`"
    )


@prove.command()
@click.argument("event")
@click.option(
    "--by",
    type=click.Choice(["event-id", "sequence"]),
    help="Read EVENT only as this; needed when a numeric event_id is also a sequence number.",
)
@click.pass_obj
def inclusion(session: Session, event: str, by: str | None) -> None:
    """Prove EVENT (an event_id or a sequence number) is in the signed log.

    Prints a C2SP tlog-proof: header, index, proof hashes, blank line, and the
    latest signed checkpoint that covers the event.

    \b
    Example:
      enforcement-ledger prove inclusion seed-x-trump-reinstated > trump.proof
      enforcement-ledger prove inclusion 12 --by sequence
    """
    from ledger.integrity import check_leaf_is_the_one_asked, inclusion_proof_text
    from ledger.location import StoreError

    ledger = session.ledger()
    storage = ledger.storage
    numeric = event.isascii() and event.isdigit()
    if by == "sequence" and not numeric:
        raise click.BadParameter(f"expected a sequence number, given {event!r}", param_hint="EVENT")
    with storage.connect() as connection:
        size = storage.tree_size(connection)
        by_id = None if by == "sequence" else storage.find_sequence(connection, event)
        by_number = int(event) if numeric and by != "event-id" else None
        if by_id is not None and by_number is not None and by_id != by_number < size:
            # Either answer would be a proof of some event: refuse to guess which.
            raise StoreError(
                f"'{event}' is both the event_id of sequence {by_id} and sequence {by_number};"
                " say which with --by event-id or --by sequence"
            )
        sequence = by_id if by_id is not None else by_number
        if sequence is None:
            raise StoreError(
                f"the log index lists no event with event_id '{event}' "
                "(`enforcement-ledger verify --read-models` checks the index against the events)"
            )
        if sequence >= size:
            raise StoreError(
                f"sequence {sequence} is beyond the end of the log (size {size}: sequences "
                f"0..{size - 1})"
                if size
                else f"sequence {sequence} is beyond the end of the log, which is empty"
            )
        leaf = storage.leaf_at(connection, sequence)
        asked = event if by_id is not None and sequence == by_id else None
        # Before the checkpoint is looked for: a row renumbered past the last one would
        # have it ask for a checkpoint that cannot be signed.
        check_leaf_is_the_one_asked(storage.node_getter(connection), sequence, leaf, asked)
        size, note = _latest_checkpoint(session, sequence)
        text = inclusion_proof_text(storage.node_getter(connection), sequence, leaf, size, note)
    click.echo(text, nl=False)


@prove.command()
@click.argument("old_size", type=click.IntRange(min=1))
@click.option(
    "--to", "new_size", type=click.IntRange(min=1), help="Newer size (default: latest checkpoint)."
)
@click.pass_obj
def consistency(session: Session, old_size: int, new_size: int | None) -> None:
    """Prove the log of OLD_SIZE is a prefix of the log at --to: one base64 hash per line.

    \b
    Example:
      enforcement-ledger prove consistency 10 --to 18
    """
    from ledger.integrity import consistency_proof_lines
    from ledger.location import StoreError

    if new_size is not None and old_size > new_size:
        # The arguments contradict each other whatever the log holds: usage, as
        # OLD_SIZE 0 is, and said before the store is opened.
        raise click.BadParameter(
            f"OLD_SIZE {old_size} is larger than --to {new_size}: a log only grows; "
            "give the older size first",
            param_hint="OLD_SIZE/--to",
        )
    ledger = session.ledger()
    storage = ledger.storage
    # One state of the store: a signed batch committed after the size was read gave a
    # latest checkpoint past it, refused as beyond the log.
    with storage.connect() as connection, connection.read_snapshot():
        size = storage.tree_size(connection)
        if old_size > size:
            raise StoreError(f"OLD_SIZE {old_size} is beyond the end of the log (size {size})")
        target = (
            new_size
            if new_size is not None
            else _latest_checkpoint(session, old_size - 1, f"size {old_size}", connection)[0]
        )
        if target > size or old_size > target:
            raise StoreError(
                f"need OLD_SIZE <= NEW_SIZE <= {size} (the log size); given {old_size} and {target}"
            )
        signed = {size: note for size, _, note in storage.checkpoints(connection)}
        lines = consistency_proof_lines(storage.node_getter(connection), old_size, target, signed)
    unsigned = [n for n in (old_size, target) if n not in signed]
    if unsigned:
        # Checked before printing against each signed root there is; said so where
        # neither size is signed, or which one is not.
        checked = (
            "this proof was not checked against one"
            if len(unsigned) == 2
            else f"the proof was checked against the signed root at size "
            f"{old_size if target in unsigned else target} only"
        )
        sizes = " and ".join(str(n) for n in unsigned)
        click.echo(
            f"note: no signed checkpoint at size{'s' if len(unsigned) > 1 else ''} {sizes}: "
            f"{checked}; `checkpoint` signs the log's present size",
            err=True,
        )
    for line in lines:
        click.echo(line)


@prove.command(name="check-inclusion")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--event",
    "event_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A file holding the event as `export --nl` gives it (its one line).",
)
@_vkey_option("The log's verifier key (or a file holding one); repeatable.")
def check_inclusion(proof_file: str, event_file: str, vkeys: tuple[str, ...]) -> None:
    """Check offline that the event in --event is in the signed log, by PROOF_FILE
    (what `prove inclusion` printed). Needs no store: an auditor's own check.

    \b
    Example:
      enforcement-ledger prove inclusion seed-fb-khamenei-removed > fb.proof
      enforcement-ledger export --nl | sed -n 16p > fb.event
      enforcement-ledger prove check-inclusion fb.proof --event fb.event --vkey ledger.vkey
    """
    from ledger.integrity import IntegrityError, check_inclusion_proof

    verifiers = _verifier_keys(vkeys)
    if not verifiers:
        raise click.UsageError("--vkey is needed: a proof is checked against the log's key")
    with open(event_file, "rb") as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    if len(lines) != 1:
        raise IntegrityError(
            f"{event_file} holds {len(lines)} lines; give the one line of the event, as "
            "`export --nl` prints it"
        )
    index, signed = check_inclusion_proof(_proof_text(proof_file), lines[0], verifiers)
    click.echo(
        f"OK sequence {index} is in the log {signed.origin} of size {signed.size}, root "
        f"{signed.root_b64}, signed by {', '.join(signed.signers)}"
    )


@prove.command(name="check-consistency")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--old",
    "old_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The older signed checkpoint (e.g. one an auditor saved).",
)
@click.option(
    "--new",
    "new_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The newer signed checkpoint.",
)
@_vkey_option("The log's verifier key (or a file holding one); repeatable.")
def check_consistency(
    proof_file: str, old_file: str, new_file: str, vkeys: tuple[str, ...]
) -> None:
    """Check offline that the log at --old's size is a prefix of the log at --new's,
    by PROOF_FILE (what `prove consistency` printed): nothing in it was changed.

    \b
    Example:
      enforcement-ledger prove consistency 19 --to 20 > 19-20.proof
      enforcement-ledger prove check-consistency 19-20.proof --old saved.checkpoint \\
          --new latest.checkpoint --vkey ledger.vkey
    """
    from ledger.integrity import check_consistency_proof

    verifiers = _verifier_keys(vkeys)
    if not verifiers:
        raise click.UsageError("--vkey is needed: checkpoints are checked against the log's key")
    from ledger.integrity import read_checkpoint_file

    old, new = check_consistency_proof(
        _proof_text(proof_file).splitlines(),
        read_checkpoint_file(old_file).text,
        read_checkpoint_file(new_file).text,
        verifiers,
    )
    click.echo(
        f"OK the log {old.origin} at size {old.size} is a prefix of it at size {new.size} "
        f"(root {new.root_b64}), both signed by {', '.join(new.signers)}"
    )


def _proof_text(path: str) -> str:
    from ledger.integrity import IntegrityError

    try:
        with open(path, encoding="utf-8-sig") as handle:  # a leading BOM is no part of it
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise IntegrityError(f"{path} is not a proof: {error}") from None


@cli.command()
@_vkey_option("Trusted verifier key (or a file holding one); repeatable.")
@click.option(
    "--trusted",
    "trusted_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An auditor's saved signed checkpoint; repeatable.",
)
@_export_option("Verify offline: an `export --nl` file instead of a store.")
@_checkpoint_option("Offline: signed checkpoint(s) the export must match.")
@click.option(
    "--read-models",
    is_flag=True,
    help="Also check that the read models every query answers from (timeline, "
    "retractions) are what the log makes them.",
)
@click.option(
    "--all-signed",
    is_flag=True,
    help="Fail unless a signed checkpoint covers every event (otherwise a warning).",
)
@click.pass_obj
def verify(
    session: Session,
    vkeys: tuple[str, ...],
    trusted_files: tuple[str, ...],
    export_file: str | None,
    checkpoint_files: tuple[str, ...],
    read_models: bool,
    all_signed: bool,
) -> None:
    """Recompute every leaf and check roots, signatures and consistency.

    Prints OK with the size and root, or exits 1 naming the first bad sequence.
    Without --vkey, signatures are checked against the store's own key file
    (which proves nothing to an outside auditor: pass --vkey).

    \b
    Example:
      enforcement-ledger verify --vkey "$(cat ledger.vkey)" --trusted saved.checkpoint
      enforcement-ledger verify --export ledger.jsonl --checkpoint saved.checkpoint --vkey KEY
    """

    from ledger.integrity import (
        IntegrityError,
        StoredCheckpoint,
        VerifyReport,
        check_index_matches,
        check_no_node_beyond,
        check_origin_row,
        check_stored_frontier,
        read_checkpoint_file,
        verify_log,
    )

    if export_file is not None and read_models:
        raise click.UsageError("--read-models checks a store's read models: not with --export")
    if export_file is None and checkpoint_files:
        # A store holds its own checkpoints: the file would be left unchecked.
        raise click.UsageError(
            "--checkpoint goes with --export (the checkpoints an export must match); to "
            "check this store against a checkpoint you saved, give it with --trusted"
        )
    verifiers = _verifier_keys(vkeys)
    trusted = [read_checkpoint_file(f) for f in trusted_files]
    covered = None
    if export_file is not None:
        if not verifiers:
            raise click.UsageError("offline verification (--export) needs --vkey")
        checkpoints = [read_checkpoint_file(f) for f in checkpoint_files]
        if not checkpoints and not trusted:
            raise click.UsageError(
                "offline verification (--export) needs --checkpoint (or --trusted)"
            )
        with open(export_file, "rb") as handle:
            leaves = ((line, None) for line in _export_leaves(handle))
            report = verify_log(
                leaves,
                [],
                origin=None,
                verifiers=verifiers,
                trusted=trusted,
                given=checkpoints,
                export=True,
            )
    else:
        ledger = session.ledger()
        if not verifiers:
            own = session.signer(required=False)
            if own is not None:
                verifiers = [own.verifier()]
                click.echo(
                    "warning: checking signatures with the store's own key; pass --vkey", err=True
                )
        storage = ledger.storage
        # One snapshot: rows an append commits meanwhile are no rows out of place.
        with storage.connect() as connection:
            if read_models:  # not a rebuild's tables half made, its indexes yet to come
                from projections.projector import wait_for_rebuilds

                wait_for_rebuilds(connection)
            with connection.read_snapshot():
                stored = [StoredCheckpoint(*row) for row in storage.checkpoints(connection)]
                check_origin_row(ledger.origin, stored)
                if stored and not verifiers:
                    raise IntegrityError(
                        "the log has signed checkpoints: pass --vkey to check them"
                    )

                def past_the_leaves(
                    report: VerifyReport, *, verified: bool = False
                ) -> list[IntegrityError]:
                    """What lies past the leaves, all read (index rows, nodes beyond the
                    log's end), found: named after the leaves' findings where they did
                    not verify (``verified`` False), else the report's failure."""
                    found = []
                    try:
                        mismatch = storage.index_mismatch(connection, report.size)
                        check_index_matches(mismatch, report.size, verified=verified)
                    except IntegrityError as error:
                        found.append(error)
                    # A log named truncated leaves the nodes of the events cut behind:
                    # those beyond the most a checkpoint commits to are checked.
                    end = max(report.size, report.truncated)
                    try:
                        node = storage.first_node_beyond(connection, end)
                        check_no_node_beyond(node, end, verified=verified, events=report.size)
                    except IntegrityError as error:
                        found.append(error)
                    return found

                report = verify_log(
                    storage.iter_leaves_with_hashes(connection),
                    stored,
                    origin=ledger.origin,
                    verifiers=verifiers,
                    trusted=trusted,
                    compare_recorded=True,
                    then=past_the_leaves,
                    # Read anew: verify walks the log again past a stored checkpoint
                    # contradicting a --trusted one's judgement.
                    reread=functools.partial(storage.iter_leaves_with_hashes, connection),
                )
                if vkeys and ledger.origin not in {v.name for v in verifiers}:
                    # With no checkpoint to fail on, another log's key passed unremarked.
                    names = " and ".join(sorted({repr(v.name) for v in verifiers}))
                    report.warnings.append(
                        f"the --vkey given names log {names}, not this log "
                        f"({ledger.origin!r}): none of this log's checkpoints can be "
                        "checked with it"
                    )
                # Once every leaf is checked: the index has one row for each, no other,
                # and the node table no node beyond the log's end.
                found = past_the_leaves(report, verified=True)
                if found:
                    raise found[0]
                check_stored_frontier(storage.node_getter(connection), report)
                guards, changed = storage.guard_faults(connection)
                if guards:  # not damage itself, but nothing then stops an accidental edit
                    them = "it" if len(guards) == 1 else "them"
                    report.warnings.append(
                        f"the store lacks its append-only trigger{'s' * (len(guards) > 1)} "
                        f"{', '.join(guards)} (dropped or disabled outside the ledger): the log "
                        "verified, but nothing refuses an edit of it now; `enforcement-ledger "
                        f"init`, as the store's owner, makes {them} again"
                    )
                if changed:
                    them = "it" if len(changed) == 1 else "them"
                    report.warnings.append(
                        f"the store's append-only trigger{'s' * (len(changed) > 1)} "
                        f"{', '.join(changed)} {'is' if len(changed) == 1 else 'are'} not as "
                        f"the ledger made {them} (changed outside the ledger, perhaps to refuse "
                        "nothing): the log verified, but an edit of it may not be refused now; "
                        f"`enforcement-ledger init`, as the store's owner, makes {them} again"
                    )
                if read_models:
                    from ledger.index_check import check_index
                    from projections.check import check_read_models

                    damage = storage.structure_problems(connection)
                    if damage:
                        raise IntegrityError(
                            f"the store's file is damaged ({'; '.join(damage)}): the disk "
                            "failed, or it was written outside the database engine. Restore "
                            "it from a copy or a backup and check that with `enforcement-"
                            "ledger verify --read-models`"
                        )
                    missing = storage.missing_ledger_indexes(connection)
                    if missing:
                        raise IntegrityError(
                            f"the ledger's index {', '.join(missing)} is missing: appends read "
                            "lanes and targets through it, ever more slowly without; "
                            "`enforcement-ledger init` makes it again"
                        )
                    check_index(storage, connection, report.size)
                    covered = check_read_models(connection, report.size)
                    if covered < report.size:
                        # A reader's read commands cannot project them: they fail instead.
                        catch_up = (
                            "`follow --once` or any append, run as the ledger's writer, "
                            "brings them up to date (this role may not)"
                            if not storage.may_update_read_models(connection)
                            else "any read command brings them up to date"
                        )
                        report.warnings.append(
                            f"sequence {covered}..{report.size - 1}: not projected yet, so not "
                            f"in the read models checked ({catch_up})"
                        )
    if all_signed and report.unsigned_from is not None:
        raise IntegrityError(
            f"sequence {report.unsigned_from}..{report.size - 1}: covered by no signed "
            "checkpoint, and --all-signed asks that every event be covered by one"
        )
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    models = "" if covered is None else f"; read models match the log ({covered} event(s))"
    click.echo(
        f"OK size {report.size} root {report.root_b64} "
        f"({report.checkpoints} checkpoint(s), {report.trusted} trusted){models}"
    )


def _debugging() -> bool:
    """ENFORCEMENT_LEDGER_DEBUG set to anything but empty, 0, false, no or off."""
    value = os.environ.get("ENFORCEMENT_LEDGER_DEBUG", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a service manager's stop), raised where Ctrl-C would be: the
    write in progress is abandoned as for Ctrl-C (a PostgreSQL statement cancelled, not
    left running with the lock held) and the outcome said, not a silent death."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    """Console entry point: no traceback ever reaches a user."""
    # Only where SIGTERM would kill: a parent's ignoring it is kept.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            _main(argv)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    else:
        _main(argv)


def _main(argv: list[str] | None) -> None:
    if sys.stdout is None:  # started with it closed (`>&-`): no answer could be given
        click.echo(
            "Error: standard output is closed, so nothing this command says could be read; "
            "nothing was done (send it to /dev/null to discard it)",
            err=True,
        )
        sys.exit(1)
    try:
        cli.main(args=argv, prog_name="enforcement-ledger", standalone_mode=True)
    except Exception as error:  # pragma: no cover - last line of defence
        if _debugging():
            raise
        click.echo(
            f"Error: internal failure: {type(error).__name__}: {error}\n"
            # A stored event edited into another valid JSON object fails here too: the
            # reads trust the log's shape, which verify checks (it names the sequence).
            "If the store may have been changed outside the ledger, `enforcement-ledger "
            "verify --read-models` checks it and the read models answers come from "
            "(`replay` rebuilds those); ENFORCEMENT_LEDGER_DEBUG=1 shows where this failed.",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
