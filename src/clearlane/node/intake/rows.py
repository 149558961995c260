"""Edge validation of API submissions, with exactly the rules (and reject codes, fields and
reasons) of file input: trades go through :class:`~clearlane.node.intake.validate.TradeValidator`
column-wise — all submissions of one runtime tick at once — and small events through the
event models and reference-data checks of :mod:`clearlane.node.intake.readers`.

A submission with any bad row is refused whole (nothing of it reaches the log); the others in
the same tick are unaffected. ``executed_at`` is bounded here by the engine clock at receipt
(``[intake] executed_at_future_ms``) as well as by the absolute range every path checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from clearlane.core.config.model import ClearingConfig
from clearlane.core.model import ids as model_ids
from clearlane.core.model.codes import Reject, RejectCode
from clearlane.core.model.inputs import INPUT_TRADE_COLUMNS, INPUT_TRADE_OPTIONAL, TRADE_CHUNK_SCHEMA
from clearlane.node.intake.readers import (
    _EVENT_ID_FIELD,
    _EVENT_MODELS,
    _event_reject,
    _EventChecker,
    _TradeRows,
)
from clearlane.node.intake.validate import TradeValidator


@dataclass(frozen=True)
class RowError:
    """One refused row of a submission: its index in the request, and why."""

    index: int
    code: int
    error: str
    field: str
    reason: str
    id: str | None = None

    @classmethod
    def of(cls, index: int, reject: Reject, prefix: str = "") -> RowError:
        name = reject.field if not prefix else f"{prefix}[{index}].{reject.field}"
        return cls(index, int(reject.code), reject.code.slug, name, reject.reason, reject.input_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "code": self.code,
            "error": self.error,
            "field": self.field,
            "reason": self.reason,
            "id": self.id,
        }


_COLUMNS = INPUT_TRADE_COLUMNS + INPUT_TRADE_OPTIONAL


class IntakeInvariantError(RuntimeError):
    """A bug in the edge: the validator's rows and rejects disagree."""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fast_columns(rows: list[Any]) -> dict[str, pa.Array] | None:
    """Columns straight from well-typed rows (strings, integer ``executed_at``); None when any
    value needs the careful path (wrong JSON types, the ``executed_at_ms`` alias, non-objects)."""
    if not all(type(r) is dict and "executed_at" in r for r in rows):
        return None
    columns: dict[str, pa.Array] = {}
    for name in _COLUMNS:
        values = [r.get(name) for r in rows]
        integers = name == "executed_at" and all(type(v) is int for v in values)
        try:
            columns[name] = pa.array(values, type=pa.int64() if integers else pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError):
            return None
    return columns


Rows: TypeAlias = list[dict[str, Any]] | pa.RecordBatch
"""A submission's trades: the JSON objects as parsed, or the gateway's columns of them."""

# What :func:`_fast_columns` makes of well-typed objects with integer ``executed_at``: the form
# a gateway process ships its decoded submissions in (adapters/http/gateway.py).
DECODED_SCHEMA = pa.schema(
    [pa.field(name, pa.int64() if name == "executed_at" else pa.string()) for name in _COLUMNS]
)
_DECODED_STRUCT = pa.struct(list(DECODED_SCHEMA))


def decoded_batch(rows: list[Any]) -> pa.RecordBatch | None:
    """The rows as one record batch of :data:`DECODED_SCHEMA` — exactly the columns the loop
    would build from them (:func:`_fast_columns`) — or None when they need the careful path (a
    wrong JSON type, a non-object, ``executed_at`` not an integer, the ``executed_at_ms`` alias):
    such rows are submitted as JSON and judged by :meth:`Intake.trades` with its field-naming
    errors. One Arrow conversion of the objects (~1/3 cheaper than a list and an array per
    column at 100 rows; the gateway's hot path); a JSON integer is the only ``executed_at``
    taken (Arrow would also take a float or a bool for an int64)."""
    if not all(type(r) is dict and type(r.get("executed_at")) is int for r in rows):
        return None
    try:
        return pa.RecordBatch.from_struct_array(pa.array(rows, type=_DECODED_STRUCT))
    except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError):
        return None


def _decoded_columns(submissions: list[tuple[Rows, int, str]]) -> dict[str, pa.Array] | None:
    """The columns of decoded submissions joined, or None if any is JSON rows or not of
    :data:`DECODED_SCHEMA` (then its rows take the JSON path)."""
    batches = [s[0] for s in submissions if isinstance(s[0], pa.RecordBatch)]
    if not batches:
        return None
    if len(batches) < len(submissions) or not all(b.schema.equals(DECODED_SCHEMA) for b in batches):
        raise IntakeInvariantError("decoded submissions mixed with JSON rows or of another schema")
    if len(batches) == 1:
        only = batches[0]
        return {name: only.column(i) for i, name in enumerate(_COLUMNS)}
    joined = pa.Table.from_batches(batches).combine_chunks()
    return {name: joined.column(i).chunk(0) for i, name in enumerate(_COLUMNS)}


