"""The Typer app the commands register on (`auto_label.cli.app.app` is this one, made when first
looked up: typer is imported then, not by a `generate` that `quick` parses)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from auto_label.cli.app import COMMANDS, get_console, readable, reflow
from auto_label.version import __version__


class _Ordered(TyperGroup):
    """The commands in COMMANDS order, with readable help."""

    def list_commands(self, ctx: Any) -> list[str]:
        known = {name: i for i, name in enumerate(COMMANDS)}
        return sorted(self.commands, key=lambda name: (known.get(name, len(known)), name))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            command.help = reflow(command.help)
            readable(command.get_params(ctx))
        return command

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        readable(params)
        return params


app = typer.Typer(
    cls=_Ordered,
    add_completion=False,
    no_args_is_help=True,
    help="Build vision-language grounding datasets with a VLM, on a resumable SQLite ledger.",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        get_console("out").print(f"auto_label {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    )] = False,
) -> None:
    pass
