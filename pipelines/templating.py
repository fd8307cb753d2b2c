"""Prompt templates as data: a template's key and text, and the prompts filled from it.

A step's `build` returns a `Prompt`: the text sent (a `str`, byte for byte what its template
renders) that also knows its template and the values that fill it, so that the ledger records the
template's text once per run (`request_template`) and each request only the values
(`RequestSent.prompt_vars`). The one rendering function is the ledger's
(`auto_label.ledger.templates.render`): what the ledger shows is what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auto_label.ledger.templates import WHOLE_TEMPLATE, WHOLE_TEXT, placeholders, render


@dataclass(frozen=True)
class Template:
    """A prompt template: `key` (task@version, and /convention when its text names one) and its
    `text` with `${name}` placeholders (`auto_label.ledger.templates`)."""

    key: str
    text: str

    def fill(self, **values: Any) -> Prompt:
        """The prompt with these values. Raises KeyError for a placeholder without a value."""
        return Prompt(self, values)


class Prompt(str):
    """A prompt's text, which also knows its `template` and the `values` that fill it (only those
    its placeholders use)."""

    def __new__(cls, template: Template, values: Mapping[str, Any]) -> Prompt:
        return super().__new__(cls, render(template.text, values))

    def __init__(self, template: Template, values: Mapping[str, Any]) -> None:
        super().__init__()
        self.template = template
        used = placeholders(template.text)
        self.values = {name: value for name, value in values.items() if name in used}

    @classmethod
    def whole(cls, text: str) -> Prompt:
        """A prompt built without a template: the template `text`, whose value is the prompt."""
        return cls(Template(WHOLE_TEMPLATE, WHOLE_TEXT), {"prompt": text})


def template_key(task: str, version: int, convention: str | None = None) -> str:
    """`task@version`, with `/convention` for a text that names a box convention."""
    return f"{task}@{version}" + (f"/{convention}" if convention else "")
