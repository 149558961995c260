"""The trading-day generator: reproducible, schema-true, accepted by ingest, realistically shaped."""

from __future__ import annotations

import hashlib
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clearlane.core.config import ParticipantKind, load_config, parse_config
from clearlane.core.model.inputs import ID_RE, INPUT_TRADE_COLUMNS, INPUT_TRADE_OPTIONAL, CollateralDeposit
from clearlane.node.intake import iter_input
from clearlane.sim import GeneratedDay, generate_day

DAY = "2026-11-20"
DAY_START_MS = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def day() -> GeneratedDay:
    return generate_day(trades=20_000, participants=400, assets=16, seed=11, day=DAY)


def parquet_digest(day: GeneratedDay, directory: Path) -> str:
    paths = day.write(directory)
    return hashlib.sha256(
        paths.trades.read_bytes() + paths.config.read_bytes() + paths.deposits.read_bytes()
    ).hexdigest()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    digests = [
        parquet_digest(generate_day(trades=3_000, participants=60, assets=6, seed=5), tmp_path / name)
        for name in ("a", "b")
    ]
    other = parquet_digest(generate_day(trades=3_000, participants=60, assets=6, seed=6), tmp_path / "c")
    assert digests[0] == digests[1]
    assert other != digests[0]


_DIGEST_IN_CHILD = """
import hashlib, sys
from pathlib import Path
from clearlane.sim import generate_day
paths = generate_day(trades=20_000, participants=400, assets=16, seed=11).write(Path(sys.argv[1]))
print(hashlib.sha256(paths.trades.read_bytes() + paths.config.read_bytes()).hexdigest())
"""


