"""Writes and decisions: every operation of the API, the admin and the commands goes through here.

The flow of an enrollment: bytes -> engine (decode, VAD, features, ECAPA) -> quality gate ->
encrypt -> one transaction (consistency check + rows + voiceprint + index change log + audit) ->
index update after commit. Bad input never half-writes: every file is embedded and checked
before anything is saved.

Decisions compare a score with a threshold of the decision policy in force (the newest
calibration for the model version, else the settings; see selectors.decision_policy), on the
raw cosine scale or, when asked, the AS-norm scale; every decision returns both.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from inference import EmbeddingResult, InferenceError, average_embeddings, cosine, evaluation
from inference.asnorm import as_norm_scores

from . import crypto, engine, score_normalisation
from .exceptions import (
    ApplicationError,
    AudioClipped,
    AudioTooNoisy,
    AudioTooQuiet,
    CalibrationRefused,
    EnrollmentIncomplete,
    EnrollmentInconsistent,
    ExternalIdTaken,
    InsufficientSpeech,
    ModelVersionMismatch,
    RecordingsRefused,
    SpeakerNotEnrolled,
    SpeakerNotFound,
    VerificationLocked,
    VoiceprintUnreadable,
)
from .models import (
    ApiKey,
    AuditAction,
    AuditEvent,
    Calibration,
    CalibrationMethod,
    Enrollment,
    IndexChange,
    IndexState,
    Speaker,
)
from .selectors import (
    DecisionPolicy,
    EnrollmentProgress,
    Thresholds,
    decision_policy,
    enrollment_progress,
    speaker_get,
    speaker_voiceprint,
)
from .voiceprint_index import speaker_index

logger = logging.getLogger(__name__)

ENROLL = "enroll"
PROBE = "probe"

NO_NORMALISATION = "none"
ASNORM = "asnorm"
# With AS-norm, identify re-ranks this many cosine nearest voiceprints (the normalisation can
# reorder candidates, never bring in one far down the cosine ranking).
ASNORM_SHORTLIST = 50

# --- inputs and results ---------------------------------------------------------------------

@dataclass(frozen=True)
class Actor:
    """Who is acting, for the audit trail."""

    label: str
    api_key: ApiKey | None = None
    client_address: str | None = None

    @classmethod
    def from_api_key(cls, api_key: ApiKey, *, client_address: str | None = None) -> Actor:
        return cls(label=f"api:{api_key.name}", api_key=api_key, client_address=client_address)

    @classmethod
    def from_admin(cls, user: Any, *, client_address: str | None = None) -> Actor:
        return cls(label=f"admin:{user.get_username()}", client_address=client_address)

    @classmethod
    def anonymous(cls, *, client_address: str | None = None) -> Actor:
        return cls(label="anonymous", client_address=client_address)

    @classmethod
    def system(cls) -> Actor:
        return cls(label="system")

    @classmethod
    def cli(cls, command: str) -> Actor:
        return cls(label=f"cli:{command}")


@dataclass(frozen=True)
class Recording:
    """One uploaded file, in memory."""

    filename: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Refusal:
    filename: str
    code: str
    message: str
    detail: dict[str, Any]

    @classmethod
    def from_error(cls, filename: str, error: InferenceError | ApplicationError) -> Refusal:
        return cls(filename=filename, code=error.code, message=error.message, detail=dict(error.detail))


@dataclass(frozen=True)
class EnrollOutcome:
    speaker: Speaker
    accepted: list[Enrollment]
    refused: list[Refusal]
    enrollment_progress: EnrollmentProgress
    processing_time_ms: float


@dataclass(frozen=True)
class VerifyDecision:
    speaker_id: uuid.UUID
    score: float
    raw_score: float
    score_normalisation: str
    threshold: float
    accepted: bool
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class Candidate:
    speaker_id: uuid.UUID
    external_id: str | None
    display_name: str
    score: float
    raw_score: float


@dataclass(frozen=True)
class IdentifyDecision:
    candidates: list[Candidate]
    match: Candidate | None
    threshold: float
    margin: float
    runner_up_score: float | None
    no_match_reason: str | None
    score_normalisation: str
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class CompareDecision:
    similarity: float
    score: float
    raw_score: float
    score_normalisation: str
    threshold: float
    accepted: bool
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class BatchItem:
    filename: str
    similarity: float | None = None
    score: float | None = None
    accepted: bool | None = None
    refusal: Refusal | None = None


@dataclass(frozen=True)
class BatchDecision:
    results: list[BatchItem]
    threshold: float
    score_normalisation: str
    model_version: str
    processing_time_ms: float


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


# --- audit --------------------------------------------------------------------------------------

def audit_record(*, actor: Actor, action: str, speaker_id: uuid.UUID | None = None,
                 decision: str = "", score: float | None = None, threshold: float | None = None,
                 detail: dict[str, Any] | None = None) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor.label[:150], api_key=actor.api_key, client_address=actor.client_address,
        action=action, speaker_id=speaker_id,
        decision=decision, score=score, threshold=threshold, detail=detail or {})


# --- unreadable rows ------------------------------------------------------------------------------

def voiceprint_mark_unreadable(*, speaker_id: uuid.UUID, reason: str) -> None:
    """Record that a speaker's stored voiceprint no longer authenticates (its bytes changed).

    Only that speaker is affected: they leave the search index, their verifications answer
    ``voiceprint_unreadable`` and health counts them, until a new enrollment rewrites the
    voiceprint. Logged and audited once (later calls find the mark and change nothing).
    """
    if Speaker.objects.filter(pk=speaker_id, voiceprint_unreadable=False).update(voiceprint_unreadable=True):
        logger.error("the stored voiceprint of speaker %s cannot be read (%s): it is left out of search until "
                     "the speaker is enrolled again", speaker_id, reason)
        audit_record(actor=Actor.system(), action=AuditAction.VOICEPRINT_UNREADABLE, speaker_id=speaker_id,
                     detail={"reason": reason})


def _voiceprint_of(speaker: Speaker) -> np.ndarray:
    """The speaker's decrypted voiceprint; a damaged row is marked and refused (409), a missing key is a 500."""
    if speaker.voiceprint_unreadable:
        raise VoiceprintUnreadable(speaker_id=str(speaker.id))
    try:
        return speaker_voiceprint(speaker=speaker)
    except crypto.CiphertextCorrupt as exc:
        voiceprint_mark_unreadable(speaker_id=speaker.id, reason=str(exc))
        raise VoiceprintUnreadable(speaker_id=str(speaker.id)) from exc


# --- quality gate ---------------------------------------------------------------------------------

