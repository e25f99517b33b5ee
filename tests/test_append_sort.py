"""`append --sort`: a dump in any order is appended in dependency order.

Without --sort a batch is checked line by line in the order given (pinned in
test_rules); these tests show what --sort accepts, what it still refuses, that the
result is the history the lines describe whatever their order, and that errors
keep naming input line numbers.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.generate import generate
from tests.conftest import Store
from tests.ledger_helpers import CLI, account, ev, export, jsonl, reject, subject

SEED = Path(__file__).resolve().parents[1] / "ledger" / "data" / "seed.jsonl"
A = "twitter:example"


def _state(store: Store) -> tuple[list[Any], list[str]]:
    """What the log says, whatever order it was appended in: every account's status
    now, and the timeline's content without the ledger-assigned sequence and time."""
    accounts = json.loads(store.ok("accounts", "--json").stdout)
    for row in accounts:
        row.pop("as_of"), row.pop("known_at")
    timeline = []
    for row in store.timeline():
        row.pop("sequence"), row.pop("recorded_at")
        timeline.append(json.dumps(row, sort_keys=True))
    return accounts, sorted(timeline)


def _lines(events: list[dict[str, Any]]) -> str:
    return jsonl(*events)


def test_the_seed_in_reverse_needs_sort(store: Store, tmp_path: Path) -> None:
    # Line by line, the first line names an account a later line registers: the
    # refusal says which line (it said only "append its registration first").
    seed = SEED.read_text().splitlines()
    backwards = "\n".join(reversed(seed)) + "\n"
    reject(
        store,
        "append",
        "-",
        input=backwards,
        expect=(
            "line 1: account_reinstated seed-x-trump-reinstated rejected: account "
            "'twitter:realDonaldTrump' is not registered; append its account_registered "
            "event first (line 3 of this batch "
            "registers it, after this line: each line is checked against the lines before "
            "it, so give that one first)",
        ),
    )
    store.ok("append", "--sort", "-", input=backwards)
    sorted_state = _state(store)

    other = Store(str(tmp_path / "as-given.db"), "sqlite", tmp_path)
    other.ok("init")
    other.ok("append", str(SEED))
    assert sorted_state == _state(other)


def test_the_help_gives_the_order_sort_puts_lines_in() -> None:
    """It said "subjects and renames first": a rename is placed by its occurred_at,
    and retractions of recorded events go before everything (ledger/ordering.py)."""
    done = subprocess.run([*CLI, "append", "--help"], capture_output=True, text=True, check=True)
    text = " ".join(done.stdout.split())
    assert (
        "--sort Append the lines in dependency order, not as given: retractions of recorded "
        "events first, then subject registrations, then every other event (platform renames "
        "too) by occurred_at, each retraction of a line after its target (see README)"
    ) in text


def test_a_retraction_or_appeal_before_its_target_names_the_line_of_the_target(
    store: Store,
) -> None:
    registration = account(A, "2020-01-01")
    suspension = ev("account_suspended", "2020-02-01", account=A, event_id="susp", policy="p")
    appeal = ev("appeal_filed", "2020-02-02", account=A, appeal="ap", target="susp")
    retraction = ev("event_retracted", "2020-03-01", target="susp", reason="wrong")
    for first in (appeal, retraction):
        reject(
            store,
            "append",
            "-",
            input=jsonl(registration, first, suspension),
            expect=("line 2: ", "(line 3 of this batch is that event, after this line: "),
        )
    # A target that no line gives: no such note.
    refused = store.fail("append", "-", input=jsonl(registration, retraction)).stderr
    assert "of this batch is that event" not in refused
    # An account a later line registers: no "did you mean" another one as well.
    store.append(account("twitter:p", "2020-01-01"))
    suspension_q = ev("account_suspended", "2020-02-01", account="twitter:q", policy="p")
    refused = store.fail(
        "append", "-", input=jsonl(suspension_q, account("twitter:q", "2020-01-01"))
    ).stderr
    assert "(line 2 of this batch registers it, after this line: " in refused
    assert "did you mean" not in refused


def test_a_shuffled_generated_history_gives_the_same_ledger(store: Store, tmp_path: Path) -> None:
    # Backfills, retractions (some replaced by a later event that conflicts with the
    # retracted one), appeals, exemptions, posts: all of the generator's shapes.
    lines = list(generate(3000, 7))
    shuffled = lines[:]
    random.Random(1).shuffle(shuffled)
    file = tmp_path / "shuffled.jsonl"
    file.write_text("\n".join(shuffled) + "\n")
    reject(store, "append", str(file))  # in this order, line by line, it is refused
    store.ok("append", "--sort", str(file))

    reference = Store(str(tmp_path / "in-order.db"), "sqlite", tmp_path)
    reference.ok("init")
    reference.ok("append", "-", input="\n".join(lines) + "\n")
    assert _state(store) == _state(reference)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1), events=st.integers(50, 600))
