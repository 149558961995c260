"""``clearlane bench --floor``: the floor of the benchmark's work, measured in the same run.

End to end, the node reads and validates the Parquet day, routes, checks liquidity, batches,
nets, commits every batch to a Merkle root, persists every lifecycle, posts the ledger, extends
the audit chain, anchors and follows finality. The floor is the least that work could cost on
this machine with these libraries, each part done in bulk on one thread, timed three times and
its best run kept, after the node is closed and the run's pages are on disk (``os.sync``), so the
floor pays for nothing the run left behind:

* **read** — ``pyarrow.parquet.read_table`` of the same file and columns;
* **net** — exact multilateral netting of the same L2 flows in the same batches (integer sums of
  every leg per batch, participant and asset, by the engine's compiled netting pass in one call
  over every batch), checked to sum to zero per batch and asset;
* **hash** — the same canonical leaves and Merkle nodes through the same hasher, in one call of
  the engine's compiled commitment kernel over every batch; the roots are checked byte for byte
  against the roots the run committed;
* **write** — the same number of bytes the run left in the store, written to a scratch table of
  the same kind of store in the same number of transactions (SQLite only; the memory store has
  no write floor).

The ratio end-to-end ÷ floor says how much the node spends beyond the work itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.commitment import batch_roots
from clearlane.core.engine.core import LogEntry
from clearlane.core.engine.flows import Flows
from clearlane.core.engine.netting import cell_sums, net_flows_many
from clearlane.core.model.events import Step
from clearlane.core.model.states import TradeState
from clearlane.core.textcols import string_table

REPEATS = 3  # each floor part is timed this many times and its best run kept
_INT64_MAX = (1 << 63) - 1  # the floor's exact sums: int64, checked per batch by the pass

_RECORD_COLUMNS = (
    "flow_id",
    "kind",
    "buyer",
    "seller",
    "base",
    "quote",
    "qty_minor",
    "quote_minor",
    "fee_buyer_minor",
    "fee_seller_minor",
    "received_ms",
    "executed_ms",
    "batch_seq",
    "exch_batch_id",
)


class FloorError(RuntimeError):
    """The floor did not do the same work as the run (a root or a net differs): a bug."""


@dataclass
class FloorRecorder:
    """A step observer keeping what the floor re-does: every L2 record and every batch's flows
    (in batch order) and root. Only attached with ``--floor``."""

    records: list[pa.Table] = field(default_factory=list)
    batches: list[tuple[str, pa.Array, bytes]] = field(default_factory=list)
    steps: int = 0

    def __call__(self, entry: LogEntry, step: Step) -> None:
        self.steps += 1
        for table in step.tables():
            if table.num_rows == 0:
                continue
            live = pc.and_(
                pc.is_valid(table.column("pool")),
                pc.not_equal(table.column("state"), pa.scalar(int(TradeState.REJECTED), pa.int8())),
            )
            kept = table.filter(live)
            if kept.num_rows:
                self.records.append(kept.select(list(_RECORD_COLUMNS)))
        for b in step.cleared():
            self.batches.append((b.batch_id, b.flow_ids, b.root))


@dataclass(frozen=True)
class FloorFigures:
    """Wall seconds of each floor part (None: not measured for this store)."""

    read: float
    net: float
    hash: float
    write: float | None
    flows: int
    batches: int
    write_bytes: int

    @property
    def total(self) -> float:
        return self.read + self.net + self.hash + (self.write or 0.0)


def measure_floor(
    recorder: FloorRecorder,
    config: ClearingConfig,
    trades_file: Path,
    write_floor: Callable[[int, int], float] | None,
    store_bytes: int,
) -> FloorFigures:
    """Re-do the run's work at its floor and time each part (see the module docstring)."""
    flows, bounds, batch_ids, roots = _batch_flows(recorder, config)
    read = _best(lambda: pq.read_table(trades_file))
    nets: list[tuple[Any, Any]] = []
    net = _best(lambda: nets.append(_net(flows, bounds, config)))
    _check_nets(nets[0], config, len(batch_ids))
    pids = pa.array(config.participant_ids, type=pa.string())
    codes = pa.array([a.code for a in config.assets], type=pa.string())
    tables = (string_table(config.participant_ids), string_table([a.code for a in config.assets]))
    got: list[list[bytes]] = []
    hashed = _best(
        lambda: got.append(batch_roots(flows, bounds, batch_ids, *tables, config.house_index, pids, codes))
    )
    if any(list(run) != roots for run in got):
        raise FloorError("the floor's Merkle roots differ from the roots the run committed")
    write = None
    if write_floor is not None:
        write = min(write_floor(store_bytes, recorder.steps) for _ in range(REPEATS))
    return FloorFigures(read, net, hashed, write, len(flows), len(batch_ids), store_bytes)


