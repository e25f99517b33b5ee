"""Property tests: random valid histories, and canonical JSON.

The history test draws a plan of candidate events (status measures, posts,
exemptions, follower counts, retractions) with random occurred_at days, so many
arrive out of order. Each candidate is appended on its own through the CLI and a
small reference model written here decides whether it must be accepted; the
ledger must agree event by event. At the end:

(a) what the read side says after those incremental appends (projections caught
    up after each one) equals what it says after `replay` rebuilt it from zero;
(b) each account's status, exemptions and follower count from the projection
    equal a reference fold of the accepted, unretracted events;
(c) `counts` equals a tally of the timeline's unretracted rows, at two record times.

One store serves every example (it works the same on every backend); each example
uses its own subject and accounts, so examples never interfere.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json
from tests.conftest import Store
from tests.ledger_helpers import account, ev, iso, jsonl, subject

BASE = datetime(2020, 1, 1, tzinfo=UTC)
REGISTERED_DAY = 5
LAST_DAY = 40
FAR_FUTURE = "2100-01-01T00:00:00Z"
MEASURES = ("account_restricted", "account_suspended", "account_removed")
POST_TYPES = (
    "post_published",
    "post_warning_screen_applied",
    "post_warning_screen_removed",
    "post_removed",
    "post_restored",
)
EXEMPTIONS = ("public_interest", "newsworthy")
HOLDERS = ("a0", "a1", "subject")
_examples = itertools.count()


def day(n: int) -> datetime:
    return BASE + timedelta(days=n)


# --- the plan -------------------------------------------------------------------

# Mostly after the registrations, sometimes before (and then refused).
days = st.one_of(
    st.integers(min_value=REGISTERED_DAY, max_value=LAST_DAY),
    st.integers(min_value=REGISTERED_DAY, max_value=LAST_DAY),
    st.integers(min_value=0, max_value=LAST_DAY),
)
accounts_ = st.sampled_from((0, 1))

status_step = st.tuples(
    st.just("status"),
    accounts_,
    st.sampled_from((*MEASURES, "account_reinstated", "account_reinstated")),
    days,
    st.one_of(st.none(), st.integers(min_value=1, max_value=10)),
)
post_step = st.tuples(
    st.just("post"),
    accounts_,
    st.sampled_from((0, 0, 1)),
    st.sampled_from(("post_published", *POST_TYPES)),
    days,
)
exemption_step = st.tuples(
    st.just("exemption"),
    st.sampled_from(HOLDERS),
    st.sampled_from(EXEMPTIONS),
    st.sampled_from(("exemption_applied", "exemption_revoked")),
    days,
)
followers_step = st.tuples(
    st.just("followers"), accounts_, days, st.integers(min_value=0, max_value=10**9)
)
retract_step = st.tuples(st.just("retract"), st.integers(min_value=0, max_value=10**6))

plans = st.lists(
    st.one_of(status_step, status_step, post_step, exemption_step, followers_step, retract_step),
    min_size=5,
    max_size=12,
)


# --- the reference model -----------------------------------------------------------


@dataclass
class Fact:
    """An accepted event as the reference model sees it."""

    event_id: str
    sequence: int
    type: str
    lane: str
    at: datetime
    record: dict[str, Any]
    retracted: bool = False

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.at, self.sequence)


@dataclass
class Status:
    status: str = "active"
    since: datetime | None = None
    until: datetime | None = None
    policy: str | None = None
    cause: str | None = None


_KINDS = {"account_restricted": "restricted", "account_suspended": "suspended"}
_SEVERITY = {"restricted": 1, "suspended": 2, "removed": 3}  # stated here, not imported


def reference_status(facts: list[Fact], moment: datetime) -> Status:
    """The status at ``moment`` from status facts in valid-time order, stated directly
    rather than folded (the ledger folds a stack, see AccountStatus): a reinstatement
    lifts every measure before it; after the last one, the status is the heaviest
    measure in force at ``moment`` (removed, suspended, restricted), the newest of
    equals, in force since it began or since the last measure that outranks it ended;
    with none in force, active since the last measure ended (or the reinstatement)."""
    facts = [f for f in facts if f.at <= moment]
    lifted = max((i for i, f in enumerate(facts) if f.type == "account_reinstated"), default=-1)
    measures = facts[lifted + 1 :]

    def until(fact: Fact) -> datetime | None:
        value = fact.record.get("until")
        return datetime.fromisoformat(value) if value else None

    def in_force(fact: Fact) -> bool:
        end = until(fact)
        return end is None or moment < end

    def rank(i: int) -> tuple[int, int]:
        return (_SEVERITY[_KINDS.get(measures[i].type, "removed")], i)

    live = [i for i in range(len(measures)) if in_force(measures[i])]
    if live:
        top = max(live, key=rank)
        fact = measures[top]
        outranking = [i for i in range(len(measures)) if rank(i) > rank(top)]
        # all of them ended by the moment (else one of them would be the status)
        ends = [end for i in outranking if (end := until(measures[i])) is not None]
        return Status(
            _KINDS.get(fact.type, "removed"),
            since=max([fact.at, *ends]),
            until=until(fact),
            policy=fact.record["policy"],
            cause=fact.event_id,
        )
    if measures:
        # None is in force: the cause is the last to end; of several ending at once,
        # the one showing until then (the heaviest, then the newest).
        ended = measures[max(range(len(measures)), key=lambda i: (until(measures[i]), rank(i)))]
        return Status("active", since=until(ended), cause=ended.event_id)
    if lifted >= 0:
        return Status("active", since=facts[lifted].at, cause=facts[lifted].event_id)
    return Status()


def _status_ok(facts: list[Fact]) -> bool:
    for i, fact in enumerate(facts):
        now = reference_status(facts[:i], fact.at).status
        if fact.type == "account_reinstated" and now == "active":
            return False
        if fact.type != "account_reinstated" and now == "removed":
            return False
    return True


def _post_ok(facts: list[Fact]) -> bool:
    published = screened = removed = False
    for fact in facts:
        kind = fact.type
        if kind == "post_published":
            if published:
                return False
            published = True
            continue
        if not published:
            return False
        if kind == "post_warning_screen_applied":
            if removed or screened:
                return False
            screened = True
        elif kind == "post_warning_screen_removed":
            if not screened:
                return False
            screened = False
        elif kind == "post_removed":
            if removed:
                return False
            removed = True
        elif kind == "post_restored":
            if not removed:
                return False
            removed = False
    return True


def _exemption_ok(facts: list[Fact]) -> bool:
    applied = False
    for fact in facts:
        if (fact.type == "exemption_applied") == applied:
            return False
        applied = not applied
    return True


def lane_ok(lane: str, facts: list[Fact]) -> bool:
    ordered = sorted(facts, key=lambda f: f.order)
    if lane.endswith(":status"):
        return _status_ok(ordered)
    if ":post:" in lane:
        return _post_ok(ordered)
    if ":exemption:" in lane:
        return _exemption_ok(ordered)
    return True


@dataclass
class Model:
    prefix: str
    facts: list[Fact] = field(default_factory=list)
    next_id: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def subject(self) -> str:
        return f"{self.prefix}-person"

    def account(self, index: int) -> str:
        return f"twitter:{self.prefix}-a{index}"

    def registrations(self) -> list[dict[str, Any]]:
        """The example's subject and its two accounts, which every plan starts from."""
        return [
            subject(self.subject, iso(day(0)), event_id=f"{self.subject}-reg"),
            *(
                account(
                    self.account(i),
                    iso(day(REGISTERED_DAY)),
                    subject=self.subject,
                    event_id=f"{self.account(i)}-reg",
                )
                for i in (0, 1)
            ),
        ]

    def live(self, lane: str) -> list[Fact]:
        return [f for f in self.facts if f.lane == lane and not f.retracted]

    def new_id(self) -> str:
        return f"{self.prefix}-e{next(self.next_id)}"

    def candidate(self, step: tuple[Any, ...]) -> tuple[dict[str, Any], str] | None:
        """The input event for a step and its lane; None when the step has no target."""
        kind = step[0]
        event_id = self.new_id()
        if kind == "status":
            _, index, type_, when, length = step
            fields: dict[str, Any] = {"account": self.account(index), "event_id": event_id}
            if type_ != "account_reinstated":
                fields["policy"] = f"policy-{type_}"
            if type_ == "account_restricted":
                fields["restrictions"] = ["read_only"]
            if type_ in ("account_restricted", "account_suspended") and length is not None:
                fields["until"] = iso(day(when + length))
            return ev(type_, iso(day(when)), **fields), f"{self.account(index)}:status"
        if kind == "post":
            _, index, post, type_, when = step
            fields = {"account": self.account(index), "post": f"p{post}", "event_id": event_id}
            if type_ in ("post_warning_screen_applied", "post_removed"):
                fields["policy"] = "rules"
            if type_ == "post_warning_screen_applied":
                fields["reason"] = "because"
            return ev(type_, iso(day(when)), **fields), f"{self.account(index)}:post:p{post}"
        if kind == "exemption":
            _, holder, name, type_, when = step
            owner = (
                {"subject": self.subject}
                if holder == "subject"
                else {"account": self.account(int(holder[1]))}
            )
            lane = f"{next(iter(owner.values()))}:exemption:{name}"
            event = ev(
                type_, iso(day(when)), exemption=name, policy="p", event_id=event_id, **owner
            )
            return event, lane
        if kind == "followers":
            _, index, when, count = step
            event = ev(
                "followers_observed",
                iso(day(when)),
                account=self.account(index),
                count=count,
                event_id=event_id,
            )
            return event, f"{self.account(index)}:followers"
        _, pick = step
        if not self.facts:
            return None
        target = self.facts[pick % len(self.facts)]
        event = ev(
            "event_retracted",
            iso(day(LAST_DAY)),
            target=target.event_id,
            reason="mistake",
            event_id=event_id,
        )
        return event, "retractions"

    def accepts(self, event: dict[str, Any], lane: str) -> bool:
        if event["type"] == "event_retracted":
            (target,) = [f for f in self.facts if f.event_id == event["target"]]
            if target.retracted or target.type == "event_retracted":
                return False
            remaining = [f for f in self.live(target.lane) if f is not target]
            return lane_ok(target.lane, remaining)
        registered = day(0) if lane.startswith(self.subject) else day(REGISTERED_DAY)
        at = datetime.fromisoformat(event["occurred_at"])
        if at < registered:
            return False
        trial = Fact(event["event_id"], 10**12, event["type"], lane, at, event)
        return lane_ok(lane, [*self.live(lane), trial])

    def record(self, event: dict[str, Any], lane: str, sequence: int) -> None:
        at = datetime.fromisoformat(event["occurred_at"])
        self.facts.append(Fact(event["event_id"], sequence, event["type"], lane, at, event))
        if event["type"] == "event_retracted":
            for fact in self.facts:
                if fact.event_id == event["target"]:
                    fact.retracted = True

    # --- reference reads ------------------------------------------------------

    def status(self, index: int, moment: datetime) -> dict[str, Any]:
        facts = sorted(
            (f for f in self.live(f"{self.account(index)}:status") if f.at <= moment),
            key=lambda f: f.order,
        )
        state = reference_status(facts, moment)
        followers = sorted(
            (f for f in self.live(f"{self.account(index)}:followers") if f.at <= moment),
            key=lambda f: f.order,
        )
        return {
            "status": state.status,
            "since": iso(state.since) if state.since else iso(day(REGISTERED_DAY)),
            "until": iso(state.until) if state.until else None,
            "policy": state.policy,
            "cause_event": state.cause or f"{self.account(index)}-reg",
            "exemptions": sorted(
                self._exemptions(self.account(index), "account", moment)
                + self._exemptions(self.subject, "subject", moment)
            ),
            "followers": followers[-1].record["count"] if followers else None,
        }

    def _exemptions(self, holder: str, kind: str, moment: datetime) -> list[tuple[str, ...]]:
        active: dict[str, str] = {}
        facts = [
            f
            for f in self.facts
            if f.lane.startswith(f"{holder}:exemption:") and not f.retracted and f.at <= moment
        ]
        for fact in sorted(facts, key=lambda f: f.order):
            name = fact.record["exemption"]
            if fact.type == "exemption_applied":
                active[name] = fact.event_id
            else:
                active.pop(name, None)
        return [(name, kind, event_id) for name, event_id in active.items()]


