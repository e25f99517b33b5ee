"""Output formats shared by every read command: table, --json, --nl, --csv, --spreadsheet.

Every format streams: rows are written as they arrive, so a million-row export
never sits in memory. The table sizes its columns from the first rows only.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO, TypeVar

import click

from ledger.vocabulary import JOINERS, hidden_at, shorten

F = TypeVar("F", bound=Callable[..., Any])
TABLE_SAMPLE = 200
MAX_CELL = 60
# Stored text comes from platforms and admins. In the human formats, control characters
# (C0, DEL, C1), the line and paragraph separators, the bidi marks, embeddings,
# overrides and isolates, the soft hyphen and the zero-width space, word joiner and BOM
# are shown escaped: an ESC sequence would drive the terminal, a line break would break
# the row, a bidi control would reorder the cells after it, an invisible one would hide
# in a name. So are the characters that print as nothing or as a blank though they are
# no space (the grapheme joiner, but where it keeps two marks apart, Hangul and halfwidth
# fillers, Khmer's inherent vowels,
# invisible operators, annotation marks, the braille blank: au21), and the format
# characters that print nothing in any text: the deprecated shaping controls, shorthand
# and musical format controls, and tag characters (which spell hidden ASCII) except in
# an emoji tag sequence, the flags of England, Scotland and Wales. --json/--nl/--csv
# give the text as stored. (Zero-width joiners stay where Persian and Indic spelling
# needs them, between letters of a script they shape.)
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e"
    "\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u206f\u2800\u3164\ufeff"
    "\uffa0\ufff9-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)
_TAG_SPEC = range(0xE0020, 0xE007F)  # the tags an emoji tag sequence spells with
_BLACK_FLAG, _CANCEL_TAG = "\U0001f3f4", "\U000e007f"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\U000e0020" <= char <= _CANCEL_TAG and _in_emoji_tag_sequence(match.string, match.start()):
        return char
    if char == "\u034f" and _keeps_marks_apart(match.string, match.start()):
        return char
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char) or (
        f"\\x{ord(char):02x}"
        if ord(char) < 0x100
        else f"\\u{ord(char):04x}"
        if ord(char) < 0x10000
        else f"\\U{ord(char):08x}"
    )


def _keeps_marks_apart(text: str, index: int) -> bool:
    """Whether the grapheme joiner at ``index`` keeps two marks in an order canonical
    ordering would swap (Biblical Hebrew's patah before hiriq, יְרוּשָׁלַ͏ִם): there it
    is spelling that prints, as the Unicode Standard recommends; elsewhere, nothing."""
    if not 0 < index < len(text) - 1:
        return False
    before, after = unicodedata.combining(text[index - 1]), unicodedata.combining(text[index + 1])
    return before > after > 0


def _in_emoji_tag_sequence(text: str, index: int) -> bool:
    """Whether the tag at ``index`` is one of a flag's: 🏴, tag letters, a cancel tag."""
    start = end = index
    while start > 0 and ord(text[start - 1]) in _TAG_SPEC:
        start -= 1
    while end < len(text) and ord(text[end]) in _TAG_SPEC:  # a cancel tag is none
        end += 1
    return (
        start > 0
        and text[start - 1] == _BLACK_FLAG
        and end > start
        and end < len(text)
        and text[end] == _CANCEL_TAG
    )


def printable(text: str) -> str:
    """Text safe to print for a person: escapes as above, and a stored backslash
    doubled, so that stored text spelling an escape (`\\u200b`, six characters) does
    not print as the character it names would."""
    shown = _UNPRINTABLE.sub(_escape, text.replace("\\", "\\\\"))
    if "\u200c" in shown or "\u200d" in shown:
        shown = "".join(
            f"\\u{ord(char):04x}" if _hidden_joiner(shown, i) else char
            for i, char in enumerate(shown)
        )
    return shown


def _hidden_joiner(text: str, index: int) -> bool:
    """A joiner that prints as nothing: not one of a word's, nor one joining an emoji
    sequence (👨‍💻, a ZWJ after a symbol, a skin tone or a variation selector)."""
    char = text[index]
    if char not in JOINERS or not hidden_at(text, index):
        return False
    if char == "\u200d" and 0 < index < len(text) - 1:
        before, after = text[index - 1], text[index + 1]
        emoji = unicodedata.category(before) in ("So", "Sk") or before == "\ufe0f"
        return not (emoji and unicodedata.category(after) == "So")
    return True


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide (East Asian, most emoji) characters two,
    combining marks and format characters none (Persian vowel marks, joiners)."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _fit(text: str) -> str:
    """A table cell: printable, and cut to MAX_CELL with a visible mark where cut."""
    return shorten(printable(text), MAX_CELL, _PART_OF_AN_ESCAPE)


# The start of an escape printable writes (\n, \x1b, \u200b, \U000e0041, \\), cut short
# at the end: after an even run of backslashes (doubled ones, whole).
_PART_OF_AN_ESCAPE = re.compile(
    r"(?:^|[^\\])(?:\\\\)*(\\(?:u[0-9a-f]{0,3}|U[0-9a-f]{0,7}|x[0-9a-f]?)?)\Z"
)


_FORMATS = [
    ("json", "One JSON document."),
    ("nl", "JSON Lines: one object per line."),
    ("csv", "CSV with a header row."),
    (
        "spreadsheet",
        "CSV to open in a spreadsheet: UTF-8 with a byte-order mark (which Excel needs "
        "to read non-Latin text), and a cell that would start a formula (=, +, -, @, "
        "tab, CR) gets a leading ' so it is shown, not run.",
    ),
]


def output_options(func: F) -> F:
    """--json / --nl / --csv / --spreadsheet, mutually exclusive (the default is a
    readable table): the command receives the choice as ``fmt``."""

    @functools.wraps(func)
    def with_format(*args: Any, **kwargs: Any) -> Any:
        chosen = [name for name, _ in _FORMATS if kwargs.pop("fmt_" + name)]
        if len(chosen) > 1:
            raise click.UsageError(
                "choose one output format: " + " or ".join("--" + c for c in chosen)
            )
        return func(*args, fmt=chosen[0] if chosen else "table", **kwargs)

    for name, help_text in reversed(_FORMATS):
        with_format = click.option("--" + name, "fmt_" + name, is_flag=True, help=help_text)(
            with_format
        )
    return with_format  # type: ignore[return-value]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _csv_cell(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# What spreadsheets read as the start of a formula (OWASP's CSV injection list). The
# ledger's text comes from platforms (post excerpts, handles, policies): a researcher
# opening an export must not run it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_cell(value: Any) -> str:
    text = _csv_cell(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _one_line_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, ensure_ascii=False)``, made once: dumps makes a JSONEncoder
    and its C encoder again on every call (5.1 against 3.1 µs a timeline row; 2 s of
    a 1M-event `timeline --nl`). No circular-reference check: rows are plain trees."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)  # typeshed does not declare it
    if make is None:  # a Python without the _json accelerator
        return functools.partial(json.dumps, ensure_ascii=False)
    chunks = make(
        None, json.JSONEncoder().default, encoder.encode_basestring, None, ": ", ", ",
        False, False, True,
    )  # fmt: skip
    return lambda value: "".join(chunks(value, 0))


_one_line = _one_line_encoder()


def _json_text(value: Any, indent: int | None = None) -> str:
    """JSON with the text as stored, but NEL, U+2028 and U+2029 escaped: valid raw in
    JSON, yet line breaks to readers that split lines on them (Python's splitlines, NEL
    too; JavaScript before ES2019), which then cut a JSON Lines record in two. JSON
    escapes every other break splitlines knows: all are below U+0020."""
    if indent is None:
        text = _one_line(value)
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent)
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        text = text.replace("\x85", "\\u0085")
    return text


