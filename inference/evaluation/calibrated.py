"""Trials through a quality-aware calibration: the table of scores and qualities, fitting, per-condition reports.

Used by the one command that fits and reports the shipped calibration
(``tools/calibration_report.py``) and by the service's ``manage.py calibrate`` / ``evaluate``:
the same code measures exactly the rule that decides (:class:`inference.quality_calibration.Calibration`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.asnorm import ASNorm, as_norm_scores
from inference.decisions import is_match
from inference.evaluation.metrics import compute_eer, compute_min_dcf, rates_at_threshold, threshold_at_far
from inference.quality_calibration import (
    IDENTIFY_CONDITIONS,
    LEAD_MIN_GALLERY,
    SCALES,
    Calibration,
    IdentifyVerdict,
    SideQuality,
    feature_vector,
    fit_identify_offset,
    fit_scale,
    identify_class,
)
from inference.scoring import average_embeddings


@dataclass(frozen=True)
class Side:
    """One side of a trial: its vector and quality."""

    vector: np.ndarray
    quality: SideQuality


def enrollment_side(vectors: Sequence[np.ndarray], qualities: Sequence[SideQuality]) -> Side:
    """A voiceprint as the service builds it: the mean of its recordings' vectors, their total speech and
    mean SNR and bandwidth."""
    return Side(average_embeddings(list(vectors)),
                SideQuality(speech_s=float(sum(q.speech_s for q in qualities)),
                            snr_db=float(np.mean([q.snr_db for q in qualities])),
                            bandwidth_hz=float(np.mean([q.bandwidth_hz for q in qualities]))))


@dataclass
class TrialTable:
    """Scored trials: ``(N,)`` arrays, and the qualities of both sides."""

    labels: np.ndarray
    cosine: np.ndarray
    asnorm: np.ndarray | None
    enroll: list[SideQuality]
    probe: list[SideQuality]
    groups: np.ndarray  # a condition name per trial

    def scores(self, scale: str) -> np.ndarray:
        if scale == "asnorm":
            if self.asnorm is None:
                raise ValueError("the table was scored without AS-norm")
            return self.asnorm
        return self.cosine

    def features(self, names: Sequence[str]) -> np.ndarray:
        return np.stack([feature_vector(e, p, names) for e, p in zip(self.enroll, self.probe)])

    def subset(self, mask: np.ndarray) -> TrialTable:
        keep = np.flatnonzero(mask)
        return TrialTable(self.labels[keep], self.cosine[keep], None if self.asnorm is None else self.asnorm[keep],
                          [self.enroll[i] for i in keep], [self.probe[i] for i in keep], self.groups[keep])


def score_trials(pairs: Sequence[tuple[int, Side, Side, str]], asnorm: ASNorm | None) -> TrialTable:
    """``pairs``: ``(label, enrollment side, probe side, group)`` -> a :class:`TrialTable`."""
    if not pairs:
        raise ValueError("no trials to score")
    enroll = np.stack([p[1].vector for p in pairs]).astype(np.float32)
    probe = np.stack([p[2].vector for p in pairs]).astype(np.float32)
    cosine = np.clip(np.einsum("ij,ij->i", enroll, probe).astype(np.float64), -1.0, 1.0)
    normed = None
    if asnorm is not None:
        mu_e, sd_e = asnorm.stats_many(enroll)
        mu_p, sd_p = asnorm.stats_many(probe)
        normed = asnorm.normalise_many(cosine, enroll_stats=(mu_e, sd_e), test_stats=(mu_p, sd_p))
    return TrialTable(labels=np.array([p[0] for p in pairs], dtype=np.int8), cosine=cosine, asnorm=normed,
                      enroll=[p[1].quality for p in pairs], probe=[p[2].quality for p in pairs],
                      groups=np.array([p[3] for p in pairs], dtype=object))


def fit(table: TrialTable, *, model_version: str, scales: Sequence[str] = SCALES,
        trained_on: Mapping[str, Any] | None = None) -> Calibration:
    """Fit every scale of a calibration on a table of labelled trials."""
    from inference.quality_calibration import FEATURES

    fitted = {}
    for scale in scales:
        if scale == "asnorm" and table.asnorm is None:
            continue
        fitted[scale] = fit_scale(table.scores(scale), table.features(FEATURES), table.labels, FEATURES)
    return Calibration(model_version=model_version, scales=fitted, trained_on=dict(trained_on or {}))


def with_identification(calibration: Calibration, offsets: Mapping[str, tuple]) -> Calibration:
    """The calibration with each scale's identification ``(offset, margin[, offsets per condition])``."""
    scales = {name: dataclasses.replace(cal, identify_offset=float(offsets[name][0]),
                                        identify_margin=float(offsets[name][1]),
                                        identify_offsets=tuple(sorted(offsets[name][2].items()))
                                        if len(offsets[name]) > 2 else cal.identify_offsets)
              if name in offsets else cal for name, cal in calibration.scales.items()}
    return dataclasses.replace(calibration, scales=scales)


