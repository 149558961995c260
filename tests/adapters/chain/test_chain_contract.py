"""The chain contract (clearlane.testing.chain_contract) on the simulated chain and on the
Ethereum adapter against a real anvil node (installed from npm by the devserver; never skipped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearlane.adapters.chain.ethereum import EthereumChain, EthereumOptions
from clearlane.adapters.chain.ethkeys import EthKeyStore
from clearlane.adapters.chain.simulated import ChainParams, FaultSchedule, SimulatedChain
from clearlane.testing.chain_contract import BLOCK_MS, GENESIS_MS, ChainContract
from clearlane.testing.devserver import AnvilServer


class TestSimulatedChain(ChainContract):
    def open_chain(self, genesis_ms: int) -> Any:
        # A far-off scheduled reorg gives the chain a reach of 3 blocks for the injected ones.
        faults = FaultSchedule(reorgs=((1_000_000, 3),))
        return SimulatedChain(ChainParams(genesis_ms=genesis_ms, block_time_ms=BLOCK_MS), faults)

    def produce(self, chain: Any, at_ms: int) -> None:
        pass  # the simulated chain produces its slots by itself

    def reorg(self, chain: Any, depth: int, at_ms: int) -> None:
        # The block of the next slot triggers it and is orphaned along with the newest `depth`.
        chain.schedule_reorg(chain.tip_height() + 1, depth + 1)

    def reopen(self, chain: Any, genesis_ms: int) -> Any:
        return SimulatedChain(chain.params, chain.faults)


class TestEthereumChain(ChainContract):
    @pytest.fixture(autouse=True)
    def _node(self, tmp_path: Path) -> Iterator[None]:
        self.anvil = AnvilServer(timestamp_s=GENESIS_MS // 1000).start()
        self.key_dir = tmp_path / "keys"
        key = EthKeyStore(self.key_dir).ensure_active()
        self.anvil.fund(key.address)
        try:
            yield
        finally:
            self.anvil.stop()

    def options(self) -> EthereumOptions:
        return EthereumOptions(rpc_url=self.anvil.url, state_dir=str(self.key_dir), backoff_initial_s=0.0)

    def open_chain(self, genesis_ms: int) -> Any:
        return EthereumChain(self.options(), genesis_ms, EthKeyStore(self.key_dir).ensure_active())

    def produce(self, chain: Any, at_ms: int) -> None:
        self.anvil.mine(at_ms // 1000)

    def reorg(self, chain: Any, depth: int, at_ms: int) -> None:
        self.anvil.rpc("anvil_reorg", [depth, []])
        self.anvil.mine(at_ms // 1000)

    def reopen(self, chain: Any, genesis_ms: int) -> Any:
        return self.open_chain(genesis_ms)
