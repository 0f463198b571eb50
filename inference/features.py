"""Log-mel filterbank + per-utterance mean normalisation, as the pretrained model was trained.

This reproduces SpeechBrain's ``Fbank(n_mels=80)`` followed by
``InputNormalization(norm_type="sentence", std_norm=False)`` in numpy:

* STFT: 400-sample periodic Hamming window, hop 160, ``n_fft`` 400, centred with *zero*
  padding of ``n_fft // 2`` on both sides (``torch.stft(center=True, pad_mode="constant")``),
  so a signal of ``n`` samples gives ``1 + n // hop`` frames;
* power spectrum ``re**2 + im**2``;
* 80 triangular filters centred on a mel scale ``2595 log10(1 + f/700)`` between 0 and 8 kHz,
  on the linear frequency grid ``linspace(0, sr/2, n_fft//2 + 1)``; SpeechBrain gives each
  triangle the *left* bandwidth on both sides (a symmetric triangle in Hz);
* ``10 log10(max(x, 1e-10))`` and a floor at ``max - 80 dB`` over the whole utterance;
* subtract the per-utterance mean of every mel bin.

mindaudio's ``features.fbank`` is a Kaldi-style filterbank (40 mels by default, hop = win/2,
povey window, natural log, dither): with the same weights it moves an embedding to cosine
~0.35 of the right one, so it is not used; ``tests/inference/test_features.py`` proves the
difference and the match with SpeechBrain.
"""
from __future__ import annotations

import functools

import numpy as np

from inference.config import FrontendConfig


def _to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=4)
def mel_filterbank(config: FrontendConfig) -> np.ndarray:
    """Triangular mel filters ``(n_fft//2 + 1, n_mels)`` float32, SpeechBrain's construction."""
    mel = np.linspace(_to_mel(config.f_min), _to_mel(config.f_max), config.n_mels + 2)
    hz = _to_hz(mel)
    band = (hz[1:] - hz[:-1])[:-1]
    centre = hz[1:-1]
    freqs = np.linspace(0.0, config.sample_rate // 2, config.n_fft // 2 + 1)
    slope = (freqs[:, None] - centre[None, :]) / band[None, :]
    return np.maximum(0.0, np.minimum(slope + 1.0, 1.0 - slope)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hamming window (``torch.hamming_window``), zero-padded to ``n_fft`` in the centre."""
    n = np.arange(win_length)
    window = 0.54 - 0.46 * np.cos(2.0 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(window, (left, n_fft - win_length - left))


def num_frames(num_samples: int, config: FrontendConfig = FrontendConfig()) -> int:
    """Frames the front end makes of ``num_samples`` samples (``1 + n // hop``)."""
    return 1 + num_samples // config.hop_length


def fbank(wave: np.ndarray, config: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Log-mel filterbank of a mono 16 kHz waveform.

    Parameters
    ----------
    wave
        ``(n,)`` float samples in [-1, 1] at ``config.sample_rate``.

    Returns
    -------
    np.ndarray
        ``(1 + n // hop, n_mels)`` float32, in dB.
    """
    x = np.asarray(wave, dtype=np.float64)
    pad = config.n_fft // 2
    x = np.pad(x, (pad, pad))
    frames = 1 + (x.shape[0] - config.n_fft) // config.hop_length
    strided = np.lib.stride_tricks.as_strided(
        x, shape=(frames, config.n_fft), strides=(x.strides[0] * config.hop_length, x.strides[0])
    )
    spectrum = np.fft.rfft(strided * _window(config.win_length, config.n_fft), axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power.astype(np.float32) @ mel_filterbank(config)
    db = 10.0 * np.log10(np.maximum(mel, config.amin))
    return np.maximum(db, db.max() - config.top_db).astype(np.float32)


def normalise(features: np.ndarray, config: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Per-utterance mean (and optionally std) normalisation over time: ``(T, F) -> (T, F)``."""
    out = features
    if config.mean_norm:
        out = out - out.mean(axis=0, keepdims=True)
    if config.std_norm:
        out = out / np.maximum(features.std(axis=0, keepdims=True), 1e-10)
    return out.astype(np.float32)


def compute_features(wave: np.ndarray, config: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """The model's input for one utterance: ``(n,)`` samples -> normalised ``(T, n_mels)``."""
    return normalise(fbank(wave, config), config)
