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


class AudioOutOfRangeError(AudioError):
    """Samples beyond full scale (|x| > 1) in a floating-point recording.

    PCM cannot exceed full scale; a float file can, and a single huge sample would dominate the
    filterbank's dynamic-range floor and wipe out the speech (every such recording then embeds
    to nearly the same vector). Refused before anything is computed from it.
    """

    code = "audio_out_of_range"


class AudioTooComplexError(AudioError):
    """The header declares more to decode (rate x channels x duration) than the budget allows."""

    code = "audio_too_complex"


class AudioFormatUnsupportedError(AudioError):
    """A sample rate or channel count outside what the service decodes."""

    code = "audio_unsupported_format"


class DegenerateAudioError(AudioError):
    """The recording reaches the network in a form that carries no voice: a few impulses
    dominate its filterbank, or its embedding sits at the network's collapse point."""

    code = "audio_degenerate"


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
