"""The Stress page in a real browser (Debian's Chromium via Playwright): a run started from the
page's form against the service's recorded day, then its report — the need chart, the
Cover-1/Cover-2 table and the per-participant rows. The browser's requests are answered by the
app in-process (``page.route`` → TestClient), so no server is started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright

from clearlane.adapters.http.dashboard import plotly_bundle
from tests.e2e.test_dashboard import ARGS, CHROMIUM
from tests.service_support import Service, make_service, trade_row, wait_for

ORIGIN = "http://clearlane.test"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    with make_service(tmp_path) as s:
        rows = [trade_row(i, buyer="RTL-0001", seller="MM-ALPHA") for i in range(30)]
        s.client.post("/v1/trades/batch", json={"trades": rows}, headers=s.h())
        yield s


def _serve(svc: Service, route: Route) -> None:
    request = route.request
    path = request.url.removeprefix(ORIGIN)
    if path == "/ui/vendor/plotly.min.js":  # 3.5 MB: straight from the wheel, not through the app
        route.fulfill(path=str(plotly_bundle()), content_type="text/javascript")
        return
    if path.startswith("/v1/stream"):  # the live stream is not needed here: the page reconnects
        route.fulfill(status=503, body="")
        return
    headers = {
        k: v for k, v in request.headers.items() if k.lower() in ("x-api-key", "content-type", "accept")
    }
    answer = svc.client.request(request.method, path, headers=headers, content=request.post_data_buffer)
    route.fulfill(status=answer.status_code, headers=dict(answer.headers), body=answer.content)


def test_stress_page_runs_a_scenario_and_shows_its_report(svc: Service) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page: Page = browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route(f"{ORIGIN}/**", lambda route: _serve(svc, route))
        page.add_init_script(f"sessionStorage.setItem('clearlane.apiKey', {svc.keys['operator']!r})")
        page.goto(f"{ORIGIN}/ui/#/stress")
        page.wait_for_function("document.body.dataset.rendered === 'stress'", timeout=15_000)
        page.select_option("select[name=scenario]", "l1-outage")
        page.click("#stress-run button[type=submit]")
        expect(page.locator("#stress-msg")).to_contain_text("started", timeout=10_000)
        runs = lambda: svc.client.get("/v1/stress/reports", headers=svc.h()).json()["items"]  # noqa: E731
        wait_for(lambda: runs() and runs()[0]["status"] != "running", timeout=60, every=0.2)
        page.reload()  # no live stream here to refresh the list
        report = page.locator("#stress-reports a.mono").first
        report.click()
        page.wait_for_selector("#stress-need[data-plotted='1']", timeout=20_000)
        page.wait_for_selector("#stress-peaks[data-plotted='1']", timeout=20_000)
        expect(page.locator("#stress-cover")).to_contain_text("Cover-2 scenario")
        expect(page.locator("#stress-participants tbody tr").first).to_be_visible()
        expect(page.locator("#kpi-safety")).to_contain_text("held")
        browser.close()
    assert not errors, errors