def recording_check_quality(*, recording: Recording, result: EmbeddingResult, purpose: str) -> None:
    """Refuse a recording the engine could embed but that is not good enough for ``purpose``.

    ``purpose`` is ``ENROLL`` or ``PROBE`` (verify, identify, compare). In order, so the cause
    is named before its symptom (a quiet recording also holds little detectable speech):
    clipping (``audio_clipped``), speech level (``audio_too_quiet``), signal-to-noise ratio
    (``audio_too_noisy``) and net speech (``insufficient_speech``). Recordings without any
    speech never get here: the engine refuses them (``no_speech``).
    """
    enroll = purpose == ENROLL
    clipping = float(result.quality.clipping_ratio)
    if clipping > settings.VOICEPRINT_MAX_CLIPPING_RATIO:
        raise AudioClipped(clipping_ratio=round(clipping, 4),
                           max_clipping_ratio=settings.VOICEPRINT_MAX_CLIPPING_RATIO)
    level = float(result.quality.speech_level_dbfs)
    if level < settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS:
        raise AudioTooQuiet(speech_level_dbfs=round(level, 1),
                            min_speech_level_dbfs=settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS)
    min_snr_db = settings.VOICEPRINT_ENROLL_MIN_SNR_DB if enroll else settings.VOICEPRINT_PROBE_MIN_SNR_DB
    snr_db = float(result.quality.snr_db)
    if snr_db < min_snr_db:
        raise AudioTooNoisy(snr_db=round(snr_db, 1), min_snr_db=min_snr_db)
    min_speech_s = settings.VOICEPRINT_ENROLL_MIN_SPEECH_S if enroll else settings.VOICEPRINT_PROBE_MIN_SPEECH_S
    if result.speech_s < min_speech_s:
        raise InsufficientSpeech(
            f"The recording holds {result.speech_s:.2f} s of speech; at least {min_speech_s:.2f} s "
            f"is needed to {'enroll' if enroll else 'verify or identify'}.",
            speech_s=round(float(result.speech_s), 3), min_speech_s=min_speech_s)


def _embed_probe(recording: Recording, *, field_name: str) -> EmbeddingResult:
    """Embed a verify/identify/compare recording and apply the probe quality gate."""
    try:
        result = engine.embed(recording.data)
        recording_check_quality(recording=recording, result=result, purpose=PROBE)
    except (InferenceError, ApplicationError) as error:
        error.detail.setdefault("field", field_name)
        error.detail.setdefault("filename", recording.filename)
        raise
    return result


# --- index change log ------------------------------------------------------------------------------

def _index_change_record(*, speaker_id: uuid.UUID) -> None:
    """Log a voiceprint change; call last in the writing transaction (holds the state row lock)."""
    state, _ = IndexState.objects.select_for_update().get_or_create(pk=1)
    state.generation += 1
    state.token = uuid.uuid4().hex
    state.save(update_fields=["generation", "token"])
    IndexChange.objects.create(generation=state.generation, token=state.token, speaker_id=speaker_id)
    if state.generation % 100 == 0:
        IndexChange.objects.filter(
            generation__lte=state.generation - settings.VOICEPRINT_INDEX_LOG_KEEP).delete()


def _index_update_after_commit() -> None:
    transaction.on_commit(lambda: speaker_index().sync_if_built())


# --- speakers -----------------------------------------------------------------------------------------

def _clean_external_id(external_id: str | None) -> str | None:
    """Blank means none: the unique constraint ignores NULLs but not empty strings."""
    if external_id is None:
        return None
    return external_id.strip() or None


def speaker_create(*, actor: Actor, external_id: str | None = None, display_name: str = "",
                   metadata: dict[str, Any] | None = None) -> Speaker:
    external_id = _clean_external_id(external_id)
    try:
        with transaction.atomic():
            speaker = Speaker.objects.create(external_id=external_id, display_name=display_name or "",
                                             metadata=metadata or {})
            audit_record(actor=actor, action=AuditAction.SPEAKER_CREATE, speaker_id=speaker.id)
    except IntegrityError as exc:
        if external_id is not None and Speaker.objects.filter(external_id=external_id).exists():
            raise ExternalIdTaken(external_id=external_id) from exc
        raise
    return speaker


_UNSET: Any = object()


def speaker_update(*, speaker: Speaker, actor: Actor, external_id: str | None = _UNSET,
                   display_name: str = _UNSET, metadata: dict[str, Any] = _UNSET) -> Speaker:
    changed: list[str] = []
    if external_id is not _UNSET:
        speaker.external_id = _clean_external_id(external_id)
        changed.append("external_id")
    if display_name is not _UNSET:
        speaker.display_name = display_name or ""
        changed.append("display_name")
    if metadata is not _UNSET:
        speaker.metadata = metadata or {}
        changed.append("metadata")
    if not changed:
        return speaker
    try:
        with transaction.atomic():
            speaker.save(update_fields=[*changed, "updated_at"])
            audit_record(actor=actor, action=AuditAction.SPEAKER_UPDATE, speaker_id=speaker.id,
                         detail={"fields": changed})
    except IntegrityError as exc:
        raise ExternalIdTaken(external_id=speaker.external_id) from exc
    return speaker


def speaker_delete(*, speaker: Speaker, actor: Actor) -> None:
    """Delete the speaker, every enrollment and the voiceprint, from the database and every index."""
    speaker_id = speaker.id
    with transaction.atomic():
        enrollments = Enrollment.objects.filter(speaker_id=speaker_id).count()
        Speaker.objects.filter(id=speaker_id).delete()  # cascades to the enrollments
        audit_record(actor=actor, action=AuditAction.SPEAKER_DELETE, speaker_id=speaker_id,
                     detail={"enrollments": enrollments})
        _index_change_record(speaker_id=speaker_id)
    _index_update_after_commit()


# --- enrollments ------------------------------------------------------------------------------------

def _speaker_lock(*, speaker_id: uuid.UUID) -> Speaker:
    """Lock the speaker's row for this transaction (it may have been deleted meanwhile)."""
    speaker = Speaker.objects.select_for_update().filter(pk=speaker_id).first()
    if speaker is None:
        raise SpeakerNotFound(speaker_id=str(speaker_id))
    return speaker