def test_any_order_of_a_valid_history_is_accepted_with_sort(
    tmp_path: Path, seed: int, events: int
) -> None:
    lines = list(generate(events, seed % 1000))
    random.Random(seed).shuffle(lines)
    store = Store(str(tmp_path / f"ledger-{seed}-{events}.db"), "sqlite", tmp_path)
    store.ok("init")
    result = store.ok("append", "--json", "--sort", "-", input="\n".join(lines) + "\n")
    assert json.loads(result.stdout)["appended"] == events
    assert store.count() == events


def test_at_one_instant_registration_first_appeals_last(store: Store) -> None:
    # A day-precision dump: everything at 2024-02-08T00:00Z, given backwards.
    day = "2024-02-08"
    backwards = [
        ev("appeal_decided", day, account=A, appeal="ap", target="rm", outcome="upheld"),
        ev("appeal_filed", day, account=A, appeal="ap", target="rm"),
        ev("account_removed", day, account=A, policy="DOI", event_id="rm"),
        ev("post_removed", day, account=A, post="p", policy="DOI"),
        ev("followers_observed", day, account=A, count=10),
        ev("post_published", day, account=A, post="p"),
        account(A, day),
    ]
    store.ok("append", "--sort", "-", input=_lines(backwards))
    types = [row["type"] for row in export(store)]
    assert types == [
        "account_registered",
        "post_published",
        "account_removed",  # the rest at that instant keeps the input's order
        "post_removed",
        "followers_observed",
        "appeal_filed",
        "appeal_decided",
    ]
    assert store.status(A)["status"] == "removed"


@pytest.mark.parametrize(
    "spelling",
    ["2021-01-01T00:00:00z", "2021-01-01t00:00:00Z", "2021-01-01 00:00:00+00:00", "2021-01-01"],
)
def test_every_time_the_validator_reads_is_placed_by_its_instant(
    store: Store, spelling: str
) -> None:
    """--sort reads times as the validator does: a lowercase "z" was unreadable to
    datetime.fromisoformat, so its line went first (a suspension before its account's
    registration was refused, and at one instant the input order changed)."""
    lines = [account(A, "2020-01-01"), ev("account_suspended", spelling, account=A, policy="p")]
    store.ok("append", "--sort", "-", input=_lines(lines))
    assert [row["type"] for row in export(store)] == ["account_registered", "account_suspended"]
    # At one instant the rest keeps the input's order: a reinstatement given first
    # stays first whichever way the restriction's time is spelt.
    same = spelling.replace("2021-01-01", "2022-01-01")
    store.ok(
        "append",
        "--sort",
        "-",
        input=_lines(
            [
                ev("account_reinstated", "2022-01-01T00:00:00Z", account=A, event_id="lift"),
                ev("account_restricted", same, account=A, policy="q", restrictions=["x"]),
            ]
        ),
    )
    assert store.status(A)["status"] == "restricted"


def test_retractions_follow_their_targets_and_the_appeals_of_them(store: Store) -> None:
    # A mistaken suspension, appealed and decided, all retracted in the same batch
    # that records the right suspension: the retractions are given first.
    store.append(account(A, "2020-01-01", event_id="reg"))
    batch = [
        ev("event_retracted", "2021-03-01", target="wrong", reason="misdated"),
        ev("event_retracted", "2021-03-01", target="filed", reason="misdated"),
        ev("event_retracted", "2021-03-01", target="decided", reason="misdated"),
        ev("account_suspended", "2021-01-05", account=A, policy="V", event_id="right"),
        ev("appeal_decided", "2021-01-03", account=A, appeal="a", target="wrong", outcome="upheld")
        | {"event_id": "decided"},
        ev("appeal_filed", "2021-01-02", account=A, appeal="a", target="wrong")
        | {"event_id": "filed"},
        ev("account_removed", "2021-01-01", account=A, policy="V", event_id="wrong"),
    ]
    store.ok("append", "--sort", "-", input=_lines(batch))
    order = [
        f"retract {row['target']}" if row["type"] == "event_retracted" else row["event_id"]
        for row in export(store)[1:]
    ]
    # A target, its appeals, their retractions latest first, then the rest by time.
    assert order == [
        "wrong",
        "filed",
        "decided",
        "retract decided",
        "retract filed",
        "retract wrong",
        "right",
    ]
    status = store.status(A)
    assert (status["status"], status["cause_event"]) == ("suspended", "right")


def test_a_retraction_of_a_recorded_event_comes_first(store: Store) -> None:
    # The exemption recorded earlier was a mistake; its replacement (which would
    # conflict with it) and the retraction come in one batch, the retraction last.
    store.append(
        account(A, "2020-01-01"),
        ev("exemption_applied", "2021-01-01", account=A, exemption="x", policy="P")
        | {"event_id": "mistake"},
    )
    batch = [
        ev("exemption_applied", "2021-06-01", account=A, exemption="x", policy="P2"),
        ev("event_retracted", "2021-02-01", target="mistake", reason="wrong policy"),
    ]
    reject(store, "append", "-", input=_lines(batch), expect=("already in force",))
    store.ok("append", "--sort", "-", input=_lines(batch))
    (exemption,) = store.status(A)["exemptions"]
    assert exemption["policy"] == "P2"


