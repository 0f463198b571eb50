"""The API's error codes in words a person understands: what went wrong and what to do about it.

One table, used by the admin's tools and handed to the web page (as JSON in its HTML), so the
two never word the same refusal differently. Codes are the API's stable ones (docs/api.md);
an unknown code falls back to the API's own ``message``.
"""
from __future__ import annotations

from typing import Any

# code -> (a short headline, what the person can do)
PLAIN_WORDS: dict[str, tuple[str, str]] = {
    # recording quality, in the order the service checks it
    "no_speech": ("No speech", "Nothing that sounds like a voice was heard. Check that the microphone is on "
                               "and speak."),
    "audio_degenerate": ("Not a voice", "The recording is dominated by clicks or a synthetic signal."),
    "audio_clipped": ("Too loud", "The sound is distorted: speak a little softer or move back from the "
                                  "microphone."),
    "audio_too_quiet": ("Too quiet", "Speak louder or move closer to the microphone."),
    "audio_too_noisy": ("Too noisy", "There is too much background noise: find a quieter place or move "
                                     "closer to the microphone."),
    "insufficient_speech": ("Not enough speech", "Speak for longer: a few seconds without long pauses."),
    "audio_too_short": ("Too short", "Record for longer."),
    "audio_too_long": ("Too long", "Keep each recording under a minute."),
    "enrollment_inconsistent": ("Sounds like someone else", "This recording does not match the speaker's other "
                                                            "recordings, so it was not added."),
    "recordings_refused": ("No recording could be used", "Each file was refused; see the reasons below."),
    # not a recording at all
    "audio_empty": ("Empty file", "The file holds no sound."),
    "audio_not_audio": ("Not a recording", "The file is not an audio file."),
    "audio_decode_error": ("Unreadable recording", "The audio file is damaged or in a format that cannot be "
                                                   "read. WAV, FLAC and OGG work."),
    "audio_invalid_samples": ("Unreadable recording", "The file holds invalid samples."),
    "audio_unsupported_format": ("Unsupported recording", "Use a common sample rate (8-48 kHz) and mono or "
                                                          "stereo."),
    "audio_out_of_range": ("Unusable recording", "Its samples go beyond full scale."),
    "audio_too_complex": ("Recording too large", "Record a shorter or mono file."),
    "upload_too_large": ("File too large", "Send a smaller file."),
    "too_many_files": ("Too many files", "Send fewer files at once."),
    # the speaker
    "speaker_not_found": ("No such speaker", "The speaker may have been deleted."),
    "external_id_taken": ("Id already in use", "Another speaker already has this external id."),
    "invalid_external_id": ("Id not allowed", "Use visible characters of one script (an invisible, direction or "
                                              "lookalike character could make it pass for another id)."),
    "speaker_not_enrolled": ("Not enrolled yet", "Enroll recordings of this speaker first."),
    "enrollment_incomplete": ("Enrollment not finished", "Record more speech for this speaker first."),
    "model_version_mismatch": ("Enrolled with another model", "Enroll this speaker again."),
    "voiceprint_unreadable": ("Voiceprint damaged", "Enroll this speaker again."),
    "verification_locked": ("Too many failed attempts", "Verification of this speaker from this key or address is paused for a while."),
    "consent_required": ("Consent needed", "Record the person's consent before enrolling their voice."),
    "opted_out": ("Opted out", "This person asked not to be enrolled; an operator must lift the block first."),
    "replay_detected": ("A recording played back", "This is a recording the service has already heard for this "
                                                   "person; record the person speaking now."),
    "watchlist_match": ("Refused", "This voice matches the fraud watchlist; the request was refused."),
    "watchlist_entry_not_found": ("No such watchlist entry", "The entry may have been removed."),
    # the key and the service
    "missing_api_key": ("No API key", "Enter an API key."),
    "invalid_api_key": ("Wrong API key", "The key is not valid: check it was copied whole."),
    "api_key_revoked": ("API key revoked", "Ask for a new key."),
    "insufficient_scope": ("Not allowed with this key", "The API key lacks the scope this needs."),
    "throttled": ("Too many requests", "Wait a moment and try again."),
    "validation_error": ("Missing or invalid field", "Check the form."),
    "model_not_prepared": ("Service not ready", "The speaker model is not installed on the server."),
    "model_unavailable": ("Service not ready", "The speaker model on the server is damaged or cannot be loaded."),
    "model_error": ("Service not ready", "The speaker model cannot be loaded."),
    "model_integrity_error": ("Service not ready", "The speaker model's files are damaged."),
    "asnorm_unavailable": ("Score normalisation unavailable", "Try again without AS-norm."),
    "database_unavailable": ("Service unavailable", "The database cannot be reached."),
    "search_unavailable": ("Search unavailable", "The speaker search cannot be reached; try again shortly."),
    "audio_budget_exceeded": ("Too much audio for now", "This key has sent its share of audio for the minute; "
                                                         "wait a moment and try again."),
    "audio_error": ("Unusable recording", "The recording could not be processed; try another one."),
    "fingerprint_invalid": ("Unusable recording", "The recording could not be checked for playback; record again."),
    "enrollment_not_found": ("No such recording", "The enrollment may have been deleted."),
    "calibration_refused": ("Calibration refused", "The labelled recordings could not calibrate the service; see "
                                                   "the reason below."),
    "tenant_exists": ("Tenant already exists", "Choose another name for the new tenant."),
    "decryption_error": ("Stored data unreadable", "A stored voiceprint cannot be decrypted: the encryption keys "
                                                   "the server was given do not match."),
    "authentication_failed": ("Wrong API key", "The key is not valid: check it was copied whole."),
    "not_authenticated": ("No API key", "Enter an API key."),
    "permission_denied": ("Not allowed with this key", "The API key lacks the permission this needs."),
    "csrf_failed": ("Page out of date", "Reload the page and try again."),
    "bad_request": ("Bad request", "The request was not understood; check the form."),
    "parse_error": ("Bad request", "The request body could not be read."),
    "too_many_fields": ("Too many fields", "Send fewer fields at once."),
    "unsupported_media_type": ("Wrong kind of request", "Send the form as multipart (files) or JSON."),
    "not_acceptable": ("Wrong kind of request", "Ask for JSON."),
    "method_not_allowed": ("Not possible here", "This address does not accept that kind of request."),
    "not_found": ("Not found", "There is nothing at this address."),
    "uri_too_long": ("Address too long", "Send the values in the request body instead."),
    "invalid_host": ("Wrong address", "The server is not configured to answer on this address."),
    "internal_error": ("Something went wrong", "The server failed on this request; try again, and tell the "
                                               "operator if it keeps happening."),
    # streaming verification (docs/streaming.md)
    "idle_timeout": ("Stopped: nothing arrived", "The microphone sent nothing for a while; start again."),
    "session_too_long": ("Session over", "A streaming session has a time limit; start a new one."),
    "audio_too_slow": ("Stopped: too little sound arrived", "The microphone sent almost nothing for a while; start again."),
    "too_many_sessions": ("Too many live sessions", "Close another streaming session or try again later."),
    "message_rate_exceeded": ("Too many messages", "The page sent audio in too many small pieces."),
    "invalid_message": ("Streaming protocol error", "The page and the server disagree; reload the page."),
    "invalid_audio_frame": ("Streaming protocol error", "The audio sent was not in the agreed format."),
    "message_too_large": ("Streaming protocol error", "An audio message was too large."),
    # the page itself
    "network_error": ("No connection", "The server cannot be reached."),
    "microphone": ("No microphone", "The browser gives this page no microphone: allow it (the page must be on "
                                    "localhost or HTTPS)."),
    "stream_unavailable": ("Streaming unavailable", "This server does not answer on the streaming route "
                                                    "(it needs the ASGI server that `make serve` runs)."),
}


