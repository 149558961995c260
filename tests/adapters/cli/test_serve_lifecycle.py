"""How ``clearlane serve`` and the commands that open a database end: a clearing loop that failed
still stops on SIGTERM, at once, with a non-zero exit and the failure named (it used to ignore
SIGTERM for over an hour: a submission taken by the failed step was never answered, and the
stop waited on it); a configuration that cannot be used leaves no database behind and a deeply
nested TOML value is a clean error, not a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from clearlane.adapters.cli.main import app
from tests.service_support import EXAMPLE, free_ports, trade_row, wait_for

FAULTY = Path(__file__).with_name("faulty_serve.py")
node = CliRunner()


def test_a_failed_runtime_ends_on_sigterm_naming_the_failure(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--db", str(tmp_path / "f.db"), "--config", str(EXAMPLE), "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, str(FAULTY), *args, "--insecure-no-auth", "--clock", "accelerated"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, every=0.1)
        streamed: list[str] = []

        def stream() -> None:  # an open event stream must not hold the stop either
            with httpx.stream("GET", f"{base}/v1/stream", timeout=30) as r:
                streamed.extend(r.iter_lines())

        watcher = threading.Thread(target=stream)
        watcher.start()
        r = httpx.post(f"{base}/v1/trades", json=trade_row(1), timeout=30)
        assert r.status_code == 503 and "injected loop failure" in r.json()["detail"]
        assert httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "failed"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
        watcher.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = err.decode()
    assert proc.returncode == 1, text
    assert "clearing runtime failed: RuntimeError: injected loop failure" in text
    assert "error: the clearing runtime failed: RuntimeError: injected loop failure" in text
    assert waited < 20, waited  # a generous bound: the point is "not an hour"
    assert not watcher.is_alive()


def test_a_config_error_leaves_no_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("nonsense = 1\n")
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 3000 + "1" + "]" * 3000 + "\n")
    trades = tmp_path / "t.csv"
    trades.write_text("trade_id\n")
    for config, message in ((bad, "assets"), (deep, "nested too deeply")):
        db = tmp_path / f"{config.stem}.db"
        result = node.invoke(app, ["clear", str(trades), "--db", str(db), "--config", str(config)])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert not result.exception or isinstance(result.exception, SystemExit)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "deep.toml", "t.csv"]
