"""What a run says once, loudly, about itself: in the ledger (`run_warning`, which `status`
shows), in the progress and in the summary. Input problems it skipped, a box convention left to
the backend's default, boxes that look like another convention (now, or still shown from an
earlier run).
"""

from __future__ import annotations

from auto_label.backends.base import Backend
from auto_label.ledger import queries
from auto_label.ledger.events import RunWarning
from auto_label.pipelines.contract import InputNote
from auto_label.pipelines.engine.session import RunSession
from auto_label.pipelines.engine.tracker import MAX_NOTES, Tracker


class RunWarnings:
    def __init__(self, session: RunSession, tracker: Tracker) -> None:
        self.session = session
        self.tracker = tracker

    def opening(self, warnings: list[str], pipeline: str, backend: Backend) -> None:
        """Before any image: the input's warnings (problems said once in the ledger, so that
        `status` knows the run was not whole), and a box convention nothing chose."""
        self.tracker.warn(warnings, show=MAX_NOTES)
        problems = [w for w in warnings if not isinstance(w, InputNote)]
        if problems:
            self.session.writer.put(RunWarning(
                run_id=self.session.run_id, kind="input",
                message=f"{len(problems)} input problem(s) skipped, e.g. {problems[0]}"))
        frame = backend.frame
        if frame.defaulted:
            key = f"{pipeline}.vlm.{backend.name}"
            self.warn(
                f"{key}: no profile knows the model {backend.model!r} and "
                f"{key}.coordinates is not set, so boxes are read as "
                f"{frame.coordinates} (the backend's default); if the model answers otherwise "
                "every box is wrong: check with `auto_label probe -e SPEC`", "default_convention")

    def suspect(self, message: str) -> None:
        """The boxes look like another convention: warned, and the run does not end well."""
        self.tracker.summary.suspect_boxes = True
        self.warn(message)

    def warn(self, message: str, kind: str = "convention") -> None:
        """Say it once, loudly: in the ledger (status shows it), the progress and the summary."""
        self.session.writer.put(RunWarning(run_id=self.session.run_id, kind=kind,
                                           message=message))
        self.tracker.alarm(message)

    def still_suspect(self) -> None:
        """Boxes an earlier run warned about, still shown (reused by this run): warn again."""
        if self.tracker.summary.suspect_boxes:
            return
        for number, count in queries.suspect_current(self.session.ledger.connection()):
            self.tracker.summary.suspect_boxes = True
            self.tracker.alarm(f"{count} step result(s) shown come from run {number}, whose "
                               "boxes looked like another coordinate convention (see "
                               "`auto_label status`); they stay until the convention is fixed "
                               "and the steps run again")
