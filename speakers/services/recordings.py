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

from inference import EmbeddingResult, InferenceError, ModelError, PreparedAudio
from inference.gates import GateLimits, gate_refusal
from inference.quality_calibration import SideQuality

from ..exceptions import (
    ApplicationError,
    AudioBudgetExceeded,
    AudioClipped,
    AudioTooNoisy,
    AudioTooQuiet,
    EngineUnavailable,
    InsufficientSpeech,
)
from ..runtime import inference_owner
from .audio_budget import audio_budget_charge, audio_budget_check


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


def side_quality(result: EmbeddingResult) -> SideQuality:
    """The quality measures of one recording, as the calibration takes them."""
    return SideQuality(speech_s=float(result.speech_s), snr_db=float(result.quality.snr_db),
                       bandwidth_hz=float(result.quality.bandwidth_hz))


def gate_limits(purpose: Purpose) -> GateLimits:
    """The quality gates in force for ``purpose`` (settings; docs/accuracy.md says how they were measured)."""
    enrollment = purpose is Purpose.ENROLLMENT
    return GateLimits(
        max_clipping_ratio=settings.VOICEPRINT_MAX_CLIPPING_RATIO,
        min_speech_level_dbfs=settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS,
        min_snr_db=settings.VOICEPRINT_ENROLL_MIN_SNR_DB if enrollment else settings.VOICEPRINT_PROBE_MIN_SNR_DB,
        min_speech_s=settings.VOICEPRINT_ENROLL_MIN_SPEECH_S if enrollment else settings.VOICEPRINT_PROBE_MIN_SPEECH_S,
    )


def recording_check_quality(*, prepared: PreparedAudio, purpose: Purpose) -> None:
    """Refuse a recording that is not good enough for ``purpose``, before any forward pass.

    The rule is :func:`inference.gates.gate_refusal` (clipping, speech level, SNR, net speech, in
    that order) on the figures :meth:`inference.Embedder.prepare` measured; recordings without any
    speech never get here: the engine refuses them (``no_speech``).
    """
    refusal = gate_refusal(clipping_ratio=float(prepared.quality.clipping_ratio),
                           speech_level_dbfs=float(prepared.quality.speech_level_dbfs),
                           snr_db=float(prepared.quality.snr_db), speech_s=float(prepared.speech_s),
                           limits=gate_limits(purpose))
    if refusal is None:
        return
    if refusal.code == "audio_clipped":
        raise AudioClipped(clipping_ratio=round(refusal.value, 4), max_clipping_ratio=refusal.limit)
    if refusal.code == "audio_too_quiet":
        raise AudioTooQuiet(speech_level_dbfs=round(refusal.value, 1), min_speech_level_dbfs=refusal.limit)
    if refusal.code == "audio_too_noisy":
        raise AudioTooNoisy(snr_db=round(refusal.value, 1), min_snr_db=refusal.limit)
    raise InsufficientSpeech(
        f"The recording holds {refusal.value:.2f} s of speech; at least {refusal.limit:.2f} s is needed to "
        f"{'enroll' if purpose is Purpose.ENROLLMENT else 'verify or identify'}.",
        speech_s=round(refusal.value, 3), min_speech_s=refusal.limit)


def recording_decode(*, recording: Recording) -> PreparedAudio:
    """Decode and measure one recording, charged to the payer's budget of audio seconds (refused once it is spent)."""
    audio_budget_check()
    prepared = inference_owner.prepare(recording.data)
    audio_budget_charge(seconds=float(prepared.duration_s))
    return prepared


def recording_prepare(*, recording: Recording, purpose: Purpose) -> PreparedAudio:
    """Measure, then refuse: decode one recording and apply the quality gate (no network yet)."""
    try:
        prepared = recording_decode(recording=recording)
        recording_check_quality(prepared=prepared, purpose=purpose)
    except (InferenceError, ApplicationError) as error:
        recording.annotate(error)
        raise
    return prepared


def recording_embed(*, recording: Recording, purpose: Purpose) -> EmbeddingResult:
    """Measure, refuse, then spend: one recording through the gate, then the queued forward pass.

    An error names the recording.
    """
    return recording_embed_prepared(recording=recording,
                                    prepared=recording_prepare(recording=recording, purpose=purpose))


def recording_embed_prepared(*, recording: Recording, prepared: PreparedAudio) -> EmbeddingResult:
    """The forward pass of a recording already measured and gated (:func:`recording_prepare`)."""
    try:
        return inference_owner.embed_prepared(prepared)
    except (InferenceError, ApplicationError) as error:
        recording.annotate(error)
        raise


def recordings_embed(*, recordings: list[Recording],
                     purpose: Purpose) -> list[EmbeddingResult | InferenceError | ApplicationError]:
    """Embed several recordings, each gated before its forward pass; an unusable one yields its error in its place."""
    return [result for _, result in recordings_embed_prepared(recordings=recordings, purpose=purpose)]


def recordings_embed_prepared(*, recordings: list[Recording], purpose: Purpose,
                              ) -> list[tuple[PreparedAudio | None, EmbeddingResult | InferenceError | ApplicationError]]:
    """:func:`recordings_embed`, each result beside what was measured of its recording (None when it was refused)."""
    out: list[tuple[PreparedAudio | None, EmbeddingResult | InferenceError | ApplicationError]] = []
    for recording in recordings:
        prepared = None
        try:
            prepared = recording_decode(recording=recording)
            recording_check_quality(prepared=prepared, purpose=purpose)
            out.append((prepared, inference_owner.embed_prepared(prepared)))
        except ModelError:
            raise
        except (InferenceError, ApplicationError) as error:
            if isinstance(error, (EngineUnavailable, AudioBudgetExceeded)):  # not about this recording
                raise
            out.append((None, error))
    return out
