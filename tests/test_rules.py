"""The domain rules, checked in occurred_at order over the whole history.

History arrives out of order: a 2021 suspension may be recorded after a 2024
removal. Each rule is exercised through `append`, both for the event itself and
for backfills that would invalidate an event recorded earlier; such an error must
name the event it would break. Every refusal leaves the log unchanged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Store
from tests.ledger_helpers import (
    SOURCE,
    account,
    ev,
    export,
    iso,
    jsonl,
    reject,
    reject_append,
    subject,
)

A = "twitter:example"
B = "facebook:example"


@pytest.fixture
def world(store: Store) -> Store:
    """Subject 'someone' with two accounts registered on 2020-01-01."""
    store.append(
        subject("someone", event_id="subj"),
        account(A, "2020-01-01T00:00:00Z", subject="someone", event_id="reg-a"),
        account(B, "2020-01-01T00:00:00Z", subject="someone", event_id="reg-b"),
    )
    return store


def suspended(when: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return ev("account_suspended", when, account=A, policy="Violence", event_id=event_id, **fields)


def reinstated(when: str, event_id: str) -> dict[str, Any]:
    return ev("account_reinstated", when, account=A, event_id=event_id)


def removed(when: str, event_id: str) -> dict[str, Any]:
    return ev("account_removed", when, account=A, policy="Dangerous Orgs", event_id=event_id)


def post(
    type_: str, when: str, event_id: str, post_id: str = "p1", **fields: Any
) -> dict[str, Any]:
    return ev(type_, when, account=A, post=post_id, event_id=event_id, **fields)


def screen(when: str, event_id: str) -> dict[str, Any]:
    return post(
        "post_warning_screen_applied", when, event_id, policy="Rules", reason="public interest"
    )


# --- registration ---------------------------------------------------------------


def test_event_about_an_unregistered_account_is_refused(world: Store) -> None:
    reject_append(
        world,
        ev("account_suspended", "2021-01-01T00:00:00Z", account="twitter:nobody", policy="p"),
        expect=(
            "Error: line 1: account_suspended rejected: account 'twitter:nobody' is not "
            "registered; append its account_registered event first",
        ),
    )


@pytest.mark.parametrize(
    "event",
    [
        ev("followers_observed", "2019-12-31T23:59:59Z", account=A, count=1, event_id="early"),
        ev("account_suspended", "2019-06-01", account=A, policy="p", event_id="early"),
        ev("post_published", "2019-06-01T00:00:00Z", account=A, post="x", event_id="early"),
    ],
    ids=["followers", "suspension", "post"],
)
def test_event_before_the_registration_is_refused(world: Store, event: dict[str, Any]) -> None:
    reject_append(
        world,
        event,
        expect=(
            f"{event['type']} early rejected: occurs before its registration, "
            "reg-a (account_registered at 2020-01-01T00:00:00Z)",
        ),
    )


def test_event_at_the_registration_instant_is_accepted(world: Store) -> None:
    world.append(ev("followers_observed", "2020-01-01T00:00:00Z", account=A, count=5))


def test_account_cannot_be_registered_twice(world: Store) -> None:
    reject_append(
        world,
        account(A, "2018-01-01T00:00:00Z", event_id="again"),
        expect=(
            "account_registered again rejected: already registered by "
            "reg-a (account_registered at 2020-01-01T00:00:00Z)",
        ),
    )


def test_account_registered_with_an_unregistered_subject_is_refused(store: Store) -> None:
    reject_append(
        store,
        account(A, subject="ghost"),
        expect=(
            "account_registered rejected: subject 'ghost' is not registered; "
            "append its subject_registered event first",
        ),
    )


def test_account_and_its_subject_may_come_in_one_batch(store: Store) -> None:
    summary = store.append(subject("someone"), account(A, subject="someone"))
    assert summary["appended"] == 2


def test_subject_exemption_needs_a_registered_subject(store: Store) -> None:
    reject_append(
        store,
        ev(
            "exemption_applied",
            "2021-01-01T00:00:00Z",
            subject="ghost",
            exemption="public_interest",
            policy="p",
        ),
        expect=(
            "exemption_applied rejected: subject 'ghost' is not registered; "
            "append its subject_registered event first",
        ),
    )


def test_subject_exemption_before_the_subject_registration_is_refused(world: Store) -> None:
    reject_append(
        world,
        ev(
            "exemption_applied",
            "2018-01-01T00:00:00Z",
            subject="someone",
            exemption="public_interest",
            policy="p",
        ),
        expect=(
            "occurs before its registration, subj (subject_registered at 2019-01-01T00:00:00Z)",
        ),
    )
    # A registration on another line of the batch, with an id the ledger makes: it
    # read "before the registration another line of this batch (…)".
    reject_append(
        world,
        ev("subject_registered", "2019-01-01", subject="other", name="O", kind="person"),
        ev("exemption_applied", "2018-01-01", subject="other", exemption="e", policy="p"),
        expect=(
            "line 2: exemption_applied rejected: occurs before its registration, another "
            "line of this batch (subject_registered at 2019-01-01T00:00:00Z)",
        ),
    )


def test_platform_rename_needs_no_registration(store: Store) -> None:
    store.append(ev("platform_renamed", "2023-07-23", platform="twitter", name="X"))


# --- posts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        screen("2021-01-01T00:00:00Z", "early"),
        post("post_removed", "2021-01-01T00:00:00Z", "early", policy="p"),
        post("post_restored", "2021-01-01T00:00:00Z", "early"),
        post("post_warning_screen_removed", "2021-01-01T00:00:00Z", "early"),
    ],
    ids=["screen", "removal", "restore", "unscreen"],
)
def test_post_events_need_the_post_published_earlier(world: Store, event: dict[str, Any]) -> None:
    world.append(post("post_published", "2021-02-01T00:00:00Z", "pub"))
    reject_append(
        world,
        event,
        expect=(
            f"{event['type']} early rejected: post p1 is not published at 2021-01-01T00:00:00Z",
        ),
    )


def test_post_event_about_an_unknown_post_is_refused(world: Store) -> None:
    reject_append(
        world,
        screen("2021-01-01T00:00:00Z", "scr"),
        expect=("post p1 is not published at 2021-01-01T00:00:00Z",),
    )


def test_backfilled_publish_earlier_is_fine(world: Store) -> None:
    # Later history is already recorded; the post's story is told afterwards.
    world.append(removed("2024-02-08T00:00:00Z", "rm"))
    world.append(post("post_published", "2023-10-07T00:00:00Z", "pub"))
    world.append(screen("2023-10-09T00:00:00Z", "scr"))
    types = [e["type"] for e in world.timeline("--account", A)]
    assert types[-3:] == ["post_published", "post_warning_screen_applied", "account_removed"]


def test_post_published_twice_is_refused(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"))
    reject_append(
        world,
        post("post_published", "2021-05-01T00:00:00Z", "pub2"),
        expect=("post_published pub2 rejected: post p1 was already published by pub",),
    )


def test_backfilled_publish_before_an_existing_publish_names_it(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"))
    reject_append(
        world,
        post("post_published", "2020-06-01T00:00:00Z", "pub0"),
        expect=(
            "post_published pub0 rejected: this backfilled event would make the recorded "
            "event pub (post_published at 2021-01-01T00:00:00Z) invalid",
        ),
    )


def test_screen_removed_needs_a_screen_in_place(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"))
    reject_append(
        world,
        post("post_warning_screen_removed", "2021-02-01T00:00:00Z", "unscr"),
        expect=(
            "post_warning_screen_removed unscr rejected: post p1 has no warning screen "
            "in place at 2021-02-01T00:00:00Z",
        ),
    )


def test_screen_removed_before_the_screen_was_applied_is_refused(world: Store) -> None:
    world.append(
        post("post_published", "2021-01-01T00:00:00Z", "pub"),
        screen("2021-03-01T00:00:00Z", "scr"),
    )
    reject_append(
        world,
        post("post_warning_screen_removed", "2021-02-01T00:00:00Z", "unscr"),
        expect=("post p1 has no warning screen in place at 2021-02-01T00:00:00Z",),
    )
    world.append(post("post_warning_screen_removed", "2021-04-01T00:00:00Z", "unscr"))


def test_post_screened_twice_is_refused(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"), screen("2021-02-01", "s1"))
    reject_append(
        world,
        screen("2021-03-01T00:00:00Z", "s2"),
        expect=("post p1 is already behind a warning screen (s1)",),
    )


def test_backfilled_removal_before_a_screen_names_the_screen(world: Store) -> None:
    world.append(
        post("post_published", "2021-01-01T00:00:00Z", "pub"),
        screen("2021-02-01T00:00:00Z", "scr"),
    )
    reject_append(
        world,
        post("post_removed", "2021-01-15T00:00:00Z", "prm", policy="p"),
        expect=(
            "post_removed prm rejected: this backfilled event would make the recorded event "
            "scr (post_warning_screen_applied at 2021-02-01T00:00:00Z) invalid: "
            "post p1 was removed by prm before 2021-02-01T00:00:00Z",
        ),
    )


def test_post_restored_needs_a_removal(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"))
    reject_append(
        world,
        post("post_restored", "2021-02-01T00:00:00Z", "rst"),
        expect=("post_restored rst rejected: post p1 is not removed at 2021-02-01T00:00:00Z",),
    )
    world.append(
        post("post_removed", "2021-01-15T00:00:00Z", "prm", policy="p"),
        post("post_restored", "2021-02-01T00:00:00Z", "rst"),
    )


def test_backfilled_restore_before_a_recorded_restore_names_it(world: Store) -> None:
    world.append(
        post("post_published", "2021-01-01T00:00:00Z", "pub"),
        post("post_removed", "2021-02-01T00:00:00Z", "prm", policy="p"),
        post("post_restored", "2021-04-01T00:00:00Z", "rst"),
    )
    reject_append(
        world,
        post("post_restored", "2021-03-01T00:00:00Z", "rst0"),
        expect=(
            "this backfilled event would make the recorded event "
            "rst (post_restored at 2021-04-01T00:00:00Z) invalid: post p1 is not removed",
        ),
    )


def test_posts_are_independent(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"), screen("2021-02-01", "s"))
    reject_append(
        world,
        post("post_warning_screen_removed", "2021-03-01T00:00:00Z", "u", post_id="p2"),
        expect=("post p2 is not published",),
    )


# --- account status ------------------------------------------------------------


def test_reinstatement_of_an_active_account_is_refused(world: Store) -> None:
    reject_append(
        world,
        reinstated("2021-01-01T00:00:00Z", "r"),
        expect=(
            "account_reinstated r rejected: the account is not suspended, restricted or "
            "removed at 2021-01-01T00:00:00Z",
        ),
    )


@pytest.mark.parametrize(
    "measure",
    [
        suspended("2021-01-01T00:00:00Z", "m"),
        removed("2021-01-01T00:00:00Z", "m"),
        ev(
            "account_restricted",
            "2021-01-01T00:00:00Z",
            account=A,
            policy="p",
            restrictions=["read_only"],
            event_id="m",
        ),
    ],
    ids=["suspended", "removed", "restricted"],
)
def test_reinstatement_of_a_sanctioned_account_is_accepted(
    world: Store, measure: dict[str, Any]
) -> None:
    world.append(measure, reinstated("2021-02-01T00:00:00Z", "r"))
    assert world.status(A)["status"] == "active"


def test_reinstatement_before_the_measure_is_refused(world: Store) -> None:
    world.append(suspended("2021-02-01T00:00:00Z", "s"))
    reject_append(
        world,
        reinstated("2021-01-01T00:00:00Z", "r"),
        expect=("the account is not suspended, restricted or removed at 2021-01-01T00:00:00Z",),
    )


def test_reinstatement_after_an_expired_suspension_is_refused(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s", until="2021-02-01T00:00:00Z"))
    reject_append(
        world,
        reinstated("2021-03-01T00:00:00Z", "r"),
        expect=(
            "account_reinstated r rejected: the account is not suspended, restricted or "
            "removed at 2021-03-01T00:00:00Z; measure s already ended at 2021-02-01T00:00:00Z",
        ),
    )


def test_reinstatement_exactly_at_until_is_refused(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s", until="2021-02-01T00:00:00Z"))
    reject_append(
        world,
        reinstated("2021-02-01T00:00:00Z", "r"),
        expect=("measure s already ended at 2021-02-01T00:00:00Z",),
    )


def test_reinstatement_before_until_is_accepted(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s", until="2021-02-01T00:00:00Z"))
    world.append(reinstated("2021-01-15T00:00:00Z", "r"))
    assert world.status(A, "--as-of", "2021-01-20")["status"] == "active"


@pytest.mark.parametrize(
    "measure",
    [
        suspended("2024-06-01T00:00:00Z", "m"),
        removed("2024-06-01T00:00:00Z", "m"),
        ev(
            "account_restricted",
            "2024-06-01T00:00:00Z",
            account=A,
            policy="p",
            restrictions=["read_only"],
            event_id="m",
        ),
    ],
    ids=["suspend", "remove", "restrict"],
)
def test_a_removed_account_cannot_be_sanctioned_again(
    world: Store, measure: dict[str, Any]
) -> None:
    world.append(removed("2024-02-08T00:00:00Z", "rm"))
    reject_append(
        world,
        measure,
        expect=(
            f"{measure['type']} m rejected: the account was removed by rm at "
            "2024-02-08T00:00:00Z and not reinstated before 2024-06-01T00:00:00Z",
        ),
    )


def test_a_suspended_account_may_be_removed(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"), removed("2022-01-01T00:00:00Z", "rm"))
    assert world.status(A)["status"] == "removed"


def test_until_must_be_later_than_occurred_at(world: Store) -> None:
    reject_append(
        world,
        suspended("2021-01-01T00:00:00Z", "s", until="2020-12-31T00:00:00Z"),
        expect=(
            "line 1: until: 2020-12-31T00:00:00Z must be later than occurred_at "
            "(2021-01-01T00:00:00Z)",
        ),
    )


# --- the future -------------------------------------------------------------


def test_more_than_five_minutes_in_the_future_is_refused(world: Store) -> None:
    when = iso(datetime.now(UTC) + timedelta(minutes=6))
    message = reject_append(
        world,
        ev("followers_observed", when, account=A, count=1, event_id="future"),
        expect=(
            f"followers_observed future rejected: occurred_at {when} is more than 5 minutes "
            "in the future (recorded at ",
        ),
    )
    assert message.endswith(")\n")


def test_less_than_five_minutes_in_the_future_is_accepted(world: Store) -> None:
    when = iso(datetime.now(UTC) + timedelta(minutes=4))
    world.append(ev("followers_observed", when, account=A, count=1))
    assert export(world)[-1]["occurred_at"] == when


def test_a_future_until_is_fine(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s", until="2099-01-01T00:00:00Z"))
    assert world.status(A)["until"] == "2099-01-01T00:00:00Z"


# --- out-of-order backfill --------------------------------------------------


def test_backfilling_2021_history_behind_a_2024_removal(world: Store) -> None:
    world.append(removed("2024-02-08T00:00:00Z", "rm"))
    world.append(
        suspended("2021-01-08T00:00:00Z", "s21"),
        reinstated("2021-06-01T00:00:00Z", "r21"),
    )
    assert world.status(A)["status"] == "removed"
    assert world.status(A, "--as-of", "2021-03-01")["status"] == "suspended"
    assert world.status(A, "--as-of", "2022-01-01")["status"] == "active"
    ids = [e["event_id"] for e in world.timeline("--account", A)]
    assert ids == ["reg-a", "s21", "r21", "rm"]


def test_backfilled_reinstatement_that_invalidates_a_later_one_is_refused(world: Store) -> None:
    # Suspended on 1 Jan, reinstated on 1 Jun. A reinstatement on 1 Mar would be
    # valid on its own (the account is suspended then), but it would leave the
    # account active on 1 Jun, making the recorded reinstatement r-jun invalid.
    world.append(
        suspended("2021-01-01T00:00:00Z", "s-jan"),
        reinstated("2021-06-01T00:00:00Z", "r-jun"),
    )
    reject_append(
        world,
        reinstated("2021-03-01T00:00:00Z", "r-mar"),
        expect=(
            "account_reinstated r-mar rejected: this backfilled event would make the recorded "
            "event r-jun (account_reinstated at 2021-06-01T00:00:00Z) invalid: the account is "
            "not suspended, restricted or removed at 2021-06-01T00:00:00Z",
        ),
    )


def test_backfilled_removal_that_invalidates_a_later_suspension_is_refused(world: Store) -> None:
    world.append(suspended("2022-01-01T00:00:00Z", "s22"))
    reject_append(
        world,
        removed("2021-01-01T00:00:00Z", "rm21"),
        expect=(
            "account_removed rm21 rejected: this backfilled event would make the recorded "
            "event s22 (account_suspended at 2022-01-01T00:00:00Z) invalid: the account was "
            "removed by rm21 at 2021-01-01T00:00:00Z",
        ),
    )


def test_backfilled_removal_followed_by_reinstatement_is_fine(world: Store) -> None:
    # Recorded: a 2022 suspension. Learned later: the account was removed in Jan 2021
    # and reinstated in Jun 2021. The whole history is valid in occurred_at order.
    world.append(suspended("2022-01-01T00:00:00Z", "s22"))
    world.append(removed("2021-01-01T00:00:00Z", "rm21"), reinstated("2021-06-01", "r21"))
    assert [e["event_id"] for e in world.timeline("--account", A)] == [
        "reg-a",
        "rm21",
        "r21",
        "s22",
    ]


def test_a_batch_is_checked_line_by_line_so_what_an_event_needs_comes_first(
    world: Store,
) -> None:
    # README: without --sort, lines are checked in the order given (test_append_sort).
    reversed_history = [reinstated("2021-06-01", "r21"), suspended("2021-01-01T00:00:00Z", "s21")]
    reject_append(
        world,
        *reversed_history,
        expect=("line 1: account_reinstated r21 rejected: the account is not suspended",),
    )
    world.append(*reversed(reversed_history))
    assert [e["event_id"] for e in world.timeline("--account", A)][-2:] == ["s21", "r21"]


def test_a_measure_laid_on_another_ends_by_itself_and_the_one_beneath_lasts(
    world: Store,
) -> None:
    """Measures stack: the reinstatement on 1 Jun lifts the indefinite suspension of
    1 Jan. A backfilled 1 Mar suspension that ends by itself on 1 Apr does not end the
    one beneath it (nothing lifted that), so the reinstatement stays valid: the old
    model replaced the January suspension and refused the history."""
    world.append(suspended("2021-01-01T00:00:00Z", "s-jan"), reinstated("2021-06-01", "r-jun"))
    world.append(suspended("2021-03-01T00:00:00Z", "s-mar", until="2021-04-01T00:00:00Z"))
    periods = json.loads(world.ok("status", A, "--history", "--json").stdout)
    assert [(p["status"], p["from"][:10], p["cause_event"]) for p in periods] == [
        ("active", "2020-01-01", "reg-a"),
        ("suspended", "2021-01-01", "s-jan"),
        ("suspended", "2021-03-01", "s-mar"),
        ("suspended", "2021-04-01", "s-jan"),
        ("active", "2021-06-01", "r-jun"),
    ]
    assert world.status(A, "--as-of", "2021-05-01")["cause_event"] == "s-jan"
    assert world.status(A, "--as-of", "2021-05-01")["since"] == "2021-04-01T00:00:00Z"


def test_a_restriction_beneath_an_expired_suspension_can_still_be_lifted(world: Store) -> None:
    """Restricted indefinitely, then suspended for 10 days: when the suspension ends,
    the restriction is in force again, and the platform lifting it can be recorded."""
    world.append(
        ev(
            "account_restricted",
            "2024-01-10",
            account=A,
            policy="P1",
            restrictions=["read_only"],
            event_id="restr",
        ),
        suspended("2024-01-15T00:00:00Z", "susp", until="2024-01-20T00:00:00Z"),
    )
    after = world.status(A, "--as-of", "2024-01-25")
    assert (after["status"], after["policy"], after["cause_event"]) == ("restricted", "P1", "restr")
    assert after["since"] == "2024-01-20T00:00:00Z"
    world.append(reinstated("2024-01-25", "lifted"))
    assert world.status(A)["status"] == "active"
    # Nothing beneath: a measure's end makes the account active, and nothing is left
    # for a reinstatement to lift.
    world.append(suspended("2024-02-01T00:00:00Z", "short", until="2024-02-05T00:00:00Z"))
    reject_append(
        world,
        reinstated("2024-02-10", "late"),
        expect=("measure short already ended at 2024-02-05T00:00:00Z",),
    )


def restricted(when: str, event_id: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("policy", "Spam")
    fields.setdefault("restrictions", ["reduced_reach"])
    return ev("account_restricted", when, account=A, event_id=event_id, **fields)


def test_a_lighter_measure_laid_on_a_heavier_one_waits_beneath_it(world: Store) -> None:
    """The heaviest measure in force is the status, not the newest: a restriction laid
    on a suspension lifts nothing (it read "restricted" for its whole term, and a
    permanent suspension became a one-day period in the history)."""
    world.append(
        suspended("2021-01-08T00:00:00Z", "perm"),
        restricted("2021-01-09", "reach"),
        restricted("2021-02-01", "short", until="2021-03-01T00:00:00Z"),
    )
    for as_of in ("2021-01-09", "2021-02-15", "2021-06-01"):
        now = world.status(A, "--as-of", as_of)
        assert (now["status"], now["cause_event"], now["since"]) == (
            "suspended",
            "perm",
            "2021-01-08T00:00:00Z",
        ), as_of
    suspended_then = json.loads(
        world.ok("accounts", "--status", "suspended", "--as-of", "2021-02-15", "--json").stdout
    )
    assert [row["account"] for row in suspended_then] == [A]
    periods = json.loads(world.ok("status", A, "--history", "--json").stdout)
    assert [(p["status"], p["from"][:10], p["to"], p["cause_event"]) for p in periods] == [
        ("active", "2020-01-01", "2021-01-08T00:00:00Z", "reg-a"),
        ("suspended", "2021-01-08", None, "perm"),
    ]
    # A reinstatement lifts them all, the restrictions beneath too.
    world.append(reinstated("2021-07-01", "lifted"))
    assert world.status(A)["status"] == "active"


def test_the_lighter_measure_is_the_status_once_the_heavier_one_ends(world: Store) -> None:
    """Strikes: a two-week upload freeze laid during a short suspension is the status
    from the suspension's end to its own; of equal measures the newest shows."""
    world.append(
        restricted("2020-03-01", "strike-1", until="2020-03-08T00:00:00Z"),
        suspended("2020-03-04T00:00:00Z", "susp", until="2020-03-06T00:00:00Z"),
        restricted("2020-03-05", "strike-2", until="2020-03-15T00:00:00Z"),
    )
    periods = json.loads(world.ok("status", A, "--history", "--json").stdout)
    assert [(p["status"], p["from"][:10], p["cause_event"]) for p in periods] == [
        ("active", "2020-01-01", "reg-a"),
        ("restricted", "2020-03-01", "strike-1"),
        ("suspended", "2020-03-04", "susp"),
        ("restricted", "2020-03-06", "strike-2"),  # newer than strike-1, both in force
        ("active", "2020-03-15", "strike-2"),
    ]
    assert world.status(A, "--as-of", "2020-03-05T12:00:00Z")["cause_event"] == "susp"
    # The rules fold the same way: the suspension is in force, so nothing is refused,
    # and after every measure ended a reinstatement has nothing to lift.
    reject_append(
        world,
        reinstated("2020-03-20", "late"),
        expect=("measure strike-2 already ended at 2020-03-15T00:00:00Z",),
    )


