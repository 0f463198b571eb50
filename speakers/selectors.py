"""Reads: the API, the admin and the services look speakers and enrollments up through here."""
from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.db.models import Q, QuerySet
from django.utils import timezone

from inference import population as engine_population
from inference.quality_calibration import Calibration as QualityCalibration
from inference.quality_calibration import shipped_calibration, shipped_calibration_path

from . import crypto
from .exceptions import (
    ApplicationError,
    EngineUnavailable,
    EnrollmentNotFound,
    InvalidApiKey,
    RevokedApiKey,
    SpeakerNotFound,
    WatchlistEntryNotFound,
)
from .external_ids import external_id_normalise
from .models import (
    ApiKey,
    Calibration,
    Enrollment,
    IndexState,
    PopulationStatistics,
    Speaker,
    Tenant,
    VerificationLock,
    WatchlistEntry,
)
from .runtime.inference_owner import owner_status, part_model_versions


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def speaker_get(*, tenant: Tenant, speaker_id: uuid.UUID | str) -> Speaker:
    """The tenant's speaker; one of another tenant is not found, exactly like one that does not exist."""
    key = _as_uuid(speaker_id)
    speaker = Speaker.objects.for_tenant(tenant).filter(pk=key).first() if key else None
    if speaker is None:
        raise SpeakerNotFound(speaker_id=str(speaker_id))
    return speaker


def speaker_by_external_id(*, tenant: Tenant, external_id: str) -> Speaker:
    """The tenant's speaker whose external id is ``external_id`` (in its normal form), else SpeakerNotFound."""
    try:
        normal = external_id_normalise(external_id)
    except ApplicationError:
        normal = None
    speaker = Speaker.objects.for_tenant(tenant).filter(external_id=normal).first() if normal else None
    if speaker is None:
        raise SpeakerNotFound("No speaker with this external id.", external_id=external_id)
    return speaker


def speaker_list(*, tenant: Tenant, external_id: str | None = None,
                 voiceprint_status: VoiceprintStatus | str | None = None) -> QuerySet[Speaker]:
    """The tenant's speakers, or the one whose external_id is ``external_id`` in its normal form; with
    ``voiceprint_status``, only those whose voiceprint has it against the model in use (``outdated``: the
    speakers to enroll again after the models changed)."""
    speakers = Speaker.objects.for_tenant(tenant)
    if external_id:
        normal = external_id_normalise(external_id)
        speakers = speakers.filter(external_id=normal) if normal else speakers.none()
    if voiceprint_status:
        speakers = speakers_with_voiceprint_status(speakers=speakers, status=voiceprint_status,
                                                   model_version=current_model_version())
    return speakers


def enrollment_list(*, speaker: Speaker) -> QuerySet[Enrollment]:
    return Enrollment.objects.filter(speaker=speaker).defer("embedding_ciphertext")


def enrollment_get(*, speaker: Speaker, enrollment_id: uuid.UUID | str) -> Enrollment:
    key = _as_uuid(enrollment_id)
    enrollment = Enrollment.objects.filter(speaker=speaker, pk=key).first() if key else None
    if enrollment is None:
        raise EnrollmentNotFound(speaker_id=str(speaker.id), enrollment_id=str(enrollment_id))
    return enrollment


def watchlist_list(*, tenant: Tenant) -> QuerySet[WatchlistEntry]:
    return WatchlistEntry.objects.for_tenant(tenant).prefetch_related("voiceprints")


def watchlist_entry_get(*, tenant: Tenant, entry_id: uuid.UUID | str) -> WatchlistEntry:
    key = _as_uuid(entry_id)
    entry = WatchlistEntry.objects.for_tenant(tenant).filter(pk=key).first() if key else None
    if entry is None:
        raise WatchlistEntryNotFound(entry_id=str(entry_id))
    return entry


def verification_lock_list(*, tenant: Tenant | None = None) -> QuerySet[VerificationLock]:
    """The verification locks in force (of one tenant's speakers, or every tenant's), the longest first."""
    locks = VerificationLock.objects.filter(locked_until__gt=timezone.now())
    if tenant is not None:
        locks = locks.filter(speaker__tenant=tenant)
    return locks.select_related("speaker__tenant", "api_key").order_by("-locked_until", "pk")


