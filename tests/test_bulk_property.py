"""Property: one batch accepts and refuses exactly what event-by-event appends do.

Random histories (the plans of test_replay_property: backfilled status measures,
posts, exemptions, follower counts and retractions) are appended event by event;
then the accepted ones, with some re-sent, go in as one batch, and each refused one
goes in as one batch after the accepted events before it. The batch runs with
caches so small that every stream and lane is dropped and read back, and rounds so
short that they end mid-chunk (the re-sends shift them): the overlays for unflushed
events, the per-chunk lookups of ids and targets, and the rule checks must together
see exactly what a single append sees.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings

import ledger.application as application
from ledger.application import Ledger, LedgerError
from ledger.events import parse_event
from ledger.location import StoreLocation
from tests.conftest import Store
from tests.test_replay_property import Model, plans


def _events(lines: list[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        yield number, parse_event(line, number)


def _ledger(directory: Path, name: str) -> Ledger:
    path = directory / f"{name}.db"
    Store(str(path), "sqlite", directory).ok("init")
    return Ledger(StoreLocation.parse(str(path)))


def _content(ledger: Ledger) -> list[dict[str, Any]]:
    records = [json.loads(leaf) for leaf in ledger.iter_leaves()]
    return [{k: v for k, v in r.items() if k not in ("recorded_at", "actor")} for r in records]


def _reason(error: LedgerError) -> str:
    return str(error).split(": ", 1)[1]  # drop "line N"


def _as_in_one_batch(reason: str) -> str:
    """A single append's refusal as the batch gives it: the events it calls recorded
    are lines of that batch there, and named so."""
    return re.sub(
        r"the recorded event (\S+) \(([^()]*)\)",
        r"the event \1 (\2, another line of this batch)",
        reason,
    )


def _with_resends(lines: list[str]) -> tuple[list[str], int]:
    """Every third line re-sent two lines later: a harmless repeat, skipped, which
    shifts the insert rounds against the chunks."""
    batch = list(lines)
    resent = 0
    for index in range(len(lines) - 1, 0, -3):
        batch.insert(min(index + 2, len(batch)), lines[index])
        resent += 1
    return batch, resent


def _tiny_caches() -> Any:
    return mock.patch.multiple(application, FLUSH_EVERY=3, LANE_CACHE=2, STREAM_CACHE=1)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans)
def test_one_batch_accepts_and_refuses_what_single_appends_do(plan: list[Any]) -> None:
    model = Model(prefix="bulk")
    accepted = [json.dumps(event) for event in model.registrations()]
    refused: list[tuple[int, str, str]] = []  # (accepted before it, line, reason)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        single = _ledger(directory, "single")
        try:
            single.append(_events(accepted), actor="t")
            for step in plan:
                built = model.candidate(step)
                if built is None:
                    continue
                event, lane = built
                line = json.dumps(event)
                try:
                    result = single.append(_events([line]), actor="t")
                except LedgerError as error:
                    refused.append((len(accepted), line, _reason(error)))
                    continue
                assert result.first_sequence is not None
                model.record(event, lane, result.first_sequence)
                accepted.append(line)
            expected = _content(single)
        finally:
            single.close()

        batch, resent = _with_resends(accepted)
        bulk = _ledger(directory, "bulk")
        try:
            with _tiny_caches():
                result = bulk.append(_events(batch), actor="t")
            assert (result.appended, result.skipped) == (len(accepted), resent)
            assert _content(bulk) == expected
        finally:
            bulk.close()

        for number, (before, line, reason) in enumerate(refused[:3]):
            fresh = _ledger(directory, f"refused{number}")
            try:
                lines = [*_with_resends(accepted[:before])[0], line]
                with _tiny_caches(), pytest.raises(LedgerError) as refusal:
                    fresh.append(_events(lines), actor="t")
                assert refusal.value.line == len(lines)
                assert _reason(refusal.value) == _as_in_one_batch(reason)
                assert _content(fresh) == []
            finally:
                fresh.close()