def observed(row: dict[str, Any]) -> dict[str, Any]:
    """The parts of a status document the reference model predicts."""
    keys = ("status", "since", "until", "policy", "cause_event", "followers")
    return {
        **{k: row[k] for k in keys},
        "exemptions": sorted((e["exemption"], e["holder"], e["event"]) for e in row["exemptions"]),
    }


def read_side(store: Store, model: Model, middle: str) -> list[str]:
    """Everything the read side says about this example, at fixed times."""
    fixed = ("--known-at", FAR_FUTURE)
    outputs = [
        store.ok("timeline", "--nl", *fixed).stdout,
        store.ok("timeline", "--nl", "--known-at", middle).stdout,
        store.ok("timeline", "--subject", model.subject, *fixed).stdout,
        store.ok("accounts", "--json", "--as-of", iso(day(LAST_DAY + 20)), *fixed).stdout,
        store.ok(
            *("counts", "--nl", "--subject", model.subject, "--by", "type", "--by", "account"),
            *("--per", "day", "--known-at", middle),
        ).stdout,
    ]
    for index, as_of in enumerate((day(REGISTERED_DAY), day(20), day(LAST_DAY + 20))):
        outputs.append(
            store.ok(
                "status", model.account(index % 2), "--as-of", iso(as_of), "--known-at", middle
            ).stdout
        )
    return outputs


