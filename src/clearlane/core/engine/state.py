"""The engine's state: the records it keeps and :class:`EngineState`, every field the stage
functions read and write (trades.py, lanes.py, clearing.py, batches.py, l1.py, chain.py,
collateral.py, root.py). :class:`~clearlane.core.engine.core.Engine` is this state plus the
public door (``apply`` and the read-only snapshots).

Nothing here decides anything: construction (accounts in a fixed order, the configuration's
compiled arrays) and the records' own small helpers only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.config.model import ClearingConfig
from clearlane.core.engine import kernel
from clearlane.core.engine.dedup import SeenFlowIds
from clearlane.core.engine.digest import BlockDigest
from clearlane.core.engine.escrows import EscrowStage
from clearlane.core.engine.flows import Flows
from clearlane.core.engine.netting import NetResult
from clearlane.core.engine.routing import kind_codes
from clearlane.core.engine.wakes import Wakes
from clearlane.core.errors import IntegrityError
from clearlane.core.ledger import HOUSE_OWNER, AccountKey, Ledger, PostResult, Purpose
from clearlane.core.model import ids as model_ids
from clearlane.core.model import states
from clearlane.core.model.inputs import LogPayload
from clearlane.core.textcols import string_table

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
_P = TypeVar("_P")

HOUSE_LANE = "house"


class EngineError(IntegrityError, RuntimeError, code="ENGINE_CANNOT_APPLY"):
    """A log entry the engine cannot apply (corrupt log or a bug) — never bad user input."""


@dataclass(frozen=True, slots=True)
class Netted:
    """A closing batch's netting (None: too big to net exactly), its obligation count, and the
    ledger's refusal of its hold (None: held)."""

    result: NetResult | None
    obligations: int
    refused: PostResult | None


@dataclass(frozen=True)
class LogEntry:
    """One input, as stored in the log: a trade chunk (Arrow) or one typed small input
    (:data:`~clearlane.core.model.inputs.LogPayload`, built by
    :func:`~clearlane.core.model.inputs.log_payload` from the logged JSON object)."""

    seq: int
    at_ms: int
    kind: str
    payload: LogPayload


@dataclass
class BatchState:
    """A cleared batch that is not final yet (kept in memory until final or unwound)."""

    batch_id: str
    pool: int
    seq: int
    opened_at_ms: int
    cleared_at_ms: int
    root: bytes
    flows: Flows
    hold_entry_id: str
    net_participant: I64
    net_asset: I64
    net_minor: I64
    attempts: int = 1
    last_submit_ms: int = 0
    anchor_tx: str = ""
    anchor_height: int = -1
    anchored_at_ms: int = -1
    state: str = states.BatchState.CLEARED.label
    # Set by batches.advance when it did nothing: it will do nothing again until engine time
    # reaches ``quiet_until``, the tip ``wake_height`` or observed chain time ``wake_chain_ms``
    # (or its anchor is included, a reorg, a configuration change: batches.walk_order). Not
    # state: they only skip no-op calls.
    quiet_epoch: int = -1
    quiet_until: int = -1
    wake_height: int = -1
    wake_chain_ms: int = -1


@dataclass
class L1Group:
    """Flows settled gross on Layer-1, submitted together; one base-layer tx per flow."""

    group_id: str
    origin: str
    flows: Flows
    attempt: I64
    submitted_ms: I64
    included_height: I64
    included_ms: I64
    final_ms: I64
    quiet_epoch: int = -1  # as BatchState.quiet_epoch (l1.advance did nothing in this epoch)
    quiet_until: int = -1  # as BatchState.quiet_until (a row's confirmation time still to come)
    # Also set by a no-op walk, for l1.walk_order across chain entries: the tip height at which
    # an included row reaches its confirmations, the observed chain time at which a row not
    # included is re-submitted (wakes.NEVER: none).
    wake_height: int = -1
    wake_chain_ms: int = -1

    def open_rows(self) -> int:
        return int(np.count_nonzero(self.final_ms < 0))

    def tx_id(self, row: int) -> str:
        return model_ids.l1_tx_id(self.flows.ids[row].as_py(), int(self.attempt[row]))

    def to_table(self) -> pa.Table:
        """A snapshot for the step's effects. The arrays are copied: Arrow would wrap them
        zero-copy, and later steps update them in place while this step may still be on its way
        to the store (pipelined node)."""
        f = self.flows
        return pa.table(
            {
                "flow_id": f.ids,
                "attempt": self.attempt.copy(),
                "submitted_ms": self.submitted_ms.copy(),
                "included_height": self.included_height.copy(),
                "included_ms": self.included_ms.copy(),
                "final_ms": self.final_ms.copy(),
            }
        )


