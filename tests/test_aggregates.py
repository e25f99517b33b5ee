"""Stored events are eventsourcing aggregate histories: one stream per account,
subject or platform, reconstituted by the library's repository."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.domain import AccountStream, PlatformStream, SubjectStream
from ledger.location import StoreLocation
from ledger.rules import fold_status, stream_id
from tests.conftest import Store


def test_the_repository_reconstitutes_each_stream_with_its_whole_history(store: Store) -> None:
    seed = resources.files("ledger").joinpath("data/seed.jsonl").read_text(encoding="utf-8")
    store.ok("append", "-", input=seed)
    records = [json.loads(line) for line in store.ok("export", "--nl").stdout.splitlines()]
    accounts = json.loads(store.ok("accounts", "--json").stdout)
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        for row in accounts:
            stream: Any = ledger.repository.get(stream_id("account", row["account"]))
            assert isinstance(stream, AccountStream)
            own = [r for r in records if r.get("account") == row["account"]]
            assert stream.version == len(own)
            assert [r["event_id"] for r in stream.records] == [r["event_id"] for r in own]
            status = fold_status(stream.lanes().get("status", []))
            # The read model's current status is the fold of the aggregate's status lane.
            assert status.status == row["status"]
            if status.status != "active":
                assert status.cause == row["cause_event"]
        subject: Any = ledger.repository.get(stream_id("subject", "khamenei"))
        assert isinstance(subject, SubjectStream)
        assert subject.lanes()["registration"][0].type == "subject_registered"
        renames = [r for r in records if r["type"] == "platform_renamed"]
        for rename in renames:
            platform: Any = ledger.repository.get(stream_id("platform", rename["platform"]))
            assert isinstance(platform, PlatformStream)
    finally:
        ledger.close()


def test_a_ledger_of_another_format_is_refused_with_a_way_out(store: Store) -> None:
    if store.kind != "sqlite":
        pytest.skip("Storage.check_format is shared by both engines; SQLite shows it")
    import sqlite3

    with sqlite3.connect(store.url) as connection:
        connection.execute("DROP TRIGGER ledger_meta_no_update")
        connection.execute("UPDATE ledger_meta SET value = '1' WHERE key = 'format_version'")
    result = store.run("status", "facebook:anyone")
    assert result.exit_code != 0
    assert "holds ledger format 1, this version reads format 2" in result.stderr


def test_appends_store_the_topics_of_the_aggregates() -> None:
    """Appends write topics from ledger.rules without importing the library; they
    must be the ones the repository resolves to the aggregates' events."""
    from eventsourcing.utils import get_topic, resolve_topic

    for aggregate in (AccountStream, SubjectStream, PlatformStream):
        assert aggregate.kind.started_topic == get_topic(aggregate.Started)
        assert aggregate.kind.recorded_topic == get_topic(aggregate.Recorded)
        assert resolve_topic(aggregate.kind.started_topic) is aggregate.Started
