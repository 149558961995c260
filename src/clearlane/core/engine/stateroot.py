"""The state root: one digest of everything the engine holds (equal roots ⇔ equal states), the
audit chain head sealed into it, and the cheap invariant checks.

Dense arrays enter through their cached block digests (engine/digest.py); the escrow book only
once escrow was used, so a day without escrow keeps the root it had before escrow existed.
"""

from __future__ import annotations

import hashlib

import numpy as np

from clearlane.core.engine.state import EngineError, EngineState


def seal(engine: EngineState, chain_head: bytes) -> None:
    """Fold the audit chain head of the entry just applied into :func:`state_root`."""
    engine.chain_head = chain_head


def state_root(engine: EngineState) -> str:
    """A digest of the whole engine state: equal roots ⇔ equal states (replay check).

    It is :func:`seal_root` of :func:`pre_root` (everything but the audit chain head) and the
    chain head, so a pipelined node can take the pre-root right after a step and seal it
    once the step's audit entry is chained (``store/writer.py``).
    """
    return seal_root(pre_root(engine), engine.chain_head)


def pre_root(engine: EngineState) -> bytes:
    """Digest of the engine state without the audit chain head (see :func:`state_root`)."""
    h = hashlib.sha256(b"clearlane.state.v2|")
    h.update(engine.config.digest.encode())
    h.update(f"|{engine.applied_seq}|{engine.now_ms}|{engine.chain_seen_ms}|{engine.tip_height}|".encode())
    h.update(engine.marks_usd.tobytes())
    h.update(engine.collateral_digest.digest())
    h.update(engine.pos_digest.digest())
    h.update(engine.open_at.tobytes() + engine.count.tobytes() + engine.seq.tobytes())
    h.update(engine.ledger.state_digest())
    h.update(engine.effects_head)
    escrow = engine.escrows.digest()
    if escrow is not None:  # only once escrow is used: earlier state roots stay valid
        h.update(escrow)
    h.update(
        f"|{len(engine.seen_flow_ids)}|{len(engine.seen_event_ids)}|{sorted(engine.pending)}|{sorted(engine.l1_groups)}".encode()
    )
    return h.digest()


def seal_root(pre_root: bytes, chain_head: bytes) -> str:
    """The state root from a :func:`pre_root` and the audit chain head sealed after it."""
    return hashlib.sha256(b"clearlane.state.v2.sealed|" + pre_root + b"|" + chain_head).hexdigest()


def check_invariants(engine: EngineState) -> None:
    """Explicit invariant checks (cheap ones; the ledger audits its own balances)."""
    engine.ledger.check_invariants()
    engine.escrows.book.check_invariants()
    if np.any(engine.pos.sum(axis=1) != 0):
        raise EngineError("open-batch positions do not sum to zero per pool and asset")
    for cached in (engine.pos_digest, engine.collateral_digest):
        if not cached.verify():
            raise EngineError(f"cached state-root digest of {cached.name} is stale")
