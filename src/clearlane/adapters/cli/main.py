"""The ``clearlane`` command (typer + rich): the application, the error mapping and the
registration of every command; the commands themselves live one group per module beside this
one (see the package docstring).

Exit codes (the table in docs/CLI.md, which tests/adapters/cli/test_cli_integrators.py holds
to :data:`EXIT_CODES`): 0 success; 1 a command-specific failure (trade not found, replay
mismatch, unbalanced close, a runtime that failed); 2 bad invocation or input that cannot be used
at all (config error, unreadable file, missing database); 3 ``clear --strict`` with rejected
rows. Row-level problems in an input file never fail the command otherwise: the bad rows go to
the rejects file with a stable code and the good rows are applied.

Every :class:`~clearlane.core.errors.ClearlaneError` is answered once, by :class:`_Commands`:
its message on stderr and its category's exit code (:data:`EXIT_CODES`); commands catch only
what they answer differently.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from clearlane.adapters.cli import (
    alerts,
    bench,
    bus,
    clearing,
    demo_command,
    escrow,
    evidence,
    keys,
    manual,
    recon,
    service,
    stress,
)
from clearlane.adapters.cli.common import fail
from clearlane.core.errors import ClearlaneError, InputError, IntegrityError, NotFound, Unavailable, category

# The error tree's categories, once. An integrity failure exits 2 like unusable input: the
# store or file given cannot be used (a replay mismatch found by `verify` is a report, exit 1).
EXIT_CODES: dict[type[ClearlaneError], int] = {
    InputError: 2,
    NotFound: 1,
    IntegrityError: 2,
    Unavailable: 1,
    ClearlaneError: 1,  # an error that chose no category (the tests refuse such a declaration)
}


def exit_code(exc: ClearlaneError) -> int:
    return EXIT_CODES[category(exc)]


class _Commands(TyperGroup):
    """The top-level command group: answers any ClearlaneError a command lets through."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's vendored click Context is private
        try:
            return super().invoke(ctx)
        except ClearlaneError as exc:
            raise fail(str(exc), exit_code(exc)) from None


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    help="clearlane — Layer-2 clearing and settlement engine.",
)


def _version(value: bool) -> None:
    if value:
        from clearlane import __version__

        print(f"clearlane {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """clearlane — Layer-2 clearing and settlement engine (exit codes: docs/CLI.md)."""


# In the order `clearlane --help` lists them.
app.command()(demo_command.demo)
app.command()(clearing.clear)
app.command()(clearing.status)
app.command()(clearing.replay)
app.command()(clearing.close)
app.command()(bench.bench)
app.command()(stress.stress)
app.command()(evidence.proof)
app.command("verify-proof")(evidence.verify_proof)
app.command()(evidence.consistency)
app.command()(evidence.verify)
app.command()(evidence.dispute)
app.command("dispute-check")(evidence.dispute_check)
app.command()(bus.publish)
app.command()(bus.worker)
app.command()(service.serve)
app.add_typer(keys.keys_app, name="keys")
app.add_typer(service.apikey_app, name="apikey")
app.add_typer(escrow.escrow_app, name="escrow")
app.command("manual-settle")(manual.manual_settle)
app.add_typer(recon.recon_app, name="recon")
app.add_typer(alerts.alerts_app, name="alerts")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
