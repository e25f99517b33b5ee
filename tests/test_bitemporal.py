"""Two clocks: valid time (--as-of, when things happened) and record time
(--known-at, what the ledger knew). Record times are real "now" times assigned at
append, so the tests read them back from `export --nl` and query around them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Store
from tests.ledger_helpers import (
    account,
    ev,
    export,
    jsonl,
    just_after,
    just_before,
    last_recorded_at,
    reject,
    reject_append,
    subject,
)

A = "twitter:example"
STATUS_KEYS = {
    "account",
    "platform",
    "handle",
    "subject",
    "status",
    "since",
    "until",
    "policy",
    "restrictions",
    "cause_event",
    "exemptions",
    "followers",
    "as_of",
    "known_at",
}


@dataclass
class Story:
    """A store whose history was learned in four batches, with their record times."""

    store: Store
    registered: str  # R1: subject, account, a follower count
    removed: str  # R2: the 2024 removal
    backfilled: str  # R3: the 2021 suspension and reinstatement, learned late
    retracted: str  # R4: the removal turns out to be a mistake


def recorded_at(store: Store, event_id: str) -> str:
    (record,) = [e for e in export(store) if e["event_id"] == event_id]
    return str(record["recorded_at"])


@pytest.fixture
def story(store: Store) -> Story:
    store.append(
        subject("someone", event_id="subj"),
        account(A, "2020-01-01T00:00:00Z", subject="someone", event_id="reg"),
        ev("followers_observed", "2020-06-01T00:00:00Z", account=A, count=100, event_id="f"),
    )
    store.append(ev("account_removed", "2024-02-08", account=A, policy="DOI", event_id="rm"))
    store.append(
        ev(
            "account_suspended",
            "2021-01-08T16:00:00Z",
            account=A,
            policy="Violence",
            event_id="s21",
        ),
        ev("account_reinstated", "2021-06-01T00:00:00Z", account=A, event_id="r21"),
    )
    store.append(
        ev("event_retracted", "2024-03-01", target="rm", reason="wrong account", event_id="x-rm")
    )
    return Story(
        store,
        registered=recorded_at(store, "reg"),
        removed=recorded_at(store, "rm"),
        backfilled=recorded_at(store, "s21"),
        retracted=recorded_at(store, "x-rm"),
    )


def status_at(story: Story, as_of: str, known_at: str) -> dict[str, Any]:
    return story.store.status(A, "--as-of", as_of, "--known-at", known_at)


# --- record time is a clock -------------------------------------------------------


def test_record_times_never_run_backwards(story: Story) -> None:
    times = [e["recorded_at"] for e in export(story.store)]
    assert times == sorted(times)
    assert story.registered < story.removed < story.backfilled < story.retracted


def test_one_batch_shares_one_record_time(story: Story) -> None:
    log = export(story.store)
    assert {e["recorded_at"] for e in log[:3]} == {story.registered}
    assert log[4]["recorded_at"] == log[5]["recorded_at"] == story.backfilled


# --- valid time vs record time ----------------------------------------------------


def test_before_the_backfill_was_recorded_2021_looked_clean(story: Story) -> None:
    old_view = status_at(story, "2021-03-01", story.removed)
    assert old_view["status"] == "active"
    assert old_view["cause_event"] == "reg"
    assert status_at(story, "2021-03-01", just_before(story.backfilled)) == {
        **old_view,
        "known_at": just_before(story.backfilled),
    }


def test_once_the_backfill_was_recorded_2021_shows_the_suspension(story: Story) -> None:
    view = status_at(story, "2021-03-01", story.backfilled)
    assert view["status"] == "suspended"
    assert view["since"] == "2021-01-08T16:00:00Z"
    assert view["policy"] == "Violence"
    assert view["cause_event"] == "s21"


def test_valid_time_moves_through_the_backfilled_history(story: Story) -> None:
    known = story.backfilled
    assert status_at(story, "2021-01-08T15:59:59Z", known)["status"] == "active"
    assert status_at(story, "2021-01-08T16:00:00Z", known)["status"] == "suspended"
    assert status_at(story, "2021-06-01T00:00:00Z", known)["cause_event"] == "r21"
    assert status_at(story, "2024-02-07", known)["status"] == "active"
    assert status_at(story, "2024-02-08", known)["status"] == "removed"


def test_the_removal_counts_until_its_retraction_is_recorded(story: Story) -> None:
    before = status_at(story, "2024-06-01", just_before(story.retracted))
    assert before["status"] == "removed"
    assert before["cause_event"] == "rm"
    after = status_at(story, "2024-06-01", story.retracted)
    assert after["status"] == "active"
    assert after["since"] == "2021-06-01T00:00:00Z"
    assert after["cause_event"] == "r21"
    assert story.store.status(A)["status"] == "active"


def test_before_the_registration_was_recorded_the_account_is_unknown(story: Story) -> None:
    moment = just_before(story.registered)
    reject(
        story.store,
        "status",
        A,
        "--known-at",
        moment,
        expect=(
            f"Error: account '{A}' has no registration that occurred by ",
            f"as known at {moment}",
        ),
    )


def test_before_the_registration_occurred_the_account_is_unknown(story: Story) -> None:
    reject(
        story.store,
        "status",
        A,
        "--as-of",
        "2019-12-31",
        expect=(f"account '{A}' has no registration that occurred by 2019-12-31T00:00:00Z",),
    )


def test_accounts_honour_both_clocks(story: Story) -> None:
    store = story.store
    assert store.ok("accounts", "--nl", "--known-at", just_before(story.registered)).stdout == ""
    assert store.ok("accounts", "--nl", "--as-of", "2019-01-01").stdout == ""
    removed = store.ok(
        "accounts", "--nl", "--status", "removed", "--known-at", story.backfilled
    ).stdout.splitlines()
    assert len(removed) == 1
    assert store.ok("accounts", "--nl", "--status", "removed").stdout == ""


# --- the timeline as known at ----------------------------------------------------------


def test_timeline_shows_only_what_was_recorded_by_known_at(story: Story) -> None:
    store = story.store
    ids = [e["event_id"] for e in store.timeline("--known-at", story.removed)]
    assert ids == ["subj", "reg", "f", "rm"]
    ids = [e["event_id"] for e in store.timeline("--known-at", story.backfilled)]
    assert ids == ["subj", "reg", "f", "s21", "r21", "rm"]
    assert store.timeline("--known-at", just_before(story.registered)) == []


def test_timeline_marks_retracted_only_from_the_retraction_on(story: Story) -> None:
    def removal(known_at: str) -> dict[str, Any]:
        (event,) = [
            e for e in story.store.timeline("--known-at", known_at) if e["event_id"] == "rm"
        ]
        return event

    assert removal(just_before(story.retracted))["retracted"] is False
    assert removal(story.retracted)["retracted"] is True
    events = story.store.timeline()
    assert [e["event_id"] for e in events if e["retracted"]] == ["rm"]
    (retraction,) = [e for e in events if e["type"] == "event_retracted"]
    assert retraction["target"] == "rm"
    assert retraction["reason"] == "wrong account"
    assert retraction["retracted"] is False


def test_the_correction_shows_where_its_target_shows(story: Story) -> None:
    store = story.store
    for selection in (("--account", A), ("--subject", "someone"), ("--platform", "twitter")):
        events = store.timeline(*selection)
        assert "x-rm" in [e["event_id"] for e in events], selection
        earlier = store.timeline(*selection, "--known-at", just_before(story.retracted))
        assert "x-rm" not in [e["event_id"] for e in earlier], selection


def test_a_retracted_event_stays_in_the_log(story: Story) -> None:
    assert [e["event_id"] for e in export(story.store)] == [
        "subj",
        "reg",
        "f",
        "rm",
        "s21",
        "r21",
        "x-rm",
    ]


def test_retraction_of_a_retraction_is_refused(story: Story) -> None:
    reject_append(
        story.store,
        ev("event_retracted", "2024-04-01", target="x-rm", reason="undo"),
        expect=("event_retracted rejected: x-rm is itself a retraction and cannot be retracted",),
    )


def test_retracting_a_registration_that_has_later_events_is_refused(story: Story) -> None:
    reject_append(
        story.store,
        ev("event_retracted", "2024-04-01", target="reg", reason="undo"),
        expect=(
            "retracting reg (account_registered at 2020-01-01T00:00:00Z) would leave "
            "f (followers_observed at 2020-06-01T00:00:00Z) without a registration; "
            "retract the later events first",
        ),
    )


def test_a_retracted_registration_hides_the_account_from_then_on(store: Store) -> None:
    store.append(account("twitter:typo", event_id="reg-typo"))
    store.append(ev("event_retracted", "2024-04-01", target="reg-typo", reason="typo"))
    retracted = export(store)[-1]["recorded_at"]
    assert store.status("twitter:typo", "--known-at", just_before(retracted))["status"] == "active"
    reject(store, "status", "twitter:typo", expect=("has no registration",))
    assert store.ok("accounts", "--nl").stdout == ""


# --- until -----------------------------------------------------------------------


def test_a_measure_with_until_ends_by_itself(store: Store) -> None:
    store.append(
        account(A, event_id="reg"),
        ev(
            "account_restricted",
            "2021-01-01T00:00:00Z",
            account=A,
            policy="Spam",
            restrictions=["read_only"],
            until="2021-02-01T00:00:00Z",
            event_id="rs",
        ),
    )
    during = store.status(A, "--as-of", "2021-01-31T23:59:59Z")
    assert (during["status"], during["until"], during["policy"]) == (
        "restricted",
        "2021-02-01T00:00:00Z",
        "Spam",
    )
    at_end = store.status(A, "--as-of", "2021-02-01T00:00:00Z")
    assert at_end["status"] == "active"
    assert at_end["since"] == "2021-02-01T00:00:00Z"
    assert at_end["until"] is None
    assert at_end["policy"] is None
    assert store.status(A)["status"] == "active"
    assert store.ok("accounts", "--nl", "--status", "restricted").stdout == ""


def test_a_later_indefinite_measure_outlasts_an_earlier_until(store: Store) -> None:
    store.append(
        account(A),
        ev("account_suspended", "2021-01-01", account=A, policy="p", until="2021-03-01"),
        ev("account_suspended", "2021-02-01", account=A, policy="q", event_id="s2"),
    )
    now = store.status(A)
    assert (now["status"], now["until"], now["cause_event"]) == ("suspended", None, "s2")


# --- the status document ---------------------------------------------------------


def test_status_json_has_exactly_the_documented_keys(story: Story) -> None:
    document = status_at(story, "2021-03-01T00:00:00+01:00", story.backfilled)
    assert set(document) == STATUS_KEYS
    assert list(document) == [
        "account",
        "platform",
        "handle",
        "subject",
        "status",
        "since",
        "until",
        "policy",
        "restrictions",
        "cause_event",
        "exemptions",
        "followers",
        "as_of",
        "known_at",
    ]
    assert document["account"] == A
    assert document["platform"] == "twitter"
    assert document["handle"] == "example"
    assert document["subject"] == "someone"
    assert document["until"] is None
    assert document["as_of"] == "2021-02-28T23:00:00Z"
    assert document["known_at"] == story.backfilled


def test_exemptions_of_the_account_and_of_its_subject(store: Store) -> None:
    store.append(
        subject("someone"),
        account(A, subject="someone"),
        account("facebook:other", subject="someone"),
        ev(
            "exemption_applied",
            "2021-01-01",
            account=A,
            exemption="public_interest",
            policy="Public interest",
            event_id="ex-acc",
        ),
        ev(
            "exemption_applied",
            "2022-01-01",
            subject="someone",
            exemption="un_recognised_government_official",
            policy="UN rule",
            event_id="ex-sub",
        ),
        ev(
            "exemption_applied",
            "2021-01-01",
            account=A,
            exemption="newsworthy",
            policy="News",
            event_id="ex-old",
        ),
        ev("exemption_revoked", "2021-06-01", account=A, exemption="newsworthy", policy="News"),
    )
    exemptions = store.status(A)["exemptions"]
    assert exemptions == [
        {
            "exemption": "public_interest",
            "policy": "Public interest",
            "holder": "account",
            "since": "2021-01-01T00:00:00Z",
            "event": "ex-acc",
        },
        {
            "exemption": "un_recognised_government_official",
            "policy": "UN rule",
            "holder": "subject",
            "since": "2022-01-01T00:00:00Z",
            "event": "ex-sub",
        },
    ]
    in_2021 = store.status(A, "--as-of", "2021-03-01")["exemptions"]
    assert sorted(e["event"] for e in in_2021) == ["ex-acc", "ex-old"]
    # The subject's exemption reaches its other accounts too.
    other = store.status("facebook:other")["exemptions"]
    assert [e["event"] for e in other] == ["ex-sub"]


def test_a_subjects_exemption_is_held_by_a_later_account_from_its_registration(
    store: Store,
) -> None:
    """Its `since` read as the subject's, before the account existed."""
    store.append(
        subject("someone"),
        account("twitter:first", subject="someone"),
        ev("exemption_applied", "2021-01-01", subject="someone", platform="twitter",
           exemption="news", policy="p", event_id="ex"),
        account("twitter:later", "2022-01-01", subject="someone"),
    )  # fmt: skip
    since = {
        a: store.status(a)["exemptions"][0]["since"] for a in ("twitter:first", "twitter:later")
    }
    assert since == {
        "twitter:first": "2021-01-01T00:00:00Z",
        "twitter:later": "2022-01-01T00:00:00Z",
    }
    # The subject's event, listed under it and its platform, not an account (README).
    listed = {
        name: [row["event_id"] for row in store.timeline(*flag) if row["event_id"] == "ex"]
        for name, flag in (
            ("subject", ("--subject", "someone")),
            ("platform", ("--platform", "twitter")),
            ("account", ("--account", "twitter:first")),
        )
    }
    assert listed == {"subject": ["ex"], "platform": ["ex"], "account": []}


