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
@given(st.lists(st.text(max_size=6), min_size=1, max_size=8), st.lists(st.integers(0, 7), max_size=20))
def test_net_text_columns_equal_a_column_of_the_picked_strings(names: list[str], picks: list[int]) -> None:
    """A batch's net participant / asset column (clearing._texts, built from the string table's
    buffers) has the values and the IPC bytes of ``pa.array`` of the picked strings — the stored
    net blob is written from it."""
    index = np.array([p % len(names) for p in picks], dtype=np.int64)
    built = clearing._texts(string_table(names), index)
    built.validate(full=True)
    expected = pa.array([names[i] for i in index.tolist()], type=pa.string())
    assert built.equals(expected)
    assert _ipc(built) == _ipc(expected)
