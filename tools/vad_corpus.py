"""Recordings for measuring the speech detector: real speech, the same with steady noise or with
its pauses cut out, and sounds that hold no speech at all.

Everything is seeded, so a measurement (``tools/vad_report.py``) and the tests
(``tests/inference/test_vad.py``) see the same signals on every run. Noise is scaled against the
*active speech level* of the clean recording: the mean power of its 20 ms frames within 30 dB of
the loudest (the same definition the API tests use), so "6 dB SNR" means the steady noise lies
6 dB under the speech while it is spoken.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16_000
REPO = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO / "tests" / "fixtures" / "speech"
_FRAME = 320  # 20 ms at 16 kHz


# --------------------------------------------------------------------------- real speech


@dataclass(frozen=True)
class Recording:
    """One real recording: ``name`` is its path relative to the set it came from."""

    name: str
    samples: np.ndarray


def read_wave(path: Path) -> np.ndarray:
    """``(n,)`` float32 samples of a 16 kHz mono file."""
    samples, rate = sf.read(path, dtype="float32")
    if rate != RATE or samples.ndim != 1:
        raise ValueError(f"{path} is not 16 kHz mono")
    return samples


def real_recordings(shared_speech: Path | None) -> list[Recording]:
    """Every distinct real recording: the test fixtures, then ``shared_speech``'s dev/ and multi/.

    Files with the same content are listed once (the fixtures are copies of ``dev/``), under the
    first name met.
    """
    paths = sorted(FIXTURES_DIR.glob("*.wav"))
    if shared_speech is not None:
        paths += sorted((shared_speech / "dev").glob("*.wav")) + sorted((shared_speech / "multi").rglob("*.wav"))
    seen: set[str] = set()
    found = []
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        base = FIXTURES_DIR if path.is_relative_to(FIXTURES_DIR) else shared_speech
        found.append(Recording(path.relative_to(base).as_posix(), read_wave(path)))
    return found


def frame_powers(samples: np.ndarray) -> np.ndarray:
    """Mean power of each whole 20 ms frame: ``(n,) -> (n // 320,)``."""
    usable = samples[: samples.size // _FRAME * _FRAME].astype(np.float64).reshape(-1, _FRAME)
    return np.mean(usable**2, axis=1)


def active_level(samples: np.ndarray) -> float:
    """Active speech power (linear): mean power of the 20 ms frames within 30 dB of the loudest."""
    power = frame_powers(samples)
    return float(np.mean(power[power > power.max() * 1e-3]))


# --------------------------------------------------------------------------- steady noise


def _shaped(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as ``f ** -exponent`` (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    # below 20 Hz the slope stops, so brown noise does not wander off as a DC drift
    spectrum *= np.maximum(freqs, 20.0) ** (-exponent / 2.0)
    spectrum[0] = 0.0  # no DC: a microphone chain is AC-coupled (and the engine removes any offset)
    return np.fft.irfft(spectrum, n)


def _hum(rng: np.random.Generator, n: int, mains_hz: float) -> np.ndarray:
    """Mains hum: the fundamental and its harmonics up to 2 kHz, odd ones stronger, random phases."""
    t = np.arange(n) / RATE
    out = np.zeros(n)
    for k in range(1, int(2000 // mains_hz) + 1):
        gain = (1.0 if k % 2 else 0.4) / k
        out += gain * np.sin(2 * np.pi * mains_hz * k * t + rng.uniform(0, 2 * np.pi))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x**2))


NOISES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "white": lambda rng, n: _unit(_shaped(rng, n, 0.0)),
    "pink": lambda rng, n: _unit(_shaped(rng, n, 1.0)),
    "brown": lambda rng, n: _unit(_shaped(rng, n, 2.0)),
    "hum50": lambda rng, n: _unit(_hum(rng, n, 50.0)),
    "hum60": lambda rng, n: _unit(_hum(rng, n, 60.0)),
    "pink+hum50": lambda rng, n: _unit(_unit(_shaped(rng, n, 1.0)) + _unit(_hum(rng, n, 50.0))),
    "white+hum60": lambda rng, n: _unit(_unit(_shaped(rng, n, 0.0)) + 0.7 * _unit(_hum(rng, n, 60.0))),
    "brown+white": lambda rng, n: _unit(_unit(_shaped(rng, n, 2.0)) + 0.3 * _unit(_shaped(rng, n, 0.0))),
}
"""Steady noises of unit power: ``NOISES[kind](rng, n) -> (n,) float64``."""


def noise(kind: str, n: int, seed: int) -> np.ndarray:
    """``n`` samples of the steady noise ``kind`` with unit mean power."""
    return NOISES[kind](np.random.default_rng(seed), n)


def seed_for(*parts: object) -> int:
    """A stable seed from names and numbers (Python's ``hash`` of a string changes per process)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def mix(speech: np.ndarray, kind: str, snr_db: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``speech`` plus steady noise ``snr_db`` under its active level: ``(mixture, noise)``, float32."""
    added = noise(kind, speech.size, seed) * np.sqrt(active_level(speech) / 10 ** (snr_db / 10))
    return (speech + added).astype(np.float32), added.astype(np.float32)


# --------------------------------------------------------------------------- pauses


def cut_pauses(speech: np.ndarray, below_db: float = 25.0, fade: int = 80) -> np.ndarray:
    """The recording with every 20 ms frame quieter than ``below_db`` under its active level removed.

    What is left is speech with no pause at all; splices are cross-faded over ``fade`` samples so
    they add no click.
    """
    power = frame_powers(speech)
    keep = power > active_level(speech) * 10 ** (-below_db / 10)
    pieces = []
    start = None
    for i, k in enumerate(np.append(keep, False)):
        if k and start is None:
            start = i
        elif not k and start is not None:
            pieces.append(speech[start * _FRAME : i * _FRAME].astype(np.float64))
            start = None
    out = pieces[0]
    ramp = np.linspace(0.0, 1.0, fade)
    for piece in pieces[1:]:
        if piece.size <= fade or out.size <= fade:
            out = np.concatenate([out, piece])
            continue
        joint = out[-fade:] * (1 - ramp) + piece[:fade] * ramp
        out = np.concatenate([out[:-fade], joint, piece[fade:]])
    return out.astype(np.float32)


def insert_pauses(speech: np.ndarray, pause_s: float, every_s: float, floor_dbfs: float, seed: int) -> np.ndarray:
    """Insert ``pause_s`` of faint white noise (``floor_dbfs``) at the quietest frame near every ``every_s``.

    A stand-in for a speaker who stops to think: the long pauses the detector cuts before embedding.
    """
    rng = np.random.default_rng(seed)
    power = frame_powers(speech)
    cuts = []
    for centre in np.arange(every_s, speech.size / RATE - 0.3, every_s):
        lo, hi = int((centre - 0.3) * RATE / _FRAME), int((centre + 0.3) * RATE / _FRAME)
        hi = min(hi, power.size)
        if hi > lo:
            cuts.append((lo + int(np.argmin(power[lo:hi]))) * _FRAME + _FRAME // 2)
    pieces, last = [], 0
    level = 10 ** (floor_dbfs / 20)
    for at in cuts:
        pieces += [speech[last:at], (level * rng.standard_normal(int(pause_s * RATE))).astype(np.float32)]
        last = at
    pieces.append(speech[last:])
    return np.concatenate(pieces).astype(np.float32)


# --------------------------------------------------------------------------- no speech at all


def non_speech(speech_frame_source: np.ndarray | None = None, seconds: float = 3.0) -> Iterator[tuple[str, np.ndarray]]:
    """Sounds that must be ``no_speech``: ``(name, (n,) float32)``.

    ``speech_frame_source``, if given, is a real recording whose loudest 20 ms frame is repeated
    (a perfectly periodic signal made of speech).
    """
    for name, samples in _non_speech(speech_frame_source, seconds):
        yield name, np.asarray(samples, dtype=np.float32)


def _non_speech(speech_frame_source: np.ndarray | None, seconds: float) -> Iterator[tuple[str, np.ndarray]]:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    rng = np.random.default_rng(11)
    yield "digital silence", np.zeros(n)
    yield "dither (1 LSB)", rng.integers(-1, 2, n) / 32768.0
    yield "low-level white noise -70 dBFS", 10 ** (-70 / 20) * noise("white", n, 1)
    for kind in ("white", "pink", "brown"):
        for level in (-50, -30, -10):
            yield f"steady {kind} noise {level} dBFS", 10 ** (level / 20) * noise(kind, n, seed_for(kind, level))
    for kind in ("hum50", "hum60"):
        for level in (-40, -10):
            yield f"{kind} with harmonics {level} dBFS", 10 ** (level / 20) * noise(kind, n, seed_for(kind, level))
    yield "pink noise + hum50 -20 dBFS", 0.1 * noise("pink+hum50", n, 5)
    yield "white noise + hum60 -20 dBFS", 0.1 * noise("white+hum60", n, 6)
    yield "50 Hz sine 0.9", 0.9 * np.sin(2 * np.pi * 50 * t)
    for hz in (150.0, 440.0, 1000.0, 3000.0):
        yield f"pure tone {hz:g} Hz 0.5", 0.5 * np.sin(2 * np.pi * hz * t)
    for hz in (100.0, 220.0, 1000.0):
        yield f"square wave {hz:g} Hz 0.5", 0.5 * np.sign(np.sin(2 * np.pi * hz * t + 0.1))
    yield "DC offset 0.5", np.full(n, 0.5)
    yield "DC offset 0.3 + dither", 0.3 + rng.integers(-1, 2, n) / 32768.0
    click = np.zeros(n)
    click[n // 2] = 0.99
    yield "one loud click in silence", click
    burst = np.zeros(n)
    burst[n // 2 : n // 2 + 160] = 0.9 * rng.standard_normal(160)
    yield "one 10 ms noise burst in silence", burst
    yield "one loud click in -60 dBFS noise", click + 1e-3 * noise("white", n, 3)
    yield "one loud click in -40 dBFS noise", click + 1e-2 * noise("white", n, 4)
    step = np.where(t < seconds / 2, 10 ** (-40 / 20), 10 ** (-20 / 20))
    yield "white noise stepping from -40 to -20 dBFS", step * noise("white", n, 7)
    yield "pink noise stepping from -20 to -40 dBFS", step[::-1] * noise("pink", n, 8)
    yield "hum50 switching on halfway", np.where(t < seconds / 2, 0.0, 0.3) * noise("hum50", n, 9)
    yield "repeated 20 ms frame of white noise", np.tile(0.3 * rng.standard_normal(_FRAME), n // _FRAME)
    if speech_frame_source is not None:
        power = frame_powers(speech_frame_source)
        loudest = int(np.argmax(power)) * _FRAME
        frame = speech_frame_source[loudest : loudest + _FRAME].astype(np.float64)
        yield "repeated 20 ms frame of speech", np.tile(frame, n // _FRAME)
        # the same frame, but cut at an odd offset (the period no longer falls on our frame edges)
        yield "repeated 21.3 ms of speech", np.tile(speech_frame_source[loudest : loudest + 341], n // 341 + 1)[:n]
    for low, high in ((100.0, 7000.0),):
        k = np.log(high / low) / seconds
        yield "log sine sweep 100 Hz-7 kHz", 0.5 * np.sin(2 * np.pi * low * (np.exp(k * t) - 1) / k)
        yield "linear sine sweep 100 Hz-7 kHz", 0.5 * np.sin(2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds)))
    yield "slow sine sweep 200-400 Hz", 0.5 * np.sin(2 * np.pi * (200 * t + 200 * t**2 / (2 * seconds)))
