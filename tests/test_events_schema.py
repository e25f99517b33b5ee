"""The event schema at the boundary: what `append`, `record` and `schema` accept.

An admin submits JSON objects with a ``type``; each must match one of 18 models
exactly. These tests drive the real CLI and check, for every refusal, the exit
status, the message (line, field path, reason) and that the log is unchanged.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from ledger.vocabulary import EVENT_TYPE_NAMES
from tests.conftest import Store
from tests.ledger_helpers import (
    EVENT_TYPES,
    SOURCE,
    account,
    ev,
    export,
    jsonl,
    reject,
    reject_append,
    subject,
)

SCHEMA_COPY = Path(__file__).parent / "data" / "event.schema.json"

KHAMENEI = "khamenei"
IG = "instagram:khamenei_ir"

# A valid history using every event type exactly once, in an order where each
# event is valid given the ones before it.
HISTORY: list[dict[str, Any]] = [
    subject(
        KHAMENEI,
        "2020-01-01T00:00:00Z",
        event_id="e-subject",
        name="Ali Khamenei",
        roles=["head_of_state", "government_official"],
        country="IR",
    ),
    account(IG, "2020-01-02T00:00:00Z", event_id="e-account", subject=KHAMENEI, language="fa"),
    ev(
        "platform_renamed",
        "2023-07-23T00:00:00Z",
        event_id="e-rename",
        platform="twitter",
        name="X",
    ),
    ev(
        "followers_observed",
        "2021-01-01T00:00:00Z",
        event_id="e-followers",
        account=IG,
        count=200000,
    ),
    ev(
        "post_published",
        "2021-02-01T00:00:00Z",
        event_id="e-post",
        account=IG,
        post="oct-7",
        url="https://instagram.com/p/oct-7",
        excerpt="A post",
    ),
    ev(
        "post_warning_screen_applied",
        "2021-02-02T00:00:00Z",
        event_id="e-screen",
        account=IG,
        post="oct-7",
        policy="Community Guidelines",
        reason="may be in the public interest",
        exception="public_interest",
    ),
    ev(
        "post_warning_screen_removed",
        "2021-02-03T00:00:00Z",
        event_id="e-unscreen",
        account=IG,
        post="oct-7",
    ),
    ev(
        "post_removed",
        "2021-02-04T00:00:00Z",
        event_id="e-post-removed",
        account=IG,
        post="oct-7",
        policy="Hate speech",
    ),
    ev(
        "post_restored",
        "2021-02-05T00:00:00Z",
        event_id="e-post-restored",
        account=IG,
        post="oct-7",
    ),
    ev(
        "account_restricted",
        "2021-03-01T00:00:00Z",
        event_id="e-restricted",
        account=IG,
        policy="Spam",
        restrictions=["read_only", "reduced_reach"],
        until="2021-04-01T00:00:00Z",
    ),
    ev(
        "account_suspended",
        "2021-05-01T00:00:00Z",
        event_id="e-suspended",
        account=IG,
        policy="Violence",
    ),
    ev(
        "appeal_filed",
        "2021-05-02T00:00:00Z",
        event_id="e-appeal",
        account=IG,
        appeal="a-1",
        target="e-suspended",
    ),
    ev(
        "appeal_decided",
        "2021-05-10T00:00:00Z",
        event_id="e-decided",
        account=IG,
        appeal="a-1",
        target="e-suspended",
        outcome="overturned",
    ),
    ev("account_reinstated", "2021-05-11T00:00:00Z", event_id="e-reinstated", account=IG),
    ev(
        "exemption_applied",
        "2021-06-01T00:00:00Z",
        event_id="e-exempt",
        subject=KHAMENEI,
        exemption="un_recognised_government_official",
        policy="United Nations rule",
    ),
    ev(
        "exemption_revoked",
        "2021-07-01T00:00:00Z",
        event_id="e-unexempt",
        subject=KHAMENEI,
        exemption="un_recognised_government_official",
        policy="United Nations rule",
    ),
    ev(
        "account_removed",
        "2024-02-08T00:00:00Z",
        event_id="e-removed",
        account=IG,
        policy="Dangerous Organisations and Individuals",
        note="Meta spokesman, quoted 9 Feb 2024",
    ),
    ev(
        "event_retracted",
        "2024-02-09T00:00:00Z",
        event_id="e-retraction",
        target="e-followers",
        reason="wrong count",
    ),
]


def test_the_example_history_uses_every_type_once() -> None:
    assert sorted(e["type"] for e in HISTORY) == sorted(EVENT_TYPES)
    assert len(EVENT_TYPES) == 18


def test_every_event_type_is_accepted_by_append(store: Store) -> None:
    """Each example, appended on its own after the ones before it, is stored as given."""
    for index, event in enumerate(HISTORY):
        summary = store.append(event)
        assert summary == {
            "appended": 1,
            "skipped": 0,
            "first_sequence": index,
            "last_sequence": index,
        }, event["type"]
        stored = export(store)[-1]
        # Every submitted field is stored as given; the ledger adds its own.
        for key, value in event.items():
            assert stored[key] == value, (event["type"], key)
        assert stored["sequence"] == index
        assert stored["actor"] == "tester"
        assert stored["occurred_at_precision"] == "instant"
        assert stored["recorded_at"].endswith("Z")
    assert sorted(e["type"] for e in export(store)) == sorted(EVENT_TYPES)


def test_a_whole_valid_history_is_one_batch(store: Store) -> None:
    summary = store.append(*HISTORY)
    assert summary == {"appended": 18, "skipped": 0, "first_sequence": 0, "last_sequence": 17}
    assert [e["event_id"] for e in export(store)] == [e["event_id"] for e in HISTORY]


def test_append_reads_a_file_argument(store: Store) -> None:
    path = store.tmp_path / "events.jsonl"
    path.write_text(jsonl(*HISTORY[:3]), encoding="utf-8")
    result = store.ok("append", str(path))
    assert result.stdout == "Appended 3 event(s), sequence 0..2\n"


def test_blank_lines_are_ignored(store: Store) -> None:
    text = "\n" + jsonl(HISTORY[0]) + "   \n\n" + jsonl(HISTORY[1])
    assert store.ok("append", "-", input=text).stdout == "Appended 2 event(s), sequence 0..1\n"


def test_empty_input_appends_nothing(store: Store) -> None:
    assert store.ok("append", "-", input="").stdout == "Nothing to append\n"
    assert store.count() == 0


# --- record: one event from flags ---------------------------------------------


def test_record_subject_with_repeated_roles(store: Store) -> None:
    result = store.ok(
        "record",
        "subject-registered",
        "--subject",
        "khamenei",
        "--name",
        "Ali Khamenei",
        "--kind",
        "person",
        "--roles",
        "head_of_state",
        "--roles",
        "government_official",
        "--country",
        "IR",
        "--occurred-at",
        "2024-02-09",
        "--source",
        SOURCE,
        "--json",
    )
    (stored,) = export(store)
    assert json.loads(result.stdout) == {
        "appended": 1,
        "skipped": 0,
        "first_sequence": 0,
        "last_sequence": 0,
        "event_id": stored["event_id"],  # made by the ledger, named for what refers to it
    }
    assert stored["type"] == "subject_registered"
    assert stored["roles"] == ["head_of_state", "government_official"]
    assert stored["country"] == "IR"
    assert stored["occurred_at"] == "2024-02-09T00:00:00Z"
    assert stored["occurred_at_precision"] == "day"


def test_record_account_restricted_with_repeated_restrictions(store: Store) -> None:
    store.append(account("twitter:example"))
    result = store.ok(
        "record",
        "account-restricted",
        "--account",
        "twitter:example",
        "--policy",
        "Spam",
        "--restrictions",
        "read_only",
        "--restrictions",
        "reduced_reach",
        "--occurred-at",
        "2021-01-08T16:00:00Z",
        "--until",
        "2021-01-15T16:00:00Z",
        "--source",
        SOURCE,
        "--event-id",
        "r-1",
    )
    assert result.stdout == "Appended 1 event(s), sequence 1..1\n"
    stored = export(store)[-1]
    assert stored["event_id"] == "r-1"
    assert stored["restrictions"] == ["read_only", "reduced_reach"]
    assert stored["until"] == "2021-01-15T16:00:00Z"
    assert store.status("twitter:example", "--as-of", "2021-01-10")["status"] == "restricted"


def test_record_followers_count_is_an_integer(store: Store) -> None:
    store.append(account("twitter:khamenei_ir"))
    store.ok(
        "record",
        "followers-observed",
        "--account",
        "twitter:khamenei_ir",
        "--count",
        "1000000",
        "--occurred-at",
        "2024-02-09",
        "--source",
        SOURCE,
    )
    stored = export(store)[-1]
    assert stored["count"] == 1000000
    assert isinstance(stored["count"], int)


def test_a_record_refused_by_a_rule_names_no_input_line(store: Store) -> None:
    store.append(account("twitter:example", "2021-01-01T00:00:00Z"))
    stderr = reject(
        store,
        "record",
        "account-reinstated",
        "--account",
        "twitter:example",
        "--occurred-at",
        "2021-01-09",
        "--source",
        SOURCE,
    )
    assert stderr.startswith("Error: account_reinstated rejected: "), stderr


def test_record_suspension_and_retraction(store: Store) -> None:
    store.append(account("twitter:example"))
    store.ok(
        "record",
        "account-suspended",
        "--account",
        "twitter:example",
        "--occurred-at",
        "2021-01-08T16:00:00Z",
        "--policy",
        "Glorification of violence",
        "--source",
        SOURCE,
        "--event-id",
        "susp",
    )
    store.ok(
        "record",
        "event-retracted",
        "--target",
        "susp",
        "--reason",
        "wrong account",
        "--occurred-at",
        "2021-01-09",
        "--source",
        SOURCE,
    )
    assert [e["type"] for e in export(store)] == [
        "account_registered",
        "account_suspended",
        "event_retracted",
    ]
    assert store.status("twitter:example")["status"] == "active"


def test_record_missing_required_option_is_a_usage_error(store: Store) -> None:
    store.append(account("twitter:example"))
    reject(
        store,
        "record",
        "account-suspended",
        "--account",
        "twitter:example",
        "--occurred-at",
        "2021-01-08T16:00:00Z",
        "--source",
        SOURCE,
        code=2,
        expect=("Missing option '--policy'",),
    )


@pytest.mark.parametrize("given", ["many", "1_000", " 5", "007", "\u0661\u0660", "5.", "0x10"])
def test_record_non_integer_count_is_a_usage_error(store: Store, given: str) -> None:
    """What `append` refuses in a JSON line `record` refuses too: Python's int() took
    "1_000", " 5" and Arabic-Indic digits."""
    store.append(account("twitter:example"))
    args = ["--account", "twitter:example", "--occurred-at", "2024-02-09", "--source", SOURCE]
    reject(
        store,
        "record",
        "followers-observed",
        *args,
        "--count",
        given,
        code=2,
        expect=(
            "Invalid value for '--count'",
            f"{given!r} is not a number as JSON writes it, e.g. 1000",
        ),
    )
    line = {"type": "followers_observed", "account": "twitter:example", "count": given}
    reject_append(store, {**line, "occurred_at": "2024-02-09", "source": SOURCE})


def test_record_invalid_value_is_a_data_error(store: Store) -> None:
    store.append(account("twitter:example"))
    reject(
        store,
        "record",
        "followers-observed",
        "--account",
        "twitter:example",
        "--count",
        "-5",
        "--occurred-at",
        "2024-02-09",
        "--source",
        SOURCE,
        expect=("count: Input should be greater than or equal to 0 (given -5)",),
    )


@pytest.mark.parametrize(
    ("command", "option", "choices"),
    [
        ("subject-registered", "--kind", "[person|organisation|state_body]"),
        ("appeal-decided", "--outcome", "[upheld|overturned|modified]"),
    ],
)
def test_record_help_names_a_closed_set_of_values(
    store: Store, command: str, option: str, choices: str
) -> None:
    assert f"{option} {choices}" in store.ok("record", command, "--help").stdout


def test_record_a_value_outside_a_closed_set_is_a_data_error(store: Store) -> None:
    reject(
        store,
        "record",
        "subject-registered",
        *("--subject", "s", "--name", "S", "--kind", "alien"),
        *("--occurred-at", "2020-01-01", "--source", SOURCE),
        expect=("kind: Input should be 'person', 'organisation' or 'state_body' (given 'alien')",),
    )


def test_record_unknown_type_is_a_usage_error(store: Store) -> None:
    message = reject(store, "record", "account-banned", code=2)
    assert message.splitlines()[-1] == "Error: No such command 'account-banned'."
    # A typo names the type meant (click's suggestion saw none: they are made lazily).
    for given, meant in [
        ("acount-removed", "account-removed"),
        ("account_suspend", "account-suspended"),
        ("ACCOUNT_REMOVED", "account-removed"),
    ]:
        message = reject(store, "record", given, code=2).splitlines()[-1]
        assert message == f"Error: No such command '{given}'. Did you mean '{meant}'?"


# --- bad input: each refused with a precise message, nothing appended -----------


@pytest.fixture
def registered(store: Store) -> Store:
    """A store holding one registered account, twitter:example."""
    store.append(account("twitter:example", event_id="reg"))
    return store


def test_malformed_json_is_refused(registered: Store) -> None:
    reject(
        registered,
        "append",
        "-",
        input='{"type": "account_suspended", "account": "twitter:example",\n',
        expect=("Error: line 1: malformed JSON: ",),
    )


@pytest.mark.parametrize(
    ("escape", "hint"),
    [
        ("\\ud800", True),  # a high surrogate alone
        ("\\udc00", True),  # a low surrogate first
        ("\\ud800\\u0041", True),  # a high surrogate before a letter
        ("\\u00", False),  # too short: not about surrogates
    ],
)
def test_half_a_surrogate_pair_is_refused_with_what_is_expected(
    registered: Store, escape: str, hint: bool
) -> None:
    line = json.dumps(ev("subject_registered", "2020-01-01", subject="s", name="N", kind="person"))
    line = line.replace('"name": "N"', f'"name": "N{escape}"')
    stderr = reject(registered, "append", "-", input=line + "\n", expect=("malformed JSON",))
    assert ("one half of a surrogate pair, high then low" in stderr) is hint, stderr


def test_a_json_value_that_is_not_an_object_is_refused(registered: Store) -> None:
    reject(
        registered,
        "append",
        "-",
        input='["account_suspended"]\n',
        expect=(
            "Error: line 1: event: expected a JSON object, given list; input is JSON Lines: "
            "each event one JSON object on one line, not an array",
        ),
    )


def test_a_field_given_twice_is_refused_not_read_one_way(registered: Store) -> None:
    first = jsonl(
        ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example", policy="p")
    )
    # JSON readers disagree on which of two values counts; the ledger takes neither.
    twice = (
        '{"type": "account_reinstated", "account": "twitter:example", '
        '"occurred_at": "2021-01-09T00:00:00Z", "source": "https://example.org/a", '
        '"occurred_at": "2021-01-10T00:00:00Z"}\n'
    )
    reject(
        registered,
        "append",
        "-",
        input=first + twice,
        expect=("Error: line 2: occurred_at: given more than once in one object",),
    )
    # Inside a value, the path names where (it named the top-level field of that name).
    nested = twice.replace('"occurred_at": "2021-01-10T00:00:00Z"', '"note": [{"a": 1, "a": 2}]')
    reject(
        registered,
        "append",
        "-",
        input=first + nested,
        expect=("Error: line 2: note.0.a: given more than once in one object",),
    )
    # A line that fails later on as JSON too: the name alone (finding its path read
    # the line again, and that failure was called the store's, or exit 70).
    for tail in (' "x": }', ' "x": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        broken = '{"type": "account_registered", "note": {"a": 1, "a": 2},' + tail + "\n"
        reject(
            registered,
            "append",
            "-",
            input=broken,
            expect=("Error: line 1: a: given more than once in one object",),
        )


def test_a_byte_order_mark_opening_the_input_is_not_data(registered: Store) -> None:
    event = ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example", policy="p")
    registered.ok("append", "-", input="\ufeff" + jsonl(event))
    assert export(registered)[-1]["type"] == "account_suspended"
    # Anywhere else it is refused, said for what it is (it was "malformed JSON").
    reject(
        registered,
        "append",
        "-",
        input=jsonl(event) + "\ufeff" + jsonl(event),
        expect=("Error: line 2: event: the line starts with a byte order mark (U+FEFF)",),
    )
    # Lines split by a bare CR were one line with "trailing characters".
    reject(
        registered,
        "append",
        "-",
        input=jsonl(event).replace("\n", "\r") * 2,
        expect=("Error: line 1: event: lines end in a bare carriage return (CR, old Mac",),
    )
    # A line holding a bad escape: its position is given within the line.
    reject(
        registered,
        "append",
        "-",
        input=jsonl(event) + jsonl({**event, "source": "?"}).replace("?", "\\ud800"),
        expect=("Error: line 2: malformed JSON: unexpected end of hex escape at column ",),
    )


def test_unknown_type_is_refused_listing_the_valid_types(registered: Store) -> None:
    message = reject_append(
        registered,
        ev("account_banned", "2021-01-08T16:00:00Z", account="twitter:example"),
        expect=("line 1: type: unknown event type; expected one of: ", "(given 'account_banned')"),
    )
    for name in EVENT_TYPES:
        assert name in message


@pytest.mark.parametrize("typed", ["account-removed", "Account_Removed", "acount_removed"])
def test_a_mistyped_type_is_pointed_to_the_type_meant(registered: Store, typed: str) -> None:
    # `record account-removed` is the command; the line's type is account_removed.
    reject_append(
        registered,
        ev(typed, "2021-01-08T16:00:00Z", account="twitter:example", policy="p"),
        expect=(
            "line 1: type: unknown event type (did you mean 'account_removed'?); expected one of: ",
            f"(given {typed!r})",
        ),
    )


def test_missing_type_is_refused(registered: Store) -> None:
    reject(
        registered,
        "append",
        "-",
        input='{"account": "twitter:example", "occurred_at": "2021-01-01", "source": "x"}\n',
        expect=("line 1: type: required field is missing; expected one of: subject_registered",),
    )


def test_unknown_field_is_refused(registered: Store) -> None:
    reject_append(
        registered,
        ev(
            "account_suspended",
            "2021-01-08T16:00:00Z",
            account="twitter:example",
            policy="p",
            polcy="typo",
        ),
        expect=("Error: line 1: polcy: unknown field (given 'typo')",),
    )


def test_many_problems_in_one_line_are_cut(registered: Store) -> None:
    """A line of 20,000 unknown fields (under the line limit) gave a 717,794-byte
    message naming each."""
    fields = ", ".join(f'"x{n}": 1' for n in range(20_000))
    line = _followers_line("5").replace('"count": 5', f'"count": 5, {fields}')
    message = reject(registered, "append", "-", input=line)
    assert message.startswith("Error: line 1: x0: unknown field (given 1); x1: unknown field")
    assert message.endswith("; x9: unknown field (given 1); and 19,990 more\n")
    assert len(message) < 1_000
    # Ten are said in full.
    fields = ", ".join(f'"x{n}": 1' for n in range(10))
    line = _followers_line("5").replace('"count": 5', f'"count": 5, {fields}')
    assert reject(registered, "append", "-", input=line).endswith("x9: unknown field (given 1)\n")


def test_missing_required_field_is_refused(registered: Store) -> None:
    reject_append(
        registered,
        ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example"),
        expect=("Error: line 1: policy: required field is missing",),
    )


def test_source_is_required(registered: Store) -> None:
    event = ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example", policy="p")
    del event["source"]
    reject_append(registered, event, expect=("line 1: source: required field is missing",))


def test_naive_datetime_is_refused(registered: Store) -> None:
    reject_append(
        registered,
        ev("account_suspended", "2021-01-08T16:00:00", account="twitter:example", policy="p"),
        expect=("line 1: occurred_at: ", "timezone", "(given '2021-01-08T16:00:00')"),
    )


def test_naive_until_is_refused(registered: Store) -> None:
    reject_append(
        registered,
        ev(
            "account_suspended",
            "2021-01-08T16:00:00Z",
            account="twitter:example",
            policy="p",
            until="2021-02-01T00:00:00",
        ),
        expect=("line 1: until: ", "timezone"),
    )


@pytest.mark.parametrize(
    ("field", "given", "expect"),
    [
        # pydantic alone reads these as Unix seconds: "2024" became 1970-01-01T00:33:44Z.
        ("occurred_at", "2024", "(given '2024')"),
        ("occurred_at", "1704067200", "(given '1704067200')"),
        ("occurred_at", 1704067200, "not a number (given 1704067200)"),
        ("occurred_at", 1704067200.5, "not a number"),
        ("occurred_at", True, "not true/false"),
        ("occurred_at", ["2024-01-01"], "not an array"),
        ("occurred_at", None, "not null (given null)"),  # was "not NoneType"
        ("occurred_at", "20240101T000000Z", "(given '20240101T000000Z')"),
        ("until", 1767225600, "not a number (given 1767225600)"),
        ("until", "2026", "(given '2026')"),
        # A date, then what pydantic called "unexpected extra characters" (no format).
        ("occurred_at", "2024-03-01T10Z", "(given '2024-03-01T10Z')"),
        ("until", "2024-03-01T10:00:00+24:00", "not an ISO 8601 time of day and offset"),
        ("occurred_at", "2024-13-01T10:00:00Z", "Z; month value is outside expected range"),
    ],
)
def test_a_time_must_be_iso_8601_text(
    registered: Store, field: str, given: Any, expect: str
) -> None:
    event = ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example", policy="p")
    event[field] = given
    reject_append(
        registered,
        event,
        expect=(
            f"line 1: {field}: expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z",
            expect,
        ),
    )


def test_an_object_where_text_belongs_says_so(registered: Store) -> None:
    event = ev("account_suspended", "2021-01-08", account="twitter:example", policy="p")
    reject_append(
        registered,
        {**event, "note": {"a": 1}},
        expect=("line 1: note: Input should be a valid string (given a JSON object)",),
    )


def test_a_huge_value_is_quoted_cut_in_the_message(registered: Store) -> None:
    # The whole value was echoed: a 50 MB field made a 50 MB error message.
    policy = "p" * 5000
    message = reject_append(
        registered,
        ev("account_suspended", "2021-01-08", account="twitter:example", policy=policy),
        expect=("line 1: policy: String should have at most 2000 characters",),
    )
    assert f"(given '{'p' * 98}… (5,000 characters))" in message
    assert len(message) < 300


def test_a_line_over_the_size_limit_is_refused_before_it_is_parsed(registered: Store) -> None:
    from cli.main import MAX_LINE_BYTES

    valid = ev("account_suspended", "2021-01-08", account="twitter:example", policy="p")
    # Whitespace between JSON tokens is valid JSON: only the length is wrong.
    padded = json.dumps(valid).replace(", ", "," + " " * MAX_LINE_BYTES, 1)
    reject(
        registered,
        "append",
        "-",
        input=jsonl(valid) + padded + "\n",
        expect=(f"line 2: event: the line is longer than {MAX_LINE_BYTES:,} bytes",),
    )
    # Exactly the limit is an ordinary line, whatever ends it (the newline was counted:
    # the same line passed as a file's last line and failed before a newline).
    line = json.dumps(valid)
    exact = line.replace(", ", "," + " " * (MAX_LINE_BYTES - len(line.encode()) + 1), 1)
    assert len(exact.encode()) == MAX_LINE_BYTES
    for end in ("", "\n", "\r\n"):
        summary = json.loads(
            registered.ok("append", "--json", "--dry-run", "-", input=exact + end).stdout
        )
        assert summary["appended"] == 1, end
    one_more = exact.replace(", ", ",  ", 1)
    for end in ("", "\n", "\r\n"):
        reject(
            registered,
            "append",
            "-",
            input=one_more + end,
            expect=(f"line 1: event: the line is longer than {MAX_LINE_BYTES:,} bytes",),
        )


def test_times_keep_microseconds_and_drop_finer_digits(registered: Store) -> None:
    # README: times are kept to the microsecond (Go's RFC3339Nano gives nanoseconds).
    registered.append(
        ev(
            "account_suspended",
            "2021-01-08T16:00:00.1234567Z",
            account="twitter:example",
            policy="p",
        )
    )
    assert export(registered)[-1]["occurred_at"] == "2021-01-08T16:00:00.123456Z"


def test_a_leap_second_is_refused_with_a_way_out(registered: Store) -> None:
    reject_append(
        registered,
        ev("account_suspended", "2016-12-31T23:59:60Z", account="twitter:example", policy="p"),
        expect=(
            "line 1: occurred_at: a leap second (:60) has no UTC timestamp here; give "
            ":59.999999 instead (given '2016-12-31T23:59:60Z')",
        ),
    )


def test_count_is_a_strict_integer(registered: Store) -> None:
    reject_append(
        registered,
        ev("followers_observed", "2021-01-08T16:00:00Z", account="twitter:example", count="5"),
        expect=("line 1: count: Input should be a valid integer (given '5')",),
    )


def _followers_line(count: str, day: int = 8) -> str:
    """A followers_observed line with its count spelt as given."""
    event = ev("followers_observed", f"2021-01-{day:02}", account="twitter:example", count=0)
    return json.dumps(event).replace('"count": 0', f'"count": {count}') + "\n"


def test_a_whole_number_count_is_read_as_json_schema_reads_it(registered: Store) -> None:
    """JSON Schema's integer is any number without a fraction: "count": 5.0 was valid by
    the schema and refused ("Input should be a valid integer")."""
    written = {"5.0": 5, "1e3": 1000, "1E2": 100, "0.1e1": 1, "-0.0": 0, "2.5e1": 25}
    lines = "".join(_followers_line(text, day) for day, text in enumerate(written, 1))
    registered.ok("append", "-", input=lines)
    counts = [event["count"] for event in export(registered)[-len(written) :]]
    assert counts == list(written.values())
    assert all(type(count) is int for count in counts)
    # A float would round these whole (and store 9007199254740990 for the first).
    for count in ("5.5", "1e-1", "NaN", "9007199254740990.5", "1.00000000000000001", "1e-400"):
        reject(
            registered,
            "append",
            "-",
            input=_followers_line(count),
            expect=(f"line 1: count: expected a whole number (given {count})",),
        )
    # `record` reads --count as a line does.
    args = ["--account", "twitter:example", "--occurred-at", "2024-02-09", "--source", SOURCE]
    registered.ok("record", "followers-observed", *args, "--count", "1e3")
    assert export(registered)[-1]["count"] == 1000
    for count in ("5.5", "9007199254740990.5", "1e-400"):
        reject(
            registered,
            "record",
            "followers-observed",
            *args,
            "--count",
            count,
            code=2,
            expect=(f"Invalid value for '--count': expected a whole number, given {count!r}",),
        )
    reject(
        registered,
        "record",
        "followers-observed",
        *args,
        "--count",
        "1e99999999",  # refused before it is made an int of a hundred million digits
        code=2,
        expect=("expected a whole number at most 2**53 - 1, given '1e99999999'",),
    )
    reject(
        registered,
        "record",
        "followers-observed",
        *args,
        "--count",
        "-1e400",
        code=2,
        expect=("expected a whole number at least 0, given '-1e400'",),
    )
    registered.ok("record", "followers-observed", *args, "--count", "0e999")  # as append
    assert export(registered)[-1]["count"] == 0


def test_the_schema_bounds_count_in_json_schema_words(registered: Store) -> None:
    """pydantic named the bounds "ge"/"le", which JSON Schema readers ignore: a
    negative count passed the schema and was refused by append."""
    schema = json.loads(registered.ok("schema").stdout)
    count = schema["$defs"]["FollowersObserved"]["properties"]["count"]
    assert (count["minimum"], count["maximum"]) == (0, 2**53 - 1)
    assert '"ge"' not in json.dumps(schema)
    assert '"le"' not in json.dumps(schema)


def test_a_number_given_is_quoted_as_the_line_spells_it(registered: Store) -> None:
    """pydantic reports the float it read: "(given 1000.0)" for 1E3, "(given Infinity)"
    for 1e400, which the admin cannot find in the file."""
    long = "1" + "0" * 200
    five = _followers_line("5")
    for line, expected in (
        (
            _followers_line("1e400"),
            "count: Input should be less than or equal to 9007199254740991 (given 1e400)",
        ),
        (_followers_line(long), f"(given {long[:99]}… (201 characters))"),
        (five.replace('"2021-01-08"', "0.1E4"), "occurred_at: "),
        (five.replace('"2021-01-08"', "0.1E4"), "a number (given 0.1E4)"),
        (five.replace('"followers_observed"', "1E3"), "event_retracted (given 1E3)"),
    ):
        reject(registered, "append", "-", input=line, expect=(expected,))
    assert "(given 1e300)" in reject(registered, "append", "-", input=_followers_line("1e300"))
    # Too small, not too large.
    assert "count: Input should be greater than or equal to 0 (given -1e400)" in reject(
        registered, "append", "-", input=_followers_line("-1e400")
    )
    subject = '{"type": "subject_registered", "subject": "s", "name": "S", "kind": "person", '
    reject(
        registered,
        "append",
        "-",
        input=subject + '"roles": [1E2], "source": 2.50, "occurred_at": "2020-01-01"}\n',
        expect=(
            "roles.0: Input should be a valid string (given 1E2)",
            "source: Input should be a valid string (given 2.50)",
        ),
    )


def test_a_nul_character_is_refused_on_every_backend(registered: Store) -> None:
    # PostgreSQL text cannot hold U+0000 (it failed there as an internal error):
    # the schema refuses it, so both stores accept the same events.
    reject_append(
        registered,
        ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example", policy="a\x00b"),
        expect=("line 1: policy: must not contain NUL characters (U+0000) (given 'a\\x00b')",),
    )
    reject_append(
        registered,
        account("twitter:nul\x00"),
        expect=("line 1: account: must not contain NUL characters (U+0000)",),
    )


def test_blank_text_is_refused_as_blank(registered: Store) -> None:
    """Stripped, it was "String should have at least 1 character (given '   ')"."""
    for field, value in (("note", "   "), ("source", "\u3000\t"), ("policy", "\u2028")):
        suspension = ev("account_suspended", "2021-01-08", account="twitter:example", policy="p")
        reject_append(
            registered,
            {**suspension, field: value},
            expect=(
                f"line 1: {field}: must not be blank: expected some text, not whitespace "
                f"alone (given {value!r})",
            ),
        )


def test_empty_text_is_refused_as_blank_too(registered: Store) -> None:
    """ "" got pydantic's "String should have at least 1 character", "   " the blank one."""
    blank = "must not be blank: expected some text, not whitespace alone (given '')"
    suspension = ev("account_suspended", "2021-01-08", account="twitter:example", policy="p")
    for field in ("note", "source", "policy"):
        reject_append(registered, {**suspension, field: ""}, expect=(f"line 1: {field}: {blank}",))
    for option in ("--note", "--source", "--policy"):
        given = {"--policy": "p", "--source": SOURCE, option: ""}
        args = [arg for pair in given.items() for arg in pair]
        message = reject(
            registered,
            *("record", "account-suspended", "--account", "twitter:example"),
            *("--occurred-at", "2021-01-08", *args),
        )
        assert message == f"Error: {option[2:]}: {blank}\n", message
    # A slug is no text: "" there is as before.
    subject = ev("subject_registered", "2021-01-08", subject="k", name="n", kind="person")
    reject_append(
        registered,
        {**subject, "roles": [""]},
        expect=("line 1: roles.0: String should have at least 1 character (given '')",),
    )