def test_what_sort_cannot_rebuild_is_refused_as_documented(store: Store) -> None:
    # A removal re-dated to the day before, retracted and replaced in one batch: the
    # mistaken removal is met after its replacement (module docstring, README).
    store.append(account(A, "2020-01-01"))
    batch = [
        ev("account_removed", "2021-01-08", account=A, policy="V", event_id="mistake"),
        ev("event_retracted", "2021-01-09", target="mistake", reason="re-dated"),
        ev("account_removed", "2021-01-07", account=A, policy="V", event_id="fixed"),
    ]
    shuffled = [batch[2], batch[0], batch[1]]
    reject(
        store,
        "append",
        "--sort",
        "-",
        input=_lines(shuffled),
        expect=("line 2: account_removed mistake rejected", "removed by fixed"),
    )
    # As recorded it is valid, and --sort then takes it as given.
    store.ok("append", "--sort", "-", input=_lines(batch))


def test_errors_name_input_lines_and_nothing_is_appended(store: Store, tmp_path: Path) -> None:
    events = [
        ev("account_suspended", "2021-01-01", account=A, policy="V"),
        account(A, "2020-01-01"),
        ev("account_reinstated", "2021-06-01", account="twitter:nobody"),
    ]
    # A rule error, met after sorting, names the line the event was given on.
    reject(
        store,
        "append",
        "--sort",
        "-",
        input=_lines(events),
        expect=("line 3: account_reinstated", "is not registered"),
    )
    # A malformed line is reported before anything is sorted, by its own number.
    bad = _lines(events[:2]) + '{"type": "account_suspended", "account": 5}\n'
    reject(store, "append", "--sort", "-", input=bad, expect=("line 3:",))
    assert store.count() == 0


def test_the_spool_leaves_nothing_behind_even_when_killed(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    store.ok("append", "--sort", "-", input=_lines([subject("s"), account(A, "2020-01-01")]))
    reject(store, "append", "--sort", "-", input=_lines([account(A, "2020-01-01")]))
    assert list(spool_dir.iterdir()) == []
    # Killed while spooling (its input still open): the spool was never a named file.
    sorter = subprocess.Popen(
        [*CLI, "--store", store.url, "append", "--sort", "-"],
        cwd=SEED.parents[2],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(spool_dir)},
    )
    assert sorter.stdin is not None
    sorter.stdin.write(_lines([subject(f"s{n}") for n in range(3000)]).encode())
    sorter.stdin.flush()
    time.sleep(1.5)
    assert sorter.poll() is None
    sorter.kill()
    sorter.wait(timeout=10)
    sorter.stdin.close()
    assert list(spool_dir.iterdir()) == []
    assert store.count() == 1 + 1


def test_a_line_too_deeply_nested_to_place_is_refused_not_a_crash(store: Store) -> None:
    # json.loads raised RecursionError while reading the line's place (exit 70).
    deep = '{"type": "post_published", "excerpt": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    reject(store, "append", "--sort", "-", input=deep, expect=("line 1: malformed JSON",))


@pytest.mark.parametrize("kind", [["account_suspended"], {"a": 1}])
def test_a_type_that_is_no_text_is_refused_as_without_sort(store: Store, kind: object) -> None:
    # Its rank at one instant was looked up by it: unhashable, an internal failure.
    line = jsonl(
        ev("account_suspended", "2024-01-01", account="x:kim", policy="p") | {"type": kind}
    )
    for flags in ([], ["--sort"]):
        reject(
            store, "append", *flags, "-", input=line, expect=("line 1: type: unknown event type",)
        )


def test_a_retraction_of_a_retraction_in_the_batch_is_refused_as_that(store: Store) -> None:
    # Sorted first, it was "not an event in this ledger".
    batch = jsonl(
        account("x:kim", "2024-01-01"),
        ev("post_published", "2024-01-02", account="x:kim", post="p", event_id="h"),
        ev("event_retracted", "2024-01-03", target="h", reason="r", event_id="h-x"),
        ev("event_retracted", "2024-01-04", target="h-x", reason="r", event_id="h-x-x"),
    )
    for flags in ([], ["--sort"]):
        reject(
            store, "append", *flags, "-", input=batch,
            expect=("h-x is itself a retraction and cannot be retracted",),
        )  # fmt: skip


def _dry_run_both_ways(store: Store, lines: list[dict[str, Any]]) -> None:
    """Accepted as given, and accepted with --sort too (each was refused with it)."""
    batch = jsonl(*lines)
    store.ok("append", "--dry-run", "-", input=batch)
    store.ok("append", "--dry-run", "--sort", "-", input=batch)


