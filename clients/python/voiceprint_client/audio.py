"""WAV files as raw PCM for the streaming protocol (stdlib only: the client needs no audio library)."""
from __future__ import annotations

import array
import os
import sys
import wave
from dataclasses import dataclass


@dataclass(frozen=True)
class Pcm:
    """Mono 16-bit little-endian samples (the PCM protocol's ``s16le``) and their rate."""

    data: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.data) / 2 / self.sample_rate


def read_wav(path: str | os.PathLike[str]) -> Pcm:
    """A 16-bit PCM WAV file as mono ``s16le`` (channels averaged). Other formats: convert first
    (``sox in.flac -b 16 out.wav``), or send the whole file with a recordings session instead."""
    with wave.open(os.fspath(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
            raise ValueError(f"{path}: streaming reads 16-bit PCM WAV files (this one has "
                             f"{wav.getsampwidth() * 8}-bit {wav.getcomptype()} samples)")
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = array.array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    if channels > 1:
        mono = array.array("h", (sum(samples[i:i + channels]) // channels for i in range(0, len(samples), channels)))
        samples = mono
    if sys.byteorder == "big":
        samples.byteswap()
    return Pcm(data=samples.tobytes(), sample_rate=rate)
