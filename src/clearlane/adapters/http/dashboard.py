"""The dashboard's HTTP surface: the pages, and the few UI-shaped views the service API lacks.

The pages read the service's own API (``/v1/stats/overview``, ``/v1/trades``, ``/v1/batches``,
``/v1/net-instructions``, ``/v1/participants/{id}/positions``, ``/v1/stats/savings``) and its live
stream (``/v1/stream?types=stats``, coalesced by the runtime). What the service does not offer
in a shape a page can render in one request is here, computed from the same runtime and read
model (:mod:`clearlane.node.projections.readmodel`) under the runtime lock — never a second copy of the
state:

* ``/v1/dashboard/meta`` — reference data the pages format with (asset scales, pools and their
  confirmations, L1 confirmations, the base-layer fee), and whether proofs are served;
* ``/v1/dashboard/chain`` — the block height and engine time (confirmations are counted in the
  page from a batch's anchor height);
* ``/v1/dashboard/batches`` — a page of batches with root, anchor transaction and confirmations
  (the service's list carries none of them: they live in the store, read here in one query);
* ``/v1/dashboard/participants`` and ``/{id}`` — every participant's liquidity buffer (required vs
  available), credit usage, pending obligations per lane in USD and rejects, sortable;
* ``/v1/dashboard/latency`` — a compact heatmap grid (p50, p99, count per hop and minute) from the
  read model's timeline, instead of every histogram bin of every bucket;
* ``/v1/dashboard/rejects`` — rejects by code including submissions refused at the edge, and the
  latest ones;
* ``/v1/trades/{id}/proof`` — the inclusion proof download (see :func:`clearlane.adapters.http.ui.audit_proofs`).

Those need an operator or auditor key (they show every participant). The participant portal's
views take any key, each scoped to the key's :class:`~clearlane.adapters.http.auth.Principal` (a
participant key: its own figures only; another participant's is a 404; no service-wide counts):
``/v1/dashboard/meta`` and ``/chain`` (above, plus who the key is), ``/v1/dashboard/trades`` (the
trade page with both finality times, an id prefix and a receive-time window),
``/v1/dashboard/portal`` (one participant's buffers, positions in asset and USD, balances,
realized latency savings, rejects), ``/v1/dashboard/finality`` (latency per lane, measured live)
and the proof download.

``/ui/`` serves the single page (CSS and JS inlined); ``/ui/vendor/plotly.min.js`` is the bundle
shipped inside the installed ``plotly`` wheel (no CDN). Amounts leave as decimal strings in the
asset's scale, USD figures rounded to cents, times as epoch milliseconds.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from clearlane.adapters.http.common import AnyRole
from clearlane.adapters.http.problems import Problem, ServiceCode, bad_parameter
from clearlane.core.model.states import BatchState, TradeState
from clearlane.node.projections.common import HOPS, LATENCY_EDGES_MS, H, percentile

if TYPE_CHECKING:
    from clearlane.adapters.http.ui import DashboardRuntime

STATIC = Path(__file__).with_name("static")
# The dashboard shows every participant: behind the service's keys only these roles may read it.
READER_ROLES: dict[str, Any] = {"x-roles": ["operator", "auditor"]}
# A participant's realized savings are recomputed at most this often (see Views._savings_cached).
SAVINGS_TTL_S = 10.0
# trade id -> the self-contained proof document (bytes of JSON), or None when there is none yet
ProofProvider = Callable[[str], bytes | None]
# Heatmap rows: (lane key label, hop) in display order; L2 rows per pool, then L1.
L2_ROWS = (
    ("batched_cleared", "received → cleared"),
    ("cleared_anchored", "cleared → anchored"),
    ("anchored_final", "anchored → final"),
    ("received_final", "received → final"),
)
L1_ROWS = (
    ("submitted_anchored", "submitted → included"),
    ("anchored_final", "included → final"),
    ("received_final", "received → final"),
)


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
    """The UI-shaped views, over the service runtime and its read model."""

    def __init__(
        self, rt: DashboardRuntime, proof: ProofProvider | None = None, info: dict[str, Any] | None = None
    ) -> None:
        self.rt = rt
        self.proof = proof
        self.info = info or {}
        self._saved: dict[str, tuple[float, dict[str, Any]]] = {}  # pid -> (monotonic s, savings)

    # ------------------------------------------------------------------ meta / chain
    def meta(self) -> dict[str, Any]:
        cfg = self.rt.config
        chain = dict(cfg.chain)
        return {
            "assets": [{"code": a.code, "scale": int(a.scale)} for a in cfg.assets],
            "pools": [
                {
                    "id": p.id,
                    "window_ms": p.window_ms,
                    "confirmations": p.confirmations,
                    "challenge_window_ms": p.challenge_window_ms,
                    "description": p.description,
                }
                for p in cfg.pools
            ],
            "l1_confirmations": cfg.l1_confirmations,
            "participants": len(cfg.participants),
            "fee_per_tx_minor": int(chain.get("fee_per_tx_minor", 0)),
            "fee_asset": str(chain.get("fee_asset", cfg.reporting_asset)),
            "block_time_ms": int(chain.get("block_time_ms", 0)),
            "proofs": self.proof is not None,
            "clock": {"mode": self.rt.clock.mode, "speed": float(self.rt.clock.speed)},
            **self.info,
        }

    def chain(self) -> dict[str, Any]:
        with self.rt.lock:
            queries = self.rt.queries
            return {
                "block_height": queries.tip_height(),
                "now_ms": int(max(queries.engine_time_ms(), self.rt.rm.now_ms)),
                "applied_seq": int(self.rt.rm.applied_seq),
            }

    # ------------------------------------------------------------------ batches
    def batches(self, pool: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
        from clearlane.adapters.http import views

        rt = self.rt
        if pool is not None and pool not in rt.rm.pool_lookup:
            raise bad_parameter("pool", f"unknown pool {pool!r}")
        page = views.batch_page(rt, limit=limit, cursor=cursor, pool=pool, state=None)
        ids = [b["batch_id"] for b in page["items"] if b["state"] != BatchState.OPEN.label]
        stored = rt.store.batch_anchors(ids)
        with rt.lock:
            tip = rt.queries.tip_height()
        need = {p.id: p.confirmations for p in rt.config.pools}
        for b in page["items"]:
            row = stored.get(b["batch_id"])
            height = None if row is None or row["anchor_height"] is None else int(row["anchor_height"])
            b["root"] = None if row is None or row["root"] is None else bytes(row["root"]).hex()
            b["anchor_tx"] = None if row is None else row["anchor_tx"]
            b["anchor_height"] = height
            b["attempts"] = None if row is None else row["attempts"]
            b["confirmations"] = (
                None
                if height is None
                else {"have": max(0, min(need[b["pool"]], tip - height + 1)), "need": need[b["pool"]]}
            )
        return page

    # ------------------------------------------------------------------ participants
    def _figures(self) -> dict[str, Any]:
        """Per participant (engine order, house last): buffer, credit, pending owed per lane."""
        rt = self.rt
        rm = rt.rm
        liquidity = rt.queries.liquidity()
        open_positions = rt.queries.open_positions()
        usd = liquidity.mark_per_minor
        collateral_usd, credit = liquidity.collateral_usd, liquidity.credit_usd
        available = liquidity.available_usd
        required = liquidity.debit_usd
        credit_used = np.maximum(0.0, required - collateral_usd)
        usage = np.divide(credit_used, credit, out=np.zeros_like(credit_used), where=credit > 0)
        utilisation = np.divide(required, available, out=np.zeros_like(required), where=available > 0)

        def owed(amounts: np.ndarray) -> np.ndarray:
            values: np.ndarray = (np.maximum(0, -amounts.astype(np.float64)) * usd[None, :]).sum(axis=1)
            return values

        lanes = {
            pool.id: owed(open_positions[k] + rm.positions.cleared_net[k])
            for k, pool in enumerate(rt.config.pools)
        }
        lanes["L1"] = owed(rm.positions.l1_pending)
        return {
            "collateral_usd": collateral_usd,
            "credit": credit,
            "available": available,
            "required": required,
            "credit_used": credit_used,
            "usage": usage,
            "utilisation": utilisation,
            "owed": lanes,
        }

    def _row(self, i: int, f: dict[str, Any]) -> dict[str, Any]:
        p = self.rt.config.participants[i]
        return {
            "id": p.id,
            "kind": p.kind.value,
            "legacy_opt_out": p.legacy_opt_out,
            "buffer_required_usd": round(float(f["required"][i]), 2),
            "buffer_available_usd": round(float(f["available"][i]), 2),
            "collateral_usd": round(float(f["collateral_usd"][i]), 2),
            "credit_limit_usd": round(float(f["credit"][i]), 2),
            "credit_used_usd": round(float(f["credit_used"][i]), 2),
            "credit_usage": round(float(f["usage"][i]), 6),
            "utilisation": round(float(f["utilisation"][i]), 6),
            "pending_owed_usd": {lane: round(float(v[i]), 2) for lane, v in f["owed"].items()},
            "rejects": int(self.rt.tally.by_participant[i]),
        }

    def participants(self, q: str | None, sort: str, offset: int, limit: int) -> dict[str, Any]:
        rt = self.rt
        keys = ("usage", "required", "rejects", "id")
        if sort not in keys:
            raise bad_parameter("sort", f"one of {', '.join(keys)}")
        ids = rt.config.participant_ids[: len(rt.config.participants)]
        chosen = np.arange(len(ids))
        if q:
            chosen = np.array([i for i, pid in enumerate(ids) if q.lower() in pid.lower()], dtype=np.int64)
        if rt.config.synthetic_ids:  # canaries (node/monitor) are not clients: not listed
            chosen = np.array(
                [i for i in chosen.tolist() if ids[i] not in rt.config.synthetic_ids], dtype=np.int64
            )
        with rt.lock:
            f = self._figures()
            rejects = rt.tally.by_participant[: len(ids)].astype(np.float64)
            if sort == "id" or not len(chosen):
                ordered = chosen
            else:
                primary = {"usage": -f["usage"], "required": -f["required"], "rejects": -rejects}[sort][
                    : len(ids)
                ]
                ordered = chosen[np.lexsort((chosen, -f["utilisation"][chosen], primary[chosen]))]
            items = [self._row(int(i), f) for i in ordered[offset : offset + limit]]
        return {"items": items, "total": len(ordered), "offset": offset}

    def participant(self, pid: str) -> dict[str, Any] | None:
        rt = self.rt
        i = rt.config.participant_index().get(pid)
        if i is None or i >= len(rt.config.participants):
            return None
        with rt.lock:
            out = self._row(i, self._figures())
        out["recent_rejects"] = rt.tally.recent_for(pid)
        return out

    # ------------------------------------------------------------------ the participant portal
    def portal(self, pid: str) -> dict[str, Any] | None:
        """One participant's own figures (the caller has checked it may see them): buffers,
        positions in asset and USD, balances, realized savings, its recent rejects."""
        from clearlane.adapters.http import views

        rt = self.rt
        i = rt.config.participant_index().get(pid)
        if i is None or i >= len(rt.config.participants):
            return None
        positions = views.participant_positions(rt, pid)
        with rt.lock:
            row = self._row(i, self._figures())
            saved = self._savings_cached(pid)
        return {
            **row,
            "positions": [] if positions is None else positions["positions"],
            "balances": [] if positions is None else positions["balances"],
            "as_of_ms": None if positions is None else positions["as_of_ms"],
            "savings": saved,
            "recent_rejects": rt.tally.recent_for(pid),
        }

    def _savings_cached(self, pid: str) -> dict[str, Any]:
        """:meth:`_savings`, reused for :data:`SAVINGS_TTL_S` (it scans up to 250,000 records
        under the runtime lock, and every open portal refreshes every two seconds)."""
        now = time.monotonic()
        hit = self._saved.get(pid)
        if hit is not None and now - hit[0] < SAVINGS_TTL_S:
            return hit[1]
        if len(self._saved) > 10_000:
            self._saved.clear()
        value = self._savings(pid)
        self._saved[pid] = (now, value)
        return value

    def _savings(self, pid: str) -> dict[str, Any]:
        """Realized settlement-latency savings of one participant's Layer-2 trades (caller holds
        the lock): per trade, its own time from receipt to Layer-2 clearing against the gross
        Layer-1 path's median time to final measured live on this service. Bounded: the newest
        :data:`~clearlane.adapters.http.views.SCAN_ROWS_MAX` records are scanned."""
        from clearlane.adapters.http import views

        rm = self.rt.rm
        who = pa.scalar(pid, pa.string())
        cleared_ms: list[np.ndarray] = []
        final_ms: list[np.ndarray] = []
        l1_trades = scanned = 0
        chunk = rm.records.n_chunks - 1
        while chunk >= 0 and scanned < views.SCAN_ROWS_MAX:
            table = rm.chunk_table(chunk)
            scanned += table.num_rows
            chunk -= 1
            mine = pc.or_(
                pc.equal(table.column("buyer").cast(pa.string()), who),
                pc.equal(table.column("seller").cast(pa.string()), who),
            )
            rows = np.flatnonzero(pc.fill_null(mine, False).to_numpy(zero_copy_only=False))
            if not len(rows):
                continue
            part = table.take(pa.array(rows))
            states = rm.current_states(part)
            lanes = part.column("lane").cast(pa.string()).to_pylist()
            l1_trades += sum(1 for lane in lanes if lane == "L1")
            received = part.column("received_ms").to_numpy()
            seqs = part.column("batch_seq").to_numpy()
            for k, pool in enumerate(rm.pools):
                on = np.flatnonzero(views._equal(part.column("pool"), pool) & (states != TradeState.REJECTED))
                pb = rm.batches.pool[k]
                on = on[seqs[on] < len(pb.state)]
                live = on[(pb.cleared_ms[seqs[on]] >= 0) & (pb.state[seqs[on]] != BatchState.UNWOUND)]
                cleared_ms.append(pb.cleared_ms[seqs[live]] - received[live])
                done = live[pb.final_ms[seqs[live]] >= 0]
                final_ms.append(pb.final_ms[seqs[done]] - received[done])
        own = np.concatenate(cleared_ms) if cleared_ms else np.zeros(0, dtype=np.int64)
        own_final = np.concatenate(final_ms) if final_ms else np.zeros(0, dtype=np.int64)
        l1_p50 = percentile(rm.activity.latency[rm.l1, H["received_final"]], 0.5)
        basis = "measured"
        if l1_p50 is None:  # no gross trade final yet: the configured rule's expectation
            basis = "configured"
            l1_p50 = float(
                self.rt.config.l1_confirmations * int(dict(self.rt.config.chain).get("block_time_ms", 0))
            )
        saved = None if l1_p50 is None or not len(own) else np.maximum(0.0, l1_p50 - own)
        return {
            "l2_trades_cleared": len(own),
            "l1_trades": l1_trades,
            "own_cleared_p50_ms": None if not len(own) else round(float(np.median(own)), 1),
            "own_final_p50_ms": None if not len(own_final) else round(float(np.median(own_final)), 1),
            "l1_final_p50_ms": None if l1_p50 is None else round(float(l1_p50), 1),
            "l1_final_basis": basis,
            "saved_per_trade_p50_ms": None if saved is None else round(float(np.median(saved)), 1),
            "saved_total_s": None if saved is None else round(float(saved.sum()) / 1000.0, 1),
            "scanned_records": scanned,
        }

    def finality(self, with_counts: bool) -> dict[str, Any]:
        """What the finality explainer shows: per lane, what "cleared" and "final" take, measured
        live (median and 99th percentile from the read model's histograms), and the configured
        rules behind them. ``with_counts`` adds how many trades each figure is over (readers
        only: a participant key sees no volume)."""
        rt = self.rt
        rm = rt.rm
        cfg = rt.config
        chain = dict(cfg.chain)

        def figure(counts: np.ndarray) -> dict[str, Any]:
            out: dict[str, Any] = {
                "p50_ms": _ms(percentile(counts, 0.5)),
                "p99_ms": _ms(percentile(counts, 0.99)),
            }
            if with_counts:
                out["n"] = int(counts.sum())
            return out

        with rt.lock:
            lanes = [
                {
                    "lane": "L2",
                    "pool": pool.id,
                    "description": pool.description,
                    "window_ms": pool.window_ms,
                    "confirmations": pool.confirmations,
                    "challenge_window_ms": pool.challenge_window_ms,
                    "cleared": figure(rm.activity.latency[k, H["batched_cleared"]]),
                    "final": figure(rm.activity.latency[k, H["received_final"]]),
                }
                for k, pool in enumerate(cfg.pools)
            ]
            lanes.append(
                {
                    "lane": "L1",
                    "pool": None,
                    "description": "gross, one base-layer transaction per trade",
                    "window_ms": None,
                    "confirmations": cfg.l1_confirmations,
                    "challenge_window_ms": None,
                    "cleared": None,
                    "final": figure(rm.activity.latency[rm.l1, H["received_final"]]),
                }
            )
            now = int(max(rt.queries.engine_time_ms(), rm.now_ms))
        return {
            "as_of_ms": now,
            "block_time_ms": int(chain.get("block_time_ms", 0)),
            "chain_preset": chain.get("preset"),
            "lanes": lanes,
        }

    # ------------------------------------------------------------------ latency heatmap
    def latency(self, minutes: int) -> dict[str, Any]:
        from clearlane.adapters.http import views

        rt = self.rt
        rm = rt.rm
        rows: list[tuple[int, int, str, str]] = []  # (lane key, hop index, lane label, hop label)
        for k, pool in enumerate(rm.pools):
            rows += [(k, H[hop], f"L2 {pool}", label) for hop, label in L2_ROWS]
        rows += [(rm.l1, H[hop], "L1", label) for hop, label in L1_ROWS]
        with rt.lock:
            since = rm.now_ms - minutes * 60_000
            width, groups = views._timeline(rm, since, 60_000)
            starts = [start for start, _ in groups]
            grid = np.zeros((len(rows), len(groups), len(rm.activity.latency[0, 0])), dtype=np.int64)
            queues: dict[str, list[int]] = {}
            for j, (_, members) in enumerate(groups):
                for b in members:
                    for r, (lk, h, _, _) in enumerate(rows):
                        grid[r, j] += b.latency[lk, h]
                merged: dict[str, int] = {}
                for b in members:
                    for name, value in b.queues.items():
                        merged[name] = max(merged.get(name, 0), value)
                for name in set(queues) | set(merged):
                    queues.setdefault(name, [0] * j).append(merged.get(name, 0))
            totals = [rm.activity.latency[lk, h] for lk, h, _, _ in rows]
        p50, p99 = (grid_percentile_s(grid, q) for q in (0.5, 0.99))
        counts = grid.sum(axis=2).tolist()
        overall = [
            {
                "lane": lane,
                "hop": hop,
                "p50": _s(percentile(t, 0.5)),
                "p99": _s(percentile(t, 0.99)),
                "n": int(t.sum()),
            }
            for (_, _, lane, hop), t in zip(rows, totals, strict=True)
        ]
        return {
            "bucket_ms": width,
            "buckets": starts,
            "rows": [{"lane": lane, "hop": hop} for _, _, lane, hop in rows],
            "p50_s": p50,
            "p99_s": p99,
            "n": counts,
            "overall": overall,
            "queues": {
                "t": starts,
                "series": {
                    name: values + [0] * (len(starts) - len(values)) for name, values in queues.items()
                },
            },
            "hops": list(HOPS),
        }

    # ------------------------------------------------------------------ rejects
    def rejects(self) -> dict[str, Any]:
        rt = self.rt
        with rt.lock:
            by_code = dict(rt.rm.activity.rejects_by_code)
            for code, n in rt.counters.edge_rejects.items():
                by_code[code] = by_code.get(code, 0) + n
        return {"by_code": dict(sorted(by_code.items())), "recent": rt.tally.recent_for(None)}


def grid_percentile_s(grid: np.ndarray, q: float) -> list[list[float | None]]:
    """The q-quantile in seconds of every cell of a ``[rows, buckets, bins]`` latency histogram
    (the read model's bins; linear within a bin, as :func:`clearlane.node.projections.readmodel.percentile`)."""
    if grid.size == 0:
        return [[] for _ in range(grid.shape[0])]
    edges = np.concatenate(
        [[0.0], LATENCY_EDGES_MS]
    )  # bin b spans edges[b] .. edges[b + 1] (the last is open)
    cum = grid.cumsum(axis=2)
    total = cum[..., -1]
    rank = q * total
    b = np.minimum((cum < rank[..., None]).sum(axis=2), grid.shape[2] - 1)
    lo = edges[b]
    hi = np.where(b + 1 < len(edges), edges[np.minimum(b + 1, len(edges) - 1)], lo)
    before = np.where(b > 0, np.take_along_axis(cum, np.maximum(b - 1, 0)[..., None], axis=2)[..., 0], 0)
    inside = np.take_along_axis(grid, b[..., None], axis=2)[..., 0]
    frac = np.clip(
        np.divide(rank - before, inside, out=np.zeros_like(rank, dtype=np.float64), where=inside > 0), 0, 1
    )
    seconds = np.round((lo + (hi - lo) * frac) / 1000.0, 4)
    return [
        [None if total[r, j] == 0 else float(seconds[r, j]) for j in range(grid.shape[1])]
        for r in range(grid.shape[0])
    ]


def _s(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000.0, 4)


def _ms(ms: float | None) -> float | None:
    return None if ms is None else round(float(ms), 1)


# ====================================================================== routes
# The dashboard's own data routes. ui.install includes them with the service's API-key check as
# the router's dependencies and puts the :class:`Views` they read in ``app.state.dashboard_views``.
data_router = APIRouter(tags=["dashboard"])


def views_of(request: Request) -> Views:
    return request.app.state.dashboard_views  # type: ignore[no-any-return]


ViewsDep = Annotated[Views, Depends(views_of)]


def ok(data: Any) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), allow_nan=False),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def timed(route: Callable[..., Response]) -> Callable[..., Response]:
    """Adds ``Server-Timing: view;dur=<ms>`` (the view and its JSON, without the network)."""

    @functools.wraps(route)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        started = time.perf_counter()
        response = route(*args, **kwargs)
        response.headers["Server-Timing"] = f"view;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    return wrapper


