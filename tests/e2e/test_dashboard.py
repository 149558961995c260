"""The settlement dashboard in a real browser (Debian's Chromium driven by Playwright) against a
real server fed live by the simulated market, plus the dashboard's own views checked against the service.

Every page is loaded, waits for a live update, and is photographed at desktop and phone size:
into a temporary directory, or into docs/screenshots/ (the README shows them) when
``CLEARLANE_UPDATE_SCREENSHOTS=1`` is set, so an ordinary test run leaves the tree clean. The click-through goes trade -> batch ->
participant. The proof download is exercised against whatever the server offers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from clearlane.adapters.cli.demo import LiveDemo, start_live
from clearlane.node.projections.common import B_FINAL
from clearlane.node.report import trade_lifecycle
from clearlane.sim.generator import generate_day
from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("CLEARLANE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "clearlane-screenshots"
)
SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
ZONE = "America/New_York"  # not UTC, so "your zone" and "UTC on hover" differ


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    """A live server: a generated day streamed at 600x from 07:00 UTC, on a free port."""
    directory = tmp_path_factory.mktemp("live")
    day = generate_day(trades=30_000, participants=60, assets=5, seed=11)
    paths = day.write(directory / "day")
    first = int(day.trades.column("executed_at")[0].as_py())
    start_ms = first - first % 86_400_000 + 7 * 3_600_000
    demo = start_live(
        directory,
        paths.config,
        day.trades,
        day.deposits,
        speed=600.0,
        start_ms=start_ms,
        host="127.0.0.1",
        port=0,
        bad_share=0.003,
    )
    try:
        _wait(lambda: demo.runtime.rm.batches.counts[:, B_FINAL].sum() >= 3, 30, "three final batches")
        yield demo
    finally:
        demo.stop()
        if demo.feed.error is not None:
            raise demo.feed.error
        assert demo.runtime.failed is None, demo.runtime.failed


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=SIZES["desktop"], timezone_id=ZONE, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _open(page: Page, live: LiveDemo, route: str) -> None:
    page.goto(f"{live.url}/ui/#/{route}")
    page.wait_for_function("document.body.dataset.rendered !== undefined", timeout=10_000)
    assert page.locator(".error").count() == 0, page.locator(".error").inner_text()


def _wait_live_update(page: Page) -> None:
    """Wait until the page has re-rendered after a stats event from the stream."""
    page.wait_for_function("document.getElementById('live-text').textContent === 'Live'", timeout=10_000)
    before = int(page.evaluate("Number(document.body.dataset.version || -1)"))
    page.wait_for_function(f"Number(document.body.dataset.version || -1) > {before}", timeout=15_000)


@pytest.fixture(scope="module")
def cameras(browser: Browser) -> Iterator[dict[str, Page]]:
    """One page per screen size, reused (so Plotly is fetched and compiled once per size)."""
    contexts = {
        size: browser.new_context(viewport=viewport, timezone_id=ZONE) for size, viewport in SIZES.items()
    }
    yield {size: context.new_page() for size, context in contexts.items()}
    for context in contexts.values():
        context.close()


def _shoot(cameras: dict[str, Page], live: LiveDemo, route: str, name: str, ready: str | None = None) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, pg in cameras.items():
        pg.goto(f"{live.url}/ui/#/{route}")
        pg.wait_for_function(
            f"document.body.dataset.rendered === {route.split('/')[0].split('?')[0]!r}", timeout=10_000
        )
        if ready:
            pg.wait_for_selector(ready, timeout=20_000)
        pg.wait_for_timeout(300)
        pg.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=size == "phone")


# ---------------------------------------------------------------------- pages
def test_overview_is_live(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    _open(page, live, "overview")
    trades_before = int(page.locator("#kpi-trades .value").inner_text().replace(",", ""))
    _wait_live_update(page)
    page.wait_for_function(
        f"Number(document.querySelector('#kpi-trades .value').textContent.replace(/,/g, '')) > {trades_before}",
        timeout=15_000,
    )
    lanes = page.locator("#lanes tbody tr")
    expect(lanes.first).to_contain_text("L1")
    expect(page.locator("#lanes")).to_contain_text("L2 fast")
    # every state has a word and a symbol, not only a colour
    for word in ("batched", "cleared", "anchored", "final", "rejected", "unwound"):
        expect(page.locator(".legend")).to_contain_text(word)
    assert int(page.locator("#kpi-height .value").inner_text().replace(",", "")) > 0
    # the height card follows the header's live figure (it never shows an older block)
    _wait_live_update(page)
    page.wait_for_function(
        "document.querySelector('#block-height').textContent"
        " === 'block ' + document.querySelector('#kpi-height .value').textContent",
        timeout=5_000,
    )
    _shoot(cameras, live, "overview", "overview")


def test_trades_search_and_click_through(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    _open(page, live, "trades")
    _wait_live_update(page)
    expect(page.locator("#trades tbody tr").first).to_be_visible()
    page.select_option("select[name=state]", "final")
    page.select_option("select[name=lane]", "L2")
    page.click("#trade-search button")
    page.wait_for_function("location.hash.includes('state=final')")
    page.wait_for_function(
        "(() => { const cells = [...document.querySelectorAll('#trades tbody tr td:nth-child(2)')];"
        " return cells.length > 0 && cells.every(td => td.textContent.includes('final')); })()",
        timeout=10_000,
    )
    states = page.locator("#trades tbody tr td:nth-child(2)").all_inner_texts()
    assert states and all("final" in s for s in states), states
    # both finality columns: every final L2 row has its soft-final and its final time
    counts = page.evaluate(
        "['#trades tbody tr', '#trades td.l2-soft time', '#trades td.l1-final time']"
        ".map(q => document.querySelectorAll(q).length)"
    )
    assert counts[0] > 0 and len(set(counts)) == 1, counts
    # an id prefix lists the ids that start so (an exact id would open the trade)
    # (not that the id is on the page: at 600x newer ids of the prefix become final meanwhile)
    prefix = page.locator("#trades tbody tr td:first-child a").first.inner_text()[:-1]
    page.fill("input[name=q]", prefix)
    page.click("#trade-search button")
    page.wait_for_function("location.hash.includes('q=')")
    page.wait_for_function(
        "(() => { const ids = [...document.querySelectorAll('#trades tbody tr td:first-child a')].map(a => a.textContent);"
        f" return ids.length > 0 && ids.every(i => i.startsWith({prefix!r})); }})()",
        timeout=10_000,
    )
    page.fill("input[name=q]", "")
    page.click("#trade-search button")
    page.wait_for_function("!location.hash.includes('q=')")
    page.wait_for_selector("#trades tbody tr td:first-child a")
    _shoot(cameras, live, "trades?lane=L2", "trades")

    # trade page: badge in words, both finality timestamps, local time with UTC on hover
    link = page.locator("#trades tbody tr td:first-child a").first
    href = link.get_attribute("href") or ""
    assert href.startswith("#/trade/"), href
    link.click()
    try:
        page.wait_for_function(f"location.hash === {href!r}", timeout=5_000)
    except PlaywrightTimeoutError:
        # The live list re-rendered under the click (it refreshes as trades clear; seen once in
        # CI on the loaded two-core machine): follow the same link the row held.
        page.evaluate(f"location.hash = {href!r}")
    page.wait_for_selector("#badge")
    badge = page.locator("#badge").inner_text()
    # soft-final first, then base-layer final: each instant with its date and zone
    stamp = r"\w{3} \d\d, \d{4}, \d\d:\d\d:\d\d E[SD]T \(T\+\d+\.\ds\)"
    assert re.search(f"Settled on Layer-2 — soft-final at {stamp}; base-layer final at {stamp}", badge), badge
    expect(page.locator("#badge a.explain")).to_have_attribute("href", "#/finality")
    trade_id = page.evaluate("decodeURIComponent(location.hash.split('/')[2])")
    cleared = page.locator("#l2-cleared time")
    final = page.locator("#l1-final time")
    expect(cleared).to_have_count(1)
    expect(final).to_have_count(1)
    utc = final.get_attribute("datetime") or ""
    assert (final.get_attribute("title") or "").startswith("UTC ")
    shown = final.inner_text()
    assert utc[11:19] not in shown, (utc, shown)  # shown in New York time, not UTC
    # Each step's word is its chip's own text (after the symbol): read from the DOM, not from
    # innerText, which is the layout's text and once came back as one run-together word per
    # step in CI ("•received03:05:12": the text an element has when it is not being rendered).
    words = page.locator("#timeline li .state").evaluate_all("ee => ee.map(e => e.lastChild.textContent)")
    timeline = page.locator("#timeline li").all_text_contents()
    assert words[:3] == ["received", "routed", "batched"], timeline
    assert "final" in words and "cleared" in words, timeline
    # the page's sentence is `clearlane status`'s, in the reader's zone (UTC on hover)
    life = trade_lifecycle(live.runtime.store, trade_id)
    assert life is not None and life["state"] == "final"
    assert (page.locator("#badge").get_attribute("title") or "").startswith(life["badge"])
    assert life["badge"].split(" — ")[0] in badge
    _shoot(cameras, live, f"trade/{trade_id}", "trade", "#badge")

    # proof download (or its honest absence)
    _check_proof(page, live, trade_id)

    # -> batch page with net instructions per participant and asset
    page.locator("dd a[href^='#/batch/']").first.click()
    page.wait_for_selector("#instructions tbody tr")
    batch_id = page.evaluate("decodeURIComponent(location.hash.split('/')[2])")
    assert batch_id == life["batch_id"]
    rows = page.locator("#instructions tbody tr").all_inner_texts()
    assert any("pays" in r for r in rows) and any("receives" in r for r in rows)
    expect(page.locator("#batch-trades tbody tr").first).to_be_visible()
    _shoot(cameras, live, f"batch/{batch_id}", "batch", "#instructions")

    # -> participant page with positions per lane, settled vs pending
    page.locator("#instructions tbody tr td:first-child a").first.click()
    page.wait_for_selector("#positions")
    expect(page.locator("#kpi-required")).to_contain_text("$")
    expect(page.locator("#positions thead")).to_contain_text("Settled")
    expect(page.locator("#positions thead")).to_contain_text("Pending")
    pid = page.evaluate("decodeURIComponent(location.hash.split('/')[2])")
    _wait_live_update(page)  # the participant page follows the stream too
    expect(page.locator("#positions")).to_be_visible()
    _shoot(cameras, live, f"participant/{pid}", "participant", "#positions")


def _check_proof(page: Page, live: LiveDemo, trade_id: str) -> None:
    button = page.locator("#proof-download")
    if not httpx.get(f"{live.url}/v1/dashboard/meta").json()["proofs"]:
        # no audit package on this build: the page says so and the route is a problem+json
        response = httpx.get(f"{live.url}/v1/trades/{trade_id}/proof")
        assert response.status_code == 404 and response.headers["content-type"].startswith(
            "application/problem+json"
        )
        assert response.json()["title"] == "Proof not available"
        expect(button).to_contain_text("not available")
        return
    # a final trade is covered by a signed checkpoint soon after finality: wait for it
    _wait(
        lambda: httpx.get(f"{live.url}/v1/trades/{trade_id}/proof").status_code == 200,
        20,
        "the trade's proof",
    )
    with page.expect_download() as info:
        button.click()
    data = Path(info.value.path()).read_bytes()
    assert json.loads(data)["trade_id"] == trade_id
    from clearlane.core.proofs import verify  # the stdlib verifier of issue 3

    result = verify.verify_proof_document(data)
    assert result["summary"]


def test_proof_download_goes_through_the_page(page: Page, live: LiveDemo) -> None:
    """The download button fetches the proof (with the key, if any) and saves it as a file.

    A stand-in provider serves a document here; with the audit package installed the real one is
    served and verified by ``_check_proof`` above."""
    from clearlane.adapters.cli.demo import HttpServer
    from clearlane.adapters.http.app import ServiceOptions, create_app
    from clearlane.adapters.http.ui import install

    def fake(trade_id: str) -> bytes | None:
        return json.dumps({"format": "stand-in", "trade_id": trade_id}).encode()

    app = create_app(
        live.runtime,
        live.app.state.keys,
        options=ServiceOptions(auth=False),
        extra_routers=[install(live.runtime, proof=fake)],
    )
    http = HttpServer(app)
    http.start()
    try:
        found = httpx.get(
            f"{live.url}/v1/trades", params={"state": "final", "lane": "L2", "limit": 1}
        ).json()["items"]
        trade_id = found[0]["id"]
        page.goto(f"{http.url}/ui/#/trade/{trade_id}")
        page.wait_for_selector("#proof-download")
        expect(page.locator("#proof-download")).to_contain_text("Download inclusion proof")
        with page.expect_download() as info:
            page.click("#proof-download")
        assert info.value.suggested_filename == f"proof-{trade_id}.json"
        assert json.loads(Path(info.value.path()).read_bytes())["trade_id"] == trade_id
    finally:
        http.stop()


def test_batches_page(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    _open(page, live, "batches")
    _wait_live_update(page)
    first = page.locator("#batches tbody tr").first
    expect(first).to_be_visible()
    text = page.locator("#batches").inner_text()
    assert "final" in text and "$" in text
    page.click("a[href='#/batches?pool=fast']")
    page.wait_for_function("location.hash.endsWith('pool=fast')")
    page.wait_for_function(
        "[...document.querySelectorAll('#batches tbody tr td:nth-child(2)')].every(td => td.textContent === 'fast')"
    )
    _shoot(cameras, live, "batches", "batches")


def test_participants_page(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    _open(page, live, "participants")
    _wait_live_update(page)
    rows = page.locator("#participants tbody tr")
    assert rows.count() >= 50
    header = page.locator("#participants thead").inner_text()
    for word in ("Buffer required", "Available", "Credit used", "Rejects"):
        assert word in header
    assert re.search(r"\d+ % (ok|high|over limit)", page.locator("#participants tbody").inner_text())
    page.fill("input[name=q]", "MM-")
    page.click("#participant-search button")
    page.wait_for_function(
        "[...document.querySelectorAll('#participants tbody tr td:first-child')].every(td => td.textContent.startsWith('MM-'))"
    )
    _shoot(cameras, live, "participants", "participants")
    # on a phone the table keeps "Available" beside "Buffer required"
    expect(
        cameras["phone"].locator("#participants").get_by_role("columnheader", name="Available", exact=True)
    ).to_be_visible()
    # the portal as a client sees it (a reader opens it by id), and the finality explainer
    pid = page.locator("#participants tbody tr td:first-child").first.inner_text()
    _shoot(cameras, live, f"portal/{pid}", "portal", "#portal-savings")
    _shoot(cameras, live, "finality", "finality", "#finality-lanes")


def test_latency_page(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    _open(page, live, "latency")
    page.wait_for_selector("#heatmap[data-plotted='1']", timeout=20_000)
    page.wait_for_selector("#queues[data-plotted='1']", timeout=20_000)
    hops = page.locator("#hops tbody").inner_text()
    assert "received → cleared" in hops and "included → final" in hops
    _wait_live_update(page)
    _shoot(cameras, live, "latency", "latency", "#heatmap[data-plotted='1']")


def test_savings_page(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    _open(page, live, "savings")
    page.wait_for_selector("#liquidity[data-plotted='1']", timeout=20_000)
    page.wait_for_selector("#latency-day[data-plotted='1']", timeout=20_000)
    expect(page.locator("#kpi-liq .value")).to_contain_text("$")
    _wait_live_update(page)
    _shoot(cameras, live, "savings", "savings", "#latency-day[data-plotted='1']")


def test_escrow_pages(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    """The demo's car marketplace in the escrow list and on one escrow's page: states, where the
    money is, and amounts in the asset's decimals (24,900.00 USD), never raw minor units."""
    _open(page, live, "escrows")
    page.wait_for_function("document.body.dataset.rendered === 'escrows'", timeout=10_000)
    expect(page.locator("tbody tr", has_text="car-0002")).to_contain_text("24,900.00")
    expect(page.locator("main, body").first).not_to_contain_text("minor units")
    _open(page, live, "escrow/car-0002")
    page.wait_for_function("document.body.dataset.rendered === 'escrow'", timeout=10_000)
    expect(page.locator("h1")).to_contain_text("car-0002")
    expect(page.locator("dl.facts").last).to_contain_text("24,900.00")
    _shoot(cameras, live, "escrows", "escrows")
    _shoot(cameras, live, "escrow/car-0002", "escrow")