def test_count_stays_within_json_exact_integers(registered: Store) -> None:
    # Leaves are RFC 8785 canonical JSON, which is defined for I-JSON integers only.
    largest = 2**53 - 1
    registered.append(
        ev("followers_observed", "2021-01-08T16:00:00Z", account="twitter:example", count=largest)
    )
    assert export(registered)[-1]["count"] == largest
    reject_append(
        registered,
        ev("followers_observed", "2021-01-09T16:00:00Z", account="twitter:example", count=2**53),
        expect=("line 1: count: Input should be less than or equal to 9007199254740991",),
    )


def test_a_date_alone_means_midnight_utc_with_day_precision(registered: Store) -> None:
    registered.append(ev("account_suspended", "2021-01-08", account="twitter:example", policy="p"))
    stored = export(registered)[-1]
    assert stored["occurred_at"] == "2021-01-08T00:00:00Z"
    assert stored["occurred_at_precision"] == "day"


def test_an_impossible_date_is_quoted_as_given(registered: Store) -> None:
    reject_append(
        registered,
        ev("account_suspended", "2021-02-30", account="twitter:example", policy="p"),
        expect=("line 1: occurred_at: not a valid date: ", "(given '2021-02-30')"),
    )


def test_a_full_timestamp_has_instant_precision(registered: Store) -> None:
    registered.append(
        ev("account_suspended", "2021-01-08T00:00:00Z", account="twitter:example", policy="p")
    )
    assert export(registered)[-1]["occurred_at_precision"] == "instant"