# Routes any key may read, each scoped to what its principal may see (a participant key: its own
# figures only, never another participant's; no volumes of the whole service).
client_router = APIRouter(tags=["dashboard"])
ALL_ROLES_DOC: dict[str, Any] = {"x-roles": ["participant", "operator", "auditor"]}


@client_router.get("/v1/dashboard/meta", openapi_extra=ALL_ROLES_DOC)
@timed
def meta(views: ViewsDep, principal: AnyRole) -> Response:
    data = views.meta()
    data["me"] = {"role": principal.role, "participant": principal.participant}
    if not principal.reads_all:
        data.pop("participants", None)  # how many there are is the service's business
    return ok(data)


@client_router.get("/v1/dashboard/chain", openapi_extra=ALL_ROLES_DOC)
@timed
def chain(views: ViewsDep, principal: AnyRole) -> Response:
    return ok(views.chain())


@client_router.get("/v1/dashboard/trades", openapi_extra=ALL_ROLES_DOC)
@timed
def trades(
    views: ViewsDep,
    principal: AnyRole,
    q: str | None = Query(None, max_length=128, description="Trade id or the start of one."),
    participant: str | None = Query(None, max_length=64),
    state: str | None = Query(None, max_length=16),
    lane: str | None = Query(None, max_length=64, description="L1, L2 or a pool id."),
    since_ms: int | None = Query(None, ge=0, le=2**62, description="Received at or after (epoch ms)."),
    until_ms: int | None = Query(None, ge=0, le=2**62, description="Received before (epoch ms)."),
    cursor: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    """The Trades list: the service's trade page with both finality times per row, an id-prefix
    search and a receive-time window; a participant key sees its own trades only."""
    from clearlane.adapters.http import views as service_views

    rt = views.rt
    pool = lane if lane is not None and lane in rt.rm.pool_lookup else None
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise bad_parameter("until_ms", "must be after since_ms")
    page = service_views.trade_page(
        rt,
        principal,
        limit=limit,
        cursor=cursor or None,
        participant=participant or None,
        lane=None if pool is not None or not lane else lane,
        pool=pool,
        state=state or None,
        batch_id=None,
        kind=None,
        id_prefix=q or None,
        since_ms=since_ms,
        until_ms=until_ms,
        finality=True,
    )
    return ok(page)


@client_router.get("/v1/dashboard/portal", openapi_extra=ALL_ROLES_DOC)
@timed
def portal(
    views: ViewsDep, principal: AnyRole, participant: str | None = Query(None, max_length=64)
) -> Response:
    """A participant's own account: a participant key reads itself (naming another participant
    is a 404, as everywhere: existence is not disclosed); a reader names the participant."""
    pid = participant or principal.participant
    if pid is None:
        raise bad_parameter("participant", "required with an operator or auditor key")
    data = views.portal(pid) if principal.may_see(pid) else None
    if data is None:
        return problem("Participant not found", f"participant {pid!r} not found")
    return ok(data)


@client_router.get("/v1/dashboard/finality", openapi_extra=ALL_ROLES_DOC)
@timed
def finality(views: ViewsDep, principal: AnyRole) -> Response:
    return ok(views.finality(with_counts=principal.reads_all))


@data_router.get("/v1/dashboard/batches", openapi_extra=READER_ROLES)
@timed
def batches(
    views: ViewsDep,
    pool: str | None = Query(None, max_length=64),
    cursor: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    return ok(views.batches(pool or None, cursor or None, limit))


@data_router.get("/v1/dashboard/participants", openapi_extra=READER_ROLES)
@timed
def participants(
    views: ViewsDep,
    q: str | None = Query(None, max_length=64),
    sort: str = Query("usage", max_length=16),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    return ok(views.participants(q or None, sort, offset, limit))


@data_router.get("/v1/dashboard/participants/{participant}", openapi_extra=READER_ROLES)
@timed
def participant(participant: str, views: ViewsDep) -> Response:
    data = views.participant(participant)
    if data is None:
        return problem("Participant not found", f"participant {participant!r} not found")
    return ok(data)


@data_router.get("/v1/dashboard/latency", openapi_extra=READER_ROLES)
@timed
def latency(views: ViewsDep, minutes: int = Query(180, ge=1, le=2_880)) -> Response:
    return ok(views.latency(minutes))


@data_router.get("/v1/dashboard/rejects", openapi_extra=READER_ROLES)
@timed
def rejects(views: ViewsDep) -> Response:
    return ok(views.rejects())


@client_router.get("/v1/trades/{trade_id}/proof", openapi_extra=ALL_ROLES_DOC)
@timed
def proof_download(trade_id: str, views: ViewsDep, principal: AnyRole) -> Response:
    """The inclusion proof of a trade; a participant key only of its own trades (another's is a
    404 like an unknown one: existence is not disclosed)."""
    if not principal.reads_all:
        with views.rt.lock:
            record = views.rt.rm.find_trade(trade_id)
        if record is None or not principal.may_see(record["buyer"], record["seller"]):
            return problem("Proof not available", f"proof not available for {trade_id[:100]!r} (unknown)")
    if views.proof is None:
        return problem(
            "Proof not available", "proof not available: inclusion proofs are not built by this server"
        )
    data = views.proof(trade_id)
    if data is None:
        return problem(
            "Proof not available",
            f"proof not available for {trade_id!r} (unknown, not on Layer-2, or not covered by a checkpoint yet)",
        )
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in trade_id)
    return Response(
        data,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="proof-{safe}.json"',
            "Cache-Control": "no-store",
        },
    )


_SCRIPT_TAG = re.compile(r'<script src="/ui/static/([A-Za-z0-9_-]+\.js)"></script>')


def inline_page() -> bytes:
    """index.html with style.css and every script it names inlined: one request before the data.

    ``app.js`` holds the shell (router, formatting, the live stream); each later script adds its
    pages to ``pages`` (one file per capability, so capabilities do not edit one another's code).
    """
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    css = (STATIC / "style.css").read_text(encoding="utf-8")
    if "</style" in css.lower():
        raise RuntimeError("style.css must not contain a closing style tag (it is inlined)")

    def script(match: re.Match[str]) -> str:
        js = (STATIC / match.group(1)).read_text(encoding="utf-8")
        if "</script" in js.lower():
            raise RuntimeError(f"{match.group(1)} must not contain a closing script tag (it is inlined)")
        return f"<script>\n{js}</script>"

    html = html.replace('<link rel="stylesheet" href="/ui/static/style.css">', f"<style>\n{css}</style>")
    return _SCRIPT_TAG.sub(script, html).encode("utf-8")


def pages_router() -> APIRouter:
    """The page, its assets and the Plotly bundle (no data in them: no key needed)."""
    router = APIRouter()
    page = inline_page()

    @router.get("/ui", include_in_schema=False)
    def ui_redirect() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @router.get("/ui/", include_in_schema=False)
    def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    # The assets by name, listed once: a request names one of them or gets a 404, so no path
    # from a URL ever reaches the file system (a 5,000-character name is not an OSError).
    assets = {p.name: p for p in STATIC.iterdir() if p.is_file() and not p.name.startswith(".")}

    @router.get("/ui/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = assets.get(name)
        if path is None:
            return problem("Not found", f"{name[:100]} not found")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @router.get("/ui/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        path = plotly_bundle()
        if path is None:
            return problem("Plotly not installed", "the plotly package is missing")
        return FileResponse(
            path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
        )

    return router
