"""Base-layer reconciliation: the chain view follows reorgs, and each of clearlane's anchors and
L1 settlements is held to it — missing, wrong root, unwound yet anchored, unknown on chain."""

from __future__ import annotations

from clearlane.core.model.chain import BlockProduced, ChainReorg
from clearlane.core.recon.baselayer import AnchorClaim, L1Claim, chain_view, compare_base_layer
from clearlane.core.recon.codes import Reason
from clearlane.core.recon.records import date_ms

T = date_ms("2026-11-20") or 0
H = bytes(32)


def _block(height: int, *txs: str) -> BlockProduced:
    return BlockProduced(height, T + height, bytes([height]) * 32, H, txs, 0)


def test_chain_view_follows_reorgs() -> None:
    events = [
        _block(1, "anchor:b1:1"),
        _block(2, "anchor:b2:1", "l1:f1:1"),
        ChainReorg(T + 5, 1, (2,), ("anchor:b2:1", "l1:f1:1")),
        _block(2, "l1:f1:1"),
    ]
    view = chain_view(events)
    assert sorted(view) == ["anchor:b1:1", "l1:f1:1"] and view["l1:f1:1"].height == 2


def test_every_base_layer_break() -> None:
    root = "ab" * 32
    chain = chain_view(
        [_block(1, "anchor:b1:1", "anchor:b3:1", "anchor:b4:2", "anchor:zz:1", "l1:f1:1", "l1:f9:1")]
    )
    payloads = {"anchor:b1:1": root, "anchor:b3:1": "cd" * 32}
    anchors = [
        AnchorClaim("b1", "final", root, "anchor:b1:1", 1, T),  # agrees
        AnchorClaim("b2", "anchored", root, "anchor:b2:1", 1, T),  # not on chain
        AnchorClaim("b3", "anchored", root, "anchor:b3:1", 1, T),  # another payload
        AnchorClaim("b4", "unwound", root, None, None, T),  # unwound, yet anchored
        AnchorClaim("b5", "cleared", root, None, None, T),  # not included yet: no claim
    ]
    l1 = [L1Claim("f1", 1, 1, T), L1Claim("f2", 1, 1, T), L1Claim("f3", 1, -1, T)]
    found = [(b.code, b.subject) for b in compare_base_layer(anchors, l1, chain, payloads)]
    assert found == [
        (Reason.ANCHOR_MISSING, "b2"),
        (Reason.ANCHOR_ROOT_MISMATCH, "b3"),
        (Reason.BATCH_UNWOUND, "b4"),
        (Reason.L1_TX_MISSING, "l1:f2:1"),
        (Reason.CHAIN_TX_UNKNOWN, "anchor:zz:1"),
        (Reason.CHAIN_TX_UNKNOWN, "l1:f9:1"),
    ]
    assert compare_base_layer(anchors, l1, chain, payloads, period="2026-11-21") == []