def write_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    columns: Sequence[str],
    *,
    out: TextIO | None = None,
    table_columns: Sequence[str] | None = None,
    empty_message: str = "(no rows)",
) -> int:
    """Write rows in the chosen format; returns how many were written."""
    out = out or sys.stdout
    count = 0
    if fmt == "nl":
        for row in rows:
            out.write(_json_text(row) + "\n")
            count += 1
    elif fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("\n  " if count == 0 else ",\n  ") + _json_text(row))
            count += 1
        out.write("\n]\n" if count else "]\n")
    elif fmt in ("csv", "spreadsheet"):
        import csv

        cell = _csv_cell if fmt == "csv" else _spreadsheet_cell
        target: TextIO | _Utf8 = out
        if fmt == "spreadsheet":
            # Excel reads a CSV without a byte-order mark in the system's ANSI code page:
            # Persian handles and excerpts would open garbled. UTF-8 whatever the
            # terminal's encoding (cp1252 on Windows), which the mark announces.
            target = _Utf8(out)
            target.write("\ufeff")
        writer = csv.writer(target, lineterminator="\r\n")  # RFC 4180: records end in CRLF
        writer.writerow(columns)
        for row in rows:
            writer.writerow([cell(row.get(c)) for c in columns])
            count += 1
    else:
        count = _write_table(rows, table_columns or columns, out, empty_message)
    return count


class _Utf8:
    """Text written as UTF-8 bytes to a text stream's byte buffer, whatever the
    stream's own encoding (a stream without one takes the text as it is)."""

    def __init__(self, out: TextIO) -> None:
        out.flush()  # what was written as text goes first
        self.buffer = getattr(out, "buffer", None)
        self.out = out

    def write(self, text: str) -> int:
        if self.buffer is None:
            return self.out.write(text)
        return int(self.buffer.write(text.encode("utf-8")))


def _write_table(
    rows: Iterable[dict[str, Any]], columns: Sequence[str], out: TextIO, empty: str
) -> int:
    iterator = iter(rows)
    sample: list[list[str]] = []
    # The last column is not cut: nothing follows it to push out of line (a subject's
    # platforms summary, which is the row's point, runs long).
    fits = [_fit] * (len(columns) - 1) + [printable]

    def cells_of(row: dict[str, Any]) -> list[str]:
        return [fit(_cell(row.get(c))) for fit, c in zip(fits, columns, strict=True)]

    for row in iterator:
        sample.append(cells_of(row))
        if len(sample) >= TABLE_SAMPLE:
            break
    if not sample:
        click.echo(empty, err=True)
        return 0
    widths = [
        max([display_width(c)] + [display_width(r[i]) for r in sample])
        for i, c in enumerate(columns)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = (c + " " * (w - display_width(c)) for c, w in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip()

    out.write(line(columns) + "\n")
    out.write(line(["-" * w for w in widths]) + "\n")
    for cells in sample:
        out.write(line(cells) + "\n")
    count = len(sample)
    for row in iterator:
        out.write(line(cells_of(row)) + "\n")
        count += 1
    return count


def write_document(document: dict[str, Any], fmt: str, columns: Sequence[str]) -> None:
    """A single object: --json/--nl print it whole, --csv/--spreadsheet/table one row."""
    if fmt in ("json", "nl"):
        indent = 2 if fmt == "json" else None
        click.echo(_json_text(document, indent=indent))
        return
    write_rows([document], fmt, columns)
