"""Decisions: verify (1:1), identify (1:N, open set), compare and batch-verify.

Each decides with the calibration in force (the newest site calibration for the model version,
else the one shipped; see selectors.decision_policy), on the cosine or, when asked, its AS-norm;
every decision returns the calibrated score (an llr), the raw cosine and the threshold for that
pair. The rules themselves are :meth:`Calibration.verify` and :meth:`Calibration.identify`
(:mod:`inference.quality_calibration`), the ones evaluation and calibration measure; a service
here only gathers their inputs (embedding, search, rows) and records the outcome.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference import EmbeddingResult, InferenceError, cosine, quality_calibration
from inference.asnorm import as_norm_scores
from inference.quality_calibration import SideQuality

from ..audit import Actor, audit_record
from ..exceptions import (
    ApplicationError,
    EnrollmentIncomplete,
    ModelVersionMismatch,
    SpeakerNotEnrolled,
    VoiceprintUnreadable,
)
from ..integrity import voiceprint_of
from ..models import AuditAction, Speaker, Tenant
from ..runtime import asnorm as service_asnorm
from ..runtime import inference_owner
from ..search.index import VoiceprintIndex, part_index, voiceprint_index
from ..selectors import DecisionPolicy, decision_policy, enrollment_progress
from .lockout import locked_speaker_ids, verification_lock_check, verification_outcome_record
from .recordings import (
    Purpose,
    Recording,
    Refusal,
    recording_embed,
    recording_embed_prepared,
    recording_prepare,
    recordings_embed,
    side_quality,
)
from .replay import probe_print_remember, recording_heard, replay_check
from .timing import elapsed_ms
from .watchlist import WatchlistHit, watchlist_hit_record, watchlist_screen

# The API's ``score_normalisation``: what was applied to the cosine before the calibration read it.
# "none" means the calibration's cosine scale, "asnorm" its AS-norm scale (the names clients know).
NO_NORMALISATION = "none"
ASNORM = "asnorm"
# With AS-norm, identify re-ranks this many cosine nearest voiceprints (the normalisation can
# reorder candidates, never bring in one far down the cosine ranking).
ASNORM_SHORTLIST = 50
# identify checks a probe against the stored recordings of this many best candidates (docs/replay.md)
REPLAY_CANDIDATES = 3
# identify searches this many more voiceprints at most to make up for speakers the caller is locked out of
LOCKED_EXTRA = 100


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
    watchlist_match: WatchlistHit | None = None


@dataclass(frozen=True)
class Candidate:
    speaker_id: uuid.UUID
    external_id: str | None
    display_name: str
    score: float
    raw_score: float
    model_version: str  # the model that scored it (ECAPA's, for a voiceprint of ECAPA alone under the fused engine)


@dataclass(frozen=True)
class IdentifyDecision:
    candidates: list[Candidate]
    match: Candidate | None
    threshold: float | None
    margin: float
    runner_up_score: float | None
    no_match_reason: str | None
    score_normalisation: str
    model_version: str
    processing_time_ms: float
    # how the match was reached (threshold, or lead: short of the threshold, far ahead of every other voice), the
    # best's lead over the runner-up and the lead the rule asks for in this condition (t, standard deviations of
    # the impostors' scores; None: no lead rule here)
    matched_by: str | None = None
    lead: float | None = None
    lead_required: float | None = None


@dataclass(frozen=True)
class CompareDecision:
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
    raw_score: float | None = None
    score: float | None = None
    threshold: float | None = None
    accepted: bool | None = None
    refusal: Refusal | None = None


@dataclass(frozen=True)
class BatchDecision:
    results: list[BatchItem]
    score_normalisation: str
    model_version: str
    processing_time_ms: float


@dataclass(frozen=True)
class Reference:
    """The known side of a 1:1 decision: a speaker's voiceprint, or a reference recording's embedding."""

    vector: np.ndarray
    quality: SideQuality
    # A voiceprint's model version; None for a recording (embedded by the engine, as the probe).
    model_version: str | None = None

    @property
    def speech_s(self) -> float:
        return self.quality.speech_s


@dataclass(frozen=True)
class PairDecision:
    """One 1:1 decision: the calibrated score (a log-likelihood ratio), the raw cosine, the threshold for
    this pair's quality and where the calibration came from."""

    score: float
    raw_score: float
    threshold: float
    accepted: bool
    score_normalisation: str
    policy_source: str
    model_version: str  # the model that decided (ECAPA's, for a partial voiceprint under the fused engine)


