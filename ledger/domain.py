"""Aggregates and the rules they enforce.

How the aggregates are cut, and why:

* ``AccountStream``: one per account. Every rule in the brief is about one
  account's own history (registration first, posts published before they are
  screened, reinstatement only of a sanctioned account, appeals against the
  account's own actions), so the account is the consistency boundary. Two admins
  writing about the same account conflict on the stream version and are retried;
  writers on different accounts never contend in the domain.
* ``SubjectStream``: one per person, organisation or state body: its registration
  and subject-wide exemptions (X's rule for officials of UN-recognised governments
  applies to a person, not to one handle).
* ``PlatformStream``: one per platform slug, for renames (Twitter became X but
  kept its identity, so slugs never change).

A retraction is recorded in the stream of the event it retracts, because taking an
event out of a history can invalidate later events of that same history.

History arrives out of order, so rules are not checked against "the latest
state" but by folding the stream in ``occurred_at`` order with the new event in
place. Each stream is split into *lanes* (the account's status, each post, each
exemption, each appeal) that the rules treat independently, so a backfilled event
re-checks only its own lane: O(lane), not O(account history).
"""

from __future__ import annotations

import bisect
import functools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from ledger.events import iso

FUTURE_TOLERANCE = timedelta(minutes=5)

# Namespace for uuid5 ids of natural keys ("account:instagram:khamenei_ir").
_ID_NAMESPACE = uuid.UUID("6f1f3e0c-8f0e-5d4c-9a51-8c1f0e6b7a10")

STATUS_TYPES = frozenset(
    {"account_restricted", "account_suspended", "account_reinstated", "account_removed"}
)
POST_TYPES = frozenset(
    {
        "post_published",
        "post_warning_screen_applied",
        "post_warning_screen_removed",
        "post_removed",
        "post_restored",
    }
)
APPEALABLE_TYPES = frozenset(
    {
        "post_warning_screen_applied",
        "post_removed",
        "account_restricted",
        "account_suspended",
        "account_removed",
    }
)


RULE_FIELDS = (
    "account", "subject", "post", "exemption", "appeal", "target", "until", "policy",
    "restrictions",
)  # fmt: skip


class RuleViolation(ValueError):
    """An event that would make some history invalid; names the conflicting event."""


class LaterEventInvalid(RuleViolation):
    """The new event is fine, but an already recorded later event no longer is.

    Within one batch this may be repaired by a later line of the same batch (a
    backfilled removal, then its reinstatement), so the batch defers it to its end.
    """


@dataclass(slots=True)
class Entry:
    """One recorded event as the rules see it."""

    sequence: int
    event_id: str
    type: str
    occurred_at: datetime
    record: dict[str, Any]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Entry:
        # Only the fields rules read: a stream holds many entries, not whole records.
        return cls(
            sequence=record["sequence"],
            event_id=record["event_id"],
            type=record["type"],
            occurred_at=datetime.fromisoformat(record["occurred_at"]),
            record={k: record[k] for k in RULE_FIELDS if k in record},
        )

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.occurred_at, self.sequence)

    def describe(self) -> str:
        return f"{self.event_id} ({self.type} at {iso(self.occurred_at)})"

    def until(self) -> datetime | None:
        value = self.record.get("until")
        return datetime.fromisoformat(value) if value else None


# --- status: the account-level state machine, shared with the read side --------


@dataclass(slots=True)
class AccountStatus:
    """An account's enforcement status at one moment of valid time."""

    status: str = "active"
    since: datetime | None = None
    until: datetime | None = None
    policy: str | None = None
    cause: str | None = None
    restrictions: tuple[str, ...] = ()

    def at(self, moment: datetime) -> AccountStatus:
        """The status at ``moment``: a measure with ``until`` ends by itself."""
        if self.until is not None and self.until <= moment:
            return AccountStatus("active", since=self.until, cause=self.cause)
        return self

    def check(self, entry: Entry) -> None:
        """Raise if ``entry`` cannot happen to an account in this status."""
        current = self.at(entry.occurred_at)
        kind = entry.type
        if kind == "account_reinstated" and current.status == "active":
            ended = (
                f"; measure {self.cause} already ended at {iso(self.until)}"
                if self.until is not None and self.status != "active"
                else ""
            )
            raise RuleViolation(
                f"the account is not suspended, restricted or removed at "
                f"{iso(entry.occurred_at)}{ended}"
            )
        if (
            kind in ("account_restricted", "account_suspended", "account_removed")
            and current.status == "removed"
        ):
            removed_at = iso(current.since) if current.since else "an earlier time"
            raise RuleViolation(
                f"the account was removed by {current.cause} at {removed_at} "
                f"and not reinstated before {iso(entry.occurred_at)}"
            )

    def apply(self, entry: Entry) -> AccountStatus:
        record = entry.record
        if entry.type == "account_reinstated":
            return AccountStatus("active", since=entry.occurred_at, cause=entry.event_id)
        status = {
            "account_restricted": "restricted",
            "account_suspended": "suspended",
            "account_removed": "removed",
        }[entry.type]
        return AccountStatus(
            status,
            since=entry.occurred_at,
            until=entry.until(),
            policy=record.get("policy"),
            cause=entry.event_id,
            restrictions=tuple(record.get("restrictions", ())),
        )


