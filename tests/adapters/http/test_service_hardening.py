"""Issue 11 on the service: participants see only their own figures (SSE and webhooks; operators
keep the full view), /metrics is not public, webhook targets are https and public unless
allow-listed (at registration and at delivery, against DNS rebinding), a revoked key fails its
next request even when revoked from another process, and a body's limits hold on every route."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.adapters.http.app import ServiceOptions
from clearlane.adapters.http.auth import KeyStore
from clearlane.adapters.http.guard import json_depth, too_deep
from clearlane.adapters.http.targets import TargetPolicy, TargetRefused
from clearlane.adapters.http.webhooks import WebhookOptions
from clearlane.adapters.sql.store import Store
from clearlane.node.events import PARTICIPANT_BATCH_KEYS
from tests.adapters.http.test_service_webhooks import Receiver
from tests.service_support import Service, make_service, svc, trade_row, wait_for

__all__ = ["svc"]

VOLUME = {"flows", "gross_usd", "net_usd"}
LOCAL = ("127.0.0.1",)
FAST = WebhookOptions(backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=3, poll_s=0.02, allow=LOCAL)


# ---------------------------------------------------------------------- own figures only
def _stream(s: Service, who: str, out: list[dict[str, Any]]) -> None:
    # The retail participant: its trade and both pools' batches; the operator: both trades too.
    params = {"types": "batch.cleared,trade.cleared", "max_events": "3" if who == "retail" else "4"}
    with s.client.stream("GET", "/v1/stream", params=params, headers=s.h(who)) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))


def test_participant_stream_and_webhook_carry_only_its_own_figures(tmp_path: Path) -> None:
    receivers = {"operator": Receiver(), "participant": Receiver()}
    try:
        with make_service(tmp_path, webhook_options=FAST) as s:
            for who, extra in (("operator", {}), ("participant", {"participant": "RTL-0001"})):
                r = s.client.post(
                    "/v1/webhooks",
                    json={"url": receivers[who].url, "events": ["batch.cleared", "trade.cleared"], **extra},
                    headers=s.h(),
                )
                assert r.status_code == 201, r.text
            seen: dict[str, list[dict[str, Any]]] = {"retail": [], "operator": []}
            threads = [threading.Thread(target=_stream, args=(s, who, seen[who])) for who in seen]
            for t in threads:
                t.start()
            wait_for(lambda: s.runtime.bus.subscribers == 2)
            rows = [
                trade_row("R1", buyer="RTL-0001", seller="RTL-0002"),
                trade_row("R2"),  # MM-ALPHA / BRK-NORTH: not RTL-0001's
            ]
            assert s.client.post("/v1/trades/batch", json={"trades": rows}, headers=s.h()).status_code == 200
            for t in threads:
                t.join(30)
            wait_for(lambda: len(receivers["operator"].events()) >= 4)
            wait_for(lambda: len(receivers["participant"].events()) >= 3)
        _assert_own_view(seen["retail"], receivers["participant"].events())
        _assert_full_view(seen["operator"], receivers["operator"].events())
    finally:
        for receiver in receivers.values():
            receiver.close()


def _assert_own_view(stream: list[dict[str, Any]], hook: list[dict[str, Any]]) -> None:
    for events in (stream, hook):
        trades = [e["data"]["trade_id"] for e in events if e["type"] == "trade.cleared"]
        batches = [e["data"] for e in events if e["type"] == "batch.cleared"]
        assert trades == ["R1"] and len(batches) == 2, events
        assert {d["pool"] for d in batches} == {"retail", "fast"}
        for data in batches:
            assert not VOLUME & set(data) and set(data) <= set(PARTICIPANT_BATCH_KEYS)
            assert data["state"] == "cleared" and data["batch_id"].startswith(data["pool"] + "-")


def _assert_full_view(stream: list[dict[str, Any]], hook: list[dict[str, Any]]) -> None:
    for events in (stream, hook):
        trades = sorted(e["data"]["trade_id"] for e in events if e["type"] == "trade.cleared")
        batches = [e["data"] for e in events if e["type"] == "batch.cleared"]
        assert trades == ["R1", "R2"] and len(batches) == 2
        assert all(set(d) >= VOLUME and d["gross_usd"] > 0 for d in batches)


# ---------------------------------------------------------------------- /metrics
def test_metrics_need_a_reader_key_or_the_scrape_token(tmp_path: Path) -> None:
    token = "scrape-0123456789abcdef"
    with make_service(tmp_path, service_options=ServiceOptions(metrics_token=token)) as s:
        assert s.client.get("/metrics").status_code == 401
        assert s.client.get("/metrics", headers={"Authorization": "Bearer scrape-wrong"}).status_code == 401
        assert s.client.get("/metrics", headers=s.h("participant")).status_code == 403
        for headers in (s.h("operator"), s.h("auditor"), {"Authorization": f"Bearer {token}"}):
            r = s.client.get("/metrics", headers=headers)
            assert r.status_code == 200 and "clearlane_gross_settlement_usd" in r.text
        # The scrape token opens /metrics only.
        assert s.client.get("/v1/trades", headers={"Authorization": f"Bearer {token}"}).status_code == 401


# ---------------------------------------------------------------------- webhook targets
def _fixed(*answers: list[str]) -> Any:
    """A resolver answering each call with the next list (the last one repeated)."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    return resolve


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1", "malformed URL"),
        ("https://hooks.example:99999/x", "malformed URL"),
        ("ftp://93.184.215.14/x", "scheme"),
        ("http://93.184.215.14/x", "https is required"),
        ("https://127.0.0.1/x", "not a public address"),
        ("https://10.1.2.3/x", "not a public address"),
        ("https://192.168.0.1/x", "not a public address"),
        ("https://169.254.169.254/latest", "not a public address"),
        ("https://100.64.0.1/x", "not a public address"),
        ("https://0.0.0.0/x", "not a public address"),
        ("https://224.0.0.1/x", "not a public address"),
        ("https://[::1]/x", "not a public address"),
        ("https://[fe80::1]/x", "not a public address"),
        ("https://[::ffff:127.0.0.1]/x", "not a public address"),
        ("https://u:p@93.184.215.14/x", "credentials"),
        ("https://internal.example/x", "not a public address"),  # resolves to a private address
    ],
)
def test_refused_targets(url: str, reason: str) -> None:
    policy = TargetPolicy((), _fixed(["10.0.0.7"]))
    with pytest.raises(TargetRefused, match=reason):
        policy.check(url)


