"""What an attacker with direct database access can and cannot get past `verify`.

First the append-only triggers are shown to fire. Then each attack drops them, as
anyone with file access (SQLite) or the owner role (PostgreSQL) can, and edits the
tables directly: the stored payload is the Merkle leaf, so `verify --vkey KEY`
must name the first bad sequence. The last attack rewrites history completely
and re-signs it with the operator's own key; only an auditor's saved checkpoint
(`verify --trusted`) can catch that, and does.

Every test starts from a keyed store holding 38 events appended in 3 batches, so
3 signed checkpoints (sizes 19, 30, 38) are stored. The core attacks run on SQLite
and, through psycopg as user postgres, on PostgreSQL; their variants on SQLite.
The last tests probe the edges: checkpoints deleted to hide an edit, and a corrupted
Merkle node table (which proofs and new checkpoints are computed from).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from ledger import integrity, notes
from tests.conftest import PG_URL, Store
from tests.ledger_helpers import cli_process

SEED = Path(__file__).resolve().parent.parent / "ledger" / "data" / "seed.jsonl"
SOURCE = "https://example.org/report"
SIZES = [19, 30, 38]
LEDGER_TABLES = ("ledger_entries", "merkle_nodes", "checkpoints", "ledger_meta")
# A column each table has, for an UPDATE that changes nothing (the trigger still fires).
SOME_COLUMN = {
    "stored_events": "topic",
    "enforcementledger_events": "topic",
    "ledger_entries": "type",
    "merkle_nodes": "hash",
    "checkpoints": "note",
    "ledger_meta": "value",
}


# Overrides the `store_kind` parameter of conftest's `store` fixture.
SQLITE_ONLY = pytest.mark.parametrize("store_kind", ["sqlite"])


# --- an independent RFC 6962 reference -------------------------------------------


def ref_leaf(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def ref_root(lines: Sequence[bytes]) -> bytes:
    n = len(lines)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(lines[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_root(lines[:k]) + ref_root(lines[k:])).digest()


def ref_nodes(lines: Sequence[bytes]) -> set[tuple[int, int, bytes]]:
    """Every perfect subtree (level, index, hash) of the tree over ``lines``."""
    nodes = set()
    level = 0
    while 1 << level <= len(lines):
        width = 1 << level
        for index in range(len(lines) // width):
            nodes.add((level, index, ref_root(lines[index * width : (index + 1) * width])))
        level += 1
    return nodes


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- raw access to the store's tables ---------------------------------------------


class Tables:
    """The attacker's own connection: plain sqlite3 or psycopg, autocommit."""

    def __init__(self, store: Store) -> None:
        self.kind = store.kind
        if store.kind == "sqlite":
            self.raw: Any = sqlite3.connect(store.url, isolation_level=None)
            self.events = "stored_events"
            self.row_id = "rowid"
            self.errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
        else:
            import psycopg

            self.schema = store.url.rsplit("schema=", 1)[1]
            self.raw = psycopg.connect(PG_URL, autocommit=True)
            self.raw.execute(f'SET search_path TO "{self.schema}"')
            self.events = "enforcementledger_events"
            self.row_id = "notification_id"
            self.errors = (psycopg.Error,)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.kind == "postgres":
            sql = sql.replace("?", "%s")
        return self.raw.execute(sql, tuple(params))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())

    def close(self) -> None:
        self.raw.close()

    def triggers(self) -> list[tuple[str, str]]:
        """(trigger, table) for every trigger the ledger created."""
        if self.kind == "sqlite":
            return self.all("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        return self.all(
            "SELECT t.tgname, c.relname FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND NOT t.tgisinternal",
            (self.schema,),
        )

    def drop_triggers(self) -> None:
        found = self.triggers()
        assert found, "expected append-only triggers to drop"
        for name, table in found:
            if self.kind == "sqlite":
                self.execute(f'DROP TRIGGER "{name}"')
            else:
                self.execute(f'DROP TRIGGER "{name}" ON "{table}"')
        assert self.triggers() == []

    # events, addressed by the ledger's sequence
    def row_of(self, sequence: int) -> int:
        rows = self.all(
            "SELECT notification_id FROM ledger_entries WHERE sequence = ?", (sequence,)
        )
        assert len(rows) == 1, (sequence, rows)
        return int(rows[0][0])

    def payload(self, sequence: int) -> bytes:
        rows = self.all(
            f"SELECT state FROM {self.events} WHERE {self.row_id} = ?", (self.row_of(sequence),)
        )
        return bytes(rows[0][0])

    def set_payload(self, sequence: int, state: bytes) -> None:
        cursor = self.execute(
            f"UPDATE {self.events} SET state = ? WHERE {self.row_id} = ?",
            (state, self.row_of(sequence)),
        )
        assert cursor.rowcount == 1

    def delete_event(self, sequence: int, *, with_entry: bool) -> None:
        row = self.row_of(sequence)
        assert self.execute(f"DELETE FROM {self.events} WHERE {self.row_id} = ?", (row,)).rowcount
        if with_entry:
            self.execute("DELETE FROM ledger_entries WHERE sequence = ?", (sequence,))

    def leaves(self) -> list[bytes]:
        return [
            bytes(r[0]) for r in self.all(f"SELECT state FROM {self.events} ORDER BY {self.row_id}")
        ]

    def columns(self, table: str) -> set[str]:
        if self.kind == "sqlite":
            return {r[1] for r in self.all(f"PRAGMA table_info({table})")}
        return {
            r[0]
            for r in self.all(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ?",
                (self.schema, table),
            )
        }

    def replace_nodes(self, lines: Sequence[bytes]) -> None:
        """The node table as the product would have built it over ``lines``."""
        self.execute("DELETE FROM merkle_nodes")
        for row in sorted(ref_nodes(lines)):
            self.execute("INSERT INTO merkle_nodes VALUES (?, ?, ?)", row)

    def nodes(self) -> set[tuple[int, int, bytes]]:
        return {
            (r[0], r[1], bytes(r[2])) for r in self.all("SELECT level, idx, hash FROM merkle_nodes")
        }


@dataclass
class KeyedLedger:
    """A keyed store with 3 batches appended, and the auditor's view of it."""

    store: Store
    key: Path
    vkey: str
    lines: list[bytes]

    def run(self, *args: str, input: str | None = None) -> Result:
        return self.store.run("--key-file", str(self.key), *args, input=input)

    def verify(self, *args: str) -> Result:
        return self.run("verify", "--vkey", self.vkey, *args)

    def verify_fails(self, *args: str) -> str:
        result = self.verify(*args)
        assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
        assert "Traceback" not in result.output
        assert result.stderr.startswith("Error: "), result.stderr
        assert "OK" not in result.stdout
        return result.stderr

    def verify_ok(self, *args: str) -> str:
        result = self.verify(*args)
        assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
        return result.stdout

    def save_checkpoint(self, name: str) -> Path:
        result = self.run("checkpoint")
        assert result.exit_code == 0, result.output
        path = self.store.tmp_path / name
        path.write_text(result.stdout, encoding="utf-8")
        return path


def events_for(batch: int, count: int) -> str:
    lines = []
    for i in range(count):
        name = f"batch{batch}_subject_{i:02d}"
        event = {
            "type": "subject_registered",
            "subject": name,
            "name": name.replace("_", " ").title(),
            "kind": "person",
            "occurred_at": "2019-01-01T00:00:00Z",
            "source": SOURCE,
            "event_id": f"subject-{name}",
        }
        lines.append(json.dumps(event) + "\n")
    return "".join(lines)


@pytest.fixture
def ledger(store: Store) -> KeyedLedger:
    key = store.tmp_path / "operator.key"
    keyed = ("--key-file", str(key))
    vkey = store.ok(*keyed, "keygen").stdout.strip()
    store.ok(*keyed, "append", str(SEED))
    store.ok(*keyed, "append", "-", input=events_for(2, 11))
    store.ok(*keyed, "append", "-", input=events_for(3, 8))
    lines = store.ok("export", "--nl").stdout_bytes.splitlines()
    assert len(lines) == SIZES[-1]
    result = KeyedLedger(store, key, vkey, lines)
    out = result.verify_ok()
    assert f"OK size {SIZES[-1]} " in out
    assert f"({len(SIZES)} checkpoint(s)" in out
    return result


@pytest.fixture
def tables(ledger: KeyedLedger) -> Iterator[Tables]:
    handle = Tables(ledger.store)
    try:
        yield handle
    finally:
        handle.close()


def named_sequence(message: str) -> int:
    """The first sequence number a failure message names."""
    match = re.search(r"\bsequence (\d+)", message)
    assert match, message
    return int(match[1])


def change_one_byte(leaf: bytes) -> bytes:
    """Flip one letter inside the event's source URL: still valid canonical JSON."""
    at = leaf.index(b'"source":"') + len(b'"source":"') + 1
    changed = bytearray(leaf)
    changed[at] = ord("X") if changed[at] != ord("X") else ord("Y")
    return bytes(changed)


# --- the triggers fire -------------------------------------------------------------


