"""The demo's car marketplace (issue 12): a few used-car deals in escrow, as the inputs a
marketplace would send — deposits for the buyers, then escrow actions — so ``clearlane demo``
shows every path: an inspection accepted in time, one that lapses (auto-accept by the engine
clock), a dispute decided by split, a refund, and a chargeback after release (clawed back from
the seller's payable, then reserve, then the platform)."""

from __future__ import annotations

from typing import Any

from clearlane.core.config.model import ClearingConfig, ParticipantKind

PLATFORM = "CARMARKET"
ARBITER = "CARMARKET-ARBITER"
INSPECTION_MS = 30 * 60_000


def _parties(config: ClearingConfig) -> tuple[list[str], list[str]]:
    retail = [p.id for p in config.participants if p.kind is ParticipantKind.RETAIL]
    others = [p.id for p in config.participants if p.kind is not ParticipantKind.RETAIL]
    buyers = (retail or others)[:3]
    sellers = [p for p in (others or retail) if p not in buyers][:3] or buyers[-1:]
    return buyers, sellers


def car_marketplace(config: ClearingConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(deposits, escrow actions)`` in submission order (USD: the first asset's code)."""
    asset = config.assets[0].code
    buyers, sellers = _parties(config)
    deposits = [
        {"deposit_id": f"car-deposit-{b}", "participant": b, "asset": asset, "amount": "250000"}
        for b in buyers
    ]
    deals = [
        ("car-0001", "18500.00", "accepted"),
        ("car-0002", "24900.00", "lapsed"),
        ("car-0003", "9900.00", "disputed"),
        ("car-0004", "31000.00", "refunded"),
        ("car-0005", "12750.00", "chargeback"),
    ]
    actions: list[dict[str, Any]] = []
    for n, (eid, amount, path) in enumerate(deals):
        buyer, seller = buyers[n % len(buyers)], sellers[n % len(sellers)]
        actions += _deal(eid, amount, path, buyer, seller, asset)
    return deposits, actions


def _deal(eid: str, amount: str, path: str, buyer: str, seller: str, asset: str) -> list[dict[str, Any]]:
    terms = {
        "asset": asset,
        "amount": amount,
        "buyer": buyer,
        "seller": seller,
        "platform": PLATFORM,
        "arbiter": ARBITER,
        "fee_bps": 250,
        "reserve_bps": 1_000,
        "conditions": [
            {"condition_id": "title", "kind": "title_transferred", "role": "platform"},
            {"condition_id": "inspection", "kind": "inspection_passed", "role": "buyer"},
        ],
        "inspection_period_ms": INSPECTION_MS,
        "lapse_action": "accept",
        "order_ref": f"order-{eid}",
    }
    steps: list[dict[str, Any]] = [
        {"action": "open", "actor": PLATFORM, "terms": terms},
        {"action": "agree", "actor": buyer},
        {"action": "agree", "actor": seller},
        {"action": "fund", "actor": buyer},
        {"action": "satisfy", "actor": PLATFORM, "condition_id": "title"},
    ]
    match path:
        case "accepted":
            steps += [
                {"action": "satisfy", "actor": buyer, "condition_id": "inspection"},
                {"action": "settle", "actor": PLATFORM},
            ]
        case "disputed":
            steps += [
                {"action": "reject", "actor": buyer, "reason": "undisclosed accident damage"},
                {"action": "decide", "actor": ARBITER, "buyer_share_bps": 3_000},
            ]
        case "refunded":
            steps += [{"action": "refund", "actor": seller}]
        case "chargeback":
            steps += [
                {"action": "satisfy", "actor": buyer, "condition_id": "inspection"},
                {"action": "settle", "actor": PLATFORM},
                {
                    "action": "chargeback",
                    "actor": PLATFORM,
                    "reason": "card payment disputed by the buyer's bank",
                },
            ]
        case _:  # "lapsed": the engine clock accepts when the inspection period ends
            pass
    return [{**s, "action_id": f"{eid}:{k}", "escrow_id": eid} for k, s in enumerate(steps)]
