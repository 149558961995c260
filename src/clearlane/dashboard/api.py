"""The dashboard's HTTP surface: JSON views shaped for the pages, the coalesced live stream and
the static pages themselves.

``/v1/dashboard/...`` answers from :class:`~clearlane.dashboard.model.DashboardModel` (every
answer is O(page), never a scan of the day except the trade search, which is columnar).
``/v1/dashboard/stream`` is Server-Sent Events: at most ``1 / interval`` ``stats`` events a
second, each a snapshot of the overview figures — the server coalesces however many trades
arrived in between, so the browser never falls behind the engine. ``/ui/`` serves the pages;
``/ui/vendor/plotly.min.js`` is the bundle shipped inside the installed ``plotly`` wheel.

Amounts leave as decimal strings in the asset's scale (with the asset code), USD figures as
numbers rounded to cents, times as epoch milliseconds (the browser shows them in the user's
zone with the UTC value on hover).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from clearlane.dashboard.model import (
    _BINS,
    _EDGES,
    BUCKET_MS,
    STATE_CODES,
    STATE_WORDS,
    DashboardModel,
    hist_percentiles,
)
from clearlane.model.lifecycle import TradeState
from clearlane.money import format_minor
from clearlane.service.problems import Problem, ServiceCode, bad_parameter

STATIC = Path(__file__).with_name("static")
# The dashboard shows every participant: behind the service's keys only these roles may read it.
READER_ROLES: dict[str, Any] = {"x-roles": ["operator", "auditor"]}
# trade id -> the self-contained proof document (bytes of JSON), or None when there is none yet
ProofProvider = Callable[[str], bytes | None]


def problem(title: str, detail: str, status: int = 404) -> JSONResponse:
    """An RFC 9457 problem+json response in the service's shape (stable ``code`` and ``error``)."""
    body = Problem.service(ServiceCode.NOT_FOUND, status, detail).body()
    body["title"] = title
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def plotly_bundle() -> Path | None:
    """Path of ``plotly.min.js`` inside the installed plotly wheel (no network, no CDN)."""
    try:
        path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        return None
    return path if path.exists() else None


