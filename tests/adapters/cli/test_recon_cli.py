"""`clearlane recon` end to end on a cleared generated day: the venue's batch reports (with
injected breaks) and a camt.053 of the day's USD net settlements (with a dropped, a changed, a
stray and a split line) are imported once, matched, and every break becomes one case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from clearlane.adapters.sql.recon import SqlReconStore
from clearlane.adapters.sql.store import Store
from clearlane.core.recon.batchreport import render_json
from clearlane.sim.generator import exchange_batch_reports, generate_day

node = CliRunner()
DAY = "2026-11-20"


def _invoke(*args: str) -> Any:
    result = node.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _camt053(lines: list[tuple[str, int]], opening: int) -> str:
    """A minimal camt.053.001.02 of the house's USD account (amounts in cents, credit > 0)."""
    closing = opening + sum(a for _, a in lines)

    def bal(code: str, amount: int) -> str:
        ind = "CRDT" if amount >= 0 else "DBIT"
        return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy='USD'>{abs(amount) / 100:.2f}</Amt>"
                f"<CdtDbtInd>{ind}</CdtDbtInd><Dt><Dt>{DAY}</Dt></Dt></Bal>")  # fmt: skip

    entries = "".join(
        f"<Ntry><Amt Ccy='USD'>{abs(a) / 100:.2f}</Amt><CdtDbtInd>{'CRDT' if a >= 0 else 'DBIT'}</CdtDbtInd>"
        f"<Sts>BOOK</Sts><BookgDt><Dt>{DAY}</Dt></BookgDt><ValDt><Dt>{DAY}</Dt></ValDt><AcctSvcrRef>S{i}</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{ref}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"
        for i, (ref, a) in enumerate(lines)
    )
    return (
        "<?xml version='1.0' encoding='UTF-8'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'>"
        "<BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId></GrpHdr><Stmt><Id>ST-1</Id><ElctrncSeqNb>1</ElctrncSeqNb>"
        "<Acct><Id><IBAN>CH0000000000000000001</IBAN></Id><Ccy>USD</Ccy></Acct>"
        f"{bal('OPBD', opening)}{bal('CLBD', closing)}{entries}</Stmt></BkToCstmrStmt></Document>"
    )


@pytest.fixture(scope="module")
def cleared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    tmp = tmp_path_factory.mktemp("recon")
    day = generate_day(trades=1500, participants=8, assets=3, seed=11, day=DAY)
    paths = day.write(tmp)
    db = tmp / "day.db"
    _invoke("clear", str(paths.deposits), "--db", str(db), "--config", str(paths.config))
    _invoke("clear", str(paths.trades), "--db", str(db))
    return db, day


