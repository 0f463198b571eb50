"""Decoding uploads: sample counts, resampling and its anti-aliasing, every container we accept,
and every error a real bad input raises (with its code, message and detail)."""
from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from inference import audio
from inference.config import AudioConfig
from inference.errors import (
    AudioDecodeError,
    AudioError,
    AudioFormatUnsupportedError,
    AudioTooComplexError,
    AudioTooLongError,
    AudioTooShortError,
    EmptyAudioError,
    InvalidSamplesError,
    NotAudioError,
)


def encode(samples: np.ndarray, sample_rate: int = 16_000, format: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """An in-memory file (the bad-input factories below need it at module level, not as a fixture)."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=format, subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def wave(clips) -> np.ndarray:
    """a_snt1: 2.87 s of 16 kHz speech."""
    return clips.wave("a_snt1")


def _rms_db(x: np.ndarray) -> float:
    return 10.0 * math.log10(float(np.mean(np.asarray(x, dtype=np.float64) ** 2)) + 1e-20)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


# -- good input ---------------------------------------------------------------------------


def test_a_16k_wav_decodes_to_exactly_its_samples(clips, wave) -> None:
    decoded = audio.decode(clips.bytes("a_snt1"))
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.shape == (sf.info(clips.path("a_snt1")).frames,) == wave.shape
    np.testing.assert_array_equal(decoded.samples, wave)
    assert (decoded.sample_rate, decoded.original_sample_rate, decoded.channels) == (16_000, 16_000, 1)
    assert decoded.duration_s == pytest.approx(wave.size / 16_000)
    assert decoded.clipping_ratio == 0.0


def test_44k1_stereo_becomes_16k_mono_of_the_right_length_and_shape(wave) -> None:
    high = resample_poly(wave, 441, 160).astype(np.float32)
    stereo = np.stack([high, 0.8 * high], axis=1)
    decoded = audio.decode(encode(stereo, 44_100, subtype="FLOAT"))
    expected = math.ceil(high.size * 16_000 / 44_100)
    assert abs(decoded.samples.size - expected) <= 1
    assert (decoded.original_sample_rate, decoded.channels) == (44_100, 2)
    assert decoded.duration_s == pytest.approx(high.size / 44_100)
    assert _correlation(decoded.samples, wave) > 0.999
    # the channels are averaged: 0.9 x the original level
    assert _rms_db(decoded.samples) - _rms_db(wave) == pytest.approx(20 * math.log10(0.9), abs=0.05)


@pytest.mark.parametrize(
    ("format", "subtype", "max_abs_error", "min_correlation"),
    [
        ("WAV", "PCM_U8", 1 / 128 + 1e-6, 0.99),
        ("WAV", "PCM_16", 0.0, 1.0),
        ("WAV", "PCM_24", 0.0, 1.0),
        ("WAV", "PCM_32", 0.0, 1.0),
        ("WAV", "FLOAT", 0.0, 1.0),
        ("FLAC", "PCM_16", 0.0, 1.0),
        ("OGG", "VORBIS", 0.1, 0.98),
        ("MP3", "MPEG_LAYER_III", 0.1, 0.98),
    ],
)
def test_every_accepted_container_decodes_close_to_the_original(wave, format, subtype, max_abs_error, min_correlation) -> None:
    decoded = audio.decode(encode(wave, 16_000, format, subtype))
    assert decoded.format == f"{format}/{subtype}"
    assert decoded.samples.shape == wave.shape
    assert np.max(np.abs(decoded.samples - wave)) <= max_abs_error
    assert _correlation(decoded.samples, wave) >= min_correlation - 1e-9


def test_resampling_removes_what_cannot_exist_at_16k_and_keeps_what_can() -> None:
    t = np.arange(44_100) / 44_100
    level = {}
    for freq in (1_000, 10_000):
        tone = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        decoded = audio.decode(encode(tone, 44_100, subtype="FLOAT"))
        middle = decoded.samples[1_600:-1_600]  # away from the filter's edge transients
        level[freq] = _rms_db(middle) - _rms_db(tone)
    # a 10 kHz tone is above 8 kHz: without the anti-aliasing filter it would fold to 6 kHz
    assert level[10_000] < -40.0
    assert abs(level[1_000]) < 0.1


def test_a_cut_mp3_decodes_only_the_samples_that_are_there(wave) -> None:
    """An MP3's frame count is an estimate; decoding must stop where the data stops and never
    hand on the rest of a buffer it did not fill (that used to be garbage up to 1e23, or NaN)."""
    data = encode(wave, 16_000, "MP3", "MPEG_LAYER_III")
    for fraction in (0.5, 0.9):
        decoded = audio.decode(data[: int(len(data) * fraction)])
        assert np.isfinite(decoded.samples).all()
        assert np.max(np.abs(decoded.samples)) <= 1.0
        assert decoded.samples.size < wave.size
        assert _correlation(decoded.samples, wave) > 0.95


# -- bad input: every error code from a real input ------------------------------------------


def _wav_with_zero_frames() -> bytes:
    return encode(np.zeros(0, dtype=np.float32))


def _cut(format: str, subtype: str) -> Callable[[np.ndarray], bytes]:
    def make(wave: np.ndarray) -> bytes:
        data = encode(wave, 16_000, format, subtype)
        return data[: len(data) // 2]

    return make


def _short_fmt_chunk() -> bytes:
    fmt = struct.pack("<HHI", 1, 1, 16_000)  # 8 bytes; a PCM fmt chunk needs 16
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 64) + bytes(64)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _with(value: float) -> Callable[[np.ndarray], bytes]:
    def make(wave: np.ndarray) -> bytes:
        bad = wave.copy()
        bad[len(bad) // 2] = value
        return encode(bad, subtype="FLOAT")

    return make


BAD_INPUTS: list[tuple[str, Callable[[np.ndarray], bytes], type[AudioError], str]] = [
    ("zero bytes", lambda w: b"", EmptyAudioError, "audio_empty"),
    ("a valid WAV with 0 frames", lambda w: _wav_with_zero_frames(), EmptyAudioError, "audio_empty"),
    ("a text file", lambda w: b"Bonjour, ceci n'est pas un fichier audio.\n" * 40, NotAudioError, "audio_not_audio"),
    ("a PDF", lambda w: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 20, NotAudioError, "audio_not_audio"),
    ("random bytes", lambda w: np.random.default_rng(0).bytes(8_000), NotAudioError, "audio_not_audio"),
    ("a WAV cut in its data chunk", _cut("WAV", "PCM_16"), AudioDecodeError, "audio_decode_error"),
    ("a cut FLAC", _cut("FLAC", "PCM_16"), AudioDecodeError, "audio_decode_error"),
    ("a cut OGG", _cut("OGG", "VORBIS"), AudioDecodeError, "audio_decode_error"),
    ("a RIFF header with a short fmt chunk", lambda w: _short_fmt_chunk(), AudioDecodeError, "audio_decode_error"),
    ("a float WAV with a NaN", _with(np.nan), InvalidSamplesError, "audio_invalid_samples"),
    ("a float WAV with +inf", _with(np.inf), InvalidSamplesError, "audio_invalid_samples"),
    ("0.2 s of speech", lambda w: encode(w[:3_200]), AudioTooShortError, "audio_too_short"),
]


@pytest.mark.parametrize(("label", "make", "error", "code"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_it_refuses_a_bad_upload_with_its_own_code(wave, label, make, error, code) -> None:
    with pytest.raises(error) as caught:
        audio.decode(make(wave))
    exc = caught.value
    assert exc.code == code
    assert isinstance(exc.message, str) and exc.message
    assert isinstance(exc.detail, dict)


def test_a_too_short_recording_reports_its_duration_and_the_minimum(wave) -> None:
    with pytest.raises(AudioTooShortError) as caught:
        audio.decode(encode(wave[:3_200]))
    assert caught.value.detail == {"duration_s": 0.2, "min_duration_s": 0.5}


def test_it_refuses_a_recording_longer_than_the_limit(wave) -> None:
    three_seconds = encode(np.tile(wave, 2)[:48_000])
    with pytest.raises(AudioTooLongError) as caught:
        audio.decode(three_seconds, AudioConfig(max_duration_s=1.0))
    assert caught.value.code == "audio_too_long"
    assert caught.value.detail == {"duration_s": 3.0, "max_duration_s": 1.0}


def test_the_duration_limit_is_checked_from_the_header_before_any_sample_is_decoded(wave, monkeypatch) -> None:
    three_seconds = encode(np.tile(wave, 2)[:48_000])

    def no_decoding(*args, **kwargs):
        raise AssertionError("samples were decoded")

    for method in ("blocks", "read", "buffer_read"):
        monkeypatch.setattr(sf.SoundFile, method, no_decoding)
    # the patch does stop decoding (so the next assertion means something)...
    with pytest.raises(AssertionError, match="samples were decoded"):
        audio.decode(three_seconds)
    # ...and a too-long recording is refused without reaching it
    with pytest.raises(AudioTooLongError) as caught:
        audio.decode(three_seconds, AudioConfig(max_duration_s=1.0))
    assert caught.value.code == "audio_too_long"


def test_it_refuses_an_upload_larger_than_max_bytes(wave) -> None:
    data = encode(wave)
    with pytest.raises(AudioTooLongError) as caught:
        audio.decode(data, AudioConfig(max_bytes=len(data) - 1))
    assert caught.value.code == "audio_too_long"
    assert caught.value.detail == {"bytes": len(data), "max_bytes": len(data) - 1}
    assert audio.decode(data, AudioConfig(max_bytes=len(data))).samples.size == wave.size


# -- decoding cost is bounded by the header, not by the upload's size ----------------------

@pytest.fixture
def no_decoding(monkeypatch):
    """Make any attempt to decode samples fail, so a refusal is shown to come from the header."""

    def refuse(*args, **kwargs):
        raise AssertionError("samples were decoded")

    for method in ("blocks", "read", "buffer_read"):
        monkeypatch.setattr(sf.SoundFile, method, refuse)


def test_a_small_flac_declaring_a_huge_rate_and_eight_channels_is_refused_from_its_header(no_decoding) -> None:
    # the reported upload: 329 KB of FLAC declaring 655,350 Hz x 8 channels; a second of it is enough here
    data = encode(np.zeros((655_350, 8), dtype=np.float32), 655_350, format="FLAC")
    assert len(data) < 400_000
    with pytest.raises(AudioFormatUnsupportedError) as caught:
        audio.decode(data)
    assert caught.value.code == "audio_unsupported_format"
    assert caught.value.detail["sample_rate"] == 655_350


def test_more_channels_than_the_limit_are_refused_from_the_header(no_decoding) -> None:
    with pytest.raises(AudioFormatUnsupportedError) as caught:
        audio.decode(encode(np.zeros((16_000, 9), dtype=np.float32), subtype="FLOAT"))
    assert caught.value.detail == {"channels": 9, "max_channels": 8}


def test_rate_times_channels_times_duration_beyond_the_budget_is_refused_from_the_header(no_decoding) -> None:
    data = encode(np.zeros((192_000 * 5, 8), dtype=np.float32), 192_000, format="FLAC")  # 7.7 M values
    with pytest.raises(AudioTooComplexError) as caught:
        audio.decode(data)
    assert caught.value.code == "audio_too_complex"
    assert caught.value.detail["decoded_values"] == 192_000 * 5 * 8
    assert caught.value.detail["max_decoded_values"] == AudioConfig().max_decoded_values


def test_a_recording_within_every_limit_still_decodes(wave) -> None:
    stereo_48k = np.stack([resample_poly(wave, 3, 1)] * 2, axis=1).astype(np.float32)
    decoded = audio.decode(encode(stereo_48k, 48_000, subtype="FLOAT"))
    assert (decoded.original_sample_rate, decoded.channels) == (48_000, 2)


def test_a_decoder_error_names_the_problem_without_a_memory_address() -> None:
    with pytest.raises(AudioDecodeError) as caught:
        audio.decode(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage-garbage-garbage")
    assert "0x" not in caught.value.message
    assert "BytesIO" not in caught.value.message
