"""Escrow API latency: N escrows × 5 actions (open, agree ×2, fund, delivery met → auto-release)
through the real service in-process (FastAPI app, auth, the runtime's loop thread, the SQLite
store with one transaction per step), one request at a time; prints p50 / p99 / max over all actions and p50 / p99 per action.

    .venv/bin/python scripts/bench_escrow_api.py --escrows 500
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from clearlane.adapters.http.server import build

CONFIG = Path(__file__).resolve().parents[1] / "src" / "clearlane" / "core" / "config" / "example.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--escrows", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = build(
            Path(tmp) / "e.db", CONFIG, clock="accelerated", speed=1.0, dashboard=False, webhooks=False
        )
        with TestClient(app) as client:
            key = app.state.keys.create("operator")[1]
            h = {"Authorization": f"Bearer {key}"}
            deposit = {"deposit_id": "d", "participant": "RTL-0001", "asset": "USD", "amount": "100000000"}
            client.post("/v1/collateral/deposits", json=deposit, headers=h).raise_for_status()
            took: list[float] = []
            by_action: dict[str, list[float]] = {}
            for i in range(args.escrows):
                eid = f"e{i}"
                terms = {
                    "asset": "USD",
                    "amount": "1000.00",
                    "buyer": "RTL-0001",
                    "seller": "BRK-NORTH",
                    "platform": "MARKET",
                    "arbiter": "ARB",
                    "conditions": [{"condition_id": "d", "kind": "delivery_confirmed", "role": "buyer"}],
                }
                steps = [
                    (
                        "/v1/escrows",
                        {"action_id": f"{eid}o", "escrow_id": eid, "actor": "MARKET", "terms": terms},
                    ),
                    (
                        f"/v1/escrows/{eid}/actions",
                        {"action": "agree", "action_id": f"{eid}a", "actor": "RTL-0001"},
                    ),
                    (
                        f"/v1/escrows/{eid}/actions",
                        {"action": "agree", "action_id": f"{eid}b", "actor": "BRK-NORTH"},
                    ),
                    (
                        f"/v1/escrows/{eid}/actions",
                        {"action": "fund", "action_id": f"{eid}f", "actor": "RTL-0001"},
                    ),
                    (
                        f"/v1/escrows/{eid}/actions",
                        {
                            "action": "satisfy",
                            "action_id": f"{eid}s",
                            "actor": "RTL-0001",
                            "condition_id": "d",
                        },
                    ),
                ]
                for path, body in steps:
                    t0 = time.perf_counter()
                    r = client.post(path, json=body, headers=h)
                    took.append(time.perf_counter() - t0)
                    name = str(body.get("action", "open"))
                    if name == "satisfy":
                        name = "satisfy (condition met → auto-release)"
                    by_action.setdefault(name, []).append(took[-1] * 1000)
                    if r.status_code != 201:
                        raise SystemExit(f"{path}: {r.status_code} {r.text}")
            ms = np.array(took) * 1000
            print(
                json.dumps(
                    {
                        "escrows": args.escrows,
                        "actions": len(took),
                        "p50_ms": round(float(np.percentile(ms, 50)), 2),
                        "p99_ms": round(float(np.percentile(ms, 99)), 2),
                        "max_ms": round(float(ms.max()), 2),
                        "per_action": {
                            name: {
                                "n": len(values),
                                "p50_ms": round(float(np.percentile(values, 50)), 2),
                                "p99_ms": round(float(np.percentile(values, 99)), 2),
                            }
                            for name, values in by_action.items()
                        },
                    }
                )
            )


if __name__ == "__main__":
    main()
