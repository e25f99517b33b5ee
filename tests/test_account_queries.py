"""One account's status and timeline against references built from the whole history.

``account_status`` reads only the newest registration, status change and follower
count of an account (and all its exemptions) in one statement; here it must agree,
for every account of a generated history with backfills and retractions and at
many (as_of, known_at) moments, with a reference that folds *every* visible event
of the account's full timeline. The PostgreSQL fast path for short account
timelines must give the same rows as the streamed path, with limit and offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import GeneratorType
from typing import Any

import pytest

from bench.generate import generate
from ledger.application import Ledger
from ledger.events import iso
from ledger.location import StoreLocation
from ledger.persistence import Database
from ledger.rules import APPEALABLE_TYPES, STATUS_TYPES, Entry, fold_status
from ledger.times import parse_utc
from projections import queries
from projections.projector import Projector
from projections.queries import Moment, NotFound, TimelineFilter, account_status, timeline
from tests.conftest import Store

EVENTS = 1_500
SPLIT = 1_000  # the first SPLIT lines are one batch, the rest a later one


@dataclass
class Opened:
    db: Database
    between: datetime  # after the first batch was recorded, before the second
    accounts: list[str]
    occurred: list[datetime]


@pytest.fixture
def opened(store: Store) -> Iterator[Opened]:
    lines = list(generate(EVENTS, seed=5))
    store.ok("append", "-", input="\n".join(lines[:SPLIT]) + "\n")
    between = datetime.now(UTC)
    store.ok("append", "-", input="\n".join(lines[SPLIT:]) + "\n")
    ledger = Ledger(StoreLocation.parse(store.url))
    db = ledger.storage.connect()
    try:
        Projector(ledger, db).catch_up()
        accounts = [
            row[0]
            for row in db.execute(
                "SELECT DISTINCT account FROM timeline WHERE type = 'account_registered' "
                "ORDER BY account"
            )
        ]
        occurred = sorted(
            {
                datetime.fromisoformat(record["occurred_at"])
                for record in timeline(db, datetime.now(UTC), TimelineFilter())
            }
        )
        yield Opened(db, between, accounts, occurred)
    finally:
        db.close()
        ledger.close()


def _visible(records: list[dict[str, Any]], as_of: datetime) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if not r["retracted"] and datetime.fromisoformat(r["occurred_at"]) <= as_of
    ]


def _fold_exemptions(records: list[dict[str, Any]], holder: str) -> list[dict[str, Any]]:
    active: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["type"] == "exemption_applied":
            active[r["exemption"]] = {
                "exemption": r["exemption"],
                "policy": r["policy"],
                "holder": holder,
                "since": r["occurred_at"],
                "event": r["event_id"],
            }
        elif r["type"] == "exemption_revoked":
            active.pop(r["exemption"], None)
    return list(active.values())


def _kinds_in_force(records: list[dict[str, Any]], as_of: datetime) -> list[str]:
    """Every kind named by a restriction laid since the last reinstatement by ``as_of``
    and not ended by it, once, in the order laid (every visible event, in timeline order)."""
    kinds: list[str] = []
    for record in records:
        if parse_utc(record["occurred_at"]) > as_of:
            continue
        if record["type"] == "account_reinstated":
            kinds = []
        elif record["type"] == "account_restricted":
            until = record.get("until")
            if until is None or parse_utc(until) > as_of:
                kinds += [k for k in record.get("restrictions", []) if k not in kinds]
    return kinds


def reference_status(db: Database, account: str, moment: Moment) -> dict[str, Any] | None:
    """Fold every visible event of the account's timeline (and its subject's)."""
    own = _visible(
        list(timeline(db, moment.known_at, TimelineFilter(account=account))), moment.as_of
    )
    registrations = [r for r in own if r["type"] == "account_registered"]
    if not registrations:
        return None
    registration = registrations[-1]
    status = fold_status(Entry.from_record(r) for r in own if r["type"] in STATUS_TYPES).at(
        moment.as_of
    )
    exemptions = _fold_exemptions(own, "account")
    subject = registration.get("subject")
    if subject:
        theirs = _visible(
            list(timeline(db, moment.known_at, TimelineFilter(subject=subject))), moment.as_of
        )
        for held in _fold_exemptions([r for r in theirs if r.get("account") is None], "subject"):
            # Held by this account from its registration on.
            held["since"] = max(held["since"], registration["occurred_at"], key=parse_utc)
            exemptions.append(held)
    followers = [r["count"] for r in own if r["type"] == "followers_observed"]
    return {
        "account": account,
        "platform": registration["platform"],
        "handle": registration["handle"],
        "subject": subject,
        "status": status.status,
        "since": iso(status.since) if status.since else registration["occurred_at"],
        "until": iso(status.until) if status.until else None,
        "policy": status.policy,
        "restrictions": _kinds_in_force(own, moment.as_of)
        if status.status == "restricted"
        else None,
        "cause_event": status.cause or registration["event_id"],
        "exemptions": exemptions,
        "followers": followers[-1] if followers else None,
        "as_of": iso(moment.as_of),
        "known_at": iso(moment.known_at),
    }


def test_status_reads_only_the_newest_facts_yet_equals_the_full_fold(opened: Opened) -> None:
    now = datetime.now(UTC)
    occurred = opened.occurred
    # Event times themselves (boundaries), instants just before them, and now.
    as_ofs = [occurred[i] for i in range(0, len(occurred), max(1, len(occurred) // 7))]
    as_ofs += [t - timedelta(microseconds=1) for t in as_ofs] + [now]
    compared = found = 0
    for account in opened.accounts:
        for known_at in (opened.between, now):
            for as_of in as_ofs:
                moment = Moment(as_of=as_of, known_at=known_at)
                expected = reference_status(opened.db, account, moment)
                if expected is None:
                    with pytest.raises(NotFound):
                        account_status(opened.db, account, moment)
                else:
                    assert account_status(opened.db, account, moment) == expected
                    found += 1
                compared += 1
    assert found > compared // 4  # the moments do reach into the histories


def test_status_history_periods_are_the_status_at_every_moment_in_them(
    opened: Opened,
) -> None:
    """Each period of `status --history` is what `status --as-of T` answers for every
    T in it: checked at each period's first instant, its last (one microsecond before
    the next), the midpoint, and a few event times of the log that fall in it; before
    the first period the account is unregistered. Generated histories have backfills,
    retractions, reinstatements and measures with `until`."""
    now = datetime.now(UTC)
    checked = expiries = 0
    for account in opened.accounts:
        for known_at in (opened.between, now):
            try:
                periods = queries.status_history(opened.db, account, known_at)
            except NotFound:
                with pytest.raises(NotFound):
                    account_status(opened.db, account, Moment(now, known_at))
                continue
            assert periods[-1]["to"] is None
            first = datetime.fromisoformat(periods[0]["from"])
            with pytest.raises(NotFound):
                account_status(
                    opened.db, account, Moment(first - timedelta(microseconds=1), known_at)
                )
            for period, following in zip(periods, [*periods[1:], None], strict=True):
                start = datetime.fromisoformat(period["from"])
                end = datetime.fromisoformat(period["to"]) if period["to"] else now
                if following is not None:
                    assert following["from"] == period["to"]
                    assert any(
                        following[k] != period[k]
                        for k in ("status", "until", "policy", "cause_event")
                    )
                expiries += (
                    period["status"] == "active"
                    and period["cause_event"] != periods[0]["cause_event"]
                )
                moments = {start, end - timedelta(microseconds=1), start + (end - start) / 2}
                inside = [t for t in opened.occurred if start <= t < end]
                moments.update(inside[:: max(1, len(inside) // 3)])  # a few, spread out
                for moment in moments:
                    answer = account_status(opened.db, account, Moment(moment, known_at))
                    assert (
                        answer["status"],
                        answer["since"],
                        answer["until"],
                        answer["policy"],
                        answer["cause_event"],
                    ) == (
                        period["status"],
                        period["from"],
                        period["until"],
                        period["policy"],
                        period["cause_event"],
                    ), (account, moment, period)
                    checked += 1
    assert checked > 1_000
    assert expiries > 0  # ends of measures and reinstatements were among them


def test_every_accounts_history_is_each_accounts_own(opened: Opened) -> None:
    """`accounts --history` is `status --history` of each account in turn (those
    registered as known at the record time), filtered by status if asked."""
    for known_at in (opened.between, datetime.now(UTC)):
        own = []
        for account in opened.accounts:
            try:
                own += queries.status_history(opened.db, account, known_at)
            except NotFound:
                continue
        assert list(queries.every_accounts_history(opened.db, known_at)) == own
        suspended = [p for p in own if p["status"] == "suspended"]
        assert suspended
        assert list(queries.every_accounts_history(opened.db, known_at, status="suspended")) == (
            suspended
        )
        platform = opened.accounts[0].partition(":")[0]
        assert list(queries.every_accounts_history(opened.db, known_at, platform=platform)) == [
            p for p in own if p["account"].startswith(platform + ":")
        ]


def test_subjects_equal_their_accounts_folded_from_full_timelines(opened: Opened) -> None:
    """`subjects` against a reference made another way: subject registrations from the
    full timeline, each account's status from ``reference_status`` (a fold of every
    visible event), divergence from the statuses found."""
    now = datetime.now(UTC)
    occurred = opened.occurred
    divergent_seen = 0
    for known_at in (opened.between, now):
        every = TimelineFilter(types=("subject_registered",))
        registered = sorted(
            (r["subject"], r) for r in timeline(opened.db, known_at, every) if not r["retracted"]
        )
        for as_of in (occurred[len(occurred) // 3], occurred[2 * len(occurred) // 3], now):
            moment = Moment(as_of=as_of, known_at=known_at)
            statuses = [reference_status(opened.db, a, moment) for a in opened.accounts]
            expected = []
            for subject, registration in registered:
                held = []
                for status in statuses:
                    if status is not None and status["subject"] == subject:
                        held.append(
                            {
                                k: status[k]
                                for k in (
                                    "account",
                                    "platform",
                                    "status",
                                    "since",
                                    "policy",
                                    "restrictions",
                                    "exemptions",
                                )
                            }
                        )
                if not held and parse_utc(registration["occurred_at"]) > as_of:
                    continue  # neither it nor an account of it existed yet
                divergent = len({h["status"] for h in held}) > 1
                divergent_seen += divergent
                expected.append(
                    {
                        "subject": subject,
                        "name": registration["name"],
                        "kind": registration["kind"],
                        "roles": registration.get("roles", []),
                        "country": registration.get("country"),
                        "accounts": held,
                        "divergent": divergent,
                        "as_of": iso(as_of),
                        "known_at": iso(known_at),
                    }
                )
            assert list(queries.subjects(opened.db, moment)) == expected
            assert list(queries.subjects(opened.db, moment, divergent=True)) == [
                row for row in expected if row["divergent"]
            ]
    assert divergent_seen > 0


def test_appeals_pair_each_filing_with_its_decision_as_of_both_clocks(opened: Opened) -> None:
    """`appeals` against a reference read another way: every appeal event of the whole
    log (one query by type, not account by account), kept if visible at the moment,
    each filing paired with its decision by (account, appeal)."""
    now = datetime.now(UTC)
    occurred = opened.occurred
    decided_seen = pending_seen = posts_appealed = 0
    for known_at in (opened.between, now):
        kinds = ("appeal_filed", "appeal_decided", *sorted(APPEALABLE_TYPES))
        log = list(timeline(opened.db, known_at, TimelineFilter(types=kinds)))
        for as_of in (occurred[len(occurred) // 2], now):
            visible = [
                r
                for r in log
                if not r["retracted"] and datetime.fromisoformat(r["occurred_at"]) <= as_of
            ]
            actions = {r["event_id"]: r for r in visible if r["type"] in APPEALABLE_TYPES}
            decisions = {
                (r["account"], r["appeal"]): r for r in visible if r["type"] == "appeal_decided"
            }
            expected = []
            for filed in visible:
                if filed["type"] != "appeal_filed":
                    continue
                decision = decisions.get((filed["account"], filed["appeal"]))
                action = actions[filed["target"]]
                expected.append(
                    (
                        filed["account"],
                        filed["appeal"],
                        "decided" if decision else "pending",
                        decision["outcome"] if decision else None,
                        action["type"],
                        action.get("post"),
                        action.get("policy"),
                        filed["occurred_at"],
                        decision["occurred_at"] if decision else None,
                    )
                )
            moment = Moment(as_of=as_of, known_at=known_at)
            found = [
                (
                    r["account"],
                    r["appeal"],
                    r["state"],
                    r["outcome"],
                    r["target_type"],
                    r["post"],
                    r["policy"],
                    r["filed_at"],
                    r["decided_at"],
                )
                for r in queries.every_accounts_appeals(opened.db, moment)
            ]
            assert sorted(found, key=str) == sorted(expected, key=str)
            posts_appealed += sum(row[5] is not None for row in found)
            decided_seen += sum(row[2] == "decided" for row in found)
            pending_seen += sum(row[2] == "pending" for row in found)
            pending = list(queries.every_accounts_appeals(opened.db, moment, state="pending"))
            assert all(r["state"] == "pending" for r in pending)
            assert len(pending) == sum(row[2] == "pending" for row in found)
    assert decided_seen
    assert pending_seen
    assert posts_appealed  # appeals of post removals name their post


def test_long_account_timelines_stream_and_page_alike(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    counts = {
        account: sum(1 for _ in timeline(opened.db, now, TimelineFilter(account=account)))
        for account in opened.accounts
    }
    longest = max(counts, key=counts.__getitem__)
    assert counts[longest] > 20
    selections = [
        TimelineFilter(account=longest),
        TimelineFilter(account=longest, limit=5),
        TimelineFilter(account=longest, limit=5, offset=7),
        TimelineFilter(account=longest, offset=3),
        TimelineFilter(account=longest, limit=counts[longest] + 5, offset=2),
        TimelineFilter(account=longest, limit=0),
    ]
    for known_at in (opened.between, now):
        expected = [list(timeline(opened.db, known_at, s)) for s in selections]
        # A page far shorter than the timeline: PostgreSQL falls back to its cursor.
        monkeypatch.setattr(queries, "PAGE", 4)
        assert [list(timeline(opened.db, known_at, s)) for s in selections] == expected
        monkeypatch.undo()
        every = expected[0]
        assert [r["sequence"] for r in expected[1]] == [r["sequence"] for r in every[:5]]
        assert expected[2] == every[7:12]
        assert expected[3] == every[3:]
        assert expected[4] == every[2:]
        assert expected[5] == []


def test_long_subject_timelines_stream_and_page_alike(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subject's timeline is read like an account's: by one statement when short,
    through the cursor when longer than a page, the same rows either way."""
    now = datetime.now(UTC)
    every = TimelineFilter(types=("account_registered",))
    subjects = {r["subject"] for r in timeline(opened.db, now, every) if r.get("subject")}
    counts = {
        s: sum(1 for _ in timeline(opened.db, now, TimelineFilter(subject=s))) for s in subjects
    }
    longest = max(counts, key=counts.__getitem__)
    assert counts[longest] > 20
    selections = [
        TimelineFilter(subject=longest),
        TimelineFilter(subject=longest, limit=5, offset=7),
        TimelineFilter(subject=longest, offset=3),
        TimelineFilter(subject=longest, types=("post_published",)),
    ]
    for known_at in (opened.between, now):
        expected = [list(timeline(opened.db, known_at, s)) for s in selections]
        monkeypatch.setattr(queries, "PAGE", 4)
        assert [list(timeline(opened.db, known_at, s)) for s in selections] == expected
        monkeypatch.undo()
        assert expected[1] == expected[0][7:12]
        assert expected[2] == expected[0][3:]


