"""Synthetic, valid enforcement histories for benchmarks.

``python -m bench.generate --events N --seed S > events.jsonl`` writes exactly N
JSON lines that the ledger accepts in one ``append`` batch: registrations first,
then a realistic mix of posts, follower snapshots, warning screens, removals,
restrictions, suspensions, reinstatements, exemptions, appeals, renames, about
10% backfilled events (occurred_at earlier than what is already written for the
same stream) and about 1% retractions.

The generator simulates every account with a small, bounded state (its clock, its
status lane, a capped set of live posts, exemptions and appeals), so memory grows
with the number of simulated accounts, which is capped, never with N. It is
deterministic for a seed: all randomness comes from one ``random.Random(seed)``.

How validity is kept, lane by lane (see ``ledger.rules``):

* Forward events happen at the account's clock plus a gap, so they are appended
  at the end of every lane and are checked against the simulated lane state.
* A backfilled event is either a new lane (follower snapshot, a post published
  earlier, an exemption under a fresh name) or lands after the last event of its
  own lane but before the account's clock, so it is still the newest in its lane.
* Retractions take only the last event of a lane that nothing references:
  follower snapshots, posts with no other events, exemptions still in force.
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

START = 1420070400  # 2015-01-01T00:00:00Z
END = 1767225599  # 2025-12-31T23:59:59Z
DAY = 86400

MAX_ACCOUNTS = 20_000
MAX_FOLLOWERS = 350_000_000
POSTS_PER_ACCOUNT = 6
FOLLOWER_IDS_PER_ACCOUNT = 3
APPEALABLE_PER_ACCOUNT = 4
PENDING_APPEALS_PER_ACCOUNT = 3

BACKFILL_SHARE = 0.10
RETRACTION_SHARE = 0.011
RENAME_SHARE = 0.0004
NOTE_SHARE = 0.2

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# --- vocabulary -------------------------------------------------------------------

PLATFORMS = (
    "twitter",
    "instagram",
    "facebook",
    "youtube",
    "tiktok",
    "telegram",
    "threads",
    "reddit",
)
PLATFORM_WEIGHTS = (26, 20, 20, 12, 10, 5, 4, 3)
PLATFORM_DOMAINS = {
    "twitter": "x.com",
    "instagram": "www.instagram.com",
    "facebook": "www.facebook.com",
    "youtube": "www.youtube.com",
    "tiktok": "www.tiktok.com",
    "telegram": "t.me",
    "threads": "www.threads.net",
    "reddit": "www.reddit.com",
}
PLATFORM_NAMES = {
    "twitter": ("Twitter", "X", "X (formerly Twitter)"),
    "instagram": ("Instagram", "Instagram (Meta)"),
    "facebook": ("Facebook", "Facebook (Meta)"),
    "youtube": ("YouTube", "YouTube (Google)"),
    "tiktok": ("TikTok", "TikTok (ByteDance)"),
    "telegram": ("Telegram", "Telegram Messenger"),
    "threads": ("Threads", "Threads (Meta)"),
    "reddit": ("Reddit",),
}
TWITTER_BECAME_X = 1690113600  # 2023-07-23T12:00:00Z
RENAMED_PLATFORMS = tuple(p for p in PLATFORMS if len(PLATFORM_NAMES[p]) > 1)
META_POLICIES = (
    "Dangerous Organisations and Individuals",
    "Hate Speech",
    "Violence and Incitement",
    "Misinformation",
    "Bullying and Harassment",
    "Coordinating Harm and Promoting Crime",
    "Inauthentic Behaviour",
)
POLICIES = {
    "twitter": (
        "Violent Speech",
        "Glorification of Violence",
        "Hateful Conduct",
        "Civic Integrity",
        "Synthetic and Manipulated Media",
        "Abuse and Harassment",
        "Violent and Hateful Entities",
        "Platform Manipulation and Spam",
    ),
    "instagram": META_POLICIES,
    "facebook": META_POLICIES,
    "threads": META_POLICIES,
    "youtube": (
        "Violent Extremist or Criminal Organizations",
        "Hate Speech",
        "Harassment and Cyberbullying",
        "Medical Misinformation",
        "Elections Misinformation",
        "Spam, Deceptive Practices and Scams",
    ),
    "tiktok": (
        "Violent and Hateful Organizations and Individuals",
        "Hate Speech and Hateful Behavior",
        "Integrity and Authenticity",
        "Harassment and Bullying",
        "Civic and Election Integrity",
    ),
    "telegram": (
        "Terms of Service: calls to violence",
        "Terms of Service: illegal pornographic content",
        "Terms of Service: public channels promoting violence",
    ),
    "reddit": (
        "Rule 1: harassment and violence",
        "Rule 2: content manipulation",
        "Rule 3: privacy violations",
    ),
}
RESTRICTIONS = (
    "read_only",
    "reduced_reach",
    "no_live",
    "no_monetisation",
    "no_ads",
    "search_ban",
    "no_dm",
    "posting_limit",
    "no_replies",
    "age_gate",
)
SCREEN_REASONS = (
    "violated the rules on violent speech; it may be in the public's interest for the post "
    "to remain accessible",
    "graphic or violent imagery shown behind an interstitial with a sensitive-content notice",
    "disputed claim about election integrity; labelled with context from fact-checkers",
    "misleading health claim; a warning screen links to information from health authorities",
    "newsworthy statement by a public official that otherwise breaks the hateful conduct rules",
    "manipulated media: the video was edited in a way that may mislead viewers",
    "praise of a designated organisation; kept up for public awareness and discussion",
)
SCREEN_EXCEPTIONS = ("public_interest", "newsworthiness", "documentary", "educational", "satire")
EXEMPTIONS = (
    "un_recognised_government_official",
    "public_interest",
    "newsworthiness",
    "world_leader",
    "elected_official",
    "verified_journalist",
    "civic_candidate",
    "cross_check",
    "state_media_label",
    "research_archive",
)
META_EXEMPTIONS = (
    "Meta newsworthiness allowance",
    "Meta cross-check programme",
    "Meta public figures policy (heads of state and government)",
)
EXEMPTION_POLICIES = {
    "twitter": ("X 'United Nations rule'", "X public-interest exception for world leaders"),
    "instagram": META_EXEMPTIONS,
    "facebook": META_EXEMPTIONS,
    "threads": META_EXEMPTIONS,
    "youtube": (
        "YouTube EDSA exception (educational, documentary, scientific, artistic)",
        "YouTube public interest exception",
    ),
    "tiktok": (
        "TikTok public interest exception",
        "TikTok government, politician and political party accounts policy",
    ),
    "telegram": ("Telegram public channel exception for official state bodies",),
    "reddit": ("Reddit newsworthiness exception",),
}
SUBJECT_EXEMPTION_POLICIES = (
    "X 'United Nations rule'",
    "Meta public figures policy (heads of state and government)",
    "Cross-platform world leaders policy",
    "EU Digital Services Act: protected political speech during elections",
)
RETRACTION_REASONS = {
    "followers_observed": (
        "Duplicate of an earlier observation from the same snapshot.",
        "The source was misread: the figure refers to another platform.",
        "Archived page was a cached copy of a different date; the observation is unreliable.",
    ),
    "post_published": (
        "Recorded against the wrong account; the source names a different handle.",
        "Entered twice by two researchers under different post ids; keeping the other record.",
        "The post was a forgery circulated as a screenshot; it was never published.",
    ),
    "exemption_applied": (
        "The cited article was corrected by the publisher and no longer supports this fact.",
        "The exemption belongs to another account of the same subject.",
    ),
}
NOTES = (
    "Date as reported; the exact time is not in the source.",
    "Screenshot archived by the research team before the change.",
    "Confirmed by two independent outlets.",
    "The figure is rounded in the source.",
    "Backfilled from an archived transparency report.",
    "Platform did not respond to a request for comment.",
    "Reported in the local press first; English coverage followed a day later.",
    "Time converted from local time to UTC.",
    "The handle was renamed later; the id here is the one current at the time.",
)
OUTLETS = (
    ("www.reuters.com", "world"),
    ("apnews.com", "article"),
    ("www.bbc.co.uk", "news"),
    ("www.theguardian.com", "technology"),
    ("www.nytimes.com", "technology"),
    ("www.aljazeera.com", "news"),
    ("www.washingtonpost.com", "technology"),
    ("www.france24.com", "en"),
    ("www.dw.com", "en"),
    ("restofworld.org", "reporting"),
)
AGENCIES = ("AFP", "Reuters", "AP", "DPA", "EFE", "ANSA")
HANDLE_WORDS = (
    "news",
    "official",
    "real",
    "the",
    "daily",
    "voice",
    "truth",
    "free",
    "info",
    "tv",
    "media",
    "live",
    "press",
    "channel",
    "ask",
    "team",
)
SLUG_WORDS = (
    "platform",
    "removes",
    "suspends",
    "account",
    "accounts",
    "leader",
    "posts",
    "ban",
    "restricts",
    "official",
    "election",
    "violence",
    "policy",
    "hate",
    "speech",
    "state",
    "media",
    "warning",
    "label",
    "reinstates",
    "appeal",
    "oversight",
    "board",
    "ruling",
    "minister",
    "government",
    "spokesperson",
    "campaign",
    "video",
    "removed",
    "content",
)
EXCERPTS = (
    "Statement on the situation in the region and a call to respond to the aggressors",
    "Video of the rally with a speech urging supporters to take to the streets",
    "Thread alleging that the election results were manipulated by the authorities",
    "Photo of the minister with a caption praising the armed forces",
    "Clip from a televised interview about the new security law",
    "Post sharing a claim about vaccine side effects attributed to a foreign lab",
    "Message to followers ahead of the national holiday",
    "Quote from a sermon about the enemies of the nation",
    "Announcement of a press conference at the ministry tomorrow morning",
    "Live stream of the parliamentary session with commentary",
    "Image macro mocking an opposition politician",
    "Link to a state media report on the border incident",
)
FIRST_NAMES = (
    "Ali",
    "Amina",
    "Carlos",
    "Olena",
    "Dmitri",
    "Fatima",
    "Hassan",
    "Ingrid",
    "Jair",
    "Kwame",
    "Lucia",
    "Mehmet",
    "Narendra",
    "Oksana",
    "Pedro",
    "Rania",
    "Sergei",
    "Tomas",
    "Yusuf",
    "Zanele",
    "Maria",
    "Chen",
    "Aiko",
    "Rodrigo",
)
LAST_NAMES = (
    "Hosseini",
    "Okafor",
    "Mendes",
    "Kovalenko",
    "Petrov",
    "Haddad",
    "Rahimi",
    "Larsen",
    "Silva",
    "Mensah",
    "Fernandez",
    "Yilmaz",
    "Sharma",
    "Bondar",
    "Castillo",
    "Nasser",
    "Ivanov",
    "Novak",
    "Demir",
    "Dlamini",
    "Garcia",
    "Wei",
    "Tanaka",
    "Duterte",
)
ORG_PATTERNS = (
    "{city} Daily News",
    "{city} People's Front",
    "Voice of {country_name}",
    "{country_name} Today",
    "{city} Broadcasting Corporation",
    "National Movement of {country_name}",
)
STATE_PATTERNS = (
    "Ministry of Foreign Affairs of {country_name}",
    "Office of the President of {country_name}",
    "{country_name} Armed Forces Press Service",
    "Embassy of {country_name} in London",
)
COUNTRIES = (
    ("US", "en", "United States", "Washington"),
    ("GB", "en", "the United Kingdom", "London"),
    ("IR", "fa", "Iran", "Tehran"),
    ("RU", "ru", "Russia", "Moscow"),
    ("BR", "pt-BR", "Brazil", "Brasilia"),
    ("IN", "hi", "India", "Delhi"),
    ("NG", "en", "Nigeria", "Lagos"),
    ("DE", "de", "Germany", "Berlin"),
    ("TR", "tr", "Turkey", "Ankara"),
    ("EG", "ar", "Egypt", "Cairo"),
    ("VE", "es", "Venezuela", "Caracas"),
    ("UA", "uk", "Ukraine", "Kyiv"),
    ("PH", "fil", "the Philippines", "Manila"),
    ("ZA", "en", "South Africa", "Johannesburg"),
    ("MX", "es", "Mexico", "Monterrey"),
    ("JP", "ja", "Japan", "Osaka"),
)
PERSON_ROLES = (
    "head_of_state",
    "head_of_government",
    "government_official",
    "minister",
    "legislator",
    "candidate",
    "party_leader",
    "journalist",
    "activist",
    "religious_leader",
    "influencer",
)
ORG_ROLES = ("news_outlet", "political_party", "state_media", "advocacy_group")
STATE_ROLES = ("ministry", "embassy", "military", "government_official")

# Regular (forward) actions and their relative weights.
ACTIONS = (
    ("post_published", 30.0),
    ("followers_observed", 22.0),
    ("post_warning_screen_applied", 6.0),
    ("post_warning_screen_removed", 2.0),
    ("post_removed", 6.0),
    ("post_restored", 1.5),
    ("account_restricted", 3.0),
    ("account_suspended", 2.5),
    ("account_reinstated", 3.0),
    ("account_removed", 0.6),
    ("exemption_applied", 1.3),
    ("exemption_revoked", 1.0),
    ("subject_exemption_applied", 0.8),
    ("subject_exemption_revoked", 0.4),
    ("appeal_filed", 3.0),
    ("appeal_decided", 2.5),
)
ACTION_NAMES = tuple(name for name, _ in ACTIONS)
ACTION_CUM: list[float] = []
for _, _weight in ACTIONS:
    ACTION_CUM.append((ACTION_CUM[-1] if ACTION_CUM else 0.0) + _weight)

BACKFILL_LANE_ACTIONS = (
    "post_warning_screen_applied",
    "post_removed",
    "post_restored",
    "post_warning_screen_removed",
    "account_restricted",
    "account_suspended",
    "account_reinstated",
    "exemption_revoked",
    "appeal_filed",
    "appeal_decided",
)

RESTRICT_DURATIONS = (DAY // 2, DAY, 3 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 90 * DAY)
SUSPEND_DURATIONS = (DAY // 2, 7 * DAY, 30 * DAY, 180 * DAY, 730 * DAY)

# Odd and coprime to 3, 5 and 31: n -> n * ID_MIX is a bijection modulo 62^k, 36^k and
# 9 * 10^15, so post ids derived from distinct line numbers never collide.
ID_MIX = 11400714819323198489
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
TOPICS = {
    "post_warning_screen_applied": "warning screen placed on the post",
    "post_warning_screen_removed": "lifting of the warning screen",
    "post_removed": "removal of the post",
    "post_restored": "restoration of the post",
    "account_restricted": "restriction of the account",
    "account_suspended": "suspension of the account",
    "account_reinstated": "reinstatement of the account",
    "account_removed": "removal of the account",
    "exemption": "exemption granted to the account",
    "followers": "reach of the account",
    "rebrand": "new name of the service",
}


def _iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _stamp(t: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def _human_date(t: int) -> str:
    tm = time.gmtime(t)
    return f"{tm.tm_mday} {MONTHS[tm.tm_mon - 1]} {tm.tm_year}"


def _encode(value: int, alphabet: str, width: int) -> str:
    base = len(alphabet)
    chars = []
    for _ in range(width):
        value, digit = divmod(value, base)
        chars.append(alphabet[digit])
    return "".join(reversed(chars))


def _slugify(text: str) -> str:
    out = []
    for ch in text.lower():
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        elif out and out[-1] != "_":
            out.append("_")
    return "".join(out).strip("_")


# --- simulation state -------------------------------------------------------------


@dataclass(slots=True)
class Post:
    post: str
    event_id: str  # the post_published event
    last_t: int  # occurred_at of the last event in this post's lane
    screened: bool = False
    removed: bool = False
    sole: bool = True  # only the publication exists: safe to retract


@dataclass(slots=True)
class Exemption:
    in_force: bool
    last_t: int
    applied_event_id: str | None  # set while the last lane event is this application


@dataclass(slots=True)
class Subject:
    subject: str
    name: str
    country: int
    reg_t: int
    clock: int
    exemptions: dict[str, Exemption] = field(default_factory=dict)


@dataclass(slots=True)
class Account:
    account: str
    platform: str
    handle: str
    subject: Subject | None
    reg_t: int
    clock: int  # the latest occurred_at written for this account
    weight: float
    followers: int
    peak_followers: int  # the audience this account grows towards
    status: str = "active"
    status_until: int | None = None
    status_last: int = 0
    posts: dict[str, Post] = field(default_factory=dict)
    follower_ids: list[str] = field(default_factory=list)
    exemptions: dict[str, Exemption] = field(default_factory=dict)
    appealable: list[tuple[str, int]] = field(default_factory=list)
    appeals: list[tuple[str, str, int]] = field(default_factory=list)  # id, target, filed_t

    def status_at(self, t: int) -> str:
        if self.status_until is not None and self.status_until <= t:
            return "active"
        return self.status


@dataclass
class Stats:
    lines: int = 0
    bytes: int = 0
    backfilled: int = 0
    types: dict[str, int] = field(default_factory=dict)
    accounts: int = 0
    subjects: int = 0


class Generator:
    """Streams valid events; ``stats`` is filled in as lines are produced."""

    def __init__(self, events: int, seed: int) -> None:
        if events < 0:
            raise ValueError("events must be >= 0")
        self.total = events
        self.seed = seed
        self.rng = random.Random(seed)
        self.n = 0
        self.planned_accounts = min(MAX_ACCOUNTS, max(50, events // 200))
        self.accounts: list[Account] = []
        self.cum_weights: list[float] = []
        self.subjects: list[Subject] = []
        self.open_subject: Subject | None = None
        self.open_slots = 0
        self.open_platforms: list[str] = []
        self.pending_account: Subject | None = None
        self.platform_clock: dict[str, int] = {}
        self.platform_renames: dict[str, int] = {}
        self.event_t = START  # occurred_at of the event being made
        self.stats = Stats()

    # --- driver -----------------------------------------------------------------

    def lines(self) -> Iterator[str]:
        encode = json.JSONEncoder(ensure_ascii=False).encode
        for n in range(self.total):
            self.n = n
            event, stream = self.step()
            backfilled = False
            if stream is not None:
                t = self.event_t
                if t < stream.clock:
                    backfilled = True
                else:
                    stream.clock = t
            line = encode(event)
            stats = self.stats
            stats.lines += 1
            stats.bytes += len(line.encode())
            if backfilled:
                stats.backfilled += 1
            kind = event["type"]
            stats.types[kind] = stats.types.get(kind, 0) + 1
            yield line

    def step(self) -> tuple[dict[str, Any], Account | Subject | None]:
        """One event and the stream it lands in (None for platforms)."""
        rng = self.rng
        if self.pending_account is not None:
            subject, self.pending_account = self.pending_account, None
            return self.register_account(subject), None
        if len(self.accounts) < self.target_accounts():
            return self.introduce_account(), None
        if rng.random() < RENAME_SHARE:
            return self.rename(), None
        account = self.pick_account()
        roll = rng.random()
        if roll < BACKFILL_SHARE:
            event = self.backfill(account)
            if event is not None:
                return event, account
        elif roll < BACKFILL_SHARE + RETRACTION_SHARE:
            event = self.retraction(account)
            if event is not None:
                return event, account
        return self.forward(account)

    def target_accounts(self) -> int:
        """Accounts appear over the first 60% of the stream, 10% of them up front."""
        planned = self.planned_accounts
        progress = self.n / max(1.0, 0.6 * self.total)
        return max(1, min(planned, int(planned * (0.1 + 0.9 * progress)) + 1))

    def pick_account(self) -> Account:
        rng = self.rng
        cum = self.cum_weights
        account = self.accounts[0]
        for _ in range(3):
            index = bisect.bisect_right(cum, rng.random() * cum[-1])
            account = self.accounts[min(index, len(self.accounts) - 1)]
            if account.status_at(account.clock) != "removed":
                break
        return account

    # --- time -------------------------------------------------------------------

    def next_time(self, account: Account) -> int:
        """A forward time for the account: after its clock, never past END."""
        remaining = (self.total - self.n) * account.weight / self.cum_weights[-1]
        span = END - account.clock
        mean_gap = span / (max(2.0, remaining) + 1.0)
        gap = int(self.rng.expovariate(1.0 / max(mean_gap, 1.0))) + 1
        if gap >= span:
            # Near the end of time: close part of the remaining distance, never pass END.
            gap = int(span * self.rng.random() * 0.5) + 1
        return min(account.clock + gap, END)

    # --- registration -----------------------------------------------------------

    def introduce_account(self) -> dict[str, Any]:
        rng = self.rng
        if self.open_subject is not None and self.open_slots > 0:
            self.open_slots -= 1
            return self.register_account(self.open_subject)
        if rng.random() < 0.15:
            return self.register_account(None)
        slots = rng.choices((1, 2, 3, 4), weights=(45, 30, 15, 10))[0]
        event, subject = self.register_subject()
        self.open_subject = subject
        self.open_slots = slots - 1
        self.open_platforms = self.sample_platforms(slots)
        self.pending_account = subject
        return event

    def sample_platforms(self, count: int) -> list[str]:
        chosen: list[str] = []
        while len(chosen) < count:
            platform = self.rng.choices(PLATFORMS, weights=PLATFORM_WEIGHTS)[0]
            if platform not in chosen:
                chosen.append(platform)
        return chosen

    def register_subject(self) -> tuple[dict[str, Any], Subject]:
        rng = self.rng
        index = len(self.subjects)
        country = rng.randrange(len(COUNTRIES))
        code, _lang, country_name, city = COUNTRIES[country]
        roll = rng.random()
        if roll < 0.7:
            kind = "person"
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            roles = rng.sample(PERSON_ROLES, rng.choice((1, 1, 2)))
        elif roll < 0.93:
            kind = "organisation"
            name = rng.choice(ORG_PATTERNS).format(city=city, country_name=country_name)
            roles = rng.sample(ORG_ROLES, 1)
        else:
            kind = "state_body"
            name = rng.choice(STATE_PATTERNS).format(country_name=country_name)
            roles = rng.sample(STATE_ROLES, rng.choice((1, 2)))
        slug = _slugify(name.removeprefix("the "))[:40].strip("_")
        reg_t = rng.randint(START, END - 3 * 365 * DAY)
        subject = Subject(f"{slug}_{index}", name, country, reg_t, reg_t)
        self.subjects.append(subject)
        self.stats.subjects += 1
        event: dict[str, Any] = {
            "type": "subject_registered",
            "event_id": self.event_id(),
            "subject": subject.subject,
            "name": name,
            "kind": kind,
            "roles": roles,
            "country": code,
            "occurred_at": _iso(reg_t),
            "source": self.profile_source(reg_t, name),
        }
        self.maybe_note(event)
        return event, subject

    def register_account(self, subject: Subject | None) -> dict[str, Any]:
        rng = self.rng
        index = len(self.accounts)
        if subject is not None and self.open_platforms:
            platform = self.open_platforms.pop()
            base = self.subject_handle(subject.name)
            country = subject.country
            reg_t = rng.randint(subject.reg_t, subject.reg_t + 2 * 365 * DAY)
        else:
            platform = rng.choices(PLATFORMS, weights=PLATFORM_WEIGHTS)[0]
            base = f"{rng.choice(HANDLE_WORDS)}{rng.choice(('', '_'))}{rng.choice(LAST_NAMES)}"
            base = base.lower()
            country = rng.randrange(len(COUNTRIES))
            reg_t = rng.randint(START, END - 2 * 365 * DAY)
        handle = f"{base.strip('._')}{index}"
        display = handle if platform in ("facebook", "reddit", "telegram") else "@" + handle
        weight = min(40.0, rng.paretovariate(1.3))
        followers = int(rng.lognormvariate(9.0, 2.0)) + 10
        peak = min(MAX_FOLLOWERS, followers * int(rng.uniform(2, 60)))
        account = Account(
            account=f"{platform}:{handle}",
            platform=platform,
            handle=handle,
            subject=subject,
            reg_t=reg_t,
            clock=reg_t,
            weight=weight,
            followers=followers,
            peak_followers=peak,
            status_last=reg_t,
        )
        self.accounts.append(account)
        self.cum_weights.append((self.cum_weights[-1] if self.cum_weights else 0.0) + weight)
        self.stats.accounts += 1
        event: dict[str, Any] = {
            "type": "account_registered",
            "event_id": self.event_id(),
            "account": account.account,
            "platform": platform,
            "handle": display,
        }
        if subject is not None:
            event["subject"] = subject.subject
        if rng.random() < 0.8:
            event["language"] = COUNTRIES[country][1]
        event["occurred_at"] = _iso(reg_t)
        event["source"] = f"https://web.archive.org/web/{_stamp(reg_t)}/{self.profile_url(account)}"
        if rng.random() < 0.5:
            event["note"] = (
                "Registered at its first known observation; the account's creation date is "
                "not in the sources."
            )
        return event

    def subject_handle(self, name: str) -> str:
        """'Amina Okafor' -> aminaokafor / amina_okafor; long names -> initials + last word."""
        words = _slugify(name.removeprefix("the ")).split("_")
        separator = self.rng.choice(("", "_", "."))
        if len("".join(words)) > 18:
            stop = ("of", "the", "in")
            initials = "".join(w[0] for w in words[:-1] if w not in stop)
            return f"{initials}{separator}{words[-1]}"
        return separator.join(words)

    def rename(self) -> dict[str, Any]:
        """The platform takes the next of its names (Twitter became X, and so on)."""
        rng = self.rng
        platform = rng.choice(RENAMED_PLATFORMS)
        clock = self.platform_clock.get(platform, START)
        expected = (self.total - self.n) * RENAME_SHARE / len(RENAMED_PLATFORMS)
        t = clock + int((END - clock) * rng.random() / (1.0 + expected))
        renames = self.platform_renames.get(platform, 0) + 1
        self.platform_renames[platform] = renames
        names = PLATFORM_NAMES[platform]
        name = names[renames % len(names)]
        if platform == "twitter":
            # Twitter became X on 23 Jul 2023 and never went back.
            t = max(t, TWITTER_BECAME_X)
            name = names[1 + (renames - 1) % 2]
        self.platform_clock[platform] = t
        self.event_t = t
        event: dict[str, Any] = {
            "type": "platform_renamed",
            "event_id": self.event_id(),
            "platform": platform,
            "name": name,
            "occurred_at": _iso(t),
            "source": self.press_source(t, "rebrand"),
        }
        self.maybe_note(event)
        return event

    # --- forward events ---------------------------------------------------------

    def forward(self, account: Account) -> tuple[dict[str, Any], Account | Subject]:
        rng = self.rng
        t = self.next_time(account)
        index = bisect.bisect_right(ACTION_CUM, rng.random() * ACTION_CUM[-1])
        action = ACTION_NAMES[min(index, len(ACTION_NAMES) - 1)]
        status = account.status_at(t)
        if status != "active" and action in ("followers_observed", "post_published"):
            # A sanctioned account is mostly about its sanction.
            if rng.random() < 0.35:
                action = "account_reinstated"
            elif status in ("suspended", "removed"):
                action = "followers_observed"
        if action.startswith("subject_exemption_") and account.subject is not None:
            subject = account.subject
            st = min(END, subject.clock + rng.randint(DAY, 200 * DAY))
            self.event_t = st
            event = self.subject_exemption(subject, action.endswith("applied"), st)
            if event is not None:
                return event, subject
        event = self.make(account, action, t, backfill=False)
        if event is None:
            fallback = (
                "post_published" if status in ("active", "restricted") else ("followers_observed")
            )
            event = self.make(account, fallback, t, backfill=False)
        assert event is not None
        return event, account

    def make(
        self, account: Account, action: str, t: int, *, backfill: bool
    ) -> dict[str, Any] | None:
        """One event of ``action`` at ``t`` if the simulated lanes allow it."""
        self.event_t = t
        if action == "post_published":
            return self.publish(account, t)
        if action == "followers_observed":
            return self.observe(account, t, backfill=backfill)
        if action.startswith("post_"):
            return self.post_action(account, action, t, backfill=backfill)
        if action.startswith("account_"):
            return self.status_action(account, action, t)
        if action.startswith("exemption_"):
            return self.exemption(account, action == "exemption_applied", t, backfill=backfill)
        if action.startswith("subject_exemption_"):
            return None
        if action == "appeal_filed":
            return self.file_appeal(account, t)
        if action == "appeal_decided":
            return self.decide_appeal(account, t, backfill=backfill)
        raise AssertionError(action)

    def publish(self, account: Account, t: int) -> dict[str, Any]:
        rng = self.rng
        post = self.post_id(account, t)
        event_id = self.event_id()
        posts = account.posts
        if len(posts) >= POSTS_PER_ACCOUNT:
            del posts[next(iter(posts))]
        posts[post] = Post(post, event_id, t)
        event: dict[str, Any] = {
            "type": "post_published",
            "event_id": event_id,
            "account": account.account,
            "post": post,
        }
        url = self.post_url(account, post)
        event["url"] = url
        if rng.random() < 0.75:
            event["excerpt"] = rng.choice(EXCERPTS)
        event["occurred_at"] = _iso(t)
        archived = _stamp(t + rng.randint(60, 3 * DAY))
        event["source"] = f"https://web.archive.org/web/{archived}/{url}"
        self.maybe_note(event)
        return event

    def observe(self, account: Account, t: int, *, backfill: bool) -> dict[str, Any]:
        rng = self.rng
        if backfill:
            count = int(account.followers * rng.uniform(0.55, 1.0))
        else:
            # Growth towards the account's peak audience, with noise; never unbounded.
            followers = account.followers
            growth = (account.peak_followers - followers) * rng.uniform(0.0, 0.08)
            noise = followers * rng.uniform(-0.02, 0.02)
            account.followers = max(0, min(MAX_FOLLOWERS, int(followers + growth + noise)))
            count = account.followers
        event_id = self.event_id()
        ids = account.follower_ids
        if len(ids) >= FOLLOWER_IDS_PER_ACCOUNT:
            ids.pop(0)
        ids.append(event_id)
        event: dict[str, Any] = {
            "type": "followers_observed",
            "event_id": event_id,
            "account": account.account,
            "count": count,
            "occurred_at": _iso(t),
        }
        roll = rng.random()
        if roll < 0.6:
            event["source"] = f"https://web.archive.org/web/{_stamp(t)}/{self.profile_url(account)}"
        elif roll < 0.85:
            event["source"] = (
                f"https://socialblade.com/{account.platform}/user/{account.handle.lower()}"
                f" (snapshot {_human_date(t)})"
            )
        else:
            event["source"] = self.press_source(t, "followers")
        self.maybe_note(event)
        return event

    def post_action(
        self, account: Account, action: str, t: int, *, backfill: bool
    ) -> dict[str, Any] | None:
        rng = self.rng
        candidates = [
            p
            for p in account.posts.values()
            if p.last_t <= t
            and (not backfill or p.last_t < t)
            and (
                (action == "post_warning_screen_applied" and not p.removed and not p.screened)
                or (action == "post_warning_screen_removed" and p.screened)
                or (action == "post_removed" and not p.removed)
                or (action == "post_restored" and p.removed)
            )
        ]
        if not candidates:
            return None
        post = rng.choice(candidates)
        post.last_t = t
        post.sole = False
        event_id = self.event_id()
        event: dict[str, Any] = {
            "type": action,
            "event_id": event_id,
            "account": account.account,
            "post": post.post,
        }
        if action == "post_warning_screen_applied":
            post.screened = True
            event["policy"] = rng.choice(POLICIES[account.platform])
            event["reason"] = rng.choice(SCREEN_REASONS)
            if rng.random() < 0.5:
                event["exception"] = rng.choice(SCREEN_EXCEPTIONS)
            self.appealable(account, event_id, t)
        elif action == "post_warning_screen_removed":
            post.screened = False
        elif action == "post_removed":
            post.removed = True
            event["policy"] = rng.choice(POLICIES[account.platform])
            self.appealable(account, event_id, t)
        else:
            post.removed = False
        event["occurred_at"] = _iso(t)
        event["source"] = self.press_source(t, action)
        self.maybe_note(event)
        return event

    def status_action(self, account: Account, action: str, t: int) -> dict[str, Any] | None:
        rng = self.rng
        if t < account.status_last:
            return None
        current = account.status_at(t)
        if action == "account_reinstated":
            if current == "active":
                return None
        elif current == "removed":
            return None
        event_id = self.event_id()
        event: dict[str, Any] = {"type": action, "event_id": event_id, "account": account.account}
        until: int | None = None
        if action == "account_restricted":
            event["policy"] = rng.choice(POLICIES[account.platform])
            event["restrictions"] = rng.sample(RESTRICTIONS, rng.choice((1, 1, 2, 3)))
            if rng.random() < 0.7:
                until = t + rng.choice(RESTRICT_DURATIONS)
        elif action == "account_suspended":
            event["policy"] = rng.choice(POLICIES[account.platform])
            if rng.random() < 0.6:
                until = t + rng.choice(SUSPEND_DURATIONS)
        elif action == "account_removed":
            event["policy"] = rng.choice(POLICIES[account.platform])
        if until is not None and until > END:
            until = None
        event["occurred_at"] = _iso(t)
        if until is not None:
            event["until"] = _iso(until)
        event["source"] = self.press_source(t, action)
        self.maybe_note(event)
        account.status_last = t
        account.status_until = until
        account.status = {
            "account_restricted": "restricted",
            "account_suspended": "suspended",
            "account_removed": "removed",
            "account_reinstated": "active",
        }[action]
        if action != "account_reinstated":
            self.appealable(account, event_id, t)
        return event

    def exemption(
        self, account: Account, apply: bool, t: int, *, backfill: bool
    ) -> dict[str, Any] | None:
        rng = self.rng
        states = account.exemptions
        if apply:
            names = [
                n
                for n in EXEMPTIONS
                if (state := states.get(n)) is None or (not state.in_force and state.last_t < t)
            ]
        else:
            names = [n for n, s in states.items() if s.in_force and s.last_t < t]
        if not names:
            return None
        name = rng.choice(names)
        event_id = self.event_id()
        states[name] = Exemption(apply, t, event_id if apply else None)
        event: dict[str, Any] = {
            "type": "exemption_applied" if apply else "exemption_revoked",
            "event_id": event_id,
            "account": account.account,
            "exemption": name,
            "policy": rng.choice(EXEMPTION_POLICIES[account.platform]),
            "occurred_at": _iso(t),
            "source": self.press_source(t, "exemption"),
        }
        self.maybe_note(event)
        return event

    def subject_exemption(self, subject: Subject, apply: bool, t: int) -> dict[str, Any] | None:
        rng = self.rng
        states = subject.exemptions
        if apply:
            names = [
                n
                for n in EXEMPTIONS[:6]
                if (state := states.get(n)) is None or (not state.in_force and state.last_t < t)
            ]
        else:
            names = [n for n, s in states.items() if s.in_force and s.last_t < t]
        if not names:
            return None
        name = rng.choice(names)
        event_id = self.event_id()
        states[name] = Exemption(apply, t, event_id if apply else None)
        event: dict[str, Any] = {
            "type": "exemption_applied" if apply else "exemption_revoked",
            "event_id": event_id,
            "subject": subject.subject,
            "exemption": name,
            "policy": rng.choice(SUBJECT_EXEMPTION_POLICIES),
            "occurred_at": _iso(t),
            "source": self.press_source(t, "exemption"),
        }
        self.maybe_note(event)
        return event

    def appealable(self, account: Account, event_id: str, t: int) -> None:
        targets = account.appealable
        if len(targets) >= APPEALABLE_PER_ACCOUNT:
            targets.pop(0)
        targets.append((event_id, t))

    def file_appeal(self, account: Account, t: int) -> dict[str, Any] | None:
        rng = self.rng
        candidates = [c for c in account.appealable if c[1] <= t]
        if not candidates or len(account.appeals) >= PENDING_APPEALS_PER_ACCOUNT:
            return None
        target, _target_t = rng.choice(candidates)
        account.appealable.remove((target, _target_t))
        appeal = f"{account.platform[:2]}-appeal-{self.seed}-{self.n}"
        account.appeals.append((appeal, target, t))
        event: dict[str, Any] = {
            "type": "appeal_filed",
            "event_id": self.event_id(),
            "account": account.account,
            "appeal": appeal,
            "target": target,
            "occurred_at": _iso(t),
            "source": self.appeal_source(account, t),
        }
        self.maybe_note(event)
        return event

    def decide_appeal(self, account: Account, t: int, *, backfill: bool) -> dict[str, Any] | None:
        rng = self.rng
        candidates = [a for a in account.appeals if a[2] < t]
        if not candidates:
            return None
        appeal, target, filed_t = rng.choice(candidates)
        account.appeals.remove((appeal, target, filed_t))
        event: dict[str, Any] = {
            "type": "appeal_decided",
            "event_id": self.event_id(),
            "account": account.account,
            "appeal": appeal,
            "target": target,
            "outcome": rng.choices(("upheld", "overturned", "modified"), weights=(6, 3, 1))[0],
            "occurred_at": _iso(t),
            "source": self.appeal_source(account, t),
        }
        self.maybe_note(event)
        return event

    # --- backfills and retractions ---------------------------------------------------

    def backfill(self, account: Account) -> dict[str, Any] | None:
        """An event earlier than the account's clock that is still valid."""
        rng = self.rng
        low, high = account.reg_t, account.clock - 1
        if high < low:
            return None  # nothing written after the registration yet
        event: dict[str, Any] | None = None
        roll = rng.random()
        if roll < 0.35:
            event = self.make(account, "followers_observed", rng.randint(low, high), backfill=True)
        elif roll < 0.6:
            event = self.make(account, "post_published", rng.randint(low, high), backfill=True)
        elif roll < 0.67:
            event = self.fresh_exemption(account, rng.randint(low, high))
        else:
            # The newest event of its own lane, but older than the account's clock.
            action = rng.choice(BACKFILL_LANE_ACTIONS)
            floor = self.lane_floor(account, action)
            if floor is not None and floor + 1 <= high:
                event = self.make(account, action, rng.randint(floor + 1, high), backfill=True)
        if event is None:
            # The chosen lane had no room in the past: a snapshot always fits.
            event = self.make(account, "followers_observed", rng.randint(low, high), backfill=True)
        return event

    def fresh_exemption(self, account: Account, t: int) -> dict[str, Any] | None:
        """An exemption under a name this account never had, applied in the past."""
        rng = self.rng
        fresh = [n for n in EXEMPTIONS if n not in account.exemptions]
        if not fresh:
            return None
        name = rng.choice(fresh)
        event_id = self.event_id()
        self.event_t = t
        account.exemptions[name] = Exemption(True, t, event_id)
        return {
            "type": "exemption_applied",
            "event_id": event_id,
            "account": account.account,
            "exemption": name,
            "policy": rng.choice(EXEMPTION_POLICIES[account.platform]),
            "occurred_at": _iso(t),
            "source": self.press_source(t, "exemption"),
            "note": "Backfilled: the exemption predates the first report that mentions it.",
        }

    def lane_floor(self, account: Account, action: str) -> int | None:
        """The earliest time after which ``action`` could still be the newest in its lane."""
        if action.startswith("account_"):
            return account.status_last
        if action.startswith("post_"):
            times = [p.last_t for p in account.posts.values()]
            return min(times) if times else None
        if action == "exemption_revoked":
            times = [s.last_t for s in account.exemptions.values() if s.in_force]
            return min(times) if times else None
        if action == "appeal_decided":
            times = [a[2] for a in account.appeals]
            return min(times) if times else None
        times = [c[1] for c in account.appealable]
        return min(times) if times else None

    def retraction(self, account: Account) -> dict[str, Any] | None:
        rng = self.rng
        roll = rng.random()
        target: str | None = None
        kind = "followers_observed"
        if roll < 0.6 and account.follower_ids:
            target = account.follower_ids.pop(rng.randrange(len(account.follower_ids)))
        elif roll < 0.85:
            sole = [p for p in account.posts.values() if p.sole]
            if sole:
                post = rng.choice(sole)
                del account.posts[post.post]
                target = post.event_id
                kind = "post_published"
        else:
            applied = [(n, s) for n, s in account.exemptions.items() if s.applied_event_id]
            if applied:
                _name, state = rng.choice(applied)
                target = state.applied_event_id
                kind = "exemption_applied"
                state.in_force = False
                state.applied_event_id = None
        if target is None:
            return None
        t = self.next_time(account)
        self.event_t = t
        event: dict[str, Any] = {
            "type": "event_retracted",
            "event_id": self.event_id(),
            "target": target,
            "reason": rng.choice(RETRACTION_REASONS[kind]),
            "occurred_at": _iso(t),
            "source": f"Research log, correction entered {_human_date(t)}",
        }
        self.maybe_note(event)
        return event

    # --- text -----------------------------------------------------------------------

    def event_id(self) -> str:
        return f"g{self.seed}-{self.n}"

    def maybe_note(self, event: dict[str, Any]) -> None:
        if self.rng.random() < NOTE_SHARE:
            event["note"] = self.rng.choice(NOTES)

    def profile_url(self, account: Account) -> str:
        domain = PLATFORM_DOMAINS[account.platform]
        if account.platform in ("tiktok", "threads"):
            return f"https://{domain}/@{account.handle}"
        if account.platform == "youtube":
            return f"https://{domain}/@{account.handle}"
        if account.platform == "reddit":
            return f"https://{domain}/user/{account.handle}"
        return f"https://{domain}/{account.handle}"

    def post_id(self, account: Account, t: int) -> str:
        """Platform-shaped post ids, unique per line number."""
        n = self.n
        platform = account.platform
        if platform in ("twitter", "tiktok"):
            epoch = 1288834974657 if platform == "twitter" else 1262304000000
            ms = t * 1000 + (n >> 22) % 1000 - epoch
            return str((ms << 22) | (n & 0x3FFFFF))
        if platform in ("instagram", "threads", "youtube"):
            return _encode((n * ID_MIX + 7) % 62**11, B62, 11)
        if platform == "facebook":
            return str(10**15 + (n * ID_MIX) % (9 * 10**15))
        if platform == "reddit":
            return _encode((n * ID_MIX + 11) % 36**7, B36, 7)
        return str(1000 + n)  # telegram message ids

    def post_url(self, account: Account, post: str) -> str:
        platform = account.platform
        domain = PLATFORM_DOMAINS[platform]
        handle = account.handle
        if platform == "twitter":
            return f"https://{domain}/{handle}/status/{post}"
        if platform == "instagram":
            return f"https://{domain}/p/{post}/"
        if platform == "facebook":
            return f"https://{domain}/{handle}/posts/{post}"
        if platform == "youtube":
            return f"https://{domain}/watch?v={post}"
        if platform == "tiktok":
            return f"https://{domain}/@{handle}/video/{post}"
        if platform == "threads":
            return f"https://{domain}/@{handle}/post/{post}"
        if platform == "reddit":
            return f"https://{domain}/user/{handle}/comments/{post}/"
        return f"https://{domain}/{handle}/{post}"

    def press_source(self, t: int, topic: str) -> str:
        rng = self.rng
        reported = min(END, t + rng.randint(0, 3 * DAY))
        roll = rng.random()
        if roll < 0.55:
            host, section = rng.choice(OUTLETS)
            tm = time.gmtime(reported)
            slug = "-".join(rng.sample(SLUG_WORDS, rng.randint(4, 8)))
            return f"https://{host}/{section}/{tm.tm_year}/{tm.tm_mon:02d}/{tm.tm_mday:02d}/{slug}/"
        if roll < 0.8:
            return (
                f"Platform spokesperson quoted by {rng.choice(AGENCIES)}, "
                f"{_human_date(reported)}: statement on the {TOPICS.get(topic, topic)}"
            )
        tm = time.gmtime(reported)
        return (
            f"Transparency report {tm.tm_year}-H{1 + (tm.tm_mon - 1) // 6}, "
            f"enforcement case {rng.randint(10**7, 10**8 - 1)}"
        )

    def profile_source(self, t: int, name: str) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            return f"https://www.wikidata.org/wiki/Q{rng.randint(10_000, 120_000_000)}"
        title = name.removeprefix("the ").replace(" ", "_")
        return f"https://en.wikipedia.org/wiki/{title} (revision of {_human_date(t)})"

    def appeal_source(self, account: Account, t: int) -> str:
        rng = self.rng
        if rng.random() < 0.3:
            year = time.gmtime(t).tm_year
            return (
                f"https://www.oversightboard.com/decision/{year}-"
                f"{rng.randint(1, 99):03d}-{account.platform[:2].upper()}-UA/"
            )
        return f"Appeal correspondence shared by the account holder, {_human_date(t)}"


