"""OpenAPI: the X-API-Key scheme, the one error shape, and the refusals each route documents.

Every refusal has one shape, the ``ErrorResponse`` component (``{"error": {"code", "message",
"detail"}}``). :func:`refusals` turns a route's error codes into its documented responses: one per
HTTP status, each the shared component with the codes it may carry as named examples (Swagger UI
shows them; tests/api/test_fuzz_schema.py checks every answer against them). Codes every route
can answer (a bad Host, an overlong URL, an unacceptable Accept header, a throttle, an unreachable
database) and, for keyed routes, the authentication codes are added to each.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema_serializer
from rest_framework import serializers

import inference.errors

from .. import exceptions
from ..plain_words import PLAIN_WORDS
from .errors import STATUS


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "speakers.api.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


# --- the one error shape ----------------------------------------------------------------------------

class ErrorOutput(serializers.Serializer):
    code = serializers.CharField(help_text="Stable: clients switch on it (docs/api.md lists every code).")
    message = serializers.CharField(help_text="For people; may change.")
    detail = serializers.DictField(help_text="Figures and fields about this refusal (may be empty).")


@extend_schema_serializer(component_name="ErrorResponse")
class ErrorResponse(serializers.Serializer):
    error = ErrorOutput()


# --- codes and their HTTP statuses ---------------------------------------------------------------------

# Codes raised by DRF, Django and the service's own guards, beside the domain and engine codes of STATUS.
_OTHER_STATUS = {
    "validation_error": 400, "parse_error": 400, "invalid_host": 400, "too_many_fields": 400, "not_found": 404,
    "method_not_allowed": 405, "not_acceptable": 406, "uri_too_long": 414, "unsupported_media_type": 415,
    "throttled": 429, "decryption_error": 500, "database_unavailable": 503,
}
_MESSAGES = {
    "validation_error": "The request is not valid.", "parse_error": "JSON parse error - Expecting value.",
    "invalid_host": "The Host header names a host this service does not serve.",
    "too_many_fields": "Too many form fields in one request.", "not_found": "Invalid page.",
    "method_not_allowed": 'Method "PUT" not allowed.',
    "not_acceptable": "Could not satisfy the request Accept header.",
    "uri_too_long": "The request URL is longer than allowed.",
    "unsupported_media_type": 'Unsupported media type "text/plain" in request.',
    "throttled": "Request was throttled. Expected available in 42 seconds.",
    "decryption_error": "A stored voiceprint cannot be decrypted: the service's encryption keys are misconfigured.",
    "database_unavailable": "The database cannot be reached; try again shortly.",
}


def _subclasses(cls: type) -> list[type]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _subclasses(direct))]


def _code_messages() -> dict[str, str]:
    """A representative message of every domain and engine code (the API's own words)."""
    messages = {}
    for cls in _subclasses(inference.errors.InferenceError):
        words = PLAIN_WORDS.get(cls.code)
        messages[cls.code] = f"{words[0]}: {words[1]}" if words else (cls.__doc__ or cls.code).strip().split("\n")[0]
    for cls in _subclasses(exceptions.ApplicationError):
        messages[cls.code] = cls.default_message
    return {**messages, **_MESSAGES}


def http_status(code: str) -> int:
    """The status every answer with ``code`` has (errors.py's rule: an unlisted engine code is a 422)."""
    if code in STATUS:
        return STATUS[code]
    if code in _OTHER_STATUS:
        return _OTHER_STATUS[code]
    engine = {cls.code for cls in _subclasses(inference.errors.InferenceError)}
    if code in engine:
        return 503 if code.startswith("model_") else 422
    raise KeyError(f"no HTTP status is known for the error code {code!r}")


# --- the codes of the routes -----------------------------------------------------------------------------

EVERY_ROUTE = ("invalid_host", "not_acceptable", "uri_too_long", "throttled", "database_unavailable")
KEYED = ("missing_api_key", "invalid_api_key", "api_key_revoked", "insufficient_scope")
JSON_BODY = ("validation_error", "parse_error", "unsupported_media_type", "upload_too_large")
MULTIPART = ("validation_error", "parse_error", "unsupported_media_type", "upload_too_large", "too_many_files",
             "too_many_fields")
RECORDING = ("audio_empty", "audio_not_audio", "audio_decode_error", "audio_invalid_samples", "audio_too_short",
             "audio_too_long", "audio_unsupported_format", "audio_too_complex", "audio_out_of_range",
             "audio_degenerate", "no_speech", "audio_clipped", "audio_too_quiet", "audio_too_noisy",
             "insufficient_speech",
             "audio_budget_exceeded")  # every recording decoded is charged to the key's audio seconds
ENGINE = ("model_not_prepared", "model_unavailable")
SCORING = (*ENGINE, "asnorm_unavailable")
VOICEPRINT = ("speaker_not_enrolled", "enrollment_incomplete", "model_version_mismatch", "voiceprint_unreadable",
              "decryption_error")


def refusals(*codes: str, keyed: bool = True) -> dict[int, OpenApiResponse]:
    """The documented error responses of a route that may answer ``codes`` (plus every route's own)."""
    everything = dict.fromkeys([*codes, *(KEYED if keyed else ()), *EVERY_ROUTE])
    by_status: dict[int, list[str]] = {}
    for code in everything:
        by_status.setdefault(http_status(code), []).append(code)
    messages = _code_messages()
    return {status: OpenApiResponse(
        response=ErrorResponse,
        description="Refused: " + ", ".join(f"`{code}`" for code in status_codes) + " (the code says why).",
        examples=[OpenApiExample(code, value=_example(code, messages), response_only=True,
                                 status_codes=[str(status)]) for code in status_codes],
    ) for status, status_codes in sorted(by_status.items())}


def _example(code: str, messages: dict[str, str]) -> dict[str, Any]:
    return {"error": {"code": code, "message": messages.get(code, code), "detail": {}}}
