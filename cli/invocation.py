"""How this process was started, so that the commands a hint prints work when pasted as they are.

A hint that says `auto_label generate ...` gives "command not found" to someone who ran
`.venv/bin/auto_label` without activating the venv; it must name the command they typed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

PROGRAM = "auto_label"


def _as_typed(path: str) -> str:
    """A path to an executable as a person would type it: relative to the current directory when
    under it (`./` in front when the relative form has no folder, which a shell would look up in
    PATH), absolute otherwise."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    return str(relative) if len(relative.parts) > 1 else f".{os.sep}{relative}"


def _on_path(name: str, path: str) -> bool:
    """`name`, looked up in PATH, is `path` (symlinks not resolved: a venv's python is a link to
    the system's, which does not have this package)."""
    found = shutil.which(name)
    return found is not None and os.path.abspath(found) == os.path.abspath(path)


def command_name(argv0: str | None = None, executable: str | None = None) -> str:
    """The command that started this process, ready to paste: `auto_label` when that name in
    PATH is what ran; the script's path otherwise (`.venv/bin/auto_label`, relative to the
    current directory when under it); `python -m auto_label` (with the interpreter's path when
    `python` in PATH is another one) when run as a module. Defaults: `sys.argv[0]`,
    `sys.executable`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    name = os.path.basename(argv0)
    if name in ("__main__.py", "-m", "-c") or not argv0:
        python = next((n for n in ("python", "python3") if _on_path(n, executable)), None)
        return f"{python or shlex.quote(_as_typed(executable))} -m {PROGRAM}"
    if os.sep not in argv0 and (os.altsep is None or os.altsep not in argv0):
        return shlex.quote(argv0)  # a bare name: found in PATH as typed
    if _on_path(name, argv0):
        return shlex.quote(name)
    return shlex.quote(_as_typed(argv0))


SECRET_KEYS = ("api_key", "token", "secret", "password")
"""Overrides whose key ends with one of these hold a secret: never printed."""


def mask_secrets(args: Sequence[str]) -> list[str]:
    """`args` with the value of every secret override (`...api_key=VALUE`) replaced by `***`."""
    masked = []
    for arg in args:
        key, sep, _ = arg.partition("=")
        if sep and key.strip().lower().endswith(SECRET_KEYS):
            arg = f"{key}=***"
        masked.append(arg)
    return masked


def command_line(args: Sequence[str] | None = None) -> str:
    """The whole command line of this process (`command_name()` and its arguments, quoted for
    a POSIX shell): what to run again to resume. The values of secret overrides (API keys) are
    printed as `***`: a resume hint lands in logs (set the key in the environment instead:
    GOOGLE_API_KEY, OPENAI_API_KEY)."""
    args = sys.argv[1:] if args is None else args
    masked = mask_secrets(args)
    line = " ".join([command_name(), *(shlex.quote(a) for a in masked)])
    if masked != list(args):
        line += ("\n  (the key is not shown: give it again where *** stands, or set it in the "
                 "environment instead)")
    return line