def _voiceprint_rebuild(*, speaker: Speaker, model_version: str) -> None:
    """Recompute the speaker's voiceprint from their enrollments of ``model_version`` (in a transaction)."""
    vectors, speech_s = [], 0.0
    for e in Enrollment.objects.filter(speaker=speaker, model_version=model_version):
        try:
            vectors.append(crypto.vector_decrypt(key_id=e.key_id, ciphertext=e.embedding_ciphertext,
                                                 context=e.crypto_context()))
        except crypto.CiphertextCorrupt as exc:  # a damaged row counts for nothing, and says so
            logger.error("enrollment %s of speaker %s cannot be read (%s): left out of the voiceprint",
                         e.pk, speaker.pk, exc)
            audit_record(actor=Actor.system(), action=AuditAction.VOICEPRINT_UNREADABLE, speaker_id=speaker.pk,
                         detail={"enrollment_id": str(e.pk), "reason": str(exc)})
            continue
        speech_s += e.speech_s
    speaker.enrollment_count = Enrollment.objects.filter(speaker=speaker).count()
    if vectors:
        speaker.voiceprint_model_version = model_version
        sealed = crypto.vector_encrypt(average_embeddings(vectors), context=speaker.crypto_context())
        speaker.voiceprint_ciphertext = sealed.ciphertext
        speaker.voiceprint_key_id = sealed.key_id
        speaker.voiceprint_speech_s = speech_s
    else:
        speaker.voiceprint_ciphertext = None
        speaker.voiceprint_key_id = ""
        speaker.voiceprint_model_version = ""
        speaker.voiceprint_speech_s = 0.0
    speaker.voiceprint_unreadable = False
    speaker.save(update_fields=["enrollment_count", "voiceprint_ciphertext", "voiceprint_key_id",
                                "voiceprint_model_version", "voiceprint_speech_s", "voiceprint_unreadable",
                                "updated_at"])


def _enrollment_inconsistencies(*, speaker: Speaker, model_version: str,
                                vectors: Sequence[np.ndarray]) -> dict[int, EnrollmentInconsistent]:
    """Which new recordings do not sound like the speaker: ``{position in vectors: error}``.

    With a voiceprint of this model version, each recording is compared with it alone: it is
    the trusted reference, and new recordings must not outvote it. Without one (a first upload),
    each recording is compared with the mean of the others and the worst one below the threshold
    is dropped, repeatedly; when two recordings are left that disagree, neither can be trusted
    and both are refused.
    """
    threshold = settings.VOICEPRINT_ENROLL_CONSISTENCY_THRESHOLD
    refused: dict[int, EnrollmentInconsistent] = {}
    voiceprint = None
    if speaker.has_voiceprint and speaker.voiceprint_model_version == model_version:
        try:
            voiceprint = _voiceprint_of(speaker)
        except VoiceprintUnreadable:
            voiceprint = None  # a damaged voiceprint is no reference: the upload is checked on its own
    if voiceprint is not None:
        for position, vector in enumerate(vectors):
            score = cosine(vector, voiceprint)
            if score < threshold:
                refused[position] = EnrollmentInconsistent(score=round(score, 4), threshold=threshold,
                                                           compared_with="voiceprint")
        return refused
    active = list(range(len(vectors)))
    while len(active) >= 2:
        scores = {i: cosine(vectors[i], average_embeddings([vectors[j] for j in active if j != i])) for i in active}
        worst = min(active, key=scores.__getitem__)
        if scores[worst] >= threshold:
            break
        losers = list(active) if len(active) == 2 else [worst]
        for i in losers:
            refused[i] = EnrollmentInconsistent(
                "The recording does not sound like the other recordings of this upload (probably another "
                "person); it was not enrolled.",
                score=round(scores[i], 4), threshold=threshold, compared_with="other_recordings")
        active = [i for i in active if i not in losers]
    return refused


def speaker_enroll(*, speaker: Speaker, recordings: Sequence[Recording], actor: Actor) -> EnrollOutcome:
    """Add one enrollment per accepted recording and update the voiceprint, all in one transaction.

    Refused recordings (unreadable, no speech, too short, clipped, too quiet or noisy, or not
    like the speaker's other recordings) change nothing and come back with their error. If
    every recording is refused, the error is raised: the one recording's own error, or
    ``RecordingsRefused`` listing each file's.
    """
    started = time.perf_counter()
    results = engine.embed_many([r.data for r in recordings])
    candidates: list[tuple[int, Recording, EmbeddingResult]] = []
    refused: list[tuple[int, Refusal]] = []
    for position, (recording, result) in enumerate(zip(recordings, results)):
        try:
            if isinstance(result, InferenceError):
                raise result
            recording_check_quality(recording=recording, result=result, purpose=ENROLL)
        except (InferenceError, ApplicationError) as error:
            if len(recordings) == 1:
                error.detail.setdefault("filename", recording.filename)
                raise
            refused.append((position, Refusal.from_error(recording.filename, error)))
        else:
            candidates.append((position, recording, result))
    if not candidates:
        raise RecordingsRefused(files=[asdict(r) for _, r in refused])

    model_version = candidates[0][2].model_version
    with transaction.atomic():
        speaker = _speaker_lock(speaker_id=speaker.pk)
        # Under the row lock: a concurrent enrollment cannot change the voiceprint meanwhile.
        inconsistent = _enrollment_inconsistencies(speaker=speaker, model_version=model_version,
                                                   vectors=[result.vector for _, _, result in candidates])
        accepted: list[tuple[Recording, EmbeddingResult]] = []
        for k, (position, recording, result) in enumerate(candidates):
            error = inconsistent.get(k)
            if error is None:
                accepted.append((recording, result))
            elif len(recordings) == 1:
                error.detail.setdefault("filename", recording.filename)
                raise error
            else:
                refused.append((position, Refusal.from_error(recording.filename, error)))
        refused.sort(key=lambda item: item[0])
        if not accepted:
            raise RecordingsRefused(files=[asdict(r) for _, r in refused])
        enrollments = []
        for recording, result in accepted:
            enrollment = Enrollment(
                speaker=speaker, model_version=result.model_version, filename=recording.filename[:255],
                duration_s=float(result.duration_s), speech_s=float(result.speech_s),
                clipping_ratio=float(result.quality.clipping_ratio), snr_db=float(result.quality.snr_db),
                speech_ratio=float(result.quality.speech_ratio))
            sealed = crypto.vector_encrypt(result.vector, context=enrollment.crypto_context())
            enrollment.embedding_ciphertext, enrollment.key_id = sealed.ciphertext, sealed.key_id
            enrollments.append(enrollment)
        Enrollment.objects.bulk_create(enrollments)
        _voiceprint_rebuild(speaker=speaker, model_version=model_version)
        progress = enrollment_progress(speaker=speaker)
        audit_record(actor=actor, action=AuditAction.ENROLL, speaker_id=speaker.id, decision="accepted",
                     detail={"accepted": len(enrollments), "refused": [r.code for _, r in refused],
                             "model_version": model_version, "speech_s": progress.speech_s,
                             "complete": progress.complete})
        _index_change_record(speaker_id=speaker.id)
    _index_update_after_commit()
    return EnrollOutcome(speaker=speaker, accepted=enrollments, refused=[r for _, r in refused],
                         enrollment_progress=progress, processing_time_ms=_elapsed_ms(started))