def voiceprint_quality(speaker: Speaker) -> SideQuality:
    """The quality measures of a voiceprint: its net speech, and its enrollments' mean SNR and bandwidth."""
    return SideQuality(speech_s=float(speaker.voiceprint_speech_s), snr_db=float(speaker.voiceprint_snr_db),
                       bandwidth_hz=float(speaker.voiceprint_bandwidth_hz))


# --- the scale a request decides on ------------------------------------------------------------

@dataclass(frozen=True)
class _Scale:
    """How one request scores: the cosine, or its AS-norm, as the calibration's input; and the policy."""

    normalised: bool
    policy: DecisionPolicy

    @property
    def name(self) -> str:
        """The API's ``score_normalisation``."""
        return ASNORM if self.normalised else NO_NORMALISATION

    @property
    def calibration_scale(self) -> str:
        return quality_calibration.ASNORM if self.normalised else quality_calibration.COSINE

    def input_score(self, raw: float, enroll_vector: np.ndarray, probe_vector: np.ndarray,
                    enroll_stats: tuple[float, float] | None = None) -> float:
        """What the calibration reads: the raw cosine, or its AS-norm (``enroll_stats`` when already known)."""
        if not self.normalised:
            return float(raw)
        stats = enroll_stats if enroll_stats is not None else service_asnorm.vector_stats(enroll_vector)
        return float(service_asnorm.asnorm().normalise(
            raw, enroll_stats=stats, test_stats=service_asnorm.vector_stats(probe_vector)))


def _scale_for(*, asnorm: bool | None, model_version: str, tenant: Tenant | None) -> _Scale:
    """``asnorm``: the request's choice, or None for the deployment's default (VOICEPRINT_ASNORM)."""
    normalised = settings.VOICEPRINT_ASNORM if asnorm is None else bool(asnorm)
    return _Scale(normalised=normalised, policy=decision_policy(model_version=model_version, tenant=tenant))


def pair_decide(*, reference: Reference, probe: EmbeddingResult, tenant: Tenant | None, asnorm: bool | None = None,
                reference_stats: tuple[float, float] | None = None) -> PairDecision:
    """Is ``probe`` the voice of ``reference``? The one 1:1 rule: verify, compare, batch-verify and streaming.

    The raw cosine (or its AS-norm) and the quality of both sides go through the calibration in
    force: the decision holds the deployment's false-accept target whatever the recordings.
    ``asnorm``: the request's choice of scale (None: the deployment's default);
    ``reference_stats``: the reference's AS-norm statistics when already known; ``tenant``: whose
    calibration decides (a site calibration of the tenant, else the shipped one).
    """
    if reference.model_version is not None and reference.model_version != probe.model_version:
        # a voiceprint of one network of the fused engine (ECAPA's, enrolled before fusion): that network decides
        seen = inference_owner.probe_as(probe, reference.model_version)
        if seen is None:
            raise ModelVersionMismatch(voiceprint_model_version=reference.model_version,
                                       model_version=probe.model_version)
        probe = seen
    scale = _scale_for(asnorm=asnorm, model_version=probe.model_version, tenant=tenant)
    raw = cosine(reference.vector, probe.vector)
    verdict = scale.policy.calibration.verify(
        scale=scale.calibration_scale, score=scale.input_score(raw, reference.vector, probe.vector, reference_stats),
        enroll=reference.quality, probe=side_quality(probe), far=scale.policy.far_target)
    return PairDecision(score=verdict.llr, raw_score=raw, threshold=verdict.threshold,
                        accepted=verdict.accepted, score_normalisation=scale.name,
                        policy_source=scale.policy.source, model_version=probe.model_version)


