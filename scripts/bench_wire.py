"""What handing each step to a writer *process* would cost: pickling the 1M-day's steps.

Issue 18's next architectural step is a writer process (docs/PERFORMANCE.md, "A writer
process, sized before building it"). This script prices its boundary without building it: it
clears a bench day as ``clearlane bench`` does, and on the writer thread, before each step is
sealed, pickles what a process writer would need (the log entry, its encoded payload, the step,
the pre-root and tip) in three forms and loads it back:

- ``as is``: the step objects, pickled as they are (Arrow slices write their parents' buffers);
- ``slices copied``: the same, every sliced Arrow array copied to its own buffers first;
- ``columns``: a prototype wire form — a step's cleared batches, journal entries and
  submissions as concatenated columns, the log entry without its decoded payload. Its round
  trip is checked field by field on every step that cleared batches.

The timings add CPU to the writer thread, so the bench's own figures are not meaningful here.

    .venv/bin/python scripts/bench_wire.py --workdir /work/bench   # the 1M day, generated if missing
"""

from __future__ import annotations

import argparse
import io
import pickle
import time
from collections import defaultdict
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clearlane.core.ledger import handed_over
from clearlane.core.ledger.entries import LedgerChanges
from clearlane.core.model.chain import TxSubmission
from clearlane.core.model.events import BatchCleared, L1GroupUpdated, Step
from clearlane.node.node import Node
from clearlane.node.writer import PendingStep

_ARRAYS = ("flow_ids", "received_ms", "net_participant", "net_asset", "net_minor", "gross_minor")
_SCALARS = tuple(f.name for f in fields(BatchCleared) if f.name not in _ARRAYS)


def _concat(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.concatenate(arrays) if arrays else np.empty(0, np.int64)
    return flat, np.fromiter((len(a) for a in arrays), np.int64, len(arrays))


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _same(value: Any) -> Any:
    return value


def _ledger_columns(changes: LedgerChanges) -> tuple[Any, ...]:
    es = changes.new_entries
    accounts, lengths = _concat([e.accounts for e in es])
    amounts, _ = _concat([e.amounts_minor for e in es])
    return (
        _ledger_from_columns,
        (
            changes.new_accounts,
            [e.entry_id for e in es],
            [e.kind for e in es],
            [e.at_ms for e in es],
            [e.pending for e in es],
            [e.timeout_at_ms for e in es],
            [e.ref for e in es],
            accounts,
            amounts,
            lengths,
            changes.status_changes,
            changes.changed_accounts,
        ),
    )


def _ledger_from_columns(
    new_accounts: Any,
    ids: list[str],
    kinds: list[str],
    ats: list[int],
    pending: list[bool],
    timeouts: list[int | None],
    refs: list[str],
    accounts: np.ndarray,
    amounts: np.ndarray,
    lengths: np.ndarray,
    status_changes: Any,
    changed: np.ndarray,
) -> LedgerChanges:
    entries = tuple(
        handed_over(i, k, at, acc, amt, p, to, ref)
        for i, k, at, acc, amt, p, to, ref in zip(
            ids,
            kinds,
            ats,
            _split(accounts, lengths),
            _split(amounts, lengths),
            pending,
            timeouts,
            refs,
            strict=True,
        )
    )
    return LedgerChanges(new_accounts, entries, status_changes, changed)


def _step_columns(step: Step) -> tuple[Any, ...]:
    cleared = [e for e in step.events if type(e) is BatchCleared]
    others = [(i, e) for i, e in enumerate(step.events) if type(e) is not BatchCleared]
    received, flow_lengths = _concat([e.received_ms for e in cleared])
    net_minor, net_lengths = _concat([e.net_minor for e in cleared])
    subs = step.submissions
    return (
        _step_from_columns,
        (
            step.seq,
            step.at_ms,
            len(step.events),
            others,
            [[getattr(e, f) for e in cleared] for f in _SCALARS],
            pa.concat_arrays([e.flow_ids for e in cleared]) if cleared else None,
            pa.concat_arrays([e.net_participant for e in cleared]) if cleared else None,
            pa.concat_arrays([e.net_asset for e in cleared]) if cleared else None,
            received,
            flow_lengths,
            net_minor,
            net_lengths,
            np.stack([e.gross_minor for e in cleared]) if cleared else None,
            (
                [s.tx_id for s in subs],
                [s.kind for s in subs],
                [s.ref for s in subs],
                b"".join(s.payload_hash for s in subs),
                [s.submitted_at_ms for s in subs],
            ),
            step.trade_records,
            step.ledger,
            step.duplicates,
            step.conflicts,
        ),
    )


def _step_from_columns(
    seq: int,
    at_ms: int,
    n: int,
    others: list[tuple[int, Any]],
    scalars: list[list[Any]],
    flow_ids: Any,
    net_participant: Any,
    net_asset: Any,
    received: np.ndarray,
    flow_lengths: np.ndarray,
    net_minor: np.ndarray,
    net_lengths: np.ndarray,
    gross: Any,
    subs: tuple[Any, ...],
    trade_records: Any,
    ledger: LedgerChanges,
    duplicates: int,
    conflicts: Any,
) -> Step:
    events: list[Any] = [None] * n
    for i, event in others:
        events[i] = event
    flow_at = np.concatenate([[0], np.cumsum(flow_lengths)]).tolist()
    net_at = np.concatenate([[0], np.cumsum(net_lengths)]).tolist()
    received_parts, net_parts = _split(received, flow_lengths), _split(net_minor, net_lengths)
    c = 0
    for i in range(n):
        if events[i] is None:
            f0, f1, n0, n1 = flow_at[c], flow_at[c + 1], net_at[c], net_at[c + 1]
            events[i] = BatchCleared(
                **{name: column[c] for name, column in zip(_SCALARS, scalars, strict=True)},
                flow_ids=flow_ids.slice(f0, f1 - f0),
                received_ms=received_parts[c],
                net_participant=net_participant.slice(n0, n1 - n0),
                net_asset=net_asset.slice(n0, n1 - n0),
                net_minor=net_parts[c],
                gross_minor=gross[c],
            )
            c += 1
    ids, kinds, refs, hashes, ats = subs
    submissions = tuple(
        TxSubmission(t, k, r, hashes[32 * j : 32 * j + 32], a)
        for j, (t, k, r, a) in enumerate(zip(ids, kinds, refs, ats, strict=True))
    )
    return Step(seq, at_ms, tuple(events), trade_records, submissions, ledger, duplicates, conflicts)


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, *, columns: bool, copy_slices: bool) -> None:
        super().__init__(file, protocol=5)
        self.columns, self.copy_slices = columns, copy_slices

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if self.columns and kind is Step:
            return _step_columns(obj)
        if self.columns and kind is LedgerChanges:
            return _ledger_columns(obj)
        if self.copy_slices and isinstance(obj, pa.Array) and obj.offset:
            return _same, (pa.concat_arrays([obj]),)
        return NotImplemented


