"""One exception class per error ``code`` of the voiceprint server (GENERATED: do not edit).

Made by ``clients/python/scripts/generate_errors.py`` from the server's own list; each class
derives from the family of its HTTP status (``errors.py``).
"""
from __future__ import annotations

from .errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RecordingRefused,
    ServerError,
    ServiceUnavailable,
    VoiceprintError,
)


class ApiKeyRevokedError(AuthenticationFailed):
    """HTTP 401 ``api_key_revoked``."""

    code = "api_key_revoked"
    status = 401


class AsnormUnavailableError(ServiceUnavailable):
    """HTTP 503 ``asnorm_unavailable``."""

    code = "asnorm_unavailable"
    status = 503


class AudioBudgetExceededError(RateLimited):
    """HTTP 429 ``audio_budget_exceeded``."""

    code = "audio_budget_exceeded"
    status = 429


class AudioClippedError(RecordingRefused):
    """HTTP 422 ``audio_clipped``."""

    code = "audio_clipped"
    status = 422


class AudioDecodeError(RecordingRefused):
    """HTTP 422 ``audio_decode_error``."""

    code = "audio_decode_error"
    status = 422


class AudioDegenerateError(RecordingRefused):
    """HTTP 422 ``audio_degenerate``."""

    code = "audio_degenerate"
    status = 422


class AudioEmptyError(RecordingRefused):
    """HTTP 422 ``audio_empty``."""

    code = "audio_empty"
    status = 422


class AudioError(RecordingRefused):
    """HTTP 422 ``audio_error``."""

    code = "audio_error"
    status = 422


class AudioInvalidSamplesError(RecordingRefused):
    """HTTP 422 ``audio_invalid_samples``."""

    code = "audio_invalid_samples"
    status = 422


class AudioNotAudioError(RecordingRefused):
    """HTTP 422 ``audio_not_audio``."""

    code = "audio_not_audio"
    status = 422


class AudioOutOfRangeError(RecordingRefused):
    """HTTP 422 ``audio_out_of_range``."""

    code = "audio_out_of_range"
    status = 422


class AudioTooComplexError(PayloadTooLarge):
    """HTTP 413 ``audio_too_complex``."""

    code = "audio_too_complex"
    status = 413


class AudioTooLongError(PayloadTooLarge):
    """HTTP 413 ``audio_too_long``."""

    code = "audio_too_long"
    status = 413


class AudioTooNoisyError(RecordingRefused):
    """HTTP 422 ``audio_too_noisy``."""

    code = "audio_too_noisy"
    status = 422


class AudioTooQuietError(RecordingRefused):
    """HTTP 422 ``audio_too_quiet``."""

    code = "audio_too_quiet"
    status = 422


class AudioTooShortError(RecordingRefused):
    """HTTP 422 ``audio_too_short``."""

    code = "audio_too_short"
    status = 422


class AudioTooSlowError(InvalidRequest):
    """HTTP 408 ``audio_too_slow``."""

    code = "audio_too_slow"
    status = 408


class AudioUnsupportedFormatError(RecordingRefused):
    """HTTP 422 ``audio_unsupported_format``."""

    code = "audio_unsupported_format"
    status = 422


class AuthenticationFailedError(AuthenticationFailed):
    """HTTP 401 ``authentication_failed``."""

    code = "authentication_failed"
    status = 401


class BadRequestError(InvalidRequest):
    """HTTP 400 ``bad_request``."""

    code = "bad_request"
    status = 400


class CalibrationRefusedError(InvalidRequest):
    """HTTP 400 ``calibration_refused``."""

    code = "calibration_refused"
    status = 400


class ConsentRequiredError(Conflict):
    """HTTP 409 ``consent_required``."""

    code = "consent_required"
    status = 409


class CsrfFailedError(PermissionDenied):
    """HTTP 403 ``csrf_failed``."""

    code = "csrf_failed"
    status = 403


class DatabaseUnavailableError(ServiceUnavailable):
    """HTTP 503 ``database_unavailable``."""

    code = "database_unavailable"
    status = 503


class DecryptionError(ServerError):
    """HTTP 500 ``decryption_error``."""

    code = "decryption_error"
    status = 500


class EnrollmentIncompleteError(Conflict):
    """HTTP 409 ``enrollment_incomplete``."""

    code = "enrollment_incomplete"
    status = 409


class EnrollmentInconsistentError(RecordingRefused):
    """HTTP 422 ``enrollment_inconsistent``."""

    code = "enrollment_inconsistent"
    status = 422


class EnrollmentNotFoundError(NotFound):
    """HTTP 404 ``enrollment_not_found``."""

    code = "enrollment_not_found"
    status = 404


class ExternalIdTakenError(Conflict):
    """HTTP 409 ``external_id_taken``."""

    code = "external_id_taken"
    status = 409


class FingerprintInvalidError(RecordingRefused):
    """HTTP 422 ``fingerprint_invalid``."""

    code = "fingerprint_invalid"
    status = 422


