"""PostgreSQL only: database roles, immutability, init races, backups and `follow`.

Every test gets a fresh schema ``t_<hex>`` initialised with ``init --roles
--role-prefix r_<hex>``; teardown drops the schema, then each role (``DROP OWNED
BY`` first, since roles own their grants). The CLI is driven as each role through
``postgresql://<role>@127.0.0.1:5432/test?schema=<schema>`` (trust auth).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from ledger.notes import TLOG_PROOF_HEADER
from tests.conftest import PG_URL, Store, drop_schema, require_postgres
from tests.ledger_helpers import CLI, REPO, jsonl, subject

SEED = resources.files("ledger").joinpath("data/seed.jsonl").read_text(encoding="utf-8")
SEED_COUNT = len(SEED.splitlines())
EVENTS_TABLE = "enforcementledger_events"
# Append-only tables, with a column each for an UPDATE that would change nothing.
HISTORY = {
    EVENTS_TABLE: "originator_version",
    "ledger_entries": "type",
    "merkle_nodes": "hash",
    "checkpoints": "note",
    "ledger_meta": "value",
}
WAIT_S = 10.0

_PG = urlparse(PG_URL)
PG_HOST = _PG.hostname or "127.0.0.1"
PG_PORT = _PG.port or 5432
PG_DB = (_PG.path or "/").lstrip("/") or "postgres"
PG_SUPERUSER = _PG.username or "postgres"


def _require_postgres() -> None:
    require_postgres()


def _url(user: str, schema: str, dbname: str = PG_DB) -> str:
    return f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{dbname}?schema={schema}"


def _sql(
    statement: str,
    params: tuple[Any, ...] = (),
    *,
    user: str = PG_SUPERUSER,
    schema: str | None = None,
    dbname: str = PG_DB,
) -> list[tuple[Any, ...]]:
    """Run one statement in autocommit; rows if it returns any."""
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=user, dbname=dbname, autocommit=True
    ) as conn:
        if schema is not None:
            conn.execute(f'SET search_path TO "{schema}"')
        cursor = conn.execute(statement, params or None)
        return list(cursor.fetchall()) if cursor.description else []


def _drop_roles(*roles: str) -> None:
    for role in roles:
        if _sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
            _sql(f'DROP OWNED BY "{role}"')
            _sql(f'DROP ROLE "{role}"')


@dataclass
class RoleLedger:
    """One initialised schema with its writer and reader roles."""

    schema: str
    prefix: str
    tmp_path: Path
    owner: Store
    writer: Store
    reader: Store
    key_file: Path
    vkey: str

    @property
    def writer_role(self) -> str:
        return f"{self.prefix}_writer"

    @property
    def reader_role(self) -> str:
        return f"{self.prefix}_reader"

    def role(self, name: str) -> str:
        return {"owner": PG_SUPERUSER, "writer": self.writer_role, "reader": self.reader_role}[name]

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return _sql(statement, params, schema=self.schema)

    def position(self) -> int:
        """The timeline projection's last applied sequence (-1 before any)."""
        rows = self.sql("SELECT sequence FROM projection_position WHERE name = 'timeline'")
        return int(rows[0][0]) if rows else -1

    def size(self) -> int:
        return int(self.sql("SELECT count(*) FROM ledger_entries")[0][0])


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[RoleLedger]:
    _require_postgres()
    token = uuid.uuid4().hex[:12]
    schema, prefix = f"t_{token}", f"r_{token}"
    owner = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
    try:
        owner.ok("init", "--roles", "--role-prefix", prefix)
        key_file = tmp_path / "ledger.key"
        vkey = owner.ok("--key-file", str(key_file), "keygen").stdout.strip()
        yield RoleLedger(
            schema=schema,
            prefix=prefix,
            tmp_path=tmp_path,
            owner=owner,
            writer=Store(_url(f"{prefix}_writer", schema), "postgres", tmp_path),
            reader=Store(_url(f"{prefix}_reader", schema), "postgres", tmp_path),
            key_file=key_file,
            vkey=vkey,
        )
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _drop_roles(f"{prefix}_writer", f"{prefix}_reader")


@pytest.fixture
def populated(ledger: RoleLedger) -> RoleLedger:
    """The seed story appended by the writer, with a signed checkpoint per batch."""
    result = ledger.writer.ok("--key-file", str(ledger.key_file), "append", "-", input=SEED)
    assert f"Appended {SEED_COUNT} event(s)" in result.stdout
    ledger.writer.ok("--key-file", str(ledger.key_file), "checkpoint")
    assert ledger.size() == SEED_COUNT
    return ledger


def _api_append(url: str, events: list[dict[str, Any]]) -> None:
    """Append through the library, in this process: no projection catch-up."""
    from ledger.application import Ledger
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    app = Ledger(StoreLocation.parse(url))
    try:
        app.append([(n, parse_event(e, n)) for n, e in enumerate(events, 1)], actor="api")
    finally:
        app.close()


def _followers(event_id: str, count: int) -> dict[str, Any]:
    return {
        "type": "followers_observed",
        "event_id": event_id,
        "account": "twitter:khamenei_ir",
        "count": count,
        "occurred_at": "2024-02-10T00:00:00Z",
        "source": "https://example.org/report",
    }