class Views:
    """Turns model state into the JSON the pages render."""

    def __init__(self, model: DashboardModel, info: dict[str, Any] | None = None,
                 proof: ProofProvider | None = None) -> None:
        self.m = model
        self.info = info or {}
        self.proof = proof

    # ------------------------------------------------------------------ helpers
    def amount(self, minor: int, asset: int) -> dict[str, Any]:
        return {"value": format_minor(int(minor), self.m.scales[asset]), "asset": self.m.asset_codes[asset]}

    def usd_per_minor(self) -> np.ndarray:
        return self.m.marks_usd / np.power(10.0, np.array(self.m.scales, dtype=np.float64))

    # ------------------------------------------------------------------ meta
    def meta(self) -> dict[str, Any]:
        m = self.m
        cfg = m.config
        return {
            "assets": [{"code": a.code, "scale": int(a.scale)} for a in cfg.assets],
            "pools": [{"id": p.id, "window_ms": p.window_ms, "confirmations": p.confirmations,
                       "challenge_window_ms": p.challenge_window_ms, "description": p.description} for p in cfg.pools],
            "lanes": ["L1", *m.pool_ids],
            "states": list(STATE_WORDS.values()),
            "participants": len(m.participant_ids),
            "l1_confirmations": cfg.l1_confirmations,
            "hops": [{"lane": lane, "hop": hop} for lane, hop in m.hops],
            "info": self.info,
        }

    # ------------------------------------------------------------------ overview
    def overview(self) -> dict[str, Any]:
        m = self.m
        with m.lock:
            totals_hist = m.hist.sum(axis=1) if m.hist.shape[1] else np.zeros((len(m.hops), _BINS), dtype=np.int64)
            lanes = []
            k = len(m.pool_ids)
            for row, name in enumerate(m.lane_names):
                states = {word: int(m.counts[row, code]) for code, word in STATE_WORDS.items()}
                if row == len(m.lane_names) - 1:
                    states["received"] = int(m.received_queue)  # submitted, waiting for the next step
                entry: dict[str, Any] = {"lane": name, "key": "L1" if row == 0 else (m.pool_ids[row - 1] if row <= k else "none"),
                                         "states": states, "total": int(sum(states.values()))}
                if 1 <= row <= k:
                    p = row - 1
                    gross, net = float(m.pool_gross_usd[p]), float(m.pool_net_usd[p])
                    cleared = hist_percentiles(totals_hist[4 * p])
                    final = hist_percentiles(totals_hist[4 * p + 3])
                    entry.update(
                        batches=int(m.pool_batch_count[p]),
                        gross_usd=round(gross, 2), net_usd=round(net, 2),
                        netting_efficiency=round(1 - net / gross, 6) if gross else None,
                        liquidity_saved_usd=round(gross - net, 2),
                        latency={"cleared": _pct(cleared), "final": _pct(final)},
                        batch_states={s: int(m.batch_states[p, i]) for i, s in enumerate(("cleared", "anchored", "final", "unwound"))},
                    )
                elif row == 0:
                    final = hist_percentiles(totals_hist[len(m.hops) - 1])
                    entry.update(latency={"final": _pct(final)}, open_txs=int(m.l1_open))
                lanes.append(entry)
            gross = float(m.pool_gross_usd.sum())
            net = float(m.pool_net_usd.sum())
            alerts = [a for a in list(m.alerts)[:20]]
            anchor_backlog, awaiting_final = m._backlog()
            if anchor_backlog >= 5:
                alerts.insert(0, {"at_ms": m.now_ms, "severity": "warning", "open": True,
                                  "text": f"anchor backlog: {anchor_backlog} batches cleared but not yet anchored"})
            return {
                "version": m.version,
                "now_ms": m.now_ms,
                "chain_seen_ms": m.chain_seen_ms,
                "block_height": m.tip_height,
                "anchor_backlog": anchor_backlog,
                "awaiting_finality": awaiting_final,
                "l1_open_txs": int(m.l1_open),
                "received_queue": m.received_queue,
                "trades": int(m.rows),
                "batches": len(m.batch_order),
                "gross_usd": round(gross, 2),
                "net_usd": round(net, 2),
                "netting_efficiency": round(1 - net / gross, 6) if gross else None,
                "liquidity_saved_usd": round(gross - net, 2),
                "lanes": lanes,
                "rejects_by_code": {**m.edge_rejects_by_code,
                                    **{c: m.edge_rejects_by_code.get(c, 0) + n for c, n in m.engine_rejects_by_code.items()}},
                "alerts": alerts,
                "applied_seq": m.applied_seq,
            }

    def stats_event(self) -> dict[str, Any]:
        """The small payload of a live ``stats`` event (what changed pages refresh from)."""
        m = self.m
        with m.lock:
            anchor_backlog, awaiting_final = m._backlog()
            last = [self.batch_row(m.batches[b]) for b in m.batch_order[-5:]][::-1]
            return {"version": m.version, "now_ms": m.now_ms, "block_height": m.tip_height, "trades": int(m.rows),
                    "batches": len(m.batch_order), "anchor_backlog": anchor_backlog, "awaiting_finality": awaiting_final,
                    "states": {word: int(m.counts[:, code].sum()) for code, word in STATE_WORDS.items()},
                    "latest_batches": last, "server_ms": int(time.time() * 1000)}

    # ------------------------------------------------------------------ trades
    def trade_rows(self, rows: list[tuple[Any, int, int]]) -> list[dict[str, Any]]:
        out = []
        by_chunk: dict[int, list[tuple[int, int]]] = {}
        chunks: dict[int, Any] = {}
        for chunk, r, s in rows:
            by_chunk.setdefault(id(chunk), []).append((r, s))
            chunks[id(chunk)] = chunk
        rendered: dict[tuple[int, int], dict[str, Any]] = {}
        for key, items in by_chunk.items():
            chunk = chunks[key]
            sub = chunk.table.take(pa.array([r for r, _ in items], type=pa.int64())).to_pylist()
            for (r, s), rec in zip(items, sub, strict=True):
                rendered[(key, r)] = self._trade_summary(chunk, r, s, rec)
        for chunk, r, _s in rows:
            out.append(rendered[(id(chunk), r)])
        return out

    def _trade_summary(self, chunk: Any, r: int, s: int, rec: dict[str, Any]) -> dict[str, Any]:
        m = self.m
        base, quote = m.asset_index.get(rec["base"] or "", 0), m.asset_index.get(rec["quote"] or "", 0)
        batch_id = f"{rec['pool']}-{int(rec['batch_seq']):08d}" if rec["lane"] == "L2" else None
        return {
            "id": rec["flow_id"], "kind": "trade" if rec["kind"] == 0 else "payment",
            "buyer": rec["buyer"], "seller": rec["seller"],
            "symbol": f"{rec['base']}/{rec['quote']}" if rec["kind"] == 0 else rec["base"],
            "qty": self.amount(rec["qty_minor"], base), "amount": self.amount(rec["quote_minor"], quote),
            "notional_usd": rec["notional_usd"],
            "lane": rec["lane"], "pool": rec["pool"], "batch_id": batch_id,
            "state": STATE_WORDS.get(s, str(s)), "received_ms": rec["received_ms"], "executed_ms": rec["executed_ms"],
            "reject": _reject_slug(rec["reject_code"]) if rec["state"] == int(TradeState.REJECTED) else None,
        }

    def trades(self, q: str | None, participant: str | None, state: str | None, lane: str | None,
               cursor: int | None, limit: int) -> dict[str, Any]:
        m = self.m
        p_idx = None
        if participant:
            p_idx = m.participant_index.get(participant)
            if p_idx is None:
                return {"items": [], "next": None}
        s_code = None
        if state:
            s_code = STATE_CODES.get(state)
            if s_code is None:
                raise bad_parameter("state", f"unknown state {state!r}; expected one of {', '.join(STATE_CODES)}")
        if lane and lane not in ("L1", "L2", *m.pool_ids):
            raise bad_parameter("lane", f"unknown lane {lane!r}; expected L1, L2 or a pool id")
        with m.lock:
            if q:
                exact = m.find_trade(q)
                if exact is not None and participant is None and state is None and lane is None:
                    chunk, r = exact
                    states = m.trade_states(chunk)
                    return {"items": self.trade_rows([(chunk, r, int(states[r]))]), "next": None, "exact": True}
            rows, nxt = m.search(q=q, participant=p_idx, state=s_code, lane=lane, before=cursor, limit=limit)
            return {"items": self.trade_rows(rows), "next": nxt}

    def trade(self, flow_id: str) -> dict[str, Any] | None:
        m = self.m
        with m.lock:
            hit = m.find_trade(flow_id)
            if hit is None:
                return None
            chunk, r = hit
            state = int(m.trade_states(chunk)[r])
            rec = chunk.table.slice(r, 1).to_pylist()[0]
            out = self._trade_summary(chunk, r, state, rec)
            quote = m.asset_index.get(rec["quote"] or "", 0)
            out["fees"] = {"buyer": self.amount(rec["fee_buyer_minor"], quote), "seller": self.amount(rec["fee_seller_minor"], quote)}
            out["exch_batch_id"] = rec["exch_batch_id"]
            out["route_rule"] = rec["route_rule"]
            received = int(rec["received_ms"])
            executed = int(rec["executed_ms"])
            steps: list[dict[str, Any]] = [{"state": "received", "at_ms": received, "detail": f"executed at venue {executed}"}]
            cleared_ms = final_ms = None
            batch = None
            if rec["state"] == int(TradeState.REJECTED):
                steps.append({"state": "rejected", "at_ms": received, "detail": out["reject"] or ""})
            else:
                steps[0]["detail"] = ""
                steps.append({"state": "routed", "at_ms": received, "detail": f"{rec['lane']} via rule {rec['route_rule']!r}"})
            if rec["lane"] == "L2":
                batch_id = out["batch_id"]
                steps.append({"state": "batched", "at_ms": received, "detail": batch_id})
                batch = m.batches.get(batch_id)
                if batch is not None:
                    for event, at_ms, detail in batch.events:
                        steps.append({"state": event, "at_ms": at_ms, "detail": detail})
                    cleared_ms = batch.cleared_at_ms
                    if batch.state == "final":
                        final_ms = batch.final_at_ms
                    out["batch"] = self.batch_row(batch)
            l1row = int(chunk.l1_row[r])
            if l1row >= 0:
                row = m.l1_row(l1row)
                tx = f"l1:{flow_id}:{row['attempt']}"
                label = "L1 gross after unwind" if rec["lane"] == "L2" else "L1 gross"
                steps.append({"state": "submitted", "at_ms": row["submitted"], "detail": f"{label}, {tx}"})
                if row["height"] >= 0:
                    steps.append({"state": "anchored", "at_ms": row["included"], "detail": f"{tx} in block {row['height']}"})
                if row["final"] >= 0:
                    final_ms = row["final"]
                    steps.append({"state": "final", "at_ms": final_ms, "detail": f"{m.config.l1_confirmations} confirmations"})
                out["l1_tx"] = {"tx": tx, "height": row["height"] if row["height"] >= 0 else None,
                                "confirmations": self._confirmations(row["height"], m.config.l1_confirmations)}
            out["timeline"] = steps
            out["l2_cleared_ms"] = cleared_ms
            out["l1_final_ms"] = final_ms
            out["badge"] = badge(out["state"], rec["lane"], executed, cleared_ms, final_ms, out.get("reject"))
            out["proof"] = {"available": bool(self.proof is not None and rec["lane"] == "L2" and batch is not None),
                            "url": f"/v1/trades/{flow_id}/proof"}
            return out

    def _confirmations(self, height: int | None, need: int) -> dict[str, int] | None:
        if height is None or height < 0:
            return None
        return {"have": max(0, min(need, self.m.tip_height - int(height) + 1)), "need": need}

    # ------------------------------------------------------------------ batches
    def batch_row(self, b: Any) -> dict[str, Any]:
        pool = self.m.config.pools[b.pool]
        return {
            "id": b.batch_id, "pool": pool.id, "state": b.state, "flows": b.flows, "obligations": b.obligations,
            "gross_usd": b.gross_usd, "net_usd": b.net_usd,
            "netting_efficiency": round(1 - b.net_usd / b.gross_usd, 6) if b.gross_usd else None,
            "root": b.root, "anchor_tx": b.anchor_tx, "anchor_height": b.anchor_height,
            "confirmations": self._confirmations(b.anchor_height, pool.confirmations),
            "opened_ms": b.opened_at_ms, "cleared_ms": b.cleared_at_ms, "anchored_ms": b.anchored_at_ms,
            "final_ms": b.final_at_ms, "unwound_ms": b.unwound_at_ms, "attempts": b.attempts,
        }

    def batches(self, pool: str | None, cursor: int | None, limit: int) -> dict[str, Any]:
        m = self.m
        with m.lock:
            if pool:
                if pool not in m.pool_ids:
                    raise bad_parameter("pool", f"unknown pool {pool!r}")
                order = m.pool_batches[m.pool_ids.index(pool)]
            else:
                order = m.batch_order
            end = len(order) if cursor is None else max(0, min(cursor, len(order)))
            start = max(0, end - limit)
            items = [self.batch_row(m.batches[b]) for b in reversed(order[start:end])]
            return {"items": items, "next": start if start > 0 else None, "total": len(order)}

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        m = self.m
        with m.lock:
            b = m.batches.get(batch_id)
            if b is None:
                return None
            out = self.batch_row(b)
            usd = self.usd_per_minor()
            instructions = []
            order = np.lexsort((b.net_asset, b.net_participant))
            for i in order.tolist():
                p, a, v = int(b.net_participant[i]), int(b.net_asset[i]), int(b.net_minor[i])
                instructions.append({"participant": m.participant_ids[p] if p < len(m.participant_ids) else m.config.house,
                                     "asset": m.asset_codes[a], "net": self.amount(v, a),
                                     "direction": "receives" if v > 0 else "pays", "usd": round(v * float(usd[a]), 2)})
            out["instructions"] = instructions
            out["gross"] = [self.amount(int(v), a) | {"usd": round(int(v) * float(usd[a]), 2)}
                            for a, v in enumerate(b.gross_minor.tolist()) if v]
            out["events"] = [{"state": e, "at_ms": at, "detail": d} for e, at, d in b.events]
            # The batch's trades were received in [opened, cleared]: only the chunks overlapping
            # that span are looked at (chunks are in received order).
            found: list[list[tuple[Any, int, int]]] = []
            for chunk in reversed(m.chunks):
                if len(chunk.received_ms) == 0 or chunk.received_ms[0] > b.cleared_at_ms:
                    continue
                if chunk.received_ms[-1] < b.opened_at_ms:
                    break
                mask = (chunk.batch_seq == b.seq) & (chunk.pool == b.pool) & (chunk.lane == 1)
                if mask.any():
                    states = m.trade_states(chunk)
                    found.append([(chunk, int(r), int(states[r])) for r in np.flatnonzero(mask)])
            rows = [row for part in reversed(found) for row in part][:100]
            out["trades"] = self.trade_rows(rows)
            out["pool_info"] = {"confirmations": m.config.pools[b.pool].confirmations,
                                "challenge_window_ms": m.config.pools[b.pool].challenge_window_ms}
            return out

    # ------------------------------------------------------------------ participants
    def _participant_figures(self) -> dict[str, np.ndarray]:
        m = self.m
        usd = self.usd_per_minor()
        collateral_usd = (m.collateral * usd[None, :]).sum(axis=1)
        available = collateral_usd + m.credit_usd
        required = m.debit_total.copy()
        credit_used = np.maximum(0.0, required - collateral_usd)
        usage = np.divide(credit_used, m.credit_usd, out=np.zeros_like(credit_used), where=m.credit_usd > 0)
        owed_pending = (np.maximum(0, -(m.pending.astype(np.float64))) * usd[None, None, :]).sum(axis=2)  # lane x p
        owed_open = (np.maximum(0, -(m.open_pos.astype(np.float64))) * usd[None, None, :]).sum(axis=2)
        return {"collateral_usd": collateral_usd, "available": available, "required": required,
                "credit_used": credit_used, "usage": usage, "owed_pending": owed_pending, "owed_open": owed_open}

    def participants(self, q: str | None, sort: str, offset: int, limit: int) -> dict[str, Any]:
        m = self.m
        with m.lock:
            f = self._participant_figures()
            ids = np.arange(len(m.config.participants))
            if q:
                ids = np.array([i for i in ids if q.lower() in m.participant_ids[i].lower()], dtype=np.int64)
            utilisation = np.divide(f["required"], f["available"], out=np.zeros_like(f["required"]), where=f["available"] > 0)
            keys = {"usage": (-f["usage"], -utilisation), "required": (-f["required"], -utilisation),
                    "rejects": (-m.rejects_by_participant.astype(np.float64), -utilisation)}
            if sort not in (*keys, "id"):
                raise bad_parameter("sort", f"expected one of {', '.join((*keys, 'id'))}")
            if sort == "id":
                ordered = ids
            else:
                primary, secondary = keys[sort]
                ordered = ids[np.lexsort((ids, secondary[ids], primary[ids]))]
            page = ordered[offset: offset + limit]
            items = [self._participant_row(int(i), f) for i in page]
            return {"items": items, "total": len(ordered), "offset": offset}

    def _participant_row(self, i: int, f: dict[str, np.ndarray]) -> dict[str, Any]:
        m = self.m
        p = m.config.participants[i]
        lanes = {}
        for lane in range(len(m.pool_ids) + 1):
            name = "L1" if lane == 0 else m.pool_ids[lane - 1]
            pending = float(f["owed_pending"][lane, i]) + (float(f["owed_open"][lane - 1, i]) if lane else 0.0)
            lanes[name] = round(pending, 2)
        return {
            "id": p.id, "kind": p.kind.value, "legacy_opt_out": p.legacy_opt_out,
            "buffer_required_usd": round(float(f["required"][i]), 2),
            "buffer_available_usd": round(float(f["available"][i]), 2),
            "collateral_usd": round(float(f["collateral_usd"][i]), 2),
            "credit_limit_usd": round(float(m.credit_usd[i]), 2),
            "credit_used_usd": round(float(f["credit_used"][i]), 2),
            "credit_usage": round(float(f["usage"][i]), 6),
            "pending_owed_usd": lanes,
            "rejects": int(m.rejects_by_participant[i]),
        }

    def participant(self, pid: str) -> dict[str, Any] | None:
        m = self.m
        with m.lock:
            i = m.participant_index.get(pid)
            if i is None or i >= len(m.config.participants):
                return None
            f = self._participant_figures()
            out = self._participant_row(i, f)
            usd = self.usd_per_minor()
            positions = []
            for lane in range(len(m.pool_ids) + 1):
                name = "L1" if lane == 0 else m.pool_ids[lane - 1]
                for a, code in enumerate(m.asset_codes):
                    settled = int(m.settled[lane, i, a])
                    pending = int(m.pending[lane, i, a])
                    open_ = int(m.open_pos[lane - 1, i, a]) if lane else 0
                    if settled or pending or open_:
                        positions.append({"lane": name, "asset": code, "settled": self.amount(settled, a),
                                          "pending": self.amount(pending + open_, a),
                                          "pending_open_batch": self.amount(open_, a), "pending_cleared": self.amount(pending, a),
                                          "settled_usd": round(settled * float(usd[a]), 2),
                                          "pending_usd": round((pending + open_) * float(usd[a]), 2)})
            out["positions"] = positions
            out["collateral"] = [self.amount(int(v), a) for a, v in enumerate(m.collateral[i].tolist()) if v]
            rows, _ = m.search(participant=i, limit=20)
            out["recent_trades"] = self.trade_rows(rows)
            out["recent_rejects"] = [r for r in m.recent_rejects if pid in r.get("participants", [])][:20]
            return out

    # ------------------------------------------------------------------ latency
    def latency(self, minutes: int | None) -> dict[str, Any]:
        m = self.m
        with m.lock:
            width = m.used_buckets()
            start = 0 if not minutes else max(0, width - minutes)
            hist = m.hist[:, start:width]
            p50, p99, n = grid_percentiles(hist)
            t0 = (m.bucket0 or 0) + start
            buckets = [(t0 + j) * BUCKET_MS for j in range(hist.shape[1])]
            overall = []
            for h, (lane, hop) in enumerate(m.hops):
                a, b, c = hist_percentiles(hist[h].sum(axis=0)) if hist.shape[1] else (None, None, 0)
                overall.append({"lane": lane, "hop": hop, "p50": a, "p99": b, "n": c})
            series = m.series
            names = [f"open batch {pid}" for pid in m.pool_ids] + ["awaiting anchor (batches)", "awaiting finality (batches)",
                                                                 "L1 txs awaiting finality", "ingest queue (trades)"]
            cols: list[Any] = list(zip(*series, strict=True)) if series else [[] for _ in range(len(names) + 1)]
            lo = buckets[0] if buckets else 0
            keep = [j for j, t in enumerate(cols[0]) if t >= lo] if minutes else list(range(len(cols[0])))
            queues = {"t": [cols[0][j] for j in keep], "series": {name: [cols[i + 1][j] for j in keep] for i, name in enumerate(names)}}
            return {"hops": [{"lane": lane, "hop": hop} for lane, hop in m.hops], "buckets": buckets,
                    "bucket_ms": BUCKET_MS, "p50": p50, "p99": p99, "n": n, "overall": overall, "queues": queues,
                    "now_ms": m.now_ms}

    # ------------------------------------------------------------------ savings
    def savings(self) -> dict[str, Any]:
        m = self.m
        with m.lock:
            width = m.used_buckets()
            t0 = m.bucket0 or 0
            gross = m.save_gross[:, :width].sum(axis=0)
            net = m.save_net[:, :width].sum(axis=0)
            k = len(m.pool_ids)
            hist = m.hist[:, :width]
            l2_cleared = hist[[4 * p for p in range(k)]].sum(axis=0)
            l2_final = hist[[4 * p + 3 for p in range(k)]].sum(axis=0)
            l1_final = hist[len(m.hops) - 1]
            l2_flows, l1_flows, n_batches = m.save_l2_flows[:width], m.save_l1_flows[:width], m.save_batches[:width]
            txs_avoided = l2_flows - n_batches
            fee_scale = m.scales[m.asset_index.get(m.fee_asset, 0)]
            fee_usd = m.l1_fee_minor / 10**fee_scale * float(m.marks_usd[m.asset_index.get(m.fee_asset, 0)])
            p50, _p99, _n = grid_percentiles(np.stack([l2_cleared, l2_final, l1_final]))
            p_cleared, p_l2, p_l1 = p50
            tot_cleared = hist_percentiles(l2_cleared.sum(axis=0)) if width else (None, None, 0)
            tot_l2 = hist_percentiles(l2_final.sum(axis=0)) if width else (None, None, 0)
            tot_l1 = hist_percentiles(l1_final.sum(axis=0)) if width else (None, None, 0)
            g, nn = float(gross.sum()), float(net.sum())
            return {
                "buckets": [(t0 + j) * BUCKET_MS for j in range(width)], "bucket_ms": BUCKET_MS,
                "gross_usd": np.round(gross, 2).tolist(), "net_usd": np.round(net, 2).tolist(),
                "saved_usd": np.round(gross - net, 2).tolist(),
                "l2_trades": l2_flows.tolist(), "l1_trades": l1_flows.tolist(),
                "batches": n_batches.tolist(), "txs_avoided": txs_avoided.tolist(),
                "latency_p50_s": {"L2 cleared": p_cleared, "L2 final": p_l2, "L1 final": p_l1},
                "totals": {
                    "gross_usd": round(g, 2), "net_usd": round(nn, 2), "liquidity_saved_usd": round(g - nn, 2),
                    "netting_efficiency": round(1 - nn / g, 6) if g else None,
                    "txs_avoided": int(txs_avoided.sum()), "fees_saved_usd": round(float(txs_avoided.sum()) * fee_usd, 2),
                    "latency": {"L2 cleared": _pct(tot_cleared), "L2 final": _pct(tot_l2), "L1 final": _pct(tot_l1)},
                },
            }


