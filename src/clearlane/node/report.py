"""Read-side views: a trade's lifecycle with both finality timestamps and its badge, the
summary of a cleared day (trades per lane, netting efficiency, liquidity saved, latency — store
totals), and the figures of one run (rows read, applied, duplicates, conflicts, rejected), which
:func:`run_figures` keeps apart from the totals."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.states import BatchState, TradeState
from clearlane.core.proofs.codec import read_table
from clearlane.node.ports import Store
from clearlane.node.queries import HasEngine


def clock(ms: int | None) -> str:
    """``HH:MM:SS.mmm`` UTC."""
    if ms is None or ms < 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]


def iso(ms: int | None) -> str | None:
    if ms is None or ms < 0:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _since(ms: int, origin: int) -> str:
    return f"T+{(ms - origin) / 1000:.1f}s"


class TradeSource(Protocol):
    """Where a lifecycle is read from: the store, or the service's in-memory read model."""

    def find_trade(self, flow_id: str) -> dict[str, Any] | None: ...
    def batch(self, batch_id: str) -> dict[str, Any] | None: ...
    def l1_group(self, group_id: str) -> dict[str, Any] | None: ...
    def l1_group_for_batch(self, batch_id: str) -> dict[str, Any] | None: ...


def trade_lifecycle(store: Store | TradeSource, flow_id: str) -> dict[str, Any] | None:
    """Everything known about one trade or payment, assembled from the stored records."""
    record = store.find_trade(flow_id)
    if record is None:
        return None
    executed, received = int(record["executed_ms"]), int(record["received_ms"])
    out = _header(record, flow_id)
    transitions: list[dict[str, Any]] = out["transitions"]
    if int(record["state"]) == TradeState.REJECTED:
        code = RejectCode(int(record["reject_code"]))
        transitions.append({"state": "rejected", "at_ms": received, "detail": f"{code.slug} ({int(code)})"})
        out["state"] = "rejected"
        out["badge"] = f"Rejected — {code.slug} ({int(code)})"
        return _finish(out)
    detail = f"{record['lane']} via rule {record['route_rule']!r}"
    transitions.append({"state": "routed", "at_ms": received, "detail": detail})
    final_ms: int | None = None
    l1_origin: dict[str, Any] | None = None
    if record["lane"] == "L2":
        final_ms, l1_origin = _l2_part(store, record, out)
    elif record["l1_group"]:
        l1_origin = store.l1_group(record["l1_group"])
        out["state"] = "submitted"
        detail = f"L1 gross, group {record['l1_group']}"
        transitions.append({"state": "submitted", "at_ms": received, "detail": detail})
    if l1_origin is not None:
        final_ms = _l1_part(l1_origin, record, flow_id, out, final_ms)
    if final_ms is not None:
        out["l1_final_at"] = iso(final_ms)
    out["badge"] = _badge(out, executed, final_ms, record)
    _settlement_failed(store, flow_id, out, final_ms)
    return _finish(out)


def _settlement_failed(
    store: Store | TradeSource, flow_id: str, out: dict[str, Any], final_ms: int | None
) -> None:
    """A gross settlement the ledger refused (502 ``ledger_refused``, docs/LIMITS.md) is a
    failed trade, not a final one: its base-layer transaction was final, its books were not."""
    reject_reason = getattr(store, "reject_reason", None)
    failed = None if reject_reason is None else reject_reason(flow_id, int(RejectCode.LEDGER_REFUSED))
    if failed is None:
        return
    code = RejectCode.LEDGER_REFUSED
    at_ms = final_ms if final_ms is not None else out["transitions"][-1]["at_ms"]
    out["transitions"].append({"state": "failed", "at_ms": at_ms, "detail": f"{code.slug} ({int(code)})"})
    out["state"] = "failed"
    out["badge"] = f"Settlement failed — {code.slug} ({int(code)}): {failed['reason']}"


def _header(record: dict[str, Any], flow_id: str) -> dict[str, Any]:
    """The record's fixed fields, and its first transition (received)."""
    return {
        "id": flow_id,
        "kind": "trade" if record["kind"] == 0 else "payment",
        "buyer": record["buyer"],
        "seller": record["seller"],
        "base": record["base"],
        "quote": record["quote"],
        "qty_minor": record["qty_minor"],
        "quote_minor": record["quote_minor"],
        "fees_minor": [record["fee_buyer_minor"], record["fee_seller_minor"]],
        "exch_batch_id": record["exch_batch_id"],
        "executed_at": iso(int(record["executed_ms"])),
        "lane": record["lane"],
        "pool": record["pool"],
        "route_rule": record["route_rule"],
        "batch_id": None,
        "l2_cleared_at": None,
        "l1_final_at": None,
        "state": None,
        "transitions": [{"state": "received", "at_ms": int(record["received_ms"]), "detail": ""}],
    }