def _status(store: Store) -> dict[str, Any]:
    out = store.ok(
        "status",
        "twitter:khamenei_ir",
        "--json",
        "--as-of",
        "2024-03-01T00:00:00Z",
        "--known-at",
        "2100-01-01T00:00:00Z",
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


# --- init and roles ------------------------------------------------------------------


def test_init_creates_writer_and_reader_roles(ledger: RoleLedger) -> None:
    rows = ledger.sql(
        "SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname IN (%s, %s) "
        "ORDER BY rolname",
        (ledger.writer_role, ledger.reader_role),
    )
    assert rows == [(ledger.reader_role, True, False), (ledger.writer_role, True, False)]


def test_init_roles_twice_is_harmless(populated: RoleLedger) -> None:
    before = populated.sql("SELECT sequence, event_id, leaf_hash FROM ledger_entries")
    result = populated.owner.ok("init", "--roles", "--role-prefix", populated.prefix)
    assert result.stdout.startswith("Ledger already exists at postgresql://")
    assert "nothing changed" not in result.stdout  # the roles were granted again
    assert "Created" not in result.stdout
    assert populated.sql("SELECT sequence, event_id, leaf_hash FROM ledger_entries") == before
    # The roles still work afterwards.
    populated.writer.append(_followers("again-1", 7))
    assert len(populated.reader.timeline()) == SEED_COUNT + 1


def test_init_roles_by_the_writer_is_refused_without_first_saying_nothing_changed(
    populated: RoleLedger,
) -> None:
    refused = populated.writer.fail("init", "--roles", "--role-prefix", f"{populated.prefix}x")
    assert "nothing changed" not in refused.stdout  # it said so, then the refusal
    assert refused.stderr.startswith("Error: "), refused.stderr


@pytest.mark.parametrize("who", ["writer", "reader"])
@pytest.mark.parametrize("own", [True, False])
def test_init_roles_refused_to_a_role_says_only_the_refusal(
    populated: RoleLedger, who: str, own: bool
) -> None:
    # "Ledger already exists at …" came first, then the refusal.
    prefix = populated.prefix if own else f"{populated.prefix}x"
    refused = getattr(populated, who).fail("init", "--role-prefix", prefix)
    assert refused.stdout == ""
    assert refused.stderr.startswith(f"Error: this role ({populated.role(who)}) may not "), (
        refused.stderr
    )


@pytest.mark.parametrize("flag", [("--roles",), ("--role-prefix", "own")])
def test_init_roles_by_an_owner_without_createrole_makes_nothing(
    tmp_path: Path, flag: tuple[str, ...]
) -> None:
    # The ledger was made, then the roles refused with "nothing was changed".
    _require_postgres()
    token = uuid.uuid4().hex[:12]
    schema, owner = f"t_{token}", f"o_{token}"
    args = ("--role-prefix", f"r_{token}") if flag[-1] == "own" else flag
    _sql(f'CREATE ROLE "{owner}" LOGIN NOCREATEROLE')
    try:
        _sql(f'GRANT CREATE ON DATABASE "{PG_DB}" TO "{owner}"')
        store = Store(_url(owner, schema), "postgres", tmp_path)
        refused = store.fail("init", *args)
        roles = f"r_{token}_writer and r_{token}_reader"
        if flag == ("--roles",):
            roles = f"ledger_{schema}_writer and ledger_{schema}_reader"
        assert refused.stdout == ""
        assert refused.stderr == (
            f"Error: this role ({owner}) may not create the ledger's roles {roles} (it has "
            "neither CREATEROLE nor SUPERUSER); nothing was changed; run `init --roles` as "
            "the ledger's owner (a role with CREATEROLE)\n"
        )
        assert _sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)) == []
        assert "Created ledger" in store.ok("init").stdout  # without roles, it may
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _drop_roles(owner)


@pytest.mark.parametrize("who", ["writer", "reader"])
def test_init_or_copy_by_a_role_on_an_existing_ledger_says_what_the_owner_hears(
    populated: RoleLedger, who: str, tmp_path: Path
) -> None:
    """CREATE SCHEMA IF NOT EXISTS ran first and needs CREATE on the database: the
    roles got "permission denied for database" instead of "already exists"."""
    store: Store = getattr(populated, who)
    assert "Ledger already exists" in store.ok("init").stdout
    source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
    source.ok("init")
    owner = populated.owner.fail("copy", source.url).stderr
    assert owner.startswith("Error: the source log's origin is "), owner
    assert store.fail("copy", source.url).stderr == owner


def test_role_privileges_are_least_privilege(ledger: RoleLedger) -> None:
    def has(role: str, table: str, privilege: str) -> bool:
        row = ledger.sql(
            "SELECT has_table_privilege(%s, %s, %s)",
            (role, f'"{ledger.schema}".{table}', privilege),
        )
        return bool(row[0][0])

    for table in HISTORY:
        assert has(ledger.reader_role, table, "SELECT")
        assert has(ledger.writer_role, table, "SELECT")
        for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            assert not has(ledger.reader_role, table, privilege), (table, privilege)
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            assert not has(ledger.writer_role, table, privilege), (table, privilege)
    for table in (EVENTS_TABLE, "ledger_entries", "merkle_nodes", "checkpoints"):
        assert has(ledger.writer_role, table, "INSERT"), table


# --- the reader ----------------------------------------------------------------------


# An append first draws its notification ids from the events table's sequence.
DENIED_APPEND = f"permission denied for sequence {EVENTS_TABLE}_notification_id_seq"


def test_reader_cannot_append_or_record(populated: RoleLedger) -> None:
    before = populated.size()
    line = json.dumps(_followers("reader-1", 5)) + "\n"
    result = populated.reader.fail("append", "-", input=line)
    assert DENIED_APPEND in result.stderr, result.stderr
    assert "Traceback" not in result.output
    result = populated.reader.fail(
        "record",
        "followers-observed",
        "--account",
        "twitter:khamenei_ir",
        "--count",
        "5",
        "--occurred-at",
        "2024-02-10T00:00:00Z",
        "--source",
        "https://example.org/report",
    )
    assert DENIED_APPEND in result.stderr, result.stderr
    assert "this role may not write to the ledger (a reader?): nothing was written" in (
        result.stderr
    )
    assert populated.size() == before


def test_a_role_without_access_to_the_schema_is_told_so_not_to_restore_a_backup(
    populated: RoleLedger,
) -> None:
    """It was told the ledger's tables were dropped and to restore from a backup."""
    stranger = f"{populated.prefix}_stranger"
    _sql(f'CREATE ROLE "{stranger}" LOGIN')
    try:
        outsider = Store(_url(stranger, populated.schema), "postgres", populated.tmp_path)
        source = Store(str(populated.tmp_path / "source.db"), "sqlite", populated.tmp_path)
        source.ok("init")
        for command in (
            ["timeline"],
            ["verify"],
            ["append", "-"],
            # These looked in the catalogs first, which show the ledger to every role.
            ["init"],
            ["init", "--origin", "example.org/log"],
            ["init", "--roles", "--role-prefix", f"{populated.prefix}_s"],
            ["copy", source.url],
        ):
            refused = outsider.fail(*command, input="").stderr
            assert (
                f"the ledger in schema '{populated.schema}' is there, but this role "
                f"({stranger}) has no access to the schema (USAGE)"
            ) in refused, refused
            assert "restore" not in refused
    finally:
        _drop_roles(stranger)


