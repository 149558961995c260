"""One canonical JSON: the bytes every hashed, signed or stored JSON value is written as."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from clearlane.core.proofs import canonical, verify
from clearlane.core.proofs.hashchain import canonical_json as chain_canonical_json

VALUE = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": ""}, "c": -3}


def test_canonical_json_bytes() -> None:
    assert canonical.canonical_json(VALUE) == '{"a":{"y":"","z":"é"},"b":[1,2.5,null,true],"c":-3}'.encode()
    assert canonical.canonical_json(VALUE, ascii_only=True) == (
        b'{"a":{"y":"","z":"\\u00e9"},"b":[1,2.5,null,true],"c":-3}'
    )


def test_default_turns_foreign_values_into_json() -> None:
    when = dt.date(2026, 1, 2)
    assert canonical.canonical_json({"d": when}, default=str) == b'{"d":"2026-01-02"}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_not_json_is_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        canonical.canonical_json({"x": bad})


def test_spaced_json_is_frozen() -> None:
    # The effects head of every recorded state root was folded with these bytes.
    assert (
        canonical.spaced_json(VALUE)
        == b'{"a": {"y": "", "z": "\\u00e9"}, "b": [1, 2.5, null, true], "c": -3}'
    )
    assert canonical.spaced_json([("P1-00000001", "final", 5, "")]) == b'[["P1-00000001", "final", 5, ""]]'


def test_one_function_behind_every_name() -> None:
    from clearlane.core.proofs import codec

    assert chain_canonical_json is canonical.canonical_json
    assert codec.canonical_json is canonical.canonical_json
    assert canonical.canonical_document is verify.canonical_document
    assert codec.encode_payload("deposit", {"b": 1, "a": "x"}) == b'{"a":"x","b":1}'


def test_canonical_document_bytes() -> None:
    assert canonical.canonical_document({"b": 1, "a": "é"}) == b'{\n "a": "\\u00e9",\n "b": 1\n}\n'
