"""The lines that tell a person what to do after a run that did not end well: which steps failed,
and the command that retries them, as this process was invoked (see `invocation`)."""

from __future__ import annotations

from auto_label.api import RunSummary


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def failed_steps(summary: RunSummary) -> str:
    """`step1_grounding 3, step3_double_check 1`: the failed (image, step) pairs per step name,
    "" when none failed."""
    names = dict(summary.steps)
    return ", ".join(f"{names.get(step, step)} {counts['failed']}"
                     for step, counts in sorted(summary.counts.items()) if counts["failed"])


def failure_hints(summary: RunSummary, *, retry_failed: bool = False) -> list[str]:
    """Why a finished run exits 1 and what to do, one line each: failed image steps (rerun, or
    `--retry-failed`), input problems that were skipped (fix and rerun). [] for an ok run."""
    if summary.ok or summary.interrupted is not None:
        return []
    lines = []
    failed = sum(counts["failed"] for counts in summary.counts.values())
    if failed:
        line = (f"{_plural(failed, 'image step')} failed ({failed_steps(summary)}): rerun the "
                "same command to retry them")
        lines.append(line + ("" if retry_failed else
                             ", or add --retry-failed to retry only those"))
    problems = len(summary.input_problems)
    if problems:
        lines.append(f"{_plural(problems, 'input problem')} skipped (listed above): fix the "
                     "input and rerun; only what is new or changed is asked")
    return lines


def not_ok_reasons(summary: RunSummary) -> list[str]:
    """Why a run is not ok, in short phrases: failed steps with their kinds, input problems
    skipped, steps skipped, the convention alarm. [] for an ok run."""
    reasons = []
    failed = sum(counts["failed"] for counts in summary.counts.values())
    if failed:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary.failures.most_common())
        reasons.append(f"{_plural(failed, 'image step')} failed ({failed_steps(summary)}; "
                       f"{kinds})")
    skipped = sum(counts["skipped"] for counts in summary.counts.values())
    if skipped:
        reasons.append(f"{_plural(skipped, 'image step')} skipped")
    if summary.input_problems:
        reasons.append(f"{_plural(len(summary.input_problems), 'input problem')} skipped")
    if summary.suspect_boxes:
        reasons.append("the boxes look like another convention (see the warning above)")
    if summary.interrupted is not None:
        reasons.append(f"stopped early ({summary.interrupted})")
    if not reasons and not summary.ok:
        reasons.append("not every image completed every step")
    return reasons if not summary.ok else []
