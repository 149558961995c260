"""stress owns replaying a day under a stress scenario and the report of its liquidity and margin
impact (the rules themselves are pure, in :mod:`clearlane.core.risk`).

A day — input files (deposits, trades) or another store's input log — is replayed twice, each
time on a fresh node the driver opens (``open_node``: the in-memory store in practice):

1. **baseline**: the configuration as it is. It tells the scenario the day's frame (first and
   last input time, the base layer's genesis, the batches each pool cleared), so seeded choices
   such as "3 retail batches" or "a reorg some time today" become concrete;
2. **scenario**: the same configuration with the scenario's base-layer faults written into
   ``[chain.faults]`` (the simulated chain injects them deterministically), mark shocks logged as
   ``price_mark`` inputs at their time, participant defaults evaluated at theirs. Everything is
   an input or a seeded choice, so the run — and the report — are byte-identical for the same
   scenario, seed and day.

After every committed step a :class:`Collector` folds the step into the read model's
projections, checks the safety invariants (the ledger checks its own balance; here: no batch
final twice or both final and unwound, no L1 flow's finality undone, every unwound batch settled
gross by exactly one L1 group holding exactly its flows) and samples each participant's
liquidity need and margin exposure. When the inputs end, the chain is driven until every batch
is terminal; liveness holds if each one became terminal within the scenario's bound after the
last fault stopped.

A :class:`Sweeper` runs one scenario under many seeds against one baseline, reports the worst
and shrinks a failing run to a minimal case (:mod:`clearlane.core.risk.shrink`). The report is
exported as canonical JSON, CSV and ISO 20022 auth.063 (JSON and XML).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.config.model import ClearingConfig, load_config
from clearlane.core.engine.core import LogEntry
from clearlane.core.errors import IntegrityError
from clearlane.core.model import ids as model_ids
from clearlane.core.model.events import (
    BatchAnchored,
    BatchCleared,
    BatchFinal,
    BatchReorged,
    BatchUnwound,
    L1GroupUpdated,
    Rejected,
    Step,
)
from clearlane.core.model.inputs import EVENTS_KIND, ChainEvents
from clearlane.core.proofs.canonical import canonical_json
from clearlane.core.risk import cover as risk_cover
from clearlane.core.risk import liquidity as risk_liquidity
from clearlane.core.risk import margin as risk_margin
from clearlane.core.risk import waterfall as risk_waterfall
from clearlane.core.risk.scenario import (
    BatchFailure,
    CompiledScenario,
    DayFrame,
    MarkShock,
    ParticipantDefault,
    Scenario,
    ScenarioError,
    Streams,
    compile_scenario,
)
from clearlane.core.risk.shrink import Shrunk, shrink
from clearlane.node.intake import iter_input
from clearlane.node.node import Node
from clearlane.node.ports import Store
from clearlane.node.projections.readmodel import ReadModel

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
OpenNode = Callable[[Path], Node[Any]]
Progress = Callable[[str, int], None]
"""Called with (phase, inputs applied so far)."""

REPORT_FORMAT = "clearlane.stress-report/1"
_REPLAYED_KINDS = frozenset(
    {
        "trades",
        "payment",
        "collateral_deposit",
        "collateral_withdrawal",
        "price_mark",
        "tick",
        "config_change",
    }
)
_MARGIN_SAMPLES = 48


class StressSafetyViolation(IntegrityError, code="STRESS_SAFETY_VIOLATION"):
    """A safety invariant failed during a stress replay — the finding the command exists to
    report, so it is answered like any integrity failure (exit 2) with the step, the seed and
    how to reproduce it."""


@dataclass(frozen=True)
class DaySource:
    """What to replay: input files in order (deposits first), or a store's input log (its
    chain observations are dropped: the replay's own base layer makes them anew)."""

    config_path: Path
    files: tuple[Path, ...] = ()
    log: Store | None = None
    label: str = "day"
    upto_seq: int | None = None  # a live store's log is read up to here (the day as recorded then)
    steps_per_day: int = 600  # trade chunks per day: the grain of the intraday series (and its cost)

    def digest(self) -> str:
        """SHA-256 of what is replayed: the files' bytes in order, or the log's hash-chain head
        (with the seed, commit and config digest it identifies a run, ANCHORS S1)."""
        h = hashlib.sha256()
        if self.log is not None and self.upto_seq is not None:
            last = list(self.log.iter_log(after_seq=self.upto_seq - 1, upto_seq=self.upto_seq))
            h.update(last[-1].hash if last else b"")
        elif self.log is not None:
            h.update(self.log.log_head() or b"")
        for path in self.files:
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()


# ====================================================================== inputs
Item = tuple[str, Any, int | None]
"""(kind, payload, at_ms): a trade chunk (an Arrow table) or one small input as its JSON object;
``at_ms`` None for a small input with no time of its own (logged at the next timed input's)."""


def _file_items(path: Path, config: ClearingConfig, chunk_rows: int) -> Iterator[Item]:
    for batch in iter_input(path, config, chunk_rows=chunk_rows):
        if batch.trades is not None and batch.trades.table.num_rows:
            table = batch.trades.table
            yield "trades", table, int(table.column("received_at_ms")[0].as_py())
        for event in batch.events:
            data = event.model_dump(mode="json")
            kind = data.pop("type")
            data.pop("v", None)
            yield kind, data, None


def _log_items(store: Store, upto_seq: int | None = None) -> Iterator[Item]:
    for stored in store.iter_log(upto_seq=upto_seq):
        entry = stored.entry
        if entry.kind == EVENTS_KIND:  # a run of small inputs: each replayed as itself
            for member in json.loads(stored.payload)["events"]:
                kind = member.pop("type")
                yield kind, member, entry.at_ms
            continue
        if entry.kind not in _REPLAYED_KINDS:
            continue
        payload = entry.payload
        if entry.kind != "trades":
            payload = json.loads(stored.payload)
        yield entry.kind, payload, entry.at_ms


def source_items(source: DaySource, config: ClearingConfig, chunk_rows: int) -> Iterator[Item]:
    if source.log is not None:
        yield from _log_items(source.log, source.upto_seq)
    for path in source.files:
        yield from _file_items(path, config, chunk_rows)


def compress_trades(trades: pa.Table, hours: float) -> pa.Table:
    """The same trades in the same order, their ``executed_at`` (epoch ms) mapped linearly onto
    ``hours`` centred on 12:00 UTC of the first trade's day (so a scenario's midday faults fall
    inside). A replay's fixed cost is the base layer's blocks over the day's span (one per block
    time: ~43,000 for a 24-hour day at 2 s), so a compressed day replays far faster — the CI
    scenario's trick; the flow per hour is higher, which is the point of a stress day anyway."""
    if not 0 < hours <= 24:
        raise ValueError("hours must be in (0, 24]")
    executed = trades.column("executed_at").to_numpy().astype(np.int64)
    if not len(executed):
        return trades
    first, last = int(executed.min()), int(executed.max())
    span_ms = int(hours * 3_600_000)
    start = first - first % 86_400_000 + 12 * 3_600_000 - span_ms // 2
    scaled = start + ((executed - first) * (span_ms / max(last - first, 1))).astype(np.int64)
    index = trades.schema.get_field_index("executed_at")
    return trades.set_column(index, "executed_at", pa.array(scaled, type=pa.int64()))


