"""The store contract (clearlane.testing.store_contract) on the in-memory store."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearlane.adapters.memory import MemoryStore
from clearlane.node import ports
from clearlane.testing.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    def create_store(self, tmp_path: Path, request: pytest.FixtureRequest) -> ports.Store:
        return MemoryStore.open()