def test_a_platform_keeps_its_slug_when_renamed_either_way_round(store: Store) -> None:
    """Twitter renamed X: an account then registered under platform "x" was a second
    platform (counts, subjects, a subject's platform exemption split); and a rename
    onto a slug accounts are registered under would make them one."""
    rename = ev("platform_renamed", "2023-07-23", platform="twitter", name="X", event_id="rn")
    store.append(account("twitter:jack"), rename)
    reject_append(
        store,
        account("x:newcomer", "2023-08-01"),
        expect=(
            "platform: 'x' is the name platform 'twitter' took (rn at 2023-07-23T00:00:00Z); "
            "a platform keeps its slug when renamed: register it as 'twitter:newcomer' with "
            "platform 'twitter'",
        ),
    )
    store.append(account("twitter:newcomer", "2023-08-01"))
    # Nor a rename under it (X's next name is twitter's), whatever it is named: the
    # advice was to register twitter's accounts under "x", itself refused.
    for name in ("X Corp", "Twitter"):
        reject_append(
            store,
            ev("platform_renamed", "2024-06-01", platform="x", name=name),
            expect=(
                "platform: 'x' is the name platform 'twitter' took (rn at 2023-07-23T00:00:00Z)"
                "; a platform keeps its slug when renamed: record the rename under platform "
                "'twitter'",
            ),
        )
    # Nor onto the slug of a platform with renames of its own (recorded first, it was
    # then read as twitter's new name).
    store.append(ev("platform_renamed", "2020-01-01", platform="foo", name="Foo Corp",
                    event_id="foo-rn"))  # fmt: skip
    reject_append(
        store,
        ev("platform_renamed", "2024-06-01", platform="twitter", name="FOO"),
        expect=("'foo' is the slug of a platform of this ledger (renamed 'Foo Corp' by foo-rn)",),
    )
    # Nor a name another platform took, in any case or width.
    for name in ("x", "Ｘ"):
        reject_append(
            store,
            ev("platform_renamed", "2024-06-01", platform="instagram", name=name),
            expect=("'X' is the name platform 'twitter' took (rn): two platforms under one name",),
        )
    # The other way round, in one batch or across batches; a full-width name reads as
    # the slug too (it was compared by case only).
    store.append(account("threads:zuck", "2023-08-01"))
    for name in ("Threads", "Ｔｈｒｅａｄｓ"):
        reject_append(
            store,
            ev("platform_renamed", "2024-01-01", platform="instagram", name=name),
            expect=("accounts are registered under platform 'threads' (e.g. 'threads:zuck')",),
        )
    # Nor a name holding an invisible character, which printed as "Threads" but was
    # compared as another name.
    for name in ("Threads\u200b", "Th\u00adreads", "Threads\u2060"):
        reject_append(
            store,
            ev("platform_renamed", "2024-01-01", platform="instagram", name=name),
            expect=(
                "name: must not contain control characters or invisible ones (bidi, zero-width)",
            ),
        )
    store.append(ev("platform_renamed", "2024-01-01", platform="tiktok", name="Ｄｏｕｙｉｎ",
                    event_id="dy"))  # fmt: skip
    reject_append(
        store,
        account("douyin:a", "2024-02-01"),
        expect=("platform: 'douyin' is the name platform 'tiktok' took (dy at ",),
    )
    reject_append(
        store,
        ev("platform_renamed", "2024-01-01", platform="reddit", name="Mastodon", event_id="m"),
        account("mastodon:a", "2024-02-01"),
        expect=("line 2: account_registered", "'mastodon' is the name platform 'reddit' took"),
    )
    # A platform renamed to its own name in other letters is no split; a rename taken
    # back frees the slug.
    store.append(ev("platform_renamed", "2024-01-01", platform="twitter", name="TWITTER"))
    store.append(ev("event_retracted", "2024-03-01", target="rn", reason="not yet"))
    store.append(account("x:after", "2024-03-02"))
    # The appends' own slug pattern (no pydantic there) is the schema's.
    from ledger import application, events

    assert application._SLUG.pattern == events.SLUG


