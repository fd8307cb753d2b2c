"""The Typer app the commands register on, its consoles, and the CLI's shared helpers."""

from __future__ import annotations

import inspect
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from auto_label.errors import AutoLabelError
from auto_label.version import __version__

if TYPE_CHECKING:
    from rich.console import Console

COMMANDS = ("init", "generate", "status", "show", "replay", "export", "review", "eval", "probe",
            "demo")
"""The order `auto_label --help` lists the commands in (the modules register them in any order)."""


PIPE_WIDTH = 200
"""columns `out` lays tables out in when stdout is not a terminal (rich would use 80)"""


def reflow(text: str | None) -> str | None:
    """A docstring as help: the lines of each paragraph joined (typer keeps a docstring's hard
    line breaks, which then break the help's lines mid-sentence), paragraphs kept apart."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _readable(params: Iterable[Any]) -> None:
    """Flags show no `<bool>` type in the help (typer >= 0.26 writes one for every option):
    typer shows a parameter's metavar in its place, so a flag's is set empty."""
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""


class _Ordered(TyperGroup):
    """The commands in COMMANDS order, with readable help."""

    def list_commands(self, ctx: Any) -> list[str]:
        known = {name: i for i, name in enumerate(COMMANDS)}
        return sorted(self.commands, key=lambda name: (known.get(name, len(known)), name))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            command.help = reflow(command.help)
            _readable(command.get_params(ctx))
        return command

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        _readable(params)
        return params


app = typer.Typer(
    cls=_Ordered,
    add_completion=False,
    no_args_is_help=True,
    help="Build vision-language grounding datasets with a VLM, on a resumable SQLite ledger.",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# the consoles are made on first use: rich takes about 15 ms to import, which a run with plain
# progress lines does not wait for before its first request (launch time, issue 12)
out: Console
"""stdout's console (on a pipe or in a log file, tables are laid out PIPE_WIDTH wide)"""
err: Console
"""stderr's console"""


def __getattr__(name: str) -> Any:
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    console = Console(stderr=name == "err", highlight=False, soft_wrap=True)
    if name == "out" and not console.is_terminal:  # lay tables out wide rather than cut cells
        console.width = PIPE_WIDTH
    globals()[name] = console
    return console


def _console(name: str) -> Console:
    made = globals().get(name)
    console: Console = __getattr__(name) if made is None else made
    return console


def stdout_is_terminal() -> bool:
    """`out.is_terminal`, without making `out` (importing rich) when the answer is plainly no:
    stdout is not a terminal and neither TTY_COMPATIBLE nor FORCE_COLOR is set (rich then says
    no too: rich/console.py, Console.is_terminal)."""
    if globals().get("out") is None and not {"TTY_COMPATIBLE", "FORCE_COLOR"} & os.environ.keys():
        isatty = getattr(sys.stdout, "isatty", None)
        try:
            if isatty is None or not isatty():
                return False
        except ValueError:  # closed
            return False
    return _console("out").is_terminal


def _print_version(value: bool) -> None:
    if value:
        _console("out").print(f"auto_label {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    )] = False,
) -> None:
    pass


def fail(error: AutoLabelError) -> typer.Exit:
    _console("err").print(f"error: {error}", markup=False)
    return typer.Exit(error.exit_code)


class Signals:
    """SIGINT/SIGTERM set the run's stop event (a second one exits at once). `say` shows the
    message (the live display's, so that it stays visible above it); default: stderr."""

    def __init__(self, stop: threading.Event,
                 say: Callable[[str], None] | None = None) -> None:
        self.stop = stop
        self.say = say or (lambda message: _console("err").print(message, markup=False))
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise SystemExit(128 + signum)
        self.received = signum
        self.stop.set()
        self.say(f"{signal.Signals(signum).name}: finishing the requests in flight "
                 "(again to quit at once)...")