def test_a_retracted_exemption_disappears_from_the_retraction_on(store: Store) -> None:
    store.append(
        account(A),
        ev(
            "exemption_applied",
            "2021-01-01",
            account=A,
            exemption="public_interest",
            policy="p",
            event_id="ex",
        ),
    )
    store.append(ev("event_retracted", "2021-02-01", target="ex", reason="never applied"))
    retracted = export(store)[-1]["recorded_at"]
    assert store.status(A, "--known-at", just_before(retracted))["exemptions"] != []
    assert store.status(A)["exemptions"] == []


def test_a_subjects_exemption_under_one_platforms_rule_is_held_there_only(
    store: Store,
) -> None:
    # X's public-interest framework is X's: Meta's accounts of the same person do not
    # hold it (they showed it, and Meta appeared to remove an exempt account).
    store.append(
        subject("someone"),
        account("twitter:someone", subject="someone"),
        account("facebook:someone", subject="someone"),
        ev("exemption_applied", "2022-01-01", subject="someone", platform="twitter",
           exemption="world_leader", policy="X public-interest framework", event_id="x-rule"),
        ev("exemption_applied", "2022-01-01", subject="someone",
           exemption="world_leader", policy="every platform's", event_id="all"),
    )  # fmt: skip

    def held(account: str) -> list[str]:
        return [e["event"] for e in store.status(account)["exemptions"]]

    assert held("twitter:someone") == ["x-rule", "all"]
    scoped = store.status("twitter:someone")["exemptions"][0]
    assert scoped["platform"] == "twitter"  # its revocation must name it too
    assert held("facebook:someone") == ["all"]
    assert [e.get("platform") for e in store.timeline("--type", "exemption_applied")] == [
        "twitter",
        None,
    ]
    # Revoked per platform: the general one stays.
    store.append(
        ev("exemption_revoked", "2023-01-01", subject="someone", platform="twitter",
           exemption="world_leader", policy="X public-interest framework"),
    )  # fmt: skip
    assert held("twitter:someone") == ["all"]
    reject_append(
        store,
        ev("exemption_revoked", "2023-02-01", subject="someone", platform="twitter",
           exemption="world_leader", policy="p"),
        expect=("exemption world_leader is not in force on subject 'someone' for platform "
                "twitter at 2023-02-01T00:00:00Z",),
    )  # fmt: skip
    reject_append(
        store,
        ev("exemption_applied", "2023-02-01", account="twitter:someone", platform="twitter",
           exemption="x", policy="p"),
        expect=("platform: only with subject; an account's is its id's prefix",),
    )  # fmt: skip
    # A platform the subject has no account on (a typo, a platform's new name) would
    # exempt nobody: refused, naming where its accounts are.
    for platform in ("x", "twiter", "youtube"):
        reject_append(
            store,
            ev("exemption_applied", "2023-02-01", subject="someone", platform=platform,
               exemption="y", policy="p"),
            expect=(f"platform: subject 'someone' has no account on platform '{platform}' "
                    "(its accounts are on facebook, twitter)",),
        )  # fmt: skip
    # A platform's new name: said so (as the read commands' filters say it).
    store.append(ev("platform_renamed", "2023-07-23", platform="twitter", name="X",
                    event_id="rn"))  # fmt: skip
    reject_append(
        store,
        ev("exemption_applied", "2023-08-01", subject="someone", platform="x",
           exemption="y", policy="p"),
        expect=("begin with; 'x' is the name platform 'twitter' took (rn): a platform keeps "
                "its slug when renamed",),
    )  # fmt: skip


