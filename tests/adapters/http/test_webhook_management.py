"""Webhook management for integrators (issue 17): update, secret rotation with an overlap
window (two signatures while it lasts), test pings, redelivery, and payloads that carry the
trade itself on one labelled clock."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from clearlane.adapters.http.webhooks import HEADER_ID, HEADER_SIGNATURE, verify_signature
from tests.adapters.http.test_service_webhooks import FAST, Receiver
from tests.service_support import Service, make_service, trade_row, wait_for


def _calls_of(r: Receiver, event_type: str) -> list[tuple[dict[str, str], bytes]]:
    with r.lock:
        return [(h, b) for h, b in r.calls if json.loads(b)["type"] == event_type]


def _deliveries(s: Service, ep: str) -> list[dict[str, Any]]:
    return s.client.get(f"/v1/webhooks/{ep}/deliveries", headers=s.h()).json()["items"]  # type: ignore[no-any-return]


def test_update_rotate_ping_and_redeliver(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        with make_service(tmp_path, webhook_options=FAST) as s:
            r = s.client.post(
                "/v1/webhooks", json={"url": receiver.url, "events": ["batch.final"]}, headers=s.h()
            )
            ep = r.json()
            url = f"/v1/webhooks/{ep['id']}"
            # update: events, description; a refused URL changes nothing; a participant key may not
            r = s.client.patch(url, json={"events": ["trade.cleared"], "description": "desk"}, headers=s.h())
            assert r.status_code == 200, r.text
            assert r.json()["events"] == ["trade.cleared"] and r.json()["secret"] is None
            assert r.json()["created_at_wall"] == r.json()["created_at"] == ep["created_at_wall"]
            bad = s.client.patch(url, json={"url": "http://10.0.0.1/x"}, headers=s.h())
            assert bad.status_code == 422 and bad.json()["code"] == 613
            assert s.client.patch(url, json={"events": ["nope"]}, headers=s.h()).status_code == 422
            assert s.client.patch(url, json={"active": False}, headers=s.h("participant")).status_code == 403
            assert s.client.get(url, headers=s.h()).json()["url"] == receiver.url
            assert s.client.patch(url, json={"active": False}, headers=s.h()).json()["active"] is False
            assert s.client.post(f"{url}/test", headers=s.h()).status_code == 422
            assert s.client.patch(url, json={"active": True}, headers=s.h()).json()["active"] is True

            # a test ping, signed with the current secret only
            ping = s.client.post(f"{url}/test", headers=s.h())
            assert ping.status_code == 202 and ping.json()["event_type"] == "webhook.test"
            headers, body = wait_for(lambda: _calls_of(receiver, "webhook.test"))[0]
            assert headers[HEADER_SIGNATURE].count("v1=") == 1
            assert verify_signature(ep["secret"], headers, body)

            # rotation with an overlap: both secrets sign, the new one first
            rotated = s.client.post(f"{url}/rotate-secret", json={"overlap_s": 3600}, headers=s.h()).json()
            assert rotated["secret"] != ep["secret"] and rotated["previous_secret_expires_at_wall"]
            s.client.post(f"{url}/test", headers=s.h())
            headers, body = wait_for(lambda: _calls_of(receiver, "webhook.test")[1:])[0]
            assert headers[HEADER_SIGNATURE].count("v1=") == 2
            assert verify_signature(ep["secret"], headers, body)
            assert verify_signature(rotated["secret"], headers, body)
            hooks = s.app.state.webhooks
            hooks._load()  # as a restart reads it: the overlap is stored, not only in memory
            assert len(hooks.get(ep["id"]).secrets_at(int(time.time() * 1000))) == 2
            # rotation without an overlap: the old secret stops at once
            final = s.client.post(f"{url}/rotate-secret", json={"overlap_s": 0}, headers=s.h()).json()
            assert final["previous_secret_expires_at_wall"] is None
            s.client.post(f"{url}/test", headers=s.h())
            headers, body = wait_for(lambda: _calls_of(receiver, "webhook.test")[2:])[0]
            assert verify_signature(final["secret"], headers, body)
            assert not verify_signature(rotated["secret"], headers, body)

            # a trade event carries the trade: state, amounts + assets, both finality times, badge
            s.client.post("/v1/trades", json=trade_row(1), headers=s.h())
            headers, body = wait_for(lambda: _calls_of(receiver, "trade.cleared"))[0]
            event = json.loads(body)
            trade = event["data"]["trade"]
            assert trade["quantity"] == "0.05000000" and trade["base"] == "BTC" and trade["quote"] == "USD"
            assert trade["state"] in ("cleared", "anchored", "final") and trade["l2_cleared_at"]
            assert "l1_final_at" in trade and trade["badge"]
            assert event["engine_time"] == event["created_at"]
            delivered = wait_for(
                lambda: [
                    d
                    for d in _deliveries(s, ep["id"])
                    if d["event_id"] == event["id"] and d["status"] == "delivered"
                ]
            )[0]
            assert delivered["engine_time"] == event["engine_time"]  # one clock in body and log
            assert delivered["delivered_at_wall"] and delivered["created_at_wall"]

            # redeliver: same event id and body, again
            again = s.client.post(f"{url}/deliveries/{delivered['id']}/redeliver", headers=s.h())
            assert again.status_code == 202 and again.json()["status"] == "pending"
            repeats = wait_for(lambda: _calls_of(receiver, "trade.cleared")[1:])
            assert repeats[0][0][HEADER_ID] == event["id"] and repeats[0][1] == body
            missing = s.client.post(f"{url}/deliveries/999999/redeliver", headers=s.h())
            assert missing.status_code == 404
    finally:
        receiver.close()