def test_reader_cannot_checkpoint_even_with_the_key(populated: RoleLedger) -> None:
    before = populated.sql("SELECT count(*) FROM checkpoints")
    # At a size already signed it only prints that checkpoint again: nothing to write.
    again = populated.reader.ok("--key-file", str(populated.key_file), "checkpoint").stdout
    assert again == populated.sql("SELECT note FROM checkpoints")[0][0]
    assert populated.sql("SELECT count(*) FROM checkpoints") == before
    populated.writer.append(_followers("unsigned-1", 7))  # no key: unsigned
    result = populated.reader.run("--key-file", str(populated.key_file), "checkpoint")
    assert result.exit_code == 1, (result.output, result.exception)
    # It got as far as the INSERT: the key was readable, the table was not writable.
    assert "permission denied for table checkpoints" in result.stderr, result.stderr
    assert populated.sql("SELECT count(*) FROM checkpoints") == before


def test_a_copy_from_postgresql_into_a_store_that_refuses_it_ends_with_the_refusal(
    ledger: RoleLedger,
) -> None:
    """The reader's first write fails with the source's COPY still streaming (more rows
    than a socket holds): the snapshot's ROLLBACK behind it waited for ever."""
    origin = ledger.sql("SELECT value FROM ledger_meta WHERE key = 'origin'")[0][0]
    schema = f"{ledger.schema}_source"
    source = Store(_url(PG_SUPERUSER, schema), "postgres", ledger.tmp_path)
    try:
        source.ok("init", "--origin", origin)
        events = [subject(f"s_{n}", note="x" * 200) for n in range(4000)]
        source.ok("append", "-", input=jsonl(*events))
        try:
            copied = subprocess.run(
                [*CLI, "--store", ledger.reader.url, "copy", source.url],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("copy hung after the destination refused the write")
        assert copied.returncode == 1, (copied.returncode, copied.stderr)
        assert "this role may not write to the ledger (a reader?)" in copied.stderr
        assert ledger.size() == 0
    finally:
        drop_schema(schema)


# --- the writer ----------------------------------------------------------------------


def test_writer_can_append_and_checkpoint(ledger: RoleLedger) -> None:
    key = ("--key-file", str(ledger.key_file))
    result = ledger.writer.ok(*key, "append", "--json", "-", input=SEED)
    assert json.loads(result.stdout)["appended"] == SEED_COUNT
    ledger.writer.ok(
        *key,
        "record",
        "followers-observed",
        "--account",
        "twitter:khamenei_ir",
        "--count",
        "11",
        "--occurred-at",
        "2024-02-10T00:00:00Z",
        "--source",
        "https://example.org/report",
    )
    note = ledger.writer.ok(*key, "checkpoint").stdout
    assert f"\n{SEED_COUNT + 1}\n" in note, note
    # One checkpoint per signed batch; the explicit one signs the last batch's size
    # again, the same bytes, which are not stored twice.
    assert ledger.sql("SELECT count(*) FROM checkpoints")[0][0] == 2
    assert ledger.sql("SELECT note FROM checkpoints ORDER BY size DESC")[0][0] == note
    verified = ledger.writer.ok("verify", "--vkey", ledger.vkey).stdout
    assert verified.startswith(f"OK size {SEED_COUNT + 1} "), verified
    assert "(2 checkpoint(s)" in verified


@pytest.mark.parametrize("who", ["reader", "writer", "owner"])
def test_nobody_can_change_or_delete_history(populated: RoleLedger, who: str) -> None:
    import psycopg

    role = populated.role(who)
    counts = {t: populated.sql(f"SELECT count(*) FROM {t}")[0][0] for t in HISTORY}
    assert all(counts.values()), counts  # row triggers only fire on existing rows
    expected = "append-only" if who == "owner" else "permission denied"
    unexpected: list[str] = []
    for table, column in HISTORY.items():
        for statement in (
            f"UPDATE {table} SET {column} = {column}",
            f"DELETE FROM {table}",
            f"TRUNCATE {table}",
        ):
            try:
                _sql(statement, user=role, schema=populated.schema)
            except psycopg.errors.InsufficientPrivilege as error:
                if expected not in str(error):
                    unexpected.append(f"{statement}: {error}")
            except Exception as error:
                unexpected.append(f"{statement}: {type(error).__name__}: {error}")
            else:
                unexpected.append(f"{statement}: succeeded")
    assert not unexpected, "\n".join(unexpected)
    assert {t: populated.sql(f"SELECT count(*) FROM {t}")[0][0] for t in HISTORY} == counts
    assert populated.owner.ok("verify", "--vkey", populated.vkey).stdout.startswith(
        f"OK size {SEED_COUNT} "
    )


# --- both roles read -----------------------------------------------------------------


@pytest.mark.parametrize("who", ["reader", "writer"])
def test_both_roles_can_read_and_verify(populated: RoleLedger, who: str) -> None:
    store: Store = getattr(populated, who)
    assert _status(store) == _status(populated.owner)
    assert _status(store)["status"] == "active"
    timeline = store.timeline()
    assert len(timeline) == SEED_COUNT
    assert [row["sequence"] for row in store.timeline("--account", "twitter:khamenei_ir")]
    accounts = json.loads(store.ok("accounts", "--json").stdout)
    assert {row["account"] for row in accounts} >= {
        "twitter:khamenei_ir",
        "twitter:realDonaldTrump",
    }
    table = store.ok("timeline").stdout
    assert "khamenei" in table
    verified = store.ok("verify", "--vkey", populated.vkey).stdout
    assert verified.startswith(f"OK size {SEED_COUNT} "), verified
    assert "(1 checkpoint(s)" in verified  # the batch's; `checkpoint` at its size stored none
    proof = store.ok("prove", "inclusion", "seed-x-trump-reinstated").stdout
    assert proof.startswith(f"{TLOG_PROOF_HEADER}\nindex {SEED_COUNT - 1}\n"), proof
    assert store.ok("prove", "consistency", "5").stdout.strip()


def test_reader_cannot_replay_the_read_models(populated: RoleLedger) -> None:
    result = populated.reader.fail("replay")
    assert "permission denied" in result.stderr, result.stderr
    assert result.stderr.endswith(
        "; this role may not rebuild the read models (a reader?): nothing was written; run "
        "it as the ledger's writer role or its owner\n"
    )
    assert populated.position() == SEED_COUNT - 1
    assert len(populated.reader.timeline()) == SEED_COUNT


def test_reader_cannot_follow(populated: RoleLedger) -> None:
    """A reader's follow said "Caught up: 0 event(s) applied" and waited, though it
    could never apply one; it failed only once there was something to apply."""
    for args in (("follow", "--once"), ("follow",)):
        result = populated.reader.fail(*args)
        assert "permission denied" in result.stderr, result.stderr
        assert result.stderr.endswith(
            "; this role may not update the read models, which follow keeps current (a "
            "reader?): nothing was written; run it as the ledger's writer role or its owner\n"
        ), result.stderr
        assert "Caught up" not in result.stderr
    assert populated.writer.ok("follow", "--once").stderr == "Caught up: 0 event(s) applied\n"


def test_a_missing_trigger_is_made_by_the_owner_and_the_writer_is_told_so(
    populated: RoleLedger,
) -> None:
    populated.sql(f'DROP TRIGGER merkle_nodes_append_only ON "{populated.schema}".merkle_nodes')
    refused = populated.writer.fail("init").stderr  # it was a bare "permission denied"
    assert (
        "lacks its append-only triggers merkle_nodes_append_only, and only the store's "
        "owner may make them; nothing was changed; run `enforcement-ledger init` as the "
        "owner" in refused
    )
    made = populated.owner.ok("init").stdout
    assert "made again its missing append-only trigger merkle_nodes_append_only" in made
    # One the owner replaced by a trigger that refuses nothing.
    populated.sql(
        f"CREATE OR REPLACE TRIGGER ledger_entries_no_truncate BEFORE INSERT ON "
        f'"{populated.schema}".ledger_entries FOR EACH ROW EXECUTE FUNCTION '
        f'"{populated.schema}".ledger_refuse_change()'
    )
    refused = populated.writer.fail("init").stderr
    assert "holds changed its append-only triggers ledger_entries_no_truncate, and only" in (
        refused
    )
    made = populated.owner.ok("init").stdout
    assert "; restored its changed append-only trigger ledger_entries_no_truncate (" in made
    assert populated.owner.ok("verify", "--vkey", populated.vkey).stderr == ""


@pytest.mark.parametrize("table", ["retractions", "timeline"])
def test_a_read_model_table_init_makes_again_keeps_the_roles_grants(
    populated: RoleLedger, table: str
) -> None:
    # Made again by the owner, it had no grants: every read of the reader role and a
    # writer's retraction failed with "permission denied".
    populated.sql(f'DROP TABLE "{populated.schema}".{table}')
    assert f"missing {table}" in populated.owner.ok("init").stdout
    assert len(populated.writer.timeline()) == SEED_COUNT  # projects them anew
    assert len(populated.reader.timeline()) == SEED_COUNT
    populated.writer.ok(
        "record", "event-retracted", "--target", "seed-x-un-rule", "--reason", "r",
        "--occurred-at", "2024-03-02", "--source", "s",
    )  # fmt: skip
    assert len(populated.reader.timeline()) == SEED_COUNT + 1
    populated.reader.fail("replay")  # and no more than before: the reader still reads only


def test_writer_can_replay_the_read_models(populated: RoleLedger) -> None:
    result = populated.writer.ok("replay")
    assert f"Rebuilt projections from {SEED_COUNT} event(s)" in result.stdout
    assert result.stderr == ""
    assert len(populated.reader.timeline()) == SEED_COUNT
    # An index an owner's replay cut off left missing: the writer's replay cannot
    # make it, and says so (it reported a full rebuild, and every hint sent it back).
    populated.sql(f'DROP INDEX "{populated.schema}".timeline_followers')
    result = populated.writer.ok("replay")
    assert result.stderr == (
        "warning: the read models still lack timeline_followers, which only the store's "
        "owner may make (`enforcement-ledger init` or `replay` as the owner); answers are "
        "right meanwhile, but read by scanning whole tables\n"
    )
    assert populated.owner.ok("replay").stderr == ""


# --- missing schema ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status", "twitter:khamenei_ir"),
        ("timeline",),
        ("append", "-"),
        (
            "record",
            "platform-renamed",
            "--platform",
            "x",
            "--name",
            "X",
            "--occurred-at",
            "2024-01-01",
            "--source",
            "s",
        ),
    ],
    ids=["status", "timeline", "append", "record"],
)
def test_missing_schema_says_run_init(tmp_path: Path, args: tuple[str, ...]) -> None:
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
    try:
        line = json.dumps(_followers("x-1", 1)) + "\n"
        result = store.run(*args, input=line if "append" in args else None)
        assert result.exit_code == 1, (result.output, result.exception)
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.stderr.startswith("Error: "), result.stderr
        assert "run `enforcement-ledger init`" in result.stderr, result.stderr
        assert schema in result.stderr
        # Commands other than init never create anything.
        assert not _sql(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        )
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        (None, "longer than PostgreSQL's 63 bytes, and it would cut both to one name"),
        ("r" * 57, "give a --role-prefix of at most 56 characters"),
        ('r_x"y', "lowercase letters, digits and underscores"),
        ('r_x" SUPERUSER --', "lowercase letters, digits and underscores"),
        ("9lives", "not starting with a digit"),
        ("pg_probe", "role names starting pg_ are PostgreSQL's own"),
        # Kept as given, the roles were named only in quotes ("GRANT r_Up_writer" failed).
        ("r_Up", "as PostgreSQL reads a role named without quotes (given 'r_Up')"),
    ],
    ids=["default-from-a-long-schema", "long", "quote", "injection", "digit", "reserved", "case"],
)
def test_role_names_postgresql_would_cut_or_misread_are_refused_first(
    tmp_path: Path, prefix: str | None, problem: str
) -> None:
    # Cut to 63 bytes, the writer and reader roles were one role: the "reader" wrote.
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex}_{'s' * 22}"  # 57 bytes: a valid schema name
    store = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
    before = _sql("SELECT rolname FROM pg_roles")
    try:
        args = ["init", "--roles", *(["--role-prefix", prefix] if prefix else [])]
        result = store.run(*args)
        assert result.exit_code == 2, (result.output, result.exception)
        # The default prefix was not given: named as --roles' (it said --role-prefix).
        option = "--roles" if prefix is None else "--role-prefix"
        assert f"Invalid value for {option}: " in result.stderr
        assert problem in result.stderr
        # Refused before anything was made: no schema, no role.
        assert not _sql(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        )
        assert _sql("SELECT rolname FROM pg_roles") == before
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- concurrent init -----------------------------------------------------------------


