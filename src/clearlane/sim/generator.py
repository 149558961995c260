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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clearlane.config.model import ClearingConfig, ParticipantKind, parse_config
from clearlane.model.events import CollateralDeposit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

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
    "BTC": 1.0, "ETH": 0.7, "SOL": 0.30, "EUR": 0.35, "GBP": 0.20, "XRP": 0.15, "USDC": 0.10,
    "LTC": 0.06, "ADA": 0.06, "DOT": 0.04, "CHF": 0.08, "LINK": 0.05, "AVAX": 0.05, "XAU": 0.08,
}

# kind, id prefix, share of participants, activity multiplier, credit limit USD, fee tier,
# notional log-normal median USD and sigma (for trades where this kind faces a market maker)
_KINDS: tuple[tuple[ParticipantKind, str, float, float, int, str, float, float], ...] = (
    (ParticipantKind.MARKET_MAKER, "MM", 0.02, 1.0, 10_000_000, "maker", 40_000.0, 1.6),
    (ParticipantKind.BROKER, "BRK", 0.08, 25.0, 2_000_000, "standard", 25_000.0, 1.7),
    (ParticipantKind.CUSTODIAN, "CUST", 0.03, 8.0, 1_000_000, "standard", 60_000.0, 1.6),
    (ParticipantKind.MARKETPLACE, "MKT", 0.02, 30.0, 500_000, "standard", 8_000.0, 1.6),
    (ParticipantKind.RETAIL, "RTL", 0.85, 1.0, 25_000, "retail", 600.0, 1.5),
)
_VENUES = (("XCLR-SPOT", 0.82), ("XCLR-OTC", 0.12), ("XCLR-RFQ", 0.06))
MM_SIDE_SHARE = 0.80  # trades with a market maker on one side
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


