"""The decision rules, written once: the service decides with them, evaluation and calibration measure them.

Scores are on one scale per call (cosine of unit embeddings, or its AS-norm); the caller
picks the scale and its thresholds. Nothing here knows where a threshold comes from.
"""
from __future__ import annotations

from typing import Literal

NoMatchReason = Literal["no_candidates", "below_threshold", "ambiguous"]
# How an identification match was reached: the best passed the threshold (and led by the margin), or, among many
# voices, it led the runner-up clearly (:func:`clear_lead`).
MatchedBy = Literal["threshold", "lead"]


def accepts(score: float, threshold: float) -> bool:
    """Verification (1:1): the claim is accepted when ``score >= threshold``."""
    return bool(score >= threshold)


def leads(best: float, second: float | None, margin: float) -> bool:
    """The best candidate leads the runner-up by at least ``margin`` (a lone candidate always leads)."""
    return second is None or best - second >= margin


def identify_outcome(best: float | None, second: float | None, *, threshold: float,
                     margin: float) -> NoMatchReason | None:
    """Identification (1:N, open set): why the best candidate is not a match, or None when it is.

    A match needs the best score ``>= threshold`` and a lead over the runner-up ``>= margin``.
    ``best`` is None when nobody was searched.
    """
    if best is None:
        return "no_candidates"
    if not accepts(best, threshold):
        return "below_threshold"
    if not leads(best, second, margin):
        return "ambiguous"
    return None


def clear_lead(best: float, second: float | None, *, floor: float, gap: float) -> bool:
    """Identification's second way to a match: the best candidate reaches ``floor`` and leads the runner-up by at
    least ``gap`` (both on the normalised scale; a lone candidate has no lead to read)."""
    return second is not None and best >= floor and best - second >= gap


def is_match(best: float, second: float | None, *, threshold: float, margin: float) -> bool:
    """:func:`identify_outcome` as a yes/no."""
    return identify_outcome(best, second, threshold=threshold, margin=margin) is None
