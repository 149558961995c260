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

from typing import Protocol

import numpy as np
import numpy.typing as npt

from clearlane.core.engine.core import AccountBalances, Engine, Liquidity, OpenBatches


class _HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...


class NodeQueries:
    """See the module docstring."""

    def __init__(self, owner: _HasEngine) -> None:
        # The owner (a Runner), not its engine: recovery replaces the engine object.
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

    def engine_time_ms(self) -> int:
        """The engine clock: the latest time of any applied input."""
        return int(self._owner.engine.now_ms)

    def state_root(self) -> str:
        """The engine's state root, hex."""
        return self._owner.engine.state_root()
