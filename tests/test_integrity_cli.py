"""Tamper evidence through the CLI: keygen, checkpoint, export --nl, prove, verify.

Every check here is independent of the product's own Merkle code: roots come from
a ten-line RFC 6962 reference implementation over the bytes of ``export --nl``,
and notes are opened with ``ledger.notes`` (itself pinned by the tlog vectors).
The tests run on every backend of the ``store`` fixture; on PostgreSQL the key
file is always passed with the global ``--key-file`` option.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from ledger import merkle, notes
from ledger.persistence import Storage
from tests.conftest import PG_URL, STORE_KINDS, Store, drop_schema, require_postgres
from tests.ledger_helpers import SEED_EVENTS, cli_process

SEED = Path(__file__).resolve().parent.parent / "ledger" / "data" / "seed.jsonl"
SOURCE = "https://example.org/report"
EMPTY_ROOT_B64 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # base64(SHA-256(""))
SIGNATURE_LINE = re.compile(r"^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$")


# --- an independent RFC 6962 reference -------------------------------------------


def ref_leaf(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def ref_root(lines: list[bytes]) -> bytes:
    """MTH(D[n]) straight from RFC 6962 §2.1."""
    n = len(lines)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(lines[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_root(lines[:k]) + ref_root(lines[k:])).digest()


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- events ----------------------------------------------------------------------


def subject_event(name: str) -> dict[str, Any]:
    return {
        "type": "subject_registered",
        "subject": name,
        "name": name.replace("_", " ").title(),
        "kind": "person",
        "occurred_at": "2019-01-01T00:00:00Z",
        "source": SOURCE,
        "event_id": f"subject-{name}",
    }


def account_event(name: str) -> dict[str, Any]:
    return {
        "type": "account_registered",
        "account": f"twitter:{name}",
        "platform": "twitter",
        "handle": f"@{name}",
        "subject": name,
        "occurred_at": "2020-01-01T00:00:00Z",
        "source": SOURCE,
        "event_id": f"account-{name}",
    }


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


# --- driving the CLI with a signing key ------------------------------------------


@dataclass
class Log:
    """A store plus the signing key file every command gets via --key-file."""

    store: Store
    key: Path
    vkey: str = ""
    sizes: list[int] = field(default_factory=list)

    def run(self, *args: str, input: str | None = None) -> Result:
        return self.store.run("--key-file", str(self.key), *args, input=input)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
        return result

    def fail(self, *args: str, input: str | None = None, code: int = 1) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
        assert "Traceback" not in result.output
        assert result.stderr.startswith("Usage: " if code == 2 else "Error: "), result.stderr
        return result

    def keygen(self) -> str:
        self.vkey = self.ok("keygen").stdout.strip()
        return self.vkey

    def append(self, events: list[dict[str, Any]]) -> None:
        summary = json.loads(self.ok("append", "--json", "-", input=jsonl(events)).stdout)
        assert summary["appended"] == len(events), summary
        self.sizes.append(summary["last_sequence"] + 1)

    def append_seed(self) -> None:
        self.ok("append", str(SEED))
        self.sizes.append(len(self.export_lines()))

    def export_lines(self) -> list[bytes]:
        data = self.ok("export", "--nl").stdout_bytes
        assert data == b"" or data.endswith(b"\n")
        return data.splitlines()

    def verifier(self) -> notes.Ed25519Verifier:
        return notes.parse_verifier_key(self.vkey)

    def origin(self) -> str:
        return self.verifier().name


def three_batches(log: Log) -> None:
    """19 seed events, then 12 subjects, then 8 accounts: 39 events, 3 batches."""
    names = [f"extra_subject_{i:02d}" for i in range(12)]
    log.append_seed()
    log.append([subject_event(n) for n in names])
    log.append([account_event(n) for n in names[:8]])
    assert log.sizes == [19, 31, 39]


@pytest.fixture
def log(store: Store) -> Log:
    """An initialised store with a signing key and no events."""
    result = Log(store, store.tmp_path / "signing.key")
    result.keygen()
    return result


@pytest.fixture
def full_log(log: Log) -> Log:
    """39 events appended in 3 batches under a key: 3 stored checkpoints."""
    three_batches(log)
    return log


@pytest.fixture(scope="module", params=STORE_KINDS)
def shared_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Log]:
    """Like ``full_log``, built once per backend for the tests that only read it.

    Those tests never run `checkpoint` or append, so the log keeps exactly the 3
    checkpoints its batches stored. Mirrors conftest's ``bare_store`` lifecycle.
    """
    tmp = tmp_path_factory.mktemp("shared-log")
    schema = None
    if request.param == "sqlite":
        store = Store(str(tmp / "ledger.db"), "sqlite", tmp)
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        store = Store(f"{PG_URL}?schema={schema}", "postgres", tmp)
    try:
        store.ok("init")
        log = Log(store, tmp / "signing.key")
        log.keygen()
        three_batches(log)
        yield log
    finally:
        if schema is not None:
            drop_schema(schema)


def stored_checkpoints(store: Store) -> list[tuple[int, str]]:
    """(size, signed note) rows of the store's checkpoints table, oldest first."""
    query = "SELECT size, note FROM checkpoints ORDER BY id"
    if store.kind == "sqlite":
        with closing(sqlite3.connect(store.url)) as conn:
            return [(int(r[0]), str(r[1])) for r in conn.execute(query)]
    import psycopg

    schema = store.url.rsplit("schema=", 1)[1]
    with psycopg.connect(PG_URL) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return [(int(r[0]), str(r[1])) for r in conn.execute(query)]


def parse_checkpoint(text: str) -> tuple[str, int, bytes, str, bytes]:
    """Origin, size, root, signer name and raw signature of a printed checkpoint."""
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert len(lines) == 5, lines
    origin, size, root, blank, signature = lines
    assert re.fullmatch(r"0|[1-9][0-9]*", size)
    assert blank == ""
    match = SIGNATURE_LINE.fullmatch(signature)
    assert match, signature
    raw_root = base64.b64decode(root, validate=True)
    return origin, int(size), raw_root, match[1], base64.b64decode(match[2], validate=True)


# --- keygen ------------------------------------------------------------------------


def test_keygen_writes_a_0600_key_and_prints_the_c2sp_verifier_key(bare_store: Store) -> None:
    bare_store.ok("init", "--origin", "example.org/audit-log")
    key = bare_store.tmp_path / "signing.key"
    result = bare_store.ok("--key-file", str(key), "keygen")

    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    vkey = result.stdout.strip()
    assert result.stdout == vkey + "\n", "stdout must hold only the verifier key"
    name, hex8, typed = vkey.split("+", 2)  # base64 may hold "+"
    assert name == "example.org/audit-log"
    assert re.fullmatch(r"[0-9a-f]{8}", hex8)
    raw = base64.b64decode(typed, validate=True)
    assert len(raw) == 33
    assert raw[0] == 0x01
    verifier = notes.parse_verifier_key(vkey)
    assert verifier.name == "example.org/audit-log"
    # The key ID is SHA-256(name || "\n" || 0x01 || pubkey)[:4].
    expected_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex()
    assert hex8 == expected_id
    # The file holds the matching private key; the secret never reaches stdout.
    signer = notes.parse_signer_key(key.read_text(encoding="ascii").strip())
    assert signer.verifier_key() == vkey
    assert "PRIVATE" not in result.stdout
    assert str(key) in result.stderr