def speaker_voiceprint(*, speaker: Speaker) -> np.ndarray:
    """The speaker's decrypted voiceprint, float32 ``(192,)``; only ever held in memory."""
    return crypto.vector_decrypt(key_id=speaker.voiceprint_key_id, ciphertext=speaker.voiceprint_ciphertext,
                                 context=speaker.crypto_context())


@dataclass(frozen=True)
class EnrollmentProgress:
    """How much of the speech a usable voiceprint needs the speaker has enrolled."""

    speech_s: float
    required_s: float
    complete: bool

    @property
    def text(self) -> str:
        """``"4.3 of 6 s"`` on the way to the target; ``"8.7 s (6 s needed)"`` once it is reached."""
        # Rounded half up (8.66 s reads 8.7), but never up to the target before the voiceprint is complete.
        shown = math.floor(self.speech_s * 10 + 0.5 + 1e-9) / 10
        if self.complete:
            return f"{shown:.1f} s ({self.required_s:g} s needed)"
        if shown >= self.required_s:
            shown = _floor(self.speech_s, 1)
        return f"{shown:.1f} of {self.required_s:g} s"


def _floor(value: float, decimals: int) -> float:
    scale = 10 ** decimals
    return math.floor(value * scale + 1e-9) / scale


def enrollment_progress(*, speaker: Speaker) -> EnrollmentProgress:
    """Net speech of the voiceprint against ``VOICEPRINT_ENROLL_TARGET_SPEECH_S``.

    Only the enrollments the voiceprint averages count (those of its model version).
    """
    speech_s = float(speaker.voiceprint_speech_s) if speaker.has_voiceprint else 0.0
    required_s = float(settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S)
    return EnrollmentProgress(speech_s=_floor(speech_s, 2), required_s=required_s,
                              complete=speaker.has_voiceprint and speech_s + 1e-9 >= required_s)


class VoiceprintStatus(enum.StrEnum):
    """Whether a speaker's voiceprint can decide: only ``complete`` is enrolled (usable)."""

    NONE = "none"              # no voiceprint yet
    INCOMPLETE = "incomplete"  # less net speech than VOICEPRINT_ENROLL_TARGET_SPEECH_S
    COMPLETE = "complete"      # verified and searched
    PARTIAL = "partial"        # complete, made by one network of the fused engine (ECAPA): verified and searched with it
    OUTDATED = "outdated"      # made by another model version: re-enroll
    UNREADABLE = "unreadable"  # damaged (fails authentication): re-enroll


def voiceprint_status(*, speaker: Speaker, model_version: str | None,
                      part_versions: tuple[str, ...] | None = None) -> VoiceprintStatus:
    """The speaker's voiceprint status against the loaded ``model_version`` (None: not known, not checked).

    The same conditions as the decisions' refusals (speaker_not_enrolled, voiceprint_unreadable,
    model_version_mismatch, enrollment_incomplete), in that order. A complete voiceprint of one of
    ``part_versions`` (default: :func:`part_model_versions`, ECAPA's under the fused engine) is ``partial``:
    verified and identified with that network alone.
    """
    if not speaker.has_voiceprint:
        return VoiceprintStatus.NONE
    if speaker.voiceprint_unreadable:
        return VoiceprintStatus.UNREADABLE
    complete = enrollment_progress(speaker=speaker).complete
    if model_version is not None and speaker.voiceprint_model_version != model_version:
        parts = part_model_versions() if part_versions is None else part_versions
        return VoiceprintStatus.PARTIAL if complete and speaker.voiceprint_model_version in parts \
            else VoiceprintStatus.OUTDATED
    return VoiceprintStatus.COMPLETE if complete else VoiceprintStatus.INCOMPLETE


