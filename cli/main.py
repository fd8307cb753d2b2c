"""`auto_label`: the command line, a thin layer over `auto_label.api`.

Exit codes: 0 every image completed every step; 1 some failed or were skipped; 2 bad configuration
or input (one line on stderr, no traceback); 3 the endpoint's quota is spent or it is unavailable;
130 / 143 stopped by SIGINT / SIGTERM (resumable).

Each command lives in a module of its own; importing it registers its commands on `app`. `main`
imports only the module of the command it runs (a command's own imports, e.g. the exports or
rich's tables, are not paid by the others: launch time, issue 12); the help, an unknown command or
`app` taken from this module (`from auto_label.cli.main import app`) register them all. A
`generate` command line of the plain forms `quick` knows is run without typer at all.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auto_label.cli.app import app

COMMAND_MODULES: dict[str, str] = {
    "init": "init_cmds", "generate": "run_cmds", "probe": "run_cmds", "demo": "run_cmds",
    "status": "ledger_cmds", "export": "ledger_cmds", "show": "audit_cmds",
    "replay": "audit_cmds", "review": "review_cmds", "eval": "eval_cmds",
    "batches": "batch_cmds",
}
"""command -> the module (of auto_label.cli) that registers it"""
MODULES = ("audit_cmds", "batch_cmds", "eval_cmds", "init_cmds", "ledger_cmds", "review_cmds",
           "run_cmds")

__all__ = ["COMMAND_MODULES", "MODULES", "app", "commands", "main"]


def commands(argv: Sequence[str] | None = None) -> Any:
    """The Typer app with the command `argv` names registered (`argv`: the arguments after the
    program's name, the command first), or every command when its first argument is not a
    command that `COMMAND_MODULES` knows (an option such as --help or --version, a typo) or
    `argv` is None."""
    name = argv[0] if argv else None
    modules = (COMMAND_MODULES[name],) if name in COMMAND_MODULES else MODULES
    for module in modules:
        importlib.import_module(f"auto_label.cli.{module}")
    from auto_label.cli.app import app

    return app


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["generate"]:  # its plain command lines skip typer (see `quick`)
        from auto_label.cli.quick import run

        code = run(args[1:])
        if code is not None:
            sys.exit(code)
    commands(args or None)()


def __getattr__(name: str) -> Any:
    """`app` and the command modules, every command registered."""
    if name == "app":
        return commands()
    if name in MODULES:
        commands()
        return importlib.import_module(f"auto_label.cli.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
