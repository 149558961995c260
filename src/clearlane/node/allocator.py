"""The process's allocators: jemalloc as Arrow's memory pool (the system allocator where this
pyarrow has no jemalloc) and no transparent-huge-page advice from NumPy — unless the operator
chose with the libraries' own switches, ``ARROW_DEFAULT_MEMORY_POOL`` (``jemalloc``,
``mimalloc``, ``system``) and ``NUMPY_MADVISE_HUGEPAGE`` (``0`` or ``1``), which are then kept.

Two ways in, because the libraries read their switches once:

- the ``clearlane`` command (``clearlane.adapters.cli``, before NumPy or pyarrow is imported)
  makes the choices the switches' defaults in the environment. Only this reaches Arrow's own
  C++ code (Parquet decoding, IPC compression buffers), which allocates from the C++ default
  pool that the variable picks the first time it is used; child processes (the writer
  process) inherit it.
- :func:`tune_allocators`, when a node opens (and in the writer process): for a process whose
  libraries were imported first (an embedding application, the tests), it sets pyarrow's
  default pool (what pyarrow itself allocates) and NumPy's switch at run time.

Why (issue 18, thirteenth session). Both defaults made the kernel zero memory the engine had
just freed, again and again (``clear_page_erms`` in ``perf record -g``):

- pyarrow's default pool, mimalloc, returned the per-chunk and per-batch buffers to the OS and
  faulted them back in as huge pages: ``clear_page_erms`` under ``mi_page_free_list_extend`` was
  10.5 % of the 1M-trade day's CPU samples, and the process spent 4.1–5.3 s of 12–17 s of CPU in
  the kernel. With jemalloc, 1.6–2.3 s.
- NumPy ``madvise``\\s every array of 4 MiB or more for huge pages. On the 10M-trade day such
  arrays, freshly allocated and written by the compiled kernels, faulted in 2 MiB at a time,
  each zeroed whole, and its kernel time was 18–19 s. Without the advice, 9–10 s.

Together (set when a node opens), against the build before, in alternating order: the 1M day
8.57 → 7.43 s, the 10M day 43.48 → 36.62 s. pyarrow's run-time switch left Arrow's C++ internals
on mimalloc: still 2 % of the 10M day's engine-thread samples, hence the command's defaults.

What an allocator hands out is never part of a result: the bytes stored and hashed are the
same whichever allocator made them (docs/PERFORMANCE.md, thirteenth session, has the runs).
Buffers keep the pool that allocated them, so switching while some are alive is safe. Done
once per process; later calls return the first call's choice.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
NUMPY_HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"


@dataclass(frozen=True, slots=True)
class Allocators:
    arrow_pool: str
    """Arrow's default pool's backend: ``jemalloc``, ``system``, or the operator's choice."""
    numpy_hugepages: bool
    """Whether NumPy still advises huge pages (only when the operator asked for it)."""


_chosen: Allocators | None = None


def tune_allocators() -> Allocators:
    """Set this process's allocators for the engine's work (see the module docstring)."""
    global _chosen
    if _chosen is None:
        _chosen = Allocators(_arrow_pool(), _numpy_hugepages())
        log.debug("allocators: %s", _chosen)
    return _chosen


def _arrow_pool() -> str:
    import pyarrow as pa

    wanted = os.environ.get(ARROW_POOL_ENV)
    in_use = str(pa.default_memory_pool().backend_name)
    if wanted and (in_use == wanted or wanted != "jemalloc"):
        return in_use  # the environment's choice, as Arrow made it
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)
    return str(pool.backend_name)


def _numpy_hugepages() -> bool:
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)  # NumPy 2 / NumPy 1
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:  # pragma: no cover - a NumPy without the switch (it has it since 1.20)
        return False
    if os.environ.get(NUMPY_HUGEPAGE_ENV):
        enabled = bool(setter(False))  # read the operator's setting back ...
        setter(enabled)  # ... and keep it
        return enabled
    setter(False)
    return False