def fold_status(entries: Iterable[Entry]) -> AccountStatus:
    state = AccountStatus()
    for entry in entries:
        state = state.apply(entry)
    return state


# --- lanes ---------------------------------------------------------------------


class LaneState:
    """Fold state of one lane; ``check`` raises and never mutates."""

    __slots__ = ()  # a stream holds one per post: keep them small

    retains_entries = True

    def check(self, entry: Entry, stream: Stream) -> None:
        raise NotImplementedError

    def apply(self, entry: Entry) -> None:
        raise NotImplementedError


class StatusLane(LaneState):
    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = AccountStatus()

    def check(self, entry: Entry, stream: Stream) -> None:
        self.status.check(entry)

    def apply(self, entry: Entry) -> None:
        self.status = self.status.apply(entry)


class PostLane(LaneState):
    __slots__ = ("published", "removed", "screened")

    def __init__(self) -> None:
        self.published: str | None = None
        self.removed: str | None = None
        self.screened: str | None = None

    def check(self, entry: Entry, stream: Stream) -> None:
        post = entry.record["post"]
        if entry.type == "post_published":
            if self.published:
                raise RuleViolation(f"post {post} was already published by {self.published}")
            return
        if not self.published:
            raise RuleViolation(f"post {post} is not published at {iso(entry.occurred_at)}")
        if entry.type == "post_warning_screen_applied":
            if self.removed:
                raise RuleViolation(
                    f"post {post} was removed by {self.removed} before {iso(entry.occurred_at)}"
                )
            if self.screened:
                raise RuleViolation(
                    f"post {post} is already behind a warning screen ({self.screened})"
                )
        elif entry.type == "post_warning_screen_removed":
            if not self.screened:
                raise RuleViolation(
                    f"post {post} has no warning screen in place at {iso(entry.occurred_at)}"
                )
        elif entry.type == "post_removed":
            if self.removed:
                raise RuleViolation(f"post {post} was already removed by {self.removed}")
        elif entry.type == "post_restored" and not self.removed:
            raise RuleViolation(f"post {post} is not removed at {iso(entry.occurred_at)}")

    def apply(self, entry: Entry) -> None:
        if entry.type == "post_published":
            self.published = entry.event_id
        elif entry.type == "post_warning_screen_applied":
            self.screened = entry.event_id
        elif entry.type == "post_warning_screen_removed":
            self.screened = None
        elif entry.type == "post_removed":
            self.removed = entry.event_id
        elif entry.type == "post_restored":
            self.removed = None


class ExemptionLane(LaneState):
    __slots__ = ("applied",)

    def __init__(self) -> None:
        self.applied: str | None = None

    def check(self, entry: Entry, stream: Stream) -> None:
        name = entry.record["exemption"]
        if entry.type == "exemption_applied" and self.applied:
            raise RuleViolation(f"exemption {name} is already in force ({self.applied})")
        if entry.type == "exemption_revoked" and not self.applied:
            raise RuleViolation(f"exemption {name} is not in force at {iso(entry.occurred_at)}")

    def apply(self, entry: Entry) -> None:
        self.applied = entry.event_id if entry.type == "exemption_applied" else None


