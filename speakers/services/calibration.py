"""Calibration: a site's own calibration on top of the shipped one, measured on its labelled recordings.

Offline tooling, used by ``manage.py evaluate`` and ``manage.py calibrate`` only (never imported
on the request path). Files are embedded by the service's engine and refused where the service
would refuse them as probes, and every figure is measured on the rule that decides
(:class:`inference.quality_calibration.Calibration`), so the report describes the decisions the
service makes.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction

from inference import EmbeddingResult, InferenceError
from inference.evaluation import calibrated
from inference.evaluation.calibrated import Side, TrialTable
from inference.evaluation.lists import Trial
from inference.evaluation.metrics import compute_eer
from inference.quality_calibration import Calibration as QualityCalibration
from inference.quality_calibration import SideQuality, adapt_scale

from ..audit import Actor, audit_record
from ..exceptions import ApplicationError, CalibrationRefused
from ..models import AuditAction, Calibration, CalibrationMethod, Tenant
from ..runtime import asnorm as service_asnorm
from ..runtime import inference_owner
from ..selectors import DecisionPolicy, decision_policy
from .recordings import Purpose, recording_check_quality, side_quality

logger = logging.getLogger(__name__)

# Below these, a calibration is refused (``force`` overrides): a re-levelling measured on a handful
# of trials is noise.
MIN_CALIBRATION_TRIALS = 20  # of each kind, target and impostor
# Probe conditions the reports split trials by (net speech in s, SNR in dB).
SPEECH_BINS = ((0.0, 1.5), (1.5, 3.0), (3.0, 6.0), (6.0, float("inf")))
SNR_BINS = ((-float("inf"), 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, float("inf")))


class _QualityRefusal(InferenceError):
    """A service quality-gate refusal in the form the evaluation code records (its code)."""

    def __init__(self, error: ApplicationError) -> None:
        super().__init__(error.message, **error.detail)
        self.code = error.code


class AccuracyEmbedder:
    """Embeds labelled files with the service's engine, once each, keeping their quality.

    With ``quality_gates``, a file the service would refuse as a probe (clipped, too quiet, too
    noisy, too little speech) is refused here too, under its error code.
    """

    def __init__(self, *, quality_gates: bool = True) -> None:
        self.quality_gates = quality_gates
        self._results: dict[Path, EmbeddingResult | InferenceError] = {}

    def result(self, path: Path) -> EmbeddingResult:
        key = Path(path)
        if key not in self._results:
            try:
                prepared = inference_owner.prepare(key.read_bytes())  # a missing file: OSError, recorded
                if self.quality_gates:  # refused before the forward pass, as the service refuses it
                    try:
                        recording_check_quality(prepared=prepared, purpose=Purpose.PROBE)
                    except ApplicationError as error:
                        raise _QualityRefusal(error) from error
                self._results[key] = inference_owner.embed_prepared(prepared)
            except InferenceError as error:
                self._results[key] = error
        value = self._results[key]
        if isinstance(value, InferenceError):
            raise value
        return value

    def __call__(self, path: Path) -> np.ndarray:
        """The ``embed_fn`` of :mod:`inference.evaluation`."""
        return self.result(path).vector

    def side(self, paths: Sequence[Path]) -> Side:
        """One or more files as one side of a trial (several: a voiceprint, as the service averages it)."""
        results = [self.result(p) for p in paths]
        return calibrated.enrollment_side([r.vector for r in results], [side_quality(r) for r in results])


def condition_of(probe: SideQuality) -> str:
    """The report group of a probe: its net speech and SNR bins."""
    def label(value: float, bins: tuple[tuple[float, float], ...], unit: str) -> str:
        low, high = next(b for b in bins if b[0] <= value < b[1])
        if low == -float("inf"):
            return f"<{high:g} {unit}"
        return f">={low:g} {unit}" if high == float("inf") else f"{low:g}-{high:g} {unit}"

    return f"speech {label(probe.speech_s, SPEECH_BINS, 's')}, SNR {label(probe.snr_db, SNR_BINS, 'dB')}"


def trial_table(*, trials: Sequence[Trial], audio_root: Path, embedder: AccuracyEmbedder,
                asnorm: bool) -> tuple[TrialTable, dict[str, str]]:
    """Score a VoxCeleb-style list (``a`` enrolls, ``b`` probes): the table, and ``{path: refusal code}``."""
    pairs, failed = [], {}
    for trial in trials:
        sides = []
        for path in (trial.a, trial.b):
            try:
                sides.append(embedder.side([audio_root / path]))
            except InferenceError as error:
                failed[path] = error.code
            except OSError:
                failed[path] = "file_not_found"
        if len(sides) == 2:
            pairs.append((trial.label, sides[0], sides[1], condition_of(sides[1].quality)))
    if not pairs:
        raise CalibrationRefused("No trial could be scored: every file was refused.", failed=len(failed))
    return calibrated.score_trials(pairs, service_asnorm.asnorm() if asnorm else None), failed


@dataclass(frozen=True)
class CalibrationProposal:
    """A site calibration measured on a tenant's labelled recordings; stored by :func:`calibration_create`."""

    tenant: Tenant
    model_version: str
    calibration: QualityCalibration
    eer: float
    asnorm_eer: float | None
    counts: dict[str, Any]
    figures: dict[str, Any]
    warnings: list[str]
    policy_before: DecisionPolicy = field(repr=False)