def _run_at_once(commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    processes = [
        subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "ENFORCEMENT_LEDGER_DEBUG": "1"},
        )
        for command in commands
    ]
    done = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


@pytest.mark.parametrize("with_roles", [False, True], ids=["init", "init-roles"])
def test_concurrent_inits_on_a_new_schema_all_succeed(tmp_path: Path, with_roles: bool) -> None:
    _require_postgres()
    token = uuid.uuid4().hex[:12]
    schema, prefix = f"t_{token}", f"r_{token}"
    url = _url(PG_SUPERUSER, schema)
    extra = ["--roles", "--role-prefix", prefix] if with_roles else []
    try:
        results = _run_at_once([[*CLI, "--store", url, "init", *extra] for _ in range(6)])
        for result in results:
            assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
        created = [r for r in results if "Created ledger" in r.stdout]
        existing = [r for r in results if "already exists" in r.stdout]
        assert len(created) == 1, [r.stdout for r in results]
        assert len(existing) == 5, [r.stdout for r in results]
        # Made with the log in one transaction, the read models were never missing to
        # another init (one said "made again its missing timeline, …" now and then).
        assert not [r.stdout for r in results if "made again" in r.stdout]
        if with_roles:
            assert all("Roles ready" in r.stdout for r in results)
        # The store works: an append and a read.
        store = Store(url, "postgres", tmp_path)
        store.ok("append", "-", input=SEED)
        assert store.count() == SEED_COUNT
        assert store.ok("verify").stdout.startswith(f"OK size {SEED_COUNT} ")
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _drop_roles(f"{prefix}_writer", f"{prefix}_reader")


