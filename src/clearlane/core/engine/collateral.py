"""Collateral and the liquidity policy: deposits and withdrawals (posted to the collateral
accounts), price marks, and the one set of formulas the policy judges by — USD per minor unit,
collateral at marks, the per-participant limit (collateral + credit − finality-window margin),
the margin's held exposure and :func:`withdrawal_allowed`. Views read :func:`liquidity`; nobody
outside the engine recomputes these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from clearlane.core.engine import limits, outcomes
from clearlane.core.engine.dedup import collateral_digest
from clearlane.core.engine.state import BatchState, EngineState, Liquidity, LogEntry, payload_of
from clearlane.core.engine.step import StepBuilder
from clearlane.core.ledger import JournalEntry, handed_over
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import RejectCode
from clearlane.core.model.inputs import CollateralDeposit, CollateralWithdrawal, PriceMark
from clearlane.core.money import DecimalError, parse_decimal
from clearlane.core.risk.margin import span_grid


def apply_deposit(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    """A deposit: a run of one (:func:`apply_deposits`, the one rule for deposits)."""
    apply_deposits(engine, [entry], out)


def apply_deposits(engine: EngineState, entries: list[LogEntry], out: StepBuilder) -> None:
    """A run of deposits (members of one EventRun, in order), each applied as it would be alone
    — its id remembered, then resolved or rejected, then posted from the external account to
    the participant's collateral or refused — with the entries posted by one ledger call
    (``Ledger.post_many``, which checks each against the balances the ones before it left: the
    same as one post after the other; a run of one is ``Ledger.post``). A reject is recorded after the
    refusals of the deposits before it: the entries queued so far are posted first. A day
    opens with a deposit per participant and asset: 2,000 on the reference day, ~130 µs each
    one by one in the 1M-trade bench (issue 18)."""
    queued: list[tuple[str, int, int, int, JournalEntry]] = []
    for entry in entries:
        payload = payload_of(entry, CollateralDeposit)
        event_id = str(payload.deposit_id)
        if not outcomes.event_id(engine, "deposit", event_id, out, collateral_digest(payload)):
            continue
        resolved = _resolve(engine, payload)
        if not isinstance(resolved, _Invalid):
            p, a, amount = resolved
            source, target = int(engine.acct_external[a]), int(engine.acct_collateral[p, a])
            posting = handed_over(
                model_ids.deposit_entry_id(event_id),
                "collateral_deposit",
                engine.now_ms,
                np.array([source, target], dtype=np.int64),
                np.array([-amount, amount], dtype=np.int64),
                False,
                None,
                str(payload.participant),
            )
            queued.append((event_id, p, a, amount, posting))
            continue
        _post_deposits(engine, queued, out)
        queued = []
        outcomes.reject(engine, out, resolved.code, resolved.field_name, resolved.reason, event_id)
    _post_deposits(engine, queued, out)


def _post_deposits(
    engine: EngineState, queued: list[tuple[str, int, int, int, JournalEntry]], out: StepBuilder
) -> None:
    """Post queued deposits with one ledger call; each posted one moves collateral, each refused
    one is recorded as :func:`outcomes.post_or_refuse` records it, in order."""
    results = outcomes.try_post_many(engine, [posting for *_, posting in queued])
    for (event_id, p, a, amount, posting), result in zip(queued, results, strict=True):
        if result is None:
            moved(engine, p, a, amount)
        else:
            outcomes.record_refusal(engine, posting, result, out, event_id)


def apply_withdrawal(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    payload = payload_of(entry, CollateralWithdrawal)
    event_id = str(payload.withdrawal_id)
    if not outcomes.event_id(engine, "withdrawal", event_id, out, collateral_digest(payload)):
        return
    resolved = small_amount(engine, payload, out, event_id)
    if resolved is None:
        return
    p, a, amount = resolved
    if not withdrawal_allowed(engine, p, a, amount):
        outcomes.reject(
            engine,
            out,
            RejectCode.COLLATERAL_INSUFFICIENT,
            "amount",
            "withdrawal would leave open L2 exposure uncovered or exceeds posted collateral",
            event_id,
        )
        return
    entry_id = model_ids.withdrawal_entry_id(event_id)
    source, target = int(engine.acct_collateral[p, a]), int(engine.acct_external[a])
    if _post_move(
        engine, out, event_id, entry_id, "collateral_withdrawal", source, target, amount, payload.participant
    ):
        moved(engine, p, a, -amount)


def _post_move(
    engine: EngineState,
    out: StepBuilder,
    event_id: str,
    entry_id: str,
    kind: str,
    source: int,
    target: int,
    amount: int,
    participant: str,
) -> bool:
    """Post ``amount`` from account ``source`` to ``target`` (a deposit or a withdrawal), or
    record the ledger's refusal; whether it was posted."""
    posting = JournalEntry(
        entry_id,
        kind,
        engine.now_ms,
        np.array([source, target], dtype=np.int64),
        np.array([-amount, amount], dtype=np.int64),
        False,
        None,
        str(participant),
    )
    return outcomes.post_or_refuse(engine, posting, out, event_id)


def small_amount(
    engine: EngineState, payload: CollateralDeposit | CollateralWithdrawal, out: StepBuilder, event_id: str
) -> tuple[int, int, int] | None:
    """Resolve (participant, asset, amount) of a deposit/withdrawal, or record a reject."""
    resolved = _resolve(engine, payload)
    if isinstance(resolved, _Invalid):
        outcomes.reject(engine, out, resolved.code, resolved.field_name, resolved.reason, event_id)
        return None
    return resolved


