"""SWIFT MT940 statements, read with the ``mt-940`` package (wolph/mt940) one message at a time.

``mt940.models.Transactions`` folds every message of a file into one object (the balances of
all but the last statement are lost: wolph/mt940#110), so the file is streamed line by line,
cut at each ``:20:`` (the start of a message; SWIFT block wrappers ``{1:..}{4:`` and the ``-``
trailer are dropped) and each message parsed alone. One tag is relaxed: ASN Bank (and others,
wolph/mt940#117) put the 18-character counter-IBAN in the 16x customer reference of ``:61:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import mt940
import mt940.tags

from clearlane.core.errors import InputError
from clearlane.core.recon.amounts import currency_scale, to_minor
from clearlane.core.recon.records import Balance, References, Statement, StatementEntry


class Mt940Error(InputError, ValueError, code="RECON_MT940_INVALID"):
    """An MT940 message that the parser cannot read, or one without its balances."""


class _LenientStatementLine(mt940.tags.Statement):
    pattern: ClassVar[str] = mt940.tags.Statement.pattern.replace(
        "(?P<customer_reference>((?!//)[^\\n]){0,16})",
        "(?P<customer_reference>((?!//)[^\\n]){0,34})",
    )


_TAGS: dict[int | str, Any] = {61: _LenientStatementLine()}
_MESSAGE_START = re.compile(r"^:20:")
# A statement split over several messages opens and closes the middle pages with intermediate
# balances (:60M:/:62M:); they get their own codes so nobody mistakes them for the day's.
_BALANCE_CODES = (
    (("final_opening_balance", "OPBD"), ("intermediate_opening_balance", "OPIN")),
    (("final_closing_balance", "CLBD"), ("intermediate_closing_balance", "CLIN")),
)


def _messages(path: Path) -> Iterator[tuple[int, str]]:
    """(first line number, text) of every message, without SWIFT blocks or trailers."""
    lines: list[str] = []
    start = 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.rstrip("\r\n")
            if _MESSAGE_START.match(line):
                if lines:
                    yield start, "\n".join(lines)
                lines, start = [], number
            if not lines and not _MESSAGE_START.match(line):
                continue  # before the first :20: (block headers, blank lines)
            if line.startswith("-") and (line == "-" or line.startswith("-}")):
                yield start, "\n".join(lines)
                lines = []
                continue
            lines.append(line)
    if lines:
        yield start, "\n".join(lines)


def _minor(amount: Any, where: str) -> tuple[int, str]:
    currency = str(amount.currency)
    value = amount.amount
    magnitude = to_minor(abs(value), currency_scale(currency), where)
    return (-magnitude if value < 0 else magnitude), currency


def _entry(index: int, tx: Any, where: str) -> StatementEntry:
    data = tx.data
    amount, currency = _minor(data["amount"], f"{where}/:61:[{index}]")
    # SWIFT: RC is the reversal of a credit (money leaves), RD of a debit; mt-940 signs both as
    # their second letter, which breaks the balance of every statement with an RC line.
    status = str(data.get("status", ""))
    amount = -abs(amount) if status in ("D", "RC") else abs(amount)
    entry_date = data.get("entry_date")
    return StatementEntry(
        index=index,
        amount_minor=amount,
        currency=currency,
        status="BOOK",
        booking_date=str(entry_date) if entry_date else None,
        value_date=str(data["date"]) if data.get("date") else None,
        reversal=str(data.get("status", "")).startswith("R"),
        bank_tx_code=data.get("id"),
        refs=References(
            customer_ref=data.get("customer_reference") or None,
            account_servicer_ref=data.get("bank_reference") or None,
            remittance=data.get("transaction_details") or data.get("extra_details") or None,
        ),
    )


def _currency_of(data: Any) -> str:
    bal = data.get("final_opening_balance") or data.get("intermediate_opening_balance")
    return str(bal.amount.currency)


def _statement(text: str, where: str) -> Statement:
    parsed = mt940.models.Transactions(tags=_TAGS)
    try:
        parsed.parse(text)
    except (RuntimeError, ValueError, KeyError) as error:
        raise Mt940Error(f"{where}: {str(error).splitlines()[0][:200]}") from None
    data = parsed.data
    balances = []
    for (final_key, final_code), (middle_key, middle_code) in _BALANCE_CODES:
        key, code = (final_key, final_code) if data.get(final_key) else (middle_key, middle_code)
        bal = data.get(key)
        if bal is None:
            raise Mt940Error(f"{where}: {final_code} balance (:60F:/:60M: or :62F:/:62M:) missing")
        amount, currency = _minor(bal.amount, f"{where}/{code}")
        balances.append(Balance(code, amount, str(bal.date)))
    currency = _currency_of(data)
    sequence = "/".join(str(data[k]) for k in ("statement_number", "sequence_number") if data.get(k))
    return Statement(
        format="mt940",
        message_id=None,
        statement_id=str(data.get("transaction_reference") or ""),
        account=str(data.get("account_identification") or ""),
        currency=currency,
        scale=currency_scale(currency),
        sequence=sequence or None,
        balances=tuple(balances),
        entries=tuple(_entry(i, tx, where) for i, tx in enumerate(parsed.transactions)),
    )


def iter_statements(path: Path) -> Iterator[Statement]:
    """Every MT940 message of ``path`` as a statement, in file order."""
    count = 0
    for line_no, text in _messages(path):
        yield _statement(text, f"{path.name}:{line_no}")
        count += 1
    if count == 0:
        raise Mt940Error(f"{path.name}: no MT940 message (no :20: line)")


__all__ = ["Mt940Error", "iter_statements"]