def chunk_rows_for(trades: int, config: ClearingConfig, steps_per_day: int = 600) -> int:
    """Chunk size giving about ``steps_per_day`` samples a day (the liquidity series' grain)."""
    return max(256, min(config.trade_chunk_rows_max, math.ceil(max(trades, 1) / max(steps_per_day, 1))))


# ====================================================================== the collector
@dataclass
class _Batch:
    pool: int
    cleared_ms: int
    flows: int
    flow_ids: pa.Array
    participants: I64
    anchored_ms: int = -1
    final_ms: int = -1
    unwound_ms: int = -1
    group: str | None = None


@dataclass
class RunFacts:
    """What one replay observed (see :class:`Collector`)."""

    times: list[int] = field(default_factory=list)
    need: list[I64] = field(default_factory=list)  # cents per participant
    buffer: list[I64] = field(default_factory=list)
    margin_times: list[int] = field(default_factory=list)
    exposure: list[npt.NDArray[np.float32]] = field(default_factory=list)  # (K+1, P, A) USD
    largest_net_debit: I64 | None = None
    l1_fees: I64 | None = None
    batches: dict[str, _Batch] = field(default_factory=dict)
    fired: dict[str, int] = field(default_factory=dict)
    defaults: list[dict[str, Any]] = field(default_factory=list)
    first_ms: int = -1
    last_ms: int = -1
    genesis_ms: int = -1
    faults_end_ms: int = -1
    steps: int = 0
    collateral_cents: I64 | None = None
    credit_cents: I64 | None = None
    check_margin_cents: I64 | None = None  # peak margin the liquidity check charged ([liquidity_margin])
    diverted: int = 0  # flows the liquidity check sent to L1


class Collector:
    """The step observer of one replay (module docstring)."""

    def __init__(
        self,
        node: Node[Any],
        *,
        buffer_pct: float,
        delay_ms: int,
        seed: int,
        targets: frozenset[str] = frozenset(),
    ) -> None:
        self.node = node
        self.config = config = node.config
        self.model = ReadModel(config, node.store, cache_rows=1)
        self.lookup = {pid: i for i, pid in enumerate(config.participant_ids)}
        self.buffer_pct = buffer_pct
        self.delay_ms = delay_ms  # a finality-delay fault's size: anchors this late count as fired
        self.seed = seed
        self.targets = targets  # batches whose anchors the scenario drops
        n_p = config.participant_count
        self.facts = RunFacts(largest_net_debit=np.zeros(n_p, np.int64), l1_fees=np.zeros(n_p, np.int64))
        self.facts.fired = {
            "unwound": 0,
            "unwound_target": 0,
            "reorg": 0,
            "outage": 0,
            "delayed_anchor": 0,
            "reorged_batch": 0,
        }
        self.groups: dict[str, tuple[str, npt.NDArray[np.int64]]] = {}  # group -> (batch, final_ms)
        self.last_block_ms = -1
        self.block_ms = int(config.chain["block_time_ms"])
        self.fee_minor = int(config.chain["fee_per_tx_minor"])
        self.next_margin_ms = -1
        self.margin_every_ms = 1

    def __call__(self, entry: LogEntry, step: Step) -> None:
        self.model.apply(entry, step)
        self.facts.steps += 1
        if isinstance(entry.payload, ChainEvents):
            self._chain(entry.payload)
        for event in step.events:
            self._event(step, event)
        self.sample(entry.at_ms)

    def fail(self, message: str) -> None:
        raise StressSafetyViolation(
            f"step {self.node.engine.applied_seq}: {message} (reproduce: clearlane stress ... --seed {self.seed})"
        )

    # -- events ----------------------------------------------------------------------------
    def _event(self, step: Step, event: Any) -> None:
        match event:
            case BatchCleared():
                self._cleared(event)
            case BatchAnchored():
                batch = self.facts.batches[event.batch_id]
                batch.anchored_ms = event.at_ms
                if self.delay_ms and event.at_ms - batch.cleared_ms >= self.delay_ms:
                    self.facts.fired["delayed_anchor"] += 1
            case BatchReorged():
                self.facts.fired["reorged_batch"] += 1
            case BatchFinal():
                batch = self.facts.batches[event.batch_id]
                if batch.final_ms >= 0 or batch.unwound_ms >= 0:
                    self.fail(f"batch {event.batch_id} settled twice (final after final or unwind)")
                batch.final_ms = event.at_ms
            case BatchUnwound():
                batch = self.facts.batches[event.batch_id]
                if batch.final_ms >= 0 or batch.unwound_ms >= 0:
                    self.fail(f"batch {event.batch_id} unwound after it was final or unwound")
                batch.unwound_ms = event.at_ms
                self.facts.fired["unwound"] += 1
                self.facts.fired["unwound_target"] += event.batch_id in self.targets
            case L1GroupUpdated():
                self._l1(event)
            case Rejected():
                pass

    def _cleared(self, event: BatchCleared) -> None:
        lookup = self.lookup
        people = np.array([lookup[p] for p in event.net_participant.to_pylist()], dtype=np.int64)
        assets = self.config.asset_index()
        asset = np.array([assets[a] for a in event.net_asset.to_pylist()], dtype=np.int64)
        self.facts.batches[event.batch_id] = _Batch(
            self.config.pool_index()[event.pool],
            event.cleared_at_ms,
            event.flows,
            event.flow_ids,
            np.unique(people),
        )
        # The CLS-style pay-in: each participant's net debit in this one batch, at current marks.
        marks = self.node.engine.liquidity().mark_per_minor
        debit = np.zeros(self.config.participant_count)
        np.add.at(debit, people, np.maximum(-np.asarray(event.net_minor, np.float64), 0) * marks[asset])
        largest = self.facts.largest_net_debit
        if largest is not None:
            np.maximum(largest, np.rint(debit * 100).astype(np.int64), out=largest)

    def _l1(self, event: L1GroupUpdated) -> None:
        final = event.table.column("final_ms").to_numpy().astype(np.int64)
        if event.opened is not None:
            origin = model_ids.parse_unwound_origin(event.opened.origin) or ""
            self.groups[event.group_id] = (origin, np.full(len(final), -1, np.int64))
            if origin:
                self._unwound_group(event, origin)
        known = self.groups.get(event.group_id)
        if known is None:
            self.fail(f"L1 group {event.group_id} updated before it was opened")
            return
        origin, before = known
        was = before >= 0
        if (final[was] != before[was]).any():
            self.fail(f"L1 group {event.group_id}: a final flow's finality changed (settled twice)")
        self.groups[event.group_id] = (origin, final)
        if origin and (final >= 0).all() and not was.all():
            self.facts.batches[origin].final_ms = int(final.max())

    def _unwound_group(self, event: L1GroupUpdated, origin: str) -> None:
        batch = self.facts.batches.get(origin)
        if batch is None or batch.unwound_ms < 0:
            self.fail(f"L1 group {event.group_id} settles batch {origin}, which was not unwound")
            return
        if batch.group is not None:
            self.fail(f"batch {origin} settled gross twice ({batch.group} and {event.group_id})")
        ids = event.table.column("flow_id")
        if len(ids) != batch.flows or sorted(ids.to_pylist()) != sorted(batch.flow_ids.to_pylist()):
            self.fail(f"L1 group {event.group_id} does not hold exactly batch {origin}'s flows")
        batch.group = event.group_id
        self._charge_l1_fees(origin, len(ids))

    def _charge_l1_fees(self, batch_id: str, flows: int) -> None:
        """An unwound batch's gross L1 fees (one tx per flow), split over its participants."""
        batch = self.facts.batches[batch_id]
        fees = self.facts.l1_fees
        if fees is None or not len(batch.participants):
            return
        share = risk_waterfall.pro_rata(flows * self.fee_minor, np.ones(len(batch.participants), np.int64))
        np.add.at(fees, batch.participants, share)

    def _chain(self, payload: ChainEvents) -> None:
        for event in payload.events:
            if event.get("type") == "chain_reorg":
                self.facts.fired["reorg"] += 1
            elif event.get("type") == "block_produced":
                at = int(event["at_ms"])
                if self.last_block_ms >= 0 and at - self.last_block_ms > self.block_ms:
                    self.facts.fired["outage"] += 1
                self.last_block_ms = max(self.last_block_ms, at)
                if self.facts.genesis_ms < 0:
                    self.facts.genesis_ms = at - self.block_ms * int(event["height"])

    # -- samples ---------------------------------------------------------------------------
    def positions(self) -> tuple[F64, F64, F64]:
        """(held exposure USD (K+1, P, A), marks per minor, need USD (P,)) now."""
        engine = self.node.engine
        liquidity = engine.liquidity()
        marks = liquidity.mark_per_minor
        held = engine.open_positions() + self.model.positions.cleared_net  # (K, P, A) minor
        l1 = self.model.positions.l1_pending[None, :, :]
        stacked = np.concatenate([held, l1], axis=0).astype(np.float64) * marks[None, None, :]
        need = np.maximum(-stacked, 0.0).sum(axis=(0, 2))
        return stacked, marks, need

    def sample(self, at_ms: int) -> None:
        facts = self.facts
        stacked, _marks, need = self.positions()
        liquidity = self.node.engine.liquidity()
        facts.times.append(at_ms)
        facts.need.append(np.rint(need * 100).astype(np.int64))
        available = (liquidity.collateral_usd + liquidity.credit_usd) * self.buffer_pct / 100.0
        facts.buffer.append(np.rint(available * 100).astype(np.int64))
        facts.collateral_cents = np.rint(liquidity.collateral_usd * 100).astype(np.int64)
        if liquidity.margin_usd is not None:
            charged = np.rint(liquidity.margin_usd * 100).astype(np.int64)
            peak = facts.check_margin_cents
            facts.check_margin_cents = charged if peak is None else np.maximum(peak, charged)
        facts.credit_cents = np.rint(liquidity.credit_usd * 100).astype(np.int64)
        if at_ms >= self.next_margin_ms and len(facts.exposure) < _MARGIN_SAMPLES * 2:
            facts.margin_times.append(at_ms)
            facts.exposure.append(stacked.astype(np.float32))
            self.next_margin_ms = at_ms + self.margin_every_ms

    def default_now(self, at_ms: int, who: list[int], fund_cents: int, house_cents: int) -> dict[str, Any]:
        """Evaluate a default of ``who`` now: their unpaid net debits through the waterfall."""
        stacked, _marks, need = self.positions()
        credit = np.maximum(stacked, 0.0).sum(axis=(0, 2))
        n_p = self.config.participant_count
        unpaid = np.zeros(n_p, np.int64)
        unpaid[who] = np.rint(need[who] * 100).astype(np.int64)
        collateral = np.rint(self.node.engine.liquidity().collateral_usd * 100).astype(np.int64)
        result = risk_waterfall.waterfall(
            unpaid,
            collateral,
            np.rint(credit * 100).astype(np.int64),
            default_fund=fund_cents,
            house=house_cents,
        )
        ids = self.config.participant_ids
        return {
            "at_ms": at_ms,
            "defaulters": [ids[i] for i in who],
            "unpaid_cents": result.total_unpaid,
            "from_collateral_cents": int(result.from_collateral.sum()),
            "from_default_fund_cents": result.from_fund,
            "from_house_cents": result.from_house,
            "left_short_cents": result.uncovered,
            "left_short": {ids[i]: int(v) for i, v in enumerate(result.left_short.tolist()) if v},
        }