def test_monitoring_page(page: Page, cameras: dict[str, Page], live: LiveDemo) -> None:
    """Canaries per path, divergence and trust (issue 15; the demo has no canary set)."""
    _open(page, live, "monitoring")
    page.wait_for_function("document.body.dataset.rendered === 'monitoring'", timeout=10_000)
    expect(page.locator("#canaries")).to_contain_text("No canary set configured")
    expect(page.locator("main")).to_contain_text("Marks per source")
    expect(page.locator("main a[href='#/alerts']")).to_have_count(1)
    _shoot(cameras, live, "monitoring", "monitoring")


# ---------------------------------------------------------------------- stream and views
def test_stream_is_coalesced(live: LiveDemo) -> None:
    """However fast trades arrive, the stream the pages follow sends a few stats events a second."""
    events = []
    started = time.monotonic()
    with httpx.stream("GET", f"{live.url}/v1/stream", params={"types": "stats"}, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:])["data"])
            if time.monotonic() - started > 3:
                break
    elapsed = time.monotonic() - started
    assert 2 <= len(events) <= elapsed / 0.25 + 2, (len(events), elapsed)
    seqs = [e["applied_seq"] for e in events]
    assert seqs == sorted(seqs)
    assert events[-1]["trades_received"] >= events[0]["trades_received"]


