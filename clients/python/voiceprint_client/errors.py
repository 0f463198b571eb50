"""The exceptions the client raises: one class per server error ``code`` (``codes.py``), grouped in families.

Every error the server answers has one shape, ``{"error": {"code", "message", "detail"}}``; the client
raises the class of its ``code`` (``NoSpeechError``, ``SpeakerNotFoundError``, ...), which derives from
the family of its HTTP status (``RecordingRefused``, ``NotFound``, ...) and from :class:`VoiceprintError`.
A code this client does not know yet (a newer server) raises the family of its status, with ``code`` set.

    try:
        client.verify(speaker_id, "probe.wav")
    except voiceprint_client.RecordingRefused as exc:   # any unusable recording (HTTP 422)
        print(exc.code, exc.message, exc.detail)
"""
from __future__ import annotations

from typing import Any


class VoiceprintError(Exception):
    """An error the server answered (or, for the client's own ones, that the client met).

    ``code`` is stable (switch on it), ``message`` is for people, ``detail`` carries figures
    (``detail["speech_s"]``...). ``status`` is the HTTP status (for a WebSocket refusal: the
    close code minus 4000); ``retry_after`` the seconds the server asked to wait, if it did.
    """

    code: str = "error"
    status: int = 0

    def __init__(self, message: str = "", *, code: str | None = None, status: int | None = None,
                 detail: dict[str, Any] | None = None, retry_after: float | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.message = message or self.code
        self.detail: dict[str, Any] = dict(detail or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """The error object as the server sends it."""
        return {"code": self.code, "message": self.message, "detail": self.detail}


# --- families, by HTTP status ----------------------------------------------------------------------

class InvalidRequest(VoiceprintError):
    """400 and other client errors: a missing or invalid field, a malformed body, a bad host..."""

    status = 400


class AuthenticationFailed(VoiceprintError):
    """401: no API key, an unknown or a revoked one (``VOICEPRINT_API_KEY``)."""

    status = 401


class PermissionDenied(VoiceprintError):
    """403: the key lacks the scope (``detail["required_scopes"]``)."""

    status = 403


class NotFound(VoiceprintError):
    """404: an unknown speaker, enrollment or path."""

    status = 404


class Conflict(VoiceprintError):
    """409: the speaker cannot be compared yet (not enrolled, incomplete, outdated, damaged), a taken external id."""

    status = 409


class PayloadTooLarge(VoiceprintError):
    """413/414: a file, a recording or a URL over the server's limits."""

    status = 413


class RecordingRefused(VoiceprintError):
    """422: the recording is not usable (no speech, too short, too noisy, not audio...); nothing was stored."""

    status = 422


class RateLimited(VoiceprintError):
    """429: throttled, or the speaker's verifications are locked; ``retry_after`` says when to try again."""

    status = 429


class ServerError(VoiceprintError):
    """5xx: the server failed."""

    status = 500


class ServiceUnavailable(ServerError):
    """503: the model, the database or the search tier is not available right now."""

    status = 503


# --- the client's own ---------------------------------------------------------------------------------

class VoiceprintConnectionError(VoiceprintError):
    """The server could not be reached (or did not answer in time)."""

    code = "connection_failed"


class StreamClosed(VoiceprintError):
    """A streaming session closed without an error message from the server (``detail["close_code"]``)."""

    code = "stream_closed"


class UnexpectedResponse(VoiceprintError):
    """An answer that is not the API's JSON (a proxy's error page, a wrong URL)."""

    code = "unexpected_response"


_FAMILIES: dict[int, type[VoiceprintError]] = {
    400: InvalidRequest, 401: AuthenticationFailed, 403: PermissionDenied, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 414: PayloadTooLarge, 422: RecordingRefused, 429: RateLimited, 503: ServiceUnavailable,
}


def error_class(code: str, status: int) -> type[VoiceprintError]:
    """The class for ``code`` (or, for a code this client does not know, the family of ``status``)."""
    from .codes import ERRORS

    if code in ERRORS:
        return ERRORS[code]
    return _FAMILIES.get(status, ServerError if status >= 500 else InvalidRequest)


def error_from_json(error: dict[str, Any], *, status: int | None = None,
                    retry_after: float | None = None) -> VoiceprintError:
    """The exception for an error object ``{"code", "message", "detail"}``."""
    code = str(error.get("code") or "error")
    cls = error_class(code, status or 0)
    return cls(str(error.get("message") or code), code=code, status=status or cls.status,
               detail=error.get("detail") if isinstance(error.get("detail"), dict) else {},
               retry_after=retry_after)
