"""Bitemporal queries over the read models.

Two clocks, never mixed:

* ``as_of`` is valid time: only events that *occurred* by then count;
* ``known_at`` is record time: only events *recorded* by then count, and a
  retraction hides its target only from ``known_at`` onwards.

One account's status reads that account's (and its subject's) status facts
through an index: it never replays the log.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.canonical import canonical_json
from ledger.persistence import Database
from ledger.rules import APPEALABLE_TYPES, POST_TYPES, STATUS_TYPES, Entry, fold_status
from ledger.vocabulary import iso, name_key, platform_of
from projections import leaves
from projections.projector import STATUS_FACT_TYPES, from_micros, micros, status_facts_clause

EXEMPTION_TYPES = ("exemption_applied", "exemption_revoked")
_STATUS_CHANGES = tuple(sorted(STATUS_TYPES))
STATUS_FACTS = frozenset(STATUS_FACT_TYPES)


def _visible(alias: str) -> str:
    """A row is visible at record time K when it was recorded by K and no retraction
    of it was recorded by K."""
    return (
        f"{alias}.recorded_us <= :known AND NOT EXISTS (SELECT 1 FROM retractions r "
        f"WHERE r.target = {alias}.event_id AND r.recorded_us <= :known)"
    )


_VISIBLE = _visible("t")


def _record(leaf: bytes, parse: Callable[[bytes], Any] = leaves.parse_stdlib) -> dict[str, Any]:
    """A leaf as its record (leaves are canonical JSON objects; see projections.leaves)."""
    return parse(leaf)  # type: ignore[no-any-return]


def _in(kinds: Sequence[str]) -> str:
    return ",".join(f"'{kind}'" for kind in kinds)


def events_join(db: Database, alias: str = "t") -> str:
    """The stored events joined to timeline rows: the leaf is read, never copied."""
    if db.dialect == "sqlite":
        return f"stored_events s ON s.rowid = {alias}.notification_id"
    return f"enforcementledger_events s ON s.notification_id = {alias}.notification_id"


def _retraction_of_row(db: Database) -> str:
    """The joined ``r``: a timeline row's retraction as known at K, if any (a target
    has at most one), found by a probe of the retractions key per row.

    PostgreSQL otherwise hashes the whole retractions table for every query (a plain
    join, and a prepared EXISTS alike): a cost that grows with the log, not the
    answer (at 1M events 2.5 against 1.1-1.6 ms for a 101-event timeline). OFFSET 0
    keeps the subquery a per-row lookup, and the rows in index order (no sort).
    """
    if db.dialect == "sqlite":
        return "retractions r ON r.target = t.event_id AND r.recorded_us <= :known"
    return (
        "LATERAL (SELECT r.target FROM retractions r WHERE r.target = t.event_id "
        "AND r.recorded_us <= :known OFFSET 0) r ON true"
    )


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


def ledger_now(db: Database, clock: datetime | None = None) -> datetime:
    """The present a reader asks about by default: this clock, or the newest record time
    when that is ahead of it (this clock set back, or another writer's clock ahead).

    Record time never runs backwards (an append takes just past the last one when its
    clock is behind), so a default "known at" this clock's now would leave out events
    the ledger already holds and has reported appended."""
    now = clock or datetime.now(UTC)
    newest = db.one("SELECT recorded_us FROM timeline ORDER BY sequence DESC LIMIT 1")
    return now if newest is None else max(now, from_micros(int(newest[0])))


def _restrictions_in_force(records: Sequence[dict[str, Any]], as_of: datetime) -> list[str]:
    """What the restrictions in force at ``as_of`` limit (reach, posting, …), each kind
    once, in the order laid: measures stack, so an older restriction still running
    limits the account too, though the newest is the status. ``records``: its status
    facts in valid-time order; a reinstatement lifts every one before it."""
    kinds: dict[str, None] = {}
    for record in records:
        if datetime.fromisoformat(record["occurred_at"]) > as_of:
            break
        if record["type"] == "account_reinstated":
            kinds.clear()
        elif record["type"] == "account_restricted":
            until = record.get("until")
            if until is None or datetime.fromisoformat(until) > as_of:
                kinds.update(dict.fromkeys(record.get("restrictions", ())))
    return list(kinds)


def _exemptions(rows: Sequence[dict[str, Any]], holder: str) -> list[dict[str, Any]]:
    """Exemptions in force after folding applied/revoked pairs in valid-time order
    (a subject's are one per name and platform, as its rules keep them)."""
    active: dict[tuple[str, str | None], dict[str, Any]] = {}
    for record in rows:
        key = (record["exemption"], record.get("platform"))
        if record["type"] == "exemption_applied":
            active[key] = {
                "exemption": record["exemption"],
                "policy": record["policy"],
                "holder": holder,
                "since": record["occurred_at"],
                "event": record["event_id"],
            }
            if key[1] is not None:  # one platform's rule: its revocation names it too
                active[key]["platform"] = key[1]
        else:
            active.pop(key, None)
    return list(active.values())


# Parts of one account's status, each read through an index in one statement (one
# round trip on PostgreSQL): only the newest registration and follower count matter,
# each replacing the one before it; the status changes since the newest
# reinstatement, which lifts every measure before it (measures stack, see
# AccountStatus); exemptions fold applied/revoked pairs, so all of them are read, the
# account's and its subject's.
_REGISTRATION, _STATUS, _EXEMPTION, _SUBJECT_EXEMPTION, _FOLLOWERS = range(5)


def _status_sql(db: Database) -> str:

    def newest(where: Callable[[str], str], kind: str | None, index: str) -> str:
        """The sequence of the newest visible row of ``kind`` matching ``where``.

        The newest instant is found by walking the index backwards (the status-facts
        index is ordered by account, type, occurred_us), then the last sequence at
        that instant. Ordering every matching row at once would read each of them,
        and each read of a row is a page on a cold cache.
        """
        hint = _hint(db, index)

        def of_kind(t: str) -> str:
            return f" AND {t}.type = '{kind}'" if kind else ""

        instant = (
            f"SELECT n.occurred_us FROM timeline n{hint} WHERE {where('n')}{of_kind('n')} "
            f"AND n.occurred_us <= :as_of AND {_visible('n')} "
            "ORDER BY n.occurred_us DESC LIMIT 1"
        )
        return (
            f"SELECT max(m.sequence) FROM timeline m{hint} WHERE {where('m')}{of_kind('m')} "
            f"AND m.occurred_us = ({instant}) AND {_visible('m')}"
        )

    def every(tag: int, where: str, index: str) -> str:
        """Every visible row matching ``where``, with its leaf (sorted by the caller)."""
        return (
            f"SELECT {tag} AS part, t.occurred_us, t.sequence, s.state "
            f"FROM timeline t{_hint(db, index)} JOIN {events_join(db)} WHERE {where} "
            f"AND t.occurred_us <= :as_of AND {_VISIBLE}"
        )

    def one(tag: int, sequence: str) -> str:
        return (
            f"SELECT {tag} AS part, t.occurred_us, t.sequence, s.state "
            f"FROM timeline t JOIN {events_join(db)} WHERE t.sequence = ({sequence})"
        )

    def account_facts(t: str) -> str:
        return f"{t}.account = :account AND {status_facts_clause(t)}"

    registration = newest(account_facts, "account_registered", "timeline_status_facts")
    followers = newest(
        lambda t: f"{t}.account = :account AND {t}.type = 'followers_observed'",
        None,
        "timeline_followers",
    )
    # The status changes from the newest reinstatement on (all of them if none): a
    # reinstatement lifts every measure, while measures laid on one another stack (see
    # AccountStatus), so those since then are what the status folds.
    # One part a type: the status-facts index is partial, and SQLite uses it for
    # `type = x`, not for `type IN (…)`.
    reinstatement = newest(account_facts, "account_reinstated", "timeline_status_facts")
    reinstated_at = (
        f"COALESCE((SELECT r.occurred_us FROM timeline r WHERE r.sequence = "
        f"({reinstatement})), {-(2**63)})"
    )
    status_changes = [
        every(
            _STATUS,
            f"t.account = :account AND t.type = '{kind}' AND t.occurred_us >= {reinstated_at}",
            "timeline_status_facts",
        )
        for kind in _STATUS_CHANGES
    ]
    # Scalar subqueries, no CTEs or subqueries in FROM and no ORDER BY over the whole:
    # SQLite materialises those in temporary b-trees, which spill to a temporary file
    # once the page cache is full (0.4 ms a query at 1M events). The caller sorts.
    return " UNION ALL ".join(
        [
            one(_REGISTRATION, registration),
            *status_changes,
            every(
                _EXEMPTION,
                f"t.account = :account AND {status_facts_clause('t')} "
                f"AND t.type IN ({_in(EXEMPTION_TYPES)})",
                "timeline_status_facts",
            ),
            every(
                _SUBJECT_EXEMPTION,
                "t.subject = (SELECT g.subject FROM timeline g "
                f"WHERE g.sequence = ({registration})) "
                f"AND t.type IN ({_in(EXEMPTION_TYPES)}) AND t.account IS NULL",
                "timeline_subject",
            ),
            one(_FOLLOWERS, followers),
        ]
    )


_STATUS_SQL: dict[str, str] = {}


def _unregistered(
    db: Database, account: str, known_at: datetime, as_of: datetime | None = None
) -> NotFound:
    """No registration as known at ``known_at`` (that occurred by ``as_of``, if given),
    saying what the ledger does hold: a registration on the other clock, or ids the
    person may have meant."""
    shape = "" if ":" in account else " (an account id is '<platform>:<handle or id>')"
    by = f" that occurred by {iso(as_of)}" if as_of else ""
    return NotFound(
        f"account '{account}' has no registration{by} as known at {iso(known_at)}{shape}"
        + _registration_elsewhere(db, account, known_at, as_of)
    )


def _registration_elsewhere(
    db: Database, account: str, known_at: datetime, as_of: datetime | None
) -> str:
    """Why an account has no registration at these times, when it has one at others."""
    rows = db.execute(
        "SELECT t.event_id, t.occurred_us, t.recorded_us, r.recorded_us FROM timeline t "
        "LEFT JOIN retractions r ON r.target = t.event_id "
        "WHERE t.account = :account AND t.type = 'account_registered' ORDER BY t.sequence",
        {"account": account},
    ).fetchall()
    if not rows:
        return meant_hint(db, "account", account)
    known, valid = micros(known_at), micros(as_of) if as_of else None
    notes = []
    for event_id, occurred_us, recorded_us, retracted_us in rows:
        if recorded_us > known:
            notes.append(f"{event_id} was recorded at {iso(from_micros(recorded_us))}")
        elif retracted_us is not None and retracted_us <= known:
            notes.append(f"{event_id} was retracted at {iso(from_micros(retracted_us))}")
        elif valid is not None and occurred_us > valid:
            notes.append(f"{event_id} occurred at {iso(from_micros(occurred_us))}")
    return f" (its registration {'; '.join(notes)})" if notes else ""


def unregistered_hint(db: Database, field: str, given: str) -> str:
    """For an event refused because its account or subject has no registration: a
    registration the ledger holds but that is retracted, else the ids that may have
    been meant."""
    if field == "account":  # with no registration at all, meant_hint names its spelling
        return _registration_elsewhere(db, given, ledger_now(db), None)
    return meant_hint(db, field, given)


def _spelling_hint(account: str) -> str:
    """Why an id no account can be registered under is none of the ledger's: "did you
    mean" would name one that prints the same (a zero-width space, é spelt as e and
    an accent), so the spelling is named, escaped."""
    from ledger.vocabulary import account_id_problem

    problem = account_id_problem(account)
    return f"; this id {problem} (given {account!a})" if problem else ""


# Ledger ids are exact, while platforms mostly take handles in any letter case
# (twitter:Khamenei_ir is twitter:khamenei_ir there): an unknown id is most often a
# registered one in other case, or a typo. Past this many candidates only the case
# is compared (difflib takes ~10 µs a candidate).
SIMILAR_SPELLINGS_LIMIT = 20_000


def ever_registered(db: Database, field: str, given: str) -> bool:
    """Whether the ledger holds a registration of this account or subject, at any time."""
    registration = "account_registered" if field == "account" else "subject_registered"
    found = db.one(
        f"SELECT 1 FROM timeline t WHERE t.{field} = :given AND t.type = :type LIMIT 1",
        {"given": given, "type": registration},
    )
    return found is not None


def meant_hint(db: Database, field: str, given: str) -> str:
    """The "; did you mean 'x'?" naming ``similar_ids``, or nothing when there are none."""
    if field == "account" and (spelling := _spelling_hint(given)):
        return spelling
    return _did_you_mean(similar_ids(db, field, given))


def _did_you_mean(meant: Sequence[str]) -> str:
    return f"; did you mean {' or '.join(repr(m) for m in meant)}?" if meant else ""


def _closest(given: str, candidates: list[str], limit: int) -> list[str]:
    """What ``given`` may have meant among ``candidates``: itself in other letter
    case, else close spellings (compared only among a few candidates)."""
    folded = given.casefold()
    same = sorted(c for c in candidates if c.casefold() == folded)
    if same or len(candidates) > SIMILAR_SPELLINGS_LIMIT:
        return same[:limit]
    return difflib.get_close_matches(given, candidates, n=limit, cutoff=0.85)


def similar_ids(db: Database, field: str, given: str, limit: int = 3) -> list[str]:
    """Registered accounts (of the same platform) or subjects that ``given`` may have
    meant: the same id in other letter case, else close spellings. For messages only:
    it reads every registration of the platform, or every subject row."""
    if field == "account":
        platform, colon, handle = given.partition(":")
        if not colon:
            return []
        # The platform slug is lower case by the schema: its accounts are one range.
        sql = (
            f"SELECT DISTINCT t.account FROM timeline t{_hint(db, 'timeline_status_facts')} "
            "WHERE t.account >= :low AND t.account < :high "
            "AND t.type = 'account_registered' AND t.account <> :given"
        )
        # Slugs are lower case: "Twitter:x" is looked up among twitter's accounts.
        slug = platform.lower()
        params = {"low": slug + ":", "high": slug + ";", "given": given}
        renamed = renamed_platform(db, slug)
        if renamed is not None:  # x:jack for twitter:jack, Twitter having become X
            slug = renamed[0]
            params.update(low=slug + ":", high=slug + ";")
            given = f"{slug}:{handle}"  # compared as if given under the slug
        candidates = [row[0] for row in db.execute(sql, params)]
        if candidates:
            return _closest(given, candidates, limit)
        # No account on that platform: its slug is likely mistyped too (twiter:jack),
        # so every account is compared, whole.
        sql = (
            f"SELECT DISTINCT t.account FROM timeline t{_hint(db, 'timeline_status_facts')} "
            "WHERE t.account IS NOT NULL AND t.type = 'account_registered' "
            "AND t.account <> :given"
        )
        params = {"given": given}
    else:
        sql = (
            f"SELECT DISTINCT t.subject FROM timeline t{_hint(db, 'timeline_subject')} "
            "WHERE t.subject IS NOT NULL AND t.type = 'subject_registered' "
            "AND t.subject <> :given"
        )
        params = {"given": given}
    return _closest(given, [row[0] for row in db.execute(sql, params)], limit)


def near_duplicates(
    db: Database,
    registered: Sequence[tuple[str, str, str | None, str]],
    before: int,
    *,
    dry_run: bool = False,
) -> list[str]:
    """Warnings for registrations (type, id, platform, event_id) appended from sequence
    ``before`` on that likely misspell what the ledger held: a subject or account id
    registered in other letter case, a new platform slug close to one in use. Each is
    a new id as far as the rules go; split data is what it costs a researcher. A dry
    run's event ids are not named (one made for it is made again by the append)."""
    warnings: list[str] = []
    fix = (
        "; if it is that one, give it instead"
        if dry_run
        else "; if it is that one, retract this registration and use it"
    )
    retracted = _retracted(db, [r[3] for r in registered])
    registered = [r for r in registered if r[3] not in retracted]  # undone in the batch

    def named(event_id: str) -> str:
        return "" if dry_run else f" ({event_id})"

    # The batch's own new ids so far, by case-folded spelling: two spellings of one new
    # id in one batch split the data as one beside a held id does.
    batch: dict[tuple[str, str], set[str]] = {}

    def same_in_other_case(kind: str, given: str, held: dict[str, set[str]], event_id: str) -> bool:
        folded = given.casefold()
        same = sorted(h for h in held.get(folded, ()) if h != given)
        earlier = sorted(b for b in batch.get((kind, folded), ()) if b != given)
        batch.setdefault((kind, folded), set()).add(given)
        if same:
            warnings.append(
                f"{kind} {given!r}{named(event_id)} is new, and the ledger holds "
                f"{' and '.join(map(repr, same))}, the same in other letter case{fix}"
            )
        elif earlier:
            warnings.append(
                f"{kind} {given!r}{named(event_id)} is new, and this batch also registers "
                f"{' and '.join(map(repr, earlier))}, the same in other letter case{fix}"
            )
        return bool(same or earlier)

    subjects = [r for r in registered if r[0] == "subject_registered"]
    if subjects:
        held = _ids_before(db, "subject", "subject_registered", before)
        for _, subject, _, event_id in subjects:
            same_in_other_case("subject", subject, held, event_id)
    slugs: list[str] | None = None  # every platform's, read once if a new one is seen
    for kind, account, platform, event_id in registered:
        if kind != "account_registered" or not platform:
            continue
        # The platform's own accounts (a slug is lower case: one index range), and it
        # is new when none came before the batch.
        held = _ids_before(db, "account", "account_registered", before, platform=platform)
        if same_in_other_case("account", account, held, event_id) or held:
            continue
        if slugs is None:  # those in use before the batch (a seek each: they are few)
            slugs = [slug for slug in platforms(db) if _on_platform_before(db, slug, before)]
        close = difflib.get_close_matches(platform, [s for s in slugs if s != platform], 3, 0.8)
        if close:
            there = (
                "give it there" if dry_run else "retract this registration and register it there"
            )
            warnings.append(
                f"platform {platform!r} (account {account!r}"
                f"{'' if dry_run else ', ' + event_id}) is new, and the ledger holds "
                f"{' or '.join(map(repr, close))}; a typo? If so, {there}"
            )
    return warnings


def _ids_before(
    db: Database, column: str, kind: str, before: int, *, platform: str | None = None
) -> dict[str, set[str]]:
    """The ids registered before sequence ``before`` and not retracted (only the
    ``platform``'s accounts, if given), by their case-folded spelling; read through the
    partial index each is in, not the whole timeline."""
    found: dict[str, set[str]] = {}
    params: dict[str, Any] = {"kind": kind, "before": before}
    if column == "subject":
        index, facts = "timeline_subject", "t.subject IS NOT NULL"
    else:
        index, facts = "timeline_status_facts", status_facts_clause("t")
    if platform is not None:
        facts += " AND t.account >= :low AND t.account < :high"
        params.update(low=platform + ":", high=platform + ";")
    # Retracted ones left out: a wrong spelling retracted and the right one registered
    # was told to use the retracted one.
    rows = db.execute(
        f"SELECT DISTINCT t.{column} FROM timeline t{_hint(db, index)} "
        "LEFT JOIN retractions r ON r.target = t.event_id "
        f"WHERE {facts} AND t.type = :kind AND t.sequence < :before AND r.target IS NULL",
        params,
    )
    for (value,) in rows:
        found.setdefault(value.casefold(), set()).add(value)
    return found


def _on_platform_before(db: Database, platform: str, before: int) -> bool:
    """Whether an account was registered on ``platform`` before sequence ``before``."""
    row = db.one(
        f"SELECT 1 FROM timeline t{_hint(db, 'timeline_status_facts')} "
        f"WHERE {status_facts_clause('t')} AND t.account >= :low AND t.account < :high "
        "AND t.type = 'account_registered' AND t.sequence < :before LIMIT 1",
        {"low": platform + ":", "high": platform + ";", "before": before},
    )
    return row is not None


def _retracted(db: Database, event_ids: Sequence[str]) -> set[str]:
    """Which of these events the read models hold retracted."""
    if not event_ids:
        return set()
    marks = ", ".join(f":e{i}" for i in range(len(event_ids)))
    rows = db.execute(
        f"SELECT target FROM retractions WHERE target IN ({marks})",
        {f"e{i}": event_id for i, event_id in enumerate(event_ids)},
    )
    return {row[0] for row in rows}


# Filters on free text a platform or the ledger wrote, which no index serves.
TEXT_FILTERS = ("policy", "actor")


def unmatched_text_hint(db: Database, column: str, given: str) -> str | None:
    """None when some event has ``column`` = ``given``; else the note's tail: the
    values it may have meant (other letter case, close spellings: "Organizations"
    for "Organisations"). Reads the column whole only for a value no event has."""
    if column not in TEXT_FILTERS:
        raise ValueError(f"not a text filter: {column}")
    if db.one(f"SELECT 1 FROM timeline WHERE {column} = :given LIMIT 1", {"given": given}):
        return None
    candidates = [
        value
        for (value,) in db.execute(f"SELECT DISTINCT {column} FROM timeline WHERE {column} <> ''")
        if value is not None
    ]
    return _did_you_mean(_closest(given, candidates, 3))


def unpublished_post_hint(
    db: Database, post: str, account: str | None = None, holders: set[str] | None = None
) -> str | None:
    """None when ``post`` was ever published (on ``account``, if given; retracted or
    not, at any time); else the note's tail: the accounts it is on, or the post ids it
    may have meant. Reads every publication when none names it: only for an answer
    that came out empty. ``holders``: post_holders, if the caller read them already."""
    if holders is None:
        holders = post_holders(db, post)
    if holders and (account is None or account in holders):
        return None
    if holders:
        return f"; it is on {' or '.join(repr(on) for on in sorted(holders)[:3])}"
    sql = (
        f"SELECT s.state FROM timeline t JOIN {events_join(db)} "
        "WHERE t.type = 'post_published'" + (" AND t.account = :account" if account else "")
    )
    folded = post.casefold()
    same: set[str] = set()
    candidates: list[str] = []  # kept to the few that are compared by spelling
    for (leaf,) in db.execute(sql, {"account": account} if account else {}):
        name = _record(leaf)["post"]
        if name.casefold() == folded:
            same.add(name)
        if len(candidates) <= SIMILAR_SPELLINGS_LIMIT:
            candidates.append(name)
    if same or len(candidates) > SIMILAR_SPELLINGS_LIMIT:
        return _did_you_mean(sorted(same)[:3])
    return _did_you_mean(difflib.get_close_matches(post, sorted(set(candidates)), 3, 0.85))


def _require_registered(db: Database, account: str, moment: Moment) -> None:
    """NotFound unless the account's registration occurred by the moment, as known."""
    registered = db.one(
        "SELECT 1 FROM timeline t WHERE t.account = :account "
        f"AND t.type = 'account_registered' AND t.occurred_us <= :as_of AND {_VISIBLE}",
        {**moment.params(), "account": account},
    )
    if registered is None:
        raise _unregistered(db, account, moment.known_at, moment.as_of)


def account_status(db: Database, account: str, moment: Moment) -> dict[str, Any]:
    sql = _STATUS_SQL.get(db.dialect)
    if sql is None:
        sql = _STATUS_SQL[db.dialect] = _status_sql(db)
    if db.dialect == "sqlite":
        # The query's IN lists (exemption types) are small temporary tables; on a
        # file temp store they spill to a new file once the page cache is full (a
        # long-lived reader's always is): 0.4 ms a query at 1M events. Idempotent.
        db.execute("PRAGMA temp_store=MEMORY")
    # Prepared at once on PostgreSQL: planning this five-part query takes ~3 ms,
    # executing it ~0.5 ms.
    rows = db.execute(sql, {**moment.params(), "account": account}, prepare=True).fetchall()
    rows.sort(key=lambda row: (row[0], row[1], row[2]))  # part, then valid-time order
    parts: list[list[dict[str, Any]]] = [[] for _ in range(5)]
    for part, _, _, leaf in rows:
        parts[part].append(_record(leaf))
    if not parts[_REGISTRATION]:
        raise _unregistered(db, account, moment.known_at, moment.as_of)
    (registration,) = parts[_REGISTRATION]
    status = fold_status(Entry.from_record(r) for r in parts[_STATUS]).at(moment.as_of)
    exemptions = _exemptions(parts[_EXEMPTION], holder="account")
    # A subject's exemption under one platform's rule is held by its accounts there.
    platform = registration["platform"]
    held = [r for r in parts[_SUBJECT_EXEMPTION] if r.get("platform") in (None, platform)]
    registered = registration["occurred_at"]
    for exemption in _exemptions(held, holder="subject"):
        # Since when this account holds it: not before the account is registered.
        if datetime.fromisoformat(exemption["since"]) < datetime.fromisoformat(registered):
            exemption["since"] = registered
        exemptions.append(exemption)
    followers = parts[_FOLLOWERS]
    return {
        "account": account,
        "platform": registration["platform"],
        "handle": registration["handle"],
        "subject": registration.get("subject"),
        "status": status.status,
        "since": iso(status.since) if status.since else registration["occurred_at"],
        "until": iso(status.until) if status.until else None,
        "policy": status.policy,
        "restrictions": (
            _restrictions_in_force(parts[_STATUS], moment.as_of)
            if status.status == "restricted"
            else None
        ),
        "cause_event": status.cause or registration["event_id"],
        "exemptions": exemptions,
        "followers": followers[0]["count"] if followers else None,
        "as_of": iso(moment.as_of),
        "known_at": iso(moment.known_at),
    }


def status_history(db: Database, account: str, known_at: datetime) -> list[dict[str, Any]]:
    """The account's status over all valid time, as known at ``known_at``: one row a
    period (``from`` inclusive, ``to`` exclusive, None while it lasts), from its
    registration on. Each period is what ``account_status`` answers for any moment
    in it: both fold the same facts with the same rules, evaluated here at every
    instant the answer can change (each fact, and each measure's ``until``).

    Reads the account's registration and status facts through its timeline index
    (``account_status`` reads only those since the newest reinstatement, which is all
    one moment needs).
    """
    wanted = TimelineFilter(account=account, types=("account_registered", *STATUS_TYPES))
    records = [r for r in timeline(db, known_at, wanted) if not r["retracted"]]
    registrations = [r for r in records if r["type"] == "account_registered"]
    if not registrations:
        raise _unregistered(db, account, known_at)
    registration = registrations[-1]  # the rules allow one at a time: the one not retracted
    entries = [Entry.from_record(r) for r in records if r["type"] != "account_registered"]
    start = datetime.fromisoformat(registration["occurred_at"])
    changes = {start, *(e.occurred_at for e in entries)}
    changes.update(until for e in entries if (until := e.until()) is not None)
    periods: list[dict[str, Any]] = []
    state = fold_status(())
    applied = 0
    for moment in sorted(c for c in changes if c >= start):
        while applied < len(entries) and entries[applied].occurred_at <= moment:
            state = state.apply(entries[applied])
            applied += 1
        now = state.at(moment)
        row = {
            "account": account,
            "status": now.status,
            "from": iso(moment),
            "to": None,
            "until": iso(now.until) if now.until else None,
            "policy": now.policy,
            "cause_event": now.cause or registration["event_id"],
        }
        if periods and all(periods[-1][k] == row[k] for k in _SAME_PERIOD):
            continue
        if periods:
            periods[-1]["to"] = row["from"]
        periods.append(row)
    return periods


def every_accounts_history(
    db: Database,
    known_at: datetime,
    *,
    platform: str | None = None,
    subject: str | None = None,
    status: str | None = None,
) -> Iterator[dict[str, Any]]:
    """``status_history`` of every account registered as known at ``known_at`` (as
    ``accounts`` selects them), account by account, only the periods in ``status``
    if given: e.g. every suspension on a platform, with how long it lasted; streams."""
    every = Moment(as_of=datetime.max.replace(tzinfo=known_at.tzinfo), known_at=known_at)
    for account in registered_accounts(db, every, platform=platform, subject=subject):
        for period in status_history(db, account, known_at):
            if status is None or period["status"] == status:
                yield period


# What makes two consecutive answers one period: the same measure in force.
_SAME_PERIOD = ("status", "until", "policy", "cause_event")


def accounts(
    db: Database,
    moment: Moment,
    *,
    platform: str | None = None,
    subject: str | None = None,
    status: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Every account registered by the moment, with its status; streams."""
    for account in registered_accounts(db, moment, platform=platform, subject=subject):
        row = account_status(db, account, moment)
        if status is None or row["status"] == status:
            yield row


# What `subjects` shows of each account: its exemptions too, which is what explains an
# account kept where the subject's others were removed.
_SUBJECT_ACCOUNT_KEYS = (
    "account",
    "platform",
    "status",
    "since",
    "policy",
    "restrictions",
    "exemptions",
)


def subjects(
    db: Database, moment: Moment, *, subject: str | None = None, divergent: bool = False
) -> Iterator[dict[str, Any]]:
    """Every subject the ledger knows of at the moment's record time, with the
    statuses of its accounts registered by the moment's valid time, side by side: how
    platforms treat one person or body (removed by Meta, active on X). ``divergent``
    marks (and, asked for, keeps only) subjects whose accounts are not all in one
    status. Streams, subject by subject.

    A subject is listed once it is registered by the valid time, or an account of
    it is: its registration's ``occurred_at`` is when it was first observed (accounts
    may name it from before), not when it began."""
    clauses = ["t.type = 'subject_registered'", _VISIBLE]
    params: dict[str, Any] = moment.params()
    if subject:
        clauses.append("t.subject = :subject")
        params["subject"] = subject
    cursor = db.execute(
        f"SELECT s.state, t.occurred_us FROM timeline t JOIN {events_join(db)} "
        f"WHERE {' AND '.join(clauses)} ORDER BY t.subject, t.occurred_us, t.sequence",
        params,
    )
    for leaf, occurred_us in cursor:
        registration = _record(leaf)
        held = [
            {key: row[key] for key in _SUBJECT_ACCOUNT_KEYS}
            for row in accounts(db, moment, subject=registration["subject"])
        ]
        if not held and occurred_us > params["as_of"]:
            continue  # nothing of it existed yet
        statuses = {row["status"] for row in held}
        if divergent and len(statuses) < 2:
            continue
        yield {
            "subject": registration["subject"],
            "name": registration["name"],
            "kind": registration["kind"],
            "roles": registration.get("roles", []),
            "country": registration.get("country"),
            "accounts": held,
            "divergent": len(statuses) > 1,
            "as_of": iso(moment.as_of),
            "known_at": iso(moment.known_at),
        }


def platforms(db: Database) -> list[str]:
    """Every platform slug the timeline names, in order: one index seek a platform
    (a skip scan; platforms are few, rows many)."""
    rows = db.execute(
        "WITH RECURSIVE p(slug) AS (SELECT min(platform) FROM timeline UNION ALL "
        "SELECT (SELECT min(platform) FROM timeline WHERE platform > p.slug) FROM p "
        "WHERE p.slug IS NOT NULL) SELECT slug FROM p WHERE slug IS NOT NULL"
    )
    return [slug for (slug,) in rows]


def renamed_platform(db: Database, name: str) -> tuple[str, str, str] | None:
    """When ``name`` is no platform slug of this ledger but a name a platform took
    (``x`` for twitter, renamed X): that platform's slug, the name as recorded and
    when it was taken.

    Filters name platforms by slug, which never changes; a user may well type the
    name they know. Only asked when the slug is unknown: renames are few, so they are
    read from the whole timeline rather than indexed.
    """
    if db.one("SELECT 1 FROM timeline WHERE platform = :name LIMIT 1", {"name": name}):
        return None
    renames = db.execute(
        f"SELECT s.state FROM timeline t JOIN {events_join(db)} "
        "WHERE t.type = 'platform_renamed' AND NOT EXISTS "
        "(SELECT 1 FROM retractions r WHERE r.target = t.event_id)"  # a rename taken back
    )
    for (leaf,) in renames:
        record = _record(leaf)
        if name_key(record.get("name", "")) == name_key(name):
            return str(record["platform"]), str(record["name"]), str(record["occurred_at"])
    return None


def registered_accounts(
    db: Database, moment: Moment, *, platform: str | None = None, subject: str | None = None
) -> Iterator[str]:
    """The ids of the accounts registered by the moment, in order; streams."""
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
        yield account


_POST_CHANGES = tuple(sorted(POST_TYPES))
# What _post_row gives; `posts --state` spells them out too (a test pins both).
POST_STATES = ("visible", "warning_screen", "removed")


def posts(
    db: Database,
    account: str,
    moment: Moment,
    *,
    post: str | None = None,
    state: str | None = None,
) -> list[dict[str, Any]]:
    """The posts of one account published by the moment, each with its state then:
    removed, behind a warning screen, or visible, with the event that made it so."""
    _require_registered(db, account, moment)
    return _posts_of(db, account, moment, post, state)


APPEAL_STATES = ("pending", "decided")
_APPEAL_FACTS = ("appeal_filed", "appeal_decided", *sorted(APPEALABLE_TYPES))


def appeals(
    db: Database, account: str, moment: Moment, *, state: str | None = None
) -> list[dict[str, Any]]:
    """The appeals of one account filed by the moment, in the order filed: the action
    appealed against (its type and policy), when filed and decided, the outcome, and
    whether it is still ``pending`` or ``decided`` at the moment."""
    _require_registered(db, account, moment)
    return _appeals_of(db, account, moment, state)


def every_accounts_appeals(
    db: Database,
    moment: Moment,
    *,
    platform: str | None = None,
    subject: str | None = None,
    state: str | None = None,
) -> Iterator[dict[str, Any]]:
    """``appeals`` of every account registered by the moment, account by account."""
    for account in registered_accounts(db, moment, platform=platform, subject=subject):
        yield from _appeals_of(db, account, moment, state)


def _appeals_of(
    db: Database, account: str, moment: Moment, state: str | None
) -> list[dict[str, Any]]:
    """Pairs each filed appeal with its decision, if any, and the action it names
    (all on the account's own timeline, read through its index in valid-time order;
    the rules let an appeal name only an unretracted action of its account)."""
    wanted = TimelineFilter(account=account, types=_APPEAL_FACTS, until=moment.as_of)
    records = [r for r in timeline(db, moment.known_at, wanted) if not r["retracted"]]
    actions = {r["event_id"]: r for r in records if r["type"] in APPEALABLE_TYPES}
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["type"] == "appeal_filed":
            action = actions.get(record["target"], {})
            found[record["appeal"]] = {
                "account": account,
                "appeal": record["appeal"],
                "state": "pending",
                "outcome": None,
                "target": record["target"],
                "target_type": action.get("type"),
                "post": action.get("post"),  # the post, for an appeal of a post's removal
                "policy": action.get("policy"),
                "filed_at": record["occurred_at"],
                "decided_at": None,
                "filed_event": record["event_id"],
                "decided_event": None,
                "as_of": iso(moment.as_of),
                "known_at": iso(moment.known_at),
            }
        elif record["type"] == "appeal_decided" and record["appeal"] in found:
            found[record["appeal"]].update(
                state="decided",
                outcome=record["outcome"],
                decided_at=record["occurred_at"],
                decided_event=record["event_id"],
            )
    return [row for row in found.values() if state is None or row["state"] == state]


def every_accounts_posts(
    db: Database,
    moment: Moment,
    *,
    platform: str | None = None,
    subject: str | None = None,
    post: str | None = None,
    state: str | None = None,
    holders: set[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """``posts`` of every account registered by the moment (as ``accounts`` selects
    them), account by account; streams. With ``post``, only the accounts it was
    published on are read (``holders``: post_holders, if the caller read them)."""
    if holders is None and post is not None:
        holders = post_holders(db, post)
    for account in registered_accounts(db, moment, platform=platform, subject=subject):
        if holders is None or account in holders:
            yield from _posts_of(db, account, moment, post, state)


def post_holders(db: Database, post: str) -> set[str]:
    """The accounts a publication of ``post`` names (at any time, retracted or not).

    Found by its field's bytes in the canonical leaf, in the statement, then read to
    be sure: one pass over the publications instead of every account's post events
    (`posts --post` across 1M events: ~1.5 against 7.6 s).
    """
    try:
        needle = b'"post":' + canonical_json(post)
    except UnicodeEncodeError:  # bytes of the command line that are not UTF-8: no id
        return set()
    found = "instr(s.state, :needle)" if db.dialect == "sqlite" else "position(:needle in s.state)"
    sql = (
        f"SELECT t.account, s.state FROM timeline t JOIN {events_join(db)} "
        f"WHERE t.type = 'post_published' AND {found} > 0"
    )
    return {on for on, leaf in db.execute(sql, {"needle": needle}) if _record(leaf)["post"] == post}


def _posts_of(
    db: Database, account: str, moment: Moment, post: str | None, state: str | None
) -> list[dict[str, Any]]:
    """Folds a registered account's post events (read through its timeline index) in
    valid-time order, as the append's rules do: a screen and a removal are
    independent, and a removed post that was behind a screen shows as removed."""
    sql = (
        f"SELECT s.state FROM timeline t JOIN {events_join(db)} "
        f"WHERE t.account = :account AND t.type IN ({_in(_POST_CHANGES)}) "
        f"AND t.occurred_us <= :as_of AND {_VISIBLE} ORDER BY t.occurred_us, t.sequence"
    )
    folded: dict[str, dict[str, Any]] = {}  # one entry a post: the events are streamed
    for (leaf,) in db.execute(sql, {**moment.params(), "account": account}):
        record = _record(leaf)
        name = record["post"]
        if post is not None and name != post:
            continue
        kind = record["type"]
        if kind == "post_published":
            folded[name] = {"published": record, "screen": None, "removal": None}
        elif name in folded:
            key = "screen" if "warning_screen" in kind else "removal"
            applied = kind in ("post_warning_screen_applied", "post_removed")
            folded[name][key] = record if applied else None
        if name in folded:
            folded[name]["changed"] = record  # the newest: what put the post in its state
    rows = [_post_row(account, name, parts, moment) for name, parts in sorted(folded.items())]
    rows = [row for row in rows if state is None or row["state"] == state]
    if rows:
        # A post's state is the post's own; a removed or suspended account's posts are
        # still "visible" by it, so each row says what its account was at the moment.
        account_now = account_status(db, account, moment)["status"]
        for row in rows:
            row["account_status"] = account_now
    return rows


def _post_row(account: str, name: str, parts: dict[str, Any], moment: Moment) -> dict[str, Any]:
    published, screen, removal = parts["published"], parts["screen"], parts["removal"]
    # The event that put the post in its state: the removal, or else the newest event
    # (a screen applied, a restoration that shows the screen again, a screen removed,
    # the publication); the measure behind the state gives its policy.
    cause = removal or parts["changed"]
    measure = removal or screen or {}
    return {
        "account": account,
        "post": name,
        "state": "removed" if removal else "warning_screen" if screen else "visible",
        "account_status": None,  # filled in by _posts_of, once an account
        "since": cause["occurred_at"],
        "policy": measure.get("policy"),
        "reason": measure.get("reason"),
        "exception": measure.get("exception"),
        "cause_event": cause["event_id"],
        "warning_screen_since": screen["occurred_at"] if screen else None,
        "published_at": published["occurred_at"],
        "url": published.get("url"),
        "as_of": iso(moment.as_of),
        "known_at": iso(moment.known_at),
    }


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
    # Record time from which events are listed; up to the query's known-at.
    recorded_since: datetime | None = None
    limit: int | None = None
    offset: int = 0


def _filter_clauses(
    selection: TimelineFilter, known_at: datetime, params: dict[str, Any], db: Database
) -> list[str]:
    """WHERE clauses over timeline ``t`` for a selection (fills ``params``)."""
    params["known"] = micros(known_at)
    clauses = ["t.recorded_us <= :known"]
    if selection.account:
        clauses.append("t.account = :account")
        params["account"] = selection.account
    if selection.subject:
        # A subject's timeline includes the events of every account registered to it,
        # as known at K: a retracted registration no longer ties its account to it
        # (the account may have been registered again, to another subject). An event
        # can be about two subjects (the retraction of a registration that named the
        # first, on an account now the second's): it is listed under both, while
        # `counts --by subject` puts each event under one.
        accounts = (
            "SELECT a.account FROM timeline a WHERE a.type = 'account_registered' "
            f"AND a.subject = :subject AND {_visible('a')}"
        )
        # PostgreSQL estimates an OR with IN (subquery) as half the log and scans it
        # all (1.5 s for a 5,000-event subject at 1M events); against an array it
        # reads both indexes and combines them (0.1 s).
        held = f"IN ({accounts})" if db.dialect == "sqlite" else f"= ANY(ARRAY({accounts}))"
        clauses.append(f"(t.subject = :subject OR t.account {held})")
        params["subject"] = selection.subject
    if selection.platform:
        clauses.append("t.platform = :platform")
        params["platform"] = selection.platform
    if selection.types:
        names = []
        for i, kind in enumerate(selection.types):
            params[f"type{i}"] = kind
            names.append(f":type{i}")
        # One type as an equality: SQLite uses a partial index (the status facts')
        # only for a term it can match to the index's own, which an IN list is not.
        clauses.append(
            f"t.type = {names[0]}" if len(names) == 1 else f"t.type IN ({','.join(names)})"
        )
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
    if selection.recorded_since:
        clauses.append("t.recorded_us >= :recorded_since")
        params["recorded_since"] = micros(selection.recorded_since)
        # Record time never runs backwards along the log: what was recorded since T is
        # a tail of it, read by sequence (the key) rather than by a scan of every row.
        clauses.append("t.sequence >= :from_sequence")
        params["from_sequence"] = _first_recorded_since(db, params["recorded_since"])
    return clauses


def _first_recorded_since(db: Database, recorded_us: int) -> int:
    """The first sequence recorded at or after ``recorded_us`` (bisecting the log)."""
    (end,) = db.one("SELECT coalesce(max(sequence) + 1, 0) FROM timeline")

    def recorded(sequence: int) -> int:
        row = db.one("SELECT recorded_us FROM timeline WHERE sequence = :s", {"s": sequence})
        return recorded_us if row is None else int(row[0])  # a hole: search before it

    return bisect.bisect_left(range(int(end)), recorded_us, key=recorded)


def timeline(
    db: Database, known_at: datetime, selection: TimelineFilter
) -> Iterator[dict[str, Any]]:
    """Events ordered by occurred_at then sequence, each marked retracted or not, and
    named by the platform (and, for a retraction, the account and subject) it is
    listed under."""
    params: dict[str, Any] = {}
    clauses = _filter_clauses(selection, known_at, params, db)
    # The subject of each row's account, as `counts --by subject` reads it.
    with_registered, joined, subject = _subject_source(db, selection)
    order = "t.occurred_us, t.sequence"
    rows_from = "timeline t"
    if (
        db.dialect == "sqlite"
        and not selection.account
        and len(selection.types) == 1
        and selection.types[0] in STATUS_FACTS
    ):
        # The status-facts index holds just these rows (a few percent of the log):
        # found there and sorted, rather than found by walking the whole log in time
        # order, which SQLite's planner prefers for the order (0.05 against 2.1 s for
        # account_removed at 1M events). `+` makes the order an expression no index
        # gives. PostgreSQL's planner weighs the two by its statistics.
        order = "+" + order
    elif _scanned_and_sorted(db, selection, clauses, params):
        # No index holds the type, policy or actor across accounts: a scan of the
        # table and a sort of what matches, rather than a walk of the whole time
        # index with a table lookup a row, which SQLite's planner takes for the order
        # (at 1M events: 0.7-1.2 against 3.6-6.5 s, a rare value or none).
        rows_from = "timeline t NOT INDEXED"
        order = "+" + order
    # A retraction is named by its own row's projected columns: on PostgreSQL read with
    # every row (a lookup a retraction cost a round trip each: 3.2 s for the 10,341 of
    # a 1M log, against 0.6 s on SQLite); SQLite looks them up, in process. One
    # account's timeline looks them up too: subject and platform are outside the
    # account index, which otherwise answers it alone (once vacuumed) for a few
    # retractions' lookups.
    listed = (
        ", t.account, t.subject, t.platform"
        if db.dialect == "postgres" and not selection.account
        else ""
    )
    sql = (
        f"{with_registered}SELECT s.state, r.target IS NOT NULL, {subject}{listed} "
        f"FROM {rows_from} "
        f"JOIN {events_join(db)} LEFT JOIN {_retraction_of_row(db)}{joined} "
        f"WHERE {' AND '.join(clauses)} ORDER BY {order}"
    )
    parse = leaves.parser()
    count = 0
    try:
        for leaf, retracted, listed_subject, *projected in _rows(db, sql, params, selection):
            record = parse(leaf)
            # Each row names what the filters matched: a retraction its target's
            # account, subject and platform (as projected: ~1% of rows, so a lookup each
            # keeps the account index covering); an account's events their platform
            # (the account id's prefix) and the subject its account's registration
            # names. `export` gives the stored events as they are.
            if record["type"] == "event_retracted":
                _name_retraction(db, record, projected or None)
            account = record.get("account")
            if account is not None:
                record.setdefault("platform", platform_of(account))
                own = record["type"] == "account_registered"  # its own subject, or none
                if not own and listed_subject is not None:
                    record["subject"] = listed_subject
            record["retracted"] = bool(retracted)
            count += 1
            yield record
    finally:
        leaves.parsed(count)


# Rows a scan-and-sort of a timeline may sort: SQLite's sorter holds each row's leaf,
# spilling past its cache to temporary files (~60 MB at this many).
SORTED_AT_MOST = 100_000
# A row walked along the time index costs about ten scanned ones (its table lookup).
# A limited walk stops at its last row: it beats the scans (the count's and the
# query's) when this many matches per row it gives lie early in the table (in its
# first fifth, read in the order it was filled, which is mostly time order).
WALK_BEATS_SCANS_AT = 20


def _scanned_and_sorted(
    db: Database, selection: TimelineFilter, clauses: list[str], params: dict[str, Any]
) -> bool:
    """Whether a timeline filtered by type, policy or actor is read by a scan of the
    table and a sort (SQLite): when no filter an index serves bounds it (an account, a
    subject, a time window, a record-time poll), limited or not when its rows are rare
    or late (their first is then as far along the time index as their last), and at most
    SORTED_AT_MOST rows match (counted by a scan that stops there). A broader filter
    walks the time index: its first rows come at once, and nothing is sorted. So does
    a limited one whose rows come early and often enough (rv36: `--limit 5` of a
    policy on 0.5% of a 1M-event log's rows took two whole scans, 0.4 s, not 0.15)."""
    if db.dialect != "sqlite" or not (selection.types or selection.policy or selection.actor):
        return False
    if (
        selection.account
        or selection.subject
        or selection.since
        or selection.until
        or selection.recorded_since
    ):
        return False
    where = " AND ".join(clauses)
    if selection.limit is not None:
        enough = WALK_BEATS_SCANS_AT * (selection.offset + selection.limit)
        (matched, reached, end) = db.one(
            f"SELECT count(*), max(rowid), (SELECT max(rowid) FROM timeline) FROM ("
            f"SELECT t.rowid FROM timeline t NOT INDEXED WHERE {where} LIMIT {enough + 1})",
            params,
        )
        if matched > enough and reached * 5 <= end:
            return False
        if matched <= enough:  # that scan read the whole table: the count is known
            return int(matched) <= SORTED_AT_MOST
    (matched,) = db.one(
        f"SELECT count(*) FROM (SELECT 1 FROM timeline t NOT INDEXED "
        f"WHERE {where} LIMIT {SORTED_AT_MOST + 1})",
        params,
    )
    return int(matched) <= SORTED_AT_MOST


def _name_retraction(
    db: Database, record: dict[str, Any], listed: Sequence[Any] | None = None
) -> None:
    if listed is None:
        listed = db.one(
            "SELECT account, subject, platform FROM timeline WHERE sequence = :sequence",
            {"sequence": record["sequence"]},
        )
    if listed is not None:
        for name, value in zip(("account", "subject", "platform"), listed, strict=True):
            if value is not None:
                record[name] = value


# One account's or subject's timeline on PostgreSQL is read by one plain (prepared)
# statement when it has at most this many rows; a longer one is streamed through a
# server-side cursor.
PAGE = 10_000


def _rows(
    db: Database, sql: str, params: dict[str, Any], selection: TimelineFilter
) -> Iterator[tuple[Any, ...]]:
    """The selected rows, streamed in flat memory.

    PostgreSQL streams through a server-side cursor, which costs five round trips
    (BEGIN, DECLARE, FETCH, CLOSE, COMMIT) and a fresh plan each time. An account's
    or a subject's timeline is read through its indexes and is usually short, so it
    is first read with one statement, limited to PAGE + 1 rows; only when that many
    come back is it read again through the cursor, from the start and in one
    snapshot. (A cursor is planned for its first rows: for a subject, a walk of the
    whole time index, 0.9 s at 1M events, against 0.1 s read through the indexes.)
    """
    limit, offset = selection.limit, selection.offset
    if db.dialect == "postgres" and (selection.account or selection.subject):
        first = PAGE + 1 if limit is None else min(limit, PAGE + 1)
        # Binary results: each leaf comes as its bytes, not as hex text twice its size
        # that the server encodes and the client decodes again (~1.5 µs a row).
        with db.raw.cursor(binary=True) as cursor:
            rows = cursor.execute(
                db.sql(f"{sql} LIMIT :limit OFFSET :offset"),
                {**params, "limit": first, "offset": offset},
            ).fetchall()
        if len(rows) <= PAGE or (limit is not None and limit <= PAGE):
            yield from rows
            return
        del rows  # read again below: not held while the cursor streams the rest
    if limit is not None:
        sql += " LIMIT :limit OFFSET :offset"
        params = {**params, "limit": limit, "offset": offset}
    elif offset:
        sql += " LIMIT 9223372036854775807 OFFSET :offset"
        params = {**params, "offset": offset}
    yield from db.stream(sql, params, binary=True)


# What events can be counted by: timeline columns, each an exact value of the event,
# and the subject: an account's events (a retraction of one among them) count under
# the subject of the account's registration as known at K (at most one is in force
# at a time); a registration under its own, a subject's events under theirs.
COUNT_DIMENSIONS = ("platform", "type", "policy", "actor", "account", "subject")
_ACCOUNT_SUBJECT = (
    "(SELECT a.subject FROM timeline a WHERE a.account = {account} "
    f"AND a.type = 'account_registered' AND {status_facts_clause('a')} AND {_visible('a')} "
    "LIMIT 1)"
)
# The same for every account at once, joined as ``g``: one pass over the
# registrations instead of three index seeks per row (a full timeline at 1M events:
# the SQL took 10 s against 16-18 s). A registration is in force once per account,
# so min() picks the one; it also keeps the join to one row should a log break that.
# Grouped, it is made once and indexed by SQLite without MATERIALIZED (which SQLite
# before 3.35 would refuse).
_WITH_REGISTERED = (
    "WITH registered (account, subject) AS (SELECT a.account, min(a.subject) "
    f"FROM timeline a WHERE a.type = 'account_registered' AND {status_facts_clause('a')} "
    f"AND {_visible('a')} GROUP BY a.account) "
)
_JOIN_REGISTERED = " LEFT JOIN registered g ON g.account = t.account"
# Rows past which the join costs less than a subquery per row: reading every
# registration is ~35 ms at 1M events (5,000 accounts), a subquery ~6-9 µs a row.
_LONG = 10_000


def _join_registered(db: Database, selection: TimelineFilter, *, rows_read: bool = False) -> bool:
    """Whether to join the registrations: on SQLite, for an answer that may be long (no
    account, subject or time window bounds it, nor a small limit of the rows read:
    ``rows_read`` when the limit is on something else, such as counts).

    A window is read per row: a day of a 1M log, or a poll of what was recorded since,
    is a few rows, and the join's fixed cost grows with the accounts. SQLite indexes
    the joined table itself. PostgreSQL cannot index it, and under a cursor (planned
    for the first rows) it scanned it for every row: a 200k timeline took 27 s
    against 6.4 s with its lookup per row, run in the server (and cached per account).
    """
    if db.dialect != "sqlite" or selection.account or selection.subject:
        return False
    if selection.since or selection.until or selection.recorded_since:
        return False
    limit = None if rows_read else selection.limit
    return limit is None or limit + selection.offset > _LONG


def _subject_source(
    db: Database, selection: TimelineFilter, *, rows_read: bool = False
) -> tuple[str, str, str]:
    """How a statement reads each row's account's subject: its WITH clause, its join
    and the expression. One account's once, not correlated to the row (whose other
    columns the account's covering index then need not give); a long answer's from a
    join to every account's registration; else per row, in the statement."""
    if selection.account:
        return "", "", _ACCOUNT_SUBJECT.format(account=":account")
    if _join_registered(db, selection, rows_read=rows_read):
        return _WITH_REGISTERED, _JOIN_REGISTERED, "g.subject"
    per_row = _ACCOUNT_SUBJECT.format(account="t.account")
    if db.dialect == "postgres":
        # Joined laterally, not a subquery in the select list: PostgreSQL then caches
        # its answer per account (Memoize), one lookup per account instead of one per
        # row (a full timeline at 1M events: 10 s in the server against 15 s).
        return "", f" LEFT JOIN LATERAL {per_row} g ON true", "g.subject"
    return "", "", per_row


def _subject_of_row(registered: str) -> str:
    """An event's subject as counted: its account's (an account with no registration
    in force: the row's own, a retraction's target's)."""
    return (
        "CASE WHEN t.account IS NULL OR t.type = 'account_registered' THEN t.subject "
        f"ELSE coalesce({registered}, t.subject) END"
    )


PERIODS = ("day", "month", "year")
_PERIOD_FORMATS = {
    "sqlite": {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"},
    "postgres": {"day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY"},
}


def _period_sql(db: Database, per: str) -> str:
    """occurred_at's UTC day, month or year as text (2024-02-08, 2024-02, 2024)."""
    shape = _PERIOD_FORMATS[db.dialect][per]
    if db.dialect == "sqlite":
        # Whole seconds, floored in integers: SQLite's date functions keep only
        # milliseconds (23:59:59.9999 would round into the next day), and integer
        # division rounds times before 1970 towards zero.
        seconds = "(t.occurred_us - (t.occurred_us % 1000000 + 1000000) % 1000000) / 1000000"
        return f"strftime('{shape}', {seconds}, 'unixepoch')"
    # Whole seconds and the microseconds apart: both exact (an interval times a large
    # count goes through a double, which would move a boundary by microseconds).
    return (
        f"to_char(timestamp '1970-01-01' + (t.occurred_us / 1000000) * interval '1 second'"
        f" + mod(t.occurred_us, 1000000) * interval '1 microsecond', '{shape}')"
    )


def counts(
    db: Database,
    known_at: datetime,
    selection: TimelineFilter,
    *,
    by: Sequence[str] = (),
    per: str | None = None,
    include_retracted: bool = False,
) -> Iterator[dict[str, Any]]:
    """How many selected events there are per value of ``by`` (and per UTC period of
    occurred_at), as known at ``known_at``; streams.

    Retracted events (as known then) are left out unless ``include_retracted``: a
    retraction says the event did not happen. Rows come most numerous first, within
    each period in time order; ties in the order of their values, absent first.
    """
    unknown = [d for d in by if d not in COUNT_DIMENSIONS]
    if unknown or (per is not None and per not in PERIODS):
        raise ValueError(f"cannot count by {unknown or per!r}")
    params: dict[str, Any] = {}
    clauses = _filter_clauses(selection, known_at, params, db)
    if not include_retracted:
        clauses.append(_VISIBLE)
    with_registered, joined, subject = "", "", ""
    if "subject" in by:  # a limit here is on the counts: every selected row is read
        with_registered, joined, subject = _subject_source(db, selection, rows_read=True)
    columns = [_subject_of_row(subject) if d == "subject" else f"t.{d}" for d in by]
    if per is not None:
        columns.insert(0, _period_sql(db, per))
    first = 2 if per is not None else 1  # the position of by's first column
    order = (["1"] if per is not None else []) + ["count(*) DESC"]
    order += [f"{first + i} NULLS FIRST" for i in range(len(by))]
    sql = (
        f"{with_registered}SELECT {', '.join([*columns, 'count(*)'])} FROM timeline t{joined} "
        f"WHERE {' AND '.join(clauses)}"
        + (f" GROUP BY {', '.join(str(i) for i in range(1, len(columns) + 1))}" if columns else "")
        + f" ORDER BY {', '.join(order)}"
    )
    if selection.limit is not None:
        sql += " LIMIT :limit OFFSET :offset"
        params.update(limit=selection.limit, offset=selection.offset)
    elif selection.offset:
        sql += " LIMIT 9223372036854775807 OFFSET :offset"
        params.update(offset=selection.offset)
    names = (["period"] if per is not None else []) + list(by) + ["count"]
    for row in db.stream(sql, params):
        yield dict(zip(names, row, strict=True))
