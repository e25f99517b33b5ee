"""The record format's names, free of pydantic: what code that never validates needs.

Read commands, rules and projections need the event type names, the fields the
ledger assigns and the one textual form of time, but not the validators in
``ledger.events``; importing them from here keeps pydantic out of their start-up.
``ledger.events`` re-exports all three and checks at import that its models and
``EVENT_TYPE_NAMES`` agree.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime

# In the order of the event union (ledger.events.AnyEvent).
EVENT_TYPE_NAMES: tuple[str, ...] = (
    "subject_registered",
    "account_registered",
    "platform_renamed",
    "followers_observed",
    "post_published",
    "post_warning_screen_applied",
    "post_warning_screen_removed",
    "post_removed",
    "post_restored",
    "account_restricted",
    "account_suspended",
    "account_reinstated",
    "account_removed",
    "exemption_applied",
    "exemption_revoked",
    "appeal_filed",
    "appeal_decided",
    "event_retracted",
)

# Types whose ``target`` names another event (by event_id).
TARGETED_TYPES = frozenset({"appeal_filed", "appeal_decided", "event_retracted"})

# Fields the ledger assigns; input may not set them.
ASSIGNED_FIELDS = ("recorded_at", "actor", "sequence")

# ISO 3166-1 alpha-2: the 249 assigned codes (as tzdata's iso3166.tab lists them), and
# XK, the user-assigned code the EU and the DSA database use for Kosovo. A pattern of two
# capitals let "XX" or "UK" (the UK is GB) through.
_COUNTRY_CODES_TEXT = (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN "
    "BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ "
    "DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL "
    "GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM "
    "JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME "
    "MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP "
    "NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD "
    "SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO "
    "TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW "
    "XK"
)
COUNTRY_CODES = frozenset(_COUNTRY_CODES_TEXT.split())


def name_key(name: object) -> str:
    """What a reader reads in a name: its letters in any case or width (X, x, Ｘ),
    without the spaces around them."""
    return unicodedata.normalize("NFKC", str(name)).strip().casefold()


def event_type_meant(given: str) -> str | None:
    """The event type a mistyped one most likely names: in capitals, with hyphens as
    `record`'s commands have them (account-removed), or misspelt; None when none is
    close, as for another word (account_banned is no account_suspended)."""
    import difflib

    folded = given.strip().lower().replace("-", "_")
    meant = difflib.get_close_matches(folded, EVENT_TYPE_NAMES, n=1, cutoff=0.8)
    return meant[0] if meant else None


# A platform's slug (its account ids' prefix): read commands check a --platform with it.
SLUG = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
SLUG_MEANING = "expected a lowercase slug: a-z, 0-9, '_', '.', '-', starting with a letter or digit"


def platform_of(account: str) -> str:
    """The platform an account id names: its prefix (``twitter:jack`` → ``twitter``),
    which ``account_registered`` checks against its ``platform``."""
    return account.partition(":")[0]


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a Z, the one textual form of time the ledger writes."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def shorten(text: str, limit: int, unfinished: re.Pattern[str] | None = None) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with "…", for messages and
    tables that must stay readable whatever was stored or given. ``unfinished``: what
    of an escape the cut may leave at its end (its group 1), taken off too, so "\\u18…"
    does not read as another character's."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    if unfinished is not None and (cut := unfinished.search(kept)) is not None:
        kept = kept[: cut.start(1)]
    return kept + "…"


MAX_QUOTED = 100


def quoted(value: object) -> str:
    """A given value as a message shows it, cut so a huge input stays out: text as
    its repr (control characters escaped), other JSON values as JSON spells them."""
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)  # true, null, NaN: the input's words, not Python's
    text = repr(value)
    if len(text) <= MAX_QUOTED:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} in all"
    return f"{shorten(text, MAX_QUOTED, PART_OF_A_REPR_ESCAPE)} ({size})"


# The start of an escape repr (or ascii) writes (\x1b, \u200b, \U000e0041), cut short at the end;
# a backslash escaped itself (\\) is whole.
PART_OF_A_REPR_ESCAPE = re.compile(
    r"(?:^|[^\\])(?:\\\\)*(\\(?:x[0-9a-f]?|u[0-9a-f]{0,3}|U[0-9a-f]{0,7})?)\Z"
)


# Who recorded an event is stored in its signed leaf for good: a name people can read
# and filter on, not a place for terminal escapes, line breaks or pages of text.
MAX_ACTOR = 200
# Characters that show nothing though they are not spaces: a name holding one looks like
# another name and is not found by it (Hangul and halfwidth fillers, the braille blank,
# the combining grapheme joiner, variation selectors).
_BLANK_LOOKING = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")


def _unprintable(char: str) -> bool:
    """Control, format (bidi, zero-width, soft hyphen, tags), separator, surrogate,
    private or unassigned characters, and the blank-looking ones."""
    category = unicodedata.category(char)
    return (
        category in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")
        or char in _BLANK_LOOKING
        or "\ufe00" <= char <= "\ufe0f"
        or "\U000e0100" <= char <= "\U000e01ef"
    )


# Zero-width non-joiner and joiner: part of ordinary spelling where they change what
# prints (after a virama: an Indic conjunct; a non-joiner between two letters that would
# join: Persian می‌خواهم), invisible anywhere else (`tw:a\u200db` prints as `tw:ab`).
# Where is IDNA's rule (RFC 5892 CONTEXTJ), which needs Unicode's joining types.
JOINERS = frozenset("\u200c\u200d")


# valid_contextj refuses (IDNAError) a label over 1,024 characters, and a stored text
# may hold 2,000: it is given the joiner's surroundings, which are all the rule reads
# (the character before, and on each side the first that is no mark).
_JOINER_CONTEXT = 500
_VIRAMA = 9  # canonical combining class


def _joiner_shows(text: str, index: int) -> bool:
    from idna.core import valid_contextj  # only for text holding a joiner

    after = text[index + 1] if index + 1 < len(text) else ""
    if text[index] == "\u200c" and not (after and unicodedata.category(after)[0] in "LM"):
        # A non-joiner parts what follows from what comes before: with no letter (or
        # mark) after it, it parts nothing, even after a virama, which IDNA's rule
        # admits (`x:क्‌` printed as `x:क्`).
        return False
    if text[index] == "\u200d" and index > 0 and after and unicodedata.combining(after) == _VIRAMA:
        # Before a virama too, which IDNA's rule leaves out: Bengali র‍্য (ra, ZWJ,
        # virama, ya) prints a ya-phala where র্য prints a reph (র‍্যাব, RAB).
        return True
    start = max(0, index - _JOINER_CONTEXT)
    try:
        return bool(valid_contextj(text[start : index + _JOINER_CONTEXT + 1], index - start))
    except ValueError:
        # The character before has no name in Python's Unicode (Tangut, Khitan, private
        # or unassigned): no virama, and a letter that joins nothing, so it shows nothing.
        return False


def hidden_at(text: str, index: int) -> bool:
    """Whether ``text[index]`` prints as nothing, or is a control character."""
    char = text[index]
    if char in JOINERS:
        return not _joiner_shows(text, index)
    return _unprintable(char)


HIDDEN_CHARACTERS = "must not contain control characters or invisible ones (bidi, zero-width)"


def has_hidden_characters(text: str) -> bool:
    return any(hidden_at(text, i) for i in range(len(text)))


def account_id_problem(account: str) -> str | None:
    """Why ``account`` (which matched the id pattern) cannot name an account, or None.

    An account id is the key every query joins on: two ids that print alike would
    split one account's history silently (a zero-width space, or café spelt with a
    combining accent), so the invisible ones and the second spelling are refused."""
    if account.isascii():
        return None  # the pattern already refused controls and spaces
    if has_hidden_characters(account):
        return HIDDEN_CHARACTERS
    composed = unicodedata.normalize("NFC", account)
    if composed != account:
        # The two spellings print alike, so name the code points that differ.
        marks = sorted({f"U+{ord(c):04X}" for c in account if c not in composed})
        return (
            f"must be in Unicode normal form NFC: NFC writes its {' '.join(marks)} "
            "otherwise, so it would print like the NFC spelling yet not match it; give "
            "the id in NFC"
        )
    return None


def actor_problem(actor: str) -> str | None:
    """Why ``actor`` cannot be recorded as who recorded an event, or None."""
    if not actor.strip():
        return "must not be empty"
    if actor != actor.strip():
        return "must not start or end with whitespace"
    if len(actor) > MAX_ACTOR:
        return f"must be at most {MAX_ACTOR} characters; it has {len(actor):,}"
    if any("\udc80" <= char <= "\udcff" for char in actor):
        # A byte of the command line or environment that is not UTF-8 (Python keeps it
        # as a lone surrogate): not an invisible character the user typed.
        return "must be UTF-8 text: it holds a byte that is not UTF-8"
    if has_hidden_characters(actor):
        return HIDDEN_CHARACTERS
    if not any(unicodedata.category(char)[0] in "LNPS" for char in actor):
        return "must hold a letter, digit or sign people can see"  # not marks alone
    return None
