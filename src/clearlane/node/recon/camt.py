"""ISO 20022 camt.053 (statements) and camt.054 (debit/credit notifications), streamed with lxml.

``lxml.etree.iterparse`` walks the file once and each ``Ntry`` is turned into a record and
dropped from the tree as soon as it ends, so a statement of a million entries never exists as a
DOM. Tags are matched in any namespace (``{*}``): the same reader serves ``.001.02`` to
``.001.13``, which differ in the elements read here only by ``Sts`` becoming ``Sts/Cd``.
Entities and network access are off: a statement is untrusted input.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from clearlane.core.errors import InputError
from clearlane.core.recon.amounts import currency_scale, to_minor
from clearlane.core.recon.records import Balance, EntryDetail, References, Statement, StatementEntry


class CamtError(InputError, ValueError, code="RECON_CAMT_INVALID"):
    """A camt document that cannot be read (not XML, or a required element is missing)."""


_STATEMENT_TAGS = ("Stmt", "Ntfctn", "Rpt")


@cache
def _path(path: str) -> str:
    return "/".join("{*}" + part for part in path.split("/"))


def _text(elem: Any, path: str) -> str | None:
    found = elem.find(_path(path))
    if found is None or found.text is None:
        return None
    text: str = found.text.strip()
    return text or None


def _required(elem: Any, path: str, where: str) -> str:
    value = _text(elem, path)
    if value is None:
        raise CamtError(f"{where}/{path}: missing")
    return value


def _date(elem: Any, path: str) -> str | None:
    return _text(elem, path + "/Dt") or _text(elem, path + "/DtTm")


def _signed(elem: Any, where: str, scale: int) -> int:
    amount = to_minor(_required(elem, "Amt", where), scale, where + "/Amt")
    indicator = _required(elem, "CdtDbtInd", where)
    if indicator not in ("CRDT", "DBIT"):
        raise CamtError(f"{where}/CdtDbtInd: {indicator!r} is neither CRDT nor DBIT")
    return amount if indicator == "CRDT" else -amount


def _currency(elem: Any, where: str) -> str:
    amt = elem.find(_path("Amt"))
    if amt is None or not amt.get("Ccy"):
        raise CamtError(f"{where}/Amt/@Ccy: missing")
    return str(amt.get("Ccy"))


def _refs(tx: Any) -> References:
    remittance = _text(tx, "RmtInf/Ustrd") or _text(tx, "RmtInf/Strd/CdtrRefInf/Ref")
    return References(
        end_to_end_id=_text(tx, "Refs/EndToEndId"),
        account_servicer_ref=_text(tx, "Refs/AcctSvcrRef"),
        instruction_id=_text(tx, "Refs/InstrId"),
        remittance=remittance or _text(tx, "AddtlTxInf"),
    )


def _detail(tx: Any, scale: int, where: str) -> EntryDetail:
    amount_text = _text(tx, "AmtDtls/TxAmt/Amt") or _text(tx, "Amt")
    amount = None if amount_text is None else to_minor(amount_text, scale, where + "/TxDtls/Amt")
    return EntryDetail(amount, _refs(tx))


def _bank_code(ntry: Any) -> str | None:
    domain = _text(ntry, "BkTxCd/Domn/Cd")
    if domain is not None:
        family = _text(ntry, "BkTxCd/Domn/Fmly/Cd") or ""
        sub = _text(ntry, "BkTxCd/Domn/Fmly/SubFmlyCd") or ""
        return "/".join((domain, family, sub))
    return _text(ntry, "BkTxCd/Prtry/Cd")


def parse_entry(ntry: Any, index: int, where: str) -> StatementEntry:
    """One ``Ntry``: signed amount, status, dates, references and debulked details."""
    where = f"{where}/Ntry[{index}]"
    currency = _currency(ntry, where)
    scale = currency_scale(currency)
    details = tuple(_detail(tx, scale, where) for tx in ntry.iterfind(_path("NtryDtls/TxDtls")))
    lifted = details[0].refs if len(details) == 1 else References()
    refs = References(
        end_to_end_id=lifted.end_to_end_id,
        account_servicer_ref=_text(ntry, "AcctSvcrRef") or lifted.account_servicer_ref,
        entry_ref=_text(ntry, "NtryRef"),
        instruction_id=lifted.instruction_id,
        remittance=lifted.remittance or _text(ntry, "AddtlNtryInf"),
    )
    return StatementEntry(
        index=index,
        amount_minor=_signed(ntry, where, scale),
        currency=currency,
        status=_text(ntry, "Sts/Cd") or _text(ntry, "Sts") or "BOOK",
        booking_date=_date(ntry, "BookgDt"),
        value_date=_date(ntry, "ValDt"),
        reversal=(_text(ntry, "RvslInd") or "false").lower() == "true",
        bank_tx_code=_bank_code(ntry),
        refs=refs,
        details=details,
    )


def _balance(bal: Any, scale: int, where: str) -> Balance:
    code = _text(bal, "Tp/CdOrPrtry/Cd") or _text(bal, "Tp/CdOrPrtry/Prtry") or "?"
    return Balance(code, _signed(bal, f"{where}/Bal[{code}]", scale), _date(bal, "Dt"))


def _statement(stmt: Any, fmt: str, message_id: str | None, entries: list[StatementEntry]) -> Statement:
    statement_id = _required(stmt, "Id", stmt.tag.split("}")[-1])
    where = f"{stmt.tag.split('}')[-1]}[{statement_id}]"
    account = _text(stmt, "Acct/Id/IBAN") or _text(stmt, "Acct/Id/Othr/Id")
    if account is None:
        raise CamtError(f"{where}/Acct/Id: missing")
    bals = list(stmt.iterfind(_path("Bal")))
    currency = _text(stmt, "Acct/Ccy") or (
        _currency(bals[0], where) if bals else entries[0].currency if entries else None
    )
    if currency is None:
        raise CamtError(f"{where}/Acct/Ccy: missing and no balance or entry names a currency")
    scale = currency_scale(currency)
    return Statement(
        format=fmt,
        message_id=message_id,
        statement_id=statement_id,
        account=account,
        currency=currency,
        scale=scale,
        sequence=_text(stmt, "ElctrncSeqNb") or _text(stmt, "LglSeqNb"),
        balances=tuple(_balance(b, scale, where) for b in bals),
        entries=tuple(entries),
    )


def _format_of(root_tag: str) -> str:
    namespace = root_tag[1:].split("}")[0] if root_tag.startswith("{") else ""
    for fmt in ("camt.053", "camt.054", "camt.052"):
        if fmt in namespace:
            return fmt
    raise CamtError(f"Document: namespace {namespace!r} is not camt.052/053/054")


def iter_statements(path: Path) -> Iterator[Statement]:
    """Every statement or notification of a camt file, in document order, streaming."""
    fmt: str | None = None
    message_id: str | None = None
    entries: list[StatementEntry] = []
    tags = tuple("{*}" + t for t in ("GrpHdr", "Ntry", *_STATEMENT_TAGS))
    context = etree.iterparse(
        str(path), events=("start", "end"), tag=(*tags, "{*}Document"),
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True,
    )  # fmt: skip
    try:
        for event, elem in context:
            tag = str(elem.tag)
            name = tag.split("}")[-1]
            if event == "start":
                if name == "Document":
                    fmt = _format_of(tag)
                continue
            if name == "GrpHdr":
                message_id = _text(elem, "MsgId")
            elif name == "Ntry":
                entries.append(parse_entry(elem, len(entries), "Stmt"))
                parent = elem.getparent()
                if parent is not None:  # drop it: memory stays flat over a huge statement
                    parent.remove(elem)
            elif name in _STATEMENT_TAGS and fmt is not None:
                yield _statement(elem, fmt, message_id, entries)
                entries = []
                elem.clear()
    except etree.XMLSyntaxError as error:
        raise CamtError(f"{path.name}: not well-formed XML ({error})") from None
    if fmt is None:
        raise CamtError(f"{path.name}: no ISO 20022 Document element")


__all__ = ["CamtError", "iter_statements", "parse_entry"]