class Intake:
    """Validators for one configuration."""

    def __init__(self, config: ClearingConfig) -> None:
        self.config = config
        # The service bounds executed_at by the engine clock at receipt (below), not by a span.
        self.validator = TradeValidator(config, file_span=False)
        self.checker = _EventChecker(config)

    def warm(self, now_ms: int) -> None:
        """Validate two sample rows (one good, one bad) and drop the result: the first
        validation's one-time costs (Arrow compute functions' first calls, ~70 ms) are paid at a
        service's start, not by the first requests it answers. Validation has no state."""
        parties = [p.id for p in self.config.participants[:2]]
        codes = [a.code for a in self.config.assets[:2]]
        if len(parties) < 2 or len(codes) < 2:
            return
        row = {
            "trade_id": "warm-1",
            "venue": "warm",
            "symbol": f"{codes[1]}/{codes[0]}",
            "buyer": parties[0],
            "seller": parties[1],
            "quantity": "1",
            "price": "1",
            "executed_at": now_ms,
        }
        self.trades([([row, {**row, "trade_id": "warm-2", "quantity": "-1"}], now_ms, "trades")])

    def trades(
        self, submissions: list[tuple[Rows, int, str]]
    ) -> tuple[pa.Table, list[list[RowError]], list[tuple[int, int]]]:
        """Validate the rows of several submissions ``(rows, received_at_ms, field prefix)`` in
        one pass (the prefix names fields as ``trades[3].price``; empty for a single trade).
        A submission's rows are JSON objects, or a record batch of :data:`DECODED_SCHEMA` that a
        gateway decoded from such objects (:func:`decoded_batch`).

        Returns the valid rows of the submissions that are valid as a whole (in submission
        order, ``received_at_ms`` stamped per submission), each submission's errors (empty if
        accepted) and each accepted submission's slice ``(start, length)`` in the table.
        Decoded and JSON submissions in one call are validated as two groups (the decoded rows
        first in the table), each as it would be alone.
        """
        decoded = [k for k, s in enumerate(submissions) if isinstance(s[0], pa.RecordBatch)]
        if not decoded or len(decoded) == len(submissions):
            return self._group(submissions)
        plain = [k for k, s in enumerate(submissions) if not isinstance(s[0], pa.RecordBatch)]
        errors: list[list[RowError]] = [[] for _ in submissions]
        slices: list[tuple[int, int]] = [(0, 0) for _ in submissions]
        tables = []
        offset = 0
        for group in (decoded, plain):
            table, group_errors, group_slices = self._group([submissions[k] for k in group])
            for k, errs, (start, n) in zip(group, group_errors, group_slices, strict=True):
                errors[k] = errs
                slices[k] = (offset + start, n)
            tables.append(table)
            offset += table.num_rows
        return pa.concat_tables(tables), errors, slices

    def _group(
        self, submissions: list[tuple[Rows, int, str]]
    ) -> tuple[pa.Table, list[list[RowError]], list[tuple[int, int]]]:
        """:meth:`trades` for submissions all of one form (all decoded, or all JSON rows)."""
        sizes = np.fromiter(
            (s[0].num_rows if isinstance(s[0], pa.RecordBatch) else len(s[0]) for s in submissions),
            dtype=np.int64,
            count=len(submissions),
        )
        owner = np.repeat(np.arange(len(submissions), dtype=np.int64), sizes)
        received_arr = np.repeat(np.fromiter((s[1] for s in submissions), dtype=np.int64), sizes)
        errors: list[list[RowError]] = [[] for _ in submissions]
        if not len(owner):
            return TRADE_CHUNK_SCHEMA.empty_table(), errors, [(0, 0) for _ in submissions]
        starts = np.zeros(len(submissions) + 1, dtype=np.int64)
        starts[1:] = np.cumsum(sizes)
        type_errors: dict[str, npt.NDArray[np.bool_]] = {}
        flat: list[Any] = []
        fast = _decoded_columns(submissions)
        if fast is None:
            flat = [row for s in submissions if isinstance(s[0], list) for row in s[0]]
            fast = _fast_columns(flat)
        if fast is not None:
            columns = fast
        else:
            collector = _TradeRows()
            for i, row in enumerate(flat):
                collector.add(i, row if isinstance(row, dict) else {})
            columns = {name: pa.array(values, type=pa.string()) for name, values in collector.values.items()}
            type_errors = {
                name: np.asarray(flags, dtype=np.bool_)
                for name, flags in collector.wrong_type.items()
                if any(flags)
            }
        rows_no = np.arange(len(owner), dtype=np.int64)
        table, rejects = self.validator.validate(columns, rows_no, type_errors=type_errors)
        table, rejects = self._not_ahead(table, rejects, rows_no, received_arr)
        bad_rows = np.zeros(len(owner), dtype=np.bool_)
        for r in rejects:
            at = int(r.row or 0)
            k = int(owner[at])
            bad_rows[at] = True
            errors[k].append(RowError.of(at - int(starts[k]), r, submissions[k][2]))
        refused = np.array([bool(e) for e in errors], dtype=np.bool_)
        valid_rows = np.flatnonzero(~bad_rows)  # rows of ``table`` in order
        keep = ~refused[owner[valid_rows]]
        table = table.filter(pa.array(keep))
        kept_rows = valid_rows[keep]
        stamps = received_arr[kept_rows]
        table = table.set_column(10, TRADE_CHUNK_SCHEMA.field(10), pa.array(stamps, type=pa.int64()))
        slices: list[tuple[int, int]] = []
        pos = 0
        for k in range(len(submissions)):
            n = 0 if refused[k] else int(sizes[k])
            slices.append((pos, n))
            pos += n
        return table, errors, slices

    def _not_ahead(
        self,
        table: pa.Table,
        rejects: list[Reject],
        rows: npt.NDArray[np.int64],
        received: npt.NDArray[np.int64],
    ) -> tuple[pa.Table, list[Reject]]:
        """BAD_TIMESTAMP (110) for a valid row executed more than ``[intake]
        executed_at_future_ms`` after the engine clock read when it was received (``received``:
        per input row); the row leaves ``table`` and joins ``rejects``."""
        if table.num_rows == 0:
            return table, rejects
        bad = np.fromiter((r.row for r in rejects if r.row is not None), dtype=np.int64)
        valid = rows[~np.isin(rows, bad)] if len(bad) else rows
        if len(valid) != table.num_rows:  # the validator keeps every row it does not reject
            raise IntakeInvariantError(f"{table.num_rows} valid rows, {len(valid)} rows without a reject")
        executed = table.column("executed_at_ms").to_numpy()
        future_ms = self.config.intake.executed_at_future_ms
        ahead = executed > received[valid] + future_ms
        if not ahead.any():
            return table, rejects
        ids = table.column("trade_id").to_pylist()
        extra = [
            Reject(
                RejectCode.BAD_TIMESTAMP,
                "executed_at",
                f"executed_at {_iso(int(executed[k]))} is more than {future_ms} ms ahead of the engine clock "
                f"({_iso(int(received[valid[k]]))})",
                int(valid[k]),
                ids[k],
            )
            for k in np.flatnonzero(ahead).tolist()
        ]
        merged = sorted([*rejects, *extra], key=lambda r: int(r.row or 0))
        return table.filter(pa.array(~ahead)), merged

    def event(
        self, kind: str, obj: Any, index: int = 0, prefix: str = ""
    ) -> tuple[dict[str, Any] | None, RowError | None]:
        """Validate one small event (``payment``, ``collateral_deposit``, ...) for the log."""
        if not isinstance(obj, dict):
            return None, RowError(
                index, int(RejectCode.BAD_JSON), RejectCode.BAD_JSON.slug, prefix or "-", "not a JSON object"
            )
        body = {k: v for k, v in obj.items() if k != "type"}
        body["type"] = kind
        try:
            event = _EVENT_MODELS[kind].model_validate(body)
        except ValidationError as exc:
            return None, RowError.of(index, _event_reject(kind, index, body, exc), prefix)
        event_id = str(getattr(event, _EVENT_ID_FIELD[kind]))
        if kind == "payment" and event_id.startswith(model_ids.ESCROW_PAYOUT_PREFIX):
            reason = (
                f"payment ids starting {model_ids.ESCROW_PAYOUT_PREFIX!r} are the engine's escrow payouts"
            )
            reserved = Reject(RejectCode.RESERVED_ID, "payment_id", reason, index, event_id)
            return None, RowError.of(index, reserved, prefix)
        problem = self.checker.check(event, index, event_id)
        if problem is not None:
            return None, RowError.of(index, problem, prefix)
        data = event.model_dump(mode="json")
        data.pop("type", None)
        data.pop("v", None)
        return data, None