def test_a_revocation_where_the_exemption_is_not_held_says_where_it_is(store: Store) -> None:
    store.append(
        subject("someone"),
        account("twitter:someone", subject="someone"),
        ev("exemption_applied", "2022-01-01", subject="someone", platform="twitter",
           exemption="news", policy="p", event_id="x-news"),
    )  # fmt: skip
    scoped = (
        "; it is in force on subject 'someone' for platform twitter (x-news (exemption_applied "
        "at 2022-01-01T00:00:00Z)): revoke it there"
    )
    for holder in ({"account": "twitter:someone"}, {"subject": "someone"}):
        reject_append(
            store,
            ev("exemption_revoked", "2023-01-01", exemption="news", policy="p", **holder),
            expect=(scoped,),
        )
    # Before it was applied it is nowhere: no hint.
    message = reject_append(
        store,
        ev("exemption_revoked", "2021-01-01", exemption="news", policy="p", subject="someone"),
        expect=("exemption news is not in force on subject 'someone' at 2021-01-01T00:00:00Z",),
    )
    assert "in force on" not in message.split("not in force on")[1]


def test_a_registration_holding_a_platform_exemption_alone_is_retracted_after_it(
    store: Store,
) -> None:
    # Retracting the subject's only twitter account would leave its twitter exemption
    # held by nobody, one a new exemption naming twitter could not be: refused, as a
    # subject's registration is while an account refers to it.
    store.append(
        subject("someone"),
        account("twitter:someone", subject="someone", event_id="tw"),
        account("facebook:someone", subject="someone", event_id="fb"),
        ev("exemption_applied", "2022-01-01", subject="someone", platform="twitter",
           exemption="world_leader", policy="p", event_id="x-rule"),
    )  # fmt: skip
    reject_append(
        store,
        ev("event_retracted", "2024-01-01", target="tw", reason="wrong", event_id="r"),
        expect=("event_retracted r rejected: subject 'someone' holds x-rule (exemption_applied "
                "at 2022-01-01T00:00:00Z) under platform 'twitter' through account "
                "twitter:someone alone; revoke or retract it first",),
    )  # fmt: skip
    # Two accounts there: retracting both is refused, naming the second line (the first
    # alone left the other holding it).
    store.append(account("twitter:someone3", subject="someone", event_id="tw3"))
    reject_append(
        store,
        ev("event_retracted", "2024-01-01", target="tw", reason="wrong"),
        ev("event_retracted", "2024-01-01", target="tw3", reason="wrong"),
        expect=("line 2: event_retracted", "through account twitter:someone3 alone"),
    )
    store.append(ev("event_retracted", "2024-01-01", target="tw3", reason="wrong"))
    # Registered again in the same batch (a registration's correction), it still holds it:
    # judged at the end of the batch, as a registration retracted and made again is.
    store.append(
        ev("event_retracted", "2024-01-01", target="tw", reason="wrong date"),
        account("twitter:someone", "2019-06-01", subject="someone", event_id="tw-again"),
    )
    # Another account there holds it too, or the exemption is gone: the retraction stands.
    store.append(
        account("twitter:someone2", subject="someone", event_id="tw2"),
        ev("event_retracted", "2024-01-01", target="tw-again", reason="wrong"),
        ev("event_retracted", "2024-01-01", target="fb", reason="wrong"),
        ev("exemption_revoked", "2023-01-01", subject="someone", platform="twitter",
           exemption="world_leader", policy="p"),
        ev("event_retracted", "2024-01-01", target="tw2", reason="wrong"),
    )  # fmt: skip
    recorded = export(store)
    assert len(recorded) == 13
    assert recorded[-1]["target"] == "tw2"
    # Nor may the exemption come back by retracting its revocation (review probe).
    revocation = next(e["event_id"] for e in recorded if e["type"] == "exemption_revoked")
    reject_append(
        store,
        ev("event_retracted", "2024-02-01", target=revocation, reason="wrong"),
        expect=(f"retracting {revocation} would put exemption world_leader back in force on "
                "subject 'someone' under platform 'twitter', where it has no account any more",),
    )  # fmt: skip