def enrollment_delete(*, enrollment: Enrollment, actor: Actor) -> Speaker:
    """Delete one enrollment and recompute (or clear) the speaker's voiceprint."""
    with transaction.atomic():
        speaker = _speaker_lock(speaker_id=enrollment.speaker_id)
        model_version = speaker.voiceprint_model_version or enrollment.model_version
        Enrollment.objects.filter(pk=enrollment.pk).delete()
        _voiceprint_rebuild(speaker=speaker, model_version=model_version)
        audit_record(actor=actor, action=AuditAction.ENROLLMENT_DELETE, speaker_id=speaker.id,
                     detail={"enrollment_id": str(enrollment.pk)})
        _index_change_record(speaker_id=speaker.id)
    _index_update_after_commit()
    return speaker


# --- decisions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Scale:
    """How one request scores: raw cosine, or AS-norm; and the policy's thresholds for that scale."""

    normalised: bool
    policy: DecisionPolicy

    @property
    def name(self) -> str:
        return ASNORM if self.normalised else NO_NORMALISATION

    @property
    def thresholds(self) -> Thresholds:
        return self.policy.thresholds(normalised=self.normalised)


def _decision_scale(*, asnorm: bool | None, model_version: str) -> _Scale:
    """``asnorm``: the request's choice, or None for the deployment's default (VOICEPRINT_ASNORM)."""
    normalised = settings.VOICEPRINT_ASNORM if asnorm is None else bool(asnorm)
    key = score_normalisation.asnorm().key if normalised else None
    return _Scale(normalised=normalised, policy=decision_policy(model_version=model_version, asnorm_key=key))


def _voiceprint_stats(speaker: Speaker, vector: np.ndarray | None = None) -> tuple[float, float]:
    """AS-norm cohort statistics of the speaker's voiceprint (cached per voiceprint version)."""
    return score_normalisation.voiceprint_stats(
        speaker_id=speaker.id, digest=score_normalisation.voiceprint_digest(speaker.voiceprint_ciphertext),
        vector=vector, load=lambda: _voiceprint_of(speaker))


def _require_usable_voiceprint(speaker: Speaker) -> None:
    """Refuse to compare with a missing, foreign-model or incomplete voiceprint (each its own 409)."""
    if not speaker.has_voiceprint:
        raise SpeakerNotEnrolled(speaker_id=str(speaker.id))
    if speaker.voiceprint_unreadable:
        raise VoiceprintUnreadable(speaker_id=str(speaker.id))
    current_version = engine.model_version()
    if speaker.voiceprint_model_version != current_version:
        raise ModelVersionMismatch(speaker_id=str(speaker.id),
                                   voiceprint_model_version=speaker.voiceprint_model_version,
                                   model_version=current_version)
    progress = enrollment_progress(speaker=speaker)
    if not progress.complete:
        raise EnrollmentIncomplete(
            f"The speaker's voiceprint holds {progress.text} of speech; enroll more recordings before "
            "verifying against it.",
            speaker_id=str(speaker.id), enrollment_progress={**asdict(progress), "text": progress.text})


# --- verification lockout: no unlimited guessing against one speaker -----------------------------------

def _lockout_keys(speaker_id: uuid.UUID) -> tuple[str, str, str]:
    return f"verify_rejections_{speaker_id}", f"verify_locked_until_{speaker_id}", f"verify_lockouts_{speaker_id}"


def verification_lock_check(*, speaker_id: uuid.UUID) -> None:
    """Refuse (429 verification_locked) while the speaker's verifications are locked."""
    _, locked_key, _ = _lockout_keys(speaker_id)
    until = cache.get(locked_key)
    if until is not None and until > time.time():
        wait = until - time.time()
        raise VerificationLocked(speaker_id=str(speaker_id), retry_after_s=round(wait, 1))


def verification_outcome_record(*, speaker_id: uuid.UUID, accepted: bool, actor: Actor) -> None:
    """Count rejected verifications in a row; past VOICEPRINT_VERIFY_LOCKOUT_AFTER, lock the speaker's
    verifications for VOICEPRINT_VERIFY_LOCKOUT_S, doubling with every lockout of the day up to
    VOICEPRINT_VERIFY_LOCKOUT_MAX_S. An accepted verification resets the count."""
    rejections_key, locked_key, lockouts_key = _lockout_keys(speaker_id)
    if accepted:
        cache.delete_many([rejections_key, lockouts_key])
        return
    day = 24 * 3600
    if cache.add(rejections_key, 1, day):
        rejections = 1
    else:
        try:
            rejections = cache.incr(rejections_key)
        except ValueError:
            rejections = 1
            cache.set(rejections_key, 1, day)
    if rejections < settings.VOICEPRINT_VERIFY_LOCKOUT_AFTER:
        return
    lockouts = cache.get(lockouts_key, 0) + 1
    seconds = min(settings.VOICEPRINT_VERIFY_LOCKOUT_S * 2 ** (lockouts - 1), settings.VOICEPRINT_VERIFY_LOCKOUT_MAX_S)
    cache.set_many({locked_key: time.time() + seconds, lockouts_key: lockouts}, day)
    cache.delete(rejections_key)
    logger.warning("verifications of speaker %s locked for %d s after %d rejections in a row", speaker_id, seconds,
                   rejections)
    audit_record(actor=actor, action=AuditAction.VERIFY_LOCKOUT, speaker_id=speaker_id, decision="locked",
                 detail={"rejections": rejections, "locked_s": seconds, "lockout": lockouts})


def speaker_verify(*, speaker_id: uuid.UUID | str, recording: Recording, actor: Actor,
                   asnorm: bool | None = None) -> VerifyDecision:
    """1:1: is this recording the speaker's voice? Scores the probe against the stored voiceprint.

    Only a complete voiceprint of the loaded model version is compared (409 otherwise).
    """
    started = time.perf_counter()
    speaker = speaker_get(speaker_id=speaker_id)
    verification_lock_check(speaker_id=speaker.id)
    _require_usable_voiceprint(speaker)
    probe = _embed_probe(recording, field_name="audio")
    scale = _decision_scale(asnorm=asnorm, model_version=probe.model_version)
    voiceprint = _voiceprint_of(speaker)
    raw = cosine(voiceprint, probe.vector)
    score = raw
    if scale.normalised:
        score = score_normalisation.asnorm().normalise(
            raw, enroll_stats=_voiceprint_stats(speaker, voiceprint),
            test_stats=score_normalisation.vector_stats(probe.vector))
    threshold = scale.thresholds.verify
    accepted = score >= threshold
    with transaction.atomic():
        Speaker.objects.filter(pk=speaker.pk).update(last_verified_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.VERIFY, speaker_id=speaker.id,
                     decision="accepted" if accepted else "rejected", score=score, threshold=threshold,
                     detail={"raw_score": raw, "score_normalisation": scale.name,
                             "policy": scale.thresholds.sources["verify"]})
    verification_outcome_record(speaker_id=speaker.id, accepted=accepted, actor=actor)
    return VerifyDecision(speaker_id=speaker.id, score=score, raw_score=raw, score_normalisation=scale.name,
                          threshold=threshold, accepted=accepted, model_version=probe.model_version,
                          processing_time_ms=_elapsed_ms(started))


