"""The error tree mapped once to exit codes, by the top-level command group."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from clearlane.adapters.cli import main as cli
from clearlane.core.errors import ClearlaneError, InputError, IntegrityError, NotFound, Unavailable
from tests.core.test_errors import all_errors


@pytest.mark.parametrize(
    ("category", "code"), [(InputError, 2), (NotFound, 1), (IntegrityError, 2), (Unavailable, 1)]
)
def test_categories(category: type[ClearlaneError], code: int) -> None:
    assert cli.exit_code(category("why")) == code


@pytest.mark.parametrize("cls", all_errors(), ids=lambda c: c.__name__)
def test_every_error_maps_to_an_exit_code(cls: type[ClearlaneError]) -> None:
    exc = cls.__new__(cls)
    assert cli.exit_code(exc) in (1, 2)


def test_the_group_answers_an_error_a_command_lets_through() -> None:
    app = typer.Typer(cls=cli._Commands)

    @app.command()
    def missing() -> None:
        raise NotFound("trade 'T-9' not found")

    @app.command()
    def other() -> None:
        pass

    result = CliRunner().invoke(app, ["missing"])
    assert result.exit_code == 1 and "trade 'T-9' not found" in result.output