def _l2_part(
    store: Store | TradeSource, record: dict[str, Any], out: dict[str, Any]
) -> tuple[int | None, dict[str, Any] | None]:
    """An L2 flow's batch and its events; returns (final time, the L1 group it was unwound to)."""
    transitions: list[dict[str, Any]] = out["transitions"]
    batch_id = model_ids.batch_id(record["pool"], int(record["batch_seq"]))
    out["batch_id"] = batch_id
    transitions.append({"state": "batched", "at_ms": int(record["received_ms"]), "detail": batch_id})
    out["state"] = "batched"
    batch = store.batch(batch_id)
    if batch is None:
        return None, None
    for event in batch["events"]:
        transitions.append({"state": event["event"], "at_ms": event["at_ms"], "detail": event["detail"]})
    out["state"] = batch["state"]
    out["l2_cleared_at"] = iso(int(batch["cleared_at_ms"]))
    out["anchor"] = {
        "tx": batch["anchor_tx"],
        "height": batch["anchor_height"],
        "at": iso(batch["anchored_at_ms"]),
    }
    out["root"] = bytes(batch["root"]).hex()
    final_ms = int(batch["final_at_ms"]) if batch["state"] == BatchState.FINAL.label else None
    unwound = batch["state"] == BatchState.UNWOUND.label
    return final_ms, store.l1_group_for_batch(batch_id) if unwound else None


@functools.lru_cache(maxsize=32)
def _l1_group(blob: bytes) -> tuple[pa.Table, dict[str, int]]:
    """An L1 group's decoded table and each flow's row in it. Cached by the blob's bytes: a
    webhook batch or a page of trades asks for many flows of the same group, and decoding and
    filtering the group once per flow was most of a trade snapshot's cost."""
    table = read_table(blob)
    return table, {flow_id: i for i, flow_id in enumerate(table.column("flow_id").to_pylist())}


def _l1_part(
    l1_origin: dict[str, Any], record: dict[str, Any], flow_id: str, out: dict[str, Any], final_ms: int | None
) -> int | None:
    """The flow's gross L1 transaction (its lane, or after an unwind); returns the final time."""
    transitions: list[dict[str, Any]] = out["transitions"]
    table, where = _l1_group(bytes(l1_origin["blob"]))
    row = where.get(flow_id)
    if row is None:
        return final_ms
    r = table.slice(row, 1).to_pylist()[0]
    tx = model_ids.l1_tx_id(flow_id, r["attempt"])
    on_l1 = record["lane"] == "L1"
    if not on_l1:
        detail = f"L1 gross after unwind, {tx}"
        transitions.append({"state": "submitted", "at_ms": r["submitted_ms"], "detail": detail})
        out["state"] = "unwound"
    if r["included_height"] >= 0:
        detail = f"{tx}@{r['included_height']}"
        transitions.append({"state": "anchored", "at_ms": r["included_ms"], "detail": detail})
        out["state"] = "anchored" if on_l1 else out["state"]
    if r["included_height"] == model_ids.MANUAL_HEIGHT:
        # Settled off-system by an operator (issue 17): final in the books, never on a chain.
        at_ms = int(r["final_ms"])
        detail = "off-system, recorded by an operator with evidence (docs/MANUAL_SETTLEMENT.md)"
        transitions.append({"state": "settled_manually", "at_ms": at_ms, "detail": detail})
        out["state"] = "settled_manually"
        out["settled_manually_at"] = iso(at_ms)
        return final_ms
    if r["final_ms"] >= 0:
        final_ms = int(r["final_ms"])
        transitions.append({"state": "final", "at_ms": final_ms, "detail": "L1 confirmations reached"})
        out["state"] = "final" if on_l1 else "unwound"
    return final_ms


