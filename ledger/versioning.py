"""Versioned payloads: a class declares its schema version, and beside it the upcasters that bring
an older stored shape up to date.

The pattern of eventsourcing (`class_version` and `upcast_vN_vN+1` in `eventsourcing/domain.py`):
stored rows are never rewritten; a reader upcasts the raw dict it reads, one version at a time,
before validating it into the current model. Used by the ledger's events and by the pipelines'
step outputs (what exports read), so a renamed field never breaks reading an old ledger.
"""

from __future__ import annotations

from typing import Any, ClassVar


class NewerVersionError(ValueError):
    """A payload written by a newer auto-label than this one."""


class Versioned:
    """Mixin: `class_version` and `upcast_v{n}_v{n+1}(raw) -> raw` static methods beside it."""

    class_version: ClassVar[int] = 1

    @classmethod
    def upcast(cls, raw: dict[str, Any], version: int) -> dict[str, Any]:
        """`raw`, stored at `version`, brought up to `class_version`.

        Raises NewerVersionError for a version above ours, TypeError for a missing upcaster (a
        programming error the contract tests catch).
        """
        if version > cls.class_version:
            raise NewerVersionError(
                f"{cls.__name__} v{version} was written by a newer auto-label "
                f"(this one reads up to v{cls.class_version}); upgrade auto-label")
        while version < cls.class_version:
            step = getattr(cls, f"upcast_v{version}_v{version + 1}", None)
            if step is None:
                raise TypeError(f"{cls.__name__} has no upcast_v{version}_v{version + 1}")
            raw = step(raw)
            version += 1
        return raw

    @classmethod
    def missing_upcasters(cls) -> list[str]:
        """The upcasters a chain from version 1 to `class_version` lacks (empty: complete)."""
        return [f"{cls.__name__}.upcast_v{n}_v{n + 1}" for n in range(1, cls.class_version)
                if not callable(getattr(cls, f"upcast_v{n}_v{n + 1}", None))]
