"""Crafted recordings that try to pass for a voice (shared by the engine and the API tests).

Each maker takes a real 16 kHz speech waveform (or ignores it) and returns the bytes of an
upload. None of them is a person speaking in a usable way: every one must be refused with a
code, or embed to a vector that matches no other speaker (and no other crafted recording made
from another speaker's voice) above the verify threshold.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import soundfile as sf

RATE = 16_000


def _wav(samples: np.ndarray, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples, dtype=np.float32), RATE, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _spiked(speech: np.ndarray, value: float, count: int = 1) -> bytes:
    y = speech.copy()
    for k in range(count):
        y[(k + 1) * y.size // (count + 1)] = value
    return _wav(y, "FLOAT")


def _tone(seconds: float = 3.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.5 * np.sin(2 * np.pi * hz * t)


def _repeated_frame(speech: np.ndarray, seconds: float = 3.0) -> bytes:
    frame = int(0.02 * RATE)
    frames = speech[: speech.size // frame * frame].reshape(-1, frame)
    loudest = frames[np.argmax((frames**2).sum(axis=1))]
    return _wav(np.tile(loudest, int(seconds / 0.02)))


def _click_in_silence(seconds: float = 3.0) -> bytes:
    y = np.random.default_rng(0).normal(0.0, 1e-4, int(seconds * RATE))
    y[y.size // 2] = 0.9
    return _wav(y)


ADVERSARIAL: dict[str, Callable[[np.ndarray], bytes]] = {
    "one float sample of 1e4": lambda s: _spiked(s, 1e4),
    "one float sample of 1e20": lambda s: _spiked(s, 1e20),
    "twenty float samples of 50": lambda s: _spiked(s, 50.0, count=20),
    "speech with a large DC offset": lambda s: _wav(0.5 * s + 0.45),
    "a DC offset alone": lambda s: _wav(np.full(3 * RATE, 0.45) + np.random.default_rng(1).normal(0, 1e-4, 3 * RATE)),
    "a pure tone": lambda s: _wav(_tone()),
    "a square wave": lambda s: _wav(0.5 * np.sign(_tone(hz=200.0))),
    "float speech at extreme gain": lambda s: _wav(1000.0 * s, "FLOAT"),
    "PCM speech at extreme gain (clipped)": lambda s: _wav(np.clip(1000.0 * s, -1.0, 1.0)),
    "one loud click in silence": lambda s: _click_in_silence(),
    "one 20 ms frame repeated": _repeated_frame,
}
