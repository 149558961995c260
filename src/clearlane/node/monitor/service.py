"""The monitor: canaries, divergence, trust and the L2-halt policy on the engine clock, as one
runtime hook; alerts raised on the ``alert.raised`` path; snapshots for the API and gauges.

Every ``evaluate_ms`` of engine time it reads the sources (node/monitor/sources.py), finds what
is out of band (core/monitor/divergence.py), samples every source's trust (core/monitor/trust.py)
and, when the policy is enabled, logs the ``config_change`` that halts (or resumes) an asset's L2
routing (core/monitor/policy.py) — an input in the log, so a replay routes as the live node did.
A finding raises one alert when it appears (not again while it persists); a canary raises one
when it fails. Alerts go to the bus as :class:`~clearlane.node.events.AlertEvent` (SSE, NATS,
the alert lifecycle) and to the read model's recent alerts (the dashboard's overview).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clearlane.core.monitor import divergence, policy
from clearlane.core.monitor.canary import Result, Verdict
from clearlane.core.monitor.divergence import Bands, Finding
from clearlane.core.monitor.trust import WINDOWS_MS, TrustRing
from clearlane.core.recon.records import BatchReport
from clearlane.node.events import AlertEvent
from clearlane.node.monitor.canaries import Canaries, CanaryOptions, ProofVerifier
from clearlane.node.monitor.sources import BASE_LAYER, BATCH_REPORT, CLEARLANE, VENUE, Sources

if TYPE_CHECKING:
    from clearlane.node.runtime import Runtime

log = logging.getLogger("clearlane.monitor")


@dataclass
class MonitorOptions:
    canaries: CanaryOptions = field(default_factory=CanaryOptions)
    evaluate_ms: int = 10_000  # engine ms between divergence / trust evaluations
    bands: Bands = field(default_factory=Bands)
    heartbeat_ms: dict[str, int] = field(default_factory=dict)  # per source; default below
    default_heartbeat_ms: int = 300_000
    base_layer_heartbeat_blocks: int = 30  # the tip not moving for this many block times is stale
    count_tolerance: int = 0
    halt: policy.HaltPolicy = field(default_factory=policy.HaltPolicy)
    expect_marks: tuple[str, ...] = ()  # external mark sources that must report ("no data" if not)


class Monitor:
    """See the module docstring. :meth:`attach` hooks it into a runtime's loop."""

    def __init__(
        self, runtime: Runtime, options: MonitorOptions | None = None, verifier: ProofVerifier | None = None
    ) -> None:
        self.runtime = runtime
        self.options = options or MonitorOptions()
        cfg = runtime.config
        self.sources = Sources([a.code for a in cfg.assets])
        # The loop thread evaluates; HTTP threads push readings and read snapshots.
        self.lock = threading.RLock()
        self.canaries = Canaries(runtime, self.options.canaries, verifier, on_result=self._canary_result)
        self.trust: dict[str, TrustRing] = {}
        self.findings: dict[str, Finding] = {}
        self.last_diverged_ms: dict[str, int] = {}
        self.next_eval_ms: int | None = None
        self.alerts_raised = 0
        self.errors = 0
        self.last_error: str | None = None
        self.halt_changes = 0
        self.now_ms = 0
        block = int(cfg.chain["block_time_ms"])
        self.base_heartbeat_ms = block * self.options.base_layer_heartbeat_blocks

    @classmethod
    def attach(
        cls, runtime: Runtime, options: MonitorOptions | None = None, verifier: ProofVerifier | None = None
    ) -> Monitor:
        monitor = cls(runtime, options, verifier)
        runtime.hooks.append(monitor.tick)
        runtime.step_listeners.append(monitor.sources.on_step)
        return monitor

    # ------------------------------------------------------------------ the loop's hook
    def tick(self, now_ms: int) -> None:
        with self.lock:
            self.now_ms = now_ms
            try:
                self.canaries.tick(now_ms)
                if self.next_eval_ms is None or now_ms >= self.next_eval_ms:
                    self.next_eval_ms = now_ms + self.options.evaluate_ms
                    self.evaluate(now_ms)
            except Exception as exc:  # a monitoring bug must never stop clearing: said, and counted
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("monitor tick failed")

    # ------------------------------------------------------------------ readings pushed in
    def push_mark(self, source: str, asset: str, mark_usd: str, at_ms: int | None = None) -> dict[str, Any]:
        with self.lock:
            r = self.sources.mark(source, asset, mark_usd, self._when(at_ms))
        return {"source": r.source, "asset": r.asset, "at_ms": r.at_ms}

    def push_count(self, source: str, exch_batch_id: str, trades: int, at_ms: int | None = None) -> None:
        with self.lock:
            self.sources.count(source, exch_batch_id, trades, self._when(at_ms))

    def push_batch_reports(self, reports: Iterable[BatchReport], at_ms: int | None = None) -> int:
        with self.lock:
            return self.sources.batch_reports(reports, self._when(at_ms))

    def _when(self, at_ms: int | None) -> int:
        """A reading's time: as given, else the node's clock (engine time)."""
        return at_ms if at_ms is not None else self.runtime.clock.now_ms()

    def evaluate(self, now_ms: int) -> list[Finding]:
        self.now_ms = max(self.now_ms, now_ms)
        rt = self.runtime
        with rt.lock:
            marks = rt.queries.marks_usd()
            tip = rt.queries.tip_height()
        self.sources.engine_marks(marks, now_ms)
        self.sources.tip_seen(tip, now_ms)
        found = self._findings(now_ms)
        self._sample_trust(found, now_ms)
        self._raise_new(found, now_ms)
        self._apply_policy(found, now_ms)
        return found

    def _heartbeat(self, source: str) -> int:
        return self.options.heartbeat_ms.get(source, self.options.default_heartbeat_ms)

    def _findings(self, now_ms: int) -> list[Finding]:
        src = self.sources
        mark_sources = sorted(set(src.mark_sources) | set(self.options.expect_marks))
        assets = sorted({a for s, a in src.marks if s != CLEARLANE}) or []
        beats = {s: self._heartbeat(s) for s in mark_sources if s != CLEARLANE}
        found = divergence.freshness(
            src.marks, [s for s in mark_sources if s != CLEARLANE], assets, beats, now_ms
        )
        stale = {(f.sources[0], f.subject) for f in found}
        fresh = {key for key in src.marks if key not in stale}
        found += divergence.mark_divergence(src.marks, mark_sources, assets, self.options.bands, fresh)
        for key in src.compared_batches():
            counts: dict[str, int | None] = {
                s: src.counts[s].get(key) for s in (VENUE, BATCH_REPORT, CLEARLANE) if s in src.counts
            }
            counts.setdefault(CLEARLANE, None)
            found += divergence.count_divergence(key, counts, self.options.count_tolerance)
        height, since = src.tip
        if self.runtime.node.engine.has_pending_work() and now_ms - since > self.base_heartbeat_ms:
            found.append(
                Finding(
                    "stale",
                    "tip",
                    (BASE_LAYER,),
                    f"base layer tip {height} unchanged for {now_ms - since} ms",
                )
            )
        return found

    def _sample_trust(self, found: list[Finding], now_ms: int) -> None:
        src = self.sources
        involved: dict[str, set[str]] = {}
        for f in found:
            for s in f.sources:
                involved.setdefault(s, set()).add(f.kind)
        names = set(src.mark_sources) | set(src.counts) | set(self.options.expect_marks) | {BASE_LAYER}
        for name in sorted(names):
            kinds = involved.get(name, set())
            compared = (name in src.mark_sources and len(src.mark_sources) > 1) or name in src.counts
            ring = self.trust.setdefault(name, TrustRing())
            got, expected = self._completeness(name)
            ring.record(
                now_ms,
                available="no_data" not in kinds,
                fresh="stale" not in kinds,
                agreed=(not kinds & {"diverged", "mismatch"}) if compared else None,
                got=got,
                expected=expected,
            )

    def _completeness(self, name: str) -> tuple[int, int]:
        """Exchange batches this source reported, of those any outside source reported."""
        if name not in self.sources.counts:
            return 0, 0
        keys = self.sources.compared_batches()
        have = self.sources.counts[name]
        return sum(1 for k in keys if k in have), len(keys)

    def _raise_new(self, found: list[Finding], now_ms: int) -> None:
        current = {f.key: f for f in found}
        for key, f in current.items():
            if key not in self.findings:
                severity = "critical" if f.kind in ("diverged", "mismatch", "no_data") else "warning"
                self.raise_alert(
                    f"monitor_{f.kind}",
                    severity,
                    f.detail,
                    now_ms,
                    subject=f.subject,
                    sources=list(f.sources),
                )
        for f in found:
            if f.kind == "diverged":
                self.last_diverged_ms[f.subject] = now_ms
        self.findings = current

    def _apply_policy(self, found: list[Finding], now_ms: int) -> None:
        halted = self._halted()
        changes = policy.halt_changes(
            self.options.halt, halted, divergence.diverging_assets(found), self.last_diverged_ms, now_ms
        )
        if not changes:
            return
        self.halt_changes += 1
        payload = policy.change_payload(f"monitor-halt-{now_ms}-{self.halt_changes}", changes)
        rt = self.runtime
        with rt.lock:
            rt.node.submit("config_change", payload, max(now_ms, rt.queries.engine_time_ms()))
        what = ", ".join(f"{a} {'halted' if v else 'resumed'}" for a, v in changes.items())
        self.raise_alert(
            "monitor_policy", "warning", f"L2 routing: {what}", now_ms, subject=",".join(changes)
        )

    def _halted(self) -> frozenset[str]:
        """Assets the engine's current configuration (changes applied) keeps off L2."""
        return self.runtime.node.engine.config.l2_halted

    # ------------------------------------------------------------------ alerts
    def _canary_result(self, result: Result) -> None:
        if result.verdict is Verdict.FAILED:
            message = f"canary {result.path} failed at {result.hop}: {result.reason} ({result.flow_id})"
            self.raise_alert(
                "canary_failed", "critical", message, result.decided_ms, subject=result.path, hop=result.hop
            )

    def raise_alert(self, kind: str, severity: str, message: str, at_ms: int, **labels: Any) -> None:
        """One ``alert.raised`` event (SSE, NATS, the alert lifecycle) and a recent alert on the
        dashboard's overview."""
        rt = self.runtime
        self.alerts_raised += 1
        event = AlertEvent(rt.rm.applied_seq, at_ms, self.alerts_raised, kind, message)
        event.data.update({"severity": severity, "source": "monitor", **labels})
        with rt.lock:
            rt.rm.activity.alert(severity, message, at_ms)
            by_kind = rt.rm.activity.alerts_by_kind
            by_kind[kind] = by_kind.get(kind, 0) + 1
        rt.bus.publish([event])
        log.warning("monitor alert %s: %s", kind, message)

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> dict[str, Any]:
        """Everything the monitoring page shows, consistent at one instant."""
        with self.lock:
            return {
                "as_of_ms": self.now_ms,
                "canaries": self.canaries.snapshot(),
                "divergence": self.divergence_snapshot(),
                "trust": self.trust_scores(),
                "alerts_raised": self.alerts_raised,
                "errors": self.errors,
                "last_error": self.last_error,
            }

    def gauges(self) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
        """(path → canary status, (source, window) → trust score) for the Prometheus gauges."""
        with self.lock:
            trust = {
                (name, w): score["score"]
                for name, by in self.trust_scores().items()
                for w, score in by.items()
            }
            return self.canaries.gauges(), trust

    def trust_scores(self) -> dict[str, dict[str, dict[str, float]]]:
        return {
            name: {w: ring.score(self.now_ms, ms).as_dict() for w, ms in WINDOWS_MS.items()}
            for name, ring in sorted(self.trust.items())
        }

    def divergence_snapshot(self) -> dict[str, Any]:
        src = self.sources
        marks = [
            {
                "source": r.source,
                "asset": r.asset,
                "mark_usd": r.value / 10**divergence.MARK_SCALE,
                "at_ms": r.at_ms,
            }
            for r in sorted(src.marks.values(), key=lambda r: (r.asset, r.source))
        ]
        counts = {
            key: {s: book.get(key) for s, book in sorted(src.counts.items())}
            for key in src.compared_batches()[-50:]
        }
        return {
            "as_of_ms": self.now_ms,
            "findings": [
                {
                    "kind": f.kind,
                    "subject": f.subject,
                    "sources": list(f.sources),
                    "detail": f.detail,
                    "spread_bps": f.spread_bps,
                    "band_bps": f.band_bps,
                }
                for f in self.findings.values()
            ],
            "marks": marks,
            "counts": counts,
            "base_layer": {
                "tip_height": src.tip[0],
                "tip_since_ms": src.tip[1],
                "heartbeat_ms": self.base_heartbeat_ms,
            },
            "l2_halted": sorted(self._halted()),
            "policy": {
                "enabled": self.options.halt.enabled,
                "resume_after_ms": self.options.halt.resume_after_ms,
            },
        }
