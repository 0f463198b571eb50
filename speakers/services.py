"""Writes and decisions: every operation of the API, the admin and the commands goes through here.

The flow of an enrollment: bytes -> engine (decode, VAD, features, ECAPA) -> quality gate ->
encrypt -> one transaction (rows + voiceprint + index change log + audit) -> index update
after commit. Bad input never half-writes: every file is embedded before anything is saved.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from inference import EmbeddingResult, InferenceError, average_embeddings, cosine

from . import crypto, engine
from .exceptions import (
    ApplicationError,
    AudioClipped,
    ExternalIdTaken,
    InsufficientSpeech,
    ModelVersionMismatch,
    RecordingsRefused,
    SpeakerNotEnrolled,
    SpeakerNotFound,
)
from .models import (
    ApiKey,
    AuditAction,
    AuditEvent,
    Enrollment,
    IndexChange,
    IndexState,
    Speaker,
)
from .selectors import speaker_get, speaker_voiceprint
from .voiceprint_index import speaker_index

logger = logging.getLogger(__name__)

ENROLL = "enroll"
PROBE = "probe"


# --- inputs and results ---------------------------------------------------------------------

@dataclass(frozen=True)
class Actor:
    """Who is acting, for the audit trail."""

    label: str
    api_key: ApiKey | None = None

    @classmethod
    def from_api_key(cls, api_key: ApiKey) -> Actor:
        return cls(label=f"api:{api_key.name}", api_key=api_key)

    @classmethod
    def from_admin(cls, user: Any) -> Actor:
        return cls(label=f"admin:{user.get_username()}")

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
    processing_time_ms: float


@dataclass(frozen=True)
class VerifyDecision:
    speaker_id: uuid.UUID
    score: float
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


@dataclass(frozen=True)
class IdentifyDecision:
    candidates: list[Candidate]
    match: Candidate | None
    threshold: float
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class CompareDecision:
    similarity: float
    threshold: float
    accepted: bool
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class BatchItem:
    filename: str
    similarity: float | None = None
    accepted: bool | None = None
    refusal: Refusal | None = None


@dataclass(frozen=True)
class BatchDecision:
    results: list[BatchItem]
    threshold: float
    model_version: str
    processing_time_ms: float


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


# --- audit --------------------------------------------------------------------------------------

def audit_record(*, actor: Actor, action: str, speaker_id: uuid.UUID | None = None,
                 decision: str = "", score: float | None = None, threshold: float | None = None,
                 detail: dict[str, Any] | None = None) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor.label[:150], api_key=actor.api_key, action=action, speaker_id=speaker_id,
        decision=decision, score=score, threshold=threshold, detail=detail or {})


# --- quality gate ---------------------------------------------------------------------------------

def recording_check_quality(*, result: EmbeddingResult, purpose: str) -> None:
    """Refuse a recording the engine could embed but that is not good enough for ``purpose``.

    ``purpose`` is ``ENROLL`` (VOICEPRINT_ENROLL_MIN_SPEECH_S) or ``PROBE`` for verify and
    identify (VOICEPRINT_PROBE_MIN_SPEECH_S); both refuse clipping above
    VOICEPRINT_MAX_CLIPPING_RATIO.
    """
    min_speech_s = (settings.VOICEPRINT_ENROLL_MIN_SPEECH_S if purpose == ENROLL
                    else settings.VOICEPRINT_PROBE_MIN_SPEECH_S)
    if result.speech_s < min_speech_s:
        raise InsufficientSpeech(
            f"The recording holds {result.speech_s:.2f} s of speech; at least {min_speech_s:.2f} s "
            f"is needed to {'enroll' if purpose == ENROLL else 'verify or identify'}.",
            speech_s=round(float(result.speech_s), 3), min_speech_s=min_speech_s)
    clipping = float(result.quality.clipping_ratio)
    if clipping > settings.VOICEPRINT_MAX_CLIPPING_RATIO:
        raise AudioClipped(clipping_ratio=round(clipping, 4),
                           max_clipping_ratio=settings.VOICEPRINT_MAX_CLIPPING_RATIO)


def _embed_probe(recording: Recording, *, field_name: str) -> EmbeddingResult:
    """Embed a verify/identify/compare recording and apply the probe quality gate."""
    try:
        result = engine.embed(recording.data)
        recording_check_quality(result=result, purpose=PROBE)
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
    vectors = [
        crypto.vector_decrypt(key_id=e.key_id, ciphertext=e.embedding_ciphertext, context=e.crypto_context())
        for e in Enrollment.objects.filter(speaker=speaker, model_version=model_version)
    ]
    speaker.enrollment_count = Enrollment.objects.filter(speaker=speaker).count()
    if vectors:
        speaker.voiceprint_model_version = model_version
        sealed = crypto.vector_encrypt(average_embeddings(vectors), context=speaker.crypto_context())
        speaker.voiceprint_ciphertext = sealed.ciphertext
        speaker.voiceprint_key_id = sealed.key_id
    else:
        speaker.voiceprint_ciphertext = None
        speaker.voiceprint_key_id = ""
        speaker.voiceprint_model_version = ""
    speaker.save(update_fields=["enrollment_count", "voiceprint_ciphertext", "voiceprint_key_id",
                                "voiceprint_model_version", "updated_at"])


def speaker_enroll(*, speaker: Speaker, recordings: Sequence[Recording], actor: Actor) -> EnrollOutcome:
    """Add one enrollment per accepted recording and update the voiceprint, all in one transaction.

    Refused recordings (unreadable, no speech, too short, clipped...) change nothing and come
    back with their error. If every recording is refused, the error is raised: the one
    recording's own error, or ``RecordingsRefused`` listing each file's.
    """
    started = time.perf_counter()
    results = engine.embed_many([r.data for r in recordings])
    accepted: list[tuple[Recording, EmbeddingResult]] = []
    refused: list[Refusal] = []
    for recording, result in zip(recordings, results):
        try:
            if isinstance(result, InferenceError):
                raise result
            recording_check_quality(result=result, purpose=ENROLL)
        except (InferenceError, ApplicationError) as error:
            refused.append(Refusal.from_error(recording.filename, error))
            if len(recordings) == 1:
                error.detail.setdefault("filename", recording.filename)
                raise
        else:
            accepted.append((recording, result))
    if not accepted:
        raise RecordingsRefused(files=[asdict(r) for r in refused])

    model_version = accepted[0][1].model_version
    with transaction.atomic():
        speaker = _speaker_lock(speaker_id=speaker.pk)
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
        audit_record(actor=actor, action=AuditAction.ENROLL, speaker_id=speaker.id, decision="accepted",
                     detail={"accepted": len(enrollments), "refused": [r.code for r in refused],
                             "model_version": model_version})
        _index_change_record(speaker_id=speaker.id)
    _index_update_after_commit()
    return EnrollOutcome(speaker=speaker, accepted=enrollments, refused=refused,
                         processing_time_ms=_elapsed_ms(started))


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

def speaker_verify(*, speaker_id: uuid.UUID | str, recording: Recording, actor: Actor) -> VerifyDecision:
    """1:1: is this recording the speaker's voice? Scores the probe against the stored voiceprint."""
    started = time.perf_counter()
    speaker = speaker_get(speaker_id=speaker_id)
    if not speaker.has_voiceprint:
        raise SpeakerNotEnrolled(speaker_id=str(speaker.id))
    current_version = engine.model_version()
    if speaker.voiceprint_model_version != current_version:
        raise ModelVersionMismatch(speaker_id=str(speaker.id),
                                   voiceprint_model_version=speaker.voiceprint_model_version,
                                   model_version=current_version)
    probe = _embed_probe(recording, field_name="audio")
    score = cosine(speaker_voiceprint(speaker=speaker), probe.vector)
    threshold = settings.VOICEPRINT_VERIFY_THRESHOLD
    accepted = score >= threshold
    with transaction.atomic():
        Speaker.objects.filter(pk=speaker.pk).update(last_verified_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.VERIFY, speaker_id=speaker.id,
                     decision="accepted" if accepted else "rejected", score=score, threshold=threshold)
    return VerifyDecision(speaker_id=speaker.id, score=score, threshold=threshold, accepted=accepted,
                          model_version=probe.model_version, processing_time_ms=_elapsed_ms(started))


