"""Checks on client JSON before it reaches the database.

PostgreSQL cannot store a NUL character in text or JSONB (a DataError, i.e. a 500, before these
checks); SQLite can, so the rule is enforced for every database. Metadata is also bounded in
encoded size and nesting depth, so one speaker cannot make a page of speakers megabytes long.
"""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import serializers


def _depth_and_nul(value: Any, depth: int = 1) -> tuple[int, bool]:
    if isinstance(value, dict):
        results = [(depth, any("\x00" in key for key in value))]
        results += [_depth_and_nul(v, depth + 1) for v in value.values()]
    elif isinstance(value, list):
        results = [(depth, False)] + [_depth_and_nul(v, depth + 1) for v in value]
    else:
        return depth - 1, isinstance(value, str) and "\x00" in value
    return max(d for d, _ in results), any(n for _, n in results)


def validate_metadata(value: Any) -> dict[str, Any]:
    """A JSON object within the size and depth limits, without NUL characters."""
    if not isinstance(value, dict):
        raise serializers.ValidationError("metadata must be a JSON object.")
    depth, has_nul = _depth_and_nul(value)
    if has_nul:
        raise serializers.ValidationError("metadata must not contain NUL characters (\\u0000).")
    if depth > settings.VOICEPRINT_MAX_METADATA_DEPTH:
        raise serializers.ValidationError(
            f"metadata is nested {depth} levels deep; at most {settings.VOICEPRINT_MAX_METADATA_DEPTH} are allowed.")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > settings.VOICEPRINT_MAX_METADATA_BYTES:
        raise serializers.ValidationError(
            f"metadata takes {size} bytes as JSON; at most {settings.VOICEPRINT_MAX_METADATA_BYTES} are allowed.")
    return value