def _pct(p: tuple[Any, ...]) -> dict[str, Any]:
    return {"p50": None if p[0] is None else round(p[0], 3), "p99": None if p[1] is None else round(p[1], 3), "n": p[2]}


def _reject_slug(code: int) -> str:
    from clearlane.model.codes import RejectCode

    try:
        c = RejectCode(int(code))
    except ValueError:
        return str(code)
    return f"{c.slug} ({int(c)})"


def grid_percentiles(hist: np.ndarray) -> tuple[list[list[float | None]], list[list[float | None]], list[list[int]]]:
    """p50 and p99 (seconds) of every (hop, bucket) cell of a [hops, buckets, bins] histogram."""
    if hist.size == 0:
        return [[] for _ in range(hist.shape[0])], [[] for _ in range(hist.shape[0])], [[] for _ in range(hist.shape[0])]
    cum = hist.cumsum(axis=2)
    total = cum[..., -1]
    out = []
    for q in (0.5, 0.99):
        target = q * total
        b = np.minimum((cum < target[..., None]).sum(axis=2), _BINS - 1)
        lo = _EDGES[b]
        hi = np.where(b + 1 < len(_EDGES), _EDGES[np.minimum(b + 1, len(_EDGES) - 1)], _EDGES[b] * 1.2)
        before = np.where(b > 0, np.take_along_axis(cum, np.maximum(b - 1, 0)[..., None], axis=2)[..., 0], 0)
        inbin = np.take_along_axis(hist, b[..., None], axis=2)[..., 0]
        frac = np.divide(target - before, inbin, out=np.zeros_like(target, dtype=np.float64), where=inbin > 0)
        sec = (lo + (hi - lo) * frac) / 1000.0
        values = np.where(total > 0, np.round(sec, 3), np.nan)
        out.append([[None if np.isnan(v) else float(v) for v in row] for row in values])
    return out[0], out[1], total.tolist()


