"""The PostgreSQL store: the same ledger for teams, one schema per ledger.

Writers serialise on a transaction-scoped advisory lock named after the schema
rather than ``LOCK TABLE … IN EXCLUSIVE MODE``: PostgreSQL only lets a role take
that table lock if it holds UPDATE, DELETE or TRUNCATE, which the writer role must
not have. The advisory lock gives the same guarantee (one appender at a time, so
sequence order, notification order and commit order agree) with INSERT alone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from ledger.location import ConnectError, NoLedgerError, StoreError, StoreLocation
from ledger.persistence import (
    APPLICATION_NAME,
    FORMAT_VERSION,
    LEDGER_TABLES,
    Database,
    EventRow,
    Storage,
)

EVENTS_TABLE = APPLICATION_NAME.lower() + "_events"
# What the library makes beside its events table (_library_ddl), for its originator ids'
# type (uuid): a failed copy removes them by name.
_LIBRARY_TYPE = "stored_event_uuid"
_LIBRARY_FUNCTION = "es_insert_events_uuid"

# What every append-only trigger calls.
_REFUSE_CHANGE = """CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'enforcement ledger: % is append-only', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$"""

_REFUSE_CHANGE_BODY = _REFUSE_CHANGE.split("$$")[1]

# Each append-only trigger on every ledger table: its name's suffix, when it fires,
# and the pg_trigger.tgtype bits that say so (1 row, 2 before, 8 delete, 16 update,
# 32 truncate), which verify compares with the catalog.
_GUARDS = {
    "append_only": ("BEFORE UPDATE OR DELETE", "FOR EACH ROW", 1 | 2 | 8 | 16),
    "no_truncate": ("BEFORE TRUNCATE", "FOR EACH STATEMENT", 2 | 32),
}
_GUARD_KINDS = {
    f"{table}_{suffix}": (table, bits)
    for table in (EVENTS_TABLE, *LEDGER_TABLES)
    for suffix, (_, _, bits) in _GUARDS.items()
}

_LEDGER_DDL = [
    "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Identifiers compare byte by byte (COLLATE "C"), as in SQLite, whatever the
    # database's default collation: the unique and partial indexes on them are
    # maintained by memcmp instead of strcoll.
    """CREATE TABLE IF NOT EXISTS ledger_entries (
        sequence BIGINT PRIMARY KEY,
        event_id TEXT COLLATE "C" NOT NULL UNIQUE,
        notification_id BIGINT NOT NULL UNIQUE,
        originator_id UUID NOT NULL,
        type TEXT COLLATE "C" NOT NULL,
        leaf_hash BYTEA NOT NULL,
        recorded_at TEXT NOT NULL,
        subject_ref TEXT COLLATE "C",
        lane TEXT COLLATE "C" NOT NULL,
        lane_key BIGINT NOT NULL,
        target TEXT COLLATE "C")""",
    """CREATE INDEX IF NOT EXISTS ledger_entries_subject_ref
        ON ledger_entries (subject_ref) WHERE subject_ref IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS ledger_entries_lane ON ledger_entries (lane_key)",
    """CREATE INDEX IF NOT EXISTS ledger_entries_target
        ON ledger_entries (target) WHERE target IS NOT NULL""",
    # A registration checks the platform renames (a rename's name is no slug to
    # register under): a handful of rows, found without reading the whole index.
    """CREATE INDEX IF NOT EXISTS ledger_entries_renames
        ON ledger_entries (sequence) WHERE type = 'platform_renamed'""",
    """CREATE TABLE IF NOT EXISTS merkle_nodes (
        level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL,
        PRIMARY KEY (level, idx))""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        id BIGSERIAL PRIMARY KEY,
        size BIGINT NOT NULL,
        root BYTEA NOT NULL,
        note TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    _REFUSE_CHANGE,
]


# The catalogs directly: information_schema.tables is a view that took ~4 ms of
# every command's start. A table only: a view or composite type of that name is not
# a ledger's (init then failed on it, "… is a composite type").
_LEDGER_META_EXISTS = (
    "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relname = 'ledger_meta' "
    "AND c.relkind = 'r'"
)
# Someone's types and functions too, not only relations: init made its tables beside
# an enum named ledger_entries, and replaced a function named ledger_refuse_change.
# An extension's objects (CREATE EXTENSION citext in public, say) are nobody's data:
# they do not make a schema someone's. A relation's row type is judged with it.
_EXTENSION_MEMBER = (
    "EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '{catalog}'::regclass "
    "AND d.objid = {alias}.oid AND d.deptype = 'e')"
)
_HOLDS_RELATIONS = (
    "SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = ? AND ("
    "EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND NOT "
    + _EXTENSION_MEMBER.format(catalog="pg_catalog.pg_class", alias="c")
    + ") OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid "
    "AND t.typrelid = 0 AND t.typcategory <> 'A' AND NOT "
    + _EXTENSION_MEMBER.format(catalog="pg_catalog.pg_type", alias="t")
    + ") OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid AND NOT "
    + _EXTENSION_MEMBER.format(catalog="pg_catalog.pg_proc", alias="p")
    + "))"
)


def no_password() -> str | None:
    """The password the library's pool passes when the URL gives none: no password
    parameter at all (psycopg drops a None), so libpq looks for one as it does for the
    ledger's own connections (PGPASSWORD, ~/.pgpass, a service file)."""
    return None


