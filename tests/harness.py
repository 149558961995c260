"""An in-memory engine + simulated chain loop (the runner without a database)."""

from __future__ import annotations

from typing import Any

from clearlane.adapters.chain.simulated import ChainParams, FaultSchedule, SimulatedChain
from clearlane.core.config import ClearingConfig
from clearlane.core.engine import Engine, LogEntry, Step
from clearlane.core.model.chain import event_to_dict
from clearlane.core.model.events import batch_event_row
from clearlane.core.model.inputs import log_payload


class Harness:
    def __init__(self, config: ClearingConfig, genesis_ms: int, faults: dict[str, Any] | None = None) -> None:
        self.engine = Engine(config)
        chain = config.chain
        self.chain = SimulatedChain(
            ChainParams(
                genesis_ms=genesis_ms,
                block_time_ms=int(chain["block_time_ms"]),
                txs_per_block_max=int(chain["txs_per_block_max"]),
                fee_per_tx_minor=0,
                seed=int(chain["seed"]),
            ),
            FaultSchedule.from_dict(faults if faults is not None else dict(chain.get("faults") or {})),
        )
        self.log: list[LogEntry] = []
        self.steps: list[Step] = []

    def apply(self, kind: str, payload: Any, at_ms: int) -> Step:
        entry = LogEntry(len(self.log) + 1, at_ms, kind, log_payload(kind, payload))
        self.log.append(entry)
        step = self.engine.apply(entry)
        self.steps.append(step)
        if step.submissions:
            self.chain.submit(step.submissions)
        return step

    def advance(self, to_ms: int) -> Step:
        events = self.chain.advance(to_ms)
        return self.apply("chain", {"events": [event_to_dict(e) for e in events]}, to_ms)

    def run_until(self, to_ms: int, step_ms: int = 1000) -> None:
        now = max(self.engine.now_ms, self.engine.chain_seen_ms)
        while now < to_ms:
            now = min(to_ms, now + step_ms)
            self.advance(now)

    def deposit(self, participant: str, amount: str, asset: str = "USD", at_ms: int = 0) -> Step:
        return self.apply(
            "collateral_deposit",
            {
                "deposit_id": f"dep-{participant}-{asset}-{len(self.log)}",
                "participant": participant,
                "asset": asset,
                "amount": amount,
            },
            at_ms,
        )

    def batch_events(self) -> list[tuple[str, str, int, str]]:
        """Every batch transition so far as its stored ``(batch_id, event, at_ms, detail)`` row."""
        return [batch_event_row(e) for step in self.steps for e in step.batch_events()]