def _config_toml(asset_count: int, people: _Participants, seed: int) -> str:
    lines = [
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
    for code, scale, mark, _vol in _ASSETS[:asset_count]:
        lines += ["[[assets]]", f"code = {_toml_string(code)}", f"scale = {scale}", f"mark_usd = {_toml_string(_mark_text(mark))}", ""]
    lines += [
        "[fee_tiers]",
        'maker = { bps = "0.5" }',
        'standard = { bps = "2" }',
        'retail = { bps = "5" }',
        "",
    ]
    for pid, kind_k, opt_out in zip(people.ids, people.kind_index.tolist(), people.opt_out.tolist(), strict=True):
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
    # Windows are long enough that a 10M-trade day closes thousands of batches, not
    # hundreds of thousands (a batch per window per pool while trading is continuous).
    lines += [
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
    return "\n".join(lines)


def _mark_text(mark: float) -> str:
    text = f"{mark:.10f}".rstrip("0").rstrip(".")
    return text or "0"


# ---------------------------------------------------------------------------------------
# columns
# ---------------------------------------------------------------------------------------


def _zipf_weights(count: int, rng: np.random.Generator) -> F64:
    """Zipf weights over a random ranking (so activity is not correlated with id order)."""
    ranks = rng.permutation(count).astype(np.float64) + 1.0
    weights: F64 = ranks**-ZIPF_EXPONENT
    return weights


def _draw(weights: F64, size: int, rng: np.random.Generator) -> I64:
    """Indices drawn with probability proportional to ``weights`` (inverse CDF, vectorised)."""
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    picks: I64 = np.searchsorted(cdf, rng.random(size), side="right").astype(np.int64)
    return np.minimum(picks, len(weights) - 1)


def _intraday_ms(size: int, rng: np.random.Generator) -> I64:
    """Sorted offsets into the day: a flat base plus humps at the European (08:00 UTC) and US
    (14:30 UTC) opens."""
    component = rng.choice(3, size=size, p=[0.30, 0.30, 0.40])
    hours = np.where(
        component == 0,
        rng.random(size) * 24.0,
        np.where(component == 1, rng.normal(8.0, 1.5, size), rng.normal(14.5, 2.0, size)),
    )
    offsets = np.mod(hours * 3_600_000.0, DAY_MS).astype(np.int64)
    offsets.sort()
    return offsets


def _fixed_text(units: I64, decimals: I64) -> pa.Array:
    """Decimal strings for integer ``units`` with per-row ``decimals`` (``12345``, 2 → ``123.45``)."""
    scale = (10 ** decimals.astype(np.int64)).astype(np.int64)
    whole = pc.cast(pa.array(units // scale), pa.string())
    # 10**d + fraction has exactly d+1 digits: dropping the leading 1 zero-pads the fraction.
    fraction = pc.utf8_slice_codeunits(pc.cast(pa.array(units % scale + scale), pa.string()), 1)
    joined = pc.binary_join_element_wise(whole, fraction, ".")
    return pc.if_else(pa.array(decimals > 0), joined, whole)


def _dictionary(codes: I64, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values, type=pa.string()))


def generate_day(
    *,
    trades: int,
    participants: int,
    assets: int,
    pools: int = 3,
    seed: int,
    day: str = "2026-11-20",
    l1_share_target: float = 0.05,
) -> GeneratedDay:
    """Generate one trading day (see the module docstring for its shape)."""
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
    day_start_ms = int(datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).timestamp() * 1000)

    people = _participants(participants, rng)
    config_toml = _config_toml(assets, people, seed)
    config = parse_config(tomllib.loads(config_toml), source="<generated>")

    pairs, pair_weights = _symbols(assets)
    symbol_names = [f"{_ASSETS[b][0]}/{_ASSETS[q][0]}" for b, q in pairs]
    base_of = np.array([b for b, _ in pairs], dtype=np.int64)
    quote_of = np.array([q for _, q in pairs], dtype=np.int64)
    marks = np.array([a[2] for a in _ASSETS[:assets]])
    vols = np.array([a[3] for a in _ASSETS[:assets]])
    scales = np.array([a[1] for a in _ASSETS[:assets]], dtype=np.int64)

    # -- time and symbol -------------------------------------------------------------------
    offsets = _intraday_ms(trades, rng)
    executed_at = offsets + day_start_ms
    symbol = _draw(pair_weights, trades, rng)

    # -- prices: per-symbol random walk on a one-minute grid ------------------------------------
    minutes = DAY_MS // 60_000
    start_price = marks[base_of] / marks[quote_of]
    pair_vol = np.sqrt(vols[base_of] ** 2 + vols[quote_of] ** 2)
    steps = rng.normal(0.0, 1.0, (len(pairs), minutes)) * (pair_vol[:, None] / math.sqrt(minutes))
    log_path = np.concatenate([np.zeros((len(pairs), 1)), np.cumsum(steps, axis=1)], axis=1)
    price_decimals = np.clip(6 - np.floor(np.log10(start_price)), 0, 10).astype(np.int64)
    tick = 10.0 ** -price_decimals
    bounce = rng.normal(0.0, 1.5e-4, trades)  # bid/ask bounce around the walk, ~1.5 bp
    price = start_price[symbol] * np.exp(log_path[symbol, offsets // 60_000] + bounce)
    price_ticks = np.maximum(np.rint(price / tick[symbol]), 1).astype(np.int64)
    price = price_ticks * tick[symbol]

    # -- counterparties: power law, market makers on one side of most trades ----------------------
    kind_k = people.kind_index
    activity = _zipf_weights(participants, rng) * np.array([k[3] for k in _KINDS])[kind_k]
    is_mm = kind_k == 0
    mm_ids = np.flatnonzero(is_mm)
    other_ids = np.flatnonzero(~is_mm)
    with_mm = rng.random(trades) < MM_SIDE_SHARE
    maker = mm_ids[_draw(activity[mm_ids], trades, rng)]
    taker = other_ids[_draw(activity[other_ids], trades, rng)]
    second = other_ids[_draw(activity[other_ids], trades, rng)]
    counterparty = np.where(with_mm, maker, second)
    # Redraw accidental self-trades (two non-MM draws that coincide).
    clash = counterparty == taker
    while clash.any():
        counterparty[clash] = other_ids[_draw(activity[other_ids], int(clash.sum()), rng)]
        clash = counterparty == taker
    taker_buys = rng.random(trades) < 0.5
    buyer = np.where(taker_buys, taker, counterparty)
    seller = np.where(taker_buys, counterparty, taker)

    # -- sizes: log-normal USD notional by the taker's kind, rounded to a lot ------------------------
    medians = np.array([k[6] for k in _KINDS])[kind_k[taker]]
    sigmas = np.array([k[7] for k in _KINDS])[kind_k[taker]]
    notional_usd = np.minimum(medians * np.exp(sigmas * rng.normal(0.0, 1.0, trades)), 25_000_000.0)
    quote_usd = marks[quote_of[symbol]]
    quantity = notional_usd / (price * quote_usd)
    median_qty = 1_000.0 / marks[base_of]
    lot_decimals = np.clip(3 - np.floor(np.log10(median_qty)), 0, scales[base_of]).astype(np.int64)
    lot = 10.0 ** -lot_decimals
    qty_lots = np.maximum(np.rint(quantity / lot[symbol]), 1).astype(np.int64)
    notional_usd = qty_lots * lot[symbol] * price * quote_usd

    # -- lane hints: a few pool requests, then L1 hints up to the L1 share target ------------------
    hint_code = np.full(trades, -1, dtype=np.int64)
    hint_names = ["L1", "L2", "fast", "bulk"]
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
    venue = _draw(np.array([v[1] for v in _VENUES]), trades, rng)

    # -- columns -------------------------------------------------------------------------------
    sequence = np.arange(1, trades + 1, dtype=np.int64) + 10**10
    trade_id = pc.binary_join_element_wise(
        "XCL-", pc.utf8_slice_codeunits(pc.cast(pa.array(sequence), pa.string()), 1), ""
    )
    exch_batch_id = pc.binary_join_element_wise(
        "EB-", pc.cast(pa.array(executed_at // EXCH_BATCH_MS), pa.string()), ""
    )
    hint_indices = pa.array(np.maximum(hint_code, 0).astype(np.int32), mask=hint_code < 0)
    table = pa.table(
        {
            "trade_id": trade_id,
            "venue": _dictionary(venue, [v[0] for v in _VENUES]),
            "symbol": _dictionary(symbol, symbol_names),
            "buyer": _dictionary(buyer, people.ids),
            "seller": _dictionary(seller, people.ids),
            "quantity": _fixed_text(qty_lots, lot_decimals[symbol]),
            "price": _fixed_text(price_ticks, price_decimals[symbol]),
            "executed_at": pa.array(executed_at, type=pa.int64()),
            "exch_batch_id": exch_batch_id,
            "lane_hint": pa.DictionaryArray.from_arrays(hint_indices, pa.array(hint_names)),
        }
    )
    deposits = _deposits(people, buyer, seller, notional_usd)
    return GeneratedDay(config_toml=config_toml, trades=table, deposits=deposits, config=config)


def _deposits(people: _Participants, buyer: I64, seller: I64, notional_usd: F64) -> list[CollateralDeposit]:
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
