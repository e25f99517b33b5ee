"""The bulk path and the single-event path enforce exactly the same rules.

A generated history is appended once as one batch and once event by event; both
ledgers must end up with the same events in the same order. Then invalid events
are slipped in: the batch must refuse as a whole with the same reason that the
single append gives for that event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.generate import generate
from ledger.application import Ledger, LedgerError
from ledger.events import parse_event
from ledger.location import StoreLocation
from tests.conftest import Store, drop_schema

ASSIGNED = ("recorded_at", "actor")


_OPENED: list[Ledger] = []


def _ledger(store: Store) -> Ledger:
    ledger = Ledger(StoreLocation.parse(store.url))
    _OPENED.append(ledger)
    return ledger


@pytest.fixture(autouse=True)
def _close_ledgers() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def _events(lines: list[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        yield number, parse_event(line, number)


def _content(store: Store) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in store.ok("export", "--nl").stdout.splitlines()]
    return [{k: v for k, v in row.items() if k not in ASSIGNED} for row in rows]


def _reason(error: LedgerError) -> str:
    return str(error).split(": ", 1)[1]  # drop "line N"


@pytest.fixture
def history() -> list[str]:
    return list(generate(400, 11))


@pytest.fixture
def second_store(store: Store, tmp_path: Path) -> Iterator[Store]:
    """Another initialised store of the same kind."""
    if store.kind == "sqlite":
        other = Store(str(tmp_path / "single.db"), "sqlite", tmp_path)
        other.ok("init")
        yield other
        return
    import uuid

    from tests.conftest import PG_URL

    schema = f"t_{uuid.uuid4().hex[:12]}"
    other = Store(f"{PG_URL}?schema={schema}", "postgres", tmp_path)
    other.ok("init")
    try:
        yield other
    finally:
        drop_schema(schema)


def test_one_batch_and_single_appends_record_the_same_history(
    store: Store, second_store: Store, history: list[str]
) -> None:
    batch = _ledger(store)
    assert batch.append(_events(history), actor="bulk").appended == len(history)
    single = _ledger(second_store)
    for number, event in _events(history):
        single.append([(number, event)], actor="single")
    assert _content(store) == _content(second_store)


@pytest.mark.parametrize(
    "bad",
    [
        # Reinstating an account that is active.
        {
            "type": "account_reinstated",
            "account": "{account}",
            "occurred_at": "2015-06-01T00:00:00Z",
        },
        # Removing a post that was never published.
        {
            "type": "post_removed",
            "account": "{account}",
            "post": "never-published",
            "policy": "spam",
            "occurred_at": "2025-06-01T00:00:00Z",
        },
        # An event about an account nobody registered.
        {
            "type": "followers_observed",
            "account": "nowhere:nobody",
            "count": 1,
            "occurred_at": "2024-01-01T00:00:00Z",
        },
        # Retracting an event that does not exist.
        {
            "type": "event_retracted",
            "target": "no-such-event",
            "reason": "x",
            "occurred_at": "2024-01-01",
        },
    ],
    ids=["reinstate-active", "remove-unpublished", "unregistered", "retract-unknown"],
)
def test_both_paths_refuse_the_same_event_for_the_same_reason(
    store: Store, history: list[str], bad: dict[str, Any]
) -> None:
    account = next(
        json.loads(line)["account"]
        for line in history
        if json.loads(line)["type"] == "account_registered"
    )
    event = {**bad, "source": "test", "event_id": "the-bad-one"}
    event = {k: (v.format(account=account) if isinstance(v, str) else v) for k, v in event.items()}
    head, tail = history[:200], history[200:]
    bulk = _ledger(store)
    with pytest.raises(LedgerError) as in_batch:
        bulk.append(_events([*head, json.dumps(event), *tail]), actor="bulk")
    assert in_batch.value.line == 201
    assert store.count() == 0, "a refused batch appends nothing"

    single = _ledger(store)
    single.append(_events(head), actor="single")
    with pytest.raises(LedgerError) as alone:
        single.append(_events([json.dumps(event)]), actor="single")
    assert _reason(alone.value) == _reason(in_batch.value)
    single.append(_events(tail), actor="single")
    assert store.count() == len(history)


@pytest.fixture
def tiny_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """An append that can keep only a handful of streams and lanes in memory, and
    flushes every few events: every lane and stream is dropped and re-read from
    the log (or from the unflushed round) over and over."""
    import ledger.application as application

    monkeypatch.setattr(application, "FLUSH_EVERY", 7)
    monkeypatch.setattr(application, "LANE_CACHE", 5)
    monkeypatch.setattr(application, "STREAM_CACHE", 3)


@pytest.mark.usefixtures("tiny_caches")
def test_a_batch_with_tiny_caches_records_what_single_appends_record(
    store: Store, second_store: Store, history: list[str]
) -> None:
    # Two batches: the second one meets streams with history from before it.
    half = len(history) // 2
    bulk = _ledger(store)
    assert bulk.append(_events(history[:half]), actor="bulk").appended == half
    assert bulk.append(_events(history[half:]), actor="bulk").appended == len(history) - half
    single = _ledger(second_store)
    for number, event in _events(history):
        single.append([(number, event)], actor="single")
    assert _content(store) == _content(second_store)


def test_dropped_lanes_never_forget_a_lane() -> None:
    from ledger.rules import DroppedLanes

    dropped = DroppedLanes()
    assert ("s", "post:1") not in dropped
    keys = [(f"stream-{i % 97}", f"post:{i}") for i in range(20_000)]
    for key in keys[::2]:
        dropped.add(key)
    assert all(key in dropped for key in keys[::2])
    false_positives = sum(key in dropped for key in keys[1::2])
    assert false_positives < 10  # 4 hashes over 2**26 bits: about 1e-12 here


def test_a_flood_of_post_lanes_keeps_a_streams_own_lanes() -> None:
    from ledger.rules import Lane, LaneCache, PostLane, StatusLane

    cache = LaneCache(3)
    status = Lane(StatusLane, StatusLane())
    cache.put(("account-1", "status"), status)
    for i in range(10):
        cache.put(("account-1", f"post:{i}"), Lane(PostLane, PostLane()))
    assert cache.get(("account-1", "status")) is status
    assert len(cache) == 4  # three item lanes and the status lane
    assert cache.get(("account-1", "post:0")) is None
    assert ("account-1", "post:0") in cache.dropped
    assert ("account-1", "status") not in cache.dropped
    for i in range(4):  # each segment drops its own least recently used
        cache.put((f"account-{i + 2}", "status"), Lane(StatusLane, StatusLane()))
    assert cache.get(("account-1", "status")) is None
    assert cache.get(("account-1", "post:9")) is not None


@pytest.mark.usefixtures("tiny_caches")
def test_rules_see_lanes_the_cache_has_dropped(store: Store, history: list[str]) -> None:
    """An early post, removed again at the end of a long batch: its lane is long
    gone from the cache, and is re-read to refuse the second removal."""
    records = [json.loads(line) for line in history]
    removed = next(r for r in records if r["type"] == "post_removed")
    again = {
        **removed,
        "event_id": "removed-again",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    bulk = _ledger(store)
    with pytest.raises(LedgerError) as refused:
        bulk.append(_events([*history, json.dumps(again)]), actor="bulk")
    assert refused.value.line == len(history) + 1
    assert f"was already removed by {removed['event_id']}" in str(refused.value)
    assert store.count() == 0


# One account's lines for the round-boundary tests below.
_REGISTERED = json.dumps(
    {
        "type": "account_registered",
        "event_id": "reg",
        "account": "x:someone",
        "platform": "x",
        "handle": "someone",
        "occurred_at": "2024-01-01",
        "source": "test",
    }
)


def _followers(n: int) -> str:
    return json.dumps(
        {
            "type": "followers_observed",
            "event_id": f"f{n}",
            "account": "x:someone",
            "count": n,
            "occurred_at": f"2024-01-01T00:00:{n:02d}Z",
            "source": "test",
        }
    )


def _retraction(event_id: str, target: str) -> str:
    return json.dumps(
        {
            "type": "event_retracted",
            "event_id": event_id,
            "target": target,
            "reason": "entered twice",
            "occurred_at": "2024-01-02",
            "source": "test",
        }
    )


@pytest.mark.usefixtures("tiny_caches")
def test_a_repeat_is_recognised_across_a_round_that_ends_mid_chunk(store: Store) -> None:
    """Chunks and rounds are both 7 events, but a skipped repeat shifts the rounds:
    the second chunk is flushed after its first event, whose re-send follows."""
    lines = [_REGISTERED, *(_followers(n) for n in range(1, 6)), _REGISTERED]  # chunk 1
    lines += [_followers(6), _followers(6), _followers(7)]  # chunk 2: round ends after f6
    result = _ledger(store).append(_events(lines), actor="bulk")
    assert (result.appended, result.skipped) == (8, 2)
    assert store.count() == 8


@pytest.mark.usefixtures("tiny_caches")
def test_a_retraction_flushed_since_the_chunk_lookup_still_counts(store: Store) -> None:
    """A chunk looks up its targets once, at its start. Here the first retraction of
    f6 is still unflushed then, and is flushed by the chunk's first event: the second
    retraction of f6, later in that chunk, must still see it."""
    lines = [_REGISTERED, *(_followers(n) for n in range(1, 6)), _REGISTERED]  # round 1: 6
    lines += [_followers(6), _retraction("r1", "f6"), *(_followers(n) for n in range(7, 12))]
    lines += [_followers(12), _retraction("r2", "f6")]  # f12 flushes r1; r2 must see it
    with pytest.raises(LedgerError) as refused:
        _ledger(store).append(_events(lines), actor="bulk")
    assert refused.value.line == len(lines)
    assert "f6 was already retracted by r1" in str(refused.value)
    assert store.count() == 0
