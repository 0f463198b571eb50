"""Verification and identification metrics: DET, EER, minDCF, rates at a threshold, identification rates.

Conventions: a trial is accepted when ``score >= threshold``
(:func:`inference.decisions.accepts`); ``fpr`` (false-acceptance rate, FAR) is the fraction of
non-target trials accepted, ``fnr`` (false-rejection / miss rate, FRR) the fraction of target
trials rejected. The EER is read off the piecewise-linear ROC where ``fnr == fpr``,
interpolating between the two operating points that bracket it, as NIST's and wespeaker's
``compute_eer`` and the VoxCeleb ``brentq`` recipe do; reports also carry SpeechBrain's variant
(best observed operating point, ``(far + frr) / 2``). minDCF is the NIST/VoxSRC normalised
detection cost ``min_t (c_miss p fnr(t) + c_fa (1 - p) fpr(t)) / min(c_miss p, c_fa (1 - p))``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from inference.decisions import is_match, leads

P_TARGETS: tuple[float, ...] = (0.01, 0.05)


def _scores_labels(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and labels must be 1-D of the same length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    y = y.astype(bool)
    if not y.any() or y.all():
        raise ValueError("need at least one target and one non-target score")
    return s, y


def det_curve(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every operating point of a score list.

    Parameters
    ----------
    scores
        ``(N,)`` trial scores.
    labels
        ``(N,)`` 1 for target, 0 for non-target trials.

    Returns
    -------
    (fpr, fnr, thresholds)
        Three ``(U + 1,)`` float64 arrays, ``U`` the number of distinct scores. ``thresholds``
        ascend: the distinct scores, then one value just above the highest score (reject
        everything). ``fpr[i]`` is the fraction of non-targets with ``score >= thresholds[i]``
        (non-increasing), ``fnr[i]`` the fraction of targets with ``score < thresholds[i]``
        (non-decreasing). The first point accepts everything (``fpr = 1, fnr = 0``), the
        last rejects everything (``fpr = 0, fnr = 1``).
    """
    s, y = _scores_labels(scores, labels)
    order = np.argsort(s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    thresholds, first = np.unique(s_sorted, return_index=True)
    n_target = int(y.sum())
    n_nontarget = y.size - n_target
    targets_below = np.concatenate([[0], np.cumsum(y_sorted)])[first]
    nontargets_below = np.concatenate([[0], np.cumsum(~y_sorted)])[first]
    fnr = np.append(targets_below / n_target, 1.0)
    fpr = np.append((n_nontarget - nontargets_below) / n_nontarget, 0.0)
    thresholds = np.append(thresholds, np.nextafter(thresholds[-1], np.inf))
    return fpr, fnr, thresholds


def compute_eer(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    method: Literal["roc", "speechbrain"] = "roc",
) -> tuple[float, float]:
    """Equal error rate and the threshold where it is reached.

    Parameters
    ----------
    scores, labels
        ``(N,)`` scores and ``(N,)`` labels (1 target, 0 non-target).
    method
        ``"roc"`` (default): where the piecewise-linear ROC crosses ``fnr == fpr``; between
        the two operating points that bracket the crossing, rates and threshold are
        interpolated linearly (NIST / wespeaker ``compute_eer``, the VoxCeleb ``brentq``
        recipe). ``"speechbrain"``: ``speechbrain.utils.metric_stats.EER``, i.e. the
        operating point (no interpolation, accept-all excluded) with the smallest
        ``|far - frr|`` in float32, first one on ties, reporting ``(far + frr) / 2``. The two
        differ by up to half a step of ``1/N``; the figures of the shared speech set's README use
        the SpeechBrain definition.

    Returns
    -------
    (eer, threshold)
        EER as a fraction in [0, 1] (not a percentage); threshold on the score scale.
    """
    fpr, fnr, thresholds = det_curve(scores, labels)
    if method == "speechbrain":
        far = fpr[1:].astype(np.float32)
        frr = fnr[1:].astype(np.float32)
        i = int(np.argmin(np.abs(far - frr)))
        # SpeechBrain accepts ``score > u_i``; the midpoint to the next threshold gives the
        # same decisions under this module's ``score >= threshold``.
        return float((float(far[i]) + float(frr[i])) / 2), float(0.5 * (thresholds[i] + thresholds[i + 1]))
    if method != "roc":
        raise ValueError(f"unknown EER method {method!r}")
    diff = fnr - fpr  # -1 at the first point, +1 at the last, non-decreasing
    i = int(np.argmax(diff >= 0.0))
    if diff[i] == 0.0:
        # Several consecutive points may lie on the diagonal; take the middle of that run.
        j = i + int(np.argmax(diff[i:] > 0.0))
        return float(fpr[i]), float(0.5 * (thresholds[i] + thresholds[j - 1]))
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    threshold = thresholds[i - 1] + t * (thresholds[i] - thresholds[i - 1])
    return float(eer), float(threshold)


def compute_min_dcf(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """Minimum normalised detection cost (NIST SRE / VoxSRC definition).

    ``DCF(t) = c_miss * p_target * fnr(t) + c_fa * (1 - p_target) * fpr(t)``, divided by
    the cost of the best trivial system ``min(c_miss * p_target, c_fa * (1 - p_target))``,
    minimised over all operating points (so the result is at most 1).

    Returns
    -------
    (min_dcf, threshold)
        The normalised minimum and the threshold that reaches it.
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    fpr, fnr, thresholds = det_curve(scores, labels)
    cost = c_miss * p_target * fnr + c_fa * (1.0 - p_target) * fpr
    i = int(np.argmin(cost))
    return float(cost[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(thresholds[i])


def threshold_at_far(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, far: float) -> float:
    """Lowest threshold whose false-acceptance rate on these trials is at most ``far``.

    The lowest such threshold rejects the fewest targets. It is one of the observed scores
    (or just above the highest one), so with ``N`` non-targets the FAR granularity is ``1/N``.
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    fpr, _, thresholds = det_curve(scores, labels)
    return float(thresholds[int(np.argmax(fpr <= far))])


def rates_at_threshold(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, threshold: float
) -> tuple[float, float]:
    """``(far, frr)`` of the decision ``score >= threshold`` on these trials."""
    s, y = _scores_labels(scores, labels)
    accepted = s >= threshold
    return float(accepted[~y].mean()), float((~accepted[y]).mean())


def verification_metrics(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    far_target: float = 0.01,
    p_targets: Sequence[float] = P_TARGETS,
) -> dict[str, Any]:
    """All summary figures of one score list, as a JSON-ready dict.

    Keys: ``eer``, ``eer_threshold`` (ROC-interpolated), ``eer_speechbrain``,
    ``eer_speechbrain_threshold`` (SpeechBrain's definition, see :func:`compute_eer`),
    ``min_dcf`` (a list of ``{p_target, min_dcf, threshold}``), ``far_target``,
    ``threshold_at_far`` with the ``far`` / ``frr`` it gives
    on these trials, and target / non-target score means and standard deviations.
    """
    s, y = _scores_labels(scores, labels)
    eer, eer_threshold = compute_eer(s, y)
    eer_sb, eer_sb_threshold = compute_eer(s, y, method="speechbrain")
    at_far = threshold_at_far(s, y, far_target)
    far, frr = rates_at_threshold(s, y, at_far)
    return {
        "eer": eer,
        "eer_threshold": eer_threshold,
        "eer_speechbrain": eer_sb,
        "eer_speechbrain_threshold": eer_sb_threshold,
        "min_dcf": [dict(zip(("p_target", "min_dcf", "threshold"), (p, *compute_min_dcf(s, y, p)))) for p in p_targets],
        "far_target": far_target,
        "threshold_at_far": at_far,
        "far_at_threshold": far,
        "frr_at_threshold": frr,
        "target_mean": float(s[y].mean()),
        "target_std": float(s[y].std()),
        "nontarget_mean": float(s[~y].mean()),
        "nontarget_std": float(s[~y].std()),
    }


def identification_operating_point(
    probes: Sequence[Mapping[str, Any]], *, threshold: float, margin: float = 0.0, top_k: int = 5
) -> dict[str, Any]:
    """Identification figures for one ``(threshold, margin)`` from the ``probes`` of a report.

    Lets a threshold or margin sweep reuse one :func:`evaluate_identification` run.

    Returns
    -------
    dict
        ``{"known": {...} | None, "unknown": {...} | None}``, rates as fractions.
    """

    def matched(p: Mapping[str, Any]) -> bool:
        return is_match(p["best_score"], p["second_score"], threshold=threshold, margin=margin)

    known = [p for p in probes if p["known"]]
    unknown = [p for p in probes if not p["known"]]
    out: dict[str, Any] = {"known": None, "unknown": None}
    if known:
        n = len(known)
        correct = sum(1 for p in known if p["true_rank"] == 0 and matched(p))
        wrong = sum(1 for p in known if p["true_rank"] != 0 and matched(p))
        out["known"] = {
            "top1_accuracy": sum(1 for p in known if p["true_rank"] == 0) / n,
            "topk_accuracy": sum(1 for p in known if p["true_rank"] is not None and p["true_rank"] < top_k) / n,
            "correct_match_rate": correct / n,
            "wrong_match_rate": wrong / n,
            "no_match_rate": (n - correct - wrong) / n,
        }
    if unknown:
        out["unknown"] = {"false_identification_rate": sum(1 for p in unknown if matched(p)) / len(unknown)}
    return out


def threshold_at_fir(probes: Sequence[Mapping[str, Any]], fir: float, *, margin: float = 0.0) -> float:
    """Lowest identification threshold whose false-identification rate on these probes is at most ``fir``.

    An unknown probe is falsely identified when its best score is ``>= threshold`` and leads
    the runner-up by ``>= margin``; probes whose lead is below the margin never are.

    Parameters
    ----------
    probes
        The ``probes`` of an :func:`evaluate_identification` report (needs unknown probes).
    fir
        Target false-identification rate in [0, 1].
    margin
        The margin the threshold will be used with.

    Returns
    -------
    float
        On the report's scale: just above the best score of the unknown probe that would
        exceed the allowed count, or the lowest best score of any probe when no unknown
        probe can be matched.
    """
    if not 0.0 <= fir <= 1.0:
        raise ValueError(f"fir must be in [0, 1], got {fir}")
    unknown = [p for p in probes if not p["known"]]
    if not unknown:
        raise ValueError("threshold_at_fir needs probes of unknown speakers")
    eligible = sorted((p["best_score"] for p in unknown if leads(p["best_score"], p["second_score"], margin)),
                      reverse=True)
    allowed = int(math.floor(fir * len(unknown) + 1e-9))
    if len(eligible) <= allowed:
        return float(min(p["best_score"] for p in probes))
    return float(np.nextafter(eligible[allowed], np.inf))
