"""An Ethereum base layer over JSON-RPC (web3.py), behind the node's ``BaseLayer`` port.

What it does with the engine's submissions: each becomes an EIP-1559 transaction from the
node's account to itself, value 0, whose calldata is the versioned anchor record
(:mod:`clearlane.adapters.chain.record`). ``advance(to_ms)`` reads the chain block by block
(the blocks whose timestamp is at most ``to_ms``) and reports each as a ``BlockProduced`` that
names only clearlane's own transactions, with the fees their receipts paid; a block hash that no
longer matches what was reported is a ``ChainReorg`` back to the last common block.

Why it is safe with a real chain, whose answers are not a function of the calls:

- **The log, not the chain, is replayed.** On restart the node hands each logged observation
  to :meth:`EthereumChain.replay`, which adopts it (the blocks reported, the transactions they
  included) without touching the network; the engine is rebuilt from the same log. Only the
  first ``advance`` after recovery speaks to the node again, from the last logged block on.
- **A transaction is sent at most once per nonce.** Before a signed transaction is broadcast it
  is appended (and fsync'd) to the journal (``<state dir>/<chain id>-<address>.jsonl``: tx id,
  sender, nonce, fees, tx hash, the raw bytes — never the key). After a crash the journal says
  what was sent: it is re-broadcast byte for byte (or fee-bumped), never re-signed under a new
  nonce. Nothing is sent before the first ``advance`` (so recovery has adopted the log first).
- **One nonce per reference.** The engine re-sends an anchor not seen in time under a new tx id;
  here the new attempt *replaces* the old one's nonce while that is not mined, so at most one
  attempt can ever be included: no double anchoring.
- **Stuck transactions** (not mined ``replace_after_blocks`` blocks after their last send) are
  re-signed with the same nonce and fees raised by ``fee_bump_pct`` (at least the 10 % nodes
  require), up to ``max_fee_cap_wei``; a transaction a reorg dropped is re-broadcast the same way.
- **An unreachable node** is not an error for the engine: ``advance`` reports nothing, retries
  with exponential backoff, and :meth:`EthereumChain.health` says ``unreachable`` (with since
  when and the last error) for the service's health check and alerts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

from clearlane.adapters.chain.ethkeys import EthKey, load_eth_libraries, load_key_file
from clearlane.adapters.chain.record import encode_record
from clearlane.core.model.chain import BlockProduced, ChainEvent, ChainReorg, TxKind, TxSubmission

__all__ = ["ChainUnavailable", "EthereumChain", "EthereumOptions"]

log = logging.getLogger("clearlane.chain.ethereum")

_GWEI = 10**9
_SNAPSHOT_FORMAT = "clearlane.ethereum-chain/1"


class ChainUnavailable(ConnectionError):
    """The JSON-RPC node did not answer (network, timeout, or an error reply)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EthereumOptions:
    """How the adapter talks to the node and prices its transactions."""

    rpc_url: str
    state_dir: str
    """Where the send journal lives (the store's key directory by default)."""
    key_file: str | None = None
    """A hex private-key file (0600); None: the key directory's active key."""
    chain_id: int | None = None
    """Refuse a node on another chain (None: take the node's)."""
    fee_wei_per_minor: int = 10**10
    """Wei per minor unit of the configured fee asset (ETH at scale 8: 10**10)."""
    priority_fee_wei: int = 1 * _GWEI
    max_fee_cap_wei: int = 500 * _GWEI
    replace_after_blocks: int = 3
    fee_bump_pct: int = 13
    reorg_window_blocks: int = 128
    """Reported blocks kept to find a fork point; a deeper reorg is an alert."""
    rpc_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    wait_max_s: float = 30.0
    """``advance`` to a time still ahead of the wall clock first waits for it, this long at most:
    a real chain cannot be observed ahead of time (``clear``'s settle steps engine time forward)."""


@dataclass(slots=True)
class _Tx:
    tx_id: str
    kind: TxKind
    ref: str
    payload_hash: str
    submitted_at_ms: int
    sender: str = ""
    nonce: int = -1
    hashes: list[str] = field(default_factory=list)
    raw: str = ""
    max_fee: int = 0
    tip: int = 0
    sent_height: int = -1
    included: int = -1
    superseded: bool = False


@dataclass(slots=True)
class _Health:
    state: str = "ok"
    failures: int = 0
    since: float | None = None
    last_error: str = ""
    retry_at: float = 0.0