def test_a_date_cannot_claim_instant_precision(registered: Store) -> None:
    reject_append(
        registered,
        ev(
            "account_suspended",
            "2021-01-08",
            account="twitter:example",
            policy="p",
            occurred_at_precision="instant",
        ),
        expect=("occurred_at_precision: a date-only occurred_at has precision 'day'",),
    )


def test_day_precision_needs_midnight(registered: Store) -> None:
    reject_append(
        registered,
        ev(
            "account_suspended",
            "2021-01-08T16:00:00Z",
            account="twitter:example",
            policy="p",
            occurred_at_precision="day",
        ),
        expect=(
            "line 1: occurred_at_precision: 'day' needs occurred_at at 00:00:00Z (given "
            "occurred_at 2021-01-08T16:00:00Z)",
        ),
    )


def test_day_precision_needs_exactly_midnight(registered: Store) -> None:
    reject_append(
        registered,
        ev(
            "account_suspended",
            "2021-01-08T00:00:00.500000Z",
            account="twitter:example",
            policy="p",
            occurred_at_precision="day",
        ),
        expect=("line 1: occurred_at_precision: 'day' needs occurred_at at 00:00:00Z",),
    )


def test_an_offset_is_normalised_to_utc(registered: Store) -> None:
    registered.append(
        ev(
            "account_suspended",
            "2021-01-08T17:30:00+01:30",
            account="twitter:example",
            policy="p",
            until="2021-01-09T00:00:00-05:00",
        ),
    )
    stored = export(registered)[-1]
    assert stored["occurred_at"] == "2021-01-08T16:00:00Z"
    assert stored["until"] == "2021-01-09T05:00:00Z"
    assert stored["occurred_at_precision"] == "instant"


