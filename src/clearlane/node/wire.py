"""wire owns the compact form in which queued steps cross to the writer process.

A writer in another process (``node/writer_process.py``) needs each queued
:class:`~clearlane.node.writer.PendingStep` there: the log entry, its encoded payload, the
engine's step and pre-root. Pickled as they are, the 1M-trade reference day's steps are
4.9 GB and 5.8 s of the engine process's CPU: each ``BatchCleared`` holds Arrow slices of its
step's columns, and pickle writes a slice's whole parent buffers. So :func:`dumps` writes:

- a step's cleared batches as one set of columns (concatenated Arrow and NumPy arrays with
  their lengths, a 2-D array of gross amounts), rebuilt as slices of them;
- the ledger's new journal entries as concatenated legs with per-entry lists (rebuilt with
  :func:`~clearlane.core.ledger.handed_over`, as the engine built them); its new accounts are
  left out — the SQL store materialises accounts at checkpoints, from the node's ledger, and
  never reads them from a step (the reference day's first step creates 96,000);
- the base-layer submissions as columns;
- the log entry without its decoded payload, which the writer never reads (it hashes and
  stores the encoded bytes); a ``key_rotation`` entry keeps its dict, which the audit fold
  reads;
- any other sliced Arrow array copied to buffers of its own.

Everything else is pickled as it is. What :func:`loads` returns equals what was written field
by field, new accounts apart. The rebuilt Arrow arrays hold the same values in another layout
(slices of one concatenation, without the trade chunk's validity bitmap), and Arrow's IPC
writer encodes layout too: a batch's stored ``detail`` and ``net`` blobs decode to the same
tables as the writer thread's, not always to the same bytes (test). The measurements are in
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import fields
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clearlane.core.engine.core import LogEntry
from clearlane.core.ledger import handed_over
from clearlane.core.ledger.entries import LedgerChanges
from clearlane.core.model.chain import submissions_from_columns
from clearlane.core.model.events import BatchCleared, Step
from clearlane.node.writer import PendingStep

_I64 = npt.NDArray[np.int64]
_ARRAYS = ("flow_ids", "received_ms", "net_participant", "net_asset", "net_minor", "gross_minor")
_SCALARS = tuple(f.name for f in fields(BatchCleared) if f.name not in _ARRAYS)


def dumps(steps: list[PendingStep]) -> bytes:
    """The steps (not yet sealed: no audit step) in the compact form."""
    out = io.BytesIO()
    _Pickler(out).dump([_pending_parts(p) for p in steps])
    return out.getvalue()


def loads(blob: bytes) -> list[PendingStep]:
    """The steps :func:`dumps` wrote."""
    return [
        PendingStep(entry, payload, source_id, step, "", now_ms, None, meta, pre_root, tip)
        for entry, payload, source_id, step, now_ms, meta, pre_root, tip in pickle.loads(blob)
    ]


def _pending_parts(p: PendingStep) -> tuple[Any, ...]:
    if p.audit is not None:
        raise ValueError(f"step {p.entry.seq} is sealed already: only unsealed steps cross to the writer")
    entry = p.entry
    logged = entry.payload if isinstance(entry.payload, dict) else None
    return (
        LogEntry(entry.seq, entry.at_ms, entry.kind, logged),
        p.payload,
        p.source_id,
        p.step,
        p.now_ms,
        p.meta,
        p.pre_root,
        p.tip_height,
    )


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is Step:
            return _step_columns(obj)
        if kind is LedgerChanges:
            return _ledger_columns(obj)
        if isinstance(obj, pa.Array) and obj.offset:
            return _same, (pa.concat_arrays([obj]),)
        return NotImplemented


def _same(value: Any) -> Any:
    return value


def _concat(arrays: list[_I64]) -> tuple[_I64, _I64]:
    flat = np.concatenate(arrays) if arrays else np.empty(0, np.int64)
    return flat, np.fromiter((len(a) for a in arrays), np.int64, len(arrays))


def _split(flat: _I64, lengths: _I64) -> list[_I64]:
    """``flat`` cut into consecutive views of ``lengths`` (``np.split`` costs ~3 µs a piece)."""
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]] if ends else []
    return [flat[start:end] for start, end in zip(starts, ends, strict=True)]


def _arrow(arrays: list[pa.Array]) -> pa.Array | None:
    return pa.concat_arrays(arrays) if arrays else None


# ---------------------------------------------------------------------- the step
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
            [[getattr(e, name) for e in cleared] for name in _SCALARS],
            _arrow([e.flow_ids for e in cleared]),
            _arrow([e.net_participant for e in cleared]),
            _arrow([e.net_asset for e in cleared]),
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
    flow_ids: pa.Array | None,
    net_participant: pa.Array | None,
    net_asset: pa.Array | None,
    received: _I64,
    flow_lengths: _I64,
    net_minor: _I64,
    net_lengths: _I64,
    gross: Any,
    subs: tuple[list[str], list[Any], list[str], bytes, list[int]],
    trade_records: Any,
    ledger: LedgerChanges,
    duplicates: int,
    conflicts: Any,
) -> Step:
    events: list[Any] = [None] * n
    for i, event in others:
        events[i] = event
    if flow_ids is not None and net_participant is not None and net_asset is not None:
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
    submissions = submissions_from_columns(*subs)
    return Step(seq, at_ms, tuple(events), trade_records, submissions, ledger, duplicates, conflicts)


# ---------------------------------------------------------------------- the ledger's changes
def _ledger_columns(changes: LedgerChanges) -> tuple[Any, ...]:
    es = changes.new_entries
    accounts, lengths = _concat([e.accounts for e in es])
    amounts, _ = _concat([e.amounts_minor for e in es])
    return (
        _ledger_from_columns,
        (
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
    ids: list[str],
    kinds: list[str],
    ats: list[int],
    pending: list[bool],
    timeouts: list[int | None],
    refs: list[str],
    accounts: _I64,
    amounts: _I64,
    lengths: _I64,
    status_changes: Any,
    changed: _I64,
) -> LedgerChanges:
    entries = tuple(
        handed_over(entry_id, kind, at, legs, amts, held, timeout, ref)
        for entry_id, kind, at, legs, amts, held, timeout, ref in zip(
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
    return LedgerChanges((), entries, status_changes, changed)