def test_allowed_targets_connect_to_the_checked_address() -> None:
    public = TargetPolicy((), _fixed(["93.184.215.14"]))
    target = public.check("https://hooks.example:8443/in?x=1")
    assert target.url == "https://93.184.215.14:8443/in?x=1"
    assert (target.host_header, target.server_name) == ("hooks.example:8443", "hooks.example")
    local = TargetPolicy(("127.0.0.1", "localhost", "10.0.0.0/8"), _fixed(["127.0.0.1"]))
    assert local.check("http://127.0.0.1:9/x").url == "http://127.0.0.1:9/x"
    assert local.check("http://localhost:9/x").url == "http://127.0.0.1:9/x"
    assert local.check("http://10.2.3.4/x").host_header == "10.2.3.4"
    with pytest.raises(TargetRefused):
        local.check("http://192.168.1.1/x")
    with pytest.raises(ValueError, match="not a host"):
        TargetPolicy(("bad/entry/",))


def test_registration_refuses_and_delivery_rechecks(tmp_path: Path) -> None:
    """A refused URL is a 422 at registration; a host that resolved to a public address then
    and to loopback at delivery (DNS rebinding) is not called, the attempt fails with the
    reason; an endpoint stored before the policy with a malformed URL fails without a traceback."""
    receiver = Receiver()
    port = receiver.server.server_address[1]
    options = WebhookOptions(
        backoff_base_s=0.01, max_attempts=2, poll_s=0.02, resolver=_fixed(["93.184.215.14"], ["127.0.0.1"])
    )
    try:
        with make_service(tmp_path, webhook_options=options) as s:
            for url in ("http://[::1", "http://127.0.0.1:9/x", "https://10.0.0.1/x"):
                r = s.client.post(
                    "/v1/webhooks", json={"url": url, "events": ["batch.cleared"]}, headers=s.h()
                )
                assert r.status_code == 422 and r.json()["error"] == "bad_webhook_url", r.text
                assert r.json()["field"] == "url"
            ok = s.client.post(
                "/v1/webhooks",
                json={"url": f"https://rebind.example:{port}/hook", "events": ["batch.cleared"]},
                headers=s.h(),
            )
            assert ok.status_code == 201, ok.text
            stale = s.app.state.webhooks.create("http://[::1", ["batch.cleared"], None, None, "stored before")
            s.client.post("/v1/trades", json=trade_row(1), headers=s.h())

            def failed(endpoint: str) -> list[dict[str, Any]]:
                page = s.client.get(
                    f"/v1/webhooks/{endpoint}/deliveries", params={"status": "failed"}, headers=s.h()
                )
                return list(page.json()["items"])

            rebound = wait_for(lambda: failed(ok.json()["id"]))[0]
            assert rebound["last_error"].startswith("target refused: 127.0.0.1 is not a public address")
            malformed = wait_for(lambda: failed(stale.id))[0]
            assert malformed["last_error"].startswith("target refused: malformed URL")
        assert receiver.calls == []
    finally:
        receiver.close()