def speaker_identify(*, recording: Recording, top_k: int, actor: Actor,
                     asnorm: bool | None = None) -> IdentifyDecision:
    """1:N, open set: the best candidates, and a match only if the best is clearly the one.

    A match needs the best score ``>= threshold`` and a lead over the runner-up ``>= margin``
    (a lone candidate has no runner-up). Only complete voiceprints of the loaded model version
    are searched. The runner-up is looked at even when ``top_k`` is 1.
    """
    started = time.perf_counter()
    probe = _embed_probe(recording, field_name="audio")
    scale = _decision_scale(asnorm=asnorm, model_version=probe.model_version)
    wanted = max(top_k, 2, ASNORM_SHORTLIST if scale.normalised else 0)
    hits = speaker_index().search(probe.vector, wanted, model_version=probe.model_version)
    fields = ["id", "external_id", "display_name"]
    if scale.normalised:
        fields += ["voiceprint_ciphertext", "voiceprint_key_id", "voiceprint_model_version", "voiceprint_unreadable"]
    rows = {s.id: s for s in Speaker.objects.filter(id__in=[speaker_id for speaker_id, _ in hits]).only(*fields)}
    found = [(rows[speaker_id], raw) for speaker_id, raw in hits if speaker_id in rows]  # deleted meanwhile: gone
    raws = np.asarray([raw for _, raw in found], dtype=np.float64)
    scores = raws
    if scale.normalised and found:
        readable = []
        for speaker, raw in found:
            try:
                readable.append((speaker, raw, _voiceprint_stats(speaker)))
            except VoiceprintUnreadable:
                continue  # damaged since the index loaded it: marked, and no candidate
        found = [(speaker, raw) for speaker, raw, _ in readable]
        raws = np.asarray([raw for _, raw in found], dtype=np.float64)
        stats = np.asarray([stat for _, _, stat in readable], dtype=np.float64).reshape(-1, 2)
        mu_t, sd_t = score_normalisation.vector_stats(probe.vector)
        scores = as_norm_scores(raws, stats[:, 0], stats[:, 1], mu_t, sd_t)
    order = np.argsort(-scores, kind="stable")
    ranked = [Candidate(speaker_id=found[i][0].id, external_id=found[i][0].external_id,
                        display_name=found[i][0].display_name, score=float(scores[i]), raw_score=float(raws[i]))
              for i in order]

    thresholds = scale.thresholds
    runner_up_score = ranked[1].score if len(ranked) > 1 else None
    match, no_match_reason = None, None
    if not ranked:
        no_match_reason = "no_candidates"
    elif ranked[0].score < thresholds.identify:
        no_match_reason = "below_threshold"
    elif runner_up_score is not None and ranked[0].score - runner_up_score < thresholds.identify_margin:
        no_match_reason = "ambiguous"
    else:
        match = ranked[0]
    with transaction.atomic():
        if match is not None:
            Speaker.objects.filter(pk=match.speaker_id).update(last_identified_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.IDENTIFY,
                     speaker_id=match.speaker_id if match else None,
                     decision="match" if match else "no_match",
                     score=ranked[0].score if ranked else None, threshold=thresholds.identify,
                     detail={"top_k": top_k, "candidates": min(len(ranked), top_k),
                             "runner_up_score": runner_up_score, "margin": thresholds.identify_margin,
                             "no_match_reason": no_match_reason, "score_normalisation": scale.name,
                             "policy": thresholds.sources["identify"]})
    return IdentifyDecision(candidates=ranked[:top_k], match=match, threshold=thresholds.identify,
                            margin=thresholds.identify_margin, runner_up_score=runner_up_score,
                            no_match_reason=no_match_reason, score_normalisation=scale.name,
                            model_version=probe.model_version, processing_time_ms=_elapsed_ms(started))


def recordings_compare(*, reference: Recording, test: Recording, actor: Actor,
                       asnorm: bool | None = None) -> CompareDecision:
    """Score two recordings against each other; nothing about them is stored."""
    started = time.perf_counter()
    ref = _embed_probe(reference, field_name="reference")
    probe = _embed_probe(test, field_name="test")
    scale = _decision_scale(asnorm=asnorm, model_version=probe.model_version)
    similarity = cosine(ref.vector, probe.vector)
    score = similarity
    if scale.normalised:
        score = score_normalisation.asnorm().normalise(similarity, ref.vector, probe.vector)
    threshold = scale.thresholds.verify
    accepted = score >= threshold
    audit_record(actor=actor, action=AuditAction.COMPARE, decision="accepted" if accepted else "rejected",
                 score=score, threshold=threshold,
                 detail={"raw_score": similarity, "score_normalisation": scale.name,
                         "policy": scale.thresholds.sources["verify"]})
    return CompareDecision(similarity=similarity, score=score, raw_score=similarity,
                           score_normalisation=scale.name, threshold=threshold, accepted=accepted,
                           model_version=probe.model_version, processing_time_ms=_elapsed_ms(started))


def recordings_batch_verify(*, reference: Recording, tests: Sequence[Recording], actor: Actor,
                            asnorm: bool | None = None) -> BatchDecision:
    """Score many recordings against one reference, embedded once; one result per test file."""
    started = time.perf_counter()
    ref = _embed_probe(reference, field_name="reference")
    scale = _decision_scale(asnorm=asnorm, model_version=ref.model_version)
    ref_stats = score_normalisation.vector_stats(ref.vector) if scale.normalised else None
    threshold = scale.thresholds.verify
    items: list[BatchItem] = []
    for recording, result in zip(tests, engine.embed_many([t.data for t in tests])):
        try:
            if isinstance(result, InferenceError):
                raise result
            recording_check_quality(recording=recording, result=result, purpose=PROBE)
        except (InferenceError, ApplicationError) as error:
            items.append(BatchItem(filename=recording.filename,
                                   refusal=Refusal.from_error(recording.filename, error)))
            continue
        similarity = cosine(ref.vector, result.vector)
        score = similarity
        if ref_stats is not None:
            score = score_normalisation.asnorm().normalise(
                similarity, enroll_stats=ref_stats, test_stats=score_normalisation.vector_stats(result.vector))
        items.append(BatchItem(filename=recording.filename, similarity=similarity, score=score,
                               accepted=score >= threshold))
    audit_record(actor=actor, action=AuditAction.BATCH_VERIFY, threshold=threshold,
                 detail={"tests": len(items), "accepted": sum(bool(i.accepted) for i in items),
                         "refused": sum(i.refusal is not None for i in items), "score_normalisation": scale.name,
                         "policy": scale.thresholds.sources["verify"]})
    return BatchDecision(results=items, threshold=threshold, score_normalisation=scale.name,
                         model_version=ref.model_version, processing_time_ms=_elapsed_ms(started))


