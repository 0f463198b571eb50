"""Checks on client JSON before it reaches the database.

PostgreSQL cannot store a NUL character in text or JSONB (a DataError, i.e. a 500, before these
checks); SQLite can, so the rule is enforced for every database. A lone surrogate (``"\ud800"`` is
valid JSON, but no text) cannot be encoded for either database: refused too. Metadata is also
bounded in encoded size and nesting depth, so one speaker cannot make a page of speakers megabytes long.
"""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import serializers


def _unstorable(text: str) -> str | None:
    """What no database stores in ``text``: a NUL or a lone surrogate (named), else None."""
    if "\x00" in text:
        return "NUL characters (\\u0000)"
    surrogate = next((ch for ch in text if "\ud800" <= ch <= "\udfff"), None)
    return f"lone surrogates (U+{ord(surrogate):04X})" if surrogate else None


def _depth_and_problem(value: Any, depth: int = 1) -> tuple[int, str | None]:
    if isinstance(value, dict):
        results = [(depth, next(filter(None, map(_unstorable, value)), None))]
        results += [_depth_and_problem(v, depth + 1) for v in value.values()]
    elif isinstance(value, list):
        results = [(depth, None)] + [_depth_and_problem(v, depth + 1) for v in value]
    else:
        return depth - 1, _unstorable(value) if isinstance(value, str) else None
    return max(d for d, _ in results), next((p for _, p in results if p), None)


def validate_metadata(value: Any) -> dict[str, Any]:
    """A JSON object within the size and depth limits, without NUL characters or lone surrogates."""
    if not isinstance(value, dict):
        raise serializers.ValidationError("metadata must be a JSON object.")
    depth, problem = _depth_and_problem(value)
    if problem:
        raise serializers.ValidationError(f"metadata must not contain {problem}.")
    if depth > settings.VOICEPRINT_MAX_METADATA_DEPTH:
        raise serializers.ValidationError(
            f"metadata is nested {depth} levels deep; at most {settings.VOICEPRINT_MAX_METADATA_DEPTH} are allowed.")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > settings.VOICEPRINT_MAX_METADATA_BYTES:
        raise serializers.ValidationError(
            f"metadata takes {size} bytes as JSON; at most {settings.VOICEPRINT_MAX_METADATA_BYTES} are allowed.")
    return value
