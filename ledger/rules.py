"""The rules every append enforces, and what they run on.

Streams are cut as ``ledger.domain`` explains (an account, a subject, a platform);
this module holds their rules and needs no eventsourcing import, so a single
`record` or a query loads only what it uses.

History arrives out of order, so rules are not checked against "the latest
state" but by folding the stream in ``occurred_at`` order with the new event in
place. Each stream is split into *lanes* (the account's status, each post, each
exemption, each appeal) that the rules treat independently, so a backfilled event
re-checks only its own lane: O(lane), not O(account history).

An append does not reconstitute whole aggregates. It works on ``StreamView``s: a
stream's version and registration, plus lanes folded to their current state in a
bounded ``LaneCache``. The common event (the newest in its lane) is checked against
that state; a lane's entries are read back from the log (``History``) only when a
backfill or retraction must re-fold it, or when the cache has dropped the lane. So
an import of millions of events runs in memory that does not grow with it, and the
same code checks a single append and a bulk import.
"""

from __future__ import annotations

import bisect
import functools
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ledger.vocabulary import iso, quoted

FUTURE_TOLERANCE = timedelta(minutes=5)
# A clock stepped back (NTP, a restored VM) records just past the log's last record
# time (by RECORD_TIME_STEP, the finest time stored); one further behind it than this
# stops appends, rather than sign every later event with a time still to come (a clock
# far ahead wrote it, or the store was changed).
CLOCK_BEHIND_LIMIT = timedelta(days=1)
RECORD_TIME_STEP = timedelta(microseconds=1)
# The checks for new input added by the versions of 7-8 Dec 2026 (an account id's spelling
# where it is registered, a zero-width joiner in it only where it shapes the letters
# (a non-joiner only before a letter: 8 Dec),
# a retraction's date, a renamed platform's slug, in any case or width, a
# registration or a revocation retracted from under a subject's platform exemption,
# lists each value once, a platform name without invisible characters, a policy kept in
# NFC, an assigned country code) do not apply to copied events recorded before the last
# of them was released: an older ledger holding such events must still move (STYLE: old
# stored events load). A record time cannot say which version wrote an event, so the
# cut-off is that release (a time already past when it lands: tests record at now and
# expect every check of a copy).
NEW_INPUT_CHECKS_SINCE = datetime(2026, 12, 8, 0, 30, tzinfo=UTC)

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
    "restrictions", "platform",
)  # fmt: skip


class RuleViolation(ValueError):
    """An event that would make some history invalid; names the conflicting event."""


