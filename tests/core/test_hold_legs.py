"""The hold and release legs of a batch built by the compiled kernels (core/engine/kernel.py)
are the legs the numpy expressions they replaced build, in the same order (issue 18)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.engine import kernel

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