def test_retractions_are_named_without_a_lookup_each_on_postgres(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retraction is listed under its target's account, subject and platform, as
    projected on its own row: PostgreSQL reads them with the row, where a lookup a
    retraction cost a round trip each (3.2 against 0.6 s on SQLite at 1M events)."""
    now = datetime.now(UTC)
    retractions = TimelineFilter(types=("event_retracted",))
    expected = list(timeline(opened.db, now, retractions))
    assert expected
    for record in expected:
        listed = opened.db.one(
            "SELECT account, subject, platform FROM timeline WHERE sequence = :s",
            {"s": record["sequence"]},
        )
        for name, value in zip(("account", "subject", "platform"), listed, strict=True):
            if value is not None:
                assert record[name] == value, record
    statements: list[str] = []
    execute = Database.execute

    def counted(self: Database, statement: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(statement)
        return execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(Database, "execute", counted)
    assert list(timeline(opened.db, now, retractions)) == expected
    lookups = [s for s in statements if "WHERE sequence = :sequence" in s]
    assert len(lookups) == (len(expected) if opened.db.dialect == "sqlite" else 0)


def test_a_long_timeline_does_not_hold_its_first_read_while_streaming(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past PAGE rows the first read (PAGE + 1 rows: ~6 MB at 10,000) is read again
    through the cursor; it must not stay referenced while the cursor streams."""
    if opened.db.dialect != "postgres":
        pytest.skip("SQLite streams from the start")
    monkeypatch.setattr(queries, "PAGE", 4)
    account = opened.accounts[0]
    params = {"account": account}
    sql = "SELECT sequence FROM timeline t WHERE t.account = :account ORDER BY sequence"
    assert opened.db.one(f"SELECT count(*) FROM ({sql}) c", params)[0] > 4 + 1
    rows = queries._rows(opened.db, sql, params, TimelineFilter(account=account))
    assert isinstance(rows, GeneratorType)
    assert next(rows)
    frame = rows.gi_frame
    assert frame is not None
    assert "rows" not in frame.f_locals
    rows.close()
