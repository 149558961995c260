"""The reconciliation pages in a real browser: runs and breaks, the exception queue with its
ageing buckets and overdue rows, and a case page whose action form assigns the case (operator
key) and shows the new event in the verified trail."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page, expect

from clearlane.adapters.sql.recon import SqlReconStore
from clearlane.core.recon.matching import DAY_MS, MatchRules
from clearlane.node.recon.service import import_file, run
from tests.e2e.test_dashboard import browser, page

__all__ = ["browser", "page"]


def test_recon_pages(tmp_path: Path, page: Page, shared: Path) -> None:
    from clearlane.adapters.cli.demo import HttpServer
    from clearlane.adapters.http.server import build
    from tests.conftest import EXAMPLE_CONFIG

    app = build(tmp_path / "r.db", EXAMPLE_CONFIG, webhooks=False)
    _, key = app.state.keys.create("operator", label="ops-anna")
    store = SqlReconStore(app.state.runtime.store)
    ten_days_ago = int(time.time() * 1000) - 10 * DAY_MS  # every case is then past its SLA
    import_file(store, shared / "realdata/mt940/cmxl_mt940.sta", fmt=None, now_ms=ten_days_ago)
    run(store, period=None, rules=MatchRules(), now_ms=ten_days_ago)
    page.add_init_script(f"sessionStorage.setItem('clearlane.apiKey', {key!r})")
    http = HttpServer(app)
    http.start()
    try:
        page.goto(f"{http.url}/ui/#/recon")
        page.wait_for_function("document.body.dataset.rendered === 'recon'", timeout=10_000)
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        expect(page.locator("#breaks tbody tr")).to_have_count(16)
        expect(page.locator("nav a[data-page=recon]")).to_have_class("active")
        page.click("#kpi-exceptions a")
        page.wait_for_function("document.body.dataset.rendered === 'exceptions'", timeout=10_000)
        expect(page.locator("#queue tbody tr.overdue")).to_have_count(16)
        expect(page.locator("[data-bucket='7-30d'] .bucket-n")).to_have_text("16")
        page.locator("#queue tbody tr a").first.click()
        page.wait_for_function("document.body.dataset.rendered === 'case'", timeout=10_000)
        expect(page.locator("#view h2").last).to_contain_text("hash chain verifies")
        page.select_option("#case-action select[name=action]", "assign")
        page.fill("#case-action input[name=owner]", "ops-anna")
        page.click("#case-action button")
        expect(page.locator("#trail tbody tr")).to_have_count(2)
        expect(page.locator("#trail tbody tr").last).to_contain_text("ops-anna")
    finally:
        http.stop()