class IdleTimeoutError(InvalidRequest):
    """HTTP 408 ``idle_timeout``."""

    code = "idle_timeout"
    status = 408


class InsufficientScopeError(PermissionDenied):
    """HTTP 403 ``insufficient_scope``."""

    code = "insufficient_scope"
    status = 403


class InsufficientSpeechError(RecordingRefused):
    """HTTP 422 ``insufficient_speech``."""

    code = "insufficient_speech"
    status = 422


class InternalError(ServerError):
    """HTTP 500 ``internal_error``."""

    code = "internal_error"
    status = 500


class InvalidApiKeyError(AuthenticationFailed):
    """HTTP 401 ``invalid_api_key``."""

    code = "invalid_api_key"
    status = 401


class InvalidAudioFrameError(InvalidRequest):
    """HTTP 400 ``invalid_audio_frame``."""

    code = "invalid_audio_frame"
    status = 400


class InvalidExternalIdError(InvalidRequest):
    """HTTP 400 ``invalid_external_id``."""

    code = "invalid_external_id"
    status = 400


class InvalidHostError(InvalidRequest):
    """HTTP 400 ``invalid_host``."""

    code = "invalid_host"
    status = 400


class InvalidMessageError(InvalidRequest):
    """HTTP 400 ``invalid_message``."""

    code = "invalid_message"
    status = 400


class MessageTooLargeError(PayloadTooLarge):
    """HTTP 413 ``message_too_large``."""

    code = "message_too_large"
    status = 413


class MethodNotAllowedError(InvalidRequest):
    """HTTP 405 ``method_not_allowed``."""

    code = "method_not_allowed"
    status = 405


class MissingApiKeyError(AuthenticationFailed):
    """HTTP 401 ``missing_api_key``."""

    code = "missing_api_key"
    status = 401


class ModelError(ServiceUnavailable):
    """HTTP 503 ``model_error``."""

    code = "model_error"
    status = 503


class ModelIntegrityError(ServiceUnavailable):
    """HTTP 503 ``model_integrity_error``."""

    code = "model_integrity_error"
    status = 503


class ModelNotPreparedError(ServiceUnavailable):
    """HTTP 503 ``model_not_prepared``."""

    code = "model_not_prepared"
    status = 503


class ModelUnavailableError(ServiceUnavailable):
    """HTTP 503 ``model_unavailable``."""

    code = "model_unavailable"
    status = 503


class ModelVersionMismatchError(Conflict):
    """HTTP 409 ``model_version_mismatch``."""

    code = "model_version_mismatch"
    status = 409


class NoSpeechError(RecordingRefused):
    """HTTP 422 ``no_speech``."""

    code = "no_speech"
    status = 422


class NotAcceptableError(InvalidRequest):
    """HTTP 406 ``not_acceptable``."""

    code = "not_acceptable"
    status = 406


class NotAuthenticatedError(AuthenticationFailed):
    """HTTP 401 ``not_authenticated``."""

    code = "not_authenticated"
    status = 401


class NotFoundError(NotFound):
    """HTTP 404 ``not_found``."""

    code = "not_found"
    status = 404


class OptedOutError(Conflict):
    """HTTP 409 ``opted_out``."""

    code = "opted_out"
    status = 409


class ParseError(InvalidRequest):
    """HTTP 400 ``parse_error``."""

    code = "parse_error"
    status = 400


class PermissionDeniedError(PermissionDenied):
    """HTTP 403 ``permission_denied``."""

    code = "permission_denied"
    status = 403


class RecordingsRefusedError(RecordingRefused):
    """HTTP 422 ``recordings_refused``."""

    code = "recordings_refused"
    status = 422


class ReplayDetectedError(PermissionDenied):
    """HTTP 403 ``replay_detected``."""

    code = "replay_detected"
    status = 403


class SearchUnavailableError(ServiceUnavailable):
    """HTTP 503 ``search_unavailable``."""

    code = "search_unavailable"
    status = 503


class SessionTooLongError(PayloadTooLarge):
    """HTTP 413 ``session_too_long``."""

    code = "session_too_long"
    status = 413


class SpeakerNotEnrolledError(Conflict):
    """HTTP 409 ``speaker_not_enrolled``."""

    code = "speaker_not_enrolled"
    status = 409


class SpeakerNotFoundError(NotFound):
    """HTTP 404 ``speaker_not_found``."""

    code = "speaker_not_found"
    status = 404


class TenantExistsError(InvalidRequest):
    """HTTP 400 ``tenant_exists``."""

    code = "tenant_exists"
    status = 400


class ThrottledError(RateLimited):
    """HTTP 429 ``throttled``."""

    code = "throttled"
    status = 429


class TooManyFieldsError(InvalidRequest):
    """HTTP 400 ``too_many_fields``."""

    code = "too_many_fields"
    status = 400


class TooManyFilesError(PayloadTooLarge):
    """HTTP 413 ``too_many_files``."""

    code = "too_many_files"
    status = 413


class TooManySessionsError(RateLimited):
    """HTTP 429 ``too_many_sessions``."""

    code = "too_many_sessions"
    status = 429


