"""What handing each step to the writer *process* costs: pickling the 1M-day's steps.

The writer process (``node/writer_process.py``; docs/PERFORMANCE.md, "A writer process: the
gain bounded, the process boundary priced, then built") gets each step through a pipe. This
script prices that boundary: it clears a bench
day as ``clearlane bench`` does but with the writer thread, and before each step is sealed
pickles what the writer process needs (the log entry, its encoded payload, the step, the
pre-root) in three forms and loads it back:

- ``as is``: the step objects, pickled as they are (Arrow slices write their parents' buffers);
- ``slices copied``: the same, every sliced Arrow array copied to its own buffers first;
- ``wire``: the writer process's own form (``clearlane.node.wire``) — a step's cleared
  batches, journal entries and submissions as columns, the log entry without its decoded
  payload, no new accounts. Its round trip is spot-checked on every step that cleared batches.

The timings add CPU to the writer thread, so the bench's own figures are not meaningful here.

    .venv/bin/python scripts/bench_wire.py --workdir /work/bench   # the 1M day, generated if missing
"""

from __future__ import annotations

import argparse
import io
import pickle
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from clearlane.core.model.events import Step
from clearlane.node import wire
from clearlane.node.node import Node
from clearlane.node.writer import PendingStep


class _Pickler(pickle.Pickler):
    """Pickle as it is, optionally with every sliced Arrow array copied to its own buffers."""

    def __init__(self, file: io.BytesIO, *, copy_slices: bool) -> None:
        super().__init__(file, protocol=5)
        self.copy_slices = copy_slices

    def reducer_override(self, obj: Any) -> Any:
        if self.copy_slices and isinstance(obj, pa.Array) and obj.offset:
            return _same, (pa.concat_arrays([obj]),)
        return NotImplemented


def _same(value: Any) -> Any:
    return value


def _generic(parts: Any, *, copy_slices: bool) -> bytes:
    out = io.BytesIO()
    _Pickler(out, copy_slices=copy_slices).dump(parts)
    return out.getvalue()


FORMS = ("as is", "slices copied", "wire")


def _same_batches(a: Step, b: Step) -> bool:
    """The round trip's spot check (tests/node/test_writer_process.py checks every field)."""
    x, y = a.cleared(), b.cleared()
    return (
        len(a.events) == len(b.events)
        and a.submissions == b.submissions
        and len(x) == len(y)
        and all(p.batch_id == q.batch_id and p.flow_ids.equals(q.flow_ids) for p, q in zip(x, y, strict=True))
    )


def main() -> None:
    from clearlane.adapters.cli import bench
    from clearlane.adapters.embedded import open_node

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench"))
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=FORMS)
    args = parser.parse_args()

    day = args.workdir / f"day-{args.trades}-2000-16-42"
    bench._generate_once(day, args.trades, 2000, 16, 42)
    cpu: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    size: dict[str, int] = defaultdict(int)
    checked = [0, 0]  # steps with cleared batches whose wire round trip matched, checked
    seal = Node._seal_pending

    def measured(node: Node[Any], pending: PendingStep) -> None:
        entry = pending.entry
        for form in args.forms:
            started = time.thread_time()
            if form == "wire":
                blob = wire.dumps([pending])
            else:
                parts = ((entry.seq, entry.at_ms, entry.kind, entry.payload), pending.payload, pending.step)
                blob = _generic((parts, pending.pre_root), copy_slices=form == "slices copied")
            loaded_at = time.thread_time()
            back = wire.loads(blob) if form == "wire" else pickle.loads(blob)
            cpu[form][0] += loaded_at - started
            cpu[form][1] += time.thread_time() - loaded_at
            size[form] += len(blob)
            if form == "wire" and pending.step.cleared():
                checked[1] += 1
                checked[0] += _same_batches(pending.step, back[0].step)
        seal(node, pending)

    Node._seal_pending = measured  # type: ignore[method-assign]
    db = args.workdir / "wire.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    # The writer thread: its seal callback is where the steps are caught (a writer process seals
    # them in another interpreter).
    node = open_node(db, day / "config.toml", keys=args.workdir / "bench.keys", writer_process=False)
    try:
        bench._clear_day(node, day)
        root = node.queries.state_root()
    finally:
        node.close()
    print(f"state root {root}")
    print(f"{'form':<15} {'bytes':>14} {'dumps s':>8} {'loads s':>8}")
    for form in args.forms:
        print(f"{form:<15} {size[form]:>14,} {cpu[form][0]:>8.2f} {cpu[form][1]:>8.2f}")
    if "wire" in args.forms:
        print(f"wire round trip: {checked[0]} of {checked[1]} steps with cleared batches equal")


if __name__ == "__main__":
    main()
