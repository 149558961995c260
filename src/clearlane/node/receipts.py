"""receipts owns what the node answers for a submission: one receipt builder.

A receipt says what the committed step did with one flow (a trade or a payment): accepted or
rejected (with the engine's code, field and reason), its state, lane, pool and batch, and when it
was received; an id already applied is answered with its record's receipt, status ``duplicate``.
Receipts are built here only — column-wise from a committed :class:`Step`
(:func:`step_receipt_table`: a table a gateway renders, or :func:`receipt_dicts` of it) or from
one stored record — so the HTTP API, the gateways, the bus worker and the CLI can never drift
on a field name or a rule (the batch id, the status of a rejected flow).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.events import Step
from clearlane.core.model.states import TradeState

_REJECTED = int(TradeState.REJECTED)
_STATE_LABELS = {int(s): s.label for s in TradeState}
_KINDS = {0: "trade", 1: "payment"}
# The same labels as Arrow look-up arrays (kind 2 stands for "any other": a trade, as _KINDS).
_STATE_NAMES = [_STATE_LABELS.get(i, "") for i in range(max(_STATE_LABELS) + 1)]


def reject_body(code: int, field: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """The public shape of one refusal: stable code, its slug, the field and the reason."""
    rc = RejectCode(code)
    return {"code": int(code), "error": rc.slug, "field": field or "-", "reason": reason or rc.slug}


@lru_cache(maxsize=8192)
def _batch_id(pool: str | None, seq: int) -> str | None:
    # Every row of a batch names the same id: format it once per (pool, seq), not per row.
    return model_ids.batch_id_or_none(pool, seq)


def flow_receipt(
    flow_id: str,
    *,
    kind: int,
    state: int,
    lane: str | None,
    pool: str | None,
    seq: int,
    received_ms: int,
    code: int = 0,
    field: str | None = None,
    reason: str | None = None,
    status: str = "accepted",
) -> dict[str, Any]:
    """The receipt of one flow. ``status`` is ``accepted`` (then ``rejected`` if the engine
    refused it) or ``duplicate`` (an id answered from its record, whatever its state)."""
    return {
        "id": flow_id,
        "kind": _KINDS.get(kind, "trade"),
        "status": "rejected" if state == _REJECTED and status == "accepted" else status,
        "state": _STATE_LABELS[state],
        "lane": lane,
        "pool": pool,
        "batch_id": _batch_id(pool, seq),
        "received_at_ms": received_ms,
        "reject": reject_body(code, field, reason) if code else None,
    }


def step_receipts(fx: Step) -> dict[str, dict[str, Any]]:
    """Per flow id: the receipt of what the committed step did with it — the same dict
    :func:`flow_receipt` makes, built from the step's receipt columns
    (:func:`step_receipt_table`: labels, statuses and batch ids by Arrow kernels, a batch id
    formatted once per batch; only a row the engine refused looks up its reason)."""
    return {r["id"]: r for r in receipt_dicts(step_receipt_table(fx))}


RECEIPT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("status", pa.string()),
        pa.field("state", pa.string()),
        pa.field("lane", pa.string()),
        pa.field("pool", pa.string()),
        pa.field("batch_id", pa.string()),
        pa.field("received_at_ms", pa.int64()),
        pa.field("reject_code", pa.int64()),
        pa.field("reject_field", pa.string()),
        pa.field("reject_reason", pa.string()),
    ]
)
"""A committed step's receipts as columns (:func:`step_receipt_table`); :func:`receipt_dicts`
makes the same dicts :func:`step_receipts` does from any slice of them."""

_KIND_LABELS = pa.array(["trade", "payment", "trade"])
_STATUS_LABELS = pa.array(["accepted", "rejected"])
_STATE_LABEL_ARRAY = pa.array(_STATE_NAMES, pa.string())


def step_receipt_table(fx: Step) -> pa.Table:
    """:func:`step_receipts` as a table of :data:`RECEIPT_SCHEMA` (one row per flow of the step,
    in the step's order), built by Arrow kernels: no Python object per row. A gateway renders
    its slice of it (adapters/http/link.py); :func:`receipt_dicts` gives the dicts."""
    parts = []
    why: dict[str, Any] = {}
    for table in fx.tables():
        if table.num_rows == 0:
            continue
        states = table.column("state").to_numpy()
        codes = table.column("reject_code").to_numpy().astype(np.int64, copy=False)
        pools = _plain(table.column("pool"))
        field = reason = pa.nulls(table.num_rows, pa.string())
        refused = np.flatnonzero(codes)
        if len(refused):  # the step's rejects, looked up only if a row was refused
            if not why:
                why.update({r.input_id: r for r in fx.rejects() if r.input_id is not None})
            ids = table.column("flow_id").take(pa.array(refused)).to_pylist()
            found = [why.get(i) for i in ids]
            fields: list[str | None] = [None] * table.num_rows
            reasons: list[str | None] = [None] * table.num_rows
            for at, r in zip(refused.tolist(), found, strict=True):
                fields[at] = r.field if r else None
                reasons[at] = r.reason if r else None
            field, reason = pa.array(fields, pa.string()), pa.array(reasons, pa.string())
        parts.append(
            pa.Table.from_arrays(
                [
                    table.column("flow_id").combine_chunks().cast(pa.string()),
                    _KIND_LABELS.take(pa.array(np.minimum(table.column("kind").to_numpy(), 2))),
                    _STATUS_LABELS.take(pa.array((states == _REJECTED).astype(np.int8))),
                    _STATE_LABEL_ARRAY.take(pa.array(states)),
                    _plain(table.column("lane")),
                    pools,
                    _batch_id_array(pools, table.column("batch_seq").to_numpy()),
                    table.column("received_ms").combine_chunks().cast(pa.int64()),
                    pa.array(codes),
                    field,
                    reason,
                ],
                schema=RECEIPT_SCHEMA,
            )
        )
    if not parts:
        return RECEIPT_SCHEMA.empty_table()
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def receipt_dicts(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """The receipts of rows of :func:`step_receipt_table`, as :func:`step_receipts` makes them."""
    rows = zip(
        *(table.column(i).to_pylist() for i in range(8)),
        table.column("reject_code").to_pylist(),
        table.column("reject_field").to_pylist(),
        table.column("reject_reason").to_pylist(),
        strict=True,
    )
    return [
        {
            "id": flow_id,
            "kind": kind,
            "status": status,
            "state": state,
            "lane": lane,
            "pool": pool,
            "batch_id": batch,
            "received_at_ms": received,
            "reject": reject_body(code, field, reason) if code else None,
        }
        for flow_id, kind, status, state, lane, pool, batch, received, code, field, reason in rows
    ]


def _plain(column: pa.ChunkedArray) -> pa.Array:
    """A (dictionary-encoded) string column as plain strings."""
    return column.combine_chunks().cast(pa.string())


def _batch_id_array(pools: pa.Array, seqs: npt.NDArray[np.int64]) -> pa.Array:
    """Each row's batch id (null outside a batch), formatted once per distinct (pool, seq)."""
    encoded = pools.dictionary_encode()
    names = [*encoded.dictionary.to_pylist(), None]
    codes = pc.fill_null(encoded.indices, len(names) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
    _, first, inverse = np.unique(codes * (1 << 40) + (seqs + 1), return_index=True, return_inverse=True)
    ids = [_batch_id(names[codes[i]], int(seqs[i])) for i in first.tolist()]
    return pa.array(ids, pa.string()).take(pa.array(inverse.reshape(-1)))


def record_receipt(row: dict[str, Any], state: int, status: str = "duplicate") -> dict[str, Any]:
    """The receipt of a stored record (its current ``state`` from the read model)."""
    raw_seq = row.get("batch_seq")
    return flow_receipt(
        row["flow_id"],
        kind=int(row["kind"]),
        state=state,
        lane=row.get("lane"),
        pool=row.get("pool"),
        seq=-1 if raw_seq is None else int(raw_seq),
        received_ms=int(row["received_ms"]),
        code=int(row.get("reject_code") or 0),
        status=status,
    )


def event_receipt(event_id: str, kind: str, status: str = "accepted") -> dict[str, Any]:
    """The receipt of a small event that is not a flow (a deposit, a withdrawal)."""
    return {"id": event_id, "kind": kind, "status": status}


def operator_receipt(
    step: Step, kind: str, record_id: str, key: str, done: Sequence[Any]
) -> tuple[dict[str, Any], Reject | None]:
    """The receipt of an operator input (manual settlement, ledger adjustment) and the reject
    that refused it, if any: ``done`` is what the step applied of that kind, shown under ``key``."""
    rejects = [*step.conflicts, *step.rejects()]
    reject = rejects[0] if rejects else None
    status = "accepted" if done else "rejected" if reject is not None else "duplicate"
    receipt = {
        "id": record_id,
        "kind": kind,
        "status": status,
        key: done[0].to_dict() if done else None,
        "reject": None if reject is None else reject.to_dict(),
        "log_seq": step.seq,
    }
    return receipt, reject
