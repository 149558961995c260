"""The ledger accounts an escrow posts to, created on first use (so a day without escrow has
exactly the accounts it had before: its state root does not move).

==================  =========================================  ==============================
account             key                                        meaning
==================  =========================================  ==============================
buyer source        (buyer, asset, COLLATERAL)                 the buyer's deposited funds;
                                                               floor 0: funding never overdraws
escrow              (HOUSE, asset, ESCROW, "escrow")           money held, all escrows of asset
payable             (payee, asset, PAYABLE)                    released, not yet settled
settled             (payee, asset, AVAILABLE)                  released and settled (final)
reserve             (seller, asset, RESERVE)                   chargeback reserve, may go < 0
platform revenue    (HOUSE, asset, FEES, "escrow")             the platform's escrow fees
platform loss       (HOUSE, asset, LOSS, "escrow")             chargebacks nobody covered
external            (HOUSE, asset, EXTERNAL, "house")          the outside world (the engine's)
transit             (HOUSE, asset, FEES, "house")              payouts settling through the
                                                               lanes (the house's available
                                                               account, which the L2 hold and
                                                               the L1 settlement debit)
==================  =========================================  ==============================
"""

from __future__ import annotations

from clearlane.core.ledger import HOUSE_OWNER, AccountKey, Ledger, Purpose

ESCROW_LANE = "escrow"
EXTERNAL_LANE = "house"
"""The lane of the engine's external accounts (``clearlane.core.engine.core.HOUSE_LANE``)."""


_ESCROW_PURPOSES = frozenset({Purpose.ESCROW, Purpose.PAYABLE, Purpose.RESERVE, Purpose.LOSS})


def made_by_escrow(key: AccountKey, floor_minor: int | None, participants: frozenset[str]) -> bool:
    """Whether an account beyond those a configuration creates up front is one the escrow plan
    makes on first use (the store walk in ``evidence/check.py`` accepts exactly these): an
    escrow purpose, the escrow fee account, or the available account of a payee that is no
    configured participant — never with a floor."""
    if floor_minor is not None:
        return False
    if key.purpose in _ESCROW_PURPOSES:
        return True
    if key.purpose is Purpose.FEES:
        return key.lane == ESCROW_LANE
    return key.purpose is Purpose.AVAILABLE and key.owner not in participants


class EscrowAccounts:
    """Account indices of the escrow plan in one ledger (see the module table)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def _get(self, key: AccountKey) -> int:
        return self.ledger.account(key)

    def source(self, party: str, asset: str) -> int:
        key = AccountKey(party, asset, Purpose.COLLATERAL)
        found = self.ledger.find_account(key)
        if found is not None:
            return found
        index = self.ledger.account(key)
        # The engine gives every collateral account floor 0; a source made here gets the same,
        # so a hold that would overdraw is refused by the ledger itself (pessimistic, E2).
        self.ledger.set_floor(index, 0)
        return index

    def funds_of(self, party: str, asset: str, amount: int) -> int | None:
        """The party's source account if its available balance covers ``amount`` above its
        floor, else None (the ledger checks the floor again when the hold is posted)."""
        found = self.ledger.find_account(AccountKey(party, asset, Purpose.COLLATERAL))
        if found is None:
            return None
        floor = self.ledger.floor(found)
        left = self.ledger.balance(found).available_minor - amount
        return found if floor is None or left >= floor else None

    def escrow(self, asset: str) -> int:
        return self._get(AccountKey(HOUSE_OWNER, asset, Purpose.ESCROW, ESCROW_LANE))

    def payable(self, party: str, asset: str) -> int:
        return self._get(AccountKey(party, asset, Purpose.PAYABLE))

    def settled(self, party: str, asset: str) -> int:
        return self._get(AccountKey(party, asset, Purpose.AVAILABLE))

    def reserve(self, party: str, asset: str) -> int:
        return self._get(AccountKey(party, asset, Purpose.RESERVE))

    def revenue(self, asset: str) -> int:
        return self._get(AccountKey(HOUSE_OWNER, asset, Purpose.FEES, ESCROW_LANE))

    def loss(self, asset: str) -> int:
        return self._get(AccountKey(HOUSE_OWNER, asset, Purpose.LOSS, ESCROW_LANE))

    def external(self, asset: str) -> int:
        return self._get(AccountKey(HOUSE_OWNER, asset, Purpose.EXTERNAL, EXTERNAL_LANE))

    def transit(self, asset: str) -> int:
        return self._get(AccountKey(HOUSE_OWNER, asset, Purpose.FEES, EXTERNAL_LANE))

    def posted(self, index: int) -> int:
        return self.ledger.balance(index).posted_minor

    def escrow_balance(self, asset: str) -> int:
        """What the ledger holds in escrow for ``asset`` (0 if no escrow of it was funded)."""
        found = self.ledger.find_account(AccountKey(HOUSE_OWNER, asset, Purpose.ESCROW, ESCROW_LANE))
        return 0 if found is None else self.posted(found)
