"""Times given to the CLI's --as-of/--known-at/--since/--until mean what they mean in
event input: a time copied from the data is read as the same instant, and what input
refuses is refused (ledger.times mirrors pydantic-core's reading without importing it)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from ledger.events import UtcDatetime
from ledger.times import TimeError, parse_utc
from tests.conftest import Store
from tests.ledger_helpers import account

_EVENT_TIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


def _as_input(text: str) -> datetime | None:
    try:
        return _EVENT_TIME.validate_python(text)
    except ValidationError:
        return None


def _as_option(text: str) -> datetime | None:
    try:
        return parse_utc(text)
    except TimeError:
        return None


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


# Pieces near and across every boundary of the form, joined in any combination.
_DATES = st.one_of(
    st.builds(
        "{}-{}-{}".format,
        st.integers(0, 9999).map(lambda n: f"{n:04d}"),
        _two(0, 13),
        _two(0, 32),
    ),
    st.sampled_from(
        ["2024-3-01", "02024-03-01", "+2024-03-01", "2024-W06", "20240301", "٢٠٢٤-03-01"]
    ),
)
_TIMES = st.one_of(
    st.just(""),
    st.builds(
        "{}{}:{}{}".format,
        st.sampled_from(["T", "t", " ", "_", "\t", "TT"]),
        _two(0, 25),
        _two(0, 61),
        st.one_of(
            st.just(""),
            st.builds(
                ":{}{}".format,
                _two(0, 61),
                st.one_of(
                    st.just(""), st.just("."), st.from_regex(r"[.,][0-9]{1,12}", fullmatch=True)
                ),
            ),
        ),
    ),
    st.sampled_from(["T10", "T1000", "T10:0", "T1:00"]),
)
_ZONES = st.one_of(
    st.sampled_from(["", "Z", "z", " Z", "UTC", "+00", "-00:00", "Z+01:00"]),
    st.builds(
        "{}{}{}{}".format,
        st.sampled_from("+-"),
        _two(0, 25),
        st.sampled_from(["", ":"]),
        _two(0, 61),
    ),
)


_AROUND = st.sampled_from(["", "", "", " ", "\t", "\n", "\u00a0"])


@settings(max_examples=1500, deadline=None)
@given(_AROUND, _DATES, _TIMES, _ZONES, _AROUND)
def test_a_time_option_reads_exactly_as_event_input_does(
    before: str, date: str, time: str, zone: str, after: str
) -> None:
    text = before + date + time + zone + after
    assert _as_option(text) == _as_input(text), text


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2024-W06", "expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z, given '2024-W06'"),
        ("20240208", "expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z, given '20240208'"),
        (
            "2024-02-08T10:00",
            "needs a UTC offset, e.g. 2024-02-08T10:00Z, given '2024-02-08T10:00'",
        ),
        ("2023-02-29", "not a valid date: day is out of range for month, given '2023-02-29'"),
        (
            " 2024-02-08",
            "expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z, with no spaces or line "
            "breaks around it, given ' 2024-02-08'",
        ),
        (
            "２０２４-02-08",
            "expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z, given '２０２４-02-08'",
        ),
        (
            "2024-02-08T23:59:60Z",
            "a leap second (:60) has no UTC timestamp here; give :59.999999 instead, given "
            "'2024-02-08T23:59:60Z'",
        ),
    ],
)
def test_a_refused_time_option_says_why(store: Store, given: str, expected: str) -> None:
    result = store.fail("timeline", "--since", given, code=2)
    assert f"Invalid value for --since: {expected}\n" in result.output


def test_a_time_written_as_input_writes_it_reads_as_the_same_instant(store: Store) -> None:
    """Lower-case t and z, a comma fraction and a colon-less offset: all input accepts."""
    store.append(account("twitter:a", "2024-03-01t10:00:00,5+0530"))
    status = store.status("twitter:a", "--as-of", "2024-03-01t10:00:00,5+0530")
    assert status["as_of"] == "2024-03-01T04:30:00.500000Z"
    assert status["status"] == "active"
    before = store.run("status", "twitter:a", "--as-of", "2024-03-01t10:00:00,4+0530", "--json")
    assert before.exit_code == 1
    assert "has no registration that occurred by 2024-03-01T04:30:00.400000Z" in before.output


_EXPECTED = "expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2024-02-08T10:00:00Z ", f"{_EXPECTED}, with no spaces or line breaks around it"),
        ("\t2024-02-08", f"{_EXPECTED}, with no spaces or line breaks around it"),
        ("２０２４-02-08", f"{_EXPECTED} (given"),
        # ux19: ISO 8601's end of day was called "not an ISO 8601 time of day".
        ("2024-02-08T24:00:00Z", "24:00 (a day's end) is not taken: give 00:00 of the next day"),
        ("2024-02-08 24:00+01:00", "24:00 (a day's end) is not taken"),
        ("2024-02-08T24:00:00.000Z", "24:00 (a day's end) is not taken"),
    ],
)
def test_event_input_and_options_refuse_a_time_alike(
    store: Store, given: str, expected: str
) -> None:
    refused = store.fail("append", "-", input=json.dumps(account("twitter:a", given)) + "\n")
    assert f"line 1: occurred_at: {expected}" in refused.output, refused.output
    option = store.fail("timeline", "--since", given, code=2)
    assert expected.partition(" (given")[0] in option.output


def test_spaces_around_a_date_are_named_whatever_precision_is_declared(store: Store) -> None:
    """rv28: with "instant" declared, a date with a space first was refused as a
    date-only time given another precision (the spaces dropped to judge it)."""
    event = {**account("twitter:a", " 2024-02-08"), "occurred_at_precision": "instant"}
    refused = store.fail("append", "-", input=json.dumps(event) + "\n")
    assert f"line 1: occurred_at: {_EXPECTED}, with no spaces or line breaks around it" in (
        refused.output
    ), refused.output