def stamp(ms: int) -> str:
    """A badge's instant: date, time and zone (UTC), never a bare clock time."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _badge(out: dict[str, Any], executed: int, final_ms: int | None, record: dict[str, Any]) -> str:
    """The lifecycle in one sentence (docs/FINALITY.md): Layer-2 clearing is soft-final and
    named so; base-layer finality is the second, separate event."""
    state = out["state"]

    def at(ms: int) -> str:
        return f"{stamp(ms)} ({_since(ms, executed)})"

    if state == "settled_manually":
        manual = [t["at_ms"] for t in out["transitions"] if t["state"] == "settled_manually"]
        when = f" at {at(manual[0])}" if manual else ""
        return (
            f"Settled manually off-system{when} — recorded by an operator with evidence; "
            "not final on a base layer"
        )
    if record["lane"] == "L2" and state in ("cleared", "anchored", "final"):
        cleared = [t["at_ms"] for t in out["transitions"] if t["state"] == "cleared"]
        soft = f"soft-final at {at(cleared[0])}" if cleared else "soft-final"
        if state == "final" and final_ms is not None:
            return f"Settled on Layer-2 — {soft}; base-layer final at {at(final_ms)}"
        return f"Cleared on Layer-2 — {soft}; base-layer final pending"
    if state == "unwound":
        if final_ms is not None:
            return f"Unwound from Layer-2, settled gross on Layer-1 — final at {at(final_ms)}"
        return "Unwound from Layer-2 — settling gross on Layer-1"
    if record["lane"] == "L1" and state == "final" and final_ms is not None:
        return f"Settled on Layer-1 — final at {at(final_ms)}"
    if record["lane"] == "L1":
        return "Submitted to Layer-1 — awaiting confirmations"
    return "Batched on Layer-2 — awaiting batch close"


def _finish(out: dict[str, Any]) -> dict[str, Any]:
    for t in out["transitions"]:
        t["at"] = iso(t["at_ms"])
    return out


def _percentiles(parts: list[Any]) -> tuple[float | None, float | None, int]:
    if not parts:
        return None, None, 0
    values = np.concatenate(parts)
    if len(values) == 0:
        return None, None, 0
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50) / 1000, float(p99) / 1000, len(values)


def summary(node: HasEngine) -> dict[str, Any]:
    """The figures `clearlane demo`, `clear` and `bench` print, of the node's engine."""
    engine = node.engine
    s = engine.stats
    efficiency = 1.0 - s.net_usd / s.gross_usd if s.gross_usd else 0.0
    cleared = _percentiles(s.latency_cleared_ms)
    l2_final = _percentiles(s.latency_l2_final_ms)
    l1_final = _percentiles(s.latency_l1_final_ms)
    return {
        "trades_by_lane": dict(sorted(s.flows_by_lane.items())),
        "rejects_by_code": dict(sorted(s.rejects_by_code.items())),
        "duplicates": s.duplicates,
        "batches": {
            "cleared": s.batches_cleared,
            "final": s.batches_final,
            "unwound": s.batches_unwound,
            "pending": len(engine.pending),
        },
        "anchors": {"submitted": s.anchors_submitted, "reorged": s.reorged_anchors},
        "l1": {"submitted": s.l1_submitted, "final": s.l1_final, "resubmitted": s.l1_resubmitted},
        "gross_usd": round(s.gross_usd, 2),
        "net_usd": round(s.net_usd, 2),
        "netting_efficiency": round(efficiency, 6),
        "liquidity_saved_usd": round(s.gross_usd - s.net_usd, 2),
        "liquidity_diverted": s.liquidity_diverted,
        # Ledger refusals the engine turned into data (docs/LIMITS.md); failed settlements are
        # accepted flows final on the base layer whose ledger posting was refused.
        "ledger_refused": s.ledger_refused,
        "settlements_failed": s.settlements_failed,
        "latency_s": {
            "L2 cleared": {"p50": cleared[0], "p99": cleared[1], "n": cleared[2]},
            "L2 final": {"p50": l2_final[0], "p99": l2_final[1], "n": l2_final[2]},
            "L1 final": {"p50": l1_final[0], "p99": l1_final[1], "n": l1_final[2]},
        },
        "alerts": list(s.alerts),
        "state_root": engine.state_root(),
    }


@dataclass(frozen=True, slots=True)
class RunStart:
    """What the engine had applied before a run (:func:`run_start`), to tell the run's figures
    from the store's totals: a reopened store's engine counts everything since its first entry."""

    flows: int
    events: int


def run_start(node: HasEngine) -> RunStart:
    engine = node.engine
    return RunStart(sum(engine.stats.flows_by_lane.values()), len(engine.seen_event_ids))


def run_figures(
    start: RunStart, node: HasEngine, rows_read: int, rejects: Iterable[Reject], event_ids: Iterable[str]
) -> dict[str, Any]:
    """This run's figures; every row read is exactly one of applied, duplicate or rejected.

    ``rejects`` are the run's (edge and engine), ``event_ids`` the ids of the run's deposits,
    withdrawals, marks and configuration changes (payments are flows). Applied = new trades and
    payments the engine accepted + new small events it did not refuse; duplicates = the rest
    that was not rejected — ids seen before, and chunks of a file that is cleared again (skipped
    whole by source id). Conflicts (same id, different content) are the rejects with code 116.
    """
    engine = node.engine
    rejected = list(rejects)
    by_code: dict[str, int] = {}
    for r in rejected:
        by_code[r.code.slug] = by_code.get(r.code.slug, 0) + 1
    events = set(event_ids)
    event_rejects = sum(1 for r in rejected if r.row is None and r.input_id in events)
    new_events = len(engine.seen_event_ids) - start.events - event_rejects
    applied = sum(engine.stats.flows_by_lane.values()) - start.flows + max(0, new_events)
    return {
        "rows_read": rows_read,
        "applied": applied,
        "duplicates": max(0, rows_read - len(rejected) - applied),
        "conflicts": by_code.get(RejectCode.ID_CONFLICT.slug, 0),
        "rejected": len(rejected),
        "rejects_by_code": dict(sorted(by_code.items())),
    }


def run_from_counts(rows_read: int, rejects_by_code: dict[str, int], duplicates: int) -> dict[str, Any]:
    """:func:`run_figures` from counters (the live demo: rows it submitted, the service's reject
    counters by code, edge and engine, and the duplicates it answered)."""
    rejected = sum(rejects_by_code.values())
    return {
        "rows_read": rows_read,
        "applied": max(0, rows_read - rejected - duplicates),
        "duplicates": duplicates,
        "conflicts": rejects_by_code.get(RejectCode.ID_CONFLICT.slug, 0),
        "rejected": rejected,
        "rejects_by_code": dict(sorted(rejects_by_code.items())),
    }