def with_leads(calibration: Calibration, leads: Mapping[str, Mapping[str, float]]) -> Calibration:
    """The calibration with each listed scale's identification lead rule (gap per condition); the other scales'
    rule removed (``leads={}``: the threshold alone, everywhere)."""
    scales = {name: dataclasses.replace(cal, identify_leads=tuple(sorted((c, float(g)) for c, g in
                                                                         leads.get(name, {}).items())))
              for name, cal in calibration.scales.items()}
    return dataclasses.replace(calibration, scales=scales)


# --- decisions on a table --------------------------------------------------------------------------

Decide = Callable[[TrialTable], tuple[np.ndarray, np.ndarray]]  # -> (decision scores, accepted)


def calibrated_decisions(calibration: Calibration, scale: str, far: float) -> Decide:
    """Decisions of a calibration on a table: its normalised scores ``t`` and ``t >= threshold``."""
    cal = calibration.scale(scale)

    def decide(table: TrialTable) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(cal.normalised(table.scores(scale), table.features(cal.features)), dtype=np.float64)
        return t, cal.accepts(t, far)

    return decide


def fixed_threshold_decisions(scale: str, threshold: float) -> Decide:
    """The decisions of one fixed threshold on a raw scale (how the service decided before calibration)."""

    def decide(table: TrialTable) -> tuple[np.ndarray, np.ndarray]:
        scores = table.scores(scale)
        return scores, scores >= threshold

    return decide


def condition_report(table: TrialTable, decide: Decide, *, far: float = 0.01) -> dict[str, dict[str, Any]]:
    """Per group (and ``all``): counts, EER, minDCF, FAR/FRR of the decisions, and the FRR the group would
    have at its own ``far`` threshold (the oracle the decision is measured against)."""
    scores, accepted = decide(table)
    out: dict[str, dict[str, Any]] = {}
    for group in ["all", *sorted(set(table.groups.tolist()))]:
        mask = np.ones(len(table.labels), bool) if group == "all" else table.groups == group
        y = table.labels[mask].astype(bool)
        entry: dict[str, Any] = {"targets": int(y.sum()), "impostors": int((~y).sum())}
        if y.any() and (~y).any():
            s, a = scores[mask], accepted[mask]
            entry["eer"] = compute_eer(s, y)[0]
            entry["min_dcf_0.01"] = compute_min_dcf(s, y, 0.01)[0]
            entry["far"] = float(a[~y].mean())
            entry["frr"] = float(1.0 - a[y].mean())
            entry["oracle_frr"] = rates_at_threshold(s, y, threshold_at_far(s, y, far))[1]
        out[group] = entry
    return out


