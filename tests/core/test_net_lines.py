"""Net instructions' text (``participant,asset,net_minor\\n`` per position): the compiled
formatter the audit chain digests batches with equals Arrow's cast and join, byte for byte
(issue 18: the join was ~0.1–0.3 s of a 1M-trade day's writer)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from clearlane.core.proofs.hashchain import _net_lines_arrow, _net_lines_buffer, net_lines

_INT64 = st.integers(-(2**63), 2**63 - 1)
_EDGES = st.sampled_from([0, -1, 1, 9, 10, -10, 2**63 - 1, -(2**63), -(2**63) + 1, 10**18, -(10**18)])


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.text(max_size=6), st.text(max_size=5), st.one_of(_INT64, _EDGES)), max_size=30
    ),
    cut=st.integers(0, 3),
)
def test_compiled_lines_equal_arrows_join(rows: list[tuple[str, str, int]], cut: int) -> None:
    participant = pa.array([r[0] for r in rows], pa.string())
    asset = pa.array([r[1] for r in rows], pa.string())
    net = np.array([r[2] for r in rows], dtype=np.int64)
    # Sliced columns too (the positions of one batch inside a step's concatenation).
    lo = min(cut, len(rows))
    participant, asset, net = participant.slice(lo), asset.slice(lo), net[lo:]
    blob, offsets = _net_lines_buffer(participant, asset, net)
    ref_blob, ref_offsets = _net_lines_arrow(participant, asset, net)
    assert np.array_equal(offsets - offsets[0], ref_offsets - ref_offsets[0])
    got = bytes(blob[int(offsets[0]) : int(offsets[-1])])
    assert got == bytes(ref_blob[int(ref_offsets[0]) : int(ref_offsets[-1])])
    assert (
        got
        == "".join(
            f"{p},{a},{v}\n"
            for p, a, v in zip(*(c.to_pylist() for c in (participant, asset)), net.tolist(), strict=True)
        ).encode()
    )
    assert net_lines(participant, asset, net) == got


def test_nulls_take_arrows_path() -> None:
    """A null leaves its line out, as Arrow's join does (never in a batch's positions)."""
    participant = pa.array(["A", None, "C"], pa.string())
    asset = pa.array(["USD", "USD", "EUR"], pa.string())
    assert net_lines(participant, asset, np.array([1, -2, 3])) == b"A,USD,1\nC,EUR,3\n"