def speaker_reference(speaker: Speaker) -> Reference:
    """A speaker's usable voiceprint as the reference of a decision (409 when it cannot decide)."""
    _require_usable_voiceprint(speaker)
    return Reference(vector=voiceprint_of(speaker), quality=voiceprint_quality(speaker),
                     model_version=speaker.voiceprint_model_version)


def recording_reference(result: EmbeddingResult) -> Reference:
    """A reference recording's embedding as the reference of a decision."""
    return Reference(vector=result.vector, quality=side_quality(result))


def _require_usable_voiceprint(speaker: Speaker) -> None:
    """Refuse to compare with a missing, damaged, foreign-model or incomplete voiceprint (each its own 409); the
    status of the same conditions is :func:`speakers.selectors.voiceprint_status`."""
    if not speaker.has_voiceprint:
        raise SpeakerNotEnrolled(speaker_id=str(speaker.id))
    if speaker.voiceprint_unreadable:
        raise VoiceprintUnreadable(speaker_id=str(speaker.id))
    current_version = inference_owner.model_version()
    progress = enrollment_progress(speaker=speaker)
    # A complete voiceprint of one network of the fused engine (ECAPA's, enrolled before fusion) is decided by it.
    partial = progress.complete and speaker.voiceprint_model_version in inference_owner.part_model_versions()
    if speaker.voiceprint_model_version != current_version and not partial:
        raise ModelVersionMismatch(speaker_id=str(speaker.id),
                                   voiceprint_model_version=speaker.voiceprint_model_version,
                                   model_version=current_version)
    if not progress.complete:
        raise EnrollmentIncomplete(
            f"The speaker's voiceprint holds {progress.text} of speech; enroll more recordings before "
            "verifying against it.",
            speaker_id=str(speaker.id), enrollment_progress={**asdict(progress), "text": progress.text})


# --- decisions ----------------------------------------------------------------------------------

def speaker_verify(*, speaker: Speaker, recording: Recording, actor: Actor,
                   asnorm: bool | None = None) -> VerifyDecision:
    """1:1: is this recording the speaker's voice? Scores the probe against the stored voiceprint.

    Only a complete voiceprint of the loaded model version is compared (409 otherwise); the
    caller's verifications of the speaker pause after its repeated rejections (429 verification_locked;
    :mod:`.lockout`: per API key and per client address, never for another caller).
    """
    started = time.perf_counter()
    verification_lock_check(speaker_id=speaker.id, actor=actor)
    _require_usable_voiceprint(speaker)
    prepared = recording_prepare(recording=recording, purpose=Purpose.PROBE)
    heard = recording_heard(prepared)
    replay_check(heard=heard, speakers=[speaker], actor=actor, during="verify")  # before the forward pass
    probe = recording_embed_prepared(recording=recording, prepared=prepared)
    hit = watchlist_screen(result=probe, tenant=speaker.tenant)
    watchlist_hit_record(hit=hit, actor=actor, during="verify", speaker_id=speaker.id, tenant=speaker.tenant)  # refuses if so configured
    decision = pair_decide(reference=speaker_reference(speaker), probe=probe, asnorm=asnorm, tenant=speaker.tenant)
    with transaction.atomic():
        now = timezone.now()
        Speaker.objects.filter(pk=speaker.pk).update(
            last_verified_at=now, **({"last_used_at": now} if decision.accepted else {}))
        audit_record(actor=actor, action=AuditAction.VERIFY, speaker_id=speaker.id,
                     decision="accepted" if decision.accepted else "rejected", score=decision.score,
                     threshold=decision.threshold,
                     detail={"raw_score": decision.raw_score, "score_normalisation": decision.score_normalisation,
                             "policy": decision.policy_source})
    verification_outcome_record(speaker_id=speaker.id, accepted=decision.accepted, actor=actor)
    if decision.accepted:  # an accepted probe, replayed later, is refused too
        probe_print_remember(speaker=speaker, heard=heard)
    return VerifyDecision(speaker_id=speaker.id, score=decision.score, raw_score=decision.raw_score,
                          score_normalisation=decision.score_normalisation, threshold=decision.threshold,
                          accepted=decision.accepted, model_version=decision.model_version,
                          processing_time_ms=elapsed_ms(started), watchlist_match=hit)


