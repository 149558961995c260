"""The command's shape: the commands `clearlane --help` lists, in order, and a start-up that
imports none of the node, the adapters it drives or their heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import typer

from clearlane.adapters.cli.main import app

COMMANDS = [
    "demo",
    "clear",
    "status",
    "replay",
    "close",
    "bench",
    "stress",
    "proof",
    "verify-proof",
    "consistency",
    "verify",
    "dispute",
    "dispute-check",
    "publish",
    "worker",
    "serve",
    "manual-settle",
    "keys",
    "apikey",
    "escrow",
    "recon",
    "alerts",
]


def test_the_commands_help_lists_in_order() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert list(group.commands) == COMMANDS
    keys = group.commands["keys"]
    apikey = group.commands["apikey"]
    assert isinstance(keys, typer.core.TyperGroup) and isinstance(apikey, typer.core.TyperGroup)
    assert list(keys.commands) == ["init", "rotate", "export", "chain"]
    assert list(apikey.commands) == ["create", "list", "revoke"]


def test_help_imports_no_command_work() -> None:
    heavy = [
        "numpy",
        "pyarrow",
        "numba",
        "sqlalchemy",
        "fastapi",
        "uvicorn",
        "nats",
        "cryptography",
        "clearlane.node",
        "clearlane.adapters.sql",
        "clearlane.adapters.http",
        "clearlane.evidence",
        "clearlane.sim",
    ]
    code = (
        "import sys\n"
        "from clearlane.adapters.cli.main import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