def test_backfill_is_checked_only_against_its_own_account(world: Store) -> None:
    world.append(ev("account_removed", "2021-01-01", account=B, policy="p"))
    world.append(suspended("2022-01-01T00:00:00Z", "s"))
    assert world.status(A)["status"] == "suspended"
    assert world.status(B)["status"] == "removed"


def test_events_at_the_same_instant_apply_in_recording_order(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    world.append(reinstated("2021-01-01T00:00:00Z", "r"))
    assert world.status(A)["status"] == "active"
    assert world.status(A)["cause_event"] == "r"


# --- appeals ----------------------------------------------------------------


def test_appeal_against_an_enforcement_action_of_the_account(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    world.append(
        ev("appeal_filed", "2021-01-02", account=A, appeal="ap", target="s"),
        ev("appeal_decided", "2021-02-01", account=A, appeal="ap", target="s", outcome="upheld"),
    )


def test_appeal_target_must_be_an_event_of_the_same_account(world: Store) -> None:
    world.append(ev("account_suspended", "2021-01-01", account=B, policy="p", event_id="sb"))
    reject_append(
        world,
        ev("appeal_filed", "2021-01-02", account=A, appeal="ap", target="sb", event_id="af"),
        expect=(
            "appeal_filed af rejected: target sb is not a recorded, unretracted event of "
            "this account",
        ),
    )


def test_appeal_target_must_exist(world: Store) -> None:
    reject_append(
        world,
        ev("appeal_filed", "2021-01-02", account=A, appeal="ap", target="nothing"),
        expect=("target nothing is not a recorded, unretracted event of this account",),
    )


def test_appeal_target_must_be_an_enforcement_action(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"))
    reject_append(
        world,
        ev("appeal_filed", "2021-01-02", account=A, appeal="ap", target="pub"),
        expect=(
            "target pub (post_published at 2021-01-01T00:00:00Z) is not an enforcement "
            "action that can be appealed (expected one of account_removed, account_restricted, "
            "account_suspended, post_removed, post_warning_screen_applied)",
        ),
    )


def test_a_follower_count_cannot_be_appealed(world: Store) -> None:
    world.append(ev("followers_observed", "2021-01-01", account=A, count=3, event_id="f"))
    reject_append(
        world,
        ev("appeal_filed", "2021-01-02", account=A, appeal="ap", target="f", event_id="af"),
        expect=("appeal_filed af rejected: target f ",),
    )


def test_appeal_cannot_precede_its_target(world: Store) -> None:
    world.append(suspended("2021-01-10T00:00:00Z", "s"))
    reject_append(
        world,
        ev("appeal_filed", "2021-01-02", account=A, appeal="ap", target="s"),
        expect=("appeal filed before its target s (account_suspended at 2021-01-10T00:00:00Z)",),
    )


def test_appeal_decided_needs_the_filing(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    reject_append(
        world,
        ev(
            "appeal_decided",
            "2021-02-01",
            account=A,
            appeal="ap",
            target="s",
            outcome="upheld",
            event_id="ad",
        ),
        expect=("appeal_decided ad rejected: appeal ap is not filed at 2021-02-01T00:00:00Z",),
    )


def test_appeal_decided_before_the_filing_is_refused(world: Store) -> None:
    world.append(
        suspended("2021-01-01T00:00:00Z", "s"),
        ev("appeal_filed", "2021-03-01", account=A, appeal="ap", target="s"),
    )
    reject_append(
        world,
        ev("appeal_decided", "2021-02-01", account=A, appeal="ap", target="s", outcome="upheld"),
        expect=("appeal ap is not filed at 2021-02-01T00:00:00Z",),
    )


def test_appeal_decided_must_name_the_filed_target(world: Store) -> None:
    world.append(
        suspended("2021-01-01T00:00:00Z", "s"),
        reinstated("2021-01-05T00:00:00Z", "r"),
        suspended("2021-02-01T00:00:00Z", "s2"),
        ev("appeal_filed", "2021-03-01", account=A, appeal="ap", target="s"),
    )
    reject_append(
        world,
        ev("appeal_decided", "2021-04-01", account=A, appeal="ap", target="s2", outcome="upheld"),
        expect=("appeal ap was filed against s, not s2",),
    )


def test_appeal_decided_twice_is_refused(world: Store) -> None:
    world.append(
        suspended("2021-01-01T00:00:00Z", "s"),
        ev("appeal_filed", "2021-03-01", account=A, appeal="ap", target="s"),
        ev(
            "appeal_decided",
            "2021-04-01",
            account=A,
            appeal="ap",
            target="s",
            outcome="upheld",
            event_id="ad1",
        ),
    )
    reject_append(
        world,
        ev("appeal_decided", "2021-05-01", account=A, appeal="ap", target="s", outcome="modified"),
        expect=("appeal ap was already decided by ad1",),
    )


# --- exemptions -----------------------------------------------------------------


def exemption(type_: str, when: str, event_id: str, **holder: str) -> dict[str, Any]:
    return ev(type_, when, exemption="public_interest", policy="p", event_id=event_id, **holder)


def test_exemption_revoke_needs_it_applied(world: Store) -> None:
    reject_append(
        world,
        exemption("exemption_revoked", "2021-01-01T00:00:00Z", "x", account=A),
        expect=(
            "exemption_revoked x rejected: exemption public_interest is not in force on "
            f"account '{A}' at 2021-01-01T00:00:00Z",
        ),
    )


def test_subject_exemption_revoke_needs_it_applied_to_the_subject(world: Store) -> None:
    world.append(exemption("exemption_applied", "2021-01-01", "on-account", account=A))
    reject_append(
        world,
        exemption("exemption_revoked", "2021-02-01T00:00:00Z", "x", subject="someone"),
        expect=(
            "exemption public_interest is not in force on subject 'someone' at "
            "2021-02-01T00:00:00Z",
        ),
    )


def test_exemption_applied_twice_is_refused(world: Store) -> None:
    world.append(exemption("exemption_applied", "2021-01-01", "e1", account=A))
    reject_append(
        world,
        exemption("exemption_applied", "2021-02-01", "e2", account=A),
        expect=("exemption public_interest is already in force (e1)",),
    )


def test_backfilled_revoke_that_invalidates_a_later_revoke_is_refused(world: Store) -> None:
    world.append(
        exemption("exemption_applied", "2021-01-01", "e-on", subject="someone"),
        exemption("exemption_revoked", "2021-06-01", "e-off", subject="someone"),
    )
    reject_append(
        world,
        exemption("exemption_revoked", "2021-03-01", "e-off0", subject="someone"),
        expect=(
            "this backfilled event would make the recorded event e-off (exemption_revoked at "
            "2021-06-01T00:00:00Z) invalid",
        ),
    )


# --- idempotency ------------------------------------------------------------


def test_same_event_id_and_content_is_skipped_and_reported(world: Store) -> None:
    event = suspended("2021-01-01T00:00:00Z", "s")
    world.append(event)
    count = world.count()
    assert world.append(event) == {
        "appended": 0,
        "skipped": 1,
        "first_sequence": None,
        "last_sequence": None,
        "skipped_recorded": 1,
        "skipped_ids": ["s"],
        "skipped_repeated": 0,
        "repeated_ids": [],
    }
    text = world.ok("append", "-", input=jsonl(event)).stdout
    assert text == "Skipped 1 already recorded event(s): s\n"
    assert world.count() == count


def test_same_content_in_another_notation_is_the_same_event(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    assert world.append(suspended("2021-01-01T01:00:00+01:00", "s"))["skipped"] == 1


def test_skipped_and_new_events_in_one_batch(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    summary = world.append(
        suspended("2021-01-01T00:00:00Z", "s"), reinstated("2021-02-01T00:00:00Z", "r")
    )
    assert summary["appended"] == summary["skipped"] == 1
    assert (summary["first_sequence"], summary["last_sequence"]) == (4, 4)
    assert summary["skipped_ids"] == ["s"]


def test_same_event_id_with_different_content_is_an_error(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    reject_append(
        world,
        suspended("2021-01-01T00:00:00Z", "s", note="changed"),
        expect=(
            "Error: line 1: event_id: 's' is already recorded (sequence 3) with different "
            "content (note: not recorded, given 'changed'); an event_id names one event forever",
        ),
    )


def test_a_conflicting_event_id_names_what_differs_briefly(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s", note="first"))
    long_source = "https://example.org/" + "x" * 200
    changed = {
        **suspended("2021-01-02", "s"),
        "source": long_source,
        "policy": "Other",
        "until": "2021-03-01T00:00:00Z",
    }
    message = reject_append(world, changed, expect=())
    assert (
        "with different content (note: recorded 'first', not given; occurred_at: recorded "
        "'2021-01-01T00:00:00Z', given '2021-01-02T00:00:00Z'; occurred_at_precision: "
        "recorded 'instant', given 'day'; and 3 more)"
    ) in message
    assert long_source not in message
    only_source = {**suspended("2021-01-01T00:00:00Z", "s", note="first"), "source": long_source}
    message = reject_append(world, only_source, expect=())
    cut = repr(long_source[:50]) + "…"
    assert f"(source: recorded {SOURCE!r}, given {cut});" in message
    # Long texts that differ late are shown where they differ (both cut alike read the
    # same, and lost their closing quotes); a difference only in Unicode form, which
    # prints alike, is named.
    world.append(suspended("2021-02-01T00:00:00Z", "s2", source=long_source + "/a"))
    late = {**suspended("2021-02-01T00:00:00Z", "s2"), "source": long_source + "/b"}
    message = reject_append(world, late, expect=())
    assert (
        f"(source: recorded …{'x' * 19 + '/a'!r}, given …{'x' * 19 + '/b'!r} (first "
        "differing at character 222));"
    ) in message
    world.append(suspended("2021-03-01T00:00:00Z", "s3", source="https://example.org/caf\u00e9"))
    form = {**suspended("2021-03-01T00:00:00Z", "s3"), "source": "https://example.org/cafe\u0301"}
    assert (
        "(source: recorded 'https://example.org/caf\\xe9', given "
        "'https://example.org/cafe\\u0301': the same text in another Unicode form"
    ) in reject_append(world, form, expect=())


def test_a_conflicting_event_id_names_a_different_type_first(world: Store) -> None:
    """type sorted last among four differences and was cut as "and 1 more"."""
    world.append(ev("followers_observed", "2021-01-01T00:00:00Z", account=A, count=7, event_id="d"))
    message = reject_append(world, suspended("2021-01-02T00:00:00Z", "d"), expect=())
    assert (
        "with different content (type: recorded 'followers_observed', given "
        "'account_suspended'; count: recorded 7, not given; occurred_at: recorded "
        "'2021-01-01T00:00:00Z', given '2021-01-02T00:00:00Z'; and 1 more)"
    ) in message


def test_re_sending_a_retracted_event_says_it_stays_retracted(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    retraction = ev("event_retracted", "2021-01-02", target="s", reason="wrong", event_id="r")
    world.append(retraction)
    # Re-sent alone, and re-sent after its retraction in the same batch.
    for events in (
        [suspended("2021-01-01T00:00:00Z", "s")],
        [retraction, suspended("2021-01-01T00:00:00Z", "s")],
    ):
        result = world.ok("append", "--json", "-", input=jsonl(*events))
        assert json.loads(result.stdout)["skipped"] == len(events)
        assert result.stderr == (
            "note: s is already recorded and stays retracted (by r); "
            "to record it again, give it a new event_id\n"
        )
    assert world.status(A)["status"] == "active"
    # The batch re-sent whole, the retraction after its target, says so itself.
    result = world.ok(
        "append", "-", input=jsonl(suspended("2021-01-01T00:00:00Z", "s"), retraction)
    )
    assert result.stdout == "Skipped 2 already recorded event(s): s, r\n"
    assert result.stderr == ""
    # A re-sent event that is not retracted is skipped without a note.
    world.append(suspended("2021-03-01T00:00:00Z", "s2"))
    result = world.ok("append", "-", input=jsonl(suspended("2021-03-01T00:00:00Z", "s2")))
    assert result.stdout == "Skipped 1 already recorded event(s): s2\n"
    assert result.stderr == ""
    # Many: five are named, the rest counted.
    posts = [post("post_published", f"2021-04-0{n}", f"p{n}", post_id=f"p{n}") for n in range(1, 8)]
    world.append(*posts)
    world.append(
        *(ev("event_retracted", "2021-05-01", target=f"p{n}", reason="x") for n in range(1, 8))
    )
    notes = world.ok("append", "-", input=jsonl(*posts)).stderr.splitlines()
    assert [line.split()[1] for line in notes[:5]] == ["p1", "p2", "p3", "p4", "p5"]
    assert notes[5:] == ["note: and 2 more re-sent event(s) stay retracted"]


def test_event_id_is_global_across_accounts(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    reject_append(
        world,
        ev("account_suspended", "2021-01-01T00:00:00Z", account=B, policy="Violence", event_id="s"),
        expect=("event_id: 's' is already recorded (sequence 3) with different content",),
    )


def test_duplicate_within_one_batch_is_skipped(world: Store) -> None:
    event = suspended("2021-01-01T00:00:00Z", "s")
    summary = world.append(event, event)
    assert summary["appended"] == summary["skipped"] == 1
    assert (summary["first_sequence"], summary["last_sequence"]) == (3, 3)
    assert (summary["skipped_ids"], summary["repeated_ids"]) == ([], ["s"])
    # Not "already recorded": the repeated line was not recorded before this batch.
    again = ev("account_reinstated", "2021-01-05", account=A, event_id="r")
    result = world.ok("append", "-", input=jsonl(event, again, again))
    assert result.stdout == (
        "Appended 1 event(s), sequence 4..4\n"
        "Skipped 1 already recorded event(s): s\n"
        "Skipped 1 line(s) repeating an earlier line of this batch: r\n"
    )
    # The same batch again: each event once as recorded, its repeat as a repeat (both
    # lines were listed as "already recorded": "s, s").
    result = world.ok("append", "-", input=jsonl(event, event, again, again))
    assert result.stdout == (
        "Skipped 2 already recorded event(s): s, r\n"
        "Skipped 2 line(s) repeating an earlier line of this batch: s, r\n"
    )


def test_a_re_sent_batch_is_counted_not_held_whole(
    world: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A million re-sent events held a million ids (281 MB against 137 at 100k): the
    result names the first five of each kind and counts the rest, and a batch remembers
    only the most recent skips (a repeat further back counts as already recorded)."""
    from ledger import application

    posts = [post("post_published", f"2021-04-0{n}", f"p{n}", post_id=f"p{n}") for n in range(1, 8)]
    world.append(*posts)
    result = world.ok("append", "-", input=jsonl(*posts, *posts))
    assert result.stdout == (
        "Skipped 7 already recorded event(s): p1, p2, p3, p4, p5…\n"
        "Skipped 7 line(s) repeating an earlier line of this batch: p1, p2, p3, p4, p5…\n"
    )
    monkeypatch.setattr(application, "SKIPS_REMEMBERED", 3)
    result = world.ok("append", "-", input=jsonl(*posts, posts[6], posts[0]))
    assert result.stdout == (
        "Skipped 8 already recorded event(s): p1, p2, p3, p4, p5…\n"  # p1 again: forgotten
        "Skipped 1 line(s) repeating an earlier line of this batch: p7\n"
    )
    # rv29: a retracted event re-sent with its retraction after it needs no note, nor
    # does its repeat once forgotten.
    retraction = ev("event_retracted", "2021-05-01", target="p1", reason="x", event_id="r1")
    world.append(retraction)
    result = world.ok("append", "-", input=jsonl(posts[0], retraction, *posts[1:], posts[0]))
    assert result.stderr == ""


def test_conflicting_duplicate_within_one_batch_is_an_error(world: Store) -> None:
    reject_append(
        world,
        suspended("2021-01-01T00:00:00Z", "s"),
        suspended("2021-01-02T00:00:00Z", "s"),
        expect=(
            "Error: line 2: event_id: 's' is given twice in this batch, with different "
            "content (occurred_at: given earlier '2021-01-01T00:00:00Z', given here "
            "'2021-01-02T00:00:00Z'); an event_id names one event: give each its own",
        ),
    )


def test_a_refusal_names_no_event_id_the_ledger_generated_for_the_refused_event(
    world: Store,
) -> None:
    """Without an event_id the ledger makes one up; it is never stored, so a message
    naming it would send the user looking for an event that does not exist."""
    world.append(
        suspended("2021-01-01T00:00:00Z", "s"),
        ev("appeal_filed", "2021-03-01", account=A, appeal="ap", target="s", event_id="later"),
    )
    earlier = ev("appeal_filed", "2021-02-01", account=A, appeal="ap", target="s")
    for args, given in (
        (("append", "-"), jsonl(earlier)),
        (
            (
                *("record", "appeal-filed", "--account", A, "--appeal", "ap", "--target", "s"),
                *("--occurred-at", "2021-02-01", "--source", SOURCE),
            ),
            None,
        ),
    ):
        message = reject(world, *args, input=given)
        assert message.rstrip().endswith(
            "would make the recorded event later (appeal_filed at 2021-03-01T00:00:00Z) "
            "invalid: appeal ap was already filed by this event"
        ), message
        assert "ev-" not in message


def test_skipped_report_in_json(world: Store) -> None:
    event = suspended("2021-01-01T00:00:00Z", "s")
    world.append(event)
    result = world.ok("append", "--json", "-", input=jsonl(event))
    assert json.loads(result.stdout)["skipped"] == 1


def test_skipped_events_are_named_in_json_as_in_text(world: Store) -> None:
    # JSON gave only the count, so a script could not tell which lines were not new.
    posts = [post("post_published", f"2021-04-0{n}", f"p{n}", post_id=f"p{n}") for n in range(1, 8)]
    world.append(*posts)
    first_five = ["p1", "p2", "p3", "p4", "p5"]
    assert world.append(*posts, *posts) == {
        "appended": 0,
        "skipped": 14,
        "first_sequence": None,
        "last_sequence": None,
        "skipped_recorded": 7,
        "skipped_ids": first_five,
        "skipped_repeated": 7,
        "repeated_ids": first_five,
    }
    text = world.ok("append", "-", input=jsonl(*posts, *posts)).stdout
    assert text.count(", ".join(first_five) + "…") == 2


# --- retraction rules -----------------------------------------------------------


def retraction(target: str, event_id: str) -> dict[str, Any]:
    return ev(
        "event_retracted", "2024-01-01T00:00:00Z", target=target, reason="wrong", event_id=event_id
    )


def test_retraction_of_a_retraction_is_refused(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    world.append(retraction("s", "x1"))
    reject_append(
        world,
        retraction("x1", "x2"),
        expect=("event_retracted x2 rejected: x1 is itself a retraction and cannot be retracted",),
    )


def test_retracting_twice_is_refused(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"), retraction("s", "x1"))
    reject_append(world, retraction("s", "x2"), expect=("s was already retracted by x1",))


def test_a_retraction_cannot_occur_before_its_target(world: Store) -> None:
    """Dated 1990 against a 2021 target, a retraction was accepted: it sorted first on
    the account's timeline and counted in windows decades before the mistake."""
    world.append(suspended("2021-01-01T00:00:00.500000Z", "s"))
    for when in ("1990-01-01", "2021-01-01T00:00:00Z"):  # a half second before is before
        early = ev("event_retracted", when, target="s", reason="typo", event_id="x")
        reject_append(
            world,
            early,
            expect=(
                "event_retracted x rejected: a retraction cannot occur before its target "
                "s (account_suspended at 2021-01-01T00:00:00.500000Z)",
            ),
        )
    # A target dated a few minutes ahead (as appends allow) is retracted "now".
    ahead = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
    world.append(ev("account_suspended", ahead, account=B, policy="p", event_id="ahead"))
    reject_append(  # "now", not any time before it
        world,
        ev("event_retracted", "1999-01-01", target="ahead", reason="typo", event_id="fix"),
        expect=("a retraction cannot occur before its target ahead",),
    )
    now = datetime.now(UTC).isoformat()
    world.append(ev("event_retracted", now, target="ahead", reason="typo", event_id="fix"))
    # A target minutes in the past gets no such leeway.
    recent = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    world.append(ev("followers_observed", recent, account=B, count=1, event_id="recent"))
    earlier = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    reject_append(
        world,
        ev("event_retracted", earlier, target="recent", reason="typo", event_id="fix2"),
        expect=("a retraction cannot occur before its target recent",),
    )
    # At the target's own instant or after, it is a correction.
    at_once = ev("event_retracted", "2021-01-01T00:00:00.5Z", target="s", reason="typo")
    world.append(at_once)
    assert world.status(A)["status"] == "active"


def test_retraction_of_an_unknown_event_is_refused(world: Store) -> None:
    reject_append(
        world,
        retraction("nothing", "x"),
        expect=("event_retracted x rejected: target 'nothing' is not an event in this ledger",),
    )


def test_retracting_a_registration_with_later_events_is_refused(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"))
    reject_append(
        world,
        retraction("reg-a", "x"),
        expect=(
            "retracting reg-a (account_registered at 2020-01-01T00:00:00Z) would leave "
            "s (account_suspended at 2021-01-01T00:00:00Z) without a registration",
        ),
    )


def test_retracting_a_subject_its_accounts_refer_to_is_refused(world: Store) -> None:
    reject_append(
        world,
        retraction("subj", "x"),
        expect=("still refers to subject 'someone'",),
    )
    # Judged at the end of the batch, naming the line that caused it: an account the
    # batch leaves referring to the subject.
    reject_append(
        world,
        retraction("subj", "x"),
        retraction("reg-a", "y"),
        expect=(
            "Error: line 1: event_retracted x rejected: account facebook:example still "
            "refers to subject 'someone' (reg-b (account_registered at "
            "2020-01-01T00:00:00Z))",
        ),
    )


def test_a_subject_withdrawn_with_its_accounts_in_one_batch_is_accepted(world: Store) -> None:
    """Judged at the end of the batch, as an account's registration is: the batch
    may retract the accounts after the subject (refused at the subject's line)."""
    batch = [retraction("subj", "x"), retraction("reg-a", "y"), retraction("reg-b", "z")]
    for lines in (batch, batch[::-1]):
        world.ok("append", "--dry-run", "-", input=jsonl(*lines))
        world.ok("append", "--sort", "--dry-run", "-", input=jsonl(*lines))
    world.append(*batch)
    assert json.loads(world.ok("subjects", "--json").stdout) == []


def test_a_subject_registered_again_in_the_batch_keeps_its_accounts(world: Store) -> None:
    """A name's typo fixed under the same id: the registration retracted and given
    again while accounts refer to the subject (refused in every order)."""
    fixed = subject("someone", name="Some One", event_id="subj-fixed")
    batch = [retraction("subj", "x"), fixed]
    world.ok("append", "--sort", "--dry-run", "-", input=jsonl(*batch[::-1]))
    world.append(*batch)
    (row,) = json.loads(world.ok("subjects", "--json").stdout)
    assert row["name"] == "Some One"
    # Retracted again without a replacement, the conflict stands at the end: refused
    # naming that line, the later of the two.
    reject_append(
        world,
        subject("other", event_id="o"),
        retraction("subj-fixed", "x2"),
        expect=("line 2: event_retracted x2 rejected: account ", "still refers"),
    )


def test_retraction_that_invalidates_a_later_event_names_it(world: Store) -> None:
    world.append(suspended("2021-01-01T00:00:00Z", "s"), reinstated("2021-02-01T00:00:00Z", "r"))
    reject_append(
        world,
        retraction("s", "x"),
        expect=(
            "event_retracted x rejected: retracting s (account_suspended at "
            "2021-01-01T00:00:00Z) would make the recorded event r (account_reinstated at "
            "2021-02-01T00:00:00Z) invalid",
        ),
    )


def test_a_retraction_and_its_replacement_in_one_batch_keep_a_later_event_valid(
    world: Store,
) -> None:
    # Re-dating a removal that a reinstatement lifted: retracting it alone would leave
    # the reinstatement lifting nothing; its replacement, later in the same batch,
    # makes it valid again. The batch is judged at its end, as a backfill is.
    world.append(removed("2021-01-09T00:00:00Z", "rm"), reinstated("2022-11-19T00:00:00Z", "back"))
    fix = [retraction("rm", "x"), removed("2021-01-10T00:00:00Z", "rm-fixed")]
    world.ok("append", "--sort", "--dry-run", "-", input=jsonl(*reversed(fix)))
    world.append(*fix)
    history = [
        (row["status"], row["from"], row["cause_event"])
        for row in json.loads(world.ok("status", A, "--history", "--json").stdout)
    ]
    assert history == [
        ("active", "2020-01-01T00:00:00Z", "reg-a"),
        ("removed", "2021-01-10T00:00:00Z", "rm-fixed"),
        ("active", "2022-11-19T00:00:00Z", "back"),
    ]


def test_a_retraction_left_unrepaired_by_its_batch_is_refused_naming_its_line(
    world: Store,
) -> None:
    world.append(removed("2021-01-09T00:00:00Z", "rm"), reinstated("2022-11-19T00:00:00Z", "back"))
    # The second line neither repairs nor causes the conflict: the first is named.
    reject_append(
        world,
        retraction("rm", "x"),
        removed("2023-01-10T00:00:00Z", "rm-late"),
        expect=(
            "Error: line 1: event_retracted x rejected: retracting rm (account_removed at "
            "2021-01-09T00:00:00Z) would make the recorded event back (account_reinstated at "
            "2022-11-19T00:00:00Z) invalid",
        ),
    )


def test_a_registration_re_dated_in_one_batch_keeps_the_accounts_events(store: Store) -> None:
    # Registered at first observation, then its creation date learned: retract the
    # registration and register it again earlier, in one batch, as for a measure.
    store.append(
        account("twitter:safety", "2024-01-01T00:00:00Z", event_id="reg1"),
        ev("account_suspended", "2024-01-05", account="twitter:safety", policy="p", event_id="s1"),
    )
    fix = [
        retraction("reg1", "x"),
        account("twitter:safety", "2009-06-01T00:00:00Z", event_id="reg2"),
    ]
    store.ok("append", "--sort", "--dry-run", "-", input=jsonl(*reversed(fix)))
    store.append(*fix)
    history = json.loads(store.ok("status", "twitter:safety", "--history", "--json").stdout)
    assert [(p["status"], p["from"], p["cause_event"]) for p in history] == [
        ("active", "2009-06-01T00:00:00Z", "reg2"),
        ("suspended", "2024-01-05T00:00:00Z", "s1"),
    ]


def test_a_registration_retracted_without_its_replacement_is_refused(store: Store) -> None:
    store.append(
        account("twitter:safety", "2024-01-01T00:00:00Z", event_id="reg1"),
        ev("account_suspended", "2024-01-05", account="twitter:safety", policy="p", event_id="s1"),
    )
    expected = (
        "Error: line 1: event_retracted x rejected: retracting reg1 (account_registered at "
        "2024-01-01T00:00:00Z) would leave s1 (account_suspended at 2024-01-05T00:00:00Z) "
        "without a registration; retract the later events first, or register it again in "
        "the same batch",
    )
    reject_append(store, retraction("reg1", "x"), expect=expected)
    # Its events retracted too, later in the same batch: nothing is left unregistered.
    store.ok(
        "append",
        "--dry-run",
        "-",
        input=jsonl(
            retraction("reg1", "x"),
            ev("event_retracted", "2024-06-01", target="s1", reason="wrong", event_id="y"),
        ),
    )
    # Registered again, but after the events it must precede: refused on that line.
    later = account("twitter:safety", "2024-02-01T00:00:00Z", event_id="reg3")
    reject_append(
        store,
        retraction("reg1", "x"),
        later,
        expect=("line 2: account_registered reg3 rejected: registration must not occur after",),
    )


def test_retracting_an_appealed_action_needs_the_appeal_retracted_first(world: Store) -> None:
    world.append(
        suspended("2021-01-01T00:00:00Z", "s"),
        ev("appeal_filed", "2021-01-02", account=A, appeal="ap", target="s", event_id="af"),
    )
    reject_append(world, retraction("s", "x"), expect=("retract the appeal first",))
    world.append(retraction("af", "x1"), retraction("s", "x2"))


def test_a_retracted_publish_no_longer_allows_post_events(world: Store) -> None:
    world.append(post("post_published", "2021-01-01T00:00:00Z", "pub"), retraction("pub", "x"))
    reject_append(
        world,
        screen("2021-02-01T00:00:00Z", "scr"),
        expect=("post p1 is not published at 2021-02-01T00:00:00Z",),
    )


def test_a_retracted_registration_can_be_registered_again(world: Store) -> None:
    world.append(account("twitter:lonely", event_id="reg-l"), retraction("reg-l", "x"))
    world.append(account("twitter:lonely", "2020-02-01T00:00:00Z", event_id="reg-l2"))
    assert world.status("twitter:lonely")["cause_event"] == "reg-l2"


def test_a_date_alone_refused_against_its_own_day_says_it_was_read_as_midnight(
    world: Store,
) -> None:
    """Sources often give a day only. A reinstatement "on 15 Jan" after a suspension at
    08:00 that day is read as 00:00Z, before it: the refusal says why and what to give."""
    world.append(suspended("2024-01-15T08:00:00Z", "s"))
    hint = (
        "(occurred_at 2024-01-15 is a date alone, read as 2024-01-15T00:00:00Z, before the "
        "events later that day; if it happened after them, give the time)"
    )
    message = reject_append(world, reinstated("2024-01-15", "r"), expect=(hint,))
    assert message.startswith("Error: line 1: account_reinstated r rejected: the account is not")
    world.append(reinstated("2024-01-15T09:00:00Z", "r"))
    # A refusal about another day gets no such note.
    message = reject_append(world, reinstated("2024-02-01", "r2"), expect=())
    assert "date alone" not in message


def test_a_retraction_given_a_date_alone_before_its_target_that_day_is_told_so(
    world: Store,
) -> None:
    """A retraction's refusal for coming before its target lacked the note other
    events get: its day is read as 00:00Z, before a target later that day."""
    observed = ev("followers_observed", "2024-01-08T10:00:00Z", account=A, count=3)
    world.append({**observed, "event_id": "fo10"})
    message = reject_append(
        world,
        ev("event_retracted", "2024-01-08", target="fo10", reason="typo"),
        expect=(
            "a retraction cannot occur before its target fo10 (followers_observed at "
            "2024-01-08T10:00:00Z) (occurred_at 2024-01-08 is a date alone, read as "
            "2024-01-08T00:00:00Z, before the events later that day; if it happened after "
            "them, give the time)",
        ),
    )
    # Refused for another reason, or before a target on a later day: no such note.
    world.append({**observed, "occurred_at": "2024-01-09T10:00:00Z", "event_id": "fo9"})
    for target in ("fo9", "nothing"):
        retracting = ev("event_retracted", "2024-01-08", target=target, reason="typo")
        message = reject_append(world, retracting, expect=())
        assert "date alone" not in message
    world.append(ev("event_retracted", "2024-01-08T11:00:00Z", target="fo10", reason="typo"))
    message = reject_append(
        world, ev("event_retracted", "2024-01-08", target="fo10", reason="again"), expect=()
    )
    assert "already retracted" in message
    assert "date alone" not in message


def test_refusals_name_other_lines_of_the_batch_without_their_generated_ids(
    world: Store,
) -> None:
    """Lines given without event_id get ids the refused batch never stores: a refusal
    names such a line as another line of the batch, never by that id."""
    lines = [
        ev("account_removed", "2024-01-10", account=A, policy="p"),
        ev("account_suspended", "2024-01-12", account=A, policy="p"),
    ]
    message = reject_append(
        world,
        *lines,
        expect=(
            "Error: line 2: account_suspended rejected: the account was removed by another "
            "line of this batch at 2024-01-10T00:00:00Z",
        ),
    )
    assert "ev-" not in message
    later = [
        ev("account_suspended", "2024-01-12", account=A, policy="p"),
        ev("account_reinstated", "2024-01-13", account=A),
        ev("account_reinstated", "2024-01-12T06:00:00Z", account=A),
    ]
    message = reject_append(
        world,
        *later,
        expect=("this backfilled event would make another line of this batch (",),
    )
    assert "ev-" not in message
    # An id the log holds is named as it is.
    world.append(ev("account_removed", "2024-01-10", account=A, policy="p", event_id="rm"))
    reject_append(
        world,
        ev("account_suspended", "2024-01-12", account=A, policy="p"),
        expect=("the account was removed by rm at 2024-01-10T00:00:00Z",),
    )


def test_the_date_alone_note_is_left_out_where_the_days_later_events_do_not_matter(
    world: Store,
) -> None:
    world.append(
        ev("account_removed", "2024-01-10", account=A, policy="p", event_id="rm"),
        ev("followers_observed", "2024-01-15T10:00:00Z", account=A, count=3, event_id="f"),
    )
    message = reject_append(
        world,
        ev("account_suspended", "2024-01-15", account=A, policy="Q"),
        expect=("removed by rm",),
    )
    assert "date alone" not in message


def test_the_status_fold_keeps_only_measures_that_can_still_show() -> None:
    """Every measure since the last reinstatement was kept and re-sorted as each was
    laid: 10,000 restrictions cost seconds a status. A measure outranked by one that
    lasts at least as long can never show again, so it is dropped."""
    from ledger.rules import Entry, fold_status

    start = datetime(2020, 1, 1, tzinfo=UTC)

    def restricted_at(hour: int, until: datetime | None = None, kind: str = "restricted") -> Entry:
        record: dict[str, Any] = {"policy": "p", "restrictions": ["r"]}
        if until is not None:
            record["until"] = until.isoformat()
        return Entry(
            sequence=hour,
            event_id=f"e{hour}",
            type=f"account_{kind}",
            occurred_at=start + timedelta(hours=hour),
            record=record,
        )

    state = fold_status(restricted_at(hour) for hour in range(1_000))
    assert (state.cause, len(state.layers)) == ("e999", 1)
    # A suspension for a day over them, then a restriction that ends before it: the
    # suspension shows, the short restriction never will (dropped), and the indefinite
    # one waits beneath, the status again once the suspension ends.
    day = start + timedelta(hours=1_024)
    state = fold_status(
        [
            *(restricted_at(hour) for hour in range(1_000)),
            restricted_at(1_000, until=day, kind="suspended"),
            restricted_at(1_001, until=day - timedelta(hours=1)),
        ]
    )
    assert [m.cause for m in state.layers] == ["e1000", "e999"]
    assert (state.at(day).cause, state.at(day).since) == ("e999", day)
    assert state.at(day - timedelta(hours=2)).cause == "e1000"


def test_a_conflict_with_a_line_of_the_same_batch_does_not_call_it_recorded(store: Store) -> None:
    # It read "would make the recorded event m-s": m-s was line 2, and nothing was recorded.
    reject_append(
        store,
        account(A),
        ev("account_suspended", "2021-01-01", account=A, policy="p", event_id="m-s"),
        ev("account_reinstated", "2021-02-01", account=A),
        ev("account_removed", "2020-06-01", account=A, policy="p"),
        expect=(
            "line 4: account_removed rejected: this backfilled event would make the event "
            "m-s (account_suspended at 2021-01-01T00:00:00Z, another line of this batch) "
            "invalid",
        ),
    )
    assert export(store) == []