def test_known_at_alone_gives_the_answer_the_ledger_gave_then(store: Store) -> None:
    # A suspension ending seconds after it was recorded: asked later "as known then",
    # it is what a reader was told then (as of then), not what is true now by it.
    start = datetime.now(UTC)
    store.append(
        account(A),
        ev("account_suspended", start.isoformat(), account=A, policy="p",
           until=(start + timedelta(seconds=1)).isoformat()),
    )  # fmt: skip
    then = store.status(A)
    assert then["status"] == "suspended"
    time.sleep(1.2)
    known = then["known_at"]
    assert store.status(A, "--known-at", known) == then
    assert store.status(A, "--known-at", known, "--as-of", "2030-01-01")["status"] == "active"
    assert store.status(A)["status"] == "active"
    # A record time to come knows what is known now: as of now, not of then (a script's
    # far-future --known-at for "everything known" got a forecast).
    store.append(ev("account_suspended", "2024-01-01", account=A, policy="p", until="2090-01-01"))
    future = store.status(A, "--known-at", "2100-01-01")
    assert future["status"] == "suspended"
    assert future["as_of"] < "2100"


def test_followers_is_the_latest_count_in_valid_time(store: Store) -> None:
    store.append(
        account(A),
        ev("followers_observed", "2021-01-01", account=A, count=100),
        ev("followers_observed", "2023-01-01", account=A, count=300),
    )
    first_two = export(store)[-1]["recorded_at"]
    # Learned last, but observed in between: it is not the latest count.
    store.append(ev("followers_observed", "2022-01-01", account=A, count=200))
    assert store.status(A)["followers"] == 300
    assert store.status(A, "--as-of", "2022-06-01")["followers"] == 200
    assert store.status(A, "--as-of", "2022-06-01", "--known-at", first_two)["followers"] == 100
    assert store.status(A, "--as-of", "2020-06-01")["followers"] is None


