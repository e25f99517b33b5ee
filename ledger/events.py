"""The enforcement event schema: what admins submit, validated at the boundary.

Every event enters as a JSON object whose ``type`` selects one model of a single
discriminated union (``EVENT_ADAPTER``). Models are frozen and forbid unknown
fields, so a typo is an error rather than silently dropped data.

Times are timezone-aware and normalised to UTC. A bare date (``2024-02-08``) is
accepted for ``occurred_at`` and means 00:00Z that day; the event then keeps
``occurred_at_precision = "day"`` so nobody mistakes it for an exact instant.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Re-exported: code that needs no validator imports them from ledger.vocabulary.
from ledger.times import (
    END_OF_DAY,
    END_OF_DAY_MESSAGE,
    EXPECTED_TIME,
    LEAP_SECOND,
    LEAP_SECOND_MESSAGE,
    SPACES_AROUND,
)
from ledger.vocabulary import ASSIGNED_FIELDS as ASSIGNED_FIELDS
from ledger.vocabulary import (
    COUNTRY_CODES,
    HIDDEN_CHARACTERS,
    MAX_QUOTED,
    SLUG_MEANING,
    account_id_problem,
    event_type_meant,
    has_hidden_characters,
    platform_of,
    quoted,
    shorten,
)
from ledger.vocabulary import EVENT_TYPE_NAMES as EVENT_TYPE_NAMES
from ledger.vocabulary import SLUG as SLUG
from ledger.vocabulary import TARGETED_TYPES as TARGETED_TYPES
from ledger.vocabulary import iso as iso

# ASCII digits only, as pydantic-core reads them (not "２０２４" or "٢٠٢٤").
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}\Z", re.ASCII)


# pydantic also reads a number, or a string of digits, as Unix seconds: "2024" would
# be 1970-01-01T00:33:44Z. Only ISO 8601 text (or a datetime from Python) is a time here.
_ISO_DATE_START = re.compile(r"^\d{4}-\d{2}-\d{2}", re.ASCII)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "an array" if isinstance(value, list) else type(value).__name__


def _date_means_midnight_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{EXPECTED_TIME}, not {_json_kind(value)}")
    if value != value.strip():
        raise ValueError(SPACES_AROUND)
    if not _ISO_DATE_START.match(value):
        raise ValueError(EXPECTED_TIME)
    if LEAP_SECOND.search(value):
        raise ValueError(LEAP_SECOND_MESSAGE)
    if END_OF_DAY.search(value):
        raise ValueError(END_OF_DAY_MESSAGE)
    if _DATE_ONLY.match(value):
        # Checked here so that an error quotes the date as given, not its midnight.
        try:
            date.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"not a valid date: {error}") from None
        return value + "T00:00:00Z"
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is outside the representable range in UTC") from None


# AwareDatetime makes a naive timestamp an error instead of a guess.
UtcDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_date_means_midnight_utc),
    AfterValidator(_to_utc),
]


# What strip_whitespace strips (Unicode White_Space, as Rust's trim; not Python's
# strip, which takes \x1c-\x1f too), as a character class's inside: a text of these
# alone is blank. The characters themselves, not escapes, so every regex dialect (the
# schema's readers') reads the class alike.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_BLANK = re.compile(f"[{WHITESPACE}]+")
# Text: no NUL (U+0000), which PostgreSQL text cannot hold, so a ledger must refuse it
# on every backend alike (a regex in pydantic-core: no Python call per field); and not
# blank. The loader strips first and finds a blank text too short; the pattern says it
# in the schema, whose readers see the text as given (a file valid by it is not then
# refused), and refuses nothing the loader accepted.
TEXT = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,199}$"
# No whitespace and no control characters (C0, DEL, C1) in the id part: an id is
# printed in tables and messages, where an escape sequence would drive the terminal.
ACCOUNT_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}:[^\s\x00-\x1f\x7f-\x9f]{1,200}$"
COUNTRY_CODE = r"^[A-Z]{2}$"
LANGUAGE_TAG = r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$"
# What each pattern means, for people: a failed match names this, not the regex.
PATTERN_MEANINGS = {
    SLUG: SLUG_MEANING,
    IDENTIFIER: (
        "expected an identifier: ASCII letters, digits and _ . : @ / + -, starting with a"
        " letter or digit"
    ),
    ACCOUNT_ID: (
        "expected '<platform>:<handle or id>': a lowercase platform slug, a colon, then no"
        " spaces or control characters"
    ),
    COUNTRY_CODE: "expected an ISO 3166-1 alpha-2 code in capitals, e.g. IR",
    # Tags are case-insensitive; one spelling per language keeps them comparable.
    LANGUAGE_TAG: "expected a BCP 47 language tag, its language in lowercase, e.g. fa or en-GB "
    "(DSA's EN is en)",
}
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=TEXT)
]
Slug = Annotated[str, StringConstraints(pattern=SLUG, min_length=1, max_length=64)]
Identifier = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER, max_length=200),
]


AccountId = Annotated[
    str,
    StringConstraints(pattern=ACCOUNT_ID, max_length=265),
]
# Validation context for events already in a log (a copy): rules added since they were
# stored do not apply to them, or an older log could not be moved (STYLE: old stored
# events still load).
STORED = {"stored": True}


def _is_stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


def _composed_unless_stored(text: str, info: ValidationInfo) -> str:
    return text if _is_stored(info) else unicodedata.normalize("NFC", text)


# A policy is matched exactly by filters and counted by its text: one spelled with a
# combining accent printed like the composed one yet split the counts. Kept in
# Unicode NFC (as stored events were, they stay).
PolicyText = Annotated[Text, AfterValidator(_composed_unless_stored)]


CountryCode = Annotated[str, StringConstraints(pattern=COUNTRY_CODE)]
# I-JSON's exact integers (RFC 7493): leaves are RFC 8785 canonical JSON, which is
# defined only for them, and beyond them JSON readers disagree on the value.
MAX_SAFE_INTEGER = 2**53 - 1


# Set when a count was read from a float: the float may have rounded a fraction away
# (9007199254740990.5, 1e-400), so parse_event checks the number as the line wrote it.
_COUNT_FROM_FLOAT: ContextVar[bool] = ContextVar("count_from_float", default=False)


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer is any number without a fraction (5.0, 1e3): read as one,
    so that a file valid by the schema is not refused. Text ("5") and true stay refused
    by the strict int that follows."""
    if type(value) is float:
        if value == float("inf"):  # 1e400: whole, and too large
            raise ValueError(f"Input should be less than or equal to {MAX_SAFE_INTEGER}")
        if value == float("-inf"):
            raise ValueError("Input should be greater than or equal to 0")
        if not value.is_integer():  # a fraction, or NaN
            raise ValueError("expected a whole number")
        _COUNT_FROM_FLOAT.set(True)
        return int(value)
    return value


