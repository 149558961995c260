"""What a driver may read of the node's live state besides the projections.

The projections (:mod:`clearlane.node.projections`) hold everything derived from committed
steps. A few figures exist only in the engine's current state — each pool's open batch, ledger
balances, the liquidity figures the policy judges by, the chain tip and engine time, the state
root. :class:`NodeQueries` hands those out as read-only snapshots the engine builds
(:class:`~clearlane.core.engine.core.OpenBatches`, :class:`~clearlane.core.engine.core.AccountBalances`,
:class:`~clearlane.core.engine.core.Liquidity`), so no driver reads an engine array or
recomputes a policy figure. Callers in a threaded driver hold the runtime lock, as for the
projections.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.engine.core import AccountBalances, Engine, Liquidity, OpenBatches
from clearlane.core.escrow import EscrowView
from clearlane.core.ledger.close import DayClose
from clearlane.core.model.codes import Reject


class HasEngine(Protocol):
    """What the queries read through: the node (a Node), whose engine recovery may replace."""

    @property
    def engine(self) -> Engine: ...

    @property
    def chain(self) -> Any: ...


class NodeQueries:
    """See the module docstring."""

    def __init__(self, owner: HasEngine) -> None:
        # The owner (a Node), not its engine: recovery replaces the engine object.
        self._owner = owner

    def open_batches(self) -> OpenBatches:
        return self._owner.engine.open_batches()

    def open_positions(self) -> npt.NDArray[np.int64]:
        return self._owner.engine.open_positions()

    def account_balances(self) -> AccountBalances:
        return self._owner.engine.account_balances()

    def liquidity(self) -> Liquidity:
        return self._owner.engine.liquidity()

    def tip_height(self) -> int:
        """The base layer's tip height the engine has seen (from logged chain observations)."""
        return int(self._owner.engine.tip_height)

    def marks_usd(self) -> dict[str, float]:
        """The USD mark per whole unit of each asset the engine values risk at now."""
        engine = self._owner.engine
        return {a.code: float(engine.marks_usd[i]) for i, a in enumerate(engine.config.assets)}

    def engine_time_ms(self) -> int:
        """The engine clock: the latest time of any applied input."""
        return int(self._owner.engine.now_ms)

    def state_root(self) -> str:
        """The engine's state root, hex."""
        return self._owner.engine.state_root()

    def applied_seq(self) -> int:
        """The log sequence number of the last applied entry."""
        return int(self._owner.engine.applied_seq)

    def clock_ms(self) -> int:
        """The node's time: the later of the last input and the last base-layer observation."""
        engine = self._owner.engine
        return int(max(engine.now_ms, engine.chain_seen_ms))

    def id_conflicts(self, table: pa.Table) -> list[Reject]:
        """The id conflicts (116) a trade chunk already in the log met (answered again, not applied)."""
        return self._owner.engine.id_conflicts(table)

    def escrow(self, escrow_id: str) -> EscrowView | None:
        return self._owner.engine.escrow(escrow_id)

    def escrow_views(self) -> list[EscrowView]:
        return self._owner.engine.escrow_views()

    def close_day(self, day: str) -> DayClose:
        """The end-of-day close of the ledger at engine time (idempotent per day)."""
        engine = self._owner.engine
        return engine.ledger.close_day(day, engine.now_ms)

    def base_layer_health(self) -> dict[str, Any] | None:
        """A real base layer's health (reachable, backoff), None for the simulated one."""
        health = getattr(self._owner.chain, "health", None)
        return None if health is None else dict(health())
