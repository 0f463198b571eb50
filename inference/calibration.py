"""Thresholds measured on labelled trials (calibration maths; no Django).

The service stores what these return (``manage.py calibrate``); the rules they measure are the
ones that decide (:mod:`inference.decisions`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.decisions import leads
from inference.evaluation.metrics import threshold_at_far, threshold_at_fir


def _middle_of_same_decisions(low: float, scores: Sequence[float], kept: Sequence[float]) -> float:
    """Middle of the thresholds that decide like ``low`` or better: above the highest score below
    ``low``, up to the lowest of the ``kept`` scores (those ``low`` accepts and must stay accepted)."""
    below = [x for x in scores if x < low]
    above = [x for x in kept if x >= low]
    if not below or not above:
        return float(low)
    return float(0.5 * (max(below) + min(above)))


def threshold_within_target(scores: Sequence[float], labels: Sequence[int], far: float) -> float:
    """The verification threshold a calibration stores for a target false-accept rate.

    :func:`inference.evaluation.threshold_at_far` gives the lowest threshold whose FAR on the
    trials is at most ``far``: it rejects the fewest targets, but it sits right on the highest
    non-target it lets in, and when targets and non-targets separate it accepts every voice a
    little less alike than the ones tried. Every threshold above the score below it and up to the
    lowest target it accepts decides the trials as well (the same targets, no more non-targets);
    this returns the middle of that range, as an EER threshold sits in the middle of a gap. On
    dense trials the difference is a rounding error; on a small, well-separated set it matters.
    """
    low = threshold_at_far(scores, labels, far)
    return _middle_of_same_decisions(low, list(scores), [x for x, y in zip(scores, labels) if y == 1])


def identify_threshold_within_target(probes: Sequence[dict[str, Any]], fir: float, *, margin: float) -> float:
    """The identification threshold a calibration stores for a target false-identification rate.

    As :func:`threshold_within_target`, around :func:`inference.evaluation.threshold_at_fir`:
    the middle of the thresholds with the same correct matches and no more false identifications.
    """
    low = threshold_at_fir(probes, fir, margin=margin)
    correct = [p["best_score"] for p in probes
               if p["known"] and p["true_rank"] == 0 and leads(p["best_score"], p["second_score"], margin)]
    return _middle_of_same_decisions(low, [p["best_score"] for p in probes], correct)
