"""Population adaptation: re-level a calibration's impostor side on the deployment's own speakers, without labels.

A calibration fitted on some populations does not know that in another one (children, a
language, one telephone line) different people already score high against each other: its
impostor model then sits too low and the decision accepts too many impostors. Every deployment
holds impostor trials it needs no one to label: a recording that enrolled speaker A, scored
against the voiceprint of every other enrolled speaker B, is a trial between two different
people, in the deployment's own language, channel and age group.

From such trials this module measures how far the deployment's impostors sit from the
calibration's impostor model, in the model's own terms: with ``e = score - mean(q)`` (the
calibration's impostor mean for the pair's quality ``q``) and ``z = e / sd(q)``,

* ``shift`` = the median over speakers of each speaker's median ``e`` (cosine units: how much
  higher strangers score here than where the calibration was fitted),
* ``spread`` = the median over speakers of each speaker's median ``|(e - measured shift) / sd|``, over
  the standard normal's (0.6745): how much wider they spread.

Both are medians of per-speaker medians, so a few odd speakers, or a flood of lookalike
enrollments short of half the population, move them little; both are clipped to bounds
(:data:`SHIFT_BOUNDS_SD`, in standard deviations of the scale's impostors at :data:`REFERENCE_PAIR`, so
one bound serves the cosine and AS-norm; :data:`SPREAD_BOUNDS`) so that no population can move the
operating point further than measured populations needed; moves smaller than the measurement's own
noise (:data:`DEADBAND_SD`, :data:`SPREAD_DEADBAND`) are not applied. The adapted scale adds ``shift`` to the impostor mean and
multiplies the spread: ``t`` again reads in standard deviations above *this* population's
impostors, and every threshold on ``t`` (verification, identification) keeps its meaning.

Nothing here knows where the vectors come from; the service gathers them
(``speakers/services/population.py``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from inference.asnorm import ASNorm, as_norm_scores
from inference.quality_calibration import ASNORM, Calibration, ScaleCalibration, SideQuality, feature_rows

# The pair the bounds are read at: a 3 s clean probe against a 6 s clean voiceprint.
REFERENCE_PAIR = (SideQuality(speech_s=6.0), SideQuality(speech_s=3.0))
# How far a population may move the impostor mean, in standard deviations of the scale's impostors at
# REFERENCE_PAIR (on the shipped cosine scale 1 sd is about 0.09: the bounds are about -0.05 and +0.30
# cosine), and scale its spread. Measured (docs/accuracy.md, "Population adaptation"): the held-out groups
# needed up to +1.8 sd (one telephone line for everyone); populations the calibration already fits come
# out within +-0.05 sd.
SHIFT_BOUNDS_SD = (-0.55, 3.3)
SPREAD_BOUNDS = (0.80, 1.50)
# Below these a measured move is noise, not a population: a shift within 0.2 sd (the spread of the
# shift measured on 20 speakers drawn from one population was 0.19 sd) and a spread within 5% of one are
# not applied, so a population like the calibration's own changes nothing and the decisions do not jitter
# as the gallery grows.
DEADBAND_SD = 0.2
SPREAD_DEADBAND = 0.05
# Median |z| of a standard normal variable.
_NORMAL_MAD = 0.6744897501960817


# Voiceprints each recording is scored against at most: bounds the work at recordings x this, whatever the gallery.
PER_RECORDING = 100


@dataclass(frozen=True)
class Population:
    """A deployment's enrolled speakers as the statistics read them: ``(V, D)`` voiceprints and ``(R, D)``
    enrollment recordings (unit vectors), each with its quality and its speaker (owners compare with ``==``)."""

    voiceprints: np.ndarray
    voiceprint_quality: Sequence[SideQuality]
    voiceprint_owner: Sequence[object]
    recordings: np.ndarray
    recording_quality: Sequence[SideQuality]
    recording_owner: Sequence[object]


@dataclass(frozen=True)
class PopulationTrials:
    """Impostor trials of one population: ``(N,)`` scores (cosines, or another scale's via
    :meth:`rescored`), the ``(N, 1 + F)`` feature rows of each pair under a scale's features, the
    speaker the probe side belongs to (for per-speaker medians), and which recording and voiceprint
    each trial pairs (``(N,)`` indices into the inputs of :func:`impostor_trials`)."""

    scores: np.ndarray
    x: np.ndarray
    probe_owner: np.ndarray
    recording: np.ndarray
    voiceprint: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def rescored(self, scores: np.ndarray) -> PopulationTrials:
        """The same trials on another score scale (e.g. AS-norm of the same pairs)."""
        return dataclasses.replace(self, scores=np.asarray(scores, dtype=np.float64))


@dataclass(frozen=True)
class PopulationShift:
    """How far a population's impostors sit from a calibration's impostor model."""

    shift: float  # added to the impostor mean (cosine units), after bounding
    spread: float  # factor on the impostor standard deviation, after bounding
    speakers: int  # speakers whose recordings were probes
    trials: int
    measured_shift: float  # before bounding
    measured_spread: float

    @property
    def bounded(self) -> bool:
        """Whether a bound held the measured values back."""
        return self.shift != self.measured_shift or self.spread != self.measured_spread

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


IDENTITY = PopulationShift(shift=0.0, spread=1.0, speakers=0, trials=0, measured_shift=0.0, measured_spread=1.0)


def impostor_trials(*, voiceprints: np.ndarray, voiceprint_quality: Sequence[SideQuality],
                    voiceprint_owner: Sequence[object], recordings: np.ndarray,
                    recording_quality: Sequence[SideQuality], recording_owner: Sequence[object],
                    features: Sequence[str], per_recording: int | None = None,
                    seed: int = 0) -> PopulationTrials:
    """Every recording scored against the voiceprints of every *other* speaker (cosine of unit vectors).

    ``voiceprints (V, D)`` with their owners, ``recordings (R, D)`` with theirs (owners compare with
    ``==``). ``per_recording`` caps the voiceprints each recording meets (a seeded sample), which
    bounds the work at ``R * per_recording`` trials for any gallery size.
    """
    voiceprints = np.asarray(voiceprints, dtype=np.float32)
    recordings = np.asarray(recordings, dtype=np.float32)
    owners = np.asarray([str(o) for o in voiceprint_owner])
    probe_owners = np.asarray([str(o) for o in recording_owner])
    if not len(voiceprints) or not len(recordings):
        return _no_trials(features)
    cosines = np.clip(recordings @ voiceprints.T, -1.0, 1.0)
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for r in range(len(recordings)):
        others = np.flatnonzero(owners != probe_owners[r])
        if per_recording is not None and len(others) > per_recording:
            others = np.sort(rng.choice(others, size=per_recording, replace=False))
        rows.append(np.full(len(others), r))
        cols.append(others)
    r_idx, v_idx = np.concatenate(rows).astype(int), np.concatenate(cols).astype(int)
    if not len(r_idx):
        return _no_trials(features)
    x = feature_rows([voiceprint_quality[i] for i in v_idx], [recording_quality[i] for i in r_idx], features)
    return PopulationTrials(scores=cosines[r_idx, v_idx].astype(np.float64), x=x, probe_owner=probe_owners[r_idx],
                            recording=r_idx, voiceprint=v_idx)


def _no_trials(features: Sequence[str]) -> PopulationTrials:
    empty = np.zeros(0, dtype=int)
    return PopulationTrials(np.zeros(0), np.zeros((0, 1 + len(features))), np.zeros(0, dtype=object), empty, empty)


def population_trials(population: Population, *, features: Sequence[str], per_recording: int | None = PER_RECORDING,
                      scale: str = "cosine", asnorm: ASNorm | None = None) -> PopulationTrials:
    """:func:`impostor_trials` of a population, scored on ``scale`` (the AS-norm scale needs ``asnorm``)."""
    trials = impostor_trials(
        voiceprints=population.voiceprints, voiceprint_quality=population.voiceprint_quality,
        voiceprint_owner=population.voiceprint_owner, recordings=population.recordings,
        recording_quality=population.recording_quality, recording_owner=population.recording_owner,
        features=features, per_recording=per_recording)
    if scale != ASNORM or not len(trials):
        return trials
    if asnorm is None:
        raise ValueError("AS-norm scores need the cohort")
    mu_v, sd_v = asnorm.stats_many(population.voiceprints)
    mu_r, sd_r = asnorm.stats_many(population.recordings)
    return trials.rescored(as_norm_scores(trials.scores, mu_v[trials.voiceprint], sd_v[trials.voiceprint],
                                          mu_r[trials.recording], sd_r[trials.recording]))


def measure_population(calibration: Calibration, scale: str, population: Population, *,
                       asnorm: ASNorm | None = None, per_recording: int | None = PER_RECORDING,
                       spread_quantile: float | None = None) -> PopulationShift:
    """The shift and spread of a population against one scale of ``calibration`` (see :func:`measure`)."""
    cal = calibration.scale(scale)
    return measure(cal, population_trials(population, features=cal.features, per_recording=per_recording,
                                          scale=scale, asnorm=asnorm), spread_quantile=spread_quantile)


def measure(scale: ScaleCalibration, trials: PopulationTrials, *,
            spread_quantile: float | None = None) -> PopulationShift:
    """The shift and spread of ``trials`` against ``scale``'s impostor model (bounded; see the module).

    ``spread_quantile`` (a measurement, not what the service does): read the spread from each speaker's
    ``q``-quantile of the centred ``z`` over the standard normal's, the impostors' upper tail where the
    operating point sits, instead of their median ``|z|``. Tried on the calibration set and not shipped
    (docs/accuracy.md §0.7): it does not bring acted emotion into the band and moves populations the
    calibration already fits, whose impostor tails are heavier than a normal's.
    """
    if spread_quantile is not None and not 0.5 < spread_quantile < 1.0:
        raise ValueError("spread_quantile must lie between 0.5 and 1")
    if not len(trials):
        return IDENTITY
    mean = trials.x @ np.asarray(scale.impostor_mean)
    sd = np.exp(trials.x @ np.asarray(scale.impostor_log_sd))
    excess = trials.scores - mean
    speakers = np.unique(trials.probe_owner)
    groups = [np.flatnonzero(trials.probe_owner == s) for s in speakers]
    measured_shift = float(np.median([np.median(excess[g]) for g in groups]))
    low, high = shift_bounds(scale)
    shift = min(max(measured_shift, low), high)
    if abs(shift) < DEADBAND_SD * high / SHIFT_BOUNDS_SD[1]:  # high / SHIFT_BOUNDS_SD[1]: 1 sd in the scale's units
        shift = 0.0
    centred = (excess - measured_shift) / sd  # about the population's own centre
    if spread_quantile is None:
        measured_spread = float(np.median([np.median(np.abs(centred[g])) for g in groups])) / _NORMAL_MAD
    else:
        measured_spread = (float(np.median([np.quantile(centred[g], spread_quantile) for g in groups]))
                           / float(NormalDist().inv_cdf(spread_quantile)))
    spread = min(max(measured_spread, SPREAD_BOUNDS[0]), SPREAD_BOUNDS[1])
    if abs(spread - 1.0) < SPREAD_DEADBAND:
        spread = 1.0
    return PopulationShift(shift=shift, spread=spread, speakers=len(speakers), trials=len(trials),
                           measured_shift=measured_shift, measured_spread=measured_spread)


def shift_bounds(scale: ScaleCalibration) -> tuple[float, float]:
    """:data:`SHIFT_BOUNDS_SD` in the scale's own units."""
    x = scale.features_of(*REFERENCE_PAIR)
    sd = math.exp(float(x @ np.asarray(scale.impostor_log_sd)))
    return SHIFT_BOUNDS_SD[0] * sd, SHIFT_BOUNDS_SD[1] * sd


def adapted(scale: ScaleCalibration, population: PopulationShift) -> ScaleCalibration:
    """``scale`` re-levelled on a population: its impostor mean raised by ``shift``, its spread scaled.

    The quality dependence, the llr weights and every threshold on ``t`` stay the scale's. With the
    identity shift the scale is returned as it is (a deployment that has not adapted decides exactly
    as before).
    """
    if population.shift == 0.0 and population.spread == 1.0:
        return scale
    mean = (scale.impostor_mean[0] + population.shift, *scale.impostor_mean[1:])
    log_sd = (scale.impostor_log_sd[0] + math.log(population.spread), *scale.impostor_log_sd[1:])
    return dataclasses.replace(scale, impostor_mean=tuple(float(v) for v in mean),
                               impostor_log_sd=tuple(float(v) for v in log_sd))


def adapted_calibration(calibration: Calibration, shifts: Mapping[str, PopulationShift]) -> Calibration:
    """``calibration`` with each scale named in ``shifts`` re-levelled (:func:`adapted`); the others as they are."""
    return dataclasses.replace(calibration, scales={
        name: adapted(cal, shifts[name]) if name in shifts else cal for name, cal in calibration.scales.items()})
