"""How `show` and `replay` print: an image's events (rendered by `auto_label.history.lines`),
a replay's outcomes."""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from auto_label.history import ImageHistory, describe, lines
from auto_label.replay import ReplayReport

__all__ = ["describe", "print_history", "print_replay"]

REPLAY_KINDS = ("recovered", "changed", "reread", "same", "still_failing", "lost", "unversioned",
                "skipped")


def print_history(console: Console, history: ImageHistory) -> None:
    for line in lines(history):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_replay(console: Console, report: ReplayReport) -> None:
    verb = "would record" if report.dry_run else "recorded"
    images = f"{report.images} image{'' if report.images == 1 else 's'}"
    console.print(f"{report.pipeline}: {images}, their stored answers read again "
                  "(no request sent)", markup=False, highlight=False)
    for number, name in report.steps:
        counts = report.counts.get(number) or Counter()
        parts = [f"{counts[kind]} {kind.replace('_', ' ')}" for kind in REPLAY_KINDS
                 if counts.get(kind)]
        console.print(f"  {name}: {', '.join(parts) or 'nothing to read'}", markup=False,
                      highlight=False)
    for example in report.examples:
        console.print(f"{example.kind.replace('_', ' ')}: {example.image_id} step "
                      f"{example.step.number} ({example.step.name}): {example.message}",
                      markup=False, highlight=False, soft_wrap=True)
    if report.more_examples:
        console.print(f"... and {report.more_examples} more like these (`auto_label status "
                      f"{report.results_dir} --failed` lists the failed ones)", markup=False,
                      highlight=False, soft_wrap=True)
    for reason, count in report.skip_reasons.most_common():
        console.print(f"not read again ({count}): {reason}", markup=False, highlight=False)
    changes = f"; {len(report.records)} record(s) change:" if report.records else \
        "; no record changes"
    console.print(f"{verb} {report.recorded} completion(s){changes}", markup=False)
    for change in report.records:
        for line in change.lines:
            console.print(f"  {change.image_id}: {line}", markup=False, highlight=False,
                          soft_wrap=True)
    if report.downstream:
        console.print(f"{report.downstream} downstream step result(s) no longer fit their "
                      "upstream: the next `generate` asks for those (and only those) again",
                      markup=False)
    for path in report.outputs:
        console.print(f"wrote {path}", markup=False, highlight=False)
    if report.dry_run:
        console.print("dry run: nothing was recorded", markup=False)