def speaker_identify(*, recording: Recording, top_k: int, actor: Actor) -> IdentifyDecision:
    """1:N, open set: the best candidates, and a match only if the best passes the threshold."""
    started = time.perf_counter()
    probe = _embed_probe(recording, field_name="audio")
    hits = speaker_index().search(probe.vector, top_k, model_version=probe.model_version)
    rows = {s.id: s for s in Speaker.objects.filter(id__in=[speaker_id for speaker_id, _ in hits])
            .only("id", "external_id", "display_name")}
    candidates = [
        Candidate(speaker_id=speaker_id, external_id=rows[speaker_id].external_id,
                  display_name=rows[speaker_id].display_name, score=score)
        for speaker_id, score in hits if speaker_id in rows  # a speaker deleted meanwhile drops out
    ]
    threshold = settings.VOICEPRINT_IDENTIFY_THRESHOLD
    match = candidates[0] if candidates and candidates[0].score >= threshold else None
    with transaction.atomic():
        if match is not None:
            Speaker.objects.filter(pk=match.speaker_id).update(last_identified_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.IDENTIFY,
                     speaker_id=match.speaker_id if match else None,
                     decision="match" if match else "no_match",
                     score=candidates[0].score if candidates else None, threshold=threshold,
                     detail={"top_k": top_k, "candidates": len(candidates)})
    return IdentifyDecision(candidates=candidates, match=match, threshold=threshold,
                            model_version=probe.model_version, processing_time_ms=_elapsed_ms(started))


