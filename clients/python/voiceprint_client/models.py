"""What the server answers, as dataclasses: one per response shape (docs/api.md, docs/streaming.md).

Every result keeps the JSON it came from in ``raw`` (fields a newer server adds are there before this
client names them); fields an older server does not send are ``None``. Datetimes are parsed.
"""
from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import VoiceprintError, error_from_json

M = TypeVar("M", bound="Model")


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [option for option in get_args(kind) if option is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = get_args(kind)
        return [_convert(item, v) for v in value]
    if isinstance(kind, type) and issubclass(kind, Model):
        return kind.from_json(value)
    if kind is datetime and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclass(frozen=True)
class Model:
    """Base of every result: ``raw`` is the JSON object it was read from."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    @classmethod
    def from_json(cls: type[M], data: dict[str, Any]) -> M:
        hints = get_type_hints(cls)
        values = {f.name: _convert(hints[f.name], data.get(f.name)) for f in dataclasses.fields(cls) if f.name != "raw"}
        return cls(**values, raw=dict(data))


# --- errors inside answers -------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorInfo(Model):
    """An error object inside an answer (a refused file of an enrollment or a batch, a streaming event)."""

    code: str
    message: str
    detail: dict[str, Any] | None

    def exception(self) -> VoiceprintError:
        """The exception the client would raise for this error."""
        return error_from_json({"code": self.code, "message": self.message, "detail": self.detail or {}})


# --- health ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Health(Model):
    status: str  # ready, warming_up, failed, degraded, unavailable
    engine: str | None
    model_version: str | None
    model_loaded: bool
    model_prepared: bool
    database: str
    enrolled_speakers: int | None
    unreadable_voiceprints: int | None
    missing_key_ids: list[str] | None
    outdated_voiceprints: int | None = None  # made by another model version: enroll those speakers again
    partial_voiceprints: int | None = None  # made by ECAPA alone under the fused engine: decided with it


@dataclass(frozen=True)
class Readiness(Model):
    ready: bool
    status: str


# --- speakers and enrollments -----------------------------------------------------------------------------

@dataclass(frozen=True)
class EnrollmentProgress(Model):
    speech_s: float
    required_s: float
    complete: bool
    text: str


@dataclass(frozen=True)
class Consent(Model):
    """The person's consent on record (the caller's reference to the form or recording)."""

    reference: str
    notice_version: str | None
    purpose: str | None
    given_at: datetime | None


@dataclass(frozen=True)
class Speaker(Model):
    id: str
    external_id: str | None
    display_name: str
    metadata: dict[str, Any] | None
    enrollment_count: int
    enrolled: bool
    voiceprint_status: str  # none, incomplete, complete, partial, outdated, unreadable
    model_version: str | None
    enrollment_progress: EnrollmentProgress | None
    created_at: datetime | None
    updated_at: datetime | None
    last_verified_at: datetime | None
    last_identified_at: datetime | None
    last_used_at: datetime | None = None
    consent: Consent | None = None

    @property
    def name(self) -> str:
        """What a person calls the speaker: the external id, else the display name, else the id."""
        return self.external_id or self.display_name or self.id


@dataclass(frozen=True)
class SpeakerPage(Model):
    count: int
    next: str | None
    previous: str | None
    results: list[Speaker]


@dataclass(frozen=True)
class Quality(Model):
    clipping_ratio: float
    snr_db: float
    speech_ratio: float


@dataclass(frozen=True)
class Enrollment(Model):
    id: str
    speaker_id: str
    filename: str
    model_version: str
    duration_s: float
    speech_s: float
    quality: Quality | None
    created_at: datetime | None


@dataclass(frozen=True)
class Refusal(Model):
    filename: str
    error: ErrorInfo


@dataclass(frozen=True)
class WatchlistMatch(Model):
    """A fraud watchlist entry a recording's voice matched."""

    entry_id: str
    label: str
    score: float
    threshold: float


@dataclass(frozen=True)
class WatchlistEntry(Model):
    id: str
    label: str
    notes: str
    source: str  # recordings, speaker
    source_speaker_id: str | None
    model_versions: list[str]
    speech_s: float
    created_at: datetime | None
    created_by: str


@dataclass(frozen=True)
class WatchlistPage(Model):
    count: int
    next: str | None
    previous: str | None
    results: list[WatchlistEntry]


@dataclass(frozen=True)
class EnrollResult(Model):
    speaker: Speaker
    accepted: list[Enrollment]
    refused: list[Refusal]
    enrollment_progress: EnrollmentProgress
    processing_time_ms: float
    watchlist_match: WatchlistMatch | None = None


# --- decisions ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyResult(Model):
    speaker_id: str
    score: float
    raw_score: float
    score_normalisation: str
    threshold: float
    accepted: bool
    model_version: str
    processing_time_ms: float
    watchlist_match: WatchlistMatch | None = None


@dataclass(frozen=True)
class Candidate(Model):
    speaker_id: str
    external_id: str | None
    display_name: str
    score: float
    raw_score: float
    model_version: str | None = None  # the model that scored it (None from a server before this field)

    @property
    def name(self) -> str:
        return self.external_id or self.display_name or self.speaker_id


