"""`copy`: moving a whole ledger to another store (SQLite to PostgreSQL and back).

A copy must be the same ledger: byte-identical leaves (so the same Merkle roots,
and the source's signed checkpoints and verifier key still hold), the same record
times and actors, the same answers; and like any append, all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sqlite3
import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result

from ledger import notes as ledger_notes
from tests.conftest import Store, drop_schema
from tests.ledger_helpers import account, ev, jsonl, reject, subject

SEED = Path(__file__).parent.parent / "ledger" / "data" / "seed.jsonl"


def _keyed(store: Store, key: Path) -> str:
    """Give ``store`` a signing key; returns its verifier key."""
    return store.ok("--key-file", str(key), "keygen").stdout.strip()


def _fill(store: Store, key: Path) -> None:
    """Three signed batches: the seed story, a correction, and a backfill."""
    store.ok("--key-file", str(key), "append", str(SEED))
    later = jsonl(
        ev(
            "account_removed",
            "2024-02-09",
            account="twitter:khamenei_ir",
            policy="Violent speech",
            event_id="mistake-1",
        ),
        ev("event_retracted", "2024-02-10", target="mistake-1", reason="misread", event_id="fix"),
    )
    store.ok("--key-file", str(key), "append", "--actor", "alice", "-", input=later)
    backfill = jsonl(
        subject("someone", "2018-01-01", event_id="s-1"),
        account("twitter:someone", "2019-01-01T00:00:00Z", subject="someone", event_id="a-1"),
        ev("account_suspended", "2020-05-01", account="twitter:someone", policy="p"),
    )
    store.ok("--key-file", str(key), "append", "-", input=backfill)


def _answers(store: Store) -> list[str]:
    moment = ("--known-at", "2099-01-01", "--as-of", "2030-01-01")
    return [
        store.ok("export", "--nl").stdout,
        store.ok("timeline", "--json", "--known-at", "2099-01-01").stdout,
        store.ok("accounts", "--json", *moment).stdout,
        store.ok("status", "twitter:khamenei_ir", "--json", *moment).stdout,
    ]


def test_a_copy_is_the_same_ledger_both_ways(store: Store, tmp_path: Path) -> None:
    """From the fixture's store into a new SQLite file, then from that into a new
    store of the fixture's kind: every leaf, checkpoint and answer survives."""
    key = tmp_path / "source.key"
    vkey = _keyed(store, key)
    _fill(store, key)
    source_verify = store.ok("verify", "--vkey", vkey).stdout
    assert "(3 checkpoint(s)" in source_verify

    middle = Store(str(tmp_path / "moved.db"), "sqlite", tmp_path)
    result = middle.ok("copy", store.url)
    assert result.stdout.startswith("Copied 24 event(s) and 3 signed checkpoint(s) from ")
    assert middle.ok("verify", "--vkey", vkey).stdout == source_verify
    assert _answers(middle) == _answers(store)
    # Record time and actors are the source's, not the copy's.
    exported = [json.loads(line) for line in middle.ok("export", "--nl").stdout.splitlines()]
    assert {e["actor"] for e in exported} == {"tester", "alice"}

    if store.kind == "postgres":
        back = Store(store.url.replace("?schema=", "?schema=b"), "postgres", tmp_path)
    else:
        back = Store(str(tmp_path / "back.db"), "sqlite", tmp_path)
    try:
        back.ok("copy", middle.url)
        assert back.ok("verify", "--vkey", vkey).stdout == source_verify
        assert _answers(back) == _answers(store)
        # It goes on as a ledger: a new signed append extends the copied tree.
        back.ok(
            "--key-file",
            str(key),
            "append",
            "-",
            input=jsonl(ev("account_reinstated", "2024-03-01", account="twitter:someone")),
        )
        assert "OK size 25 " in back.ok("verify", "--vkey", vkey).stdout
    finally:
        if back.kind == "postgres":
            schema = back.url.rsplit("schema=", 1)[1]
            drop_schema(schema)


