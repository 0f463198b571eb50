"""Enrollments: recordings in, one encrypted embedding each, and the speaker's voiceprint (their average).

The flow (measure, refuse, then spend): bytes -> the engine measures (decode, VAD, quality
figures) -> quality gate -> the engine embeds (features, ECAPA) -> encrypt -> one transaction
(consistency check + rows + voiceprint + index change log + audit) -> index update after commit.
Bad input never half-writes: every file is checked and embedded before anything is saved.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference import EmbeddingResult, InferenceError, average_embeddings, cosine

from .. import crypto
from ..audit import Actor, audit_record
from ..exceptions import (
    ApplicationError,
    EnrollmentInconsistent,
    RecordingsRefused,
    ReplayDetected,
    SpeakerNotFound,
    VoiceprintUnreadable,
)
from ..integrity import enrollment_unreadable_record, voiceprint_of
from ..models import AuditAction, Enrollment, Speaker, Tenant
from ..search.index import index_change_record, index_update_after_commit
from ..selectors import EnrollmentProgress, enrollment_progress
from ..tenancy import tenant_data_key
from .consent import consent_required_check
from .population import population_refresh_if_stale
from .recordings import Purpose, Recording, Refusal, recordings_embed_prepared
from .replay import HeardRecording, enrollment_prints_store, recording_heard, replay_check
from .timing import elapsed_ms
from .watchlist import WatchlistHit, watchlist_hit_record, watchlist_screen

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnrollOutcome:
    speaker: Speaker
    accepted: list[Enrollment]
    refused: list[Refusal]
    enrollment_progress: EnrollmentProgress
    processing_time_ms: float
    watchlist_match: WatchlistHit | None = None


def _speaker_lock(*, speaker_id: uuid.UUID) -> Speaker:
    """Lock the speaker's row for this transaction (it may have been deleted meanwhile)."""
    speaker = Speaker.objects.select_for_update().filter(pk=speaker_id).first()
    if speaker is None:
        raise SpeakerNotFound(speaker_id=str(speaker_id))
    return speaker