@pytest.mark.parametrize(
    "until",
    ["2021-01-01T00:00:00Z", "2021-02-01T00:00:00Z", "2021-02-01T01:00:00+01:00"],
    ids=["before", "equal", "equal-with-offset"],
)
def test_until_must_be_later_than_occurred_at(registered: Store, until: str) -> None:
    reject_append(
        registered,
        ev(
            "account_suspended",
            "2021-02-01T00:00:00Z",
            account="twitter:example",
            policy="p",
            until=until,
        ),
        expect=("line 1: until: ", "must be later than occurred_at (2021-02-01T00:00:00Z)"),
    )


def test_account_id_must_start_with_its_platform(store: Store) -> None:
    reject_append(
        store,
        account("twitter:example", platform="facebook"),
        expect=("line 1: account: 'twitter:example' must start with its platform 'facebook:'",),
    )


def test_account_id_needs_a_platform_prefix(store: Store) -> None:
    reject_append(
        store,
        ev(
            "account_registered",
            "2020-01-01",
            account="example",
            platform="twitter",
            handle="example",
        ),
        expect=(
            "line 1: account: expected '<platform>:<handle or id>': a lowercase platform slug,"
            " a colon, then no spaces or control characters (given 'example')",
        ),
    )


@pytest.mark.parametrize("character", ["\x1b", "\x07", "\x7f", "\x9b", "\t"])
def test_account_id_refuses_control_characters(store: Store, character: str) -> None:
    # Ids are printed in tables and messages; an escape sequence would drive the terminal.
    given = f"twitter:ex{character}[2Jample"
    reject_append(
        store,
        ev("account_registered", "2020-01-01", account=given, platform="twitter", handle="ex"),
        expect=("line 1: account: expected '<platform>:<handle or id>'", f"(given {given!r})"),
    )