def test_triggers_refuse_update_and_delete_on_every_ledger_table(
    ledger: KeyedLedger, tables: Tables
) -> None:
    for table in (tables.events, *LEDGER_TABLES):
        column = SOME_COLUMN[table]
        statements = [f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"]
        if tables.kind == "postgres":
            statements.append(f"TRUNCATE {table}")
        for statement in statements:
            with pytest.raises(tables.errors, match=f"{table} is append-only"):
                tables.execute(statement)
    # The targeted edits the attacks below make are refused too, while triggers stand.
    original = tables.payload(5)
    with pytest.raises(tables.errors, match="append-only"):
        tables.set_payload(5, change_one_byte(original))
    with pytest.raises(tables.errors, match="append-only"):
        tables.delete_event(SIZES[-1] - 1, with_entry=False)
    with pytest.raises(tables.errors, match="append-only"):
        tables.execute("DELETE FROM checkpoints WHERE size = ?", (SIZES[-1],))
    assert tables.leaves() == ledger.lines
    assert len(tables.all("SELECT size FROM checkpoints")) == len(SIZES)
    ledger.verify_ok()


# --- attacks with the triggers dropped --------------------------------------------


def test_one_changed_byte_in_a_stored_payload_is_named(ledger: KeyedLedger, tables: Tables) -> None:
    bad = 21
    tables.drop_triggers()
    tables.set_payload(bad, change_one_byte(tables.payload(bad)))
    message = ledger.verify_fails()
    assert named_sequence(message) == bad
    assert message == (
        f"Error: sequence {bad}: the stored event's bytes no longer hash to the leaf "
        "recorded at append time, which the stored checkpoint at size 30 confirms (the "
        "event was altered)\n"
    )


def test_an_edited_index_hash_is_named_as_that_not_as_an_altered_event(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Only the index's copy of a leaf hash changed: "the event was altered" would
    have had an auditor report falsified content that was intact (its export
    verified)."""
    bad = 21
    tables.drop_triggers()
    set_hash = "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?"
    tables.execute(set_hash, (bytes(32), bad))
    assert ledger.verify_fails() == (
        f"Error: sequence {bad}: the leaf hash the log index recorded for it at append time "
        "was changed outside the ledger; the stored event itself is intact (the log still "
        "matches the stored checkpoint at size 30)\n"
    )
    # Only the sequences the checkpoint covers are judged by it: an event altered
    # beyond it was counted in ("and 1 more … intact").
    later = tables.payload(33)
    tables.set_payload(33, change_one_byte(later))
    judged = ledger.verify_fails()
    assert judged.startswith(f"Error: sequence {bad}: the leaf hash the log index "), judged
    assert "more" not in judged
    tables.set_payload(33, later)
    # A hash edited into text: named, not a crash (exit 70).
    tables.execute(set_hash, ("abc", bad))
    assert ledger.verify_fails().startswith(f"Error: sequence {bad}: ")
    # With an event after it altered under the same checkpoint: not "sequence 21 was
    # altered" (it is intact): neither the bytes nor the recorded hashes give the signed
    # root, so the range is named, and the hashes that differ.
    original = tables.payload(bad + 1)
    tables.set_payload(bad + 1, change_one_byte(original))
    both = ledger.verify_fails()
    assert both.startswith("Error: sequence 19..29: root at size 30 is "), both
    assert both.endswith(
        "; an event in this range was altered; the hashes the index recorded at append time "
        f"also differ from the stored events at sequences {bad}, {bad + 1}, and give no "
        "signed root either\n"
    )
    # The same with the altered event's recorded hash fixed up to its new bytes: not
    # "sequence 21 was altered" either.
    tables.execute(set_hash, (ref_leaf(tables.payload(bad + 1)), bad + 1))
    fixed = ledger.verify_fails()
    assert fixed.startswith("Error: sequence 19..29: root at size 30 is "), fixed
    assert f"also differ from the stored events at sequences {bad}, and give" in fixed
    tables.execute(set_hash, (ref_leaf(original), bad + 1))
    # A later finding that stops the check before the checkpoint: named, and not "no
    # checkpoint covers it".
    tables.set_payload(bad + 1, original.replace(b'"sequence":22', b'"sequence":23'))
    stopped = ledger.verify_fails()
    assert stopped.startswith(
        f"Error: sequence {bad}: the stored event's bytes no longer hash to the leaf recorded "
        "at append time: the event, or the hash recorded for it, was altered (the check "
        f"stopped before a signed checkpoint could tell which: sequence {bad + 1}: "
    ), stopped
    tables.set_payload(bad + 1, original)
    tables.execute(set_hash, (ref_leaf(tables.payload(bad)), bad))
    ledger.verify_ok()
    # Where no signed checkpoint covers it, which of the two changed cannot be told.
    tables.execute("DELETE FROM checkpoints WHERE size > 30")
    tables.execute(set_hash, (bytes(32), 33))
    assert ledger.verify_fails() == (
        "Error: sequence 33: the stored event's bytes no longer hash to the leaf recorded "
        "at append time: the event, or the hash recorded for it, was altered (no signed "
        "checkpoint covers it to tell which)\n"
    )


def test_a_stored_event_set_to_null_is_named(ledger: KeyedLedger, tables: Tables) -> None:
    bad = 21
    tables.drop_triggers()
    tables.set_payload(bad, None)  # type: ignore[arg-type]
    message = ledger.verify_fails()
    assert f"sequence {bad}: the stored event is NULL, not bytes" in message
    _reads_point_to_verify(ledger, "NULL")


@SQLITE_ONLY
def test_a_stored_event_edited_into_text_is_named(ledger: KeyedLedger, tables: Tables) -> None:
    """`replace()` in the sqlite3 shell returns TEXT: the most natural hand edit."""
    bad = 21
    tables.drop_triggers()
    tables.execute(
        "UPDATE stored_events SET state = replace(state, '\"source\"', '\"Source\"') "
        "WHERE rowid = ?",
        (tables.row_of(bad),),
    )
    assert tables.all("SELECT count(*) FROM stored_events WHERE typeof(state) = 'text'") == [(1,)]
    message = ledger.verify_fails()
    assert f"sequence {bad}: the stored event is text, not bytes" in message
    _reads_point_to_verify(ledger, "text")
    target = Store(str(ledger.store.tmp_path / "copy.db"), "sqlite", ledger.store.tmp_path)
    result = target.run("copy", ledger.store.url)
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "the store holds an event that is text, not bytes" in result.stderr


def _reads_point_to_verify(ledger: KeyedLedger, held: str) -> None:
    """Reads of a stored event that is not bytes say so (exit 1), not exit 70."""
    before = ledger.store.ok("accounts", "--as-of", "2030-01-01", "--known-at", "2030-01-01")
    commands = [("replay", "--silent"), ("timeline",), ("export", "--nl")]
    # The failed replay emptied PostgreSQL's read models, so a status read projects
    # again and meets the event; SQLite's replay rolled back whole, so its read models
    # answer as they were (projected before the edit, as any unreplayed store does).
    if ledger.store.kind == "postgres":
        commands.append(("accounts",))
    for command in commands:
        result = ledger.store.run(*command)
        assert result.exit_code == 1, (command, result.exit_code, result.output)
        assert result.stderr == (
            f"Error: the store holds an event that is {held}, not bytes: it was changed "
            "outside the ledger; `enforcement-ledger verify` finds where\n"
        ), (command, result.stderr)
    if ledger.store.kind == "sqlite":
        after = ledger.store.ok("accounts", "--as-of", "2030-01-01", "--known-at", "2030-01-01")
        assert after.stdout == before.stdout


@SQLITE_ONLY
def test_changed_byte_with_fixed_up_stored_hashes_is_still_caught(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Stored hashes are never trusted: the signed roots catch the edit."""
    bad = 21
    tables.drop_triggers()
    leaf = change_one_byte(tables.payload(bad))
    tables.set_payload(bad, leaf)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?", (ref_leaf(leaf), bad)
    )
    lines = list(ledger.lines)
    lines[bad] = leaf
    tables.replace_nodes(lines)
    message = ledger.verify_fails()
    # The damage lies between the checkpoints at sizes 19 and 30.
    assert f"sequence {SIZES[0]}..{SIZES[1] - 1}" in message
    assert f"size {SIZES[1]}" in message


@pytest.mark.parametrize(
    ("store_kind", "with_entry"),
    [("sqlite", False), ("sqlite", True), ("postgres", True)],
    ids=["sqlite-event-row", "sqlite-event-and-entry", "postgres-event-and-entry"],
)
def test_a_deleted_row_is_named(ledger: KeyedLedger, tables: Tables, with_entry: bool) -> None:
    gone = 12
    tables.drop_triggers()
    tables.delete_event(gone, with_entry=with_entry)
    assert len(tables.leaves()) == SIZES[-1] - 1
    message = ledger.verify_fails()
    assert named_sequence(message) == gone


@SQLITE_ONLY
def test_an_event_row_added_outside_the_ledger_is_named_as_added(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """A well-formed leaf for the next sequence, inserted with no log index row: named
    as added, not as an altered event."""
    tables.drop_triggers()
    last = json.loads(tables.payload(SIZES[-1] - 1))
    forged = canonical({**last, "sequence": SIZES[-1], "event_id": "forged"})
    topic = tables.all("SELECT topic FROM stored_events LIMIT 1")[0][0]
    tables.execute(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "VALUES (?, 1, ?, ?)",
        ("00000000-0000-0000-0000-0000000000ff", topic, forged),
    )
    message = ledger.verify_fails()
    assert f"sequence {SIZES[-1]}: a stored event the log index does not list" in message


def test_two_swapped_events_name_the_lower_sequence(ledger: KeyedLedger, tables: Tables) -> None:
    low, high = 9, 27
    tables.drop_triggers()
    first, second = tables.payload(low), tables.payload(high)
    tables.set_payload(low, second)
    tables.set_payload(high, first)
    message = ledger.verify_fails()
    assert named_sequence(message) == low


@SQLITE_ONLY
def test_two_swapped_neighbours_in_one_batch(ledger: KeyedLedger, tables: Tables) -> None:
    low = 31
    tables.drop_triggers()
    first, second = tables.payload(low), tables.payload(low + 1)
    tables.set_payload(low, second)
    tables.set_payload(low + 1, first)
    assert named_sequence(ledger.verify_fails()) == low


@pytest.mark.parametrize(
    ("store_kind", "cut"),
    [("sqlite", 1), ("sqlite", 5), ("sqlite", SIZES[-1] - SIZES[1]), ("postgres", 5)],
)
def test_a_truncated_log_is_detected(ledger: KeyedLedger, tables: Tables, cut: int) -> None:
    tables.drop_triggers()
    for sequence in range(SIZES[-1] - cut, SIZES[-1]):
        tables.delete_event(sequence, with_entry=True)
    assert len(tables.leaves()) == SIZES[-1] - cut
    message = ledger.verify_fails()
    assert "truncated" in message
    assert named_sequence(message) == SIZES[-1] - cut


def test_truncation_that_also_drops_checkpoints_needs_the_auditors_copy(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Cut back to an older checkpoint: the store alone looks like an older log."""
    saved = ledger.save_checkpoint("auditor.checkpoint")
    tables.drop_triggers()
    for sequence in range(SIZES[1], SIZES[-1]):
        tables.delete_event(sequence, with_entry=True)
    tables.execute("DELETE FROM checkpoints WHERE size > ?", (SIZES[1],))
    tables.replace_nodes(ledger.lines[: SIZES[1]])
    assert f"OK size {SIZES[1]} " in ledger.verify_ok()
    message = ledger.verify_fails("--trusted", str(saved))
    assert named_sequence(message) == SIZES[1]
    # A store is no export taken early: no advice to give a checkpoint of its size,
    # which would hide the truncation.
    assert message.endswith(
        f"the log has {SIZES[1]} events but the checkpoint {saved} commits to "
        f"{SIZES[-1]}; the log was truncated\n"
    )


def rewrite_history(ledger: KeyedLedger, tables: Tables, sequence: int) -> list[bytes]:
    """Edit one event and recompute everything a verifier can check, re-signed.

    Payload, stored leaf and content hashes, every Merkle node, and every stored
    checkpoint (same sizes, new roots, signed again with the operator's key).
    """
    lines = tables.leaves()
    assert lines == ledger.lines
    assert tables.nodes() == ref_nodes(lines), "the reference tree must match the stored one"
    record = json.loads(lines[sequence])
    record["source"] = "https://example.org/a-different-story"
    leaf = canonical(record)
    lines[sequence] = leaf

    tables.drop_triggers()
    tables.set_payload(sequence, leaf)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?", (ref_leaf(leaf), sequence)
    )
    if "content_hash" in tables.columns("ledger_entries"):  # older schema versions
        content = {
            k: v
            for k, v in record.items()
            if k not in ("event_id", "recorded_at", "actor", "sequence")
        }
        tables.execute(
            "UPDATE ledger_entries SET content_hash = ? WHERE sequence = ?",
            (hashlib.sha256(canonical(content)).hexdigest(), sequence),
        )
    tables.replace_nodes(lines)

    origin = tables.all("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0]
    signer = integrity.load_signer(ledger.key)
    stored = tables.all("SELECT size, created_at FROM checkpoints ORDER BY id")
    tables.execute("DELETE FROM checkpoints")
    for size, created_at in stored:
        root = ref_root(lines[:size])
        note = integrity.sign_tree_head(origin, size, root, signer)
        tables.execute(
            "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
            (size, root, note, created_at),
        )
    return lines


def test_history_rewritten_and_re_signed_is_caught_by_a_trusted_checkpoint(
    ledger: KeyedLedger, tables: Tables
) -> None:
    saved = ledger.save_checkpoint("auditor.checkpoint")
    assert "1 trusted" in ledger.verify_ok("--trusted", str(saved))
    victim = 5
    lines = rewrite_history(ledger, tables, victim)

    # The store on its own is self-consistent: every check it can make passes.
    out = ledger.verify_ok()
    root = ref_root(lines)
    assert f"OK size {SIZES[-1]} root {base64.b64encode(root).decode()}" in out
    export = ledger.store.ok("export", "--nl").stdout_bytes.splitlines()
    assert export == lines
    assert export[victim] != ledger.lines[victim]

    # The auditor's checkpoint, saved before the rewrite, exposes it. The store's own
    # checkpoints were re-signed, so the range after the last of them (30..37) leaves
    # out the rewritten sequence 5: the range named is the one only the trusted
    # checkpoint bounds, and the store's narrower one is given as no evidence.
    message = ledger.verify_fails("--trusted", str(saved))
    assert message.startswith(f"Error: sequence 0..{SIZES[-1] - 1}: root at size "), message
    assert f"the trusted checkpoint {saved} says" in message
    assert "rewritten" in message
    assert (
        f"(the store's own checkpoints would place it in {SIZES[-2]}..{SIZES[-1] - 1}, but "
        "they are evidence only if the signing key never left the operator's hands)"
    ) in message
    # The index's hash of the event left as it was: the re-signed checkpoints match the
    # altered bytes, but the auditor's own matches the recorded hashes, which proves the
    # event altered ("intact" was said, from the store's own checkpoint at size 19).
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?",
        (ref_leaf(ledger.lines[victim]), victim),
    )
    assert ledger.verify_fails("--trusted", str(saved)) == (
        f"Error: sequence {victim}: the stored event's bytes no longer hash to the leaf "
        f"recorded at append time, which the trusted checkpoint {saved} at size "
        f"{SIZES[-1]} confirms (the event was altered)\n"
    )


def test_an_index_hash_edit_under_re_signed_checkpoints_is_judged_by_the_auditors(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """The store's own checkpoints re-signed over an edited index hash (the key was
    stolen) made an intact event "altered", though the auditor's checkpoint showed it
    intact: the outside checkpoint decides."""
    from ledger import merkle

    saved = ledger.save_checkpoint("auditor.checkpoint")
    victim = 3
    fake = hashlib.sha256(b"another").digest()
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?", (fake, victim))
    origin = tables.all("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0]
    signer = integrity.load_signer(ledger.key)
    hashes = [ref_leaf(line) for line in ledger.lines]
    hashes[victim] = fake
    for size in SIZES:
        tree = merkle.StreamingRoot()
        for digest in hashes[:size]:
            tree.append(digest)
        root = tree.root()
        note = integrity.sign_tree_head(origin, size, root, signer)
        tables.execute(
            "UPDATE checkpoints SET root = ?, note = ? WHERE size = ?", (root, note, size)
        )
    # Alone, the store's own re-signed checkpoints are all it has.
    assert "which the stored checkpoint at size 19 confirms" in ledger.verify_fails()
    assert ledger.verify_fails("--trusted", str(saved)) == (
        f"Error: sequence {victim}: the leaf hash the log index recorded for it at append "
        "time was changed outside the ledger; the stored event itself is intact (the log "
        f"still matches the trusted checkpoint {saved} at size {SIZES[-1]})\n"
    )


def _resign_stored(ledger: KeyedLedger, tables: Tables, size: int, hashes: list[bytes]) -> None:
    """The stored checkpoint at ``size`` signed again, with the operator's key, over
    ``hashes`` (leaf hashes)."""
    from ledger import merkle

    origin = tables.all("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0]
    tree = merkle.StreamingRoot()
    for digest in hashes[:size]:
        tree.append(digest)
    root = tree.root()
    note = integrity.sign_tree_head(origin, size, root, integrity.load_signer(ledger.key))
    tables.execute("UPDATE checkpoints SET root = ?, note = ? WHERE size = ?", (root, note, size))


def test_verify_claims_only_what_the_signed_roots_prove(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 2: recorded values of other lengths folded into a "confirmed" root
    (two neighbours' hashes cut and joined anew); a store checkpoint skipped while an
    auditor's was awaited still narrowed the range; a store checkpoint re-signed over an
    altered event said "intact" though the later ones disagree."""
    saved = ledger.save_checkpoint("auditor.checkpoint")
    tables.drop_triggers()
    set_hash = "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?"
    hashes = [ref_leaf(line) for line in ledger.lines]
    # 20 and 21 are siblings: their recorded values joined give their parent.
    tables.set_payload(20, change_one_byte(ledger.lines[20]))
    tables.execute(set_hash, (hashes[20] + hashes[21][:10], 20))
    tables.execute(set_hash, (hashes[21][10:], 21))
    cut = ledger.verify_fails()
    assert cut.startswith("Error: sequence 19..29: root at size 30 is "), cut
    assert "confirms" not in cut
    tables.set_payload(20, ledger.lines[20])
    for sequence in (20, 21):
        tables.execute(set_hash, (hashes[sequence], sequence))
    ledger.verify_ok()
    # An altered event (5) and an index hash edited (25), with the auditor's checkpoint:
    # the store's at 19 agrees with the recorded hashes, its judgement held until the
    # auditor's decides. Here the auditor's matches the log as the store's judged it,
    # which confirms them (probe vt21: the range 0..29 was named, neither judgement).
    tables.set_payload(5, change_one_byte(ledger.lines[5]))
    tables.execute(set_hash, (bytes(32), 25))
    store_found = (
        "sequence 5: the stored event's bytes no longer hash to the leaf recorded at append "
        "time, which the stored checkpoint at size 19 confirms (the event was altered); "
        "{went}sequence 25: the leaf hash the log index recorded for it at append time was "
        "changed outside the ledger; the stored event itself is intact (the log, with the "
        "events found altered before 19 as signed, still matches the stored checkpoint at "
        "size 30)"
    )
    assert ledger.verify_fails("--trusted", str(saved)) == (
        "Error: " + store_found.format(went="the check went on to find: ") + f"; the trusted "
        f"checkpoint {saved} at size 38 matches the log as found here, which confirms from "
        "outside the store what its own checkpoints found\n"
    )
    # Event 34 altered too, its hash fixed up: the auditor's matches neither; the range
    # named starts before 5, not at 19, and the store's findings are its evidence only.
    # The check goes on, and names the range plain verify names, the store's own
    # checkpoint's (probe fxvt2: the check stopped at the auditor's finding).
    tables.set_payload(34, change_one_byte(ledger.lines[34]))
    tables.execute(set_hash, (ref_leaf(tables.payload(34)), 34))
    plain = ledger.verify_fails()
    went, later = plain.rstrip("\n").rsplit("; and then: ", 1)
    assert went == "Error: " + store_found.format(went="the check went on to find: "), plain
    assert later.startswith("sequence 30..37: root at size 38, with the events found "), plain
    assert later.endswith("; an event in this range was altered"), plain
    ranged = ledger.verify_fails("--trusted", str(saved))
    assert ranged.startswith("Error: sequence 0..37: root at size 38 is "), ranged
    assert ranged.endswith(
        "; the store's own checkpoints, evidence only if the signing key never left the "
        "operator's hands, found: " + store_found.format(went="and then: ") + "; the check "
        f"went on to find: {later}; {STORE_OWN}\n"
    ), ranged
    tables.set_payload(34, ledger.lines[34])
    tables.execute(set_hash, (hashes[34], 34))
    tables.execute(set_hash, (hashes[25], 25))
    # The store's checkpoint at 19 re-signed over the altered event: the later ones,
    # over the recorded hashes, disagree with it, and that is said.
    altered = list(hashes)
    altered[5] = ref_leaf(change_one_byte(ledger.lines[5]))
    _resign_stored(ledger, tables, SIZES[0], altered)
    assert ledger.verify_fails() == (
        "Error: sequence 5: the stored event's bytes and the hash recorded for it at append "
        "time disagree, and so do the store's own signed checkpoints: the one at size 19 "
        "gives the stored bytes, the one at size 30 the recorded hashes. One of them was "
        "signed over a changed log (had the signing key left the operator's hands?); an "
        "auditor's --trusted checkpoint decides\n"
    )
    assert "which the trusted checkpoint" in ledger.verify_fails("--trusted", str(saved))


def _insert_signed(ledger: KeyedLedger, tables: Tables, size: int, hashes: list[bytes]) -> Path:
    """One more stored checkpoint at ``size``, signed with the operator's key over
    ``hashes``; also written to a file, as a forged --trusted one would be."""
    from ledger import merkle

    origin = tables.all("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0]
    tree = merkle.StreamingRoot()
    for digest in hashes[:size]:
        tree.append(digest)
    root = tree.root() if size else bytes(32)
    note = integrity.sign_tree_head(origin, size, root, integrity.load_signer(ledger.key))
    tables.execute(
        "INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
        (size, root, note, "2026-01-01T00:00:00Z"),
    )
    path = ledger.store.tmp_path / f"forged-{size}.cp"
    path.write_text(note)
    return path


@SQLITE_ONLY
def test_verify_names_forks_and_keeps_every_finding(ledger: KeyedLedger, tables: Tables) -> None:
    """Probe round 3: two checkpoints of one size, one over the bytes and one over the
    recorded hashes, gave "confirms … altered" of an intact event; store checkpoints
    re-signed in part narrowed the range past the auditor's; a truncation was hidden
    behind an index-hash verdict; a forged size-0 checkpoint named "sequence 0..-1"."""
    saved = ledger.save_checkpoint("auditor.checkpoint")
    tables.drop_triggers()
    set_hash = "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?"
    hashes = [ref_leaf(line) for line in ledger.lines]
    tables.execute(set_hash, (bytes(32), 33))
    forged = list(hashes)
    forged[33] = bytes(32)
    _insert_signed(ledger, tables, SIZES[-1], forged)
    assert "and so do two signed checkpoints of one size: the stored checkpoint at size 38 " \
        "gives the stored bytes" in ledger.verify_fails()  # fmt: skip
    assert "itself is intact" in ledger.verify_fails("--trusted", str(saved))
    tables.execute("DELETE FROM checkpoints WHERE id = (SELECT max(id) FROM checkpoints)")
    tables.execute(set_hash, (hashes[33], 33))
    ledger.verify_ok()
    # A truncation after an index-hash verdict is named with it.
    tables.execute(set_hash, (bytes(32), 5))
    for sequence in (37, 36, 35):
        tables.delete_event(sequence, with_entry=True)
    assert ledger.verify_fails().endswith(
        "(the log still matches the stored checkpoint at size 19); the check went on to "
        "find: sequence 35: the log has 35 events but a checkpoint commits to 38; the log "
        "was truncated\n"
    )
    # A checkpoint of the empty log with a root it cannot have.
    zero = _insert_signed(ledger, tables, 0, [])
    assert ledger.verify_fails().startswith(
        "Error: the stored checkpoint at size 0 says AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAA=, but an empty log's root is "
    )
    assert "it is no checkpoint of any log (forged)" in ledger.verify_fails("--trusted", str(zero))


def test_a_second_fault_after_a_judgement_keeps_it_and_is_judged_on_its_own(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 4: event 18 altered (the checkpoint at 19 proves it) and 19's index
    hash edited gave "sequence 0..29: … an event in this range was altered; the hashes
    the index recorded … at sequences 18, 19 … give no signed root either": the finding
    for 18 was lost, and the recorded hash of 18 does give the signed roots. What follows
    a judgement is judged against the tree its checkpoint signed."""
    tables.drop_triggers()
    set_hash = "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?"
    for altered, edited in ((18, 19), (12, 20)):
        tables.set_payload(altered, change_one_byte(ledger.lines[altered]))
        tables.execute(set_hash, (b"\x22" * 32, edited))
        assert ledger.verify_fails() == (
            f"Error: sequence {altered}: the stored event's bytes no longer hash to the leaf "
            "recorded at append time, which the stored checkpoint at size 19 confirms (the "
            f"event was altered); the check went on to find: sequence {edited}: the leaf hash "
            "the log index recorded for it at append time was changed outside the ledger; "
            "the stored event itself is intact (the log, with the events found altered "
            "before 19 as signed, still matches the stored checkpoint at size 30)\n"
        )
        tables.set_payload(altered, ledger.lines[altered])
        tables.execute(set_hash, (ref_leaf(ledger.lines[edited]), edited))
    # A second altered event after the first judgement is named as that too, and one no
    # checkpoint covers is named as undecided; a later range names its own events only.
    tables.set_payload(12, change_one_byte(ledger.lines[12]))
    tables.set_payload(25, change_one_byte(ledger.lines[25]))
    tables.execute(set_hash, (b"\x22" * 32, 33))
    tables.execute("DELETE FROM checkpoints WHERE size = 38")
    found = ledger.verify_fails()
    assert found.startswith("Error: sequence 12: "), found
    assert found.endswith(
        "the check went on to find: sequence 25: the stored event's bytes no longer hash to "
        "the leaf recorded at append time, which the stored checkpoint at size 30 confirms "
        "(the event was altered); and then: sequence 33: the stored event's bytes no longer "
        "hash to the leaf recorded at append time: the event, or the hash recorded for it, "
        "was altered (no signed checkpoint covers it to tell which)\n"
    ), found
    tables.set_payload(25, change_one_byte(change_one_byte(ledger.lines[25])))
    tables.execute(set_hash, (ref_leaf(tables.payload(25)), 25))
    ranged = ledger.verify_fails()
    assert "; the check went on to find: sequence 19..29: root at size 30, with the events " \
        "found altered before 19 as signed, is " in ranged, ranged  # fmt: skip


def _stored_note(ledger: KeyedLedger, tables: Tables, size: int) -> Path:
    """The stored checkpoint at ``size`` in a file, as an auditor saved it then."""
    path = ledger.store.tmp_path / f"auditor-{size}.checkpoint"
    path.write_text(tables.all("SELECT note FROM checkpoints WHERE size = ?", (size,))[0][0])
    return path


def test_an_auditors_checkpoint_hides_no_finding_after_its_judgement(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 20: with --trusted, the first judgement (an outside checkpoint's)
    ended the check, and an event altered after it went unreported, though plain verify
    named it; and a later checkpoint that contradicts an auditor's judgement is named."""
    saved = _stored_note(ledger, tables, SIZES[1])
    tables.drop_triggers()
    set_hash = "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?"
    tables.execute(set_hash, (b"\x01" * 32, 5))
    tables.set_payload(33, change_one_byte(ledger.lines[33]))
    altered = (
        "the check went on to find: sequence 33: the stored event's bytes no longer hash to "
        "the leaf recorded at append time, which the stored checkpoint at size 38 confirms "
        "(the event was altered)\n"
    )
    assert ledger.verify_fails().endswith(altered)
    assert ledger.verify_fails("--trusted", str(saved)) == (
        "Error: sequence 5: the leaf hash the log index recorded for it at append time was "
        "changed outside the ledger; the stored event itself is intact (the log still "
        f"matches the trusted checkpoint {saved} at size 30); {altered}"
    )
    # The store's checkpoint at 38 re-signed over the recorded hashes: it says 5 is not
    # what the auditor's checkpoint signed, and the auditor's, not signed with the key in
    # question, decides (probe round 21: it said only that one of the two was wrong).
    tables.set_payload(33, ledger.lines[33])
    hashes = [ref_leaf(line) for line in ledger.lines]
    hashes[5] = b"\x01" * 32
    _resign_stored(ledger, tables, SIZES[-1], hashes)
    assert ledger.verify_fails("--trusted", str(saved)) == (
        "Error: sequence 5: the leaf hash the log index recorded for it at append time was "
        "changed outside the ledger; the stored event itself is intact (the log still "
        f"matches the trusted checkpoint {saved} at size 30); the stored checkpoint at "
        "size 38 gives the recorded hashes instead: it was signed over a changed log (had "
        "the signing key left the operator's hands?)\n"
    )
    # Event 5 altered instead, 38 re-signed over its bytes: the auditor's says altered.
    tables.execute(set_hash, (ref_leaf(ledger.lines[5]), 5))
    tables.set_payload(5, change_one_byte(ledger.lines[5]))
    _resign_stored(ledger, tables, SIZES[-1], [ref_leaf(line) for line in tables.leaves()])
    assert ledger.verify_fails("--trusted", str(saved)) == (
        "Error: sequence 5: the stored event's bytes no longer hash to the leaf recorded at "
        f"append time, which the trusted checkpoint {saved} at size 30 confirms (the event "
        "was altered); the stored checkpoint at size 38 gives the stored bytes instead: it "
        "was signed over a changed log (had the signing key left the operator's hands?)\n"
    )


def test_a_later_checkpoint_contradicting_a_later_judgement_is_named_as_that(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 20: 5's index hash edited (judged first), event 25 altered (judged at
    30), the checkpoint at 38 re-signed over the altered event: only the first judgement
    was compared with later checkpoints, and 38's root was blamed on an untouched range
    ("sequence 30..37: … an event in this range was altered")."""
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 5", (bytes(32),))
    lines = list(ledger.lines)
    lines[25] = change_one_byte(lines[25])
    tables.set_payload(25, lines[25])
    _resign_stored(ledger, tables, SIZES[-1], [ref_leaf(line) for line in lines])
    found = ledger.verify_fails()
    assert found.startswith("Error: sequence 5: the leaf hash the log index recorded"), found
    assert found.endswith(
        "; the check went on to find: sequence 25: the stored event's bytes and the hash "
        "recorded for it at append time disagree, and so do the store's own signed "
        "checkpoints: the one at size 30 gives the recorded hashes, the one at size 38 the "
        "stored bytes. One of them was signed over a changed log (had the signing key left "
        "the operator's hands?); an auditor's --trusted checkpoint decides\n"
    ), found


@SQLITE_ONLY
def test_a_partly_re_signed_store_narrows_nothing_beside_an_auditors_checkpoint(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Event 10 altered, its hash fixed up, the store's checkpoints at 19 and 30 re-signed
    over it: with the auditor's checkpoint the range named was 30..37 (from the store's
    own), which does not hold 10."""
    saved = ledger.save_checkpoint("auditor.checkpoint")
    tables.drop_triggers()
    lines = list(ledger.lines)
    lines[10] = change_one_byte(lines[10])
    tables.set_payload(10, lines[10])
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?", (ref_leaf(lines[10]), 10)
    )
    tables.replace_nodes(lines)
    for size in SIZES[:2]:
        _resign_stored(ledger, tables, size, [ref_leaf(line) for line in lines])
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..37: root at size 38 is "), found
    assert f"the trusted checkpoint {saved} says" in found


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_an_index_hash_set_to_null_is_a_changed_hash_not_a_missing_row(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Its NOT NULL dropped by the owner, a NULL hash read as "an event the index does
    not list" (the row is there, and the event intact)."""
    tables.drop_triggers()
    tables.execute("ALTER TABLE ledger_entries ALTER COLUMN leaf_hash DROP NOT NULL")
    tables.execute("UPDATE ledger_entries SET leaf_hash = NULL WHERE sequence = 21")
    assert ledger.verify_fails() == (
        "Error: sequence 21: the leaf hash the log index recorded for it at append time was "
        "changed outside the ledger; the stored event itself is intact (the log still "
        "matches the stored checkpoint at size 30)\n"
    )


def hide_an_edit_by_deleting_checkpoints(ledger: KeyedLedger, tables: Tables) -> int:
    """Without the key: edit an event of batch 3, fix every stored hash, and delete
    the checkpoints that cover it. Returns the edited sequence."""
    victim = 33
    tables.drop_triggers()
    leaf = change_one_byte(tables.payload(victim))
    tables.set_payload(victim, leaf)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?", (ref_leaf(leaf), victim)
    )
    lines = list(ledger.lines)
    lines[victim] = leaf
    tables.replace_nodes(lines)
    tables.execute("DELETE FROM checkpoints WHERE size > ?", (SIZES[1],))
    return victim


def test_checkpoints_deleted_to_hide_an_edit_are_caught_by_the_auditors_copy(
    ledger: KeyedLedger, tables: Tables
) -> None:
    saved = ledger.save_checkpoint("auditor.checkpoint")
    victim = hide_an_edit_by_deleting_checkpoints(ledger, tables)
    message = ledger.verify_fails("--trusted", str(saved))
    assert "trusted" in message
    match = re.search(r"sequence (\d+)\.\.(\d+)", message)
    assert match, message
    assert int(match[1]) <= victim <= int(match[2])
    # What the trusted checkpoint alone bounds; the store's own checkpoint at 30 still
    # holds, which narrows it only if the signing key was never in other hands.
    assert int(match[1]) == 0
    assert f"would place it in {SIZES[1]}..{SIZES[2] - 1}" in message


def test_a_trusted_checkpoint_the_check_stops_before_hides_no_judgement_of_the_stores(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 21: with --trusted at the log's end, the store's own checkpoints
    decide nothing while it is still to come; the check stopped before it (an event
    deleted) and named only the first changed hash, as undecided, where plain verify
    named every one and what the store's checkpoints found of them."""
    saved = ledger.save_checkpoint("auditor.checkpoint")
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 24", (bytes(32),))
    tables.execute("UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 27", (bytes(32),))
    tables.delete_event(33, with_entry=True)
    plain = ledger.verify_fails()
    assert plain.startswith(
        "Error: sequence 24: the leaf hashes the log index recorded at "
        "append time for 24, 27 were changed outside the ledger"
    )
    trusted = ledger.verify_fails("--trusted", str(saved))
    assert trusted == (
        "Error: sequence 24: the leaf hashes the log index recorded at append time for 24, "
        "27 were changed outside the ledger; the stored events themselves are intact (the "
        "log still matches the stored checkpoint at size 30); that is the store's own "
        "checkpoint, evidence only if the signing key never left the operator's hands (the "
        "check stopped before one from outside the store could decide); the check went on "
        "to find: sequence 33: the leaf at position 33 does not carry sequence 33 (an event "
        "was deleted, reordered or edited)\n"
    )


def test_an_auditors_checkpoint_between_the_stores_judges_what_they_judged(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe vt21 case B: event 17 altered, 28's index hash edited, event 33 altered,
    the auditor's checkpoint at 30. The store's own judged 17 (at 19) and 28 (at 30),
    but with --trusted the first was only held, and the auditor's checkpoint, which the
    log gives only with both judgements, was compared with the bytes and the recorded
    hashes throughout: a range 0..29 was named, and event 33, after it, never. The
    sequences after a held judgement are judged against the tree it signed, as plain
    verify does; the auditor's checkpoint matching that tree confirms it."""
    saved = _stored_note(ledger, tables, SIZES[1])
    tables.drop_triggers()
    tables.set_payload(17, change_one_byte(ledger.lines[17]))
    tables.execute("UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 28", (bytes(32),))
    tables.set_payload(33, change_one_byte(ledger.lines[33]))
    found = (
        "Error: sequence 17: the stored event's bytes no longer hash to the leaf recorded at "
        "append time, which the stored checkpoint at size 19 confirms (the event was "
        "altered); the check went on to find: sequence 28: the leaf hash the log index "
        "recorded for it at append time was changed outside the ledger; the stored event "
        "itself is intact (the log, with the events found altered before 19 as signed, "
        "still matches {which} at size 30); and then: sequence 33: the stored event's bytes "
        "no longer hash to the leaf recorded at append time, which the stored checkpoint at "
        "size 38 confirms (the event was altered)\n"
    )
    assert ledger.verify_fails() == found.format(which="the stored checkpoint")
    assert ledger.verify_fails("--trusted", str(saved)) == found.format(
        which=f"the trusted checkpoint {saved}"
    )
    # The check stopped (an event deleted) before the auditor's at the log's end: every
    # judgement of the store's own is named, not only the latest.
    at_end = ledger.store.tmp_path / "auditor-38.checkpoint"
    at_end.write_text(_stored_note(ledger, tables, SIZES[-1]).read_text())
    tables.set_payload(33, ledger.lines[33])
    tables.delete_event(35, with_entry=True)
    stopped = ledger.verify_fails("--trusted", str(at_end))
    assert stopped.startswith(
        "Error: sequence 17: the stored event's bytes no longer hash to the leaf recorded at "
        "append time, which the stored checkpoint at size 19 confirms (the event was "
        "altered); that is the store's own checkpoint, evidence only if the signing key "
        "never left the operator's hands (the check stopped before one from outside the "
        "store could decide); the check went on to find: sequence 28: the leaf hash the log "
        "index recorded for it at append time was changed outside the ledger; "
    ), stopped
    assert stopped.endswith(
        "; and then: sequence 35: the leaf at position 35 does not carry sequence 35 (an "
        "event was deleted, reordered or edited)\n"
    ), stopped


def _auditor_note_at(ledger: KeyedLedger, tables: Tables, size: int) -> Path:
    """The checkpoint of the log's first ``size`` events, as an auditor saved it when
    the log was that long (signed with the operator's key)."""
    origin = tables.all("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0]
    root = ref_root(ledger.lines[:size])
    path = ledger.store.tmp_path / f"auditor-at-{size}.checkpoint"
    path.write_text(integrity.sign_tree_head(origin, size, root, integrity.load_signer(ledger.key)))
    return path


STORE_OWN = (
    "that is the store's own checkpoint, evidence only if the signing key never left the "
    "operator's hands"
)


def test_auditors_checkpoints_of_two_histories_are_named_as_a_split_view(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """vt22: two checkpoints from outside the store, signed with one key over two
    histories (a split view): the first, in log order, blamed the log, and the later
    one, which the untouched log matches, was never compared."""
    from ledger import merkle

    honest = _auditor_note_at(ledger, tables, 17)
    origin = tables.all("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0]
    other = list(ledger.lines[:7])
    other[5] = change_one_byte(other[5])
    tree = merkle.StreamingRoot()
    for line in other:
        tree.append(ref_leaf(line))
    forked = ledger.store.tmp_path / "forked-at-7.checkpoint"
    forked.write_text(
        integrity.sign_tree_head(origin, 7, tree.root(), integrity.load_signer(ledger.key))
    )
    assert ledger.verify().exit_code == 0
    found = ledger.verify_fails("--trusted", str(forked), "--trusted", str(honest))
    assert found.startswith("Error: sequence 0..6: root at size 7 is "), found
    assert found.endswith(
        "history was rewritten since the auditor saved it; the check went on to find: the "
        f"trusted checkpoint {honest} at size 17 matches the log as stored, so it and the one "
        "from outside at size 7 are not of one history: their key signed two logs (a split "
        "view), or one of them is not the log's\n"
    ), found


def test_an_auditors_checkpoint_the_log_contradicts_hides_no_later_finding(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe fxvt2: event 10 altered and its index hash fixed up to match, the auditor's
    checkpoint at 11: --trusted named the range 0..10 and stopped there, so what plain
    verify names after it (an event deleted, an event altered that the store's own
    checkpoints judge) went unreported. The auditor's finding leads, and the check goes
    on as plain verify does, the store's own checkpoints marked as evidence only."""
    saved = _auditor_note_at(ledger, tables, 11)
    tables.drop_triggers()
    set_hash = "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?"
    lines = list(ledger.lines)
    lines[10] = change_one_byte(lines[10])
    tables.set_payload(10, lines[10])
    tables.execute(set_hash, (ref_leaf(lines[10]), 10))
    # The store's own checkpoints re-signed over it (the key in other hands), and event
    # 25 altered, which they judge.
    for size in SIZES:
        _resign_stored(ledger, tables, size, [ref_leaf(line) for line in lines])
    tables.set_payload(25, change_one_byte(lines[25]))
    altered = (
        "sequence 25: the stored event's bytes no longer hash to the leaf recorded at append "
        "time, which the stored checkpoint at size 30 confirms (the event was altered)"
    )
    assert ledger.verify_fails() == f"Error: {altered}\n"
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..10: root at size 11 is "), found
    assert found.endswith(
        f"; history was rewritten since the auditor saved it; the check went on to find: "
        f"{altered}; {STORE_OWN}\n"
    ), found
    # Event 15 deleted too: named after the auditor's finding, as plain verify names it.
    tables.delete_event(15, with_entry=True)
    deleted = (
        "sequence 15: the leaf at position 15 does not carry sequence 15 (an event was "
        "deleted, reordered or edited)"
    )
    assert ledger.verify_fails() == f"Error: {deleted}\n"
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..10: root at size 11 is "), found
    assert found.endswith(
        f"; history was rewritten since the auditor saved it; the check went on to find: "
        f"{deleted}\n"
    ), found


def test_an_auditors_checkpoint_contradicting_the_stores_judgement_hides_no_later_finding(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe fxvt2: event 5 altered (the store's checkpoint at 19 judges it, held), event
    20 altered and its hash fixed up, the auditor's checkpoint at 30: it matches neither
    walk, and the range plain verify names at the store's checkpoint at 30 was not named."""
    saved = _stored_note(ledger, tables, SIZES[1])
    tables.drop_triggers()
    tables.set_payload(5, change_one_byte(ledger.lines[5]))
    altered = change_one_byte(ledger.lines[20])
    tables.set_payload(20, altered)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 20", (ref_leaf(altered),)
    )
    judged = (
        "sequence 5: the stored event's bytes no longer hash to the leaf recorded at append "
        "time, which the stored checkpoint at size 19 confirms (the event was altered)"
    )
    plain = ledger.verify_fails()
    assert plain.startswith(
        f"Error: {judged}; the check went on to find: sequence 19..29: root at size 30, with "
        "the events found altered before 19 as signed, is "
    ), plain
    ranged = plain.split("; the check went on to find: ")[1].rstrip("\n")
    assert ranged.endswith("; an event in this range was altered"), ranged
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..29: root at size 30 is "), found
    assert found.endswith(
        "; the store's own checkpoints, evidence only if the signing key never left the "
        f"operator's hands, found: {judged}; the check went on to find: {ranged}; "
        f"{STORE_OWN}\n"
    ), found


def test_a_hash_only_the_contradicted_auditors_checkpoint_covers_is_said_so(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe fxvt2: with the auditor's checkpoint contradicted and the store's own
    deleted, a changed index hash below it is undecided, as plain verify says, but not
    for want of a checkpoint covering it."""
    saved = _auditor_note_at(ledger, tables, 11)
    tables.drop_triggers()
    set_hash = "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?"
    altered = change_one_byte(ledger.lines[10])
    tables.set_payload(10, altered)
    tables.execute(set_hash, (ref_leaf(altered), 10))
    tables.execute(set_hash, (bytes(32), 5))
    tables.execute("DELETE FROM checkpoints")
    undecided = (
        "sequence 5: the stored event's bytes no longer hash to the leaf recorded at append "
        "time: the event, or the hash recorded for it, was altered ({})\n"
    )
    assert ledger.verify_fails() == "Error: " + undecided.format(
        "no signed checkpoint covers it to tell which"
    )
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..10: root at size 11 is "), found
    assert found.endswith(
        "; history was rewritten since the auditor saved it; the hashes the index recorded "
        "at append time also differ from the stored events at sequences 5, and give no "
        "signed root either; the check went on to find: "
        + undecided.format(
            "the checkpoint from outside the store that covers it gives neither, and no "
            "other signed checkpoint covers it to tell which"
        )
    ), found


def test_a_store_checkpoint_contradicting_what_the_auditors_confirmed_is_named_as_that(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Review rv22: event 5 altered (the store's checkpoint at 19 judges it, held), the
    auditor's checkpoint at 30 confirms that, the store's at 38 re-signed over the stored
    bytes. The judgement kept the store's name once confirmed, so the contradiction was
    said to be between the store's own checkpoints, "an auditor's --trusted checkpoint
    decides" (it was given), and 25's edited index hash, judged by the auditor's, was
    dropped. The auditor's checkpoint is named as confirming it, as when it judges."""
    saved = _stored_note(ledger, tables, SIZES[1])
    tables.drop_triggers()
    lines = list(ledger.lines)
    lines[5] = change_one_byte(lines[5])
    tables.set_payload(5, lines[5])
    _resign_stored(ledger, tables, SIZES[2], [ref_leaf(line) for line in lines])
    judged = (
        "sequence 5: the stored event's bytes no longer hash to the leaf recorded at append "
        "time, which the stored checkpoint at size 19 confirms (the event was altered); "
    )
    resigned = (
        "the stored checkpoint at size 38 gives the stored bytes instead: it was signed over "
        "a changed log (had the signing key left the operator's hands?)"
    )
    # Alone, 5 is judged by the auditor's (no judgement held): said so already.
    assert ledger.verify_fails("--trusted", str(saved)) == (
        "Error: sequence 5: the stored event's bytes no longer hash to the leaf recorded at "
        f"append time, which the trusted checkpoint {saved} at size 30 confirms (the event "
        f"was altered); {resigned}\n"
    )
    # With 25's index hash edited, the auditor's decides 5 only with the store's
    # judgement held.
    tables.execute("UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 25", (bytes(32),))
    assert ledger.verify_fails("--trusted", str(saved)) == (
        f"Error: {judged}the trusted checkpoint {saved} at size 30 confirms it from outside "
        f"the store; {resigned}; the check went on to find: sequence 25: the leaf hash the "
        "log index recorded for it at append time was changed outside the ledger; the "
        "stored event itself is intact (the log, with the events found altered before 19 as "
        f"signed, still matches the trusted checkpoint {saved} at size 30)\n"
    )
    # Plain verify has only the store's own: they disagree, and an auditor's decides.
    assert ledger.verify_fails().endswith("; an auditor's --trusted checkpoint decides\n")


def test_a_store_checkpoint_contradicting_the_auditors_judgement_hides_no_later_finding(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe fxvt4 (V2): events 3 and 12 altered, the node table and every stored
    checkpoint re-signed over them, the auditor's checkpoint at 5: it proves 3 altered,
    the store's at 19 contradicts that, and the check stopped there, so what plain verify
    names (12, and a truncation) went unreported. The contradiction leads; then what
    plain verify finds, the store's own findings marked as evidence only."""
    saved = _auditor_note_at(ledger, tables, 5)
    later = _auditor_note_at(ledger, tables, SIZES[-1])
    tables.drop_triggers()
    lines = list(ledger.lines)
    for sequence in (3, 12):
        lines[sequence] = change_one_byte(lines[sequence])
        tables.set_payload(sequence, lines[sequence])
    tables.replace_nodes(lines)
    for size in SIZES:
        _resign_stored(ledger, tables, size, [ref_leaf(line) for line in lines])
    store_found = (
        "sequence 3: the leaf hashes the log index recorded at append time for 3, 12 were "
        "changed outside the ledger; the stored events themselves are intact (the log still "
        "matches the stored checkpoint at size 19)"
    )
    assert ledger.verify_fails() == f"Error: {store_found}\n"
    lead = (
        "Error: sequence 3: the stored event's bytes no longer hash to the leaf recorded at "
        f"append time, which the trusted checkpoint {saved} at size 5 confirms (the event "
        "was altered); the stored checkpoint at size 19 gives the stored bytes instead: it "
        "was signed over a changed log (had the signing key left the operator's hands?); "
        f"the check went on to find: {store_found}; {STORE_OWN}"
    )
    assert ledger.verify_fails("--trusted", str(saved)) == f"{lead}\n"
    # The log cut short at 35 too (probe R5): named after them, as plain verify names it.
    for sequence in (37, 36, 35):
        tables.delete_event(sequence, with_entry=True)
    truncated = (
        "sequence 35: the log has 35 events but a checkpoint commits to 38; the log was truncated"
    )
    assert (
        ledger.verify_fails() == f"Error: {store_found}; the check went on to find: {truncated}\n"
    )
    assert ledger.verify_fails("--trusted", str(saved)) == f"{lead}; and then: {truncated}\n"
    # A later auditor's checkpoint is not compared in that reading (review rv24): said,
    # so it is not taken for compared and agreeing.
    both = ledger.verify_fails("--trusted", str(saved), "--trusted", str(later))
    assert both == (
        f"{lead}; and then: {truncated}; and then: the trusted checkpoint {later} at size 38 "
        "was not compared: past the stored checkpoint at size 19 that contradicts the one "
        "from outside, the check reads the log as plain verify does; verify with it alone "
        "to have it judge\n"
    ), both
    assert "not compared" not in ledger.verify_fails("--trusted", str(later))  # alone, it is


def test_a_store_checkpoint_stopping_the_check_keeps_the_stores_judgements(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Review rv22: event 5 altered (the store's checkpoint at 19 judges it, held), event
    20 altered with its hash fixed up, the auditor's checkpoint at 38: the store's at 30
    matches neither walk and stops the check before the auditor's. Only the range was
    named, the store's judgement of 5, which plain verify names, dropped."""
    saved = _stored_note(ledger, tables, SIZES[2])
    tables.drop_triggers()
    tables.set_payload(5, change_one_byte(ledger.lines[5]))
    altered = change_one_byte(ledger.lines[20])
    tables.set_payload(20, altered)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 20", (ref_leaf(altered),)
    )
    judged = (
        "sequence 5: the stored event's bytes no longer hash to the leaf recorded at append "
        "time, which the stored checkpoint at size 19 confirms (the event was altered)"
    )
    assert ledger.verify_fails().startswith(f"Error: {judged}; the check went on to find: ")
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..29: root at size 30 is "), found
    assert found.endswith(
        "; the store's own checkpoints, evidence only if the signing key never left the "
        f"operator's hands, found: {judged}\n"
    ), found


def test_an_unrelated_alteration_does_not_narrow_the_auditors_range_to_the_stores(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Review rv24: event 10 rewritten whole (hash, nodes, the store's checkpoint at 19
    re-signed: a key in other hands) and event 5 altered too: with the auditor's
    checkpoint at 38 the range was named 19..29, unmarked, from the re-signed
    checkpoint; 10 lies outside it. Without 5 the range was 0..29: the auditor's."""
    saved = _stored_note(ledger, tables, SIZES[2])
    tables.drop_triggers()
    lines = list(ledger.lines)
    record = json.loads(lines[10])
    record["source"] = "https://example.org/a-different-story"
    lines[10] = canonical(record)
    tables.set_payload(10, lines[10])
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 10", (ref_leaf(lines[10]),)
    )
    tables.replace_nodes(lines)
    _resign_stored(ledger, tables, SIZES[0], [ref_leaf(line) for line in lines])
    tables.set_payload(5, change_one_byte(ledger.lines[5]))
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..29: root at size 30 is "), found
    assert "19..29" not in found.replace("would place it in 19..29", ""), found


@SQLITE_ONLY
def test_events_covered_by_no_signed_checkpoint_are_flagged(
    ledger: KeyedLedger, tables: Tables
) -> None:
    hide_an_edit_by_deleting_checkpoints(ledger, tables)
    # Without the auditor's copy the edit itself cannot be seen, but the events no
    # signature covers are named: a warning, and with --all-signed a failure.
    result = ledger.verify()
    assert result.exit_code == 0, result.output
    unsigned, guards = result.stderr.splitlines()
    assert unsigned == (
        "warning: sequence 30..37: covered by no signed checkpoint (the key holder signs "
        "them with `enforcement-ledger checkpoint`; or compare with a --trusted checkpoint)"
    )
    assert guards.startswith("warning: the store lacks its append-only triggers ")  # dropped
    assert ledger.verify_fails("--all-signed").startswith("Error: sequence 30..37: ")


def test_dropped_append_only_triggers_are_named_and_made_again_by_init(
    ledger: KeyedLedger, tables: Tables
) -> None:
    # verify said OK and init "nothing changed", with every guard gone.
    (name, table), *_ = tables.triggers()
    if tables.kind == "sqlite":
        tables.execute(f'DROP TRIGGER "{name}"')
    else:
        tables.execute(f'DROP TRIGGER "{name}" ON "{table}"')
    warned = ledger.verify().stderr
    assert f"warning: the store lacks its append-only trigger {name} (dropped or" in warned
    made = ledger.store.ok("init").stdout
    assert f"made again its missing append-only trigger {name} (the log is unchanged)" in made
    assert ledger.verify().stderr == ""
    assert (name, table) in tables.triggers()
    if tables.kind == "postgres":  # disabled, or firing on replicas only: no guard either
        for how in ("DISABLE", "ENABLE REPLICA"):
            tables.execute(f'ALTER TABLE "{table}" {how} TRIGGER "{name}"')
            assert f"trigger {name} (dropped or disabled" in ledger.verify().stderr
            ledger.store.ok("init")
            assert ledger.verify().stderr == ""


def test_append_only_triggers_changed_to_refuse_nothing_are_named_and_made_again_by_init(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """verify checked the triggers by name only: one replaced by a trigger that refuses
    nothing (or, on PostgreSQL, the function they call rewritten) passed in silence."""
    (name, table), *_ = tables.triggers()
    if tables.kind == "sqlite":
        tables.execute(f'DROP TRIGGER "{name}"')
        tables.execute(f'CREATE TRIGGER "{name}" BEFORE UPDATE ON "{table}" BEGIN SELECT 1; END')
    else:
        tables.execute(
            f'CREATE OR REPLACE TRIGGER "{name}" BEFORE INSERT ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
    result = ledger.verify()
    assert result.exit_code == 0, result.output
    assert f"warning: the store's append-only trigger {name} is not as the ledger made it" in (
        result.stderr
    )
    made = ledger.store.ok("init").stdout
    assert f"; restored its changed append-only trigger {name} (the log is unchanged)" in made
    assert ledger.verify().stderr == ""
    if tables.kind == "postgres":
        tables.execute(
            "CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
        )
        warned = ledger.verify().stderr
        assert "warning: the store's append-only triggers " in warned
        assert f"{name}, " in warned or f", {name} " in warned
        ledger.store.ok("init")
        assert ledger.verify().stderr == ""
        # A constraint trigger in its place, which CREATE OR REPLACE cannot replace
        # (init was exit 70).
        tables.execute(
            "CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; "
            "END $$"
        )
        tables.execute(f'DROP TRIGGER "{name}" ON "{table}"')
        tables.execute(
            f'CREATE CONSTRAINT TRIGGER "{name}" AFTER UPDATE OR DELETE ON "{table}" '
            "DEFERRABLE FOR EACH ROW EXECUTE FUNCTION noop()"
        )
        assert f"trigger {name} is not as the ledger made it" in ledger.verify().stderr
        ledger.store.ok("init")
        assert ledger.verify().stderr == ""
    # Made again, it refuses an edit as before.
    with pytest.raises(tables.errors, match="append-only"):
        tables.execute(f'DELETE FROM "{table}"')


@SQLITE_ONLY
def test_proofs_are_not_given_out_from_a_corrupted_node_table(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Proof hashes come from merkle_nodes. An auditor never has to trust them (their
    proof check fails), and `prove` checks each proof against the signed checkpoint
    before printing it, so a damaged table is named rather than served."""
    tables.drop_triggers()
    # Node (level 2, index 1) covers leaves 4..7: the level-2 sibling on leaf 3's path.
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 2 AND idx = 1", (bytes(32),))
    result = ledger.run("prove", "inclusion", "3")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(
        "Error: refusing to give out an inclusion proof that does not verify against the "
        "signed checkpoint ("
    )
    assert "the stored Merkle node table it is read from was changed or damaged" in (result.stderr)
    # Leaves 16..37 do not need that node: their proofs are still given, and verify.
    result = ledger.run("prove", "inclusion", "20")
    assert result.exit_code == 0, result.output
    proof = notes.parse_tlog_proof(result.stdout)
    verifier = notes.parse_verifier_key(ledger.vkey)
    proof.verify(ref_leaf(ledger.lines[20]), [verifier], origin=verifier.name)
    # Node (4, 0) covers leaves 0..15, in every consistency proof from size 19 on.
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 4 AND idx = 0", (bytes(32),))
    result = ledger.run("prove", "consistency", "19", "--to", "30")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: refusing to give out a consistency proof")
    # One side signed is enough to catch it (it was printed, with a note that it had
    # not been checked): the other root comes from the same nodes.
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 0 AND idx = 3", (bytes(32),))
    result = ledger.run("prove", "consistency", "3", "--to", "19")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: refusing to give out a consistency proof")


def test_a_proof_refused_for_an_altered_event_names_the_event_not_the_node_table(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 4: event 12 altered (its leaf node and the rest of the table intact)
    and `prove inclusion 12` blamed the node table; `verify` rightly names the event."""
    tables.drop_triggers()
    tables.set_payload(12, change_one_byte(ledger.lines[12]))
    result = ledger.run("prove", "inclusion", "12", "--by", "sequence")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: refusing to give out an inclusion proof for sequence 12: the stored event's "
        "bytes no longer hash to the leaf the signed checkpoint holds for it (the Merkle node "
        "table's copy of that leaf, with the proof, gives the signed root): the event was "
        "altered; `enforcement-ledger verify` names it\n"
    )
    assert "sequence 12: " in ledger.verify_fails()
    # With a node on its path changed too, which is wrong cannot be told: both are named.
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 2 AND idx = 2", (bytes(32),))
    result = ledger.run("prove", "inclusion", "12", "--by", "sequence")
    assert result.exit_code == 1, result.output
    assert "the event was altered, or the node table it is read from was changed or " \
        "damaged, or both" in result.stderr, result.stderr  # fmt: skip


def test_a_proof_asked_through_an_edited_index_row_names_the_index(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 20: index rows 10 and 11 with their sequences swapped, `prove
    inclusion --by sequence 10` said event 10 was altered (it is intact; verify passes);
    with their event_ids swapped, `prove inclusion ID` gave a valid proof of another
    event as the one asked. The leaf names its own sequence and event_id."""
    tables.drop_triggers()
    rows = "UPDATE ledger_entries SET {} = ? WHERE sequence = ?"
    tables.execute(rows.format("sequence"), (1000, 10))
    tables.execute(rows.format("sequence"), (10, 11))
    tables.execute(rows.format("sequence"), (11, 1000))
    ledger.verify_ok()
    result = ledger.run("prove", "inclusion", "--by", "sequence", "10")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: refusing to give out an inclusion proof for sequence 10: the log index row "
        "for it leads to a stored event that carries sequence 11: the log index "
        "(ledger_entries) was changed outside the ledger; `enforcement-ledger verify "
        "--read-models` names it\n"
    )
    assert "sequence 10: the index row points to the event whose leaf carries sequence 11" \
        in ledger.verify_fails("--read-models")  # fmt: skip
    tables.execute(rows.format("sequence"), (1000, 10))
    tables.execute(rows.format("sequence"), (10, 11))
    tables.execute(rows.format("sequence"), (11, 1000))
    ids = [json.loads(ledger.lines[n])["event_id"] for n in (10, 11)]
    tables.execute(rows.format("event_id"), ("swapping", 10))
    tables.execute(rows.format("event_id"), (ids[0], 11))
    tables.execute(rows.format("event_id"), (ids[1], 10))
    ledger.verify_ok()
    result = ledger.run("prove", "inclusion", ids[0])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: refusing to give out an inclusion proof for event_id '{ids[0]}': the log "
        f"index gives it sequence 11, but the stored event there is '{ids[1]}': the log "
        "index (ledger_entries) was changed outside the ledger; `enforcement-ledger verify "
        "--read-models` names it\n"
    )
    assert "sequence 10: the index row's event_id is " in ledger.verify_fails("--read-models")


@SQLITE_ONLY
def test_a_proof_refused_for_an_event_altered_with_its_leaf_node_names_both(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 20: event 10 altered, its recorded hash and its leaf in the node table
    made to match: `prove inclusion` blamed the node table alone, verify the event."""
    tables.drop_triggers()
    altered = change_one_byte(ledger.lines[10])
    tables.set_payload(10, altered)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 10", (ref_leaf(altered),)
    )
    tables.execute(
        "UPDATE merkle_nodes SET hash = ? WHERE level = 0 AND idx = 10", (ref_leaf(altered),)
    )
    result = ledger.run("prove", "inclusion", "--by", "sequence", "10")
    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(
        "the stored Merkle node table it is read from was changed or damaged, or the event "
        "was altered and its leaf in that table changed to match; `enforcement-ledger "
        "verify` checks the log itself from its leaves and names an altered event\n"
    ), result.stderr
    assert ledger.verify_fails().startswith("Error: sequence 0..18: root at size 19 ")


@SQLITE_ONLY
def test_checkpoint_does_not_sign_a_root_from_a_corrupted_node_table(
    ledger: KeyedLedger, tables: Tables
) -> None:
    tables.drop_triggers()
    # 38 = 32 + 4 + 2: node (5, 0), over leaves 0..31, is folded into the root at 38.
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 5 AND idx = 0", (bytes(32),))
    result = ledger.run("checkpoint")
    # The last signed checkpoint is at this very size: the corrupted tree's root differs
    # from it, so nothing is signed.
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stdout == ""
    assert result.stderr == (
        "Error: refusing to sign: the tree of size 38 does not extend the last signed "
        "checkpoint (size 38): sizes are equal (38) but the roots differ; run "
        "`enforcement-ledger verify`\n"
    )
    # The leaves are intact, and verify names the node (it folds every next root).
    assert ledger.verify_fails().startswith(
        "Error: sequence 0: the Merkle node (level 5, index 0) is not the one the verified "
        "leaves give, and the next append would fold it into the root it signs"
    )


def test_an_unsigned_event_edited_with_its_hash_is_not_blamed_on_the_node_table(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Beyond the checkpoints an event edited with its recorded hash fixed up shows
    only as a stored node that no longer fits the events: "the node table was changed"
    with advice to rebuild the tree from the events, which kept the edit."""
    tables.drop_triggers()
    tables.execute("DELETE FROM checkpoints WHERE size > ?", (SIZES[1],))
    victim = 33  # under node (2, 8), over 32..35
    leaf = change_one_byte(tables.payload(victim))
    tables.set_payload(victim, leaf)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = ?", (ref_leaf(leaf), victim)
    )
    assert ledger.verify_fails() == (
        "Error: sequence 32: the Merkle node (level 2, index 8) is not the one the stored "
        "events 32..35 give: the node table was changed outside the ledger, or those events "
        "were (with the hashes recorded for them), and no signed checkpoint covers 30..35 "
        "to tell which. Compare the events with an earlier export or an auditor's "
        "checkpoint before anything is rebuilt from them\n"
    )


@pytest.mark.parametrize("node", [(5, 0), (2, 8), (1, 18)])
def test_a_deleted_node_every_append_starts_from_is_named_not_a_crash(
    ledger: KeyedLedger, tables: Tables, node: tuple[int, int]
) -> None:
    # 38 = 32 + 4 + 2: the root folds nodes (5, 0), (2, 8) and (1, 18). Without one
    # every append, checkpoint and proof failed with exit 70 (KeyError), and verify
    # said OK.
    tables.drop_triggers()
    level, index = node
    tables.execute("DELETE FROM merkle_nodes WHERE level = ? AND idx = ?", node)
    assert ledger.verify_fails().startswith(
        f"Error: sequence {index << level}: the Merkle node table has no node (level "
        f"{level}, index {index}), which every append and checkpoint start from"
    )
    for command in (("checkpoint",), ("append", "-")):
        result = ledger.run(*command, input=events_for(4, 1))
        assert result.exit_code == 1, (result.output, result.exception)
        assert f"no node (level {level}, index {index})" in result.stderr
    assert len(tables.leaves()) == 38  # nothing written


@SQLITE_ONLY
def test_an_event_added_with_its_index_row_past_the_last_checkpoint_is_not_called_a_lost_node(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 20: an event and its index row added after the last checkpoint (the
    node table untouched) were named a deleted node, with advice to rebuild the store
    from the events, the added one with them; append said the same."""
    tables.drop_triggers()
    last = json.loads(tables.payload(SIZES[-1] - 1))
    forged = canonical({**last, "sequence": SIZES[-1], "event_id": "forged"})
    topic = tables.all("SELECT topic FROM stored_events LIMIT 1")[0][0]
    originator = "00000000-0000-0000-0000-0000000000ff"
    row = tables.execute(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
        "VALUES (?, 1, ?, ?)",
        (originator, topic, forged),
    ).lastrowid
    tables.execute(
        "INSERT INTO ledger_entries SELECT ?, 'forged', ?, ?, type, ?, recorded_at, "
        "subject_ref, lane, lane_key, target FROM ledger_entries WHERE sequence = ?",
        (SIZES[-1], row, originator, ref_leaf(forged), SIZES[-1] - 1),
    )
    assert ledger.verify_fails() == (
        "Error: sequence 38: the Merkle node table has no node (level 0, index 38), which "
        "every append and checkpoint start from: it was deleted outside the ledger, or "
        "events from 38 on were added outside the ledger (with their index rows), and no "
        "signed checkpoint covers 38..38 to tell which. Compare the events with an earlier "
        "export or an auditor's checkpoint before anything is rebuilt from them\n"
    )
    for command in (("checkpoint",), ("append", "-")):
        result = ledger.run(*command, input=events_for(4, 1))
        assert result.exit_code == 1, (result.output, result.exception)
        assert result.stderr == (
            "Error: the Merkle node table has no leaf (level 0, index 38) for the last "
            "event, sequence 38: the event was added outside the ledger (with its index "
            "row), or the node deleted; nothing was written: `enforcement-ledger verify` "
            "names what changed\n"
        )
    assert len(tables.leaves()) == 39  # nothing written


def test_the_last_events_leaf_deleted_is_named_by_verify_with_a_rebuild(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 21: node (0, 37) is in no root's fold at 38, so verify said OK while
    every append refused on it as maybe "added outside the ledger", which the
    checkpoint at 38 rules out for a key never in other hands."""
    tables.drop_triggers()
    tables.execute("DELETE FROM merkle_nodes WHERE level = 0 AND idx = 37")
    assert ledger.verify_fails() == (
        "Error: sequence 37: the Merkle node table has no node (level 0, index 37), which "
        "every append and checkpoint start from: it was deleted outside the ledger; every "
        "leaf verified, so `export --nl` then `copy --export` into a new store rebuilds "
        "the tree from them\n"
    )
    for command in (("checkpoint",), ("append", "-")):
        result = ledger.run(*command, input=events_for(4, 1))
        assert (result.exit_code, result.stderr) == (
            1,
            "Error: the Merkle node table has no leaf (level 0, index 37) for the last "
            "event, sequence 37, which the stored checkpoint at size 38 covers: the node "
            "was deleted outside the ledger; nothing was written: `enforcement-ledger "
            "verify` checks the events, and then `export --nl` and `copy --export` into a "
            "new store rebuild the tree from them\n",
        )
    assert len(tables.leaves()) == SIZES[-1]


LAST_LEAF_REFUSED = (
    "Error: the Merkle node table's leaf (level 0, index 37) is not the hash of the event "
    "the index's last row, sequence 37, lists: the index, that event or the node was "
    "changed outside the ledger; nothing was written: `enforcement-ledger verify` names "
    "what changed\n"
)


def test_the_last_events_leaf_changed_stops_appends_and_is_named_by_verify(
    ledger: KeyedLedger, tables: Tables
) -> None:
    tables.drop_triggers()
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 0 AND idx = 37", (bytes(32),))
    result = ledger.run("append", "-", input=events_for(4, 1))
    assert (result.exit_code, result.stderr) == (1, LAST_LEAF_REFUSED)
    assert len(tables.leaves()) == SIZES[-1]
    assert ledger.verify_fails().startswith(
        "Error: sequence 37: the Merkle node (level 0, index 37) is not the one the "
        "verified leaves give, and every append and checkpoint refuse on it: "
    )


@SQLITE_ONLY
def test_the_last_index_row_pointed_at_a_forged_event_stops_appends(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 21: row 37 re-pointed to a forged event of the same record time (the
    original still stored); head() checked only that a leaf node existed, and the
    append signed."""
    tables.drop_triggers()
    columns = sorted(tables.columns("stored_events"))
    row = dict(
        zip(
            columns,
            tables.all(
                f"SELECT {', '.join(columns)} FROM stored_events WHERE rowid = ?",
                (tables.row_of(37),),
            )[0],
            strict=True,
        )
    )
    record = json.loads(row["state"])
    record["name"] = "Forged"
    row["state"] = canonical(record)
    row["originator_version"] += 1000
    cursor = tables.execute(
        f"INSERT INTO stored_events ({', '.join(columns)}) VALUES "
        f"({', '.join('?' * len(columns))})",
        [row[c] for c in columns],
    )
    tables.execute(
        "UPDATE ledger_entries SET notification_id = ?, leaf_hash = ? WHERE sequence = 37",
        (cursor.lastrowid, ref_leaf(row["state"])),
    )
    result = ledger.run("append", "-", input=events_for(4, 1))
    assert (result.exit_code, result.stderr) == (1, LAST_LEAF_REFUSED)
    assert tables.all("SELECT count(*) FROM checkpoints") == [(len(SIZES),)]


def test_the_last_index_row_renumbered_past_the_end_stops_appends_as_that(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 20: the last index row renumbered to 100 had append start there and
    fail on "no node (level 0, index 100) … deleted outside the ledger"."""
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET sequence = 100 WHERE sequence = 37")
    result = ledger.run("append", "-", input=events_for(4, 1))
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr == (
        "Error: the index's last row, sequence 100, lists the stored event that carries "
        "sequence 37: the index (ledger_entries) was changed outside the ledger; nothing "
        "was written: `enforcement-ledger verify` names what changed\n"
    )
    assert len(tables.leaves()) == 38
    assert "sequence 37: the log index has no row for it" in ledger.verify_fails()


def test_nodes_of_events_no_checkpoint_covers_are_checked_before_signing(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """A node after the last signed size is covered by no signature: `checkpoint`
    signed a root folded from it, and `verify` then blamed the events. Now both
    `checkpoint` and a signed append rebuild those nodes from the leaves first."""
    unsigned = ledger.store.ok("append", "-", input=events_for(4, 3))  # no key: unsigned
    assert "sequence 38..40" in unsigned.stdout
    tables.drop_triggers()
    # 41 = 32 + 8 + 1: the root at 41 folds node (3, 4), over 32..39. (The newest
    # leaf's, (0, 40), every append and checkpoint check against its event first.)
    saved = tables.all("SELECT hash FROM merkle_nodes WHERE level = 3 AND idx = 4")[0][0]
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 3 AND idx = 4", (bytes(32),))
    refusal = (
        "Error: refusing to sign: the stored Merkle nodes do not match the events from "
        "sequence 38 on (the node table, or those events, which no checkpoint signs yet, "
        "were changed outside the ledger); run `enforcement-ledger verify`\n"
    )
    result = ledger.run("checkpoint")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", refusal)
    result = ledger.run("append", "-", input=events_for(5, 2))
    assert (result.exit_code, result.stderr) == (1, refusal)
    assert ledger.store.ok("export", "--nl").stdout.count("\n") == 41  # nothing appended
    tables.execute("UPDATE merkle_nodes SET hash = ? WHERE level = 3 AND idx = 4", (saved,))
    signed = ledger.run("checkpoint")
    assert signed.exit_code == 0, signed.output
    assert "\n41\n" in signed.stdout
    assert "OK size 41" in ledger.verify_ok()


def test_an_event_no_checkpoint_covers_is_checked_against_its_recorded_hash_before_signing(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 21: event 35 edited, the nodes rebuilt from the events and the
    checkpoint at 38 deleted; `checkpoint` and a signed append signed over it, and
    verify then called the event intact and its recorded hash the changed one."""
    tables.drop_triggers()
    lines = list(ledger.lines)
    lines[35] = change_one_byte(lines[35])
    tables.set_payload(35, lines[35])
    tables.replace_nodes(lines)
    tables.execute("DELETE FROM checkpoints WHERE size = ?", (SIZES[-1],))
    refusal = (
        "Error: refusing to sign: sequence 35: the stored event's bytes no longer hash to "
        "the leaf recorded for it at append time (the event, or the index, which no "
        "checkpoint signs yet, was changed outside the ledger); nothing was written: run "
        "`enforcement-ledger verify`\n"
    )
    for command in (("checkpoint",), ("append", "-")):
        result = ledger.run(*command, input=events_for(4, 1))
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", refusal)
    assert len(tables.leaves()) == SIZES[-1]
    assert tables.all("SELECT max(size) FROM checkpoints") == [(SIZES[1],)]
    assert "was altered (no signed checkpoint covers it" in ledger.verify_fails()


@pytest.mark.parametrize("events_too", [True, False])
def test_a_log_cut_short_below_its_last_checkpoint_is_refused_by_signing(
    ledger: KeyedLedger, tables: Tables, events_too: bool
) -> None:
    """Probe round 21: `checkpoint` and a signed append failed internally (exit 70,
    "need 0 < old_size <= new_size") on a log shorter than its last signed checkpoint:
    the last events cut, or only the last index row deleted."""
    tables.drop_triggers()
    first_cut = 35 if events_too else 37
    if events_too:
        tables.execute(f"DELETE FROM {tables.events} WHERE {tables.row_id} > ?", (35,))
        tables.execute("DELETE FROM merkle_nodes WHERE ((idx + 1) << level) > 35")
    tables.execute("DELETE FROM ledger_entries WHERE sequence >= ?", (first_cut,))
    refusal = (
        f"Error: refusing to sign: the log index lists {first_cut} event(s), fewer than "
        "the 38 the last signed checkpoint commits to: events, or their index rows, were "
        "removed outside the ledger; nothing was written: `enforcement-ledger verify` "
        "names what changed\n"
    )
    leaves = len(tables.leaves())
    for command in (("checkpoint",), ("append", "-")):
        result = ledger.run(*command, input=events_for(4, 1))
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", refusal)
    assert len(tables.leaves()) == leaves
    assert tables.all("SELECT count(*) FROM checkpoints") == [(len(SIZES),)]


@pytest.mark.parametrize("node", [(0, 38), (1, 19), (5, 1), (70, 0)])
def test_a_node_beyond_the_log_is_named_by_verify_and_by_the_append_it_blocks(
    ledger: KeyedLedger, tables: Tables, node: tuple[int, int]
) -> None:
    """INSERT on merkle_nodes (a writer role has it) past the log's end left verify
    OK while every later append failed, blamed on "concurrent writers"."""
    tables.execute("INSERT INTO merkle_nodes VALUES (?, ?, ?)", (*node, bytes(32)))
    level, index = node
    stderr = ledger.verify_fails()
    assert stderr.startswith(
        f"Error: sequence 38: the Merkle node table holds a node (level {level}, index "
        f"{index}) beyond the log's 38 event(s): it was written outside the ledger"
    ), stderr
    if node == (0, 38):  # the next leaf's node: the next append collides with it
        result = ledger.run("append", "-", input=events_for(4, 1))
        assert result.exit_code == 1, result.output
        assert "a stored row was in the way each time" in result.stderr, result.stderr
        assert "`enforcement-ledger verify` names it" in result.stderr


def test_what_lies_past_the_leaves_is_named_though_the_leaves_do_not_verify(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe fxvt4 (V3): the nodes beyond the log's end and the index rows were checked
    only when the leaves verified, so an auditor's checkpoint the log contradicts hid
    them, which plain verify names."""
    saved = ledger.save_checkpoint("auditor.checkpoint")
    rewrite_history(ledger, tables, 5)
    tables.execute("INSERT INTO merkle_nodes VALUES (?, ?, ?)", (0, 38, bytes(32)))
    tables.execute("UPDATE ledger_entries SET sequence = 50 WHERE sequence = 37")
    index = (
        "sequence 37: the log index has no row for it: the ledger's index (ledger_entries) "
        "was changed outside the ledger (rows renumbered or deleted)"
    )
    assert ledger.verify_fails().startswith(f"Error: {index}; every leaf verified")
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..37: root at size 38 is "), found
    assert found.endswith(
        "; history was rewritten since the auditor saved it (the store's own checkpoints "
        "would place it in 30..37, but they are evidence only if the signing key never left "
        f"the operator's hands); the check went on to find: {index}; and then: sequence 38: "
        "the Merkle node table holds a node (level 0, index "
        "38) beyond the log's 38 event(s): it was written outside the ledger, or events from "
        "38 on were deleted, and the next append that reaches it will fail\n"
    ), found


def test_the_last_event_deleted_with_every_checkpoint_is_named_past_other_findings(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe fxvt2: the last event deleted with every stored checkpoint is named by its
    node left beyond the log's end, a check made only once the leaves verified: not
    when another fault failed them, nor past an auditor's checkpoint they contradict."""
    saved = _auditor_note_at(ledger, tables, 5)
    tables.drop_triggers()
    tables.delete_event(37, with_entry=True)
    tables.execute("DELETE FROM checkpoints")
    beyond = (
        "sequence 37: the Merkle node table holds a node (level 0, index 37) beyond the "
        "log's 37 event(s): it was written outside the ledger"
    )
    assert ledger.verify_fails().startswith(
        f"Error: {beyond}, or events from 37 on were deleted with every checkpoint that "
        "covered them, and the next append that reaches it will fail; the leaves and the "
        "tree verify, so if an earlier export or auditor's checkpoint shows the log ended "
        "at 37, `export --nl`"
    )
    beyond += ", or events from 37 on were deleted, and the next append that reaches it will fail"
    tables.set_payload(10, change_one_byte(ledger.lines[10]))
    undecided = (
        "sequence 10: the stored event's bytes no longer hash to the leaf recorded at append "
        "time: the event, or the hash recorded for it, was altered (no signed checkpoint "
        "covers it to tell which)"
    )
    assert ledger.verify_fails() == f"Error: {undecided}; the check went on to find: {beyond}\n"
    altered = change_one_byte(ledger.lines[2])
    tables.set_payload(2, altered)
    tables.execute(
        "UPDATE ledger_entries SET leaf_hash = ? WHERE sequence = 2", (ref_leaf(altered),)
    )
    found = ledger.verify_fails("--trusted", str(saved))
    assert found.startswith("Error: sequence 0..4: root at size 5 is "), found
    assert found.endswith(
        f"; history was rewritten since the auditor saved it; the check went on to find: "
        f"{undecided}; and then: {beyond}\n"
    ), found


def test_a_node_beyond_what_a_checkpoint_commits_to_is_named_past_a_truncation(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Review of 3f8fcaa (5): a log named truncated skipped the node check (the cut
    events' nodes stay behind), so a node forged far beyond the end went unchecked,
    though the README says any node beyond the end is checked. Nodes beyond the most
    a checkpoint commits to are."""
    tables.drop_triggers()
    for sequence in (37, 36, 35):
        tables.delete_event(sequence, with_entry=True)
    truncated = (
        "Error: sequence 35: the log has 35 events but a checkpoint commits to 38; the log "
        "was truncated"
    )
    assert ledger.verify_fails() == f"{truncated}\n"  # the cut events' nodes: no finding
    tables.execute("INSERT INTO merkle_nodes VALUES (?, ?, ?)", (0, 100, bytes(32)))
    assert ledger.verify_fails() == (
        f"{truncated}; the check went on to find: sequence 38: the Merkle node table holds "
        "a node (level 0, index 100) beyond the 38 event(s) a checkpoint commits to (the "
        "log, truncated, has 35): it was written outside the ledger, or events from 38 on "
        "were deleted too, and the next append that reaches it will fail\n"
    )


def test_prove_inclusion_names_the_index_where_its_row_was_renumbered_or_renamed(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 21: row 10 renumbered to 100 sent `prove inclusion ID` to sign a
    checkpoint (which refuses), `10 --by sequence` said an event is NULL; row 10's
    event_id renamed, the real id was "no event with event_id"."""
    event_id = json.loads(ledger.lines[10])["event_id"]
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET sequence = 100 WHERE sequence = 10")
    by_id = ledger.run("prove", "inclusion", event_id)
    assert (by_id.exit_code, by_id.stderr) == (
        1,
        f"Error: refusing to give out an inclusion proof for event_id '{event_id}': the log "
        "index gives it sequence 100, but the stored event there carries sequence 10: the "
        "log index (ledger_entries) was changed outside the ledger; `enforcement-ledger "
        "verify --read-models` names it\n",
    )
    by_sequence = ledger.run("prove", "inclusion", "10", "--by", "sequence")
    assert (by_sequence.exit_code, by_sequence.stderr) == (
        1,
        "Error: the log index (ledger_entries) lists no stored event for sequence 10: it "
        "was changed outside the ledger (a row renumbered or deleted); `enforcement-ledger "
        "verify` names it\n",
    )
    tables.execute("UPDATE ledger_entries SET sequence = 10, event_id = 'x' WHERE sequence = 100")
    renamed = ledger.run("prove", "inclusion", event_id)
    assert (renamed.exit_code, renamed.stderr) == (
        1,
        f"Error: the log index lists no event with event_id '{event_id}' (`enforcement-ledger "
        "verify --read-models` checks the index against the events)\n",
    )


@pytest.mark.parametrize(("old", "new"), [(10, 100), (5, -1)], ids=["past-the-end", "negative"])
def test_export_known_at_names_an_index_row_renumbered_outside_the_ledger(
    ledger: KeyedLedger, tables: Tables, old: int, new: int
) -> None:
    """`export --known-at` bisects the index's record times: a row renumbered (past the
    end, or below 0) left a sequence with no row, and it failed internally (exit 70,
    "TypeError: cannot unpack non-iterable NoneType object")."""
    known_at = json.loads(ledger.lines[-1])["recorded_at"]
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET sequence = ? WHERE sequence = ?", (new, old))
    last = max(new, len(ledger.lines) - 1)
    for fmt in ((), ("--nl",), ("--json",), ("--csv",)):
        result = ledger.run("export", *fmt, "--known-at", known_at)
        assert (result.exit_code, result.stdout, result.stderr) == (
            1,
            "",
            f"Error: --known-at reads record times from the log index (ledger_entries), "
            f"which has no row for sequence {old} though it lists sequence {last}: the index "
            "was changed outside the ledger (a row renumbered or deleted); "
            "`enforcement-ledger verify` names what changed (`export` without --known-at "
            "reads the events themselves)\n",
        ), fmt
    # The events themselves are intact: the plain export still gives every one.
    assert ledger.store.ok("export", "--nl").stdout_bytes.splitlines() == ledger.lines
    assert f"sequence {old}: the log index has no row for it" in ledger.verify_fails()


def test_export_known_at_names_an_index_row_added_below_the_log(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """A row added at sequence -1 leaves no gap: it is named as a row outside the log,
    not as a sequence without one."""
    known_at = json.loads(ledger.lines[-1])["recorded_at"]
    tables.drop_triggers()
    columns = "originator_id, type, leaf_hash, recorded_at, subject_ref, lane, lane_key, target"
    tables.execute(
        f"INSERT INTO ledger_entries (sequence, event_id, notification_id, {columns}) "
        f"SELECT -1, event_id || '-copy', notification_id + 1000000, {columns} "
        "FROM ledger_entries WHERE sequence = 0"
    )
    result = ledger.run("export", "--nl", "--known-at", known_at)
    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr == (
        "Error: --known-at reads record times from the log index (ledger_entries), which "
        f"has a row for sequence -1, outside the log's 0..{len(ledger.lines) - 1}: the "
        "index was changed outside the ledger (a row renumbered or added); "
        "`enforcement-ledger verify` names what changed (`export` without --known-at "
        "reads the events themselves)\n"
    )


def test_prove_inclusion_of_an_altered_event_whose_leaf_node_is_gone_blames_both(
    ledger: KeyedLedger, tables: Tables
) -> None:
    tables.drop_triggers()
    tables.set_payload(10, change_one_byte(ledger.lines[10]))
    tables.execute("DELETE FROM merkle_nodes WHERE level = 0 AND idx = 10")
    result = ledger.run("prove", "inclusion", "10", "--by", "sequence")
    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(
        "the stored event was altered, or the Merkle node table it is read from was changed "
        "(it has lost its copy of the leaf, level 0 index 10, that would tell which); "
        "`enforcement-ledger verify` checks the log itself from its leaves and names an "
        "altered event\n"
    ), result.stderr


# --- what other commands say about a payload that is not JSON ---------------------


def test_a_payload_that_is_not_json_is_named_by_verify_and_reported_by_reads(
    ledger: KeyedLedger, tables: Tables
) -> None:
    bad = 21
    tables.drop_triggers()
    tables.set_payload(bad, b"not json")
    assert named_sequence(ledger.verify_fails()) == bad
    # Reads parse leaves: they point to verify instead of failing internally (exit 70).
    for command in (("replay", "--silent"), ("timeline",), ("export", "--json")):
        result = ledger.store.run(*command)
        assert result.exit_code == 1, (command, result.exit_code, result.output)
        assert "not valid JSON" in result.stderr, result.stderr
        assert "enforcement-ledger verify" in result.stderr


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("payload", "problem"),
    [(b"\x00 not json", "is not JSON"), (b"[1, 2]", "is an array, not a JSON object")],
)
def test_copying_a_store_whose_payload_is_not_an_event_names_its_sequence(
    ledger: KeyedLedger, tables: Tables, payload: bytes, problem: str
) -> None:
    tables.drop_triggers()
    tables.set_payload(21, payload)
    target = Store(str(ledger.store.tmp_path / "copy.db"), "sqlite", ledger.store.tmp_path)
    result = target.run("copy", ledger.store.url)
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stderr.startswith(f"Error: source sequence 21: the stored event {problem}")
    assert "verify the source first" in result.stderr


@SQLITE_ONLY
def test_copying_a_store_whose_checkpoint_notes_were_swapped_is_refused(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Each note is validly signed, but states another size than its row: the copy
    kept both and was born failing verify. Now it refuses, copying nothing."""
    tables.drop_triggers()
    (first, note_a), (second, note_b) = tables.all(
        "SELECT id, note FROM checkpoints ORDER BY size LIMIT 2"
    )
    tables.execute("UPDATE checkpoints SET note = ? WHERE id = ?", (note_b, first))
    tables.execute("UPDATE checkpoints SET note = ? WHERE id = ?", (note_a, second))
    target = Store(str(ledger.store.tmp_path / "copy.db"), "sqlite", ledger.store.tmp_path)
    result = target.run("copy", ledger.store.url)
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stderr == (
        f"Error: the source's stored checkpoint at size {SIZES[0]}: its columns disagree "
        f"with its signed note; verify the source (nothing of the copy was left: the store "
        f"this copy made ({target.url}) was removed again)\n"
    )
    assert not Path(target.url).exists()  # the store the failed copy created is gone


def test_a_payload_edited_into_another_json_object_points_reads_to_verify(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Valid JSON, but not the event: reads trust the log's shape and fail inside
    (exit 70); the message says verify checks the store, and verify names the event."""
    bad = 21
    tables.drop_triggers()
    tables.set_payload(bad, b'{"a":1}')
    assert named_sequence(ledger.verify_fails()) == bad
    result = cli_process("--store", ledger.store.url, "timeline")
    assert result.returncode == 70, (result.returncode, result.stderr)
    assert result.stderr.startswith("Error: internal failure: ")
    assert result.stderr.endswith(_INTERNAL_FAILURE_HINT)


_INTERNAL_FAILURE_HINT = (
    "If the store may have been changed outside the ledger, `enforcement-ledger verify "
    "--read-models` checks it and the read models answers come from (`replay` rebuilds "
    "those); ENFORCEMENT_LEDGER_DEBUG=1 shows where this failed.\n"
)


def test_a_read_model_changed_by_hand_is_found_by_the_check_the_failure_names(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """A removal's timeline row made a registration: the log is intact (verify says
    OK) and the answer fails inside (exit 70); the hint names the check that finds it,
    and replay mends it."""
    removed = tables.all(
        "SELECT account, sequence FROM timeline WHERE type = 'account_removed' "
        "ORDER BY sequence LIMIT 1"
    )
    assert removed, "the fixture's log holds a removal"
    account, sequence = removed[0]
    tables.execute(
        "UPDATE timeline SET type = 'account_registered' WHERE sequence = ?", (sequence,)
    )
    result = cli_process("--store", ledger.store.url, "status", account)
    assert result.returncode == 70, result.stderr
    assert result.stderr.endswith(_INTERNAL_FAILURE_HINT)
    assert "OK size 38" in ledger.verify_ok()
    found = ledger.verify("--read-models")
    assert found.exit_code == 1, found.output
    assert f"sequence {sequence}" in found.stderr
    ledger.store.ok("replay", "--silent")
    assert "OK size 38" in ledger.verify_ok("--read-models")
    assert cli_process("--store", ledger.store.url, "status", account).returncode == 0


# --- the ledger's index (ledger_entries) -------------------------------------------

REMOVAL = 10  # seed-ig-khamenei-en-removed: instagram:khamenei_ir removed on 2024-02-08


def test_an_index_row_edited_past_its_trigger_is_named_by_verify_read_models(
    ledger: KeyedLedger, tables: Tables
) -> None:
    # Appends check their rules against the index: with the removal's lane moved, the
    # ledger accepts (and would sign) a suspension of a removed account, while every
    # leaf and the tree still verify.
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET lane_key = lane_key + 1 WHERE sequence = ?", (10,))
    suspension = {
        "type": "account_suspended", "account": "instagram:khamenei_ir", "policy": "p",
        "occurred_at": "2024-03-01T00:00:00Z", "source": SOURCE,
    }  # fmt: skip
    appended = ledger.run("append", "-", input=json.dumps(suspension) + "\n")
    assert appended.exit_code == 0, appended.output
    assert "OK size 39 " in ledger.verify_ok()
    stderr = ledger.verify_fails("--read-models")
    assert stderr.startswith(f"Error: sequence {REMOVAL}: the index row's lane_key is "), stderr
    assert "the ledger's index (ledger_entries) was changed, edited outside the ledger" in stderr
    assert "`export --nl` then `copy --export` into a new store rebuilds it" in stderr


@pytest.mark.parametrize(
    ("column", "value", "sequence"),
    [
        ("event_id", "'renamed'", REMOVAL),
        ("type", "'account_suspended'", REMOVAL),
        ("recorded_at", "'2000-01-01T00:00:00.000000Z'", REMOVAL),
        ("lane", "'post:x'", REMOVAL),
        ("target", "'seed-x-post-oct7'", REMOVAL),
        ("subject_ref", "'donald_trump'", 8),
        ("originator_id", "(SELECT originator_id FROM ledger_entries WHERE sequence = 3)", 8),
    ],
)
def test_each_index_column_the_rules_read_is_tied_to_its_leaf(
    ledger: KeyedLedger, tables: Tables, column: str, value: str, sequence: int
) -> None:
    tables.drop_triggers()
    tables.execute(f"UPDATE ledger_entries SET {column} = {value} WHERE sequence = ?", (sequence,))
    stderr = ledger.verify_fails("--read-models")
    assert stderr.startswith(f"Error: sequence {sequence}: the index row's {column} is "), stderr


def test_a_stored_events_topic_is_tied_to_its_stream_and_version(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """The library's repository rebuilds a stream by its events' topics: one edited
    passed verify --read-models, and reading that stream then failed."""
    retract = {"type": "event_retracted", "target": "seed-x-khamenei-en-followers",
               "reason": "r", "occurred_at": "2024-03-01", "source": SOURCE}  # fmt: skip
    assert ledger.run("append", "-", input=json.dumps(retract) + "\n").exit_code == 0
    retraction = SIZES[-1]
    tables.drop_triggers()
    for sequence in (8, retraction):
        (topic,) = tables.all(
            f"SELECT topic FROM {tables.events} WHERE {tables.row_id} = ?",
            (tables.row_of(sequence),),
        )[0]
        edit = f"UPDATE {tables.events} SET topic = ? WHERE {tables.row_id} = ?"
        tables.execute(edit, ("ledger.domain:PlatformStream.Recorded", tables.row_of(sequence)))
        assert ledger.verify_fails("--read-models").startswith(
            f"Error: sequence {sequence}: the stored event's topic is "
            "'ledger.domain:PlatformStream.Recorded', but its stream and version give "
            f"{topic!r}: the events table was changed"
        )
        tables.execute(edit, (topic, tables.row_of(sequence)))
    assert "read models match the log" in ledger.verify_ok("--read-models")


def test_index_rows_renumbered_or_missing_are_named_by_verify_read_models(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Two whole rows swapped keep every column tied to a leaf, but lookups by sequence
    (export --known-at, proofs) then read the wrong event: the leaf's own sequence
    ties each row to its place."""
    tables.drop_triggers()
    for old, new in ((17, -1), (18, 17), (-1, 18)):
        tables.execute("UPDATE ledger_entries SET sequence = ? WHERE sequence = ?", (new, old))
    stderr = ledger.verify_fails("--read-models")
    assert stderr.startswith(
        "Error: sequence 17: the index row points to the event whose leaf carries sequence 18"
    ), stderr
    for old, new in ((17, -1), (18, 17), (-1, 18)):
        tables.execute("UPDATE ledger_entries SET sequence = ? WHERE sequence = ?", (new, old))
    assert "read models match the log" in ledger.verify_ok("--read-models")
    tables.execute("DELETE FROM ledger_entries WHERE sequence = 5")
    stderr = ledger.verify_fails("--read-models")
    assert stderr.startswith("Error: sequence 5: a stored event the log index does not list")


@SQLITE_ONLY
def test_an_index_row_moved_past_the_end_by_insert_or_replace_is_named(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """INSERT OR REPLACE passes SQLite's delete trigger: row 5 renumbered to 50 made
    verify say "the log index lists 51 events but 38 leaves", naming sequence 38."""
    tables.execute(
        "INSERT OR REPLACE INTO ledger_entries SELECT 50, event_id, notification_id, "
        "originator_id, type, leaf_hash, recorded_at, subject_ref, lane, lane_key, target "
        "FROM ledger_entries WHERE sequence = 5"
    )
    for args in ((), ("--read-models",)):
        assert ledger.verify_fails(*args).startswith(
            "Error: sequence 5: the log index has no row for it: the ledger's index "
            "(ledger_entries) was changed outside the ledger"
        )


@pytest.mark.parametrize(
    ("moves", "message"),
    [
        ({37: -1}, "sequence 37: the log index has no row for it: "),
        ({0: -1}, "sequence 0: the log index has no row for it: "),
        ({}, "sequence 38: the log index has a row for it that lists no stored event: "),
    ],
    ids=["last-made-negative", "first-made-negative", "a-row-beyond"],
)
def test_index_rows_outside_the_leaves_are_named_once_every_leaf_verified(
    ledger: KeyedLedger, tables: Tables, moves: dict[int, int], message: str
) -> None:
    """The index must hold one row for each leaf and no other: a row moved to -1 left
    count = max + 1, which passed, or named a sequence that has its row."""
    tables.drop_triggers()
    for old, new in moves.items():
        tables.execute("UPDATE ledger_entries SET sequence = ? WHERE sequence = ?", (new, old))
    if not moves:  # a copy of row 3's other columns at sequence 38, a new event_id
        tables.execute(
            "INSERT INTO ledger_entries SELECT 38, 'stray', notification_id + 100000, "
            "originator_id, type, leaf_hash, recorded_at, subject_ref, lane, lane_key, target "
            "FROM ledger_entries WHERE sequence = 3"
        )
    assert ledger.verify_fails().startswith(f"Error: {message}")


def test_an_index_row_added_with_no_event_is_named_so_by_verify_and_by_appends(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Probe round 4: a row added at sequence 38 for no stored event was "rows
    renumbered or deleted" to verify, and appends said the last event held record time
    None (or, before the head read the event, that a tree node was deleted)."""
    tables.drop_triggers()
    tables.execute(
        "INSERT INTO ledger_entries SELECT 38, 'ghost', 999, originator_id, type, leaf_hash, "
        "recorded_at, subject_ref, lane, lane_key, target FROM ledger_entries WHERE sequence = 37"
    )
    assert ledger.verify_fails() == (
        "Error: sequence 38: the log index has a row for it that lists no stored event: the "
        "ledger's index (ledger_entries) was changed outside the ledger (the row added, or its "
        "event deleted); every leaf verified, so `export --nl` then `copy --export` into a new "
        "store rebuilds it from them\n"
    )
    result = ledger.run("append", "-", input=events_for(4, 1))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(
        "Error: the index's last row, sequence 38, lists no stored event (notification_id "
        "999): it was added outside the ledger (or its event deleted); nothing was written"
    ), result.stderr


def test_an_altered_event_is_named_before_a_renumbered_index(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """The index check came first and said the leaves were intact: following its
    advice (export, copy) carried the altered event into a fresh, valid store."""
    tables.drop_triggers()
    tables.set_payload(5, change_one_byte(tables.payload(5)))
    tables.execute("UPDATE ledger_entries SET sequence = 50 WHERE sequence = 2")
    stderr = ledger.verify_fails()
    assert stderr.startswith("Error: sequence 5: the stored event's bytes no longer hash to "), (
        stderr
    )


def test_a_retractions_index_row_is_tied_to_its_targets(
    ledger: KeyedLedger, tables: Tables
) -> None:
    retraction = {
        "type": "event_retracted", "target": "subject-batch3_subject_07", "reason": "typo",
        "occurred_at": "2024-03-01T00:00:00Z", "source": SOURCE,
    }  # fmt: skip
    assert ledger.run("append", "-", input=json.dumps(retraction) + "\n").exit_code == 0
    assert "read models match the log (39 event(s))" in ledger.verify_ok("--read-models")
    tables.drop_triggers()
    tables.execute("UPDATE ledger_entries SET lane = 'status' WHERE sequence = 38")
    stderr = ledger.verify_fails("--read-models")
    assert stderr.startswith("Error: sequence 38: the index row's lane is 'status', "), stderr


@pytest.mark.parametrize("column", ["size", "root"])
def test_a_stored_checkpoints_columns_edited_apart_from_its_note_are_named(
    ledger: KeyedLedger, tables: Tables, column: str
) -> None:
    # `prove` and `checkpoint` read the columns, the signature covers the note: an
    # edit of either column alone must not pass.
    tables.drop_triggers()
    value = (
        "size - 1" if column == "size" else "(SELECT root FROM checkpoints ORDER BY size LIMIT 1)"
    )
    tables.execute(f"UPDATE checkpoints SET {column} = {value} WHERE size = ?", (SIZES[-1],))
    expected = SIZES[-1] - 1 if column == "size" else SIZES[-1]
    assert ledger.verify_fails() == (
        f"Error: stored checkpoint at size {expected}: its columns disagree with its signed note\n"
    )


def test_a_read_model_index_missing_is_named_by_verify_read_models(
    ledger: KeyedLedger, tables: Tables
) -> None:
    # What a replay stopped between dropping the indexes and building them again
    # leaves behind (PostgreSQL: its session ended; SQLite replays in one transaction).
    tables.execute("DROP INDEX timeline_followers")
    found = ledger.verify("--read-models")
    assert found.exit_code == 1, found.output
    assert found.stderr == (
        "Error: the read models' timeline_followers is missing (a replay stopped before it "
        "built its indexes again, or a table was dropped); as the store's owner, "
        "`enforcement-ledger replay` rebuilds the read models whole, or `enforcement-ledger "
        "init` makes what is missing\n"
    )
    tables.execute("DROP INDEX timeline_account")
    assert "timeline_account, timeline_followers are missing" in ledger.verify_fails(
        "--read-models"
    )
    ledger.store.ok("replay", "--silent")
    assert "OK size 38" in ledger.verify_ok("--read-models")
    # `init` makes it again too, and says so (it said "nothing changed").
    tables.execute("DROP INDEX timeline_account")
    made = ledger.store.ok("init").stdout
    assert made.endswith("; made again its missing timeline_account (the log is unchanged)\n")
    assert "OK size 38" in ledger.verify_ok("--read-models")


@SQLITE_ONLY
def test_init_refuses_a_store_of_another_format_and_changes_nothing(
    ledger: KeyedLedger, tables: Tables
) -> None:
    # It added this version's tables and indexes to it, then said "nothing changed".
    tables.drop_triggers()
    tables.execute("UPDATE ledger_meta SET value = '3' WHERE key = 'format_version'")
    tables.execute("DROP INDEX timeline_account")
    tables.close()
    before = Path(ledger.store.url).read_bytes()
    result = ledger.store.run("init")
    assert result.exit_code == 1, result.output
    assert "holds ledger format 3, this version reads format 2" in result.stderr
    assert Path(ledger.store.url).read_bytes() == before


@pytest.mark.parametrize("table", ["timeline", "retractions"])
def test_init_making_a_read_model_table_again_has_the_read_models_projected_anew(
    ledger: KeyedLedger, tables: Tables, table: str
) -> None:
    # Made again empty beside a position that said "all projected", a table gave
    # wrong answers with exit 0 (no accounts; retracted events counted).
    ledger.store.append(
        {"type": "event_retracted", "target": "subject-batch3_subject_07", "reason": "typo",
         "occurred_at": "2024-03-01T00:00:00Z", "source": SOURCE},
    )  # fmt: skip
    at = ("--known-at", "2030-01-01")
    reads = (("accounts", "--nl", "--as-of", "2030-01-01"), ("counts", "--by", "type", "--nl"))
    before = [ledger.store.ok(*read, *at).stdout for read in reads]
    tables.execute(f"DROP TABLE {table}")
    made = ledger.store.ok("init").stdout
    assert f"made again its missing {table}" in made
    assert "projected again from the log by the next command that reads them" in made
    assert [ledger.store.ok(*read, *at).stdout for read in reads] == before
    assert "read models match the log (39 event(s))" in ledger.verify_ok("--read-models")


def test_a_ledger_index_missing_is_named_by_verify_read_models_and_made_by_init(
    ledger: KeyedLedger, tables: Tables
) -> None:
    # Appends read a stream's lanes through it: without it, right but ever slower.
    tables.execute("DROP INDEX ledger_entries_lane")
    found = ledger.verify("--read-models")
    assert found.exit_code == 1, found.output
    assert found.stderr == (
        "Error: the ledger's index ledger_entries_lane is missing: appends read lanes and "
        "targets through it, ever more slowly without; `enforcement-ledger init` makes it "
        "again\n"
    )
    made = ledger.store.ok("init").stdout
    assert made.endswith("; made again its missing ledger_entries_lane (the log is unchanged)\n")
    assert "OK size 38" in ledger.verify_ok("--read-models")


def test_an_edited_origin_row_is_named_by_appends_too(ledger: KeyedLedger, tables: Tables) -> None:
    # They said the key file was another log's and advised moving it away.
    tables.drop_triggers()
    tables.execute("UPDATE ledger_meta SET value = 'evil.example/log' WHERE key = 'origin'")
    for command in (("checkpoint",), ("append", "-")):
        result = ledger.run(*command, input=events_for(4, 1))
        assert result.exit_code == 1, (result.output, result.exception)
        assert result.stderr.startswith(
            "Error: the store's origin (the ledger_meta row 'origin') is 'evil.example/log', "
            "but this key and every stored checkpoint name the log "
        ), result.stderr
    assert len(tables.leaves()) == 38


@SQLITE_ONLY  # SQLite keeps whatever a column is given; PostgreSQL types refuse these
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("UPDATE checkpoints SET root = 'abc'", "a stored checkpoint's root is text ('abc')"),
        ("UPDATE checkpoints SET size = '27x'", "a stored checkpoint's size is text ('27x')"),
        ("DELETE FROM ledger_meta WHERE key = 'origin'", "the store's origin (the ledger_meta "
         "row 'origin', the log's name in its checkpoints) is missing or not text"),
        ("DROP TABLE checkpoints", "lacks a table the ledger needs (no such table: checkpoints)"),
        # It blamed the first checkpoint, which is signed and intact.
        ("UPDATE ledger_meta SET value = 'evil.example/log' WHERE key = 'origin'",
         "the store's origin (the ledger_meta row 'origin') is 'evil.example/log', but every "
         "stored checkpoint names the log "),
        ("DROP TABLE merkle_nodes", "lacks a table the ledger needs (no such table: merkle_"),
        ("UPDATE projection_position SET sequence = 'x'", "the read models' position "
         "(projection_position) is ("),
    ],
)  # fmt: skip
def test_a_column_or_table_changed_past_its_type_is_named_not_a_crash(
    ledger: KeyedLedger, tables: Tables, change: str, expected: str
) -> None:
    # Each was an internal failure (exit 70) of verify.
    tables.drop_triggers()
    tables.execute(change)
    assert expected in ledger.verify_fails("--read-models")


def test_an_append_that_signs_over_deleted_checkpoints_says_so(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Without the key, an edit hidden by deleting the checkpoints over it: the
    operator's next append signed the forged events with no word, and afterwards even
    `verify --all-signed` said OK."""
    hide_an_edit_by_deleting_checkpoints(ledger, tables)
    signed = ledger.run("append", "-", input=events_for(4, 1))
    assert signed.exit_code == 0, signed.output
    assert signed.stderr.startswith(
        f"warning: this append's checkpoint also signs sequence {SIZES[1]}..{SIZES[2] - 1}, "
        "which no checkpoint covered: appended unsigned, or signed once and those "
        "checkpoints deleted"
    ), signed.stderr
    quiet = ledger.run("append", "-", input=events_for(5, 1))
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "", quiet.stderr  # signed as usual
    # `checkpoint` says what it is the first to sign; then, nothing.
    tables.execute("DELETE FROM checkpoints WHERE size > ?", (SIZES[1],))
    first = ledger.run("checkpoint")
    assert first.exit_code == 0, first.output
    assert first.stderr.startswith(
        f"note: this is the first checkpoint to sign sequence {SIZES[1]}..{SIZES[2] + 1}: "
    ), first.stderr
    assert ledger.run("checkpoint").stderr == ""


def test_a_record_time_edited_into_the_index_is_not_inherited_by_later_appends(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """The last index row's record time set years ahead: every later batch took it
    (record time never runs backwards), signed it into its leaves and was hidden
    from every answer "as known now" until then; plain `verify` said OK."""
    tables.drop_triggers()
    last = SIZES[-1] - 1
    tables.execute(
        "UPDATE ledger_entries SET recorded_at = '2030-01-01T00:00:00Z' WHERE sequence = ?",
        (last,),
    )
    refused = ledger.run("append", "-", input=events_for(4, 1))
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith(
        f"Error: the index gives the last event, sequence {last}, the record time "
        "'2030-01-01T00:00:00Z', but the stored event holds '20"
    ), refused.stderr
    assert "changed outside the ledger; nothing was written" in refused.stderr
    assert len(tables.leaves()) == SIZES[-1]


def test_a_gap_past_a_store_checkpoint_contradicting_the_auditor_is_named(
    ledger: KeyedLedger, tables: Tables
) -> None:
    """Review rv25 (1): event 3 altered, the store's checkpoint at 19 re-signed over it,
    event 25 deleted: plain verify names the gap at 25; with the auditor's checkpoint
    at 5 the repeated re-walk dropped it with the undecided hash that carried it."""
    t5 = _auditor_note_at(ledger, tables, 5)
    tables.drop_triggers()
    lines = list(ledger.lines)
    lines[3] = change_one_byte(lines[3])
    tables.set_payload(3, lines[3])
    _resign_stored(ledger, tables, SIZES[0], [ref_leaf(line) for line in lines])
    tables.delete_event(25, with_entry=True)
    gap = "sequence 25: the leaf at position 25 does not carry sequence 25"
    assert gap in ledger.verify_fails()
    found = ledger.verify_fails("--trusted", str(t5))
    assert found.startswith("Error: sequence 3: "), found
    assert gap in found, found