# The constraints before the validator: after it, pydantic's JSON Schema named them
# "ge"/"le", which JSON Schema readers ignore (a negative count passed the schema).
Count = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_SAFE_INTEGER,
        strict=True,
        description="A whole number: 5, or 5.0 or 5e0 alike (JSON Schema's integer).",
    ),
    BeforeValidator(_whole_number),
]


class EventBase(BaseModel):
    """Fields every event carries."""

    # defer_build: a one-event command builds one validator, not all eighteen.
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, defer_build=True
    )

    occurred_at: UtcDatetime = Field(
        description="When the platform acted: ISO 8601 with an offset, or a date (00:00Z)."
    )
    occurred_at_precision: Literal["instant", "day"] = Field(
        default="instant",
        description="'day' when occurred_at was given as a date only.",
    )
    source: Text = Field(description="URL or citation for the fact.")
    note: Text | None = None
    event_id: Identifier | None = Field(
        default=None,
        description="Idempotency key; assigned by the ledger when absent.",
    )

    @model_validator(mode="before")
    @classmethod
    def _mark_day_precision(cls, data: Any) -> Any:
        if isinstance(data, dict):
            occurred = data.get("occurred_at")
            if isinstance(occurred, str) and _DATE_ONLY.match(occurred):
                declared = data.get("occurred_at_precision", "day")
                if declared != "day":
                    raise ValueError(
                        "occurred_at_precision: a date-only occurred_at has precision 'day'"
                    )
                data = {**data, "occurred_at_precision": "day"}
        return data

    @model_validator(mode="after")
    def _day_precision_is_midnight(self) -> EventBase:
        if self.occurred_at_precision == "day" and (
            self.occurred_at.hour
            or self.occurred_at.minute
            or self.occurred_at.second
            or self.occurred_at.microsecond
        ):
            raise ValueError(
                "occurred_at_precision: 'day' needs occurred_at at 00:00:00Z (given "
                f"occurred_at {iso(self.occurred_at)})"
            )
        return self