@pytest.mark.parametrize(
    "character",
    ["\u200b", "\u200f", "\u061c", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u3164", "\ue000"],
)
def test_account_id_refuses_invisible_characters(store: Store, character: str) -> None:
    """The account id is what every query joins on: one with a zero-width space printed
    like another account's and split its history (status, counts, subjects)."""
    store.append(account("twitter:abc", "2020-01-01"))
    given = f"twitter:a{character}bc"
    reject_append(
        store,
        ev("account_registered", "2020-01-01", account=given, platform="twitter", handle="x"),
        expect=(
            "line 1: account: must not contain control characters or invisible ones",
            f"(given {given!r})",
        ),
    )
    # Checked where an id is made: any other event must name a registered account
    # (and one an older version registered keeps taking events, see test_copy).
    message = reject_append(
        store,
        ev("account_suspended", "2021-01-01", account=given, policy="p"),
        expect=(f"account {given!r} is not registered",),
    )
    # Not "did you mean 'twitter:abc'", which prints the same: the spelling, escaped.
    assert message.endswith(
        "; this id must not contain control characters or invisible ones (bidi, "
        f"zero-width) (given {given!a})\n"
    ), message
    assert [row["account"] for row in json.loads(store.ok("accounts", "--json").stdout)] == [
        "twitter:abc"
    ]


def test_account_ids_are_one_spelling_nfc_and_joiners_stay_within_words(store: Store) -> None:
    decomposed = "x:cafe\u0301"  # prints as x:café
    reject_append(
        store,
        ev("account_registered", "2020-01-01", account=decomposed, platform="x", handle="c"),
        expect=("account: must be in Unicode normal form NFC: NFC writes its U+0065 U+0301",),
    )
    # Composed, it is an id; so is a Persian word with a zero-width non-joiner between
    # two letters that would join (می‌خواهم), which is how it is spelt (as for actors).
    persian = "x:\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    store.append(account("x:caf\u00e9", "2020-01-01"), account(persian, "2020-01-01"))
    assert store.status(persian)["status"] == "active"
    reject_append(
        store,
        account("x:\u200cabc", "2020-01-01"),
        expect=("account: must not contain control characters or invisible ones",),
    )
    # wr19: between Latin letters a joiner shapes nothing: x:a\u200db printed as x:ab.
    # rv29/rv30 (IDNA's CONTEXTJ): nor between two Arabic letters (a ZWJ: they join
    # anyway), nor after a dal, which joins nothing on its left (محمد‌رضا printed as
    # محمدرضا), nor between Devanagari consonants with no virama.
    for joined in (
        "x:a\u200db",
        "x:a\u200cb",
        "x:\u0645\u200cb",
        "x:a\u200d\u0645",
        "x:\u0645\u062d\u200d\u0645\u062f",
        "x:\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627",
        "x:\u062f\u200c\u0627\u0646\u0627",
        "x:\u0915\u200d\u092e",
        # IDNA admits a non-joiner after a virama, which parts nothing at the end or
        # before no letter: x:क्‌ printed as x:क्.
        "x:\u0915\u094d\u200c",
        "x:\u0915\u094d\u200c-1",
    ):
        reject_append(
            store,
            account(joined, "2020-01-01"),
            expect=("account: must not contain control characters or invisible ones",),
        )
    devanagari = "x:\u0915\u094d\u200d\u0937"  # a conjunct: the joiner after the virama
    bengali = "x:\u09b0\u200d\u09cd\u09af"  # ra, ZWJ, virama, ya: the ya-phala after ra
    javanese = "x:\ua98f\ua9c0\u200c\ua98f"  # a ZWNJ after the pangkon (a virama)
    urdu = "x:\u0645\u06cc\u06ba\u200c\u0646\u06d2"  # between two letters that join
    store.append(
        *(account(joined, "2020-01-01") for joined in (devanagari, bengali, javanese, urdu))
    )
    assert store.status(devanagari)["status"] == "active"


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        (
            {"platform": "Twitter"},
            "platform: expected a lowercase slug: a-z, 0-9, '_', '.', '-', starting with a"
            " letter or digit (given 'Twitter')",
        ),
        (
            {"language": "EN"},
            "language: expected a BCP 47 language tag, its language in lowercase, e.g. fa or "
            "en-GB (DSA's EN is en) (given 'EN')",
        ),
        (
            {"subject": "a b"},
            "subject: expected an identifier: ASCII letters, digits and _ . : @ / + -",
        ),
    ],
)
def test_pattern_errors_say_what_was_expected(
    store: Store, fields: dict[str, str], expect: str
) -> None:
    event = {"platform": "twitter", "handle": "example", **fields}
    message = reject_append(
        store,
        ev("account_registered", "2020-01-01", account="twitter:example", **event),
        expect=(f"line 1: {expect}",),
    )
    assert "pattern" not in message