class Unregistered(RuleViolation):
    """The event's account or subject (``field`` says which) has no registration."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class RetractedBeforeTarget(RuleViolation):
    """A retraction dated before its target (a correction follows its mistake)."""


class LaterEventInvalid(RuleViolation):
    """The new event is fine, but an already recorded later event no longer is.

    Within one batch this may be repaired by a later line of the same batch (a
    backfilled removal, then its reinstatement), so the batch defers it to its end.
    ``invalid`` is the recorded event it makes invalid.
    """

    def __init__(self, message: str, invalid: Entry) -> None:
        super().__init__(message)
        self.invalid = invalid


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


# How heavy a measure is: the heaviest in force is the account's status, whatever
# the order they were laid in (a restriction laid on a suspension does not lift it).
SEVERITY = {"restricted": 1, "suspended": 2, "removed": 3}


@dataclass(slots=True)
class AccountStatus:
    """An account's enforcement status at one moment of valid time.

    Measures stack: every measure laid since the last reinstatement is in force
    until its own ``until`` (or for good), and the status is the heaviest in force
    (removed, then suspended, then restricted), the newest of equals. A suspension
    laid on an indefinite restriction ends by its ``until`` and the restriction,
    which nothing lifted, is the status again from then on; a restriction laid on a
    suspension waits beneath it. A reinstatement lifts them all; only a
    reinstatement, never a measure's end, makes an account active while another
    measure is in force. The platform lifting the measure beneath can then still be
    recorded.
    """

    status: str = "active"
    since: datetime | None = None
    until: datetime | None = None
    policy: str | None = None
    cause: str | None = None
    # The measures in force when the newest was laid, heaviest first (this one is the
    # first); each is a plain AccountStatus without layers. Empty when active.
    layers: tuple[AccountStatus, ...] = ()
    # (severity, occurred_at, sequence) of the event that laid this measure.
    rank: tuple[int, datetime, int] | None = None

    def in_force(self, moment: datetime) -> list[AccountStatus]:
        """The measures in force at ``moment``, heaviest first; the first one's
        ``since`` is when it became the status (a heavier measure laid over it may
        have ended after it began)."""
        covered: datetime | None = None  # the latest end of the heavier measures
        for index, layer in enumerate(self.layers):
            if layer.until is None or moment < layer.until:
                rest = [m for m in self.layers[index + 1 :] if m.until is None or moment < m.until]
                assert layer.since is not None
                if covered is not None and covered > layer.since:
                    layer = replace(layer, since=covered)
                return [layer, *rest]
            covered = layer.until if covered is None else max(covered, layer.until)
        return []

    def at(self, moment: datetime) -> AccountStatus:
        """The status at ``moment``: a measure with ``until`` ends by itself, and the
        heaviest measure still in force, if any, is the status from then on."""
        if not self.layers or self.until is None or moment < self.until:
            return self  # active, or the heaviest measure still in force
        layers = self.in_force(moment)
        if layers:
            return replace(layers[0], layers=tuple(layers))
        # None in force: active since the last of them ended.
        last = max(self.layers, key=lambda m: (m.until, m.rank))
        return AccountStatus("active", since=last.until, cause=last.cause)

    def check(self, entry: Entry) -> None:
        """Raise if ``entry`` cannot happen to an account in this status."""
        current = self.at(entry.occurred_at)
        kind = entry.type
        if kind == "account_reinstated" and current.status == "active":
            ended = (
                f"; measure {current.cause} already ended at {iso(current.since)}"
                if current.cause is not None
                and current.since is not None
                and self.status != "active"
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
        laid = AccountStatus(
            status,
            since=entry.occurred_at,
            until=entry.until(),
            policy=record.get("policy"),
            cause=entry.event_id,
            rank=(SEVERITY[status], entry.occurred_at, entry.sequence),
        )
        ranked = sorted([*self.in_force(entry.occurred_at), laid], key=_rank, reverse=True)
        # A measure outranked by one lasting at least as long can never be the status
        # again (only a reinstatement ends that one, and it ends both): dropped, so an
        # account laid measure after measure keeps a short stack, not all of them.
        layers: list[AccountStatus] = []
        reach: datetime | None = entry.occurred_at  # the latest end among those kept
        for layer in ranked:
            if layers and (reach is None or (layer.until is not None and layer.until <= reach)):
                continue
            layers.append(layer)
            reach = None if reach is None or layer.until is None else max(reach, layer.until)
        return replace(layers[0], layers=tuple(layers))


def _rank(measure: AccountStatus) -> tuple[int, datetime, int]:
    assert measure.rank is not None
    return measure.rank


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

    def check(self, entry: Entry, stream: LiveEntries) -> None:
        raise NotImplementedError

    def apply(self, entry: Entry) -> None:
        raise NotImplementedError


class StatusLane(LaneState):
    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = AccountStatus()

    def check(self, entry: Entry, stream: LiveEntries) -> None:
        self.status.check(entry)

    def apply(self, entry: Entry) -> None:
        self.status = self.status.apply(entry)


class PostLane(LaneState):
    __slots__ = ("published", "removed", "screened")

    def __init__(self) -> None:
        self.published: str | None = None
        self.removed: str | None = None
        self.screened: str | None = None

    def check(self, entry: Entry, stream: LiveEntries) -> None:
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

    def check(self, entry: Entry, stream: LiveEntries) -> None:
        name = entry.record["exemption"]
        if entry.type == "exemption_applied" and self.applied:
            raise RuleViolation(f"exemption {name} is already in force ({self.applied})")
        if entry.type == "exemption_revoked" and not self.applied:
            # Exemptions are held by an account or a subject, each its own: say whose.
            holder = "account" if entry.record.get("account") else "subject"
            platform = entry.record.get("platform")
            scope = f" for platform {platform}" if platform else ""
            raise RuleViolation(
                f"exemption {name} is not in force on {holder} "
                f"'{entry.record[holder]}'{scope} at {iso(entry.occurred_at)}"
            )

    def apply(self, entry: Entry) -> None:
        self.applied = entry.event_id if entry.type == "exemption_applied" else None


class AppealLane(LaneState):
    __slots__ = ("decided", "filed")

    def __init__(self) -> None:
        self.filed: Entry | None = None
        self.decided: str | None = None

    def check(self, entry: Entry, stream: LiveEntries) -> None:
        appeal = entry.record["appeal"]
        target_id = entry.record["target"]
        if entry.type == "appeal_filed":
            if self.filed:
                raise RuleViolation(f"appeal {appeal} was already filed by {self.filed.event_id}")
            target = stream.live_entry(target_id)
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

    def check(self, entry: Entry, stream: LiveEntries) -> None:
        return None

    def apply(self, entry: Entry) -> None:
        return None


class CountLane(ObservationLane):
    """Follower counts: numerous and rule-free, so a lane never holds or re-reads them."""

    __slots__ = ()
    retains_entries = False


class LiveEntries(Protocol):
    """What a lane's rules may look up beyond the lane itself."""

    def live_entry(self, event_id: str) -> Entry | None:
        """A recorded, unretracted event of this stream."""
        ...