def speaker_identify(*, recording: Recording, top_k: int, actor: Actor,
                     asnorm: bool | None = None) -> IdentifyDecision:
    """1:N, open set: the best candidates, and a match only if the best is clearly the one.

    Search -> the candidates' rows -> the calibration's identify rule -> audit. The rule
    (:meth:`inference.quality_calibration.Calibration.identify`) ranks by llr; the best is a match when
    it passes the threshold for the false-identification target among every voice searched and
    leads the runner-up by the calibrated margin, or (among many voices, short of that threshold) leads the
    runner-up by the calibration's lead for its condition (``matched_by``). Only complete voiceprints of the loaded model
    version are searched; the runner-up is looked at even when ``top_k`` is 1. A speaker the caller is
    locked out of (:mod:`.lockout`) is left out, as if not enrolled: a lock gives that caller no score of them.
    """
    started = time.perf_counter()
    prepared = recording_prepare(recording=recording, purpose=Purpose.PROBE)
    heard = recording_heard(prepared)
    probe = recording_embed_prepared(recording=recording, prepared=prepared)
    tenant = actor.tenant
    found, verdict, scale, gallery = probe_identify(probe=IdentifyProbe.of(probe), tenant=tenant, top_k=top_k,
                                                    asnorm=asnorm, locked=locked_speaker_ids(actor=actor))
    # a replay of a candidate's own recordings is refused before any score is told
    replay_check(heard=heard, speakers=[found.speakers[i] for i in verdict.order[:REPLAY_CANDIDATES]], actor=actor,
                 during="identify")
    ranked = [Candidate(speaker_id=found.speakers[i].id, external_id=found.speakers[i].external_id,
                        display_name=found.speakers[i].display_name, score=float(verdict.llrs[i]),
                        raw_score=float(found.raws[i]), model_version=found.model_versions[i])
              for i in verdict.order]
    match = ranked[0] if verdict.matched else None
    threshold = verdict.threshold if ranked else None
    with transaction.atomic():
        if match is not None:
            now = timezone.now()
            Speaker.objects.filter(pk=match.speaker_id).update(last_identified_at=now, last_used_at=now)
        audit_record(actor=actor, action=AuditAction.IDENTIFY,
                     speaker_id=match.speaker_id if match else None,
                     decision="match" if match else "no_match",
                     score=ranked[0].score if ranked else None, threshold=threshold,
                     detail={"top_k": top_k, "candidates": min(len(ranked), top_k), "gallery": gallery,
                             "runner_up_score": verdict.runner_up, "margin": verdict.margin,
                             "no_match_reason": verdict.no_match_reason, "matched_by": verdict.matched_by,
                             "lead": verdict.lead, "score_normalisation": scale.name, "policy": scale.policy.source})
    return IdentifyDecision(candidates=ranked[:top_k], match=match, threshold=threshold, margin=verdict.margin,
                            runner_up_score=verdict.runner_up, no_match_reason=verdict.no_match_reason,
                            score_normalisation=scale.name, model_version=probe.model_version,
                            processing_time_ms=elapsed_ms(started), matched_by=verdict.matched_by,
                            lead=verdict.lead, lead_required=verdict.lead_rule[0] if verdict.lead_rule else None)


@dataclass(frozen=True)
class IdentifyProbe:
    """What identify's search and rule read of a probe: its unit vector, the model that made it and its quality.

    A recording's embedding (:meth:`of`), or a diarized voice's voiceprint (its vector, the speech
    that went into it and the recording's SNR and bandwidth).
    """

    vector: np.ndarray
    model_version: str
    quality: SideQuality

    @classmethod
    def of(cls, result: EmbeddingResult) -> IdentifyProbe:
        return cls(vector=result.vector, model_version=result.model_version, quality=side_quality(result))


