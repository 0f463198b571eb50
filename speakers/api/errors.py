"""One error shape everywhere: ``{"error": {"code", "message", "detail"}}``.

Maps the service's ApplicationError, the engine's InferenceError and DRF/Django exceptions
to HTTP. The ``code`` strings are part of the public API (see docs/api.md).
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf
from rest_framework.response import Response

from inference.errors import InferenceError, ModelError

from ..crypto import DecryptionError
from ..exceptions import ApplicationError
from .auth import ApiKeyAuthentication

logger = logging.getLogger(__name__)

# Engine error codes whose status is not 422 (unprocessable recording).
INFERENCE_STATUS: dict[str, int] = {"audio_too_long": 413, "audio_too_complex": 413}


def error_body(code: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


def _describe(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    if isinstance(exc, ApplicationError):
        return exc.status, exc.code, exc.message, exc.detail
    if isinstance(exc, ModelError):
        return 503, exc.code, exc.message, exc.detail
    if isinstance(exc, InferenceError):
        return INFERENCE_STATUS.get(exc.code, 422), exc.code, exc.message, exc.detail
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return 400, "validation_error", "The request is not valid.", detail
    if isinstance(exc, drf.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        return exc.status_code, code, str(exc.detail), {}
    if isinstance(exc, Http404):
        return 404, "not_found", "Not found.", {}
    if isinstance(exc, DjangoPermissionDenied):
        return 403, "permission_denied", "Permission denied.", {}
    if isinstance(exc, RequestDataTooBig):
        return 413, "upload_too_large", "The request's form fields are larger than allowed.", {}
    if isinstance(exc, TooManyFilesSent):
        return 413, "too_many_files", "Too many files in one request.", {}
    if isinstance(exc, TooManyFieldsSent):
        return 400, "too_many_fields", "Too many form fields in one request.", {}
    if isinstance(exc, DecryptionError):
        logger.error("stored embedding cannot be decrypted: %s", exc)
        return 500, "decryption_error", ("A stored voiceprint cannot be decrypted: the service's "
                                         "encryption keys are misconfigured."), {}
    logger.exception("unhandled error", exc_info=exc)
    return 500, "internal_error", "Internal server error.", {}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    status, code, message, detail = _describe(exc)
    response = Response(error_body(code, message, detail), status=status)
    if status == 401:
        response["WWW-Authenticate"] = ApiKeyAuthentication().authenticate_header(None)
    wait = getattr(exc, "wait", None)
    if wait:
        response["Retry-After"] = str(int(wait))
    return response


_API_PREFIXES = ("/api/", "/v1/")


def not_found(request, exception=None):
    """handler404: JSON for API paths, Django's page elsewhere (admin)."""
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse(error_body("not_found", f"No such endpoint: {request.path}"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: JSON for API paths, Django's page elsewhere."""
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse(error_body("internal_error", "Internal server error."), status=500)
    return defaults.server_error(request)