def test_a_retracted_follower_count_gives_way_to_the_previous_one(store: Store) -> None:
    store.append(
        account(A),
        ev("followers_observed", "2021-01-01", account=A, count=100, event_id="f1"),
        ev("followers_observed", "2022-01-01", account=A, count=999, event_id="f2"),
    )
    store.append(ev("event_retracted", "2022-02-01", target="f2", reason="typo"))
    retracted = export(store)[-1]["recorded_at"]
    assert store.status(A, "--known-at", just_before(retracted))["followers"] == 999
    assert store.status(A)["followers"] == 100
    reject_append(
        store,
        ev("event_retracted", "2022-03-01", target="f2", reason="again"),
        expect=("f2 was already retracted by ",),
    )


def test_same_instant_follower_counts_take_the_last_recorded(store: Store) -> None:
    store.append(
        account(A),
        ev("followers_observed", "2021-01-01", account=A, count=100),
        ev("followers_observed", "2021-01-01", account=A, count=101),
    )
    assert store.status(A)["followers"] == 101


# --- parsing the two clocks -------------------------------------------------------------


@pytest.mark.parametrize("option", ["--as-of", "--known-at"])
def test_a_naive_time_is_a_usage_error(story: Story, option: str) -> None:
    reject(
        story.store,
        "status",
        A,
        option,
        "2021-03-01T00:00:00",
        code=2,
        expect=(f"Invalid value for {option}: needs a UTC offset",),
    )


def test_a_malformed_time_is_a_usage_error(story: Story) -> None:
    reject(
        story.store,
        "status",
        A,
        "--as-of",
        "last tuesday",
        code=2,
        expect=("expected ISO 8601 like 2024-02-08 or 2024-02-08T10:00:00Z",),
    )


@pytest.mark.parametrize(
    "args",
    [
        ("status", A, "--as-of", "9999-12-31T23:59:59-05:00"),
        ("status", A, "--known-at", "0001-01-01T00:00:00+05:00"),
        ("timeline", "--since", "0001-01-01T00:00:00+05:00"),
    ],
    ids=["as-of", "known-at", "since"],
)
def test_a_time_out_of_range_in_utc_is_a_usage_error(story: Story, args: tuple[str, ...]) -> None:
    reject(story.store, *args, code=2, expect=("Invalid value for --",))