def probe_identify(*, probe: IdentifyProbe, tenant: Tenant, top_k: int, asnorm: bool | None,
                   locked: frozenset[uuid.UUID] | set[uuid.UUID] = frozenset(),
                   ) -> tuple[_Candidates, quality_calibration.IdentifyVerdict, _Scale, int]:
    """identify's search and rule on an embedded probe, nothing recorded: the tenant's nearest voiceprints
    (at least the runner-up), their rows, and :meth:`Calibration.identify` on them. Returns the candidates, the
    verdict (``order`` ranks the candidates), the scale and the gallery searched. Also the rule of the live
    route and of each voice diarize names.

    Under the fused engine the complete voiceprints of ECAPA alone (speakers enrolled before fusion) are searched
    too, with ECAPA's part of the probe, and scored by ECAPA's calibration; each part's rule counts every voice
    searched in both, and :func:`~inference.quality_calibration.identify_together` ranks them as one gallery.

    ``locked``: speakers the caller is locked out of (:func:`locked_speaker_ids`), left out as if not enrolled;
    the search reaches as many more (at most ``LOCKED_EXTRA``) so the candidates left keep their number."""
    scale = _scale_for(asnorm=asnorm, model_version=probe.model_version, tenant=tenant)
    parts = [_Part(probe.model_version, probe.vector, voiceprint_index(), scale)]
    for version in inference_owner.part_model_versions():  # under the fused engine: ECAPA's voiceprints
        vector = inference_owner.vector_as(probe.vector, probe.model_version, version)
        if vector is not None:
            parts.append(_Part(version, vector, part_index(version),
                               _scale_for(asnorm=asnorm, model_version=version, tenant=tenant)))
    k = max(top_k, 2, ASNORM_SHORTLIST if scale.normalised else 0) + min(len(locked), LOCKED_EXTRA)
    hits = [[hit for hit in part.index.search(part.vector, k, model_version=part.version, tenant=tenant.pk)
             if hit[0] not in locked] for part in parts]
    gallery = sum(part.index.size(tenant.pk) for part in parts)  # every voice searched, whichever model's
    founds = [_candidates(found, part.vector, part.scale, part.index, tenant, part.version)
              for part, found in zip(parts, hits)]
    verdicts = [part.scale.policy.calibration.identify(
        scale=part.scale.calibration_scale, scores=found.scores, enroll=found.qualities, probe=probe.quality,
        fir=part.scale.policy.fir_target, gallery=gallery) for part, found in zip(parts, founds)]
    return _Candidates.together(founds), quality_calibration.identify_together(verdicts), scale, gallery


class _Part(NamedTuple):
    """One index identify searches: the model version, the probe's vector as that model sees it, the index and the
    scale (with its calibration) that decides on it."""

    version: str
    vector: np.ndarray
    index: VoiceprintIndex
    scale: _Scale


@dataclass(frozen=True)
class _Candidates:
    """The speakers a search found (rows), their raw cosines, their scores on the request's scale, the quality
    of their voiceprints and the model version that scored each: what the identify rule reads, in the search's
    order."""

    speakers: list[Speaker]
    raws: np.ndarray
    scores: np.ndarray
    qualities: list[SideQuality]
    model_versions: list[str]

    @classmethod
    def together(cls, parts: Sequence[_Candidates]) -> _Candidates:
        """The candidates of several searches, one after the other (as :func:`identify_together` indexes them)."""
        if len(parts) == 1:
            return parts[0]
        return cls(speakers=[s for part in parts for s in part.speakers],
                   raws=np.concatenate([part.raws for part in parts]),
                   scores=np.concatenate([part.scores for part in parts]),
                   qualities=[q for part in parts for q in part.qualities],
                   model_versions=[v for part in parts for v in part.model_versions])


