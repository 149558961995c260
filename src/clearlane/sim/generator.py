"""A realistic, reproducible trading day: reference data, trades and opening collateral.

Everything is drawn from one ``np.random.Generator(PCG64(seed))`` in a fixed order with
whole-array calls, so the same arguments give byte-identical output and ten million trades take
seconds, not minutes. The shape of the day:

* **Assets**: USD first, then real codes (BTC, ETH, SOL, EUR, GBP, XRP, ...; scale 8 for most
  crypto, 6 for some, 2 for fiat, 0 for JPY) with plausible USD marks. Symbols are ``BASE/QUOTE``
  with mostly USD quotes plus crypto and fiat crosses (ETH/BTC, EUR/GBP, USD/JPY) so netting
  spans many assets.
* **Participants**: ~2 % market makers (maker fee tier, large credit), ~8 % brokers, ~3 %
  custodians (a third of them legacy opt-outs that stay on Layer-1), ~2 % marketplaces, the
  rest retail. Ids look like ``MM-0001``, ``BRK-0042``, ``RTL-01234``.
* **Activity** is power-law: Zipf weights per participant, scaled by kind; a market maker is
  on one side of most trades.
* **Time**: a two-hump intraday curve (European and US opens) over a flat base; ``executed_at``
  is non-decreasing over the 24 h day.
* **Prices** follow a per-symbol geometric random walk around the mark (on a one-minute grid)
  plus a small bid/ask bounce, rounded to a per-symbol tick; **quantities** come from a
  log-normal USD notional (by the non-market-maker side's kind) rounded to a per-symbol lot,
  so sizes run from retail tickets to a few trades above the high-value routing threshold.
* **Lane hints**: a few venues ask for a pool or for L1; enough ``L1`` hints are added that
  opt-outs + high-value + hints reach ``l1_share_target`` of trades.

The trades table has the input columns of ``INPUT_TRADE_COLUMNS`` + ``exch_batch_id`` and
``lane_hint``: ``quantity``/``price`` are decimal strings, ``executed_at`` is int64 epoch
milliseconds (Parquet keeps it int64), and the low-cardinality text columns (venue, symbol,
buyer, seller, lane_hint) are dictionary-encoded strings.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clearlane.core.config.model import ClearingConfig, ParticipantKind, parse_config
from clearlane.core.model.inputs import CollateralDeposit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _same_everywhere(fn: Callable[[float], float], x: F64) -> F64:
    """``fn`` (a ``math`` function) of every element of ``x``, through the C library. NumPy's own
    ``exp``, ``log10`` and ``power`` pick a SIMD implementation by the CPU at run time (AVX-512 or
    AVX2), whose last bits differ; a few of the day's rounding decisions then differed, and the
    same seed generated a different day on another machine (a different state root). ~0.1 µs an
    element."""
    flat = np.asarray(x, dtype=np.float64).ravel().tolist()
    return np.fromiter(map(fn, flat), dtype=np.float64, count=len(flat)).reshape(np.shape(x))


def _tens(exponents: npt.NDArray[Any]) -> F64:
    """``10.0 ** e`` for integer exponents, each the double nearest the exact power."""
    return np.array([float(f"1e{int(e)}") for e in np.asarray(exponents).ravel()], dtype=np.float64).reshape(
        np.shape(exponents)
    )


DAY_MS = 86_400_000
HIGH_VALUE_USD = 1_000_000
ASSETS_MAX = 16
PARTICIPANTS_MIN = 5

# code, scale, USD mark per whole unit, daily volatility
_ASSETS: tuple[tuple[str, int, float, float], ...] = (
    ("USD", 2, 1.0, 0.0),
    ("BTC", 8, 65_000.0, 0.030),
    ("ETH", 8, 3_200.0, 0.040),
    ("SOL", 8, 150.0, 0.060),
    ("EUR", 2, 1.08, 0.005),
    ("GBP", 2, 1.27, 0.005),
    ("XRP", 6, 0.55, 0.050),
    ("USDC", 6, 1.0, 0.0005),
    ("LTC", 8, 85.0, 0.045),
    ("ADA", 6, 0.45, 0.055),
    ("DOT", 8, 7.2, 0.055),
    ("CHF", 2, 1.13, 0.004),
    ("JPY", 0, 0.0067, 0.006),
    ("LINK", 8, 14.5, 0.055),
    ("AVAX", 8, 36.0, 0.060),
    ("XAU", 4, 2_400.0, 0.010),
)
# Crosses beyond X/USD (used when both assets are in the day), with a popularity weight.
_CROSSES: tuple[tuple[str, str, float], ...] = (
    ("ETH", "BTC", 0.35),
    ("SOL", "BTC", 0.10),
    ("SOL", "ETH", 0.08),
    ("XRP", "BTC", 0.06),
    ("LTC", "BTC", 0.05),
    ("BTC", "USDC", 0.30),
    ("ETH", "USDC", 0.20),
    ("EUR", "GBP", 0.10),
    ("EUR", "CHF", 0.05),
    ("USD", "JPY", 0.25),
    ("LINK", "ETH", 0.04),
    ("ADA", "BTC", 0.03),
    ("DOT", "ETH", 0.03),
    ("XAU", "EUR", 0.03),
)
# X/USD popularity by asset (asset order above); JPY trades as USD/JPY instead of JPY/USD.
_USD_PAIR_WEIGHT = {
    "BTC": 1.0,
    "ETH": 0.7,
    "SOL": 0.30,
    "EUR": 0.35,
    "GBP": 0.20,
    "XRP": 0.15,
    "USDC": 0.10,
    "LTC": 0.06,
    "ADA": 0.06,
    "DOT": 0.04,
    "CHF": 0.08,
    "LINK": 0.05,
    "AVAX": 0.05,
    "XAU": 0.08,
}

# kind, id prefix, share of participants, activity multiplier, credit limit USD, fee tier,
# notional log-normal median USD and sigma (for trades where this kind faces a market maker)
_KINDS: tuple[tuple[ParticipantKind, str, float, float, int, str, float, float], ...] = (
    (ParticipantKind.MARKET_MAKER, "MM", 0.02, 1.0, 10_000_000, "maker", 40_000.0, 1.6),
    (ParticipantKind.BROKER, "BRK", 0.08, 25.0, 2_000_000, "standard", 15_000.0, 1.3),
    (ParticipantKind.CUSTODIAN, "CUST", 0.03, 8.0, 1_000_000, "standard", 40_000.0, 1.3),
    (ParticipantKind.MARKETPLACE, "MKT", 0.02, 30.0, 500_000, "standard", 8_000.0, 1.4),
    (ParticipantKind.RETAIL, "RTL", 0.85, 1.0, 25_000, "retail", 600.0, 1.5),
)
_VENUES = (("XCLR-SPOT", 0.82), ("XCLR-OTC", 0.12), ("XCLR-RFQ", 0.06))
MM_SIDE_SHARE = 0.80  # trades with a market maker on one side
HALF_SPREAD = 0.5e-4  # half the bid/ask spread, relative to the price (a 1 bp book)
ROUND_SIZE_SHARE_RETAIL = 0.6
ROUND_SIZE_SHARE_OTHER = 0.3
NOTIONAL_MAX_USD = 25_000_000.0
ZIPF_EXPONENT = 1.1
EXCH_BATCH_MS = 250  # venues stamp a batch id per quarter second


@dataclass(frozen=True)
class DayPaths:
    config: Path
    trades: Path
    deposits: Path


@dataclass
class GeneratedDay:
    """One generated day: ``config_toml`` (valid for ``parse_config``), ``trades`` (input
    columns, see the module docstring) and opening ``deposits``."""

    config_toml: str
    trades: pa.Table
    deposits: list[CollateralDeposit]
    config: ClearingConfig

    def write(self, directory: Path) -> DayPaths:
        """Write ``config.toml``, ``trades.parquet`` and ``deposits.jsonl`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = DayPaths(
            config=directory / "config.toml",
            trades=directory / "trades.parquet",
            deposits=directory / "deposits.jsonl",
        )
        paths.config.write_text(self.config_toml, encoding="utf-8")
        pq.write_table(self.trades, paths.trades, compression="zstd")
        with paths.deposits.open("w", encoding="utf-8") as out:
            for deposit in self.deposits:
                out.write(deposit.model_dump_json() + "\n")
        return paths


# ---------------------------------------------------------------------------------------
# reference data
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Participants:
    ids: list[str]
    kinds: list[ParticipantKind]
    kind_index: I64  # index into _KINDS
    opt_out: npt.NDArray[np.bool_]


def _participants(count: int, rng: np.random.Generator) -> _Participants:
    shares = np.array([k[2] for k in _KINDS])
    counts = np.maximum(np.floor(shares * count).astype(np.int64), 1)
    counts[-1] = count - counts[:-1].sum()  # retail takes the remainder
    ids: list[str] = []
    kinds: list[ParticipantKind] = []
    kind_index: list[int] = []
    for k, (kind, prefix, *_rest) in enumerate(_KINDS):
        width = max(4 if kind is not ParticipantKind.RETAIL else 5, len(str(int(counts[k]))))
        ids.extend(f"{prefix}-{i:0{width}d}" for i in range(1, int(counts[k]) + 1))
        kinds.extend([kind] * int(counts[k]))
        kind_index.extend([k] * int(counts[k]))
    kind_arr = np.asarray(kind_index, dtype=np.int64)
    # A third of the custodians (at least one) are legacy systems that stay on Layer-1.
    custodians = np.flatnonzero(kind_arr == 2)
    opt_out = np.zeros(count, dtype=np.bool_)
    chosen = rng.choice(custodians, size=max(1, len(custodians) // 3), replace=False)
    opt_out[chosen] = True
    return _Participants(ids=ids, kinds=kinds, kind_index=kind_arr, opt_out=opt_out)


def _symbols(asset_count: int) -> tuple[list[tuple[int, int]], F64]:
    codes = [a[0] for a in _ASSETS[:asset_count]]
    pairs: list[tuple[int, int]] = []
    weights: list[float] = []
    for i, code in enumerate(codes):
        if code in _USD_PAIR_WEIGHT:
            pairs.append((i, 0))
            weights.append(_USD_PAIR_WEIGHT[code])
    for base, quote, weight in _CROSSES:
        if base in codes and quote in codes:
            pairs.append((codes.index(base), codes.index(quote)))
            weights.append(weight)
    w = np.asarray(weights, dtype=np.float64)
    return pairs, w / w.sum()


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _config_toml(asset_count: int, people: _Participants, seed: int, preset: str | None = None) -> str:
    lines = _clearing_toml(seed) if preset is None else _preset_clearing_toml(seed, preset)
    lines += _assets_toml(asset_count)
    lines += [
        "[fee_tiers]",
        'maker = { bps = "0.5" }',
        'standard = { bps = "2" }',
        'retail = { bps = "5" }',
        "",
    ]
    lines += _participants_toml(people)
    lines += _pools_toml() if preset is None else _preset_pools_toml()
    lines += _routing_toml()
    return "\n".join(lines)


def _preset_clearing_toml(seed: int, preset: str) -> list[str]:
    """Block time, confirmations and retry clocks come from the named base-layer preset
    (core/config/presets.py)."""
    drop = ("l1_confirmations", "l1_resubmit_ms", "block_time_ms")
    lines = [line for line in _clearing_toml(seed) if not line.startswith(drop)]
    at = lines.index("[chain]") + 1
    return [*lines[:at], f"preset = {_toml_string(preset)}", *lines[at:]]


def _preset_pools_toml() -> list[str]:
    """L2 pools as they run beside a real base layer: sub-second to seconds windows (soft
    finality at window close), anchor confirmations from the preset."""
    lines: list[str] = []
    for pool_id, description, window_ms, size_max, challenge_ms, discount in (
        ("fast", "market makers: short window, fee discount", 200, 50000, 0, "40"),
        ("retail", "trust-minimized pool with a challenge window", 500, 50000, 120000, "0"),
        ("bulk", "brokers and marketplaces: large batches", 800, 200000, 0, "20"),
    ):
        lines += [
            "[[pools]]",
            f"id = {_toml_string(pool_id)}",
            f"description = {_toml_string(description)}",
            f"window_ms = {window_ms}",
            f"size_max = {size_max}",
            f"challenge_window_ms = {challenge_ms}",
            f"fee_discount_pct = {_toml_string(discount)}",
            "",
        ]
    return lines


def _clearing_toml(seed: int) -> list[str]:
    return [
        "# clearlane generated trading-day configuration (clearlane.sim.generator)",
        "",
        "[clearing]",
        'house = "HOUSE"',
        'reporting_asset = "USD"',
        "l1_confirmations = 3",
        "l1_resubmit_ms = 30000",
        'liquidity_breach = "route_l1"',
        "trade_chunk_rows_max = 65536",
        "",
        "[chain]",
        "block_time_ms = 2000",
        "txs_per_block_max = 50000",
        "fee_per_tx_minor = 5",
        'fee_asset = "USD"',
        f"seed = {seed % (1 << 31)}",
        "",
    ]


def _assets_toml(asset_count: int) -> list[str]:
    lines: list[str] = []
    for code, scale, mark, _vol in _ASSETS[:asset_count]:
        lines += [
            "[[assets]]",
            f"code = {_toml_string(code)}",
            f"scale = {scale}",
            f"mark_usd = {_toml_string(_mark_text(mark))}",
            "",
        ]
    return lines


def _participants_toml(people: _Participants) -> list[str]:
    lines: list[str] = []
    for pid, kind_k, opt_out in zip(
        people.ids, people.kind_index.tolist(), people.opt_out.tolist(), strict=True
    ):
        kind, _prefix, _share, _activity, credit, tier, _median, _sigma = _KINDS[kind_k]
        lines += [
            "[[participants]]",
            f"id = {_toml_string(pid)}",
            f"kind = {_toml_string(kind.value)}",
            f'credit_limit_usd = "{credit}"',
            f"fee_tier = {_toml_string(tier)}",
        ]
        if opt_out:
            lines.append("legacy_opt_out = true")
        lines.append("")
    return lines


def _pools_toml() -> list[str]:
    # Windows are long enough that a 10M-trade day closes thousands of batches, not
    # hundreds of thousands (a batch per window per pool while trading is continuous).
    return [
        "[[pools]]",
        'id = "fast"',
        'description = "market makers: short window, fee discount"',
        "window_ms = 30000",
        "size_max = 50000",
        "confirmations = 2",
        "challenge_window_ms = 0",
        'fee_discount_pct = "40"',
        "",
        "[[pools]]",
        'id = "retail"',
        'description = "trust-minimized pool with a challenge window"',
        "window_ms = 60000",
        "size_max = 50000",
        "confirmations = 3",
        "challenge_window_ms = 120000",
        'fee_discount_pct = "0"',
        "",
        "[[pools]]",
        'id = "bulk"',
        'description = "brokers and marketplaces: large batches"',
        "window_ms = 120000",
        "size_max = 200000",
        "confirmations = 2",
        "challenge_window_ms = 0",
        'fee_discount_pct = "20"',
        "",
    ]


def _routing_toml() -> list[str]:
    lines: list[str] = []
    rules = [
        ("legacy opt-out", "{ opt_out = true }", "L1", None),
        ("venue asked for L1", '{ lane_hint = "L1" }', "L1", None),
        ("high value", f'{{ notional_usd_above = "{HIGH_VALUE_USD}" }}', "L1", None),
        ("venue asked for fast", '{ lane_hint = "fast" }', "L2", "fast"),
        ("venue asked for bulk", '{ lane_hint = "bulk" }', "L2", "bulk"),
        ("retail", '{ any_kind = ["retail"] }', "L2", "retail"),
        ("brokers and marketplaces", '{ any_kind = ["broker", "marketplace"] }', "L2", "bulk"),
        ("market makers", '{ any_kind = ["market_maker"] }', "L2", "fast"),
        ("everyone else", None, "L2", "bulk"),
    ]
    for name, when, lane, pool in rules:
        lines += ["[[routing]]", f"name = {_toml_string(name)}"]
        if when is not None:
            lines.append(f"when = {when}")
        lines.append(f'lane = "{lane}"')
        if pool is not None:
            lines.append(f"pool = {_toml_string(pool)}")
        lines.append("")
    return lines


def _mark_text(mark: float) -> str:
    text = f"{mark:.10f}".rstrip("0").rstrip(".")
    return text or "0"


# ---------------------------------------------------------------------------------------
# columns
# ---------------------------------------------------------------------------------------


def _zipf_weights(count: int, rng: np.random.Generator) -> F64:
    """Zipf weights over a random ranking (so activity is not correlated with id order)."""
    ranks = rng.permutation(count).astype(np.float64) + 1.0
    weights: F64 = _same_everywhere(lambda r: r**-ZIPF_EXPONENT, ranks)
    return weights


def _draw(weights: F64, size: int, rng: np.random.Generator) -> I64:
    """Indices drawn with probability proportional to ``weights``.

    Walker's alias method: two uniform draws and two gathers per sample, about three times
    faster than an inverse-CDF binary search over thousands of participants.
    """
    count = len(weights)
    scaled = np.asarray(weights, dtype=np.float64) * (count / float(np.sum(weights)))
    accept = np.ones(count, dtype=np.float64)
    alias = np.arange(count, dtype=np.int64)
    small = [i for i in range(count) if scaled[i] < 1.0]
    large = [i for i in range(count) if scaled[i] >= 1.0]
    while small and large:
        low, high = small.pop(), large[-1]
        accept[low] = scaled[low]
        alias[low] = high
        scaled[high] -= 1.0 - scaled[low]
        if scaled[high] < 1.0:
            small.append(large.pop())
    slot = rng.integers(0, count, size=size, dtype=np.int64)
    keep = rng.random(size) < accept[slot]
    picks: I64 = np.where(keep, slot, alias[slot])
    return picks


def _intraday_ms(size: int, rng: np.random.Generator) -> I64:
    """Sorted offsets into the day: a flat base plus humps at the European (08:00 UTC) and US
    (14:30 UTC) opens."""
    counts = rng.multinomial(size, [0.30, 0.30, 0.40])
    hours = np.concatenate(
        [
            rng.random(counts[0]) * 24.0,
            rng.normal(8.0, 1.5, counts[1]),
            rng.normal(14.5, 2.0, counts[2]),
        ]
    )
    hours *= 3_600_000.0
    offsets: I64 = np.mod(hours, DAY_MS).astype(np.int64)
    del hours
    offsets.sort()
    return offsets


def _fixed_text(units: I64, decimals: I64) -> pa.Array:
    """Decimal strings for integer ``units`` with per-row ``decimals`` (``12345``, 2 → ``123.45``)."""
    scale = (10**decimals).astype(np.int64)
    whole = pc.cast(pa.array(units // scale), pa.string())
    # 10**d + fraction has exactly d+1 digits: dropping the leading 1 zero-pads the fraction.
    fraction = pc.utf8_slice_codeunits(pc.cast(pa.array(units % scale + scale), pa.string()), 1)
    joined = pc.binary_join_element_wise(whole, fraction, pa.scalar(".", pa.string()))
    integral = decimals == 0
    if not integral.any():
        return joined
    return pc.if_else(pa.array(integral), whole, joined)


def _trade_ids(count: int) -> pa.Array:
    """``XCL-`` + a 10-digit sequence, written straight into an Arrow string buffer."""
    if count * 14 >= 2**31:
        raise ValueError("at most 153 million trades per generated day (32-bit string offsets)")
    # 10**10 + i has 11 digits; its last 10 are i zero-padded.
    digits = pc.cast(pa.array(np.arange(1, count + 1, dtype=np.int64) + 10**10), pa.string())
    raw = np.frombuffer(digits.buffers()[2], dtype=np.uint8)[: count * 11].reshape(count, 11)
    text = np.empty((count, 14), dtype=np.uint8)
    text[:, :4] = np.frombuffer(b"XCL-", dtype=np.uint8)
    text[:, 4:] = raw[:, 1:]
    offsets = np.arange(0, 14 * (count + 1), 14, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def _exchange_batches(executed_at: I64) -> pa.Array:
    """``EB-<quarter-second>`` per trade; times are sorted, so batches are runs.

    Returned as plain strings: a dictionary column would carry all ~350,000 ids of the day
    into every Parquet row group and every batch read back.
    """
    window = executed_at // EXCH_BATCH_MS
    starts = np.concatenate([[True], window[1:] != window[:-1]])
    codes = (np.cumsum(starts) - 1).astype(np.int32)
    labels = pc.binary_join_element_wise(
        pa.scalar("EB-", pa.string()),
        pc.cast(pa.array(window[starts]), pa.string()),
        pa.scalar("", pa.string()),
    )
    return labels.take(pa.array(codes))


def _dictionary(codes: npt.NDArray[np.integer], values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32)), pa.array(values, type=pa.string())
    )


def generate_day(
    *,
    trades: int,
    participants: int,
    assets: int,
    pools: int = 3,
    seed: int,
    day: str = "2026-11-20",
    l1_share_target: float = 0.05,
    preset: str | None = None,
) -> GeneratedDay:
    """Generate one trading day (see the module docstring for its shape); ``preset`` names a
    base-layer timing (core/config/presets.py) and gives the pools sub-second to seconds
    windows (the demo's choice); without it the configuration is the fixed one the golden
    test pins."""
    if trades < 1:
        raise ValueError("trades must be at least 1")
    if participants < PARTICIPANTS_MIN:
        raise ValueError(f"participants must be at least {PARTICIPANTS_MIN} (one of each kind)")
    if not 2 <= assets <= ASSETS_MAX:
        raise ValueError(f"assets must be between 2 and {ASSETS_MAX}")
    if pools != 3:
        raise ValueError("the generator's configuration has exactly 3 pools (fast, retail, bulk)")
    if not 0.0 <= l1_share_target < 1.0:
        raise ValueError("l1_share_target must be in [0, 1)")
    rng = np.random.Generator(np.random.PCG64(seed))
    day_start_ms = int(
        datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).timestamp() * 1000
    )

    people = _participants(participants, rng)
    config_toml = _config_toml(assets, people, seed, preset)
    config = parse_config(tomllib.loads(config_toml), source="<generated>")

    market = _Market.build(assets)
    offsets = _intraday_ms(trades, rng)
    executed_at = offsets + day_start_ms
    symbol = _draw(market.pair_weights, trades, rng).astype(np.int32)
    taker_buys = rng.random(trades) < 0.5
    price_ticks = _price_ticks(market, symbol, offsets, taker_buys, rng)
    del offsets
    buyer, seller, taker_kind = _counterparties(people, trades, taker_buys, rng)
    del taker_buys
    qty_lots, notional_usd = _sizes(market, symbol, price_ticks, taker_kind, rng)
    del taker_kind
    hint_code = _lane_hints(people, buyer, seller, notional_usd, l1_share_target, rng)
    venue = _draw(np.array([v[1] for v in _VENUES]), trades, rng)
    deposits = _deposits(people, buyer, seller, notional_usd)
    del notional_usd

    table = pa.table(
        {
            "trade_id": _trade_ids(trades),
            "venue": _dictionary(venue, [v[0] for v in _VENUES]),
            "symbol": _dictionary(symbol, market.symbol_names),
            "buyer": _dictionary(buyer, people.ids),
            "seller": _dictionary(seller, people.ids),
            "quantity": _fixed_text(qty_lots, market.lot_decimals[symbol]),
            "price": _fixed_text(price_ticks, market.price_decimals[symbol]),
            "executed_at": pa.array(executed_at, type=pa.int64()),
            "exch_batch_id": _exchange_batches(executed_at),
            "lane_hint": pa.DictionaryArray.from_arrays(
                pa.array(np.maximum(hint_code, 0).astype(np.int32), mask=hint_code < 0), pa.array(_HINTS)
            ),
        }
    )
    return GeneratedDay(config_toml=config_toml, trades=table, deposits=deposits, config=config)


@dataclass(frozen=True)
class _Market:
    """Per-symbol constants: assets, start price, tick and lot decimals."""

    symbol_names: list[str]
    pair_weights: F64
    base: I64
    quote: I64
    marks_usd: F64
    start_price: F64
    pair_vol: F64
    price_decimals: I64
    lot_decimals: I64

    @classmethod
    def build(cls, asset_count: int) -> _Market:
        pairs, weights = _symbols(asset_count)
        base = np.array([b for b, _ in pairs], dtype=np.int64)
        quote = np.array([q for _, q in pairs], dtype=np.int64)
        marks = np.array([a[2] for a in _ASSETS[:asset_count]])
        vols = np.array([a[3] for a in _ASSETS[:asset_count]])
        scales = np.array([a[1] for a in _ASSETS[:asset_count]], dtype=np.int64)
        start_price = marks[base] / marks[quote]
        # ~7 significant digits of price; lots so a 1,000 USD ticket has ~4 digits (within the
        # base asset's scale).
        price_decimals = np.clip(6 - np.floor(_same_everywhere(math.log10, start_price)), 0, 10).astype(
            np.int64
        )
        lot_decimals = np.clip(
            3 - np.floor(_same_everywhere(math.log10, 1_000.0 / marks[base])), 0, scales[base]
        ).astype(np.int64)
        return cls(
            symbol_names=[f"{_ASSETS[b][0]}/{_ASSETS[q][0]}" for b, q in pairs],
            pair_weights=weights,
            base=base,
            quote=quote,
            marks_usd=marks,
            start_price=start_price,
            pair_vol=np.sqrt(vols[base] ** 2 + vols[quote] ** 2),
            price_decimals=price_decimals,
            lot_decimals=lot_decimals,
        )


def _price_ticks(
    market: _Market,
    symbol: npt.NDArray[np.int32],
    offsets: I64,
    taker_buys: npt.NDArray[np.bool_],
    rng: np.random.Generator,
) -> I64:
    """Per-symbol random walk of the mid on a one-second grid; a trade prints at the ask when the
    taker buys and at the bid when it sells, so busy books repeat price levels as real tapes do."""
    seconds = DAY_MS // 1000
    steps = rng.normal(0.0, 1.0, (len(market.symbol_names), seconds))
    steps *= (market.pair_vol / math.sqrt(seconds))[:, None]
    log_path = np.concatenate([np.zeros((len(market.symbol_names), 1)), np.cumsum(steps, axis=1)], axis=1)
    del steps
    tick = _tens(-market.price_decimals)
    half_spread = np.maximum(np.rint(market.start_price * HALF_SPREAD / tick), 1).astype(np.int64)
    mid = market.start_price[symbol] * _same_everywhere(math.exp, log_path[symbol, offsets // 1000])
    del log_path
    mid /= tick[symbol]
    mid_ticks = np.rint(mid).astype(np.int64)
    del mid
    mid_ticks += np.where(taker_buys, half_spread[symbol], -half_spread[symbol])
    price_ticks: I64 = np.maximum(mid_ticks, 1)
    return price_ticks


def _counterparties(
    people: _Participants, trades: int, taker_buys: npt.NDArray[np.bool_], rng: np.random.Generator
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int8]]:
    """Buyer, seller and the taker's kind index: Zipf activity scaled by kind, with a market
    maker facing the taker in most trades."""
    kind_k = people.kind_index
    activity = _zipf_weights(len(people.ids), rng) * np.array([k[3] for k in _KINDS])[kind_k]
    mm_ids = np.flatnonzero(kind_k == 0).astype(np.int32)
    other_ids = np.flatnonzero(kind_k != 0).astype(np.int32)
    with_mm = rng.random(trades) < MM_SIDE_SHARE
    taker = other_ids[_draw(activity[other_ids], trades, rng)]
    counterparty = other_ids[_draw(activity[other_ids], trades, rng)]
    makers = np.flatnonzero(with_mm)
    counterparty[makers] = mm_ids[_draw(activity[mm_ids], len(makers), rng)]
    del makers, with_mm
    # Redraw accidental self-trades (two non-market-maker draws that coincide).
    clash = np.flatnonzero(counterparty == taker)
    while clash.size:
        counterparty[clash] = other_ids[_draw(activity[other_ids], len(clash), rng)]
        clash = clash[counterparty[clash] == taker[clash]]
    buyer = np.where(taker_buys, taker, counterparty)
    seller = np.where(taker_buys, counterparty, taker)
    taker_kind = kind_k[taker].astype(np.int8)
    return buyer, seller, taker_kind


def _sizes(
    market: _Market,
    symbol: npt.NDArray[np.int32],
    price_ticks: I64,
    taker_kind: npt.NDArray[np.int8],
    rng: np.random.Generator,
) -> tuple[I64, F64]:
    """Quantity in lots and the trade's USD notional: log-normal notional by the taker's kind,
    often a round size (0.05 BTC, 250 XRP), retail especially."""
    trades = len(symbol)
    medians = np.array([k[6] for k in _KINDS])[taker_kind]
    sigmas = np.array([k[7] for k in _KINDS])[taker_kind]
    notional = np.minimum(
        medians * _same_everywhere(math.exp, sigmas * rng.normal(0.0, 1.0, trades)), NOTIONAL_MAX_USD
    )
    del medians, sigmas
    price_usd = price_ticks * _tens(-market.price_decimals)[symbol] * market.marks_usd[market.quote][symbol]
    quantity = notional / price_usd
    del notional
    round_share = np.where(taker_kind == 4, ROUND_SIZE_SHARE_RETAIL, ROUND_SIZE_SHARE_OTHER)
    round_digits = np.where(rng.random(trades) < 0.5, 1, 2)
    is_round = rng.random(trades) < round_share
    step = _same_everywhere(
        lambda e: 10.0**e, np.floor(_same_everywhere(math.log10, quantity)) - round_digits + 1
    )
    quantity = np.where(is_round, np.maximum(np.rint(quantity / step), 1) * step, quantity)
    del step, is_round, round_digits, round_share
    lot = _tens(-market.lot_decimals)[symbol]
    qty_lots = np.maximum(np.rint(quantity / lot), 1).astype(np.int64)
    notional_usd: F64 = qty_lots * lot * price_usd
    return qty_lots, notional_usd


_HINTS = ["L1", "L2", "fast", "bulk"]


def _lane_hints(
    people: _Participants,
    buyer: npt.NDArray[np.int32],
    seller: npt.NDArray[np.int32],
    notional_usd: F64,
    l1_share_target: float,
    rng: np.random.Generator,
) -> I64:
    """Index into ``_HINTS`` per trade (-1 = no hint): a few pool requests, then ``L1`` hints
    until opt-outs + high-value + hints reach the L1 share target."""
    trades = len(buyer)
    hint_code = np.full(trades, -1, dtype=np.int64)
    is_mm = people.kind_index == 0
    draw = rng.random(trades)
    hint_code[draw < 0.01] = 1
    hint_code[(draw >= 0.01) & (draw < 0.02)] = 3
    hint_code[(draw >= 0.02) & (draw < 0.025) & (is_mm[buyer] | is_mm[seller])] = 2
    goes_l1 = people.opt_out[buyer] | people.opt_out[seller] | (notional_usd > HIGH_VALUE_USD)
    missing_l1 = round(l1_share_target * trades) - int(goes_l1.sum())
    if missing_l1 > 0:
        candidates = np.flatnonzero(~goes_l1)
        chosen = rng.choice(candidates, size=min(missing_l1, len(candidates)), replace=False)
        hint_code[chosen] = 0
    return hint_code


def _deposits(
    people: _Participants, buyer: npt.NDArray[np.int32], seller: npt.NDArray[np.int32], notional_usd: F64
) -> list[CollateralDeposit]:
    """Opening USD collateral: a quarter of each participant's gross L2-sized flow plus twice its
    largest ticket, so most L2 trades pass the liquidity check while netting still matters."""
    count = len(people.ids)
    l2_sized = np.where(notional_usd > HIGH_VALUE_USD, 0.0, notional_usd)
    gross = np.bincount(buyer, l2_sized, minlength=count) + np.bincount(seller, l2_sized, minlength=count)
    largest = np.zeros(count)
    np.maximum.at(largest, buyer, l2_sized)
    np.maximum.at(largest, seller, l2_sized)
    amount = np.ceil((0.25 * gross + 2.0 * largest) / 1000.0) * 1000.0
    deposits: list[CollateralDeposit] = []
    for i in np.flatnonzero(amount > 0).tolist():
        deposits.append(
            CollateralDeposit(
                deposit_id=f"DEP-{i + 1:06d}",
                participant=people.ids[i],
                asset="USD",
                amount=str(int(amount[i])),
            )
        )
    return deposits


# ---------------------------------------------------------------------------------------
# the exchange's batch reports (reconciliation input, docs/RECONCILIATION.md)
# ---------------------------------------------------------------------------------------

BREAK_KINDS = ("missing_trade", "amount_mismatch", "extra_trade", "late_batch")


def _report_totals(day: GeneratedDay) -> dict[str, tuple[list[str], dict[str, int], int]]:
    """Per exchange batch: trade ids, totals per asset (base quantity, quote amount rounded half
    to even as the engine does) and the batch end (the end of its quarter-second window)."""
    from decimal import ROUND_HALF_EVEN, Decimal

    scales = {a.code: a.scale for a in day.config.assets}
    cols = {n: day.trades.column(n).to_pylist() for n in ("trade_id", "symbol", "quantity", "price")}
    cols["batch"] = day.trades.column("exch_batch_id").to_pylist()
    cols["at"] = day.trades.column("executed_at").to_pylist()
    out: dict[str, tuple[list[str], dict[str, int], int]] = {}
    for tid, symbol, qty, price, batch, at in zip(*cols.values(), strict=True):
        base, quote = symbol.split("/")
        ids, totals, _ = out.setdefault(batch, ([], {}, (at // EXCH_BATCH_MS + 1) * EXCH_BATCH_MS))
        ids.append(tid)
        q = Decimal(qty)
        totals[base] = totals.get(base, 0) + int(q.scaleb(scales[base]))
        amount = (q * Decimal(price)).scaleb(scales[quote]).quantize(Decimal(1), ROUND_HALF_EVEN)
        totals[quote] = totals.get(quote, 0) + int(amount)
    return out


def exchange_batch_reports(
    day: GeneratedDay, *, seed: int, breaks: dict[str, int] | None = None, late_ms: int = 600_000
) -> tuple[list[Any], list[tuple[str, str]]]:
    """The venue's batch reports for ``day`` (one per exchange batch, with trade ids) and, with
    ``breaks`` (kind in :data:`BREAK_KINDS` → count), that many injected breaks on distinct
    batches: a reported trade clearlane never got (``missing_trade``), a total off by one minor
    unit (``amount_mismatch``), a received trade left out (``extra_trade``), a batch end stamped
    ``late_ms`` before its trades (``late_batch``). Returns (reports, [(batch id, kind)])."""
    from clearlane.core.recon.records import BatchReport, trade_ids_digest

    rng = np.random.Generator(np.random.PCG64(seed))
    summary = _report_totals(day)
    batch_ids = sorted(summary)
    wanted = [kind for kind in BREAK_KINDS for _ in range((breaks or {}).get(kind, 0))]
    chosen = rng.choice(len(batch_ids), size=min(len(wanted), len(batch_ids)), replace=False).tolist()
    injected = {batch_ids[i]: kind for i, kind in zip(sorted(chosen), wanted, strict=False)}
    reports = []
    for batch_id in batch_ids:
        ids, totals, end_ms = summary[batch_id]
        ids, totals = list(ids), dict(totals)
        kind = injected.get(batch_id)
        if kind == "missing_trade":
            ids.append(f"{batch_id}-LOST")
        elif kind == "extra_trade":
            ids.pop()
        elif kind == "amount_mismatch":
            first = sorted(totals)[0]
            totals[first] += 1
        elif kind == "late_batch":
            end_ms -= late_ms
        digest = trade_ids_digest(ids)
        reports.append(
            BatchReport(batch_id, end_ms, len(ids), digest, tuple(sorted(totals.items())), tuple(ids))
        )
    return reports, sorted(injected.items())
