"""The escrow benchmark (``clearlane escrow bench``): N escrows × 5 transitions each (open,
agree ×2, fund, the delivery condition met → auto-release) applied by the real engine, with
their ledger postings (a hold and a three-way release: seller, fee, reserve) and the state
root; a quarter of them go the long way (a dispute decided by split, or a refund) so every
kind of posting is timed. Figures go to docs/PERFORMANCE.md, never into assertions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine import Engine, EngineOptions, LogEntry
from clearlane.core.model.inputs import CollateralDeposit, EscrowAction, escrow_action


@dataclass(frozen=True, slots=True)
class EscrowBenchResult:
    escrows: int
    actions: int
    seconds: float
    cpu_seconds: float
    p50_us: float
    p99_us: float
    max_us: float
    entries: int
    state_root: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "escrows": self.escrows,
            "actions": self.actions,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "actions_per_s": round(self.actions / self.seconds) if self.seconds else None,
            "p50_us": round(self.p50_us, 1),
            "p99_us": round(self.p99_us, 1),
            "max_us": round(self.max_us, 1),
            "ledger_entries": self.entries,
            "state_root": self.state_root,
        }


def _script(i: int, buyer: str, seller: str) -> list[EscrowAction]:
    eid = f"bench-{i}"
    terms = {
        "asset": "USD",
        "amount": f"{100 + i % 900}.{i % 100:02d}",
        "buyer": buyer,
        "seller": seller,
        "platform": "MARKET",
        "arbiter": "ARBITER",
        "fee_bps": 150,
        "reserve_bps": 500,
        "conditions": [{"condition_id": "delivered", "kind": "delivery_confirmed", "role": "buyer"}],
    }
    steps: list[dict[str, Any]] = [
        {"action": "open", "actor": "MARKET", "terms": terms},
        {"action": "agree", "actor": buyer},
        {"action": "agree", "actor": seller},
        {"action": "fund", "actor": buyer},
    ]
    if i % 8 == 3:
        steps.append({"action": "dispute", "actor": buyer, "reason": "damaged"})
        steps.append({"action": "decide", "actor": "ARBITER", "buyer_share_bps": 4_000})
    elif i % 8 == 5:
        steps.append({"action": "refund", "actor": "MARKET"})
    else:
        steps.append({"action": "satisfy", "actor": buyer, "condition_id": "delivered"})
    return [escrow_action({**s, "action_id": f"{eid}:{n}", "escrow_id": eid}) for n, s in enumerate(steps)]


def run(config: ClearingConfig, escrows: int, start_ms: int = 1_767_225_600_000) -> EscrowBenchResult:
    """Apply ``escrows`` escrows' actions to a fresh engine (deposits first, untimed)."""
    engine = Engine(config, EngineOptions(keep_latencies=False))
    people = [p.id for p in config.participants]
    seq = 0
    for n, pid in enumerate(people):
        seq += 1
        deposit = CollateralDeposit(
            deposit_id=f"bench-dep-{n}", participant=pid, asset="USD", amount="100000000"
        )
        engine.apply(LogEntry(seq, start_ms, "collateral_deposit", deposit))
    scripts = [_script(i, people[i % len(people)], people[(i + 1) % len(people)]) for i in range(escrows)]
    actions = [a for script in scripts for a in script]
    took = np.empty(len(actions), dtype=np.float64)
    clock = time.perf_counter
    started, cpu = clock(), time.process_time()
    for k, action in enumerate(actions):
        seq += 1
        t0 = clock()
        engine.apply(LogEntry(seq, start_ms + k, "escrow", action))
        took[k] = clock() - t0
    seconds, cpu_seconds = clock() - started, time.process_time() - cpu
    root = engine.state_root()
    engine.check_invariants()
    return EscrowBenchResult(
        escrows=escrows,
        actions=len(actions),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        p50_us=float(np.percentile(took, 50) * 1e6),
        p99_us=float(np.percentile(took, 99) * 1e6),
        max_us=float(took.max() * 1e6),
        entries=engine.ledger.n_entries,
        state_root=root,
    )
