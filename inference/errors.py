"""Typed errors of the inference engine.

Every error carries a stable machine-readable ``code`` (part of the public API: the
service maps it to HTTP and clients switch on it) and a ``detail`` dict with figures
that explain it (durations, limits...). Messages are for humans and may change.
"""
from __future__ import annotations

from typing import Any


class InferenceError(Exception):
    """Base class: something about the input or the model prevents an embedding."""

    code: str = "inference_error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail

    def __str__(self) -> str:  # pragma: no cover - trivial
        return f"{self.code}: {self.message}"


class AudioError(InferenceError):
    """The upload cannot be used as a recording."""

    code = "audio_error"


class AudioDecodeError(AudioError):
    """Undecodable, corrupt or truncated audio data."""

    code = "audio_decode_error"


class EmptyAudioError(AudioError):
    """Zero bytes, or a valid container holding zero samples."""

    code = "audio_empty"


class NotAudioError(AudioError):
    """The bytes are not an audio format we can read (e.g. a PDF or a text file)."""

    code = "audio_not_audio"


class InvalidSamplesError(AudioError):
    """The decoded samples contain NaN or infinite values."""

    code = "audio_invalid_samples"


class AudioTooShortError(AudioError):
    """The recording is shorter than the configured minimum duration."""

    code = "audio_too_short"


class AudioTooLongError(AudioError):
    """The recording is longer than the configured maximum duration."""

    code = "audio_too_long"


class NoSpeechError(AudioError):
    """The recording holds no (or too little) speech; no embedding is ever produced."""

    code = "no_speech"


class ModelError(InferenceError):
    """The model files are missing, corrupt or do not match the expected contract."""

    code = "model_error"


class ModelNotPreparedError(ModelError):
    """The converted checkpoint is missing: run ``python -m inference prepare-model``."""

    code = "model_not_prepared"


class ModelIntegrityError(ModelError):
    """A checksum or a parameter name/shape does not match."""

    code = "model_integrity_error"
