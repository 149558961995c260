"""The one spelling of every identifier clearlane makes up, and its parse where one is read back.

Owns: the grammar of the ids clients give (``INPUT_ID_PATTERN``), L2 batch ids (``P1-00000042``), Layer-1 group ids (``l1-00000001``), base-layer
transaction ids (``l1:<flow id>:<attempt>``, ``anchor:<batch id>:<attempt>``), ledger entry ids
(``l2_hold:<batch id>``, ``l1_settle:…``, ``deposit:…``, …), the origin of an L1 group made by
an unwind, the engine's per-kind event keys, input source names and the public event ids
(``<log seq>:<type>:<subject>``).

Every id here is hashed into the state root, stored, or shown to clients: a spelling must never
change (the golden state-root test holds them). Parsers return ``None`` for text that is not an
id of their kind, so callers can answer "not found" without catching.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------- input ids
# The grammar of every id a client gives (trade, payment, deposit, withdrawal, mark and change
# ids, venues, participants in inputs, exchange batch ids): 1 to 64 characters, each an RFC 3986
# path-segment character that needs no percent-encoding — letters, digits and - . _ ~ ! $ & ' (
# ) * + , ; = : @. So every id is one path segment of every route as it is (``/v1/trades/{id}``):
# no ``/``, no ``?``, ``#`` or ``%``, no space, quote, bracket, backslash or control character,
# nothing outside ASCII. Checked at the edge (node/intake) as BAD_ID (102); a log written before
# the grammar narrowed replays unchanged (the engine never re-validates what was accepted).
INPUT_ID_CHARS = "A-Za-z0-9._~!$&'()*+,;=:@-"
INPUT_ID_LENGTH_MAX = 64
INPUT_ID_PATTERN = rf"^[{INPUT_ID_CHARS}]{{1,{INPUT_ID_LENGTH_MAX}}}$"
INPUT_ID_RULE = f"1-{INPUT_ID_LENGTH_MAX} characters of A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : @"
_INPUT_ID_RE = re.compile(INPUT_ID_PATTERN)


def is_input_id(text: object) -> bool:
    """Whether ``text`` is an id a client may give (see ``INPUT_ID_PATTERN``)."""
    return isinstance(text, str) and _INPUT_ID_RE.fullmatch(text) is not None


# Zero-padded so that batch and group ids of one pool sort in sequence order as text.
SEQ_WIDTH = 8

BATCH_SEP = "-"
L1_GROUP_PREFIX = "l1-"
L1_TX_PREFIX = "l1:"
ANCHOR_TX_PREFIX = "anchor:"
UNWOUND_PREFIX = "unwound:"


def _seq(text: str) -> int | None:
    # str.isdigit() alone accepts non-ASCII digits ("²") that int() then refuses.
    return int(text) if text.isascii() and text.isdigit() else None


# ---------------------------------------------------------------------- batches
def batch_id(pool: str, seq: int) -> str:
    """The L2 micro-batch ``seq`` of ``pool``."""
    return f"{pool}{BATCH_SEP}{seq:0{SEQ_WIDTH}d}"


def parse_batch_id(text: str) -> tuple[str, int] | None:
    """``(pool, seq)`` of a batch id, or ``None``. Pool ids may themselves contain ``-``: the
    sequence is what follows the last one. Lenient about padding (``P1-7`` is seq 7); compare
    ``batch_id(*parsed) == text`` where only the canonical spelling may match."""
    pool, sep, seq_text = text.rpartition(BATCH_SEP)
    seq = _seq(seq_text)
    if not sep or not pool or seq is None:
        return None
    return pool, seq


def split_batch_id(text: str) -> tuple[str, int]:
    """``(pool, seq)`` of a batch id the engine made (trusted: a malformed one is a bug)."""
    parsed = parse_batch_id(text)
    if parsed is None:
        raise ValueError(f"not a batch id: {text!r}")
    return parsed


def batch_id_or_none(pool: str | None, seq: int) -> str | None:
    """A flow's batch id, or ``None`` for a flow in no batch (L1 lane, rejected: seq < 0)."""
    return batch_id(pool, seq) if pool is not None and seq >= 0 else None


# ---------------------------------------------------------------------- layer 1
def l1_group_id(number: int) -> str:
    """The ``number``-th group of flows settled gross on Layer-1 (counted from 1)."""
    return f"{L1_GROUP_PREFIX}{number:0{SEQ_WIDTH}d}"


def parse_l1_group_id(text: str) -> int | None:
    if not text.startswith(L1_GROUP_PREFIX):
        return None
    return _seq(text.removeprefix(L1_GROUP_PREFIX))


def l1_tx_id(flow_id: str, attempt: int) -> str:
    """The base-layer transaction settling one flow gross, per submission attempt."""
    return f"{L1_TX_PREFIX}{flow_id}:{attempt}"


def parse_l1_tx_id(text: str) -> tuple[str, int] | None:
    """``(flow id, attempt)``; flow ids may contain ``:``, the attempt follows the last one."""
    if not text.startswith(L1_TX_PREFIX):
        return None
    flow_id, sep, attempt_text = text.removeprefix(L1_TX_PREFIX).rpartition(":")
    attempt = _seq(attempt_text)
    return (flow_id, attempt) if sep and attempt is not None else None


def anchor_tx_id(batch: str, attempt: int) -> str:
    """The base-layer transaction anchoring a batch root, per submission attempt."""
    return f"{ANCHOR_TX_PREFIX}{batch}:{attempt}"