def holds(entry: Mapping[str, Any], *, far: float = 0.01, far_band: tuple[float, float] = (0.5, 2.0),
          frr_ratio: float = 1.25) -> bool:
    """The operating point holds in a group: FAR within ``far_band`` x the target and FRR within
    ``frr_ratio`` x the group's own-threshold FRR."""
    if "far" not in entry:
        return True
    far_ok = far_band[0] * far <= entry["far"] <= far_band[1] * far
    return far_ok and entry["frr"] <= frr_ratio * entry["oracle_frr"] + 1e-9


def identification_inputs(scale: str, gallery: Sequence[Side], probes: Sequence[Side],
                          asnorm: ASNorm | None) -> np.ndarray:
    """Every probe's score against every enrolled side on ``scale`` (the cosine or its AS-norm): ``(P, K)``."""
    g = np.stack([s.vector for s in gallery]).astype(np.float32)
    p = np.stack([s.vector for s in probes]).astype(np.float32)
    raw = np.clip(p @ g.T, -1.0, 1.0).astype(np.float64)
    if scale != "asnorm":
        return raw
    if asnorm is None:
        raise ValueError("AS-norm scores need the cohort")
    mu_g, sd_g = asnorm.stats_many(g)
    mu_p, sd_p = asnorm.stats_many(p)
    return as_norm_scores(raw, mu_g[None, :], sd_g[None, :], mu_p[:, None], sd_p[:, None])


