"""Helpers for the browser tests: the recordings the fake microphone plays."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"


def read_wav(name: str) -> np.ndarray:
    with wave.open(str(SPEECH / f"{name}.wav")) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


def joined(*names: str, gap_s: float = 0.3) -> np.ndarray:
    """The recordings one after another with short pauses, as one person reading sentences."""
    gap = np.zeros(int(gap_s * 16_000), dtype=np.float32)
    parts: list[np.ndarray] = []
    for name in names:
        parts += [read_wav(name), gap]
    return np.concatenate(parts)