def _hex(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class EthereumChain:
    """``clearlane.node.ports.BaseLayer`` on an Ethereum JSON-RPC node (module docstring)."""

    def __init__(self, options: EthereumOptions, genesis_ms: int, key: EthKey | None = None) -> None:
        load_eth_libraries()
        from web3 import HTTPProvider

        self.options = options
        self.genesis_ms = genesis_ms
        self._provider = HTTPProvider(
            options.rpc_url,
            request_kwargs={"timeout": options.rpc_timeout_s},
            exception_retry_configuration=None,
        )
        self._key = (
            key if key is not None else (load_key_file(options.key_file) if options.key_file else None)
        )
        self._chain_id: int | None = options.chain_id
        self._txs: dict[str, _Tx] = {}
        self._by_hash: dict[str, str] = {}
        self._latest_for_ref: dict[tuple[str, str], str] = {}
        self._queue: list[str] = []
        # Reported blocks, oldest first: (height, hash hex, at_ms, our tx ids).
        self._reported: list[tuple[int, str, int, tuple[str, ...]]] = []
        self._first_height: int | None = None
        self._last_to_ms = -(2**62)
        self._next_nonce: int | None = None
        self._live = False
        self._head = 0
        self._health = _Health()
        self._nonce_synced = False
        self._base_fee: int | None = None
        self._open: set[str] = set()
        """Sent, not mined, and still the owner of its nonce: watched for a fee bump."""
        self.rpc_calls = 0
        self.fees_paid_wei = 0
        """Fees of clearlane's transactions reported by this process (from their receipts)."""

    # -- the port ----------------------------------------------------------------------------

    def submit(self, txs: Sequence[TxSubmission]) -> None:
        for tx in txs:
            if tx.tx_id in self._txs:
                continue
            record = self._txs[tx.tx_id] = _Tx(
                tx.tx_id, tx.kind, tx.ref, tx.payload_hash.hex(), tx.submitted_at_ms
            )
            previous = self._latest_for_ref.get((tx.kind, tx.ref))
            self._latest_for_ref[(tx.kind, tx.ref)] = tx.tx_id
            if previous is not None:
                prev = self._txs[previous]
                prev.superseded = True
                # Replace it under its nonce while it is not mined: at most one attempt lands.
                # A replacement must outbid it, so its fees are the base for the bump.
                record.nonce, record.max_fee, record.tip = prev.nonce, prev.max_fee, prev.tip
            self._queue.append(tx.tx_id)
        if self._live and self._key is not None:
            self._base_fee = None
            self._guarded(self._flush)

    def advance(self, to_ms: int) -> list[ChainEvent]:
        if to_ms <= self._last_to_ms:
            return []
        self._last_to_ms = to_ms
        self._wait_for(to_ms)
        events: list[ChainEvent] = []
        if time.monotonic() < self._health.retry_at:
            return events
        self._guarded(lambda: self._step(to_ms, events))
        return events

    def _wait_for(self, to_ms: int) -> None:
        """Sleep until the wall clock reaches ``to_ms`` (at most ``wait_max_s``): blocks up to a
        time are only all known once that time has passed."""
        ahead_s = (to_ms - time.time() * 1000) / 1000
        if ahead_s > 0:
            if ahead_s > self.options.wait_max_s:
                log.warning(
                    "engine time is %.0f s ahead of the wall clock; waiting %.0f s",
                    ahead_s,
                    self.options.wait_max_s,
                )
            time.sleep(min(ahead_s, self.options.wait_max_s))

    def replay(self, to_ms: int, logged: Sequence[ChainEvent]) -> None:
        """Adopt a logged observation on recovery (no network): the log is the truth."""
        self._last_to_ms = max(self._last_to_ms, to_ms)
        for event in logged:
            if isinstance(event, ChainReorg):
                self._forget_after(event.fork_height)
            else:
                self._adopt(event.height, event.block_hash.hex(), event.at_ms, event.tx_ids)

    def tip_height(self) -> int:
        return self._reported[-1][0] if self._reported else 0

    def snapshot(self) -> bytes:
        """The reported view and the transactions (no key); :meth:`restore` needs the node."""
        doc = {
            "format": _SNAPSHOT_FORMAT,
            "options": asdict(self.options),
            "genesis_ms": self.genesis_ms,
            "first_height": self._first_height,
            "last_to_ms": self._last_to_ms,
            "reported": [[h, bh, at, list(ids)] for h, bh, at, ids in self._reported],
            "submitted": [
                [t.tx_id, t.kind, t.ref, t.payload_hash, t.submitted_at_ms] for t in self._txs.values()
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def restore(cls, data: bytes) -> Self:
        """An adapter with the snapshot's view; it signs only with the snapshot's ``key_file``
        (a key directory's key is not in the snapshot): without one it observes and never sends."""
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != _SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format is not {_SNAPSHOT_FORMAT!r}")
        chain = cls(EthereumOptions(**doc["options"]), int(doc["genesis_ms"]))
        chain._first_height = doc["first_height"]
        chain.submit([TxSubmission(i, k, r, bytes.fromhex(p), s) for i, k, r, p, s in doc["submitted"]])
        for h, bh, at, ids in doc["reported"]:
            chain._adopt(h, bh, at, tuple(ids))
        chain._last_to_ms = int(doc["last_to_ms"])
        return chain

    # -- inspection --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``ok`` or ``unreachable`` (alert-worthy), with the failure count and last error."""
        h = self._health
        return {
            "state": h.state,
            "failures": h.failures,
            "unreachable_for_s": None if h.since is None else round(time.monotonic() - h.since, 3),
            "last_error": h.last_error,
            "head": self._head,
            "reported": self.tip_height(),
            "pending": sum(1 for t in self._txs.values() if t.included < 0 and not t.superseded),
            "fees_paid_wei": self.fees_paid_wei,
            "rpc_calls": self.rpc_calls,
        }

    @property
    def address(self) -> str:
        return self._signer().address

    def tx_hashes(self, tx_id: str) -> list[str]:
        """Every Ethereum tx hash sent for ``tx_id`` (fee replacements included), oldest first."""
        record = self._txs.get(tx_id)
        return list(record.hashes) if record is not None else []

    # -- one advance -------------------------------------------------------------------------

    def _step(self, to_ms: int, events: list[ChainEvent]) -> None:
        if not self._live:
            self._go_live()
        self._base_fee = None
        sending = self._key is not None  # without a key (a restored snapshot) it only observes
        if sending:
            self._flush()
        head = _hex(self._rpc("eth_blockNumber", []))
        self._head = head
        self._check_reorg(events)
        height = (self._reported[-1][0] + 1) if self._reported else self._start_height(head)
        while height <= head:
            block = self._rpc("eth_getBlockByNumber", [hex(height), False])
            if block is None:
                break
            at_ms = max(_hex(block["timestamp"]) * 1000, self._reported[-1][2] if self._reported else 0)
            if at_ms > to_ms:
                break
            if self._reported and block["parentHash"] != self._reported[-1][1]:
                break  # the chain moved under us: the next advance sees the reorg
            events.append(self._report(height, block, at_ms))
            height += 1
        if sending:
            self._bump_stuck(head)

    def _report(self, height: int, block: dict[str, Any], at_ms: int) -> BlockProduced:
        ours = tuple(self._by_hash[h] for h in block["transactions"] if h in self._by_hash)
        fees_wei = 0
        for tx_hash in (h for h in block["transactions"] if h in self._by_hash):
            receipt = self._rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                fees_wei += _hex(receipt["gasUsed"]) * _hex(receipt["effectiveGasPrice"])
        self._adopt(height, block["hash"], at_ms, ours)
        self.fees_paid_wei += fees_wei
        return BlockProduced(
            height=height,
            at_ms=at_ms,
            block_hash=bytes.fromhex(block["hash"][2:]),
            parent_hash=bytes.fromhex(block["parentHash"][2:]),
            tx_ids=ours,
            fees_paid_minor=fees_wei // self.options.fee_wei_per_minor,
        )

    def _check_reorg(self, events: list[ChainEvent]) -> None:
        """Compare the newest reported block with the node's; walk back to the common block."""
        if not self._reported:
            return
        last = self._reported[-1]
        block = self._rpc("eth_getBlockByNumber", [hex(last[0]), False])
        if block is not None and block["hash"] == last[1]:
            return
        fork = self._reported[0][0] - 1
        for height, block_hash, _, _ in reversed(self._reported[:-1]):
            canonical = self._rpc("eth_getBlockByNumber", [hex(height), False])
            if canonical is not None and canonical["hash"] == block_hash:
                fork = height
                break
        if fork == self._reported[0][0] - 1 and len(self._reported) >= self.options.reorg_window_blocks:
            log.error("reorg deeper than the %d blocks kept: fork point assumed", len(self._reported))
        orphaned = [r for r in self._reported if r[0] > fork]
        events.append(
            ChainReorg(
                at_ms=last[2],
                fork_height=fork,
                orphaned_heights=tuple(r[0] for r in orphaned),
                orphaned_tx_ids=tuple(t for r in orphaned for t in r[3]),
            )
        )
        self._forget_after(fork)

    # -- reported view -----------------------------------------------------------------------

    def _adopt(self, height: int, block_hash: str, at_ms: int, tx_ids: tuple[str, ...]) -> None:
        if not block_hash.startswith("0x"):
            block_hash = "0x" + block_hash
        self._reported.append((height, block_hash, at_ms, tx_ids))
        if self._first_height is None:
            self._first_height = height
        for tx_id in tx_ids:
            record = self._txs.get(tx_id)
            if record is not None:
                record.included = height
                self._settled_nonce(record)
        del self._reported[: -self.options.reorg_window_blocks]

    def _settled_nonce(self, record: _Tx) -> None:
        """A mined tx: it and every other attempt on its nonce stop being watched."""
        self._open.discard(record.tx_id)
        for tx_id in [
            t
            for t in self._open
            if (self._txs[t].sender, self._txs[t].nonce) == (record.sender, record.nonce)
        ]:
            self._open.discard(tx_id)

    def _forget_after(self, fork: int) -> None:
        for height, _, _, tx_ids in self._reported:
            if height > fork:
                for tx_id in tx_ids:
                    record = self._txs.get(tx_id)
                    if record is not None:
                        record.included = -1
                        record.sent_height = -1  # gone with the block: re-broadcast it
                        if record.hashes:
                            self._open.add(tx_id)
        self._reported = [r for r in self._reported if r[0] <= fork]
        if not self._reported and self._first_height is not None:
            self._first_height = min(self._first_height, fork + 1)

    def _start_height(self, head: int) -> int:
        """The first block to report: the first after the engine's chain genesis."""
        if self._first_height is not None:
            return self._first_height
        lo, hi = 1, head + 1
        while lo < hi:  # the first height whose timestamp is after genesis_ms
            mid = (lo + hi) // 2
            block = self._rpc("eth_getBlockByNumber", [hex(mid), False])
            if block is not None and _hex(block["timestamp"]) * 1000 > self.genesis_ms:
                hi = mid
            else:
                lo = mid + 1
        self._first_height = lo
        return lo

    # -- sending -----------------------------------------------------------------------------

    def _signer(self) -> EthKey:
        if self._key is None:
            raise ChainUnavailable("no Ethereum key: pass a key file or a key directory")
        return self._key

    def _journal_path(self) -> Path:
        return Path(self.options.state_dir) / f"{self._chain_id}-{self._signer().address}.jsonl"

    def _go_live(self) -> None:
        node_chain = _hex(self._rpc("eth_chainId", []))
        if self._chain_id is not None and node_chain != self._chain_id:
            raise ValueError(f"the node is on chain {node_chain}, expected {self._chain_id}")
        self._chain_id = node_chain
        if self._key is not None:
            self._load_journal()
        self._live = True

    def _load_journal(self) -> None:
        path = self._journal_path()
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            sent = json.loads(line)
            record = self._txs.get(sent["tx_id"])
            if record is None:
                continue  # sent for an input this store no longer has: ignore, never re-send
            record.sender, record.nonce, record.raw = sent["sender"], sent["nonce"], sent["raw"]
            record.max_fee, record.tip = sent["max_fee"], sent["tip"]
            record.hashes.append(sent["hash"])
            self._by_hash[sent["hash"]] = record.tx_id
            self._next_nonce = max(self._next_nonce or 0, record.nonce + 1)
        # Re-broadcast anything not seen mined (it may never have left this machine).
        for record in self._txs.values():
            if record.hashes and record.included < 0:
                record.sent_height = -1
                self._open.add(record.tx_id)
            if record.superseded and record.tx_id in self._open:
                self._open.discard(record.tx_id)
        self._queue = [t for t in self._queue if not self._txs[t].hashes]

    def _flush(self) -> None:
        while self._queue:
            record = self._txs[self._queue[0]]
            # A superseded attempt never sent has nothing to replace: its successor takes the nonce.
            if record.included < 0 and not record.hashes and not record.superseded:
                self._send(record, *self._fees(record))
            self._queue.pop(0)

    def _fees(self, record: _Tx) -> tuple[int, int]:
        """(max fee, tip): twice the base fee plus the tip, or a bump of the record's last fees."""
        if self._base_fee is None:
            block = self._rpc("eth_getBlockByNumber", ["latest", False])
            self._base_fee = _hex(block.get("baseFeePerGas", "0x0"))
        tip, max_fee = self.options.priority_fee_wei, 2 * self._base_fee + self.options.priority_fee_wei
        if record.max_fee:
            bump = 100 + self.options.fee_bump_pct
            tip = max(tip, -(-record.tip * bump // 100))
            max_fee = max(max_fee, -(-record.max_fee * bump // 100))
        return min(max_fee, self.options.max_fee_cap_wei), min(tip, self.options.max_fee_cap_wei)

    def _send(self, record: _Tx, max_fee: int, tip: int) -> None:
        key = self._signer()
        if record.nonce < 0:
            record.nonce = self._take_nonce(key.address)
        data = encode_record(
            TxSubmission(
                record.tx_id,
                record.kind,
                record.ref,
                bytes.fromhex(record.payload_hash),
                record.submitted_at_ms,
            )
        )
        tx = {
            "type": 2,
            "chainId": self._chain_id,
            "nonce": record.nonce,
            "to": key.address,
            "value": 0,
            "data": data,
            "gas": 21_000 + 40 * len(data),  # covers calldata's EIP-7623 floor price
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        }
        raw, tx_hash = key.sign(tx)
        record.sender, record.raw, record.max_fee, record.tip = key.address, raw.hex(), max_fee, tip
        hash_hex = "0x" + tx_hash.hex()
        self._journal(record, hash_hex)
        record.hashes.append(hash_hex)
        self._by_hash[hash_hex] = record.tx_id
        self._open.add(record.tx_id)
        for tx_id in [t for t in self._open if t != record.tx_id and self._txs[t].nonce == record.nonce]:
            self._open.discard(tx_id)  # this attempt owns the nonce now
        self._broadcast(record)

    def _take_nonce(self, address: str) -> int:
        if self._next_nonce is None or not self._nonce_synced:
            chain_nonce = _hex(self._rpc("eth_getTransactionCount", [address, "pending"]))
            self._next_nonce = max(chain_nonce, self._next_nonce or 0)
            self._nonce_synced = True
        nonce = self._next_nonce
        self._next_nonce = nonce + 1
        return nonce

    def _broadcast(self, record: _Tx) -> None:
        try:
            self._rpc("eth_sendRawTransaction", ["0x" + record.raw])
        except ChainUnavailable as exc:
            text = str(exc).lower()
            # Already known / mined / replaced: the block scan will tell which of its hashes won.
            if not any(s in text for s in ("known", "nonce too low", "underpriced", "already")):
                raise
        record.sent_height = self._head

    def _journal(self, record: _Tx, tx_hash: str) -> None:
        path = self._journal_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = json.dumps(
            {
                "tx_id": record.tx_id,
                "sender": record.sender,
                "nonce": record.nonce,
                "hash": tx_hash,
                "raw": record.raw,
                "max_fee": record.max_fee,
                "tip": record.tip,
            },
            sort_keys=True,
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)  # the journal is the only record of a nonce's use until it is mined
        finally:
            os.close(fd)

    def _bump_stuck(self, head: int) -> None:
        for tx_id in sorted(self._open, key=lambda t: self._txs[t].nonce):
            record = self._txs[tx_id]
            if record.sent_height < 0:
                self._broadcast(record)  # after a restart or a reorg: the same bytes again
            elif head - record.sent_height >= self.options.replace_after_blocks:
                self._send(record, *self._fees(record))

    # -- transport ---------------------------------------------------------------------------

    def _rpc(self, method: str, params: list[Any]) -> Any:
        self.rpc_calls += 1
        try:
            reply = self._provider.make_request(method, params)
        except Exception as exc:  # requests' and web3's transport errors alike
            raise ChainUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        if "error" in reply:
            raise ChainUnavailable(f"{method}: {reply['error']}")
        return reply.get("result")

    def _guarded(self, action: Any) -> None:
        h = self._health
        try:
            action()
        except ChainUnavailable as exc:
            h.failures += 1
            if h.since is None:
                h.since = time.monotonic()
                log.warning("base layer unreachable: %s", exc)
            h.state, h.last_error = "unreachable", str(exc)[:500]
            delay = min(self.options.backoff_max_s, self.options.backoff_initial_s * 2 ** (h.failures - 1))
            h.retry_at = time.monotonic() + delay
            return
        if h.state != "ok":
            log.warning("base layer reachable again after %d failed attempts", h.failures)
        self._health = _Health()