def test_sort_keeps_the_shapes_a_correction_takes(store: Store) -> None:
    store.append(
        subject("p", "2020-01-01"),
        account("twitter:p", "2020-01-01", subject="p", event_id="a1"),
        ev("account_suspended", "2021-01-01", account="twitter:p", policy="x", event_id="su1"),
    )
    appeal = {"account": "twitter:p", "appeal": "ap", "target": "su1"}
    # An appeal withdrawn and filed again under its name, then decided: the withdrawal
    # went after the new filing's decision.
    _dry_run_both_ways(store, [
        ev("appeal_filed", "2021-01-02", event_id="af1", **appeal),
        ev("event_retracted", "2021-01-04", target="af1", reason="wrong date", event_id="r1"),
        ev("appeal_filed", "2021-01-05", event_id="af2", **appeal),
        ev("appeal_decided", "2021-01-06", outcome="overturned", event_id="ad2", **appeal),
    ])  # fmt: skip
    # A subject registration or a rename withdrawn in the batch: right after it (the
    # withdrawal went among the dated events, after the replacement).
    _dry_run_both_ways(store, [
        ev("subject_registered", "2020-01-01", subject="c", name="Typo", kind="person",
           event_id="sc1"),
        ev("event_retracted", "2020-01-02", target="sc1", reason="typo"),
        ev("subject_registered", "2020-01-01", subject="c", name="Right", kind="person"),
    ])  # fmt: skip
    _dry_run_both_ways(store, [
        ev("platform_renamed", "2021-10-28", platform="facebook", name="Meta", event_id="n1"),
        ev("event_retracted", "2021-10-29", target="n1", reason="wrong"),
        account("meta:u", "2020-01-02"),
    ])  # fmt: skip
    # A mistaken removal withdrawn with its appeal, and given again later than it but
    # before the appeal: the withdrawal went at the appeal's time, after the new one.
    _dry_run_both_ways(store, [
        account("twitter:t", "2020-01-01", event_id="reg"),
        ev("account_removed", "2021-01-01", account="twitter:t", policy="p", event_id="rem1"),
        ev("appeal_filed", "2021-03-01", account="twitter:t", appeal="a1", target="rem1",
           event_id="af"),
        ev("event_retracted", "2022-01-01", target="af", reason="wrong"),
        ev("event_retracted", "2022-01-01", target="rem1", reason="wrong date"),
        ev("account_removed", "2021-02-01", account="twitter:t", policy="p", event_id="rem2"),
    ])  # fmt: skip


def test_sort_withdraws_recorded_decisions_then_appeals_then_their_target(store: Store) -> None:
    """Retractions of recorded events kept their input order, so a dump withdrawing a
    measure before its appeal was refused with advice to reorder it."""
    store.append(
        account("twitter:p", "2020-01-01"),
        ev("account_suspended", "2021-01-01", account="twitter:p", policy="x", event_id="su1"),
        ev("appeal_filed", "2021-01-02", account="twitter:p", appeal="ap", target="su1",
           event_id="af1"),
        ev("appeal_decided", "2021-01-03", account="twitter:p", appeal="ap", target="su1",
           outcome="upheld", event_id="ad1"),
    )  # fmt: skip
    withdrawals = [
        ev("event_retracted", "2022-01-04", target=target, reason="wrong")
        for target in ("su1", "af1", "ad1")
    ]
    reject(store, "append", "--dry-run", "-", input=jsonl(*withdrawals),
           expect=("retract the appeal first",))  # fmt: skip
    store.ok("append", "--sort", "-", input=jsonl(*withdrawals))
    assert store.status("twitter:p")["status"] == "active"


def test_sort_withdraws_an_event_before_its_replacement_at_the_same_instant(
    store: Store,
) -> None:
    """A typo fixed, the time kept: listed newest first, the replacement came before
    the mistake at their one instant, and was checked while the mistake stood."""
    fixed = [
        account("twitter:a", "2024-01-01", event_id="reg"),
        ev("account_removed", "2024-02-01", account="twitter:a", policy="Violnt speech",
           event_id="rm"),
        ev("event_retracted", "2024-02-02", target="rm", reason="policy typo"),
        ev("account_removed", "2024-02-01", account="twitter:a", policy="Violent speech",
           event_id="rm2"),
    ]  # fmt: skip
    store.ok("append", "--dry-run", "--sort", "-", input=jsonl(*reversed(fixed)))
    store.ok("append", "--sort", "-", input=jsonl(*reversed(fixed)))
    assert store.status("twitter:a")["cause_event"] == "rm2"
    # Not before what it acts on at that instant: a restore withdrawn on the day of
    # the removal it undid (a first version put every withdrawn event first).
    post = {"account": "twitter:a", "post": "p1"}
    mistaken = [
        ev("post_restored", "2024-03-02", event_id="rs2", **post),
        ev("post_published", "2024-02-05", event_id="pub", **post),
        ev("post_removed", "2024-03-01", policy="p", event_id="prm", **post),
        ev("post_restored", "2024-03-01", event_id="rs", **post),
        ev("event_retracted", "2024-03-05", target="rs", reason="wrong day"),
    ]
    store.ok("append", "--dry-run", "--sort", "-", input=jsonl(*mistaken))