def speakers_with_voiceprint_status(*, speakers: QuerySet[Speaker], status: VoiceprintStatus | str,
                                    model_version: str | None) -> QuerySet[Speaker]:
    """``speakers`` narrowed to those whose :func:`voiceprint_status` is ``status``, in SQL."""
    status = VoiceprintStatus(status)
    if status is VoiceprintStatus.NONE:
        return speakers.filter(voiceprint_ciphertext__isnull=True)
    readable = speakers.filter(voiceprint_ciphertext__isnull=False)
    if status is VoiceprintStatus.UNREADABLE:
        return readable.filter(voiceprint_unreadable=True)
    readable = readable.filter(voiceprint_unreadable=False)
    # The same comparison as enrollment_progress.
    target = float(settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S) - 1e-9
    if status in (VoiceprintStatus.OUTDATED, VoiceprintStatus.PARTIAL):
        if not model_version:
            return readable.none()
        partial = Q(voiceprint_model_version__in=part_model_versions(), voiceprint_speech_s__gte=target)
        foreign = readable.exclude(voiceprint_model_version=model_version)
        return foreign.filter(partial) if status is VoiceprintStatus.PARTIAL else foreign.exclude(partial)
    current = readable.filter(voiceprint_model_version=model_version) if model_version else readable
    if status is VoiceprintStatus.COMPLETE:
        return current.filter(voiceprint_speech_s__gte=target)
    return current.filter(voiceprint_speech_s__lt=target)


# --- the decision policy: thresholds in force and where they come from ----------------------------

@dataclass(frozen=True)
class DecisionPolicy:
    """What decides: the calibration in force for the model version, the operating points and the default scale.

    The calibration is the newest site calibration of the model version (``manage.py
    calibrate``) when there is one, else the one shipped with the service for that version;
    re-levelled on the tenant's own population when its statistics rest on enough speakers
    (``population``: the rows applied, per scale; empty when none is). ``far_target`` and
    ``fir_target`` (settings) say how many impostors a decision may let through.
    """

    model_version: str | None
    calibration: QualityCalibration
    source: str  # "shipped:<file>" or "calibration:<id>"
    far_target: float
    fir_target: float
    asnorm_default: bool
    site_calibration: Calibration | None
    population: dict[str, PopulationStatistics] = field(default_factory=dict)


def calibration_current(*, model_version: str | None, tenant: Tenant | uuid.UUID | None) -> Calibration | None:
    """The tenant's newest site calibration for ``model_version``, if any."""
    if not model_version or tenant is None:
        return None
    return (Calibration.objects.for_tenant(tenant).filter(model_version=model_version)
            .order_by("-created_at", "-id").first())


@functools.lru_cache(maxsize=16)
def _site_calibration(pk: int, parameters: str) -> QualityCalibration:
    return QualityCalibration.from_dict(json.loads(parameters))


def base_decision_policy(*, model_version: str | None, tenant: Tenant | uuid.UUID | None) -> DecisionPolicy:
    """The policy before population adaptation: the tenant's own site calibration, else the shipped one.

    Raises EngineUnavailable when no calibration exists for the model version.
    """
    row = calibration_current(model_version=model_version, tenant=tenant)
    if row is not None:
        calibration = _site_calibration(row.pk, json.dumps(row.parameters, sort_keys=True))
        source = row.source
    else:
        calibration = shipped_calibration(model_version)
        if calibration is None:
            raise EngineUnavailable(f"No calibration is shipped for model {model_version}: run `python manage.py "
                                    "calibrate` on labelled recordings, or use a supported model.",
                                    model_version=model_version)
        source = f"shipped:{shipped_calibration_path(model_version).name}"
    return DecisionPolicy(model_version=model_version, calibration=calibration, source=source,
                          far_target=settings.VOICEPRINT_FAR_TARGET, fir_target=settings.VOICEPRINT_FIR_TARGET,
                          asnorm_default=settings.VOICEPRINT_ASNORM, site_calibration=row)


def population_statistics_list(*, tenant: Tenant | uuid.UUID | None,
                               model_version: str | None) -> list[PopulationStatistics]:
    """The stored population statistics of a tenant and model version (one row per scale)."""
    if not model_version or tenant is None:
        return []
    return list(PopulationStatistics.objects.for_tenant(tenant).filter(model_version=model_version).order_by("scale"))


def population_rows_in_force(rows: list[PopulationStatistics], *, source: str) -> dict[str, PopulationStatistics]:
    """The rows that re-level the calibration ``source``: measured against it, on enough speakers, when enabled."""
    if not settings.VOICEPRINT_POPULATION_ADAPTATION:
        return {}
    return {row.scale: row for row in rows
            if row.base == source and row.speakers >= settings.VOICEPRINT_POPULATION_MIN_SPEAKERS}