@dataclass(slots=True)
class Lane:
    """A lane as the rules need it: its folded state and the order of its newest entry.

    The entries themselves are read from the log only when a backfill or a
    retraction must re-fold the lane, so a long import keeps a bounded number of
    small lanes in memory instead of every event it has seen.
    """

    new_state: type[LaneState]
    state: LaneState | None  # None while ``deferred``
    last: tuple[datetime, int] | None = None
    entries: list[Entry] | None = None  # loaded on demand
    # Set while this lane is invalid pending the rest of its batch (see LaterEventInvalid).
    deferred: LaterEventInvalid | None = None

    @classmethod
    def folded(cls, new_state: type[LaneState], entries: list[Entry]) -> Lane:
        """A lane from its stored live entries, in order (they were checked when written)."""
        state = new_state()
        for entry in entries:
            state.apply(entry)
        # The entries are not kept: most lanes never need them again.
        return cls(new_state, state, entries[-1].order if entries else None)

    def admit(
        self,
        candidate: Entry,
        stream: LiveEntries,
        load: Callable[[], list[Entry]],
        *,
        defer_later: bool = False,
    ) -> Callable[[], None]:
        """Check ``candidate`` in occurred_at order; return the commit step.

        The common case (the event is the newest in its lane) is checked against the
        folded state. A backfilled event re-folds the lane with it in place, reading
        the lane's entries through ``load`` if they are not in memory. With
        ``defer_later``, a conflict with an already recorded later event does not
        raise: the lane is marked ``deferred`` for the batch to settle.
        """
        if not self.new_state.retains_entries or (
            self.deferred is None and (self.last is None or self.last <= candidate.order)
        ):
            state = self.state
            assert state is not None
            state.check(candidate, stream)

            def commit_append() -> None:
                assert state is not None
                state.apply(candidate)
                if self.last is None or self.last < candidate.order:
                    self.last = candidate.order
                if self.entries is not None:
                    self.entries.append(candidate)

            return commit_append
        entries = self.entries if self.entries is not None else load()
        position = bisect.bisect_right([e.order for e in entries], candidate.order)
        trial = [*entries[:position], candidate, *entries[position:]]
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
            self.state = new_state
            self.deferred = deferred
            self.last = trial[-1].order

        return commit_insert

    def admit_removal(
        self,
        target: Entry,
        stream: LiveEntries,
        load: Callable[[], list[Entry]],
        *,
        defer_later: bool = False,
    ) -> Callable[[], None]:
        """Check the lane without ``target`` (retracted); return the commit step.
        ``defer_later`` as for ``admit``: a retraction whose replacement comes later in
        the same batch (a removal re-dated) leaves a later event invalid only meanwhile."""
        entries = self.entries if self.entries is not None else load()
        trial = [e for e in entries if e.event_id != target.event_id]
        try:
            new_state: LaneState | None = _fold_naming_conflict(
                self.new_state, trial, None, stream, retracting=target
            )
            deferred = None
        except LaterEventInvalid as conflict:
            if not defer_later:
                raise
            new_state, deferred = None, conflict

        def commit_remove() -> None:
            self.entries = trial
            self.state = new_state
            self.deferred = deferred
            self.last = trial[-1].order if trial else None

        return commit_remove