def test_sort_never_refuses_a_batch_the_rules_accept_as_given(store: Store) -> None:
    """Shapes the sort misreads (an appeal filed twice under one name, then the
    measure withdrawn with both): in their recorded order they are accepted, with
    --sort too."""
    reg = account("twitter:a", "2024-01-01", event_id="reg")
    appeal = {"account": "twitter:a", "appeal": "ap1"}
    batch = [
        reg,
        ev("account_suspended", "2024-02-01", account="twitter:a", policy="p", event_id="su"),
        ev("appeal_filed", "2024-02-03", target="su", event_id="ap", **appeal),
        ev("event_retracted", "2024-03-01", target="ap", reason="r"),
        ev("appeal_filed", "2024-02-04", target="su", event_id="ap2", **appeal),
        ev("event_retracted", "2024-03-02", target="ap2", reason="r"),
        ev("event_retracted", "2024-03-02", target="su", reason="r"),
        ev("account_suspended", "2024-02-02", account="twitter:a", policy="p2", event_id="su2"),
    ]
    # Refused either way: the refusal of the line that fails in both (the sorted
    # order's refusal named line 5, which the order given gets past).
    bad = ev("account_reinstated", "2025-01-01", account="twitter:nobody")
    refused = store.fail("append", "--sort", "-", input=jsonl(*batch, bad)).stderr
    assert refused.startswith(
        "Error: line 9: account_reinstated rejected: account 'twitter:nobody' is not registered"
    )
    store.ok("append", "--sort", "-", input=jsonl(*batch))
    assert store.status("twitter:a")["cause_event"] == "su2"


def test_sort_puts_a_subjects_platform_exemption_after_an_account_there(store: Store) -> None:
    """The rule asks for an account of the subject on the platform, whatever its
    time: dated before the account's registration, the exemption went first when
    sorted and was refused ("its accounts are on no platform yet"), the order given
    accepted. Its later events under that rule before then go with it, in order."""
    rule = {"subject": "s1", "platform": "tw", "exemption": "un"}
    batch = [
        subject("s1", "2024-01-01"),
        account("tw:a", "2024-01-05", subject="s1", event_id="ar1"),
        account("fb:a", "2024-01-01", subject="s1"),
        ev("exemption_applied", "2024-01-02", policy="p", event_id="ex1", **rule),
        ev("exemption_revoked", "2024-01-03", policy="p", event_id="rv1", **rule),
        ev("exemption_applied", "2024-01-04", policy="p", event_id="ex2", **rule),
        ev("exemption_revoked", "2024-01-06", policy="p", event_id="rv2", **rule),
    ]
    store.ok("append", "--dry-run", "-", input=jsonl(*batch))
    store.ok("append", "--sort", "-", input=jsonl(*batch[::-1]))
    ids = [row["event_id"] for row in export(store) if row["type"].startswith("exemption")]
    assert ids == ["ex1", "rv1", "ex2", "rv2"]


def test_sort_withdraws_each_refiled_appeal_before_the_next_and_recorded_targets_after_them(
    store: Store,
) -> None:
    """Fuzzing found two more shapes: an appeal filed twice under one name, both
    withdrawn with the measure (both filings went before both withdrawals), and a
    recorded measure withdrawn with the batch's own appeal of it (its withdrawal went
    first, before the appeal that needs it)."""
    appeal = {"account": "x:a", "appeal": "ap0", "target": "rm1"}
    history = [
        ev("account_removed", "2024-01-01T11:00:00Z", account="x:a", policy="p1",
           event_id="rm1"),
        ev("appeal_filed", "2024-01-03T06:00:00Z", event_id="f1", **appeal),
        ev("event_retracted", "2024-01-12T09:00:00Z", target="f1", reason="mistake"),
        ev("appeal_filed", "2024-01-03T07:00:00Z", event_id="f2", **appeal),
        ev("event_retracted", "2024-01-12T10:00:00Z", target="f2", reason="mistake"),
        ev("event_retracted", "2024-01-12T11:00:00Z", target="rm1", reason="mistake"),
        account("x:a", "2024-01-01T06:00:00Z", event_id="reg"),
    ]  # fmt: skip
    store.ok("append", "--dry-run", "--sort", "-", input=jsonl(*history))
    store.ok("append", "--dry-run", "--sort", "-", input=jsonl(*reversed(history)))

    store.append(
        account("x:b", "2024-01-01T06:00:00Z"),
        ev("account_suspended", "2024-01-02T06:00:00Z", account="x:b", policy="p1",
           event_id="su1"),
    )  # fmt: skip
    newest_first = [
        ev("event_retracted", "2024-01-12T10:00:00Z", target="su1", reason="mistake"),
        ev("event_retracted", "2024-01-12T09:00:00Z", target="fb", reason="mistake"),
        ev("appeal_filed", "2024-01-03T06:00:00Z", account="x:b", appeal="ap0",
           target="su1", event_id="fb"),
    ]  # fmt: skip
    store.ok("append", "--sort", "-", input=jsonl(*newest_first))
    assert store.status("x:b")["status"] == "active"