# Every CLI call against PostgreSQL pays for a connection; fewer examples keep the
# suite's time in check there, and SQLite explores more.
EXAMPLES = {"sqlite": 25, "postgres": 10}


def test_random_valid_histories(store: Store) -> None:
    @settings(
        max_examples=EXAMPLES.get(store.kind, 10),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(plan=plans)
    def check(plan: list[tuple[Any, ...]]) -> None:
        check_history(store, plan)

    check()


def check_history(store: Store, plan: list[tuple[Any, ...]]) -> None:
    model = Model(prefix=f"h{next(_examples)}")
    store.append(*model.registrations())
    middle = FAR_FUTURE
    for number, step in enumerate(plan):
        if number == len(plan) // 2:
            # A record time between two appends: the read side must agree about it too.
            middle = iso(datetime.now(UTC))
        built = model.candidate(step)
        if built is None:
            continue
        event, lane = built
        expected = model.accepts(event, lane)
        result = store.run("append", "--json", "-", input=jsonl(event))
        assert result.exit_code == (0 if expected else 1), (
            "the ledger and the reference model disagree",
            event,
            result.output,
            [(f.event_id, f.type, iso(f.at), f.retracted) for f in model.live(lane)],
        )
        if expected:
            sequence = json.loads(result.stdout)["first_sequence"]
            model.record(event, lane, sequence)
        else:
            assert result.stderr.startswith("Error: line 1: "), result.stderr
            assert "rejected" in result.stderr

    # (b) status from the projection equals the reference fold.
    # A few fixed days, plus every moment a measure ends by itself.
    moments = {day(4), day(5), day(12), day(19), day(28), day(51)}
    moments |= {
        datetime.fromisoformat(f.record["until"]) for f in model.facts if "until" in f.record
    }
    for moment in sorted(moments):
        rows = json.loads(
            store.ok(
                "accounts", "--json", "--subject", model.subject, "--as-of", iso(moment)
            ).stdout
        )
        if moment < day(REGISTERED_DAY):
            assert rows == []
            continue
        assert [r["account"] for r in rows] == [model.account(0), model.account(1)]
        for index, row in enumerate(rows):
            assert observed(row) == model.status(index, moment), (iso(moment), index)

    # Counts agree with the timeline they summarise: its unretracted rows, per record time.
    for known in (middle, FAR_FUTURE):
        selection = ("--subject", model.subject, "--known-at", known)
        timeline = store.ok("timeline", "--nl", *selection).stdout.splitlines()
        live = [e for e in map(json.loads, timeline) if not e["retracted"]]
        counted = store.ok("counts", "--nl", "--by", "type", "--by", "account", *selection)
        rows = [json.loads(line) for line in counted.stdout.splitlines()]
        assert {(r["type"], r["account"]): r["count"] for r in rows} == dict(
            Counter((e["type"], e.get("account")) for e in live)
        ), known

    # (a) incremental equals rebuilt.
    incremental = read_side(store, model, middle)
    store.ok("replay", "--silent")
    assert read_side(store, model, middle) == incremental


# --- canonical JSON ------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(alphabet=st.characters(max_codepoint=127), max_size=8), children, max_size=5
        )
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_canonical_json_known_forms() -> None:
    value: Any = {"b": [1, True, None], "a": "é\n\u2028\u007f\x1f", "aa": {}}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert (
        canonical_json(value)
        == '{"a":"é\\n\u2028\u007f\\u001f","aa":{},"b":[1,true,null]}'.encode()
    )