def test_participant_figures_agree_with_the_service(live: LiveDemo) -> None:
    """Buffers match the service's liquidity view; rejects count both parties of refused rows."""
    from clearlane.adapters.http import views as service_views
    from clearlane.adapters.http.auth import Principal
    from clearlane.adapters.http.dashboard import Views

    rt = live.runtime
    # The venue counts a refusal just before it hands it to the dashboard's tally (sim/feed.py):
    # while the feed runs, the tally is the venue's count or one behind it.
    deadline = time.monotonic() + 60
    while live.feed.refused == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    with rt.lock:  # one consistent instant (the runtime lock is re-entrant; no HTTP inside it)
        rows = Views(rt).participants(None, "id", 0, 1000)["items"]
        page = service_views.liquidity_page(
            rt, Principal("t", "auditor", None, "test"), limit=1000, cursor=None, participant=None
        )
        liquidity = {x["participant"]: x for x in page["items"]}
        refused = live.feed.refused
    assert len(rows) == len(live.runtime.config.participants)
    for row in rows:
        theirs = liquidity[row["id"]]
        assert row["buffer_required_usd"] == theirs["projected_net_debit_usd"]
        assert row["buffer_available_usd"] == theirs["limit_usd"]
    assert refused > 0
    assert 2 * (refused - 1) <= sum(r["rejects"] for r in rows) <= 2 * refused
    before = live.feed.refused
    recent = httpx.get(f"{live.url}/v1/dashboard/rejects").json()
    after = live.feed.refused
    assert before - 1 <= recent["by_code"].get("precision_exceeded", 0) <= after
    assert recent["recent"] and recent["recent"][0]["where"] == "edge"


