"""The hold and release legs of a batch built by the compiled kernels (core/engine/kernel.py)
are the legs the numpy expressions they replaced build, in the same order; its net text columns
are the strings an Arrow column of them holds, byte for byte (issue 18)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.ipc
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.engine import clearing, kernel
from clearlane.core.proofs import codec
from clearlane.core.textcols import string_table

_POSITIONS = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(-(10**15), 10**15)), max_size=12
)


def _accounts(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = rng.permutation(200).astype(np.int64)
    return cells[:15].reshape(5, 3), cells[15:18], cells[18:33].reshape(5, 3)


@settings(max_examples=60, deadline=None)
@given(_POSITIONS, st.integers(0, 2**16))
def test_hold_and_release_legs_equal_the_numpy_expressions(
    positions: list[tuple[int, int, int]], seed: int
) -> None:
    participant, asset, net = (np.array([p[i] for p in positions], dtype=np.int64) for i in range(3))
    available, pool_l2, inflight = _accounts(seed)

    debtor = net < 0
    want_accounts = np.concatenate(
        [
            available[participant[debtor], asset[debtor]],
            pool_l2[asset[debtor]],
            pool_l2[asset[~debtor]],
            inflight[participant[~debtor], asset[~debtor]],
        ]
    )
    want_amounts = np.concatenate([net[debtor], -net[debtor], -net[~debtor], net[~debtor]])
    accounts, amounts = kernel.hold_legs(participant, asset, net, available, pool_l2, inflight)
    assert np.array_equal(accounts, want_accounts) and np.array_equal(amounts, want_amounts)

    credit = net > 0
    want_accounts = np.concatenate(
        [inflight[participant[credit], asset[credit]], available[participant[credit], asset[credit]]]
    )
    want_amounts = np.concatenate([-net[credit], net[credit]])
    accounts, amounts = kernel.release_legs(participant, asset, net, inflight, available)
    assert np.array_equal(accounts, want_accounts) and np.array_equal(amounts, want_amounts)
    assert accounts.dtype == np.int64 and amounts.dtype == np.int64


def _ipc(array: pa.Array) -> bytes:
    sink = pa.BufferOutputStream()
    batch = pa.record_batch([array], names=["x"])
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(max_size=6), min_size=1, max_size=8),
    st.lists(st.lists(st.integers(0, 7), max_size=20), max_size=5),
)
def test_net_text_columns_equal_a_column_of_the_picked_strings(
    names: list[str], runs: list[list[int]]
) -> None:
    """Each closing batch's net participant / asset column (clearing.texts_many: all of a
    step's batches gathered from the string table's buffers in one pass) has the values and the
    IPC bytes of ``pa.array`` of the strings its own index picks — the stored net blob is
    written from it, whether it is alone or beside other batches' columns."""
    indices = [np.array([p % len(names) for p in picks], dtype=np.int64) for picks in runs]
    built = clearing.texts_many(string_table(names), indices)
    assert len(built) == len(indices)
    for column, index in zip(built, indices, strict=True):
        column.validate(full=True)
        expected = pa.array([names[i] for i in index.tolist()], type=pa.string())
        assert column.equals(expected)
        assert _ipc(column) == _ipc(expected)
        assert codec.write_table(pa.table({"x": column})) == codec.write_table(pa.table({"x": expected}))
        assert clearing.texts_many(string_table(names), [index])[0].equals(column)  # alone: the same


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 20),
    st.lists(st.lists(st.integers(0, 2**62), min_size=20, max_size=20), min_size=1, max_size=12),
    st.lists(st.floats(1e-12, 1e6), min_size=20, max_size=20),
)
def test_usd_at_marks_equals_each_batch_alone(assets: int, rows: list[list[int]], marks: list[float]) -> None:
    """A step's batches are valued at marks together (clearing.usd_at_marks); every batch gets
    the float its own vector gives, to the last bit (the figure goes into the event and the
    statistics, and so into the state root)."""
    per_asset = [np.array(r[:assets], dtype=np.int64) for r in rows]
    mark_minor = np.array(marks[:assets], dtype=np.float64)
    together = clearing.usd_at_marks(per_asset, mark_minor)
    assert together == [float((v * mark_minor).sum()) for v in per_asset]