_Body = TypeVar("_Body", bound=BaseModel)
# A pydantic error type → the reject code an operator body (manual settlement, ledger
# adjustment) answers with; anything else is a malformed id or value (BAD_ID).
_BODY_CODES = {
    "missing": RejectCode.MISSING_FIELD,
    "string_pattern_mismatch": RejectCode.BAD_ID,
    "extra_forbidden": RejectCode.UNKNOWN_EVENT_TYPE,
}


def parse_body(
    model: type[_Body], obj: Any, what: str, id_field: str, decimal_suffix: str | None = None
) -> tuple[_Body | None, RowError | None]:
    """One JSON request body as ``model``, or the first thing wrong with it (field named, stable
    code; a field ending in ``decimal_suffix`` that fails is a bad decimal)."""
    if not isinstance(obj, dict):
        code = RejectCode.BAD_JSON
        return None, RowError(0, int(code), code.slug, "-", f"{what} is a JSON object")
    try:
        return model.model_validate(obj), None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "-"
        code = _BODY_CODES.get(first["type"], RejectCode.BAD_ID)
        if decimal_suffix is not None and field.endswith(decimal_suffix):
            code = RejectCode.BAD_DECIMAL
        given = obj.get(id_field)
        input_id = given if isinstance(given, str) else None
        return None, RowError(0, int(code), code.slug, field, str(first["msg"]), input_id)
