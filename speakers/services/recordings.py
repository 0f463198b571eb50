"""Uploaded recordings: what the services receive, the quality gate, and per-file refusals.

A recording is bytes in memory (never written anywhere) with the name the client gave it and,
when it came through the API, the form field it came in (the API layer names it; services only
pass it on in errors, so a client knows which of several uploads was refused).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from inference import EmbeddingResult, InferenceError

from .. import inference_owner
from ..exceptions import ApplicationError, AudioClipped, AudioTooNoisy, AudioTooQuiet, InsufficientSpeech


class Purpose(enum.Enum):
    """What a recording is for: the quality gate asks more of an enrollment than of a probe."""

    ENROLLMENT = "enrollment"
    PROBE = "probe"  # verify, identify, compare


@dataclass(frozen=True)
class Recording:
    """One uploaded file, in memory."""

    filename: str
    data: bytes = field(repr=False)
    field: str | None = None

    def annotate(self, error: InferenceError | ApplicationError) -> None:
        """Name this recording in an error about it."""
        if self.field is not None:
            error.detail.setdefault("field", self.field)
        error.detail.setdefault("filename", self.filename)


@dataclass(frozen=True)
class Refusal:
    filename: str
    code: str
    message: str
    detail: dict[str, Any]

    @classmethod
    def from_error(cls, filename: str, error: InferenceError | ApplicationError) -> Refusal:
        return cls(filename=filename, code=error.code, message=error.message, detail=dict(error.detail))


def recording_check_quality(*, result: EmbeddingResult, purpose: Purpose) -> None:
    """Refuse a recording the engine could embed but that is not good enough for ``purpose``.

    In order, so the cause is named before its symptom (a quiet recording also holds little
    detectable speech): clipping (``audio_clipped``), speech level (``audio_too_quiet``),
    signal-to-noise ratio (``audio_too_noisy``) and net speech (``insufficient_speech``).
    Recordings without any speech never get here: the engine refuses them (``no_speech``).
    """
    enrollment = purpose is Purpose.ENROLLMENT
    clipping = float(result.quality.clipping_ratio)
    if clipping > settings.VOICEPRINT_MAX_CLIPPING_RATIO:
        raise AudioClipped(clipping_ratio=round(clipping, 4),
                           max_clipping_ratio=settings.VOICEPRINT_MAX_CLIPPING_RATIO)
    level = float(result.quality.speech_level_dbfs)
    if level < settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS:
        raise AudioTooQuiet(speech_level_dbfs=round(level, 1),
                            min_speech_level_dbfs=settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS)
    min_snr_db = settings.VOICEPRINT_ENROLL_MIN_SNR_DB if enrollment else settings.VOICEPRINT_PROBE_MIN_SNR_DB
    snr_db = float(result.quality.snr_db)
    if snr_db < min_snr_db:
        raise AudioTooNoisy(snr_db=round(snr_db, 1), min_snr_db=min_snr_db)
    min_speech_s = settings.VOICEPRINT_ENROLL_MIN_SPEECH_S if enrollment else settings.VOICEPRINT_PROBE_MIN_SPEECH_S
    if result.speech_s < min_speech_s:
        raise InsufficientSpeech(
            f"The recording holds {result.speech_s:.2f} s of speech; at least {min_speech_s:.2f} s "
            f"is needed to {'enroll' if enrollment else 'verify or identify'}.",
            speech_s=round(float(result.speech_s), 3), min_speech_s=min_speech_s)


def recording_embed(*, recording: Recording, purpose: Purpose) -> EmbeddingResult:
    """Embed one recording and apply the quality gate; an error names the recording."""
    try:
        result = inference_owner.embed(recording.data)
        recording_check_quality(result=result, purpose=purpose)
    except (InferenceError, ApplicationError) as error:
        recording.annotate(error)
        raise
    return result


def recordings_embed(*, recordings: list[Recording],
                     purpose: Purpose) -> list[EmbeddingResult | InferenceError | ApplicationError]:
    """Embed several recordings; each unusable one yields its error in its place."""
    out: list[EmbeddingResult | InferenceError | ApplicationError] = []
    for result in inference_owner.embed_many([r.data for r in recordings]):
        try:
            if isinstance(result, InferenceError):
                raise result
            recording_check_quality(result=result, purpose=purpose)
        except (InferenceError, ApplicationError) as error:
            out.append(error)
            continue
        out.append(result)
    return out