# --- backup and restore --------------------------------------------------------------


def test_pg_dump_restore_into_a_fresh_database_verifies(populated: RoleLedger) -> None:
    tools = {name: shutil.which(name) for name in ("pg_dump", "createdb", "dropdb", "psql")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        pytest.skip(
            f"PostgreSQL client tools not installed ({', '.join(missing)}); "
            "install postgresql-client to run the backup/restore test"
        )
    connection = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_SUPERUSER]
    dump = populated.tmp_path / "ledger.sql"
    subprocess.run(
        [str(tools["pg_dump"]), *connection, "-d", PG_DB, "-n", populated.schema, "-f", str(dump)],
        check=True,
        capture_output=True,
    )
    dbname = f"restore_{uuid.uuid4().hex[:12]}"
    subprocess.run([str(tools["createdb"]), *connection, dbname], check=True, capture_output=True)
    try:
        restored = subprocess.run(
            [
                str(tools["psql"]),
                *connection,
                "-d",
                dbname,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-f",
                str(dump),
            ],
            capture_output=True,
            text=True,
        )
        assert restored.returncode == 0, restored.stderr
        store = Store(_url(PG_SUPERUSER, populated.schema, dbname), "postgres", populated.tmp_path)
        original = populated.owner.ok("verify", "--vkey", populated.vkey).stdout
        copy = store.ok("verify", "--vkey", populated.vkey).stdout
        assert copy == original
        assert copy.startswith(f"OK size {SEED_COUNT} ")
        assert _status(store) == _status(populated.owner)
        assert store.ok("export", "--nl").stdout == populated.owner.ok("export", "--nl").stdout
        # The restored copy is still append-only: its triggers came along.
        import psycopg

        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            _sql("DELETE FROM ledger_entries", schema=populated.schema, dbname=dbname)
    finally:
        subprocess.run(
            [str(tools["dropdb"]), *connection, "--if-exists", "--force", dbname],
            check=False,
            capture_output=True,
        )


# --- follow --------------------------------------------------------------------------


def test_follow_once_catches_up_and_exits(ledger: RoleLedger) -> None:
    seed = [json.loads(line) for line in SEED.splitlines()]
    _api_append(_url(PG_SUPERUSER, ledger.schema), seed)
    assert ledger.position() == -1
    # The reader may not update read models, so it cannot answer while they lag.
    result = ledger.reader.fail("status", "twitter:khamenei_ir")
    assert "enforcement-ledger follow" in result.stderr, result.stderr
    result = ledger.writer.ok("follow", "--once")
    assert f"Caught up: {SEED_COUNT} event(s) applied" in result.stderr, result.stderr
    assert ledger.position() == SEED_COUNT - 1
    assert _status(ledger.reader)["status"] == "active"
    result = ledger.writer.ok("follow", "--once")
    assert "Caught up: 0 event(s) applied" in result.stderr, result.stderr