@dataclass(frozen=True, slots=True)
class OpenBatches:
    """Each pool's open batch (:meth:`Engine.open_batches`): its sequence number, when it opened
    (-1: no open batch) and how many flows it holds. Copies."""

    seq: npt.NDArray[np.int64]
    opened_at_ms: npt.NDArray[np.int64]
    flows: npt.NDArray[np.int64]

    def is_open(self, k: int) -> bool:
        return bool(self.opened_at_ms[k] >= 0)


@dataclass(frozen=True, slots=True)
class AccountBalances:
    """Per participant and asset, in minor units (:meth:`Engine.account_balances`): posted on the
    available, collateral and in-flight accounts, and held (pending debits on available)."""

    available: npt.NDArray[np.int64]
    collateral: npt.NDArray[np.int64]
    in_flight: npt.NDArray[np.int64]
    held: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Liquidity:
    """Per participant (engine order, house last), in USD at current marks: the figures the
    liquidity policy judges by (:meth:`Engine.liquidity`). Views show these; nobody outside
    the engine recomputes them. Copies: the engine goes on changing its own arrays."""

    mark_per_minor: npt.NDArray[np.float64]
    """USD per minor unit, per asset."""
    collateral_usd: npt.NDArray[np.float64]
    credit_usd: npt.NDArray[np.float64]
    debit_usd: npt.NDArray[np.float64]
    """Projected net debit over every open batch and pool (what the check compares)."""
    debit_by_pool_usd: npt.NDArray[np.float64]
    """The same per pool: shape (pools, participants)."""
    margin_usd: npt.NDArray[np.float64] | None = None
    """The finality-window margin the check charges (``[liquidity_margin]``), None when off."""

    @property
    def available_usd(self) -> npt.NDArray[np.float64]:
        """Collateral at marks plus credit: the limit a participant's projected debit must stay under."""
        available: npt.NDArray[np.float64] = self.credit_usd + self.collateral_usd
        if self.margin_usd is not None:
            available = available - self.margin_usd
        return available


