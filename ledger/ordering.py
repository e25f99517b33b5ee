"""A batch put in dependency order before it is checked (``append --sort``).

A batch is checked line by line, so a dump in another order (by account, newest
first, shuffled) is refused at the first line whose registration, post or measure
comes later in the file. Sorting by ``occurred_at`` alone is not enough: a subject
is often registered when first observed, after its accounts; offsets make the text
of two times sort wrongly; and retractions name their targets by id. The order:

0. retractions of events that are not in the batch (they need nothing from the
   batch, and a correction in the batch may need them first): of decisions, then of
   appeals, then the rest, each group in input order (the log says which is which);
   but one whose target the batch's own appeals or decisions refer to, all withdrawn
   in the batch, goes after the last of them (they need it in force), and one whose
   target batch events withdrawn in the batch needed (a restore of a recorded
   removal, a decision of a recorded appeal) after their withdrawals;
1. subject registrations (referred to by name, from any time), by ``occurred_at``
   (a platform rename is dated: it only forbids later registrations under its name);
2. every other event by ``occurred_at`` in UTC; at one instant an account's
   registration, then posts published, then the rest in input order, then appeals
   filed, then appeals decided. A subject's exemption under one platform's rule
   needs an account of the subject there, whatever the times (as a registration
   needs its subject): it and its events under that rule dated before the batch's
   first registration of such an account (not withdrawn in it) go right after that,
   in their order. A retraction of an event in the batch comes right
   after its target (in the target's phase), or after the appeals of that target in
   the batch and their retractions: a mistaken event is withdrawn before the events
   that replace it. When every appeal and decision of the target in the batch is
   withdrawn in it too, they and their retractions are placed right after the
   target, whatever their times (a replacement may lie between the two): each filing,
   its decisions each followed by its withdrawal, then the filing's withdrawal. Events of
   the withdrawn event's type, account (or post, or holder) and instant (its
   replacement, its time kept) come after its retraction, unless two of that type
   stack (restrictions, suspensions). Mistakes withdrawn together are undone newest
   first: a withdrawn event's retraction waits for those of the later batch events
   that needed it and are withdrawn too (a removal's reinstatement, a registration's
   posts), unless an event like it (another measure, registration, publication)
   lies between them: the later one needed that, and the mistake goes first.

``append --sort`` falls back to the order given when the rules refuse this one and
the batch holds retractions (a correction shape misread here: an appeal filed twice
under one name, a recorded target withdrawn after batch events that needed it), so
it never refuses such a batch valid as given. What this cannot rebuild is the state a
retracted event was first checked against: a batch that retracts one of its events
and gives a conflicting replacement
*earlier* in time (a removal re-dated to the day before), given in another order, is
refused at the mistaken event; given in the order it was recorded, it goes in so.

Lines wait in SQLite's private temporary database (on disk, removed even if the
process is killed), so memory stays bounded however long the batch. They are
validated by the append in this order (again as given, if refused); errors name
input line numbers, and a
line whose place cannot be read (not JSON, no time) is checked first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.events import AnyEvent, parse_event
from ledger.times import parse_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_AT_OFFSET = 10**18  # microseconds from 1970, shifted so that years 1-9999 are positive

# Phases (see the module docstring).
_UNREADABLE = -1
_STORED_TARGET = 0
_NAMED = 1
_DATED = 2

# At one instant: what others need first, what needs others last.
_RANK_AT_ONE_INSTANT = {
    "account_registered": 0,
    "post_published": 1,
    "appeal_filed": 3,
    "appeal_decided": 4,
}
_OTHER_RANK = 2
# Retractions anchored at one line: an appeal's decision, then the appeal, then its target.
_RETRACTION_DEPTH = {"appeal_decided": -2, "appeal_filed": -1}
# What each event's later events of the same account, post or holder need it for (a
# reinstatement its measure, a screen or a second removal the restore before it): the
# withdrawal of one waits for the withdrawals of those after it in the batch.
_MEASURES = ("account_restricted", "account_suspended", "account_removed")
_NEEDING_IT: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(_MEASURES, ("account_reinstated",)),
    "account_reinstated": _MEASURES,
    "post_removed": ("post_restored",),
    "post_restored": ("post_removed", "post_warning_screen_applied"),
    "post_warning_screen_applied": ("post_warning_screen_removed",),
    "post_warning_screen_removed": ("post_warning_screen_applied",),
    "exemption_applied": ("exemption_revoked",),
    "exemption_revoked": ("exemption_applied",),
}
# Events that can happen twice at one instant to one account without either being
# refused: one of these at a withdrawn one's instant is no replacement to move after
# the withdrawal (it keeps the order given).
_STACKING = frozenset({"account_restricted", "account_suspended", "followers_observed"})
# Retractions of recorded events: of a decision, then of an appeal, then of the rest.
_RECORDED_RANK = {"appeal_decided": 0, "appeal_filed": 1}

_SPOOL_CACHE_KIB = 16 * 1024  # the sorter spills to disk beyond this
_ROUND = 2000

_SPOOL_SCHEMA = f"""
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -{_SPOOL_CACHE_KIB};
PRAGMA temp_store = FILE;
CREATE TABLE spool (
    number INTEGER PRIMARY KEY,
    line TEXT NOT NULL,
    phase INTEGER NOT NULL,
    key TEXT NOT NULL,      -- occurred_at, rank and number as one sortable text
    type TEXT NOT NULL,
    event_id TEXT,
    target TEXT,            -- a retraction's target
    refers TEXT,            -- an appeal's target
    appeal TEXT,            -- an appeal's account and name
    account TEXT,           -- the account it is about
    scope TEXT,             -- what its state belongs to: account, post, exemption, subject
    subject TEXT            -- the subject an account registration or exemption names
);
CREATE TABLE placed (       -- where each retraction goes
    number INTEGER PRIMARY KEY, phase INTEGER NOT NULL, key TEXT NOT NULL,
    depth INTEGER NOT NULL
);
"""

_ORDERED = """
SELECT s.number, s.line FROM spool AS s LEFT JOIN placed AS p ON p.number = s.number
ORDER BY coalesce(p.phase, s.phase), coalesce(p.key, s.key), p.number IS NOT NULL,
         coalesce(p.depth, 0), s.number
