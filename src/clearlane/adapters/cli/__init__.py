"""cli owns the ``clearlane`` command: one typer application whose commands parse arguments, call
the node and print results, one module per command group.

- ``main``: the application, the mapping of the error tree to exit codes, the registration of
  every command (the console script's entry point);
- ``common``: the consoles, ``fail``, the ``--db`` / ``--keys`` options, the progress bar,
  opening a store or a node;
- ``demo_command``: ``demo``; ``demo``: the live demo's process wiring (serve and feed a day);
- ``clearing``: ``clear``, ``status``, ``replay``, ``close``;
- ``bench``: ``bench``;
- ``evidence``: ``proof``, ``verify-proof``, ``consistency``, ``verify``, ``dispute``,
  ``dispute-check``;
- ``bus``: ``publish``, ``worker`` (NATS JetStream);
- ``service``: ``serve`` and the ``apikey`` group;
- ``keys``: the ``keys`` group (checkpoint signing keys).

Command modules import the node and the adapters inside their functions, so that
``clearlane --help`` stays quick.
"""

import os
import sys

# The process's allocators (node/allocator.py says why): jemalloc for Arrow, no huge-page advice
# from NumPy, as defaults of the libraries' own switches, set before any command imports NumPy
# or pyarrow, which read them once. Only this way does Arrow's C++ code (Parquet decoding, IPC
# compression) leave mimalloc too; child processes (the writer process) inherit them. An
# operator's values are kept. Linux only: pyarrow's Linux wheels carry jemalloc.
if sys.platform.startswith("linux"):
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
