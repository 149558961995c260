"""Load generator for ``clearlane serve``: sustained trade submission over loopback.

    .venv/bin/python scripts/bench_serve.py --rate 20000 --batch 100 --window-ms 100 --seconds 300

It generates a realistic day (``clearlane.sim``) and its configuration with every pool's batch
window set to ``--window-ms``, creates a fresh database and an operator key, posts the day's
collateral deposits, starts ``clearlane serve`` (wall clock) in a subprocess and then, open-loop,
sends ``--rate`` trades/s as ``POST /v1/trades/batch`` requests of ``--batch`` trades over
``--connections`` keep-alive connections. A live-stream subscription (``batch.cleared``) gives
the wall time each batch was cleared; a trade's latency is that time minus the time its request
was sent (submit → cleared, L2 trades); ``scheduled_to_cleared_ms`` counts from the time the
open-loop schedule meant it to go out (a request that waited for a free connection counts its
wait: no coordinated omission), ``submit_to_receipt_ms`` is the response's own latency (the
step's commit). The SSE receive time is taken in the generator's own event loop, so a busy
generator inflates every figure (its CPU a trade is printed). Every 5 s it samples the server's RSS and CPU time, and
the rows queued for the clearing loop (``/metrics``: trades received but not yet stepped — what a
loop that falls behind holds in memory).

With ``--gateways N`` the server runs ``serve --gateways N --gateway-port PORT+1`` and the trades
go to the gateway port (the stream and /metrics stay on the main port); the server's CPU and RSS
are then its whole process tree's (docs/SCALING.md, "Gateways").

Prints (and with ``--json`` writes) the achieved rate, errors, latency percentiles, and the RSS
series. Exit code 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil

from clearlane.adapters.embedded import open_node
from clearlane.adapters.sql.store import SERVICE_PAGE_SIZE


def prepare(
    workdir: Path, trades: int, participants: int, assets: int, window_ms: int, seed: int
) -> tuple[Path, list[bytes], list[dict[str, Any]], Any]:
    from clearlane.sim.generator import generate_day

    day = generate_day(trades=trades, participants=participants, assets=assets, seed=seed)
    toml = re.sub(r"(?m)^window_ms = \d+$", f"window_ms = {window_ms}", day.config_toml)
    config = workdir / "config.toml"
    config.write_text(toml, encoding="utf-8")
    cols = day.trades.select(
        ["trade_id", "venue", "symbol", "buyer", "seller", "quantity", "price", "exch_batch_id"]
    )
    rows = cols.to_pylist()
    deposits = [d.model_dump(mode="json") for d in day.deposits]
    for d in deposits:
        d.pop("type", None)
        d.pop("v", None)
    return config, [], deposits, rows


def bodies(rows: list[dict[str, Any]], batch: int, run_tag: str) -> list[bytes]:
    now = int(time.time() * 1000)
    out = []
    for start in range(0, len(rows) - batch + 1, batch):
        chunk = []
        for r in rows[start : start + batch]:
            t = dict(r)
            t["trade_id"] = f"{run_tag}-{t['trade_id']}"
            t["executed_at"] = now
            if t["exch_batch_id"] is None:
                del t["exch_batch_id"]
            chunk.append(t)
        out.append(json.dumps({"trades": chunk}, separators=(",", ":")).encode())
    return out


async def stream_closed(
    base: str, headers: dict[str, str], closed: dict[str, float], stop: asyncio.Event, close_lag: list[float]
) -> None:
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=None) as client,
        client.stream("GET", "/v1/stream", params={"types": "batch.cleared"}) as resp,
    ):
        event = None
        async for line in resp.aiter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "batch.cleared":
                data = json.loads(line[6:])
                closed.setdefault(data["data"]["batch_id"], time.perf_counter())
                # wall time from the end of the batch window to this event reaching the client
                close_lag.append(time.time() * 1000 - data["data"]["cleared_at_ms"])


def tree_usage(proc: psutil.Process) -> tuple[float, float]:
    """CPU seconds and RSS bytes of the server and its gateway processes (``--gateways``)."""
    cpu_s = rss = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            cpu_s += times.user + times.system
            rss += p.memory_info().rss
    return cpu_s, rss


async def sampler(
    pid: int,
    samples: list[tuple[float, float, float, float]],
    stop: asyncio.Event,
    t0: float,
    base: str,
    headers: dict[str, str],
) -> None:
    proc = psutil.Process(pid)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        while not stop.is_set():
            cpu_s, rss = tree_usage(proc)
            queued = -1.0
            with contextlib.suppress(httpx.HTTPError):
                for line in (await client.get("/metrics")).text.splitlines():
                    if line.startswith('clearlane_queue_length{queue="intake_rows"}'):
                        queued = float(line.split()[-1])
            samples.append((time.perf_counter() - t0, rss / 2**20, cpu_s, queued))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)


async def load(
    base: str,
    headers: dict[str, str],
    payloads: list[bytes],
    rate: float,
    batch: int,
    seconds: float,
    connections: int,
    server_pid: int,
    trade_base: str | None = None,
) -> dict[str, Any]:
    closed: dict[str, float] = {}
    stop = asyncio.Event()
    samples: list[tuple[float, float, float, float]] = []
    close_lag: list[float] = []
    sse = asyncio.create_task(stream_closed(base, headers, closed, stop, close_lag))
    await asyncio.sleep(0.5)
    per_second = rate / batch
    total = min(len(payloads), int(per_second * seconds))
    # (due time on the open-loop schedule, send time, receipt time, batch ids of its L2 trades, status)
    sent: list[tuple[float, float, float, list[str], int]] = []
    errors: list[str] = []
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    host, port = (trade_base or base).removeprefix("http://").split(":")
    head = (
        f"POST /v1/trades/batch HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {headers['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()

    async def worker() -> None:
        # A minimal keep-alive HTTP/1.1 client: the load generator must cost far less CPU
        # than the server it measures (httpx costs ~2 ms of CPU per request).
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                i, due = item
                body = payloads[i]
                t_send = time.perf_counter()
                try:
                    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                    status_line = await reader.readline()
                    status = int(status_line.split()[1])
                    length = 0
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b""):
                            break
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                    data = await reader.readexactly(length)
                    if status != 200:
                        errors.append(f"{status}: {data[:200]!r}")
                        sent.append((due, t_send, time.perf_counter(), [], status))
                        continue
                    t_receipt = time.perf_counter()
                    items = orjson.loads(data)["items"]
                    sent.append(
                        (due, t_send, t_receipt, [it["batch_id"] for it in items if it["batch_id"]], 200)
                    )
                except Exception as exc:  # a transport error is an error of the run
                    errors.append(repr(exc))
                    sent.append((due, t_send, time.perf_counter(), [], 0))
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
        finally:
            writer.close()

    # Every connection must carry a request at least every few seconds: the server closes a
    # keep-alive connection idle for 5 s and answers 408 on one that sent nothing for 10 s since
    # it opened (protocol.py), so at a low rate fewer connections are opened.
    connections = max(1, min(connections, int(per_second * 4)))
    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    t0 = time.perf_counter()
    mon = asyncio.create_task(sampler(server_pid, samples, stop, t0, base, headers))
    for i in range(total):
        due = t0 + i / per_second
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(1.0)  # the last batches close
    stop.set()
    sse.cancel()
    await asyncio.gather(mon, return_exceptions=True)
    latencies = []
    from_due = []
    unmatched = 0
    for due, t_send, _, batch_ids, _ in sent:
        for b in batch_ids:
            t = closed.get(b)
            if t is None:
                unmatched += 1
            else:
                latencies.append((t - t_send) * 1000)
                from_due.append((t - due) * 1000)
    lat = np.array(latencies) if latencies else np.zeros(1)
    late = np.array(from_due) if from_due else np.zeros(1)
    receipt = np.array([(r - s) * 1000 for _, s, r, _, st in sent if st == 200] or [0.0])
    send_delay = np.array([(s - d) * 1000 for d, s, _, _, _ in sent] or [0.0])
    trades_sent = sum(1 for s in sent if s[4] == 200) * batch
    rss = [s[1] for s in samples]
    per_minute: dict[int, list[float]] = {}
    for t, mib, _, _ in samples:
        per_minute.setdefault(int(t // 60), []).append(mib)
    return {
        "connections": connections,
        "requests": len(sent),
        "trades_ok": trades_sent,
        "seconds": round(elapsed, 2),
        "trades_per_s": round(trades_sent / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:5],
        "l2_trades_measured": len(latencies),
        "l2_trades_unmatched": unmatched,
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p90": round(float(np.percentile(lat, 90)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
        },
        # The same from the time the open-loop schedule meant the request to go out: a request
        # that waited for a free connection counts its wait (no coordinated omission).
        "scheduled_to_cleared_ms": _percentiles(late),
        "submit_to_receipt_ms": _percentiles(receipt),
        "schedule_to_send_ms": _percentiles(send_delay),
        "window_end_to_event_ms": {
            "p50": round(float(np.percentile(close_lag, 50)), 1) if close_lag else None,
            "p99": round(float(np.percentile(close_lag, 99)), 1) if close_lag else None,
        },
        "rss_mib": {
            "start": round(rss[0], 1) if rss else None,
            "end": round(rss[-1], 1) if rss else None,
            "max": round(max(rss), 1) if rss else None,
            "mean_per_minute": [round(sum(v) / len(v), 1) for _, v in sorted(per_minute.items())],
        },
        "queued_rows_max": max((s[3] for s in samples), default=None),
        "samples": [(round(a, 1), round(b, 1), round(c, 1), d) for a, b, c, d in samples],
    }


def step_percentiles(metrics: str) -> dict[str, dict[str, float]]:
    """Per step kind (trades, tick, poll, event), from ``clearlane_runtime_step_seconds``: the
    count, mean, and the bucket bounds (ms) that hold the 50th and 99th percentiles and the max."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("clearlane_runtime_step_seconds_bucket"):
            kind = line.split('kind="')[1].split('"')[0]
            le = line.split('le="')[1].split('"')[0]
            buckets.setdefault(kind, []).append((float(le), float(line.split()[-1])))
        elif line.startswith("clearlane_runtime_step_seconds_sum"):
            sums[line.split('kind="')[1].split('"')[0]] = float(line.split()[-1])
    out: dict[str, dict[str, float]] = {}
    for kind, rows in buckets.items():
        n = rows[-1][1]
        if not n:
            continue

        def bound(q: float, rows: list[tuple[float, float]] = rows, n: float = n) -> float:
            return next(le for le, cum in rows if cum >= q * n) * 1000

        out[kind] = {
            "n": n,
            "mean": round(sums.get(kind, 0.0) / n * 1000, 1),
            "p50_le": bound(0.5),
            "p99_le": bound(0.99),
            "max_le": bound(1.0),
        }
    return out


