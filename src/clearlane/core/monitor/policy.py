"""The routing policy while an asset's marks diverge: stop routing it to L2 (its flows settle
gross on L1, where no mark enters the liquidity check) and resume once its marks have agreed for
``resume_after_ms``. The decision becomes a logged ``config_change`` input
(``{"assets": {code: {"l2_halted": true|false}}}``), so a replay of the log routes exactly as
the live engine did; this module only decides which changes to ask for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class HaltPolicy:
    enabled: bool = False  # default off: no input is ever logged unless an operator enables it
    resume_after_ms: int = 300_000


def halt_changes(
    policy: HaltPolicy,
    halted: frozenset[str],
    diverging: set[str],
    last_diverged_ms: Mapping[str, int],
    now_ms: int,
) -> dict[str, bool]:
    """Asset code → new ``l2_halted`` value, only for assets whose state should change."""
    if not policy.enabled:
        return {}
    out = {a: True for a in sorted(diverging - halted)}
    for asset in sorted(halted - diverging):
        if now_ms - last_diverged_ms.get(asset, 0) >= policy.resume_after_ms:
            out[asset] = False
    return out


def change_payload(change_id: str, changes: Mapping[str, bool]) -> dict[str, object]:
    """The ``config_change`` input that carries the decision."""
    return {"change_id": change_id, "changes": {"assets": {a: {"l2_halted": v} for a, v in changes.items()}}}
