"""Population adaptation: the tenant's own impostors re-level the calibration in force, without labels.

Every recording that enrolled a speaker, scored against the voiceprints of the tenant's other
enrolled speakers, is a trial between two different people in the deployment's own language,
channel and age group. :func:`population_refresh` measures how far those trials sit from the
calibration's impostor model (inference/population.py: medians of per-speaker medians, bounded)
and stores it per model version and scale (:class:`PopulationStatistics`, derived state shared by
every worker and machine); :func:`speakers.selectors.decision_policy` applies it once the
statistics rest on ``VOICEPRINT_POPULATION_MIN_SPEAKERS`` speakers (below that, the calibration
decides exactly as shipped).

The work is bounded whatever the gallery: at most :data:`MAX_SPEAKERS` speakers (a fixed sample,
by id) and ``inference.population.PER_RECORDING`` voiceprints per recording; it runs after an enrollment only when
the number of complete voiceprints has moved by :data:`REFRESH_CHANGE` since the last measurement
(so O(1) amortised per enrollment), or on demand (``manage.py population --refresh``, the admin).
"""
from __future__ import annotations

import logging
import math
import uuid

import numpy as np
from django.conf import settings
from django.db import transaction

from inference import population as engine_population
from inference.quality_calibration import Calibration as QualityCalibration
from inference.quality_calibration import SideQuality

from .. import crypto
from ..audit import Actor, audit_record
from ..exceptions import VoiceprintUnreadable
from ..integrity import enrollment_unreadable_record, voiceprint_of
from ..models import AuditAction, Enrollment, PopulationStatistics, Speaker, Tenant
from ..runtime import asnorm as service_asnorm
from ..selectors import (
    VoiceprintStatus,
    base_decision_policy,
    current_model_version,
    population_statistics_list,
    speakers_with_voiceprint_status,
)

logger = logging.getLogger(__name__)

# Speakers the statistics are measured on at most (a fixed sample beyond: the first by id, and ids are random).
MAX_SPEAKERS = 400
# Recompute when the number of complete voiceprints moved by this share since the last time (or by one
# speaker while the deployment is below the minimum).
REFRESH_CHANGE = 0.10


def _population(*, tenant: Tenant | uuid.UUID, model_version: str) -> tuple[engine_population.Population, int]:
    """The tenant's enrolled speakers as the statistics read them (decrypted, in memory only for the measurement),
    and how many complete voiceprints it has in all."""
    complete = speakers_with_voiceprint_status(speakers=Speaker.objects.for_tenant(tenant),
                                               status=VoiceprintStatus.COMPLETE, model_version=model_version)
    enrolled = complete.count()
    voiceprints, voiceprint_quality, owners = [], [], []
    for speaker in complete.order_by("id")[:MAX_SPEAKERS]:
        try:
            voiceprints.append(voiceprint_of(speaker))
        except VoiceprintUnreadable:
            continue
        voiceprint_quality.append(SideQuality(speech_s=speaker.voiceprint_speech_s, snr_db=speaker.voiceprint_snr_db,
                                              bandwidth_hz=speaker.voiceprint_bandwidth_hz))
        owners.append(str(speaker.pk))
    recordings, recording_quality, recording_owner = [], [], []
    for enrollment in Enrollment.objects.filter(speaker_id__in=owners, model_version=model_version).order_by("id"):
        try:
            recordings.append(crypto.vector_decrypt(key_id=enrollment.key_id, ciphertext=enrollment.embedding_ciphertext,
                                                    context=enrollment.crypto_context()))
        except crypto.CiphertextCorrupt as exc:
            enrollment_unreadable_record(speaker_id=enrollment.speaker_id, enrollment_id=enrollment.pk, reason=str(exc))
            continue
        recording_quality.append(SideQuality(speech_s=enrollment.speech_s, snr_db=enrollment.snr_db,
                                             bandwidth_hz=enrollment.bandwidth_hz))
        recording_owner.append(str(enrollment.speaker_id))
    dim = len(voiceprints[0]) if voiceprints else 0
    population = engine_population.Population(
        voiceprints=np.asarray(voiceprints, dtype=np.float32).reshape(len(voiceprints), dim),
        voiceprint_quality=voiceprint_quality, voiceprint_owner=owners,
        recordings=np.asarray(recordings, dtype=np.float32).reshape(len(recordings), dim),
        recording_quality=recording_quality, recording_owner=recording_owner)
    return population, enrolled


