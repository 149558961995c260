"""The Ethereum adapter on a real anvil node: fee replacement, an engine re-send that replaces
the nonce (no double anchoring), an RPC outage, a crash between journal and broadcast, and the
anchor record as a third party reads it back from the chain; plus the record's own codec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearlane.adapters.chain.ethereum import ChainUnavailable, EthereumChain, EthereumOptions
from clearlane.adapters.chain.ethkeys import EthKeyStore, load_key_file
from clearlane.adapters.chain.record import RecordError, decode_record, encode_record
from clearlane.core.model.chain import BlockProduced, ChainEvent
from clearlane.node.signing import KeyStoreError
from clearlane.testing.chain_contract import GENESIS_MS, anchor, slot
from clearlane.testing.devserver import AnvilServer

GWEI = 10**9


@pytest.fixture
def anvil() -> Iterator[AnvilServer]:
    server = AnvilServer(timestamp_s=GENESIS_MS // 1000).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def key_dir(tmp_path: Path, anvil: AnvilServer) -> Path:
    key = EthKeyStore(tmp_path / "keys").ensure_active()
    anvil.fund(key.address)
    return tmp_path / "keys"


def open_chain(anvil: AnvilServer, key_dir: Path, **options: Any) -> EthereumChain:
    opts = EthereumOptions(rpc_url=anvil.url, state_dir=str(key_dir), backoff_initial_s=0.0, **options)
    return EthereumChain(opts, GENESIS_MS, EthKeyStore(key_dir).ensure_active())


def mine(anvil: AnvilServer, chain: EthereumChain, k: int, base_fee: int | None = None) -> list[ChainEvent]:
    if base_fee is not None:  # a fee spike: transactions priced below it stay in the mempool
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])
    anvil.mine(slot(k) // 1000)
    return chain.advance(slot(k))


def tx_ids(events: list[ChainEvent]) -> list[str]:
    return [t for e in events if isinstance(e, BlockProduced) for t in e.tx_ids]


def test_a_stuck_anchor_is_replaced_with_higher_fees_under_its_nonce(
    anvil: AnvilServer, key_dir: Path
) -> None:
    chain = open_chain(anvil, key_dir, replace_after_blocks=2)
    tx = anchor(1, slot(0) + 500)
    chain.submit([tx])
    chain.advance(slot(0) + 500)
    events: list[ChainEvent] = []
    for k in (1, 2):
        events += mine(anvil, chain, k, base_fee=int(3.2 * GWEI))  # above the first max fee (3 gwei)
    assert tx_ids(events) == []
    assert len(chain.tx_hashes(tx.tx_id)) == 2  # bumped after 2 blocks
    events += mine(anvil, chain, 3, base_fee=int(3.2 * GWEI))
    assert tx_ids(events) == [tx.tx_id]
    first, second = chain.tx_hashes(tx.tx_id)
    assert anvil.rpc("eth_getTransactionReceipt", [first]) is None
    receipt = anvil.rpc("eth_getTransactionReceipt", [second])
    fee_wei = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    block = next(e for e in events if isinstance(e, BlockProduced) and e.tx_ids)
    assert block.fees_paid_minor == fee_wei // 10**10
    replaced, original = (anvil.rpc("eth_getTransactionByHash", [h]) for h in (second, first))
    assert original is None and int(replaced["maxFeePerGas"], 16) >= 3 * GWEI * 113 // 100


def test_an_engine_resend_takes_over_the_nonce_so_one_anchor_lands(anvil: AnvilServer, key_dir: Path) -> None:
    chain = open_chain(anvil, key_dir, replace_after_blocks=100)
    first = anchor(2, slot(0) + 500)
    chain.submit([first])
    chain.advance(slot(0) + 500)
    events = mine(anvil, chain, 1, base_fee=int(3.2 * GWEI))
    second = anchor(2, slot(1) + 500, attempt=2)  # the engine re-sends under a new id
    chain.submit([second])
    for k in (2, 3):
        events += mine(anvil, chain, k, base_fee=int(3.2 * GWEI))
    assert tx_ids(events) == [second.tx_id]
    sent = [anvil.rpc("eth_getTransactionByHash", [h]) for h in chain.tx_hashes(second.tx_id)]
    assert {int(t["nonce"], 16) for t in sent} == {0}
    assert int(anvil.rpc("eth_getTransactionCount", [chain.address, "latest"]), 16) == 1


def test_a_third_party_reads_the_anchor_record_from_the_chain(anvil: AnvilServer, key_dir: Path) -> None:
    chain = open_chain(anvil, key_dir)
    tx = anchor(3, slot(0) + 500)
    chain.submit([tx])
    chain.advance(slot(0) + 500)
    events = mine(anvil, chain, 1)
    block = next(e for e in events if isinstance(e, BlockProduced) and e.tx_ids)
    onchain = anvil.rpc("eth_getBlockByHash", ["0x" + block.block_hash.hex(), True])
    sent = [t for t in onchain["transactions"] if t["from"].lower() == chain.address.lower()]
    record = decode_record(bytes.fromhex(sent[0]["input"][2:]))
    assert (record.kind, record.ref, record.tx_id, record.payload_hash) == (
        "anchor",
        tx.ref,
        tx.tx_id,
        tx.payload_hash,
    )


def test_an_rpc_outage_backs_off_reports_unreachable_and_recovers(anvil: AnvilServer, key_dir: Path) -> None:
    chain = open_chain(anvil, key_dir, replace_after_blocks=2, backoff_max_s=0.0)
    tx = anchor(4, slot(0) + 500)
    chain.submit([tx])
    chain.advance(slot(0) + 500)
    anvil.halt()  # the node goes away (and its mempool with it)
    assert chain.advance(slot(1)) == []
    assert chain.advance(slot(2)) == []
    health = chain.health()
    assert health["state"] == "unreachable" and health["failures"] == 2 and health["last_error"]
    anvil.start()
    events: list[ChainEvent] = []
    for k in range(3, 8):
        events += mine(anvil, chain, k)
    assert chain.health()["state"] == "ok"
    assert tx_ids(events) == [tx.tx_id]  # re-sent after the node lost it


def test_a_crash_between_journal_and_broadcast_resends_the_same_bytes(
    anvil: AnvilServer, key_dir: Path
) -> None:
    class Crashing(EthereumChain):
        def _broadcast(self, record: Any) -> None:
            raise ChainUnavailable("killed before the broadcast")

    opts = EthereumOptions(rpc_url=anvil.url, state_dir=str(key_dir), backoff_initial_s=0.0)
    crashed = Crashing(opts, GENESIS_MS, EthKeyStore(key_dir).ensure_active())
    tx = anchor(5, slot(0) + 500)
    crashed.submit([tx])
    crashed.advance(slot(0) + 500)
    journal = next(key_dir.glob("*.jsonl"))
    assert len(journal.read_text().splitlines()) == 1
    again = open_chain(anvil, key_dir)
    again.submit([tx])  # the node re-derives the submission from its log
    again.advance(slot(0) + 600)
    events = mine(anvil, again, 1)
    assert tx_ids(events) == [tx.tx_id]
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert len(lines) == 1 and again.tx_hashes(tx.tx_id) == [lines[0]["hash"]]


def test_the_anchor_record_round_trips_and_refuses_anything_else() -> None:
    tx = anchor(6, 0)
    data = encode_record(tx)
    assert data.startswith(b"clearlane\x01\x01") and data[11:43] == tx.payload_hash
    record = decode_record(data)
    assert (record.version, record.tx_id, record.ref) == (1, tx.tx_id, tx.ref)
    for bad, reason in (
        (b"clearlanf" + data[9:], "magic"),
        (data[:9] + b"\x02" + data[10:], "version"),
        (data[:10] + b"\x07" + data[11:], "kind"),
        (data + b"\x00", "trailing"),
        (data[:-1], "inside"),
        (data[:20], "shorter"),
    ):
        with pytest.raises(RecordError, match=reason):
            decode_record(bad)


def test_the_key_file_is_owner_only_and_rotation_keeps_the_old_key(tmp_path: Path) -> None:
    store = EthKeyStore(tmp_path / "keys")
    first = store.ensure_active()
    path = store.directory / f"{first.address}.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() not in repr(first)
    second = store.rotate()
    assert store.active() == second.address != first.address
    assert store.load(first.address).address == first.address
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        load_key_file(path)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(second)


def test_a_snapshot_restores_the_reported_view_and_carries_on(anvil: AnvilServer, key_dir: Path) -> None:
    chain = open_chain(anvil, key_dir)
    tx = anchor(7, slot(0) + 500)
    chain.submit([tx])
    chain.advance(slot(0) + 500)
    events = mine(anvil, chain, 1)
    assert chain.health()["fees_paid_wei"] > 0
    restored = EthereumChain.restore(chain.snapshot())
    assert restored.tip_height() == chain.tip_height() and restored.advance(slot(1)) == []
    anvil.mine(slot(2) // 1000)
    later = restored.advance(slot(2))
    last = [b for b in events if isinstance(b, BlockProduced)][-1]
    assert [b.height for b in later if isinstance(b, BlockProduced)] == [last.height + 1]
    assert b"EthKey" not in chain.snapshot() and b"private" not in chain.snapshot()


def test_the_ethereum_libraries_leave_the_recursion_limit_alone(tmp_path: Path) -> None:
    """py_ecc (under eth-account) raises it to 100,000 at import; the service relies on the
    default to refuse a deeply nested body with RecursionError instead of overflowing the stack."""
    import subprocess
    import sys

    code = (
        "import sys; before = sys.getrecursionlimit();"
        "from clearlane.adapters.chain.ethkeys import EthKeyStore;"
        f"EthKeyStore({str(tmp_path)!r}).ensure_active();"
        "from clearlane.adapters.chain.ethereum import EthereumChain, EthereumOptions;"
        "EthereumChain(EthereumOptions(rpc_url='http://127.0.0.1:9', state_dir='.'), 0);"
        "print(before, sys.getrecursionlimit())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == out[1]
