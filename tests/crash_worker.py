"""A clearing process for the crash test: feeds a fixed input sequence through a Node.

Every input has a source id, so a restarted process skips what was committed and continues
with the same log an uninterrupted run writes. Prints the final state root.

``pipelined`` as a fourth argument feeds the chunks through ``Node.clear_batches`` (the bulk
path: a writer thread commits step N while the engine applies step N + 1, chain observations
one chunk behind) instead of one ``submit`` + ``advance`` per chunk; ``process`` does the same
with the writer in a process of its own (``node/writer_process.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

from clearlane.adapters.embedded import open_node
from tests.conftest import EXAMPLE_CONFIG, T0, chunk, trade

PARTIES = ["MM-ALPHA", "MM-BETA", "BRK-NORTH", "RTL-0001", "RTL-0002", "CUST-VAULT"]


def inputs(chunks: int, rows: int) -> list[list[dict]]:
    out = []
    for c in range(chunks):
        part = []
        for r in range(rows):
            i = c * rows + r
            buyer = PARTIES[i % 6]
            seller = PARTIES[(i * 7 + 1) % 6]
            if buyer == seller:
                seller = PARTIES[(i + 1) % 6]
            part.append(trade(i, buyer, seller, qty=(1 + i % 97, 4), at=T0 + i * 37))
        out.append(part)
    return out


def main() -> None:
    db, chunks, rows = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    pipelined = sys.argv[4:] in (["pipelined"], ["process"])
    node = open_node(db, EXAMPLE_CONFIG, writer_process=sys.argv[4:] == ["process"])
    node.submit(
        "collateral_deposit",
        {"deposit_id": "d1", "participant": "RTL-0001", "asset": "USD", "amount": "100000"},
        T0,
        "deposit-1",
    )
    if pipelined:
        batches = [
            SimpleNamespace(trades=SimpleNamespace(table=chunk(part)), events=[], rejects=[])
            for part in inputs(chunks, rows)
        ]
        node.clear_batches(batches, source="chunks")
    else:
        for c, part in enumerate(inputs(chunks, rows)):
            node.submit("trades", chunk(part), part[0]["received_at_ms"], f"chunk-{c}")
            node.advance(part[-1]["received_at_ms"], f"chunk-{c}.chain")
    node.settle_until_quiet()
    print(node.engine.state_root())
    node.close()


if __name__ == "__main__":
    main()