def test_sort_withdraws_mistakes_newest_first_and_moves_only_their_own_replacements(
    store: Store,
) -> None:
    """Review and probe shapes: a measure withdrawn with its reinstatement, or a
    registration with a post, was withdrawn right after itself, before the event that
    needed it (refused); and another account's events at a withdrawn event's instant
    were moved after its withdrawal as if they replaced it (a reinstatement then a
    restriction, given in that order, went in the other way round: active)."""
    registered_last = [
        ev("event_retracted", "2024-03-01", target="rs", reason="r", event_id="x-rs"),
        ev("event_retracted", "2024-03-01", target="su", reason="r", event_id="x-su"),
        ev("account_reinstated", "2024-02-01", account="tiktok:m", event_id="rs"),
        ev("account_suspended", "2024-01-15", account="tiktok:m", policy="p", event_id="su"),
        ev("post_published", "2024-01-20", account="tiktok:m", post="p1", event_id="p1"),
        ev("post_removed", "2024-01-21", account="tiktok:m", post="p1", policy="p",
           event_id="prm"),
        ev("post_restored", "2024-01-22", account="tiktok:m", post="p1", event_id="prs"),
        ev("event_retracted", "2024-03-01", target="prm", reason="r"),
        ev("event_retracted", "2024-03-01", target="prs", reason="r"),
        ev("event_retracted", "2024-03-02", target="p1", reason="r"),
        ev("event_retracted", "2024-03-03", target="rg", reason="r"),
        account("tiktok:m", "2024-01-01", event_id="rg"),
    ]  # fmt: skip
    for lines in (registered_last, list(reversed(registered_last))):
        store.ok("append", "--dry-run", "--sort", "-", input=jsonl(*lines))
    store.ok("append", "--sort", "-", input=jsonl(*registered_last[:4], registered_last[-1]))
    assert store.status("tiktok:m")["status"] == "active"
    assert [row["event_id"] for row in export(store)][-2:] == ["x-rs", "x-su"]

    other_account = [
        ev("account_restricted", "2024-01-05", account="twitter:aaa", policy="P",
           restrictions=["reach"], event_id="a-rs"),
        ev("event_retracted", "2024-01-06", target="a-rs", reason="mistake"),
        ev("account_reinstated", "2024-01-05", account="twitter:bbb", event_id="b-re"),
        ev("account_restricted", "2024-01-05", account="twitter:bbb", policy="P",
           restrictions=["reach"], event_id="b-rs"),
        ev("account_suspended", "2024-01-02", account="twitter:bbb", policy="P",
           event_id="b-su"),
        account("twitter:bbb", "2024-01-01", event_id="b-reg"),
        account("twitter:aaa", "2024-01-01", event_id="a-reg"),
    ]  # fmt: skip
    store.ok("append", "--sort", "-", input=jsonl(*other_account))
    restricted = store.status("twitter:bbb")
    assert (restricted["status"], restricted["cause_event"]) == ("restricted", "b-rs")


def test_sorted_a_line_that_predates_what_it_needs_is_told_so_by_time(store: Store) -> None:
    """Sorted, a line comes after another for its time: the refusal said "line 1 of
    this batch registers it, after this line … so give that one first" of a line
    given first already."""
    early_removal = [
        account("twitter:d", "2024-01-05", event_id="d-reg"),
        ev("account_removed", "2024-01-02", account="twitter:d", policy="P", event_id="d-rm"),
    ]
    reject(store, "append", "--sort", "-", input=jsonl(*early_removal), expect=(
        "Error: line 2: account_removed d-rm rejected: it occurs at 2024-01-02T00:00:00Z, "
        "before its account's registration, line 1 of this batch (at 2024-01-05T00:00:00Z)\n",
    ))  # fmt: skip
    early_appeal = [
        account("twitter:h", "2024-01-01"),
        ev("account_removed", "2024-01-05", account="twitter:h", policy="P", event_id="h-rm"),
        ev("appeal_filed", "2024-01-03", account="twitter:h", appeal="a", target="h-rm",
           event_id="h-ap"),
    ]  # fmt: skip
    reject(store, "append", "--sort", "-", input=jsonl(*early_appeal), expect=(
        "Error: line 3: appeal_filed h-ap rejected: it occurs at 2024-01-03T00:00:00Z, before "
        "its target, line 2 of this batch (at 2024-01-05T00:00:00Z)\n",
    ))  # fmt: skip