class _HasUntil(EventBase):
    until: UtcDatetime | None = Field(
        default=None, description="When the measure ends by itself; absent means indefinite."
    )

    @model_validator(mode="after")
    def _until_after_occurred(self) -> _HasUntil:
        if self.until is not None and self.until <= self.occurred_at:
            raise ValueError(
                f"until: {iso(self.until)} must be later than occurred_at ({iso(self.occurred_at)})"
            )
        return self


MAX_LISTED = 50  # roles or restriction kinds: a 100,000-role registration passed


def _each_once(values: list[str], info: ValidationInfo) -> list[str]:
    """A short list, each value once: one listed twice says nothing more and would be
    counted twice. (New input only: a stored event is kept as it was recorded.)"""
    if _is_stored(info):
        return values
    if len(values) > MAX_LISTED:
        raise ValueError(f"lists at most {MAX_LISTED} values, not {len(values):,}")
    if len(set(values)) < len(values):
        again = next(v for i, v in enumerate(values) if v in values[:i])
        raise ValueError(f"lists each value once ({again!r} is given twice)")
    return values


SlugList = Annotated[
    list[Slug],
    AfterValidator(_each_once),
    # Said in the schema too: a file valid by it is not then refused.
    Field(json_schema_extra={"maxItems": MAX_LISTED, "uniqueItems": True}),
]


class SubjectRegistered(EventBase):
    type: Literal["subject_registered"] = "subject_registered"
    subject: Identifier
    name: Text
    kind: Literal["person", "organisation", "state_body"]
    roles: SlugList = Field(default_factory=list, description="e.g. head_of_state")
    country: CountryCode | None = Field(default=None, description="ISO 3166-1 alpha-2")

    @field_validator("country")
    @classmethod
    def _an_assigned_country_code(cls, code: str | None, info: ValidationInfo) -> str | None:
        if code is not None and code not in COUNTRY_CODES and not _is_stored(info):
            hint = " (the United Kingdom's is GB)" if code == "UK" else ""
            raise ValueError(f"expected an assigned ISO 3166-1 alpha-2 code, e.g. IR{hint}")
        return code


class AccountRegistered(EventBase):
    type: Literal["account_registered"] = "account_registered"
    account: AccountId = Field(
        description="'<platform>:<handle or id>', e.g. instagram:khamenei_ir"
    )
    platform: Slug
    handle: Text
    subject: Identifier | None = None
    language: Annotated[str, StringConstraints(pattern=LANGUAGE_TAG)] | None = None

    @field_validator("account")
    @classmethod
    def _an_id_that_prints_as_itself(cls, account: str, info: ValidationInfo) -> str:
        # Checked where an id is made: an account's later events must name it as it
        # was registered, whichever version registered it.
        problem = None if _is_stored(info) else account_id_problem(account)
        if problem is not None:
            raise ValueError(problem)
        return account

    @model_validator(mode="after")
    def _account_prefix_is_platform(self) -> AccountRegistered:
        if platform_of(self.account) != self.platform:
            raise ValueError(
                f"account: '{self.account}' must start with its platform '{self.platform}:'"
            )
        return self


