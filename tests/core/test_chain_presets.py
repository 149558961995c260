"""Base-layer presets (core/config/presets.py): real timing by name, explicit keys win."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearlane.core.config.model import ConfigError, parse_config
from tests.conftest import example_raw


def with_chain(**chain: object) -> dict[str, object]:
    raw = example_raw()
    raw["chain"].pop("block_time_ms")
    raw["chain"].update(chain)
    raw["clearing"].pop("l1_confirmations")
    for pool in raw["pools"]:
        pool.pop("confirmations")
        pool.pop("anchor_deadline_ms", None)
    return raw


def test_the_ethereum_preset_fills_block_time_and_finality() -> None:
    config = parse_config(with_chain(preset="ethereum"))
    assert config.chain["block_time_ms"] == 12_000
    assert config.l1_confirmations == 64
    assert {p.confirmations for p in config.pools} == {64}
    assert min(p.anchor_deadline_ms for p in config.pools) >= 64 * 12_000


def test_an_explicit_key_wins_over_the_preset() -> None:
    raw = with_chain(preset="bitcoin", block_time_ms=1234)
    raw["pools"][0]["confirmations"] = 2
    config = parse_config(raw)
    assert config.chain["block_time_ms"] == 1234
    assert config.pools[0].confirmations == 2 and config.pools[1].confirmations == 6
    assert config.l1_confirmations == 6


def test_an_unknown_preset_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"chain\.preset.*'solana'.*bitcoin, dev, ethereum, fast"):
        parse_config(with_chain(preset="solana"))


def test_the_demo_day_runs_on_the_ethereum_preset_with_sub_second_windows(tmp_path: object) -> None:
    from clearlane.adapters.cli.demo_command import DEMO_PRESET
    from clearlane.core.config.model import load_config
    from clearlane.sim.generator import generate_day

    paths = generate_day(trades=50, participants=20, assets=3, seed=1, preset=DEMO_PRESET).write(
        Path(str(tmp_path)) / "day"
    )
    config = load_config(paths.config)
    assert config.chain["block_time_ms"] == 12_000 and config.l1_confirmations == 64
    assert max(p.window_ms for p in config.pools) < 1_000
    plain = load_config(
        generate_day(trades=50, participants=20, assets=3, seed=1).write(Path(str(tmp_path)) / "p").config
    )
    assert plain.chain["block_time_ms"] == 2_000  # without a preset: the pinned golden configuration
