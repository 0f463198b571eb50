"""Calibration: measure thresholds on a deployment's labelled recordings, store them, withdraw them.

Offline tooling, used by ``manage.py evaluate`` and ``manage.py calibrate`` only (never imported
on the request path). The figures describe the decisions the service makes: files are embedded
by the service's engine and refused where the service would refuse them as probes, and the
thresholds are measured on the rules that decide (:mod:`inference.decisions`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction

from inference import InferenceError, evaluation
from inference.calibration import identify_threshold_within_target, threshold_within_target

from .. import asnorm as service_asnorm
from .. import inference_owner
from ..audit import Actor, audit_record
from ..exceptions import ApplicationError, CalibrationRefused
from ..models import AuditAction, Calibration, CalibrationMethod
from ..selectors import DecisionPolicy, decision_policy
from .recordings import Purpose, recording_check_quality

logger = logging.getLogger(__name__)

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

    def embed(path: Path) -> np.ndarray:
        result = inference_owner.embed(Path(path).read_bytes())  # a missing file: OSError, recorded
        if quality_gates:
            try:
                recording_check_quality(result=result, purpose=Purpose.PROBE)
            except ApplicationError as error:
                raise _QualityRefusal(error) from error
        return result.vector

    return evaluation.cached_embed_fn(embed)


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
    model_version = inference_owner.model_version()
    norm = service_asnorm.asnorm() if asnorm else None
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

    verify_threshold = verify_point("cosine")
    asnorm_verify = verify_point("asnorm") if norm else None
    figures: dict[str, Any] = {"verification": {
        "cosine": _verification_figures(verification, "cosine", new=verify_threshold, before=before.cosine.verify)}}
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
            try:
                probes, first = evaluation.identification_pooled(
                    utterances, audio_root, embed_fn, threshold=current.identify, margin=current.identify_margin,
                    enroll_per_speaker=enroll_per_speaker, unknown_speakers=unknown_speakers, asnorm=normaliser,
                    progress=progress)
            except ValueError as exc:
                raise CalibrationRefused(f"The identification list cannot be used: {exc}") from exc
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
        eer=float(verification["cosine"]["eer"]),
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