def _voiceprint_rebuild(*, speaker: Speaker, model_version: str) -> None:
    """Recompute the speaker's voiceprint from their enrollments of ``model_version`` (in a transaction)."""
    vectors, speech_s, snrs, bandwidths = [], 0.0, [], []
    for e in Enrollment.objects.filter(speaker=speaker, model_version=model_version):
        try:
            vectors.append(crypto.vector_decrypt(key_id=e.key_id, ciphertext=e.embedding_ciphertext,
                                                 context=e.crypto_context()))
        except crypto.CiphertextCorrupt as exc:  # a damaged row counts for nothing, and says so
            enrollment_unreadable_record(speaker_id=speaker.pk, enrollment_id=e.pk, reason=str(exc))
            continue
        speech_s += e.speech_s
        snrs.append(e.snr_db)
        bandwidths.append(e.bandwidth_hz)
    speaker.enrollment_count = Enrollment.objects.filter(speaker=speaker).count()
    if vectors:
        speaker.voiceprint_model_version = model_version
        sealed = crypto.vector_encrypt(average_embeddings(vectors), context=speaker.crypto_context(),
                                       key=tenant_data_key(speaker.tenant_id))
        speaker.voiceprint_ciphertext = sealed.ciphertext
        speaker.voiceprint_key_id = sealed.key_id
        speaker.voiceprint_speech_s = speech_s
        speaker.voiceprint_snr_db = float(np.mean(snrs))
        speaker.voiceprint_bandwidth_hz = float(np.mean(bandwidths))
    else:
        speaker.voiceprint_ciphertext = None
        speaker.voiceprint_key_id = ""
        speaker.voiceprint_model_version = ""
        speaker.voiceprint_speech_s = 0.0
    speaker.voiceprint_unreadable = False
    speaker.save(update_fields=["enrollment_count", "voiceprint_ciphertext", "voiceprint_key_id",
                                "voiceprint_model_version", "voiceprint_speech_s", "voiceprint_snr_db",
                                "voiceprint_bandwidth_hz", "voiceprint_unreadable", "updated_at"])


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
            voiceprint = voiceprint_of(speaker)
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
    consent_required_check(speaker=speaker)  # before any work: without consent nothing is measured
    embedded = recordings_embed_prepared(recordings=list(recordings), purpose=Purpose.ENROLLMENT)
    heard: dict[int, HeardRecording | None] = {}
    candidates: list[tuple[int, Recording, EmbeddingResult]] = []
    refused: list[tuple[int, Refusal]] = []
    for position, (recording, (prepared, result)) in enumerate(zip(recordings, embedded)):
        if prepared is not None and not isinstance(result, (InferenceError, ApplicationError)):
            heard[position] = recording_heard(prepared)
            try:  # the same recording enrolled twice in one voiceprint adds nothing
                replay_check(heard=heard[position], speakers=[speaker], actor=actor, during="enroll",
                             enrolled_in=result.model_version)
            except ReplayDetected as error:
                result = error
        if isinstance(result, (InferenceError, ApplicationError)):
            if len(recordings) == 1:
                result.detail.setdefault("filename", recording.filename)
                raise result
            refused.append((position, Refusal.from_error(recording.filename, result)))
        else:
            candidates.append((position, recording, result))
    if not candidates:
        raise RecordingsRefused(files=[asdict(r) for _, r in refused])
    hit = _watchlist_best([result for _, _, result in candidates], speaker.tenant)
    watchlist_hit_record(hit=hit, actor=actor, during="enroll", speaker_id=speaker.pk, tenant=speaker.tenant)  # refuses if so configured

    model_version = candidates[0][2].model_version
    data_key = tenant_data_key(speaker.tenant_id)  # before the transaction: its first use writes the tenant row
    with transaction.atomic():
        speaker = _speaker_lock(speaker_id=speaker.pk)
        # Under the row lock: a concurrent enrollment cannot change the voiceprint meanwhile.
        inconsistent = _enrollment_inconsistencies(speaker=speaker, model_version=model_version,
                                                   vectors=[result.vector for _, _, result in candidates])
        accepted: list[tuple[Recording, EmbeddingResult]] = []
        accepted_positions: list[int] = []
        for k, (position, recording, result) in enumerate(candidates):
            error = inconsistent.get(k)
            if error is None:
                accepted.append((recording, result))
                accepted_positions.append(position)
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
                speech_ratio=float(result.quality.speech_ratio), bandwidth_hz=float(result.quality.bandwidth_hz))
            sealed = crypto.vector_encrypt(result.vector, context=enrollment.crypto_context(), key=data_key)
            enrollment.embedding_ciphertext, enrollment.key_id = sealed.ciphertext, sealed.key_id
            enrollments.append(enrollment)
        Enrollment.objects.bulk_create(enrollments)
        enrollment_prints_store(pairs=[(enrollment, heard.get(position))
                                       for enrollment, position in zip(enrollments, accepted_positions)])
        speaker.last_used_at = timezone.now()
        speaker.save(update_fields=["last_used_at"])
        _voiceprint_rebuild(speaker=speaker, model_version=model_version)
        progress = enrollment_progress(speaker=speaker)
        audit_record(actor=actor, action=AuditAction.ENROLL, speaker_id=speaker.id, decision="accepted",
                     detail={"accepted": len(enrollments), "refused": [r.code for _, r in refused],
                             "model_version": model_version, "speech_s": progress.speech_s,
                             "complete": progress.complete})
        index_change_record(speaker_id=speaker.id)
    index_update_after_commit()
    population_refresh_if_stale(tenant=speaker.tenant_id, model_version=model_version)
    return EnrollOutcome(speaker=speaker, accepted=enrollments, refused=[r for _, r in refused],
                         enrollment_progress=progress, processing_time_ms=elapsed_ms(started), watchlist_match=hit)


def _watchlist_best(results: Sequence[EmbeddingResult], tenant: Tenant) -> WatchlistHit | None:
    """The strongest watchlist hit among the recordings of an upload (each is screened on its own)."""
    hits = [hit for hit in (watchlist_screen(result=result, tenant=tenant) for result in results) if hit is not None]
    return max(hits, key=lambda hit: hit.score - hit.threshold, default=None)


def enrollment_delete(*, enrollment: Enrollment, actor: Actor) -> Speaker:
    """Delete one enrollment and recompute (or clear) the speaker's voiceprint."""
    with transaction.atomic():
        speaker = _speaker_lock(speaker_id=enrollment.speaker_id)
        model_version = speaker.voiceprint_model_version or enrollment.model_version
        Enrollment.objects.filter(pk=enrollment.pk).delete()
        _voiceprint_rebuild(speaker=speaker, model_version=model_version)
        audit_record(actor=actor, action=AuditAction.ENROLLMENT_DELETE, speaker_id=speaker.id,
                     detail={"enrollment_id": str(enrollment.pk)})
        index_change_record(speaker_id=speaker.id)
    index_update_after_commit()
    population_refresh_if_stale(tenant=speaker.tenant_id, model_version=model_version)
    return speaker
