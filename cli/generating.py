"""What `auto_label generate` does once its arguments are parsed, without typer: the typer command
(`run_cmds.generate`) and the quick parse of its plain command lines (`quick`) both run it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

from auto_label import api
from auto_label.cli import app as cli
from auto_label.cli.app import Signals, report, stdout_is_terminal
from auto_label.cli.quick import resume_gc
from auto_label.errors import AutoLabelError


def generate(spec: Path, overrides: list[str] | None = None, *, plain: bool = False,
             retry_failed: bool = False, batch: bool = False, finish_online: bool = False,
             limit: int | None = None, dry_run: bool = False) -> int:
    """Run the spec's pipeline on every image that has not completed it, then export; the exit
    code (`auto_label.cli.main` lists them). The arguments are the command's options."""
    from auto_label.cli.progress import PlainProgress, RichProgress

    stop = threading.Event()
    overrides = overrides or []
    if batch or finish_online:
        try:
            block = api.load_spec(spec, overrides).autolabel_type
        except AutoLabelError as error:
            return report(error)
        overrides = [*overrides, f"{block}.workflow.mode=batch",
                     *([f"{block}.workflow.batch.finish_online=true"] if finish_online else [])]
    if dry_run:
        resume_gc()
        return _dry_run(spec, overrides, retry_failed, limit)
    try:
        loaded = api.load_spec(spec, overrides)
        progress = RichProgress(cli.out) if not plain and stdout_is_terminal() else \
            PlainProgress()
        with Signals(stop, say=progress.note) as signals:
            summary = api.generate(loaded, progress=_Begun(progress), stop=stop,
                                   retry_failed=retry_failed, limit=limit)
    except AutoLabelError as error:
        return report(error)
    # what only the end needs is imported at the end: the first request goes out sooner
    from auto_label.cli.hints import failure_hints
    from auto_label.cli.invocation import command_line
    from auto_label.cli.summary import print_summary

    out = cli.out
    print_summary(out, summary)
    if signals.received is not None:
        out.print(f"stopped by {signal.Signals(signals.received).name}; everything answered so "
                  f"far is in the ledger. Resume with the same command:\n  {command_line()}",
                  markup=False)
        return 128 + signals.received
    for hint in failure_hints(summary, retry_failed=retry_failed):
        out.print(hint, markup=False)
    if summary.interrupted == "max_cost":
        out.print(f"Resume with the same command (max_cost is per run):\n  {command_line()}",
                  markup=False)
    return 0 if summary.ok else 1


def _dry_run(spec: Path, overrides: list[str], retry_failed: bool, limit: int | None) -> int:
    from auto_label.cli.dry_run_view import print_dry_run
    from auto_label.estimate import dry_run

    try:
        report_ = dry_run(spec, overrides, retry_failed=retry_failed, limit=limit)
    except AutoLabelError as error:
        return report(error)
    print_dry_run(cli.out, report_)
    return 0


class _Begun:
    """The run's progress sink, which ends the launch's pause of the garbage collector
    (`quick.resume_gc`) as the run begins."""

    def __init__(self, sink: api.ProgressSink) -> None:
        self.sink = sink

    def begin(self, info: api.RunInfo, snapshot: Callable[[], api.Snapshot]) -> None:
        resume_gc()
        self.sink.begin(info, snapshot)

    def note(self, message: str) -> None:
        self.sink.note(message)

    def end(self, final: api.Snapshot) -> None:
        self.sink.end(final)