def test_recorded_since_lists_what_the_ledger_learned_in_a_window(store: Store) -> None:
    """`--recorded-since T1 --known-at T2`: what was added between two record times,
    in valid-time order, with retractions as known at T2 (an auditor's review of a
    week's entries); `counts` counts the same events."""
    store.append(account("twitter:a", "2020-01-01", event_id="reg"))
    first = last_recorded_at(store)
    store.append(
        ev("account_suspended", "2021-01-01", account="twitter:a", policy="p", event_id="s1"),
        ev("followers_observed", "2020-06-01", account="twitter:a", count=5, event_id="f1"),
    )
    second = last_recorded_at(store)
    store.append(ev("event_retracted", "2021-02-01", target="s1", reason="typo", event_id="r1"))
    third = last_recorded_at(store)

    def listed(*args: str) -> list[tuple[str, bool]]:
        return [(e["event_id"], e["retracted"]) for e in store.timeline(*args)]

    window = ("--recorded-since", just_after(first), "--known-at", second)
    assert listed(*window) == [("f1", False), ("s1", False)]  # valid-time order
    assert listed("--recorded-since", just_after(first)) == [
        ("f1", False),
        ("s1", True),
        ("r1", False),
    ]
    assert listed("--recorded-since", third) == [("r1", False)]
    assert listed("--recorded-since", first, "--known-at", first) == [("reg", False)]
    counted = store.ok("counts", "--by", "type", "--json", *window).stdout
    assert json.loads(counted) == [
        {"type": "account_suspended", "count": 1},
        {"type": "followers_observed", "count": 1},
    ]
    result = store.fail("timeline", "--recorded-since", third, "--known-at", second, code=2)
    assert "--recorded-since" in result.output
    assert "the range is empty" in result.output


