"""`posts ACCOUNT`: each post's state (visible, warning_screen, removed) on both clocks.

The seed story's post is checked by hand; then, for every account of a generated
history with backfills and retractions, at many (as_of, known_at) moments, the
command must agree with a reference built another way from the account's timeline:
a post's screen is the last screen event, its removal the last removal event.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.generate import generate
from projections.queries import POST_STATES
from tests.conftest import Store
from tests.ledger_helpers import account, ev, iso, just_before, last_recorded_at, reject

SEED = Path(__file__).resolve().parents[1] / "ledger" / "data" / "seed.jsonl"
A = "twitter:example"


def _posts(store: Store, account_id: str, *args: str) -> list[dict[str, Any]]:
    return json.loads(store.ok("posts", account_id, "--json", *args).stdout)  # type: ignore[no-any-return]


def test_the_seed_post_is_visible_then_behind_a_public_interest_screen(store: Store) -> None:
    store.ok("append", str(SEED))
    (before,) = _posts(store, "twitter:khamenei_ir", "--as-of", "2023-10-08")
    assert (before["state"], before["cause_event"]) == ("visible", "seed-x-post-oct7")
    (now,) = _posts(store, "twitter:khamenei_ir")
    assert now["state"] == "warning_screen"
    assert (now["policy"], now["exception"]) == ("X Rules", "public_interest")
    assert now["since"] == now["warning_screen_since"] == "2023-10-09T00:00:00Z"
    assert now["published_at"] == "2023-10-08T00:00:00Z"
    # Registered (first observed) on 2021-01-08: the day before, no account; between,
    # an account with no posts yet.
    assert _posts(store, "twitter:khamenei_ir", "--as-of", "2023-10-07") == []
    reject(store, "posts", "twitter:khamenei_ir", "--as-of", "2021-01-07", expect=("2021-01-07",))
    table = store.ok("posts", "twitter:khamenei_ir").stdout
    assert "oct-7-praise  warning_screen" in table


def _post(
    type_: str, when: str, event_id: str, post_id: str = "p1", **fields: Any
) -> dict[str, Any]:
    return ev(type_, when, account=A, post=post_id, event_id=event_id, **fields)


def test_a_removal_outranks_a_screen_and_each_is_lifted_by_its_own_event(store: Store) -> None:
    store.append(
        account(A, "2020-01-01"),
        _post("post_published", "2021-01-01", "pub", url="https://x.example/1"),
        _post("post_published", "2021-01-01", "pub2", post_id="p2"),
        _post("post_warning_screen_applied", "2021-02-01", "scr", policy="R", reason="gore"),
        _post("post_removed", "2021-03-01", "rm", policy="Violence"),
        _post("post_restored", "2021-04-01", "back"),
        _post("post_warning_screen_removed", "2021-05-01", "unscr"),
    )

    def p1(as_of: str) -> tuple[str, str, str | None]:
        (row,) = _posts(store, A, "--post", "p1", "--as-of", as_of)
        return row["state"], row["cause_event"], row["warning_screen_since"]

    assert p1("2021-01-15") == ("visible", "pub", None)
    assert p1("2021-02-15") == ("warning_screen", "scr", "2021-02-01T00:00:00Z")
    assert p1("2021-03-15") == ("removed", "rm", "2021-02-01T00:00:00Z")  # still screened
    # Since and cause name the event that put the post in its state (the restoration
    # shows the screen again; the policy stays the screen's), not an older one.
    assert p1("2021-04-15") == ("warning_screen", "back", "2021-02-01T00:00:00Z")
    (restored,) = _posts(store, A, "--post", "p1", "--as-of", "2021-04-15")
    assert (restored["since"], restored["policy"], restored["reason"]) == (
        "2021-04-01T00:00:00Z",
        "R",
        "gore",
    )
    assert p1("2021-05-15") == ("visible", "unscr", None)
    (unscreened,) = _posts(store, A, "--post", "p1", "--as-of", "2021-05-15")
    assert (unscreened["since"], unscreened["policy"]) == ("2021-05-01T00:00:00Z", None)
    rows = _posts(store, A, "--as-of", "2021-03-15")
    assert [(r["post"], r["state"]) for r in rows] == [("p1", "removed"), ("p2", "visible")]
    assert rows[0]["url"] == "https://x.example/1"
    assert [r["post"] for r in _posts(store, A, "--as-of", "2021-03-15", "--state", "visible")] == [
        "p2"
    ]
    header = next(csv.reader(io.StringIO(store.ok("posts", A, "--csv").stdout)))
    assert header[:5] == ["account", "post", "state", "account_status", "since"]


def test_known_at_sees_a_removal_before_its_retraction_and_not_before_it_was_recorded(
    store: Store,
) -> None:
    store.append(account(A, "2020-01-01"), _post("post_published", "2021-01-01", "pub"))
    before_removal = last_recorded_at(store)
    store.append(_post("post_removed", "2021-03-01", "rm", policy="Violence"))
    removal_known = last_recorded_at(store)
    store.append(ev("event_retracted", "2021-06-01", target="rm", reason="wrong post"))
    retraction_known = last_recorded_at(store)

    def state(known_at: str) -> str:
        (row,) = _posts(store, A, "--known-at", known_at)
        return str(row["state"])

    assert state(before_removal) == "visible"
    assert state(removal_known) == "removed"
    assert state(just_before(retraction_known)) == "removed"
    assert state(retraction_known) == "visible"


def test_each_post_says_what_its_account_was_at_the_moment(store: Store) -> None:
    """A removed account's post reads `visible` (nobody removed the post), so the row
    carries the account's status then: researchers can tell the two apart."""
    store.append(
        account(A, "2020-01-01"),
        _post("post_published", "2021-01-01", "pub"),
        _post("post_published", "2021-01-02", "pub2", post_id="p2"),
        _post("post_removed", "2021-01-03", "rm2", post_id="p2", policy="Spam"),
        ev("account_suspended", "2021-02-01", account=A, policy="Spam", until="2021-03-01"),
        ev("account_removed", "2021-06-01", account=A, policy="Spam"),
    )
    for as_of, account_status in (
        ("2021-01-15", "active"),
        ("2021-02-15", "suspended"),
        ("2021-03-15", "active"),  # the suspension lapsed
        ("2021-07-01", "removed"),
    ):
        rows = _posts(store, A, "--as-of", as_of)
        assert [(r["post"], r["state"], r["account_status"]) for r in rows] == [
            ("p1", "visible", account_status),
            ("p2", "removed", account_status),
        ], as_of
    # The whole-ledger listing and its machine formats carry it too.
    (row,) = json.loads(store.ok("posts", "--json", "--state", "visible").stdout)
    assert (row["account"], row["post"], row["account_status"]) == (A, "p1", "removed")
    header = next(csv.reader(io.StringIO(store.ok("posts", "--csv").stdout)))
    assert header[header.index("state") + 1] == "account_status"
    assert "account_status" in store.ok("posts", A).stdout.splitlines()[0]