# --- API keys -------------------------------------------------------------------------------------

def api_key_issue(*, api_key: ApiKey, actor: Actor) -> str:
    """Give ``api_key`` (new or existing) a fresh secret and save it. Returns the plain key, once."""
    generated = crypto.api_key_generate()
    api_key.prefix, api_key.hashed_key = generated.prefix, generated.hashed
    api_key.scopes = sorted(set(api_key.scopes))
    with transaction.atomic():
        api_key.save()
        audit_record(actor=actor, action=AuditAction.API_KEY_CREATE,
                     detail={"name": api_key.name, "prefix": api_key.prefix, "scopes": api_key.scopes})
    return generated.plain


def api_key_create(*, name: str, scopes: Sequence[str], actor: Actor) -> tuple[ApiKey, str]:
    api_key = ApiKey(name=name, scopes=list(scopes))
    return api_key, api_key_issue(api_key=api_key, actor=actor)


def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    if not api_key.revoked:
        with transaction.atomic():
            api_key.revoked, api_key.revoked_at = True, timezone.now()
            api_key.save(update_fields=["revoked", "revoked_at"])
            audit_record(actor=actor, action=AuditAction.API_KEY_REVOKE,
                         detail={"name": api_key.name, "prefix": api_key.prefix})
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once a minute per key (keeps writes off the hot path)."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


# --- key rotation -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RotationReport:
    primary_key_id: str
    enrollments: int
    voiceprints: int


def encryption_keys_rotate(*, actor: Actor, batch_size: int = 500) -> RotationReport:
    """Re-encrypt every enrollment and voiceprint not yet under the primary (first) key.

    Checks first that every key id in use is configured, so it never starts what it cannot
    finish; each batch is one transaction and every re-sealed vector is checked to round-trip.
    Safe to re-run: rows already under the primary key are skipped.
    """
    ring = crypto.keyring()
    in_use = set(Enrollment.objects.values_list("key_id", flat=True).distinct()) | set(
        Speaker.objects.exclude(voiceprint_key_id="").values_list("voiceprint_key_id", flat=True).distinct())
    missing = sorted(in_use - ring.keys.keys())
    if missing:
        raise crypto.DecryptionError(
            f"rows are encrypted with key ids {missing} that are not in VOICEPRINT_ENCRYPTION_KEYS; "
            "add those keys (after the new one) and run again")

    enrollments = voiceprints = 0
    while True:
        with transaction.atomic():
            batch = list(Enrollment.objects.select_for_update().exclude(key_id=ring.primary_id)
                         .order_by("pk")[:batch_size])
            for row in batch:
                sealed = crypto.vector_reseal(key_id=row.key_id, ciphertext=row.embedding_ciphertext,
                                              context=row.crypto_context())
                row.embedding_ciphertext, row.key_id = sealed.ciphertext, sealed.key_id
            Enrollment.objects.bulk_update(batch, ["embedding_ciphertext", "key_id"])
        enrollments += len(batch)
        if len(batch) < batch_size:
            break
    while True:
        with transaction.atomic():
            batch = list(Speaker.objects.select_for_update().filter(voiceprint_ciphertext__isnull=False)
                         .exclude(voiceprint_key_id=ring.primary_id).order_by("pk")[:batch_size])
            for row in batch:
                sealed = crypto.vector_reseal(key_id=row.voiceprint_key_id, ciphertext=row.voiceprint_ciphertext,
                                              context=row.crypto_context())
                row.voiceprint_ciphertext, row.voiceprint_key_id = sealed.ciphertext, sealed.key_id
            Speaker.objects.bulk_update(batch, ["voiceprint_ciphertext", "voiceprint_key_id"])
        voiceprints += len(batch)
        if len(batch) < batch_size:
            break
    audit_record(actor=actor, action=AuditAction.KEYS_ROTATE,
                 detail={"primary_key_id": ring.primary_id, "enrollments": enrollments,
                         "voiceprints": voiceprints})
    logger.info("re-encrypted %d enrollments and %d voiceprints with key %s",
                enrollments, voiceprints, ring.primary_id)
    return RotationReport(primary_key_id=ring.primary_id, enrollments=enrollments, voiceprints=voiceprints)


# --- accuracy: evaluation and calibration on labelled recordings -------------------------------------

# Below these, a calibration is refused (``force`` overrides): thresholds measured on a handful
# of trials are noise.
MIN_CALIBRATION_TRIALS = 20  # of each kind, target and non-target
MIN_CALIBRATION_UNKNOWN_PROBES = 10


class _QualityRefusal(InferenceError):
    """A service quality-gate refusal in the form the evaluation code records (its code)."""

    def __init__(self, error: ApplicationError) -> None:
        super().__init__(error.message, **error.detail)
        self.code = error.code


def accuracy_embed_fn(*, quality_gates: bool = True) -> Callable[[Path], np.ndarray]:
    """An ``embed_fn(path) -> (192,)`` for :mod:`inference.evaluation`, backed by this service's engine.

    With ``quality_gates``, a file the service would refuse as a probe (clipped, too quiet, too
    noisy, too little speech) is refused here too, under its error code, so the figures describe
    the decisions the service makes. Each file is embedded once, however often it is asked for.
    """
    cache: dict[Path, np.ndarray | InferenceError] = {}

    def embed(path: Path) -> np.ndarray:
        key = Path(path)
        if key not in cache:
            data = key.read_bytes()  # a missing file raises OSError, which the evaluation records
            try:
                result = engine.embed(data)
                if quality_gates:
                    try:
                        recording_check_quality(recording=Recording(filename=key.name, data=data), result=result,
                                                purpose=PROBE)
                    except ApplicationError as error:
                        raise _QualityRefusal(error) from error
                cache[key] = result.vector
            except InferenceError as error:
                cache[key] = error
        value = cache[key]
        if isinstance(value, InferenceError):
            raise value
        return value

    return embed