def identification_scores(calibration: Calibration, scale: str, gallery: Sequence[Side],
                          probes: Sequence[Side], asnorm: ASNorm | None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ``t`` and llr of every probe against every enrolled side (for fitting): two ``(P, K)`` arrays."""
    cal = calibration.scale(scale)
    scores = identification_inputs(scale, gallery, probes, asnorm)
    t = np.empty_like(scores)
    llr = np.empty_like(scores)
    for i, probe in enumerate(probes):
        x = np.stack([feature_vector(side.quality, probe.quality, cal.features) for side in gallery])
        t[i] = cal.normalised(scores[i], x)
        llr[i] = cal.llr_of(t[i], x)
    return t, llr


def identification_verdicts(calibration: Calibration, scale: str, gallery: Sequence[Side], probes: Sequence[Side],
                            asnorm: ASNorm | None, fir: float) -> list[IdentifyVerdict]:
    """Each probe identified against the whole gallery by the service's rule (:meth:`Calibration.identify`)."""
    scores = identification_inputs(scale, gallery, probes, asnorm)
    enroll = [side.quality for side in gallery]
    return [calibration.identify(scale=scale, scores=row, enroll=enroll, probe=probe.quality, fir=fir,
                                 gallery=len(gallery)) for row, probe in zip(scores, probes)]


@dataclass(frozen=True)
class IdentificationRun:
    """Training identification scores of one gallery: ``t``, ``llr`` ``(P, K)`` probe x gallery; ``known``
    ``(P,)`` whether the probe's speaker is enrolled; ``true_index`` its gallery column (-1: unknown)."""

    t: np.ndarray
    llr: np.ndarray
    known: np.ndarray
    true_index: np.ndarray
    # (P,) the identification condition (identify_class) of each probe's best pair; None: not split by condition
    condition: np.ndarray | None = None


# Unknown probes of one condition a run needs before it may set that condition's offset.
MIN_CONDITION_PROBES = 20


def fit_identification(calibration: Calibration, scale: str, runs: Sequence[IdentificationRun],
                       fir: float) -> tuple[float, float, dict[str, float]]:
    """``(offset, margin, offsets per condition)`` for one scale from training identification runs.

    The offset is the largest that any run needs for its unknown probes' best ``t`` to pass at ``fir``
    (so the target holds in every condition trained on, not only on average); per identification
    condition (:func:`identify_class` of each probe's best pair), the largest any run needs for the
    unknown probes of that condition (runs with at least ``MIN_CONDITION_PROBES`` of them), so a
    condition whose impostors never reach the worst one's level is not held to it. The margin (llr)
    turns away ambiguous matches without costing correct ones: the 1st percentile of the correct
    matches' leads over their runner-up, pooled over the runs, never negative.
    """
    cal = calibration.scale(scale)
    offsets, leads = [0.0], []
    by_condition: dict[str, list[float]] = {}
    for run in runs:
        if (~run.known).any():
            best_unknown = run.t[~run.known].max(axis=1)
            offsets.append(fit_identify_offset(cal, best_unknown, run.t.shape[1], fir))
            if run.condition is not None:
                conditions = np.asarray(run.condition)[~run.known]
                for condition in set(conditions.tolist()):
                    mine = best_unknown[conditions == condition]
                    if len(mine) >= MIN_CONDITION_PROBES:
                        by_condition.setdefault(condition, [0.0]).append(
                            fit_identify_offset(cal, mine, run.t.shape[1], fir))
        if run.t.shape[1] >= 2:
            order = np.argsort(-run.llr, axis=1)
            rows = np.arange(len(run.llr))
            lead = run.llr[rows, order[:, 0]] - run.llr[rows, order[:, 1]]
            leads.append(lead[run.known & (order[:, 0] == run.true_index)])
    pooled = np.concatenate(leads) if leads else np.array([])
    margin = float(max(0.0, np.quantile(pooled, 0.01))) if pooled.size else 0.0
    return max(offsets), margin, {condition: max(values) for condition, values in sorted(by_condition.items())}


# --- identification's lead rule -------------------------------------------------------------------

# Unknown probes of one condition the pooled runs need before that condition gets a gap.
MIN_LEAD_PROBES = MIN_CONDITION_PROBES
# The share of the false-identification target the gaps may spend on the training runs (the rest is the margin
# for speakers the fit never saw).
LEAD_FIR_SHARE = 0.5


@dataclass(frozen=True)
class LeadRun:
    """One identification run as the lead rule reads it, per probe: whether the threshold rule matched, the gallery
    index of its best candidate (by llr, as the service ranks), its lead over the runner-up in ``t`` (NaN with one
    voice), its best's ``t``, its identification condition, whether its speaker is enrolled and that speaker's
    index (-1: unknown)."""

    condition: str
    gallery: int
    by_threshold: np.ndarray
    best: np.ndarray
    lead: np.ndarray
    klass: np.ndarray
    known: np.ndarray
    truth: np.ndarray
    best_t: np.ndarray | None = None

    def gap_lead(self, floor: float) -> np.ndarray:
        """The leads the gap may read: -inf where the best's t is under ``floor`` (or with one voice)."""
        lead = np.nan_to_num(self.lead, nan=-np.inf)
        if floor == -np.inf:
            return lead
        if self.best_t is None:
            raise ValueError("a floor needs the best candidates' t (best_t)")
        return np.where(self.best_t >= floor, lead, -np.inf)


def best_and_lead(t: np.ndarray, llr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P, K)`` scores of probes against a gallery: each probe's best candidate by llr and its lead in ``t`` over
    the runner-up by llr (NaN with a one-voice gallery)."""
    order = np.argsort(-llr, axis=1, kind="stable")
    rows = np.arange(len(t))
    if t.shape[1] < 2:
        return order[:, 0], np.full(len(t), np.nan)
    return order[:, 0], t[rows, order[:, 0]] - t[rows, order[:, 1]]


def lead_runs(calibration: Calibration, raw_runs: Mapping, *, scale: str, fir: float,
              asnorm: ASNorm | None = None) -> list[LeadRun]:
    """Identification runs ``{name: (gallery sides, gallery speakers, probe sides, probe speakers)}`` decided by
    ``calibration``'s rule on ``scale``, with what the lead rule reads."""
    out = []
    for condition, (gallery, names, probes, speakers) in raw_runs.items():
        t, llr = identification_scores(calibration, scale, gallery, probes, asnorm)
        verdicts = identification_verdicts(calibration, scale, gallery, probes, asnorm, fir)
        best, lead = best_and_lead(t, llr)
        out.append(LeadRun(condition=condition, gallery=len(gallery), by_threshold=np.array([v.matched for v in verdicts]),
                           best=best, lead=lead, best_t=t[np.arange(len(t)), best],
                           klass=np.array([identify_class(gallery[b].quality, p.quality) for b, p in zip(best, probes)]),
                           known=np.array([s in names for s in speakers]),
                           truth=np.array([names.index(s) if s in names else -1 for s in speakers])))
    return out


def fit_identify_leads(runs: Sequence[LeadRun], fir: float, floor: float = -np.inf) -> dict[str, float]:
    """Per identification condition, the smallest lead whose union with the threshold rule keeps the pooled unknown
    probes of the runs (galleries of :data:`LEAD_MIN_GALLERY` or more) matched at or under ``fir``; conditions with
    fewer than :data:`MIN_LEAD_PROBES` unknown probes get none (the threshold alone). With ``floor`` the gap matches
    only a best candidate whose t reaches it, and a condition none of whose unknown probes reaches the floor gets
    none (nothing to fit it on)."""
    gaps = {}
    for condition in IDENTIFY_CONDITIONS:
        lead, threshold = [], []
        for run in runs:
            if run.gallery < LEAD_MIN_GALLERY:
                continue
            mine = ~run.known & (run.klass == condition)
            lead.append(run.gap_lead(floor)[mine])
            threshold.append(run.by_threshold[mine])
        lead_all = np.concatenate(lead) if lead else np.zeros(0)
        threshold_all = np.concatenate(threshold).astype(bool) if threshold else np.zeros(0, dtype=bool)
        finite = np.sort(lead_all[np.isfinite(lead_all)])[::-1]
        if len(lead_all) < MIN_LEAD_PROBES or not len(finite):  # no unknown probe the gap could read: no evidence
            continue
        gap = float(finite[0]) + 1e-9  # nothing more than the threshold rule
        for candidate in finite:
            if np.mean(threshold_all | (lead_all >= candidate)) > fir:
                break
            gap = float(candidate)
        gaps[condition] = gap
    return gaps


def _runner_up(scores: np.ndarray, order: np.ndarray) -> list[float | None]:
    """Each probe's second-best score (None with a one-voice gallery: a lone candidate has no runner-up)."""
    if scores.shape[1] < 2:
        return [None] * len(scores)
    return [float(v) for v in scores[np.arange(len(scores)), order[:, 1]]]


def identification_rates_fixed(scores: np.ndarray, known: np.ndarray, truth: np.ndarray, threshold: float,
                               margin: float) -> dict[str, Any]:
    """Correct-match and false-identification rates of a fixed threshold and margin on ``(P, K)`` scores."""
    order = np.argsort(-scores, axis=1)
    best = scores[np.arange(len(scores)), order[:, 0]]
    matched = np.array([is_match(float(b), s, threshold=threshold, margin=margin)
                        for b, s in zip(best, _runner_up(scores, order))], dtype=bool)
    return match_rates(matched, order[:, 0], known, truth)


def identification_rates(verdicts: Sequence[IdentifyVerdict], known: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Correct-match and false-identification rates of the calibrated rule's verdicts (one per probe)."""
    matched = np.array([v.matched for v in verdicts], dtype=bool)
    best = np.array([-1 if v.best is None else v.best for v in verdicts], dtype=int)
    return match_rates(matched, best, known, truth)


def match_rates(matched: np.ndarray, best_index: np.ndarray, known: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Top-1, correct-match and false-identification rates of ``(P,)`` probes: whether each was matched, its best
    candidate's gallery index, whether its speaker is enrolled, and that speaker's index (-1: unknown)."""
    correct = matched & known & (best_index == truth)
    return {"known_probes": int(known.sum()), "unknown_probes": int((~known).sum()),
            "top1": float((best_index == truth)[known].mean()) if known.any() else None,
            "correct_match": float(correct[known].mean()) if known.any() else None,
            "false_identification": float(matched[~known].mean()) if (~known).any() else None}