# ====================================================================== one replay
@dataclass(frozen=True)
class RunPlan:
    config_path: Path
    marks: list[tuple[int, str, str]] = field(default_factory=list)
    defaults: list[tuple[int, list[int]]] = field(default_factory=list)
    buffer_pct: float = 100.0
    delay_ms: int = 0
    fund_cents: int = 0
    house_cents: int = 0
    seed: int = 0
    trades: int = 0
    failed_batches: frozenset[str] = frozenset()


def _shocked_mark(node: Node[Any], asset: str, percent: str) -> str:
    config = node.config
    index = config.asset_index().get(asset)
    if index is None:
        raise StressSafetyViolation(f"mark_shock: unknown asset {asset!r}")
    current = float(node.engine.liquidity().mark_per_minor[index]) * 10 ** config.assets[index].scale
    shocked = max(current * (1.0 + float(percent) / 100.0), 1e-8)
    return f"{shocked:.8f}".rstrip("0").rstrip(".")


class _Driver:
    """Submits the inputs in order, with the scenario's marks and defaults at their times, then
    drives the base layer until every batch is terminal."""

    def __init__(self, node: Node[Any], collector: Collector, plan: RunPlan, progress: Progress | None):
        self.node = node
        self.collector = collector
        self.plan = plan
        self.marks = list(plan.marks)
        self.defaults = list(plan.defaults)
        self.progress = progress
        self.applied = 0
        self.untimed: list[tuple[str, Any]] = []

    def due(self, upto_ms: int) -> None:
        """Inject the marks and evaluate the defaults that fall before ``upto_ms``."""
        node = self.node
        while self.marks and self.marks[0][0] <= upto_ms:
            at, asset, percent = self.marks.pop(0)
            mark = _shocked_mark(node, asset, percent)
            n = len(self.marks)
            data = {"mark_id": f"stress-mark-{asset}-{at}-{n}", "asset": asset, "mark_usd": mark}
            fx = node.submit("price_mark", data, max(at, node.engine.now_ms))
            if fx is not None and not fx.rejects():
                self.collector.facts.fired["mark"] = self.collector.facts.fired.get("mark", 0) + 1
        while self.defaults and self.defaults[0][0] <= upto_ms:
            at, who = self.defaults.pop(0)
            plan = self.plan
            record = self.collector.default_now(at, who, plan.fund_cents, plan.house_cents)
            self.collector.facts.defaults.append(record)

    def item(self, kind: str, payload: Any, at_ms: int | None) -> None:
        node = self.node
        if at_ms is None:
            self.untimed.append((kind, payload))
            return
        self.due(at_ms)
        facts = self.collector.facts
        if facts.first_ms < 0:
            facts.first_ms = at_ms
        for small_kind, small in self.untimed:
            node.submit(small_kind, small, max(at_ms, node.engine.now_ms))
        self.untimed.clear()
        at = max(at_ms, node.engine.now_ms)
        node.submit(kind, payload, at)
        if kind == "trades":
            last = int(payload.column("received_at_ms")[-1].as_py())
            facts.last_ms = max(facts.last_ms, last)
            node.advance(max(last, node.engine.now_ms))
            self.applied += payload.num_rows
        else:
            facts.last_ms = max(facts.last_ms, at)
            self.applied += 1
        if self.progress is not None:
            self.progress("replay", self.applied)

    def settle(self, limit_ms: int) -> None:
        node = self.node
        for kind, small in self.untimed:
            node.submit(kind, small, node.engine.now_ms)
        self.untimed.clear()
        step = int(node.config.chain["block_time_ms"])
        now = max(node.engine.now_ms, node.engine.chain_seen_ms)
        start = now
        while (node.engine.has_pending_work() or self.marks or self.defaults) and now - start < limit_ms:
            now += step
            self.due(now)
            node.advance(now)
            if self.progress is not None:  # also lets a caller bound the run's time (the service)
                self.progress("settle", self.applied)
            if node.chain is None:  # nothing was ever handed to the base layer
                node.submit("tick", {}, now)
        self.due(now)