class _Invalid(NamedTuple):
    """Why a deposit or withdrawal is rejected before the ledger sees it."""

    code: RejectCode
    field_name: str
    reason: str


def _resolve(
    engine: EngineState, payload: CollateralDeposit | CollateralWithdrawal
) -> tuple[int, int, int] | _Invalid:
    """(participant, asset, amount) of a deposit/withdrawal, or why it is rejected."""
    p = engine.participant_lookup.get(str(payload.participant), -1)
    a = engine.asset_lookup.get(str(payload.asset), -1)
    if p < 0:
        return _Invalid(RejectCode.UNKNOWN_PARTICIPANT, "participant", "not a configured participant")
    if a < 0:
        return _Invalid(RejectCode.UNKNOWN_ASSET, "asset", "not a configured asset")
    try:
        amount = parse_decimal(str(payload.amount), int(engine.scales[a]))
    except DecimalError as exc:
        code = RejectCode.PRECISION_EXCEEDED if exc.reason == "precision" else RejectCode.BAD_DECIMAL
        return _Invalid(code, "amount", str(exc))
    if amount > limits.TRANSFER_MAX_MINOR:
        reason = f"amount exceeds the ledger's per-entry limit ({limits.TRANSFER_MAX_MINOR} minor units)"
        return _Invalid(RejectCode.AMOUNT_OVERFLOW, "amount", reason)
    return p, a, amount


def moved(engine: EngineState, p: int, a: int, delta: int) -> None:
    """Collateral of participant ``p`` in asset ``a`` changed by ``delta`` (its digest follows)."""
    engine.collateral[p, a] += delta
    engine.collateral_digest.touch(p)


def apply_mark(engine: EngineState, entry: LogEntry, out: StepBuilder) -> None:
    payload = payload_of(entry, PriceMark)
    mark_id = str(payload.mark_id)
    if not outcomes.event_id(engine, "mark", mark_id, out):
        return
    a = engine.asset_lookup.get(str(payload.asset), -1)
    if a < 0:
        outcomes.reject(engine, out, RejectCode.UNKNOWN_ASSET, "asset", "not a configured asset", mark_id)
        return
    try:
        mark = parse_decimal(str(payload.mark_usd), 10) / 1e10
    except DecimalError as exc:
        outcomes.reject(engine, out, RejectCode.BAD_DECIMAL, "mark_usd", str(exc), mark_id)
        return
    engine.marks_usd[a] = mark


def mark_per_minor(engine: EngineState) -> npt.NDArray[np.float64]:
    """USD per minor unit of each asset at current marks (a risk estimate, never posted)."""
    marks: npt.NDArray[np.float64] = engine.marks_usd / np.power(10.0, engine.scales)
    return marks


def limits_usd(engine: EngineState, mark_minor: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per participant: collateral at marks + credit limit, in USD (the house is unlimited)."""
    limits: npt.NDArray[np.float64] = engine.credit_cents / 100.0 + collateral_usd(engine, mark_minor)
    margin = finality_margin_usd(engine, mark_minor)
    if margin is not None:
        limits -= margin
    limits[engine.house] = np.inf
    return limits


def collateral_usd(engine: EngineState, mark_minor: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per participant: posted collateral at marks, in USD."""
    collateral: npt.NDArray[np.float64] = (engine.collateral * mark_minor[None, :]).sum(axis=1)
    return collateral


def finality_margin_usd(
    engine: EngineState, mark_minor: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64] | None:
    """Per participant: the SPAN-like scanning risk of what it holds cleared but not final,
    each pool's exposure scanned over that pool's finality window — a pool with a long
    challenge window costs more headroom (``[liquidity_margin]``; None when off)."""
    policy = engine.config.liquidity_margin
    if policy is None:
        return None
    exposure = engine.held.astype(np.float64) * mark_minor[None, None, :]
    horizons = np.asarray(policy.horizons_days, dtype=np.float64)
    margin, _ = span_grid(exposure, horizons, np.asarray(policy.vols), confidence=policy.confidence)
    margin[engine.house] = 0.0
    return margin


def hold_exposure(engine: EngineState, state: BatchState, sign: int) -> None:
    """A batch enters (+1) or leaves (-1) its finality window: its net positions are held."""
    if engine.config.liquidity_margin is not None and len(state.net_minor):
        np.add.at(engine.held[state.pool], (state.net_participant, state.net_asset), sign * state.net_minor)


def liquidity(engine: EngineState) -> Liquidity:
    """The liquidity figures the policy judges by, at current marks (a read-only snapshot)."""
    mark_minor = mark_per_minor(engine)
    return Liquidity(
        mark_per_minor=mark_minor,
        collateral_usd=collateral_usd(engine, mark_minor),
        credit_usd=engine.credit_cents / 100.0,
        debit_usd=engine.debit_total.copy(),
        debit_by_pool_usd=engine.debit.copy(),
        margin_usd=finality_margin_usd(engine, mark_minor),
    )


def withdrawal_allowed(engine: EngineState, p: int, a: int, amount: int) -> bool:
    """The collateral policy for a withdrawal of ``amount`` minor units of asset ``a`` by
    participant ``p``: no more than is posted, and what remains (with credit) still covers
    the participant's projected net debit. The one formula; the runtime asks it before
    logging, and ``Engine.apply`` judges by it."""
    mark_minor = mark_per_minor(engine)
    remaining_usd = float(limits_usd(engine, mark_minor)[p]) - amount * float(mark_minor[a])
    return bool(amount <= engine.collateral[p, a] and remaining_usd >= engine.debit_total[p])
