"""Base-layer presets: real block times and finality depths, by name (``[chain] preset = "..."``).

A preset fills what a configuration leaves out; a key written in the file always wins. It sets
the chain's block time, how many confirmations make an L1 transaction and an L2 anchor final,
and the retry and deadline clocks that must scale with the block time (a 120 s anchor deadline
unwinds every batch on a chain with 10-minute blocks). Opt-in: a configuration without
``preset`` is read exactly as before, so stored configurations and their digests do not change
(the digest is taken over the file as written, preset name included).

Presets (sources: Ethereum's 12 s slots and 32-slot epochs, finality after 2 epochs; Bitcoin's
10-minute target and the customary 6 confirmations):

- ``ethereum``: 12 s blocks, final after 64 blocks (2 epochs, about 12.8 minutes).
- ``bitcoin``: 10 min blocks, final after 6 blocks (about an hour).
- ``fast``: an L2-friendly base layer (a rollup's own chain): 1 s blocks, 3 confirmations.
- ``dev``: the old built-in timing (2 s blocks, 3 confirmations) by name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "ChainPreset", "expand_preset"]


@dataclass(frozen=True, slots=True)
class ChainPreset:
    block_time_ms: int
    confirmations: int

    @property
    def resubmit_ms(self) -> int:
        """Re-send what is not in a block after three block times."""
        return 3 * self.block_time_ms

    @property
    def deadline_ms(self) -> int:
        """Give up on an anchor (unwind to L1) after twice the time to finality, at least 2 min."""
        return max(120_000, 2 * self.confirmations * self.block_time_ms)


PRESETS: dict[str, ChainPreset] = {
    "ethereum": ChainPreset(block_time_ms=12_000, confirmations=64),
    "bitcoin": ChainPreset(block_time_ms=600_000, confirmations=6),
    "fast": ChainPreset(block_time_ms=1_000, confirmations=3),
    "dev": ChainPreset(block_time_ms=2_000, confirmations=3),
}


def expand_preset(raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``raw`` with the named preset's defaults filled in, or (raw, error) for an unknown name.

    The error names the preset and the known ones; the caller reports it on ``chain.preset``.
    """
    chain = raw.get("chain")
    name = chain.get("preset") if isinstance(chain, dict) else None
    if name is None:
        return raw, None
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        return raw, f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})"
    out = copy.deepcopy(raw)
    out["chain"].setdefault("block_time_ms", preset.block_time_ms)
    clearing = out.setdefault("clearing", {})
    if isinstance(clearing, dict):
        clearing.setdefault("l1_confirmations", preset.confirmations)
        clearing.setdefault("l1_resubmit_ms", preset.resubmit_ms)
    for pool in out.get("pools") or []:
        if isinstance(pool, dict):
            pool.setdefault("confirmations", preset.confirmations)
            pool.setdefault("anchor_resubmit_ms", preset.resubmit_ms)
            pool.setdefault("anchor_deadline_ms", preset.deadline_ms)
    return out, None