def replay(
    open_node: OpenNode, source: DaySource, plan: RunPlan, *, progress: Progress | None = None
) -> tuple[RunFacts, ClearingConfig]:
    """Replay ``source`` on a fresh node under ``plan``; return what the collector saw."""
    node = open_node(plan.config_path)
    try:
        delay = plan.delay_ms
        collector = Collector(
            node, buffer_pct=plan.buffer_pct, delay_ms=delay, seed=plan.seed, targets=plan.failed_batches
        )
        collector.margin_every_ms = 86_400_000 // _MARGIN_SAMPLES
        node.observer = collector
        driver = _Driver(node, collector, plan, progress)
        chunk_rows = chunk_rows_for(plan.trades, node.config, source.steps_per_day)
        for kind, payload, at_ms in source_items(source, node.config, chunk_rows):
            driver.item(kind, payload, at_ms)
        driver.settle(limit_ms=24 * 3_600_000)
        node.engine.ledger.check_invariants()
        collector.sample(node.engine.now_ms)
        collector.facts.diverted = node.engine.stats.liquidity_diverted
        genesis = node.store.get_meta("chain_genesis_ms")
        if genesis is not None:
            collector.facts.genesis_ms = int(genesis)
        return collector.facts, node.config
    finally:
        node.observer = None
        node.close()


# ====================================================================== the stress run
def faulted_config(
    config_path: Path,
    faults: dict[str, Any],
    directory: Path,
    *,
    margin: dict[str, Any] | None = None,
    name: str = "config.stress.toml",
) -> Path:
    """A copy of the configuration with ``faults`` merged into ``[chain.faults]`` (and, given
    ``margin``, ``[liquidity_margin]`` set to it)."""
    import tomllib

    raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    chain = raw.setdefault("chain", {})
    chain["faults"] = {**chain.get("faults", {}), **faults}
    if margin is not None:
        raw["liquidity_margin"] = margin
    path = directory / name
    path.write_text(toml_dumps(raw), encoding="utf-8")
    load_config(path)  # a bad fault table fails here, naming the key
    return path


