"""Canary verdicts: a synthetic flow's observed hops against a deadline per hop.

A canary is a real flow between synthetic participants (``synthetic = true`` in the
configuration) sent down one path of the routing table. Each hop it must reach has two limits,
as Checkly's degraded-at / fail-at: reached by ``degraded_ms`` after the send is *passed*, by
``failed_ms`` *degraded*, later (or never, once ``failed_ms`` has passed) *failed*. Checks that
are not timed (the inclusion proof verified offline, the ledger postings, the event delivery)
fail the canary — except delivery, which degrades it (delivery is at least once and may lag
behind a healthy settlement). The verdict names the first hop that went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine.routing import kind_codes, route
from clearlane.core.errors import InputError


class CanaryIntervalError(InputError, ValueError, code="CANARY_INTERVAL_TOO_SHORT"):
    """The canary interval is shorter than a healthy path needs (the path would always fail)."""

    minimum_ms = 0


class Verdict(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    DEGRADED = "degraded"
    FAILED = "failed"


# The gauge's value per verdict (clearlane_canary_status): 1 passed, 0.5 degraded, 0 failed.
GAUGE_VALUE = {Verdict.PASSED: 1.0, Verdict.DEGRADED: 0.5, Verdict.FAILED: 0.0}

# Timed hops in lifecycle order, then the checks made once the last timed hop is reached.
L2_HOPS = ("accepted", "cleared", "anchored", "final")
L1_HOPS = ("accepted", "submitted", "final")
ESCROW_HOPS = ("opened", "agreed", "funded", "released")
# An L2 canary that was unwound is followed on as the "unwind" path: its gross L1 settlement.
UNWIND_HOPS = ("submitted", "final")
CHECKS = ("proof", "ledger", "delivery")


@dataclass(frozen=True)
class HopLimit:
    """How long after the send a hop may take: passed by ``degraded_ms``, degraded by ``failed_ms``."""

    degraded_ms: int
    failed_ms: int

    def __post_init__(self) -> None:
        if not 0 < self.degraded_ms <= self.failed_ms:
            raise ValueError(f"hop limit needs 0 < degraded_ms <= failed_ms, got {self}")


@dataclass(frozen=True)
class CanaryPath:
    """One path of the routing table and how a canary takes it."""

    name: str  # "L1", "L2:<pool>", "payment", "escrow", "unwind"
    buyer: str
    seller: str
    lane_hint: str | None
    hops: tuple[str, ...]
    limits: Mapping[str, HopLimit]
    kind: str = "trade"  # trade | payment | escrow


@dataclass
class Observation:
    """What the node saw of one canary so far (engine ms per hop reached; checks as booleans,
    None while not checked yet)."""

    path: str
    flow_id: str
    sent_ms: int
    hops: dict[str, int] = field(default_factory=dict)
    checks: dict[str, bool | None] = field(default_factory=dict)
    detail: str = ""
    broken_hop: str | None = None  # a hop seen to go wrong outright (an unwind, a refusal)


@dataclass(frozen=True)
class Result:
    path: str
    flow_id: str
    verdict: Verdict
    hop: str | None  # the failing (or slow) hop; None when passed
    reason: str
    sent_ms: int
    decided_ms: int
    hops: Mapping[str, int]


def judge(path: CanaryPath, obs: Observation, now_ms: int) -> Result:
    """The verdict of one canary at ``now_ms`` (PENDING while every overdue hop is reached and a
    hop or a check is still to come)."""
    worst, hop, reason = Verdict.PASSED, None, ""
    if obs.broken_hop is not None:
        return _result(
            path, obs, Verdict.FAILED, obs.broken_hop, obs.detail or f"{obs.broken_hop} broke", now_ms
        )
    for name in path.hops:
        limit = path.limits[name]
        at = obs.hops.get(name)
        took = (at if at is not None else now_ms) - obs.sent_ms
        if at is None:
            if took > limit.failed_ms:
                return _result(
                    path, obs, Verdict.FAILED, name, f"{name} not reached in {limit.failed_ms} ms", now_ms
                )
            return _result(path, obs, Verdict.PENDING, name, f"waiting for {name}", now_ms)
        if took > limit.failed_ms:
            return _result(
                path, obs, Verdict.FAILED, name, f"{name} after {took} ms (fail at {limit.failed_ms})", now_ms
            )
        if took > limit.degraded_ms and worst is Verdict.PASSED:
            worst, hop, reason = (
                Verdict.DEGRADED,
                name,
                f"{name} after {took} ms (degraded at {limit.degraded_ms})",
            )
    for name in CHECKS:
        if name not in obs.checks:
            continue
        ok = obs.checks[name]
        if ok is None:
            return _result(path, obs, Verdict.PENDING, name, f"waiting for {name}", now_ms)
        if not ok:
            why = f"{name} check failed" + (f": {obs.detail}" if obs.detail else "")
            if name == "delivery":
                if worst is Verdict.PASSED:
                    worst, hop, reason = Verdict.DEGRADED, name, why
                continue
            return _result(path, obs, Verdict.FAILED, name, why, now_ms)
    return _result(path, obs, worst, hop, reason, now_ms)


def _result(
    path: CanaryPath, obs: Observation, verdict: Verdict, hop: str | None, reason: str, now: int
) -> Result:
    return Result(
        path.name,
        obs.flow_id,
        verdict,
        hop if verdict is not Verdict.PASSED else None,
        reason,
        obs.sent_ms,
        now,
        dict(obs.hops),
    )


def default_limits(
    config: ClearingConfig, pool: int | None, interval_ms: int, slack_ms: int = 0
) -> dict[str, HopLimit]:
    """Per-hop limits derived from the configuration: what a healthy path needs (window,
    confirmations × block time, challenge window), degraded at 1.5× and failed at 3× that (plus
    two blocks and ``slack_ms`` — the loop's own latency in engine time — of slack), failed no
    later than one interval. An interval shorter than a
    healthy path's degraded limit is refused (ValueError naming the path and the minimum)."""
    block = int(config.chain["block_time_ms"])
    if pool is None:
        final = (config.l1_confirmations + 2) * block
        expected = {"accepted": block, "submitted": block, "final": final}
    else:
        p = config.pools[pool]
        cleared = p.window_ms + block
        anchored = cleared + 2 * block
        final = max(anchored + p.confirmations * block, cleared + p.challenge_window_ms + block)
        expected = {"accepted": block, "cleared": cleared, "anchored": anchored, "final": final}
    # Failed by one interval at most: a canary sent right after a path broke is then judged
    # failed before the next is sent, so a break is caught within two intervals. An interval too
    # short for a healthy path would fail it every time: refused, naming the minimum.
    slack = 2 * block + slack_ms
    degraded = {hop: ms * 3 // 2 + slack for hop, ms in expected.items()}
    if max(degraded.values()) > interval_ms:
        name = "L1" if pool is None else config.pools[pool].lane_name
        error = CanaryIntervalError(
            f"canary interval {interval_ms} ms is shorter than {name} needs when healthy: "
            f"use at least {max(degraded.values())} ms"
        )
        error.minimum_ms = max(degraded.values())
        raise error
    return {hop: HopLimit(degraded[hop], min(ms * 3 + slack, interval_ms)) for hop, ms in expected.items()}


def minimum_interval_ms(config: ClearingConfig, slack_ms: int = 0) -> int:
    """The shortest canary interval every path of the configuration allows when healthy."""
    need = 0
    for pool in (None, *range(len(config.pools))):
        try:
            default_limits(config, pool, 0, slack_ms)
        except CanaryIntervalError as exc:  # an interval of 0 is always too short
            need = max(need, exc.minimum_ms)
    return need


def plan_paths(
    config: ClearingConfig, interval_ms: int, slack_ms: int = 0
) -> tuple[list[CanaryPath], list[str]]:
    """For every path of the routing table (L1 and each pool), a pair of synthetic participants
    the routing rules actually send there (evaluated with the engine's own ``route``); also
    ``payment`` when a pair exists. Returns (paths, names of paths no synthetic pair reaches)."""
    synthetic = [p for p in config.participants if p.synthetic]
    pairs = [(b, s) for b in synthetic for s in synthetic if b.id != s.id]
    if not pairs:
        return [], ["L1", *(p.lane_name for p in config.pools)]
    kinds = kind_codes(config)
    targets: dict[int, tuple[str, str, str | None]] = {}
    for hint in (None, "L1"):
        buyers = np.array([b.index for b, _ in pairs], dtype=np.int32)
        sellers = np.array([s.index for _, s in pairs], dtype=np.int32)
        pool, _ = route(
            config,
            buyer=buyers,
            seller=sellers,
            kind=np.zeros(len(pairs), dtype=np.int8),
            notional_usd=np.full(len(pairs), 1.0),
            lane_hint=np.array([hint] * len(pairs), dtype=object),
            kinds_by_participant=kinds,
            opt_out=config.opt_out_mask(),
        )
        for i, k in enumerate(pool.tolist()):
            targets.setdefault(int(k), (pairs[i][0].id, pairs[i][1].id, hint))
    paths: list[CanaryPath] = []
    missing: list[str] = []
    for k, name in [(-1, "L1"), *((p.index, p.lane_name) for p in config.pools)]:
        hit = targets.get(k)
        if hit is None:
            missing.append(name)
            continue
        hops = L1_HOPS if k < 0 else L2_HOPS
        limits = default_limits(config, None if k < 0 else k, interval_ms, slack_ms)
        paths.append(CanaryPath(name, hit[0], hit[1], hit[2], hops, limits))
    if paths:
        first = pairs[0]
        l1 = default_limits(config, None, interval_ms, slack_ms)
        paths.append(CanaryPath("payment", first[0].id, first[1].id, "L1", L1_HOPS, l1, kind="payment"))
        # Escrow actions are applied as they arrive (a step each): every hop within a few blocks.
        block = int(config.chain["block_time_ms"])
        quick = HopLimit(
            2 * block + slack_ms, max(2 * block + slack_ms, min(6 * block + slack_ms, interval_ms))
        )
        escrow = dict.fromkeys(ESCROW_HOPS, quick)
        paths.append(CanaryPath("escrow", first[0].id, first[1].id, None, ESCROW_HOPS, escrow, kind="escrow"))
    return paths, missing


def unwind_path(config: ClearingConfig, interval_ms: int, slack_ms: int = 0) -> CanaryPath:
    """The unwind path, exercised only when an L2 canary's batch is unwound (it cannot be
    triggered on a healthy node): the unwound flow must settle gross on L1 in time."""
    limits = default_limits(config, None, interval_ms, slack_ms)
    return CanaryPath("unwind", "", "", None, UNWIND_HOPS, {h: limits[h] for h in UNWIND_HOPS}, kind="unwind")


def summarize(results: Sequence[Result]) -> Verdict:
    """The worst verdict of a set (FAILED > DEGRADED > PASSED); PASSED when empty."""
    order = {Verdict.FAILED: 3, Verdict.DEGRADED: 2, Verdict.PENDING: 1, Verdict.PASSED: 0}
    return max((r.verdict for r in results), key=order.__getitem__, default=Verdict.PASSED)
