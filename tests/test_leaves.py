"""Both leaf parsers read a leaf as json.loads does, and refuse what it refuses; the
read commands' one-line JSON writes what json.dumps does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.output import _json_text
from ledger.location import StoreError
from projections import leaves

FAST = leaves._fast_parser()

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), _values, max_size=8))
def test_parsers_agree_with_json(record: dict[str, object]) -> None:
    leaf = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    expected = json.loads(leaf)
    assert leaves.parse_stdlib(leaf) == expected
    assert FAST(leaf) == expected


@given(st.dictionaries(st.text(), _values, max_size=8) | _values)
def test_one_line_json_output_is_json_dumps_with_line_separators_escaped(value: object) -> None:
    def escaped(text: str) -> str:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        return text.replace("\x85", "\\u0085")

    assert _json_text(value) == escaped(json.dumps(value, ensure_ascii=False))
    assert _json_text([value, float("nan"), -0.0, 1e300]) == escaped(
        json.dumps([value, float("nan"), -0.0, 1e300], ensure_ascii=False)
    )
    assert len(_json_text(value).splitlines()) == 1


@pytest.mark.parametrize(
    "leaf",
    [
        b'{"a":"\\ud800"}',  # a lone surrogate escape: json accepts it, pydantic_core not
        b'{"a":1,"a":2}',
        b'{"a":1e400,"b":-0.0,"c":123456789012345678901234567890}',
        b'{"a":NaN}',
    ],
)
def test_edge_cases_read_as_json_reads_them(leaf: bytes) -> None:
    expected = repr(json.loads(leaf))  # repr: nan != nan
    assert repr(leaves.parse_stdlib(leaf)) == expected
    assert repr(FAST(leaf)) == expected


@pytest.mark.parametrize("leaf", [b'{"a":1} x', b'{"a":', b"", b"\xff"])
def test_malformed_leaves_raise_json_errors(leaf: bytes) -> None:
    try:
        json.loads(str(leaf, "utf-8"))
    except ValueError as error:  # JSONDecodeError or UnicodeDecodeError
        expected = error
    with pytest.raises(type(expected)) as stdlib:
        leaves.parse_stdlib(leaf)
    with pytest.raises(type(expected)) as fast:
        FAST(leaf)
    assert str(stdlib.value) == str(fast.value) == str(expected)


@pytest.mark.parametrize(("stored", "held"), [('{"a":1}', "text"), (None, "NULL"), (5, "a number")])
def test_a_stored_leaf_that_is_not_bytes_is_refused_by_both_parsers(
    stored: object, held: str
) -> None:
    """The sqlite3 shell's replace() makes a BLOB TEXT; pydantic_core would read text
    happily, and the two parsers must give one answer: the store was changed."""
    for parse in (leaves.parse_stdlib, FAST):
        with pytest.raises(StoreError, match=f"an event that is {held}, not bytes"):
            parse(stored)  # type: ignore[arg-type]


def test_the_fast_parser_is_used_once_it_pays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leaves, "_parsed", 0)
    monkeypatch.setattr(leaves, "_fast", None)
    assert leaves.parser(10) is leaves.parse_stdlib
    leaves.parsed(leaves.FAST_AFTER - 20)
    assert leaves.parser() is leaves.parse_stdlib
    fast = leaves.parser(10)
    assert fast is not leaves.parse_stdlib
    assert leaves.parser() is fast
