"""Request and response models of the HTTP API (pydantic): they ARE the published OpenAPI
schema, and every JSON response is rendered through one of them, so the documentation and the
wire format cannot drift apart. Shapes are versioned with the ``/v1`` prefix: fields may be
added, never renamed or removed.

Money is always both an integer in minor units (``*_minor``) and a decimal string at the
asset's scale; USD figures (risk and savings estimates at marks) are floats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clearlane.core.model.ids import INPUT_ID_RULE
from clearlane.core.model.inputs import ID_PATTERN, SYMBOL_PATTERN
from clearlane.node.events import DEPRECATED_ALIASES, WEBHOOK_EVENTS

DECIMAL_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- requests
class TradeIn(BaseModel):
    """One trade as a venue reports it (same fields as a file row; unknown fields are ignored)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})
    trade_id: str = Field(
        description=f"Venue-unique id, the idempotency key: {INPUT_ID_RULE} (one path segment as it is).",
        pattern=ID_PATTERN,
        examples=["T-000001"],
    )
    venue: str = Field(pattern=ID_PATTERN, examples=["XCL"])
    symbol: str = Field(
        description="BASE/QUOTE of two configured assets.", pattern=SYMBOL_PATTERN, examples=["BTC/USD"]
    )
    buyer: str = Field(pattern=ID_PATTERN, examples=["MM-ALPHA"])
    seller: str = Field(pattern=ID_PATTERN, examples=["BRK-NORTH"])
    quantity: str = Field(
        description="Plain decimal string, at most the base asset's scale.",
        pattern=DECIMAL_PATTERN,
        examples=["0.05"],
    )
    price: str = Field(
        description="Plain decimal string, at most 12 decimals.",
        pattern=DECIMAL_PATTERN,
        examples=["65000.12"],
    )
    executed_at: str | int = Field(
        description="RFC 3339 string or integer epoch milliseconds.", examples=["2026-11-20T14:03:07.250Z"]
    )
    exch_batch_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="The exchange's batch id, carried through."
    )
    lane_hint: str | None = Field(default=None, description="L1, L2 or a pool id.")


class TradeBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trades: list[TradeIn] = Field(min_length=1, max_length=10_000)


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payment_id: str = Field(examples=["P-1"])
    payer: str
    payee: str
    asset: str = Field(examples=["USD"])
    amount: str = Field(examples=["125.00"])
    lane_hint: str | None = None


class PaymentBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payments: list[PaymentIn] = Field(min_length=1, max_length=1_000)


class DepositIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deposit_id: str
    participant: str
    asset: str
    amount: str


class WithdrawalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    withdrawal_id: str
    participant: str
    asset: str
    amount: str


if TYPE_CHECKING:
    WebhookEventName = str
else:
    # The names a webhook may subscribe to, from the one vocabulary (node/events.py) plus the
    # deprecated aliases still accepted; a Literal so the schema lists them and a wrong name is a
    # 422 naming the allowed ones.
    WebhookEventName = Literal[(*WEBHOOK_EVENTS, *DEPRECATED_ALIASES)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        examples=["https://ops.example/hooks/clearlane"],
        description="https to a public address; plain http and non-public addresses only for "
        "hosts on the server's allow-list (serve --webhook-allow). Checked again at every delivery.",
    )
    events: list[WebhookEventName] = Field(
        min_length=1,
        description="Event types (node/events.py WEBHOOK_EVENTS); batch.closed is a deprecated alias of batch.cleared.",
    )
    participant: str | None = Field(
        default=None,
        description="The participant this endpoint is for: its own trade events only, and batch "
        "events without volume (no flows, gross_usd, net_usd).",
    )
    pool: str | None = Field(default=None, description="Only events of this pool (L1 for Layer-1 trades).")
    description: str = Field(default="", max_length=500)


# ---------------------------------------------------------------------- submissions
class RejectOut(Out):
    code: int
    error: str
    field: str
    reason: str


class Receipt(Out):
    """What happened to one submitted item. ``status``: accepted (logged now), duplicate (the id
    was applied before; this is its current record), rejected (logged, refused by policy)."""

    id: str
    kind: str
    status: Literal["accepted", "duplicate", "rejected"]
    state: str | None = None
    lane: str | None = None
    pool: str | None = None
    batch_id: str | None = None
    received_at_ms: int | None = None
    reject: RejectOut | None = None


class BatchReceipt(Out):
    accepted: int
    duplicates: int
    rejected: int
    items: list[Receipt]


# ---------------------------------------------------------------------- trades
class Transition(Out):
    state: str
    at_ms: int
    at: str | None
    detail: str


class AnchorOut(Out):
    tx: str | None
    height: int | None
    at: str | None


class TradeHead(Out):
    """What a trade (or payment) is: the fields its lifecycle and its list summary share."""

    id: str
    kind: Literal["trade", "payment"]
    buyer: str
    seller: str
    base: str
    quote: str
    quantity: str
    quote_amount: str


