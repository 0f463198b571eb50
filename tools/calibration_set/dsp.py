"""Signal helpers shared by the corpus builder and the degradations (numpy / scipy only).

Conventions: signals are ``(n,)`` float64 mono in [-1, 1]; rates in Hz; durations in seconds.
The speech detector here is a simple energy gate used to *make* the set (how much net
speech a crop holds, where to cut a recording, the speech power an SNR refers to). It is
deliberately not the service's VAD, which is what the set is meant to measure.
"""
from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

RATE = 16_000
FRAME_S = 0.025
HOP_S = 0.010
# A frame is speech when its energy is within this many dB of the loud frames (95th
# percentile) and above an absolute floor; short gaps are bridged, short blips dropped.
GATE_DB = 35.0
FLOOR_DBFS = -60.0
MIN_SPEECH_S = 0.05
BRIDGE_S = 0.15

SEED = 20261201
"""The seed every random choice of the recipe derives from (see :func:`rng_for`)."""


def rng_for(*names: object, seed: int = SEED) -> np.random.Generator:
    """A generator seeded by ``seed`` and ``names``: same names, same stream, on any machine.

    ``hash()`` is salted per process, so the names are hashed with SHA-256 instead.
    """
    digest = hashlib.sha256("\x1f".join([str(seed), *map(str, names)]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def to_mono(x: np.ndarray) -> np.ndarray:
    """``(n,)`` or ``(n, channels)`` -> ``(n,)`` float64 (channel mean)."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser window) between integer rates."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float64)
    g = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(np.asarray(x, dtype=np.float64), rate_out // g, rate_in // g)


def decode(data: bytes) -> tuple[np.ndarray, int, int]:
    """Decode audio bytes (WAV, FLAC, OGG, MP3) -> (mono float64, rate, channels)."""
    x, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    return to_mono(x), int(rate), int(x.shape[1])


def write_wav(path: Path, x: np.ndarray, rate: int = RATE) -> None:
    """Write 16-bit PCM WAV, clipping to [-1, 1) (soundfile rounds to the nearest step)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 32767 / 32768), rate, subtype="PCM_16", format="WAV")


def frame_energy_db(x: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Per-frame energy in dBFS (``FRAME_S`` windows every ``HOP_S``)."""
    frame, hop = int(FRAME_S * rate), int(HOP_S * rate)
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    n = 1 + (x.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    power = np.mean(x[idx] ** 2, axis=1)
    return 10 * np.log10(power + 1e-12)


def speech_frames(x: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Boolean ``(frames,)`` mask of speech frames (energy gate, gaps bridged, blips dropped)."""
    e = frame_energy_db(x, rate)
    mask = (e > np.percentile(e, 95) - GATE_DB) & (e > FLOOR_DBFS)
    mask = _fill_runs(mask, value=False, shorter_than=int(round(BRIDGE_S / HOP_S)))
    return _fill_runs(mask, value=True, shorter_than=int(round(MIN_SPEECH_S / HOP_S)))


def _fill_runs(mask: np.ndarray, *, value: bool, shorter_than: int) -> np.ndarray:
    """Flip interior runs of ``value`` shorter than ``shorter_than`` frames."""
    out = mask.copy()
    n = len(mask)
    i = 0
    while i < n:
        j = i
        while j < n and mask[j] == mask[i]:
            j += 1
        if mask[i] == value and j - i < shorter_than and i > 0 and j < n:
            out[i:j] = not value
        i = j
    return out


def net_speech_s(x: np.ndarray, rate: int = RATE) -> float:
    """Seconds of speech in ``x`` by :func:`speech_frames`."""
    return float(speech_frames(x, rate).sum() * HOP_S)


def speech_power(x: np.ndarray, rate: int = RATE) -> float:
    """Mean power over the speech frames (the reference of every SNR here)."""
    mask = speech_frames(x, rate)
    hop, frame = int(HOP_S * rate), int(FRAME_S * rate)
    keep = np.zeros(x.size, dtype=bool)
    for i in np.flatnonzero(mask):
        keep[i * hop : i * hop + frame] = True
    if not keep.any():
        return float(np.mean(x**2))
    return float(np.mean(x[keep] ** 2))


def trim_silence(x: np.ndarray, rate: int = RATE, pad_s: float = 0.15) -> np.ndarray:
    """Cut leading and trailing non-speech, keeping ``pad_s`` around the speech."""
    mask = speech_frames(x, rate)
    if not mask.any():
        return x
    hop, pad = int(HOP_S * rate), int(pad_s * rate)
    first, last = np.flatnonzero(mask)[[0, -1]]
    start = max(0, first * hop - pad)
    end = min(x.size, (last + 1) * hop + int(FRAME_S * rate) + pad)
    return x[start:end]


def quiet_cut(x: np.ndarray, lo_s: float, hi_s: float, rate: int = RATE) -> int:
    """Sample index of the quietest 0.1 s (moving average of frame energy) between ``lo_s``
    and ``hi_s``: a cut there falls between words, not through one."""
    e = np.convolve(frame_energy_db(x, rate), np.ones(10) / 10, mode="same")
    lo = max(0, int(lo_s / HOP_S))
    hi = min(len(e), max(lo + 1, int(hi_s / HOP_S)))
    return int((lo + int(np.argmin(e[lo:hi]))) * HOP_S * rate)


def balanced_cut_points(x: np.ndarray, parts: int, rate: int = RATE, slack: float = 0.15) -> list[int]:
    """Sample indices cutting ``x`` into ``parts`` pieces of about equal net speech: each cut
    is the :func:`quiet_cut` within ``slack`` of the duration around the ideal point."""
    mask = speech_frames(x, rate)
    cum = np.cumsum(mask)
    duration = x.size / rate
    cuts = []
    for k in range(1, parts):
        ideal_s = int(np.searchsorted(cum, cum[-1] * k / parts)) * HOP_S
        cuts.append(quiet_cut(x, ideal_s - slack * duration, ideal_s + slack * duration, rate))
    return sorted(set(cuts))