def test_api_errors_are_problems(live: LiveDemo) -> None:
    r = httpx.get(f"{live.url}/v1/dashboard/participants/NO-SUCH")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["error"] == "not_found" and r.json()["code"] == 603
    r = httpx.get(f"{live.url}/v1/dashboard/participants", params={"sort": "nonsense"})
    assert r.status_code == 400 and r.json()["field"] == "sort"
    assert httpx.get(f"{live.url}/ui/vendor/plotly.min.js").status_code == 200
    assert httpx.get(f"{live.url}/ui/static/..%2Fapi.py").status_code == 404


def test_dashboard_data_needs_a_reader_key(tmp_path: Path) -> None:
    """Behind `clearlane serve` the dashboard's data needs an operator or auditor key, the portal's
    any key; the pages need none."""
    from fastapi.testclient import TestClient

    from clearlane.adapters.http.server import build
    from tests.conftest import EXAMPLE_CONFIG

    app = build(tmp_path / "s.db", EXAMPLE_CONFIG, webhooks=False)
    keys = app.state.keys
    _, operator = keys.create("operator")
    _, auditor = keys.create("auditor")
    _, participant = keys.create("participant", "MM-ALPHA")
    client = TestClient(app)
    assert client.get("/ui/").status_code == 200
    assert client.get("/ui/static/app.js").status_code == 200
    assert client.get("/").status_code == 200  # redirected to /ui/
    for route in (
        "/v1/dashboard/batches",
        "/v1/dashboard/participants",
        "/v1/dashboard/participants/MM-ALPHA",
        "/v1/dashboard/latency",
        "/v1/dashboard/rejects",
    ):
        assert client.get(route).status_code == 401
        assert client.get(route, headers={"X-API-Key": participant}).status_code == 403
        assert client.get(route, headers={"X-API-Key": operator}).status_code == 200
        assert client.get(route, headers={"Authorization": f"Bearer {auditor}"}).status_code == 200
    # the participant portal's views take any key (each scoped to the key's participant)
    for route in (
        "/v1/dashboard/meta",
        "/v1/dashboard/chain",
        "/v1/dashboard/finality",
        "/v1/dashboard/trades",
    ):
        assert client.get(route).status_code == 401
        for key in (participant, operator, auditor):
            assert client.get(route, headers={"X-API-Key": key}).status_code == 200, route
    assert client.get("/v1/dashboard/portal", headers={"X-API-Key": participant}).status_code == 200
    # a proof: any key, past the key check (no such trade: 404)
    assert client.get("/v1/trades/T1/proof").status_code == 401
    for key in (participant, operator, auditor):
        assert client.get("/v1/trades/T1/proof", headers={"X-API-Key": key}).status_code == 404
    app.state.runtime.node.close()


