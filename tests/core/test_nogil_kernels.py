"""The compiled kernels the engine's thread runs for long stretches release the GIL (issue 18).

A bulk clear is three threads in one interpreter (reader, engine, writer); a kernel compiled
without ``nogil`` holds the interpreter lock for its whole run — 10 ms a call for the netting
pass on the 1M-trade day — and the writer and reader wait for it even though it touches no
Python object. With ``nogil`` they run beside it (docs/PERFORMANCE.md, eighth session)."""

from __future__ import annotations

from typing import Any

import pytest

from clearlane.core import money
from clearlane.core.engine import commitment, content, kernel, netting
from clearlane.core.ledger import _kernel as ledger_kernel

RELEASING = [
    netting._net_compiled,
    netting._net_flows_compiled,
    netting.cell_sums,
    ledger_kernel.post_wide_many,
    ledger_kernel.release_wide,
    money._mul_div_fast,
    money._parse_kernel,
    kernel.assign_batches,
    kernel.close_due,
    commitment._batch_roots,
    content._trade_digests,
]


@pytest.mark.parametrize("dispatcher", RELEASING, ids=lambda d: d.py_func.__qualname__)
def test_the_kernel_releases_the_gil(dispatcher: Any) -> None:
    assert dispatcher.targetoptions.get("nogil") is True