@pytest.mark.parametrize(
    "holder",
    [{"account": "twitter:example", "subject": "someone"}, {}],
    ids=["both", "neither"],
)
def test_exemption_needs_exactly_one_holder(registered: Store, holder: dict[str, str]) -> None:
    reject_append(
        registered,
        ev(
            "exemption_applied",
            "2021-01-01T00:00:00Z",
            exemption="public_interest",
            policy="p",
            **holder,
        ),
        expect=("line 1: account: give exactly one of 'account' or 'subject'",),
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("sequence", 0), ("recorded_at", "2021-01-01T00:00:00Z"), ("actor", "mallory")],
)
def test_ledger_assigned_fields_cannot_be_given(registered: Store, name: str, value: Any) -> None:
    reject_append(
        registered,
        ev(
            "account_suspended",
            "2021-01-08T16:00:00Z",
            account="twitter:example",
            policy="p",
            **{name: value},
        ),
        expect=(f"line 1: {name}: assigned by the ledger, cannot be given",),
    )


def test_an_exported_line_given_to_append_points_to_copy(registered: Store) -> None:
    line = export(registered)[-1]
    message = reject_append(registered, line)
    assert (
        "sequence: assigned by the ledger, cannot be given (a line of `export --nl`? "
        "`copy --export FILE` moves a log)"
    ) in message