def _fold_naming_conflict(
    new_state: Callable[[], LaneState],
    entries: list[Entry],
    candidate: Entry | None,
    stream: LiveEntries,
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
                f"{change} would make the recorded event {entry.describe()} invalid: {violation}",
                entry,
            ) from None
        state.apply(entry)
    return state


def live_entries(records: Iterable[dict[str, Any]]) -> list[Entry]:
    """Entries of recorded events minus those retracted among them, in occurred_at order.

    A retraction is stored in its target's stream and lane, so reading a lane (or a
    stream) reads the retractions that apply to it.
    """
    entries: list[Entry] = []
    retracted: set[str] = set()
    for record in records:
        if record["type"] == "event_retracted":
            retracted.add(record["target"])
        else:
            entries.append(Entry.from_record(record))
    live = [e for e in entries if e.event_id not in retracted]
    live.sort(key=lambda e: e.order)
    return live


# --- streams --------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def stream_id(kind: str, key: str) -> uuid.UUID:
    """Natural keys map to stable ids, so any writer finds the same stream."""
    return uuid.uuid5(_ID_NAMESPACE, f"{kind}:{key}")


class StreamKind:
    """One kind of consistency boundary: how its events split into lanes, what opens
    it, and the topics its events are stored under (those of its aggregate in
    ``ledger.domain``, which a test pins: appends need no eventsourcing import)."""

    registration_type = ""
    id_field = ""  # the event field naming the stream, where it has a registration
    started_topic = ""
    recorded_topic = ""

    @classmethod
    def lane_key(cls, entry: Entry) -> str:
        raise NotImplementedError

    @classmethod
    def lane_state(cls, entry: Entry) -> type[LaneState]:
        raise NotImplementedError

    @classmethod
    def unregistered_message(cls, given: str) -> str:
        return f"{cls.id_field} {quoted(given)} has no registration"


class AccountKind(StreamKind):
    registration_type = "account_registered"
    id_field = "account"

    started_topic = "ledger.domain:AccountStream.Started"
    recorded_topic = "ledger.domain:AccountStream.Recorded"

    @classmethod
    def lane_key(cls, entry: Entry) -> str:
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

    @classmethod
    def lane_state(cls, entry: Entry) -> type[LaneState]:
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
    def unregistered_message(cls, given: str) -> str:
        return (
            f"account {quoted(given)} is not registered; append its account_registered event first"
        )


