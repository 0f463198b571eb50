"""Domain errors of the service. Each has a stable ``code``; what HTTP makes of it is the API's business.

One handler (speakers/api/errors.py) maps these, the engine's ``InferenceError`` and DRF's own
exceptions to a status and ``{"error": {"code", "message", "detail"}}``. Services raise these
and never answer a failure with ``None`` or a score of 0.0.
"""
from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    code: str = "application_error"
    default_message: str = "The request cannot be processed."

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or self.default_message
        self.detail: dict[str, Any] = detail
        super().__init__(self.message)


# --- authentication and authorisation -------------------------------------------------------

class MissingApiKey(ApplicationError):
    code = "missing_api_key"
    default_message = "Send your API key in the X-API-Key header."


class InvalidApiKey(ApplicationError):
    code = "invalid_api_key"
    default_message = "The API key is not valid."


class RevokedApiKey(ApplicationError):
    code = "api_key_revoked"
    default_message = "The API key has been revoked."


class InsufficientScope(ApplicationError):
    code = "insufficient_scope"
    default_message = "The API key does not have the scope this operation needs."


# --- uploads ---------------------------------------------------------------------------------

class UploadTooLarge(ApplicationError):
    code = "upload_too_large"
    default_message = "The upload is larger than allowed."


class TooManyFiles(ApplicationError):
    code = "too_many_files"
    default_message = "Too many files in one request."


# --- speakers and enrollments -----------------------------------------------------------------

class SpeakerNotFound(ApplicationError):
    code = "speaker_not_found"
    default_message = "No speaker with this id."


class EnrollmentNotFound(ApplicationError):
    code = "enrollment_not_found"
    default_message = "No enrollment with this id for this speaker."


class ConsentRequired(ApplicationError):
    code = "consent_required"
    default_message = ("This deployment enrolls only people whose consent is on record: set the speaker's consent "
                       "first (PUT /api/v1/speakers/{id}/consent).")


class OptedOut(ApplicationError):
    code = "opted_out"
    default_message = ("The person with this external id opted out; they cannot be enrolled again unless an operator "
                       "lifts the block.")


class TenantExists(ApplicationError):
    code = "tenant_exists"
    default_message = "A tenant with this slug exists."


class WatchlistEntryNotFound(ApplicationError):
    code = "watchlist_entry_not_found"
    default_message = "No watchlist entry with this id."


class ReplayDetected(ApplicationError):
    code = "replay_detected"
    default_message = ("This recording replays one the service has already heard for this speaker (the same audio, "
                       "perhaps re-encoded or cut); it was refused. Record the person speaking now.")


class WatchlistMatch(ApplicationError):
    code = "watchlist_match"
    default_message = "The voice matches an entry of the fraud watchlist; the request was refused."


class ExternalIdTaken(ApplicationError):
    code = "external_id_taken"
    default_message = "Another speaker already has this external_id."


class InvalidExternalId(ApplicationError):
    code = "invalid_external_id"
    default_message = "The external_id holds characters that would let it pass for another id."


class SpeakerNotEnrolled(ApplicationError):
    code = "speaker_not_enrolled"
    default_message = "The speaker has no voiceprint yet: enroll at least one recording first."


class ModelVersionMismatch(ApplicationError):
    code = "model_version_mismatch"
    default_message = ("The speaker's voiceprint was made by another model version and cannot be "
                       "compared with this one: re-enroll the speaker.")


class VoiceprintUnreadable(ApplicationError):
    code = "voiceprint_unreadable"
    default_message = ("The speaker's stored voiceprint is damaged and cannot be read; it is left out of "
                       "search. Enroll the speaker again (or restore the row from a backup).")


class EnrollmentIncomplete(ApplicationError):
    code = "enrollment_incomplete"
    default_message = ("The speaker's voiceprint holds too little speech to be compared yet: enroll more "
                       "recordings first.")


class EnrollmentInconsistent(ApplicationError):
    code = "enrollment_inconsistent"
    default_message = ("The recording does not sound like the speaker's other recordings (probably another "
                       "person); it was not enrolled.")


# --- recording quality ------------------------------------------------------------------------

class InsufficientSpeech(ApplicationError):
    code = "insufficient_speech"
    default_message = "The recording holds too little speech."


class AudioClipped(ApplicationError):
    code = "audio_clipped"
    default_message = "The recording is clipped (too loud); record again with a lower input level."


class AudioTooQuiet(ApplicationError):
    code = "audio_too_quiet"
    default_message = "The speech in the recording is too quiet; speak closer to the microphone or raise its level."


class AudioTooNoisy(ApplicationError):
    code = "audio_too_noisy"
    default_message = "The recording is too noisy for a reliable decision; record again somewhere quieter."


class VerificationLocked(ApplicationError):
    code = "verification_locked"
    default_message = ("Too many rejected verifications of this speaker in a row from this API key or this "
                       "address: their verifications of this speaker are paused; try again later.")


class AudioBudgetExceeded(ApplicationError):
    code = "audio_budget_exceeded"
    default_message = ("This API key has sent its budget of audio seconds for this minute "
                       "(VOICEPRINT_AUDIO_SECONDS_PER_MINUTE); try again when the minute ends.")


class RecordingsRefused(ApplicationError):
    code = "recordings_refused"
    default_message = "Every recording was refused; nothing was stored."


# --- engine -----------------------------------------------------------------------------------

class EngineUnavailable(ApplicationError):
    """The engine cannot run: its model files are damaged, cannot be loaded, or have no calibration."""

    code = "model_unavailable"
    default_message = "The speaker model cannot be used: run `python manage.py prepare_model` again."


class ModelNotPrepared(EngineUnavailable):
    """No converted model at all (a fresh install that skipped ``prepare_model``)."""

    code = "model_not_prepared"
    default_message = "The speaker model is not prepared: run `python manage.py prepare_model`."


class SearchUnavailable(ApplicationError):
    code = "search_unavailable"
    default_message = "The speaker search service cannot be reached; try again shortly."


class NormalisationUnavailable(ApplicationError):
    code = "asnorm_unavailable"
    default_message = ("Score normalisation was asked for, but its cohort cannot be loaded: run "
                       "`python manage.py prepare_model` or set VOICEPRINT_ASNORM_COHORT.")


# --- calibration --------------------------------------------------------------------------------

class CalibrationRefused(ApplicationError):
    code = "calibration_refused"
    default_message = "The labelled recordings cannot support this calibration."


# --- streaming sessions (WebSocket; see docs/streaming.md) --------------------------------------

class StreamMessageInvalid(ApplicationError):
    code = "invalid_message"
    default_message = "The message does not follow the streaming protocol."


class StreamFrameInvalid(ApplicationError):
    code = "invalid_audio_frame"
    default_message = "The binary message is not raw PCM in the session's encoding."


class StreamMessageTooLarge(ApplicationError):
    code = "message_too_large"
    default_message = "The message is larger than allowed."


class StreamTooLong(ApplicationError):
    code = "session_too_long"
    default_message = "The session reached its limit; open a new one."


class StreamIdle(ApplicationError):
    code = "idle_timeout"
    default_message = "Nothing arrived for too long; the session is closed."


class StreamTooSlow(ApplicationError):
    code = "audio_too_slow"
    default_message = "Too little audio arrived for too long; the session is closed."


class StreamSessionsExhausted(ApplicationError):
    code = "too_many_sessions"
    default_message = "Too many streaming sessions are open; close one or try again later."
