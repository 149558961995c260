"""Currency scales (ISO 4217 minor units) and the strict conversion of statement amounts.

Bank amounts arrive as decimal text (camt ``Amt``) or ``Decimal`` (MT940 via ``mt-940``); both
become integers in the currency's minor units, refusing any amount that would lose a digit.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from clearlane.core.errors import InputError

# ISO 4217 exponents that are not 2. Crypto assets the engine settles carry their scale in the
# config; the matcher compares integers, so it never needs more than the currency code here.
_SCALE_EXCEPTIONS = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3,
    "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip


class AmountError(InputError, ValueError, code="RECON_AMOUNT_INVALID"):
    """A statement amount that is not a decimal or has more digits than its currency allows."""


def currency_scale(currency: str, overrides: dict[str, int] | None = None) -> int:
    """Minor-unit exponent of ``currency`` (configured assets first, then ISO 4217, else 2)."""
    if overrides and currency in overrides:
        return overrides[currency]
    return _SCALE_EXCEPTIONS.get(currency, 2)


def to_minor(value: str | Decimal, scale: int, field: str) -> int:
    """``value`` (non-negative decimal text or Decimal) in minor units; exact or an error."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(value.strip())
    except InvalidOperation:
        raise AmountError(f"{field}: {value!r} is not a decimal amount") from None
    if not number.is_finite():
        raise AmountError(f"{field}: {value!r} is not a finite amount")
    scaled = number.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{field}: {value!r} has more than {scale} decimals")
    return int(scaled)