def test_sort_withdraws_a_recorded_event_after_the_withdrawn_batch_events_that_needed_it(
    store: Store,
) -> None:
    """Fuzz round 3: a recorded removal's withdrawal went first, before the batch's
    own (withdrawn) restore that needs it; a recorded appeal's before the batch's
    (withdrawn) decision of it, which names it by name, not by target."""
    store.append(
        account("meta:h0", "2020-01-02"),
        ev("post_published", "2020-01-03", account="meta:h0", post="p0", event_id="p"),
        ev("post_removed", "2020-01-04", account="meta:h0", post="p0", policy="P",
           event_id="pr"),
        ev("account_removed", "2020-01-03", account="meta:h0", policy="P", event_id="rm"),
        ev("appeal_filed", "2020-01-04", account="meta:h0", appeal="ap0", target="rm",
           event_id="af"),
    )  # fmt: skip
    newest_first = [
        ev("event_retracted", "2020-02-02", target="pr", reason="wrong", event_id="x2"),
        ev("event_retracted", "2020-02-01", target="rest", reason="wrong", event_id="x1"),
        ev("post_restored", "2020-01-05", account="meta:h0", post="p0", event_id="rest"),
        ev("event_retracted", "2020-02-02", target="af", reason="wrong", event_id="y2"),
        ev("event_retracted", "2020-02-01", target="ad", reason="wrong", event_id="y1"),
        ev("appeal_decided", "2020-01-05", account="meta:h0", appeal="ap0", target="rm",
           outcome="upheld", event_id="ad"),
    ]  # fmt: skip
    store.ok("append", "--sort", "-", input=jsonl(*newest_first))
    appended = [row["event_id"] for row in export(store)][-6:]
    assert appended.index("x1") < appended.index("x2")
    assert appended.index("y1") < appended.index("y2")
    assert json.loads(store.ok("posts", "meta:h0", "--json").stdout)[0]["state"] == "visible"


def test_sort_reports_the_sorted_refusal_over_one_for_a_line_given_too_early(
    store: Store,
) -> None:
    """Both orders refused: the order given's refusal of a line given before the
    line it needs ("give that one first") was reported, which sorting had settled."""
    batch = [
        account("twitter:a", "2024-01-01"),
        ev("account_removed", "2024-02-01", account="twitter:a", policy="p", event_id="rm"),
        ev("event_retracted", "2024-02-03", target="rm", reason="wrong day"),
        # Re-dated earlier, conflicting: what --sort cannot rebuild (README).
        ev("account_removed", "2024-01-31", account="twitter:a", policy="p", event_id="rm2"),
        ev("followers_observed", "2024-03-01", account="twitter:b", count=3),
        account("twitter:b", "2024-01-01"),
    ]
    refused = store.fail("append", "--sort", "-", input=jsonl(*batch)).stderr
    assert refused.startswith("Error: line 2: account_removed rm rejected: "), refused


def test_sort_keeps_a_withdrawn_event_before_its_replacement_and_screens_after_restores(
    store: Store,
) -> None:
    """Fuzz round 4. A withdrawal held back for a withdrawn dependent went after the
    mistake's replacement too (a post published again, a removal re-dated: "already
    published", "already removed"); a restore's withdrawal went before a screen that
    needs the post restored; a suspension at a withdrawn suspension's instant, given
    before a reinstatement there, was moved after it as a "replacement"; a rename went
    before a registration under its name that the batch withdraws before the rename."""
    post = {"account": "meta:h0", "post": "p0"}
    shapes = [
        [   # replaced, the replacement withdrawn too
            ev("event_retracted", "2020-01-11", target="p2", reason="wrong"),
            account("meta:h0", "2020-01-02"),
            ev("post_published", "2020-01-03", event_id="p", **post),
            ev("event_retracted", "2020-01-10", target="p", reason="wrong"),
            ev("post_published", "2020-01-04", event_id="p2", **post),
        ],
        [   # a removal re-dated, its first reinstatement withdrawn
            ev("event_retracted", "2020-01-11", target="m", reason="wrong"),
            account("meta:h0", "2020-01-02"),
            ev("account_removed", "2020-01-03", account="meta:h0", policy="P", event_id="m"),
            ev("account_reinstated", "2020-01-05", account="meta:h0", event_id="ri"),
            ev("event_retracted", "2020-01-10", target="ri", reason="wrong"),
            ev("account_removed", "2020-01-04", account="meta:h0", policy="P", event_id="m2"),
        ],
        [   # a screen on the restored post
            ev("event_retracted", "2020-01-11", target="rs", reason="wrong"),
            account("meta:h0", "2020-01-02"),
            ev("post_published", "2020-01-03", event_id="p", **post),
            ev("post_removed", "2020-01-04", policy="P", event_id="rm", **post),
            ev("post_restored", "2020-01-05", event_id="rs", **post),
            ev("post_warning_screen_applied", "2020-01-06", policy="P", reason="r",
               event_id="w", **post),
            ev("event_retracted", "2020-01-10", target="w", reason="wrong"),
        ],
        [   # at one instant: suspended, reinstated, suspended again (that one withdrawn)
            ev("event_retracted", "2020-01-10", target="m2", reason="wrong"),
            account("meta:h0", "2020-01-02"),
            ev("account_suspended", "2020-01-03", account="meta:h0", policy="P", event_id="m1"),
            ev("account_reinstated", "2020-01-03", account="meta:h0", event_id="ri"),
            ev("account_suspended", "2020-01-03", account="meta:h0", policy="P", event_id="m2"),
        ],
        [   # newest first: a rename taking the name of a withdrawn registration's slug
            ev("platform_renamed", "2020-01-04", platform="twitter", name="Bird"),
            ev("event_retracted", "2020-01-03", target="a", reason="wrong platform"),
            account("bird:h0", "2020-01-02", event_id="a"),
        ],
    ]  # fmt: skip
    for lines in shapes:
        store.ok("append", "--dry-run", "--sort", "-", input=jsonl(*lines))
    store.ok("append", "--sort", "-", input=jsonl(*shapes[3]))
    status = store.status("meta:h0")
    assert (status["status"], status["cause_event"]) == ("active", "ri")


