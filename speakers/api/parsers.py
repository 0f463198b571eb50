"""JSON bodies, parsed without letting their shape crash the request.

Python's ``json`` recurses once per nesting level: a body nested 100,000 deep raised
RecursionError (a 500). The depth is measured on the raw bytes first (brackets outside
strings), so a body deeper than ``VOICEPRINT_MAX_JSON_DEPTH`` is refused as a parse error
before the parser runs; a body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused unread.
"""
from __future__ import annotations

import io
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..exceptions import UploadTooLarge

# Strings (with escapes) and the brackets that open or close a level.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(raw: bytes) -> int:
    """Deepest nesting of arrays/objects in a JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


class JsonParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        cap = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(cap + 1) if stream is not None else b""
        if len(raw) > cap:
            raise UploadTooLarge("The JSON body is larger than allowed.", max_json_bytes=cap)
        limit = settings.VOICEPRINT_MAX_JSON_DEPTH
        if json_depth(raw) > limit:
            raise ParseError(f"JSON parse error - the body is nested deeper than {limit} levels.")
        try:
            return super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError as exc:  # belt and braces: the depth check above should prevent it
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