class SubjectKind(StreamKind):
    registration_type = "subject_registered"
    id_field = "subject"

    started_topic = "ledger.domain:SubjectStream.Started"
    recorded_topic = "ledger.domain:SubjectStream.Recorded"

    @classmethod
    def lane_key(cls, entry: Entry) -> str:
        if entry.type == "subject_registered":
            return "registration"
        # One platform's rule is its own lane: the same name on another is another one.
        platform = entry.record.get("platform")
        scope = f"@{platform}" if platform else ""
        return f"exemption:{entry.record['exemption']}{scope}"

    @classmethod
    def lane_state(cls, entry: Entry) -> type[LaneState]:
        return ObservationLane if entry.type == "subject_registered" else ExemptionLane

    @classmethod
    def unregistered_message(cls, given: str) -> str:
        return (
            f"subject {quoted(given)} is not registered; append its subject_registered event first"
        )


class PlatformKind(StreamKind):
    """Renames only: a platform needs no registration, its slug is its identity."""

    started_topic = "ledger.domain:PlatformStream.Started"
    recorded_topic = "ledger.domain:PlatformStream.Recorded"

    @classmethod
    def lane_key(cls, entry: Entry) -> str:
        return "renames"

    @classmethod
    def lane_state(cls, entry: Entry) -> type[LaneState]:
        return CountLane


def stream_of(record: dict[str, Any]) -> tuple[type[StreamKind], uuid.UUID]:
    """Which stream an (unretraction) event belongs to."""
    kind = record["type"]
    if kind == "platform_renamed":
        return PlatformKind, stream_id("platform", record["platform"])
    if kind == "subject_registered" or (kind.startswith("exemption_") and "subject" in record):
        return SubjectKind, stream_id("subject", record["subject"])
    return AccountKind, stream_id("account", record["account"])


# --- appending: a stream as the rules see it -------------------------------------


class History(Protocol):
    """The recorded log as an append sees it, its own unflushed events included."""

    def lane_entries(self, stream: uuid.UUID, lane: str) -> list[Entry]:
        """Live entries of one lane, in occurred_at order."""
        ...

    def stream_entries(self, stream: uuid.UUID) -> list[Entry]:
        """Live entries of a whole stream (rare paths: registrations)."""
        ...

    def entry(self, event_id: str) -> tuple[uuid.UUID, Entry] | None:
        """Any recorded event, live or retracted, with its stream."""
        ...

    def retraction_of(self, event_id: str) -> str | None:
        """The event_id of the retraction of ``event_id``, if any."""
        ...

    def referring(self, event_id: str) -> list[Entry]:
        """Live events whose ``target`` is ``event_id`` (appeals), in log order."""
        ...


