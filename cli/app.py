"""The Typer app the commands register on, its consoles, and the CLI's shared helpers.

typer is imported when `app` is first looked up (`from auto_label.cli.app import app`, made in
`typer_app`): `generate`'s plain command lines are parsed without it (`quick`), and its import
(about 35 ms with the app's making) is not paid before their first request (launch time, issue 12).
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any

from auto_label.errors import AutoLabelError

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    from auto_label.cli.typer_app import app as app

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


def readable(params: Iterable[Any]) -> None:
    """Flags show no `<bool>` type in the help (typer >= 0.26 writes one for every option):
    typer shows a parameter's metavar in its place, so a flag's is set empty."""
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""


# the consoles are made on first use: rich takes about 15 ms to import, which a run with plain
# progress lines does not wait for before its first request (launch time, issue 12)
out: Console
"""stdout's console (on a pipe or in a log file, tables are laid out PIPE_WIDTH wide)"""
err: Console
"""stderr's console"""


def __getattr__(name: str) -> Any:
    if name == "app":
        from auto_label.cli.typer_app import app as made

        globals()["app"] = made
        return made
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    console = Console(stderr=name == "err", highlight=False, soft_wrap=True)
    if name == "out" and not console.is_terminal:  # lay tables out wide rather than cut cells
        console.width = PIPE_WIDTH
    globals()[name] = console
    return console


def get_console(name: str) -> Console:
    """`out` or `err` (`name`), made on first use."""
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
    return get_console("out").is_terminal


def report(error: AutoLabelError) -> int:
    """Say `error` on stderr (one line); its exit code."""
    get_console("err").print(f"error: {error}", markup=False)
    return error.exit_code


def fail(error: AutoLabelError) -> typer.Exit:
    """`report(error)` as the typer.Exit a command raises."""
    import typer

    return typer.Exit(report(error))


class Signals:
    """SIGINT/SIGTERM set the run's stop event (a second one exits at once). `say` shows the
    message (the live display's, so that it stays visible above it); default: stderr."""

    def __init__(self, stop: threading.Event,
                 say: Callable[[str], None] | None = None) -> None:
        self.stop = stop
        self.say = say or (lambda message: get_console("err").print(message, markup=False))
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