@dataclass
class Stats:
    """Running figures for the summary and the state root (all deterministic)."""

    flows_by_lane: dict[str, int] = field(default_factory=dict)
    rejects_by_code: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    conflicts: int = 0  # of the duplicates, those with different content (code 116)
    batches_cleared: int = 0
    batches_final: int = 0
    batches_unwound: int = 0
    anchors_submitted: int = 0
    reorged_anchors: int = 0
    l1_submitted: int = 0
    l1_final: int = 0
    l1_resubmitted: int = 0
    gross_usd: float = 0.0
    net_usd: float = 0.0
    liquidity_diverted: int = 0
    ledger_refused: int = 0
    """Ledger refusals the engine turned into data (docs/LIMITS.md): refused deposits and
    withdrawals, batches settled gross because their hold did not fit, failed settlements."""
    settlements_failed: int = 0
    """Accepted flows whose ledger settlement was refused (final on the base layer, not posted)."""
    alerts: list[str] = field(default_factory=list)
    latency_cleared_ms: list[I64] = field(default_factory=list)
    latency_l2_final_ms: list[I64] = field(default_factory=list)
    latency_l1_final_ms: list[I64] = field(default_factory=list)

    def bump(self, table: dict[str, int], key: str, by: int = 1) -> None:
        table[key] = table.get(key, 0) + by


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How an engine keeps its state; fixed at construction. None of these changes a state root,
    an effect or a stored byte: they trade memory for what a caller can still ask later."""

    # Per-flow latencies (Stats.latency_*) feed the bulk summary (``clearlane clear``); the
    # service turns them off (its read model keeps histograms): they grow with every flow.
    keep_latencies: bool = True
    # Final journal entries stay in memory; the service releases them once drained to the store
    # (bounded memory; the ledger then cannot recompute balances from entries).
    retain_final: bool = True
    # Skip batches and L1 groups whose last walk did nothing until the chain epoch or their wake
    # time changes (identical results); off only to test that it is.
    quiet_skip: bool = True


class EngineState:
    """Everything the engine holds. Stage functions take it as their first argument; only
    :func:`install_config` and :func:`create_accounts` (construction) write the configuration's
    compiled fields and the account indices."""

    # The configuration, compiled (install_config: again on every config change).
    config: ClearingConfig
    house: int
    participant_ids: pa.Array
    participant_lookup: dict[str, int]
    asset_codes: pa.Array
    asset_lookup: dict[str, int]
    pid_table: tuple[U8, I64]  # the same ids as UTF-8 bytes + offsets (batch roots, net columns)
    code_table: tuple[U8, I64]
    scales: npt.NDArray[np.int64]
    kinds: npt.NDArray[np.int8]
    opt_out: npt.NDArray[np.bool_]
    fee_cbps: npt.NDArray[np.int64]
    credit_cents: npt.NDArray[np.int64]
    window_ms: I64
    size_max: I64
    discount_bp: I64
    marks_usd: npt.NDArray[np.float64]
    # Ledger account indices per (participant, asset) (house last), per asset, per (pool, asset).
    acct_available: I64
    acct_collateral: I64
    acct_inflight: I64
    acct_external: I64
    acct_l1: I64
    acct_l2: I64
    collateral: I64
    escrows: EscrowStage

    def __init__(self, config: ClearingConfig, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        install_config(self, config)
        self.now_ms = 0
        self.applied_seq = 0
        self.seen_flow_ids = SeenFlowIds()
        # Deposit, withdrawal, mark and config-change ids ("<kind>:<id>") → content digest.
        self.seen_event_ids: dict[str, int] = {}
        self.ledger = Ledger(initial_accounts=4096, retain_final=self.options.retain_final)
        create_accounts(self)
        self.stats = Stats()
        k, p, a = len(config.pools), config.participant_count, len(config.assets)
        self.pos = np.zeros((k, p, a), dtype=np.int64)
        # Net positions of batches cleared but not final, per pool: what [liquidity_margin]
        # margins over each pool's finality window (kept only when it is on; not in the root).
        self.held = np.zeros((k, p, a), dtype=np.int64)
        # Dense arrays enter the state root through cached block digests (engine/digest.py);
        # every write below is followed by a touch.
        self.pos_digest = BlockDigest("pos", self.pos, 1)
        self.collateral_digest = BlockDigest("collateral", self.collateral, 128)
        self.debit = np.zeros((k, p), dtype=np.float64)
        self.debit_total = np.zeros(p, dtype=np.float64)
        self.touched, self.touched_n = kernel.new_touched(k, p, a)
        self.open_at = np.full(k, -1, dtype=np.int64)
        self.count = np.zeros(k, dtype=np.int64)
        self.seq = np.zeros(k, dtype=np.int64)
        self.open_parts: list[list[Flows]] = [[] for _ in range(k)]
        self.pending: dict[str, BatchState] = {}
        # Which pending batches a step must walk (batches.walk_order): a due index, not state
        # (derived from the batches' quiet marks), so never in the state root.
        self.batch_wakes = Wakes()
        self.anchor_txs: dict[str, str] = {}
        self.l1_groups: dict[str, L1Group] = {}
        self.l1_txs: dict[str, tuple[str, int]] = {}
        self.l1_group_count = 0
        # Which L1 groups a step must walk (l1.walk_order), as for batches.
        self.l1_wakes = Wakes()
        # Chain reorgs applied (a reorg moves block times: batches and L1 groups walked in full).
        self.reorgs = 0
        self.block_ms: dict[int, int] = {}
        self.tip_height = 0
        # Deadlines (re-submit, unwind) are judged on the time up to which the chain has been
        # observed, never on trade time: "not included by X" is only known once blocks up to X
        # have been seen.
        self.chain_seen_ms = 0
        # Bumped by every chain entry and configuration change: what batches.advance and
        # l1.advance depend on besides engine time. Steps between chain entries skip batches
        # and L1 groups whose last walk was a no-op (identical results, ~4 ms less a step with
        # ~1,200 batches in a challenge window).
        self.chain_epoch = 0
        self.final_batch_txs: dict[str, str] = {}
        self.effects_head = hashlib.sha256(b"clearlane.effects.v1|" + config.digest.encode()).digest()
        # Head of the audit hash chain after the last applied entry (clearlane.core.proofs.hashchain),
        # set by whoever logs the entries; empty when the engine runs without a log.
        self.chain_head = b""


def install_config(engine: EngineState, config: ClearingConfig) -> None:
    """Compile the configuration into the arrays the stages read (at construction and on every
    logged config change; marks stay where the log moved them)."""
    engine.config = config
    engine.house = config.house_index
    engine.participant_ids = pa.array(config.participant_ids, type=pa.string())
    engine.participant_lookup = config.participant_index()
    engine.asset_codes = pa.array([a.code for a in config.assets], type=pa.string())
    engine.asset_lookup = config.asset_index()
    engine.pid_table = string_table(config.participant_ids)
    engine.code_table = string_table([a.code for a in config.assets])
    engine.scales = config.asset_scales()
    engine.kinds = kind_codes(config)
    engine.opt_out = config.opt_out_mask()
    engine.fee_cbps = config.fee_cbps()
    engine.credit_cents = config.credit_limits_cents()
    engine.window_ms = np.array([p.window_ms for p in config.pools], dtype=np.int64)
    engine.size_max = np.array([p.size_max for p in config.pools], dtype=np.int64)
    engine.discount_bp = np.array([p.fee_discount_bp for p in config.pools], dtype=np.int64)
    if not hasattr(engine, "marks_usd"):
        engine.marks_usd = np.array(config.marks_usd, dtype=np.float64)
    if hasattr(engine, "escrows"):
        engine.escrows.configure(config)


def create_accounts(engine: EngineState) -> None:
    """All accounts up front, in a fixed order, so indices never depend on traffic: per asset,
    each participant's available, collateral and in-flight, then the house's fees and
    in-flight; then per asset the house external and L1 accounts; then each pool's. Created
    in one bulk call (the same indices and keys digest as one call per key)."""
    cfg = engine.config
    codes = [a.code for a in cfg.assets]
    ids = [p.id for p in cfg.participants]
    n_p, n_a = len(ids), len(codes)
    keys: list[AccountKey] = []
    for code in codes:
        for pid in ids:
            keys += (
                AccountKey(pid, code, Purpose.AVAILABLE),
                AccountKey(pid, code, Purpose.COLLATERAL),
                AccountKey(pid, code, Purpose.IN_FLIGHT_L2),
            )
        keys += (
            AccountKey(HOUSE_OWNER, code, Purpose.FEES, HOUSE_LANE),
            AccountKey(HOUSE_OWNER, code, Purpose.IN_FLIGHT_L2, HOUSE_LANE),
        )
    keys += [AccountKey(HOUSE_OWNER, c, Purpose.EXTERNAL, HOUSE_LANE) for c in codes]
    keys += [AccountKey(HOUSE_OWNER, c, Purpose.SETTLEMENT, "L1") for c in codes]
    keys += [
        AccountKey(HOUSE_OWNER, c, Purpose.SETTLEMENT, pool.lane_name) for pool in cfg.pools for c in codes
    ]
    index = np.array(engine.ledger.accounts(keys), dtype=np.int64)
    per_asset = 3 * n_p + 2
    blocks = index[: n_a * per_asset].reshape(n_a, per_asset)
    parts = blocks[:, : 3 * n_p].reshape(n_a, n_p, 3)
    shape = (n_p + 1, n_a)
    engine.acct_available = np.zeros(shape, dtype=np.int64)
    engine.acct_collateral = np.zeros(shape, dtype=np.int64)
    engine.acct_inflight = np.zeros(shape, dtype=np.int64)
    engine.acct_available[:n_p] = parts[:, :, 0].T
    engine.acct_collateral[:n_p] = parts[:, :, 1].T
    engine.acct_inflight[:n_p] = parts[:, :, 2].T
    engine.acct_available[engine.house] = blocks[:, -2]  # the house's fees account
    engine.acct_collateral[engine.house] = blocks[:, -2]
    engine.acct_inflight[engine.house] = blocks[:, -1]
    for collateral in parts[:, :, 1].ravel().tolist():
        engine.ledger.set_floor(collateral, 0)
    rest = index[n_a * per_asset :]
    engine.acct_external = rest[:n_a].copy()
    engine.acct_l1 = rest[n_a : 2 * n_a].copy()
    engine.acct_l2 = rest[2 * n_a :].reshape(len(cfg.pools), n_a).copy()
    engine.collateral = np.zeros(shape, dtype=np.int64)


def payload_of(entry: LogEntry, kind: type[_P]) -> _P:
    """The entry's payload as the record its kind carries (a mismatch is a corrupt log or a bug)."""
    value = entry.payload
    if not isinstance(value, kind):
        raise EngineError(f"log entry {entry.seq} ({entry.kind}) carries a {type(value).__name__}")
    return value
