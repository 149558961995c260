"""receipts owns what the node answers for a submission: one receipt builder.

A receipt says what the committed step did with one flow (a trade or a payment): accepted or
rejected (with the engine's code, field and reason), its state, lane, pool and batch, and when it
was received; an id already applied is answered with its record's receipt, status ``duplicate``.
Receipts are built here only — column-wise from a committed :class:`Step` (the bulk path: one
dict per row, the columns decoded once) or from one stored record — so the HTTP API, the bus
worker and the CLI can never drift on a field name or a rule (the batch id, the status of a
rejected flow).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.events import Step
from clearlane.core.model.states import TradeState

_REJECTED = int(TradeState.REJECTED)
_STATE_LABELS = {int(s): s.label for s in TradeState}
_KINDS = {0: "trade", 1: "payment"}


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
    """Per flow id: the receipt of what the committed step did with it (column-wise, then one
    dict a row)."""
    out: dict[str, dict[str, Any]] = {}
    why = {r.input_id: r for r in fx.rejects() if r.input_id is not None}
    for table in fx.tables():
        if table.num_rows == 0:
            continue
        ids = table.column("flow_id").to_pylist()
        kinds = table.column("kind").to_numpy().tolist()
        lanes = _dict_values(table.column("lane"))
        pools = _dict_values(table.column("pool"))
        seqs = table.column("batch_seq").to_numpy().tolist()
        states = table.column("state").to_numpy().tolist()
        codes = table.column("reject_code").to_numpy().tolist()
        received = table.column("received_ms").to_numpy().tolist()
        for i, flow_id in enumerate(ids):
            r = why.get(flow_id) if codes[i] else None
            out[flow_id] = flow_receipt(
                flow_id,
                kind=kinds[i],
                state=states[i],
                lane=lanes[i],
                pool=pools[i],
                seq=seqs[i],
                received_ms=received[i],
                code=codes[i],
                field=r.field if r else None,
                reason=r.reason if r else None,
            )
    return out


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


def _dict_values(column: pa.ChunkedArray) -> list[Any]:
    """A (dictionary-encoded) string column as a Python list, decoding each value once."""
    arr = column.combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        return list(arr.to_pylist())
    names = [*arr.dictionary.to_pylist(), None]
    codes = pc.fill_null(arr.indices, len(names) - 1).to_numpy(zero_copy_only=False).tolist()
    return [names[c] for c in codes]
