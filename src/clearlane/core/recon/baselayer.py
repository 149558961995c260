"""Base-layer reconciliation: clearlane's anchors and L1 settlements against the chain.

The chain side is what the base-layer adapter reported — its blocks and reorgs, in order —
folded into one view (:func:`chain_view`): every transaction on the best chain with its height
and block time. The clearlane side is the store's records: each batch's root, anchor
transaction, height and state, and each L1 settlement's flow, attempt and inclusion height.
A transaction's payload is what clearlane submitted under its id (ids are unique per attempt,
so an id names one payload); a source that reads payloads from the chain itself passes them
instead, and the root check then compares with the chain's bytes.

Breaks (codes ``5xx``): an anchor clearlane holds as included that the chain does not carry
(``ANCHOR_MISSING``), an included anchor whose payload is not the batch's root
(``ANCHOR_ROOT_MISMATCH``), an anchor of a batch clearlane unwound on chain all the same
(``BATCH_UNWOUND``: the flows then settled gross *and* netted), an L1 settlement clearlane holds
as included that the chain does not carry (``L1_TX_MISSING``), and a clearlane-shaped
transaction on chain no record of clearlane's names (``CHAIN_TX_UNKNOWN``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from clearlane.core.model.chain import BlockProduced, ChainEvent
from clearlane.core.model.ids import l1_tx_id, parse_anchor_tx_id, parse_l1_tx_id
from clearlane.core.recon.breaks import Break
from clearlane.core.recon.codes import Reason
from clearlane.core.recon.records import period_of

RULE = "recon.base-layer/1"


@dataclass(frozen=True, slots=True)
class ChainTx:
    """A transaction on the best chain as the adapter reported it."""

    tx_id: str
    height: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class AnchorClaim:
    """Clearlane's record of one batch's anchoring (the ``batches`` row)."""

    batch_id: str
    state: str  # cleared | anchored | final | unwound
    root_hex: str
    anchor_tx: str | None
    anchor_height: int | None
    cleared_ms: int


@dataclass(frozen=True, slots=True)
class L1Claim:
    """Clearlane's record of one gross settlement on the base layer (an L1 group's row)."""

    flow_id: str
    attempt: int
    included_height: int  # -1: not included (yet)
    submitted_ms: int


@dataclass(frozen=True)
class BaseLayerRecords:
    """Both sides of a base-layer reconciliation as a store reads them."""

    anchors: tuple[AnchorClaim, ...] = ()
    l1: tuple[L1Claim, ...] = ()
    chain: Mapping[str, ChainTx] = field(default_factory=dict)
    payloads: Mapping[str, str] = field(default_factory=dict)  # tx id -> payload hash (hex)

    def breaks(self, period: str | None) -> list[Break]:
        return compare_base_layer(self.anchors, self.l1, self.chain, self.payloads, period=period)


def chain_view(events: Iterable[ChainEvent]) -> dict[str, ChainTx]:
    """Every transaction on the best chain after ``events``: a reorg drops the orphaned heights
    and the blocks that replace them come as new ``BlockProduced`` events."""
    blocks: dict[int, BlockProduced] = {}
    for event in events:
        if isinstance(event, BlockProduced):
            blocks[event.height] = event
        else:
            for height in event.orphaned_heights:
                blocks.pop(height, None)
    return {
        tx: ChainTx(tx, height, block.at_ms)
        for height, block in sorted(blocks.items())
        for tx in block.tx_ids
    }


def _anchor_breaks(
    claim: AnchorClaim, on_chain: Sequence[ChainTx], payloads: Mapping[str, str]
) -> list[Break]:
    subject = claim.batch_id
    if claim.state == "unwound":
        return [
            Break(Reason.BATCH_UNWOUND, subject,
                  f"unwound by clearlane, yet its anchor {t.tx_id} is on chain at height {t.height}", at_ms=t.at_ms)
            for t in on_chain[:1]
        ]  # fmt: skip
    if claim.state not in ("anchored", "final") or claim.anchor_tx is None:
        return []  # submitted and not yet included: nothing to hold the chain to
    held = next((t for t in on_chain if t.tx_id == claim.anchor_tx), None)
    if held is None:
        where = f"height {claim.anchor_height}" if claim.anchor_height is not None else "a block"
        detail = f"{claim.state}: anchor {claim.anchor_tx} in {where} per clearlane, not on the chain"
        return [Break(Reason.ANCHOR_MISSING, subject, detail, at_ms=claim.cleared_ms)]
    payload = payloads.get(held.tx_id)
    if payload is not None and payload != claim.root_hex:
        detail = f"anchor {held.tx_id} carries {payload[:16]}…, the batch root is {claim.root_hex[:16]}…"
        return [Break(Reason.ANCHOR_ROOT_MISMATCH, subject, detail, at_ms=held.at_ms)]
    return []


def compare_base_layer(
    anchors: Iterable[AnchorClaim],
    l1: Iterable[L1Claim],
    chain: Mapping[str, ChainTx],
    payloads: Mapping[str, str],
    *,
    period: str | None = None,
) -> list[Break]:
    """Every break between clearlane's anchors and L1 settlements and the chain, in a stable
    order. ``payloads``: tx id → payload hash (hex). ``period``: only claims made in that
    business day (a batch's clear time, a settlement's submission) and chain transactions in
    blocks of that day are judged; the chain view itself is whole (a late block still counts)."""
    anchors_by_batch = {a.batch_id: a for a in anchors}
    anchor_txs: dict[str, list[ChainTx]] = {}
    l1_txs: set[str] = set()
    unknown: list[ChainTx] = []
    for tx in sorted(chain.values(), key=lambda t: (t.height, t.tx_id)):
        parsed = parse_anchor_tx_id(tx.tx_id)
        if parsed is not None:
            anchor_txs.setdefault(parsed[0], []).append(tx)
            if parsed[0] not in anchors_by_batch:
                unknown.append(tx)
        elif parse_l1_tx_id(tx.tx_id) is not None:
            l1_txs.add(tx.tx_id)
    out: list[Break] = []
    for batch_id in sorted(anchors_by_batch):
        claim = anchors_by_batch[batch_id]
        if period is None or period_of(claim.cleared_ms) == period:
            out += _anchor_breaks(claim, anchor_txs.get(batch_id, []), payloads)
    known_l1: set[str] = set()
    for c in sorted(l1, key=lambda c: (c.flow_id, c.attempt)):
        tx_id = l1_tx_id(c.flow_id, c.attempt)
        known_l1.add(tx_id)
        if c.included_height < 0 or tx_id in l1_txs:
            continue
        if period is None or period_of(c.submitted_ms) == period:
            detail = f"included at height {c.included_height} per clearlane, not on the chain"
            out.append(Break(Reason.L1_TX_MISSING, tx_id, detail, at_ms=c.submitted_ms))
    unknown += [chain[t] for t in sorted(l1_txs - known_l1)]
    for tx in sorted(unknown, key=lambda t: t.tx_id):
        if period is None or period_of(tx.at_ms) == period:
            detail = f"on chain at height {tx.height}, no record of clearlane's names it"
            out.append(Break(Reason.CHAIN_TX_UNKNOWN, tx.tx_id, detail, at_ms=tx.at_ms))
    return out


__all__ = [
    "RULE",
    "AnchorClaim",
    "BaseLayerRecords",
    "ChainTx",
    "L1Claim",
    "chain_view",
    "compare_base_layer",
]
