"""A deterministic simulated base layer with a seeded fault schedule.

Every random-looking decision is a hash of (chain seed, fault seed, what is being decided,
the natural key of the thing): the tx id for drop and delay, the slot index for outages, the
reorg height and tx id for reorg losses. Nothing depends on how calls were batched, on a
clock, or on global randomness, so a replay of the same calls gives the same bytes.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import heapq
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Self

from clearlane.core.model.chain import BlockProduced, ChainEvent, ChainReorg, TxSubmission, produced_block
from clearlane.core.proofs.canonical import canonical_json

__all__ = ["ChainParams", "FaultSchedule", "SimulatedChain", "TxStatus"]

TxStatus = Literal["unknown", "pending", "included", "dropped"]

_SNAPSHOT_FORMAT = "clearlane.simulated-chain/1"
_BLOCK_DOMAIN = b"clearlane.sim.block.v1\x00"
_GENESIS_DOMAIN = b"clearlane.sim.genesis.v1\x00"
_DRAW_DOMAIN = "clearlane.sim.faults.v1"
_UNIT_SCALE = float(1 << 53)
_BLOCK_HEAD = struct.Struct(">QqQ")
_U32 = struct.Struct(">I")
_BLOCK_HASHER = hashlib.sha256(_BLOCK_DOMAIN)  # copied per block: the domain is hashed once


def _int_field(d: Mapping[str, Any], key: str, default: int, minimum: int | None = None) -> int:
    value = d.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {value}")
    return value


def _probability_field(d: Mapping[str, Any], key: str) -> float:
    value = d.get(key, 0.0)
    # TOML writers emit `0` and `1` as integers, which are valid probabilities.
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


def _pairs_field(d: Mapping[str, Any], key: str) -> tuple[tuple[int, int], ...]:
    raw = d.get(key, [])
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{key} must be a list of [a, b] pairs, got {raw!r}")
    pairs: list[tuple[int, int]] = []
    for item in raw:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            raise ValueError(f"{key} entries must be [int, int] pairs, got {item!r}")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def _check_unknown(what: str, d: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} key {unknown[0]!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainParams:
    """Block production of the simulated chain.

    Block slot ``k >= 1`` falls at ``genesis_ms + k * block_time_ms``; the implicit genesis
    block (height 0, no transactions) sits at ``genesis_ms``. ``seed`` names the chain: it
    fixes the genesis hash and is mixed into every fault draw.
    """

    genesis_ms: int
    block_time_ms: int = 2000
    txs_per_block_max: int = 10_000
    fee_per_tx_minor: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        checked = {
            "genesis_ms": None,
            "block_time_ms": 1,
            "txs_per_block_max": 1,
            "fee_per_tx_minor": 0,
            "seed": None,
        }
        for key, minimum in checked.items():
            _int_field({key: getattr(self, key)}, key, 0, minimum)

    def to_dict(self) -> dict[str, Any]:
        return {
            "genesis_ms": self.genesis_ms,
            "block_time_ms": self.block_time_ms,
            "txs_per_block_max": self.txs_per_block_max,
            "fee_per_tx_minor": self.fee_per_tx_minor,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChainParams:
        """Keys as in `to_dict`; ``genesis_ms`` is required, unknown keys raise ValueError."""
        _check_unknown(
            "chain params",
            d,
            ("genesis_ms", "block_time_ms", "txs_per_block_max", "fee_per_tx_minor", "seed"),
        )
        if "genesis_ms" not in d:
            raise ValueError("missing chain params key 'genesis_ms'")
        defaults = cls(genesis_ms=0)
        return cls(
            genesis_ms=_int_field(d, "genesis_ms", 0),
            block_time_ms=_int_field(d, "block_time_ms", defaults.block_time_ms, 1),
            txs_per_block_max=_int_field(d, "txs_per_block_max", defaults.txs_per_block_max, 1),
            fee_per_tx_minor=_int_field(d, "fee_per_tx_minor", defaults.fee_per_tx_minor, 0),
            seed=_int_field(d, "seed", defaults.seed),
        )


_FAULT_KEYS = (
    "seed",
    "drop_probability",
    "drop_tx_ids",
    "delay_probability",
    "delay_blocks",
    "reorgs",
    "reorg_every_blocks",
    "reorg_depth",
    "reorg_drop_probability",
    "outages",
    "outage_probability_per_block",
    "outage_duration_ms",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSchedule:
    """What goes wrong on the simulated chain, either listed explicitly or drawn from rates.

    Keys accepted by `from_dict` (all optional; the defaults inject no faults):

    - ``seed`` (int, 0): mixed with `ChainParams.seed` into every draw below.
    - ``drop_probability`` (float in [0, 1], 0): chance a submitted tx is never included,
      decided from (seeds, tx id).
    - ``drop_tx_ids`` (list of str, []): tx ids that are always dropped.
    - ``delay_probability`` (float in [0, 1], 0): chance a tx becomes eligible only
      ``delay_blocks`` block slots after it otherwise would, decided from (seeds, tx id).
    - ``delay_blocks`` (int >= 0, 1): the delay, in block slots of `ChainParams.block_time_ms`.
    - ``reorgs`` (list of [at_height, depth], []): when height ``at_height`` is first
      produced, the last ``depth`` blocks (``at_height`` included) are orphaned and replaced.
      Heights must be unique, ``at_height >= 1``, ``depth >= 1``.
    - ``reorg_every_blocks`` (int >= 0, 0 = off): also reorg at every height that is a
      multiple of this, with depth ``reorg_depth``; where both apply the deeper one wins.
    - ``reorg_depth`` (int >= 1, 1): depth of the periodic reorgs.
    - ``reorg_drop_probability`` (float in [0, 1], 0): chance an orphaned tx is lost instead
      of returning to the mempool, decided from (seeds, reorg height, tx id).
    - ``outages`` (list of [start_ms, end_ms], []): no block is produced in a slot whose time
      is in the half-open window ``[start_ms, end_ms)``.
    - ``outage_probability_per_block`` (float in [0, 1], 0): chance, per block slot outside
      any outage, that an outage starts at that slot, decided from (seeds, slot index).
    - ``outage_duration_ms`` (int >= 0, 0): length of those generated outages; 0 disables them.
    """

    seed: int = 0
    drop_probability: float = 0.0
    drop_tx_ids: frozenset[str] = field(default_factory=frozenset)
    delay_probability: float = 0.0
    delay_blocks: int = 1
    reorgs: tuple[tuple[int, int], ...] = ()
    reorg_every_blocks: int = 0
    reorg_depth: int = 1
    reorg_drop_probability: float = 0.0
    outages: tuple[tuple[int, int], ...] = ()
    outage_probability_per_block: float = 0.0
    outage_duration_ms: int = 0

    def __post_init__(self) -> None:
        for key in (
            "drop_probability",
            "delay_probability",
            "reorg_drop_probability",
            "outage_probability_per_block",
        ):
            p = getattr(self, key)
            if not isinstance(p, int | float) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
                raise ValueError(f"{key} must be a probability in [0, 1], got {p!r}")
            object.__setattr__(self, key, float(p))
        minimums = {
            "seed": None,
            "delay_blocks": 0,
            "reorg_every_blocks": 0,
            "reorg_depth": 1,
            "outage_duration_ms": 0,
        }
        for key, minimum in minimums.items():
            _int_field({key: getattr(self, key)}, key, 0, minimum)
        ids = frozenset(self.drop_tx_ids)
        if not all(isinstance(i, str) and i for i in ids):
            raise ValueError("drop_tx_ids must be non-empty strings")
        object.__setattr__(self, "drop_tx_ids", ids)

        reorgs = tuple(sorted(_pairs_field({"reorgs": list(self.reorgs)}, "reorgs")))
        for at_height, depth in reorgs:
            if at_height < 1 or depth < 1:
                raise ValueError(
                    f"reorgs entries need at_height >= 1 and depth >= 1, got {[at_height, depth]}"
                )
        heights = [h for h, _ in reorgs]
        if len(set(heights)) != len(heights):
            raise ValueError("reorgs lists the same at_height twice")
        object.__setattr__(self, "reorgs", reorgs)

        outages = tuple(sorted(_pairs_field({"outages": list(self.outages)}, "outages")))
        for start_ms, end_ms in outages:
            if end_ms < start_ms:
                raise ValueError(f"outages entries need start_ms <= end_ms, got {[start_ms, end_ms]}")
        object.__setattr__(self, "outages", outages)

    @classmethod
    def none(cls) -> FaultSchedule:
        return cls()

    @property
    def max_reorg_depth(self) -> int:
        """Deepest reorg this schedule can cause: blocks further back are final."""
        depth = max((d for _, d in self.reorgs), default=0)
        if self.reorg_every_blocks > 0:
            depth = max(depth, self.reorg_depth)
        return depth

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "drop_probability": self.drop_probability,
            "drop_tx_ids": sorted(self.drop_tx_ids),
            "delay_probability": self.delay_probability,
            "delay_blocks": self.delay_blocks,
            "reorgs": [list(p) for p in self.reorgs],
            "reorg_every_blocks": self.reorg_every_blocks,
            "reorg_depth": self.reorg_depth,
            "reorg_drop_probability": self.reorg_drop_probability,
            "outages": [list(p) for p in self.outages],
            "outage_probability_per_block": self.outage_probability_per_block,
            "outage_duration_ms": self.outage_duration_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultSchedule:
        """Build from a TOML/JSON table; see the class docstring for the keys."""
        _check_unknown("fault schedule", d, _FAULT_KEYS)
        drop_ids = d.get("drop_tx_ids", [])
        if not isinstance(drop_ids, list | tuple) or not all(isinstance(i, str) for i in drop_ids):
            raise ValueError(f"drop_tx_ids must be a list of strings, got {drop_ids!r}")
        return cls(
            seed=_int_field(d, "seed", 0),
            drop_probability=_probability_field(d, "drop_probability"),
            drop_tx_ids=frozenset(drop_ids),
            delay_probability=_probability_field(d, "delay_probability"),
            delay_blocks=_int_field(d, "delay_blocks", 1, 0),
            reorgs=_pairs_field(d, "reorgs"),
            reorg_every_blocks=_int_field(d, "reorg_every_blocks", 0, 0),
            reorg_depth=_int_field(d, "reorg_depth", 1, 1),
            reorg_drop_probability=_probability_field(d, "reorg_drop_probability"),
            outages=_pairs_field(d, "outages"),
            outage_probability_per_block=_probability_field(d, "outage_probability_per_block"),
            outage_duration_ms=_int_field(d, "outage_duration_ms", 0, 0),
        )


class _Block(NamedTuple):
    """A block of the current branch (a tuple: one is made every 2 s of a simulated day)."""

    height: int
    at_ms: int
    block_hash: bytes
    tx_ids: tuple[str, ...]


# (submitted_at_ms, tx_id, eligible_at_ms): FIFO order among txs that may enter a block now.
_ReadyEntry = tuple[int, str, int]
# (eligible_at_ms, submitted_at_ms, tx_id): delayed txs, ordered by when they may enter.
_DelayedEntry = tuple[int, int, str]


def _heap_extend(heap: list[Any], entries: list[Any]) -> None:
    # Keys are unique (they end in the tx id), so pop order does not depend on how the heap
    # was built; a bulk heapify keeps large submit batches linear.
    if len(entries) > len(heap):
        heap.extend(entries)
        heapq.heapify(heap)
    else:
        for entry in entries:
            heapq.heappush(heap, entry)


def _merge_windows(windows: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for start_ms, end_ms in sorted(windows):
        if start_ms == end_ms:
            continue
        if ends and start_ms <= ends[-1]:
            ends[-1] = max(ends[-1], end_ms)
        else:
            starts.append(start_ms)
            ends.append(end_ms)
    return starts, ends


class SimulatedChain:
    """Deterministic in-memory chain implementing `clearlane.node.ports.BaseLayer`.

    Inclusion: a block at time T takes pending txs with ``submitted_at_ms <= T`` (and, for
    delayed txs, eligibility reached by T) in (submitted_at_ms, tx_id) order up to
    ``txs_per_block_max``; the rest wait. An id seen before (pending, included or dropped) is
    ignored on re-submission, so a dropped tx can only come back under a new id.

    Reorg: when a scheduled height is first produced, the last ``depth`` blocks are orphaned
    (`ChainReorg`) and every orphaned tx not lost to ``reorg_drop_probability`` returns to
    the mempool keeping its original queue position, ahead of anything submitted later. The
    replacement blocks reuse the orphaned heights and times; the first of them is empty (the
    competing producer had not seen those txs), so orphaned txs land at least one height
    later than before and the replacement hashes always differ from the orphaned ones.
    """

    def __init__(self, params: ChainParams, faults: FaultSchedule | None = None) -> None:
        self._params = params
        self._faults = faults if faults is not None else FaultSchedule.none()
        self._reach_blocks = self._faults.max_reorg_depth
        self._draw_base = hashlib.sha256(f"{_DRAW_DOMAIN}|{params.seed}|{self._faults.seed}|".encode())
        self._genesis_hash = hashlib.sha256(
            _GENESIS_DOMAIN + f"{params.seed}|{params.genesis_ms}".encode()
        ).digest()
        self._outage_starts, self._outage_ends = _merge_windows(self._faults.outages)
        self._reorg_at: dict[int, int] = dict(self._faults.reorgs)

        self._next_slot = 1
        self._reorg_count = 0
        self._generated_outage_end_ms = params.genesis_ms
        self._blocks: list[_Block] = []
        self._included_height: dict[str, int] = {}
        # Times of pending txs and of included txs a future reorg can still orphan.
        self._tx_times: dict[str, tuple[int, int]] = {}
        self._dropped: set[str] = set()
        self._ready: list[_ReadyEntry] = []
        self._delayed: list[_DelayedEntry] = []
        # No block-level fault can happen (no outage, no reorg): `advance` skips their checks.
        faults = self._faults
        self._plain = not (
            self._outage_starts
            or (faults.outage_duration_ms > 0 and faults.outage_probability_per_block > 0.0)
            or self._reorg_at
            or faults.reorg_every_blocks > 0
        )

    @property
    def params(self) -> ChainParams:
        return self._params

    @property
    def faults(self) -> FaultSchedule:
        return self._faults

    # -- port -------------------------------------------------------------------------------

    def submit(self, txs: Sequence[TxSubmission]) -> None:
        faults = self._faults
        drop_p = faults.drop_probability
        delay_ms = faults.delay_blocks * self._params.block_time_ms
        delay_p = faults.delay_probability if delay_ms > 0 else 0.0
        delay_floor_ms = self._params.genesis_ms + 1
        tx_times = self._tx_times
        ready: list[_ReadyEntry] = []
        delayed: list[_DelayedEntry] = []
        for tx in txs:
            tx_id = tx.tx_id
            if tx_id in tx_times or tx_id in self._included_height or tx_id in self._dropped:
                continue
            drop_u = delay_u = 1.0
            if drop_p > 0.0 or delay_p > 0.0:
                drop_u, delay_u = self._draw2("tx", tx_id)
            if drop_u < drop_p or tx_id in faults.drop_tx_ids:
                self._dropped.add(tx_id)
                continue
            submitted_at_ms = tx.submitted_at_ms
            if delay_u < delay_p:
                # Counted from the slot it would have made; nothing before slot 1 has a block.
                eligible_at_ms = max(submitted_at_ms, delay_floor_ms) + delay_ms
                delayed.append((eligible_at_ms, submitted_at_ms, tx_id))
            else:
                eligible_at_ms = submitted_at_ms
                ready.append((submitted_at_ms, tx_id, eligible_at_ms))
            tx_times[tx_id] = (submitted_at_ms, eligible_at_ms)
        _heap_extend(self._ready, ready)
        _heap_extend(self._delayed, delayed)

    def advance(self, to_ms: int) -> list[ChainEvent]:
        events: list[ChainEvent] = []
        genesis_ms = self._params.genesis_ms
        block_time_ms = self._params.block_time_ms
        # Without a block-level fault (`_plain`) no slot is an outage and no height a reorg: the
        # two checks are skipped, 43,000 blocks a simulated day (issue 18).
        plain = self._plain
        while True:
            slot = self._next_slot
            at_ms = genesis_ms + slot * block_time_ms
            if at_ms > to_ms:
                break
            self._next_slot = slot + 1
            if plain:
                events.append(self._append_block(at_ms, self._take(at_ms)))
                self._forget_final()
                continue
            if self._in_outage(slot, at_ms):
                continue
            self._produce_new_block(at_ms, events)
        return events

    def replay(self, to_ms: int, logged: Sequence[ChainEvent]) -> None:
        """Deterministic: the same ``advance`` again reproduces ``logged`` (the node's recovery
        then checks the engine's replay against the stored state root)."""
        self.advance(to_ms)

    def tip_height(self) -> int:
        return len(self._blocks)

    def snapshot(self) -> bytes:
        doc = {
            "format": _SNAPSHOT_FORMAT,
            "params": self._params.to_dict(),
            "faults": self._faults.to_dict(),
            "next_slot": self._next_slot,
            "reorg_count": self._reorg_count,
            "generated_outage_end_ms": self._generated_outage_end_ms,
            "blocks": [[b.height, b.at_ms, b.block_hash.hex(), list(b.tx_ids)] for b in self._blocks],
            "txs": {tx_id: list(times) for tx_id, times in self._tx_times.items()},
            "dropped": sorted(self._dropped),
        }
        return canonical_json(doc, ascii_only=True)

    @classmethod
    def restore(cls, data: bytes) -> Self:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError("snapshot is not valid JSON") from exc
        if not isinstance(doc, dict) or doc.get("format") != _SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format is not {_SNAPSHOT_FORMAT!r}")
        _check_unknown(
            "snapshot",
            doc,
            (
                "format",
                "params",
                "faults",
                "next_slot",
                "reorg_count",
                "generated_outage_end_ms",
                "blocks",
                "txs",
                "dropped",
            ),
        )
        chain = cls(ChainParams.from_dict(doc["params"]), FaultSchedule.from_dict(doc["faults"]))
        chain._next_slot = _int_field(doc, "next_slot", 1, 1)
        chain._reorg_count = _int_field(doc, "reorg_count", 0, 0)
        chain._generated_outage_end_ms = _int_field(doc, "generated_outage_end_ms", chain._params.genesis_ms)

        raw_blocks = doc.get("blocks")
        if not isinstance(raw_blocks, list):
            raise ValueError("snapshot blocks must be a list")
        for expected_height, raw in enumerate(raw_blocks, start=1):
            if not isinstance(raw, list) or len(raw) != 4:
                raise ValueError(f"snapshot block {expected_height} is malformed")
            height, at_ms, hash_hex, tx_ids = raw
            if height != expected_height or not isinstance(at_ms, int) or not isinstance(hash_hex, str):
                raise ValueError(f"snapshot block {expected_height} is malformed")
            if not isinstance(tx_ids, list) or not all(isinstance(t, str) for t in tx_ids):
                raise ValueError(f"snapshot block {expected_height} tx ids are malformed")
            block = _Block(height, at_ms, bytes.fromhex(hash_hex), tuple(tx_ids))
            chain._blocks.append(block)
            for tx_id in block.tx_ids:
                chain._included_height[tx_id] = height

        raw_txs = doc.get("txs")
        if not isinstance(raw_txs, dict):
            raise ValueError("snapshot txs must be an object")
        for tx_id, times in raw_txs.items():
            if (
                not isinstance(times, list)
                or len(times) != 2
                or not all(isinstance(t, int) and not isinstance(t, bool) for t in times)
            ):
                raise ValueError(f"snapshot times for tx {tx_id!r} are malformed")
            submitted_at_ms, eligible_at_ms = times
            chain._tx_times[tx_id] = (submitted_at_ms, eligible_at_ms)
            if tx_id not in chain._included_height:
                chain._enqueue(tx_id, submitted_at_ms, eligible_at_ms)

        raw_dropped = doc.get("dropped")
        if not isinstance(raw_dropped, list) or not all(isinstance(t, str) for t in raw_dropped):
            raise ValueError("snapshot dropped must be a list of tx ids")
        chain._dropped.update(raw_dropped)
        return chain

    def schedule_reorg(self, at_height: int, depth: int) -> None:
        """Add a reorg to the fault schedule at run time (tests and drills): when ``at_height``
        is first produced, the newest ``depth`` blocks are replaced. ``depth`` may not exceed the
        schedule's ``max_reorg_depth`` from construction (older transactions are forgotten)."""
        if depth > self._reach_blocks:
            raise ValueError(f"depth {depth} exceeds the schedule's reach of {self._reach_blocks} blocks")
        reorgs = tuple(sorted({**dict(self._faults.reorgs), at_height: depth}.items()))
        self._faults = dataclasses.replace(self._faults, reorgs=reorgs)
        self._reorg_at[at_height] = depth
        self._plain = False

    # -- inspection (tests and tooling; the engine derives its own view from events) -------

    def confirmations(self, tx_id: str) -> int:
        """tip_height - included_height + 1, or 0 when the tx is not on the current chain."""
        height = self._included_height.get(tx_id)
        if height is None:
            return 0
        return len(self._blocks) - height + 1

    def tx_status(self, tx_id: str) -> TxStatus:
        if tx_id in self._included_height:
            return "included"
        if tx_id in self._tx_times:
            return "pending"
        if tx_id in self._dropped:
            return "dropped"
        return "unknown"

    def pending_count(self) -> int:
        return len(self._ready) + len(self._delayed)

    # -- internals --------------------------------------------------------------------------

    def _draw2(self, what: str, key: str) -> tuple[float, float]:
        """Two independent uniforms in [0, 1) from (seeds, what, key).

        ``what`` contains no '|', so different (what, key) pairs never hash the same input.
        """
        h = self._draw_base.copy()
        h.update(f"{what}|{key}".encode())
        digest = h.digest()
        first = (int.from_bytes(digest[:8], "big") >> 11) / _UNIT_SCALE
        second = (int.from_bytes(digest[8:16], "big") >> 11) / _UNIT_SCALE
        return first, second

    def _draw(self, what: str, key: str) -> float:
        return self._draw2(what, key)[0]

    def _enqueue(self, tx_id: str, submitted_at_ms: int, eligible_at_ms: int) -> None:
        if eligible_at_ms > submitted_at_ms:
            heapq.heappush(self._delayed, (eligible_at_ms, submitted_at_ms, tx_id))
        else:
            heapq.heappush(self._ready, (submitted_at_ms, tx_id, eligible_at_ms))

    def _in_outage(self, slot: int, at_ms: int) -> bool:
        i = bisect.bisect_right(self._outage_starts, at_ms) - 1
        if i >= 0 and at_ms < self._outage_ends[i]:
            return True
        if at_ms < self._generated_outage_end_ms:
            return True
        faults = self._faults
        if (
            faults.outage_duration_ms > 0
            and faults.outage_probability_per_block > 0.0
            and self._draw("outage", str(slot)) < faults.outage_probability_per_block
        ):
            self._generated_outage_end_ms = at_ms + faults.outage_duration_ms
            return True
        return False

    def _take(self, at_ms: int) -> tuple[str, ...]:
        ready = self._ready
        delayed = self._delayed
        if not (ready and ready[0][0] <= at_ms) and not (delayed and delayed[0][0] <= at_ms):
            return ()  # nothing due: ~40 % of a simulated day's blocks
        while delayed and delayed[0][0] <= at_ms:
            eligible_at_ms, submitted_at_ms, tx_id = heapq.heappop(delayed)
            heapq.heappush(ready, (submitted_at_ms, tx_id, eligible_at_ms))
        capacity = self._params.txs_per_block_max
        taken: list[str] = []
        # Replacement blocks after a reorg are older than the newest block, so a delayed tx
        # already moved to `ready` may not be eligible for them yet; it is set aside.
        not_yet: list[_ReadyEntry] = []
        while ready and len(taken) < capacity and ready[0][0] <= at_ms:
            entry = heapq.heappop(ready)
            if entry[2] > at_ms:
                not_yet.append(entry)
            else:
                taken.append(entry[1])
        for entry in not_yet:
            heapq.heappush(ready, entry)
        return tuple(taken)

    def _block_hash(self, height: int, at_ms: int, parent_hash: bytes, tx_ids: tuple[str, ...]) -> bytes:
        # reorg_count is the branch id: without it an empty replacement of an empty block
        # would hash the same as the block it replaces.
        h = _BLOCK_HASHER.copy()
        h.update(_BLOCK_HEAD.pack(height, at_ms, self._reorg_count) + parent_hash + _U32.pack(len(tx_ids)))
        if tx_ids:
            h.update(b"".join([_U32.pack(len(e)) + e for e in map(str.encode, tx_ids)]))
        return h.digest()

    def _append_block(self, at_ms: int, tx_ids: tuple[str, ...]) -> BlockProduced:
        height = len(self._blocks) + 1
        parent_hash = self._blocks[-1].block_hash if self._blocks else self._genesis_hash
        block_hash = self._block_hash(height, at_ms, parent_hash, tx_ids)
        self._blocks.append(_Block(height, at_ms, block_hash, tx_ids))
        for tx_id in tx_ids:
            self._included_height[tx_id] = height
        # Valid by construction (heights from 1, sha256 hashes, tx ids checked on submission,
        # a checked fee rate): built without the per-object check, 43,000 blocks a simulated day.
        fees = self._params.fee_per_tx_minor * len(tx_ids)
        return produced_block(height, at_ms, block_hash, parent_hash, tx_ids, fees)

    def _reorg_depth_at(self, height: int) -> int:
        depth = self._reorg_at.get(height, 0)
        every = self._faults.reorg_every_blocks
        if every > 0 and height % every == 0:
            depth = max(depth, self._faults.reorg_depth)
        # Genesis cannot be orphaned.
        return min(depth, height)

    def _produce_new_block(self, at_ms: int, events: list[ChainEvent]) -> None:
        events.append(self._append_block(at_ms, self._take(at_ms)))
        height = len(self._blocks)
        depth = self._reorg_depth_at(height)
        if depth > 0:
            self._reorg(depth, events)
        self._forget_final()

    def _forget_final(self) -> None:
        """The block ``reach`` below the tip can no longer be orphaned: forget its tx times."""
        final_height = len(self._blocks) - self._reach_blocks
        if final_height >= 1:
            for tx_id in self._blocks[final_height - 1].tx_ids:
                self._tx_times.pop(tx_id, None)

    def _reorg(self, depth: int, events: list[ChainEvent]) -> None:
        orphaned = self._blocks[-depth:]
        del self._blocks[-depth:]
        trigger = orphaned[-1]
        fork_height = len(self._blocks)
        self._reorg_count += 1

        orphaned_tx_ids = tuple(tx_id for block in orphaned for tx_id in block.tx_ids)
        drop_p = self._faults.reorg_drop_probability
        for tx_id in orphaned_tx_ids:
            del self._included_height[tx_id]
            if drop_p > 0.0 and self._draw("reorg_drop", f"{trigger.height}|{tx_id}") < drop_p:
                self._dropped.add(tx_id)
                del self._tx_times[tx_id]
                continue
            submitted_at_ms, eligible_at_ms = self._tx_times[tx_id]
            self._enqueue(tx_id, submitted_at_ms, eligible_at_ms)

        events.append(
            ChainReorg(
                at_ms=trigger.at_ms,
                fork_height=fork_height,
                orphaned_heights=tuple(b.height for b in orphaned),
                orphaned_tx_ids=orphaned_tx_ids,
            )
        )
        for i, block in enumerate(orphaned):
            tx_ids = () if i == 0 else self._take(block.at_ms)
            events.append(self._append_block(block.at_ms, tx_ids))