@dataclass(frozen=True)
class IdentifyResult(Model):
    candidates: list[Candidate]
    match: Candidate | None
    threshold: float | None
    margin: float
    runner_up_score: float | None
    no_match_reason: str | None  # no_candidates, below_threshold, ambiguous
    score_normalisation: str
    model_version: str
    processing_time_ms: float
    # threshold, or lead: short of the threshold, far ahead of every other voice (None without a match, or from a
    # server before the lead rule); lead and lead_required in standard deviations of impostor scores
    matched_by: str | None = None
    lead: float | None = None
    lead_required: float | None = None


@dataclass(frozen=True)
class SpeakerRef(Model):
    id: str
    external_id: str | None
    display_name: str


@dataclass(frozen=True)
class DiarizedSegment(Model):
    start_s: float
    end_s: float
    speaker: SpeakerRef | None  # the enrolled speaker, or None for a voice nobody enrolled
    label: str  # the speaker's external id (else id), or "unknown-1", "unknown-2"...
    score: float | None


@dataclass(frozen=True)
class DiarizedVoice(Model):
    label: str
    speaker: SpeakerRef | None
    speaking_s: float
    turns: int
    score: float | None
    threshold: float | None
    runner_up_score: float | None
    no_match_reason: str | None  # no_candidates, below_threshold, ambiguous, taken


@dataclass(frozen=True)
class DiarizeResult(Model):
    segments: list[DiarizedSegment]
    speakers: list[DiarizedVoice]
    duration_s: float
    speech_s: float
    gallery: int
    margin: float | None
    score_normalisation: str
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class CompareResult(Model):
    similarity: float
    score: float
    raw_score: float
    score_normalisation: str
    threshold: float
    accepted: bool
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class BatchItem(Model):
    filename: str
    similarity: float | None
    score: float | None
    threshold: float | None
    accepted: bool | None
    error: ErrorInfo | None


@dataclass(frozen=True)
class BatchVerifyResult(Model):
    results: list[BatchItem]
    score_normalisation: str
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class ClassicVerifyResult(Model):
    """``POST /v1/verify-speaker`` (the classic ECAPA demo API's shape)."""

    similarity: float
    verification_result: bool
    score: float
    threshold: float
    processing_time_ms: float


@dataclass(frozen=True)
class ClassicBatchItem(Model):
    filename: str
    similarity: float | None
    result: bool | None
    score: float | None
    threshold: float | None
    error: ErrorInfo | None


@dataclass(frozen=True)
class ClassicBatchResult(Model):
    """``POST /v1/batch-verify`` (the classic ECAPA demo API's shape)."""

    batch_results: list[ClassicBatchItem]
    total_count: int


@dataclass(frozen=True)
class Policy(Model):
    model_version: str | None
    score_normalisation_default: str
    calibration_source: str
    far_target: float
    fir_target: float
    calibration: dict[str, Any]
    site_calibration: dict[str, Any] | None
    quality_gates: dict[str, float]


# --- streaming (docs/streaming.md) ---------------------------------------------------------------------

@dataclass(frozen=True)
class StreamMessage(Model):
    """A server message of a type this client does not know yet (``raw`` holds it)."""

    type: str


@dataclass(frozen=True)
class StreamReady(Model):
    type: str
    protocol: str
    reference: str  # "speaker" or "first_audio"
    speaker_id: str | None
    display_name: str | None
    sample_rate: int
    encoding: str
    window_s: float
    hop_s: float
    min_speech_s: float
    reference_speech_s: float | None
    limits: dict[str, Any] | None


@dataclass(frozen=True)
class StreamReference(Model):
    type: str
    seq: int
    speech_s: float
    audio_s: float


@dataclass(frozen=True)
class StreamScore(Model):
    type: str
    seq: int
    similarity: float
    score: float
    raw_score: float
    threshold: float
    accepted: bool
    score_normalisation: str
    speech_s: float
    window_speech_s: float
    audio_s: float
    speech_level_dbfs: float | None
    latency_ms: float | None


@dataclass(frozen=True)
class StreamEvent(Model):
    type: str
    event: str  # speech, silence, clipping, too_quiet, window_refused
    at_s: float
    value: float | None
    error: ErrorInfo | None


@dataclass(frozen=True)
class StreamDecision(Model):
    similarity: float
    score: float
    raw_score: float
    threshold: float
    accepted: bool
    score_normalisation: str


@dataclass(frozen=True)
class StreamSummary(Model):
    type: str
    scores: int
    accepted_scores: int
    final: StreamDecision | None
    speech_s: float
    audio_s: float
    duration_s: float


@dataclass(frozen=True)
class RecordingReference(Model):
    """``/ws/stream-verify``: the first recording, kept as the reference."""

    type: str
    status: str
    speech_s: float
    duration_s: float
    processing_time_ms: float


@dataclass(frozen=True)
class RecordingResult(Model):
    """``/ws/stream-verify``: a later recording, decided against the reference."""

    type: str
    similarity: float
    verification_result: bool
    score: float
    raw_score: float
    threshold: float
    accepted: bool
    score_normalisation: str
    speech_s: float
    processing_time_ms: float


STREAM_MESSAGES: dict[str, type[Model]] = {
    "ready": StreamReady, "reference": StreamReference, "score": StreamScore, "event": StreamEvent,
    "summary": StreamSummary, "result": RecordingResult,
}