def _population_shift(row: PopulationStatistics) -> engine_population.PopulationShift:
    return engine_population.PopulationShift(shift=row.shift, spread=row.spread, speakers=row.speakers, trials=row.trials,
                                             measured_shift=row.measured_shift, measured_spread=row.measured_spread)


def decision_policy(*, model_version: str | None, tenant: Tenant | uuid.UUID | None) -> DecisionPolicy:
    """The policy in force for ``model_version`` in ``tenant``: :func:`base_decision_policy`, re-levelled on the
    tenant's population statistics where they are in force (speakers/services/population.py).

    Raises EngineUnavailable when no calibration exists for the model version.
    """
    policy = base_decision_policy(model_version=model_version, tenant=tenant)
    rows = population_rows_in_force(population_statistics_list(tenant=tenant, model_version=model_version),
                                    source=policy.source)
    if not rows:
        return policy
    calibration = engine_population.adapted_calibration(
        policy.calibration, {scale: _population_shift(row) for scale, row in rows.items()})
    return dataclasses.replace(policy, calibration=calibration, population=rows)


def quality_gates() -> dict[str, float]:
    """The recording quality gates in force (all from the settings)."""
    return {
        "enroll_min_speech_s": settings.VOICEPRINT_ENROLL_MIN_SPEECH_S,
        "enroll_target_speech_s": settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S,
        "probe_min_speech_s": settings.VOICEPRINT_PROBE_MIN_SPEECH_S,
        "max_clipping_ratio": settings.VOICEPRINT_MAX_CLIPPING_RATIO,
        "min_speech_level_dbfs": settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS,
        "enroll_min_snr_db": settings.VOICEPRINT_ENROLL_MIN_SNR_DB,
        "probe_min_snr_db": settings.VOICEPRINT_PROBE_MIN_SNR_DB,
        "enroll_consistency_threshold": settings.VOICEPRINT_ENROLL_CONSISTENCY_THRESHOLD,
    }


def current_model_version() -> str | None:
    """The loaded model's version, or the prepared one's (never loads the model)."""
    return owner_status()["model_version"]


def enrolled_speaker_count(*, tenant: Tenant | None) -> int:
    """Speakers enrolled as the API means it: a complete voiceprint of the model version in use (of one tenant,
    or of the whole deployment with None)."""
    speakers = Speaker.objects.all() if tenant is None else Speaker.objects.for_tenant(tenant)
    return speakers_with_voiceprint_status(speakers=speakers, status=VoiceprintStatus.COMPLETE,
                                           model_version=current_model_version()).count()


def population_status(*, tenant: Tenant | uuid.UUID | None, model_version: str | None = None) -> dict[str, Any]:
    """The population statistics of a tenant (health, the admin): per scale, whether they are in force, the
    speakers they rest on, when they were measured, and how far they moved the score a reference pair
    (a 3 s clean probe against a 6 s clean voiceprint) needs on that scale."""
    model_version = model_version or current_model_version()
    rows = population_statistics_list(tenant=tenant, model_version=model_version)
    in_force = set()
    if rows:
        try:
            in_force = set(population_rows_in_force(rows, source=base_decision_policy(
                model_version=model_version, tenant=tenant).source))
        except ApplicationError:
            in_force = set()
    return {
        "enabled": settings.VOICEPRINT_POPULATION_ADAPTATION,
        "min_speakers": settings.VOICEPRINT_POPULATION_MIN_SPEAKERS,
        "scales": {row.scale: {
            "in_force": row.scale in in_force, "speakers": row.speakers, "trials": row.trials,
            "shift": round(row.shift, 4), "spread": round(row.spread, 4),
            "bounded": row.shift != row.measured_shift or row.spread != row.measured_spread,
            "updated_at": row.updated_at.isoformat(),
            "reference_score_before": row.threshold_moved.get("before"),
            "reference_score_after": row.threshold_moved.get("after")} for row in rows},
    }


# Health counts rows; load balancers call it often, so the counts are reused (at most this long).
HEALTH_FIGURES_S = 10


