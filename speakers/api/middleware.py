"""Requests refused before any view runs, in the API's error shape (never a debug page).

* A Host header not in ``ALLOWED_HOSTS``: Django raises DisallowedHost later, and with DEBUG on
  answers with a debug page that lists the request's environment; here it is a JSON 400.
* A request target (path + query) longer than ``VOICEPRINT_MAX_URL_BYTES``: a JSON 414 (the
  servers' own limits are raised above it, see voiceprint_project/gunicorn.conf.py).
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import JsonResponse

from .errors import error_body


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
        return self.get_response(request)
