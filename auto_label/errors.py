"""Errors that stop a run, each with a one-line message meant for a person.

A leaf module: every layer may import it; it imports nothing of ours.

The CLI prints `str(error)` and exits with `error.exit_code`; no traceback is shown. Messages never
contain API keys.
"""

from __future__ import annotations


class AutoLabelError(Exception):
    """Base class: a clear, one-line reason the run cannot go on."""

    exit_code = 2


class SpecError(AutoLabelError):
    """The spec file or an override is invalid (names the file and line, or the override)."""


class InputError(AutoLabelError):
    """An input file or folder is unusable as a whole (names the file, and the line if any)."""


class LedgerError(AutoLabelError):
    """The ledger cannot be opened or is not ours (names the file)."""


class LedgerLockedError(LedgerError):
    """Another run holds the ledger of this results_dir."""


class RunAborted(AutoLabelError):
    """The endpoint, not an image, stopped the run: every request would fail the same way. The
    requests in flight end first; no image is recorded as failed for it; a rerun resumes."""


class AuthRejected(RunAborted):
    """The endpoint rejected the API key."""


class EndpointUnavailable(RunAborted):
    """The endpoint cannot be reached or is misconfigured (nothing listening, a route or model
    that does not exist, requests that hang): the message names the URL and the likely fix."""

    exit_code = 3


class QuotaExhausted(RunAborted):
    """The account's quota is spent for the day (or for good): the message says when it resets
    where the endpoint says so."""

    exit_code = 3


class ExportError(AutoLabelError):
    """An export cannot be made as asked: an unknown format, or one that does not fit the
    pipeline of the ledger."""
