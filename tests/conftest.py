"""Fixtures shared by every test layer: the real recordings (tests/fixtures/speech) and WAV helpers."""
from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

SPEECH_DIR = Path(__file__).resolve().parent / "fixtures" / "speech"


class Speech:
    """The fixture recordings: speaker ``a`` (a_snt1..6) and ``b`` (b_snt1..6), 16 kHz mono."""

    sample_rate = 16_000

    def bytes(self, name: str) -> bytes:
        return (SPEECH_DIR / f"{name}.wav").read_bytes()

    def samples(self, name: str) -> np.ndarray:
        """Float32 samples in [-1, 1]."""
        with wave.open(str(SPEECH_DIR / f"{name}.wav")) as wav:
            assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0

    def wav(self, samples: np.ndarray, sample_rate: int = 16_000) -> bytes:
        """16-bit PCM mono WAV of ``samples``; values beyond [-1, 1] are clipped, as a loud input would be."""
        pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(sample_rate)
            wav.writeframes(pcm.tobytes())
        return buffer.getvalue()


@pytest.fixture(scope="session")
def speech() -> Speech:
    return Speech()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters, lockouts and cached health figures never leak from one test into another."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