def test_the_same_day_whatever_simd_numpy_picks(tmp_path: Path) -> None:
    """NumPy picks its exp/log10/power implementation by the CPU at run time (AVX-512, AVX2, ...)
    and their last bits differ: the generator computes those through the C library, so a seed
    gives the same bytes on every machine. A child process with every SIMD target NumPy can
    dispatch to here switched off (``NPY_DISABLE_CPU_FEATURES``) generates the same day."""
    import os
    import subprocess
    import sys

    from numpy._core import _multiarray_umath as umath

    found = {name for name, present in umath.__cpu_features__.items() if present}
    targets = [t for t in umath.__cpu_dispatch__ if t in found]
    digests = []
    for disabled in ("", " ".join(targets)):
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled}
        out = tmp_path / f"run{len(digests)}"
        run = subprocess.run(
            [sys.executable, "-c", _DIGEST_IN_CHILD, str(out)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        digests.append(run.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1], (targets, digests)


def test_schema_and_ids(day: GeneratedDay) -> None:
    table = day.trades
    assert table.column_names == [*INPUT_TRADE_COLUMNS, *INPUT_TRADE_OPTIONAL]
    assert table.num_rows == 20_000
    assert table.schema.field("quantity").type == pa.string()
    assert table.schema.field("price").type == pa.string()
    assert table.schema.field("executed_at").type == pa.int64()
    ids = table.column("trade_id").to_pylist()
    assert ids[0] == "XCL-0000000001" and ids[-1] == "XCL-0000020000"
    assert len(set(ids)) == len(ids) and all(ID_RE.match(i) for i in ids[:100])
    assert table.column("exch_batch_id").type == pa.string()


def test_config_round_trips_and_has_the_expected_shape(day: GeneratedDay) -> None:
    config = parse_config(tomllib.loads(day.config_toml))
    assert config.digest == day.config.digest
    assert [a.code for a in config.assets][:4] == ["USD", "BTC", "ETH", "SOL"]
    assert {a.code: a.scale for a in config.assets}["JPY"] == 0
    assert [p.id for p in config.pools] == ["fast", "retail", "bulk"]
    assert config.pools[1].challenge_window_ms > 0
    assert config.pools[0].fee_discount_bp > 0
    assert config.chain["block_time_ms"] == 2000
    assert any(rule.notional_usd_above == 1_000_000 for rule in config.routing)
    assert any(p.legacy_opt_out for p in config.participants)
    # Windows sized for thousands of batches in a 10M-trade day, not hundreds of thousands.
    assert sum(86_400_000 // p.window_ms for p in config.pools) < 20_000


def test_every_generated_row_is_accepted(day: GeneratedDay, tmp_path: Path) -> None:
    paths = day.write(tmp_path)
    config = load_config(paths.config)
    batches = list(iter_input(paths.trades, config))
    assert [r for b in batches for r in b.rejects] == []
    assert sum(b.trades.table.num_rows for b in batches if b.trades is not None) == 20_000
    deposits = list(iter_input(paths.deposits, config))
    assert [r for b in deposits for r in b.rejects] == []
    events = [e for b in deposits for e in b.events]
    assert len(events) == len(day.deposits) > 0
    assert all(isinstance(e, CollateralDeposit) for e in events)


def test_every_kind_trades_and_activity_is_power_law(day: GeneratedDay) -> None:
    kinds = {p.id: p.kind for p in day.config.participants}
    buyers = day.trades.column("buyer").cast(pa.string()).to_pylist()
    sellers = day.trades.column("seller").cast(pa.string()).to_pylist()
    assert all(b != s for b, s in zip(buyers, sellers, strict=True))
    seen = {kinds[p] for p in buyers + sellers}
    assert seen == set(ParticipantKind)
    counts = np.sort(np.unique(np.array(buyers + sellers), return_counts=True)[1])[::-1]
    top = max(1, len(day.config.participants) // 10)
    assert counts[:top].sum() > 0.5 * counts.sum()
    mm_share = np.mean(
        [
            kinds[b] is ParticipantKind.MARKET_MAKER or kinds[s] is ParticipantKind.MARKET_MAKER
            for b, s in zip(buyers, sellers, strict=True)
        ]
    )
    assert 0.7 < mm_share < 0.9


def test_times_are_sorted_within_the_day_with_two_humps(day: GeneratedDay) -> None:
    at = day.trades.column("executed_at").to_numpy()
    assert np.all(np.diff(at) >= 0)
    assert at[0] >= DAY_START_MS and at[-1] < DAY_START_MS + 86_400_000
    hours = np.bincount((at - DAY_START_MS) // 3_600_000, minlength=24)
    assert hours[8] > 2 * hours[2] and hours[14] > 2 * hours[2]


def test_sizes_and_routing_mix(day: GeneratedDay) -> None:
    config = day.config
    marks = dict(zip([a.code for a in config.assets], config.marks_usd, strict=True))
    symbols = day.trades.column("symbol").cast(pa.string()).to_pylist()
    qty = pc.cast(day.trades.column("quantity"), pa.float64()).to_numpy()
    price = pc.cast(day.trades.column("price"), pa.float64()).to_numpy()
    quote_usd = np.array([marks[s.split("/")[1]] for s in symbols])
    notional = qty * price * quote_usd
    assert np.median(notional) < 20_000  # mostly retail-sized tickets
    assert (notional > 1_000_000).sum() >= 1  # and a few high-value ones
    assert len({s for s in symbols if not s.endswith("/USD")}) >= 5  # crosses span many assets
    opt_out = {p.id for p in config.participants if p.legacy_opt_out}
    buyers = day.trades.column("buyer").cast(pa.string()).to_pylist()
    sellers = day.trades.column("seller").cast(pa.string()).to_pylist()
    hints = day.trades.column("lane_hint").cast(pa.string()).to_pylist()
    l1 = [
        (b in opt_out or s in opt_out or h == "L1" or n > 1_000_000)
        for b, s, h, n in zip(buyers, sellers, hints, notional, strict=True)
    ]
    assert 0.04 <= np.mean(l1) <= 0.08


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="participants"):
        generate_day(trades=10, participants=3, assets=4, seed=1)
    with pytest.raises(ValueError, match="assets"):
        generate_day(trades=10, participants=10, assets=17, seed=1)