def recordings_compare(*, reference: Recording, test: Recording, actor: Actor) -> CompareDecision:
    """Score two recordings against each other; nothing about them is stored."""
    started = time.perf_counter()
    ref = _embed_probe(reference, field_name="reference")
    probe = _embed_probe(test, field_name="test")
    similarity = cosine(ref.vector, probe.vector)
    threshold = settings.VOICEPRINT_VERIFY_THRESHOLD
    accepted = similarity >= threshold
    audit_record(actor=actor, action=AuditAction.COMPARE, decision="accepted" if accepted else "rejected",
                 score=similarity, threshold=threshold)
    return CompareDecision(similarity=similarity, threshold=threshold, accepted=accepted,
                           model_version=probe.model_version, processing_time_ms=_elapsed_ms(started))


def recordings_batch_verify(*, reference: Recording, tests: Sequence[Recording], actor: Actor) -> BatchDecision:
    """Score many recordings against one reference, embedded once; one result per test file."""
    started = time.perf_counter()
    ref = _embed_probe(reference, field_name="reference")
    threshold = settings.VOICEPRINT_VERIFY_THRESHOLD
    items: list[BatchItem] = []
    for recording, result in zip(tests, engine.embed_many([t.data for t in tests])):
        try:
            if isinstance(result, InferenceError):
                raise result
            recording_check_quality(result=result, purpose=PROBE)
        except (InferenceError, ApplicationError) as error:
            items.append(BatchItem(filename=recording.filename,
                                   refusal=Refusal.from_error(recording.filename, error)))
            continue
        similarity = cosine(ref.vector, result.vector)
        items.append(BatchItem(filename=recording.filename, similarity=similarity,
                               accepted=similarity >= threshold))
    audit_record(actor=actor, action=AuditAction.BATCH_VERIFY, threshold=threshold,
                 detail={"tests": len(items), "accepted": sum(bool(i.accepted) for i in items),
                         "refused": sum(i.refusal is not None for i in items)})
    return BatchDecision(results=items, threshold=threshold, model_version=ref.model_version,
                         processing_time_ms=_elapsed_ms(started))


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
