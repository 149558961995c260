"""What every ``clearlane`` command group shares: the two consoles (results on stdout, messages
and progress on stderr), :func:`fail`, the ``--db`` and ``--keys`` option types, the progress
bar, and opening a store or a node from a ``--db`` value.

Imports of the node and the adapters stay inside the functions: ``clearlane --help`` imports
this module and must stay quick.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        help="SQLite database file (created if missing) or a database URL (postgresql://user@host:port/db).",
    ),
]

# Commands that read a store that must already exist (status, replay, close, proof, dispute,
# apikey list): a missing database file is an input error (exit 2), never a new empty one.
ExistingDbOption = Annotated[
    str,
    typer.Option(
        "--db",
        help="An existing SQLite database file (a missing one is an error, exit 2) or a database URL.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout (the ``--json`` of every command)."""
    import json

    console.print_json(json.dumps(data, default=str))


KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        help="Signing-key directory (default: <db stem>.keys beside the database; created on first use).",
    ),
]


ChainOption = Annotated[
    str,
    typer.Option(
        "--chain", help="Base layer: simulated (deterministic, from the config) or ethereum (JSON-RPC)."
    ),
]
RpcUrlOption = Annotated[
    str | None, typer.Option("--rpc-url", help="Ethereum JSON-RPC endpoint (with --chain ethereum).")
]
ChainKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--chain-key",
        help="Hex private-key file (mode 0600) of the funded account that anchors (default: the key "
        "directory's ethereum/ACTIVE key, created on first use).",
    ),
]


def chain_choice(chain: str, rpc_url: str | None, chain_key: Path | None) -> Any:
    """The ``--chain`` options as an :class:`clearlane.adapters.embedded.ChainChoice`."""
    from clearlane.adapters.embedded import ChainChoice

    if chain not in ("simulated", "ethereum"):
        raise fail(f"--chain must be simulated or ethereum, not {chain!r}")
    if chain == "ethereum" and not rpc_url:
        raise fail("--chain ethereum needs --rpc-url")
    if chain == "simulated" and (rpc_url or chain_key):
        raise fail("--rpc-url and --chain-key need --chain ethereum")
    return ChainChoice(chain, rpc_url, str(chain_key) if chain_key else None)  # type: ignore[arg-type]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error on stderr; the caller raises the returned exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def missing_db(db: str) -> bool:
    """A file path (not a URL) that does not exist."""
    from clearlane.adapters.sql.store import is_url

    return not is_url(db) and not Path(db).exists()


def progress_bar() -> Progress:
    """A progress bar on stderr, shown on a terminal (or with CLEARLANE_PROGRESS=1)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and os.environ.get("CLEARLANE_PROGRESS") != "1",
    )


def open_node(
    db: str | Path,
    config: Path | None,
    *,
    create: bool = True,
    keys: Path | None = None,
    signing: bool = True,
    chain: Any = None,
    writer_process: bool = False,
) -> Any:
    """Open the store's node (recovering by replay), with a progress bar for the replay;
    ``chain``: a ``ChainChoice`` (default: the simulated chain); ``writer_process``: bulk
    clears commit in a process of their own (``node/writer_process.py``)."""
    from clearlane.adapters.embedded import open_node as start_node

    with progress_bar() as progress:
        task = progress.add_task("replaying log", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        extra = {} if chain is None else {"chain": chain}
        return start_node(
            db,
            config,
            create=create,
            progress=on_progress,
            keys=keys,
            signing=signing,
            writer_process=writer_process,
            **extra,
        )


WRITER_PROCESS_MIN_BYTES = 8 * 2**20
WRITER_PROCESS_MIN_CPUS = 4

WriterOption = Annotated[
    str,
    typer.Option(
        help="Where a bulk clear's steps are sealed and committed while the engine applies the next: "
        "'thread', 'process' (a second interpreter; a SQLite file or PostgreSQL) or 'auto': the process "
        f"on a machine of {WRITER_PROCESS_MIN_CPUS} or more CPUs for an input of "
        f"{WRITER_PROCESS_MIN_BYTES // 2**20} MiB or more, else the thread.",
    ),
]


def writer_in_process(choice: str, input_bytes: int) -> bool:
    """``--writer``: the writer process (``node/writer_process.py``) or the writer thread.

    ``auto`` takes the process only where it was measured to pay or cannot be starved: its
    start-up (~1.4 s of a core) needs a big input to be repaid, and on two CPUs the process's
    own work competes with the engine's helper threads for the second core — there it made the
    GIL-bound 1M-trade day 7.5 % faster but the CPU-bound 10M day 14–22 % slower
    (docs/PERFORMANCE.md, tenth session)."""
    if choice not in ("auto", "thread", "process"):
        raise fail(f"--writer {choice!r}: expected auto, thread or process")
    if choice != "auto":
        return choice == "process"
    return (os.cpu_count() or 1) >= WRITER_PROCESS_MIN_CPUS and input_bytes >= WRITER_PROCESS_MIN_BYTES


def open_store(db: str) -> Any:
    """Open an existing store; a missing database file is an input error."""
    from clearlane.adapters.sql.store import Store

    if missing_db(db):
        raise fail(f"{db}: no such database")
    return Store.open(db, create=False)


def safe_name(value: str) -> str:
    """``value`` usable in a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)