def test_invalid_line_in_the_middle_rejects_the_whole_batch(registered: Store) -> None:
    message = reject_append(
        registered,
        ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example", policy="p"),
        ev(
            "account_restricted",
            "2021-02-01T00:00:00Z",
            account="twitter:example",
            policy="p",
            restrictions=["read_only", "Reduced Reach"],
        ),
        ev("account_reinstated", "2021-03-01T00:00:00Z", account="twitter:example"),
        expect=(
            "Error: line 2: restrictions.1: expected a lowercase slug",
            "(given 'Reduced Reach')",
        ),
    )
    assert "line 1" not in message
    assert "line 3" not in message
    # Line 1 was valid, and still nothing of the batch was kept.
    assert [e["event_id"] for e in export(registered)] == ["reg"]


def test_a_rule_violation_in_the_middle_rejects_the_whole_batch(registered: Store) -> None:
    reject_append(
        registered,
        ev("followers_observed", "2021-01-01T00:00:00Z", account="twitter:example", count=1),
        ev("account_reinstated", "2021-02-01T00:00:00Z", account="twitter:example"),
        ev("followers_observed", "2021-03-01T00:00:00Z", account="twitter:example", count=2),
        expect=(
            "Error: line 2: account_reinstated rejected: the account is not suspended, "
            "restricted or removed at 2021-02-01T00:00:00Z",
        ),
    )


def test_input_that_is_not_utf8_is_a_data_error(registered: Store) -> None:
    path = registered.tmp_path / "latin1.jsonl"
    event = ev("followers_observed", "2021-01-01", account="twitter:example", count=1, note="é")
    path.write_bytes((json.dumps(event, ensure_ascii=False) + "\n").encode("latin-1"))
    reject(registered, "append", str(path), expect=("Error: line 1: event: not UTF-8 text (byte",))
    # UTF-16, as Windows tools write it, is named as that (ux19).
    text = json.dumps(event, ensure_ascii=False) + "\n"
    # Python's utf-16 writes a little-endian mark first; utf-16-be writes none of its own.
    for marked in (text.encode("utf-16"), ("\ufeff" + text).encode("utf-16-be")):
        path.write_bytes(marked)
        reject(
            registered,
            "append",
            str(path),
            expect=(
                "Error: line 1: event: not UTF-8 text: the input starts with a UTF-16 byte "
                "order mark; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)",
            ),
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [("occurred_at", "0001-01-01T00:00:00+01:00"), ("until", "9999-12-31T23:59:59-01:00")],
)
def test_a_time_out_of_range_in_utc_is_a_field_error(
    registered: Store, field: str, value: str
) -> None:
    event = ev("account_suspended", "2021-01-01T00:00:00Z", account="twitter:example", policy="p")
    reject_append(registered, {**event, field: value}, expect=(f"line 1: {field}: ",))


def test_line_numbers_count_blank_lines(registered: Store) -> None:
    good = jsonl(ev("followers_observed", "2021-01-01", account="twitter:example", count=1))
    reject(
        registered,
        "append",
        "-",
        input=good + "\n" + good + '{"type": "account_removed"\n',
        expect=("Error: line 4: malformed JSON",),
    )


# --- schema -------------------------------------------------------------------


