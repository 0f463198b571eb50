"""The Kaldi front end of CAM++ in numpy equals kaldi-native-fbank (Kaldi's compute-fbank-feats) on real speech,
takes whole frames only, and is not SpeechBrain's front end."""
from __future__ import annotations

import dataclasses

import kaldi_native_fbank as knf
import numpy as np
import pytest

from inference import features
from inference.config import KaldiFbankConfig
from inference.kaldi_fbank import compute_features, fbank, mel_banks, normalise, num_frames

# Measured on the dev and multi clips: largest difference 1.4e-3 (natural log), mean 6e-6 (both in float32,
# with other FFTs and summation orders; the largest sit on the quietest bins).
MAX_DIFF = 5e-3
MEAN_DIFF = 2e-5


def kaldi_native(wave: np.ndarray, config: KaldiFbankConfig = KaldiFbankConfig()) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = config.sample_rate
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = config.n_mels
    opts.mel_opts.low_freq = config.low_freq
    opts.mel_opts.high_freq = config.high_freq
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(config.sample_rate, np.asarray(wave, dtype=np.float32).tolist())
    computer.input_finished()
    if computer.num_frames_ready == 0:
        return np.zeros((0, config.n_mels), dtype=np.float32)
    return np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)])


def _speech(clips) -> dict[str, np.ndarray]:
    waves = {name: clips.wave(name) for name in clips.dev_names}
    if clips.multi_dir.is_dir():
        for path in sorted(clips.multi_dir.glob("*/*.wav"))[::6]:
            waves[path.relative_to(clips.multi_dir).as_posix()] = clips.wave(path)
    return waves


def test_it_equals_kaldi_native_fbank_on_real_speech(clips) -> None:
    waves = _speech(clips)
    assert len(waves) >= 12
    for name, wave in waves.items():
        ours, theirs = fbank(wave), kaldi_native(wave)
        assert ours.shape == theirs.shape, name
        assert ours.dtype == np.float32
        difference = np.abs(ours - theirs)
        assert difference.max() < MAX_DIFF, f"{name}: {difference.max()}"
        assert difference.mean() < MEAN_DIFF, f"{name}: {difference.mean()}"


def test_it_equals_kaldi_native_fbank_on_quiet_and_narrowband_speech(clips) -> None:
    """Far below full scale (many bins at the log floor) and band-limited to the phone band."""
    from scipy.signal import butter, sosfilt

    wave = clips.wave("a_snt1")
    band = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=16_000, output="sos"), wave).astype(np.float32)
    for variant in (wave * np.float32(1e-3), band):
        np.testing.assert_allclose(fbank(variant), kaldi_native(variant), atol=MAX_DIFF)


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 559, 560, 16_000, 16_399])
def test_it_takes_whole_frames_only(n) -> None:
    wave = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    expected = 0 if n < 400 else 1 + (n - 400) // 160
    assert num_frames(n) == expected
    assert fbank(wave).shape == (expected, 80)
    assert kaldi_native(wave).shape[0] == expected


def test_the_mel_banks_are_80_triangles_on_kaldis_mel_axis_from_20_hz() -> None:
    banks = mel_banks(KaldiFbankConfig())
    assert banks.shape == (257, 80)
    assert not banks[256].any()  # Kaldi never weights the Nyquist bin
    assert banks.max() <= 1.0 and (banks >= 0).all()
    assert not banks[0].any()  # 0 Hz is below the first triangle (20 Hz)
    centres = banks.argmax(axis=0)
    assert (np.diff(centres) >= 0).all()  # the triangles ascend


def test_normalised_features_have_zero_mean_per_bin(clips) -> None:
    feats = compute_features(clips.wave("b_snt3"))
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-5)
    unnormalised = normalise(fbank(clips.wave("b_snt3")), KaldiFbankConfig(mean_norm=False))
    np.testing.assert_array_equal(unnormalised, fbank(clips.wave("b_snt3")))


def test_it_is_not_speechbrains_front_end(clips) -> None:
    """ECAPA's features (dB, centred frames, top-dB floor) are another front end: CAM++ needs this one."""
    wave = clips.wave("a_snt1")
    kaldi, speechbrain = fbank(wave), features.fbank(wave)
    assert kaldi.shape[0] != speechbrain.shape[0]  # whole frames only vs centred frames
    assert kaldi.shape[0] == num_frames(wave.size) < speechbrain.shape[0]
    assert kaldi.min() < 0 < speechbrain.min() + 100  # natural log of energy in [-1, 1] units vs dB


@pytest.mark.parametrize("change", [dict(n_fft=300), dict(n_fft=500), dict(low_freq=9_000.0), dict(high_freq=9_000.0)])
def test_a_config_that_cannot_work_is_refused(change) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(KaldiFbankConfig(), **change)
