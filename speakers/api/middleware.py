"""Requests refused before any view runs, in the API's error shape (never a debug page).

* A Host header not in ``ALLOWED_HOSTS``: Django raises DisallowedHost later, and with DEBUG on
  answers with a debug page that lists the request's environment; here it is a JSON 400.
* A request target (path + query) longer than ``VOICEPRINT_MAX_URL_BYTES``: a JSON 414 (the
  servers' own limits are raised above it, see voiceprint_project/gunicorn.conf.py).
* A declared ``Content-Length`` above what any request may carry (:func:`speakers.uploads.max_request_bytes`):
  413 ``upload_too_large`` unread. Under ASGI, Django reads the whole body before any middleware,
  so :class:`ContentLengthGuard` refuses it in front of the Django app; this middleware refuses it
  for the WSGI workers and the test client.

Each request also runs in its own payer scope (speakers/runtime/payer.py): authentication names the
key that pays, and a server thread that serves the next request starts with no payer.
"""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import JsonResponse

from ..runtime.memory import declared_bytes, trim_after
from ..runtime.payer import paying
from ..uploads import max_request_bytes
from .errors import error_body


def oversized_body(content_length: str | None) -> dict[str, Any] | None:
    """The refusal of a declared body length above the limit (its error body), or None."""
    declared = declared_bytes(content_length)  # a malformed length reads 0: the server refuses it itself
    limit = max_request_bytes()
    if declared <= limit:
        return None
    return error_body("upload_too_large", "The request body is larger than allowed.",
                      {"content_length": declared, "max_request_bytes": limit})


class RequestGuardMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        target = len(request.META.get("PATH_INFO", "")) + len(request.META.get("QUERY_STRING", ""))
        if target > settings.VOICEPRINT_MAX_URL_BYTES:
            return JsonResponse(error_body("uri_too_long", "The request URL is longer than allowed.",
                                           {"max_url_bytes": settings.VOICEPRINT_MAX_URL_BYTES}), status=414)
        try:
            request.get_host()
        except DisallowedHost:
            return JsonResponse(error_body("invalid_host", "The Host header names a host this service does not "
                                                           "serve."), status=400)
        refusal = oversized_body(request.META.get("CONTENT_LENGTH"))
        if refusal is not None:
            return JsonResponse(refusal, status=413)
        with paying(None):
            response = self.get_response(request)
        # a large upload's buffers go back to the system, not to the worker's arenas (speakers/runtime/memory.py)
        trim_after(request.META.get("CONTENT_LENGTH"), settings.VOICEPRINT_MEMORY_TRIM_ABOVE_BYTES)
        return response


class ContentLengthGuard:
    """ASGI: answer 413 to a declared body above the limit without reading it (and close the connection)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            declared = next((value.decode("latin-1") for name, value in scope.get("headers", [])
                             if name.lower() == b"content-length"), None)
            refusal = oversized_body(declared)
            if refusal is not None:
                body = json.dumps(refusal).encode()
                await send({"type": "http.response.start", "status": 413, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
