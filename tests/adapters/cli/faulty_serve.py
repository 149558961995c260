"""``clearlane serve`` with a clearing loop that fails on its first trade step — the failure
injected from outside (no test hook in the product), for test_serve_lifecycle.py."""

from __future__ import annotations

import sys
from typing import Any

from clearlane.node import runtime


def _fail(self: Any, jobs: Any, now: int) -> None:
    raise RuntimeError("injected loop failure")


runtime.Runtime._apply_trades = _fail  # type: ignore[method-assign]

if __name__ == "__main__":
    from clearlane.adapters.cli.main import app

    sys.argv = ["clearlane", *sys.argv[1:]]
    app()
