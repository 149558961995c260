"""The node on a real base layer: clear trades, anchor on anvil, stop with an anchor sent but not
mined, restart (the log is replayed, not the chain), and see the batch anchored and final with
exactly one anchor transaction on the chain."""

from __future__ import annotations

from pathlib import Path

from clearlane.adapters.chain.ethkeys import EthKeyStore
from clearlane.adapters.chain.record import decode_record
from clearlane.adapters.embedded import ChainChoice, open_node
from clearlane.core.model.events import BatchAnchored, BatchFinal, BatchReorged
from clearlane.node.ports import StoreError
from clearlane.testing.devserver import AnvilServer
from tests.conftest import EXAMPLE_CONFIG, T0, chunk, trade

START_S = T0 // 1000


def anchors_on_chain(anvil: AnvilServer, address: str) -> list[tuple[str, str]]:
    """(ref, tx id) of every anchor record the account has on the chain."""
    found = []
    for height in range(1, int(anvil.rpc("eth_blockNumber"), 16) + 1):
        block = anvil.rpc("eth_getBlockByNumber", [hex(height), True])
        for tx in block["transactions"]:
            if tx["from"].lower() == address.lower():
                record = decode_record(bytes.fromhex(tx["input"][2:]))
                found.append((record.ref, record.tx_id))
    return found


def test_the_node_anchors_restarts_from_its_log_and_anchors_once(tmp_path: Path) -> None:
    anvil = AnvilServer(timestamp_s=START_S - 60).start()
    try:
        keys = tmp_path / "keys"
        address = EthKeyStore(keys).ensure_active().address
        anvil.fund(address)
        choice = ChainChoice("ethereum", anvil.url)
        db = tmp_path / "eth.db"
        node = open_node(db, EXAMPLE_CONFIG, keys=keys, chain=choice)
        rows = [trade(i, at=T0 + i * 10) for i in range(5)]
        node.submit("trades", chunk(rows), T0, "trades#0")
        node.submit("tick", {}, (START_S + 1) * 1000)  # the fast pool's batch closes
        node.advance((START_S + 2) * 1000)  # its anchor is handed over and sent
        sent = node.chain.health()["pending"]
        root = node.engine.state_root()
        node.close()
        assert sent >= 1

        node = open_node(db, None, keys=keys, chain=choice)  # recovery: the log, not the chain
        assert node.engine.state_root() == root
        events = []
        for s in range(3, 12, 2):
            anvil.mine(START_S + s)
            step = node.advance((START_S + s) * 1000)
            events += list(step.events) if step is not None else []
        anchored = [e for e in events if isinstance(e, BatchAnchored)]
        final = [e for e in events if isinstance(e, BatchFinal)]
        assert anchored and {e.batch_id for e in final} >= {e.batch_id for e in anchored}
        refs = [ref for ref, _ in anchors_on_chain(anvil, address)]
        assert sorted(refs) == sorted(set(refs)), "a batch was anchored twice"
        assert {e.batch_id for e in anchored} <= set(refs)
        assert node.chain.health()["state"] == "ok"
        node.close()

        try:
            open_node(db, None, keys=keys)  # the simulated chain cannot continue this log
        except StoreError as exc:
            assert "ethereum" in str(exc)
        else:
            raise AssertionError("a store anchored on ethereum opened on the simulated chain")
    finally:
        anvil.stop()


def test_a_reorg_on_anvil_takes_the_anchor_away_and_the_node_anchors_it_again(tmp_path: Path) -> None:
    anvil = AnvilServer(timestamp_s=START_S - 60).start()
    try:
        keys = tmp_path / "keys"
        address = EthKeyStore(keys).ensure_active().address
        anvil.fund(address)
        node = open_node(
            tmp_path / "r.db", EXAMPLE_CONFIG, keys=keys, chain=ChainChoice("ethereum", anvil.url)
        )
        node.submit("trades", chunk([trade(i, at=T0 + i * 10) for i in range(3)]), T0, "trades#0")
        node.submit("tick", {}, (START_S + 1) * 1000)
        node.advance((START_S + 2) * 1000)  # the anchor is sent
        events = []

        def observe(s: int) -> None:
            step = node.advance((START_S + s) * 1000)
            events.extend(step.events if step is not None else [])

        anvil.mine(START_S + 3)
        observe(3)
        assert any(isinstance(e, BatchAnchored) for e in events)
        anvil.rpc("anvil_reorg", [1, []])  # the anchor's block is replaced by an empty one
        anvil.mine(START_S + 5)
        observe(5)
        assert any(isinstance(e, BatchReorged) for e in events)
        for s in range(7, 16, 2):  # re-broadcast, mined again, confirmed
            anvil.mine(START_S + s)
            observe(s)
        anchored = [e for e in events if isinstance(e, BatchAnchored)]
        assert len(anchored) == 2 and anchored[1].height > anchored[0].height
        assert anchored[0].tx_id == anchored[1].tx_id  # the same transaction, not a second anchor
        assert any(isinstance(e, BatchFinal) for e in events)
        assert len(anchors_on_chain(anvil, address)) == 1
        node.close()
    finally:
        anvil.stop()