def parse_anchor_tx_id(text: str) -> tuple[str, int] | None:
    """``(batch id, attempt)`` of an anchor transaction id, or ``None``."""
    if not text.startswith(ANCHOR_TX_PREFIX):
        return None
    batch, sep, attempt_text = text.removeprefix(ANCHOR_TX_PREFIX).rpartition(":")
    attempt = _seq(attempt_text)
    return (batch, attempt) if sep and attempt is not None else None


def unwound_origin(batch: str) -> str:
    """The ``origin`` of the L1 group that settles an unwound batch's flows gross."""
    return f"{UNWOUND_PREFIX}{batch}"


def parse_unwound_origin(origin: str) -> str | None:
    """The unwound batch's id, or ``None`` for any other origin (a routed chunk's source)."""
    return origin.removeprefix(UNWOUND_PREFIX) if origin.startswith(UNWOUND_PREFIX) else None


# ---------------------------------------------------------------------- ledger entries
def l2_hold_entry_id(batch: str) -> str:
    """The pending entry holding a batch's net obligations until it is final or unwound."""
    return f"l2_hold:{batch}"


def l2_release_entry_id(batch: str) -> str:
    """The posted entry releasing creditors' in-flight funds when a batch is final."""
    return f"l2_release:{batch}"


def l1_settle_entry_id(group: str, first_row: int, rows: int, final_ms: int) -> str:
    """The posted entry for ``rows`` flows of an L1 group, from ``first_row``, final at ``final_ms``."""
    return f"l1_settle:{group}:{first_row}:{rows}:{final_ms}"


def net_instruction_ref(batch: str, participant: str) -> str:
    """The reference a participant's net settlement of ``batch`` carries (bank end-to-end id,
    reconciliation's internal reference): ``<batch id>/<participant>``."""
    return f"{batch}/{participant}"


def deposit_entry_id(deposit_id: str) -> str:
    return f"deposit:{deposit_id}"


def withdrawal_entry_id(withdrawal_id: str) -> str:
    return f"withdrawal:{withdrawal_id}"


def escrow_entry_id(escrow_id: str, action_id: str, kind: str) -> str:
    """The entry an escrow action posts (``kind`` a MovementKind label): one per action and
    kind, so an action applied twice could never post twice."""
    return f"escrow:{escrow_id}:{action_id}:{kind}"


def escrow_timer_action_id(escrow_id: str, deadline: str, at_ms: int) -> str:
    """The action id of what the engine clock does at an escrow deadline (``fund_timeout``,
    ``inspection_lapse``)."""
    return f"timer:{deadline}:{escrow_id}:{at_ms}"


ESCROW_PAYOUT_PREFIX = "escrow:"
"""Payment ids starting with this are the engine's escrow payouts: the edge refuses them
(``reserved_id``, 117) so a client's payment can never take (or be taken for) a payout's id."""


def escrow_payout_flow_id(action_id: str, index: int) -> str:
    """The payment flow (house → payee) of the ``index``-th payee an escrow ``settle`` action
    pays through the lanes. Payment ids starting ``escrow:`` are reserved for these."""
    return f"{ESCROW_PAYOUT_PREFIX}{action_id}:{index}"


def escrow_final_action_id(flow_id: str) -> str:
    """The action id of the engine's note that a payout flow is final."""
    return f"final:{flow_id}"


# ---------------------------------------------------------------------- inputs
# The engine remembers deposits and withdrawals by "<kind>:<id>" (one set for both kinds) and
# accepted flows by namespace ("t:" trades, "p:" payments: engine/dedup.py).
DEPOSIT_KIND = "deposit"
WITHDRAWAL_KIND = "withdrawal"
PAYMENT_NAMESPACE = "p:"


def event_key(kind: str, event_id: str) -> str:
    """The engine's duplicate key of a deposit or withdrawal id."""
    return f"{kind}:{event_id}"


def payment_key(payment_id: str) -> str:
    """The engine's duplicate key of a payment id (flow namespace ``p:``)."""
    return f"{PAYMENT_NAMESPACE}{payment_id}"


def file_source(digest: str) -> str:
    """The source name of a chunk read from a file, by the file's content digest."""
    return f"file:{digest}"


def deposit_source(deposit_id: str) -> str:
    """The source name of a collateral deposit submitted by the demo/simulation driver."""
    return f"deposit:{deposit_id}"


def nats_source(stream: str, seq: int, pool: str) -> str:
    """The source name of a chunk consumed from a JetStream stream message."""
    return f"nats:{stream}:{seq}:{pool}"


# ---------------------------------------------------------------------- public events
def event_id(seq: int | str, event_type: str, subject: str | int) -> str:
    """A public event's id (SSE ``id:``, webhook ``id``): the log position it was made at, its
    type and its subject (trade, batch, …). Unique per event; resumable by its leading seq."""
    return f"{seq}:{event_type}:{subject}"


def parse_event_id(text: str) -> tuple[str, str, str] | None:
    """``(seq, type, subject)`` of a public event id; the subject may contain ``:``."""
    parts = text.split(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


# ---------------------------------------------------------------------- manual settlement (issue 17)
MANUAL_HEIGHT = -2
"""``included_height`` of an L1 group row settled off-system by an operator: final in the books,
never included in a block (-1 is "not included yet")."""


def manual_settle_entry_id(settlement_id: str) -> str:
    """The ledger entry of a manual settlement (one per settlement id)."""
    return f"manual:{settlement_id}"
