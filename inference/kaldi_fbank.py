"""Kaldi's log-mel filterbank (``compute-fbank-feats``) in numpy, the front end of CAM++.

3D-Speaker trained CAM++ on ``torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=80,
dither=0)`` of float samples in [-1, 1], minus the utterance's mean of every bin. That is
Kaldi's filterbank, which differs from SpeechBrain's (:mod:`inference.features`, ECAPA's) in
every step: whole frames only (``snip_edges``: no centring, no padding), each frame's DC
removed and pre-emphasised, the povey window, a 512-point FFT, triangles on the *mel* axis of
the natural-log mel scale from 20 Hz, natural log floored at float32's epsilon, no top-dB
clamp. Computed in float32 like Kaldi (scipy's float32 FFT: a quarter of the time of numpy's float64 one,
and as close to Kaldi). ``tests/inference/test_kaldi_fbank.py`` holds it equal to ``kaldi-native-fbank``.

Shapes: ``n`` samples, ``T = 1 + (n - frame_length) // frame_shift`` frames, ``F`` mel bins.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.fft

from inference.config import KaldiFbankConfig


def _mel(hz: np.ndarray | float) -> np.ndarray:
    """Kaldi's mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=4)
def mel_banks(config: KaldiFbankConfig) -> np.ndarray:
    """Kaldi's triangular filters ``(n_fft // 2 + 1, n_mels)`` float64.

    Bin ``k`` sits at ``k * sample_rate / n_fft`` Hz; triangle ``m`` rises from ``left`` to
    ``centre`` and falls to ``right`` (equally spaced on the mel axis, ``n_mels + 2`` points
    from ``low_freq`` to ``high_freq``), zero outside the open interval. Kaldi never weights the
    Nyquist bin (its last row stays zero).
    """
    low, high = _mel(config.low_freq), _mel(config.high_freq)
    step = (high - low) / (config.n_mels + 1)
    left = low + step * np.arange(config.n_mels)
    centre, right = left + step, left + 2 * step
    bins = config.n_fft // 2
    mel = _mel(np.arange(bins) * config.sample_rate / config.n_fft)[:, None]
    rising = (mel - left) / (centre - left)
    falling = (right - mel) / (right - centre)
    weights = np.where(mel <= centre, rising, falling)
    weights = np.where((mel > left) & (mel < right), weights, 0.0)
    return np.vstack([weights, np.zeros((1, config.n_mels))])


@functools.lru_cache(maxsize=4)
def _mel_banks32(config: KaldiFbankConfig) -> np.ndarray:
    return mel_banks(config).astype(np.float32)


@functools.lru_cache(maxsize=4)
def povey_window(frame_length: int, power: float) -> np.ndarray:
    """``(0.5 - 0.5 cos(2 pi i / (N - 1))) ** power`` for ``i < N``: ``(N,)`` float64."""
    i = np.arange(frame_length)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * i / (frame_length - 1))) ** power


def num_frames(num_samples: int, config: KaldiFbankConfig = KaldiFbankConfig()) -> int:
    """Whole frames in ``num_samples`` samples (``snip_edges``): 0 when shorter than one frame."""
    if num_samples < config.frame_length:
        return 0
    return 1 + (num_samples - config.frame_length) // config.frame_shift


def fbank(wave: np.ndarray, config: KaldiFbankConfig = KaldiFbankConfig()) -> np.ndarray:
    """Kaldi log-mel filterbank of a mono waveform (no mean normalisation).

    Parameters
    ----------
    wave
        ``(n,)`` float samples in [-1, 1] at ``config.sample_rate``.

    Returns
    -------
    np.ndarray
        ``(T, n_mels)`` float32 natural-log energies; ``T`` may be 0 (shorter than one frame).
    """
    x = np.ascontiguousarray(wave, dtype=np.float32)
    frames = num_frames(x.shape[0], config)
    if frames == 0:
        return np.zeros((0, config.n_mels), dtype=np.float32)
    strided = np.lib.stride_tricks.as_strided(
        x, shape=(frames, config.frame_length), strides=(x.strides[0] * config.frame_shift, x.strides[0]),
        writeable=False,
    )
    if config.remove_dc_offset:
        strided = strided - strided.mean(axis=1, keepdims=True)
    emphasised = np.empty_like(strided)
    emphasised[:, 1:] = strided[:, 1:] - np.float32(config.preemphasis) * strided[:, :-1]
    emphasised[:, 0] = strided[:, 0] * np.float32(1.0 - config.preemphasis)
    window = povey_window(config.frame_length, config.window_power).astype(np.float32)
    spectrum = scipy.fft.rfft(emphasised * window, n=config.n_fft, axis=1)  # float32 in, complex64 out
    power = spectrum.real**2 + spectrum.imag**2
    energies = power @ _mel_banks32(config)
    return np.log(np.maximum(energies, np.float32(config.log_floor)))


def normalise(features: np.ndarray, config: KaldiFbankConfig = KaldiFbankConfig()) -> np.ndarray:
    """Subtract the utterance's mean of every bin (when ``config.mean_norm``): ``(T, F) -> (T, F)`` float32."""
    if not config.mean_norm:
        return features.astype(np.float32)
    return (features - features.mean(axis=0, keepdims=True, dtype=np.float64)).astype(np.float32)


def compute_features(wave: np.ndarray, config: KaldiFbankConfig = KaldiFbankConfig()) -> np.ndarray:
    """CAM++'s input for one utterance: ``(n,)`` samples -> normalised ``(T, n_mels)`` float32."""
    return normalise(fbank(wave, config), config)
