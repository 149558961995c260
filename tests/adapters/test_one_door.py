"""Drivers go through the node's door: no adapter reads the engine (its arrays, its ledger, its
private state) or reaches through the runtime to the node's engine. What only the engine's
current state knows comes as snapshots from ``node/queries.py``; everything else from the
projections (docs/ARCHITECTURE.md, DESIGN.md "No driver reads engine arrays")."""

from __future__ import annotations

import re
from pathlib import Path

import clearlane.adapters

ADAPTERS = Path(clearlane.adapters.__file__).parent
# ``node.engine``, ``runtime.node.engine``, ``rt.node``: the engine or the node behind a
# runtime, read by a driver. (``store.engine`` in adapters/sql is SQLAlchemy's engine.)
REACH = re.compile(r"\b(?:node|runtime\.node|rt\.node|self\.node)\.engine\b|\b(?:runtime|rt)\.node\b")


def test_no_adapter_reads_the_engine() -> None:
    found = [
        f"{path.relative_to(ADAPTERS)}:{number}: {line.strip()}"
        for path in sorted(ADAPTERS.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if REACH.search(line)
    ]
    assert found == [], "adapters reaching into the engine:\n" + "\n".join(found)
