"""Small builders and assertions shared by the CLI-level test modules.

Everything here drives the real CLI, through the ``Store`` helper of ``conftest`` or
as a process (``cli_process``); nothing reaches into the ledger's internals, so the
same helpers work on every backend the ``store`` fixture is parametrised over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import Store

SOURCE = "https://example.org/report"
REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "ledger" / "data" / "seed.jsonl"
SEED_EVENTS = len(SEED.read_text(encoding="utf-8").splitlines())  # the shipped story's
# The CLI as its own process (signals, exit statuses, file systems, start-up).
CLI = [sys.executable, "-c", "from cli.main import main; main()"]


def cli_process(*args: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a process (after ``prefix``, e.g. a namespace wrapper)."""
    return subprocess.run(
        [*prefix, *CLI, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "ENFORCEMENT_LEDGER_ACTOR": "tester"},
        timeout=120,
    )


# The 18 event types of the brief, by their exact names.
EVENT_TYPES = (
    "subject_registered",
    "account_registered",
    "platform_renamed",
    "followers_observed",
    "post_published",
    "post_warning_screen_applied",
    "post_warning_screen_removed",
    "post_removed",
    "post_restored",
    "account_restricted",
    "account_suspended",
    "account_reinstated",
    "account_removed",
    "exemption_applied",
    "exemption_revoked",
    "appeal_filed",
    "appeal_decided",
    "event_retracted",
)


def ev(type_: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    """One input event: a type, when it occurred, a source and its own fields."""
    return {"type": type_, "occurred_at": occurred_at, "source": SOURCE, **fields}


def subject(
    subject_id: str, occurred_at: str = "2019-01-01T00:00:00Z", **fields: Any
) -> dict[str, Any]:
    fields.setdefault("name", subject_id.replace("_", " ").title())
    fields.setdefault("kind", "person")
    return ev("subject_registered", occurred_at, subject=subject_id, **fields)


def account(
    account_id: str, occurred_at: str = "2020-01-01T00:00:00Z", **fields: Any
) -> dict[str, Any]:
    platform, handle = account_id.split(":", 1)
    fields.setdefault("platform", platform)
    fields.setdefault("handle", handle)
    return ev("account_registered", occurred_at, account=account_id, **fields)


def jsonl(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def export(store: Store) -> list[dict[str, Any]]:
    """The whole log, in sequence order, as stored."""
    return [json.loads(line) for line in store.ok("export", "--nl").stdout.splitlines()]


def last_recorded_at(store: Store) -> str:
    return str(export(store)[-1]["recorded_at"])


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def just_before(recorded_at: str) -> str:
    """One microsecond before a recorded_at: the last instant that did not know it."""
    return iso(parse_time(recorded_at) - timedelta(microseconds=1))


def just_after(recorded_at: str) -> str:
    """One microsecond after a recorded_at: the first instant past it."""
    return iso(parse_time(recorded_at) + timedelta(microseconds=1))


def reject(
    store: Store,
    *args: str,
    input: str | None = None,
    expect: tuple[str, ...] = (),
    code: int = 1,
) -> str:
    """Run a command that must be refused; return its stderr.

    Checks the exit status, that the refusal was a handled error (no traceback),
    that every fragment of ``expect`` is in the message, and that the log did not
    change.
    """
    before = store.count()
    result = store.run(*args, input=input)
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"unhandled: {result.exception!r}"
    assert "Traceback" not in result.output
    assert "internal failure" not in result.output
    stderr = result.stderr
    assert stderr.startswith("Usage:" if code == 2 else "Error: "), stderr
    for fragment in expect:
        assert fragment in stderr, f"{fragment!r} not in {stderr!r}"
    assert store.count() == before, "a refused command changed the log"
    return stderr


def reject_append(store: Store, *events: dict[str, Any], expect: tuple[str, ...] = ()) -> str:
    """Append ``events`` as one batch that must be refused as a whole."""
    return reject(store, "append", "-", input=jsonl(*events), expect=expect)


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a readable table, keyed by its header; columns come from the dashes line.

    Tolerant of which columns a table shows, so tests can ask for the ones they need.
    """
    lines = text.splitlines()
    header, dashes, body = lines[0], lines[1], lines[2:]
    assert set(dashes) <= {"-", " "}, f"second line is not a rule: {dashes!r}"
    spans: list[tuple[int, int]] = []
    start = None
    for position, char in enumerate(dashes + " "):
        if char == "-" and start is None:
            start = position
        elif char == " " and start is not None:
            spans.append((start, position))
            start = None
    names = [header[a:b].strip() for a, b in spans]
    # The last column may run past its rule when a cell is wider than the sample.
    spans[-1] = (spans[-1][0], 10**9)
    return [
        {name: line[a:b].strip() for name, (a, b) in zip(names, spans, strict=True)}
        for line in body
    ]