class AppealLane(LaneState):
    __slots__ = ("decided", "filed")

    def __init__(self) -> None:
        self.filed: Entry | None = None
        self.decided: str | None = None

    def check(self, entry: Entry, stream: Stream) -> None:
        appeal = entry.record["appeal"]
        target_id = entry.record["target"]
        if entry.type == "appeal_filed":
            if self.filed:
                raise RuleViolation(f"appeal {appeal} was already filed by {self.filed.event_id}")
            target = stream.live.get(target_id)
            if target is None:
                raise RuleViolation(
                    f"target {target_id} is not a recorded, unretracted event of this account "
                    f"that can be appealed ({', '.join(sorted(APPEALABLE_TYPES))})"
                )
            if target.type not in APPEALABLE_TYPES:
                raise RuleViolation(
                    f"target {target.describe()} is not an enforcement action that can be "
                    f"appealed (expected one of {', '.join(sorted(APPEALABLE_TYPES))})"
                )
            if target.occurred_at > entry.occurred_at:
                raise RuleViolation(f"appeal filed before its target {target.describe()}")
            return
        if self.filed is None:
            raise RuleViolation(f"appeal {appeal} is not filed at {iso(entry.occurred_at)}")
        if self.filed.record["target"] != target_id:
            raise RuleViolation(
                f"appeal {appeal} was filed against {self.filed.record['target']}, not {target_id}"
            )
        if self.decided:
            raise RuleViolation(f"appeal {appeal} was already decided by {self.decided}")

    def apply(self, entry: Entry) -> None:
        if entry.type == "appeal_filed":
            self.filed = entry
        else:
            self.decided = entry.event_id


class ObservationLane(LaneState):
    """Facts with no ordering rules of their own (a registration, a rename)."""

    __slots__ = ()

    retains_entries = True

    def check(self, entry: Entry, stream: Stream) -> None:
        return None

    def apply(self, entry: Entry) -> None:
        return None


class CountLane(ObservationLane):
    """Follower counts: numerous and rule-free, so their entries are not kept.

    A stream only counts them (and remembers the earliest), which keeps its memory
    proportional to its enforcement history, not to its observations.
    """

    __slots__ = ()
    retains_entries = False


@dataclass(slots=True)
class Lane:
    new_state: type[LaneState]
    entries: list[Entry] = field(default_factory=list)
    _state: LaneState | None = None
    # Set while this lane is invalid pending the rest of its batch (see LaterEventInvalid).
    deferred: LaterEventInvalid | None = None

    def state(self, stream: Stream) -> LaneState:
        if self._state is None:
            self._state = self.fold(self.entries, stream)
        return self._state

    def fold(self, entries: list[Entry], stream: Stream) -> LaneState:
        state = self.new_state()
        for entry in entries:
            state.check(entry, stream)
            state.apply(entry)
        return state

    def admit(
        self, candidate: Entry, stream: Stream, *, defer_later: bool = False
    ) -> Callable[[], None]:
        """Check ``candidate`` in occurred_at order; return the commit step.

        The common case (the event is the newest in its lane) is checked against the
        cached final state. A backfilled event re-folds the lane with it in place.
        With ``defer_later``, a conflict with an already recorded later event does
        not raise: the lane is marked ``deferred`` for the batch to settle.
        """
        if self.deferred is None and (
            not self.entries or self.entries[-1].order <= candidate.order
        ):
            state = self.state(stream)
            state.check(candidate, stream)

            def commit_append() -> None:
                state.apply(candidate)
                if state.retains_entries:
                    self.entries.append(candidate)

            return commit_append
        keys = [e.order for e in self.entries]
        position = bisect.bisect_right(keys, candidate.order)
        trial = [*self.entries[:position], candidate, *self.entries[position:]]
        try:
            new_state: LaneState | None = _fold_naming_conflict(
                self.new_state, trial, candidate, stream
            )
            deferred = None
        except LaterEventInvalid as conflict:
            if not defer_later:
                raise
            new_state, deferred = None, conflict

        def commit_insert() -> None:
            self.entries = trial
            self._state = new_state
            self.deferred = deferred

        return commit_insert

    def admit_removal(self, target: Entry, stream: Stream) -> Callable[[], None]:
        trial = [e for e in self.entries if e.event_id != target.event_id]
        new_state = _fold_naming_conflict(self.new_state, trial, None, stream, retracting=target)

        def commit_remove() -> None:
            self.entries = trial
            self._state = new_state

        return commit_remove


def _fold_naming_conflict(
    new_state: Callable[[], LaneState],
    entries: list[Entry],
    candidate: Entry | None,
    stream: Stream,
    retracting: Entry | None = None,
) -> LaneState:
    state = new_state()
    for entry in entries:
        try:
            state.check(entry, stream)
        except RuleViolation as violation:
            if entry is candidate:
                raise
            change = (
                f"retracting {retracting.describe()}"
                if retracting is not None
                else "this backfilled event"
            )
            raise LaterEventInvalid(
                f"{change} would make the recorded event {entry.describe()} invalid: {violation}"
            ) from None
        state.apply(entry)
    return state


# --- aggregates ----------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def stream_id(kind: str, key: str) -> uuid.UUID:
    """Natural keys map to stable ids, so any writer finds the same stream."""
    return uuid.uuid5(_ID_NAMESPACE, f"{kind}:{key}")