class TradeLifecycle(TradeHead):
    """A trade's (or payment's) lifecycle with both finality timestamps and its badge."""

    qty_minor: int
    quote_minor: int
    fees_minor: list[int]
    exch_batch_id: str | None
    executed_at: str | None
    received_at: str | None
    lane: str | None
    pool: str | None
    route_rule: str | None
    batch_id: str | None
    state: str
    final: bool
    l2_cleared_at: str | None = Field(description="L2 soft finality: the batch was netted and committed.")
    l1_final_at: str | None = Field(
        description="Base-layer finality: confirmations and challenge window passed."
    )
    settled_manually_at: str | None = Field(
        default=None,
        description="An operator recorded the L1 obligation as settled off-system "
        "(docs/MANUAL_SETTLEMENT.md): settled in the books, not final on a base layer.",
    )
    badge: str
    transitions: list[Transition]
    anchor: AnchorOut | None = None
    root: str | None = None
    reject: RejectOut | None = None


class TradeSummary(TradeHead):
    lane: str | None
    pool: str | None
    batch_id: str | None
    state: str
    received_at_ms: int
    received_at: str | None
    executed_at: str | None
    exch_batch_id: str | None
    reject_code: int | None


class TradePage(Out):
    items: list[TradeSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


# ---------------------------------------------------------------------- batches
class BatchEventOut(Out):
    event: str
    at_ms: int
    at: str | None
    detail: str


class BatchOut(Out):
    batch_id: str
    pool: str
    seq: int
    state: Literal["open", "cleared", "anchored", "final", "unwound"]  # BatchState labels (test_states.py)
    flows: int
    opened_at_ms: int | None
    cleared_at_ms: int | None
    anchored_at_ms: int | None
    final_at_ms: int | None
    unwound_at_ms: int | None
    opened_at: str | None
    cleared_at: str | None
    anchored_at: str | None
    final_at: str | None
    unwound_at: str | None
    gross_usd: float
    net_usd: float
    netting_efficiency: float | None
    liquidity_saved_usd: float
    root: str | None = None
    anchor_tx: str | None = None
    anchor_height: int | None = None
    attempts: int | None = None
    events: list[BatchEventOut] | None = None


class BatchPage(Out):
    items: list[BatchOut]
    next_cursor: str | None


class NetInstruction(Out):
    batch_id: str
    pool: str
    batch_state: str
    participant: str
    asset: str
    net_minor: int = Field(description="> 0 receives, < 0 pays.")
    net: str
    direction: Literal["pay", "receive"]


class NetInstructionPage(Out):
    items: list[NetInstruction]
    next_cursor: str | None


# ---------------------------------------------------------------------- positions and liquidity
class PositionOut(Out):
    """A participant's position in one asset on one lane. L2 pool lanes: ``open`` = in the pool's
    open batch (projected), ``pending`` = cleared but not final, ``final`` = settled final.
    L1: ``open`` = 0, ``pending`` = submitted gross, not final, ``final`` = settled final."""

    participant: str
    lane: str
    asset: str
    open_minor: int
    pending_minor: int
    final_minor: int
    open: str
    pending: str
    final: str
    final_usd: float | None = Field(None, description="Settled (final) value in USD at current marks.")
    pending_usd: float | None = Field(None, description="Open + pending value in USD at current marks.")


class BalanceOut(Out):
    asset: str
    available_minor: int
    collateral_minor: int
    in_flight_minor: int
    held_minor: int = Field(description="Pending debits: funds held for cleared, not yet final L2 batches.")
    available: str
    collateral: str
    in_flight: str
    held: str


class PositionPage(Out):
    as_of_ms: int
    items: list[PositionOut]
    next_cursor: str | None


class ParticipantPositions(Out):
    participant: str
    as_of_ms: int
    positions: list[PositionOut]
    balances: list[BalanceOut]


class LiquidityBuffer(Out):
    participant: str
    kind: str
    collateral_usd: float
    credit_limit_usd: float
    limit_usd: float
    projected_net_debit_usd: float = Field(
        description="Over the open batches of all pools, at current marks."
    )
    headroom_usd: float
    utilisation: float | None
    by_pool_usd: dict[str, float]


class LiquidityPage(Out):
    as_of_ms: int
    items: list[LiquidityBuffer]
    next_cursor: str | None


# ---------------------------------------------------------------------- stats (the dashboard)
class Percentiles(Out):
    p50: float | None
    p99: float | None
    n: int


class StateCounts(Out):
    received: int
    batched: int
    submitted: int
    cleared: int
    anchored: int
    final: int
    rejected: int
    unwound: int


class BatchCounts(Out):
    open: int
    cleared: int
    anchored: int
    final: int
    unwound: int


class LaneOverview(Out):
    lane: Literal["L1", "L2"]
    pool: str | None
    trades: StateCounts
    batches: BatchCounts | None
    cleared_latency_ms: Percentiles | None
    finality_latency_ms: Percentiles
    netting_efficiency: float | None
    gross_usd: float
    net_usd: float
    liquidity_saved_usd: float


class AlertOut(Out):
    id: str
    severity: Literal["info", "warning", "critical"]
    message: str
    at_ms: int
    at: str | None


class TotalsOverview(Out):
    trades: StateCounts
    duplicates: int
    netting_efficiency: float | None
    gross_usd: float
    net_usd: float
    liquidity_saved_usd: float


class ClockOut(Out):
    mode: str
    speed: float
    now_ms: int
    now: str | None
    # An accelerated clock is paced to the engine (never more than lead_ms ahead of it); these
    # say whether it is held now and how much engine time a busy machine made it skip.
    paced: bool | None = None
    behind: bool | None = None
    slipped_ms: int | None = None
    held_episodes: int | None = None
    lead_ms: int | None = None


class StatsOverview(Out):
    as_of_ms: int
    as_of: str | None
    applied_seq: int
    clock: ClockOut
    block_height: int
    anchor_backlog: int
    lanes: list[LaneOverview]
    totals: TotalsOverview
    rejects_by_code: dict[str, int]
    open_alerts: list[AlertOut]
    queues: dict[str, int]


class LatencyBucket(Out):
    start_ms: int
    start: str | None
    counts: list[int]
    p50: float | None
    p99: float | None
    n: int


class LatencySeries(Out):
    lane: Literal["L1", "L2"]
    pool: str | None
    hop: str
    total: Percentiles
    buckets: list[LatencyBucket]


class QueueBucket(Out):
    start_ms: int
    start: str | None
    max: dict[str, int]


class QueuesOut(Out):
    current: dict[str, int]
    buckets: list[QueueBucket]


class StatsLatency(Out):
    as_of_ms: int
    since_ms: int
    bucket_ms: int
    edges_ms: list[float] = Field(
        description="Upper bounds of the histogram buckets; counts has one more (+Inf)."
    )
    hops: list[str]
    series: list[LatencySeries]
    queues: QueuesOut


class SavingsBucket(Out):
    start_ms: int
    start: str | None
    trades_l2: int
    trades_l1: int
    gross_usd: float
    net_usd: float
    liquidity_saved_usd: float
    cumulative_liquidity_saved_usd: float
    netting_efficiency: float | None
    l2_cleared_p50_ms: float | None
    l2_final_p50_ms: float | None
    l1_final_p50_ms: float | None
    latency_saved_ms: float | None


class PoolSavings(Out):
    pool: str
    gross_usd: float
    net_usd: float
    liquidity_saved_usd: float
    netting_efficiency: float | None


class SavingsTotals(Out):
    gross_usd: float
    net_usd: float
    liquidity_saved_usd: float
    netting_efficiency: float | None
    l2_cleared_p50_ms: float | None
    l2_final_p50_ms: float | None
    l1_final_p50_ms: float | None
    latency_saved_ms: float | None = Field(
        description="L1 gross p50 time to final minus L2 p50 time to cleared."
    )


class StatsSavings(Out):
    as_of_ms: int
    since_ms: int
    bucket_ms: int
    totals: SavingsTotals
    pools: list[PoolSavings]
    buckets: list[SavingsBucket]


# ---------------------------------------------------------------------- webhooks, keys, misc
class WebhookOut(Out):
    id: str
    url: str
    events: list[str]
    participant: str | None
    pool: str | None
    description: str
    active: bool
    created_at_wall: str | None = Field(description="When it was registered (wall clock).")
    created_at: str | None = Field(description="The same as created_at_wall (its older name).")
    secret: str | None = Field(
        default=None, description="Only in the responses that create the endpoint or rotate its secret."
    )
    previous_secret_expires_at_wall: str | None = Field(
        default=None, description="After a rotation: until when (wall clock) the old secret also signs."
    )


class WebhookList(Out):
    items: list[WebhookOut]


class DeliveryOut(Out):
    id: int
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    engine_time: str | None = Field(description="The event's time on the engine clock (the body's).")
    created_at_wall: str | None
    next_attempt_at_wall: str | None
    delivered_at_wall: str | None
    last_status: int | None
    last_error: str | None


class DeliveryPage(Out):
    items: list[DeliveryOut]
    next_cursor: str | None


class Me(Out):
    key_id: str
    role: str
    participant: str | None


class Health(Out):
    status: Literal["ok", "failed", "stopped"]
    applied_seq: int
    engine_time_ms: int
    clock: str
    base_layer: dict[str, Any] | None = Field(
        default=None,
        description="A real base layer's health (state ok|unreachable, failures, last error, head).",
    )


class ProblemOut(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: int = Field(
        description="Stable code: 1xx-5xx from the core (model/codes.py), 6xx from the service."
    )
    error: str
    field: str | None = None
    reason: str | None = None
    errors: list[dict[str, object]] | None = None
    request_id: str | None = Field(default=None, description="The response's X-Request-Id.")
