"""Where a ledger lives: a SQLite file path or a PostgreSQL URL."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import ParseResult, parse_qs, quote, unquote, urlparse

STORE_ENV = "ENFORCEMENT_LEDGER_STORE"
KEY_FILE_ENV = "ENFORCEMENT_LEDGER_KEY_FILE"
DEFAULT_STORE = "enforcement-ledger.db"
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
# Where libpq looks for a connection part the URL leaves out, before its default.
_LIBPQ_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}


# Connection parts a URL has a place of its own for, and libpq's variable for each.
_URL_PLACES = {**_LIBPQ_ENV, "password": "PGPASSWORD"}


def _in_its_place(url: ParseResult, option: str, query: dict[str, list[str]]) -> str:
    """Advice for a connection part given as ``?option=``: the URL with it in its own
    place (a password not repeated), or libpq's variable for it."""
    variable = _URL_PLACES[option]
    if option == "password":
        return (
            "give it in the URL's user part, percent-encoded: "
            f"postgresql://user:PASSWORD@host/dbname; or in {variable} or ~/.pgpass"
        )
    value = query[option][0]
    user_part, at, host_part = url.netloc.rpartition("@")
    user_part = re.sub(r":.*", ":…", user_part)  # a password is not repeated
    parts = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(:.*)?", host_part)
    host, port = (parts[1], parts[2] or "") if parts else (host_part, "")
    path = url.path
    if option == "host":
        host = quote(value, safe="")  # a Unix socket's directory, percent-encoded
    elif option == "port":
        port = f":{value}"
    elif option == "user":
        user_part, at = quote(value, safe="") + (":…" if ":" in user_part else ""), "@"
    else:  # dbname
        path = "/" + quote(value, safe="")
    # Only ?schema= carries over: any other option would be refused again, and one may
    # be a secret (?password=, ?sslpassword=), never repeated.
    rest = [f"schema={quote(v, safe='')}" for v in query.get("schema", [])]
    suggested = f"{url.scheme}://{user_part}{at}{host}{port}{path}"
    suggested += f"?{'&'.join(rest)}" if rest else ""
    where = {
        "host": "in the URL itself, a Unix socket's directory percent-encoded",
        "port": "in the URL itself, after the host",
        "user": "in the URL itself, before the host",
        "dbname": "as the URL's path",
    }[option]
    return f"give the {option} {where}: {suggested}; or set {variable}"


class StoreError(Exception):
    """The store is missing, not initialised, or unreachable.

    ``problem`` is what is wrong; ``advice``, when given, what to do about this
    command's own store (a caller reading another store shows only the problem).
    """

    def __init__(self, problem: str, advice: str | None = None) -> None:
        self.problem = problem
        super().__init__(f"{problem}; {advice}" if advice else problem)


class ConnectError(StoreError):
    """The server could not be reached or refused the connection (down, restarting,
    at its connection limit): a later try may succeed."""


class NoLedgerError(StoreError):
    """The store is there (or could be made) but holds no ledger."""


def _encoded(value: str, special: str) -> str:
    """``value`` with the characters in ``special``, and control characters,
    percent-encoded (as UTF-8)."""
    return "".join(quote(c, safe="") if c in special or not c.isprintable() else c for c in value)