def test_sort_holds_a_withdrawal_back_only_for_what_needed_that_very_event(store: Store) -> None:
    """Fuzz round 5: any later event of the withdrawn one's type was taken for its
    replacement (a second removal after a reinstatement: the first removal was
    withdrawn before the reinstatement that lifted it); a reinstatement of a later
    restriction held a withdrawn removal's withdrawal back; a recorded post's withdrawal
    waited past its publication again; a registration's replacement at its instant
    stayed before it when its withdrawal was held back."""
    a = "meta:h0"
    shapes = [
        [
            ev("event_retracted", "2020-03-10", target="rm1", reason="wrong"),
            ev("event_retracted", "2020-03-09", target="ri", reason="wrong"),
            ev("account_removed", "2020-03-01", account=a, policy="P", event_id="rm2"),
            ev("account_reinstated", "2020-02-01", account=a, event_id="ri"),
            ev("account_removed", "2020-01-10", account=a, policy="P", event_id="rm1"),
            account(a, "2020-01-02"),
        ],
        [
            ev("event_retracted", "2020-05-01", target="ri", reason="wrong"),
            ev("account_reinstated", "2020-04-01", account=a, event_id="ri"),
            ev("account_restricted", "2020-03-01", account=a, policy="P",
               restrictions=["read_only"], event_id="r"),
            ev("event_retracted", "2020-02-05", target="rm", reason="wrong"),
            ev("account_removed", "2020-02-01", account=a, policy="P", event_id="rm"),
            account(a, "2020-01-02"),
        ],
        [   # a removal and reinstatement kept before the withdrawn pair (review)
            ev("event_retracted", "2020-03-01", target="r1", reason="r"),
            ev("event_retracted", "2020-03-01", target="i1", reason="r"),
            account(a, "2019-01-01"),
            ev("account_removed", "2020-01-01", account=a, policy="p", event_id="r0"),
            ev("account_reinstated", "2020-01-02", account=a, event_id="i0"),
            ev("account_removed", "2020-02-01", account=a, policy="p", event_id="r1"),
            ev("account_reinstated", "2020-02-02", account=a, event_id="i1"),
        ],
        [
            account(a, "2020-01-02", event_id="a2", handle="@h0"),
            ev("event_retracted", "2020-01-11", target="a", reason="wrong"),
            ev("event_retracted", "2020-01-10", target="f", reason="wrong"),
            ev("followers_observed", "2020-01-05", account=a, count=5, event_id="f"),
            account(a, "2020-01-02", event_id="a"),
        ],
    ]  # fmt: skip
    for lines in shapes:
        store.ok("append", "--dry-run", "--sort", "-", input=jsonl(*lines))
    post = {"account": a, "post": "p0"}
    store.append(account(a, "2020-01-02"), ev("post_published", "2020-02-01", event_id="p", **post))
    store.ok("append", "--sort", "-", input=jsonl(
        ev("post_published", "2020-02-01T03:00:00Z", event_id="p2", **post),
        ev("event_retracted", "2020-04-02", target="p", reason="wrong date"),
        ev("event_retracted", "2020-04-01", target="rm", reason="wrong"),
        ev("post_removed", "2020-03-01", policy="P", event_id="rm", **post),
    ))  # fmt: skip
    (published,) = json.loads(store.ok("posts", a, "--json").stdout)
    assert published["published_at"] == "2020-02-01T03:00:00Z"