class Stream(Aggregate):
    """Common behaviour: a live history split into lanes, plus retractions."""

    registration_type = ""

    class Started(Aggregate.Created):
        record: dict[str, Any]

    class Recorded(Aggregate.Event):
        record: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.absorb(self.record)

    def __init__(self, record: dict[str, Any]) -> None:
        self.lanes: dict[str, Lane] = {}
        self.live: dict[str, Entry] = {}
        self.retracted: dict[str, str] = {}  # target event_id -> retraction event_id
        self.retractions: set[str] = set()
        # Unretained (follower) entries: how many are live, and the earliest one.
        self.observed = 0
        self.first_observed: Entry | None = None
        self._admitted: tuple[Entry, Lane, str, Callable[[], None]] | None = None
        self.absorb(record)

    @classmethod
    def start(cls, id: uuid.UUID, record: dict[str, Any]) -> Stream:  # noqa: A002
        """Open a stream with its first event, which must be its registration."""
        if cls.registration_type and record["type"] != cls.registration_type:
            raise RuleViolation(cls.unregistered_message())
        return cls._create(
            cls.Started,
            id=id,
            record=record,
            timestamp=datetime.fromisoformat(record["recorded_at"]),
        )

    def absorb(self, record: dict[str, Any]) -> None:
        """Evolve the state by one recorded event (a command or a replay)."""
        admitted, self._admitted = self._admitted, None
        if admitted is not None and admitted[0].event_id == record["event_id"]:
            # The command already checked and folded this event: keep its state.
            candidate, lane, key, commit = admitted
            self.lanes[key] = lane
            commit()
            self._remember(candidate, lane)
            return
        # Replay: stored history was checked when it was written.
        entry = Entry.from_record(record)
        if entry.type == "event_retracted":
            target = self.live.pop(record["target"], None)
            if target is None:  # an unretained observation
                self.observed -= 1
            else:
                lane = self.lanes[self.lane_key(target)]
                lane.entries = [e for e in lane.entries if e.event_id != target.event_id]
                lane._state = None
            self.retracted[record["target"]] = entry.event_id
            self.retractions.add(entry.event_id)
            return
        lane = self.lanes.setdefault(self.lane_key(entry), Lane(self.lane_state(entry)))
        if lane.new_state.retains_entries:
            bisect.insort(lane.entries, entry, key=lambda e: e.order)
            lane._state = None
        self._remember(entry, lane)

    def _live_and_observed(self) -> list[Entry]:
        """Live entries plus the earliest unretained follower count, if any is live."""
        entries = list(self.live.values())
        if self.observed and self.first_observed is not None:
            entries.append(self.first_observed)
        return entries

    def _remember(self, entry: Entry, lane: Lane) -> None:
        if lane.new_state.retains_entries:
            self.live[entry.event_id] = entry
            return
        self.observed += 1
        if self.first_observed is None or entry.order < self.first_observed.order:
            self.first_observed = entry

    def deferred_conflicts(self) -> list[tuple[str, LaterEventInvalid]]:
        return [(key, lane.deferred) for key, lane in self.lanes.items() if lane.deferred]

    def lane_key(self, entry: Entry) -> str:
        raise NotImplementedError

    def lane_state(self, entry: Entry) -> type[LaneState]:
        raise NotImplementedError

    @property
    def registration(self) -> Entry | None:
        lane = self.lanes.get("registration")
        return lane.entries[0] if lane and lane.entries else None

    # --- commands: rules first, then the event (a guard that raises records nothing)

    def record(self, record: dict[str, Any], *, defer_later: bool = False) -> None:
        """Record an event; ``defer_later`` lets a batch settle later conflicts at its end."""
        candidate = Entry.from_record(record)
        self.check_registration(candidate)
        key = self.lane_key(candidate)
        lane = self.lanes.get(key) or Lane(self.lane_state(candidate))
        commit = lane.admit(candidate, self, defer_later=defer_later)  # raises on conflict
        self._admitted = (candidate, lane, key, commit)
        self.trigger_event(
            self.Recorded, record=record, timestamp=datetime.fromisoformat(record["recorded_at"])
        )

    def retract(self, record: dict[str, Any], unretained: Entry | None = None) -> None:
        """Retract an event of this stream; ``unretained`` is the target when the
        stream does not keep it in memory (a follower count), read from the log."""
        target_id = record["target"]
        if target_id in self.retractions:
            raise RuleViolation(f"{target_id} is itself a retraction and cannot be retracted")
        if target_id in self.retracted:
            raise RuleViolation(f"{target_id} was already retracted by {self.retracted[target_id]}")
        target = self.live.get(target_id) or unretained
        if target is None:
            raise RuleViolation(f"{target_id} is not an event of this stream")
        if target.type == self.registration_type:
            others = sorted(
                (e for e in self._live_and_observed() if e is not target), key=lambda e: e.order
            )
            if others:
                raise RuleViolation(
                    f"retracting {target.describe()} would leave {others[0].describe()} "
                    "without a registration; retract the later events first"
                )
        for entry in self.live.values():
            if entry.record.get("target") == target_id and entry.type.startswith("appeal_"):
                raise RuleViolation(
                    f"retracting {target.describe()} would leave appeal event "
                    f"{entry.describe()} without its target; retract the appeal first"
                )
        if target_id in self.live:
            self.lanes[self.lane_key(target)].admit_removal(target, self)
        self.trigger_event(
            self.Recorded, record=record, timestamp=datetime.fromisoformat(record["recorded_at"])
        )

    def check_registration(self, candidate: Entry) -> None:
        registration = self.registration
        if candidate.type == self.registration_type:
            if registration is not None:
                raise RuleViolation(f"already registered by {registration.describe()}")
            earliest = min((e.order for e in self._live_and_observed()), default=None)
            if earliest is not None and earliest[0] < candidate.occurred_at:
                raise RuleViolation("registration must not occur after events it precedes")
            return
        if registration is None:
            raise RuleViolation(self.unregistered_message())
        if candidate.occurred_at < registration.occurred_at:
            raise RuleViolation(f"occurs before the registration {registration.describe()}")

    @classmethod
    def unregistered_message(cls) -> str:
        return "the stream has no registration"