class PlatformRenamed(EventBase):
    type: Literal["platform_renamed"] = "platform_renamed"
    platform: Slug
    name: Text

    @field_validator("name")
    @classmethod
    def _a_name_that_prints_as_itself(cls, name: str, info: ValidationInfo) -> str:
        # A platform's name is compared with slugs and other names (NFKC, casefold):
        # "Threads" with a zero-width space or soft hyphen printed as "Threads" but
        # compared as another name.
        if not _is_stored(info) and has_hidden_characters(name):
            raise ValueError(HIDDEN_CHARACTERS)
        return name


class FollowersObserved(EventBase):
    type: Literal["followers_observed"] = "followers_observed"
    account: AccountId
    count: Count


class PostPublished(EventBase):
    type: Literal["post_published"] = "post_published"
    account: AccountId
    post: Identifier
    url: Text | None = None
    excerpt: Text | None = None


class PostWarningScreenApplied(EventBase):
    type: Literal["post_warning_screen_applied"] = "post_warning_screen_applied"
    account: AccountId
    post: Identifier
    policy: PolicyText
    reason: Text
    exception: Slug | None = Field(default=None, description="e.g. public_interest")


class PostWarningScreenRemoved(EventBase):
    type: Literal["post_warning_screen_removed"] = "post_warning_screen_removed"
    account: AccountId
    post: Identifier


class PostRemoved(EventBase):
    type: Literal["post_removed"] = "post_removed"
    account: AccountId
    post: Identifier
    policy: PolicyText


class PostRestored(EventBase):
    type: Literal["post_restored"] = "post_restored"
    account: AccountId
    post: Identifier


class AccountRestricted(_HasUntil):
    type: Literal["account_restricted"] = "account_restricted"
    account: AccountId
    policy: PolicyText
    restrictions: Annotated[SlugList, Field(min_length=1)] = Field(
        description="e.g. read_only, reduced_reach"
    )


class AccountSuspended(_HasUntil):
    type: Literal["account_suspended"] = "account_suspended"
    account: AccountId
    policy: PolicyText


class AccountReinstated(EventBase):
    type: Literal["account_reinstated"] = "account_reinstated"
    account: AccountId


class AccountRemoved(EventBase):
    type: Literal["account_removed"] = "account_removed"
    account: AccountId
    policy: PolicyText


class _Exemption(EventBase):
    account: AccountId | None = Field(
        default=None, description="The account holding it (give account or subject, one)."
    )
    subject: Identifier | None = Field(
        default=None,
        description="The subject holding it, through its accounts (give account or subject, one).",
    )
    platform: Slug | None = Field(
        default=None,
        description="With subject: the platform whose rule it is (its accounts there "
        "hold it); without one, the exemption holds on every platform.",
    )
    exemption: Slug = Field(description="e.g. un_recognised_government_official")
    policy: PolicyText

    @model_validator(mode="after")
    def _exactly_one_holder(self) -> _Exemption:
        if (self.account is None) == (self.subject is None):
            raise ValueError("account: give exactly one of 'account' or 'subject'")
        if self.account is not None and self.platform is not None:
            # An account's platform is its id's prefix: a second one could only differ.
            raise ValueError("platform: only with subject; an account's is its id's prefix")
        return self


class ExemptionApplied(_Exemption):
    type: Literal["exemption_applied"] = "exemption_applied"


class ExemptionRevoked(_Exemption):
    type: Literal["exemption_revoked"] = "exemption_revoked"


class AppealFiled(EventBase):
    type: Literal["appeal_filed"] = "appeal_filed"
    account: AccountId
    appeal: Identifier
    target: Identifier = Field(description="event_id of the action appealed against")


class AppealDecided(EventBase):
    type: Literal["appeal_decided"] = "appeal_decided"
    account: AccountId
    appeal: Identifier
    target: Identifier = Field(description="event_id of the action appealed against")
    outcome: Literal["upheld", "overturned", "modified"]


