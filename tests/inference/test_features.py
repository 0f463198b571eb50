"""The front end: our numpy log-mel filterbank and mean normalisation match SpeechBrain's
``Fbank(n_mels=80)`` + ``InputNormalization(sentence)`` within a few thousandths of a dB, and
mindaudio's fbank is a different front end."""
from __future__ import annotations

import numpy as np
import pytest

from inference.config import FrontendConfig
from inference.features import compute_features, fbank, mel_filterbank, num_frames

# Measured: <= 1.3e-3 dB (float32 STFT rounding); anything near 0.1 dB would be another front end.
TOLERANCE_DB = 5e-3


@pytest.mark.parametrize("name", ["a_snt1", "b_snt3"])
def test_fbank_and_normalised_features_match_speechbrain_on_speech(clips, reference_features, name) -> None:
    wave = clips.wave(name)
    ours, reference = fbank(wave), reference_features[f"fbank_{name}"]
    assert ours.shape == reference.shape == (1 + wave.size // 160, 80)
    assert ours.dtype == np.float32
    assert np.max(np.abs(ours - reference)) < TOLERANCE_DB
    normalised = compute_features(wave)
    assert np.max(np.abs(normalised - reference_features[f"norm_{name}"])) < TOLERANCE_DB


def test_fbank_matches_speechbrain_on_a_synthetic_wave(reference_features) -> None:
    wave = reference_features["synthetic_wave"]
    ours = fbank(wave)
    assert ours.shape == reference_features["fbank_synthetic"].shape == (101, 80)
    assert np.max(np.abs(ours - reference_features["fbank_synthetic"])) < TOLERANCE_DB


@pytest.mark.parametrize("n", [0, 1, 159, 160, 161, 16_000, 45_919])
def test_a_signal_of_n_samples_makes_1_plus_n_over_hop_frames(n) -> None:
    wave = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    assert num_frames(n) == 1 + n // 160
    assert fbank(wave).shape == (1 + n // 160, 80)


def test_normalised_features_have_zero_mean_per_mel_bin(clips) -> None:
    features = compute_features(clips.wave("a_snt2"))
    assert np.max(np.abs(features.mean(axis=0))) < 1e-4
    # std is left alone (std_norm=False): the bins keep their spread
    assert features.std(axis=0).min() > 1.0


def test_the_log_mel_range_is_floored_80_db_below_its_peak(clips) -> None:
    wave = clips.wave("b_snt3").copy()
    wave[2_000:6_000] = 0.0  # digital silence would be -100 dB
    db = fbank(wave)
    assert db.max() - db.min() == pytest.approx(80.0, abs=1e-3)


def test_the_mel_filterbank_is_80_unit_triangles_over_201_bins() -> None:
    filters = mel_filterbank(FrontendConfig())
    assert filters.shape == (201, 80)
    assert filters.min() >= 0.0 and filters.max() <= 1.0
    assert (filters.max(axis=0) > 0).all()  # no empty filter
    assert (np.diff(filters.argmax(axis=0)) >= 0).all()  # centres rise with the mel index
    # on a 1 Hz grid every triangle is sampled at its apex: each peaks at 1, at its mel centre
    fine = mel_filterbank(FrontendConfig(n_fft=16_000, win_length=16_000))
    assert fine.shape == (8_001, 80)
    np.testing.assert_allclose(fine.max(axis=0), 1.0, atol=0.03)
    mel_max = 2595.0 * np.log10(1.0 + 8_000 / 700.0)
    centres_hz = 700.0 * (10 ** (np.linspace(0, mel_max, 82)[1:-1] / 2595.0) - 1.0)
    np.testing.assert_allclose(fine.argmax(axis=0), centres_hz, atol=1.0)


def test_mindaudio_fbank_is_not_the_front_end_the_model_was_trained_with(clips) -> None:
    features = pytest.importorskip(
        "mindaudio.data.features",
        reason="mindaudio is not installed; the lead decides whether to install it for this comparison",
    )
    wave = clips.wave("a_snt1")
    ours = fbank(wave)
    theirs = np.squeeze(np.asarray(features.fbank(wave.astype(np.float32))))
    if theirs.shape == ours.T.shape:
        theirs = theirs.T  # mindaudio puts mel bins first
    same = theirs.shape == ours.shape and float(np.max(np.abs(theirs - ours))) < 1.0
    assert not same, f"mindaudio's default fbank {theirs.shape} equals ours {ours.shape} within 1 dB"
