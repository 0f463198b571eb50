"""Who spoke when: one long recording cut into speaker turns, each speaker named among the tenant's enrolled.

Decode (the diarization limits) -> the engine's diarization (:mod:`inference.diarization`; its forward
passes queued on the inference owner) -> each cluster's voiceprint identified against the caller's
tenant by identify's own search and rule (:func:`~.decisions.probe_identify`: the llr threshold for the
false-identification target among every voice searched, and the calibrated lead over the runner-up),
with the speakers the caller is locked out of left out (:func:`~.lockout.locked_speaker_ids`), exactly
as :func:`speaker_identify` and live identification decide a probe -> one-to-one naming
(:func:`inference.diarization.name_verdicts`: an enrolled voice is never named twice; the others are
``unknown-1``, ``unknown-2``... in the order they first speak) -> audit.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace

from django.db import transaction
from django.utils import timezone

from inference import InferenceError
from inference.diarization import ClusterName, ClusterVerdict, Diarization, name_verdicts
from inference.quality_calibration import SideQuality

from ..audit import Actor, audit_record
from ..exceptions import ApplicationError
from ..models import AuditAction, Speaker
from ..runtime import inference_owner
from .audio_budget import audio_budget_charge, audio_budget_check
from .decisions import IdentifyProbe, _scale_for, probe_identify
from .lockout import locked_speaker_ids
from .recordings import Recording
from .timing import elapsed_ms

# Each cluster's candidates (at least the runner-up is always searched), as identify's default top_k.
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
    """Each cluster identified as a probe is, then named one-to-one.

    Per cluster: :func:`probe_identify` on its voiceprint (the speech that went into it, and the
    recording's SNR and bandwidth, as the probe's quality), leaving out the speakers the caller is
    locked out of; its verdict on its best candidate is what :func:`name_verdicts` reads.
    """
    tenant = actor.tenant
    locked = locked_speaker_ids(actor=actor)
    verdicts: list[ClusterVerdict] = []
    people: dict[str, Speaker] = {}
    margin, scale_name, gallery = None, None, 0
    for cluster in found.clusters:
        probe = IdentifyProbe(vector=cluster.voiceprint, model_version=model_version,
                              quality=SideQuality(speech_s=cluster.voiceprint_speech_s, snr_db=found.snr_db,
                                                  bandwidth_hz=found.bandwidth_hz))
        candidates, verdict, scale, gallery = probe_identify(probe=probe, tenant=tenant, top_k=SEARCH_K,
                                                             asnorm=asnorm, locked=locked)
        margin, scale_name = verdict.margin, scale.name
        best = verdict.best
        person = candidates.speakers[best] if best is not None else None
        if person is not None:
            people[str(person.id)] = person
        verdicts.append(ClusterVerdict(
            best=str(person.id) if person is not None else None,
            llr=float(verdict.llrs[best]) if best is not None else None,
            threshold=verdict.threshold if best is not None else None,
            runner_up_llr=verdict.runner_up, reason=verdict.no_match_reason))
    if scale_name is None:  # no cluster: the scale the request would have decided on
        scale_name = _scale_for(asnorm=asnorm, model_version=model_version, tenant=tenant).name
    names = name_verdicts(verdicts, first_speech_s=[c.first_s for c in found.clusters])
    refs: list[SpeakerRef | None] = []
    labelled = []
    for name in names:
        person = people[name.enrolled] if name.enrolled is not None else None
        refs.append(None if person is None else SpeakerRef(id=person.id, external_id=person.external_id,
                                                           display_name=person.display_name))
        if person is not None:  # the label names the enrolled speaker by the caller's own id when there is one
            name = replace(name, label=person.external_id or str(person.id))
        labelled.append(name)
    return labelled, refs, margin, scale_name, gallery