def generate(events: int, seed: int) -> Iterator[str]:
    """Yield ``events`` JSON lines (without newline) of a valid history for ``seed``."""
    return Generator(events, seed).lines()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate",
        description="Write N valid synthetic enforcement events as JSON Lines to stdout.",
    )
    parser.add_argument("--events", type=int, required=True, help="number of lines (exact)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--types", action="store_true", help="also print counts per type")
    args = parser.parse_args(argv)
    if args.events < 0:
        parser.error("--events must be >= 0")
    generator = Generator(args.events, args.seed)
    started = time.perf_counter()
    out = sys.stdout
    chunk: list[str] = []
    for line in generator.lines():
        chunk.append(line)
        if len(chunk) >= 2000:
            out.write("\n".join(chunk) + "\n")
            chunk.clear()
    if chunk:
        out.write("\n".join(chunk) + "\n")
    out.flush()
    elapsed = time.perf_counter() - started
    stats = generator.stats
    lines = max(1, stats.lines)
    retractions = stats.types.get("event_retracted", 0)
    print(
        f"generated {stats.lines} events ({stats.accounts} accounts, {stats.subjects} subjects) "
        f"in {elapsed:.2f}s ({stats.lines / max(elapsed, 1e-9):,.0f} events/s); "
        f"average {stats.bytes / lines:.1f} bytes/line; "
        f"backfilled {stats.backfilled / lines:.2%}; retractions {retractions / lines:.2%}",
        file=sys.stderr,
    )
    if args.types:
        for kind, count in sorted(stats.types.items(), key=lambda kv: -kv[1]):
            print(f"  {kind:30} {count:>10} {count / lines:7.2%}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
