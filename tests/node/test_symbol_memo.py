"""The validator's symbol judgements, remembered (``TradeValidator._symbol_scales``): whatever
symbols come, in any order of calls, cold or warm, over the memo's cap or in bulk, each is
judged exactly as :meth:`TradeValidator.judge_symbols` judges it afresh."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.config.model import load_config
from clearlane.node.intake import validate
from clearlane.node.intake.validate import TradeValidator
from tests.service_support import EXAMPLE

CONFIG = load_config(EXAMPLE)
CODES = [a.code for a in CONFIG.assets]

_symbols = st.one_of(
    st.builds(lambda b, q: f"{b}/{q}", st.sampled_from(CODES), st.sampled_from(CODES)),  # valid, or B/B
    st.builds(lambda b: f"{b}/ZZZ", st.sampled_from(CODES)),  # an unknown quote
    st.builds(lambda b, q: f"{b.lower()}/{q}", st.sampled_from(CODES), st.sampled_from(CODES)),
    st.builds(lambda b, q: f"{b}/{q}/{q}", st.sampled_from(CODES), st.sampled_from(CODES)),
    st.text(max_size=12),
    st.none(),
)


def _fresh(values: list[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return TradeValidator(CONFIG).judge_symbols(pa.array(values, type=pa.string()))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_symbols, max_size=30), min_size=1, max_size=6))
def test_remembered_judgements_equal_fresh_ones(calls: list[list[str | None]]) -> None:
    validator = TradeValidator(CONFIG)
    for values in calls:
        got = validator._symbol_scales(pa.array(values, type=pa.string()))
        for mine, fresh in zip(got, _fresh(values), strict=True):
            assert mine.tolist() == fresh.tolist(), values
        ok, base = validator._symbol_lookup(pa.array(values, type=pa.string()))
        ok_q, quote = validator._quote_lookup(pa.array(values, type=pa.string()))
        assert ok.tolist() == ok_q.tolist() == got[0].tolist()
        assert base.tolist() == got[1].tolist() and quote.tolist() == got[2].tolist()


def test_the_memo_is_bounded_and_many_values_are_judged_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = TradeValidator(CONFIG)
    monkeypatch.setattr(validate, "_SYMBOL_MEMO_MAX", 8)
    first = [f"{CODES[1]}/{CODES[0]}", "NOPE/X", None]
    validator._symbol_scales(pa.array(first, type=pa.string()))
    assert set(validator._symbol_memo) == set(first)
    many = [f"X{i}/{CODES[0]}" for i in range(20)] + first  # past the cap: judged, not kept
    got = validator._symbol_scales(pa.array(many, type=pa.string()))
    assert set(validator._symbol_memo) == set(first)
    assert [a.tolist() for a in got] == [a.tolist() for a in _fresh(many)]
    monkeypatch.setattr(validate, "_SYMBOLS_BY_RE_MAX", 4)
    got = validator._symbol_scales(pa.array(many, type=pa.string()))  # in bulk, by Arrow
    assert [a.tolist() for a in got] == [a.tolist() for a in _fresh(many)]
    assert bool(got[0][-3]) and not got[0][-2] and not got[0][-1]
