"""The test harness: the real :class:`~clearlane.node.node.Node` on fakes.

Every input goes through the same door as in production — ``Node.submit`` (log, apply, hash
chain, commit, outbox) and ``Node.advance`` (observe the base layer, log what happened) — on the
in-memory store and the seeded simulated chain, with no signing key (nothing is signed). What a
test reads back is what the node committed: ``steps`` and ``log`` are filled by the node's step
observer, so a step the node did not commit is not there.

The base layer starts at the harness's ``genesis_ms`` (stored as the store's chain genesis before
the node opens), so a test's blocks fall on the same boundaries whatever it submits first.
"""

from __future__ import annotations

from typing import Any

from clearlane.adapters.chain.simulated import ChainParams, FaultSchedule, SimulatedChain
from clearlane.adapters.memory import MemoryStore
from clearlane.core.config import ClearingConfig
from clearlane.core.engine import Engine, LogEntry, Step
from clearlane.node.node import Node, NodeOptions
from clearlane.node.ports import BaseLayer


class Harness:
    """One node on a fresh in-memory store and a simulated chain from ``genesis_ms``.

    ``faults`` replaces the configuration's ``[chain.faults]`` (drops, outages, reorgs).
    """

    def __init__(self, config: ClearingConfig, genesis_ms: int, faults: dict[str, Any] | None = None) -> None:
        schedule = FaultSchedule.from_dict(
            faults if faults is not None else dict(config.chain.get("faults") or {})
        )

        def base_layer(config: ClearingConfig, _genesis: int) -> BaseLayer:
            chain = config.chain
            params = ChainParams(
                genesis_ms=genesis_ms,
                block_time_ms=int(chain["block_time_ms"]),
                txs_per_block_max=int(chain["txs_per_block_max"]),
                fee_per_tx_minor=0,
                seed=int(chain["seed"]),
            )
            return SimulatedChain(params, schedule)

        self.log: list[LogEntry] = []
        self.steps: list[Step] = []
        store = MemoryStore.open()
        store.set_meta("chain_genesis_ms", str(genesis_ms))
        options = NodeOptions(label="harness", config=config, observer=self._observed)
        self.node: Node[MemoryStore] = Node.open(store, base_layer, options)

    def _observed(self, entry: LogEntry, step: Step) -> None:
        self.log.append(entry)
        self.steps.append(step)

    @property
    def engine(self) -> Engine:
        """The node's engine, for assertions on its state (tests only: drivers read projections)."""
        return self.node.engine

    @property
    def chain(self) -> SimulatedChain:
        chain = self.node.chain
        if not isinstance(chain, SimulatedChain):
            raise TypeError("the harness runs on the simulated chain")
        return chain

    def apply(self, kind: str, payload: Any, at_ms: int) -> Step:
        """Submit one input through the node; its committed step."""
        step = self.node.submit(kind, payload, at_ms)
        if step is None:  # only a repeated source id is skipped, and the harness gives none
            raise RuntimeError(f"the node skipped a {kind} input")
        return step

    def advance(self, to_ms: int) -> Step:
        """Observe the base layer up to ``to_ms`` and log what happened (even nothing)."""
        step = self.node.advance(to_ms)
        if step is None:
            raise RuntimeError("the harness's base layer exists from genesis")
        return step

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
        return [row for step in self.steps for row in step.event_rows()]