def test_browser_asks_for_a_key(tmp_path: Path, page: Page) -> None:
    """With API keys on, the page asks for one, keeps it for the tab and then shows the data live."""
    from clearlane.adapters.cli.demo import HttpServer
    from clearlane.adapters.http.server import build
    from tests.conftest import EXAMPLE_CONFIG

    app = build(tmp_path / "k.db", EXAMPLE_CONFIG, webhooks=False)
    _, key = app.state.keys.create("auditor")
    http = HttpServer(app)
    http.start()
    try:
        page.goto(f"{http.url}/ui/#/overview")
        page.wait_for_selector("#key-form")
        expect(page.locator("#view")).to_contain_text("operator or auditor")
        page.fill("#key-form input[name=key]", key)
        page.click("#key-form button")
        page.wait_for_selector("#kpi-trades")
        page.wait_for_function("document.getElementById('live-text').textContent === 'Live'", timeout=10_000)
    finally:
        http.stop()


def test_dashboard_survives_a_restart(tmp_path: Path) -> None:
    """Reopened on its database, the service shows the dashboard the same day again."""
    from tests.service_support import make_service, trade_row, wait_for

    with make_service(tmp_path) as s:
        for i in range(6):
            assert s.client.post("/v1/trades", json=trade_row(i), headers=s.h()).status_code == 201
        wait_for(lambda: s.runtime.rm.batches.counts[:, B_FINAL].sum() >= 1)
        batches = s.client.get("/v1/dashboard/batches", headers=s.h()).json()["items"]
        final = [b for b in batches if b["state"] == "final"]
    with make_service(tmp_path) as again:
        after = {
            b["batch_id"]: b
            for b in again.client.get("/v1/dashboard/batches", headers=again.h()).json()["items"]
        }
        for b in final:
            assert (
                after[b["batch_id"]]["root"] == b["root"]
                and after[b["batch_id"]]["anchor_tx"] == b["anchor_tx"]
            )
        assert again.client.get("/v1/dashboard/participants/MM-ALPHA", headers=again.h()).status_code == 200