class UnsupportedMediaTypeError(InvalidRequest):
    """HTTP 415 ``unsupported_media_type``."""

    code = "unsupported_media_type"
    status = 415


class UploadTooLargeError(PayloadTooLarge):
    """HTTP 413 ``upload_too_large``."""

    code = "upload_too_large"
    status = 413


class UriTooLongError(PayloadTooLarge):
    """HTTP 414 ``uri_too_long``."""

    code = "uri_too_long"
    status = 414


class ValidationError(InvalidRequest):
    """HTTP 400 ``validation_error``."""

    code = "validation_error"
    status = 400


class VerificationLockedError(RateLimited):
    """HTTP 429 ``verification_locked``."""

    code = "verification_locked"
    status = 429


class VoiceprintUnreadableError(Conflict):
    """HTTP 409 ``voiceprint_unreadable``."""

    code = "voiceprint_unreadable"
    status = 409


class WatchlistEntryNotFoundError(NotFound):
    """HTTP 404 ``watchlist_entry_not_found``."""

    code = "watchlist_entry_not_found"
    status = 404


class WatchlistMatchError(PermissionDenied):
    """HTTP 403 ``watchlist_match``."""

    code = "watchlist_match"
    status = 403


# code -> its exception class: what the client raises for an error object of that code.
ERRORS: dict[str, type[VoiceprintError]] = {
    "api_key_revoked": ApiKeyRevokedError,
    "asnorm_unavailable": AsnormUnavailableError,
    "audio_budget_exceeded": AudioBudgetExceededError,
    "audio_clipped": AudioClippedError,
    "audio_decode_error": AudioDecodeError,
    "audio_degenerate": AudioDegenerateError,
    "audio_empty": AudioEmptyError,
    "audio_error": AudioError,
    "audio_invalid_samples": AudioInvalidSamplesError,
    "audio_not_audio": AudioNotAudioError,
    "audio_out_of_range": AudioOutOfRangeError,
    "audio_too_complex": AudioTooComplexError,
    "audio_too_long": AudioTooLongError,
    "audio_too_noisy": AudioTooNoisyError,
    "audio_too_quiet": AudioTooQuietError,
    "audio_too_short": AudioTooShortError,
    "audio_too_slow": AudioTooSlowError,
    "audio_unsupported_format": AudioUnsupportedFormatError,
    "authentication_failed": AuthenticationFailedError,
    "bad_request": BadRequestError,
    "calibration_refused": CalibrationRefusedError,
    "consent_required": ConsentRequiredError,
    "csrf_failed": CsrfFailedError,
    "database_unavailable": DatabaseUnavailableError,
    "decryption_error": DecryptionError,
    "enrollment_incomplete": EnrollmentIncompleteError,
    "enrollment_inconsistent": EnrollmentInconsistentError,
    "enrollment_not_found": EnrollmentNotFoundError,
    "external_id_taken": ExternalIdTakenError,
    "fingerprint_invalid": FingerprintInvalidError,
    "idle_timeout": IdleTimeoutError,
    "insufficient_scope": InsufficientScopeError,
    "insufficient_speech": InsufficientSpeechError,
    "internal_error": InternalError,
    "invalid_api_key": InvalidApiKeyError,
    "invalid_audio_frame": InvalidAudioFrameError,
    "invalid_external_id": InvalidExternalIdError,
    "invalid_host": InvalidHostError,
    "invalid_message": InvalidMessageError,
    "message_too_large": MessageTooLargeError,
    "method_not_allowed": MethodNotAllowedError,
    "missing_api_key": MissingApiKeyError,
    "model_error": ModelError,
    "model_integrity_error": ModelIntegrityError,
    "model_not_prepared": ModelNotPreparedError,
    "model_unavailable": ModelUnavailableError,
    "model_version_mismatch": ModelVersionMismatchError,
    "no_speech": NoSpeechError,
    "not_acceptable": NotAcceptableError,
    "not_authenticated": NotAuthenticatedError,
    "not_found": NotFoundError,
    "opted_out": OptedOutError,
    "parse_error": ParseError,
    "permission_denied": PermissionDeniedError,
    "recordings_refused": RecordingsRefusedError,
    "replay_detected": ReplayDetectedError,
    "search_unavailable": SearchUnavailableError,
    "session_too_long": SessionTooLongError,
    "speaker_not_enrolled": SpeakerNotEnrolledError,
    "speaker_not_found": SpeakerNotFoundError,
    "tenant_exists": TenantExistsError,
    "throttled": ThrottledError,
    "too_many_fields": TooManyFieldsError,
    "too_many_files": TooManyFilesError,
    "too_many_sessions": TooManySessionsError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "upload_too_large": UploadTooLargeError,
    "uri_too_long": UriTooLongError,
    "validation_error": ValidationError,
    "verification_locked": VerificationLockedError,
    "voiceprint_unreadable": VoiceprintUnreadableError,
    "watchlist_entry_not_found": WatchlistEntryNotFoundError,
    "watchlist_match": WatchlistMatchError,
}
