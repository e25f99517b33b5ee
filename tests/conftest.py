"""Shared fixtures: every test gets its own real store, SQLite or PostgreSQL.

``store`` is parametrised over the backends in ``STORE_KINDS``; a PostgreSQL test
gets a fresh schema that is dropped afterwards. Without a reachable server those
tests skip with a hint, except under CI=true, where they fail loudly.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli

PG_URL = os.environ.get("ENFORCEMENT_LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
STORE_KINDS = ["sqlite", "postgres"]


@dataclass
class Store:
    """A store under test plus helpers to drive the real CLI against it."""

    url: str
    kind: str
    tmp_path: Path

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli,
            ["--store", self.url, *args],
            input=input,
            env={"ENFORCEMENT_LEDGER_ACTOR": "tester", **(env or {})},
            catch_exceptions=True,
        )

    def ok(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = self.run(*args, input=input, env=env)
        assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
        return result

    def append(self, *events: dict[str, Any]) -> dict[str, Any]:
        lines = "".join(json.dumps(e) + "\n" for e in events)
        result = self.ok("append", "--json", "-", input=lines)
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def fail(self, *args: str, input: str | None = None, code: int = 1) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
        return result

    def count(self) -> int:
        result = self.ok("export", "--nl")
        return len(result.stdout.splitlines())

    def status(self, account: str, *args: str) -> dict[str, Any]:
        return json.loads(self.ok("status", account, "--json", *args).stdout)  # type: ignore[no-any-return]

    def timeline(self, *args: str) -> list[dict[str, Any]]:
        out = self.ok("timeline", "--nl", *args).stdout
        return [json.loads(line) for line in out.splitlines()]


def _postgres_available() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def require_postgres() -> None:
    """Skip a PostgreSQL test on a machine without the server, with how to enable it;
    under CI=true fail instead, so the PostgreSQL half can never be skipped there."""
    problem = _postgres_available()
    if problem:
        message = (
            f"PostgreSQL unreachable at {PG_URL} ({problem}); start a server or set "
            "ENFORCEMENT_LEDGER_TEST_PG=postgresql://user@host:port/db to run these tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def drop_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema. A connection the code under test left open in
    this process would hold a lock on it: that fails the test after 10 s instead of
    hanging the run."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        try:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except psycopg.errors.LockNotAvailable:
            rows = conn.execute(
                "SELECT state, query FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            pytest.fail(f"schema {schema} is still in use, by: {rows}")


def drop_roles(prefix: str) -> None:
    """Drop the writer and reader roles `init --role-prefix PREFIX` made, if made."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for role in (f"{prefix}_writer", f"{prefix}_reader"):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f'DROP OWNED BY "{role}"')
                conn.execute(f'DROP ROLE "{role}"')


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bare_store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    """A store location that is not initialised yet."""
    if store_kind == "sqlite":
        return Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    made: tuple[Store, str] = request.getfixturevalue("postgres_schema")
    return made[0]


@pytest.fixture
def postgres_schema(tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """A PostgreSQL store in a schema of its own (not initialised yet), and the
    schema's name; the schema is dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield Store(f"{PG_URL}?schema={schema}", "postgres", tmp_path), schema
    finally:
        drop_schema(schema)


@pytest.fixture
def store(bare_store: Store) -> Store:
    """An initialised, empty store."""
    bare_store.ok("init")
    return bare_store
