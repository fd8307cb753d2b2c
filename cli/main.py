"""`auto_label`: the command line, a thin layer over `auto_label.api`.

Exit codes: 0 every image completed every step; 1 some failed or were skipped; 2 bad configuration
or input (one line on stderr, no traceback); 3 the endpoint's quota is spent or it is unavailable;
130 / 143 stopped by SIGINT / SIGTERM (resumable).

Each command lives in a module of its own; importing them registers them on `app`.
"""

from __future__ import annotations

from auto_label.cli import (
    audit_cmds,
    batch_cmds,
    eval_cmds,
    init_cmds,
    ledger_cmds,
    review_cmds,
    run_cmds,
)
from auto_label.cli.app import app

__all__ = ["app", "audit_cmds", "batch_cmds", "eval_cmds", "init_cmds", "ledger_cmds", "main",
           "review_cmds", "run_cmds"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
