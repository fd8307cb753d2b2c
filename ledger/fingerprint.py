"""Content-addressed keys: canonical JSON and tagged hashes.

A fingerprint hashes everything that determines a step's answer. Its algorithm is part of the value
(`sha256:...`), so a future change of algorithm cannot be mistaken for a match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

HASH_PREFIX = "sha256:"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: equal values, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """The tagged sha256 of a JSON-able value's canonical form."""
    return HASH_PREFIX + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def file_sha256(data: bytes) -> str:
    """The plain hex sha256 of some bytes (image files are referred to by this)."""
    return hashlib.sha256(data).hexdigest()