def _statement_lines(db: Path) -> list[tuple[str, int]]:
    store = SqlReconStore(Store.open(db, create=False))
    try:
        nets = [r for r in store.internal_records(None) if r.kind == "net_instruction" and r.asset == "USD"]
    finally:
        store.store.close()
    nets.sort(key=lambda r: r.record_id)
    lines = [(r.reference, r.amount_minor) for r in nets]
    ref, amount = lines[3]
    split = [(ref, amount // 2), (ref, amount - amount // 2)]  # paid in two parts: matched 1:N
    changed = (lines[5][0], lines[5][1] + 7)  # 7 cents off: AMOUNT_MISMATCH
    return [
        *lines[:1],
        *lines[2:3],
        *split,
        lines[4],
        changed,
        *lines[6:],
        ("STRAY-1", 12_345),
    ]  # line 1 dropped


def test_recon_end_to_end(cleared: tuple[Path, Any], tmp_path: Path) -> None:
    db, day = cleared
    scales = {a.code: a.scale for a in day.config.assets}
    reports, injected = exchange_batch_reports(
        day, seed=2, breaks={"missing_trade": 2, "amount_mismatch": 1, "late_batch": 1}
    )
    report_file = tmp_path / "batches.json"
    report_file.write_text(render_json(reports, scales))
    camt = tmp_path / "stmt.xml"
    camt.write_text(_camt053(_statement_lines(db), 1_000_000))

    imported = json.loads(_invoke("recon", "import", str(camt), "--db", str(db), "--json").output)
    assert imported["format"] == "camt.053" and imported["imported"][0]["balance_gap_minor"] == 0
    again = json.loads(_invoke("recon", "import", str(camt), "--db", str(db), "--json").output)
    assert again["imported"] == [] and len(again["duplicates"]) == 1
    _invoke("recon", "import", str(report_file), "--db", str(db))

    summary = json.loads(_invoke("recon", "run", "--db", str(db), "--day", DAY, "--json").output)
    assert summary["status"] == "completed"
    assert summary["counts"]["external.unmatched"] == 1 and summary["counts"]["internal.unmatched"] == 1
    assert summary["counts"]["external.partially_matched"] == 1
    cases = json.loads(_invoke("recon", "exceptions", "--db", str(db), "--json").output)
    reasons = sorted(c["reason"] for c in cases)
    assert reasons == sorted(
        ["AMOUNT_MISMATCH", "UNMATCHED_EXTERNAL", "UNMATCHED_INTERNAL", "BATCH_MISSING_TRADE", "BATCH_MISSING_TRADE",
         "BATCH_AMOUNT_MISMATCH", "BATCH_LATE"]
    )  # fmt: skip
    assert len(injected) == 4 and all(c["state"] == "open" and c["ageing"] == "0-1d" for c in cases)

    target = next(c for c in cases if c["reason"] == "UNMATCHED_EXTERNAL")["case_id"]
    refused = node.invoke(app, ["recon", "resolve", target, "--note", " ", "--db", str(db)])
    assert refused.exit_code == 2 and "note" in refused.output
    _invoke("recon", "assign", target, "--owner", "ops-anna", "--db", str(db))
    _invoke(
        "recon", "resolve", target, "--note", "stray credit returned to sender", "--accept", "--db", str(db)
    )
    second = json.loads(_invoke("recon", "run", "--db", str(db), "--day", DAY, "--json").output)
    assert second["outcomes_sha256"] == summary["outcomes_sha256"]  # same inputs, same outcomes
    assert second["cases"] == {"opened": 0, "recurred": 6, "reopened": 0, "auto_resolved": 0, "flooded": {}}
    trail = json.loads(_invoke("recon", "case", target, "--db", str(db), "--json").output)
    assert trail["chain_ok"] and [e["action"] for e in trail["events"]] == ["open", "assign", "accept"]


def test_participant_close_and_journal_sources(cleared: tuple[Path, Any], tmp_path: Path) -> None:
    """Each participant's statement closes at the balances the ledger holds (opening + credits
    - debits = closing = ledger_accounts.posted), in decimals; the journal gives the collateral
    deposits as internal records."""
    db, day = cleared
    statements = json.loads(_invoke("close", "--db", str(db), "--participant", "all", "--json").output)
    assert statements and all(s["day"] == DAY for s in statements)
    store = SqlReconStore(Store.open(db, create=False))
    try:
        with store.engine.connect() as conn:
            held = {(o, a, p): v for o, a, p, v in conn.exec_driver_sql(
                "SELECT owner, asset, purpose, posted_minor FROM ledger_accounts WHERE lane = ''")}  # fmt: skip
        deposits = store.internal_records(None, ["collateral_movement"])
        scales = store.asset_scales()
    finally:
        store.store.close()
    closing = {
        (s["participant"], r["asset"], r["purpose"]): r["closing"] for s in statements for r in s["accounts"]
    }
    assert closing.keys() == {k for k, v in held.items() if v} | {k for k in closing if held.get(k) == 0}
    for (owner, asset, purpose), value in held.items():
        text = closing.get((owner, asset, purpose), "0")
        assert int(text.replace(".", "").replace("-", "")) * (-1 if text.startswith("-") else 1) == value
        assert "." in text or scales[asset] == 0 or (owner, asset, purpose) not in closing
    assert len(deposits) == len(day.deposits) and all(r.amount_minor > 0 for r in deposits)
    out = tmp_path / "close.csv"
    who = statements[0]["participant"]
    _invoke(
        "close", "--db", str(db), "--participant", who, "--day", DAY, "--cutoff", "17:00", "--csv", str(out)
    )
    header, *rows = out.read_text().splitlines()
    assert header.startswith("participant,day,start,end,asset") and rows and rows[0].startswith(who)
    assert f"{who},{DAY},2026-11-19T17:00:00.000Z,{DAY}T17:00:00.000Z" in rows[0]
    bad = node.invoke(app, ["close", "--db", str(db), "--participant", who, "--day", "20-11-2026"])
    assert bad.exit_code == 2 and "day" in bad.output


def test_case_events_go_to_nats(tmp_path: Path, shared: Path) -> None:
    """`recon run --nats` and the case actions publish their exception.* events to JetStream,
    one message per case change, the event id as the message id."""
    import asyncio

    import nats

    from clearlane.adapters.nats.messages import EVENTS_STREAM
    from clearlane.testing.devserver import NatsServer

    async def subjects(url: str) -> list[str]:
        nc = await nats.connect(url)
        try:
            sub = await nc.jetstream().pull_subscribe("clearlane.events.cases.>", stream=EVENTS_STREAM)
            return [m.subject for m in await sub.fetch(100, timeout=2)]
        finally:
            await nc.close()

    db = str(tmp_path / "n.db")
    server = NatsServer().start()
    try:
        _invoke("recon", "import", str(shared / "realdata/mt940/cmxl_mt940.sta"), "--db", db)
        _invoke("recon", "run", "--db", db, "--nats", server.url)
        (case,) = json.loads(_invoke("recon", "exceptions", "--db", db, "--json").output)[:1]
        _invoke("recon", "assign", case["case_id"], "--owner", "ops-anna", "--db", db, "--nats", server.url)
        seen = asyncio.run(subjects(server.url))
    finally:
        server.stop()
    assert seen == ["clearlane.events.cases.exception.opened"] * 16 + [
        "clearlane.events.cases.exception.assigned"
    ]


def test_base_layer_agrees_then_breaks(cleared: tuple[Path, Any], tmp_path: Path) -> None:
    """A cleared day's anchors and L1 settlements all agree with the logged chain; a tampered
    root, a forgotten anchor and a lost L1 inclusion each become a 5xx break."""
    import shutil

    import sqlalchemy as sa

    db = tmp_path / "copy.db"
    shutil.copy(cleared[0], db)
    store = SqlReconStore(Store.open(db, create=False))
    try:
        records = store.base_layer()
        anchored = sorted(a.batch_id for a in records.anchors if a.state in ("anchored", "final"))
        included = [c for c in records.l1 if c.included_height >= 0]
        assert len(anchored) >= 2 and included and records.breaks(None) == []
        with store.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE batches SET root = :r WHERE batch_id = :b"),
                {"r": bytes(32), "b": anchored[0]},
            )
            conn.execute(
                sa.text("UPDATE batches SET anchor_tx = 'anchor:x:9' WHERE batch_id = :b"), {"b": anchored[1]}
            )
        found = sorted((b.code.name, b.subject) for b in store.base_layer().breaks(None))
    finally:
        store.store.close()
    # the chain's anchor of anchored[1] names a batch clearlane knows: not "unknown"
    assert found == sorted([("ANCHOR_ROOT_MISMATCH", anchored[0]), ("ANCHOR_MISSING", anchored[1])])


def test_tolerance_bps_is_checked(tmp_path: Path) -> None:
    result = node.invoke(
        app, ["recon", "run", "--db", str(tmp_path / "none.db"), "--tolerance-bps", "USD=10000"]
    )
    assert result.exit_code == 2 and "--tolerance-bps" in result.output