class EventRetracted(EventBase):
    """The only way to correct a mistake: the target stays in the log, marked retracted."""

    type: Literal["event_retracted"] = "event_retracted"
    occurred_at: UtcDatetime = Field(
        description="When the correction was made (not before its target's occurred_at): "
        "ISO 8601 with an offset, or a date (00:00Z)."
    )
    target: Identifier = Field(description="event_id of the event being retracted")
    reason: Text


EVENT_MODELS: tuple[type[EventBase], ...] = (
    SubjectRegistered,
    AccountRegistered,
    PlatformRenamed,
    FollowersObserved,
    PostPublished,
    PostWarningScreenApplied,
    PostWarningScreenRemoved,
    PostRemoved,
    PostRestored,
    AccountRestricted,
    AccountSuspended,
    AccountReinstated,
    AccountRemoved,
    ExemptionApplied,
    ExemptionRevoked,
    AppealFiled,
    AppealDecided,
    EventRetracted,
)

EVENT_TYPES: dict[str, type[EventBase]] = {m.model_fields["type"].default: m for m in EVENT_MODELS}
if tuple(EVENT_TYPES) != EVENT_TYPE_NAMES:  # the pydantic-free list must name these models
    raise RuntimeError("ledger.vocabulary.EVENT_TYPE_NAMES differs from ledger.events models")
if {name for name, m in EVENT_TYPES.items() if "target" in m.model_fields} != TARGETED_TYPES:
    raise RuntimeError("ledger.vocabulary.TARGETED_TYPES differs from ledger.events models")

AnyEvent = Annotated[
    Union[  # noqa: UP007 - a Union keeps the member order visible in the schema
        SubjectRegistered,
        AccountRegistered,
        PlatformRenamed,
        FollowersObserved,
        PostPublished,
        PostWarningScreenApplied,
        PostWarningScreenRemoved,
        PostRemoved,
        PostRestored,
        AccountRestricted,
        AccountSuspended,
        AccountReinstated,
        AccountRemoved,
        ExemptionApplied,
        ExemptionRevoked,
        AppealFiled,
        AppealDecided,
        EventRetracted,
    ],
    Field(discriminator="type"),
]


@functools.cache
def event_adapter() -> TypeAdapter[AnyEvent]:
    """The union's validator, built on first use (it is the costly part of start-up)."""
    return TypeAdapter(AnyEvent)


# Problems said in one message: a line of 20,000 unknown fields said each, 700 KB.
MAX_PROBLEMS = 10


class EventInputError(ValueError):
    """Input that is not a valid event; ``problems`` are 'field.path: message' lines."""

    def __init__(self, problems: list[str], line: int | None = None) -> None:
        self.problems = problems
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(where + self.summary())

    def summary(self) -> str:
        """The problems in one line, the first few of them and how many more."""
        more = len(self.problems) - MAX_PROBLEMS
        return "; ".join(self.problems[:MAX_PROBLEMS]) + (
            f"; and {more:,} more" if more > 0 else ""
        )


JSON_LINES = "input is JSON Lines: each event one JSON object on one line"


# A path part shown as it is: a field name or a list index. Any other (an unknown
# field's name comes from the input) is quoted like a value, so that a newline or a
# terminal escape in it cannot forge a line of output or take over the terminal.
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}|[0-9]{1,9}")


def _path_part(part: Any) -> str:
    text = str(part)
    return text if _PLAIN_NAME.fullmatch(text) else quoted(text)


class _Written(str):
    """A number as its line spells it."""


def _numbers_as_written(text: str | bytes | None) -> Any:
    """The line decoded with its numbers kept as written: pydantic reports a number as
    the float it read (1e3 as 1000.0, 1e400 as Infinity), which the line does not hold."""
    if text is None:
        return None
    try:
        return json.loads(text, parse_float=_Written, parse_int=_Written, parse_constant=_Written)
    except (ValueError, RecursionError):
        return None