def _schema_text() -> str:
    """`schema` needs no store, so it runs once rather than once per backend."""
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_schema_is_a_discriminated_union_of_all_types() -> None:
    schema = json.loads(_schema_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["discriminator"]["propertyName"] == "type"
    mapping = schema["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(EVENT_TYPES)
    refs = [member["$ref"] for member in schema["oneOf"]]
    assert len(refs) == 18
    assert sorted(refs) == sorted(mapping.values())
    for type_name, ref in mapping.items():
        definition = schema["$defs"][ref.removeprefix("#/$defs/")]
        assert definition["properties"]["type"]["const"] == type_name
        # Required in every branch: readers of JSON Schema ignore "discriminator".
        assert "type" in definition["required"]
        assert "default" not in definition["properties"]["type"]
        assert definition["additionalProperties"] is False
        assert {"occurred_at", "source"} <= set(definition["required"])
        for assigned in ("sequence", "recorded_at", "actor"):
            assert assigned not in definition["properties"]


def test_schema_says_a_time_may_be_a_date_and_the_precision_follows_from_it() -> None:
    """It said date-time only, which refused every example given with a date alone,
    and a precision of 'instant' by default, which a date alone is not."""
    schema = json.loads(_schema_text())
    for definition in schema["$defs"].values():
        properties = definition.get("properties", {})
        if "occurred_at" not in properties:
            continue
        accepted = properties["occurred_at"]["anyOf"]
        assert {"type": "string", "format": "date"} in accepted
        assert {"type": "string", "format": "date-time"} in accepted
        assert "default" not in properties["occurred_at_precision"]
    until = json.dumps(schema["$defs"]["AccountSuspended"]["properties"]["until"])
    assert '"format": "date"' in until


def test_schema_text_patterns_refuse_blank_text_as_the_loader_does() -> None:
    """The schema said minLength 1 alone, so "   " was valid by it and refused."""
    from pydantic import TypeAdapter

    from ledger.events import Text

    schema = _schema_text()
    patterns = {
        p for d in json.loads(schema)["$defs"].values() for p in _text_patterns(d["properties"])
    }
    assert len(patterns) == 1
    pattern = re.compile(patterns.pop())
    accepts = TypeAdapter(Text).validate_python
    for code in range(0x3100):  # every whitespace character lies below U+3100
        character = chr(code)
        try:
            accepts(character)
            loader_refuses = False
        except ValueError:
            loader_refuses = True
        # JSON Schema patterns are not anchored; this one is, on both ends.
        assert (pattern.search(character) is None) == loader_refuses, hex(code)
        assert (pattern.search(character * 3) is None) == loader_refuses, hex(code)
    assert pattern.search(" a ")
    assert pattern.search("\ufeff")  # not stripped: text, as the loader reads it
    assert not pattern.search("a\x00")
    # Every text field says it (a sample of them).
    definitions = json.loads(schema)["$defs"]
    for model, name in [
        *(("PostPublished", name) for name in ("source", "note", "url", "excerpt")),
        ("AccountSuspended", "policy"),
    ]:
        assert _text_patterns({name: definitions[model]["properties"][name]}), name


def _text_patterns(properties: dict[str, Any]) -> list[str]:
    """The patterns of the properties that are text (minLength 1, maxLength 2000)."""
    found = []
    for value in properties.values():
        for branch in value.get("anyOf", [value]):
            if branch.get("maxLength") == 2000:
                assert branch["minLength"] == 1
                found.append(branch["pattern"])
    return found


def test_schema_does_not_touch_a_store(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    result = CliRunner().invoke(cli, ["--store", str(path), "schema"])
    assert result.exit_code == 0
    assert not path.exists()


def test_committed_schema_copy_is_current() -> None:
    current = _schema_text()
    assert SCHEMA_COPY.exists(), "tests/data/event.schema.json is missing"
    committed = SCHEMA_COPY.read_text(encoding="utf-8")
    assert current == committed, (
        "tests/data/event.schema.json is out of date with the event models; regenerate it "
        "with:  enforcement-ledger schema > tests/data/event.schema.json  and review the diff"
    )


@pytest.mark.parametrize("type_name", EVENT_TYPE_NAMES)
def test_record_help_example_is_a_valid_event(tmp_path: Path, type_name: str) -> None:
    """Each `record TYPE --help` example, run as written, passes validation: the next
    thing it meets is the store (absent here), not an error in its own flags."""
    command = type_name.replace("_", "-")
    runner = CliRunner()
    help_text = runner.invoke(cli, ["record", command, "--help"]).output
    example = help_text.split("Example:\n", 1)[1].split("\n\n", 1)[0]
    words = shlex.split(example.replace("\\\n", " "))
    assert words[:3] == ["enforcement-ledger", "record", command]
    assert "…" not in words
    missing = tmp_path / "absent.db"
    result = runner.invoke(cli, ["--store", str(missing), *words[1:]])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: no ledger at {missing}"), result.output


@pytest.mark.parametrize("options", [[], ["--sort"]], ids=["as-given", "sorted"])
def test_append_from_a_terminal_says_how_to_end_the_input(
    registered: Store, options: list[str]
) -> None:
    """`append` typed alone reads the terminal: it says so rather than wait silently,
    and one Ctrl-D ends the input."""
    import os
    import subprocess

    from tests.ledger_helpers import CLI, REPO

    event = ev("account_suspended", "2021-01-08T16:00:00Z", account="twitter:example", policy="p")
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            [*CLI, "--store", registered.url, "append", *options],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        # A line, then Ctrl-D at the start of the next: the end of the input.
        os.write(controller, (json.dumps(event) + "\n").encode() + b"\x04")
        out, err = process.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 0, err
    assert err.startswith("Reading events from the terminal, one JSON object a line; end with")
    assert out.startswith("Appended 1 event(s)")
    # From a file or a pipe: nothing extra.
    again = registered.ok("append", "-", input=jsonl({**event, "occurred_at": "2021-02-01"}))
    assert again.stderr == ""


def test_field_names_from_input_are_quoted_like_values(registered: Store) -> None:
    # An unknown field's name comes from the input: a newline in it must not forge an
    # output line ("Appended …"), an escape must not reach the terminal, and a huge
    # name is cut like a huge value.
    forged = "x\nAppended 1 event(s), sequence 9..9\nok"
    base = ev("followers_observed", "2021-01-08T16:00:00Z", account="twitter:example", count=1)
    stderr = reject_append(
        registered,
        {**base, forged: 1, "\x1b[2J": 2, "k" * 5000: 3},
        expect=(
            "line 1: 'x\\nAppended 1 event(s), sequence 9..9\\nok': unknown field (given 1); "
            "'\\x1b[2J': unknown field (given 2); 'kkkk",
            "… (5,000 characters): unknown field (given 3)",
        ),
    )
    assert "\x1b" not in stderr
    assert stderr.count("\n") == 1
    assert len(stderr) < 500
    repeated = jsonl(base)[:-2] + ', "\\u001b[2J": 1, "\\u001b[2J": 2}\n'
    reject(
        registered,
        "append",
        "-",
        input=repeated,
        expect=("line 1: '\\x1b[2J': given more than once in one object",),
    )


@pytest.mark.parametrize(
    ("count", "shown"),
    [(True, "true"), (None, "null"), (2.5, "2.5"), (float("nan"), "NaN"), ("5", "'5'")],
)
def test_given_values_are_spelled_as_json_spells_them(
    registered: Store, count: object, shown: str
) -> None:
    event = ev("followers_observed", "2021-01-08T16:00:00Z", account="twitter:example")
    reject_append(
        registered, {**event, "count": count}, expect=("line 1: count: ", f"(given {shown})")
    )
    reject(registered, "append", "-", input='{"type": 5}\n', expect=("(given 5)",))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('[\n {"type": "followers_observed"}\n]\n', "EOF while parsing a list; input is"),
        ('{\n "type": "followers_observed"\n}\n', "EOF while parsing an object; input is"),
        ('{"type": "followers_observed" "count": 1}\n', "expected `,` or `}` at column 31\n"),
    ],
)
def test_json_that_is_not_one_object_a_line_says_the_input_is_json_lines(
    registered: Store, given: str, expected: str
) -> None:
    # Pretty-printed JSON or an array: the first line ends inside a value. Positions
    # are columns of the input line (the parser counted lines within it).
    stderr = reject(registered, "append", "-", input=given, expect=(expected,))
    assert stderr.startswith("Error: line 1: malformed JSON: "), stderr


def test_a_list_holds_each_value_once_and_few_of_them(registered: Store) -> None:
    restricted = ev("account_restricted", "2021-01-08", account="twitter:example", policy="p")
    reject_append(
        registered,
        {**restricted, "restrictions": ["read_only", "reduced_reach", "read_only"]},
        expect=("line 1: restrictions: lists each value once ('read_only' is given twice)",),
    )
    reject_append(
        registered,
        subject("many", roles=[f"role_{n}" for n in range(51)]),
        expect=("line 1: roles: lists at most 50 values, not 51",),
    )
    registered.append(subject("fifty", roles=[f"role_{n}" for n in range(50)]))


def test_a_country_is_an_assigned_iso_3166_code(registered: Store) -> None:
    """Two capitals were enough: "XX", or "UK" for the United Kingdom (GB)."""
    for code, expect in (
        ("XX", "country: expected an assigned ISO 3166-1 alpha-2 code, e.g. IR (given 'XX')"),
        ("UK", "e.g. IR (the United Kingdom's is GB) (given 'UK')"),
    ):
        reject_append(registered, subject("someone", country=code), expect=(expect,))
    for index, code in enumerate(("GB", "XK", "VE")):
        registered.append(subject(f"someone_{index}", country=code))