def population_measure(*, calibration: QualityCalibration, population: engine_population.Population,
                       asnorm: bool) -> dict[str, engine_population.PopulationShift]:
    """The population's shift and spread on each scale of ``calibration`` (AS-norm only when ``asnorm``)."""
    return {name: engine_population.measure_population(
                calibration, name, population, asnorm=service_asnorm.asnorm() if name == "asnorm" else None)
            for name in calibration.scales if name != "asnorm" or asnorm}


def threshold_moved(*, calibration: QualityCalibration, scale: str, shift: engine_population.PopulationShift,
                    far: float) -> dict[str, float]:
    """The score ``inference.population.REFERENCE_PAIR`` needs to be accepted, with the calibration alone and adapted."""
    base = calibration.scale(scale)
    x = base.features_of(*engine_population.REFERENCE_PAIR)

    def needed(cal) -> float:
        mean = float(x @ np.asarray(cal.impostor_mean))
        return mean + cal.verify_t(far) * float(np.exp(x @ np.asarray(cal.impostor_log_sd)))

    return {"before": round(needed(base), 4), "after": round(needed(engine_population.adapted(base, shift)), 4)}


def population_refresh(*, tenant: Tenant | uuid.UUID, model_version: str | None = None,
                       actor: Actor | None = None) -> list[PopulationStatistics]:
    """Measure the tenant's population against the calibration in force and store it (every scale)."""
    model_version = model_version or current_model_version()
    if not model_version:
        return []
    policy = base_decision_policy(model_version=model_version, tenant=tenant)
    population, enrolled = _population(tenant=tenant, model_version=model_version)
    measured = population_measure(calibration=policy.calibration, population=population,
                                  asnorm=service_asnorm.asnorm_key() is not None)
    rows = []
    with transaction.atomic():
        PopulationStatistics.objects.for_tenant(tenant).filter(model_version=model_version).exclude(
            scale__in=list(measured)).delete()
        for scale, shift in measured.items():
            row, _ = PopulationStatistics.objects.update_or_create(
                tenant_id=_tenant_id(tenant), model_version=model_version, scale=scale, defaults={
                    "base": policy.source, "shift": shift.shift, "spread": shift.spread,
                    "measured_shift": shift.measured_shift, "measured_spread": shift.measured_spread,
                    "speakers": shift.speakers, "trials": shift.trials, "enrolled_speakers": enrolled,
                    "threshold_moved": threshold_moved(calibration=policy.calibration, scale=scale, shift=shift,
                                                       far=policy.far_target)})
            rows.append(row)
        if actor is not None:
            audit_record(actor=actor, action=AuditAction.POPULATION_REFRESH, tenant=tenant, detail={
                "model_version": model_version, "enrolled_speakers": enrolled,
                **{scale: {"shift": s.shift, "spread": s.spread, "speakers": s.speakers} for scale, s in measured.items()}})
    logger.info("population statistics of tenant %s (%s): %s", _tenant_id(tenant), model_version,
                {scale: (round(s.shift, 4), round(s.spread, 3), s.speakers) for scale, s in measured.items()})
    return rows


def population_stale(*, tenant: Tenant | uuid.UUID, model_version: str, enrolled: int) -> bool:
    """Whether the stored statistics no longer describe the tenant's population (see :data:`REFRESH_CHANGE`)."""
    rows = population_statistics_list(tenant=tenant, model_version=model_version)
    if not rows:
        return enrolled >= 2
    policy = base_decision_policy(model_version=model_version, tenant=tenant)
    if any(row.base != policy.source for row in rows):
        return True
    last = rows[0].enrolled_speakers
    return abs(enrolled - last) >= max(1, math.ceil(REFRESH_CHANGE * last))


def population_refresh_if_stale(*, tenant: Tenant | uuid.UUID, model_version: str | None = None) -> bool:
    """After a change of the gallery: recompute when stale; never fails its caller (derived state). Returns
    whether it recomputed."""
    if not settings.VOICEPRINT_POPULATION_ADAPTATION:
        return False
    try:
        model_version = model_version or current_model_version()
        if not model_version:
            return False
        enrolled = speakers_with_voiceprint_status(speakers=Speaker.objects.for_tenant(tenant),
                                                   status=VoiceprintStatus.COMPLETE, model_version=model_version).count()
        if not population_stale(tenant=tenant, model_version=model_version, enrolled=enrolled):
            return False
        population_refresh(tenant=tenant, model_version=model_version)
        return True
    except Exception:  # derived state: the next change, or `manage.py population --refresh`, recomputes it
        logger.exception("the population statistics of tenant %s could not be recomputed", _tenant_id(tenant))
        return False


def _tenant_id(tenant: Tenant | uuid.UUID) -> uuid.UUID:
    return tenant.pk if isinstance(tenant, Tenant) else tenant