def _dumps(value: Any, *, columns: bool, copy_slices: bool) -> bytes:
    out = io.BytesIO()
    _Pickler(out, columns=columns, copy_slices=copy_slices).dump(value)
    return out.getvalue()


def _same_step(a: Step, b: Step) -> bool:
    if len(a.events) != len(b.events):
        return False
    for x, y in zip(a.events, b.events, strict=True):
        if type(x) is not type(y):
            return False
        if type(x) is BatchCleared:
            if not (
                all(getattr(x, f) == getattr(y, f) for f in _SCALARS)
                and all(
                    getattr(x, f).equals(getattr(y, f)) for f in ("flow_ids", "net_participant", "net_asset")
                )
                and all(
                    np.array_equal(getattr(x, f), getattr(y, f))
                    for f in ("received_ms", "net_minor", "gross_minor")
                )
            ):
                return False
        elif type(x) is L1GroupUpdated:
            if not (x.group_id == y.group_id and x.table.equals(y.table) and x.opened == y.opened):
                return False
        elif x != y:
            return False
    la, lb = a.ledger, b.ledger
    return (
        a.submissions == b.submissions
        and len(la.new_entries) == len(lb.new_entries)
        and all(
            (x.entry_id, x.kind, x.at_ms, x.ref, x.pending, x.timeout_at_ms)
            == (y.entry_id, y.kind, y.at_ms, y.ref, y.pending, y.timeout_at_ms)
            and np.array_equal(x.accounts, y.accounts)
            and np.array_equal(x.amounts_minor, y.amounts_minor)
            for x, y in zip(la.new_entries, lb.new_entries, strict=True)
        )
        and la.status_changes == lb.status_changes
        and la.new_accounts == lb.new_accounts
        and np.array_equal(la.changed_accounts, lb.changed_accounts)
        and a.duplicates == b.duplicates
    )


FORMS = {"as is": (False, False), "slices copied": (False, True), "columns": (True, True)}


def main() -> None:
    from clearlane.adapters.cli import bench

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench"))
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    args = parser.parse_args()

    day = args.workdir / f"day-{args.trades}-2000-16-42"
    bench._generate_once(day, args.trades, 2000, 16, 42)
    cpu: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    size: dict[str, int] = defaultdict(int)
    checked = [0, 0]  # steps with cleared batches whose columns round trip matched, checked
    seal = Node._seal_pending

    def measured(node: Node, pending: PendingStep) -> None:
        entry = pending.entry
        for form in args.forms:
            columns, copy_slices = FORMS[form]
            logged = entry.payload if not columns or entry.kind == "key_rotation" else None
            parts = (
                (entry.seq, entry.at_ms, entry.kind, logged),
                pending.payload,
                pending.step,
                pending.pre_root,
            )
            started = time.thread_time()
            blob = _dumps(parts, columns=columns, copy_slices=copy_slices)
            loaded_at = time.thread_time()
            back = pickle.loads(blob)
            cpu[form][0] += loaded_at - started
            cpu[form][1] += time.thread_time() - loaded_at
            size[form] += len(blob)
            if columns and pending.step.cleared():
                checked[1] += 1
                checked[0] += _same_step(pending.step, back[2])
        seal(node, pending)

    Node._seal_pending = measured  # type: ignore[method-assign]
    workdir = args.workdir
    node = bench._fresh_node(workdir / "wire.db", day / "config.toml", None, memory=False)
    try:
        bench._clear_day(node, day)
        root = node.queries.state_root()
    finally:
        node.close()
    print(f"state root {root}")
    print(f"{'wire form':<15} {'bytes':>14} {'dumps s':>8} {'loads s':>8}")
    for form in args.forms:
        print(f"{form:<15} {size[form]:>14,} {cpu[form][0]:>8.2f} {cpu[form][1]:>8.2f}")
    if "columns" in args.forms:
        print(f"columns round trip: {checked[0]} of {checked[1]} steps with cleared batches equal")


if __name__ == "__main__":
    main()