def _wait_for(predicate: Any, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def _follow(
    ledger: RoleLedger, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`follow` as the writer, in the background, its stderr into ``log``."""
    with log.open("w") as stderr:
        return subprocess.Popen(
            [*CLI, "--store", _url(ledger.writer_role, ledger.schema), "follow"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )


def test_background_follow_keeps_projections_current(ledger: RoleLedger) -> None:
    seed = [json.loads(line) for line in SEED.splitlines()]
    _api_append(_url(PG_SUPERUSER, ledger.schema), seed[:5])
    log = ledger.tmp_path / "follow.log"
    follower = _follow(ledger, log)
    try:
        assert _wait_for(lambda: "Caught up: 5 event(s)" in log.read_text()), log.read_text()
        assert ledger.position() == 4
        # "Caught up" is printed before the subscription starts; eventsourcing 9.5.6's
        # subscription pulls once before its LISTEN is in place, so a commit in that
        # instant would only be seen at the next notification. Let it settle.
        time.sleep(1.0)
        # Another process appends through the library: it never touches the projections.
        _api_append(_url(PG_SUPERUSER, ledger.schema), seed[5:])
        assert _wait_for(lambda: ledger.position() == SEED_COUNT - 1), (
            ledger.position(),
            log.read_text(),
        )
        _api_append(_url(ledger.writer_role, ledger.schema), [_followers("late-1", 3)])
        assert _wait_for(lambda: ledger.position() == SEED_COUNT), (
            ledger.position(),
            log.read_text(),
        )
        assert follower.poll() is None, log.read_text()
        # The reader answers without writing anything: nothing is behind.
        assert len(ledger.reader.timeline()) == SEED_COUNT + 1
    finally:
        follower.kill()
        follower.wait(timeout=10)


def test_follow_survives_its_connections_being_ended(ledger: RoleLedger) -> None:
    """A server restart or an admin's pg_terminate_backend ended `follow` with exit 70
    ("internal failure"); a daemon says so and follows again."""
    import os
    import signal

    seed = [json.loads(line) for line in SEED.splitlines()]
    _api_append(_url(PG_SUPERUSER, ledger.schema), seed[:5])
    log = ledger.tmp_path / "follow.log"
    name = f"follow-{ledger.schema}"
    follower = _follow(ledger, log, env={**os.environ, "PGAPPNAME": name})
    try:
        assert _wait_for(lambda: "Caught up: 5 event(s)" in log.read_text()), log.read_text()
        time.sleep(1.0)  # its subscription in place
        for ended in (1, 2):  # the second time, the pool's idle connections die too
            _sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            )
            assert _wait_for(lambda: "following again in" in log.read_text()), log.read_text()
            assert follower.poll() is None, log.read_text()
            # Following again: what another process appends is projected.
            _api_append(_url(PG_SUPERUSER, ledger.schema), seed[4 + ended : 5 + ended])
            assert _wait_for(lambda n=4 + ended: ledger.position() == n), log.read_text()
            # Said once each time: the pool's dead idle connections made it say so thrice.
            assert log.read_text().count("lost the connection") == ended, log.read_text()
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=20) == 0
        assert log.read_text().endswith("Stopped\n")
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(timeout=10)


def test_init_refuses_a_schema_that_holds_tables_but_no_ledger(tmp_path: Path) -> None:
    # SQLite refuses a database that is not a ledger; a schema of someone's tables
    # got the ledger's tables added beside them (and demo its seed story).
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _sql(f'CREATE SCHEMA "{schema}"')
    _sql(f'CREATE TABLE "{schema}".invoices (id int)')
    _sql(f'CREATE VIEW "{schema}".timeline AS SELECT 1 AS x')  # named like a read model
    try:
        store = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
        for command in (("init",), ("demo",)):
            result = store.run(*command)
            assert result.exit_code == 1, result.output
            assert (
                f"schema '{schema}' holds tables, views, types or functions but no ledger; refusing"
                in (result.stderr)
            )
        # The other commands do not send it to `init`, which refuses it.
        refused = store.fail("status", "twitter:x").stderr
        assert refused == (
            f"Error: schema '{schema}' holds tables, views, types or functions but no ledger; "
            "choose another schema (`init` adds no ledger to it)\n"
        ), refused
        # Nor `copy` from it to read another kind of store.
        target = Store(str(tmp_path / "target.db"), "sqlite", tmp_path)
        refused = target.fail("copy", store.url).stderr
        assert refused == (
            f"Error: SOURCE: schema '{schema}' holds tables, views, types or functions but no "
            "ledger\n"
        ), refused
        relations = _sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s ORDER BY 1",
            (schema,),
        )
        assert relations == [("invoices",), ("timeline",)]
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize(
    "made",
    [
        # A composite type is a pg_class row: taken for the ledger's table, then init
        # failed inside ("WrongObjectType: ... is a composite type", exit 70).
        "CREATE TYPE {schema}.ledger_meta AS (a int)",
        "CREATE TYPE {schema}.ledger_entries AS ENUM ('a')",
        "CREATE DOMAIN {schema}.timeline AS int",
        # init replaced it with its own, and said nothing.
        "CREATE FUNCTION {schema}.ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql "
        "AS 'BEGIN RETURN NEW; END'",
    ],
)
def test_init_refuses_a_schema_holding_someones_types_or_functions(
    tmp_path: Path, made: str
) -> None:
    # Only pg_class was asked: tables went in beside them.
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _sql(f'CREATE SCHEMA "{schema}"')
    _sql(made.format(schema=f'"{schema}"'))
    try:
        store = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
        refused = store.fail("init").stderr
        assert refused.startswith(
            f"Error: schema '{schema}' holds tables, views, types or functions but no ledger; "
            "refusing"
        ), refused
        assert _sql("SELECT 1 FROM pg_tables WHERE schemaname = %s", (schema,)) == []
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_copy_source_that_cannot_be_reached_is_not_called_a_missing_ledger(
    tmp_path: Path,
) -> None:
    _require_postgres()
    target = Store(str(tmp_path / "target.db"), "sqlite", tmp_path)
    refused = target.fail("copy", "postgresql://postgres@127.0.0.1:1/test?schema=x").stderr
    assert refused.startswith("Error: SOURCE: cannot connect to postgresql://"), refused
    assert "copy reads an existing ledger" not in refused


def test_the_librarys_connections_read_the_password_from_the_environment_as_ours_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library's pool (follow's subscription) passed password='', which libpq takes
    # as given: with password authentication, follow never subscribed, and said nothing.
    _require_postgres()
    from ledger.application import Ledger
    from ledger.location import StoreLocation

    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
    try:
        store.ok("init")
        monkeypatch.setenv("PGPASSWORD", "from-the-environment")  # trust auth ignores it
        app = Ledger(StoreLocation.parse(store.url))
        try:
            with app.storage.connect() as db:
                assert db.raw.info.password == "from-the-environment"
            with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
                assert conn.info.password == "from-the-environment"
        finally:
            app.close()
        # A password in the URL is the library's too.
        app = Ledger(StoreLocation.parse(store.url.replace("@", ":in-the-url@", 1)))
        try:
            with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
                assert conn.info.password == "in-the-url"
        finally:
            app.close()
    finally:
        drop_schema(schema)


def test_init_roles_meeting_another_init_creating_the_same_roles_succeeds(
    tmp_path: Path,
) -> None:
    # Roles are the cluster's, and init's lock is its schema's: a role another init
    # (of another schema) created meanwhile failed CREATE ROLE, an internal failure.
    _require_postgres()
    import psycopg

    token = uuid.uuid4().hex[:12]
    schema, prefix = f"t_{token}", f"r_{token}"
    url = _url(PG_SUPERUSER, schema)
    Store(url, "postgres", tmp_path).ok("init")
    try:
        with psycopg.connect(PG_URL) as other:  # the other init, not committed yet
            other.execute(f'CREATE ROLE "{prefix}_writer" LOGIN')
            init = subprocess.Popen(
                [*CLI, "--store", url, "init", "--roles", "--role-prefix", prefix],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert _wait_for(
                lambda: _sql(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query = %s",
                    (f'CREATE ROLE "{prefix}_writer" LOGIN',),
                )
            )
            other.commit()
        out, err = init.communicate(timeout=60)
        assert init.returncode == 0, (out, err)
        assert f"Roles ready: {prefix}_writer" in out
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _drop_roles(f"{prefix}_writer", f"{prefix}_reader")


def test_a_copy_into_a_new_schema_by_the_writer_says_it_may_not_create_one(
    populated: RoleLedger, tmp_path: Path
) -> None:
    # It was told it "may not write to the ledger (a reader?)": it is the writer.
    source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
    source.ok("init")
    schema = f"{populated.schema}_new"
    try:
        writer = Store(_url(populated.writer_role, schema), "postgres", tmp_path)
        refused = writer.fail("copy", source.url).stderr
        assert refused.startswith(
            "Error: permission denied: permission denied for database "
            f"{PG_DB}; this role may not create a schema in that database (it lacks CREATE "
            "on it): nothing was written."
        ), refused
        assert "a reader?" not in refused
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_init_roles_by_the_writer_that_grants_nothing_is_refused(populated: RoleLedger) -> None:
    # PostgreSQL only warns when a role grants what it may not give: "Roles ready", exit
    # 0, and the reader still could not read the checkpoints the owner had revoked.
    populated.sql(f'REVOKE SELECT ON checkpoints FROM "{populated.reader_role}"')
    refused = populated.writer.fail("init", "--roles", "--role-prefix", populated.prefix)
    assert "Roles ready" not in refused.stdout
    assert refused.stderr.startswith(
        f"Error: this role ({populated.writer_role}) may not grant the ledger's privileges to "
        f"{populated.writer_role} and {populated.reader_role} (PostgreSQL: no privileges were "
        "granted for "
    ), refused.stderr
    assert refused.stderr.endswith(
        "; nothing was changed; run `init --roles` as the ledger's owner (a role with CREATEROLE)\n"
    ), refused.stderr
    populated.owner.ok("init", "--roles", "--role-prefix", populated.prefix)
    assert populated.sql(
        "SELECT has_table_privilege(%s, 'checkpoints', 'SELECT')", (populated.reader_role,)
    ) == [(True,)]


def test_a_reader_facing_read_models_behind_the_log_is_sent_to_the_writer(
    populated: RoleLedger,
) -> None:
    # As a killed replay leaves them: the reader was told "any read command brings them
    # up to date", and each of its read commands then failed; its follow failed with a
    # bare "permission denied for table …".
    populated.sql("TRUNCATE timeline, retractions, projection_position")
    checked = populated.reader.ok("verify", "--read-models", "--vkey", populated.vkey)
    assert (
        f"warning: sequence 0..{SEED_COUNT - 1}: not projected yet, so not in the read models "
        "checked (`follow --once` or any append, run as the ledger's writer, brings them up "
        "to date (this role may not))"
    ) in checked.stderr, checked.stderr
    refused = populated.reader.fail("follow", "--once").stderr
    assert refused.startswith("Error: permission denied: permission denied for table "), refused
    assert refused.endswith(
        "; this role may not update the read models, which follow keeps current (a reader?): "
        "nothing was written; run it as the ledger's writer role or its owner\n"
    ), refused
    # The writer's answer is as before.
    checked = populated.writer.ok("verify", "--read-models", "--vkey", populated.vkey)
    assert "(any read command brings them up to date)" in checked.stderr, checked.stderr


def test_every_connection_init_makes_reads_the_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library's recorder, built at init for its CREATE statements, connected with
    # password='': with password authentication, init failed ("couldn't get a
    # connection"), as did demo and copy into a new schema.
    _require_postgres()
    import psycopg

    passwords: list[str | None] = []
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def recorded(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        passwords.append(conn.info.password)
        return conn

    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
    monkeypatch.setenv("PGPASSWORD", "from-the-environment")  # trust auth ignores it
    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(recorded))  # the library's
    monkeypatch.setattr(psycopg, "connect", psycopg.Connection.connect)  # the ledger's
    try:
        store.ok("init")
    finally:
        monkeypatch.undo()
        drop_schema(schema)
    assert len(passwords) > 1, passwords
    assert set(passwords) == {"from-the-environment"}, passwords


def test_parts_the_url_leaves_out_come_from_libpqs_environment_for_every_connection(
    ledger: RoleLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # They were filled in (postgres@127.0.0.1:5432/postgres) and passed to every
    # connection: PGUSER naming the reader connected as the superuser, who could write.
    from ledger.application import Ledger
    from ledger.location import StoreLocation

    monkeypatch.setenv("PGUSER", ledger.reader_role)
    monkeypatch.setenv("PGDATABASE", PG_DB)
    url = f"postgresql://{PG_HOST}:{PG_PORT}?schema={ledger.schema}"
    refused = Store(url, "postgres", ledger.tmp_path).fail("append", "-", input=SEED).stderr
    assert "this role may not write to the ledger (a reader?)" in refused, refused
    app = Ledger(StoreLocation.parse(url))
    try:
        with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            assert (conn.info.user, conn.info.dbname) == (ledger.reader_role, PG_DB)
        shown = f"postgresql://{ledger.reader_role}@{PG_HOST}:{PG_PORT}/{PG_DB}?schema="
        assert app.storage.location.display == shown + ledger.schema
    finally:
        app.close()
    assert ledger.size() == 0


@pytest.mark.parametrize("usage", [False, True])
def test_a_role_that_may_not_create_tables_in_an_existing_schema_is_told_so(
    tmp_path: Path, usage: bool
) -> None:
    # Without USAGE the library's lookup failed: "internal failure" (exit 70); with it,
    # the first CREATE TABLE did, told "this role may not write to the ledger (a
    # reader?)" of a ledger not there.
    _require_postgres()
    token = uuid.uuid4().hex[:12]
    schema, role = f"t_{token}", f"r_{token}_maker"
    _sql(f'CREATE SCHEMA "{schema}"')
    _sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        _sql(f'GRANT CREATE ON DATABASE "{PG_DB}" TO "{role}"')  # a schema it may make
        if usage:
            _sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        lacks = "CREATE" if usage else "USAGE and CREATE"
        store = Store(_url(role, schema), "postgres", tmp_path)
        source = Store(str(tmp_path / "source.db"), "sqlite", tmp_path)
        source.ok("init")
        for command in (["init"], ["copy", source.url]):
            refused = store.fail(*command).stderr
            assert refused.startswith(
                f"Error: this role ({role}) may not create tables in schema '{schema}' (it "
                f"lacks {lacks} on it): nothing was written; have the schema's owner make"
            ), refused
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _drop_roles(role)


def test_the_librarys_error_for_a_privilege_is_told_as_one() -> None:
    # eventsourcing raises its own ProgrammingError from psycopg's: "internal failure".
    import psycopg
    from eventsourcing.persistence import ProgrammingError

    from cli.main import _is_permission_error

    wrapped = ProgrammingError("permission denied for schema s")
    wrapped.__cause__ = psycopg.errors.InsufficientPrivilege("permission denied for schema s")
    assert _is_permission_error(wrapped)


@pytest.mark.parametrize(
    ("who", "prefix", "refused"),
    [
        # A GRANT on what the reader holds no privilege on: an error, not a warning.
        ("reader", "own", "may not grant the ledger's privileges to {roles} (PostgreSQL: "),
        # CREATE ROLE without CREATEROLE (the default prefix's roles do not exist).
        ("writer", None, "may not create the ledger's roles {roles} (it has neither CREATEROLE "),
    ],
)
def test_init_roles_by_a_role_that_may_not_make_them_gets_the_owners_advice(
    populated: RoleLedger, who: str, prefix: str | None, refused: str
) -> None:
    # Bare "permission denied for sequence …" or "… to create role" was all they got.
    role = populated.role(who)
    chosen = populated.prefix if prefix == "own" else f"ledger_{populated.schema}"
    args = ["--role-prefix", chosen] if prefix else ["--roles"]
    result = getattr(populated, who).fail("init", *args)
    roles = f"{chosen}_writer and {chosen}_reader"
    assert result.stderr.startswith(f"Error: this role ({role}) " + refused.format(roles=roles)), (
        result.stderr
    )
    assert result.stderr.endswith(
        "; nothing was changed; run `init --roles` as the ledger's owner (a role with CREATEROLE)\n"
    ), result.stderr
    if prefix is None:  # no role was made
        made = populated.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (f"{chosen}_writer",))
        assert made == []


def test_init_takes_a_schema_holding_only_an_extensions_objects(tmp_path: Path) -> None:
    """Types and functions made someone's schema refused: an extension's (CREATE
    EXTENSION in public, a team's everyday) are nobody's data."""
    _require_postgres()
    if _sql("SELECT 1 FROM pg_extension WHERE extname = 'seg'"):
        pytest.skip("the seg extension is installed elsewhere in this database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _sql(f'CREATE SCHEMA "{schema}"')
    _sql(f'CREATE EXTENSION seg SCHEMA "{schema}"')
    try:
        store = Store(_url(PG_SUPERUSER, schema), "postgres", tmp_path)
        assert store.ok("init").stdout.startswith("Created ledger at ")
        store.ok("append", "-", input=SEED)
        assert store.ok("verify").stdout.startswith("OK size ")
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_mixed_case_schema_made_outside_is_named_when_the_url_finds_no_ledger(
    tmp_path: Path,
) -> None:
    """The URL's schema is taken in lower case: "Newsroom" made outside the ledger is
    another schema, and `init` would make a second one beside it; say so."""
    _require_postgres()
    mixed = f"T_{uuid.uuid4().hex[:12]}"
    _sql(f'CREATE SCHEMA "{mixed}"')
    try:
        store = Store(_url(PG_SUPERUSER, mixed), "postgres", tmp_path)
        refused = store.fail("status", "twitter:x").stderr
        assert (
            f"(the URL's schema is taken in lower case; '{mixed}' is another schema, which "
            "the ledger cannot name); run `enforcement-ledger init` first\n"
        ) in refused, refused
    finally:
        _sql(f'DROP SCHEMA IF EXISTS "{mixed}" CASCADE')
