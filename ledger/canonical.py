"""RFC 8785 (JCS) canonical JSON for ledger records.

Ledger records hold only strings, integers, booleans, null, lists and objects with
ASCII keys: no floats (counts are integers, times are strings), and integers only
within I-JSON's exact range (the event schema bounds them: RFC 8785 is not defined
beyond it). For such values the
standard library's sorted, separator-free, non-ASCII-escaping dump is byte-identical
to JCS, and about 4x faster than a general JCS encoder. A hypothesis test pins the
equivalence against the reference ``rfc8785`` package.
"""

from __future__ import annotations

import json
from typing import Any

_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(value: Any) -> bytes:
    """Canonical bytes of a float-free JSON value."""
    return _encode(value).encode("utf-8")
