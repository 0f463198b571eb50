"""Who spoke when: one long recording cut into speaker turns, each speaker named among the tenant's enrolled.

Decode (the diarization limits) -> the engine's diarization (:mod:`inference.diarization`; its forward
passes queued on the inference owner) -> each cluster's voiceprint identified against the caller's
tenant with the identify rule (:meth:`Calibration.identify`: the llr threshold for the
false-identification target among every voice searched, and the calibrated lead over the runner-up),
exactly as :func:`speaker_identify` decides a probe -> one-to-one naming
(:func:`inference.diarization.name_clusters`: an enrolled voice is never named twice; the others are
``unknown-1``, ``unknown-2``... in the order they first speak) -> audit.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace

import numpy as np
from django.db import transaction
from django.utils import timezone

from inference import InferenceError
from inference.diarization import ClusterName, Diarization, name_clusters
from inference.quality_calibration import SideQuality

from ..audit import Actor, audit_record
from ..exceptions import ApplicationError
from ..models import AuditAction, Speaker
from ..runtime import inference_owner
from ..search.index import voiceprint_index
from .audio_budget import audio_budget_charge, audio_budget_check
from .decisions import ASNORM_SHORTLIST, _candidates, _scale_for
from .recordings import Recording
from .timing import elapsed_ms

# Each cluster's search looks at this many nearest voiceprints (at least the runner-up), as identify's default top_k.
SEARCH_K = 5


@dataclass(frozen=True)
class SpeakerRef:
    id: uuid.UUID
    external_id: str | None
    display_name: str


@dataclass(frozen=True)
class DiarizedSpeaker:
    """One voice of the recording: who it is (or ``unknown-k``), how much it spoke and how it was decided.

    ``score`` is the llr of its best enrolled candidate, ``threshold`` the one that candidate needed,
    ``no_match_reason`` why it was not named (the identify rule's reasons, or ``taken``: its best
    candidate was named after another voice that scored higher).
    """

    label: str
    speaker: SpeakerRef | None
    speaking_s: float
    turns: int
    score: float | None
    threshold: float | None
    runner_up_score: float | None
    no_match_reason: str | None


@dataclass(frozen=True)
class DiarizedSegment:
    start_s: float
    end_s: float
    label: str
    speaker: SpeakerRef | None
    score: float | None


@dataclass(frozen=True)
class DiarizationDecision:
    segments: list[DiarizedSegment]
    speakers: list[DiarizedSpeaker]
    duration_s: float
    speech_s: float
    gallery: int
    margin: float | None
    score_normalisation: str
    model_version: str
    processing_time_ms: float


def recording_diarize(*, recording: Recording, actor: Actor, num_speakers: int | None = None,
                      max_speakers: int | None = None, asnorm: bool | None = None) -> DiarizationDecision:
    """Who spoke when in ``recording``, each voice named after one of the caller's tenant's enrolled speakers or not.

    Refuses (before the network) what cannot be decoded under the diarization limits, and a
    recording without a stretch of speech long enough to tell speakers apart (``no_speech``).
    """
    started = time.perf_counter()
    try:
        audio_budget_check()  # a conversation pays its seconds of audio like every route
        decoded = inference_owner.decode_long(recording.data)
        audio_budget_charge(seconds=decoded.samples.size / decoded.sample_rate)
        found = inference_owner.diarize(decoded.samples, decoded.sample_rate, num_speakers=num_speakers,
                                        max_speakers=max_speakers)
    except (InferenceError, ApplicationError) as exc:
        recording.annotate(exc)
        raise
    model_version = inference_owner.model_version()
    names, refs, margin, scale_name, gallery = _name(found, actor, model_version, asnorm)

    speakers = [DiarizedSpeaker(label=names[c.cluster].label, speaker=refs[c.cluster], speaking_s=c.speech_s,
                                turns=c.turns, score=names[c.cluster].llr, threshold=names[c.cluster].threshold,
                                runner_up_score=names[c.cluster].runner_up_llr,
                                no_match_reason=names[c.cluster].reason) for c in found.clusters]
    segments = [DiarizedSegment(start_s=start, end_s=end, label=names[cluster].label, speaker=refs[cluster],
                                score=names[cluster].llr) for start, end, cluster in found.segments]
    named = [ref.id for ref in refs if ref is not None]
    with transaction.atomic():
        if named:
            now = timezone.now()
            Speaker.objects.for_tenant(actor.tenant).filter(pk__in=named).update(last_identified_at=now,
                                                                                  last_used_at=now)
        audit_record(actor=actor, action=AuditAction.DIARIZE,
                     decision="match" if named else "no_match",
                     detail={"duration_s": found.duration_s, "speakers": len(speakers),
                             "named": [str(i) for i in named], "gallery": gallery,
                             "score_normalisation": scale_name})
    return DiarizationDecision(segments=segments, speakers=speakers, duration_s=found.duration_s,
                               speech_s=found.speech_s, gallery=gallery, margin=margin,
                               score_normalisation=scale_name, model_version=model_version,
                               processing_time_ms=elapsed_ms(started))


def _name(found: Diarization, actor: Actor, model_version: str,
          asnorm: bool | None) -> tuple[list[ClusterName], list[SpeakerRef | None], float | None, str, int]:
    """Each cluster through identify's search and rule, then named one-to-one.

    Per cluster: the tenant's nearest voiceprints (:func:`speaker_identify`'s search and rows), and
    :meth:`Calibration.identify` on them. The clusters' candidates together are the columns of the
    ``(clusters, enrolled)`` llr matrix :func:`name_clusters` reads; a candidate one cluster's search
    did not reach lies below every score of that cluster (so it is never its best or runner-up, as in
    identify), and a row's threshold is the one the rule gave its best candidate (the only one read).
    """
    tenant = actor.tenant
    scale = _scale_for(asnorm=asnorm, model_version=model_version, tenant=tenant)
    index = voiceprint_index()
    k = max(SEARCH_K, 2, ASNORM_SHORTLIST if scale.normalised else 0)
    hits = [index.search(c.voiceprint, k, model_version=model_version, tenant=tenant.pk) for c in found.clusters]
    gallery = index.size(tenant.pk)  # after a search: the search brings the index up to date
    rows: list[dict[uuid.UUID, float]] = []
    thresholds: list[float] = []
    people: dict[uuid.UUID, Speaker] = {}
    margin = None
    for cluster, cluster_hits in zip(found.clusters, hits):
        candidates = _candidates(cluster_hits, _Probe(cluster.voiceprint, model_version), scale, index, tenant)
        verdict = scale.policy.calibration.identify(
            scale=scale.calibration_scale, scores=candidates.scores, enroll=candidates.qualities,
            probe=SideQuality(speech_s=cluster.voiceprint_speech_s, snr_db=found.snr_db,
                              bandwidth_hz=found.bandwidth_hz),
            fir=scale.policy.fir_target, gallery=gallery)
        margin = verdict.margin
        rows.append({s.id: float(llr) for s, llr in zip(candidates.speakers, verdict.llrs)})
        thresholds.append(verdict.threshold)
        people.update({s.id: s for s in candidates.speakers})
    enrolled = list(people)
    llr = np.zeros((len(rows), len(enrolled)))
    if enrolled and rows:
        floor = min(min(row.values(), default=0.0) for row in rows) - 1000.0
        llr = np.asarray([[row.get(e, floor) for e in enrolled] for row in rows], dtype=np.float64)
    threshold = np.asarray([[t if np.isfinite(t) else 0.0] * len(enrolled) for t in thresholds],
                           dtype=np.float64).reshape(llr.shape)
    names = name_clusters(llr, threshold, [str(e) for e in enrolled], margin=margin or 0.0,
                          first_speech_s=[c.first_s for c in found.clusters])
    refs: list[SpeakerRef | None] = []
    labelled = []
    for name in names:
        person = people[uuid.UUID(name.enrolled)] if name.enrolled is not None else None
        refs.append(None if person is None else SpeakerRef(id=person.id, external_id=person.external_id,
                                                           display_name=person.display_name))
        if person is not None:  # the label names the enrolled speaker by the caller's own id when there is one
            name = replace(name, label=person.external_id or str(person.id))
        labelled.append(name)
    return labelled, refs, margin, scale.name, gallery


@dataclass(frozen=True)
class _Probe:
    """What :func:`_candidates` reads of a probe (its vector, for AS-norm)."""

    vector: np.ndarray
    model_version: str
