"""The ``manual-settle`` command (issue 17, docs/MANUAL_SETTLEMENT.md): an operator records that
an L1 obligation was settled off-system, with evidence — logged into a store through the node
as the HTTP route does (``POST /v1/manual-settlements``)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from clearlane.adapters.cli.common import DbOption, console, fail, open_node


def manual_settle(
    flow_id: Annotated[str, typer.Argument(help="The L1 obligation: a trade or payment id.")],
    settlement_id: Annotated[str, typer.Option(help="Idempotency key of this settlement.")],
    operator: Annotated[str, typer.Option(help="Who records it.")],
    evidence_ref: Annotated[str, typer.Option(help="Wire / SWIFT reference or ticket.")],
    evidence: Annotated[
        Path | None, typer.Option(help="The evidence document (its SHA-256 is recorded).")
    ] = None,
    evidence_sha256: Annotated[str | None, typer.Option(help="SHA-256 hex, if no file.")] = None,
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
    db: DbOption = "clearlane.db",
    at_ms: Annotated[int | None, typer.Option(help="Engine time (default: now).")] = None,
) -> None:
    """Record an off-system settlement of an L1 obligation; print the receipt (exit 1 if refused)."""
    from clearlane.node import manual as manual_logic

    if evidence is not None:
        evidence_sha256 = hashlib.sha256(evidence.read_bytes()).hexdigest()
    if evidence_sha256 is None:
        raise fail("give --evidence FILE or --evidence-sha256 HEX")
    body = {
        "settlement_id": settlement_id,
        "flow_id": flow_id,
        "operator": operator,
        "evidence_ref": evidence_ref,
        "evidence_sha256": evidence_sha256,
        **({"note": note} if note else {}),
    }
    record, err = manual_logic.parse(body)
    if record is None or err is not None:
        console.print_json(json.dumps({"refused": err.to_dict() if err else None}))
        raise typer.Exit(2)
    node = open_node(db, None, create=False)
    try:
        now = at_ms if at_ms is not None else int(time.time() * 1000)
        receipt, reject = manual_logic.submit(node, record, max(now, node.queries.engine_time_ms()))
        node.checkpoint()
    finally:
        node.close()
    console.print_json(json.dumps(receipt))
    if reject is not None:
        raise typer.Exit(1)