def badge(state: str, lane: str | None, executed_ms: int, cleared_ms: int | None, final_ms: int | None,
          reject: str | None) -> dict[str, Any]:
    """The finality badge in words, with the instant it refers to (the page renders the time in
    the reader's zone; ``text`` is the same sentence in UTC, as ``clearlane status`` prints)."""
    from clearlane.report import clock

    def t_plus(ms: int) -> str:
        return f"T+{(ms - executed_ms) / 1000:.1f}s"

    if state == "rejected":
        return {"tone": "rejected", "title": "Rejected", "at_label": None, "at_ms": None, "suffix": reject or "",
                "text": f"Rejected — {reject}"}
    if state == "unwound":
        if final_ms is not None:
            return {"tone": "unwound", "title": "Unwound from Layer-2, settled gross on Layer-1", "at_label": "final at",
                    "at_ms": final_ms, "suffix": t_plus(final_ms),
                    "text": f"Unwound from Layer-2, settled gross on Layer-1 — final at {clock(final_ms)[:8]} ({t_plus(final_ms)})"}
        return {"tone": "unwound", "title": "Unwound from Layer-2 — settling gross on Layer-1", "at_label": None,
                "at_ms": None, "suffix": "", "text": "Unwound from Layer-2 — settling gross on Layer-1"}
    layer = "Layer-2" if lane == "L2" else "Layer-1"
    if state == "final" and final_ms is not None:
        return {"tone": "final", "title": f"Settled on {layer}", "at_label": "final at", "at_ms": final_ms,
                "suffix": t_plus(final_ms), "text": f"Settled on {layer} — final at {clock(final_ms)[:8]} ({t_plus(final_ms)})"}
    if lane == "L2" and state in ("cleared", "anchored") and cleared_ms is not None:
        return {"tone": "cleared", "title": "Cleared on Layer-2", "at_label": "at", "at_ms": cleared_ms,
                "suffix": "awaiting base-layer finality",
                "text": f"Cleared on Layer-2 at {clock(cleared_ms)[:8]} — awaiting base-layer finality"}
    if lane == "L1":
        return {"tone": "pending", "title": "Submitted to Layer-1", "at_label": None, "at_ms": None,
                "suffix": "awaiting confirmations", "text": "Submitted to Layer-1 — awaiting confirmations"}
    return {"tone": "pending", "title": "Batched on Layer-2", "at_label": None, "at_ms": None,
            "suffix": "awaiting batch close", "text": "Batched on Layer-2 — awaiting batch close"}