def identification_probes_pooled(*, utterances: Sequence[tuple[str, str]], audio_root: Path,
                                 embed_fn: Callable[[Path], np.ndarray], threshold: float, margin: float,
                                 enroll_per_speaker: int = 3, unknown_speakers: Sequence[str] | None = None,
                                 asnorm: Any = None,
                                 progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Open-set identification probes, pooled over hold-outs.

    With ``unknown_speakers``, one run holding them out; otherwise three runs, each holding out
    every third speaker in name order (``sorted(speakers)[r::3]``), so every speaker is a stranger
    once. Returns the pooled probes and the first run's report.
    """
    speakers = sorted({speaker for speaker, _ in utterances})
    holdouts = [set(unknown_speakers)] if unknown_speakers else [set(speakers[r::3]) for r in range(3)]
    probes: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    for holdout in holdouts:
        if not set(speakers) - holdout:
            continue
        report = evaluation.evaluate_identification(
            utterances, audio_root, embed_fn, enroll_per_speaker=enroll_per_speaker, unknown_speakers=holdout,
            threshold=threshold, margin=margin, asnorm=asnorm, progress=progress)
        probes += report["probes"]
        first = first or report
    if first is None:
        raise CalibrationRefused("The identification list needs at least two speakers.")
    return probes, first


@dataclass(frozen=True)
class CalibrationProposal:
    """Thresholds measured on a deployment's labelled recordings; stored by :func:`calibration_create`."""

    model_version: str
    method: str
    far_target: float | None
    fir_target: float | None
    verify_threshold: float
    identify_threshold: float | None
    identify_margin: float | None
    asnorm_key: str
    asnorm_verify_threshold: float | None
    asnorm_identify_threshold: float | None
    asnorm_identify_margin: float | None
    eer: float
    asnorm_eer: float | None
    counts: dict[str, Any]
    figures: dict[str, Any]
    warnings: list[str]
    policy_before: DecisionPolicy = field(repr=False)
    reports: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)


def _middle_of_same_decisions(low: float, scores: Sequence[float], kept: Sequence[float]) -> float:
    """Middle of the thresholds that decide like ``low`` or better: above the highest score below
    ``low``, up to the lowest of the ``kept`` scores (those ``low`` accepts and must stay accepted)."""
    below = [x for x in scores if x < low]
    above = [x for x in kept if x >= low]
    if not below or not above:
        return float(low)
    return float(0.5 * (max(below) + min(above)))


def threshold_within_target(scores: Sequence[float], labels: Sequence[int], far: float) -> float:
    """The verification threshold a calibration stores for a target false-accept rate.

    :func:`inference.evaluation.threshold_at_far` gives the lowest threshold whose FAR on the
    trials is at most ``far``: it rejects the fewest targets, but it sits right on the highest
    non-target it lets in, and when targets and non-targets separate it accepts every voice a
    little less alike than the ones tried. Every threshold above the score below it and up to the
    lowest target it accepts decides the trials as well (the same targets, no more non-targets);
    this returns the middle of that range, as an EER threshold sits in the middle of a gap. On
    dense trials the difference is a rounding error; on a small, well-separated set it matters.
    """
    low = evaluation.threshold_at_far(scores, labels, far)
    return _middle_of_same_decisions(low, list(scores), [x for x, y in zip(scores, labels) if y == 1])


def identify_threshold_within_target(probes: Sequence[dict[str, Any]], fir: float, *, margin: float) -> float:
    """The identification threshold a calibration stores for a target false-identification rate.

    As :func:`threshold_within_target`, around :func:`inference.evaluation.threshold_at_fir`:
    the middle of the thresholds with the same correct matches and no more false identifications.
    """
    low = evaluation.threshold_at_fir(probes, fir, margin=margin)
    correct = [p["best_score"] for p in probes
               if p["known"] and p["true_rank"] == 0
               and (p["second_score"] is None or p["best_score"] - p["second_score"] >= margin)]
    return _middle_of_same_decisions(low, [p["best_score"] for p in probes], correct)


def _verification_figures(report: dict[str, Any], key: str, *, new: float, before: float) -> dict[str, Any]:
    metrics = report[key]
    labels, scores = report["scores"]["labels"], report["scores"][key]
    far_new, frr_new = evaluation.rates_at_threshold(scores, labels, new)
    far_before, frr_before = evaluation.rates_at_threshold(scores, labels, before)
    return {
        "eer": metrics["eer"], "eer_threshold": metrics["eer_threshold"], "min_dcf": metrics["min_dcf"],
        "far_target": metrics["far_target"], "threshold_at_far": metrics["threshold_at_far"],
        "threshold": new, "far": far_new, "frr": frr_new,
        "threshold_before": before, "far_before": far_before, "frr_before": frr_before,
    }


def _identification_figures(probes: list[dict[str, Any]], *, new: float, margin: float,
                            before: float, margin_before: float) -> dict[str, Any]:
    return {
        "threshold": new, "margin": margin,
        **evaluation.identification_operating_point(probes, threshold=new, margin=margin),
        "threshold_before": before, "margin_before": margin_before,
        "before": evaluation.identification_operating_point(probes, threshold=before, margin=margin_before),
    }