def test_status_history_gives_every_period_on_both_clocks(store: Store) -> None:
    """A suspension that ends by itself, a restriction, a reinstatement and a removal
    later retracted: each period once, the retracted removal only as known before
    its retraction."""
    store.append(account("twitter:a", "2020-01-01", event_id="reg"))
    store.append(
        ev(
            "account_suspended", "2021-01-01", account="twitter:a", policy="p1",
            until="2021-06-01T00:00:00Z", event_id="sus",
        ),
        ev(
            "account_restricted", "2022-01-01", account="twitter:a", policy="p2",
            restrictions=["read_only"], event_id="res",
        ),
        ev("account_reinstated", "2023-01-01", account="twitter:a", event_id="rei"),
        ev("account_removed", "2024-01-01", account="twitter:a", policy="p3", event_id="rem"),
    )  # fmt: skip
    before_retraction = last_recorded_at(store)
    store.append(ev("event_retracted", "2024-02-01", target="rem", reason="wrong", event_id="x"))

    def periods(*args: str) -> list[tuple[Any, ...]]:
        out = store.ok("status", "twitter:a", "--history", "--nl", *args).stdout
        rows = [json.loads(line) for line in out.splitlines()]
        return [(r["status"], r["from"], r["to"], r["cause_event"]) for r in rows]

    common = [
        ("active", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", "reg"),
        ("suspended", "2021-01-01T00:00:00Z", "2021-06-01T00:00:00Z", "sus"),
        ("active", "2021-06-01T00:00:00Z", "2022-01-01T00:00:00Z", "sus"),  # it ended
        ("restricted", "2022-01-01T00:00:00Z", "2023-01-01T00:00:00Z", "res"),
    ]
    assert periods() == [*common, ("active", "2023-01-01T00:00:00Z", None, "rei")]
    assert periods("--known-at", before_retraction) == [
        *common,
        ("active", "2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "rei"),
        ("removed", "2024-01-01T00:00:00Z", None, "rem"),
    ]
    table = store.ok("status", "twitter:a", "--history").stdout.splitlines()
    assert table[0].split() == ["status", "from", "to", "until", "policy", "cause_event"]
    assert table[3].split() == [
        "suspended", "2021-01-01T00:00:00Z", "2021-06-01T00:00:00Z",
        "2021-06-01T00:00:00Z", "p1", "sus",
    ]  # fmt: skip
    csv_header = store.ok("status", "twitter:a", "--history", "--csv").stdout.splitlines()[0]
    assert csv_header == "account,status,from,to,until,policy,cause_event"
    result = store.fail("status", "twitter:a", "--history", "--as-of", "2022-01-01", code=2)
    assert "--history covers all valid time: give it without --as-of" in result.output
    assert (
        "has no registration as known at" in store.fail("status", "twitter:b", "--history").output
    )
    # Every account's periods: here the one account's, and only the active ones if asked.
    every = store.ok("accounts", "--history", "--nl").stdout
    assert every == store.ok("status", "twitter:a", "--history", "--nl").stdout
    active = store.ok("accounts", "--history", "--status", "active", "--json").stdout
    assert [p["from"] for p in json.loads(active)] == [
        "2020-01-01T00:00:00Z",
        "2021-06-01T00:00:00Z",
        "2023-01-01T00:00:00Z",
    ]
    result = store.fail("accounts", "--history", "--as-of", "2022-01-01", code=2)
    assert "--history covers all valid time: give it without --as-of" in result.output


def test_appeals_on_both_clocks(store: Store) -> None:
    """An appeal is pending until decided in valid time, and a retracted decision
    leaves it pending again, as known after the retraction."""
    store.append(account("twitter:a", "2020-01-01"))
    store.append(
        ev("account_suspended", "2021-01-01", account="twitter:a", policy="p1", event_id="s1"),
        ev("appeal_filed", "2021-01-05", account="twitter:a", appeal="A1", target="s1"),
        ev(
            "appeal_decided", "2021-02-01", account="twitter:a", appeal="A1", target="s1",
            outcome="overturned", event_id="d1",
        ),
    )  # fmt: skip
    decided_known = last_recorded_at(store)
    store.append(ev("event_retracted", "2021-03-01", target="d1", reason="wrong appeal"))

    def listed(*args: str) -> list[tuple[Any, ...]]:
        rows = json.loads(store.ok("appeals", "twitter:a", "--json", *args).stdout)
        return [
            (r["appeal"], r["state"], r["outcome"], r["target_type"], r["policy"]) for r in rows
        ]

    pending = [("A1", "pending", None, "account_suspended", "p1")]
    decided = [("A1", "decided", "overturned", "account_suspended", "p1")]
    assert listed("--as-of", "2021-01-04") == []
    assert listed("--as-of", "2021-01-20", "--known-at", decided_known) == pending
    assert listed("--known-at", decided_known) == decided
    assert listed() == pending  # the decision was retracted
    every = json.loads(store.ok("appeals", "--state", "pending", "--json").stdout)
    assert [r["account"] for r in every] == ["twitter:a"]
    assert store.ok("appeals", "--state", "decided").stderr == "(no appeals)\n"
    result = store.fail("appeals", "twitter:a", "--platform", "twitter", code=2)
    assert "--platform and --subject select accounts: give them without ACCOUNT" in result.output
    assert "has no registration" in store.fail("appeals", "twitter:zz").output


def test_a_clock_set_back_does_not_move_record_time_backwards(store: Store) -> None:
    # The host clock stepped back between two appends (NTP, a VM restored): the second
    # batch records a microsecond past the last record time, so "known at T" stays a
    # prefix of the log, and an answer given before it, known at the last record time,
    # is given again for that time (with the same time, it gained the later batch).
    from datetime import UTC, datetime, timedelta

    from ledger.application import Ledger
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        first = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        for now, line in (
            (first, jsonl(account(A, "2020-01-01T00:00:00Z", event_id="reg"))),
            (
                first - timedelta(days=1),
                jsonl(ev("followers_observed", "2021-01-01", account=A, count=1)),
            ),
        ):
            ledger.append([(1, parse_event(line))], actor="tester", now=now)
    finally:
        ledger.close()
    times = [e["recorded_at"] for e in export(store)]
    assert times == ["2025-06-01T12:00:00Z", "2025-06-01T12:00:00.000001Z"]
    assert [e["event_id"] for e in store.timeline("--known-at", "2025-06-01T12:00:00Z")] == ["reg"]
    assert len(store.timeline("--known-at", "2025-06-01T12:00:00.000001Z")) == 2
    assert store.timeline("--known-at", "2025-06-01T11:59:59Z") == []


def test_answers_by_default_hold_events_recorded_ahead_of_the_readers_clock(
    store: Store,
) -> None:
    # A writer's clock an hour ahead (or this one set back since): the events it
    # recorded carry a record time still to come here. A default "known at now" by
    # this clock would hide what the ledger holds and reported appended.
    from ledger.application import Ledger
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    ahead = datetime.now(UTC) + timedelta(hours=1)
    lines = [
        subject("s1", "2020-01-01T00:00:00Z"),
        account(A, "2020-01-01T00:00:00Z", event_id="reg", subject="s1"),
        ev("post_published", "2020-02-01", account=A, post="p1", event_id="post"),
        ev("account_suspended", "2024-03-02", account=A, policy="Violent speech", event_id="sus"),
        ev("appeal_filed", "2024-03-03", account=A, appeal="a1", target="sus", event_id="ap"),
    ]
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        events = [(n, parse_event(jsonl(line))) for n, line in enumerate(lines, 1)]
        ledger.append(events, actor="tester", now=ahead)
    finally:
        ledger.close()
    recorded = last_recorded_at(store)
    assert datetime.fromisoformat(recorded) > datetime.now(UTC)

    def answer(*args: str) -> Any:
        return json.loads(store.ok(*args, "--json").stdout)

    status = answer("status", A)
    assert (status["status"], status["cause_event"]) == ("suspended", "sus")
    assert status["known_at"] == recorded  # the newest record time, not this clock's now
    history = answer("status", A, "--history")
    assert [p["status"] for p in history] == ["active", "suspended"]
    assert [r["account"] for r in answer("accounts", "--status", "suspended")] == [A]
    assert [p["status"] for p in answer("accounts", "--history")] == ["active", "suspended"]
    assert [r["subject"] for r in answer("subjects")] == ["s1"]
    assert [r["post"] for r in answer("posts", A)] == ["p1"]
    assert [r["appeal"] for r in answer("appeals", A)] == ["a1"]
    assert len(store.timeline()) == len(lines)
    assert len(store.timeline("--recorded-since", recorded)) == len(lines)  # README's recipe
    assert answer("counts", "--by", "type", "--type", "account_suspended") == [
        {"type": "account_suspended", "count": 1}
    ]
    # Asked for explicitly, this clock's now still knows nothing of them.
    now = datetime.now(UTC).isoformat()
    assert store.timeline("--known-at", now) == []
    result = store.fail("timeline", "--recorded-since", recorded, "--known-at", now, code=2)
    assert "is later than the record time asked for (--known-at)" in result.output


def test_an_answer_known_at_a_record_time_ahead_is_given_again_for_that_time(
    store: Store,
) -> None:
    # A writer's clock an hour ahead recorded the newest event: a default answer is
    # known at its record time, and says so. Appends by this clock, behind it, took
    # that very time, so the answer asked again `--known-at` it gained them.
    from ledger.application import Ledger
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    store.append(account(A, "2020-01-01T00:00:00Z"))
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        seen = parse_event(jsonl(ev("followers_observed", "2021-01-01", account=A, count=100)))
        ledger.append([(1, seen)], actor="tester", now=datetime.now(UTC) + timedelta(hours=1))
    finally:
        ledger.close()
    given = store.status(A)
    assert given["followers"] == 100
    store.append(ev("followers_observed", "2021-06-01", account=A, count=999))
    again = store.status(A, "--known-at", given["known_at"])
    # As of now both times: a known-at still to come by this clock is as of now.
    assert {**again, "as_of": None} == {**given, "as_of": None}
    assert store.status(A)["followers"] == 999


def test_a_record_time_ahead_of_the_readers_clock_does_not_move_valid_time_on(
    store: Store,
) -> None:
    # rv28: one event recorded by a clock an hour ahead moved every default answer's
    # as-of there too, ending a suspension whose `until` is still to come by this clock.
    from ledger.application import Ledger
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    until = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    store.append(
        account(A, "2020-01-01T00:00:00Z"),
        ev("account_suspended", "2024-03-02", account=A, policy="p", until=until),
    )
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        unrelated = parse_event(jsonl(subject("s2", "2020-01-01T00:00:00Z")))
        ledger.append([(1, unrelated)], actor="tester", now=datetime.now(UTC) + timedelta(hours=1))
    finally:
        ledger.close()
    status = store.status(A)
    assert status["status"] == "suspended"
    assert status["known_at"] == last_recorded_at(store)  # holds the event ahead
    assert datetime.fromisoformat(status["as_of"]) <= datetime.now(UTC)
    suspended = json.loads(store.ok("accounts", "--status", "suspended", "--json").stdout)
    assert [row["account"] for row in suspended] == [A]


def test_a_clock_far_behind_the_log_stops_appends_rather_than_sign_a_time_to_come(
    store: Store,
) -> None:
    # More than a day behind the last record time: a clock far ahead wrote that one, or
    # the store was changed; each event appended would be recorded at a time still to come.
    from datetime import UTC, datetime, timedelta

    from ledger.application import Ledger, LedgerError
    from ledger.events import parse_event
    from ledger.location import StoreLocation

    ledger = Ledger(StoreLocation.parse(store.url))
    first = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    try:
        ledger.append(
            [(1, parse_event(jsonl(account(A, "2020-01-01T00:00:00Z", event_id="reg"))))],
            actor="tester",
            now=first,
        )
        later = parse_event(jsonl(ev("followers_observed", "2021-01-01", account=A, count=1)))
        with pytest.raises(LedgerError) as refused:
            ledger.append([(1, later)], actor="tester", now=first - timedelta(days=1, seconds=1))
        ledger.append([(1, later)], actor="tester", now=first - timedelta(days=1))
    finally:
        ledger.close()
    assert str(refused.value).startswith(
        "the log's last record time, 2025-06-01T12:00:00Z (sequence 0), is more than 1 day "
        "ahead of this clock (2025-05-31T11:59:59Z); every event appended now would be "
        "recorded just past it, so nothing was written"
    )
    # Appends resume a day before that time, not once the clock passes it (as said).
    assert str(refused.value).endswith(
        "appends resume once this clock reaches 2025-05-31T12:00:00Z, 1 day before that time"
    )
    assert [e["recorded_at"] for e in export(store)] == [
        "2025-06-01T12:00:00Z",
        "2025-06-01T12:00:00.000001Z",
    ]


def test_recorded_since_lists_exactly_what_was_recorded_from_then(store: Store) -> None:
    # Found as a tail of the log by bisecting record times: at, just before and just
    # after each batch's record time, the answer equals the export's own filter.
    from datetime import datetime

    store.append(account(A, "2020-01-01T00:00:00Z"))
    for batch in range(1, 4):
        store.append(
            *[ev("followers_observed", "2021-01-01", account=A, count=batch * 10 + i)
              for i in range(batch)]
        )  # fmt: skip
    log = export(store)
    for recorded in sorted({e["recorded_at"] for e in log}):
        for moment in (just_before(recorded), recorded, just_after(recorded)):
            since = datetime.fromisoformat(moment)
            listed = {e["sequence"] for e in store.timeline("--recorded-since", moment)}
            expected = {
                e["sequence"] for e in log if datetime.fromisoformat(e["recorded_at"]) >= since
            }
            assert listed == expected, moment
