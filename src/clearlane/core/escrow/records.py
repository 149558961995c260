"""An escrow's record (mutable, owned by the book), its frozen view, and the policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from clearlane.core.model.states import ConditionKind, EscrowRole, EscrowState, LapseAction


@dataclass(frozen=True, slots=True)
class EscrowPolicy:
    """The platform's escrow policy (one per engine: the config's ``[escrow]`` section).

    ``approval_over_minor`` (per asset): releases that would take an escrow's released total
    above this need the platform's prior ``approve`` — the custody / compliance check before
    an instant high-value release; an asset not named needs none. ``reserve_overdraft_minor``
    (per asset): how far below zero a seller's reserve may be taken by a chargeback before the
    platform bears the loss. ``delegate_accept``: the platform may satisfy the buyer's
    conditions."""

    approval_over_minor: Mapping[str, int] = field(default_factory=dict)
    reserve_overdraft_minor: Mapping[str, int] = field(default_factory=dict)
    delegate_accept: bool = False


@dataclass(slots=True)
class Condition:
    condition_id: str
    kind: ConditionKind
    role: EscrowRole
    satisfied_by: str = ""
    satisfied_at_ms: int = -1

    @property
    def met(self) -> bool:
        return self.satisfied_at_ms >= 0


@dataclass(slots=True)
class Escrow:
    """One escrow as the book keeps it. Amounts are minor units of ``asset``."""

    escrow_id: str
    asset: str
    amount: int
    parties: dict[EscrowRole, str]
    payees: tuple[tuple[str, int], ...]
    fee_bps: int
    reserve_bps: int
    conditions: dict[str, Condition]
    inspection_period_ms: int
    lapse_action: LapseAction
    fund_timeout_ms: int
    auto_release: bool
    order_ref: str | None
    created_at_ms: int
    state: EscrowState = EscrowState.DRAFT
    version: int = 0
    agreed: set[EscrowRole] = field(default_factory=set)
    funded: int = 0
    released: int = 0
    refunded: int = 0
    fees: int = 0
    reserved: int = 0
    to_payees: int = 0
    settled: int = 0
    in_lanes: int = 0
    """Settled through the lanes (a payment flow from the house), not final yet."""
    final_paid: int = 0
    """Settled and final (directly, or when the payout's lane said so)."""
    unsettled: dict[str, int] = field(default_factory=dict)
    approved: int = 0
    charged_back: int = 0
    clawed_payable: int = 0
    """What chargebacks took back from this escrow's unsettled payable (net of reinstated)."""
    chargeback_open: tuple[int, int, int] | None = None
    """(from payable, from reserve, platform loss) of the open chargeback."""
    fund_deadline_ms: int = -1
    inspection_deadline_ms: int = -1
    disputed_from: EscrowState | None = None
    dispute_reason: str = ""
    reserve_hold_ms: int = 0
    reserve_due: list[tuple[int, int]] = field(default_factory=list)
    """(release deadline, amount) of each reserve this escrow's releases took, still held."""

    @property
    def remaining(self) -> int:
        return self.funded - self.released - self.refunded

    @property
    def seller(self) -> str:
        return self.parties[EscrowRole.SELLER]

    @property
    def buyer(self) -> str:
        return self.parties[EscrowRole.BUYER]

    def role_of(self, actor: str) -> EscrowRole | None:
        for role, party in self.parties.items():
            if party == actor:
                return role
        return None


@dataclass(frozen=True, slots=True)
class WhereIsMoney:
    """Where an escrow's money is now, in minor units: ``buyer`` (not yet funded, or refunded),
    ``escrow`` (held), ``clearing`` (released to the payees' payable accounts and not settled,
    or settling through a lane and not final), ``final`` (paid to payees and final, or taken
    as fee / reserve). The four sum to the agreed
    amount less what a chargeback took back from the unsettled payable; ``charged_back`` is
    the total returned to the buyer's bank (from payable, reserve or platform loss)."""

    buyer: int
    escrow: int
    clearing: int
    final: int
    charged_back: int


@dataclass(frozen=True, slots=True)
class ConditionView:
    condition_id: str
    kind: str
    role: str
    satisfied_by: str
    satisfied_at_ms: int | None


@dataclass(frozen=True, slots=True)
class EscrowView:
    """A snapshot of one escrow, for projections, the API and the CLI."""

    escrow_id: str
    state: EscrowState
    asset: str
    amount_minor: int
    parties: tuple[tuple[str, str], ...]
    """(role, party) in role order."""
    payees: tuple[tuple[str, int], ...]
    fee_bps: int
    reserve_bps: int
    conditions: tuple[ConditionView, ...]
    lapse_action: str
    funded_minor: int
    remaining_minor: int
    released_minor: int
    refunded_minor: int
    fees_minor: int
    reserved_minor: int
    settled_minor: int
    approved_minor: int
    charged_back_minor: int
    fund_deadline_ms: int | None
    inspection_deadline_ms: int | None
    dispute_reason: str
    where: WhereIsMoney
    version: int
    created_at_ms: int
    order_ref: str | None

    def party(self, role: str) -> str | None:
        return dict(self.parties).get(role)


def where_is_money(e: Escrow) -> WhereIsMoney:
    return WhereIsMoney(
        buyer=e.amount - e.funded + e.refunded,
        escrow=e.remaining,
        clearing=sum(e.unsettled.values()) + e.in_lanes,
        final=e.final_paid + e.fees + e.reserved,
        charged_back=e.charged_back,
    )


def view_of(e: Escrow) -> EscrowView:
    where = where_is_money(e)
    return EscrowView(
        escrow_id=e.escrow_id,
        state=e.state,
        asset=e.asset,
        amount_minor=e.amount,
        parties=tuple((role.value, e.parties[role]) for role in EscrowRole if role in e.parties),
        payees=e.payees,
        fee_bps=e.fee_bps,
        reserve_bps=e.reserve_bps,
        conditions=tuple(
            ConditionView(
                c.condition_id,
                c.kind.value,
                c.role.value,
                c.satisfied_by,
                c.satisfied_at_ms if c.met else None,
            )
            for c in e.conditions.values()
        ),
        lapse_action=e.lapse_action.value,
        funded_minor=e.funded,
        remaining_minor=e.remaining,
        released_minor=e.released,
        refunded_minor=e.refunded,
        fees_minor=e.fees,
        reserved_minor=e.reserved,
        settled_minor=e.settled,
        approved_minor=e.approved,
        charged_back_minor=e.charged_back,
        fund_deadline_ms=e.fund_deadline_ms if e.fund_deadline_ms >= 0 else None,
        inspection_deadline_ms=e.inspection_deadline_ms if e.inspection_deadline_ms >= 0 else None,
        dispute_reason=e.dispute_reason,
        where=where,
        version=e.version,
        created_at_ms=e.created_at_ms,
        order_ref=e.order_ref,
    )