class PostgresStorage(Storage):
    dialect = "postgres"
    ledger_ddl: ClassVar[Sequence[str]] = _LEDGER_DDL
    events_table = EVENTS_TABLE
    notification_column = "notification_id"

    def __init__(self, location: StoreLocation) -> None:
        super().__init__(location)
        self.schema = location.schema
        # Whether `create` made the schema itself (it was not there): a failed copy's
        # to remove again (drop_made_schema).
        self.made_schema = False

    def eventsourcing_env(self) -> dict[str, str]:
        loc = self.location
        return {
            # Parts the URL leaves out are given as '' and left to libpq (see there).
            "PERSISTENCE_MODULE": "ledger.postgres_library:LibpqFactory",
            "POSTGRES_DBNAME": loc.dbname or "",
            "POSTGRES_HOST": loc.host or "",
            "POSTGRES_PORT": str(loc.port or ""),
            "POSTGRES_USER": loc.user or "",
            # Without one in the URL, none at all, as for the ledger's own connections:
            # the library's pool passed password='', which libpq takes as given, and
            # never read PGPASSWORD (or a service file). Set either way, so a
            # POSTGRES_GET_PASSWORD_TOPIC in the environment does not override the URL.
            "POSTGRES_PASSWORD": loc.password,
            "POSTGRES_GET_PASSWORD_TOPIC": "" if loc.password else f"{__name__}:no_password",
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_POOL_SIZE": "2",
            # Tables are made once, by `init`: concurrent CREATE TABLE IF NOT EXISTS
            # fails with "tuple concurrently updated". POSTGRES_ENABLE_DB_FUNCTIONS
            # stays off: in 9.5.6 it drops tracking records.
            "CREATE_TABLE": "n",
        }

    def originator_param(self, originator_id: uuid.UUID) -> Any:
        return originator_id

    def connect(self) -> Database:
        import psycopg

        loc = self.location
        try:
            raw = psycopg.connect(
                host=loc.host,
                port=loc.port,
                user=loc.user,
                password=loc.password or None,
                dbname=loc.dbname,
                autocommit=True,
                connect_timeout=10,
            )
        except psycopg.OperationalError as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ConnectError(f"cannot connect to {loc.display}: {first}") from None
        # For messages: whom and where libpq connected for the parts the URL left out.
        info = raw.info
        loc.connected.update(
            host=info.host, port=str(info.port), user=info.user, dbname=info.dbname
        )
        raw.execute(f'SET search_path TO "{self.schema}"')
        return Database(raw, "postgres")

    def exists(self) -> bool:
        with self.connect() as db:
            return self._has_meta(db)

    def drop_made_schema(self) -> str | None:
        """Remove what a failed copy made in the schema `create` made for it: the
        ledger's own tables, types and functions, by name, then the schema, only if that
        left it empty (RESTRICT). Someone else's tables, made in it meanwhile, stay, and
        the schema with them: never DROP SCHEMA … CASCADE, which took theirs too.

        Not where the log holds events meanwhile (another command's append): then it is
        not the copy's alone. Returns "schema" if the schema went, "ledger" if only the
        ledger's objects did, None if nothing was removed."""
        import psycopg

        from projections.projector import TABLES as PROJECTION_TABLES

        schema = f'"{self.schema}"'
        with self.connect() as db, db.transaction(lock="ledger-log"):
            if db.one(f"SELECT 1 FROM {schema}.{EVENTS_TABLE} LIMIT 1") is not None:
                return None
            # RESTRICT throughout (the default): an object of someone else's that depends
            # on one of the ledger's (a view on its table) keeps all of it, as it was.
            db.execute(
                f"DROP FUNCTION IF EXISTS {schema}.{_LIBRARY_FUNCTION}({schema}.{_LIBRARY_TYPE}[])"
            )
            tables = (EVENTS_TABLE, *LEDGER_TABLES, *PROJECTION_TABLES)
            db.execute(f"DROP TABLE IF EXISTS {', '.join(f'{schema}.{t}' for t in tables)}")
            db.execute(f"DROP TYPE IF EXISTS {schema}.{_LIBRARY_TYPE}")
            db.execute(f"DROP FUNCTION IF EXISTS {schema}.ledger_refuse_change()")
            db.execute("SAVEPOINT ledger_drop_schema")
            try:
                db.execute(f"DROP SCHEMA {schema} RESTRICT")
            except psycopg.errors.DependentObjectsStillExist:
                db.execute("ROLLBACK TO SAVEPOINT ledger_drop_schema")
                return "ledger"
        return "schema"

    def _has_meta(self, db: Database) -> bool:
        if db.one(_LEDGER_META_EXISTS, (self.schema,)) is None:
            return False
        # The catalogs show the ledger to every role, but its tables read as missing to
        # one without USAGE: "dropped, restore from a backup".
        if not db.one("SELECT has_schema_privilege(?, 'USAGE')", (self.schema,))[0]:
            raise StoreError(
                f"the ledger in schema '{self.schema}' is there, but this role "
                f"({self.location.libpq('user')}) has no access to the "
                "schema (USAGE)",
                "connect as a role of this ledger (`init --roles` makes a writer and a "
                "reader), or ask its owner to grant access",
            )
        return True

    def _refuse_foreign(self, db: Database, advice: str) -> None:
        """A schema of someone else's relations, types or functions: no place for a ledger."""
        if db.one(_HOLDS_RELATIONS, (self.schema,)):
            # As for a SQLite file that is not a ledger: its tables, views and
            # sequences are someone's (a view named like ours also broke init).
            raise StoreError(  # not NoLedgerError: no ledger belongs here at all
                f"schema {self.schema!r} holds tables, views, types or functions but no ledger",
                advice,
            )

    def _require_create(self, db: Database) -> None:
        """Someone else's empty schema takes the ledger only from a role with USAGE and
        CREATE on it: without, the library's lookups failed ("internal failure") or the
        first CREATE TABLE did, told as a reader's refused write to a ledger not there."""
        usage, create = db.one(
            "SELECT has_schema_privilege(?, 'USAGE'), has_schema_privilege(?, 'CREATE')",
            (self.schema, self.schema),
        )
        if usage and create:
            return
        lacks = " and ".join(
            name for name, held in (("USAGE", usage), ("CREATE", create)) if not held
        )
        raise StoreError(
            f"this role ({self.location.libpq('user')}) may not create tables in schema "
            f"'{self.schema}' (it lacks {lacks} on it): nothing was written",
            "have the schema's owner make the store (`init`, with --origin for a copy), "
            "or grant this role USAGE and CREATE on the schema",
        )

    def require(self) -> None:
        db = self.connect()  # one connection for both checks
        try:
            if not self._has_meta(db):
                # `init` refuses such a schema: "run init" would not help.
                self._refuse_foreign(db, "choose another schema (`init` adds no ledger to it)")
                # A schema made outside in mixed case ("Newsroom") is another one: init
                # would make a second, lower-case schema beside it.
                others = [
                    row[0]
                    for row in db.execute(
                        "SELECT nspname FROM pg_catalog.pg_namespace WHERE lower(nspname) = ? "
                        "AND nspname <> ?",
                        (self.schema, self.schema),
                    ).fetchall()
                ]
                case = (
                    f" (the URL's schema is taken in lower case; {', '.join(map(repr, others))} "
                    "is another schema, which the ledger cannot name)"
                    if others
                    else ""
                )
                raise NoLedgerError(
                    f"no ledger in schema '{self.schema}' at {self.location.display}{case}",
                    "run `enforcement-ledger init` first",
                )
            self.check_format(db)
        except BaseException:
            db.close()
            raise
        # Kept for the appends that follow (autocommit, so nothing is left open): a
        # `record` connects once, not twice (~5-15 ms each).
        if self._writer is None:
            self._writer = db
        else:
            db.close()

    def may_update_read_models(self, db: Database) -> bool:
        # Every read model table and the position are granted together (grant_roles).
        return bool(
            db.one(
                "SELECT has_table_privilege(?, 'INSERT') AND has_table_privilege(?, 'UPDATE')",
                ("projection_position", "projection_position"),
            )[0]
        )

    def lock_log(self, db: Database) -> None:
        db.advisory_lock("ledger-log")
        # Every lookup an append makes is an index lookup, but a batch that fills an
        # empty table runs on empty-table statistics, and the planner would scan it
        # sequentially, again and again, as it grows.
        # Point lookups: parallel workers only add start-up time to each one. And a
        # disabled seq scan costs 10^10, which crosses jit_above_cost: any plan left with
        # one (a tiny table without a usable index) was JIT-compiled, ~90 ms per query.
        # One round trip for the three (no parameters: a simple query may hold several).
        db.execute(
            "SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0; "
            "SET LOCAL jit = off"
        )

    def guard_triggers(self) -> dict[str, str]:
        return {
            f"{table}_{suffix}": (
                f"CREATE OR REPLACE TRIGGER {table}_{suffix} {timing} ON {table} "
                f"{granularity} EXECUTE FUNCTION ledger_refuse_change()"
            )
            for table in (EVENTS_TABLE, *LEDGER_TABLES)
            for suffix, (timing, granularity, _) in _GUARDS.items()
        }

    def guard_setup(self) -> list[str]:
        return [_REFUSE_CHANGE]

    def drop_guard(self, db: Database, name: str) -> None:
        # CREATE OR REPLACE cannot replace a constraint trigger of the same name.
        table, _ = _GUARD_KINDS[name]
        db.execute(f'DROP TRIGGER IF EXISTS "{name}" ON "{table}"')

    def guards_in_force(self, db: Database) -> dict[str, bool]:
        rows = db.execute(
            "SELECT t.tgname, c.relname, t.tgtype, t.tgqual IS NULL AND t.tgnargs = 0 "
            "AND t.tgattr::text = '', p.proname, pn.nspname = current_schema(), p.prosrc "
            "FROM pg_catalog.pg_trigger t "
            "JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace "
            # Only one that fires in every session guards: 'O' (origin, the default) or
            # 'A' (always); a disabled one ('D') or a replica-only one ('R') does not.
            "WHERE n.nspname = current_schema() AND NOT t.tgisinternal "
            "AND t.tgenabled IN ('O', 'A')"
        )
        found = {}
        for name, table, kind, unconditional, function, ours, body in rows:
            made = _GUARD_KINDS.get(name)
            found[name] = (
                made == (table, kind)
                and bool(unconditional)
                and function == "ledger_refuse_change"
                and bool(ours)
                and body == _REFUSE_CHANGE_BODY
            )
        return found

    def create(self, meta: dict[str, str], then: Callable[[Database], None] | None = None) -> bool:
        """Create schema, tables and triggers once; concurrent inits wait, then no-op."""
        with self.connect() as db, db.transaction(lock=f"ledger-init:{self.schema}"):
            # Asked first: the writer and reader roles, which may not create a schema
            # (CREATE on the database), run this on their ledger too.
            if self._has_meta(db):
                return False
            self.made_schema = self._create_schema(db)
            self._refuse_foreign(db, "refusing to add tables to it (choose another schema)")
            self._require_create(db)
            for statement in self._library_ddl():
                db.raw.execute(statement)
            for statement in _LEDGER_DDL:
                db.execute(statement)
            for statement in self.guard_triggers().values():
                db.execute(statement)
            if then is not None:  # what else the store needs, in the same transaction
                then(db)
            db.executemany(
                "INSERT INTO ledger_meta VALUES (?, ?)",
                sorted({**meta, "format_version": FORMAT_VERSION}.items()),
            )
        return True

    def _create_schema(self, db: Database) -> bool:
        """Make the schema unless it is there; returns whether this made it. Asked and
        made in one step: a schema someone else made just before (no lock of ours keeps
        them out) is not taken for this command's, to drop if a copy fails."""
        import psycopg

        if db.one("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = ?", (self.schema,)):
            return False
        db.execute("SAVEPOINT ledger_create_schema")
        try:
            db.execute(f'CREATE SCHEMA "{self.schema}"')
        except (psycopg.errors.DuplicateSchema, psycopg.errors.UniqueViolation):
            # Made meanwhile, by someone else (a concurrent CREATE SCHEMA waits for
            # theirs to commit, then fails on the catalog's unique index).
            db.execute("ROLLBACK TO SAVEPOINT ledger_create_schema")
            made = False
        else:
            made = True
        db.execute("RELEASE SAVEPOINT ledger_create_schema")
        return made

    def _library_ddl(self) -> list[Any]:
        """The library's own CREATE statements for its events table, run in our transaction."""
        from eventsourcing.postgres import PostgresApplicationRecorder

        from ledger.postgres_library import LibpqFactory

        # Its recorder connects (to look up its types): with the credentials of the
        # library's other connections, not password='', which libpq takes as given
        # without reading PGPASSWORD (init failed, "couldn't get a connection").
        datastore = LibpqFactory(self.eventsourcing_env()).datastore
        try:
            recorder = PostgresApplicationRecorder(datastore, events_table_name=EVENTS_TABLE)
            return list(recorder.sql_create_statements)
        finally:
            datastore.close()

    def insert_events(
        self, db: Database, events: Sequence[EventRow], next_notification_id: int
    ) -> list[int]:
        # notification_id is a bigserial here (it may have gaps). The batch's ids are
        # drawn from its sequence in one round trip (nextval needs only USAGE, and
        # under the log's lock nobody else draws), then the rows go in by binary COPY:
        # an INSERT … RETURNING over unnest() arrays cost twice as much.
        if not events:
            return []
        ids = sorted(
            row[0]
            for row in db.raw.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'notification_id')) "
                "FROM generate_series(1, %s)",
                (EVENTS_TABLE, len(events)),
            )
        )
        with (
            db.raw.cursor() as cursor,
            cursor.copy(
                f"COPY {EVENTS_TABLE} (notification_id, originator_id, originator_version, "
                "topic, state) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "uuid", "int8", "text", "bytea"])
            for notification_id, row in zip(ids, events, strict=True):
                copy.write_row((notification_id, *row))
        # Wake LISTENing followers, on the channel the library's subscription uses.
        db.raw.execute(f'NOTIFY "{EVENTS_TABLE}"')
        return ids

    def grant_as_before(self, db: Database, tables: Sequence[str]) -> None:
        """Give read-model tables made again the grants the ledger's roles hold on its
        index: readers SELECT, writers (who append) the writes projecting makes."""
        rows = db.execute(
            "SELECT DISTINCT grantee, privilege_type "
            "FROM information_schema.role_table_grants "
            "WHERE table_schema = ? AND table_name = 'ledger_entries' "
            "AND privilege_type IN ('SELECT', 'INSERT') "
            "AND grantee NOT IN (current_user, 'PUBLIC')",
            (self.schema,),
        ).fetchall()
        for role, privilege in rows:
            granted = "SELECT" if privilege == "SELECT" else "INSERT, UPDATE, DELETE"
            quoted = '"' + role.replace('"', '""') + '"'
            for table in tables:
                db.execute(f'GRANT {granted} ON "{self.schema}"."{table}" TO {quoted}')

    def require_role_rights(self, prefix: str) -> None:
        """Refuse, before `init` makes anything, a role that may not create the ledger's
        roles it lacks: the ledger was made, then the roles refused "nothing was changed"."""
        writer, reader = role_names(prefix)
        with self.connect() as db:
            self._has_meta(db)  # a role without access to the ledger's schema hears that first
            may, missing = db.one(
                "SELECT rolsuper OR rolcreaterole, "
                "(SELECT count(*) FROM pg_roles WHERE rolname IN (?, ?)) < 2 "
                "FROM pg_roles WHERE rolname = current_user",
                (writer, reader),
            )
        if missing and not may:
            raise StoreError(
                f"this role ({self.location.libpq('user')}) may not create the ledger's "
                f"roles {writer} and {reader} (it has neither CREATEROLE nor SUPERUSER); "
                "nothing was changed",
                _ROLES_ADVICE,
            )

    def grant_roles(self, prefix: str) -> tuple[str, str]:
        """Create (or refresh) the writer and reader roles for this ledger."""
        import psycopg

        writer, reader = role_names(prefix)
        user = self.location.libpq("user")
        advice = _ROLES_ADVICE
        refused = f"may not create the ledger's roles {writer} and {reader}"
        try:
            with self.connect() as db, db.transaction(lock=f"ledger-init:{self.schema}"):
                for role in (writer, reader):
                    exists = db.one("SELECT 1 FROM pg_roles WHERE rolname = ?", (role,))
                    if not exists:
                        self._create_role(db, role)
                refused = f"may not grant the ledger's privileges to {writer} and {reader}"
                # A GRANT by a role that may not give the privilege grants nothing, with
                # a warning only (privilege_not_granted): "Roles ready" would be untrue.
                withheld: list[str] = []
                db.raw.add_notice_handler(
                    lambda diag: (
                        withheld.append(diag.message_primary or "")
                        if diag.sqlstate == "01007"
                        else None
                    )
                )
                self._grant(db, writer, reader)
                if withheld:
                    raise StoreError(
                        f"this role ({user}) {refused} (PostgreSQL: {withheld[0]}); nothing "
                        "was changed",
                        advice,
                    )
        except psycopg.errors.InsufficientPrivilege as error:
            # Refused outright (CREATE ROLE without CREATEROLE, a GRANT on what the role
            # holds no privilege on): told as the withheld grants above, with the advice.
            raise StoreError(
                f"this role ({user}) {refused} (PostgreSQL: "
                f"{error.diag.message_primary or error}); nothing was changed",
                advice,
            ) from None
        return writer, reader

    def _grant(self, db: Database, writer: str, reader: str) -> None:
        from projections.projector import TABLES as PROJECTION_TABLES

        schema = f'"{self.schema}"'
        for role in (writer, reader):
            db.execute(f'GRANT USAGE ON SCHEMA {schema} TO "{role}"')
            db.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO "{role}"')
        history = ", ".join((EVENTS_TABLE, "ledger_entries", "merkle_nodes", "checkpoints"))
        db.execute(f'GRANT INSERT ON {history} TO "{writer}"')
        db.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO "{writer}"')
        # The read models are derived data, rebuilt at will: writers keep them current.
        projections = ", ".join(PROJECTION_TABLES)
        db.execute(f'GRANT INSERT, UPDATE, DELETE ON {projections} TO "{writer}"')

    @staticmethod
    def _create_role(db: Database, role: str) -> None:
        """CREATE ROLE, or nothing if another init (of another schema or database: roles
        are the cluster's, and its lock is this schema's) made it meanwhile."""
        import psycopg

        db.execute("SAVEPOINT ledger_create_role")
        try:
            db.execute(f'CREATE ROLE "{role}" LOGIN')
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            db.execute("ROLLBACK TO SAVEPOINT ledger_create_role")
        db.execute("RELEASE SAVEPOINT ledger_create_role")


def server_setting(location: StoreLocation, name: str) -> str | None:
    """A setting as a new session of this role gets it (from the role, the database or
    PGOPTIONS), or None if it cannot be read: for a message, after a failure."""
    try:
        with PostgresStorage(location).connect() as db:
            return str(db.one("SELECT current_setting(?)", (name,))[0])
    except Exception:
        return None


_ROLES_ADVICE = "run `init --roles` as the ledger's owner (a role with CREATEROLE)"

# PostgreSQL cuts a longer name to this many bytes without an error.
MAX_NAME_BYTES = 63
# Lower case: PostgreSQL folds an unquoted name, so "GRANT x_Up_writer" names x_up_writer.
_ROLE_PREFIX = re.compile(r"[a-z_][a-z0-9_]*")


class RolePrefixError(ValueError):
    """A role prefix that would not give two distinct, well-formed role names."""


def role_names(prefix: str) -> tuple[str, str]:
    """The writer and reader role names for ``prefix``, or RolePrefixError.

    The names go into CREATE ROLE and GRANT statements, which take no parameters:
    only letters, digits and underscores. And PostgreSQL would cut names over 63
    bytes to one shared name, giving the reader the writer's rights."""
    if not _ROLE_PREFIX.fullmatch(prefix):
        raise RolePrefixError(
            f"a role prefix is lowercase letters, digits and underscores, not starting "
            f"with a digit, as PostgreSQL reads a role named without quotes (given {prefix!r})"
        )
    if prefix.lower().startswith("pg_"):
        raise RolePrefixError(f"role names starting pg_ are PostgreSQL's own (given {prefix!r})")
    writer, reader = f"{prefix}_writer", f"{prefix}_reader"
    if len(writer.encode()) > MAX_NAME_BYTES:
        room = MAX_NAME_BYTES - len("_writer")
        raise RolePrefixError(
            f"the role names {writer!r} and {reader!r} are longer than PostgreSQL's "
            f"{MAX_NAME_BYTES} bytes, and it would cut both to one name (the reader with "
            f"the writer's rights): give a --role-prefix of at most {room} characters"
        )
    return writer, reader
