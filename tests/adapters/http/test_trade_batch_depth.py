"""The trade batch route proves its usual body's depth from bracket counts; anything else is
scanned as before (the refusals themselves are pinned in test_service_hardening/_api)."""

from __future__ import annotations

from typing import Any

import orjson

from clearlane.adapters.http.routes.trades import batch_depth


def _depth(body: Any) -> int | None:
    return batch_depth(body, orjson.dumps(body))


def test_a_flat_batch_is_three_deep_and_anything_else_is_scanned() -> None:
    row = {"trade_id": "T1", "quantity": "1", "price": "2", "executed_at": 1}
    assert _depth({"trades": [row, row]}) == 3
    assert _depth({"trades": []}) == 2
    assert _depth({"trades": [{**row, "venue": "a{b[c"}]}) is None  # a bracket in a string
    assert _depth({"trades": [{**row, "quantity": {"a": 1}}]}) is None
    assert _depth({"trades": [1, {"a": {}}]}) is None  # a non-object item hides a container
    assert _depth({"trades": [row], "x": [1]}) is None
    assert _depth([row]) is None and _depth({"trades": "x"}) is None