def plain_words(code: str, message: str = "") -> tuple[str, str]:
    """``(headline, advice)`` for an error ``code``; an unknown code gets the API's ``message``."""
    return PLAIN_WORDS.get(code, ("Refused", message or code))


def explain(code: str, message: str = "", detail: dict[str, Any] | None = None) -> str:
    """One sentence for a person: the headline, the advice and, where it helps, the measured figure."""
    headline, advice = plain_words(code, message)
    detail = detail or {}
    figures = {
        "audio_too_quiet": ("speech_level_dbfs", "min_speech_level_dbfs", "speech at {:.0f} dBFS, needs {:.0f}"),
        "audio_too_noisy": ("snr_db", "min_snr_db", "signal-to-noise {:.1f} dB, needs {:.0f}"),
        "insufficient_speech": ("speech_s", "min_speech_s", "{:.1f} s of speech, needs {:.1f}"),
        "audio_clipped": ("clipping_ratio", "max_clipping_ratio", "{:.1%} of samples clipped, at most {:.0%}"),
    }
    if code in figures:
        measured, limit, text = figures[code]
        if isinstance(detail.get(measured), (int, float)) and isinstance(detail.get(limit), (int, float)):
            return f"{headline} ({text.format(detail[measured], detail[limit])}). {advice}"
    return f"{headline}. {advice}"