def _as_written(decoded: Any, loc: tuple[int | str, ...]) -> str | None:
    """The number at ``loc`` in the line as decoded by _numbers_as_written, cut like
    any value quoted."""
    value = decoded
    for index, part in enumerate(loc):
        if index == 0 and isinstance(value, dict) and value.get("type") == part:
            continue  # the union's tag, not a field
        if not isinstance(value, dict | list):
            return None
        try:
            value = value[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(value, _Written):
        return None
    size = f" ({len(value):,} characters)" if len(value) > MAX_QUOTED else ""
    return shorten(str(value), MAX_QUOTED) + size


def describe_validation_error(error: ValidationError, text: str | bytes | None = None) -> list[str]:
    """Render pydantic errors as 'field.path: message (given ...)' for people; a number
    given is quoted as ``text``, the line, spells it."""
    problems = []
    items = error.errors(include_url=False)
    # Read again only when a number is quoted: an error path, not the bulk one.
    number = any(
        type(i.get("input")) in (int, float) or i["type"] == "union_tag_invalid" for i in items
    )
    decoded = _numbers_as_written(text) if number else None
    for item in items:
        loc = [_path_part(p) for p in item["loc"]]
        # A discriminated union puts the tag first; the user thinks in fields.
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]
        path = ".".join(loc) or "event"
        message = item["msg"].removeprefix("Value error, ")
        # Cross-field checks name their field as "field: reason".
        named = re.match(r"^([a-z_]+): (.*)$", message)
        if path == "event" and named:
            path, message = named.group(1), named.group(2)
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = "type"
            message = (
                "unknown event type"
                if item["type"] == "union_tag_invalid"
                else ("required field is missing")
            )
            message += _type_meant(item.get("input"))
            message += "; expected one of: " + ", ".join(EVENT_TYPES)
        if item["type"] == "json_invalid":
            detail = str(item.get("ctx", {}).get("error", message))
            # The parser counts lines within the one line it was given.
            detail = re.sub(r" at line 1 column (\d+)$", r" at column \1", detail)
            if "hex escape" in detail or "surrogate" in detail:
                # e.g. "\ud800" alone: half of a UTF-16 pair, which no text can hold.
                detail += (
                    " (a \\uD800-\\uDFFF escape must be one half of a surrogate pair, "
                    "high then low, e.g. \\ud83d\\ude00)"
                )
            if detail.startswith("EOF while parsing"):  # the line ended inside a value
                detail = re.sub(r" at (line \d+ )?column \d+$", "", detail) + f"; {JSON_LINES}"
            problems.append(f"malformed JSON: {detail}")
            continue
        if item["type"] == "dict_type" and not loc:
            kinds = {list: "list", str: "str", int: "int", float: "float", bool: "bool"}
            given_kind = kinds.get(type(item.get("input")), "null")
            hint = f"; {JSON_LINES}, not an array" if given_kind == "list" else ""
            problems.append(f"event: expected a JSON object, given {given_kind}{hint}")
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown field"
            if loc and loc[-1] in ASSIGNED_FIELDS:
                message = "assigned by the ledger, cannot be given"
            if loc and loc[-1] == "sequence":  # only an export's lines carry one
                message += " (a line of `export --nl`? `copy --export FILE` moves a log)"
        elif item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "string_too_short" and (
            _is_blank(item.get("input"))
            or (item.get("input") == "" and _is_text(error.title, item["loc"]))
        ):
            # Too short once stripped: pydantic counted none of the characters given.
            # Empty text is blank too ("" in a slug is not text: it keeps pydantic's).
            message = "must not be blank: expected some text, not whitespace alone"
        elif item["type"] == "string_pattern_mismatch":
            if "\x00" in str(item.get("input")):
                message = "must not contain NUL characters (U+0000)"
            else:
                pattern = str(item.get("ctx", {}).get("pattern"))
                message = PATTERN_MEANINGS.get(pattern, message)
        elif item["type"] in ("datetime_parsing", "datetime_from_date_parsing"):
            # pydantic's says what is wrong, not what is read; after a valid date its
            # "extra characters" are a time of day it could not read (T24:30, T10Z).
            detail = message.rpartition(", ")[2]
            if detail.startswith("unexpected extra characters"):
                detail = "what follows the date is not an ISO 8601 time of day and offset"
            message = f"{EXPECTED_TIME}; {detail}"
        given = item.get("input")
        if item["type"] == "missing" or (isinstance(given, dict) and not loc):
            shown = ""  # the event itself: its fields are named one by one
        elif isinstance(given, dict):
            shown = " (given a JSON object)"
        else:
            written = _as_written(decoded, item["loc"]) if decoded is not None else None
            shown = f" (given {written or quoted(given)})"
        if item["type"] == "union_tag_invalid":
            # The tag as given (5, not the '5' pydantic turns it into for its message).
            tag = given.get("type") if isinstance(given, dict) else item.get("ctx", {}).get("tag")
            written = _as_written(decoded, ("type",)) if decoded is not None else None
            shown = f" (given {written or quoted(tag)})"
        problems.append(f"{path}: {message}{shown}")
    return problems


