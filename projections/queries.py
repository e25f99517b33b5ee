"""Bitemporal queries over the read models.

Two clocks, never mixed:

* ``as_of`` is valid time: only events that *occurred* by then count;
* ``known_at`` is record time: only events *recorded* by then count, and a
  retraction hides its target only from ``known_at`` onwards.

One account's status reads that account's (and its subject's) status facts
through an index: it never replays the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.domain import STATUS_TYPES, Entry, fold_status
from ledger.events import iso
from ledger.persistence import Database
from projections.projector import STATUS_FACT_TYPES, micros

EXEMPTION_TYPES = ("exemption_applied", "exemption_revoked")
# The same list (and order) as the partial index, so the planner can use it.
_STATUS_FACTS = STATUS_FACT_TYPES

# A row is visible at record time K when it was recorded by K and no retraction of
# it was recorded by K.
_VISIBLE = (
    "t.recorded_us <= :known AND NOT EXISTS (SELECT 1 FROM retractions r "
    "WHERE r.target = t.event_id AND r.recorded_us <= :known)"
)


def _events(db: Database) -> str:
    """The stored events joined to timeline rows: the leaf is read, never copied."""
    if db.dialect == "sqlite":
        return "stored_events s ON s.rowid = t.notification_id"
    return "enforcementledger_events s ON s.notification_id = t.notification_id"


def _hint(db: Database, index: str) -> str:
    """SQLite has no statistics until ANALYZE: name the partial index it should use.

    PostgreSQL's planner has statistics and picks it by itself.
    """
    return f" INDEXED BY {index}" if db.dialect == "sqlite" else ""


class NotFound(LookupError):
    """The account has no registration visible at the requested times."""


@dataclass(frozen=True)
class Moment:
    as_of: datetime
    known_at: datetime

    def params(self) -> dict[str, int]:
        return {"as_of": micros(self.as_of), "known": micros(self.known_at)}


def _exemptions(rows: Sequence[dict[str, Any]], holder: str) -> list[dict[str, Any]]:
    """Exemptions in force after folding applied/revoked pairs in valid-time order."""
    active: dict[str, dict[str, Any]] = {}
    for record in rows:
        name = record["exemption"]
        if record["type"] == "exemption_applied":
            active[name] = {
                "exemption": name,
                "policy": record["policy"],
                "holder": holder,
                "since": record["occurred_at"],
                "event": record["event_id"],
            }
        else:
            active.pop(name, None)
    return list(active.values())


def account_status(db: Database, account: str, moment: Moment) -> dict[str, Any]:
    params: dict[str, Any] = {**moment.params(), "account": account}
    placeholders = ",".join(f"'{t}'" for t in _STATUS_FACTS)
    records = [
        json.loads(row[0])
        for row in db.execute(
            f"SELECT s.state FROM timeline t{_hint(db, 'timeline_status_facts')} "
            f"JOIN {_events(db)} WHERE t.account = :account AND t.type IN ({placeholders}) "
            f"AND t.occurred_us <= :as_of AND {_VISIBLE} "
            "ORDER BY t.occurred_us, t.sequence",
            params,
        )
    ]
    registrations = [r for r in records if r["type"] == "account_registered"]
    if not registrations:
        raise NotFound(
            f"account '{account}' has no registration that occurred by {iso(moment.as_of)} "
            f"as known at {iso(moment.known_at)}"
        )
    registration = registrations[-1]
    status = fold_status(Entry.from_record(r) for r in records if r["type"] in STATUS_TYPES).at(
        moment.as_of
    )
    exemptions = _exemptions([r for r in records if r["type"] in EXEMPTION_TYPES], holder="account")
    subject = registration.get("subject")
    if subject:
        subject_rows = [
            json.loads(row[0])
            for row in db.execute(
                f"SELECT s.state FROM timeline t JOIN {_events(db)} WHERE t.subject = :subject "
                "AND t.type IN ('exemption_applied','exemption_revoked') "
                f"AND t.account IS NULL AND t.occurred_us <= :as_of AND {_VISIBLE} "
                "ORDER BY t.occurred_us, t.sequence",
                {**params, "subject": subject},
            )
        ]
        exemptions += _exemptions(subject_rows, holder="subject")
    followers_row = db.execute(
        f"SELECT s.state FROM timeline t{_hint(db, 'timeline_followers')} "
        f"JOIN {_events(db)} WHERE t.account = :account AND t.type = 'followers_observed' "
        f"AND t.occurred_us <= :as_of AND {_VISIBLE} "
        "ORDER BY t.occurred_us DESC, t.sequence DESC LIMIT 1",
        params,
    ).fetchone()
    return {
        "account": account,
        "platform": registration["platform"],
        "handle": registration["handle"],
        "subject": subject,
        "status": status.status,
        "since": iso(status.since) if status.since else registration["occurred_at"],
        "until": iso(status.until) if status.until else None,
        "policy": status.policy,
        "cause_event": status.cause or registration["event_id"],
        "exemptions": exemptions,
        "followers": json.loads(followers_row[0])["count"] if followers_row else None,
        "as_of": iso(moment.as_of),
        "known_at": iso(moment.known_at),
    }


def accounts(
    db: Database,
    moment: Moment,
    *,
    platform: str | None = None,
    subject: str | None = None,
    status: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Every account registered by the moment, with its status; streams."""
    clauses = [
        "t.type = 'account_registered'",
        "t.occurred_us <= :as_of",
        _VISIBLE,
    ]
    params: dict[str, Any] = moment.params()
    if platform:
        clauses.append("t.platform = :platform")
        params["platform"] = platform
    if subject:
        clauses.append("t.subject = :subject")
        params["subject"] = subject
    cursor = db.execute(
        f"SELECT DISTINCT t.account FROM timeline t WHERE {' AND '.join(clauses)} "
        "ORDER BY t.account",
        params,
    )
    for (account,) in cursor:
        row = account_status(db, account, moment)
        if status is None or row["status"] == status:
            yield row


