"""Times as people type them on the command line, read exactly as event input reads them.

Event input is parsed by pydantic-core; a time a user copies from their data into
``--as-of`` or ``--since`` must mean the same instant there, and what input refuses
must be refused here too (tests/test_times.py pins the two together). This module
imports no pydantic, so read commands start without it.

The accepted form: ``YYYY-MM-DD``, alone (00:00 UTC), or followed by ``T``, ``t``,
a space or ``_``, then ``HH:MM``, optional ``:SS`` and a fraction (``.`` or ``,``,
cut to microseconds), then ``Z``, ``z`` or an offset ``±HH:MM`` / ``±HHMM``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

EXPECTED_TIME = "expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z"
LEAP_SECOND = re.compile(r"[Tt _]\d\d:\d\d:60", re.ASCII)
LEAP_SECOND_MESSAGE = "a leap second (:60) has no UTC timestamp here; give :59.999999 instead"
SPACES_AROUND = f"{EXPECTED_TIME}, with no spaces or line breaks around it"
# ISO 8601 allows a day's end as 24:00; RFC 3339, pydantic and Python do not.
END_OF_DAY = re.compile(r"[Tt _]24:?00(?::?00(?:[.,]0*)?)?(?:[Zz]|[+-]|$)", re.ASCII)
END_OF_DAY_MESSAGE = "24:00 (a day's end) is not taken: give 00:00 of the next day"

_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[Tt _]([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:[.,](\d+))?)?"
    r"(?:([Zz])|([+-])([01]\d|2[0-3]):?([0-5]\d))?)?",
    re.ASCII,  # as pydantic-core: other scripts' digits are not digits here
)


class TimeError(ValueError):
    """A time that is not one the ledger reads; the message says why."""


def parse_utc(text: str) -> datetime:
    """The aware UTC instant ``text`` names; a date alone is its 00:00 UTC."""
    if text != text.strip():
        raise TimeError(SPACES_AROUND)
    if LEAP_SECOND.search(text):
        raise TimeError(LEAP_SECOND_MESSAGE)
    if END_OF_DAY.search(text):
        raise TimeError(END_OF_DAY_MESSAGE)
    match = _TIME.fullmatch(text)
    if match is None:
        raise TimeError(EXPECTED_TIME)
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if hour is not None and zulu is None and sign is None:
        raise TimeError(f"needs a UTC offset, e.g. {text}Z")
    offset = timedelta(0)
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "")[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
    except ValueError as error:
        raise TimeError(f"not a valid date: {error}") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise TimeError("is outside the representable range once converted to UTC") from None