# ---------------------------------------------------------------------- revocation
def test_revocation_from_another_process_holds_on_the_next_request(svc: Service) -> None:
    token = svc.keys["auditor"]
    assert svc.client.get("/v1/me", headers=svc.h("auditor")).status_code == 200  # cached now
    key_id = token.split("_")[1]
    other = Store.open(svc.db, create=False)  # what `clearlane apikey revoke` opens
    try:
        assert KeyStore(other).revoke(key_id)
    finally:
        other.close()
    assert svc.client.get("/v1/me", headers=svc.h("auditor")).status_code == 401
    assert svc.client.get("/v1/me", headers=svc.h("operator")).status_code == 200
    # A key created elsewhere works at once too (a cached miss does not outlive the change).
    other = Store.open(svc.db, create=False)
    try:
        fresh = KeyStore(other).create("auditor")[1]
    finally:
        other.close()
    assert svc.client.get("/v1/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


# ---------------------------------------------------------------------- body limits
def test_body_limits_on_every_route(tmp_path: Path) -> None:
    options = ServiceOptions(max_body_bytes=4096, max_json_depth=8)
    with make_service(tmp_path, service_options=options) as s:
        spec = s.client.get("/openapi.json").json()
        posts = [p for p, ops in spec["paths"].items() if "post" in ops]
        assert "/v1/webhooks" in posts and "/v1/trades/batch" in posts
        big = b'{"x": "' + b"a" * 5000 + b'"}'
        for path in posts:
            r = s.client.post(path, content=big, headers={**s.h(), "content-type": "application/json"})
            assert r.status_code == 413 and r.json()["error"] == "too_large", (path, r.text)
        deep = {"trades": [{**trade_row(1), "quantity": {"a": [[[[[[[["1"]]]]]]]]}}]}
        r = s.client.post("/v1/trades/batch", json=deep, headers=s.h())
        assert r.status_code == 422 and r.json()["field"] == "trades[0].quantity.a[0][0][0][0]"
        r = s.client.post("/v1/trades", content=b"{}", headers={**s.h(), "content-type": "text/csv"})
        assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
        ok = s.client.post(
            "/v1/trades",
            json=trade_row(1),
            headers={**s.h(), "content-type": "application/json; charset=utf-8"},
        )
        assert ok.status_code == 201


def test_the_documented_scrape_config_passes_promtool(tmp_path: Path) -> None:
    import re
    import shutil
    import subprocess

    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed")
    api = (Path(__file__).resolve().parents[3] / "docs" / "API.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", api[api.index("## Metrics") :], re.S)
    assert block is not None
    token = tmp_path / "clearlane-metrics.token"
    token.write_text("scrape-0123456789abcdef\n")
    config = tmp_path / "prometheus.yml"
    config.write_text(block.group(1).replace("/etc/prometheus/clearlane-metrics.token", str(token)))
    check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


tricky_json = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='[]{}"\\\\ab\u00e9', max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\\\k', max_size=4), kids, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, derandomize=True, database=None)
@given(tricky_json)
def test_depth_counted_on_bytes_equals_the_depth_of_the_value(value: Any) -> None:
    """The fast byte count (brackets outside strings, escapes removed) that gates the walk."""
    depth = json_depth(orjson.dumps(value))
    assert too_deep(value, depth) is None
    assert depth == 0 or too_deep(value, depth - 1) is not None