@dataclass(frozen=True)
class TimelineFilter:
    account: str | None = None
    subject: str | None = None
    platform: str | None = None
    types: tuple[str, ...] = ()
    policy: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    offset: int = 0


def timeline(
    db: Database, known_at: datetime, selection: TimelineFilter
) -> Iterator[dict[str, Any]]:
    """Events ordered by occurred_at then sequence, each marked retracted or not."""
    params: dict[str, Any] = {"known": micros(known_at)}
    clauses = ["t.recorded_us <= :known"]
    if selection.account:
        clauses.append("t.account = :account")
        params["account"] = selection.account
    if selection.subject:
        # A subject's timeline includes the events of every account registered to it.
        clauses.append(
            "(t.subject = :subject OR t.account IN (SELECT a.account FROM timeline a "
            "WHERE a.type = 'account_registered' AND a.subject = :subject "
            "AND a.recorded_us <= :known))"
        )
        params["subject"] = selection.subject
    if selection.platform:
        clauses.append("t.platform = :platform")
        params["platform"] = selection.platform
    if selection.types:
        names = []
        for i, kind in enumerate(selection.types):
            params[f"type{i}"] = kind
            names.append(f":type{i}")
        clauses.append(f"t.type IN ({','.join(names)})")
    if selection.policy:
        clauses.append("t.policy = :policy")
        params["policy"] = selection.policy
    if selection.actor:
        clauses.append("t.actor = :actor")
        params["actor"] = selection.actor
    if selection.since:
        clauses.append("t.occurred_us >= :since")
        params["since"] = micros(selection.since)
    if selection.until:
        clauses.append("t.occurred_us <= :until")
        params["until"] = micros(selection.until)
    sql = (
        "SELECT s.state, EXISTS (SELECT 1 FROM retractions r WHERE r.target = t.event_id "
        f"AND r.recorded_us <= :known) FROM timeline t JOIN {_events(db)} "
        f"WHERE {' AND '.join(clauses)} ORDER BY t.occurred_us, t.sequence"
    )
    if selection.limit is not None:
        sql += " LIMIT :limit OFFSET :offset"
        params["limit"] = selection.limit
        params["offset"] = selection.offset
    elif selection.offset:
        sql += " LIMIT 9223372036854775807 OFFSET :offset"
        params["offset"] = selection.offset
    for record_text, retracted in db.stream(sql, params):
        record = json.loads(record_text)
        record["retracted"] = bool(retracted)
        yield record