def _candidates(hits: Sequence[tuple[uuid.UUID, float]], probe_vector: np.ndarray, scale: _Scale,
                index: VoiceprintIndex, tenant: Tenant, model_version: str) -> _Candidates:
    """The rows of the speakers a search found and what the rule needs of them.

    A speaker deleted (or dropped from the index) since the search is left out.
    """
    rows = {s.id: s for s in Speaker.objects.for_tenant(tenant).filter(id__in=[speaker_id for speaker_id, _ in hits])
            .only("id", "external_id", "display_name", "voiceprint_speech_s", "voiceprint_snr_db",
                  "voiceprint_bandwidth_hz")}
    found = [(rows[speaker_id], raw) for speaker_id, raw in hits if speaker_id in rows]
    speakers = [speaker for speaker, _ in found]
    raws = np.asarray([raw for _, raw in found], dtype=np.float64)
    scores = raws
    if scale.normalised and found:
        normaliser = service_asnorm.asnorm()
        stats = index.asnorm_stats([speaker.id for speaker in speakers], normaliser)
        kept = [i for i, s in enumerate(stats) if s is not None]
        enroll = np.asarray([stats[i] for i in kept], dtype=np.float64).reshape(-1, 2)
        mu_t, sd_t = service_asnorm.vector_stats(probe_vector)
        speakers, raws = [speakers[i] for i in kept], raws[kept]
        scores = as_norm_scores(raws, enroll[:, 0], enroll[:, 1], mu_t, sd_t)
    return _Candidates(speakers=speakers, raws=raws, scores=scores,
                       qualities=[voiceprint_quality(speaker) for speaker in speakers],
                       model_versions=[model_version] * len(speakers))


def recordings_compare(*, reference: Recording, test: Recording, actor: Actor,
                       asnorm: bool | None = None) -> CompareDecision:
    """Score two recordings against each other; nothing about them is stored."""
    started = time.perf_counter()
    ref = recording_embed(recording=reference, purpose=Purpose.PROBE)
    probe = recording_embed(recording=test, purpose=Purpose.PROBE)
    decision = pair_decide(reference=recording_reference(ref), probe=probe, asnorm=asnorm, tenant=actor.tenant)
    audit_record(actor=actor, action=AuditAction.COMPARE, decision="accepted" if decision.accepted else "rejected",
                 score=decision.score, threshold=decision.threshold,
                 detail={"raw_score": decision.raw_score, "score_normalisation": decision.score_normalisation,
                         "policy": decision.policy_source})
    return CompareDecision(score=decision.score, raw_score=decision.raw_score,
                           score_normalisation=decision.score_normalisation, threshold=decision.threshold,
                           accepted=decision.accepted, model_version=probe.model_version,
                           processing_time_ms=elapsed_ms(started))


def recordings_batch_verify(*, reference: Recording, tests: Sequence[Recording], actor: Actor,
                            asnorm: bool | None = None) -> BatchDecision:
    """Score many recordings against one reference, embedded once; one result per test file."""
    started = time.perf_counter()
    ref = recording_embed(recording=reference, purpose=Purpose.PROBE)
    scale = _scale_for(asnorm=asnorm, model_version=ref.model_version, tenant=actor.tenant)
    ref_stats = service_asnorm.vector_stats(ref.vector) if scale.normalised else None
    items: list[BatchItem] = []
    for recording, result in zip(tests, recordings_embed(recordings=list(tests), purpose=Purpose.PROBE)):
        if isinstance(result, (InferenceError, ApplicationError)):
            items.append(BatchItem(filename=recording.filename, refusal=Refusal.from_error(recording.filename, result)))
            continue
        decision = pair_decide(reference=recording_reference(ref), probe=result, asnorm=scale.normalised,
                               tenant=actor.tenant,
                               reference_stats=ref_stats)
        items.append(BatchItem(filename=recording.filename, raw_score=decision.raw_score, score=decision.score,
                               threshold=decision.threshold, accepted=decision.accepted))
    audit_record(actor=actor, action=AuditAction.BATCH_VERIFY,
                 detail={"tests": len(items), "accepted": sum(bool(i.accepted) for i in items),
                         "refused": sum(i.refusal is not None for i in items), "score_normalisation": scale.name,
                         "policy": scale.policy.source})
    return BatchDecision(results=items, score_normalisation=scale.name, model_version=ref.model_version,
                         processing_time_ms=elapsed_ms(started))
