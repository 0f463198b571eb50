"""Population adaptation (inference.population): unlabelled impostor trials of a deployment re-level a
calibration's impostor side, robustly and within bounds."""
from __future__ import annotations

import numpy as np
import pytest

from inference import population
from inference.quality_calibration import SideQuality, feature_rows, feature_vector, fit_scale

ENROLL = SideQuality(12.0)
PROBES = (SideQuality(2.0), SideQuality(8.0), SideQuality(8.0, bandwidth_hz=3400.0), SideQuality(4.0, snr_db=12.0))


def _fitted():
    """A calibration fitted where impostor cosines sit around 0.05-0.12 (their spread depends on the probe)."""
    rng = np.random.default_rng(7)
    scores, x, labels = [], [], []
    for probe, mean, sd in zip(PROBES, (0.10, 0.03, 0.12, 0.07), (0.09, 0.05, 0.06, 0.07)):
        row = feature_vector(ENROLL, probe)
        for label, values in ((0, rng.normal(mean, sd, 3000)), (1, rng.normal(0.65, 0.1, 600))):
            scores.append(values)
            x.append(np.repeat(row[None, :], len(values), axis=0))
            labels.append(np.full(len(values), label))
    return fit_scale(np.concatenate(scores), np.concatenate(x), np.concatenate(labels))


CAL = _fitted()


def _population(rng, *, speakers: int = 40, per_speaker: int = 30, shift: float = 0.0, spread: float = 1.0):
    """Impostor trials of a population whose strangers score ``shift`` higher and spread ``spread`` wider
    than the calibration's impostor model says."""
    owners, x, scores = [], [], []
    for s in range(speakers):
        probes = [PROBES[k % len(PROBES)] for k in range(per_speaker)]
        rows = feature_rows([ENROLL] * per_speaker, probes, CAL.features)
        mean = rows @ np.asarray(CAL.impostor_mean)
        sd = np.exp(rows @ np.asarray(CAL.impostor_log_sd))
        scores.append(mean + shift + spread * sd * rng.standard_normal(per_speaker))
        x.append(rows)
        owners += [f"s{s}"] * per_speaker
    if not speakers:
        return population.PopulationTrials(np.zeros(0), np.zeros((0, 1 + len(CAL.features))), np.array([]),
                                           np.zeros(0, int), np.zeros(0, int))
    return population.PopulationTrials(np.concatenate(scores), np.concatenate(x), np.array(owners),
                                       np.zeros(len(owners), int), np.zeros(len(owners), int))


def _far(scale, trials: population.PopulationTrials, far: float = 0.01) -> float:
    t = scale.normalised(trials.scores, trials.x)
    return float(np.mean(t >= scale.verify_t(far)))


def test_feature_rows_are_feature_vector_for_every_pair():
    rng = np.random.default_rng(0)
    enroll = [SideQuality(float(rng.uniform(0.1, 200)), float(rng.uniform(-5, 50)), float(rng.choice([3400, 8000])))
              for _ in range(50)]
    probe = [SideQuality(float(rng.uniform(0.1, 40)), float(rng.uniform(-5, 50)), float(rng.choice([3400, 8000])))
             for _ in range(50)]
    expected = np.stack([feature_vector(e, p, CAL.features) for e, p in zip(enroll, probe)])
    np.testing.assert_array_equal(feature_rows(enroll, probe, CAL.features), expected)


def test_a_population_like_the_calibrations_own_moves_nothing_that_matters():
    measured = population.measure(CAL, _population(np.random.default_rng(1)))
    assert abs(measured.measured_shift) < 0.01 and abs(measured.measured_spread - 1.0) < 0.05
    assert (measured.shift, measured.spread) == (0.0, 1.0)  # within the noise: not applied
    assert population.adapted(CAL, measured) is CAL
    assert measured.speakers == 40 and measured.trials == 1200


def test_a_population_of_higher_scoring_strangers_is_brought_back_to_the_target():
    rng = np.random.default_rng(2)
    seen = _population(rng, shift=0.15, spread=1.2)
    unseen = _population(rng, shift=0.15, spread=1.2, speakers=200)  # other trials of the same population
    assert _far(CAL, unseen) > 0.2  # the calibration alone lets a fifth of them in
    measured = population.measure(CAL, seen)
    assert measured.shift == pytest.approx(0.15, abs=0.01) and measured.spread == pytest.approx(1.2, abs=0.08)
    assert 0.005 <= _far(population.adapted(CAL, measured), unseen) <= 0.02


