"""Prompts stored as a template and its values: the one rendering function, and reading a
request back as it was sent.

A request records the key of its prompt's template (`RequestSent.prompt_template`, e.g.
`grounding.ground@1/xyxy_pixel`) and the values that fill it (`prompt_vars`); the template's text,
with the backend, model and parameters the run sends with, is recorded once per run, step and
template (`request_template`), before the first request that uses it. A request that uses the
first template its run recorded for its step leaves the key out (None): the step's template.
`render` is what the pipelines build their prompts with and what readers rebuild them with, so the
text read back is the text sent.

Placeholders: `${name}` inserts a string value as it is and any other value as JSON;
`${name|json}` inserts the value as JSON; `${name|jsonl}` a list as one JSON value per line. JSON
is `json.dumps(value, ensure_ascii=False)` (", " and ": " separators).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auto_label.errors import LedgerError
from auto_label.ledger import audit_queries
from auto_label.ledger.events import RequestSent, RequestTemplate, Row, parse_event

_PLACEHOLDER = re.compile(r"\$\{(\w+)(?:\|(json|jsonl))?\}")

WHOLE_TEMPLATE = "text"
"""The key of the template of a prompt built without one: its text is `${prompt}`."""
WHOLE_TEXT = "${prompt}"


_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""json.dumps(value, ensure_ascii=False), without making an encoder per call"""


def _json(value: Any) -> str:
    return _ENCODER.encode(value)


def _insert(value: Any, form: str | None) -> str:
    if form == "jsonl":
        return "\n".join(_json(item) for item in value)
    if form is None and isinstance(value, str):
        return value
    return _json(value)


def render(text: str, values: Mapping[str, Any]) -> str:
    """`text` with its placeholders filled from `values` (in one pass: a value that holds `${x}`
    is not filled again). Raises KeyError naming a placeholder without a value, TypeError when a
    `jsonl` value is not a list."""
    parts = []
    for piece in _pieces(text):
        if isinstance(piece, str):
            parts.append(piece)
            continue
        name, form = piece
        if name not in values:
            raise KeyError(f"the template has ${{{name}}}, no value for it")
        value = values[name]
        if form == "jsonl" and not isinstance(value, list | tuple):
            raise TypeError(f"${{{name}|jsonl}} takes a list, not {type(value).__name__}")
        parts.append(_insert(value, form))
    return "".join(parts)


@functools.lru_cache(maxsize=256)
def _pieces(text: str) -> tuple[str | tuple[str, str | None], ...]:
    """`text` cut into its literal pieces and its placeholders (name, form)."""
    pieces: list[str | tuple[str, str | None]] = []
    start = 0
    for match in _PLACEHOLDER.finditer(text):
        pieces.append(text[start:match.start()])
        pieces.append((match.group(1), match.group(2)))
        start = match.end()
    pieces.append(text[start:])
    return tuple(pieces)


@functools.lru_cache(maxsize=256)
def placeholders(text: str) -> frozenset[str]:
    """The names of the placeholders in `text`."""
    return frozenset(piece[0] for piece in _pieces(text) if isinstance(piece, tuple))


@dataclass(frozen=True)
class SentRequest:
    """A request as it was sent: its event, its prompt's full text, the backend, model and
    parameters it went with."""

    event: RequestSent
    prompt: str
    template: str
    """the key of its template (its step's when the request names none; empty: none)"""
    backend: str
    model: str
    parameters: dict[str, Any]


class TemplateBook:
    """Reads requests back as they were sent from one ledger connection, loading each run's
    `request_template` events once (again when a key is missing: a live run adds them)."""

    def __init__(self, conn: Any, where: str = "the ledger") -> None:
        self._conn = conn
        self._where = where
        self._runs: dict[str, dict[tuple[str, str], RequestTemplate]] = {}

    def template(self, run_id: str, key: str | None, step: str = "") -> RequestTemplate | None:
        """The template `key` as run `run_id` recorded it (None: the first it recorded for
        `step`), or None."""
        wanted = ("key", key) if key is not None else ("step", step)
        found = self._runs.get(run_id)
        if found is None or wanted not in found:
            found = self._runs[run_id] = self._load(run_id)
        return found.get(wanted)

    def _load(self, run_id: str) -> dict[tuple[str, str], RequestTemplate]:
        """("key", key) and ("step", step) -> the first template the run recorded with it."""
        loaded: dict[tuple[str, str], RequestTemplate] = {}
        for row in audit_queries.request_templates(self._conn, run_id):
            seq = row[0]
            try:
                event = parse_event(json.loads(row[7]), Row(*row[1:7]))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise LedgerError(f"{self._where}: event {seq} is damaged "
                                  f"({str(exc).splitlines()[0][:200]}); see "
                                  "`auto_label status --check`") from None
            if isinstance(event, RequestTemplate):
                loaded.setdefault(("key", event.template), event)
                if event.step is not None:
                    loaded.setdefault(("step", event.step), event)
        return loaded

    def sent(self, request: RequestSent) -> SentRequest:
        """`request` with its full prompt and its backend, model and parameters. Raises
        LedgerError when its run recorded no such template, or its values do not fill it."""
        if request.prompt_template == "":  # recorded before templates: everything is inline
            return SentRequest(request, request.prompt or "", "", request.backend or "",
                               request.model or "", dict(request.parameters or {}))
        template = self.template(request.run_id, request.prompt_template, request.step)
        if template is None:
            named = f"names the prompt template {request.prompt_template}" \
                if request.prompt_template is not None \
                else f"uses the prompt template of step {request.step}"
            raise LedgerError(f"{self._where}: request {request.request_id} {named}, which its "
                              "run never recorded; see `auto_label status --check`")
        try:
            prompt = render(template.text, request.prompt_vars)
        except (KeyError, TypeError) as exc:
            raise LedgerError(f"{self._where}: request {request.request_id}: its prompt does "
                              f"not render ({exc})") from None
        return SentRequest(request, prompt, template.template, template.backend, template.model,
                           dict(template.parameters))