def _best(work: Callable[[], Any]) -> float:
    """The least wall time of ``REPEATS`` runs of ``work``: a floor is the fastest the machine
    does it, not one run's luck with the other processes and the page cache."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _batch_flows(
    recorder: FloorRecorder, config: ClearingConfig
) -> tuple[Flows, np.ndarray[Any, Any], list[str], list[bytes]]:
    """Every batch's flows in batch order (as the engine committed them), the batch bounds, ids
    and committed roots."""
    if not recorder.batches:
        raise FloorError("the run cleared no batch")
    records = pa.concat_tables(recorder.records).combine_chunks() if recorder.records else None
    if records is None:
        raise FloorError("the run kept no L2 record")
    order = pa.chunked_array([ids for _, ids, _ in recorder.batches]).combine_chunks()
    rows = pc.index_in(order, value_set=records.column("flow_id"))
    if rows.null_count:
        raise FloorError("a batch holds a flow the run never recorded")
    table = records.take(rows)
    sizes = np.array([len(ids) for _, ids, _ in recorder.batches], dtype=np.int64)
    bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    n = table.num_rows

    def codes(name: str) -> np.ndarray[Any, Any]:
        indices = table.column(name).combine_chunks().indices.to_numpy(zero_copy_only=False)
        out: np.ndarray[Any, Any] = indices.astype(np.int32)
        return out

    flows = Flows(
        ids=table.column("flow_id").combine_chunks(),
        kind=table.column("kind").to_numpy().astype(np.int8),
        buyer=codes("buyer"),
        seller=codes("seller"),
        base=codes("base"),
        quote=codes("quote"),
        qty=table.column("qty_minor").to_numpy().astype(np.int64),
        quote_amt=table.column("quote_minor").to_numpy().astype(np.int64),
        fee_buyer=table.column("fee_buyer_minor").to_numpy().astype(np.int64),
        fee_seller=table.column("fee_seller_minor").to_numpy().astype(np.int64),
        time_ms=table.column("received_ms").to_numpy().astype(np.int64),
        executed_ms=table.column("executed_ms").to_numpy().astype(np.int64),
        pool=np.zeros(n, dtype=np.int32),
        batch_seq=table.column("batch_seq").to_numpy().astype(np.int64),
        exch_batch=table.column("exch_batch_id").combine_chunks(),
    )
    return flows, bounds, [b for b, _, _ in recorder.batches], [r for _, _, r in recorder.batches]


def _net(flows: Flows, bounds: np.ndarray[Any, Any], config: ClearingConfig) -> tuple[Any, Any]:
    """Exact net per (batch, participant, asset): every leg's two signed changes, summed by the
    engine's own netting pass (``netting.net_flows_many``: the compiled scratch-cell sums read
    straight from the flow columns, the fastest exact way this code base has) over all batches
    in one call."""
    n_p, n_a = config.participant_count, len(config.assets)
    netted = net_flows_many(flows, bounds, config.house_index, n_p, n_a, _INT64_MAX)
    results = [r for r, _ in netted or []]
    if netted is None or any(r is None for r in results):
        raise FloorError(
            "the floor's batches do not net in one compiled pass (too many cells, or int64 sums)"
        )
    key = np.concatenate(
        [(b * n_p + r.participant) * n_a + r.asset for b, r in enumerate(results) if r is not None]
    )
    value = np.concatenate([r.amount for r in results if r is not None])
    return key, value


def _check_nets(nets: tuple[Any, Any], config: ClearingConfig, n_batches: int) -> None:
    """Every batch's nets sum to zero per asset (multilateral netting moves value, never makes it)."""
    key, value = nets
    n_p, n_a = config.participant_count, len(config.assets)
    batch_asset = (key // (n_p * n_a)) * n_a + key % n_a
    sums = cell_sums(batch_asset, value, n_batches * n_a)
    if np.any(sums != 0):
        raise FloorError("the floor's nets of a batch do not sum to zero for an asset")