def toml_dumps(doc: dict[str, Any]) -> str:
    """A TOML document as ``key = value`` lines with inline tables (enough for configurations:
    strings, integers, finite floats, booleans, arrays and tables)."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in doc.items())


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=True)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("TOML numbers here must be finite")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _frame(facts: RunFacts, config: ClearingConfig) -> DayFrame:
    pools = [p.id for p in config.pools]
    by_pool: dict[str, list[str]] = {p: [] for p in pools}
    for batch_id, batch in facts.batches.items():
        by_pool[pools[batch.pool]].append(batch_id)
    attempts = max((p.anchor_deadline_ms // p.anchor_resubmit_ms + 2 for p in config.pools), default=2)
    first = max(facts.first_ms, 0)
    return DayFrame(
        day_start_ms=first - first % 86_400_000,
        first_ms=first,
        last_ms=max(facts.last_ms, first),
        genesis_ms=facts.genesis_ms if facts.genesis_ms >= 0 else first,
        block_time_ms=int(config.chain["block_time_ms"]),
        anchor_attempts=attempts,
        batches={p: sorted(ids) for p, ids in by_pool.items()},
    )


def _cents(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


@dataclass
class StressResult:
    scenario: Scenario
    compiled: CompiledScenario
    config: ClearingConfig
    baseline: RunFacts
    stressed: RunFacts
    report: dict[str, Any]


@dataclass
class Baseline:
    """The baseline replay, reusable by every seed of a sweep whose check charges no margin (the
    baseline replay itself draws nothing from the seed)."""

    facts: RunFacts
    config: ClearingConfig
    check_margin: dict[str, Any] | None


def run_stress(
    open_node: OpenNode,
    source: DaySource,
    scenario: Scenario,
    *,
    trades_hint: int = 0,
    progress: Progress | None = None,
) -> StressResult:
    """Baseline, then the scenario; build the report (see :func:`build_report`)."""
    baseline = run_baseline(open_node, source, scenario, trades_hint=trades_hint, progress=progress)
    return run_scenario(open_node, source, scenario, baseline, trades_hint=trades_hint, progress=progress)


def run_baseline(
    open_node: OpenNode,
    source: DaySource,
    scenario: Scenario,
    *,
    trades_hint: int = 0,
    progress: Progress | None = None,
) -> Baseline:
    """Replay the day as it is (with the scenario's liquidity-check margin when it asks for one)."""
    check_against(scenario, load_config(source.config_path))
    margin = _check_margin(scenario, load_config(source.config_path))
    with tempfile.TemporaryDirectory(prefix="clearlane-stress-") as tmp:
        base_path = source.config_path
        if margin is not None:
            base_path = faulted_config(base_path, {}, Path(tmp), margin=margin, name="config.base.toml")
        plan = RunPlan(
            base_path, buffer_pct=scenario.resources.buffer_pct, seed=scenario.seed, trades=trades_hint
        )
        facts, config = replay(open_node, source, plan, progress=_phase(progress, "baseline"))
    return Baseline(facts, config, margin)


def run_scenario(
    open_node: OpenNode,
    source: DaySource,
    scenario: Scenario,
    baseline: Baseline,
    *,
    trades_hint: int = 0,
    progress: Progress | None = None,
) -> StressResult:
    """Compile the scenario against the baseline's frame, replay it, build the report."""
    config, margin = baseline.config, baseline.check_margin
    if margin != _check_margin(scenario, load_config(source.config_path)):
        raise ValueError("this baseline was replayed with another liquidity-check margin: replay it anew")
    fund = _cents(scenario.resources.default_fund_usd)
    compiled = compile_scenario(scenario, _frame(baseline.facts, config))
    base_margin = _margins(baseline.facts, config, scenario, observed=False)
    obligations = risk_cover.stressed_obligations(
        _peak(baseline.facts), base_margin["peak_cents"], _last(baseline.facts.collateral_cents, config)
    )
    cover1, cover2 = risk_cover.cover_1_and_2(obligations, fund, exclude=(config.house_index,))
    defaults = [(at, _defaulters(who, config, cover1, cover2)) for at, who in compiled.defaults]
    delay_fault = [f for f in scenario.faults if f.type == "finality_delay"]
    delay_ms = min((f.blocks for f in delay_fault), default=0) * int(config.chain["block_time_ms"])
    with tempfile.TemporaryDirectory(prefix="clearlane-stress-") as tmp:
        path = faulted_config(source.config_path, compiled.chain_faults, Path(tmp), margin=margin)
        plan = RunPlan(
            path,
            marks=compiled.marks,
            defaults=defaults,
            buffer_pct=scenario.resources.buffer_pct,
            delay_ms=delay_ms,
            fund_cents=fund,
            house_cents=_cents(scenario.resources.house_usd),
            seed=scenario.seed,
            trades=trades_hint,
            failed_batches=_failed_batches(compiled),
        )
        stressed, _ = replay(open_node, source, plan, progress=_phase(progress, "scenario"))
    stressed.faults_end_ms = _faults_end(compiled, stressed, int(config.chain["block_time_ms"]))
    report = build_report(
        scenario, compiled, config, baseline.facts, stressed, base_margin, (cover1, cover2), source
    )
    return StressResult(scenario, compiled, config, baseline.facts, stressed, report)


# ====================================================================== seed sweeps and shrinking
@dataclass
class SeedOutcome:
    """One seed's run: its failure (``"safety: …"`` or ``"liveness: …"``) or None, and the
    result when the run finished."""

    scenario: Scenario
    failure: str | None
    result: StressResult | None

    @property
    def kind(self) -> str:
        return self.failure.split(":", 1)[0] if self.failure else "ok"

    def rank(self) -> tuple[int, int, int, int]:
        """Worse is larger: a safety violation, then a liveness failure, then the Cover-2
        shortfall, then the summed peak need; the lower seed wins a tie (deterministic)."""
        severity = {"safety": 2, "liveness": 1}.get(self.kind, 0)
        if self.result is None:
            return (severity, 0, 0, -self.scenario.seed)
        report = self.result.report
        shortfall = int(report["system"]["scenario"]["cover2"]["shortfall_cents"])
        need = sum(int(r["scenario"]["peak_intraday_liquidity_need_cents"]) for r in report["participants"])
        return (severity, shortfall, need, -self.scenario.seed)


class Sweeper:
    """Runs a scenario under many seeds (or shrunk variants) against one day, replaying the
    baseline once per liquidity-check margin (so once, unless the check charges the seed's
    margin)."""

    def __init__(
        self,
        open_node: OpenNode,
        source: DaySource,
        *,
        trades_hint: int = 0,
        progress: Progress | None = None,
    ) -> None:
        self.open_node, self.source = open_node, source
        self.trades_hint, self.progress = trades_hint, progress
        self.baselines: dict[str, Baseline] = {}

    def baseline(self, scenario: Scenario) -> Baseline:
        key = json.dumps(_check_margin(scenario, load_config(self.source.config_path)), sort_keys=True)
        if key not in self.baselines:
            self.baselines[key] = run_baseline(
                self.open_node, self.source, scenario, trades_hint=self.trades_hint, progress=self.progress
            )
        return self.baselines[key]

    def run(self, scenario: Scenario) -> SeedOutcome:
        baseline = self.baseline(scenario)
        try:
            result = run_scenario(
                self.open_node,
                self.source,
                scenario,
                baseline,
                trades_hint=self.trades_hint,
                progress=self.progress,
            )
        except StressSafetyViolation as exc:
            return SeedOutcome(scenario, f"safety: {exc}", None)
        live = result.report["liveness"]
        if live["ok"]:
            return SeedOutcome(scenario, None, result)
        why = (
            f"liveness: {live['unsettled_count']} batches not terminal, worst "
            f"{live['worst_after_faults_ms']} ms after the faults stopped (bound {live['bound_s']} s)"
        )
        return SeedOutcome(scenario, why, result)

    def sweep(self, scenario: Scenario, seeds: list[int]) -> list[SeedOutcome]:
        return [self.run(scenario.with_seed(seed)) for seed in seeds]

    def shrink(self, failing: SeedOutcome, *, budget: int = 24) -> Shrunk:
        """The smallest variant of a failing run that fails the same way (safety or liveness)."""
        kind = failing.kind
        return shrink(failing.scenario, lambda s: self.run(s).kind == kind, budget=budget)


def coverage(outcomes: list[SeedOutcome]) -> dict[str, int]:
    """Per configured fault type, in how many of the sweep's finished runs it fired (VOPR-style
    coverage: a type that never fires across the seeds tests nothing)."""
    seen: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.result is None:
            continue
        for kind, counts in outcome.result.report["faults"].items():
            seen[kind] = seen.get(kind, 0) + (counts["fired"] > 0)
    return dict(sorted(seen.items()))


def worst(outcomes: list[SeedOutcome]) -> SeedOutcome:
    """The worst of a sweep (:meth:`SeedOutcome.rank`)."""
    return max(outcomes, key=SeedOutcome.rank)


def _check_margin(scenario: Scenario, config: ClearingConfig) -> dict[str, Any] | None:
    """``[liquidity_margin]`` for both replays when the scenario asks the check to charge the
    margin: the report's own per-asset vols and confidence, so the engine and the report agree."""
    if not scenario.margin.in_liquidity_check:
        return None
    vols = asset_vols(config, scenario)
    return {
        "enabled": True,
        "confidence": scenario.margin.confidence,
        "liquidation_days": scenario.margin.liquidation_days,
        "daily_vol": {a.code: float(v) for a, v in zip(config.assets, vols, strict=True)},
    }


def check_against(scenario: Scenario, config: ClearingConfig) -> None:
    """Refuse, before any replay, a scenario naming an asset, pool or participant the day's
    configuration does not have (``SCENARIO_INVALID``, the fault's key named)."""
    assets, pools, people = config.asset_index(), config.pool_index(), config.participant_index()
    for index, fault in enumerate(scenario.faults):
        key = f"faults.{index}"
        if isinstance(fault, MarkShock) and fault.asset not in assets:
            raise ScenarioError(scenario.id, f"{key}.asset", f"unknown asset {fault.asset!r}")
        if isinstance(fault, BatchFailure):
            for pool in fault.pools:
                if pool not in pools:
                    raise ScenarioError(scenario.id, f"{key}.pools", f"unknown pool {pool!r}")
        if isinstance(fault, ParticipantDefault) and fault.participant not in {"cover1", "cover2", *people}:
            reason = f"unknown participant {fault.participant!r}"
            raise ScenarioError(scenario.id, f"{key}.participant", reason)


def _phase(progress: Progress | None, name: str) -> Progress | None:
    if progress is None:
        return None
    return lambda _phase_name, n: progress(name, n)


def _defaulters(who: str, config: ClearingConfig, c1: risk_cover.Cover, c2: risk_cover.Cover) -> list[int]:
    if who == "cover1":
        return list(c1.defaulters)
    if who == "cover2":
        return list(c2.defaulters)
    index = config.participant_index().get(who)
    if index is None:
        raise StressSafetyViolation(f"participant_default: unknown participant {who!r}")
    return [index]


def _failed_batches(compiled: CompiledScenario) -> frozenset[str]:
    parsed = (model_ids.parse_anchor_tx_id(tx) for tx in compiled.chain_faults.get("drop_tx_ids", []))
    return frozenset(p[0] for p in parsed if p is not None)


def _faults_end(compiled: CompiledScenario, facts: RunFacts, block_ms: int) -> int:
    """When the last fault stops: the last input, outage end, reorg, mark or default."""
    faults = compiled.chain_faults
    ends: list[int] = [int(end) for _, end in faults.get("outages", [])]
    ends += [facts.genesis_ms + int(height) * block_ms for height, _ in faults.get("reorgs", [])]
    ends += [at for at, _, _ in compiled.marks] + [at for at, _ in compiled.defaults]
    return max([facts.last_ms, *ends])


def _peak(facts: RunFacts) -> I64:
    if not facts.need:
        return np.zeros(0, np.int64)
    out: I64 = np.max(np.vstack(facts.need), axis=0)
    return out


def _last(values: I64 | None, config: ClearingConfig) -> I64:
    return values if values is not None else np.zeros(config.participant_count, np.int64)


# ====================================================================== margin
def asset_vols(config: ClearingConfig, scenario: Scenario) -> F64:
    """Daily volatility per asset, drawn from the scenario's ``vols`` stream: the reporting asset
    0, assets marked at 1 USD (stablecoins) 0.2 %, others 2–6 %; times ``vol_scale``."""
    rng = Streams(scenario.seed)("vols")
    draws = rng.uniform(0.02, 0.06, size=len(config.assets))
    vols = np.where(np.isclose(np.asarray(config.marks_usd), 1.0), 0.002, draws)
    vols = np.where([a.code == config.reporting_asset for a in config.assets], 0.0, vols)
    out: F64 = vols * scenario.margin.vol_scale
    return out


def pool_windows(config: ClearingConfig, facts: RunFacts | None) -> F64:
    """Each pool's finality window in ms (configured: one block to include the anchor, the
    confirmations, the challenge window; observed under stress: the p99 cleared → terminal of
    that run's batches when longer), and L1's (its confirmations) last."""
    block = int(config.chain["block_time_ms"])
    windows = [float(block * (1 + p.confirmations) + p.challenge_window_ms) for p in config.pools]
    windows.append(float(block * (1 + config.l1_confirmations)))
    if facts is not None:
        for k in range(len(config.pools)):
            latencies = [
                b.final_ms - b.cleared_ms for b in facts.batches.values() if b.pool == k and b.final_ms >= 0
            ]
            if latencies:
                windows[k] = max(windows[k], float(np.quantile(latencies, 0.99, method="higher")))
    return np.array(windows)


def _margins(
    facts: RunFacts, config: ClearingConfig, scenario: Scenario, *, observed: bool
) -> dict[str, Any]:
    """Peak VaR margin and SPAN scanning risk per participant over the run's margin samples."""
    n_p = config.participant_count
    vols = asset_vols(config, scenario)
    returns = risk_margin.returns_history(
        vols, scenario.margin.history_days, Streams(scenario.seed)("returns")
    )
    windows = pool_windows(config, facts if observed else None)
    horizons = risk_margin.horizon_days(windows, scenario.margin.liquidation_days)
    confidence, method = scenario.margin.confidence, scenario.margin.horizon
    var_peak = np.zeros(n_p)
    span_peak = np.zeros(n_p)
    # What each lane's window costs: the VaR of the exposure held in that lane alone.
    lane_peak = np.zeros((len(horizons), n_p))
    for exposure in facts.exposure:
        x = exposure.astype(np.float64)
        var = risk_margin.var_margin(x, horizons, returns, confidence=confidence, method=method)
        span, _ = risk_margin.span_grid(x, horizons, vols, confidence=confidence)
        np.maximum(var_peak, var, out=var_peak)
        np.maximum(span_peak, span, out=span_peak)
        for k in range(len(horizons)):
            alone = risk_margin.var_margin(
                x[k : k + 1], horizons[k : k + 1], returns, confidence=confidence, method=method
            )
            np.maximum(lane_peak[k], alone, out=lane_peak[k])
    lanes = [p.id for p in config.pools] + ["L1"]
    return {
        "peak_cents": np.rint(var_peak * 100).astype(np.int64),
        "span_cents": np.rint(span_peak * 100).astype(np.int64),
        "by_lane_cents": {lane: int(np.rint(lane_peak[k].sum() * 100)) for k, lane in enumerate(lanes)},
        "windows_ms": [int(w) for w in windows],
        "horizons_days": [f"{h:.6f}" for h in horizons],
    }


# ====================================================================== the report
def _latency(facts: RunFacts, n_p: int) -> tuple[I64, I64, dict[str, Any]]:
    """Per participant mean and max cleared → terminal latency (ms); per pool p50/p99/max."""
    total = np.zeros(n_p, np.int64)
    count = np.zeros(n_p, np.int64)
    worst = np.zeros(n_p, np.int64)
    per_pool: dict[int, list[int]] = {}
    for batch in facts.batches.values():
        if batch.final_ms < 0:
            continue
        latency = batch.final_ms - batch.cleared_ms
        per_pool.setdefault(batch.pool, []).append(latency)
        total[batch.participants] += latency
        count[batch.participants] += 1
        np.maximum.at(worst, batch.participants, latency)
    mean = np.where(count > 0, total // np.maximum(count, 1), 0)
    pools = {
        str(k): {
            "p50_ms": int(np.quantile(v, 0.5, method="higher")),
            "p99_ms": int(np.quantile(v, 0.99, method="higher")),
            "max_ms": int(max(v)),
            "batches": len(v),
        }
        for k, v in sorted(per_pool.items())
    }
    return mean.astype(np.int64), worst, pools


def _liveness(facts: RunFacts, bound_s: int) -> dict[str, Any]:
    unsettled = [b for b, x in facts.batches.items() if x.final_ms < 0]
    worst = 0
    for batch in facts.batches.values():
        if batch.final_ms >= 0:
            worst = max(worst, batch.final_ms - max(batch.cleared_ms, facts.faults_end_ms))
    ok = not unsettled and worst <= bound_s * 1000
    return {
        "ok": ok,
        "bound_s": bound_s,
        "worst_after_faults_ms": worst,
        "unsettled_batches": sorted(unsettled)[:20],
        "unsettled_count": len(unsettled),
    }


def _fired(compiled: CompiledScenario, facts: RunFacts) -> dict[str, dict[str, int]]:
    fired = facts.fired
    observed = {
        # Dropped anchors of the chosen batches; with a drop probability every unwind counts.
        "batch_failure": fired.get(
            "unwound" if compiled.chain_faults.get("drop_probability") else "unwound_target", 0
        ),
        "finality_delay": fired.get("delayed_anchor", 0),
        "anchor_reorg": fired.get("reorg", 0),
        "base_layer_outage": fired.get("outage", 0),
        "participant_default": len(facts.defaults),
        "mark_shock": fired.get("mark", 0),
    }
    return {
        kind: {"configured": compiled.expected.get(kind, 0), "fired": observed[kind]}
        for kind in sorted(observed)
        if compiled.expected.get(kind, 0)
    }


def _participant_rows(
    config: ClearingConfig, runs: dict[str, tuple[RunFacts, dict[str, Any]]]
) -> list[dict[str, Any]]:
    n_p = config.participant_count
    per: dict[str, dict[str, Any]] = {}
    for name, (facts, margins) in runs.items():
        times = np.array(facts.times, np.int64)
        need = np.vstack(facts.need) if facts.need else np.zeros((0, n_p), np.int64)
        buffer = np.vstack(facts.buffer) if facts.buffer else np.zeros((0, n_p), np.int64)
        metrics = risk_liquidity.metrics(times, need, buffer)
        mean, worst, _ = _latency(facts, n_p)
        largest = _last(facts.largest_net_debit, config)
        fees = _last(facts.l1_fees, config)
        per[name] = {
            "peak_need": metrics.peak_need,
            "peak_at": metrics.peak_at_ms,
            "breaches": metrics.breaches,
            "largest": largest,
            "fees": fees,
            "margin": margins["peak_cents"],
            "span": margins["span_cents"],
            "check_margin": _last(facts.check_margin_cents, config),
            "lat_mean": mean,
            "lat_max": worst,
        }
    rows = []
    for p, pid in enumerate(config.participant_ids):
        row: dict[str, Any] = {"participant": pid}
        for name, m in per.items():
            row[name] = {
                "peak_intraday_liquidity_need_cents": int(m["peak_need"][p]),
                "peak_at_ms": int(m["peak_at"][p]),
                "largest_net_debit_cents": int(m["largest"][p]),
                "buffer_breaches": [
                    {"start_ms": b.start_ms, "end_ms": b.end_ms, "peak_excess_cents": b.peak_excess}
                    for b in m["breaches"][p]
                ],
                "margin_var_cents": int(m["margin"][p]),
                "margin_span_cents": int(m["span"][p]),
                "liquidity_check_margin_cents": int(m["check_margin"][p]),
                "l1_fallback_fees_minor": int(m["fees"][p]),
                "finality_latency_mean_ms": int(m["lat_mean"][p]),
                "finality_latency_max_ms": int(m["lat_max"][p]),
            }
        rows.append(row)
    return rows


def build_report(
    scenario: Scenario,
    compiled: CompiledScenario,
    config: ClearingConfig,
    baseline: RunFacts,
    stressed: RunFacts,
    base_margin: dict[str, Any],
    covers: tuple[risk_cover.Cover, risk_cover.Cover],
    source: DaySource,
) -> dict[str, Any]:
    """The report as a JSON-able dict of integers and strings (so its canonical bytes are
    stable): scenario, faults configured and fired, safety and liveness, system-wide Cover-1 /
    Cover-2, defaults and their waterfalls, per participant baseline vs scenario."""
    stress_margin = _margins(stressed, config, scenario, observed=True)
    fund = _cents(scenario.resources.default_fund_usd)
    s_obligations = risk_cover.stressed_obligations(
        _peak(stressed), stress_margin["peak_cents"], _last(stressed.collateral_cents, config)
    )
    s_cover1, s_cover2 = risk_cover.cover_1_and_2(s_obligations, fund, exclude=(config.house_index,))
    ids = config.participant_ids
    n_p = config.participant_count

    def cover_view(c: risk_cover.Cover) -> dict[str, Any]:
        return {
            "defaulters": [ids[i] for i in c.defaulters],
            "obligation_cents": c.obligation,
            "prefunded_cents": c.resources,
            "shortfall_cents": c.shortfall,
        }

    runs = {"baseline": (baseline, base_margin), "scenario": (stressed, stress_margin)}
    return {
        "format": REPORT_FORMAT,
        "scenario": {
            "id": scenario.id,
            "seed": scenario.seed,
            "description": scenario.description,
            "day": source.label,
            "config_digest": config.digest,
            "input_digest": source.digest(),
            "chain_faults": compiled.chain_faults,
        },
        "faults": _fired(compiled, stressed),
        "safety": {"checked_steps": stressed.steps + baseline.steps, "violations": 0},
        "liveness": _liveness(stressed, scenario.liveness_bound_s),
        "system": {
            "baseline": {"cover1": cover_view(covers[0]), "cover2": cover_view(covers[1])},
            "scenario": {"cover1": cover_view(s_cover1), "cover2": cover_view(s_cover2)},
            "finality_latency_by_pool": {
                "baseline": _named_pools(_latency(baseline, n_p)[2], config),
                "scenario": _named_pools(_latency(stressed, n_p)[2], config),
            },
            "margin_horizon": {
                "baseline": {"windows_ms": base_margin["windows_ms"], "days": base_margin["horizons_days"]},
                "scenario": {
                    "windows_ms": stress_margin["windows_ms"],
                    "days": stress_margin["horizons_days"],
                },
            },
            "margin_by_lane_cents": {
                "baseline": base_margin["by_lane_cents"],
                "scenario": stress_margin["by_lane_cents"],
            },
            "batches": {"baseline": len(baseline.batches), "scenario": len(stressed.batches)},
            "liquidity_diverted_flows": {"baseline": baseline.diverted, "scenario": stressed.diverted},
            "unwound_batches": stressed.fired.get("unwound", 0),
        },
        "defaults": stressed.defaults,
        "participants": _participant_rows(config, runs),
    }


def chart_series(result: StressResult, points: int = 300) -> dict[str, Any]:
    """The system's liquidity need over the day, baseline and scenario (cents, at most
    ``points`` samples each: the step series thinned by taking each bucket's maximum), for the
    dashboard's chart; not part of the canonical report."""
    out: dict[str, Any] = {}
    for name, facts in (("baseline", result.baseline), ("scenario", result.stressed)):
        times = np.array(facts.times, np.int64)
        total = np.array([int(n.sum()) for n in facts.need], np.int64)
        if len(times) > points:
            edges = np.linspace(0, len(times), points + 1).astype(np.int64)
            times = times[edges[1:] - 1]
            total = np.maximum.reduceat(total, edges[:-1])
        out[name] = {"t_ms": times.tolist(), "need_cents": total.tolist()}
    return out


def _named_pools(pools: dict[str, Any], config: ClearingConfig) -> dict[str, Any]:
    names = [p.id for p in config.pools]
    return {names[int(k)]: v for k, v in pools.items()}


# ====================================================================== exports
def report_json(report: dict[str, Any]) -> bytes:
    """The canonical bytes of the report (sorted keys, no whitespace, UTF-8)."""
    return canonical_json(report)


CSV_COLUMNS = (
    "peak_intraday_liquidity_need_cents",
    "largest_net_debit_cents",
    "buffer_breaches",
    "first_breach_start_ms",
    "margin_var_cents",
    "margin_span_cents",
    "liquidity_check_margin_cents",
    "l1_fallback_fees_minor",
    "finality_latency_mean_ms",
    "finality_latency_max_ms",
)


def report_csv(report: dict[str, Any]) -> str:
    """One row per participant: each figure for the baseline, the scenario and their change."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["participant"]
    for column in CSV_COLUMNS:
        header += [f"{column}_baseline", f"{column}_scenario", f"{column}_delta"]
    writer.writerow(header)
    for row in report["participants"]:
        line: list[Any] = [row["participant"]]
        for column in CSV_COLUMNS:
            b, s = _csv_value(row["baseline"], column), _csv_value(row["scenario"], column)
            line += [b, s, s - b]
        writer.writerow(line)
    return out.getvalue()


def _csv_value(figures: dict[str, Any], column: str) -> int:
    breaches = figures["buffer_breaches"]
    if column == "buffer_breaches":
        return len(breaches)
    if column == "first_breach_start_ms":
        return int(breaches[0]["start_ms"]) if breaches else -1
    return int(figures[column])


AUTH063_NS = "urn:iso:std:iso:20022:tech:xsd:auth.063.001.01"
CLEARLANE_NS = "urn:clearlane:stress-report:1"
# LiquidityRequiredAndAvailable1 comes exactly six times, one per SettlementDate6Code.
AUTH063_HORIZONS = ("SAMD", "TONE", "TTWO", "TTRE", "TFOR", "TFIV")


def report_auth063(
    report: dict[str, Any], currency: str = "USD", leis: dict[str, str] | None = None
) -> dict[str, Any]:
    """The report in the shape of ISO 20022 auth.063.001.01 (CCPLiquidityStressTestingResultReportV01):
    element names as keys, a repeated element as a list, an amount as
    ``{"Amt": {"@Ccy": ccy, "#text": "123.45"}, "Sgn": true}`` (AmountAndDirection102). The same
    document is written as XML by :func:`report_auth063_xml`.

    One LqdtyStrssTstRslt for the scenario and seed (``Id``), its ScnroDfltrs (Cover1Id: the
    Cover-1 defaulter; Cover2Id: the other member of the Cover-2 pair — their LEIs from
    ``leis``, else the participant ids, which the schema's LEI pattern refuses) and exactly six LqdtyReqrdAndAvlbl, one per horizon code (SAMD = T,
    TONE … TFIV = T+1 … T+5). A replay is one intraday day: SAMD carries the figures, the other
    horizons are zero. Mapping on SAMD — LqdRsrcs.CshDue: the prefunded default fund;
    StrssLqdRsrcRqrmnt: OprlOutflw = the L1 fallback fees (the chain's fee asset's minor units
    read as cents), VartnMrgnPmtOblgtn = the Cover-2 defaulters' stressed VaR margin,
    SttlmOrDlvry = the Cover-2 stressed obligation, Othr = the margin the liquidity check
    charged the defaulters (``[liquidity_margin]``). SplmtryData (PlcAndNm ``clearlane``) holds
    what the message has no element for: seed, liveness, unsettled batches, Cover-1/Cover-2
    shortfall."""
    system = report["system"]["scenario"]
    cover1, cover2 = system["cover1"], system["cover2"]
    defaulters = set(cover2["defaulters"])
    rows = report["participants"]
    fees = sum(r["scenario"]["l1_fallback_fees_minor"] for r in rows)
    margin = sum(r["scenario"]["margin_var_cents"] for r in rows if r["participant"] in defaulters)
    charged = sum(
        r["scenario"].get("liquidity_check_margin_cents", 0) for r in rows if r["participant"] in defaulters
    )

    def amount(cents: int) -> dict[str, Any]:
        whole, part = divmod(abs(cents), 100)
        return {"Amt": {"@Ccy": currency, "#text": f"{whole}.{part:02d}"}, "Sgn": cents >= 0}

    def resource(cents: int) -> dict[str, Any]:
        return {
            "LqdRsrcVal": amount(cents),
            "Scrd": False,
            "AsstNcmbrd": False,
            "QlfygRsrc": True,
            "AgcyArrgmnts": False,
        }

    def horizon(code: str) -> dict[str, Any]:
        on = code == "SAMD"

        def figure(cents: int) -> dict[str, Any]:
            return amount(cents if on else 0)

        return {
            "LqdRsrcs": {"CshDue": [resource(cover2["prefunded_cents"] if on else 0)]},
            "LqdtyHrzn": code,
            "StrssLqdRsrcRqrmnt": {
                "OprlOutflw": figure(fees),
                "VartnMrgnPmtOblgtn": figure(margin),
                "SttlmOrDlvry": figure(cover2["obligation_cents"]),
                "Othr": figure(charged),
            },
        }

    first = cover1["defaulters"][0] if cover1["defaulters"] else ""
    second = next((d for d in cover2["defaulters"] if d != first), first)
    first, second = (leis or {}).get(first, first), (leis or {}).get(second, second)
    scenario = report["scenario"]
    extra = {
        "@xmlns": CLEARLANE_NS,
        "Seed": str(scenario["seed"]),
        "LivenessOk": report["liveness"]["ok"],
        "UnsettledBatches": str(report["liveness"]["unsettled_count"]),
        "Cover1Shortfall": amount(cover1["shortfall_cents"]),
        "Cover2Shortfall": amount(cover2["shortfall_cents"]),
    }
    result = {
        "Id": f"{scenario['id']}#{scenario['seed']}",
        "ScnroDfltrs": {"Cover1Id": first, "Cover2Id": second},
        "LqdtyReqrdAndAvlbl": [horizon(code) for code in AUTH063_HORIZONS],
    }
    body = {
        "LqdtyStrssTstRslt": [result],
        "SplmtryData": [{"PlcAndNm": "clearlane", "Envlp": {"StrssRun": extra}}],
    }
    return {"Document": {"@xmlns": AUTH063_NS, "CCPLqdtyStrssTstgRsltRpt": body}}


def report_auth063_xml(
    report: dict[str, Any], currency: str = "USD", leis: dict[str, str] | None = None
) -> bytes:
    """:func:`report_auth063` as XML (lxml): UTF-8 with a declaration, indented, byte-stable for
    the same report."""
    from lxml import etree

    doc = report_auth063(report, currency, leis)["Document"]
    root = etree.Element(f"{{{AUTH063_NS}}}Document", nsmap={None: AUTH063_NS})
    _xml_children(root, doc, AUTH063_NS)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def _xml_children(parent: Any, node: dict[str, Any], ns: str) -> None:
    from lxml import etree

    ns = node.get("@xmlns", ns)
    for key, value in node.items():
        if key == "@xmlns":
            continue
        if key.startswith("@"):
            parent.set(key[1:], str(value))
        elif key == "#text":
            parent.text = str(value)
        else:
            for item in value if isinstance(value, list) else [value]:
                child_ns = item.get("@xmlns", ns) if isinstance(item, dict) else ns
                child = etree.SubElement(parent, f"{{{child_ns}}}{key}")
                if isinstance(item, dict):
                    _xml_children(child, item, child_ns)
                elif isinstance(item, bool):
                    child.text = "true" if item else "false"
                else:
                    child.text = str(item)
