"""The participant portal and the dashboard's client-facing views (issue 17).

The views run in-process (TestClient over the service with its API keys on): a participant key
reads its own account, trades with both finality times, and the live finality figures — never
another participant's; readers see the same through ``?participant=``. One short browser test
opens the portal with a participant key and follows a badge to the finality explainer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from clearlane.node.projections.common import B_FINAL
from tests.service_support import Service, make_service, trade_row, wait_for

# MM-ALPHA's trades: four on Layer-2 with BRK-NORTH, one gross on Layer-1 with CUST-VAULT
# (legacy opt-out); one trade MM-ALPHA is no party to.
OWN_L2 = [f"PA-{i}" for i in range(4)]
OWN_L1 = "PL-0"
FOREIGN = "PX-0"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with make_service(tmp_path_factory.mktemp("portal")) as s:
        rows = [trade_row(i) for i in OWN_L2]
        rows.append(trade_row(OWN_L1, seller="CUST-VAULT"))
        rows.append(trade_row(FOREIGN, buyer="MM-BETA", seller="BRK-NORTH"))
        for row in rows:
            assert s.client.post("/v1/trades", json=row, headers=s.h()).status_code == 201

        def settled() -> bool:
            items = s.client.get("/v1/dashboard/trades", headers=s.h()).json()["items"]
            return len(items) == len(rows) and all(t["state"] == "final" for t in items)

        wait_for(settled, timeout=60)
        wait_for(lambda: s.runtime.rm.batches.counts[:, B_FINAL].sum() >= 1)
        yield s


def _get(s: Service, path: str, who: str = "participant", **params: Any) -> Any:
    r = s.client.get(path, params=params, headers=s.h(who))
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def test_portal_is_the_participants_own(svc: Service) -> None:
    mine = _get(svc, "/v1/dashboard/portal")
    assert mine["id"] == "MM-ALPHA"
    # an operator sees exactly what the client sees, by naming it
    assert (
        _get(svc, "/v1/dashboard/portal", "operator", participant="MM-ALPHA")["positions"]
        == mine["positions"]
    )
    # another participant's account does not exist for this key; a reader must name one
    for params, who, status in (
        ({"participant": "MM-BETA"}, "participant", 404),
        ({"participant": "NOBODY"}, "operator", 404),
        ({}, "operator", 400),
    ):
        assert svc.client.get("/v1/dashboard/portal", params=params, headers=svc.h(who)).status_code == status
    # positions in the asset and in USD at the marks (BTC 65,000, USD 1)
    marks = {"BTC": 65_000 / 10**8, "USD": 1 / 100}
    assert mine["positions"]
    for p in mine["positions"]:
        assert p["final_usd"] == round(p["final_minor"] * marks[p["asset"]], 2)
        assert p["pending_usd"] == round((p["open_minor"] + p["pending_minor"]) * marks[p["asset"]], 2)
    # realized savings: its own Layer-2 trades against the live Layer-1 finality
    s = mine["savings"]
    assert s["l2_trades_cleared"] == len(OWN_L2) and s["l1_trades"] == 1
    assert s["l1_final_basis"] == "measured"
    assert 0 < s["own_cleared_p50_ms"] <= s["own_final_p50_ms"]
    assert s["saved_per_trade_p50_ms"] == max(0.0, round(s["l1_final_p50_ms"] - s["own_cleared_p50_ms"], 1))
    # no service-wide figures for a participant key: no counts in the finality figures
    fin = _get(svc, "/v1/dashboard/finality")
    assert [lane["pool"] for lane in fin["lanes"]] == ["fast", "retail", None]
    assert all("n" not in lane["final"] for lane in fin["lanes"])
    assert all("n" in lane["final"] for lane in _get(svc, "/v1/dashboard/finality", "operator")["lanes"])
    # a proof of another participant's trade does not exist for this key (its own may)
    assert (
        svc.client.get(f"/v1/trades/{FOREIGN}/proof", headers=svc.h("participant"))
        .json()["detail"]
        .endswith("(unknown)")
    )
    assert svc.client.get(f"/v1/trades/{OWN_L2[0]}/proof", headers=svc.h("participant")).status_code in (
        200,
        404,
    )
    meta = _get(svc, "/v1/dashboard/meta")
    assert meta["me"] == {"role": "participant", "participant": "MM-ALPHA"} and "participants" not in meta


def test_trade_list_has_both_finalities_and_filters(svc: Service) -> None:
    items = _get(svc, "/v1/dashboard/trades")["items"]
    assert {t["id"] for t in items} == {*OWN_L2, OWN_L1}  # never the foreign trade
    for t in items:
        if t["lane"] == "L2":  # soft-final, then base-layer final
            assert t["l2_voided_at_ms"] is None
            assert t["received_at_ms"] <= t["l2_cleared_at_ms"] <= t["l1_final_at_ms"]
        else:  # gross: no Layer-2 clearing, its own transaction's finality
            assert t["l2_cleared_at_ms"] is None and t["l1_final_at_ms"] >= t["received_at_ms"]
    # a foreign participant filter is an empty page for a participant key
    assert _get(svc, "/v1/dashboard/trades", participant="MM-BETA")["items"] == []
    assert {t["id"] for t in _get(svc, "/v1/dashboard/trades", "operator", q="PX")["items"]} == {FOREIGN}
    assert {t["id"] for t in _get(svc, "/v1/dashboard/trades", q="PA-")["items"]} == set(OWN_L2)
    assert _get(svc, "/v1/dashboard/trades", q="PX")["items"] == []
    assert _get(svc, "/v1/dashboard/trades", lane="L1")["items"][0]["id"] == OWN_L1
    # the receive-time window
    first = min(t["received_at_ms"] for t in items)
    last = max(t["received_at_ms"] for t in items)
    assert _get(svc, "/v1/dashboard/trades", since_ms=last + 1)["items"] == []
    assert len(_get(svc, "/v1/dashboard/trades", since_ms=first, until_ms=last + 1)["items"]) == len(items)
    bad = svc.client.get("/v1/dashboard/trades", params={"since_ms": 5, "until_ms": 5}, headers=svc.h())
    assert bad.status_code == 400 and bad.json()["field"] == "until_ms"
    # the service's own list is unchanged in shape (its schema forbids extra fields)
    assert _get(svc, "/v1/trades", limit=2)["items"]


def test_open_batch_shows_its_gross_and_net(tmp_path: Path) -> None:
    """An open batch holding trades shows what it holds (gross and net), not $0, and the same
    figures the engine gives it when it closes."""
    with make_service(tmp_path, speed=0.05) as s:  # a 500 ms window lasts 10 s of wall time
        for i in range(3):
            assert s.client.post("/v1/trades", json=trade_row(f"OB-{i}"), headers=s.h()).status_code == 201

        def open_batch() -> list[dict[str, Any]]:
            items = _get(s, "/v1/dashboard/batches", "operator")["items"]
            return [b for b in items if b["state"] == "open" and b["flows"] == 3]

        opened = wait_for(open_batch, timeout=10)[0]
        # per trade: 0.05 BTC ($3,250) + $3,250.01 quote + fees $0.10 (maker) and $0.39 (broker),
        # the pool's 40 % discount applied; net: MM-ALPHA's USD debit and BRK-NORTH's BTC debit
        assert opened["gross_usd"] == round(3 * (3250 + 3250.01 + 0.10 + 0.39), 2)
        assert opened["net_usd"] == round(3 * (3250.01 + 0.10) + 3 * 3250, 2)
        assert _get(s, f"/v1/batches/{opened['batch_id']}", "operator")["gross_usd"] == opened["gross_usd"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        yield b
        b.close()


def test_portal_in_the_browser(svc: Service, browser: Browser) -> None:
    """A participant key opens its portal (not the 403 of the operators' dashboard), sees its
    own trades with both finality times, and a badge leads to the finality explainer."""
    from clearlane.adapters.cli.demo import HttpServer

    http = HttpServer(svc.app)
    http.start()
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, timezone_id="America/New_York", accept_downloads=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        key = svc.keys["participant"]
        page.add_init_script(f"sessionStorage.setItem('clearlane.apiKey', {key!r})")
        page.goto(f"{http.url}/ui/#/overview")  # a service-wide page: the portal instead
        page.wait_for_selector("#portal-savings")
        expect(page.locator("h1")).to_contain_text("MM-ALPHA")
        expect(page.locator("header nav")).to_contain_text("My account")
        expect(page.locator("#portal-savings")).to_contain_text("sooner per trade")
        expect(page.locator("#positions")).to_contain_text("$")
        rows = page.locator("#portal-trades tbody tr")
        expect(rows).to_have_count(len(OWN_L2) + 1)
        expect(page.locator("#portal-trades")).not_to_contain_text(FOREIGN)
        with page.expect_download() as info:  # its statements as CSV: its own rows only
            page.click("#statements-csv")
        lines = Path(info.value.path()).read_text().splitlines()
        assert lines[0].startswith("batch_id,") and len(lines) > 1
        assert all(line.split(",")[3] == "MM-ALPHA" for line in lines[1:])
        page.locator(f"#portal-trades a[href='#/trade/{OWN_L2[0]}']").click()
        badge = page.locator("#badge")
        expect(badge).to_contain_text("soft-final at")
        expect(badge).to_contain_text("base-layer final at")
        assert re.search(r"20\d\d.*\d\d:\d\d:\d\d E[SD]T", badge.inner_text())  # date, time, zone
        page.locator("#badge a.explain").click()
        page.wait_for_selector("#finality-lanes")
        expect(page.locator("#finality-lanes")).to_contain_text("Layer-1 (gross)")
        # the Layer-1 trade: no anchor row, its inclusion is "included", not "anchored"
        page.goto(f"{http.url}/ui/#/trade/{OWN_L1}")
        page.wait_for_selector("#l1-tx")
        expect(page.locator("#view")).not_to_contain_text("Anchor tx")
        expect(page.locator("#timeline")).to_contain_text("included")
        expect(page.locator("#timeline")).not_to_contain_text("anchored")
        # its batch: its own instructions and trades, not the batch's volume
        batch_id = _get(svc, f"/v1/trades/{OWN_L2[0]}")["batch_id"]
        page.goto(f"{http.url}/ui/#/batch/{batch_id}")
        page.wait_for_selector("#instructions tbody tr td")
        expect(page.locator("#kpi-conf")).to_be_visible()
        expect(page.locator("#kpi-gross")).to_have_count(0)
    finally:
        context.close()
        http.stop()
    assert not errors, errors


def test_unwound_trade_shows_its_clearing_voided(tmp_path: Path) -> None:
    """A batch whose anchor never lands is unwound: its trade's clearing is reported voided (no
    cleared time that looks valid) and its finality is the gross Layer-1 transaction's."""
    from tests.service_support import EXAMPLE

    dropped = ", ".join(f'"anchor:fast-00000001:{n}"' for n in range(1, 40))
    config = tmp_path / "unwind.toml"
    text = EXAMPLE.read_text().replace("delay_blocks = 0", f"delay_blocks = 0\ndrop_tx_ids = [{dropped}]")
    config.write_text(text.replace("anchor_deadline_ms = 120000", "anchor_deadline_ms = 20000"))  # sooner
    with make_service(tmp_path, config=config) as s:
        assert s.client.post("/v1/trades", json=trade_row("UW-0"), headers=s.h()).status_code == 201

        def settled_gross() -> Any:
            life = _get(s, "/v1/trades/UW-0")
            return life if life["state"] == "unwound" and life["l1_final_at"] else None

        life = wait_for(settled_gross, timeout=30)
        (row,) = _get(s, "/v1/dashboard/trades", q="UW-0")["items"]
        assert row["state"] == "unwound" and row["l2_cleared_at_ms"] is None
        assert row["l2_voided_at_ms"] is not None and row["l1_final_at"] == life["l1_final_at"]
        assert row["l2_voided_at_ms"] <= row["l1_final_at_ms"]
