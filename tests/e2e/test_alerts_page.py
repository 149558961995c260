"""The Alerts page in a real browser (Debian's Chromium via Playwright) against a real server:
an open alert with its age, acknowledged with a note from its page (the trail shows it), then
silenced by a matcher from the list's form and the silence expired again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from clearlane.adapters.cli.demo import HttpServer
from clearlane.adapters.http.app import ServiceOptions
from clearlane.adapters.http.server import build
from clearlane.core.cases import Severity
from tests.e2e.test_dashboard import ARGS, CHROMIUM
from tests.service_support import EXAMPLE


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, object]]:
    app = build(
        tmp_path / "node.db",
        EXAMPLE,
        clock="accelerated",
        speed=1.0,
        service_options=ServiceOptions(auth=False),
    )
    http = HttpServer(app)
    http.start()
    try:
        yield http.url, app
    finally:
        http.stop()


def test_alerts_page_ack_and_silence(server: tuple[str, object]) -> None:
    url, app = server
    alerts = app.state.alerts  # type: ignore[attr-defined]
    now = alerts.now()
    alerts.raise_alert(
        "AnchorBacklogHigh", {"pool": "fast"}, "backlog 40 > 20", Severity.HIGH, now - 3_600_000, "rules"
    )
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page: Page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/ui/#/alerts")
        page.wait_for_function("document.body.dataset.rendered === 'alerts'", timeout=10_000)
        row = page.locator("#alerts-table tbody tr", has_text="AnchorBacklogHigh")
        expect(row).to_contain_text("open")
        expect(row).to_contain_text("1 h 0 min")
        expect(page.locator("nav a.active")).to_have_text("Alerts")
        row.locator("a").click()
        page.locator("form[data-action=acknowledge] input[name=note]").fill("draining the anchor queue")
        page.locator("form[data-action=acknowledge] button").click()
        expect(page.locator("h1")).to_contain_text("acknowledged")
        expect(page.locator("#alert-trail")).to_contain_text("draining the anchor queue")
        page.goto(f"{url}/ui/#/alerts")
        page.locator("#silence-form input[name=matchers]").fill("pool=fast, alertname=~Anchor.*")
        page.locator("#silence-form input[name=comment]").fill("drill")
        page.locator("#silence-form button").click()
        expect(page.locator("#silences-table tbody")).to_contain_text("active")
        expect(page.locator("#alerts-table tbody tr", has_text="AnchorBacklogHigh")).to_contain_text(
            "silenced"
        )
        page.locator("button.expire").click()
        expect(page.locator("#silences-table tbody")).to_contain_text("expired")
        expect(page.locator("#alerts-table tbody tr", has_text="AnchorBacklogHigh")).to_contain_text(
            "acknowledged"
        )
        browser.close()
        assert not errors, errors