def test_demo_serves_and_terminates(tmp_path: Path) -> None:
    """`clearlane demo --serve --duration` prints the URL, streams, stops and prints the summary."""
    from typer.testing import CliRunner

    from clearlane.adapters.cli.main import app

    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--serve",
            "--duration",
            "3",
            "--port",
            "0",
            "--speed",
            "600",
            "--trades",
            "5000",
            "--participants",
            "40",
            "--assets",
            "4",
            "--out",
            str(tmp_path / "demo"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"dashboard live at http://127\.0\.0\.1:\d+/ui/", result.output)
    assert "netting efficiency" in result.output
    shutil.rmtree(tmp_path / "demo", ignore_errors=True)


def test_heatmap_percentiles_match_the_read_model() -> None:
    """The vectorised heatmap cells give the service's own percentile of every histogram."""
    from clearlane.adapters.http.dashboard import grid_percentile_s
    from clearlane.node.projections.common import hist, percentile

    rng = np.random.default_rng(1)
    grid = np.stack(
        [
            np.stack([hist(rng.lognormal(7, 2, size=int(rng.integers(0, 40)))) for _ in range(12)])
            for _ in range(4)
        ]
    )
    for q in (0.5, 0.99):
        cells = grid_percentile_s(grid, q)
        for r in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ref = percentile(grid[r, j], q)
                assert (ref is None and cells[r][j] is None) or abs(cells[r][j] - ref / 1000) < 1e-3