# ====================================================================== routes
def dashboard_router(model: DashboardModel, *, info: dict[str, Any] | None = None, proof: ProofProvider | None = None,
                     stream_interval_s: float = 0.5, dependencies: list[Any] | None = None) -> APIRouter:
    """The dashboard's data: JSON under ``/v1/dashboard``, its stream, the proof download.

    ``dependencies`` guard every route (the service passes its API-key check)."""
    views = Views(model, info, proof)
    router = APIRouter(dependencies=dependencies or [])

    def ok(data: Any) -> Response:
        return Response(json.dumps(data, separators=(",", ":"), allow_nan=False), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    def timed(route: Callable[..., Response]) -> Callable[..., Response]:
        """Adds ``Server-Timing: view;dur=<ms>`` (the view and its JSON, without the network)."""

        @functools.wraps(route)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            started = time.perf_counter()
            response = route(*args, **kwargs)
            response.headers["Server-Timing"] = f"view;dur={(time.perf_counter() - started) * 1000:.1f}"
            return response

        return wrapper

    @router.get("/v1/dashboard/meta", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def meta() -> Response:
        return ok(views.meta())

    @router.get("/v1/dashboard/overview", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def overview() -> Response:
        return ok(views.overview())

    @router.get("/v1/dashboard/trades", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def trades(q: str | None = Query(None, max_length=128), participant: str | None = Query(None, max_length=64),
               state: str | None = None, lane: str | None = None, cursor: int | None = Query(None, ge=0),
               limit: int = Query(50, ge=1, le=500)) -> Response:
        return ok(views.trades(q or None, participant or None, state or None, lane or None, cursor, limit))

    @router.get("/v1/dashboard/trades/{trade_id}", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def trade(trade_id: str) -> Response:
        data = views.trade(trade_id)
        if data is None:
            return problem("Trade not found", f"trade {trade_id!r} not found")
        return ok(data)

    @router.get("/v1/dashboard/batches", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def batches(pool: str | None = None, cursor: int | None = Query(None, ge=0), limit: int = Query(50, ge=1, le=500)) -> Response:
        return ok(views.batches(pool or None, cursor, limit))

    @router.get("/v1/dashboard/batches/{batch_id}", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def batch(batch_id: str) -> Response:
        data = views.batch(batch_id)
        if data is None:
            return problem("Batch not found", f"batch {batch_id!r} not found (or not cleared yet)")
        return ok(data)

    @router.get("/v1/dashboard/participants", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def participants(q: str | None = Query(None, max_length=64), sort: str = "usage", offset: int = Query(0, ge=0),
                     limit: int = Query(100, ge=1, le=1000)) -> Response:
        return ok(views.participants(q or None, sort, offset, limit))

    @router.get("/v1/dashboard/participants/{participant}", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def participant(participant: str) -> Response:
        data = views.participant(participant)
        if data is None:
            return problem("Participant not found", f"participant {participant!r} not found")
        return ok(data)

    @router.get("/v1/dashboard/latency", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def latency(minutes: int | None = Query(None, ge=1, le=100_000)) -> Response:
        return ok(views.latency(minutes))

    @router.get("/v1/dashboard/savings", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def savings() -> Response:
        return ok(views.savings())

    # Not in the OpenAPI document: an endless stream (documented in docs/DASHBOARD.md).
    @router.get("/v1/dashboard/stream", tags=["dashboard"], include_in_schema=False)
    async def stream(request: Request, max_events: int | None = Query(None, ge=1)) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            last = -1
            idle = 0.0
            sent = 0
            yield b"retry: 2000\n\n"
            while max_events is None or sent < max_events:
                if await request.is_disconnected():
                    return
                version = model.version
                if version != last:
                    last = version
                    payload = json.dumps(views.stats_event(), separators=(",", ":"))
                    yield f"id: {version}\nevent: stats\ndata: {payload}\n\n".encode()
                    sent += 1
                    idle = 0.0
                else:
                    idle += stream_interval_s
                    if idle >= 15:
                        idle = 0.0
                        yield b": keep-alive\n\n"
                await asyncio.sleep(stream_interval_s)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("/v1/trades/{trade_id}/proof", tags=["dashboard"], openapi_extra=READER_ROLES)
    @timed
    def proof_download(trade_id: str) -> Response:
        if proof is None:
            return problem("Proof not available", "proof not available: inclusion proofs are not built by this server")
        data = proof(trade_id)
        if data is None:
            return problem("Proof not available",
                           f"proof not available for {trade_id!r} (unknown, not on Layer-2, or not covered by a checkpoint yet)")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in trade_id)
        return Response(data, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="proof-{safe}.json"', "Cache-Control": "no-store"})

    return router


def inline_page() -> bytes:
    """index.html with style.css and app.js inlined: one request before the data requests."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    css = (STATIC / "style.css").read_text(encoding="utf-8")
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    if "</script" in js.lower() or "</style" in css.lower():
        raise RuntimeError("static assets must not contain closing script/style tags (they are inlined)")
    html = html.replace('<link rel="stylesheet" href="/ui/static/style.css">', f"<style>\n{css}</style>")
    html = html.replace('<script src="/ui/static/app.js"></script>', f"<script>\n{js}</script>")
    return html.encode("utf-8")


def pages_router() -> APIRouter:
    """The static pages and the Plotly bundle (no data in them: no key needed)."""
    router = APIRouter()

    @router.get("/ui", include_in_schema=False)
    def ui_redirect() -> RedirectResponse:
        return RedirectResponse("/ui/")

    page = inline_page()

    @router.get("/ui/", include_in_schema=False)
    def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @router.get("/ui/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return problem("Not found", f"{name} not found")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @router.get("/ui/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        path = plotly_bundle()
        if path is None:
            return problem("Plotly not installed", "the plotly package is missing")
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    return router


def create_app(model: DashboardModel, *, info: dict[str, Any] | None = None, proof: ProofProvider | None = None,
               stream_interval_s: float = 0.5) -> FastAPI:
    """A standalone app serving only the dashboard (``/`` redirects to ``/ui/``)."""
    app = FastAPI(title="clearlane dashboard", version="1")

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return JSONResponse(exc.body(request.url.path), status_code=exc.status, media_type="application/problem+json")

    app.include_router(dashboard_router(model, info=info, proof=proof, stream_interval_s=stream_interval_s))
    app.include_router(pages_router())

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    return app