def _health_figures(tenant: Tenant | None) -> dict[str, Any]:
    speakers = Speaker.objects.all() if tenant is None else Speaker.objects.for_tenant(tenant)
    in_use = set(speakers.exclude(voiceprint_key_id="").values_list("voiceprint_key_id", flat=True).distinct())
    tenant_keys = set(Tenant.objects.exclude(data_key_id="").filter(data_key_wrapped__isnull=False)
                      .values_list("data_key_id", flat=True))
    wrapping = set(Tenant.objects.filter(data_key_wrapped__isnull=False).values_list("data_key_wrapping_id", flat=True))
    configured = crypto.keyring().keys.keys()
    return {
        "enrolled_speakers": enrolled_speaker_count(tenant=tenant),
        "unreadable_voiceprints": speakers.filter(voiceprint_unreadable=True).count(),
        "outdated_voiceprints": speakers_with_voiceprint_status(speakers=speakers, status=VoiceprintStatus.OUTDATED,
                                                                model_version=current_model_version()).count(),
        "partial_voiceprints": speakers_with_voiceprint_status(speakers=speakers, status=VoiceprintStatus.PARTIAL,
                                                               model_version=current_model_version()).count(),
        "missing_key_ids": sorted((in_use - configured - tenant_keys) | (wrapping - configured)),
        "population": population_status(tenant=tenant if tenant is not None else Tenant.objects.first()),
    }


def health_status(*, tenant: Tenant | None = None) -> dict[str, Any]:
    """Status for the health check; never loads the model.

    The counts are the caller's tenant's (a request with a key), or the deployment's while it serves one
    tenant; with several tenants a caller without a key gets none (no tenant learns of another's size).

    ``status`` sums it up: ``unavailable`` (HTTP 503) when the database cannot be reached;
    ``warming_up`` while the model loads (about a second or two after start; ``engine`` says
    ``cold`` or ``warming_up``), ``failed`` when it could not load (the next request retries); ``degraded`` when some voiceprints cannot be read
    (damaged rows, or rows sealed with a key that is not configured: they are left out of
    search); otherwise ``ready``.
    """
    owner = owner_status()
    status: dict[str, Any] = {"status": "ready", **owner, "database": "ok", "enrolled_speakers": None,
                              "unreadable_voiceprints": None, "outdated_voiceprints": None,
                              "partial_voiceprints": None, "missing_key_ids": [],
                              "population": None}
    try:
        # The counts are reused until the voiceprint change log moves (a one-row read), so an
        # enrollment or deletion made through any process shows at once.
        head = IndexState.objects.filter(pk=1).values_list("generation", "token").first()
        name = f"health_figures:{tenant.pk if tenant is not None else 'deployment'}"
        cached = cache.get(name)
        if cached is not None and cached[0] == head:
            figures = cached[1]
        else:
            figures = _health_figures(tenant)
            cache.set(name, (head, figures), HEALTH_FIGURES_S)
        visible = tenant is not None or Tenant.objects.count() <= 1
    except DatabaseError:
        return {**status, "status": "unavailable", "database": "unreachable"}
    degraded = bool(figures["unreadable_voiceprints"] or figures["missing_key_ids"])
    status.update(figures if visible else {})
    if owner["engine"] != "ready":
        status["status"] = "failed" if owner["engine"] == "failed" else "warming_up"
    elif degraded:
        status["status"] = "degraded"
    return status


def api_key_prefix_known(*, prefix: str) -> bool:
    """Whether a key (active or revoked) has this public prefix."""
    return ApiKey.objects.filter(prefix=prefix).exists()


def api_key_authenticate(*, plain: str) -> ApiKey:
    """The active key matching ``plain``. Raises InvalidApiKey or RevokedApiKey."""
    prefix = crypto.api_key_prefix(plain)
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first() if prefix else None
    if api_key is None:
        crypto.api_key_matches(plain, "0" * 64)  # same work as a real check: no timing oracle on prefixes
        raise InvalidApiKey()
    if not crypto.api_key_matches(plain, api_key.hashed_key):
        raise InvalidApiKey()
    if api_key.revoked:
        raise RevokedApiKey()
    return api_key