def test_a_copy_reads_one_state_of_a_source_appended_to_meanwhile(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoints, then the events: a signed batch committed between the two reads
    was copied without its checkpoint, and the copy failed `verify --all-signed`."""
    from ledger.persistence import Storage
    from tests.ledger_helpers import cli_process

    key = tmp_path / "source.key"
    vkey = _keyed(store, key)
    store.ok("--key-file", str(key), "append", str(SEED))
    more = tmp_path / "more.jsonl"
    more.write_text(jsonl(ev("followers_observed", "2024-03-01", account="twitter:khamenei_ir",
                             count=2)))  # fmt: skip
    read = Storage.checkpoint_rows
    appended: list[int] = []

    def then_an_append(self: Storage, db: object) -> list[tuple[int, bytes, str, str]]:
        rows = read(self, db)  # type: ignore[arg-type]
        if not appended:  # another process appends a signed batch to the source now
            done = cli_process("--store", store.url, "--key-file", str(key), "append", str(more))
            appended.append(done.returncode)
        return rows

    monkeypatch.setattr(Storage, "checkpoint_rows", then_an_append)
    moved = Store(str(tmp_path / "moved.db"), "sqlite", tmp_path)
    moved.ok("copy", store.url)
    assert appended == [0]
    assert "OK size 19 " in moved.ok("verify", "--vkey", vkey, "--all-signed").stdout


def test_a_copy_goes_only_into_an_empty_store_of_the_same_origin(
    store: Store, tmp_path: Path
) -> None:
    key = tmp_path / "source.key"
    _keyed(store, key)
    _fill(store, key)
    # The fixture's store was initialised with its own origin.
    other = Store(str(tmp_path / "other.db"), "sqlite", tmp_path)
    other.ok("init")
    reject(other, "copy", store.url, expect=("origin", "init --origin"))
    # Same origin, but not empty.
    twin = Store(str(tmp_path / "twin.db"), "sqlite", tmp_path)
    twin.ok("copy", store.url)
    reject(twin, "copy", store.url, expect=("already holds 24 event(s)",))


def test_a_missing_source_is_named_without_advice_meant_for_the_target(
    store: Store, tmp_path: Path
) -> None:
    for source, problem in [
        (tmp_path / "absent.db", f"no ledger at {tmp_path / 'absent.db'}"),
        (tmp_path / "empty.db", f"{tmp_path / 'empty.db'} is not an enforcement ledger"),
    ]:
        if source.name == "empty.db":
            source.touch()
        message = reject(store, "copy", str(source))
        assert message == f"Error: SOURCE: {problem}; copy reads an existing ledger\n"


def test_a_malformed_source_url_is_a_usage_error_naming_source(store: Store) -> None:
    """rv28: it exited 1 naming neither SOURCE nor that it was the URL at fault."""
    result = store.fail("copy", "postgresql://p@h/d?schema=pg_x", code=2)
    assert result.stderr.endswith(
        "Error: Invalid value for SOURCE: schema 'pg_x': names starting pg_ are "
        "PostgreSQL's own; choose another\n"
    ), result.stderr


def test_an_export_given_as_source_points_to_copy_export(store: Store, tmp_path: Path) -> None:
    # It said only "file is not a database; copy reads an existing ledger".
    store.append(account("twitter:a"))
    path = tmp_path / "ledger.jsonl"
    path.write_text(store.ok("export", "--nl").stdout, encoding="utf-8")
    target = Store(str(tmp_path / "target.db"), "sqlite", tmp_path)
    message = target.fail("copy", str(path)).stderr
    quoted = shlex.quote(str(path))
    assert message.endswith(
        f"file is not a database; for an `export --nl` file use `copy --export {quoted}`\n"
    ), message
    assert not (tmp_path / "target.db").exists()
    # An `export --json` or `--csv` file holds no leaves: it said only "not a database".
    for fmt in ("--json", "--csv"):
        other = tmp_path / f"ledger{fmt}"
        other.write_text(store.ok("export", fmt).stdout, encoding="utf-8")
        message = target.fail("copy", str(other)).stderr
        assert message.endswith(
            "file is not a database; it looks like an `export --json` or `--csv` file, which "
            "holds no stored leaves; export the log with `export --nl` and copy that with "
            "`copy --export FILE`\n"
        ), message


def _tamper(path: Path, sequence: int, old: bytes, new: bytes, rehash: bool = True) -> None:
    """Change a stored leaf behind the ledger's back (triggers dropped first); with
    ``rehash``, its recorded leaf hash too, as a thorough forger would."""
    with closing(sqlite3.connect(path)) as conn:
        triggers = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name IN ('stored_events', 'ledger_entries')"
            )
        ]
        for name in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        (state,) = conn.execute(
            "SELECT state FROM stored_events ORDER BY rowid LIMIT 1 OFFSET ?", (sequence,)
        ).fetchone()
        assert old in state
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = "
            "(SELECT rowid FROM stored_events ORDER BY rowid LIMIT 1 OFFSET ?)",
            (bytes(state).replace(old, new), sequence),
        )
        if rehash:
            leaf = bytes(state).replace(old, new)
            conn.execute(
                "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?",
                (hashlib.sha256(b"\x00" + leaf).digest(), sequence),
            )
        conn.commit()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # Still a valid event, but not the bytes the checkpoint signed.
        (b"Dangerous Organisations", b"Dangerous Organizations", "does not match its own events"),
        # No longer valid: the copy validates every event.
        (b'"type":"account_removed"', b'"type":"account_banned"', "source sequence 10: type"),
        # Valid, but not canonical: a copy keeps every leaf byte for byte.
        (
            b'"type":"account_removed"',
            b'"type": "account_removed"',
            "source sequence 10: the event validates to other bytes",
        ),
        # Out of place in the log.
        (b'"sequence":10', b'"sequence":11', "source sequence 10: the event at this position"),
        # Its recorded hash left as it was: named as verify names it, even where no
        # checkpoint covers it (a copy made anew from the edit verified clean).
        (
            b"Dangerous Organisations",
            b"Dangerous Organizations",
            "source sequence 10: the stored event's bytes no longer hash to the leaf recorded",
        ),
    ],
)
def test_a_copy_of_an_altered_source_copies_nothing(
    bare_store: Store, tmp_path: Path, old: bytes, new: bytes, message: str
) -> None:
    source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
    source.ok("init")
    key = tmp_path / "source.key"
    _keyed(source, key)
    _fill(source, key)
    _tamper(Path(source.url), 10, old, new, rehash="no longer hash" not in message)
    result = bare_store.fail("copy", source.url)
    assert message in result.stderr, result.stderr
    _nothing_copied(bare_store, result)
    # Into a store that existed before: it stays, empty, and nothing is said removed.
    bare_store.ok("init")
    assert "nothing of the copy was left" not in bare_store.fail("copy", source.url).stderr
    assert bare_store.count() == 0
    # A file that was there before a SQLite copy made its store in it stays too.
    if bare_store.kind == "sqlite":
        other = tmp_path / "placeholder.db"
        other.write_bytes(b"")
        Store(str(other), "sqlite", tmp_path).fail("copy", source.url)
        assert other.exists()


def _nothing_copied(target: Store, failed: Result) -> None:
    """A failed copy leaves nothing, and says so: a SQLite store it created is removed
    again, and so is a PostgreSQL schema it created (it was left, an empty ledger with
    the source's origin: `init` then said the ledger "already exists")."""
    if target.kind == "sqlite":
        assert not list(Path(target.url).parent.glob(Path(target.url).name + "*"))
        made = "store"
    else:
        import psycopg

        from ledger.location import StoreLocation
        from tests.conftest import PG_URL

        schema = StoreLocation.parse(target.url).schema
        with psycopg.connect(PG_URL) as admin:
            found = admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            assert found.fetchone() is None
        made = "schema"
    said = failed.stderr
    assert "nothing of the copy was left" in said, said
    assert f"the {made} this copy made (" in said, said


def _export_and_checkpoints(store: Store, tmp_path: Path) -> tuple[Path, list[Path]]:
    """What an auditor is handed: the export, and the log's signed checkpoints."""
    export = tmp_path / "handed-over.jsonl"
    export.write_bytes(store.ok("export", "--nl").stdout_bytes)
    with closing(sqlite3.connect(store.url)) as db:
        notes = [row[0] for row in db.execute("SELECT note FROM checkpoints ORDER BY id")]
    paths = []
    for number, note in enumerate(notes):
        path = tmp_path / f"checkpoint-{number}"
        path.write_text(note, encoding="utf-8")
        paths.append(path)
    return export, paths


def _handed_over(tmp_path: Path) -> tuple[Store, str, Path, list[Path]]:
    """An operator's keyed SQLite ledger of three signed batches, and what its auditor
    is handed: the verifier key, the export and the checkpoint files."""
    source = Store(str(tmp_path / "operator.db"), "sqlite", tmp_path)
    source.ok("init")
    key = tmp_path / "source.key"
    vkey = _keyed(source, key)
    _fill(source, key)
    export, checkpoints = _export_and_checkpoints(source, tmp_path)
    return source, vkey, export, checkpoints


def test_an_export_copied_into_a_store_is_the_same_ledger(
    bare_store: Store, tmp_path: Path
) -> None:
    """An auditor's export and checkpoints become a store that answers every question
    as the operator's does, and verifies under the operator's key (the new store takes
    the checkpoints' origin)."""
    source, vkey, export, checkpoints = _handed_over(tmp_path)
    given = [arg for path in checkpoints for arg in ("--checkpoint", str(path))]
    result = bare_store.ok("copy", "--export", str(export), *given, "--vkey", vkey)
    assert result.stdout == f"Copied 24 event(s) and 3 signed checkpoint(s) from {export}\n"
    assert result.stderr == ""  # every event is under a signed checkpoint
    # The same checkpoint given twice (a copy of its file) is stored and counted once.
    twice = Store(str(tmp_path / "twice.db"), "sqlite", tmp_path)
    again = tmp_path / "again.checkpoint"
    again.write_bytes(checkpoints[-1].read_bytes())
    result = twice.ok(
        "copy", "--export", str(export), *given, "--checkpoint", str(again), "--vkey", vkey
    )
    assert result.stdout == f"Copied 24 event(s) and 3 signed checkpoint(s) from {export}\n"
    assert (
        bare_store.ok("verify", "--vkey", vkey).stdout == source.ok("verify", "--vkey", vkey).stdout
    )
    assert _answers(bare_store) == _answers(source)


def test_events_beyond_the_checkpoints_given_are_copied_with_a_warning(
    bare_store: Store, tmp_path: Path
) -> None:
    """Lines after the newest checkpoint given were copied without a word, and the
    store's answers then rested on them (a forged removal read as the status)."""
    _, vkey, export, checkpoints = _handed_over(tmp_path)
    oldest = ["--checkpoint", str(checkpoints[0])]
    size = int(checkpoints[0].read_text(encoding="utf-8").splitlines()[1])
    result = bare_store.ok("copy", "--export", str(export), *oldest, "--vkey", vkey)
    assert result.stderr == (
        f"warning: sequence {size}..23: covered by no signed checkpoint given, so nothing "
        "shows they are the operator's (`verify --all-signed` fails on them)\n"
    )
    assert bare_store.fail("verify", "--vkey", vkey, "--all-signed").exit_code == 1


def _recorded_after_the_checks(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The export's events recorded at 02:00 on the day the checks came, which the
    cut-off (the last of those releases, 20:00) spares; moved to 01:00 here, they are
    new input. (A record time after the real cut-off could be ahead of the clock.)"""
    from ledger import application

    newer = tmp_path / "newer.jsonl"
    newer.write_bytes(
        export.read_bytes().replace(
            b'"recorded_at":"2024-01-01T00', b'"recorded_at":"2026-12-07T02'
        )
    )
    spared = Store(str(tmp_path / "spared.db"), "sqlite", tmp_path)
    spared.ok("copy", "--export", str(newer))  # written by the versions before the checks
    monkeypatch.setattr(application, "NEW_INPUT_CHECKS_SINCE", datetime(2026, 12, 7, 1, tzinfo=UTC))
    return newer


def _written_by_an_older_version(tmp_path: Path, events: list[dict[str, object]]) -> Path:
    """An export of a log an older version wrote: leaves as it stored them, which
    today's checks for new input would refuse (they did not exist then)."""
    from ledger.canonical import canonical_json

    export = tmp_path / "older.jsonl"
    with export.open("wb") as out:
        for sequence, event in enumerate(events):
            leaf = {
                "actor": "older",
                "occurred_at_precision": "instant",
                "recorded_at": f"2024-01-01T00:00:0{sequence}Z",
                "sequence": sequence,
                "source": "https://example.org/report",
                **event,
            }
            out.write(canonical_json(leaf) + b"\n")
    return export


def test_a_registration_retracted_from_under_a_platform_exemption_by_an_older_version_is_copied(
    bare_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = _written_by_an_older_version(
        tmp_path,
        [
            {"type": "subject_registered", "event_id": "s", "subject": "someone",
             "name": "Someone", "kind": "person", "roles": [],
             "occurred_at": "2020-01-01T00:00:00Z"},
            {"type": "account_registered", "event_id": "tw", "account": "twitter:someone",
             "platform": "twitter", "handle": "someone", "subject": "someone",
             "occurred_at": "2020-01-01T00:00:00Z"},
            {"type": "exemption_applied", "event_id": "e", "subject": "someone",
             "platform": "twitter", "exemption": "world_leader", "policy": "p",
             "occurred_at": "2021-01-01T00:00:00Z"},
            {"type": "event_retracted", "event_id": "r", "target": "tw", "reason": "wrong",
             "occurred_at": "2022-01-01T00:00:00Z"},
        ],
    )  # fmt: skip
    bare_store.ok("copy", "--export", str(export))
    assert bare_store.ok("export", "--nl").stdout_bytes == export.read_bytes()
    newer = _recorded_after_the_checks(export, tmp_path, monkeypatch)
    fresh = Store(str(tmp_path / "fresh.db"), "sqlite", tmp_path)
    assert (
        "subject 'someone' holds e (exemption_applied at 2021-01-01T00:00:00Z) under platform "
        "'twitter' through account twitter:someone alone; revoke or retract it first"
    ) in fresh.fail("copy", "--export", str(newer)).stderr


def test_a_log_holding_what_new_input_may_no_longer_hold_is_still_copied_and_kept_up(
    bare_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account id in another Unicode spelling, a retraction dated before its
    target: refused as new input since, but a log that holds them must still move
    (copy validated them as new input, so no such store could be copied), and its
    accounts must still take new events (they were refused for their own id)."""
    decomposed = "twitter:cafe\u0301"
    export = _written_by_an_older_version(
        tmp_path,
        [
            {"type": "account_registered", "event_id": "reg", "account": decomposed,
             "platform": "twitter", "handle": "@cafe", "occurred_at": "2020-01-01T00:00:00Z"},
            {"type": "account_suspended", "event_id": "sus", "account": decomposed,
             "policy": "p", "occurred_at": "2020-01-05T00:00:00Z"},
            {"type": "followers_observed", "event_id": "f", "account": decomposed,
             "count": 5, "occurred_at": "2020-01-06T00:00:00Z"},
            {"type": "event_retracted", "event_id": "x", "target": "f", "reason": "typo",
             "occurred_at": "2020-01-03T00:00:00Z"},
        ],
    )  # fmt: skip
    bare_store.ok("copy", "--export", str(export))
    assert bare_store.ok("export", "--nl").stdout_bytes == export.read_bytes()
    bare_store.append(ev("account_reinstated", "2020-02-01", account=decomposed))
    assert bare_store.status(decomposed)["status"] == "active"
    # New input still may not register such an id, nor date a retraction so.
    reject(
        bare_store,
        "append",
        "-",
        input=jsonl(account("twitter:cre\u0300me", "2020-01-01")),
        expect=("account: must be in Unicode normal form NFC",),
    )
    reject(
        bare_store,
        "append",
        "-",
        input=jsonl(ev("event_retracted", "2020-01-04", target="sus", reason="r")),
        expect=("a retraction cannot occur before its target sus",),
    )
    # Recorded since those checks exist, the same events are new input: refused.
    newer = _recorded_after_the_checks(export, tmp_path, monkeypatch)
    fresh = Store(str(tmp_path / "fresh.db"), "sqlite", tmp_path)
    refused = fresh.fail("copy", "--export", str(newer)).stderr
    assert "source sequence 0: account: must be in Unicode normal form NFC" in refused
    assert (  # the cut-off as patched above
        "(a copy checks the events a log recorded since 2026-12-07T01:00:00Z as new "
        "input; one an older version recorded may fail a check that version did not have)"
        in refused
    )
    # And the store moves on again, store to store.
    onward = Store(str(tmp_path / "onward.db"), "sqlite", tmp_path)
    onward.ok("copy", bare_store.url)
    assert onward.ok("export", "--nl").stdout == bare_store.ok("export", "--nl").stdout


def test_an_export_without_checkpoints_is_copied_under_this_stores_origin(
    bare_store: Store, tmp_path: Path
) -> None:
    source = Store(str(tmp_path / "operator.db"), "sqlite", tmp_path)
    source.ok("init")
    source.ok("append", str(SEED))
    export, _ = _export_and_checkpoints(source, tmp_path)
    bare_store.ok("copy", "--export", str(export))
    assert bare_store.ok("export", "--nl").stdout == source.ok("export", "--nl").stdout


MISSING = object()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("recorded_at", "2999-01-01T00:00:00Z", "is in the future by this machine's clock"),
        ("recorded_at", "2024-01-01T00:00:00", "is not a record time as a ledger writes it"),
        ("recorded_at", "2024-01-01T02:00:00+02:00", "is not a record time as a ledger"),
        ("recorded_at", "garbage", "is not a record time as a ledger writes it"),
        ("recorded_at", 5, "is not a record time as a ledger writes it"),
        ("actor", "", "actor '' must not be empty"),
        ("actor", 5, "actor 5 must be text"),
        ("actor", "me\u200b", "must not contain control characters or invisible ones"),
        # Each was an internal failure (exit 70), or quoted a huge value whole.
        ("actor", MISSING, "actor: required field is missing"),
        ("recorded_at", MISSING, "recorded_at: required field is missing"),
        ("actor", None, "actor null must be text"),
        ("actor", "a" * 100_000, "a… (100,000 characters) must be at most 200 characters"),
        ("recorded_at", "2" * 200_000, "2… (200,000 characters) is not a record time"),
        ("type", [1], "type: unknown event type; expected one of: "),
    ],
)
def test_an_export_whose_record_time_or_actor_no_ledger_writes_copies_nothing(
    bare_store: Store, tmp_path: Path, field: str, value: object, message: str
) -> None:
    """A copy keeps each event's record time and actor, so they are checked as an
    append would have written them: a source clock ahead made every later append
    inherit its future record time (reads "as known now" then saw none of them); a
    time without an offset was an internal failure (exit 70)."""
    source = Store(str(tmp_path / "operator.db"), "sqlite", tmp_path)
    source.ok("init")
    source.ok("append", str(SEED))
    export, _ = _export_and_checkpoints(source, tmp_path)
    lines = export.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first[field] = value
    if value is MISSING:
        del first[field]
    lines[0] = json.dumps(first, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = bare_store.fail("copy", "--export", str(edited))
    assert result.exit_code == 1, result.output
    assert "source sequence 0: " in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    _nothing_copied(bare_store, result)


def test_an_export_with_a_changed_byte_or_a_forged_checkpoint_copies_nothing(
    bare_store: Store, tmp_path: Path
) -> None:
    _, vkey, export, checkpoints = _handed_over(tmp_path)
    newest = ["--checkpoint", str(checkpoints[-1])]
    # Signed by another key: refused before anything is read.
    impostor = Store(str(tmp_path / "impostor.db"), "sqlite", tmp_path)
    impostor.ok("init")
    wrong = _keyed(impostor, tmp_path / "impostor.key")
    result = bare_store.fail("copy", "--export", str(export), *newest, "--vkey", wrong)
    assert f"checkpoint {checkpoints[-1]}: " in result.stderr, result.stderr
    # One byte changed in the export: its roots no longer match the signed one.
    altered = tmp_path / "altered.jsonl"
    altered.write_bytes(export.read_bytes().replace(b'"count":5000000', b'"count":5000001'))
    result = bare_store.fail("copy", "--export", str(altered), *newest, "--vkey", vkey)
    assert "does not match its own events" in result.stderr, result.stderr
    # A shortened export: the signed checkpoint lies beyond it.
    short = tmp_path / "short.jsonl"
    short.write_bytes(b"".join(export.read_bytes().splitlines(keepends=True)[:5]))
    result = bare_store.fail("copy", "--export", str(short), *newest, "--vkey", vkey)
    assert "the source's checkpoint at size 24 is beyond its 5 event(s)" in result.stderr
    _nothing_copied(bare_store, result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give SOURCE (a ledger store) or --export FILE, one of them"),
        (["x.db", "--export", "EXPORT"], "give SOURCE (a ledger store) or --export FILE"),
        (["x.db", "--vkey", "k"], "--checkpoint and --vkey go with --export"),
        (["--export", "EXPORT", "--checkpoint", "EXPORT"], "--checkpoint needs --vkey"),
        # The key would check nothing: the export would be copied unchecked.
        (["--export", "EXPORT", "--vkey", "VKEY"], "--vkey checks the signatures of"),
    ],
)
def test_copy_takes_a_store_or_an_export(tmp_path: Path, args: list[str], message: str) -> None:
    export = tmp_path / "e.jsonl"
    export.write_text("")
    vkey = ledger_notes.generate_signer("example.org/log").verifier_key()
    target = Store(str(tmp_path / "target.db"), "sqlite", tmp_path)
    given = {"EXPORT": str(export), "VKEY": vkey}
    result = target.fail("copy", *[given.get(a, a) for a in args], code=2)
    assert message in result.output
    assert not Path(target.url).exists()


def test_init_origin_on_an_existing_store_of_another_origin_is_refused(tmp_path: Path) -> None:
    # The copy's hint led here, and init said "nothing changed": a loop with no way out.
    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init", "--origin", "example.org/first")
    assert "nothing changed" in store.ok("init", "--origin", "example.org/first").stdout
    with closing(sqlite3.connect(store.url)) as db:
        db.execute("DROP INDEX timeline_followers")  # init would make it again
    result = store.fail("init", "--origin", "example.org/other")
    with closing(sqlite3.connect(store.url)) as db:  # refused before anything is made
        assert not db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'timeline_followers'"
        ).fetchall()
    assert result.stderr == (
        f"Error: {store.url} already exists with origin 'example.org/first'; --origin names "
        "a new store's log and cannot change an existing one: give a new path (or, on "
        "PostgreSQL, a new schema)\n"
    )


def test_a_copy_refusal_of_an_event_recorded_before_the_new_checks_gives_no_hint_of_them(
    bare_store: Store, tmp_path: Path
) -> None:
    """The hint that new checks apply since the cut-off was added to every refusal,
    also of events the cut-off spares (a rule every version had)."""
    export = _written_by_an_older_version(
        tmp_path,
        [
            {"type": "account_suspended", "event_id": "s", "account": "twitter:nobody",
             "policy": "p", "occurred_at": "2020-01-01T00:00:00Z"},
        ],
    )  # fmt: skip
    refused = bare_store.fail("copy", "--export", str(export)).stderr
    assert refused.startswith("Error: source sequence 0: account_suspended s rejected: "), refused
    assert "a copy checks" not in refused


def test_an_interrupted_copy_leaves_nothing_and_says_so(
    bare_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a copy into a store it made: a PostgreSQL schema was left, an
    empty ledger with the source's origin, and "committed whole or not at all" said
    nothing of it."""
    from ledger.application import Ledger

    source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
    source.ok("init")
    source.append(account("twitter:a", "2020-01-01"))

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Ledger, "copy_log", interrupted)
    result = bare_store.run("copy", source.url)
    assert result.exit_code == 130, result.output
    assert result.stderr.startswith("Interrupted: nothing of the copy was left (the "), (
        result.stderr
    )
    _nothing_copied(bare_store, result)


def test_an_interrupted_copy_whose_cleanup_fails_still_says_it_was_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv23: the drop of the schema a failed copy made ran in its except clause; its
    own failure (a lost connection, a lock timeout) replaced the copy's, Ctrl-C's 130
    among them, and the message claimed nothing of what was left."""
    from tests.conftest import PG_URL, drop_schema, require_postgres

    require_postgres()
    import uuid

    from ledger.application import Ledger
    from ledger.location import StoreError
    from ledger.postgres import PostgresStorage

    source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
    source.ok("init")
    source.append(account("twitter:a", "2020-01-01"))

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    def lock_timed_out(*_: object) -> bool:
        raise StoreError("canceling statement due to lock timeout")

    monkeypatch.setattr(Ledger, "copy_log", interrupted)
    monkeypatch.setattr(PostgresStorage, "drop_made_schema", lock_timed_out)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    target = Store(f"{PG_URL}?schema={schema}", "postgres", tmp_path)
    try:
        result = target.run("copy", source.url)
        assert result.exit_code == 130, result.output
        assert (
            result.stderr == "Interrupted: a write in progress was committed whole or not at all\n"
        )
    finally:
        drop_schema(schema)


def _someones_table(schema: str) -> None:
    """Someone else's table in ``schema``, made on a connection of their own."""
    import psycopg

    from tests.conftest import PG_URL

    with psycopg.connect(PG_URL, autocommit=True) as theirs:
        theirs.execute(f'CREATE TABLE "{schema}".their_notes (note TEXT)')


def _relations_in(schema: str) -> set[str]:
    import psycopg

    from tests.conftest import PG_URL

    with psycopg.connect(PG_URL) as admin:
        rows = admin.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchall()
    return {name for (name,) in rows}


def _failing_copy_into_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, made_between: bool, racing: bool = False
) -> tuple[str, Result]:
    """A copy into a new PostgreSQL schema that fails (Ctrl-C) after someone else put a
    table of theirs in the schema; ``made_between``: they made the schema itself too,
    after the copy found it missing and before it made the ledger; ``racing``: they
    made it in a transaction still open when the copy looked, committed while the
    copy's CREATE SCHEMA waited for it."""
    import uuid

    from ledger.application import Ledger
    from ledger.postgres import PostgresStorage
    from tests.conftest import PG_URL, require_postgres

    require_postgres()
    import psycopg

    source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
    source.ok("init")
    source.append(account("twitter:a", "2020-01-01"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    made = PostgresStorage.create

    def someone_made_it_first(self: PostgresStorage, *args: object, **kwargs: object) -> bool:
        if not racing:
            with psycopg.connect(PG_URL, autocommit=True) as theirs:
                theirs.execute(f'CREATE SCHEMA "{schema}"')
            return made(self, *args, **kwargs)  # type: ignore[arg-type]
        with psycopg.connect(PG_URL) as theirs:
            theirs.execute(f'CREATE SCHEMA "{schema}"')  # not yet committed
            pid = theirs.info.backend_pid

            def commit_once_the_copy_waits() -> None:
                # Committed once a session waits on theirs (the copy's CREATE SCHEMA):
                # the race taken for certain, however slow the copy is to get there.
                with psycopg.connect(PG_URL, autocommit=True) as watching:
                    for _ in range(600):
                        waiting = watching.execute(
                            "SELECT 1 FROM pg_stat_activity WHERE %s = ANY("
                            "pg_blocking_pids(pid)) AND query LIKE 'CREATE SCHEMA%%'",
                            (pid,),
                        ).fetchone()
                        if waiting:
                            races.append(True)
                            break
                        time.sleep(0.02)
                theirs.commit()

            committing = threading.Thread(target=commit_once_the_copy_waits)
            committing.start()
            try:
                return made(self, *args, **kwargs)  # type: ignore[arg-type]
            finally:
                committing.join()

    races: list[bool] = []  # whether the copy's CREATE SCHEMA was seen waiting

    def interrupted(*_: object, **__: object) -> None:
        assert races or not racing, "the copy never waited on their CREATE SCHEMA"
        if not racing:  # (racing: the schema alone is theirs, no table keeps it)
            _someones_table(schema)
        raise KeyboardInterrupt

    if made_between:
        monkeypatch.setattr(PostgresStorage, "create", someone_made_it_first)
    monkeypatch.setattr(Ledger, "copy_log", interrupted)
    target = Store(f"{PG_URL}?schema={schema}", "postgres", tmp_path)
    return schema, target.run("copy", source.url)


def test_a_failed_copy_keeps_a_table_someone_put_in_the_schema_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv23: the schema a failed copy made was dropped with CASCADE, and with it any
    table someone else had made in it meanwhile. Only the ledger's own objects go; the
    schema, theirs too now, stays, and the message says so."""
    schema, result = _failing_copy_into_postgres(tmp_path, monkeypatch, made_between=False)
    try:
        assert result.exit_code == 130, result.output
        assert _relations_in(schema) == {"their_notes"}
        assert result.stderr == (
            "Interrupted: nothing of the copy was left (the ledger this copy made was removed "
            f"again; schema {schema!r} stays, holding only tables or other objects the copy "
            "did not make)\n"
        )
    finally:
        drop_schema(schema)


def test_a_failed_copy_leaves_a_schema_someone_made_while_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv23: whether the schema was there was asked before the ledger was made, with
    no lock across: one someone made in that gap was taken for the copy's own, and
    dropped with CASCADE when the copy failed, their tables in it."""
    schema, result = _failing_copy_into_postgres(tmp_path, monkeypatch, made_between=True)
    try:
        assert result.exit_code == 130, result.output
        assert "their_notes" in _relations_in(schema)
    finally:
        drop_schema(schema)


def test_a_failed_copy_leaves_a_schema_made_while_its_own_create_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review rv24: the schema made by another transaction still open when the copy
    looked (so not seen), committed while the copy's CREATE SCHEMA waited on it: that
    fails on the catalog's unique index, and the schema is not taken for the copy's."""
    schema, result = _failing_copy_into_postgres(
        tmp_path, monkeypatch, made_between=True, racing=True
    )
    try:
        assert result.exit_code == 130, result.output
        assert (
            result.stderr == "Interrupted: a write in progress was committed whole or not at all\n"
        )
        # Theirs: not dropped, the copy's empty ledger left in it (as in any schema that
        # was there before the copy).
        assert "ledger_meta" in _relations_in(schema)
    finally:
        drop_schema(schema)


def test_an_actor_an_older_version_recorded_with_a_joiner_is_copied(
    bare_store: Store, tmp_path: Path
) -> None:
    """rv30: a ZWJ between two Arabic letters in an actor was recorded until the
    joiner rule changed; copy checked the stored actor whatever its record time."""
    export = _written_by_an_older_version(
        tmp_path,
        [
            {"type": "account_registered", "event_id": "reg", "account": "twitter:a",
             "platform": "twitter", "handle": "a", "occurred_at": "2020-01-01T00:00:00Z",
             "actor": "\u0645\u062d\u200d\u0645\u062f"},
        ],
    )  # fmt: skip
    bare_store.ok("copy", "--export", str(export))
    assert bare_store.ok("export", "--nl").stdout_bytes == export.read_bytes()