"""


def _row(number: int, line: str) -> tuple[object, ...]:
    """The line with its place in the order, read from its JSON without validating it:
    the append validates every line once, in the order given here. A line whose place
    cannot be read (not an object, no readable time) goes first, so that its error is
    reported at once; a misread place can only refuse a batch, never change an event."""
    try:
        event = json.loads(line)
        kind = event.get("type")
        # The validator's own reading of a time (datetime.fromisoformat refuses a
        # lowercase "z", which then went first and changed the order).
        moment = parse_utc(event["occurred_at"])
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        kind = None
    if not isinstance(kind, str):  # a list or an object is no type: refused first
        return (number, line, _UNREADABLE, "", "", None, None, None, None, None, None, None)
    at = (moment - _EPOCH) // _MICROSECOND + _AT_OFFSET
    if kind == "subject_registered":
        phase, rank = _NAMED, _OTHER_RANK
    else:
        phase, rank = _DATED, _RANK_AT_ONE_INSTANT.get(kind, _OTHER_RANK)
    key = f"{at:019d}{rank}{number:012d}"
    target = refers = appeal = None
    if kind == "event_retracted":
        target = _text(event.get("target"))
    elif kind in ("appeal_filed", "appeal_decided"):
        refers = _text(event.get("target"))
        appeal = f"{event.get('account')}\x1f{event.get('appeal')}"
    account, subject = _text(event.get("account")), _text(event.get("subject"))
    return (
        number,
        line,
        phase,
        key,
        str(kind),
        _text(event.get("event_id")),
        target,
        refers,
        appeal,
        account,
        _scope(kind, event, account, subject),
        subject,
    )


def _scope(kind: str, event: dict[str, Any], account: str | None, subject: str | None) -> str:
    """What the event's state belongs to: two events replace or depend on each other
    only within one (another account's events at the same instant are neither)."""
    if kind.startswith("post_"):
        return f"post\x1f{account}\x1f{_text(event.get('post'))}"
    if kind.startswith("exemption_"):
        holder = f"account\x1f{account}" if account is not None else f"subject\x1f{subject}"
        return f"exemption\x1f{holder}\x1f{event.get('exemption')}\x1f{event.get('platform')}"
    if kind == "subject_registered":
        return f"subject\x1f{subject}"
    if kind == "platform_renamed":
        return f"platform\x1f{_text(event.get('platform'))}"
    return f"account\x1f{account}"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# Added to an error of the batch's own temporary database (a full or size-limited
# $SQLITE_TMPDIR or $TMPDIR), which is no failure of the store: the CLI names that disk.
SPOOL_FAILED = "ledger.ordering: the sort's temporary database failed"


def _note(error: sqlite3.Error) -> None:
    if SPOOL_FAILED not in getattr(error, "__notes__", ()):
        error.add_note(SPOOL_FAILED)


class DependencyOrder:
    """The lines of one batch, held on disk and read back in dependency order as
    many times as the append needs (a conflicting batch is re-run)."""

    def __init__(
        self,
        lines: Iterable[tuple[int, str]],
        recorded_events: Callable[[list[str]], dict[str, dict[str, Any]]] = lambda ids: {},
    ) -> None:
        """``recorded_events``: each of these event ids the log holds, as recorded."""
        self._recorded_events = recorded_events
        # SQLite's private temporary database: a file in $SQLITE_TMPDIR or $TMPDIR that
        # is unlinked as soon as it is opened, so not even a killed process leaves it.
        self._db = sqlite3.connect("")
        try:
            self._db.executescript(_SPOOL_SCHEMA)
            self._fill(lines)
            self._exemptions_after_their_accounts()
            self._place_retractions()
            self._db.commit()
        except BaseException as error:
            self.close()
            if isinstance(error, sqlite3.Error):
                _note(error)
            raise

    def _fill(self, lines: Iterable[tuple[int, str]]) -> None:
        insert = "INSERT INTO spool VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        rows = []
        for number, line in lines:
            rows.append(_row(number, line))
            if len(rows) == _ROUND:
                self._db.executemany(insert, rows)
                rows.clear()
        self._db.executemany(insert, rows)
        self._db.executescript(
            """
            CREATE INDEX spool_event_id ON spool (event_id) WHERE target IS NULL;
            CREATE INDEX spool_refers ON spool (refers) WHERE refers IS NOT NULL;
            CREATE INDEX spool_appeal ON spool (appeal, type) WHERE appeal IS NOT NULL;
            CREATE INDEX spool_retractions ON spool (number) WHERE target IS NOT NULL;
            CREATE INDEX spool_target ON spool (target) WHERE target IS NOT NULL;
            CREATE INDEX spool_retraction_id ON spool (event_id) WHERE target IS NOT NULL;
            CREATE INDEX spool_scope ON spool (scope, type);
            CREATE INDEX spool_account ON spool (account);
            CREATE INDEX spool_subject ON spool (subject) WHERE subject IS NOT NULL;
            """
        )

    def _exemptions_after_their_accounts(self) -> None:
        """A subject's exemption under one platform's rule needs an account of the
        subject there, whatever its time (the rule asks of the registrations in force,
        as a registration asks of its subject): its events earlier than the batch's
        first registration of such an account (one not withdrawn in it) move right
        after that, in their order."""
        db = self._db
        holders = db.execute(
            "SELECT DISTINCT scope, subject FROM spool WHERE phase = ? AND scope LIKE ? "
            "AND target IS NULL",
            (_DATED, "exemption\x1fsubject\x1f%"),
        ).fetchall()
        for scope, subject in holders:
            platform = scope.rsplit("\x1f", 1)[1]
            if platform == "None":  # on every platform: no account needed
                continue
            (anchor,) = db.execute(
                "SELECT min(key) FROM spool WHERE type = 'account_registered' AND phase = ? "
                "AND subject = ? AND substr(account, 1, ?) = ? AND (event_id IS NULL OR "
                "event_id NOT IN (SELECT target FROM spool WHERE target IS NOT NULL))",
                (_DATED, subject, len(platform) + 1, f"{platform}:"),
            ).fetchone()
            if anchor is not None:
                # The anchor's key extended by each one's own: after it, before any later.
                db.execute(
                    "UPDATE spool SET key = ? || key WHERE scope = ? AND phase = ? AND key < ?",
                    (anchor, scope, _DATED, anchor),
                )

    def _place_retractions(self) -> None:
        """Each retraction after its target, and after the target's appeals in the
        batch (which must be withdrawn first); before everything if its target is
        not in the batch, the retractions of recorded decisions first, then of
        recorded appeals, then the rest (each needs the one after it gone first)."""
        db = self._db
        retractions = db.execute(
            "SELECT number, target FROM spool WHERE target IS NOT NULL ORDER BY number"
        )
        rows: list[tuple[int, int, str, int]] = []
        recorded: list[tuple[int, str]] = []  # retractions of events not in the batch
        self._pulled: set[int] = set()  # placed with their target's appeals' target
        self._withdrawal_places: dict[int, tuple[int, str, int]] = {}
        for number, target_id in retractions:
            if number in self._pulled:
                continue
            target = db.execute(
                "SELECT number, type, phase, key, appeal FROM spool WHERE event_id = ? "
                "AND target IS NULL ORDER BY number LIMIT 1",
                (target_id,),
            ).fetchone()
            if target is None:
                retraction = db.execute(
                    "SELECT 1 FROM spool WHERE event_id = ? AND target IS NOT NULL LIMIT 1",
                    (target_id,),
                ).fetchone()
                # A retraction of one of the batch's retractions goes last, to be refused
                # as that (first, it read as a retraction of an event nowhere).
                if retraction:
                    rows.append((number, _DATED, "~", 0))
                else:
                    recorded.append((number, target_id))
                continue
            placed = self._placed_after_target(number, target_id, *target[1:])
            after_appeals = placed[-1]
            placed[-1] = self._after_withdrawn_dependents(target[0], after_appeals)
            rows.extend(placed)
            if after_appeals[2] == target[3]:  # no appeals of it between the two
                rows.extend(self._replacements_after(target[0], target[1], placed[-1]))
            if len(rows) >= _ROUND:
                db.executemany("INSERT OR REPLACE INTO placed VALUES (?, ?, ?, ?)", rows)
                rows.clear()
        db.executemany("INSERT OR REPLACE INTO placed VALUES (?, ?, ?, ?)", rows)
        self._place_recorded_targets(recorded)

    def _placed_after_target(
        self, number: int, target_id: str, kind: str, phase: int, key: str, appeal: str | None
    ) -> list[tuple[int, int, str, int]]:
        """Where a retraction of the batch's own event ``target_id`` goes (and, when the
        target's appeals in the batch are all retracted in it too, where those appeals,
        their decisions and all their retractions go: right after the target, whatever
        their times, so that a replacement later than the target but earlier than its
        appeals is checked after the mistake is withdrawn)."""
        db = self._db
        if kind == "appeal_filed":
            # Its own decisions: those before the next filing of the same appeal name
            # (an appeal withdrawn and filed again keeps its name).
            (later,) = db.execute(
                "SELECT max(key) FROM spool WHERE appeal = ? AND type = 'appeal_decided' "
                "AND key > ? AND key < coalesce((SELECT min(key) FROM spool WHERE appeal = ? "
                "AND type = 'appeal_filed' AND key > ?), '~')",
                (appeal, key, appeal, key),
            ).fetchone()
            anchor = max(key, later) if later is not None else key
            return [(number, phase, anchor, _RETRACTION_DEPTH[kind])]
        if kind == "appeal_decided":
            return [(number, phase, key, _RETRACTION_DEPTH[kind])]
        referring = db.execute(
            "SELECT number, event_id, type, appeal, key FROM spool WHERE refers = ? ORDER BY key",
            (target_id,),
        ).fetchall()
        if not referring:
            return [(number, phase, key, 0)]
        if self._all_withdrawn([event_id for _, event_id, _, _, _ in referring]):
            return self._pulled_to_target(number, phase, key, referring)
        (later,) = db.execute(
            "SELECT max(key) FROM spool WHERE refers = ?", (target_id,)
        ).fetchone()
        return [(number, phase, max(key, later), 0)]

    def _after_withdrawn_dependents(
        self, target: int, entry: tuple[int, int, str, int]
    ) -> tuple[int, int, str, int]:
        """``entry`` (the withdrawal of line ``target``) moved after the withdrawals of
        the later batch events that needed the target and are withdrawn too (a
        reinstatement of a withdrawn removal, a post of a withdrawn registration): the
        mistakes are undone newest first, as they were made. The later events that stay
        do not hold it back: they stood without the mistake."""
        number, phase, key, depth = entry
        place = (phase, key, depth)
        for dependent in self._withdrawn_dependents(target):
            d_phase, d_key, d_depth = self._withdrawal_place(dependent)
            # After it, and after its replacements (depth 1 beyond the withdrawal).
            place = max(place, (d_phase, d_key, d_depth + 2))
        self._withdrawal_places[target] = place
        return (number, *place)

    def _withdrawal_place(self, line: int) -> tuple[int, str, int]:
        """Where the withdrawal of batch line ``line`` goes (computed once)."""
        if line not in self._withdrawal_places:
            kind, phase, key, appeal, event_id = self._db.execute(
                "SELECT type, phase, key, appeal, event_id FROM spool WHERE number = ?", (line,)
            ).fetchone()
            (retraction,) = self._db.execute(
                "SELECT min(number) FROM spool WHERE target = ?", (event_id,)
            ).fetchone()
            placed = self._placed_after_target(retraction, event_id, kind, phase, key, appeal)
            self._after_withdrawn_dependents(line, placed[-1])
        return self._withdrawal_places[line]

    def _withdrawn_dependents(self, target: int) -> list[int]:
        """The batch lines after line ``target`` whose own check needed it, each
        withdrawn in the batch too (see ``_needing``)."""
        kind, phase, key, account, scope, subject = self._db.execute(
            "SELECT type, phase, key, account, scope, subject FROM spool WHERE number = ?",
            (target,),
        ).fetchone()
        return self._needing(kind, account, scope, subject, None, (target, phase, key))

    def _needing(
        self,
        kind: str,
        account: str | None,
        scope: str,
        subject: str | None,
        appeal: str | None,
        line: tuple[int, int, str] | None = None,
    ) -> list[int]:
        """The batch lines withdrawn in the batch whose own check needed an event of
        ``kind`` about these: of a registration, the account's (or subject's) events; of
        a post, its events; of a measure, the account's reinstatements; of a
        reinstatement, its measures; of a removal, screen or exemption, what ends it, and
        the other way round; of a recorded appeal (``appeal``: account and name), its
        decisions. Of a batch event (``line``: its number, phase and key), those after
        it. Not one with an event like it between the two (a second removal before a
        reinstatement, a publication again before a removal): that one is what it
        needed, and the mistake is withdrawn first, as it was recorded."""
        # (Another registration or publication is no event that needed it: it
        # replaces it, and must find it withdrawn.)
        if kind == "account_registered":
            related, values = "d.account = ? AND d.type != 'account_registered'", [account]
            alike, like = "e.account = ? AND e.type = 'account_registered'", [account]
        elif kind == "subject_registered":
            related, values = "d.subject = ? AND d.type != 'subject_registered'", [subject]
            alike, like = "e.subject = ? AND e.type = 'subject_registered'", [subject]
        elif kind == "post_published":
            related, values = "d.scope = ? AND d.type != 'post_published'", [scope]
            alike, like = "e.scope = ? AND e.type = 'post_published'", [scope]
        elif kind == "appeal_filed" and appeal is not None:
            related, values = "d.appeal = ? AND d.type = 'appeal_decided'", [appeal]
            alike, like = "e.appeal = ? AND e.type = 'appeal_filed'", [appeal]
        elif kind in _NEEDING_IT:
            ended, kinds = _NEEDING_IT[kind], _MEASURES if kind in _MEASURES else (kind,)
            related = f"d.scope = ? AND d.type IN ({','.join('?' * len(ended))})"
            values = [scope, *ended]
            alike = f"e.scope = ? AND e.type IN ({','.join('?' * len(kinds))})"
            like = [scope, *kinds]
        else:
            return []
        after, since = "", ""
        bounds: list[object] = []
        if line is not None:
            number, phase, key = line
            after = "AND d.number != ? AND (d.phase > ? OR (d.phase = ? AND d.key > ?))"
            since = "AND e.number != ? AND (e.phase > ? OR (e.phase = ? AND e.key > ?))"
            bounds = [number, phase, phase, key]
        return [
            found
            for (found,) in self._db.execute(
                f"SELECT d.number FROM spool AS d WHERE {related} AND d.target IS NULL "
                f"{after} AND d.event_id IN (SELECT target FROM spool WHERE target IS NOT "
                f"NULL) AND NOT EXISTS (SELECT 1 FROM spool AS e WHERE {alike} AND "
                f"e.target IS NULL {since} AND (e.phase < d.phase OR (e.phase = d.phase "
                "AND e.key < d.key)))",
                (*values, *bounds, *like, *bounds),
            )
        ]

    def _pulled_to_target(
        self, number: int, phase: int, key: str, referring: list[tuple[Any, ...]]
    ) -> list[tuple[int, int, str, int]]:
        """The target's appeals and decisions, all withdrawn in the batch, right after
        it: each filing, its decisions each followed by its withdrawal, the filing's
        withdrawal, then the next filing (one filed again under its name must find
        the first withdrawn); the target's own withdrawal (``number``) last."""
        placed: list[tuple[int, int, str, int]] = []

        def put(line: int) -> None:
            placed.append((line, phase, key, len(placed) - 1_000_000))

        def withdraw(event_id: str) -> None:
            for (retraction,) in self._db.execute(
                "SELECT number FROM spool WHERE target = ? ORDER BY number", (event_id,)
            ):
                put(retraction)
                self._pulled.add(retraction)

        done: set[int] = set()
        for index, (line, event_id, kind, appeal, at) in enumerate(referring):
            if kind != "appeal_filed":
                continue
            refiled = next(
                (r[4] for r in referring[index + 1 :] if r[2] == kind and r[3] == appeal), None
            )
            put(line)
            done.add(line)
            for d_line, d_id, d_kind, d_appeal, d_at in referring:
                if (
                    (d_kind, d_appeal) == ("appeal_decided", appeal)
                    and d_line not in done
                    and d_at > at
                    and (refiled is None or d_at < refiled)
                ):
                    put(d_line)
                    done.add(d_line)
                    withdraw(d_id)
            withdraw(event_id)
        for line, event_id, _, _, _ in referring:  # decisions of no filing in the batch
            if line not in done:
                put(line)
                withdraw(event_id)
        placed.append((number, phase, key, 0))
        return placed

    def _replacements_after(
        self, target: int, kind: str, retraction: tuple[int, int, str, int]
    ) -> list[tuple[int, int, str, int]]:
        """Lines of the withdrawn line's type at its instant (its replacement, its time
        kept), placed right after its retraction (wherever the withdrawals of events
        that needed the mistake put it): a dump listed newest first gave the replacement
        first, checked while the mistake stood."""
        _, at_phase, anchor, depth = retraction
        (key, phase) = self._db.execute(
            "SELECT key, phase FROM spool WHERE number = ?", (target,)
        ).fetchone()
        if kind in _STACKING:
            return []
        # Of the same account, post or holder: another's events at that instant keep
        # their order (a second account reinstated, then restricted, at the instant of
        # a withdrawn restriction had its restriction moved first).
        rows = self._db.execute(
            "SELECT number FROM spool WHERE type = ? AND target IS NULL AND number != ? "
            "AND substr(key, 1, 19) = substr(?, 1, 19) AND phase = ? "
            "AND scope = (SELECT scope FROM spool WHERE number = ?) AND (event_id IS NULL "
            "OR event_id NOT IN (SELECT target FROM spool WHERE target IS NOT NULL))",
            (kind, target, key, phase, target),
        )
        return [(number, at_phase, anchor, depth + 1) for (number,) in rows]

    def _place_recorded_targets(self, recorded: list[tuple[int, str]]) -> None:
        """Retractions of events the log holds: decisions' first, then appeals', then
        the rest, each group in input order (a target is read from the log); but one
        whose target batch events withdrawn in the batch needed (a restore of a recorded
        removal, a decision of a recorded appeal) goes after their withdrawals."""
        for start in range(0, len(recorded), _ROUND):
            chunk = recorded[start : start + _ROUND]
            events = self._recorded_events([target for _, target in chunk])
            places = []
            for number, target in chunk:
                record = events.get(target, {})
                kind = str(record.get("type", ""))
                place = self._after_batch_appeals(number, target)
                needing = self._needing_recorded(record) if kind else []
                if needing:
                    phase, key, depth = max(self._withdrawal_place(line) for line in needing)
                    after = (phase, key, depth + 2)  # after them and their replacements
                    place = after if place is None else max(place, after)
                places.append(
                    (number, *place)
                    if place is not None
                    else (number, _STORED_TARGET, str(_RECORDED_RANK.get(kind, 2)), 0)
                )
            self._db.executemany("INSERT OR REPLACE INTO placed VALUES (?, ?, ?, ?)", places)

    def _needing_recorded(self, record: dict[str, Any]) -> list[int]:
        kind = str(record["type"])
        account, subject = _text(record.get("account")), _text(record.get("subject"))
        appeal = f"{account}\x1f{record.get('appeal')}" if kind == "appeal_filed" else None
        return self._needing(kind, account, _scope(kind, record, account, subject), subject, appeal)

    def _after_batch_appeals(self, number: int, target: str) -> tuple[int, str, int] | None:
        """A recorded event's withdrawal placed after the batch's own appeals and
        decisions of it, when the batch withdraws every one of them too (they need
        it in force to be checked), or None."""
        referring = [
            (event_id, key)
            for event_id, key in self._db.execute(
                "SELECT event_id, key FROM spool WHERE refers = ?", (target,)
            )
        ]
        if not referring or not self._all_withdrawn([event_id for event_id, _ in referring]):
            return None
        return (_DATED, max(key for _, key in referring), 0)

    def _all_withdrawn(self, event_ids: list[str | None]) -> bool:
        """Whether the batch retracts every one of these events (one without an id
        cannot be named by a retraction)."""
        if None in event_ids:
            return False
        marks = ",".join("?" * len(event_ids))
        withdrawn = {
            target
            for (target,) in self._db.execute(
                f"SELECT target FROM spool WHERE target IN ({marks})", event_ids
            )
        }
        return all(event_id in withdrawn for event_id in event_ids)

    def events(self) -> Iterator[tuple[int, AnyEvent]]:
        """The batch in dependency order, each event with its input line number."""
        return self._read(_ORDERED)

    def _read(self, query: str) -> Iterator[tuple[int, AnyEvent]]:
        """The lines ``query`` selects (number, line), parsed."""
        try:
            for number, line in self._db.execute(query):
                yield number, parse_event(line, number)
        except sqlite3.Error as error:
            _note(error)
            raise

    @property
    def has_retractions(self) -> bool:
        return (
            self._db.execute("SELECT 1 FROM spool WHERE target IS NOT NULL").fetchone() is not None
        )

    def fails_in_both(self, in_order: Exception, as_given: Exception) -> Exception:
        """Which refusal to report when both orders were refused (each an error naming
        its ``line``): the order given's only when its line may fail in both orders
        (the sorted order stopped before reaching it) while the sorted order's line was
        checked and passed as given, and it was not refused for being given before a
        line it needs (sorted, that line comes first); else the sorted order's."""
        sorted_line, given_line = getattr(in_order, "line", None), getattr(as_given, "line", None)
        if (
            sorted_line is None
            or given_line is None
            or getattr(as_given, "given_too_early", False)
            or not sorted_line < given_line  # the order given stopped before it
        ):
            return in_order
        for (number,) in self._db.execute(_ORDERED.replace("s.number, s.line", "s.number")):
            if number == sorted_line:
                return as_given  # the sorted order never reached the given one's line
            if number == given_line:
                return in_order  # it passed in the sorted order: it failed as given only
        return in_order

    def events_as_given(self) -> Iterator[tuple[int, AnyEvent]]:
        """The batch in its input order (what a refused sorted order falls back to)."""
        return self._read("SELECT number, line FROM spool ORDER BY number")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DependencyOrder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