def calibration_measure(*, trials: Sequence[evaluation.Trial], audio_root: Path,
                        method: str = CalibrationMethod.FAR, far_target: float = 0.01,
                        utterances: Sequence[tuple[str, str]] | None = None, fir_target: float = 0.01,
                        unknown_speakers: Sequence[str] | None = None, enroll_per_speaker: int = 3,
                        asnorm: bool = False, quality_gates: bool = True, force: bool = False,
                        progress: bool = True) -> CalibrationProposal:
    """Measure the deployment's thresholds on its own labelled recordings (stores nothing).

    Verification: at the false-accept rate ``far_target`` (``method="far"``: the lowest
    threshold whose FAR on the trials is at most the target) or at the equal error rate
    (``method="eer"``). Identification, when ``utterances`` (``(speaker, path)``) are given: the
    lowest threshold whose false-identification rate of unknown voices is at most ``fir_target``,
    with the margin in force. With ``asnorm``, the same on the AS-norm scale as well.

    Raises CalibrationRefused when the recordings are too few (unless ``force``).
    """
    if method not in CalibrationMethod.values:
        raise CalibrationRefused(f"Unknown calibration method {method!r}.", method=method)
    model_version = engine.model_version()
    norm = score_normalisation.asnorm() if asnorm else None
    before = decision_policy(model_version=model_version, asnorm_key=norm.key if norm else None)
    embed_fn = accuracy_embed_fn(quality_gates=quality_gates)
    warnings: list[str] = []

    try:
        verification = evaluation.evaluate_verification(trials, audio_root, embed_fn, asnorm=norm,
                                                        far_target=far_target, progress=progress)
    except ValueError as exc:
        raise CalibrationRefused(f"The trials cannot be scored: {exc}") from exc
    counts: dict[str, Any] = {"verification": dict(verification["counts"])}
    n_target, n_nontarget = counts["verification"]["target"], counts["verification"]["nontarget"]
    if not force and min(n_target, n_nontarget) < MIN_CALIBRATION_TRIALS:
        raise CalibrationRefused(
            f"{n_target} target and {n_nontarget} non-target trials were scored; a calibration needs at least "
            f"{MIN_CALIBRATION_TRIALS} of each (more is better: one error in N trials moves a rate by 1/N).",
            **counts["verification"])
    if verification["failed_files"]:
        codes = sorted(set(verification["failed_files"].values()))
        warnings.append(f"{len(verification['failed_files'])} files could not be used ({', '.join(codes)}); "
                        "their trials were skipped.")
    if method == CalibrationMethod.FAR and n_nontarget * far_target < 1:
        warnings.append(f"{n_nontarget} non-target trials cannot resolve a false-accept rate of {far_target:.2%}: "
                        "the threshold is the no-false-accept point of these trials, stricter than asked.")

    def verify_point(key: str) -> float:
        if method == CalibrationMethod.EER:
            return float(verification[key]["eer_threshold"])
        return threshold_within_target(verification["scores"][key], verification["scores"]["labels"], far_target)

    verify_threshold = verify_point("raw")
    asnorm_verify = verify_point("asnorm") if norm else None
    figures: dict[str, Any] = {"verification": {
        "cosine": _verification_figures(verification, "raw", new=verify_threshold, before=before.cosine.verify)}}
    if norm:
        figures["verification"]["asnorm"] = _verification_figures(
            verification, "asnorm", new=asnorm_verify, before=before.asnorm.verify)
    if verify_threshold < before.cosine.verify - 0.10:
        warnings.append(f"The verification threshold falls from {before.cosine.verify:.3f} to {verify_threshold:.3f}: "
                        "check that the non-target trials pair voices as alike as the impostors you expect.")
    reports: dict[str, dict[str, Any]] = {"verification": verification}

    identify_threshold = identify_margin = asnorm_identify = asnorm_margin = None
    if utterances:
        scales = [("cosine", None, before.cosine)] + ([("asnorm", norm, before.asnorm)] if norm else [])
        figures["identification"] = {}
        for name, normaliser, current in scales:
            probes, first = identification_probes_pooled(
                utterances=utterances, audio_root=audio_root, embed_fn=embed_fn, threshold=current.identify,
                margin=current.identify_margin, enroll_per_speaker=enroll_per_speaker,
                unknown_speakers=unknown_speakers, asnorm=normaliser, progress=progress)
            n_unknown = sum(1 for p in probes if not p["known"])
            counts[f"identification_{name}"] = {"known_probes": len(probes) - n_unknown, "unknown_probes": n_unknown,
                                                "speakers": len({s for s, _ in utterances})}
            if not force and n_unknown < MIN_CALIBRATION_UNKNOWN_PROBES:
                raise CalibrationRefused(
                    f"{n_unknown} probes of unknown speakers; an identification calibration needs at least "
                    f"{MIN_CALIBRATION_UNKNOWN_PROBES} (add speakers, or name the unknown ones).",
                    unknown_probes=n_unknown)
            if n_unknown and n_unknown * fir_target < 1 and name == "cosine":
                warnings.append(f"{n_unknown} unknown probes cannot resolve a false-identification rate of "
                                f"{fir_target:.2%}: the threshold is the no-false-identification point, stricter "
                                "than asked.")
            threshold = identify_threshold_within_target(probes, fir_target, margin=current.identify_margin)
            figures["identification"][name] = _identification_figures(
                probes, new=threshold, margin=current.identify_margin, before=current.identify,
                margin_before=current.identify_margin)
            reports[f"identification_{name}"] = first
            if name == "cosine":
                identify_threshold, identify_margin = threshold, current.identify_margin
            else:
                asnorm_identify, asnorm_margin = threshold, current.identify_margin

    return CalibrationProposal(
        model_version=model_version, method=str(method),
        far_target=far_target if method == CalibrationMethod.FAR else None,
        fir_target=fir_target if utterances else None,
        verify_threshold=verify_threshold, identify_threshold=identify_threshold, identify_margin=identify_margin,
        asnorm_key=norm.key if norm else "", asnorm_verify_threshold=asnorm_verify,
        asnorm_identify_threshold=asnorm_identify, asnorm_identify_margin=asnorm_margin,
        eer=float(verification["raw"]["eer"]),
        asnorm_eer=float(verification["asnorm"]["eer"]) if norm else None,
        counts=counts, figures=figures, warnings=warnings, policy_before=before, reports=reports)


def calibration_create(*, proposal: CalibrationProposal, actor: Actor, note: str = "") -> Calibration:
    """Store a measured calibration; from now on it decides for its model version."""
    with transaction.atomic():
        calibration = Calibration.objects.create(
            created_by=actor.label[:150], model_version=proposal.model_version, method=proposal.method,
            far_target=proposal.far_target, fir_target=proposal.fir_target,
            verify_threshold=proposal.verify_threshold, identify_threshold=proposal.identify_threshold,
            identify_margin=proposal.identify_margin, asnorm_key=proposal.asnorm_key,
            asnorm_verify_threshold=proposal.asnorm_verify_threshold,
            asnorm_identify_threshold=proposal.asnorm_identify_threshold,
            asnorm_identify_margin=proposal.asnorm_identify_margin, eer=proposal.eer, asnorm_eer=proposal.asnorm_eer,
            counts=proposal.counts, figures=proposal.figures, note=note)
        audit_record(actor=actor, action=AuditAction.CALIBRATE, threshold=proposal.verify_threshold,
                     detail={"calibration_id": calibration.pk, "model_version": proposal.model_version,
                             "method": proposal.method, "verify_threshold": proposal.verify_threshold,
                             "identify_threshold": proposal.identify_threshold,
                             "asnorm_key": proposal.asnorm_key, "eer": proposal.eer})
    logger.info("calibration %s stored for %s: verify %.3f, identify %s", calibration.pk, proposal.model_version,
                proposal.verify_threshold, proposal.identify_threshold)
    return calibration


def calibration_revert(*, model_version: str, actor: Actor) -> Calibration | None:
    """Withdraw the newest calibration of ``model_version``; the previous one (or the settings) decides again."""
    with transaction.atomic():
        calibration = (Calibration.objects.select_for_update().filter(model_version=model_version)
                       .order_by("-created_at", "-id").first())
        if calibration is None:
            return None
        calibration_id = calibration.pk
        calibration.delete()
        audit_record(actor=actor, action=AuditAction.CALIBRATION_REVERT,
                     detail={"calibration_id": calibration_id, "model_version": model_version})
    calibration.pk = calibration_id
    return calibration