def _percentiles(values: Any) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 1),
        "p99": round(float(np.percentile(values, 99)), 1),
        "max": round(float(values.max()), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=20_000, help="trades per second")
    ap.add_argument("--batch", type=int, default=100, help="trades per request")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--window-ms", type=int, default=100, help="batch window of every pool")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument(
        "--day-trades", type=int, default=6_000_000, help="distinct trades generated; more are re-sent"
    )
    ap.add_argument("--participants", type=int, default=300)
    ap.add_argument("--assets", type=int, default=8)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--tick-ms", type=float, default=50.0)
    ap.add_argument(
        "--gateways",
        type=int,
        default=0,
        help="serve --gateways N; trades go to the gateway port (--port + 1)",
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    wanted = int(args.rate * args.seconds) + args.batch
    # A long run at a high rate re-sends the generated day under new ids (each pass's ids get
    # their own suffix): 15M trades as Python rows would not fit beside the server.
    trades_needed = min(wanted, args.day_trades)
    print(f"generating {trades_needed:,} trades ...", flush=True)
    t = time.perf_counter()
    config, _, deposits, rows = prepare(
        work, trades_needed, args.participants, args.assets, args.window_ms, 7
    )
    tag = f"R{int(time.time())}"
    payloads = bodies(rows, args.batch, tag)
    passes = 1
    while len(payloads) * args.batch < wanted - args.batch:
        payloads += bodies(rows, args.batch, f"{tag}p{passes}")
        passes += 1
    del rows
    print(f"prepared {len(payloads):,} request bodies in {time.perf_counter() - t:.1f} s", flush=True)

    db = work / "serve.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    from clearlane.adapters.http.auth import KeyStore

    node = open_node(db, config, page_size=SERVICE_PAGE_SIZE)  # as serve would create it
    _, token = KeyStore(node.store).create("operator", label="bench")
    node.close()
    exe = Path(sys.executable).with_name("clearlane")
    server = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--db",
            str(db),
            "--port",
            str(args.port),
            "--tick-ms",
            str(args.tick_ms),
            "--no-webhooks",
            *(
                ["--gateways", str(args.gateways), "--gateway-port", str(args.port + 1)]
                if args.gateways
                else []
            ),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{args.port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit(
                    "server did not start: " + (server.stderr.read().decode() if server.stderr else "")
                )
            time.sleep(0.2)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            for d in deposits:
                r = c.post("/v1/collateral/deposits", json=d)
                if r.status_code not in (200, 201):
                    raise SystemExit(f"deposit failed: {r.status_code} {r.text}")
        print(
            f"server pid {server.pid}; sending {args.rate:,.0f} trades/s in batches of {args.batch} for {args.seconds:g} s",
            flush=True,
        )
        load_at_start = os.getloadavg()
        client_cpu = time.process_time()
        # The generator's own full collections walked everything it imported and prepared
        # (~90-125 ms each, several a run): a pause in reading the receipts and the SSE stream
        # is counted as the server's latency. What exists now is frozen out of the collector.
        gc.collect()
        gc.freeze()
        result = asyncio.run(
            load(
                base,
                headers,
                payloads,
                args.rate,
                args.batch,
                args.seconds,
                args.connections,
                server.pid,
                f"http://127.0.0.1:{args.port + 1}" if args.gateways else None,
            )
        )
        result["client_cpu_s"] = round(time.process_time() - client_cpu, 1)
        result["client_cpu_us_per_trade"] = round(
            result["client_cpu_s"] * 1e6 / max(1, result["trades_ok"]), 1
        )
        result["server_cpu_s"] = round(tree_usage(psutil.Process(server.pid))[0], 1)
        result["server_cpu_us_per_trade"] = (
            round((result["samples"][-1][2] - result["samples"][0][2]) * 1e6 / max(1, result["trades_ok"]), 1)
            if result["samples"]
            else None
        )
        result["load_average_at_start"] = load_at_start
        result["load_average"] = os.getloadavg()
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            overview = c.get("/v1/stats/overview").json()
            for line in c.get("/metrics").text.splitlines():
                if line.startswith("clearlane_runtime_loop_seconds_total"):
                    result[line.split("{")[1].split("}")[0]] = float(line.split()[-1])
                elif line.startswith("clearlane_gateway_requests_total"):
                    result[line.split()[0]] = float(line.split()[-1])
                elif line.startswith("clearlane_runtime_steps_total"):
                    kind = line.split('"')[1]
                    result[f"steps_{kind}_per_s"] = round(float(line.split()[-1]) / result["seconds"], 1)
            result["step_ms"] = step_percentiles(c.get("/metrics").text)
        result["server_cleared_latency_ms"] = {
            lane["pool"]: lane["cleared_latency_ms"] for lane in overview["lanes"] if lane["pool"]
        }
        result["config"] = vars(args) | {"workdir": str(work), "json": str(args.json) if args.json else None}
        result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    samples = result.pop("samples")
    print(json.dumps(result, indent=2, default=str))
    print("t(s)  rss(MiB)  server cpu(s)  queued rows")
    for s in samples:
        print(f"{s[0]:6.1f} {s[1]:9.1f} {s[2]:9.1f} {s[3]:9.0f}")
    if args.json:
        args.json.write_text(json.dumps({**result, "samples": samples}, indent=2, default=str))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
