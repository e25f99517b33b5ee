"""An id the ledger does not hold: what it does hold is named.

Ledger ids are exact, while platforms mostly take handles in any letter case: a
researcher who types twitter:khamenei_ir for the registered twitter:Khamenei_ir must
not conclude from "(no events)" that the account has none, and an admin must not
register the same account twice under two spellings. Refusals and empty answers name
the registered id that was likely meant, and a registration that exists on the other
clock (occurred later, recorded later, retracted) is named with its time.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Store
from tests.ledger_helpers import account, ev, export, jsonl, reject, reject_append, subject

KHAMENEI = "twitter:Khamenei_ir"


@pytest.fixture
def world(store: Store) -> Store:
    store.append(
        subject("Khamenei"),
        account(KHAMENEI, subject="Khamenei"),
        account("twitter:jack"),
        account("instagram:khamenei_ir"),  # another platform: never suggested for twitter
    )
    return store


@pytest.mark.parametrize("given", ["twitter:khamenei_ir", "twitter:KHAMENEI_IR"])
@pytest.mark.parametrize("command", ["status", "posts", "appeals"])
def test_reads_of_an_id_in_other_case_name_the_registered_one(
    world: Store, command: str, given: str
) -> None:
    reject(
        world,
        command,
        given,
        expect=(f"account '{given}' has no registration", f"did you mean '{KHAMENEI}'?"),
    )


def test_a_platform_in_capitals_is_looked_up_by_its_lower_case_slug(world: Store) -> None:
    reject(world, "status", "Twitter:khamenei_ir", expect=(f"did you mean '{KHAMENEI}'?",))


def test_a_typo_names_close_spellings_on_the_same_platform_only(world: Store) -> None:
    stderr = reject(world, "status", "twitter:Khamenei_i")
    assert stderr.rstrip().endswith(f"; did you mean '{KHAMENEI}'?"), stderr
    assert "instagram" not in stderr
    stderr = reject(world, "status", "twitter:somebody_else")
    assert "did you mean" not in stderr


def test_a_mistyped_platform_names_close_spellings_on_every_platform(world: Store) -> None:
    # Its own platform's accounts were the only candidates, and it has none.
    stderr = reject(world, "status", "twiter:Khamenei_ir")
    assert stderr.rstrip().endswith(f"; did you mean '{KHAMENEI}'?"), stderr
    note = world.ok("timeline", "--account", "instagrm:khamenei_ir").stderr.splitlines()[0]
    assert note.endswith("; did you mean 'instagram:khamenei_ir'?"), note
    stderr = reject(world, "status", "twiter:somebody_else")
    assert "did you mean" not in stderr


def test_status_history_names_the_registered_id(world: Store) -> None:
    reject(
        world,
        "status",
        "twitter:khamenei_ir",
        "--history",
        expect=("has no registration as known at", f"did you mean '{KHAMENEI}'?"),
    )


def test_a_registration_on_the_other_clock_is_named_with_its_time(world: Store) -> None:
    registration = next(e for e in export(world) if e.get("account") == KHAMENEI)
    before_recorded = "2021-01-01T00:00:00Z"  # the registration was recorded today
    stderr = reject(world, "status", KHAMENEI, "--known-at", before_recorded)
    assert (
        f"(its registration {registration['event_id']} was recorded at "
        f"{registration['recorded_at']})"
    ) in stderr
    stderr = reject(world, "status", KHAMENEI, "--as-of", "2019-06-01")
    assert (
        f"(its registration {registration['event_id']} occurred at 2020-01-01T00:00:00Z)"
    ) in stderr
    assert "did you mean" not in stderr


def test_a_retracted_registration_is_named_with_its_retraction(store: Store) -> None:
    store.append(account("twitter:gone", event_id="reg-gone"))
    store.append(
        ev("event_retracted", "2020-02-01T00:00:00Z", target="reg-gone", reason="wrong account")
    )
    retracted_at = export(store)[-1]["recorded_at"]
    reject(
        store,
        "status",
        "twitter:gone",
        expect=(f"(its registration reg-gone was retracted at {retracted_at})",),
    )
    # An event about it says so too, rather than only "append its registration first"
    # (or suggest other accounts by their spelling).
    store.append(account("twitter:gonne"))
    reject_append(
        store,
        ev("followers_observed", "2020-03-01", account="twitter:gone", count=1),
        expect=(
            "account 'twitter:gone' is not registered; append its account_registered event first "
            f"(its registration reg-gone was retracted at {retracted_at})",
        ),
    )


def test_an_event_about_an_id_in_other_case_is_refused_naming_the_registered_one(
    world: Store,
) -> None:
    suspension = ev(
        "account_suspended", "2021-01-01T00:00:00Z", account="twitter:khamenei_ir", policy="p"
    )
    reject(
        world,
        "append",
        "-",
        input=jsonl(suspension),
        expect=(
            "line 1: account_suspended rejected: account 'twitter:khamenei_ir' is not registered",
            f"did you mean '{KHAMENEI}'?",
        ),
    )
    stderr = reject(
        world,
        "record",
        "account-suspended",
        "--account",
        "twitter:KHAMENEI_IR",
        "--policy",
        "p",
        "--occurred-at",
        "2021-01-01",
        "--source",
        "s",
    )
    assert stderr.startswith(
        "Error: account_suspended rejected: account 'twitter:KHAMENEI_IR' is not registered"
    )
    assert f"did you mean '{KHAMENEI}'?" in stderr


def test_an_unknown_subject_is_refused_naming_the_registered_one(world: Store) -> None:
    exemption = ev(
        "exemption_applied",
        "2021-01-01T00:00:00Z",
        subject="khamenei",
        exemption="public_interest",
        policy="p",
    )
    reject(
        world,
        "append",
        "-",
        input=jsonl(exemption),
        expect=("subject 'khamenei' is not registered", "did you mean 'Khamenei'?"),
    )
    reject(
        world,
        "append",
        "-",
        input=jsonl(account("facebook:khamenei", subject="KHAMENEI")),
        expect=("subject 'KHAMENEI' is not registered", "did you mean 'Khamenei'?"),
    )


def test_an_unknown_id_with_nothing_like_it_gets_no_hint(world: Store) -> None:
    stderr = reject(
        world,
        "append",
        "-",
        input=jsonl(ev("followers_observed", "2021-01-01", account="youtube:nobody", count=3)),
    )
    assert "did you mean" not in stderr


@pytest.mark.parametrize("command", ["timeline", "counts"])
def test_a_filter_on_an_unregistered_id_says_so_on_stderr_only(world: Store, command: str) -> None:
    result = world.ok(command, "--account", "twitter:khamenei_ir", "--json")
    assert json.loads(result.stdout) in ([], [{"count": 0}])
    assert result.stderr == (
        "note: no account 'twitter:khamenei_ir' is registered in this ledger; "
        f"did you mean '{KHAMENEI}'?\n"
    )
    result = world.ok(command, "--subject", "KHAMENEI", "--json")
    assert "note: no subject 'KHAMENEI' is registered in this ledger; did you mean 'Khamenei'?" in (
        result.stderr
    )


def test_a_filter_on_a_registered_id_adds_nothing(world: Store) -> None:
    # Registered, though not yet as known at --known-at: the filter is right as given.
    result = world.ok("timeline", "--account", KHAMENEI, "--known-at", "2021-01-01")
    assert result.stderr == "(no events)\n"
    assert world.ok("timeline", "--subject", "Khamenei", "--nl").stderr == ""


@pytest.mark.parametrize("command", ["accounts", "subjects", "posts", "appeals"])
def test_a_subject_selection_never_registered_says_so_on_stderr(world: Store, command: str) -> None:
    result = world.ok(command, "--subject", "KHAMENEI", "--nl")
    assert result.stdout == ""
    assert result.stderr == (
        "note: no subject 'KHAMENEI' is registered in this ledger; did you mean 'Khamenei'?\n"
    )
    assert world.ok(command, "--subject", "Khamenei", "--nl").stderr == ""


@pytest.mark.parametrize("command", ["timeline", "counts", "accounts", "posts", "appeals"])
def test_a_platform_no_event_is_on_says_so_naming_the_ledgers_platforms(
    world: Store, command: str
) -> None:
    result = world.ok(command, "--platform", "myspace", "--nl")
    assert result.stdout in ("", '{"count":0}\n', '{"count": 0}\n'), result.stdout
    assert result.stderr == (
        "note: no event in this ledger is on platform 'myspace'; "
        "its platforms are instagram, twitter\n"
    )
    assert world.ok(command, "--platform", "instagram", "--nl").stderr == ""


def test_an_id_under_a_platforms_new_name_names_the_id_under_its_slug(store: Store) -> None:
    # Twitter became X; its accounts keep the slug twitter, as ids and filters do.
    store.append(
        ev("platform_renamed", "2023-07-24", platform="twitter", name="X"),
        account("twitter:Jack"),
    )
    for given in ("x:Jack", "X:jack"):
        reject(store, "status", given, expect=("did you mean 'twitter:Jack'?",))
    result = store.ok("timeline", "--account", "x:jack", "--nl")
    assert result.stderr == (
        "note: no account 'x:jack' is registered in this ledger; did you mean 'twitter:Jack'?\n"
    )


def test_a_retracted_rename_is_no_name_of_the_platform(store: Store) -> None:
    # Facebook Inc became Meta; the app did not: the rename is retracted, so "meta" is
    # just a platform no event is on, not a name facebook took.
    store.append(
        ev("platform_renamed", "2021-10-28", platform="facebook", name="Meta", event_id="ren"),
        account("facebook:zuck"),
    )
    assert store.fail("timeline", "--platform", "meta", code=2)
    store.append(ev("event_retracted", "2024-03-01", target="ren", reason="the company"))
    result = store.ok("timeline", "--platform", "meta")
    assert result.stderr.startswith("note: no event in this ledger is on platform 'meta'")
    reject(store, "status", "meta:zuck", expect=("has no registration",))
    assert "did you mean" not in store.run("status", "meta:zuck").stderr


def test_posts_of_a_post_id_never_published_says_so_naming_what_was_meant(world: Store) -> None:
    # It printed "(no posts)" alone, as for a post screened later or in another state.
    world.append(ev("post_published", "2021-02-01", account=KHAMENEI, post="Oct-7-praise"))
    result = world.ok("posts", "--post", "oct-7-praise", "--nl")
    assert result.stdout == ""
    assert result.stderr == (
        "note: no post 'oct-7-praise' is published in this ledger; did you mean 'Oct-7-praise'?\n"
    )
    result = world.ok("posts", "twitter:jack", "--post", "Oct-7-praise", "--nl")
    assert result.stderr == (
        f"note: no post 'Oct-7-praise' is published on 'twitter:jack'; it is on '{KHAMENEI}'\n"
    )
    assert world.ok("posts", "--post", "nope").stderr == (
        "note: no post 'nope' is published in this ledger\n(no posts)\n"
    )
    # Published, though not yet as of --as-of: the filter is right as given.
    result = world.ok("posts", "--post", "Oct-7-praise", "--as-of", "2021-01-01", "--nl")
    assert (result.stdout, result.stderr) == ("", "")
    # A byte of the command line that is not UTF-8 names no post, with ACCOUNT or
    # without (the search for its bytes across accounts failed with an error).
    for where, args in (("in this ledger", ()), (f"on {KHAMENEI!r}", (KHAMENEI,))):
        result = world.ok("posts", *args, "--post", "a\udcff", "--nl")
        assert (result.stdout, result.stderr) == (
            "",
            f"note: no post 'a\\udcff' is published {where}\n",
        )
