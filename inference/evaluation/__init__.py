"""Offline accuracy evaluation: speaker verification (EER, minDCF, DET) and open-set identification.

One package by concern: :mod:`.lists` (trial and speaker lists), :mod:`.metrics` (DET, EER,
minDCF, identification rates, on the decision rules of :mod:`inference.decisions`),
:mod:`.experiments` (embedding files once and running the experiments), :mod:`.report` (JSON
and figures). The command line is the service's ``manage.py evaluate`` / ``calibrate``.
"""
from __future__ import annotations

from inference.evaluation.experiments import (
    EmbedFn,
    cached_embed_fn,
    embed_files,
    engine_embed_fn,
    evaluate_identification,
    evaluate_verification,
    identification_pooled,
    npz_embed_fn,
)
from inference.evaluation.lists import Trial, read_speaker_list, read_trials
from inference.evaluation.metrics import (
    P_TARGETS,
    compute_eer,
    compute_min_dcf,
    det_curve,
    identification_operating_point,
    rates_at_threshold,
    threshold_at_far,
    threshold_at_fir,
    verification_metrics,
)
from inference.evaluation.report import write_report

__all__ = [
    "EmbedFn", "cached_embed_fn", "embed_files", "engine_embed_fn", "evaluate_identification",
    "evaluate_verification", "identification_pooled", "npz_embed_fn",
    "Trial", "read_speaker_list", "read_trials",
    "P_TARGETS", "compute_eer", "compute_min_dcf", "det_curve", "identification_operating_point",
    "rates_at_threshold", "threshold_at_far", "threshold_at_fir", "verification_metrics",
    "write_report",
]
