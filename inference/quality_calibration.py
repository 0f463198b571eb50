"""Quality-aware calibration: from a raw score and the quality of both recordings to a decision that holds.

A cosine (or its AS-norm) means different things for different recordings: two 1 s clips of
strangers score higher than two 10 s clips of strangers, two telephone recordings higher than
two studio ones, and an emotional voice scores lower against its own calm enrollment. One fixed
threshold therefore accepts too many impostors in some conditions and rejects too many genuine
speakers in others. This module fixes that in two steps, both fitted on labelled trials:

1. **Impostor normalisation.** For trials between *different* speakers, the score's mean and
   spread are modelled as linear functions of quality measures of the two recordings (net speech
   of enrollment and probe, probe SNR, narrowband channel on either side): a Gaussian whose mean
   and log standard deviation are linear in the features, fitted by maximum likelihood. A trial's
   normalised score ``t = (score - mean(q)) / sd(q)`` says how far it stands above the impostors
   of recordings like these. One threshold on ``t``, the ``1 - FAR`` quantile of the training
   impostors' ``t``, then gives about the same false-accept rate in every condition.
2. **Log-likelihood ratio.** ``llr = a * t + b . features`` by logistic regression (the NIST SRE /
   VoxSRC quality-measure-function calibration), with the classes weighted to equal priors: the
   natural log of how much more likely the two recordings are of one speaker than of two.
   Every decision reports it, and its threshold for that trial is the llr at ``t = threshold``:
   accepting ``llr >= threshold`` is accepting ``t >= threshold on t`` (``a > 0``).

Identification (1:N): an unknown voice is falsely identified when the best of ``N`` impostor
scores passes; with ``t`` close to a standard normal for impostors, the threshold for a
false-identification rate ``fir`` among ``N`` enrolled voices is ``Phi^-1((1 - fir)^(1/N))`` plus an
offset measured on training identification lists. A degraded genuine probe (1 s of speech, a telephone band, loud
noise) often still ranks its speaker first by far yet falls short of that threshold; so, among
:data:`LEAD_MIN_GALLERY` voices or more, the best is also a match when it leads the runner-up by a gap in ``t``
fitted per probe condition on the same lists and passes verification's threshold at a low FAR (the floor): what
the ranking finds is kept without spending more of the false-identification target (docs/identification-lead.md).

Nothing here knows where the trials come from; :func:`fit_scale` takes arrays.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.decisions import MatchedBy, NoMatchReason, clear_lead, identify_outcome

# The score scales a calibration reads: the raw cosine of unit embeddings, or its AS-norm.
COSINE = "cosine"
ASNORM = "asnorm"
SCALES: tuple[str, ...] = (COSINE, ASNORM)
# A recording is narrowband (a telephone channel) below this bandwidth.
NARROWBAND_HZ = 5000.0
# The quality terms a calibration is fitted with (tools/calibration_features.py measured which pay: the probe's
# SNR read up to 20 dB only, beyond which its estimate is noise that reordered clean pairs, and no term for the
# enrollment's net speech; with these the calibrated score ranks pairs at least as well as the raw cosine in
# every held-out condition). A calibration keeps the features it was fitted with.
FEATURES: tuple[str, ...] = ("log_probe_speech", "probe_snr_20", "probe_narrowband", "enroll_narrowband",
                             "both_narrowband")
# Identification's lead rule reads the runner-up only in galleries of this many voices or more: among fewer, the
# runner-up says little about how high an impostor may score.
LEAD_MIN_GALLERY = 12
# The false-accept rates whose thresholds a calibration keeps (any other target interpolates).
FAR_GRID: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


@dataclass(frozen=True)
class SideQuality:
    """Quality measures of one side of a trial (a recording, or the enrollments of a voiceprint)."""

    speech_s: float
    snr_db: float = 30.0
    bandwidth_hz: float = 8000.0


# Probe conditions the identification threshold is fitted for (identify_class): the impostor model already
# normalises each pair, but the best of N impostors behaves differently in each, so each gets its own offset.
IDENTIFY_CONDITIONS: tuple[str, ...] = ("telephone", "short", "noisy", "clean")


def identify_class(enroll: SideQuality, probe: SideQuality) -> str:
    """The condition of an identification pair: a narrowband side, a short probe (< 2.5 s of speech), a noisy
    one (< 10 dB SNR), else clean (checked in that order)."""
    if probe.bandwidth_hz < NARROWBAND_HZ or enroll.bandwidth_hz < NARROWBAND_HZ:
        return "telephone"
    if probe.speech_s < 2.5:
        return "short"
    if probe.snr_db < 10.0:
        return "noisy"
    return "clean"


def feature_vector(enroll: SideQuality, probe: SideQuality, names: Sequence[str] = FEATURES) -> np.ndarray:
    """``[1, features...]`` of one trial: ``(1 + len(names),)`` float64."""
    narrow_probe = float(probe.bandwidth_hz < NARROWBAND_HZ)
    narrow_enroll = float(enroll.bandwidth_hz < NARROWBAND_HZ)
    values = {
        "log_probe_speech": math.log(min(max(probe.speech_s, 0.3), 30.0)),
        "log_enroll_speech": math.log(min(max(enroll.speech_s, 1.0), 120.0)),
        "probe_snr": min(max(probe.snr_db, 0.0), 40.0) / 10.0,
        "probe_snr_20": min(max(probe.snr_db, 0.0), 20.0) / 10.0,
        "enroll_snr": min(max(enroll.snr_db, 0.0), 40.0) / 10.0,
        "probe_narrowband": narrow_probe,
        "enroll_narrowband": narrow_enroll,
        "both_narrowband": narrow_probe * narrow_enroll,
    }
    return np.array([1.0] + [values[name] for name in names], dtype=np.float64)


def feature_rows(enroll: Sequence[SideQuality], probe: Sequence[SideQuality],
                 names: Sequence[str] = FEATURES) -> np.ndarray:
    """:func:`feature_vector` of many trials at once: ``(N, 1 + len(names))`` float64, row ``i`` for
    ``(enroll[i], probe[i])``."""
    def column(sides: Sequence[SideQuality], attribute: str) -> np.ndarray:
        return np.fromiter((getattr(side, attribute) for side in sides), dtype=np.float64, count=len(sides))

    narrow_probe = (column(probe, "bandwidth_hz") < NARROWBAND_HZ).astype(np.float64)
    narrow_enroll = (column(enroll, "bandwidth_hz") < NARROWBAND_HZ).astype(np.float64)
    values = {
        "log_probe_speech": _log(np.clip(column(probe, "speech_s"), 0.3, 30.0)),
        "log_enroll_speech": _log(np.clip(column(enroll, "speech_s"), 1.0, 120.0)),
        "probe_snr": np.clip(column(probe, "snr_db"), 0.0, 40.0) / 10.0,
        "probe_snr_20": np.clip(column(probe, "snr_db"), 0.0, 20.0) / 10.0,
        "enroll_snr": np.clip(column(enroll, "snr_db"), 0.0, 40.0) / 10.0,
        "probe_narrowband": narrow_probe,
        "enroll_narrowband": narrow_enroll,
        "both_narrowband": narrow_probe * narrow_enroll,
    }
    return np.column_stack([np.ones(len(probe))] + [values[name] for name in names])


def _log(values: np.ndarray) -> np.ndarray:
    """``math.log`` of each value (bit for bit what :func:`feature_vector` computes; numpy's log may differ in the
    last bit)."""
    return np.fromiter((math.log(v) for v in values.tolist()), dtype=np.float64, count=len(values))


@dataclass(frozen=True)
class ScaleCalibration:
    """The calibration of one score scale (``cosine`` or ``asnorm``)."""

    features: tuple[str, ...]
    impostor_mean: tuple[float, ...]
    impostor_log_sd: tuple[float, ...]
    llr: tuple[float, ...]  # (a, b_bias, b_feature...)
    # Threshold on the normalised score t at each FAR of FAR_GRID (training impostors' quantiles).
    t_at_far: tuple[float, ...]
    # Identification: offset added to the Gaussian threshold, and the llr lead over the runner-up.
    identify_offset: float = 0.0
    identify_margin: float = 0.0
    # Per probe condition (identify_class), the offset that condition needs; a condition not listed uses
    # identify_offset (the largest any training gallery needed).
    identify_offsets: tuple[tuple[str, float], ...] = ()
    # Per probe condition, the lead in t over the runner-up that also makes the best a match (galleries of
    # LEAD_MIN_GALLERY voices or more), when its t passes verification's threshold at identify_lead_floor_far; a
    # condition not listed has no lead rule (the threshold alone decides).
    identify_leads: tuple[tuple[str, float], ...] = ()
    identify_lead_floor_far: float = 0.001

    def features_of(self, enroll: SideQuality, probe: SideQuality) -> np.ndarray:
        return feature_vector(enroll, probe, self.features)

    def normalised(self, score: float | np.ndarray, x: np.ndarray) -> float | np.ndarray:
        """``t``: the score in standard deviations above the impostors of such recordings."""
        mean = x @ np.asarray(self.impostor_mean)
        sd = np.exp(x @ np.asarray(self.impostor_log_sd))
        return (score - mean) / sd

    def llr_of(self, t: float | np.ndarray, x: np.ndarray) -> float | np.ndarray:
        weights = np.asarray(self.llr)
        return weights[0] * t + x @ weights[1:]

    def verify_t(self, far: float) -> float:
        """Threshold on ``t`` for a false-accept rate (log-interpolated on the fitted grid)."""
        grid = np.log(np.asarray(FAR_GRID))
        return float(np.interp(math.log(min(max(far, FAR_GRID[0]), FAR_GRID[-1])), grid, np.asarray(self.t_at_far)))

    def accepts(self, t: float | np.ndarray, far: float) -> bool | np.ndarray:
        """The verification rule on normalised scores: accept when ``t`` reaches the threshold for ``far``."""
        return t >= self.verify_t(far)

    def identify_t(self, fir: float, gallery: int, condition: str | None = None) -> float:
        """Threshold on the best candidate's ``t`` for a false-identification rate among ``gallery`` voices (for a
        pair in ``condition``: its own offset when the calibration has one)."""
        per_impostor = 1.0 - (1.0 - fir) ** (1.0 / max(gallery, 1))
        return _normal_upper_quantile(per_impostor) + self.offset_for(condition)

    def offset_for(self, condition: str | None) -> float:
        return dict(self.identify_offsets).get(condition, self.identify_offset) if condition else self.identify_offset

    def lead_for(self, condition: str, gallery: int) -> tuple[float, float] | None:
        """``(gap, floor)`` on ``t`` of the lead rule for a best pair in ``condition`` among ``gallery`` voices, or
        None where it has none (a small gallery, a condition without a fitted gap)."""
        gap = dict(self.identify_leads).get(condition)
        if gap is None or gallery < LEAD_MIN_GALLERY:
            return None
        return float(gap), self.verify_t(self.identify_lead_floor_far)


@dataclass(frozen=True)
class Verdict:
    """A calibrated 1:1 decision."""

    llr: float
    threshold: float  # on the llr scale, for this trial's quality
    accepted: bool
    normalised: float  # t


@dataclass(frozen=True)
class IdentifyVerdict:
    """A calibrated 1:N, open-set decision over the candidates a search returned.

    ``llrs`` ``(K,)``: each candidate's llr, in the order the candidates were given; ``order``:
    their indices best first. ``threshold``: the llr the best candidate must reach (the
    identification threshold for this gallery, on its own pair's llr scale; NaN without
    candidates); ``margin``: the lead it needs over ``runner_up``. ``no_match_reason`` is None
    when the best candidate is a match, and ``matched_by`` then says how (``threshold``, or ``lead``:
    short of the threshold, it led the runner-up by ``lead_rule``'s gap and passed its floor, both on ``t``).
    ``ts`` ``(K,)``: each candidate's ``t``; ``lead``: the best's ``t`` over the runner-up's (None with one
    candidate); ``lead_rule``: ``(gap, floor)`` for the best's pair, None where the rule has none.
    """

    llrs: np.ndarray
    order: np.ndarray
    threshold: float
    margin: float
    runner_up: float | None
    no_match_reason: NoMatchReason | None
    ts: np.ndarray
    matched_by: MatchedBy | None = None
    lead: float | None = None
    lead_rule: tuple[float, float] | None = None

    @property
    def best(self) -> int | None:
        """The best candidate's index, or None without candidates."""
        return int(self.order[0]) if len(self.order) else None

    @property
    def matched(self) -> bool:
        return self.no_match_reason is None