def calibration_measure(*, trials: Sequence[Trial], audio_root: Path, tenant: Tenant, asnorm: bool = True,
                        quality_gates: bool = True, force: bool = False) -> CalibrationProposal:
    """Re-level the calibration in force on a site's own labelled trials (stores nothing).

    Every scale of the calibration in force keeps its quality dependence and is re-levelled on these
    trials (:func:`inference.quality_calibration.adapt_scale`); the report gives, per scale and per
    probe condition, the false-accept and false-reject rates at the operating point before and after.
    Raises CalibrationRefused when the trials are too few (unless ``force``) or cannot be scored.
    """
    model_version = inference_owner.model_version()
    before = decision_policy(model_version=model_version, tenant=tenant)
    use_asnorm = asnorm and "asnorm" in before.calibration.scales and service_asnorm.asnorm_key() is not None
    table, failed = trial_table(trials=trials, audio_root=audio_root, embedder=AccuracyEmbedder(
        quality_gates=quality_gates), asnorm=use_asnorm)
    n_target, n_impostor = int(table.labels.sum()), int((table.labels == 0).sum())
    counts = {"trials": len(trials), "scored": len(table.labels), "target": n_target, "impostor": n_impostor,
              "failed_files": len(failed)}
    if not force and min(n_target, n_impostor) < MIN_CALIBRATION_TRIALS:
        raise CalibrationRefused(
            f"{n_target} target and {n_impostor} impostor trials were scored; a calibration needs at least "
            f"{MIN_CALIBRATION_TRIALS} of each (more is better: one error in N trials moves a rate by 1/N).",
            **counts)
    warnings = []
    if failed:
        warnings.append(f"{len(failed)} files could not be used ({', '.join(sorted(set(failed.values())))}); "
                        "their trials were skipped.")
    if n_impostor * before.far_target < 10:
        warnings.append(f"{n_impostor} impostor trials measure a false-accept rate of {before.far_target:.2%} "
                        "only roughly: the figures below are coarse.")
    scales = {}
    for name, base in before.calibration.scales.items():
        if name == "asnorm" and not use_asnorm:
            scales[name] = base
            continue
        try:
            scales[name] = adapt_scale(base, table.scores(name), table.features(base.features), table.labels)
        except ValueError as exc:
            raise CalibrationRefused(f"The trials cannot re-level the {name} scale: {exc}") from exc
    proposed = QualityCalibration(model_version=model_version, scales=scales, trained_on={
        "base": before.source, "site_trials": counts})
    figures = {}
    for name in scales:
        if name == "asnorm" and not use_asnorm:
            continue
        figures[name] = {
            "before": calibrated.condition_report(
                table, calibrated.calibrated_decisions(before.calibration, name, before.far_target),
                far=before.far_target),
            "after": calibrated.condition_report(
                table, calibrated.calibrated_decisions(proposed, name, before.far_target), far=before.far_target),
        }
    return CalibrationProposal(
        tenant=tenant, model_version=model_version, calibration=proposed, eer=compute_eer(table.cosine, table.labels)[0],
        asnorm_eer=compute_eer(table.asnorm, table.labels)[0] if use_asnorm else None,
        counts=counts, figures=figures, warnings=warnings, policy_before=before)


def calibration_create(*, proposal: CalibrationProposal, actor: Actor, note: str = "") -> Calibration:
    """Store a measured site calibration; from now on it decides for its model version."""
    with transaction.atomic():
        row = Calibration.objects.create(
            tenant=proposal.tenant, created_by=actor.label[:150], model_version=proposal.model_version, method=CalibrationMethod.QUALITY,
            parameters=proposal.calibration.to_dict(), eer=proposal.eer, asnorm_eer=proposal.asnorm_eer,
            counts=proposal.counts, figures=proposal.figures, note=note)
        audit_record(actor=actor, action=AuditAction.CALIBRATE, tenant=proposal.tenant,
                     detail={"calibration_id": row.pk, "model_version": proposal.model_version,
                             "base": proposal.policy_before.source, "eer": proposal.eer,
                             "counts": proposal.counts})
    logger.info("calibration %s stored for %s (on top of %s)", row.pk, proposal.model_version,
                proposal.policy_before.source)
    return row


def calibration_revert(*, model_version: str, tenant: Tenant, actor: Actor) -> Calibration | None:
    """Withdraw the tenant's newest site calibration of ``model_version``; the previous one (or the shipped one) decides."""
    with transaction.atomic():
        row = (Calibration.objects.for_tenant(tenant).select_for_update().filter(model_version=model_version)
               .order_by("-created_at", "-id").first())
        if row is None:
            return None
        row_id = row.pk
        row.delete()
        audit_record(actor=actor, action=AuditAction.CALIBRATION_REVERT, tenant=tenant,
                     detail={"calibration_id": row_id, "model_version": model_version})
    row.pk = row_id
    return row