# --- the status fold alone, against the reference, many more histories ------------

_MEASURES = ("account_restricted", "account_suspended", "account_removed")
status_facts = st.lists(
    st.tuples(
        st.sampled_from((*_MEASURES, "account_reinstated")),
        st.integers(min_value=0, max_value=40),  # the day it occurred
        st.one_of(st.none(), st.integers(min_value=1, max_value=15)),  # days in force
    ),
    max_size=14,
)


@settings(max_examples=600, deadline=None)
@given(steps=status_facts)
def test_the_status_fold_equals_the_reference_at_every_moment(
    steps: list[tuple[str, int, int | None]],
) -> None:
    """In process, so hundreds of histories: the ledger's fold (with the measures it
    drops as never showing again) against the status stated directly, at every
    moment it can change, for the histories the rules accept."""
    from ledger.rules import RuleViolation, fold_status

    facts: list[Fact] = []
    for number, (kind, when, days) in enumerate(sorted(steps, key=lambda s: s[1])):
        record: dict[str, Any] = {"policy": f"p{number}"}
        if days is not None and kind in _MEASURES[:2]:
            record["until"] = (day(when) + timedelta(days=days)).isoformat()
        candidate = Fact(f"e{number}", number, kind, "status", day(when), record)
        state = fold_status(_entry(f) for f in facts)
        try:
            state.check(_entry(candidate))
        except RuleViolation:
            continue  # refused: the reference model's own test covers which
        facts.append(candidate)
    moments = {day(0), *(f.at for f in facts)}
    moments |= {datetime.fromisoformat(f.record["until"]) for f in facts if "until" in f.record}
    for moment in sorted(moments):
        for offset in (timedelta(0), timedelta(hours=12)):
            # As `status --as-of` reads it: the facts by then, folded, asked then.
            known = [_entry(f) for f in facts if f.at <= moment + offset]
            got = fold_status(known).at(moment + offset)
            expected = reference_status(facts, moment + offset)
            assert (got.status, got.cause, got.since, got.until) == (
                expected.status,
                expected.cause,
                expected.since,
                expected.until,
            ), (moment + offset, [(f.event_id, f.type, f.at, f.record) for f in facts])


def _entry(fact: Fact) -> Any:
    from ledger.rules import Entry

    return Entry(fact.sequence, fact.event_id, fact.type, fact.at, fact.record)
