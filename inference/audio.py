"""Decode an uploaded recording from bytes into 16 kHz mono float32, in memory only.

Anything libsndfile reads (WAV PCM 8/16/24/32-bit and float, FLAC, OGG/Vorbis, AIFF, MP3...)
is accepted. Channels are averaged to mono block by block, so a long multichannel file is
never held whole in memory; the result is resampled with a polyphase anti-aliasing FIR
filter (``scipy.signal.resample_poly``, Kaiser window). The header is checked before the
samples are decoded: a recording longer than the limit is refused without decoding it.
"""
from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from inference.config import CLIP_LEVEL, FULL_SCALE, AudioConfig
from inference.errors import (
    AudioDecodeError,
    AudioFormatUnsupportedError,
    AudioOutOfRangeError,
    AudioTooComplexError,
    AudioTooLongError,
    AudioTooShortError,
    EmptyAudioError,
    InvalidSamplesError,
    NotAudioError,
)

# Leading bytes of containers libsndfile knows: a failure to open one of these is a
# corrupt recording, a failure to open anything else is "not audio".
_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3",
                b"\xff\xf2", b"caff", b".snd", b"NIST", b"riff", b"Creative Voice File")
_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded recording.

    Attributes
    ----------
    samples
        ``(n,)`` float32 mono at ``sample_rate`` (the engine's rate), in [-1, 1] for PCM input.
    sample_rate
        Rate of ``samples`` (16 kHz).
    original_sample_rate, channels, format
        What the upload was.
    duration_s
        Duration of the recording in seconds.
    clipping_ratio
        Fraction of original samples (any channel) at full scale (``|x| >= CLIP_LEVEL``, :mod:`inference.config`).
    """

    samples: np.ndarray
    sample_rate: int
    original_sample_rate: int
    channels: int
    format: str
    duration_s: float
    clipping_ratio: float


def _check_wav_complete(data: bytes) -> None:
    """libsndfile quietly shortens a WAV whose data chunk is cut off; say so instead."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk_id == b"data":
            available = len(data) - pos - 8
            if size not in (0, 0xFFFFFFFF) and size > available:
                raise AudioDecodeError(
                    "the WAV file is truncated: its data chunk is shorter than its header says",
                    declared_bytes=size,
                    available_bytes=available,
                )
            return
        pos += 8 + size + (size & 1)


def _check_ogg_complete(data: bytes) -> None:
    """An Ogg stream ends with a page flagged end-of-stream; a cut-off file has none."""
    if not data.startswith(b"OggS"):
        return
    last = data.rfind(b"OggS")
    if last + 6 > len(data) or not data[last + 5] & 0x04:
        raise AudioDecodeError("the Ogg file is truncated: its last page is not the end of the stream")


def _reason(exc: Exception) -> str:
    """libsndfile's own words for a failure, without the repr of our in-memory buffer (a heap address)."""
    text = getattr(exc, "error_string", None) or str(exc)
    return re.sub(r"<[^>]* at 0x[0-9a-fA-F]+>:?\s*", "", text).strip() or "unknown decoder error"


def _check_header(rate: int, channels: int, frames: int, config: AudioConfig) -> None:
    """Refuse, before decoding anything, what the header says would cost too much to decode."""
    if rate <= 0 or channels <= 0:
        raise AudioDecodeError("the audio header is invalid", sample_rate=rate, channels=channels)
    if not config.min_sample_rate <= rate <= config.max_sample_rate:
        raise AudioFormatUnsupportedError(
            f"the recording's sample rate is {rate} Hz; {config.min_sample_rate}-{config.max_sample_rate} Hz is accepted",
            sample_rate=rate, min_sample_rate=config.min_sample_rate, max_sample_rate=config.max_sample_rate)
    if channels > config.max_channels:
        raise AudioFormatUnsupportedError(
            f"the recording has {channels} channels; at most {config.max_channels} are accepted",
            channels=channels, max_channels=config.max_channels)
    if frames == 0:
        raise EmptyAudioError("the recording holds no samples")
    header_duration = frames / rate
    if header_duration > config.max_duration_s:
        raise AudioTooLongError(
            f"the recording lasts {header_duration:.1f} s, more than the {config.max_duration_s:.0f} s allowed",
            duration_s=round(header_duration, 3),
            max_duration_s=config.max_duration_s,
        )
    values = frames * channels
    if values > config.max_decoded_values:
        raise AudioTooComplexError(
            f"the recording declares {values} samples ({rate} Hz x {channels} channels x {header_duration:.1f} s), "
            f"more than the {config.max_decoded_values} decoded per recording",
            sample_rate=rate, channels=channels, duration_s=round(header_duration, 3),
            decoded_values=values, max_decoded_values=config.max_decoded_values)


def _open(data: bytes, config: AudioConfig) -> sf.SoundFile:
    if len(data) == 0:
        raise EmptyAudioError("the upload is empty (0 bytes)")
    if len(data) > config.max_bytes:
        raise AudioTooLongError(
            f"the upload is {len(data)} bytes, more than the {config.max_bytes} allowed",
            bytes=len(data),
            max_bytes=config.max_bytes,
        )
    try:
        return sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        if data.lstrip()[:20].startswith(_AUDIO_MAGIC) or data[:4] in _AUDIO_MAGIC:
            raise AudioDecodeError(f"the audio data cannot be decoded: {_reason(exc)}") from exc
        raise NotAudioError("the upload is not an audio format we can read (WAV, FLAC, OGG, MP3, AIFF...)") from exc


def decode(data: bytes, config: AudioConfig = AudioConfig()) -> DecodedAudio:
    """Decode ``data`` into mono float32 samples at ``config.sample_rate``.

    Raises
    ------
    EmptyAudioError, NotAudioError, AudioDecodeError, InvalidSamplesError,
    AudioTooShortError, AudioTooLongError
        Each with a stable ``code`` and the figures that explain it in ``detail``.
    """
    with _open(data, config) as sound:
        rate, channels, frames = sound.samplerate, sound.channels, sound.frames
        fmt = f"{sound.format}/{sound.subtype}"
        _check_header(rate, channels, frames, config)
        # The header's frame count is an estimate for some formats (MP3): the decoded total is
        # capped as well, so a lying header cannot make us decode more than the budget.
        budget = config.max_decoded_values
        _check_wav_complete(data)
        _check_ogg_complete(data)
        parts: list[np.ndarray] = []
        clipped = 0
        try:
            # Read until the decoder runs dry rather than trusting the header's frame count:
            # for MP3 it is an estimate, and SoundFile.blocks() hands on a cut file's unfilled
            # buffer (uninitialised memory: garbage or NaN) as if it were samples.
            while (block := sound.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)).shape[0]:
                if not np.isfinite(block).all():
                    raise InvalidSamplesError("the recording contains NaN or infinite sample values")
                magnitude = np.abs(block)
                peak = float(magnitude.max())
                if peak > FULL_SCALE:
                    raise AudioOutOfRangeError(
                        f"the recording has samples beyond full scale (peak {peak:.3g}); floating-point "
                        "samples must lie within [-1, 1]",
                        peak=float(f"{peak:.6g}"), full_scale=1.0)
                budget -= block.size
                if budget < 0:
                    raise AudioTooComplexError(
                        f"the recording decodes to more than the {config.max_decoded_values} samples allowed",
                        channels=channels, sample_rate=rate, max_decoded_values=config.max_decoded_values)
                clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))
                parts.append(block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0].copy())
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioDecodeError(f"the audio data is corrupt or truncated: {_reason(exc)}") from exc
    mono = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if mono.size == 0:
        raise EmptyAudioError("the recording holds no samples")
    duration = mono.size / rate
    if duration > config.max_duration_s:
        raise AudioTooLongError(
            f"the recording lasts {duration:.1f} s, more than the {config.max_duration_s:.0f} s allowed",
            duration_s=round(duration, 3),
            max_duration_s=config.max_duration_s,
        )
    if duration < config.min_duration_s:
        raise AudioTooShortError(
            f"the recording lasts {duration:.2f} s, less than the {config.min_duration_s} s needed",
            duration_s=round(duration, 3),
            min_duration_s=config.min_duration_s,
        )
    return DecodedAudio(
        samples=resample(mono, rate, config.sample_rate),
        sample_rate=config.sample_rate,
        original_sample_rate=rate,
        channels=channels,
        format=fmt,
        duration_s=duration,
        clipping_ratio=clipped / (mono.size * channels),
    )


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Anti-aliased polyphase resampling of ``(n,)`` samples; returns ``ceil(n * out / in)`` float32 samples."""
    if rate_in == rate_out:
        return np.ascontiguousarray(samples, dtype=np.float32)
    g = math.gcd(rate_in, rate_out)
    return resample_poly(samples.astype(np.float32), rate_out // g, rate_in // g).astype(np.float32)
