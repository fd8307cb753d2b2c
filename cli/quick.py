"""`auto_label generate`'s plain command lines, parsed without typer (launch time, issue 12).

Importing typer and making its app from the command's signature costs about 35 ms, paid before
the first request. A `generate` command line made only of the forms below is parsed here, the
way typer parses it, and run by `generating.generate`; anything else (help, an option given twice,
an unknown or misspelt option, a value that starts with `-`, `--limit` below 1, `--`, shell
completion) returns None and goes through typer as before, with its messages.

    -e SPEC | --experiment-spec SPEC | --experiment-spec=SPEC
    --plain | --no-plain | --retry-failed | --batch | --finish-online | --dry-run
    --limit N | --limit=N        (N: decimal digits, at least 1)
    OVERRIDE ...                 (any argument not starting with `-`, or `-` alone)

Options and overrides may come in any order, as with typer (click's interspersed arguments).

Such a run also pauses the cyclic garbage collector from here until the run begins
(`resume_gc`, called by the run's progress sink): importing the SDK and the tool, reading the spec
and making the backend create some 125,000 objects that live as long as the process, and the
collector scanned them over and over, about 60 ms of CPU before the first request (about 50 in the
bare script, which has less to import). They are then frozen (`gc.freeze`: never scanned again;
the few hundred objects of cycles that were garbage by then are kept) and collection goes on as
usual for everything made later. Objects still die as their last reference goes.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_FLAGS: dict[str, tuple[str, bool]] = {
    "--plain": ("plain", True), "--no-plain": ("plain", False),
    "--retry-failed": ("retry_failed", True), "--batch": ("batch", True),
    "--finish-online": ("finish_online", True), "--dry-run": ("dry_run", True),
}
"""flag -> (the keyword of `generating.generate` it sets, to what)"""
_VALUED: dict[str, str] = {"-e": "spec", "--experiment-spec": "spec", "--limit": "limit"}
"""option taking a value -> the keyword it sets"""


def parse_generate(args: Sequence[str]) -> dict[str, Any] | None:
    """The keywords of `generating.generate` for `args` (the command line after `generate`), as
    typer would pass them; None when `args` is not made only of the forms in the module's
    docstring (typer then parses it, and says what is wrong)."""
    values: dict[str, Any] = {}
    overrides: list[str] = []
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if token[:1] != "-" or token == "-":
            overrides.append(token)
            continue
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        value: str | bool
        if name in _FLAGS and not eq:
            key, value = _FLAGS[name]
        elif name in _VALUED:
            if not eq:
                if not rest:
                    return None
                inline = rest.pop(0)
            if not inline or inline[:1] == "-":
                return None
            key, value = _VALUED[name], inline
        else:
            return None
        if key in values:
            return None
        values[key] = value
    if "spec" not in values:
        return None
    if "limit" in values:
        limit = values["limit"]
        if not (limit.isascii() and limit.isdigit()) or int(limit) < 1:
            return None
        values["limit"] = int(limit)
    values["spec"] = Path(values["spec"])
    values["overrides"] = overrides or None
    return values


_PAUSED: list[bool] = []
"""[True] while the collector is paused by `pause_gc`"""


def pause_gc() -> None:
    """Pause the cyclic garbage collector until `resume_gc` (see the module)."""
    if gc.isenabled() and not _PAUSED:
        gc.disable()
        _PAUSED.append(True)


def resume_gc() -> None:
    """End `pause_gc`'s pause, if there is one: what exists now is frozen, collection resumes."""
    if _PAUSED:
        _PAUSED.clear()
        gc.freeze()
        gc.enable()


def run(args: Sequence[str]) -> int | None:
    """Run `auto_label generate ARGS` when `parse_generate` reads `args`: its exit code, as
    typer's would be; None when typer must parse `args`."""
    if any(k[:1] == "_" and k.endswith("_COMPLETE") for k in os.environ):
        return None  # a shell completion request: typer answers it
    keywords = parse_generate(args)
    if keywords is None:
        return None
    pause_gc()
    try:
        from auto_label.cli.generating import generate

        return generate(**keywords)
    except KeyboardInterrupt:
        return 130  # as typer: an interrupt outside the run's own handling exits 130
    except EOFError:
        print(file=sys.stderr)
        print("Aborted!", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        from typer._click.utils import PacifyFlushWrapper

        sys.stdout = PacifyFlushWrapper(sys.stdout)
        sys.stderr = PacifyFlushWrapper(sys.stderr)
        return 1
    finally:
        resume_gc()  # a run that ended before it began (a bad spec, a dry run...)
