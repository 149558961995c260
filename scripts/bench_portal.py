"""Participant portal benchmark: the server-side cost of the portal's views with a big day loaded.

Clears a generated day (``--trades N``, default 1M) as ``scripts/bench_dashboard.py`` does (and
reuses its database in ``--workdir``), opens it as ``clearlane serve`` would, and times each
portal view ``--repeat`` times through the app in-process (``Server-Timing: view``: the view and
its JSON under the runtime lock, without the network): one participant's account (its realized
savings scan the newest records), the trade list with both finality times (newest, an id prefix,
one participant, one day), and the live finality figures.

    .venv/bin/python scripts/bench_portal.py --trades 1000000 --workdir bench
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dashboard import clear_day, open_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--participants", type=int, default=2_000)
    parser.add_argument("--assets", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=Path("bench"))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    from fastapi.testclient import TestClient

    db, cleared = clear_day(args.trades, args.participants, args.assets, args.seed, args.workdir)
    app, opened = open_service(db)
    print(f"cleared in {cleared['clear_s']:.1f} s, opened in {opened['open_s']:.1f} s", flush=True)
    rt = app.state.runtime
    with TestClient(app) as client:
        newest = client.get("/v1/dashboard/trades", params={"limit": 1}).json()["items"][0]
        pids = rt.config.participant_ids
        retail = next((p for p in pids if p.startswith("RTL")), pids[-1])
        maker = pids[0]
        day = newest["received_at_ms"] - newest["received_at_ms"] % 86_400_000
        routes = {
            f"portal ({maker})": ("/v1/dashboard/portal", {"participant": maker}),
            f"portal ({retail})": ("/v1/dashboard/portal", {"participant": retail}),
            "trades, newest 50": ("/v1/dashboard/trades", {"limit": 50}),
            "trades, id prefix": ("/v1/dashboard/trades", {"limit": 50, "q": newest["id"][:-3]}),
            f"trades of {retail}": ("/v1/dashboard/trades", {"limit": 50, "participant": retail}),
            "trades, one day": (
                "/v1/dashboard/trades",
                {"limit": 50, "since_ms": day, "until_ms": day + 86_400_000},
            ),
            "finality": ("/v1/dashboard/finality", {}),
        }
        print("| view | server median | max |\n|---|---:|---:|")
        for name, (path, params) in routes.items():
            times = []
            for _ in range(args.repeat):
                r = client.get(path, params=params)
                r.raise_for_status()
                timing = r.headers.get("Server-Timing")
                times.append(float(timing.split("dur=")[1]) if timing else float("nan"))
            print(f"| {name} | {statistics.median(times):.1f} ms | {max(times):.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
