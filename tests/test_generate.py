"""The benchmark generator: deterministic, exact, realistic, and valid for the ledger."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.generate import MAX_ACCOUNTS, POSTS_PER_ACCOUNT, Generator, generate, main
from cli.main import cli
from ledger.events import parse_event
from ledger.rules import APPEALABLE_TYPES
from tests.ledger_helpers import EVENT_TYPES

EARLIEST = datetime(2015, 1, 1, tzinfo=UTC)
LATEST = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def lines_5000() -> list[str]:
    return list(generate(5000, 11))


@pytest.fixture(scope="module")
def records_5000(lines_5000: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines_5000]


def stream_key(record: dict[str, Any], streams: dict[str, str]) -> str:
    """The ledger stream an event lands in (see ledger.rules.stream_of)."""
    kind = record["type"]
    if kind == "event_retracted":
        return streams[record["target"]]
    if kind == "platform_renamed":
        return f"platform:{record['platform']}"
    if kind == "subject_registered" or (kind.startswith("exemption_") and "subject" in record):
        return f"subject:{record['subject']}"
    return f"account:{record['account']}"


def backfill_share(records: list[dict[str, Any]]) -> float:
    """Lines whose occurred_at is earlier than one already written for the same stream."""
    streams: dict[str, str] = {}
    latest: dict[str, datetime] = {}
    backfilled = 0
    for record in records:
        key = stream_key(record, streams)
        streams[record["event_id"]] = key
        occurred = datetime.fromisoformat(record["occurred_at"])
        if key in latest and occurred < latest[key]:
            backfilled += 1
        else:
            latest[key] = occurred
    return backfilled / len(records)


def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    first = "\n".join(generate(2000, 5))
    assert first == "\n".join(generate(2000, 5))
    assert first != "\n".join(generate(2000, 6))


@pytest.mark.parametrize("count", [0, 1, 2, 7, 1234])
def test_exactly_n_lines(count: int) -> None:
    assert sum(1 for _ in generate(count, 3)) == count


def test_streams_lazily() -> None:
    """Nothing is precomputed: the first line of a 10^9-event run comes at once."""
    first = next(generate(10**9, 1))
    assert json.loads(first)["event_id"] == "g1-0"


def test_state_is_bounded_by_the_account_cap() -> None:
    assert Generator(10_000_000, 1).planned_accounts == MAX_ACCOUNTS
    assert Generator(3000, 1).planned_accounts == 50
    generator = Generator(12_000, 2)
    for _ in generator.lines():
        pass
    assert len(generator.accounts) == generator.planned_accounts == 60
    assert all(len(a.posts) <= POSTS_PER_ACCOUNT for a in generator.accounts)


def test_every_line_is_a_valid_event(
    lines_5000: list[str], records_5000: list[dict[str, Any]]
) -> None:
    ids = set()
    for number, line in enumerate(lines_5000, start=1):
        event = parse_event(line, number)
        assert event.event_id is not None
        assert event.source
        assert EARLIEST <= event.occurred_at <= LATEST
        until = getattr(event, "until", None)
        assert until is None or until <= LATEST
        ids.add(event.event_id)
    assert len(ids) == len(lines_5000)
    assert all(r["occurred_at"].endswith("Z") for r in records_5000)
    assert sum("note" in r for r in records_5000) > 0.1 * len(records_5000)


def test_realistic_mix(records_5000: list[dict[str, Any]]) -> None:
    types = Counter(r["type"] for r in records_5000)
    total = len(records_5000)
    assert types["post_published"] > 0.2 * total
    assert types["followers_observed"] > 0.15 * total
    # Every type occurs except, possibly, the rare platform renames.
    for kind in sorted(set(EVENT_TYPES) - {"platform_renamed"}):
        assert types[kind] > 0, kind
    accounts = [r for r in records_5000 if r["type"] == "account_registered"]
    assert len({a["platform"] for a in accounts}) >= 5
    assert any("subject" not in a for a in accounts)
    assert all(a["account"].startswith(a["platform"] + ":") for a in accounts)
    suspensions = [r for r in records_5000 if r["type"] == "account_suspended"]
    assert any("until" in s for s in suspensions)
    assert any("until" not in s for s in suspensions)
    exemption_holders = {
        "subject" if "subject" in r else "account"
        for r in records_5000
        if r["type"] == "exemption_applied"
    }
    assert exemption_holders == {"subject", "account"}


def test_average_line_size(lines_5000: list[str]) -> None:
    average = sum(len(line.encode()) for line in lines_5000) / len(lines_5000)
    assert 250 <= average <= 400


def test_backfill_share(records_5000: list[dict[str, Any]]) -> None:
    assert 0.05 <= backfill_share(records_5000) <= 0.15


def test_generator_reports_the_same_backfill_share(records_5000: list[dict[str, Any]]) -> None:
    generator = Generator(5000, 11)
    for _ in generator.lines():
        pass
    assert generator.stats.backfilled / 5000 == pytest.approx(backfill_share(records_5000))


def test_retractions_are_about_one_percent_and_safe(records_5000: list[dict[str, Any]]) -> None:
    by_id = {r["event_id"]: r for r in records_5000}
    retractions = [r for r in records_5000 if r["type"] == "event_retracted"]
    assert 0.005 <= len(retractions) / len(records_5000) <= 0.02
    targets = [r["target"] for r in retractions]
    assert len(targets) == len(set(targets)), "an event is retracted twice"
    appealed = {r["target"] for r in records_5000 if r["type"].startswith("appeal_")}
    position = {r["event_id"]: i for i, r in enumerate(records_5000)}
    for retraction in retractions:
        target = by_id[retraction["target"]]
        assert position[target["event_id"]] < position[retraction["event_id"]]
        assert target["type"] not in ("event_retracted", "subject_registered")
        assert target["type"] != "account_registered"
        assert target["event_id"] not in appealed
    for record in records_5000:
        if record["type"] == "appeal_filed":
            assert by_id[record["target"]]["type"] in APPEALABLE_TYPES


def test_registrations_come_first(records_5000: list[dict[str, Any]]) -> None:
    subjects: set[str] = set()
    accounts: set[str] = set()
    for record in records_5000:
        if record["type"] == "subject_registered":
            subjects.add(record["subject"])
        elif record["type"] == "account_registered":
            assert record.get("subject") is None or record["subject"] in subjects
            accounts.add(record["account"])
        elif "account" in record:
            assert record["account"] in accounts
        elif "subject" in record:
            assert record["subject"] in subjects


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_ledger_accepts_a_generated_batch(tmp_path: Path, seed: int) -> None:
    events = 3000
    file = tmp_path / "events.jsonl"
    file.write_text("".join(line + "\n" for line in generate(events, seed)), encoding="utf-8")
    db = str(tmp_path / "l.db")
    runner = CliRunner()
    init = runner.invoke(cli, ["--store", db, "init"])
    assert init.exit_code == 0, init.output
    result = runner.invoke(cli, ["--store", db, "append", "--json", str(file)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["appended"] == events


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events", "300", "--seed", "4"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 300
    assert lines == list(islice(generate(300, 4), 300))
    assert "bytes/line" in captured.err
    assert "backfilled" in captured.err