def test_keygen_refuses_to_overwrite_a_key(log: Log) -> None:
    before = log.key.read_bytes()
    result = log.fail("keygen")
    assert "already exists" in result.stderr
    assert log.key.read_bytes() == before
    assert stat.S_IMODE(log.key.stat().st_mode) == 0o600


def test_a_signing_key_others_can_read_is_used_with_a_warning(log: Log) -> None:
    event = jsonl([subject_event("warned")])
    assert log.ok("append", "-", input=event).stderr == ""  # keygen made it 0600
    log.key.chmod(0o644)
    result = log.ok("append", "-", input=jsonl([subject_event("warned_again")]))
    assert result.stderr == (
        f"warning: signing key {log.key} can be read by other users (mode 0644); anyone "
        f"who can read it can sign checkpoints as this log: chmod 600 {log.key}\n"
    )
    assert len(stored_checkpoints(log.store)) == 2  # it still signed


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_sqlite_key_defaults_to_store_path_plus_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENFORCEMENT_LEDGER_KEY_FILE", raising=False)
    vkey = store.ok("keygen").stdout.strip()
    default = Path(store.url + ".key")
    assert default.exists()
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    assert notes.parse_signer_key(default.read_text().strip()).verifier_key() == vkey
    # append and checkpoint use that key without any flag.
    store.ok("append", str(SEED))
    text = store.ok("checkpoint").stdout
    checkpoint, _ = notes.open_checkpoint(text, [notes.parse_verifier_key(vkey)])
    assert checkpoint.size == 19
    # The append signed size 19 with that key: `checkpoint` printed that one again.
    assert "(1 checkpoint(s)" in store.ok("verify", "--vkey", vkey).stdout
    # The key file gone, an append goes unsigned: said (it went unseen until verify).
    default.rename(default.with_name("moved.key"))
    result = store.ok("append", "-", input=jsonl([subject_event("unsigned")]))
    assert result.stderr == (
        f"warning: no signing key at {default}, though this log holds signed checkpoints: "
        "this append went unsigned (`verify --all-signed` fails on it until a checkpoint "
        "covers it); restore the log's key file or pass --key-file, and `checkpoint` with "
        "it signs what went unsigned\n"
    )


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_key_file_environment_variable_overrides_the_default(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = store.tmp_path / "elsewhere.key"
    monkeypatch.setenv("ENFORCEMENT_LEDGER_KEY_FILE", str(elsewhere))
    vkey = store.ok("keygen").stdout.strip()
    assert elsewhere.exists()
    assert not Path(store.url + ".key").exists()
    store.ok("append", str(SEED))
    assert "(1 checkpoint(s)" in store.ok("verify", "--vkey", vkey).stdout


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_postgres_keygen_needs_a_key_file(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENFORCEMENT_LEDGER_KEY_FILE", raising=False)
    result = store.fail("keygen")
    assert "--key-file" in result.stderr
    assert "Traceback" not in result.output
    assert list(store.tmp_path.iterdir()) == []
    # The environment variable works as well as the option.
    key = store.tmp_path / "pg.key"
    vkey = store.ok("keygen", env={"ENFORCEMENT_LEDGER_KEY_FILE": str(key)}).stdout.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signed = store.ok("checkpoint", env={"ENFORCEMENT_LEDGER_KEY_FILE": str(key)}).stdout
    assert parse_checkpoint(signed)[0] == notes.parse_verifier_key(vkey).name


# --- checkpoint -------------------------------------------------------------------


def test_checkpoint_is_a_signed_c2sp_note_over_the_rfc6962_root(full_log: Log) -> None:
    text = full_log.ok("checkpoint").stdout
    origin, size, root, name, signature = parse_checkpoint(text)
    verifier = full_log.verifier()
    assert origin == name == verifier.name
    assert size == 39
    assert root == ref_root(full_log.export_lines())
    # base64(keyid || Ed25519 signature)
    assert len(signature) == 4 + 64
    assert int.from_bytes(signature[:4], "big") == verifier.key_id
    checkpoint, note = notes.open_checkpoint(text, [verifier], origin=origin)
    assert (checkpoint.size, checkpoint.root_hash) == (size, root)
    assert note.text == f"{origin}\n{size}\n{b64(root)}\n"
    # Any change to the body breaks the signature.
    forged = text.replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    with pytest.raises(notes.InvalidSignatureError):
        notes.open_checkpoint(forged, [verifier])


def test_checkpoint_of_an_empty_log_commits_to_the_empty_root(log: Log) -> None:
    origin, size, root, _, _ = parse_checkpoint(log.ok("checkpoint").stdout)
    assert origin == log.origin()
    assert size == 0
    assert b64(root) == EMPTY_ROOT_B64
    out = log.ok("verify", "--vkey", log.vkey).stdout
    assert f"OK size 0 root {EMPTY_ROOT_B64}" in out


def test_checkpoint_at_a_signed_size_prints_that_checkpoint_and_stores_no_copy(
    full_log: Log,
) -> None:
    before = stored_checkpoints(full_log.store)
    assert [size for size, _ in before] == [19, 31, 39]
    # The last batch signed size 38: the same key gives the same bytes, stored once.
    assert full_log.ok("checkpoint").stdout == before[-1][1]
    assert full_log.ok("checkpoint").stdout == before[-1][1]
    assert stored_checkpoints(full_log.store) == before
    # Another key's signature of that size is a different checkpoint: stored.
    other = Log(full_log.store, full_log.store.tmp_path / "other.key")
    other.keygen()
    note = other.ok("checkpoint").stdout
    assert note != before[-1][1]
    assert stored_checkpoints(full_log.store) == [*before, (39, note)]


def test_another_logs_key_signs_nothing_here(full_log: Log, tmp_path: Path) -> None:
    """ENFORCEMENT_LEDGER_KEY_FILE overrides a SQLite store's own key: another log's key
    then signed this log's checkpoints, mixing two logs' signatures in it for good."""
    other = Store(str(tmp_path / "other.db"), "sqlite", tmp_path)
    other.ok("init")
    foreign = Log(other, tmp_path / "other-log.key")
    foreign.keygen()
    before = stored_checkpoints(full_log.store)
    size = len(full_log.export_lines())
    for args in (("checkpoint",), ("append", "-"), ("append", "--dry-run", "-")):
        result = full_log.store.run(
            "--key-file",
            str(foreign.key),
            *args,
            input=jsonl([subject_event("foreign_subject")]) if "-" in args else None,
        )
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == (
            f"Error: the signing key {foreign.key} signs as log '{foreign.origin()}', not as "
            f"this log ('{full_log.origin()}'); nothing was written: give --key-file this "
            "log's key\n"
        ), result.stderr
    assert stored_checkpoints(full_log.store) == before
    assert len(full_log.export_lines()) == size


def test_another_logs_key_from_the_environment_is_named_so(
    full_log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Store(str(tmp_path / "other.db"), "sqlite", tmp_path)
    other.ok("init")
    foreign = Log(other, tmp_path / "other-log.key")
    foreign.keygen()
    monkeypatch.setenv("ENFORCEMENT_LEDGER_KEY_FILE", str(foreign.key))
    result = full_log.store.fail("checkpoint")
    fallback = (
        ", or unset it to use the store's own"
        if full_log.store.kind == "sqlite"
        else " (a PostgreSQL store has no key file of its own)"
    )  # unset, a PostgreSQL store's appends were unsigned
    assert result.stderr.endswith(
        "nothing was written: ENFORCEMENT_LEDGER_KEY_FILE names it: point it at this log's "
        f"key{fallback}\n"
    ), result.stderr
    # Given as --key-file too (the same file): the option is what to change.
    result = full_log.store.fail("--key-file", str(foreign.key), "checkpoint")
    assert result.stderr.endswith("nothing was written: give --key-file this log's key\n")


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_default_key_left_from_an_earlier_store_at_the_path_is_named(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENFORCEMENT_LEDGER_KEY_FILE", raising=False)
    store.ok("keygen")
    for suffix in ("", "-wal", "-shm"):
        Path(store.url + suffix).unlink(missing_ok=True)
    store.ok("init")  # a new log at the same path; its old key is still beside it
    result = store.fail("append", str(SEED))
    assert result.stderr.endswith(
        "nothing was written: it is left from another ledger once at this path: move it "
        "away, then `enforcement-ledger keygen` makes this log's\n"
    ), result.stderr
    Path(store.url + ".key").rename(store.url + ".old-key")
    store.ok("keygen")
    store.ok("append", str(SEED))


def test_checkpoint_without_a_key_fails_and_names_keygen(store: Store) -> None:
    store.ok("append", str(SEED))
    missing = store.tmp_path / "missing.key"
    result = store.run("--key-file", str(missing), "checkpoint")
    assert result.exit_code == 1, (result.output, result.exception)
    assert "keygen" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_a_postgres_checkpoint_without_a_key_file_says_where_its_key_is_named(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ux19: it said "create one with keygen and pass --key-file", though the key
    file may exist and only not have been named."""
    monkeypatch.delenv("ENFORCEMENT_LEDGER_KEY_FILE", raising=False)
    for args in (["checkpoint"], ["keygen", "--show"]):
        result = store.fail(*args)
        assert result.stderr == (
            "Error: no signing key: a PostgreSQL store needs --key-file or "
            "ENFORCEMENT_LEDGER_KEY_FILE naming its key file (`enforcement-ledger --key-file "
            "PATH keygen` creates one)\n"
        ), result.stderr


def test_every_append_batch_stores_a_new_signed_checkpoint(shared_log: Log) -> None:
    verifier = shared_log.verifier()
    lines = shared_log.export_lines()
    out = shared_log.ok("verify", "--vkey", shared_log.vkey).stdout
    assert "(3 checkpoint(s), 0 trusted)" in out

    # The newest stored checkpoint is the one proofs are served against.
    proof = notes.parse_tlog_proof(shared_log.ok("prove", "inclusion", "0").stdout)
    checkpoint, _ = proof.verify(ref_leaf(lines[0]), [verifier], origin=shared_log.origin())
    assert checkpoint.size == 39
    assert checkpoint.root_hash == ref_root(lines)

    # In the store: one signed checkpoint per batch, each over its own prefix.
    stored = stored_checkpoints(shared_log.store)
    assert [size for size, _ in stored] == shared_log.sizes == [19, 31, 39]
    for size, note in stored:
        checkpoint, _ = notes.open_checkpoint(note, [verifier], origin=shared_log.origin())
        assert (checkpoint.size, checkpoint.root_hash) == (size, ref_root(lines[:size]))

    # Successive checkpoints are provably consistent.
    for old, new in [(19, 31), (31, 39), (19, 39)]:
        proof_lines = shared_log.ok("prove", "consistency", str(old), "--to", str(new)).stdout
        hashes = [base64.b64decode(x) for x in proof_lines.split()]
        merkle.verify_consistency(old, new, ref_root(lines[:old]), ref_root(lines[:new]), hashes)

    # Without --to the newest checkpoint is the target.
    default = shared_log.ok("prove", "consistency", "19").stdout
    assert default == shared_log.ok("prove", "consistency", "19", "--to", "39").stdout


def test_appends_without_a_key_are_not_checkpointed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENFORCEMENT_LEDGER_KEY_FILE", raising=False)
    store.ok("append", str(SEED))
    assert list(store.tmp_path.glob("*.key")) == []
    verified = store.ok("verify")
    assert "(0 checkpoint(s)" in verified.stdout
    # Nothing vouches for these events beyond the store itself: the auditor is told.
    assert verified.stderr == (
        "warning: sequence 0..18: covered by no signed checkpoint (the key holder signs "
        "them with `enforcement-ledger checkpoint`; or compare with a --trusted checkpoint)\n"
    )
    result = store.fail("prove", "inclusion", "0")
    assert "checkpoint" in result.stderr


# --- export --nl ------------------------------------------------------------------


def test_export_nl_lines_are_canonical_leaves_in_sequence_order(shared_log: Log) -> None:
    data = shared_log.ok("export", "--nl").stdout_bytes
    assert data.endswith(b"\n")
    assert b"\r" not in data
    lines = data.split(b"\n")[:-1]
    assert len(lines) == 39
    event_ids = set()
    for index, line in enumerate(lines):
        text = line.decode("utf-8")
        record = json.loads(text)
        assert text == canonical(record), f"line {index} is not canonical JSON"
        assert record["sequence"] == index
        for key in ("event_id", "type", "occurred_at", "recorded_at", "actor", "source"):
            assert key in record, (index, key)
        event_ids.add(record["event_id"])
    assert len(event_ids) == 39
    # The seed's non-ASCII text is stored as UTF-8, not as \u escapes.
    assert "…".encode() in data


# --- prove inclusion --------------------------------------------------------------


def test_prove_inclusion_by_sequence_and_by_event_id(shared_log: Log) -> None:
    lines = shared_log.export_lines()
    verifier = shared_log.verifier()
    for index in (0, 5, 18, 19, 30, 37, 38):
        event_id = json.loads(lines[index])["event_id"]
        by_sequence = shared_log.ok("prove", "inclusion", str(index)).stdout
        by_event_id = shared_log.ok("prove", "inclusion", event_id).stdout
        assert by_sequence == by_event_id

        head, _, signed = by_sequence.partition("\n\n")
        header = head.split("\n")
        assert header[0] == "c2sp.org/tlog-proof@v1"
        assert header[1] == f"index {index}"
        origin, size, root, _, _ = parse_checkpoint(signed)
        assert (size, root) == (39, ref_root(lines))

        proof = notes.parse_tlog_proof(by_sequence)
        assert proof.index == index
        assert len(proof.hashes) == len(header) - 2
        checkpoint, _ = proof.verify(ref_leaf(lines[index]), [verifier], origin=origin)
        assert checkpoint.size == 39

        other = lines[(index + 1) % len(lines)]
        with pytest.raises(merkle.ProofError):
            proof.verify(ref_leaf(other), [verifier], origin=origin)
        with pytest.raises(merkle.ProofError):
            proof.verify(ref_leaf(lines[index] + b" "), [verifier], origin=origin)
        stranger = notes.generate_signer(origin).verifier()
        with pytest.raises(notes.UnverifiedNoteError):
            proof.verify(ref_leaf(lines[index]), [stranger], origin=origin)


def test_prove_inclusion_of_an_unknown_event_fails_clearly(shared_log: Log) -> None:
    result = shared_log.fail("prove", "inclusion", "no-such-event")
    assert "no-such-event" in result.stderr
    assert result.stdout == ""
    result = shared_log.fail("prove", "inclusion", "39")
    assert result.stderr == (
        "Error: sequence 39 is beyond the end of the log (size 39: sequences 0..38)\n"
    )


def test_prove_inclusion_refuses_to_guess_when_a_numeric_event_id_is_also_a_sequence(
    full_log: Log,
) -> None:
    # event_id "3" names sequence 39, and "3" is also sequence 3: either answer would
    # be a valid proof of *some* event, so the command asks which one was meant.
    full_log.append([{**subject_event("numeric"), "event_id": "3"}])
    full_log.ok("checkpoint")
    result = full_log.fail("prove", "inclusion", "3")
    assert "'3' is both the event_id of sequence 39 and sequence 3" in result.stderr
    assert "--by event-id or --by sequence" in result.stderr
    assert result.stdout == ""
    by_id = full_log.ok("prove", "inclusion", "3", "--by", "event-id").stdout
    by_sequence = full_log.ok("prove", "inclusion", "3", "--by", "sequence").stdout
    assert notes.parse_tlog_proof(by_id).index == 39
    assert notes.parse_tlog_proof(by_sequence).index == 3
    # No ambiguity where the number is past the log's end: the event_id is meant.
    full_log.append([{**subject_event("numeric_far"), "event_id": "400"}])
    full_log.ok("checkpoint")
    assert notes.parse_tlog_proof(full_log.ok("prove", "inclusion", "400").stdout).index == 40
    misread = full_log.run("prove", "inclusion", "nope", "--by", "sequence")
    assert misread.exit_code == 2
    assert "expected a sequence number, given 'nope'" in misread.stderr


# --- prove consistency ------------------------------------------------------------


def test_prove_consistency_matches_the_reference_roots(shared_log: Log) -> None:
    lines = shared_log.export_lines()
    pairs = [(1, 1), (1, 2), (3, 7), (7, 13), (16, 32), (19, 31), (1, 39), (21, 39), (39, 39)]
    for old, new in pairs:
        out = shared_log.ok("prove", "consistency", str(old), "--to", str(new)).stdout
        proof = [base64.b64decode(line, validate=True) for line in out.splitlines()]
        assert all(len(h) == 32 for h in proof)
        old_root, new_root = ref_root(lines[:old]), ref_root(lines[:new])
        merkle.verify_consistency(old, new, old_root, new_root, proof)
        if proof:
            bent = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(old, new, old_root, new_root, bent)
        if old < new:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(old, new, old_root, ref_root(lines[: new - 1]), proof)


def test_prove_consistency_says_when_a_size_is_not_signed(shared_log: Log) -> None:
    # Checked against each signed root before printing (19, 31 and 39 are signed here);
    # a size without one is named in a note.
    assert shared_log.ok("prove", "consistency", "19", "--to", "31").stderr == ""
    assert shared_log.ok("prove", "consistency", "7", "--to", "31").stderr == (
        "note: no signed checkpoint at size 7: the proof was checked against the signed "
        "root at size 31 only; `checkpoint` signs the log's present size\n"
    )
    assert "at sizes 7 and 13: " in shared_log.ok("prove", "consistency", "7", "--to", "13").stderr


def test_prove_consistency_beyond_the_log_fails(shared_log: Log) -> None:
    result = shared_log.fail("prove", "consistency", "5", "--to", "40")
    assert "40" in result.stderr
    result = shared_log.fail("prove", "consistency", "31", "--to", "20", code=2)
    assert result.stdout == ""
    # An old size beyond the log is that, not a missing checkpoint.
    result = shared_log.fail("prove", "consistency", "40")
    assert result.stderr == "Error: OLD_SIZE 40 is beyond the end of the log (size 39)\n"


def test_prove_consistency_to_an_older_size_is_a_usage_error(shared_log: Log) -> None:
    # The two arguments contradict each other whatever the log holds: exit 2, as
    # OLD_SIZE 0 is, not 1 (a data error), and before the log's size is looked at.
    for old, new in (("20", "19"), ("50", "45")):
        result = shared_log.fail("prove", "consistency", old, "--to", new, code=2)
        assert result.stdout == ""
        assert result.stderr.endswith(
            f"Error: Invalid value for OLD_SIZE/--to: OLD_SIZE {old} is larger than --to "
            f"{new}: a log only grows; give the older size first\n"
        ), result.stderr


# --- verify -----------------------------------------------------------------------


def test_an_auditor_checks_an_inclusion_proof_offline(shared_log: Log, tmp_path: Path) -> None:
    """`prove check-inclusion`: the proof, the event as exported and the key; no store."""
    lines = shared_log.export_lines()
    proof = tmp_path / "e.proof"
    proof.write_text(shared_log.ok("prove", "inclusion", "20").stdout)
    event = tmp_path / "e.event"
    event.write_bytes(lines[20] + b"\n")
    proof.write_text(proof.read_text() + "\n\n")  # blank lines an editor added at the end
    result = offline(
        "prove", "check-inclusion", str(proof), "--event", str(event), "--vkey", shared_log.vkey
    )
    assert result.exit_code == 0, result.output
    key = shared_log.verifier()
    assert result.stdout.startswith(
        f"OK sequence 20 is in the log {shared_log.origin()} of size 39, root "
    )
    assert result.stdout.endswith(f"signed by {key.name}+{key.key_id:08x}\n")
    cases = [
        (lines[21], "the event carries sequence 21, but the proof is for sequence 20"),
        (
            lines[20].replace(b'"actor":"', b'"actor":"x'),
            "the event is not in the signed log: the proof leads from it to root ",
        ),
        # The same event re-serialised: said so (it read "carries no sequence").
        (
            json.dumps(json.loads(lines[20])).encode(),
            "the event is not byte for byte as `export --nl` gives it",
        ),
        (lines[20].replace(b'"type"', b'"type" '), "the event is not byte for byte as"),
        (b"[1]", "the event file is not an event as `export --nl` gives it: not a JSON"),
    ]
    for leaf, problem in cases:
        event.write_bytes(leaf + b"\n")
        args = ["prove", "check-inclusion", str(proof), "--event", str(event)]
        result = offline(*args, "--vkey", shared_log.vkey)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"Error: {problem}"), result.stderr
    event.write_bytes(lines[20] + b"\n")
    other = notes.generate_signer("example.org/other-log").verifier_key()
    result = offline("prove", "check-inclusion", str(proof), "--event", str(event), "--vkey", other)
    assert result.exit_code == 1
    assert "the proof's checkpoint: no signature by a trusted key" in result.stderr
    result = offline("prove", "check-inclusion", str(proof), "--event", str(event))
    assert result.exit_code == 2
    assert "--vkey is needed" in result.stderr


def test_an_auditor_checks_a_consistency_proof_offline(shared_log: Log, tmp_path: Path) -> None:
    """`prove check-consistency`: an older and a newer signed checkpoint, the proof
    between them and the key show the older log is a prefix of the newer one."""
    (old_size, old_note), *_, (new_size, new_note) = stored_checkpoints(shared_log.store)
    old, new = tmp_path / "old.checkpoint", tmp_path / "new.checkpoint"
    old.write_text(old_note + "\n", encoding="utf-8")  # a blank line after it: still the note
    new.write_text(new_note, encoding="utf-8")
    proof = tmp_path / "c.proof"
    proof.write_text(
        shared_log.ok("prove", "consistency", str(old_size), "--to", str(new_size)).stdout
    )

    def check(*files: Path) -> Result:
        paths = [str(p) for p in files]
        return offline(
            "prove", "check-consistency", paths[0], "--old", paths[1], "--new", paths[2],
            "--vkey", shared_log.vkey,
        )  # fmt: skip

    result = check(proof, old, new)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"OK the log {shared_log.origin()} at size {old_size} is a prefix of it at size "
        f"{new_size} (root "
    )
    swapped = check(proof, new, old)
    assert swapped.exit_code == 1
    assert f"the log of size {new_size} is not shown to be a prefix" in swapped.stderr
    hashes = proof.read_text().splitlines()
    hashes[0] = base64.b64encode(bytes(32)).decode()
    proof.write_text("\n".join(hashes) + "\n")
    altered = check(proof, old, new)
    assert altered.exit_code == 1
    assert f"the log of size {old_size} is not shown to be a prefix" in altered.stderr


def test_verify_reports_ok_with_size_and_root(shared_log: Log, tmp_path: Path) -> None:
    root = b64(ref_root(shared_log.export_lines()))
    result = shared_log.ok("verify", "--vkey", shared_log.vkey)
    assert result.stdout.startswith(f"OK size 39 root {root}")
    assert "(3 checkpoint(s), 0 trusted)" in result.stdout
    assert result.stderr == ""  # the newest checkpoint covers the whole log
    # --vkey also accepts a file holding the key.
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(shared_log.vkey + "\n")
    assert shared_log.ok("verify", "--vkey", str(vkey_file)).stdout == result.stdout


def test_verify_rejects_checkpoints_under_a_wrong_key(shared_log: Log) -> None:
    same_name = notes.generate_signer(shared_log.origin()).verifier_key()
    other_name = notes.generate_signer("example.org/other-log").verifier_key()
    for vkey in (same_name, other_name):
        result = shared_log.fail("verify", "--vkey", vkey)
        assert "OK" not in result.stdout
        assert "key" in result.stderr
    result = shared_log.run("verify", "--vkey", "not-a-key")
    assert result.exit_code == 2  # a usage error: no key at all, unlike the two above
    assert "'not-a-key' is neither a file nor a C2SP verifier key" in result.stderr
    # A key of another log: the message names who signed and which key was given.
    wrong = notes.parse_verifier_key(other_name)
    result = shared_log.fail("verify", "--vkey", other_name)
    signer = notes.parse_verifier_key(shared_log.vkey)
    assert (
        f"no signature by a trusted key: it is signed by {signer.name}+{signer.key_id:08x}; "
        f"checked with {wrong.name}+{wrong.key_id:08x}"
    ) in result.stderr


def test_vkey_files_that_hold_no_verifier_key_are_named(shared_log: Log, tmp_path: Path) -> None:
    binary = tmp_path / "binary.vkey"
    binary.write_bytes(b"\xff\xfe")
    cases = [
        (str(tmp_path), "cannot read a verifier key from it: Is a directory"),
        (str(binary), "cannot read a verifier key from it: not UTF-8 text"),
        (str(shared_log.key), "is the private signing key, which must stay with the operator"),
    ]
    for given, problem in cases:
        result = shared_log.run("verify", "--vkey", given)
        assert result.exit_code == 2, (given, result.output)
        assert f"\nError: --vkey {given!r}" in result.stderr, result.stderr
        assert problem in result.stderr


def test_a_vkey_with_a_byte_order_mark_first_is_read(shared_log: Log, tmp_path: Path) -> None:
    """Probe round 21: a BOM an editor put first made the file "not ASCII text", and
    "$(cat FILE)" a key whose ID did not match, read as a wrong key."""
    marked = tmp_path / "marked.vkey"
    marked.write_text("\ufeff" + shared_log.vkey + "\r\n", encoding="utf-8")
    for given in (str(marked), "\ufeff" + shared_log.vkey):
        result = shared_log.run("verify", "--vkey", given)
        assert result.exit_code == 0, (given, result.output)
        assert result.stdout.startswith("OK size "), result.stdout


def test_keygen_show_prints_the_verifier_key_again(log: Log) -> None:
    assert log.ok("keygen", "--show").stdout.strip() == log.vkey


def test_a_signing_key_file_that_is_not_text_is_named_not_the_store(log: Log) -> None:
    log.key.chmod(0o600)
    log.key.write_bytes(b"\x88\xff" * 50)
    for command in (["keygen", "--show"], ["checkpoint"]):
        result = log.run(*command)
        assert result.exit_code == 1, result.output
        assert result.stderr == f"Error: {log.key} is not a signer key: not UTF-8 text\n"


def test_verify_with_a_trusted_checkpoint_saved_earlier(log: Log) -> None:
    log.append_seed()
    saved = log.store.tmp_path / "saved.checkpoint"
    saved.write_text(log.ok("checkpoint").stdout)
    three_more = [subject_event(f"later_{i}") for i in range(3)]
    log.append(three_more)
    result = log.ok("verify", "--vkey", log.vkey, "--trusted", str(saved))
    assert result.stdout.startswith("OK size 22 ")
    assert "1 trusted" in result.stdout
    assert result.stderr == ""


def test_verify_of_a_store_refuses_checkpoint_files_it_would_not_check(log: Log) -> None:
    """--checkpoint is what an export must match; on a store the file was ignored and
    verify said OK whatever it held. The saved checkpoint of a store goes to --trusted."""
    log.append_seed()
    saved = log.store.tmp_path / "saved.checkpoint"
    saved.write_text("not a checkpoint at all\n")
    result = log.run("verify", "--vkey", log.vkey, "--checkpoint", str(saved))
    assert result.exit_code == 2, result.output
    assert "--checkpoint goes with --export" in result.stderr
    assert "give it with --trusted" in result.stderr


def test_a_bad_trusted_checkpoint_is_named_by_its_file(log: Log) -> None:
    log.append_seed()
    good = log.store.tmp_path / "good.checkpoint"
    good.write_text(log.ok("checkpoint").stdout)
    garbled = log.store.tmp_path / "garbled.checkpoint"
    garbled.write_text("not a note\n")
    result = log.fail(
        "verify", "--vkey", log.vkey, "--trusted", str(good), "--trusted", str(garbled)
    )
    assert result.stderr.startswith(f"Error: trusted checkpoint {garbled}: malformed note")
    empty = log.store.tmp_path / "empty.checkpoint"
    empty.write_text("")
    result = log.fail("verify", "--vkey", log.vkey, "--trusted", str(empty))
    assert result.stderr == f"Error: {empty} is not a signed checkpoint: the file is empty\n"
    # An inclusion proof (which holds a checkpoint) was "invalid signature for key …",
    # which reads as forgery: it is named as what it is.
    proof = log.store.tmp_path / "event.proof"
    proof.write_text(log.ok("prove", "inclusion", "3", "--by", "sequence").stdout)
    export = log.store.tmp_path / "ledger.jsonl"
    export.write_bytes(log.ok("export", "--nl").stdout_bytes)
    for option in (("--trusted",), ("--export", str(export), "--checkpoint")):
        result = log.fail("verify", "--vkey", log.vkey, *option, str(proof))
        assert result.stderr.startswith(
            f"Error: {proof} is not a signed checkpoint: it is an inclusion proof (it starts "
            "c2sp.org/tlog-proof@v1, as `prove inclusion` prints it); "
        ), result.stderr
    # Its checkpoint, the part after the first blank line, is one.
    own = log.store.tmp_path / "own.checkpoint"
    own.write_text(proof.read_text().split("\n\n", 1)[1])
    assert log.ok("verify", "--vkey", log.vkey, "--trusted", str(own)).stdout.startswith("OK ")


def test_checkpoint_and_proof_files_saved_with_a_byte_order_mark_are_read(log: Log) -> None:
    """Probe round 20: a real checkpoint saved with a UTF-8 BOM (as some editors save)
    was refused by `verify --trusted` as an "invalid signature", which reads as forgery;
    a proof with one was not named as a proof."""
    log.append_seed()
    bom = b"\xef\xbb\xbf"
    saved = log.store.tmp_path / "saved.checkpoint"
    saved.write_bytes(bom + log.ok("checkpoint").stdout_bytes)
    assert log.ok("verify", "--vkey", log.vkey, "--trusted", str(saved)).stdout.startswith("OK ")
    proof = log.store.tmp_path / "event.proof"
    proof.write_bytes(bom + log.ok("prove", "inclusion", "3", "--by", "sequence").stdout_bytes)
    result = log.fail("verify", "--vkey", log.vkey, "--trusted", str(proof))
    assert result.stderr.startswith(
        f"Error: {proof} is not a signed checkpoint: it is an inclusion proof (it starts "
    ), result.stderr
    event = log.store.tmp_path / "event.json"
    event.write_bytes(log.ok("export", "--nl").stdout_bytes.splitlines()[3] + b"\n")
    checked = log.ok(
        "prove", "check-inclusion", str(proof), "--event", str(event), "--vkey", log.vkey
    )
    assert checked.stdout.startswith("OK sequence 3 is in the log ")


def write_export_and_checkpoint(log: Log, tmp: Path) -> tuple[Path, Path, list[bytes]]:
    """What an operator hands an auditor: `export --nl` and the newest signed checkpoint."""
    export = tmp / "ledger.jsonl"
    export.write_bytes(log.ok("export", "--nl").stdout_bytes)
    checkpoint = tmp / "ledger.checkpoint"
    # The checkpoint embedded in a tlog-proof is the newest stored one, verbatim.
    signed = log.ok("prove", "inclusion", "0").stdout.partition("\n\n")[2]
    checkpoint.write_text(signed, encoding="utf-8")
    return export, checkpoint, export.read_bytes().splitlines()


def offline(*args: str) -> Result:
    """The CLI with no store at all: no --store and no store environment."""
    env = {"ENFORCEMENT_LEDGER_STORE": None, "ENFORCEMENT_LEDGER_KEY_FILE": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)


def verify_offline(export: Path, checkpoint: Path, vkey: str) -> Result:
    return offline(
        "verify", "--export", str(export), "--checkpoint", str(checkpoint), "--vkey", vkey
    )


def test_verify_offline_needs_only_an_export_and_a_checkpoint(
    shared_log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export, checkpoint, lines = write_export_and_checkpoint(shared_log, tmp_path)
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.startswith(f"OK size 39 root {b64(ref_root(lines))}")
    assert result.stderr == ""
    assert list(elsewhere.iterdir()) == [], "offline verify must not create a store"
    # The same with the store option pointing nowhere.
    nowhere = tmp_path / "no-such-store.db"
    result = offline(
        "--store",
        str(nowhere),
        "verify",
        "--export",
        str(export),
        "--checkpoint",
        str(checkpoint),
        "--vkey",
        shared_log.vkey,
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert not nowhere.exists()


def test_verify_offline_warns_of_events_beyond_the_newest_checkpoint(
    shared_log: Log, tmp_path: Path
) -> None:
    export, _, _ = write_export_and_checkpoint(shared_log, tmp_path)
    first_size, first_note = stored_checkpoints(shared_log.store)[0]
    assert first_size == 19
    older = tmp_path / "older.checkpoint"
    older.write_text(first_note, encoding="utf-8")
    result = offline(
        "verify", "--export", str(export), "--checkpoint", str(older), "--vkey", shared_log.vkey
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.startswith("OK size 39 ")
    assert "warning: sequence 19..38: covered by no signed checkpoint" in result.stderr
    # An auditor who accepts nothing unsigned makes it a failure.
    args = ["--export", str(export), "--checkpoint", str(older), "--vkey", shared_log.vkey]
    strict = offline("verify", *args, "--all-signed")
    assert strict.exit_code == 1, strict.output
    assert strict.stdout == ""
    assert strict.stderr == (
        "Error: sequence 19..38: covered by no signed checkpoint, and --all-signed asks "
        "that every event be covered by one\n"
    )
    newest = tmp_path / "newest.checkpoint"
    newest.write_text(stored_checkpoints(shared_log.store)[-1][1], encoding="utf-8")
    args = ["--export", str(export), "--checkpoint", str(newest), "--vkey", shared_log.vkey]
    assert offline("verify", *args, "--all-signed").exit_code == 0


def test_verify_offline_rejects_a_changed_byte_and_names_its_sequence(
    shared_log: Log, tmp_path: Path
) -> None:
    export, checkpoint, lines = write_export_and_checkpoint(shared_log, tmp_path)
    bad = 23
    data = bytearray(export.read_bytes())
    start = sum(len(line) + 1 for line in lines[:bad])
    at = data.index(b'"source":"https', start) + len(b'"source":"')
    assert data[at : at + 1] == b"h"
    data[at] = ord("H")
    export.write_bytes(bytes(data))
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    assert "OK" not in result.stdout
    match = re.search(r"sequence (\d+)(?:\.\.(\d+))?", result.stderr)
    assert match, result.stderr
    low = int(match[1])
    high = int(match[2]) if match[2] else low
    assert low <= bad <= high, result.stderr


def test_verify_offline_rejects_a_truncated_export_and_a_wrong_key(
    shared_log: Log, tmp_path: Path
) -> None:
    export, checkpoint, lines = write_export_and_checkpoint(shared_log, tmp_path)
    wrong = notes.generate_signer(shared_log.origin()).verifier_key()
    result = offline(
        "verify", "--export", str(export), "--checkpoint", str(checkpoint), "--vkey", wrong
    )
    assert result.exit_code == 1, (result.output, result.exception)
    export.write_bytes(b"".join(line + b"\n" for line in lines[:-2]))
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    # Also what an export taken before the checkpoint was signed looks like: said so
    # (it read "the log was truncated", in the README's own recipe when an append came
    # between the two).
    assert result.stderr == (
        f"Error: sequence {len(lines) - 2}: the log has {len(lines) - 2} events but the "
        f"checkpoint {checkpoint} commits to {len(lines)}: the log was truncated, or (an "
        "export) it was written before that checkpoint was signed: export it again, or give "
        "the checkpoint of its own size\n"
    )


def test_verify_offline_names_converted_line_endings_and_blank_lines(
    shared_log: Log, tmp_path: Path
) -> None:
    """An export passed through a tool that wrote CRLF, or that gained a blank line, is
    told so (neither byte can be part of a leaf), not left to fail as a wrong root."""
    export, checkpoint, lines = write_export_and_checkpoint(shared_log, tmp_path)
    export.write_bytes(b"".join(line + b"\r\n" for line in lines))
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr == (
        "Error: sequence 0: line 1 of the export ends with a carriage return: its line "
        "endings were converted to CRLF on the way (an export separates leaves with LF "
        "alone; `tr -d '\\r'` restores it exactly)\n"
    )
    export.write_bytes(b"".join(line + b"\n" for line in lines) + b"\n")
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr == (
        "Error: sequence 39: line 40 of the export is empty; an export holds one leaf a "
        "line and nothing else\n"
    )
    export.write_bytes(b"\xef\xbb\xbf" + b"".join(line + b"\n" for line in lines))
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr == (  # it was "was it written by `export` without --nl…"
        "Error: sequence 0: the export starts with a byte order mark (U+FEFF), added on the "
        "way (an export is written without one); remove its first three bytes\n"
    )
    # Cut short mid-line (`head -c -30`): it was "sequence 0..N: root … differ".
    whole = b"".join(line + b"\n" for line in lines)
    export.write_bytes(whole[:-30])
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr == (
        f"Error: sequence {len(lines) - 1}: line {len(lines)} of the export, its last, is an "
        "incomplete JSON object with no final newline: the export was truncated (cut short "
        "when written or copied); export it again, or copy it whole\n"
    )
    export.write_bytes(whole[:-1])  # only the final newline lost (an editor): accepted
    assert verify_offline(export, checkpoint, shared_log.vkey).exit_code == 0
    export.write_bytes(whole)  # as it was: accepted
    assert verify_offline(export, checkpoint, shared_log.vkey).exit_code == 0


@pytest.mark.parametrize("form", ["table", "--json", "--csv"])
def test_verify_offline_of_a_file_in_another_format_says_so_not_tampering(
    shared_log: Log, tmp_path: Path, form: str
) -> None:
    # `export` without --nl (or --json, --csv) is no tampering: it is named as a file
    # of another shape, for verify and for copy alike.
    export, checkpoint, _ = write_export_and_checkpoint(shared_log, tmp_path)
    export.write_text(shared_log.ok("export", *([form] if form != "table" else [])).stdout)
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr.startswith(
        "Error: line 1 of the file is not a leaf as `export --nl` writes it (one JSON "
        "object an event; it starts b'"
    ), result.stderr
    assert "was it written by `export` without --nl, or by another command?" in result.stderr
    assert "deleted" not in result.stderr


def test_verify_offline_refuses_an_over_long_line_without_holding_it(
    shared_log: Log, tmp_path: Path
) -> None:
    from cli.main import MAX_LEAF_BYTES

    export, checkpoint, lines = write_export_and_checkpoint(shared_log, tmp_path)
    # An export from an untrusted operator: line 5 runs on for more than any leaf can.
    with export.open("wb") as handle:
        handle.writelines(line + b"\n" for line in lines[:5])
        handle.write(b"x" * (MAX_LEAF_BYTES + 1) + b"\n")
    result = verify_offline(export, checkpoint, shared_log.vkey)
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr.startswith(
        f"Error: sequence 5: the export's line is longer than {MAX_LEAF_BYTES:,} bytes"
    )


# --- bad input is refused cleanly (exit 1, "Error: ...", no internal failure) ------


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit 1 through the CLI's own error path; the real entry point maps anything
    else to "internal failure" with exit status 70."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"unhandled: {result.exception!r}"
    assert result.stderr.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def test_append_with_a_malformed_key_file_is_refused(store: Store) -> None:
    key = store.tmp_path / "garbage.key"
    key.write_text("not a key\n")
    assert_refused(store.run("--key-file", str(key), "append", str(SEED)), "not a signer key")
    assert store.count() == 0
    assert_refused(store.run("--key-file", str(key), "checkpoint"), "not a signer key")


@pytest.mark.parametrize("origin", ["example.org/my log", "", "a+b", "two\nlines"])
def test_an_origin_that_cannot_name_a_key_is_refused_at_init(
    bare_store: Store, origin: str
) -> None:
    init = bare_store.run("init", "--origin", origin)
    assert init.exit_code == 2, (init.output, init.exception)
    assert (
        "Invalid value for --origin: an origin names the log's signing key: a non-empty name "
        f"without spaces or '+' (given {origin!r})"
    ) in init.stderr
    # Nothing was created: the store still asks for `init`.
    assert "init" in bare_store.run("export").stderr


def test_keygen_into_a_missing_directory_is_refused_cleanly(store: Store) -> None:
    key = store.tmp_path / "no-such-dir" / "signing.key"
    assert_refused(store.run("--key-file", str(key), "keygen"), str(key))


def test_verify_refuses_a_checkpoint_file_that_is_not_utf8(shared_log: Log, tmp_path: Path) -> None:
    export, _, _ = write_export_and_checkpoint(shared_log, tmp_path)
    bad = tmp_path / "bad.checkpoint"
    bad.write_bytes(b"example.org/log\n1\n\xff\xfe\n\n")
    assert_refused(
        offline(
            "verify", "--export", str(export), "--checkpoint", str(bad), "--vkey", shared_log.vkey
        )
    )
    assert_refused(shared_log.run("verify", "--vkey", shared_log.vkey, "--trusted", str(bad)))


def test_prove_inclusion_with_a_superscript_digit_is_refused_cleanly(shared_log: Log) -> None:
    assert_refused(shared_log.run("prove", "inclusion", "\u00b2"), "\u00b2")


# --- help -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["keygen"],
        ["checkpoint"],
        ["prove"],
        ["prove", "inclusion"],
        ["prove", "consistency"],
        ["verify"],
    ],
)
def test_help_texts_show_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_export_known_at_gives_the_log_as_held_then_and_verifies_against_its_checkpoint(
    log: Log, tmp_path: Path
) -> None:
    # An auditor holding a checkpoint signed at T asks for the log as it was at T: the
    # first N leaves, which that checkpoint covers, though the log has grown since.
    log.append_seed()
    then = log.ok("checkpoint").stdout
    between = datetime.now(UTC).isoformat()
    log.append([subject_event(f"later_{i}") for i in range(5)])
    whole = log.ok("export", "--nl").stdout_bytes.splitlines()
    held = log.ok("export", "--nl", "--known-at", between).stdout_bytes.splitlines()
    assert held == whole[:19]
    export, checkpoint = tmp_path / "then.jsonl", tmp_path / "then.checkpoint"
    export.write_bytes(b"".join(line + b"\n" for line in held))
    checkpoint.write_text(then, encoding="utf-8")
    assert "OK size 19 " in verify_offline(export, checkpoint, log.vkey).stdout
    # Record times bound it exactly: the first batch's own time holds the batch.
    first = json.loads(whole[0])["recorded_at"]
    assert len(log.ok("export", "--nl", "--known-at", first).stdout_bytes.splitlines()) == 19
    assert log.ok("export", "--nl", "--known-at", "2000-01-01").stdout == ""
    assert len(log.ok("export", "--json", "--known-at", between).stdout.split('"sequence"')) == 20


def test_offline_verification_without_its_key_or_checkpoint_is_a_usage_error(
    tmp_path: Path,
) -> None:
    export = tmp_path / "ledger.jsonl"
    export.write_text("")
    vkey = notes.generate_signer("example.org/log").verifier_key()
    for args, missing in (([], "--vkey"), (["--vkey", vkey], "--checkpoint")):
        result = offline("verify", "--export", str(export), *args)
        assert result.exit_code == 2, result.output
        assert f"offline verification (--export) needs {missing}" in result.stderr


def test_keygen_where_the_file_system_has_no_hard_links(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FAT or exFAT (a key on a USB stick), some network shares: link() is refused.
    import errno
    import os

    def no_links(*_: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    key = store.tmp_path / "usb" / "ledger.key"
    key.parent.mkdir()
    result = store.run("--key-file", str(key), "keygen")
    assert result.exit_code == 0, result.output
    assert notes.parse_signer_key(key.read_text(encoding="ascii").strip())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p.name for p in key.parent.iterdir()] == ["ledger.key"]  # no partial file left


def test_verify_reads_one_state_while_an_append_commits(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append committed while verify runs (here: after it hashed the leaves,
    before it checks the index and the node table against them) is no damage: verify
    checks the store as it was when it began."""
    store.ok("append", str(SEED))
    more = tmp_path / "more.jsonl"
    more.write_text(
        json.dumps({"type": "followers_observed", "account": "twitter:khamenei_ir",
                    "count": 1000001, "occurred_at": "2024-03-01", "source": "s"}) + "\n"
    )  # fmt: skip
    checked = Storage.index_mismatch
    appended: list[Any] = []

    def append_first(self: Storage, db: Any, size: int) -> Any:
        if not appended:
            appended.append(cli_process("--store", store.url, "append", str(more)))
        return checked(self, db, size)

    monkeypatch.setattr(Storage, "index_mismatch", append_first)
    result = store.ok("verify", "--read-models")
    assert appended[0].returncode == 0, appended[0].stderr
    assert result.stdout.startswith(f"OK size {SEED_EVENTS} ")
    assert f"read models match the log ({SEED_EVENTS} event(s))" in result.stdout
    monkeypatch.undo()
    assert store.ok("verify").stdout.startswith(f"OK size {SEED_EVENTS + 1} ")


def test_verify_with_another_logs_key_and_no_checkpoint_says_so(tmp_path: Path) -> None:
    """With no checkpoint to fail on, `verify --vkey` with another log's key said OK
    and only the general unsigned warning: the auditor never learnt the key was wrong."""
    ours = Store(str(tmp_path / "ours.db"), "sqlite", tmp_path)
    theirs = Store(str(tmp_path / "theirs.db"), "sqlite", tmp_path)
    ours.ok("init")
    theirs.ok("init")
    other_key = theirs.ok("keygen").stdout.strip()
    ours.ok("append", "-", input=json.dumps({
        "type": "subject_registered", "subject": "s", "name": "S", "kind": "person",
        "occurred_at": "2024-01-01T00:00:00Z", "source": "x",
    }) + "\n")  # fmt: skip
    result = ours.ok("verify", "--vkey", other_key)
    warning = result.stderr.splitlines()[-1]
    assert warning.startswith(
        f"warning: the --vkey given names log {other_key.split('+')[0]!r}, not this log ("
    ), result.stderr
    assert warning.endswith("): none of this log's checkpoints can be checked with it")
    own = ours.ok("keygen").stdout.strip()
    assert "the --vkey given" not in ours.ok("verify", "--vkey", own).stderr


@pytest.mark.parametrize("name", ["漢.db", "straße.db"])
def test_a_log_whose_origin_is_not_ascii_can_be_signed(tmp_path: Path, name: str) -> None:
    """The default origin keeps the store's letters (C2SP key names are UTF-8): keygen
    wrote the key as ASCII and failed (exit 70), so such a ledger could never be signed."""
    store = Store(str(tmp_path / name), "sqlite", tmp_path)
    store.ok("init")
    vkey = store.ok("keygen").stdout.strip()
    assert name.removesuffix(".db") in vkey
    store.ok("append", "-", input=json.dumps({
        "type": "subject_registered", "subject": "s", "name": "S", "kind": "person",
        "occurred_at": "2024-01-01T00:00:00Z", "source": "x",
    }) + "\n")  # fmt: skip
    assert store.ok("keygen", "--show").stdout.strip() == vkey
    assert store.ok("verify", "--vkey", vkey, "--all-signed").stdout.startswith("OK size 1 ")
