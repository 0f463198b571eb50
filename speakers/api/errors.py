"""One error shape everywhere: ``{"error": {"code", "message", "detail"}}``.

Maps the service's ApplicationError, the engine's InferenceError and DRF/Django exceptions
to HTTP, and records every refusal in the audit log (never audio, vectors or keys: a failed
key is named by its public prefix only). The ``code`` strings are part of the public API
(see docs/api.md). Django's own error pages answer in the same shape on API paths, and no
page ever shows a setting or the environment (:class:`NoSecretsReporterFilter`).
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from django.views.debug import SafeExceptionReporterFilter
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response

from inference.errors import InferenceError, ModelError

from ..audit import Actor, audit_refusal
from ..crypto import DecryptionError
from ..exceptions import ApplicationError
from ..models import ApiKey
from .clients import client_address

logger = logging.getLogger(__name__)

# The HTTP status of every domain and engine error code (an engine code not listed is an
# unprocessable recording: 422; a domain code not listed is a bad request: 400).
STATUS: dict[str, int] = {
    "missing_api_key": 401,
    "invalid_api_key": 401,
    "api_key_revoked": 401,
    "insufficient_scope": 403,
    "upload_too_large": 413,
    "too_many_files": 413,
    "speaker_not_found": 404,
    "enrollment_not_found": 404,
    "watchlist_entry_not_found": 404,
    "watchlist_match": 403,
    "replay_detected": 403,
    "consent_required": 409,
    "opted_out": 409,
    "external_id_taken": 409,
    "invalid_external_id": 400,
    "speaker_not_enrolled": 409,
    "model_version_mismatch": 409,
    "voiceprint_unreadable": 409,
    "enrollment_incomplete": 409,
    "enrollment_inconsistent": 422,
    "insufficient_speech": 422,
    "audio_clipped": 422,
    "audio_too_quiet": 422,
    "audio_too_noisy": 422,
    "verification_locked": 429,
    "audio_budget_exceeded": 429,
    "recordings_refused": 422,
    "model_not_prepared": 503,
    "model_unavailable": 503,
    "asnorm_unavailable": 503,
    "search_unavailable": 503,
    "calibration_refused": 400,
    "audio_too_long": 413,
    "audio_too_complex": 413,
    "invalid_message": 400,
    "invalid_audio_frame": 400,
    "message_too_large": 413,
    "session_too_long": 413,
    "idle_timeout": 408,
    "audio_too_slow": 408,
    "too_many_sessions": 429,
}


def error_body(code: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


def describe_error(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    """``(HTTP status, code, message, detail)`` of any exception: the one mapping (WebSocket close codes use it too)."""
    return _describe(exc)


def _describe(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    if isinstance(exc, ApplicationError):
        return STATUS.get(exc.code, 400), exc.code, exc.message, exc.detail
    if isinstance(exc, ModelError):
        return 503, exc.code, exc.message, exc.detail
    if isinstance(exc, InferenceError):
        return STATUS.get(exc.code, 422), exc.code, exc.message, exc.detail
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
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("the database cannot be reached: %s", exc)
        return 503, "database_unavailable", "The database cannot be reached; try again shortly.", {}
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
        response["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
    wait = getattr(exc, "wait", None) or detail.get("retry_after_s")
    if wait:
        response["Retry-After"] = str(max(1, int(wait + 0.999)))
    request = context.get("request")
    if request is not None and 400 <= status < 500:
        _audit_refusal(request, status=status, code=code, detail=detail)
    return response


def _audit_refusal(request, *, status: int, code: str, detail: dict[str, Any]) -> None:
    """One audit row per refused request: who (key name or anonymous), from where, what was refused."""
    address = client_address(request)
    # what authentication stored, without authenticating again (a failed key would raise again)
    api_key = request.__dict__.get("_auth")
    actor = Actor.from_api_key(api_key, client_address=address) if isinstance(api_key, ApiKey) else \
        Actor.anonymous(client_address=address)
    route_speaker = (getattr(request, "parser_context", None) or {}).get("kwargs", {}).get("speaker_id")
    audit_refusal(actor=actor, code=code, status=status, method=request.method, path=request.path,
                  speaker_id=detail.get("speaker_id") or route_speaker, detail=detail,
                  presented_key=request.META.get("HTTP_X_API_KEY"))


_API_PREFIXES = ("/api/", "/v1/", "/ws/")


def _is_api(request) -> bool:
    return request.path.startswith(_API_PREFIXES)


@csrf_exempt  # a POST to an unknown API path is a 404, not Django's CSRF page
def not_found(request, exception=None):
    """handler404: JSON for API paths, Django's page elsewhere (admin)."""
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse(error_body("not_found", f"No such endpoint: {request.path}"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: JSON for API paths, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse(error_body("internal_error", "Internal server error."), status=500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    """handler400: JSON for API paths, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "The request is malformed."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    """handler403: JSON for API paths, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)
    return defaults.permission_denied(request, exception)


def csrf_failure(request, reason: str = ""):
    """CSRF_FAILURE_VIEW: the API authenticates with keys, not cookies; only the admin's forms get here."""
    if _is_api(request):
        return JsonResponse(error_body("csrf_failed", "CSRF verification failed."), status=403)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)


class NoSecretsReporterFilter(SafeExceptionReporterFilter):
    """Debug pages (only ever with DJANGO_DEBUG=true) show the traceback, never a value of the
    settings, the request's environment (a DATABASE_URL password under runserver) or a frame's locals."""

    def get_safe_settings(self) -> dict[str, Any]:
        return {}

    def get_safe_request_meta(self, request) -> dict[str, Any]:
        return {}

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self.cleansed_substitute) for name in tb_frame.f_locals]