@dataclass(frozen=True)
class StoreLocation:
    """A parsed ``--store`` value."""

    raw: str
    kind: str  # "sqlite" or "postgres"
    path: Path | None = None
    # None where the URL gives none: libpq's environment (PGHOST, PGUSER, PGSERVICE…)
    # or its defaults apply, to every connection; not ours, or a postgres superuser
    # stood in for the PGUSER meant to be the ledger's writer or reader.
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str = ""
    dbname: str | None = None
    schema: str = "public"
    # What libpq chose for those parts, as a connection reports it (see ``libpq``).
    connected: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, value: str | None) -> StoreLocation:
        raw = value or os.environ.get(STORE_ENV) or DEFAULT_STORE
        if raw.startswith(("postgresql://", "postgres://")):
            url = urlparse(raw)
            query = parse_qs(url.query, keep_blank_values=True)
            # Every connection (ours and the eventsourcing library's) is made from the
            # parts below: an option left in the URL would be dropped without a word.
            unknown = sorted(set(query) - {"schema"})
            if unknown:
                refused = (
                    f"the store URL's option {unknown[0]!r} is not supported: only ?schema= "
                    "is read from it"
                )
                if unknown[0] in _URL_PLACES:
                    raise StoreError(f"{refused}; {_in_its_place(url, unknown[0], query)}")
                raise StoreError(
                    f"{refused}; give libpq settings through the environment "
                    "(e.g. PGSSLMODE=require, PGSSLROOTCERT=…), which every connection uses"
                )
            schemas = query.get("schema", ["public"])
            if len(schemas) > 1:
                raise StoreError(f"the store URL gives ?schema= {len(schemas)} times; give it once")
            given = schemas[0]
            # Checked as it will be used: folded to lower case ("İ" becomes two
            # characters, three bytes), the name every later command opens.
            schema = given.lower()
            named = repr(given) if schema == given else f"{given!r} (in lower case {schema!r})"
            if not schema or schema[0].isdigit() or not schema.replace("_", "a").isalnum():
                raise StoreError(
                    f"schema {named} must be letters, digits and underscores, not starting "
                    "with a digit"
                )
            if schema.startswith("pg_"):
                raise StoreError(
                    f"schema {named}: names starting pg_ are PostgreSQL's own; choose another"
                )
            if len(schema.encode()) > MAX_IDENTIFIER_BYTES:
                # PostgreSQL would cut it silently, and two long names could meet.
                raise StoreError(
                    f"schema {named} is longer than PostgreSQL's "
                    f"{MAX_IDENTIFIER_BYTES}-byte limit for names"
                )
            if "," in url.netloc.rpartition("@")[2]:
                # libpq's list of hosts to try in turn: the library's pool takes one.
                raise StoreError(
                    f"the store URL names several hosts ({url.netloc.rpartition('@')[2]}); "
                    "only one is supported: give the one to use"
                )
            try:
                port = url.port
            except ValueError:
                port = 0
            if port == 0:
                port_text = url.netloc.rpartition(":")[2]
                raise StoreError(
                    f"the store URL's port must be a number from 1 to 65535, given {port_text!r}"
                )
            # As given, not url.hostname: that folds case, and a Unix socket's directory
            # comes percent-encoded (postgresql://user@%2Fvar%2Frun%2Fpostgresql/db).
            host_port = url.netloc.rpartition("@")[2]
            if host_port.startswith("["):  # IPv6
                host = host_port[1:].partition("]")[0]
            else:
                host = host_port.partition(":")[0]
            return cls(
                raw=raw,
                kind="postgres",
                host=unquote(host) or None,
                port=port,
                user=unquote(url.username) if url.username else None,
                password=unquote(url.password or ""),
                dbname=unquote((url.path or "/").lstrip("/")) or None,
                schema=schema,
            )
        if raw.startswith("sqlite:///"):
            raw = raw.removeprefix("sqlite:///")
        elif scheme := _URL_SCHEME.match(raw):
            raise StoreError(
                f"unsupported store URL scheme {scheme.group(1)!r}: give a SQLite file path "
                "(or sqlite:///PATH) or a postgresql:// URL"
            )
        return cls(raw=raw, kind="sqlite", path=Path(raw).expanduser())

    def libpq(self, part: str) -> str:
        """A connection part ("host", "port", "user", "dbname") for messages: the URL's,
        else what a connection reported, else libpq's environment or its default (a
        Unix socket, port 5432, the login name, a database named after the user)."""
        given = getattr(self, part)
        if given is not None:
            return str(given)
        if part in self.connected:
            return self.connected[part]
        if from_env := os.environ.get(_LIBPQ_ENV[part]):
            return from_env
        if part == "host":
            return ""
        if part == "port":
            return "5432"
        if part == "dbname":
            return self.libpq("user")
        try:
            return getpass.getuser()
        except Exception:  # no login name: libpq would fail too
            return "?"

    @property
    def display(self) -> str:
        if self.kind == "sqlite":
            return str(self.path)
        host, port = self.libpq("host"), self.libpq("port")
        if ":" in host:  # IPv6, as in the URL
            host = f"[{host}]"
        elif host.startswith("/"):  # a Unix socket's directory
            host = quote(host, safe="")
        # No host: libpq's default socket, which a URL says by naming none ("@:5432"
        # read as a host left out by mistake).
        where = f"{host}:{port}" if host or port != "5432" else ""
        # What would end the part it is in percent-encoded, so the URL printed works
        # pasted back: a user named with ':' (or '@', '/') and a database with '/', '?'
        # or '#' were given as is. Other characters stay as they read (parse takes them).
        user = _encoded(self.libpq("user"), "%:@/?#[]")
        dbname = _encoded(self.libpq("dbname"), "%/?#")
        return f"postgresql://{user}@{where}/{dbname}?schema={self.schema}"


class KeyError_(Exception):  # named apart from the builtin KeyError
    """A signing key is missing, unreadable or malformed."""


def key_path(location: StoreLocation, key_file: str | None) -> Path | None:
    """--key-file, then $ENFORCEMENT_LEDGER_KEY_FILE, then <sqlite store>.key.

    Lives here, not in ledger.integrity, so an append without a key never loads
    the cryptography stack.
    """
    chosen = key_file or os.environ.get(KEY_FILE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    if location.kind == "sqlite" and location.path is not None:
        return location.path.with_name(location.path.name + ".key")
    return None