def test_an_unregistered_account_is_an_error(store: Store) -> None:
    stderr = reject(
        store, "posts", "twitter:nobody", expect=("account 'twitter:nobody' has no registration",)
    )
    assert "an account id is" not in stderr
    # Without a platform prefix the id cannot be anyone's: say what an id looks like.
    for command in ("posts", "status"):
        reject(store, command, "nobody", expect=("(an account id is '<platform>:<handle or id>')",))


def _reference(rows: list[dict[str, Any]], as_of: datetime) -> dict[str, tuple[str, str]]:
    """Each post's (state, cause_event) from the last screen and last removal event;
    the cause is the removal, or else the post's newest event (what put it in its
    state: a screen applied, a restoration, a screen removed, the publication)."""
    live = [
        r
        for r in rows
        if not r["retracted"]
        and r["type"].startswith("post_")
        and datetime.fromisoformat(r["occurred_at"]) <= as_of
    ]
    result = {}
    for name in {r["post"] for r in live if r["type"] == "post_published"}:
        own = [r for r in live if r["post"] == name]  # timeline order: valid time, sequence
        screens = [r for r in own if "warning_screen" in r["type"]]
        removals = [r for r in own if r["type"] in ("post_removed", "post_restored")]
        newest = own[-1]["event_id"]
        if removals and removals[-1]["type"] == "post_removed":
            result[name] = ("removed", removals[-1]["event_id"])
        elif screens and screens[-1]["type"] == "post_warning_screen_applied":
            result[name] = ("warning_screen", newest)
        else:
            result[name] = ("visible", newest)
    return result