class DroppedLanes:
    """A Bloom filter of the lanes a cache has dropped: fixed memory (8 MiB, taken at
    the first drop), never a false "not dropped"; a false "dropped" costs one read."""

    BITS = 1 << 26
    HASHES = 4

    def __init__(self) -> None:
        self.bits: bytearray | None = None

    def add(self, key: tuple[str, str]) -> None:
        if self.bits is None:
            self.bits = bytearray(self.BITS // 8)
        bits = self.bits
        h = hash(key)  # stable within the process, which is all a batch needs
        step = (h >> 32) | 1
        mask = self.BITS - 1
        for i in range(self.HASHES):
            position = (h + i * step) & mask
            bits[position >> 3] |= 1 << (position & 7)

    def __contains__(self, key: tuple[str, str]) -> bool:
        # Asked for every lane new to the cache: most answers are "no", usually
        # settled by the first bit, so the loop stops there.
        bits = self.bits
        if bits is None:
            return False
        h = hash(key)
        step = (h >> 32) | 1
        mask = self.BITS - 1
        for i in range(self.HASHES):
            position = (h + i * step) & mask
            if not bits[position >> 3] & (1 << (position & 7)):
                return False
        return True


class LaneCache:
    """The lanes an append keeps in memory: least recently used ones are dropped
    (and re-read from the log if needed again); deferred ones are pinned until
    the batch settles them. Keys are (stream key, lane).

    Two segments of ``capacity`` lanes each, dropping independently. Lanes of one
    item (a post, an appeal) are numerous and mostly done with soon; a stream's own
    lanes (status, exemptions, registration, observations) are few and revisited all
    along. In one shared order a flood of posts pushed out accounts' status lanes,
    whose re-read costs the account's whole status history: at 1M events 109k
    re-reads of dropped lanes took a fifth of the import.
    """

    ITEM_LANES = ("post:", "appeal:")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[tuple[str, str], Lane] = OrderedDict()
        self.streams: OrderedDict[tuple[str, str], Lane] = OrderedDict()
        self.pinned: dict[tuple[str, str], Lane] = {}
        self.dropped = DroppedLanes()

    def _segment(self, key: tuple[str, str]) -> OrderedDict[tuple[str, str], Lane]:
        return self.items if key[1].startswith(self.ITEM_LANES) else self.streams

    def get(self, key: tuple[str, str]) -> Lane | None:
        segment = self._segment(key)
        lane = segment.get(key)
        if lane is not None:
            segment.move_to_end(key)
            return lane
        return self.pinned.get(key)

    def put(self, key: tuple[str, str], lane: Lane) -> None:
        segment = self._segment(key)
        segment[key] = lane
        if lane.deferred is not None:
            self.pinned[key] = lane
        if len(segment) > self.capacity:
            dropped, _ = segment.popitem(last=False)
            self.dropped.add(dropped)

    def __len__(self) -> int:
        return len(self.items) + len(self.streams)

    def clear(self) -> None:
        self.items.clear()
        self.streams.clear()
        self.pinned.clear()


class StreamView:
    """A stream during an append: its version, its registration and lanes on demand.

    Commands check first and change state only when every check passed, so a
    refused event leaves the view as it was.
    """

    __slots__ = ("history", "id", "key", "kind", "lanes", "pre_existing", "registration", "version")

    def __init__(
        self,
        kind: type[StreamKind],
        sid: uuid.UUID,
        version: int,
        history: History,
        lanes: LaneCache,
        *,
        pre_existing: bool = True,
    ) -> None:
        self.kind = kind
        self.id = sid
        self.key = sid.hex  # a str hashes once; a UUID hashes in Python every time
        # Whether the stream has events from before this batch. If not, a lane that is
        # neither cached nor dropped by the cache has no history to read.
        self.pre_existing = pre_existing
        self.version = version  # events stored so far: the next one gets version + 1
        self.history = history
        self.lanes = lanes
        self.registration: Entry | None = None
        if version and kind.registration_type:
            registered = history.lane_entries(sid, "registration")
            self.registration = registered[0] if registered else None

    def live_entry(self, event_id: str) -> Entry | None:
        found = self.history.entry(event_id)
        if found is None or found[0] != self.id or self.history.retraction_of(event_id):
            return None
        return found[1]

    def lane(self, key: str, entry: Entry) -> Lane:
        cache_key = (self.key, key)
        lane = self.lanes.get(cache_key)
        if lane is None:
            new_state = self.kind.lane_state(entry)
            entries = (
                self.history.lane_entries(self.id, key)
                if new_state.retains_entries
                and (self.pre_existing or cache_key in self.lanes.dropped)
                else []
            )
            lane = Lane.folded(new_state, entries)
            self.lanes.put(cache_key, lane)
        return lane

    def _loader(self, key: str) -> Callable[[], list[Entry]]:
        return lambda: self.history.lane_entries(self.id, key)

    def record(self, record: dict[str, Any], *, defer_later: bool = False) -> str:
        """Check and record an event; returns its lane. ``defer_later`` lets a batch
        settle conflicts with later recorded events at its end."""
        candidate = Entry.from_record(record)
        self.check_registration(candidate)
        key = self.kind.lane_key(candidate)
        lane = self.lane(key, candidate)
        commit = lane.admit(candidate, self, self._loader(key), defer_later=defer_later)
        commit()
        if candidate.type == self.kind.registration_type:
            self.registration = candidate
            lane.deferred = None  # the stream's events have a registration again
        self.lanes.put((self.key, key), lane)
        self.version += 1
        return key

    def retract(
        self,
        record: dict[str, Any],
        target: Entry,
        *,
        defer_later: bool = False,
        stored: bool = False,
    ) -> str:
        """Check and record the retraction of ``target``, an event of this stream;
        returns the lane it is stored in (the target's). ``defer_later`` as for
        ``record``; ``stored``: a retraction already in a log (a copy), which the
        rules added since do not refuse."""
        target_id = target.event_id
        if target.type == "event_retracted":
            raise RuleViolation(f"{target_id} is itself a retraction and cannot be retracted")
        retraction = self.history.retraction_of(target_id)
        if retraction is not None:
            raise RuleViolation(f"{target_id} was already retracted by {retraction}")
        retracted_at = datetime.fromisoformat(record["occurred_at"])
        now = datetime.fromisoformat(record["recorded_at"])
        # A target dated ahead of now (appends allow FUTURE_TOLERANCE) may be retracted
        # "now", no earlier than that much before the record time; any other target,
        # no earlier than itself.
        retracted_now = target.occurred_at > now and retracted_at >= now - FUTURE_TOLERANCE
        if not stored and retracted_at < target.occurred_at and not retracted_now:
            # A correction is made once the mistake exists; dated earlier, it sorted
            # first on the account's timeline and fell into windows before the target.
            raise RetractedBeforeTarget(
                f"a retraction cannot occur before its target {target.describe()}"
            )
        unregistered = None
        if target.type == self.kind.registration_type:
            others = [e for e in self.history.stream_entries(self.id) if e.event_id != target_id]
            if others:
                message = (
                    f"retracting {target.describe()} would leave {others[0].describe()} "
                    "without a registration; retract the later events first, or register "
                    "it again in the same batch"
                )
                if not defer_later:
                    raise RuleViolation(message)
                # A registration re-dated: its replacement later in the batch settles it.
                unregistered = LaterEventInvalid(message, others[0])
        for entry in self.history.referring(target_id):
            if entry.type.startswith("appeal_"):
                raise RuleViolation(
                    f"retracting {target.describe()} would leave appeal event "
                    f"{entry.describe()} without its target; retract the appeal first"
                )
        key = self.kind.lane_key(target)
        lane = self.lane(key, target)
        if lane.new_state.retains_entries:
            lane.admit_removal(target, self, self._loader(key), defer_later=defer_later)()
        if target.type == self.kind.registration_type:
            self.registration = None
            lane.deferred = unregistered
        self.lanes.put((self.key, key), lane)
        self.version += 1
        return key

    def check_registration(self, candidate: Entry) -> None:
        if not self.kind.registration_type:
            return
        registration = self.registration
        if candidate.type == self.kind.registration_type:
            if registration is not None:
                raise RuleViolation(f"already registered by {registration.describe()}")
            if self.version:  # history left by a retracted registration
                earliest = min(
                    (e.order for e in self.history.stream_entries(self.id)), default=None
                )
                if earliest is not None and earliest[0] < candidate.occurred_at:
                    raise RuleViolation("registration must not occur after events it precedes")
            return
        if registration is None:
            field = self.kind.id_field
            raise Unregistered(self.kind.unregistered_message(candidate.record[field]), field)
        if candidate.occurred_at < registration.occurred_at:
            raise RuleViolation(f"occurs before its registration, {registration.describe()}")


def check_not_in_future(record: dict[str, Any], recorded_at: datetime) -> None:
    occurred = datetime.fromisoformat(record["occurred_at"])
    if occurred > recorded_at + FUTURE_TOLERANCE:
        raise RuleViolation(
            f"occurred_at {iso(occurred)} is more than 5 minutes in the future "
            f"(recorded at {iso(recorded_at)})"
        )
