"""A light energy-based speech activity detector and recording-quality figures.

Frames of ``frame_ms`` are speech when their energy is (1) above an absolute floor, (2) within
``threshold_db`` of the loud end of the recording and (3) clearly above the recording's own
noise floor. The third condition makes stationary noise (hum, hiss, a fan) "no speech" however
loud it is, and digital silence fails the first. Speech frames are widened by a short
hangover so word edges are kept. Silences longer than ``max_silence_s`` are shortened to
``keep_silence_s`` before the embedding; shorter pauses stay, as in the training data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.config import VadConfig
from inference.errors import NoSpeechError

_EPS = 1e-10
# Speech must stand this far above the noise floor (the quietest tenth of the recording).
_NOISE_MARGIN_DB = 9.0


@dataclass(frozen=True)
class SpeechReport:
    """What the VAD found.

    Attributes
    ----------
    speech_s
        Net speech in seconds.
    duration_s
        Length of the analysed signal in seconds.
    segments
        ``[(start_s, end_s), ...]`` of speech.
    snr_db
        Rough signal-to-noise ratio: mean speech-frame power over mean non-speech power (dB).
    speech_level_dbfs
        Mean power of the speech frames, in dB full scale (a near-silent recording is very low).
    speech_ratio
        ``speech_s / duration_s``.
    """

    speech_s: float
    duration_s: float
    segments: tuple[tuple[float, float], ...]
    snr_db: float
    speech_level_dbfs: float
    speech_ratio: float


def frame_energies(samples: np.ndarray, frame: int) -> np.ndarray:
    """Mean power per non-overlapping frame in dB full scale: ``(n,) -> (n // frame,)``."""
    usable = samples[: samples.size // frame * frame].astype(np.float64).reshape(-1, frame)
    return 10.0 * np.log10(np.mean(usable**2, axis=1) + _EPS)


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    if width <= 0 or not mask.any():
        return mask
    kernel = np.ones(2 * width + 1)
    return np.convolve(mask.astype(float), kernel, mode="same") > 0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index runs where ``mask`` is true."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def detect_speech(samples: np.ndarray, sample_rate: int, config: VadConfig = VadConfig()) -> tuple[np.ndarray, SpeechReport]:
    """Find the speech in a mono recording.

    Parameters
    ----------
    samples
        ``(n,)`` float32 mono.

    Returns
    -------
    speech_mask
        ``(n // frame,)`` bool, one value per frame of ``frame_ms``.
    report
        Net speech, segments, SNR.

    Raises
    ------
    NoSpeechError
        Less than ``config.min_speech_s`` of speech.
    """
    frame = int(round(sample_rate * config.frame_ms / 1000.0))
    energy = frame_energies(samples, frame)
    duration = samples.size / sample_rate
    if energy.size == 0:
        raise NoSpeechError("the recording is too short to hold speech", speech_s=0.0, duration_s=round(duration, 3))
    loud = np.percentile(energy, 95)
    noise = np.percentile(energy, 10)
    threshold = max(loud - config.threshold_db, config.floor_dbfs, noise + _NOISE_MARGIN_DB)
    raw = energy > threshold
    mask = _dilate(raw, config.hangover_frames)
    frame_s = frame / sample_rate
    speech_s = float(mask.sum() * frame_s)
    if not raw.any() or speech_s < config.min_speech_s:
        raise NoSpeechError(
            "no speech was found in the recording" if not raw.any() else
            f"only {speech_s:.2f} s of speech was found, less than the {config.min_speech_s} s needed",
            speech_s=round(speech_s, 3),
            min_speech_s=config.min_speech_s,
            duration_s=round(duration, 3),
        )
    power = 10.0 ** (energy / 10.0)
    noise_power = power[~mask].mean() if (~mask).any() else 10.0 ** (noise / 10.0)
    snr = 10.0 * np.log10(power[mask].mean() / max(noise_power, _EPS))
    segments = tuple((round(a * frame_s, 3), round(b * frame_s, 3)) for a, b in _runs(mask))
    return mask, SpeechReport(
        speech_s=speech_s,
        duration_s=duration,
        segments=segments,
        snr_db=float(min(snr, 100.0)),
        speech_level_dbfs=float(10.0 * np.log10(max(float(power[mask].mean()), _EPS))),
        speech_ratio=speech_s / duration if duration else 0.0,
    )


def drop_long_silences(samples: np.ndarray, mask: np.ndarray, sample_rate: int, config: VadConfig = VadConfig()) -> np.ndarray:
    """Shorten every non-speech stretch longer than ``max_silence_s`` to ``keep_silence_s``.

    Leading and trailing silences keep half of ``keep_silence_s``. Returns ``(m,)`` float32, ``m <= n``.
    """
    frame = int(round(sample_rate * config.frame_ms / 1000.0))
    longest = int(round(config.max_silence_s * 1000.0 / config.frame_ms))
    keep = max(1, int(round(config.keep_silence_s * 1000.0 / config.frame_ms)))
    keep_frames = mask.copy()
    for start, end in _runs(~mask):
        if end - start <= longest:
            keep_frames[start:end] = True
            continue
        if start == 0:
            keep_frames[end - keep // 2 : end] = True
        elif end == mask.size:
            keep_frames[start : start + keep // 2] = True
        else:
            keep_frames[start : start + keep // 2] = True
            keep_frames[end - (keep - keep // 2) : end] = True
    sample_keep = np.repeat(keep_frames, frame)
    tail = samples[sample_keep.size :] if keep_frames[-1] else samples[:0]
    return np.concatenate([samples[: sample_keep.size][sample_keep], tail]).astype(np.float32)