def test_a_few_odd_speakers_or_a_flood_of_lookalikes_short_of_half_move_it_little():
    rng = np.random.default_rng(3)
    trials = _population(rng, speakers=40)
    flood = trials.scores.copy()
    lookalikes = np.isin(trials.probe_owner, [f"s{k}" for k in range(15)])  # 15 of 40 speakers score 0.8 with everyone
    flood[lookalikes] = 0.8
    measured = population.measure(CAL, population.PopulationTrials(flood, trials.x, trials.probe_owner,
                                                                   trials.recording, trials.voiceprint))
    assert abs(measured.shift) < 0.03
    assert measured.spread <= population.SPREAD_BOUNDS[1]


def test_the_adaptation_is_bounded():
    measured = population.measure(CAL, _population(np.random.default_rng(4), shift=0.8, spread=3.0))
    low, high = population.shift_bounds(CAL)
    assert measured.measured_shift > 0.7 and measured.shift == high
    assert measured.spread == population.SPREAD_BOUNDS[1] and measured.bounded
    below = population.measure(CAL, _population(np.random.default_rng(5), shift=-0.3, spread=0.3))
    assert below.shift == low and below.spread == population.SPREAD_BOUNDS[0]


def test_without_trials_or_shift_the_calibration_is_returned_as_it_is():
    assert population.measure(CAL, _population(np.random.default_rng(6), speakers=0)) == population.IDENTITY
    assert population.adapted(CAL, population.IDENTITY) is CAL
    moved = population.adapted(CAL, population.PopulationShift(0.1, 1.1, 30, 900, 0.1, 1.1))
    assert moved.impostor_mean[0] == pytest.approx(CAL.impostor_mean[0] + 0.1)
    assert moved.impostor_mean[1:] == CAL.impostor_mean[1:] and moved.llr == CAL.llr and moved.t_at_far == CAL.t_at_far


def test_impostor_trials_pair_each_recording_with_every_other_speakers_voiceprint_only():
    rng = np.random.default_rng(8)
    voiceprints = rng.standard_normal((5, 16)).astype(np.float32)
    voiceprints /= np.linalg.norm(voiceprints, axis=1, keepdims=True)
    recordings = np.repeat(voiceprints, 3, axis=0)
    owners = [f"s{k}" for k in range(5)]
    trials = population.impostor_trials(
        voiceprints=voiceprints, voiceprint_quality=[ENROLL] * 5, voiceprint_owner=owners, recordings=recordings,
        recording_quality=[SideQuality(3.0)] * 15, recording_owner=[o for o in owners for _ in range(3)],
        features=CAL.features)
    assert len(trials) == 15 * 4
    assert all(trials.probe_owner[i] != owners[trials.voiceprint[i]] for i in range(len(trials)))
    np.testing.assert_allclose(trials.scores, np.sum(recordings[trials.recording] * voiceprints[trials.voiceprint],
                                                     axis=1), atol=1e-6)
    capped = population.impostor_trials(
        voiceprints=voiceprints, voiceprint_quality=[ENROLL] * 5, voiceprint_owner=owners, recordings=recordings,
        recording_quality=[SideQuality(3.0)] * 15, recording_owner=[o for o in owners for _ in range(3)],
        features=CAL.features, per_recording=2)
    assert len(capped) == 15 * 2


def test_the_tail_quantile_spread_reads_a_normal_population_as_the_median_does_and_a_heavy_tail_wider():
    """``spread_quantile`` (the measured alternative, not the service's): on normal impostors both estimators
    read the spread the population has; on impostors whose centre is normal but whose upper tail is heavy,
    only the quantile sees it (the median |z| is deaf to a tail, which is what it is for)."""
    wide = _population(np.random.default_rng(8), shift=0.1, spread=1.3, per_speaker=200)
    median, tail = population.measure(CAL, wide), population.measure(CAL, wide, spread_quantile=0.9)
    assert median.measured_spread == pytest.approx(1.3, abs=0.08)
    assert tail.measured_spread == pytest.approx(1.3, abs=0.08)
    assert tail.shift == median.shift  # the centre is read the same way

    rng = np.random.default_rng(9)
    heavy = _population(rng, per_speaker=200)
    mean = heavy.x @ np.asarray(CAL.impostor_mean)
    sd = np.exp(heavy.x @ np.asarray(CAL.impostor_log_sd))
    z = (heavy.scores - mean) / sd
    tail_z = np.where(z > 0.8, 0.8 + 2.0 * (z - 0.8), z)  # the upper fifth stretched: a heavy upper tail
    heavy = population.PopulationTrials(mean + sd * tail_z, heavy.x, heavy.probe_owner, heavy.recording,
                                        heavy.voiceprint)
    assert population.measure(CAL, heavy).spread < 1.1
    # 0.9-quantile of z: 1.28 -> 0.8 + 2 x 0.48 = 1.76, over 1.28: 1.38
    assert population.measure(CAL, heavy, spread_quantile=0.9).measured_spread == pytest.approx(1.38, abs=0.06)
    with pytest.raises(ValueError):
        population.measure(CAL, heavy, spread_quantile=0.3)