class AccountStream(Stream):
    registration_type = "account_registered"

    class Started(Stream.Started):
        pass

    class Recorded(Stream.Recorded):
        pass

    def lane_key(self, entry: Entry) -> str:
        kind = entry.type
        if kind == "account_registered":
            return "registration"
        if kind in STATUS_TYPES:
            return "status"
        if kind in POST_TYPES:
            return f"post:{entry.record['post']}"
        if kind.startswith("exemption_"):
            return f"exemption:{entry.record['exemption']}"
        if kind.startswith("appeal_"):
            return f"appeal:{entry.record['appeal']}"
        return "observations"

    def lane_state(self, entry: Entry) -> type[LaneState]:
        kind = entry.type
        if kind == "account_registered":
            return ObservationLane
        if kind in STATUS_TYPES:
            return StatusLane
        if kind in POST_TYPES:
            return PostLane
        if kind.startswith("exemption_"):
            return ExemptionLane
        if kind.startswith("appeal_"):
            return AppealLane
        return CountLane

    @classmethod
    def unregistered_message(cls) -> str:
        return "the account is not registered; append its account_registered event first"

    @property
    def subject(self) -> str | None:
        registration = self.registration
        return registration.record.get("subject") if registration else None


class SubjectStream(Stream):
    registration_type = "subject_registered"

    class Started(Stream.Started):
        pass

    class Recorded(Stream.Recorded):
        pass

    def lane_key(self, entry: Entry) -> str:
        if entry.type == "subject_registered":
            return "registration"
        return f"exemption:{entry.record['exemption']}"

    def lane_state(self, entry: Entry) -> type[LaneState]:
        return ObservationLane if entry.type == "subject_registered" else ExemptionLane

    @classmethod
    def unregistered_message(cls) -> str:
        return "the subject is not registered; append its subject_registered event first"


class PlatformStream(Stream):
    """Renames only: a platform needs no registration, its slug is its identity."""

    class Started(Stream.Started):
        pass

    class Recorded(Stream.Recorded):
        pass

    def lane_key(self, entry: Entry) -> str:
        return "renames"

    def lane_state(self, entry: Entry) -> type[LaneState]:
        return CountLane

    def check_registration(self, candidate: Entry) -> None:
        return None


def stream_of(record: dict[str, Any]) -> tuple[type[Stream], uuid.UUID]:
    """Which stream an (unretraction) event belongs to."""
    kind = record["type"]
    if kind == "platform_renamed":
        return PlatformStream, stream_id("platform", record["platform"])
    if kind == "subject_registered" or (kind.startswith("exemption_") and "subject" in record):
        return SubjectStream, stream_id("subject", record["subject"])
    return AccountStream, stream_id("account", record["account"])


def check_not_in_future(record: dict[str, Any], recorded_at: datetime) -> None:
    occurred = datetime.fromisoformat(record["occurred_at"])
    if occurred > recorded_at + FUTURE_TOLERANCE:
        raise RuleViolation(
            f"occurred_at {iso(occurred)} is more than 5 minutes in the future "
            f"(recorded at {iso(recorded_at)})"
        )
