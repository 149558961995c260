"""Canaries: one synthetic flow per path every ``interval_ms`` of engine time, followed through
its lifecycle in the read model and judged by :func:`clearlane.core.monitor.canary.judge`.

The participants are the configuration's ``synthetic`` ones; which pair takes which path is
decided by the engine's own routing rules (``plan_paths``). A flow's hops are read from its
lifecycle (the same assembly as ``clearlane status``); once final, its inclusion proof is
verified offline by an injected verifier (the adapters wire the evidence prover and the
standalone verifier: the node does not read the store's SQL), its ledger postings are checked
(no refusal recorded, not failed) and its delivery is the ``trade.final`` event published on the
bus for it. Submitting goes through the runtime's queue like any client; this class runs on the
runtime's loop thread (a runtime hook), so it never races the writer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clearlane.core.model.codes import RejectCode
from clearlane.core.model.inputs import ESCROW_KIND
from clearlane.core.model.states import EscrowState, TradeState
from clearlane.core.monitor.canary import (
    GAUGE_VALUE,
    CanaryPath,
    Observation,
    Result,
    Verdict,
    judge,
    minimum_interval_ms,
    plan_paths,
    unwind_path,
)
from clearlane.node.events import EventFilter, EventGroup, TradeEvents
from clearlane.node.report import trade_lifecycle

if TYPE_CHECKING:
    from clearlane.node.runtime import Runtime

log = logging.getLogger("clearlane.monitor")

ProofVerifier = Callable[[str], str | None]
"""Trade id → None when its inclusion proof verifies offline, else why not."""

HISTORY = 20  # results kept per path
# Escrow states → how many of the escrow hops (opened, agreed, funded, released) they reach.
_ESCROW_REACHED = {
    EscrowState.DRAFT: 1,
    EscrowState.AGREED: 2,
    EscrowState.FUNDED: 3,
    EscrowState.INSPECTION: 3,
    EscrowState.RELEASABLE: 3,
    EscrowState.RELEASED: 4,
    EscrowState.CLOSED: 4,
}
_ESCROW_BROKEN = frozenset(
    {EscrowState.CANCELLED, EscrowState.REFUNDED, EscrowState.DISPUTED, EscrowState.CHARGEBACK}
)


@dataclass
class CanaryOptions:
    # Engine ms between rounds; None: a minute, or longer when a healthy path needs more (an
    # accelerated clock's loop latency counts in engine time). An explicit interval shorter than
    # a healthy path needs is refused (CANARY_INTERVAL_TOO_SHORT).
    interval_ms: int | None = None
    symbol: str | None = None  # default: the first asset that is not the reporting asset, in it
    quantity: str | None = None  # default: one minor unit × 10 of the base asset
    check_delivery: bool = True
    follow_ms: int = 500  # engine ms between looks at the canaries in flight (the loop ticks faster)
    # The loop's own latency in engine ms, added to every hop limit: by default ten ticks at the
    # clock's speed (an accelerated clock runs many engine seconds per tick; a loaded machine
    # stretches a tick).
    loop_slack_ms: int | None = None


@dataclass
class _InFlight:
    path: CanaryPath
    obs: Observation
    delivered: bool = False
    state: int = -2  # the record's lifecycle state when last looked at (-2: not yet)


@dataclass
class PathState:
    path: CanaryPath
    results: deque[Result] = field(default_factory=lambda: deque(maxlen=HISTORY))
    sent: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)  # every verdict since start, by kind

    @property
    def last(self) -> Result | None:
        return self.results[-1] if self.results else None


class _Source:
    """What trade_lifecycle reads, from the read model and the store by primary key."""

    def __init__(self, runtime: Runtime) -> None:
        self.rm = runtime.rm
        self.store = runtime.store

    def find_trade(self, flow_id: str) -> dict[str, Any] | None:
        return self.rm.find_trade(flow_id)

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.store.batch(batch_id)
        return found

    def l1_group(self, group_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.store.l1_group(group_id)
        return found

    def l1_group_for_batch(self, batch_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.store.l1_group_for_batch(batch_id)
        return found


class Canaries:
    """See the module docstring. ``tick(now_ms)`` sends what is due and judges what is out."""

    def __init__(
        self,
        runtime: Runtime,
        options: CanaryOptions | None = None,
        verifier: ProofVerifier | None = None,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.options = options or CanaryOptions()
        self.verifier = verifier
        self.on_result = on_result
        slack = self.options.loop_slack_ms
        if slack is None:
            slack = int(10 * runtime.options.tick_ms * float(getattr(runtime.clock, "speed", 1.0)))
        interval = self.options.interval_ms
        if interval is None:
            interval = max(60_000, minimum_interval_ms(runtime.config, slack))
        self.interval_ms = interval
        paths, self.unreachable = plan_paths(runtime.config, interval, slack)
        self.paths = {p.name: PathState(p) for p in paths}
        if any(p.name.startswith("L2:") for p in paths):
            unwind = unwind_path(runtime.config, interval, slack)
            self.paths[unwind.name] = PathState(unwind)
        self.inflight: dict[str, _InFlight] = {}
        self.watching: dict[str, tuple[_InFlight, int]] = {}  # failed L2 canaries that may unwind
        self.next_send_ms: int | None = None
        self.next_follow_ms = 0
        self.counter = 0
        self.symbol, self.quantity, self.price = self._instrument()
        if self.options.check_delivery and self.paths:
            runtime.bus.add_listener(self._on_events)

    def _instrument(self) -> tuple[str, str, str]:
        cfg = self.runtime.config
        quote = cfg.reporting_asset
        if self.options.symbol is not None:
            base, quote = self.options.symbol.split("/")
        else:
            base = next((a.code for a in cfg.assets if a.code != quote), quote)
        scales = {a.code: a.scale for a in cfg.assets}
        marks = dict(zip((a.code for a in cfg.assets), cfg.marks_usd, strict=True))
        qty = self.options.quantity or f"{10 / 10 ** scales[base]:.{scales[base]}f}"
        price = f"{marks[base] / marks[quote]:.{scales[quote]}f}"
        return f"{base}/{quote}", qty, price

    # ------------------------------------------------------------------ the loop's hook
    def tick(self, now_ms: int) -> None:
        if not self.paths:
            return
        if self.next_send_ms is None:
            self.next_send_ms = now_ms
        if now_ms >= self.next_send_ms:
            self.send_all(now_ms)
            self.next_send_ms = now_ms + self.interval_ms
        if self.inflight and now_ms >= self.next_follow_ms:
            self.next_follow_ms = now_ms + self.options.follow_ms
            self._follow(now_ms)

    def send_all(self, now_ms: int) -> None:
        """One canary down every path (a path whose previous canary is still out gets none:
        the one out will be judged failed at its deadline, within this interval or the next)."""
        out = {f.path.name for f in self.inflight.values()}
        for state in self.paths.values():
            if state.path.name in out or state.path.kind == "unwind":
                continue
            self.counter += 1
            flow_id = f"canary-{_slug(state.path.name)}-{now_ms}-{self.counter}"
            self._submit(state.path, flow_id, now_ms)
            state.sent += 1
            checks: dict[str, bool | None] = {"ledger": None}
            if state.path.name.startswith("L2:") and self.verifier is not None:
                checks["proof"] = None
            if self.options.check_delivery:
                checks["delivery"] = None
            obs = Observation(state.path.name, flow_id, now_ms, checks=checks)
            self.inflight[f"{state.path.name}/{flow_id}"] = _InFlight(state.path, obs)

    def _submit(self, path: CanaryPath, flow_id: str, now_ms: int) -> None:
        rt = self.runtime
        if path.kind == "escrow":
            self._submit_escrow(path, flow_id)
            return
        if path.kind == "payment":
            base = self.symbol.split("/")[1]
            body = {
                "payment_id": flow_id,
                "payer": path.buyer,
                "payee": path.seller,
                "asset": base,
                "amount": self.price,
            }
            if path.lane_hint is not None:
                body["lane_hint"] = path.lane_hint
            rt.submit_events("payment", [body])
            return
        row: dict[str, Any] = {
            "trade_id": flow_id,
            "venue": "CANARY",
            "symbol": self.symbol,
            "buyer": path.buyer,
            "seller": path.seller,
            "quantity": self.quantity,
            "price": self.price,
            "executed_at": now_ms,
        }
        if path.lane_hint is not None:
            row["lane_hint"] = path.lane_hint
        rt.submit_trades([row])

    def _submit_escrow(self, path: CanaryPath, escrow_id: str) -> None:
        """Deposit the amount, open, agree (both), fund: no conditions, so it is released at
        once. Each action is its own step, applied in this order on the next loop iteration."""
        rt = self.runtime
        quote = self.symbol.split("/")[1]
        scale = next(a.scale for a in rt.config.assets if a.code == quote)
        amount = f"{100 / 10**scale:.{scale}f}"
        deposit = {
            "deposit_id": f"{escrow_id}-d",
            "participant": path.buyer,
            "asset": quote,
            "amount": amount,
        }
        rt.submit_events("collateral_deposit", [deposit])
        terms = {
            "asset": quote,
            "amount": amount,
            "buyer": path.buyer,
            "seller": path.seller,
            "platform": "CANARY-PLATFORM",
            "arbiter": "CANARY-ARBITER",
        }
        actions: list[dict[str, Any]] = [
            {"action": "open", "actor": "CANARY-PLATFORM", "terms": terms},
            {"action": "agree", "actor": path.buyer},
            {"action": "agree", "actor": path.seller},
            {"action": "fund", "actor": path.buyer},
        ]
        for i, action in enumerate(actions):
            body = {**action, "action_id": f"{escrow_id}-{i}", "escrow_id": escrow_id}
            rt.submit_events(ESCROW_KIND, [body])

    # ------------------------------------------------------------------ following
    def _follow(self, now_ms: int) -> None:
        source = _Source(self.runtime)
        done: list[str] = []
        for key, f in list(self.inflight.items()):
            if f.path.kind == "escrow":
                self._observe_escrow(f, now_ms)
            else:
                self._observe(source, f, now_ms)
            result = judge(f.path, f.obs, now_ms)
            if result.verdict is not Verdict.PENDING:
                done.append(key)
                state = self.paths[f.path.name]
                state.results.append(result)
                state.verdicts[result.verdict.value] = state.verdicts.get(result.verdict.value, 0) + 1
                if self.on_result is not None:
                    self.on_result(result)
                self._maybe_watch(f, result, now_ms)
        for key in done:
            del self.inflight[key]
        if self.watching:
            self._watch(source, now_ms)

    def _maybe_watch(self, f: _InFlight, result: Result, now_ms: int) -> None:
        """An L2 canary that failed by its deadline may still be unwound later (the pool's
        anchor deadline): watched until then, so the unwind path is judged when it runs."""
        if result.verdict is Verdict.FAILED and f.path.name.startswith("L2:") and f.obs.broken_hop is None:
            pool = self.runtime.config.pools[self.runtime.config.pool_index()[f.path.name[3:]]]
            until = f.obs.sent_ms + pool.anchor_deadline_ms + self.interval_ms
            self.watching[f.obs.flow_id] = (f, until)

    def _watch(self, source: _Source, now_ms: int) -> None:
        for flow_id, (f, until) in list(self.watching.items()):
            if self._state(f) == int(TradeState.UNWOUND):
                with self.runtime.lock:
                    life = trade_lifecycle(source, flow_id)
                if life is not None:
                    self._follow_unwind(f, life)
                del self.watching[flow_id]
            elif now_ms > until:
                del self.watching[flow_id]

    def _state(self, f: _InFlight) -> int | None:
        """The record's current lifecycle state from the read model (memory, no SQL)."""
        rm = self.runtime.rm
        with self.runtime.lock:
            hit = rm.find(f.obs.flow_id, kind=1 if f.path.kind == "payment" else 0)
            if hit is None:
                return None
            return int(rm.current_states(rm.chunk_table(hit[0]).slice(hit[1], 1))[0])

    def _observe(self, source: _Source, f: _InFlight, now_ms: int) -> None:
        """Hop times from the lifecycle, assembled only when the record's state moved (the
        assembly reads batches and L1 groups from the store); then the checks, once, at final."""
        obs = f.obs
        state_now = self._state(f)
        if state_now is None:
            return
        # An unwound flow stays "unwound" while it settles on L1: the (rare) unwind path is
        # re-read every look.
        if state_now != f.state or f.path.kind == "unwind":
            f.state = state_now
            with self.runtime.lock:
                life = trade_lifecycle(source, obs.flow_id)
            if life is None or self._hops(f, life):
                return
        if "final" in obs.hops:
            self._checks(f, now_ms)

    def _hops(self, f: _InFlight, life: dict[str, Any]) -> bool:
        """Record the hops reached; True when the lifecycle broke (rejected, unwound)."""
        obs = f.obs
        for t in life["transitions"]:
            state = str(t["state"])
            hop = "accepted" if state == "received" else state
            if hop in f.path.hops and hop not in obs.hops:
                obs.hops[hop] = int(t["at_ms"])
        state = str(life["state"])
        if f.path.kind == "unwind":
            return False
        if state == "unwound":
            self._follow_unwind(f, life)
        if state in ("rejected", "unwound"):
            obs.broken_hop = {"rejected": "accepted", "unwound": "anchored"}[state]
            obs.detail = str(life.get("badge") or state)
            return True
        return False

    def _follow_unwind(self, f: _InFlight, life: dict[str, Any]) -> None:
        """An unwound L2 canary exercises the unwind path: follow its gross L1 settlement."""
        state = self.paths.get("unwind")
        if state is None:
            return
        unwound = [int(t["at_ms"]) for t in life["transitions"] if t["state"] == "unwound"]
        at = unwound[0] if unwound else self.runtime.clock.now_ms()
        state.sent += 1
        obs = Observation("unwind", f.obs.flow_id, at, checks={"ledger": None})
        self.inflight[f"unwind/{f.obs.flow_id}"] = _InFlight(state.path, obs)

    def _observe_escrow(self, f: _InFlight, now_ms: int) -> None:
        """Escrow hops from the engine's escrow view (state order), the ledger check from its
        figures (released in full), delivery from the ``escrow.released`` event."""
        obs = f.obs
        with self.runtime.lock:
            view = self.runtime.queries.escrow(obs.flow_id)
        if view is None:
            return
        state = view.state
        if state in _ESCROW_BROKEN:
            obs.broken_hop, obs.detail = "released", f"escrow {state.label}"
            return
        reached = _ESCROW_REACHED.get(state, 0)
        for hop in f.path.hops[:reached]:
            obs.hops.setdefault(hop, now_ms)
        if "released" not in obs.hops:
            return
        if obs.checks.get("ledger") is None:
            obs.checks["ledger"] = view.released_minor == view.amount_minor
            if not obs.checks["ledger"]:
                obs.detail = f"released {view.released_minor} of {view.amount_minor}"
        if "delivery" in obs.checks and obs.checks["delivery"] is None:
            if f.delivered:
                obs.checks["delivery"] = True
            elif now_ms - obs.hops["released"] > self.interval_ms:
                obs.checks["delivery"] = False
                obs.detail = "no escrow.released event published for it"

    def _checks(self, f: _InFlight, now_ms: int) -> None:
        obs = f.obs
        if obs.checks.get("ledger") is None:
            # A gross settlement the ledger refused is recorded as a 502 reject of the flow.
            with self.runtime.lock:
                refused = self.runtime.store.reject_reason(obs.flow_id, int(RejectCode.LEDGER_REFUSED))
            obs.checks["ledger"] = refused is None
            if refused is not None:
                obs.detail = str(refused.get("reason"))
        if "proof" in obs.checks and obs.checks["proof"] is None and self.verifier is not None:
            why = self.verifier(obs.flow_id)
            obs.checks["proof"] = why is None
            if why is not None:
                obs.detail = why
        if "delivery" in obs.checks and obs.checks["delivery"] is None:
            if f.delivered:
                obs.checks["delivery"] = True
            elif now_ms - obs.hops["final"] > self.interval_ms:
                obs.checks["delivery"] = False
                obs.detail = "no trade.final event published for it"

    def _on_events(self, groups: Iterable[EventGroup]) -> None:
        """Bus listener: a ``trade.final`` (``escrow.released``) event published for a canary
        in flight."""
        if not self.inflight:
            return
        for g in groups:
            if g.type == "escrow.released":
                escrow_id = getattr(getattr(g, "transition", None), "escrow_id", None)
                hit = self.inflight.get(f"escrow/{escrow_id}")
                if hit is not None:
                    hit.delivered = True
                continue
            if g.type != "trade.final" or not isinstance(g, TradeEvents):
                continue
            for f in list(self.inflight.values()):
                if f.delivered:
                    continue
                ids = g.select(EventFilter(types=frozenset({g.type}), participant=f.path.buyer)).column(
                    "trade_id"
                )
                if f.obs.flow_id in ids.to_pylist():
                    f.delivered = True

    # ------------------------------------------------------------------ reading
    def gauges(self) -> dict[str, float]:
        """Path → clearlane_canary_status (last decided verdict)."""
        out: dict[str, float] = {}
        for name, state in self.paths.items():
            last = state.last
            if last is not None:
                out[name] = GAUGE_VALUE[last.verdict]
        return out

    def snapshot(self) -> dict[str, Any]:
        paths = []
        for name, state in self.paths.items():
            paths.append(
                {
                    "path": name,
                    "buyer": state.path.buyer,
                    "seller": state.path.seller,
                    "sent": state.sent,
                    "verdicts": dict(state.verdicts),
                    "in_flight": [f.obs.flow_id for f in self.inflight.values() if f.path.name == name],
                    "status": state.last.verdict.value if state.last else "pending",
                    "last": [_result_dict(r) for r in reversed(state.results)],
                }
            )
        return {"interval_ms": self.interval_ms, "paths": paths, "unreachable": self.unreachable}


def _slug(name: str) -> str:
    return name.replace(":", "-").lower()


def _result_dict(r: Result) -> dict[str, Any]:
    return {
        "flow_id": r.flow_id,
        "verdict": r.verdict.value,
        "hop": r.hop,
        "reason": r.reason,
        "sent_ms": r.sent_ms,
        "decided_ms": r.decided_ms,
        "hops": dict(r.hops),
    }
