"""Speech activity detection against the recording's own stationary background, and quality figures.

Loudness alone cannot tell speech from noise when a steady hiss or hum lies a few dB under the
voice, or when a recording has no pause to learn the noise from. So the detector looks at the
spectrum instead:

1. Each ``frame_ms`` frame gets a power spectrum over a longer Hann window (``window_ms``,
   centred on it) and is summed into mel-spaced bands; each band's level is the median over
   ``smooth_frames`` frames (steadier for noise, and a click is not spread out).
2. Each band's stationary background is tracked by minimum statistics: the lowest smoothed level
   in the ``noise_window_s`` up to the frame and in the ``noise_window_s`` from it, the higher
   of the two. A steady noise, hum or tone sits at its own floor in every band; a noise that
   switches on or off is at its floor on both sides of the switch.
3. How far a band stands above its floor is expressed in standard deviations of steady noise in
   that band (``z``). Bias and spread of the floor are measured once per process on seeded white
   noise run through the very same analysis, so they hold for any window or band layout.
4. A frame is speech when its ``top_bands`` highest ``z`` (each capped at ``z_cap``) average more
   than ``score_threshold``: speech lifts several bands at once (harmonics, formants), which a
   steady noise never does and a sine sweep or a single tone cannot (one band at a time). The
   frame must also be above an absolute floor and within ``threshold_db`` of the loud end.

Speech frames are widened by a short hangover so word edges are kept. The SNR is an active
speech level over the noise: the mean power of the speech frames at least 1 dB above the noise,
less the noise, over the noise power; each band's noise is its mean power while that band is
quiet.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.ndimage import minimum_filter1d

from inference.config import VadConfig
from inference.errors import NoSpeechError

_EPS = 1e-10
# Frames whose spectra are computed at once: bounds the working memory on a 10-minute recording.
_BLOCK_FRAMES = 512
# Seconds of seeded white noise the floor statistics are measured on.
_CALIBRATION_S = 30
# A band within this many steady-noise deviations of its floor is taken as noise for the SNR.
_QUIET_Z = 2.0
# A speech frame counts towards the speech level when its power is this many times the noise (1 dB).
_ACTIVE_OVER_NOISE = 10.0 ** 0.1


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
        Signal-to-noise ratio: mean speech power (speech-frame power less the noise) over the
        stationary noise power (dB), as an active speech level over a noise level. Capped at
        100 dB (digital silence has no noise).
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
    bandwidth_hz: float = 0.0


@dataclass(frozen=True)
class _Layout:
    """How a sample rate and a config turn into frames and bands."""

    frame: int
    nfft: int
    band_starts: np.ndarray  # (n_bands + 1,) first FFT bin of each band; band 0 lies below low_hz
    band_stop: int  # one past the last FFT bin of the top band
    bins: np.ndarray  # (n_bands + 1,) FFT bins per band
    band_tops_hz: np.ndarray  # (n_bands + 1,) upper edge of each band
    smooth: int
    noise_window: int
    shortest_noise_window: int


def frame_energies(samples: np.ndarray, frame: int) -> np.ndarray:
    """Mean power per non-overlapping frame in dB full scale: ``(n,) -> (n // frame,)``."""
    usable = samples[: samples.size // frame * frame].astype(np.float64).reshape(-1, frame)
    return 10.0 * np.log10(np.mean(usable**2, axis=1) + _EPS)


@lru_cache(maxsize=8)
def _layout(sample_rate: int, config: VadConfig) -> _Layout:
    frame = int(round(sample_rate * config.frame_ms / 1000.0))
    nfft = max(frame, int(round(sample_rate * config.window_ms / 1000.0)))
    freqs = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    mel_low, mel_high = (2595.0 * np.log10(1.0 + f / 700.0) for f in (config.low_hz, min(config.high_hz, sample_rate / 2)))
    edges = 700.0 * (10.0 ** (np.linspace(mel_low, mel_high, config.bands + 1) / 2595.0) - 1.0)
    edges = np.concatenate(([0.0], edges))
    edges[-1] = np.nextafter(edges[-1], np.inf)  # the top edge belongs to the top band
    starts = np.searchsorted(freqs, edges[:-1])
    stop = int(np.searchsorted(freqs, edges[-1]))
    bins = np.diff(np.append(starts, stop))
    if np.any(bins <= 0):
        raise ValueError(f"{config.bands} bands between {config.low_hz} and {config.high_hz} Hz leave a band "
                         f"without FFT bins at {sample_rate} Hz with a {config.window_ms} ms window")
    return _Layout(
        frame=frame,
        nfft=nfft,
        band_starts=starts,
        band_stop=stop,
        bins=bins,
        band_tops_hz=edges[1:],
        smooth=max(1, config.smooth_frames),
        noise_window=max(1, int(round(config.noise_window_s * 1000.0 / config.frame_ms))),
        shortest_noise_window=max(1, int(round(config.shortest_noise_window_s * 1000.0 / config.frame_ms))),
    )


def band_powers(samples: np.ndarray, layout: _Layout) -> np.ndarray:
    """Mean power per FFT bin in each band, per frame: ``(n,) -> (n // frame, n_bands + 1)``.

    Frame ``t``'s window of ``nfft`` samples is centred on it (moved inside the recording at the
    ends, so a steady signal has no onset). Scaled so that white noise of power ``p`` reads ``p``.
    """
    count = samples.size // layout.frame
    x = np.asarray(samples, dtype=np.float32)
    if x.size < layout.nfft:
        x = np.pad(x, (0, layout.nfft - x.size))
    window = np.hanning(layout.nfft + 1)[:-1].astype(np.float32)
    scale = 1.0 / float(np.sum(window.astype(np.float64) ** 2))
    starts = np.clip(np.arange(count) * layout.frame + (layout.frame - layout.nfft) // 2, 0, x.size - layout.nfft)
    windows = np.lib.stride_tricks.sliding_window_view(x, layout.nfft)
    out = np.empty((count, layout.bins.size))
    for begin in range(0, count, _BLOCK_FRAMES):
        spectrum = scipy.fft.rfft(windows[starts[begin : begin + _BLOCK_FRAMES]] * window, axis=1)[:, : layout.band_stop]
        power = spectrum.real**2 + spectrum.imag**2
        out[begin : begin + power.shape[0]] = np.add.reduceat(power, layout.band_starts, axis=1)
    return out * scale / layout.bins


def _smoothed_levels(powers: np.ndarray, layout: _Layout) -> np.ndarray:
    """Band levels in dB, the median over ``smooth`` frames: ``(T, B) -> (T, B)``.

    A median, not a mean: it steadies the levels of noise as well, but does not spread a click
    (a few frames) over ``smooth`` frames.
    """
    levels = 10.0 * np.log10(powers + _EPS)
    width = min(layout.smooth, levels.shape[0])
    if width <= 1:
        return levels
    padded = np.pad(levels, ((width // 2, (width - 1) // 2), (0, 0)), mode="edge")
    stack = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)  # (T, B, width)
    return np.partition(stack, width // 2, axis=2)[:, :, width // 2]


def _floors(levels: np.ndarray, window: int, shortest: int) -> np.ndarray:
    """Per band, the higher of the lowest level in the ``window`` frames up to and from each frame.

    Near the ends of the recording a window is cut short by the edge, but never below
    ``shortest`` frames (it then reaches past the frame), so the first word of a recording that
    starts speaking is still measured against some of its own pauses. Looking both ways means
    that a noise that switches on or off is at its floor on either side of the switch.
    ``(T, B) -> (T, B)``.
    """
    count = levels.shape[0]
    window = min(window, count)
    shortest = min(shortest, window)
    # whole[s] = min(levels[s : s + window])
    whole = minimum_filter1d(levels, window, axis=0, mode="nearest", origin=-(window // 2))[: count - window + 1]
    head = np.minimum.accumulate(levels, axis=0)  # head[t] = min(levels[: t + 1])
    tail = np.minimum.accumulate(levels[::-1], axis=0)[::-1]  # tail[t] = min(levels[t:])
    frames = np.arange(count)
    before = np.where((frames >= window - 1)[:, None],
                      whole[np.clip(frames - window + 1, 0, count - window)], head[np.maximum(frames, shortest - 1)])
    after = np.where((frames <= count - window)[:, None],
                     whole[np.clip(frames, 0, count - window)], tail[np.minimum(frames, count - shortest)])
    return np.maximum(before, after)


@lru_cache(maxsize=8)
def _steady_noise_statistics(sample_rate: int, config: VadConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bias_db, sigma_db, power_bias)`` per band of steady white noise through this analysis.

    ``bias_db``: mean level over the floor; ``sigma_db``: spread of the level; ``power_bias``:
    mean power over mean floor power. Measured on seeded noise, so every process agrees.
    """
    layout = _layout(sample_rate, config)
    noise = np.random.default_rng(20_240_607).standard_normal(_CALIBRATION_S * sample_rate)
    levels = _smoothed_levels(band_powers(noise, layout), layout)
    floors = _floors(levels, layout.noise_window, layout.shortest_noise_window)
    bias = levels.mean(axis=0) - floors.mean(axis=0)
    sigma = levels.std(axis=0)
    power_bias = np.mean(10.0 ** (levels / 10.0), axis=0) / np.mean(10.0 ** (floors / 10.0), axis=0)
    return bias, sigma, power_bias


def _band_z(levels: np.ndarray, floors: np.ndarray, sample_rate: int, config: VadConfig) -> np.ndarray:
    """How far each band stands above its floor, in steady-noise standard deviations: ``(T, B) -> (T, B)``.

    A band's floor is never taken lower than ``dynamic_range_db`` under the recording's loudest
    band, so the far sidelobes of a loud tone over digital silence do not count as activity.
    """
    bias, sigma, _ = _steady_noise_statistics(sample_rate, config)
    lowest = np.percentile(levels, 95, axis=0).max() - config.dynamic_range_db
    return (levels - np.maximum(floors, lowest) - bias) / sigma


def _speech_scores(z: np.ndarray, config: VadConfig) -> np.ndarray:
    """Per frame, the mean of the ``top_bands`` highest band z-scores, each capped at ``z_cap``.

    Band 0 (below ``low_hz``: DC, mains fundamentals, rumble) does not vote. ``(T, B) -> (T,)``.
    """
    voting = np.clip(z[:, 1:], -config.z_cap, config.z_cap)
    top = min(config.top_bands, voting.shape[1])
    return np.partition(voting, voting.shape[1] - top, axis=1)[:, -top:].mean(axis=1)


def _noise_power(powers: np.ndarray, floors: np.ndarray, z: np.ndarray, layout: _Layout, power_bias: np.ndarray) -> float:
    """Stationary noise power (mean square, full band) of the recording.

    Per band, the mean power of the frames where that band is quiet (``z`` under 2: its own
    pauses, which even speech without any pause has in most bands); a band that is never quiet
    falls back on its floor times the steady-noise bias.
    """
    quiet = z < _QUIET_Z
    counts = quiet.sum(axis=0)
    quiet_mean = np.where(quiet, powers, 0.0).sum(axis=0) / np.maximum(counts, 1)
    from_floor = np.mean(10.0 ** (floors / 10.0), axis=0) * power_bias
    estimate = np.where(counts >= layout.smooth, quiet_mean, from_floor)
    # per-bin power back to mean square: one-sided spectrum, so every bin but DC and Nyquist counts twice
    return float(np.sum(estimate * layout.bins) * 2.0 / layout.nfft)


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
    return _detect(_analyse(samples, sample_rate, config), config)


def detect_speech_twice(samples: np.ndarray, sample_rate: int, config: VadConfig,
                        other: VadConfig) -> tuple[np.ndarray, SpeechReport, np.ndarray]:
    """:func:`detect_speech` with ``config``, and the speech mask of ``other`` from the same analysis.

    ``other`` may differ from ``config`` in its gates only (:data:`GATES`: the spectrum, bands and
    floors are computed once). Its mask is all False where it finds too little speech.
    """
    if dataclasses.replace(other, **{name: getattr(config, name) for name in GATES}) != config:
        raise ValueError(f"detect_speech_twice: the two configs differ beyond their gates {GATES}")
    analysis = _analyse(samples, sample_rate, config)
    mask, report = _detect(analysis, config)
    try:
        other_mask, _ = _detect(analysis, other)
    except NoSpeechError:
        other_mask = np.zeros_like(mask)
    return mask, report, other_mask


# The fields of a VadConfig that decide on an analysed recording (everything else shapes the analysis).
GATES = ("score_threshold", "threshold_db", "floor_dbfs", "hangover_frames", "min_speech_s")


@dataclass(frozen=True)
class _Analysis:
    """What the gates decide on: one recording's frame energies, band powers, floors and speech scores."""

    sample_rate: int
    duration_s: float
    layout: _Layout
    energy: np.ndarray
    powers: np.ndarray
    floors: np.ndarray
    z: np.ndarray
    scores: np.ndarray
    noise_power: float


def _analyse(samples: np.ndarray, sample_rate: int, config: VadConfig) -> _Analysis:
    layout = _layout(sample_rate, config)
    energy = frame_energies(samples, layout.frame)
    duration = samples.size / sample_rate
    if energy.size == 0:
        raise NoSpeechError("the recording is too short to hold speech", speech_s=0.0, duration_s=round(duration, 3))
    powers = band_powers(samples, layout)
    levels = _smoothed_levels(powers, layout)
    floors = _floors(levels, layout.noise_window, layout.shortest_noise_window)
    z = _band_z(levels, floors, sample_rate, config)
    noise_power = _noise_power(powers, floors, z, layout, _steady_noise_statistics(sample_rate, config)[2])
    return _Analysis(sample_rate, duration, layout, energy, powers, floors, z, _speech_scores(z, config), noise_power)


def _detect(analysis: _Analysis, config: VadConfig) -> tuple[np.ndarray, SpeechReport]:
    layout, energy, powers, duration = analysis.layout, analysis.energy, analysis.powers, analysis.duration_s
    loud_enough = (energy > config.floor_dbfs) & (energy > np.percentile(energy, 95) - config.threshold_db)
    raw = (analysis.scores > config.score_threshold) & loud_enough
    mask = _dilate(raw, config.hangover_frames)
    frame_s = layout.frame / analysis.sample_rate
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
    speech_power = float(power[mask].mean())
    noise_power = analysis.noise_power
    # an active speech level: the speech frames that carry speech power (not the pauses and edges the
    # hangover holds, which carry only the noise)
    active = mask & (power > noise_power * _ACTIVE_OVER_NOISE)
    active_power = float(power[active].mean()) if active.any() else speech_power
    snr = 10.0 * np.log10(max(active_power - noise_power, _EPS) / max(noise_power, _EPS))
    segments = tuple((round(a * frame_s, 3), round(b * frame_s, 3)) for a, b in _runs(mask))
    bandwidth = _bandwidth_hz(powers[active if active.any() else mask], layout)
    return mask, SpeechReport(
        speech_s=speech_s,
        duration_s=duration,
        segments=segments,
        snr_db=float(min(snr, 100.0)),
        speech_level_dbfs=float(10.0 * np.log10(max(speech_power, _EPS))),
        speech_ratio=speech_s / duration if duration else 0.0,
        bandwidth_hz=bandwidth,
    )


# A band carries the signal when its mean power over the speech is within this of the loudest band.
_BANDWIDTH_RANGE_DB = 50.0


def _bandwidth_hz(speech_powers: np.ndarray, layout: _Layout) -> float:
    """Upper edge (Hz) of the highest band the speech reaches: a telephone channel reads about 3.4-4 kHz,
    wideband speech 7-8 kHz. ``speech_powers``: ``(T, B)`` band powers of the speech frames."""
    levels = 10.0 * np.log10(speech_powers[:, 1:].mean(axis=0) + _EPS)  # band 0 (below low_hz) never counts
    reached = np.flatnonzero(levels >= levels.max() - _BANDWIDTH_RANGE_DB)
    return float(layout.band_tops_hz[1:][reached[-1]]) if reached.size else 0.0


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