def test_every_accounts_posts_agree_with_a_reference_on_both_clocks(store: Store) -> None:
    lines = list(generate(1_500, seed=8))
    store.ok("append", "-", input="\n".join(lines[:1_000]) + "\n")
    between = datetime.now(UTC)
    store.ok("append", "-", input="\n".join(lines[1_000:]) + "\n")
    everything = store.timeline()
    accounts = sorted({r["account"] for r in everything if r["type"] == "account_registered"})
    times = sorted({datetime.fromisoformat(r["occurred_at"]) for r in everything})
    as_ofs = [times[i] for i in range(0, len(times), max(1, len(times) // 5))]
    as_ofs += [t - timedelta(microseconds=1) for t in as_ofs] + [datetime.now(UTC)]
    compared = 0
    states: set[str] = set()
    account_statuses: set[str] = set()
    for known_at in (iso(between), iso(datetime.now(UTC))):
        for account_id in accounts:
            rows = store.timeline("--account", account_id, "--known-at", known_at)
            if not any(r["type"] == "account_registered" and not r["retracted"] for r in rows):
                continue
            for as_of in as_ofs:
                registered = any(
                    r["type"] == "account_registered"
                    and not r["retracted"]
                    and datetime.fromisoformat(r["occurred_at"]) <= as_of
                    for r in rows
                )
                args = ("--as-of", iso(as_of), "--known-at", known_at)
                if not registered:
                    store.fail("posts", account_id, *args)
                    continue
                listed = _posts(store, account_id, *args)
                got = {r["post"]: (r["state"], r["cause_event"]) for r in listed}
                assert got == _reference(rows, as_of), (account_id, args)
                if listed:  # each row's account status is what `status` answers then
                    status = json.loads(store.ok("status", account_id, "--json", *args).stdout)
                    assert {r["account_status"] for r in listed} == {status["status"]}
                    account_statuses.add(status["status"])
                compared += 1
                states.update(state for state, _ in got.values())
    assert compared > 200
    assert states == {"visible", "warning_screen", "removed"} == set(POST_STATES)
    assert {"active", "suspended", "removed"} <= account_statuses


def test_without_an_account_posts_lists_every_accounts_posts(store: Store) -> None:
    store.ok("append", "-", input="\n".join(generate(800, seed=4)) + "\n")
    moment = ("--as-of", "2022-01-01", "--known-at", iso(datetime.now(UTC)))
    accounts = json.loads(store.ok("accounts", "--json", *moment).stdout)
    by_account = {row["account"]: _posts(store, row["account"], *moment) for row in accounts}
    everything = json.loads(store.ok("posts", "--json", *moment).stdout)
    expected = [row for account in sorted(by_account) for row in by_account[account]]
    assert everything == expected
    assert len(everything) > 20
    platform = accounts[0]["platform"]
    screened = json.loads(
        store.ok("posts", "--json", "--platform", platform, "--state", "warning_screen").stdout
    )
    assert screened
    assert all(r["state"] == "warning_screen" for r in screened)
    assert all(r["account"].startswith(f"{platform}:") for r in screened)
    table = store.ok("posts", "--platform", platform).stdout
    assert table.startswith("account ")
    reject(store, "posts", accounts[0]["account"], "--platform", platform, code=2)


def test_posts_of_one_post_id_across_accounts_are_every_accounts_posts_of_it(
    store: Store,
) -> None:
    """Read only on the accounts a publication names it on (found by its bytes in the
    leaf): the same rows as every account's posts filtered by it; an excerpt quoting
    the id's JSON field is no publication of it."""
    store.ok("append", "-", input="\n".join(generate(800, seed=4)) + "\n")
    everything = json.loads(store.ok("posts", "--json").stdout)
    post = everything[0]["post"]
    quoted = f'"post":"{post}"'
    store.append(
        account("twitter:second", event_id="reg-2"),
        account("twitter:third", event_id="reg-3"),
        ev("post_published", "2023-01-01", account="twitter:second", post=post, event_id="p2"),
        ev("post_published", "2023-01-02", account="twitter:third", post="other",
           excerpt=f"{quoted} and {{{quoted}}}", event_id="p3"),
    )  # fmt: skip
    now = iso(datetime.now(UTC))
    moment = ("--as-of", now, "--known-at", now)
    everything = json.loads(store.ok("posts", "--json", *moment).stdout)
    expected = [row for row in everything if row["post"] == post]
    assert len({row["account"] for row in expected}) >= 2
    assert json.loads(store.ok("posts", "--post", post, "--json", *moment).stdout) == expected
    assert json.loads(store.ok("posts", "--post", "other", "--json", *moment).stdout) == [
        row for row in everything if row["post"] == "other"
    ]
