"""The aggregates: one eventsourcing stream per account, subject or platform.

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

The aggregates are the stored form: their ``Started`` and ``Recorded`` events hold
the ledger records, and the library's repository reconstitutes a stream's whole
history. The rules, and the ``StreamKind`` each aggregate is, live in
``ledger.rules``.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from ledger.rules import (
    AccountKind,
    Entry,
    PlatformKind,
    StreamKind,
    SubjectKind,
    live_entries,
)


class Stream(Aggregate):
    """One consistency boundary, reconstituted with its whole history.

    Its stored events are ``Started`` and ``Recorded`` (their payload is the ledger
    record). Appends do not reconstitute it: they work on a ``StreamView``
    (ledger.rules), which keeps only what the rules need and reads the rest from
    the log.
    """

    kind = StreamKind  # unannotated: the aggregate metaclass makes fields of annotations

    class Started(Aggregate.Created):
        record: dict[str, Any]

    class Recorded(Aggregate.Event):
        record: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.absorb(self.record)

    def __init__(self, record: dict[str, Any]) -> None:
        self.records: list[dict[str, Any]] = []
        self.absorb(record)

    def absorb(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def lanes(self) -> dict[str, list[Entry]]:
        """Live entries by lane, each lane in occurred_at order."""
        lanes: dict[str, list[Entry]] = {}
        for entry in live_entries(self.records):
            lanes.setdefault(self.kind.lane_key(entry), []).append(entry)
        return lanes


class AccountStream(Stream):
    kind = AccountKind

    class Started(Stream.Started):
        pass

    class Recorded(Stream.Recorded):
        pass


class SubjectStream(Stream):
    kind = SubjectKind

    class Started(Stream.Started):
        pass

    class Recorded(Stream.Recorded):
        pass


class PlatformStream(Stream):
    kind = PlatformKind

    class Started(Stream.Started):
        pass

    class Recorded(Stream.Recorded):
        pass


AGGREGATES: tuple[type[Stream], ...] = (AccountStream, SubjectStream, PlatformStream)
