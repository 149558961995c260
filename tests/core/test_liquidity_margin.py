"""``[liquidity_margin]``: the pre-L2 liquidity check also charges the finality-window margin of
what a participant holds cleared but not final — off by default (the golden root is unchanged),
larger for a pool with a longer challenge window, and gone once the batch is final."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clearlane.core.config import ClearingConfig, parse_config
from clearlane.core.config.model import ConfigError
from clearlane.testing.harness import Harness
from tests.conftest import T0, chunk, config_with, example_raw, trade

WEEK_MS = 7 * 86_400_000


def _config(*, margin: bool, challenge_ms: int, credit: str = "100") -> ClearingConfig:
    raw = example_raw()
    for p in raw["participants"]:
        if p["id"] == "RTL-0001":
            p["credit_limit_usd"] = credit
    for pool in raw["pools"]:
        if pool["id"] == "retail":
            pool["challenge_window_ms"] = challenge_ms
    if margin:
        raw["liquidity_margin"] = {"enabled": True, "daily_vol": {"BTC": 0.04}}
    return parse_config(raw, source="test")


def _held(cfg: ClearingConfig) -> tuple[Harness, int]:
    """RTL-0001 buys 0.001 BTC (≈ 65 USD) on the retail pool; the batch clears and is held."""
    h = Harness(cfg, T0)
    h.apply("trades", chunk([trade(0, "RTL-0001", "RTL-0002", qty=(1, 3))]), T0)
    h.apply("tick", {}, T0 + 2_500)  # the retail window (2 s) closed: cleared, not final
    return h, cfg.participant_index()["RTL-0001"]


def test_off_by_default() -> None:
    assert config_with().liquidity_margin is None
    h, _ = _held(_config(margin=False, challenge_ms=WEEK_MS))
    assert h.engine.liquidity().margin_usd is None


def test_a_longer_challenge_window_costs_more_margin_until_final() -> None:
    short, p = _held(_config(margin=True, challenge_ms=10_000))
    long, _ = _held(_config(margin=True, challenge_ms=WEEK_MS))
    m_short = short.engine.liquidity().margin_usd
    m_long = long.engine.liquidity().margin_usd
    assert m_short is not None and m_long is not None
    assert 0 < m_short[p] < m_long[p] < 65
    # sqrt-of-time: a week's window against ~18 s costs ~sqrt(7 d / 18 s) ≈ 183 times more.
    assert m_long[p] / m_short[p] == pytest.approx(np.sqrt((WEEK_MS + 8_000) / 18_000), rel=0.01)
    short.run_until(T0 + 120_000, step_ms=2_000)  # anchored, confirmed, challenge window over
    after = short.engine.liquidity().margin_usd
    assert after is not None and after[p] == 0.0


def test_the_margin_diverts_a_flow_that_fits_without_it() -> None:
    def lane_of_second(margin: bool) -> Any:
        h, _ = _held(_config(margin=margin, challenge_ms=WEEK_MS))
        h.apply("trades", chunk([trade(1, "RTL-0001", "RTL-0002", qty=(14, 4), at=T0 + 3_000)]), T0 + 3_000)
        rows = [
            r for s in h.steps for t in s.tables() for r in t.to_pylist() if r.get("flow_id") == "T000001"
        ]
        return rows[0]["lane"], h.engine.stats.liquidity_diverted

    assert lane_of_second(False) == ("L2", 0)  # 91 USD of open debit under the 100 USD limit
    assert lane_of_second(True) == ("L1", 1)  # the held 65 USD's week-long margin (~16 USD) does not


def test_an_unknown_asset_in_daily_vol_is_refused() -> None:
    raw = example_raw()
    raw["liquidity_margin"] = {"enabled": True, "daily_vol": {"DOGE": 0.1}}
    with pytest.raises(ConfigError, match=r"liquidity_margin\.daily_vol"):
        parse_config(raw, source="test")
