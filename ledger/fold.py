"""Materializing: an image's state is the pure fold of its events. No I/O here.

`fold(events, state)` continues from `state`, so folding a history in any chunking gives the same
state as folding it whole. The pipelines turn a state into an output record (`records.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from auto_label.ledger.events import (
    Event,
    ImageRejected,
    ImageSeeded,
    StepCompleted,
    StepFailed,
    StepSelected,
)


@dataclass(frozen=True)
class ImageState:
    image_id: str
    seed: ImageSeeded | None = None
    rejected: ImageRejected | None = None
    completions: Mapping[str, Mapping[str, StepCompleted]] = field(default_factory=dict)
    """step -> fingerprint -> the newest completion with that fingerprint"""
    current: Mapping[str, str] = field(default_factory=dict)
    """step -> the fingerprint whose completion the record shows"""
    failed: Mapping[str, StepFailed] = field(default_factory=dict)
    """step -> its latest failure, when no completion (or selection) came after it"""

    def completion(self, step: str) -> StepCompleted | None:
        """The current completion of `step`, if any."""
        fingerprint = self.current.get(step)
        if fingerprint is None:
            return None
        return self.completions[step][fingerprint]


def apply(state: ImageState, event: Event) -> ImageState:
    """The state after one more event."""
    if isinstance(event, ImageSeeded):
        return replace(state, seed=event, rejected=None)
    if isinstance(event, ImageRejected):
        return replace(state, rejected=event)
    if isinstance(event, StepCompleted):
        by_fp = {**state.completions.get(event.step, {}), event.fingerprint: event}
        failed = {k: v for k, v in state.failed.items() if k != event.step}
        return replace(state, completions={**state.completions, event.step: by_fp},
                       current={**state.current, event.step: event.fingerprint}, failed=failed)
    if isinstance(event, StepSelected):
        if event.fingerprint not in state.completions.get(event.step, {}):
            return state
        failed = {k: v for k, v in state.failed.items() if k != event.step}
        return replace(state, current={**state.current, event.step: event.fingerprint},
                       failed=failed)
    if isinstance(event, StepFailed):
        return replace(state, failed={**state.failed, event.step: event})
    return state


def fold(events: Iterable[Event], state: ImageState | None = None, *,
         image_id: str = "") -> ImageState:
    """Fold events (all of one image) onto `state`, or onto an empty state for `image_id`."""
    result = state if state is not None else ImageState(image_id=image_id)
    for event in events:
        result = apply(result, event)
    return result