@dataclass(frozen=True)
class Calibration:
    """How a model version's scores become decisions: per scale, for any recording quality."""

    model_version: str
    scales: dict[str, ScaleCalibration]
    trained_on: dict[str, Any] = field(default_factory=dict)

    def scale(self, name: str) -> ScaleCalibration:
        try:
            return self.scales[name]
        except KeyError as exc:
            raise ValueError(f"this calibration has no {name!r} scale (it has {sorted(self.scales)})") from exc

    def verify(self, *, scale: str, score: float, enroll: SideQuality, probe: SideQuality, far: float) -> Verdict:
        """Accept when the normalised score passes the threshold for ``far``; report the llr and its threshold."""
        cal = self.scale(scale)
        x = cal.features_of(enroll, probe)
        t = float(cal.normalised(score, x))
        tau = cal.verify_t(far)
        return Verdict(llr=float(cal.llr_of(t, x)), threshold=float(cal.llr_of(tau, x)),
                       accepted=bool(cal.accepts(t, far)), normalised=t)

    def identify(self, *, scale: str, scores: Sequence[float] | np.ndarray, enroll: Sequence[SideQuality],
                 probe: SideQuality, fir: float, gallery: int) -> IdentifyVerdict:
        """The open-set rule: rank the candidates by llr; the best is a match when it passes the threshold
        for ``fir`` among ``gallery`` searched voices and leads the runner-up by the calibrated margin.

        ``scores``: each candidate's score on ``scale`` (the cosine, or its AS-norm), with its
        voiceprint's quality in ``enroll``; ``probe``: the probe's quality. More voices searched give
        an impostor more chances, so the threshold rises with ``gallery``.
        """
        cal = self.scale(scale)
        features = [cal.features_of(side, probe) for side in enroll]
        ts = np.asarray([cal.normalised(score, x) for score, x in zip(scores, features)], dtype=np.float64)
        llrs = np.asarray([cal.llr_of(t, x) for t, x in zip(ts, features)], dtype=np.float64)
        order = np.argsort(-llrs, kind="stable")
        if not len(order):
            return _decided(llrs, ts, order, threshold=float("nan"), margin=cal.identify_margin, lead_rule=None)
        condition = identify_class(enroll[order[0]], probe)
        threshold = float(cal.llr_of(cal.identify_t(fir, gallery, condition), features[order[0]]))
        return _decided(llrs, ts, order, threshold=threshold, margin=cal.identify_margin,
                        lead_rule=cal.lead_for(condition, gallery))

    def to_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "far_grid": list(FAR_GRID), "trained_on": self.trained_on,
                "scales": {name: asdict(cal) for name, cal in self.scales.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if list(data.get("far_grid", FAR_GRID)) != list(FAR_GRID):
            raise ValueError("the calibration was fitted on another FAR grid")
        scales = {}
        for name, raw in data["scales"].items():
            values = dict(raw)
            for key in ("features", "impostor_mean", "impostor_log_sd", "llr", "t_at_far"):
                values[key] = tuple(values[key])
            values["identify_offsets"] = tuple((str(c), float(o)) for c, o in values.get("identify_offsets", ()))
            values["identify_leads"] = tuple((str(c), float(g)) for c, g in values.get("identify_leads", ()))
            unknown_conditions = (({c for c, _ in values["identify_offsets"]} | {c for c, _ in values["identify_leads"]})
                                  - set(IDENTIFY_CONDITIONS))
            if unknown_conditions:
                raise ValueError(f"scale {name!r}: unknown identification conditions {sorted(unknown_conditions)}")
            scales[name] = ScaleCalibration(**values)
            if len(scales[name].impostor_mean) != 1 + len(scales[name].features):
                raise ValueError(f"scale {name!r}: the weights do not match the features")
            unknown = set(scales[name].features) - set(_KNOWN_FEATURES)
            if unknown:
                raise ValueError(f"scale {name!r}: unknown features {sorted(unknown)}")
            if scales[name].llr[0] <= 0:
                raise ValueError(f"scale {name!r}: the llr must grow with the score")
        return cls(model_version=str(data["model_version"]), scales=scales, trained_on=dict(data.get("trained_on", {})))

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> Calibration:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def identify_together(verdicts: Sequence[IdentifyVerdict]) -> IdentifyVerdict:
    """One open-set verdict over candidates that several calibrations scored: a gallery held by more than one model
    version (the fused engine's voiceprints and those of ECAPA alone, enrolled before fusion was turned on).

    Each verdict covers its own candidates (its own model's scores, its own calibration) and must have been
    reached with ``gallery`` = every voice searched in all of them, so that each threshold holds the
    false-identification target over the whole gallery. The candidates are ranked together by llr (every
    calibration's llr is a log-likelihood ratio: one scale); the best is a match when it passes its own
    calibration's threshold and leads the runner-up, whichever calibration scored that one, by its own
    calibration's margin (or by its own calibration's lead rule, on ``t``: each calibration's ``t`` is in standard
    deviations of its own impostors). ``llrs``, ``ts`` and ``order`` index the candidates of ``verdicts`` in turn,
    concatenated.
    """
    if not verdicts:
        raise ValueError("identify_together needs at least one verdict")
    if len(verdicts) == 1:
        return verdicts[0]
    llrs = np.concatenate([verdict.llrs for verdict in verdicts]).astype(np.float64)
    ts = np.concatenate([verdict.ts for verdict in verdicts]).astype(np.float64)
    scored_by = np.concatenate([np.full(len(verdict.llrs), i, dtype=np.int64) for i, verdict in enumerate(verdicts)])
    order = np.argsort(-llrs, kind="stable")
    if not len(order):
        return dataclasses.replace(verdicts[0], llrs=llrs, ts=ts, order=order)
    best = verdicts[int(scored_by[order[0]])]
    return _decided(llrs, ts, order, threshold=best.threshold, margin=best.margin, lead_rule=best.lead_rule)


def _decided(llrs: np.ndarray, ts: np.ndarray, order: np.ndarray, *, threshold: float, margin: float,
             lead_rule: tuple[float, float] | None) -> IdentifyVerdict:
    """The open-set verdict on ranked candidates: the threshold and margin on the llr, else the lead rule on ``t``."""
    best = float(llrs[order[0]]) if len(order) else None
    runner_up = float(llrs[order[1]]) if len(order) > 1 else None
    lead = float(ts[order[0]] - ts[order[1]]) if len(order) > 1 else None
    reason = identify_outcome(best, runner_up, threshold=threshold, margin=margin)
    matched_by: MatchedBy | None = "threshold" if reason is None else None
    if reason is not None and best is not None and lead_rule is not None and clear_lead(
            float(ts[order[0]]), None if runner_up is None else float(ts[order[1]]),
            floor=lead_rule[1], gap=lead_rule[0]):
        reason, matched_by = None, "lead"
    return IdentifyVerdict(llrs=llrs, order=order, threshold=threshold, margin=margin, runner_up=runner_up,
                           no_match_reason=reason, matched_by=matched_by, ts=ts, lead=lead, lead_rule=lead_rule)


_KNOWN_FEATURES = ("log_probe_speech", "log_enroll_speech", "probe_snr", "probe_snr_20", "enroll_snr", "probe_narrowband",
                   "enroll_narrowband", "both_narrowband")


# --- the calibrations shipped with the service ----------------------------------------------------

SHIPPED_DIR = Path(__file__).resolve().parent / "calibrations"


def shipped_calibration_path(model_version: str | None) -> Path:
    """Where the calibration shipped for ``model_version`` lives (``inference/calibrations/<version>.json``)."""
    return SHIPPED_DIR / f"{model_version}.json"


@functools.lru_cache(maxsize=4)
def shipped_calibration(model_version: str | None) -> Calibration | None:
    """The calibration shipped for ``model_version``, or None when there is none."""
    path = shipped_calibration_path(model_version)
    if not model_version or not path.is_file():
        return None
    calibration = Calibration.load(path)
    if calibration.model_version != model_version:
        raise ValueError(f"{path} calibrates {calibration.model_version}, not {model_version}")
    return calibration


# --- fitting -------------------------------------------------------------------------------------

def fit_impostors(scores: np.ndarray, x: np.ndarray, *, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian impostor model, mean and log standard deviation linear in ``x`` (maximum likelihood).

    ``scores``: ``(N,)`` impostor scores; ``x``: ``(N, 1 + F)`` feature rows. Returns the two weight vectors.
    """
    from scipy.optimize import minimize

    k = x.shape[1]
    mean0, *_ = np.linalg.lstsq(x, scores, rcond=None)
    log_sd0 = np.zeros(k)
    log_sd0[0] = math.log(float(np.std(scores - x @ mean0)) + 1e-9)

    def negative_log_likelihood(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, v = theta[:k], theta[k:]
        log_sd = x @ v
        z = (scores - x @ w) * np.exp(-log_sd)
        value = float(np.sum(0.5 * z * z + log_sd)) + ridge * float(v[1:] @ v[1:])
        grad_w = -(x.T @ (z * np.exp(-log_sd)))
        grad_v = x.T @ (1.0 - z * z)
        grad_v[1:] += 2 * ridge * v[1:]
        return value, np.concatenate([grad_w, grad_v])

    result = minimize(negative_log_likelihood, np.concatenate([mean0, log_sd0]), jac=True, method="L-BFGS-B")
    return result.x[:k], result.x[k:]


def fit_llr(t: np.ndarray, x: np.ndarray, labels: np.ndarray, *, ridge: float = 1e-4) -> np.ndarray:
    """Logistic regression ``llr = a t + b . x`` with target and impostor trials weighted equally (prior 0.5)."""
    from scipy.optimize import minimize

    features = np.column_stack([t, x])
    y = np.asarray(labels).astype(bool)
    weights = np.where(y, 0.5 / max(int(y.sum()), 1), 0.5 / max(int((~y).sum()), 1))
    sign = np.where(y, -1.0, 1.0)

    def cross_entropy(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = features @ theta
        value = float(np.sum(weights * np.logaddexp(0.0, sign * s))) + ridge * float(theta[2:] @ theta[2:])
        grad = features.T @ (weights * sign / (1.0 + np.exp(-sign * s)))
        grad[2:] += 2 * ridge * theta[2:]
        return value, grad

    start = np.zeros(features.shape[1])
    start[0] = 1.0
    return minimize(cross_entropy, start, jac=True, method="L-BFGS-B").x


def fit_scale(scores: np.ndarray, x: np.ndarray, labels: np.ndarray,
              features: Sequence[str] = FEATURES) -> ScaleCalibration:
    """Fit one scale on labelled trials: ``scores (N,)``, feature rows ``x (N, 1 + F)``, ``labels (N,)`` 1/0."""
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        raise ValueError("calibration needs target and impostor trials")
    mean_w, log_sd_w = fit_impostors(np.asarray(scores[~y], dtype=np.float64), x[~y])
    partial = ScaleCalibration(tuple(features), tuple(mean_w), tuple(log_sd_w), (1.0,) + (0.0,) * x.shape[1],
                               (0.0,) * len(FAR_GRID))
    t = np.asarray(partial.normalised(np.asarray(scores, dtype=np.float64), x))
    llr = fit_llr(t, x, y)
    if llr[0] <= 0:
        raise ValueError("the scores do not separate targets from impostors: no calibration can be fitted")
    quantiles = tuple(float(np.quantile(t[~y], 1.0 - far)) for far in FAR_GRID)
    return ScaleCalibration(tuple(features), tuple(mean_w), tuple(log_sd_w), tuple(float(v) for v in llr), quantiles)


def adapt_scale(base: ScaleCalibration, scores: np.ndarray, x: np.ndarray, labels: np.ndarray) -> ScaleCalibration:
    """A site's calibration on top of ``base``: the same quality dependence, re-levelled on the site's trials.

    Few trials cannot support every weight, so only four numbers move: the impostors' mean and
    log spread by a constant (maximum likelihood on the site's impostor trials), and the llr's
    slope and offset (logistic regression on all of them). The thresholds on ``t`` and the
    identification offset and margin stay the base's: after re-levelling, ``t`` again reads in
    standard deviations above this site's impostors.
    """
    from scipy.optimize import minimize

    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        raise ValueError("calibration needs target and impostor trials")
    scores = np.asarray(scores, dtype=np.float64)
    mean = x[~y] @ np.asarray(base.impostor_mean)
    log_sd = x[~y] @ np.asarray(base.impostor_log_sd)

    def negative_log_likelihood(theta: np.ndarray) -> float:
        z = (scores[~y] - mean - theta[0]) * np.exp(-(log_sd + theta[1]))
        return float(np.sum(0.5 * z * z + log_sd + theta[1]))

    shift, spread = minimize(negative_log_likelihood, np.zeros(2), method="Nelder-Mead").x
    impostor_mean = (base.impostor_mean[0] + shift, *base.impostor_mean[1:])
    impostor_log_sd = (base.impostor_log_sd[0] + spread, *base.impostor_log_sd[1:])
    relevelled = dataclasses.replace(base, impostor_mean=tuple(float(v) for v in impostor_mean),
                                     impostor_log_sd=tuple(float(v) for v in impostor_log_sd))
    t = np.asarray(relevelled.normalised(scores, x))
    base_llr = np.asarray(relevelled.llr_of(t, x))
    slope_offset = fit_llr(base_llr, np.ones((len(scores), 1)), y)  # llr' = alpha * llr + beta
    alpha, beta = float(slope_offset[0]), float(slope_offset[1])
    if alpha <= 0:
        raise ValueError("the site's scores do not separate its targets from its impostors")
    weights = np.asarray(relevelled.llr) * alpha
    weights[1] += beta
    return dataclasses.replace(relevelled, llr=tuple(float(v) for v in weights))


def fit_identify_offset(cal: ScaleCalibration, unknown_best: np.ndarray, gallery: int, fir: float) -> float:
    """The offset making the Gaussian identification threshold give ``fir`` on training unknown probes.

    ``unknown_best``: the best ``t`` of each unknown probe against a gallery of ``gallery`` voices.
    """
    gaussian = cal.identify_t(fir, gallery) - cal.identify_offset
    empirical = float(np.quantile(unknown_best, 1.0 - fir))
    return max(0.0, empirical - gaussian)


def _normal_upper_quantile(p: float) -> float:
    """``x`` with ``P(Z >= x) = p`` for a standard normal ``Z``."""
    from scipy.stats import norm

    return float(norm.isf(min(max(p, 1e-12), 0.5)))