def _is_blank(value: Any) -> bool:
    return isinstance(value, str) and _BLANK.fullmatch(value) is not None


def _is_text(title: str, loc: tuple[int | str, ...]) -> bool:
    """Whether the error at ``loc`` is a Text field's: the union's tag, then the field,
    or the field alone in an error of the model titled ``title`` (record's)."""
    if len(loc) == 2 and loc[0] in EVENT_TYPES:
        return _text_field(EVENT_TYPES[str(loc[0])], str(loc[1]))
    models = [m for m in EVENT_MODELS if m.__name__ == title]
    return len(loc) == 1 and len(models) == 1 and _text_field(models[0], str(loc[0]))


@functools.cache
def _text_field(model: type[EventBase], name: str) -> bool:
    field = model.model_fields.get(name)
    if field is None:
        return False

    def constraints(annotation: Any) -> Iterator[Any]:
        yield from getattr(annotation, "__metadata__", ())
        for argument in get_args(annotation):
            yield from constraints(argument)

    found = [*field.metadata, *constraints(field.annotation)]
    return any(isinstance(c, StringConstraints) and c.pattern == TEXT for c in found)


class _RepeatedName(ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _RepeatedName(name)
            seen.add(name)
    return members


# pydantic-core keeps the last of repeated names, silently; json's C scanner with a
# hook per object finds them.
_check_names = json.JSONDecoder(object_pairs_hook=_unique_names).decode


def _refuse_repeated_names(text: str | bytes, line: int | None) -> None:
    """A name given twice in one object is ambiguous: JSON readers disagree on which
    value counts, so the ledger would store one reading of a source that others
    read differently (I-JSON, RFC 7493, which RFC 8785 leaves assume, forbids it).
    Malformed JSON is left to the validator, which describes it. Cost: ~2.9 µs a
    line, ~3% of a bulk append."""
    decoded = text if isinstance(text, str) else str(text, "utf-8")
    try:
        _check_names(decoded)
    except _RepeatedName as repeated:
        try:
            where = _repeated_name_path(decoded)
        except (ValueError, RecursionError):  # the line fails later on: the name alone
            where = [repeated.name]
        path = ".".join(_path_part(part) for part in where)
        raise EventInputError(
            [f"{path}: given more than once in one object; give each field once"], line
        ) from None
    except (ValueError, RecursionError):
        pass


_REPEATED = object()  # a key no JSON text can hold


def _repeated_name_path(text: str) -> list[str | int]:
    """Where the first repeated name is, as a field path ("extra.0.source"): a second
    reading, only for a line already found to repeat one."""

    def marked(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
        members: dict[Any, Any] = {}
        for name, value in pairs:
            if name in members and _REPEATED not in members:
                members[_REPEATED] = name
            members[name] = value
        return members

    def find(value: Any, path: list[str | int]) -> list[str | int] | None:
        if isinstance(value, dict):
            if _REPEATED in value:
                return [*path, value[_REPEATED]]
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            return None
        for key, inner in items:
            found = find(inner, [*path, key])
            if found is not None:
                return found
        return None

    return find(json.JSONDecoder(object_pairs_hook=marked).decode(text), []) or []


def parse_event(
    data: str | bytes | dict[str, Any], line: int | None = None, *, stored: bool = False
) -> AnyEvent:
    """Validate one event from JSON text or a decoded object; ``stored``: an event
    already in a log (a copy), which the checks added for new input do not refuse."""
    if not isinstance(data, dict):
        _refuse_repeated_names(data, line)
    context = STORED if stored else None
    try:
        if isinstance(data, dict):
            kind = data.get("type")
            model = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
            if model is not None:
                return model.model_validate(data, context=context)  # type: ignore[return-value]
            return event_adapter().validate_python(data, context=context)
        # pydantic-core parses and validates in one pass: the bulk path's hot spot.
        _COUNT_FROM_FLOAT.set(False)
        event = event_adapter().validate_json(data)
        if _COUNT_FROM_FLOAT.get():
            _check_count_as_written(data, line)
        return event
    except ValidationError as e:
        text = None if isinstance(data, dict) else data
        raise EventInputError(describe_validation_error(e, text), line) from None


def _check_count_as_written(text: str | bytes, line: int | None) -> None:
    """A count read from a float is whole as the line writes it, not only once rounded
    to a float (which took 1e-400 for 0 and 1.00000000000000001 for 1)."""
    decoded = _numbers_as_written(text)
    written = _as_written(decoded, ("count",))
    if written is not None and isinstance(decoded, dict):
        number = Decimal(decoded["count"])
        if number != number.to_integral_value():
            raise EventInputError([f"count: expected a whole number (given {written})"], line)


def event_content(event: EventBase) -> dict[str, Any]:
    """The submitted content in JSON form, without ledger-assigned fields.

    This is what idempotency compares: the same event_id with the same content is a
    harmless re-send; with different content it is a conflict.
    """
    # The serializer directly, and event_id popped rather than excluded: the same
    # dict as model_dump(mode="json", exclude_none=True, exclude={"event_id"}) in
    # 60% of the time (a bulk import calls this once per event).
    content: dict[str, Any] = event.__pydantic_serializer__.to_python(
        event, mode="json", exclude_none=True
    )
    content.pop("event_id", None)
    return content


def event_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _as_accepted(event_adapter().json_schema())
    # The models default their type (code builds them by class); input must name it,
    # and JSON Schema readers ignore "discriminator" (OpenAPI's), so each branch says so.
    for definition in schema["$defs"].values():
        tag = definition.get("properties", {}).get("type")
        if tag is not None and "const" in tag:
            tag.pop("default", None)
            definition["required"] = ["type", *definition.get("required", [])]
    schema["title"] = "Enforcement ledger event"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _as_accepted(node: Any) -> Any:
    """The schema as input is read: a time may be a date alone (pydantic says
    date-time only, which refused every example given with a date), and the precision
    follows from it when not given (pydantic's default said 'instant' always)."""
    if isinstance(node, list):
        return [_as_accepted(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "date-time":
        kept = {key: value for key, value in node.items() if key not in ("format", "type")}
        return {
            **kept,
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ],
        }
    node = {key: _as_accepted(value) for key, value in node.items()}
    if node.get("title") == "Occurred At Precision":
        node.pop("default", None)
        node["description"] = (
            "'day' when occurred_at is a date alone, else 'instant'; set from occurred_at "
            "when not given"
        )
    return node


def _type_meant(given: object) -> str:
    """The "(did you mean 'account_removed'?)" for a type typed as a command
    ("account-removed"), in capitals or misspelt; nothing when none is close."""
    tag = given.get("type") if isinstance(given, dict) else None
    if not isinstance(tag, str):
        return ""
    meant = event_type_meant(tag)
    return f" (did you mean {meant!r}?)" if meant and meant != tag else ""
