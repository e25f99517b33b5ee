"""Parsing stored leaves (canonical JSON, UTF-8) back into records.

Reads parse every leaf they return: a replay a million of them, an account's
timeline thousands. Two parsers give the same values:

* the C scanner that ``json.loads`` ends in, called directly (without its
  encoding detection and wrappers): nothing to import;
* ``pydantic_core.from_json`` (a dependency already), which reads the bytes
  without decoding them to ``str`` first: 1.4 against 2.1 µs for a ~330-byte
  leaf. Importing it costs ~30 ms, so a process switches to it only once it has
  parsed enough leaves for that to pay off (a replay after its first 20,000 leaves, a
  long-lived reader after a few timelines; a one-shot CLI query never does).
  It caches keys only: a leaf's values (sources, excerpts, ids) rarely repeat,
  and caching them too cost 2.25 against 1.67 µs a ~500-byte stored leaf.

Anything ``from_json`` refuses (malformed JSON, a lone surrogate escape, which
``json`` accepts) goes to ``json``, so the result or the error is json's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.scanner import make_scanner
from typing import Any

from ledger.persistence import leaf_bytes

# Leaves parsed in this process before pydantic_core's parser is imported and used.
FAST_AFTER = 20_000

_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]
)


def parse_text(text: str) -> Any:
    """``json.loads`` of a ``str`` without its per-call wrappers."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return json.loads(text)  # leading/trailing junk: raises json's own error
    return value


def parse_stdlib(leaf: bytes) -> Any:
    try:
        text = str(leaf, "utf-8")
    except TypeError:  # NULL or text where a leaf was: leaf_bytes says so
        text = str(leaf_bytes(leaf), "utf-8")
    return parse_text(text)


def _fast_parser() -> Callable[[bytes], Any]:
    from pydantic_core import from_json

    def parse_fast(leaf: bytes) -> Any:
        if leaf.__class__ is not bytes:  # from_json reads text too: refuse it as stdlib does
            return parse_stdlib(leaf)
        try:
            return from_json(leaf, cache_strings="keys")
        except ValueError:
            return parse_stdlib(leaf)

    return parse_fast


_parsed = 0
_fast: Callable[[bytes], Any] | None = None


def parser(leaves: int = 0) -> Callable[[bytes], Any]:
    """The leaf parser to use for the next ``leaves`` leaves (counted as parsed)."""
    global _parsed, _fast
    if _fast is not None:
        return _fast
    _parsed += leaves
    if _parsed < FAST_AFTER:
        return parse_stdlib
    _fast = _fast_parser()
    return _fast


def parsed(leaves: int) -> None:
    """Count leaves parsed with a parser whose count was not known in advance."""
    global _parsed
    if _fast is None:
        _parsed += leaves
